// `offsite keygen NAME EMAIL --public F --secret F` (README): a key pair or nothing. A bad email or a
// file that cannot be written is one clear line and exit 1, and never leaves a public key without its
// secret key (backups encrypted to it could never be restored).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';

const env = { OFFSITE_PASSPHRASE: 'keygen-test-passphrase' };

describe('offsite keygen', function () {
  this.timeout(60_000);

  it('the README example writes both keys', async () => {
    const dir = tempDir('offsite-keygen-');
    const r = await offsite(['keygen', 'Ada Lovelace', 'ada@example.org', '--public', 'ada.pub.asc', '--secret', 'ada.sec.asc'], { env, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Created key [0-9A-F]{40}\n/);
    assert.match(fs.readFileSync(path.join(dir, 'ada.pub.asc'), 'utf8'), /BEGIN PGP PUBLIC KEY BLOCK/);
    assert.match(fs.readFileSync(path.join(dir, 'ada.sec.asc'), 'utf8'), /BEGIN PGP PRIVATE KEY BLOCK/);
    assert.equal(fs.statSync(path.join(dir, 'ada.sec.asc')).mode & 0o777, 0o600);
  });

  it('an email OpenPGP does not accept: a usage error, no stack trace, no file', async () => {
    const dir = tempDir('offsite-keygen-');
    for (const email of ['ada', 'ada@example.org.', 'ada lovelace@example.org']) {
      const r = await offsite(['keygen', 'Ada', email, '--public', 'p.asc', '--secret', 's.asc'], { env, cwd: dir });
      assert.equal(r.code, 1, email);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, email);
      assert.equal(r.stderr, `offsite: ${JSON.stringify(email)} is not an email address OpenPGP accepts. Give an address such as ada@example.org\n`);
      assert.deepEqual(fs.readdirSync(dir), []);
    }
  });

  it('the same file for --public and --secret: refused, nothing written', async () => {
    const dir = tempDir('offsite-keygen-');
    const r = await offsite(['keygen', 'Ada', 'ada@example.org', '--public', 'k.asc', '--secret', './k.asc'], { env, cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^offsite: --public and --secret name the same file \(k\.asc\)\. /);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  // The keys are written both or neither: a public key whose secret key was lost encrypts backups nobody can restore.
  for (const [which, pub, sec, bad] of [
    ['--secret', 'p.asc', 'no/such/folder/s.asc', /^offsite: .*no\/such\/folder\/s\.asc/],
    ['--public', 'no/such/folder/p.asc', 's.asc', /^offsite: .*no\/such\/folder\/p\.asc/],
  ] as const) {
    it(`a ${which} that cannot be written leaves no key behind`, async () => {
      const dir = tempDir('offsite-keygen-');
      const r = await offsite(['keygen', 'Ada', 'ada@example.org', '--public', pub, '--secret', sec], { env, cwd: dir });
      assert.equal(r.code, 1);
      assert.match(r.stderr, bad);
      assert.deepEqual(fs.readdirSync(dir), []);
    });
  }
});
