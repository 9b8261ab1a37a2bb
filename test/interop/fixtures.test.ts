// Offsite restores every backup set duplicity (and an independent writer) made in
// shared/duplicity/samples, at every time, to exactly the tree recorded in expected/<time>.json:
// encrypted (RSA, ECC), signed, symmetric, gzip and uncompressed sets.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringToTime } from '../../src/engine/chain/time';
import { offsite } from '../helpers/cli';
import { ECC_PUB, ECC_SEC, RSA_SEC, SAMPLES } from '../helpers/gpg';
import { snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const OPTIONS: Record<string, { args: string[]; env?: NodeJS.ProcessEnv }> = {
  '01-dup-enc-chain': { args: ['--key', RSA_SEC] },
  '02-dup-plain-gz': { args: [] },
  '03-dup-nocomp': { args: [] },
  '04-dup-signed-ecc': { args: ['--key', ECC_SEC, '--sign-key', ECC_PUB] },
  '05-dup-symmetric': { args: [], env: { OFFSITE_PASSPHRASE: 'test-passphrase' } },
  '06-indep-openpgpjs': { args: ['--key', RSA_SEC] },
};


describe('restoring the duplicity fixtures', function () {
  this.timeout(120_000);
  for (const [fixture, opt] of Object.entries(OPTIONS)) {
    const dir = path.join(SAMPLES, fixture);
    for (const exp of fs.readdirSync(path.join(dir, 'expected')).sort()) {
      const time = path.basename(exp, '.json');
      it(`${fixture} as of ${time}`, async () => {
        const work = tempDir('offsite-fx-');
        const out = path.join(work, 'out');
        const r = await offsite(['--archive-dir', path.join(work, 'cache'), 'restore', ...opt.args, '--time', String(stringToTime(time)), `file://${dir}/vault`, out], { env: opt.env });
        assert.equal(r.code, 0, r.stderr);
        const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected', exp), 'utf8'));
        assert.deepEqual(snapshotTree(out), expected);
      });
    }
  }

  it('refuses the signed fixture when another key must have signed it', async () => {
    const work = tempDir('offsite-fx-');
    const r = await offsite(['--archive-dir', path.join(work, 'cache'), 'restore', '--key', ECC_SEC, '--sign-key', RSA_SEC, `file://${SAMPLES}/04-dup-signed-ecc/vault`, path.join(work, 'out')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^offsite: .*sign/im);
  });
});
