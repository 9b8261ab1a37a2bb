// `offsite restore` of a backup duplicity made with a passphrase and no key (PASSPHRASE=… duplicity:
// every file a symmetric, SKESK-only OpenPGP message): the passphrase comes from OFFSITE_PASSPHRASE,
// else from a prompt on the terminal; without either the error says how to give it. A wrong one is
// said plainly and nothing is written; a backup encrypted to a key still asks for that key, not for a
// passphrase.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite, offsiteOnTerminal } from '../helpers/cli';
import { RSA_SEC, SAMPLES } from '../helpers/gpg';
import { snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const SYMMETRIC = `file://${path.join(SAMPLES, '05-dup-symmetric', 'vault')}`;
const EXPECTED = JSON.parse(fs.readFileSync(path.join(SAMPLES, '05-dup-symmetric', 'expected', '20240101T000000Z.json'), 'utf8'));
const KEYED = `file://${path.join(SAMPLES, '01-dup-enc-chain', 'vault')}`;
const PASSPHRASE = 'test-passphrase';
const PROMPT = 'Passphrase for the backup';

/** No OFFSITE_PASSPHRASE of the environment the tests run in. */
const NO_ENV = { OFFSITE_PASSPHRASE: undefined };

function fresh(): { cache: string; out: string } {
  const w = tempDir('offsite-sym-');
  return { cache: path.join(w, 'cache'), out: path.join(w, 'out') };
}

function nothingIn(out: string): boolean {
  return !fs.existsSync(out) || fs.readdirSync(out).length === 0;
}

describe('offsite restore of a passphrase-only (symmetric) duplicity backup', function () {
  this.timeout(120_000);

  it('on a terminal without OFFSITE_PASSPHRASE: asks for the passphrase (not echoed), then restores', async () => {
    const { cache, out } = fresh();
    const r = await offsiteOnTerminal(['--archive-dir', cache, 'restore', SYMMETRIC, out], [{ after: PROMPT, type: PASSPHRASE }], { env: NO_ENV });
    assert.equal(r.code, 0, r.output);
    assert.equal(r.unanswered, 0, `no prompt: ${r.output}`);
    assert.equal(r.output.split(PROMPT).length - 1, 1, `asked once for the whole restore: ${r.output}`);
    assert.match(r.output, /Passphrase for the backup \(it was made with a passphrase, no key\): /);
    assert.ok(!r.output.includes(PASSPHRASE), `the passphrase is not echoed: ${r.output}`);
    assert.deepEqual(snapshotTree(out), EXPECTED);
  });

  it('on a terminal, a wrong passphrase: exit 1, says so, writes nothing into the target', async () => {
    const { cache, out } = fresh();
    const r = await offsiteOnTerminal(['--archive-dir', cache, 'restore', SYMMETRIC, out], [{ after: PROMPT, type: 'not-the-passphrase' }], { env: NO_ENV });
    assert.equal(r.code, 1, r.output);
    assert.equal(r.unanswered, 0, `no prompt: ${r.output}`);
    assert.match(r.output, /offsite: (\S+: )?Wrong passphrase for this encrypted file.*Run the command again and enter the right one/);
    assert.ok(!r.output.includes('not-the-passphrase'));
    assert.ok(nothingIn(out), 'nothing restored');
  });

  it('with OFFSITE_PASSPHRASE: restores without asking, also when a private key is configured too', async () => {
    for (const args of [[], ['--key', RSA_SEC]]) {
      const { cache, out } = fresh();
      const r = await offsite(['--archive-dir', cache, 'restore', ...args, SYMMETRIC, out], { env: { OFFSITE_PASSPHRASE: PASSPHRASE } });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.deepEqual(snapshotTree(out), EXPECTED);
    }
  });

  it('with a wrong OFFSITE_PASSPHRASE: exit 1, one line naming the variable, nothing written', async () => {
    const { cache, out } = fresh();
    const r = await offsite(['--archive-dir', cache, 'restore', SYMMETRIC, out], { env: { OFFSITE_PASSPHRASE: 'not-the-passphrase' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^offsite: (\S+: )?Wrong passphrase for this encrypted file.*Check OFFSITE_PASSPHRASE/);
    assert.ok(nothingIn(out));
  });

  it('without a terminal and without OFFSITE_PASSPHRASE: exit 1, says to set OFFSITE_PASSPHRASE (not to pass a key), nothing written', async () => {
    const { cache, out } = fresh();
    const r = await offsite(['--archive-dir', cache, 'restore', SYMMETRIC, out], { env: NO_ENV });
    assert.equal(r.code, 1);
    const line = r.stderr.trim();
    assert.match(line, /^offsite: (\S+: )?A passphrase is needed for the backup \(it was made with a passphrase, no key\).*Set OFFSITE_PASSPHRASE/);
    assert.doesNotMatch(line, /--key|private key/);
    assert.ok(nothingIn(out));
  });

  it('a backup encrypted to a key, without --key on a terminal: says the private key is needed, asks no passphrase', async () => {
    const { cache, out } = fresh();
    const r = await offsiteOnTerminal(['--archive-dir', cache, 'restore', KEYED, out], [{ after: 'Passphrase', type: 'anything' }], { env: NO_ENV });
    assert.equal(r.code, 1, r.output);
    assert.equal(r.unanswered, 1, `asked for a passphrase: ${r.output}`);
    assert.match(r.output, /offsite: (\S+: )?The private key is needed to read the backup.*Pass --key KEY/);
    assert.ok(nothingIn(out));
  });
});
