// Keys: files and GnuPG keyrings, refusal of keys gpg 2.2 cannot use, passphrases, generated keys.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as openpgp from 'openpgp';
import { createDecryptStream } from '../../../src/engine/crypto/decrypt';
import { createEncryptStream } from '../../../src/engine/crypto/encrypt';
import { describeKey, generateKeyPair, loadPrivateKeys, loadPublicKeys, loadVerificationKeys } from '../../../src/engine/crypto/keys';
import type { ErrorCode } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { rejectsWith as rejectsWithCode } from '../../helpers/errors';
import {
  ECC_FPR,
  ECC_PUB,
  ECC_SEC,
  GpgHome,
  PROTECTED_FPR,
  PROTECTED_PASSPHRASE,
  PROTECTED_PUB,
  PROTECTED_SEC,
  RSA_FPR,
  RSA_PUB,
  RSA_SEC,
  RSA_SUBKEY,
  sourceText,
  through,
} from './gpgEnv';

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await rejectsWithCode(p, code, message, { hint: true });
}

const noPassphrase = async (): Promise<string | undefined> => assert.fail('getPassphrase must not be called for an unprotected key');

describe('crypto: keys', function () {
  this.timeout(60_000);
  let dir: string;
  let home: GpgHome;

  before(() => {
    dir = tempDir();
    home = new GpgHome([RSA_SEC, ECC_SEC]);
  });
  after(() => GpgHome.killAll());

  async function writeKey(name: string, armored: string): Promise<string> {
    const f = path.join(dir, name);
    fs.writeFileSync(f, armored);
    return f;
  }

  describe('loadPublicKeys', () => {
    it('reads armored and binary key files; a secret key file gives its public part', async () => {
      const bin = path.join(dir, 'rsa.pgp');
      fs.writeFileSync(bin, home.ok(['--export', RSA_FPR]));
      for (const f of [RSA_PUB, bin, RSA_SEC]) {
        const [k] = await loadPublicKeys([f]);
        assert.equal(k.getFingerprint().toUpperCase(), RSA_FPR);
        assert.equal(k.isPrivate(), false, f);
      }
    });

    it('takes keys from a GnuPG keyring by subkey id, fingerprint and email (opts.gnupgHome)', async () => {
      for (const spec of [RSA_SUBKEY, RSA_FPR, 'dup-rsa@example.invalid']) {
        const keys = await loadPublicKeys([spec], { gnupgHome: home.home });
        assert.deepEqual(
          keys.map((k) => k.getFingerprint().toUpperCase()),
          [RSA_FPR],
          spec,
        );
      }
      const two = await loadPublicKeys([RSA_FPR, ECC_FPR, RSA_PUB], { gnupgHome: home.home });
      assert.equal(two.length, 2, 'duplicates removed');
    });

    it('honours GNUPGHOME when no home is given', async () => {
      const saved = process.env.GNUPGHOME;
      process.env.GNUPGHOME = home.home;
      try {
        const [k] = await loadPublicKeys(['dup-ecc@example.invalid']);
        assert.equal(k.getFingerprint().toUpperCase(), ECC_FPR);
      } finally {
        if (saved === undefined) delete process.env.GNUPGHOME;
        else process.env.GNUPGHOME = saved;
      }
    });

    it('no matching key, unreadable file, no gpg → key', async () => {
      await rejectsWith(loadPublicKeys(['nobody@example.invalid'], { gnupgHome: home.home }), 'key', /No key matches/);
      const junk = await writeKey('junk.asc', 'not a key');
      await rejectsWith(loadPublicKeys([junk]), 'key', /Cannot read the key/);
      await rejectsWith(loadPublicKeys([]), 'key');
      // A path names a file: a missing one is said as such, and no keyring is asked (gpg would make
      // one, and start an agent for it, in a home folder that has none).
      const noHome = path.join(dir, 'no-gnupg-home');
      await rejectsWith(loadPublicKeys([path.join(dir, 'missing.asc')], { gnupgHome: noHome }), 'key', /The key file .*missing\.asc does not exist/);
      await rejectsWith(loadPrivateKeys(['./missing-sec.asc'], async () => '', { gnupgHome: noHome }), 'key', /The key file \.\/missing-sec\.asc does not exist/);
      await rejectsWith(loadPublicKeys([dir], { gnupgHome: noHome }), 'key', /is not a file/);
      // So does a bare file name of a key file (the README's `--encrypt-key ada.pub.asc`, mistyped).
      await rejectsWith(loadPublicKeys(['ada.pub.asc'], { gnupgHome: noHome }), 'key', /^The key file ada\.pub\.asc does not exist$/);
      await rejectsWith(loadPrivateKeys(['backup-key.gpg'], async () => '', { gnupgHome: noHome }), 'key', /^The key file backup-key\.gpg does not exist$/);
      assert.equal(fs.existsSync(noHome), false, 'no keyring made');
      const savedPath = process.env.PATH;
      process.env.PATH = dir;
      try {
        await rejectsWith(loadPublicKeys([RSA_FPR], { gnupgHome: home.home }), 'key', /gpg is not installed/);
      } finally {
        process.env.PATH = savedPath;
      }
    });

    it('refuses a v6 key (gpg 2.2 cannot import it)', async () => {
      const { publicKey } = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ email: 'v6@example.invalid' }], config: { v6Keys: true } });
      await rejectsWith(loadPublicKeys([await writeKey('v6.asc', publicKey)]), 'key', /version 6/);
    });

    it('refuses a v4 key whose encryption subkey is X25519 (algorithm 25)', async () => {
      const { publicKey } = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ email: 'x25519@example.invalid' }] });
      await rejectsWith(loadPublicKeys([await writeKey('x25519.asc', publicKey)]), 'key', /x25519.*gpg 2\.2/);
    });

    it('refuses expired, revoked and sign-only keys', async () => {
      const past = new Date(Date.now() - 10 * 86400_000);
      const expired = await openpgp.generateKey({ userIDs: [{ email: 'old@example.invalid' }], date: past, keyExpirationTime: 86400 });
      await rejectsWith(loadPublicKeys([await writeKey('expired.asc', expired.publicKey)]), 'key', /expired/);
      const live = await openpgp.generateKey({ userIDs: [{ email: 'rev@example.invalid' }], format: 'object' });
      const revoked = await openpgp.revokeKey({ key: live.privateKey, format: 'armored' });
      await rejectsWith(loadPublicKeys([await writeKey('revoked.asc', revoked.publicKey)]), 'key', /revoked/);
      const signOnly = await openpgp.generateKey({ userIDs: [{ email: 'sign@example.invalid' }], subkeys: [] });
      await rejectsWith(loadPublicKeys([await writeKey('signonly.asc', signOnly.publicKey)]), 'key', /no valid encryption key/);
    });

    it('accepts a key advertising SEIPDv2/AEAD and still writes PKESK v3 + SEIPD v1, which gpg 2.2 decrypts', async () => {
      const { publicKey, privateKey } = await openpgp.generateKey({ userIDs: [{ email: 'aead@example.invalid' }], config: { aeadProtect: true } });
      const pub = await openpgp.readKey({ armoredKey: publicKey });
      const features = (await pub.getPrimaryUser()).selfCertification.features;
      assert.equal((features?.[0] ?? 0) & 0x08, 0x08, 'the key advertises SEIPDv2');
      const recipients = await loadPublicKeys([await writeKey('aead.asc', publicKey)]);
      const data = sourceText(20_000, 5);
      const f = path.join(dir, 'to-aead.gpg');
      fs.writeFileSync(f, await through(createEncryptStream({ recipients }), data));
      const g = new GpgHome([await writeKey('aead-sec.asc', privateKey)]);
      assert.match(g.run(['--list-packets', f], '').stdout.toString(), /pubkey enc packet: version 3[\s\S]*mdc_method: 2/);
      const r = g.decrypt(f);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.plain.equals(data));
    });
  });

  it('loadVerificationKeys takes sign-only and expired keys that loadPublicKeys refuses', async () => {
    const signOnly = await openpgp.generateKey({ userIDs: [{ email: 'signer@example.invalid' }], subkeys: [] });
    const f = await writeKey('signer.asc', signOnly.publicKey);
    await rejectsWith(loadPublicKeys([f]), 'key');
    const [k] = await loadVerificationKeys([f]);
    assert.equal(k.getFingerprint(), (await openpgp.readKey({ armoredKey: signOnly.publicKey })).getFingerprint());
    const both = await loadVerificationKeys([ECC_FPR, ECC_SEC], { gnupgHome: home.home });
    assert.equal(both.length, 1);
    assert.equal(both[0].isPrivate(), false);
  });

  describe('loadPrivateKeys', () => {
    it('unprotected key files: no passphrase asked', async () => {
      const keys = await loadPrivateKeys([RSA_SEC, ECC_SEC], noPassphrase);
      assert.deepEqual(keys.map((k) => k.getFingerprint().toUpperCase()), [RSA_FPR, ECC_FPR]);
      assert.ok(keys.every((k) => k.isDecrypted()));
    });

    it('protected key file: asks once, naming the key; wrong or missing passphrase → passphrase', async () => {
      const asked: string[] = [];
      const [k] = await loadPrivateKeys([PROTECTED_SEC], async (d) => (asked.push(d), PROTECTED_PASSPHRASE));
      assert.ok(k.isDecrypted());
      assert.deepEqual(asked, [describeKey(k)]);
      assert.match(asked[0], /BE70…A64C/);
      await rejectsWith(loadPrivateKeys([PROTECTED_SEC], async () => 'wrong'), 'passphrase', /Wrong passphrase/);
      await rejectsWith(loadPrivateKeys([PROTECTED_SEC], async () => undefined), 'passphrase', /No passphrase/);
    });

    it('a public key file is not a secret key → key', async () => {
      await rejectsWith(loadPrivateKeys([RSA_PUB], noPassphrase), 'key', /no secret key/);
    });

    it('from the keyring: unprotected by id without asking; protected by email with its passphrase', async () => {
      const g = new GpgHome([RSA_SEC, PROTECTED_SEC]);
      const [rsa] = await loadPrivateKeys([RSA_SUBKEY], noPassphrase, { gnupgHome: g.home });
      assert.equal(rsa.getFingerprint().toUpperCase(), RSA_FPR);
      assert.ok(rsa.isDecrypted());
      const asked: string[] = [];
      const [prot] = await loadPrivateKeys(['offsite-protected@example.invalid'], async (d) => (asked.push(d), PROTECTED_PASSPHRASE), { gnupgHome: g.home });
      assert.equal(prot.getFingerprint().toUpperCase(), PROTECTED_FPR);
      assert.ok(prot.isDecrypted());
      assert.equal(asked.length, 1);
      assert.match(asked[0], /Offsite Protected Test/);
      await rejectsWith(loadPrivateKeys([PROTECTED_FPR], async () => 'wrong', { gnupgHome: g.home }), 'passphrase');
    });

    it('keyring without the secret key → key', async () => {
      const g = new GpgHome([RSA_PUB]);
      await rejectsWith(loadPrivateKeys([RSA_FPR], noPassphrase, { gnupgHome: g.home }), 'key', /no secret key/);
      await rejectsWith(loadPrivateKeys(['nobody@example.invalid'], noPassphrase, { gnupgHome: g.home }), 'key', /No key matches/);
    });
  });

  it('describeKey: algorithm, short fingerprint, user id', async () => {
    const [rsa, ecc, prot] = await loadPublicKeys([RSA_PUB, ECC_PUB, PROTECTED_PUB]);
    assert.equal(describeKey(rsa), 'RSA-3072 A53C…1B62 Dup Test RSA <dup-rsa@example.invalid>');
    assert.equal(describeKey(ecc), 'ed25519 A4CB…C626 Dup Test ECC <dup-ecc@example.invalid>');
    assert.equal(describeKey(prot), 'ed25519 BE70…A64C Offsite Protected Test <offsite-protected@example.invalid>');
  });

  describe('generateKeyPair', () => {
    it('makes a v4 ed25519 + cv25519 pair without SEIPDv2, protected; gpg 2.2 imports it and both directions work', async () => {
      const pass = 'new key pass';
      const kp = await generateKeyPair('New User', 'new@example.invalid', pass);
      assert.match(kp.fingerprint, /^[0-9A-F]{40}$/);
      const pub = await openpgp.readKey({ armoredKey: kp.publicArmored });
      assert.equal(pub.keyPacket.version, 4);
      assert.equal(pub.getAlgorithmInfo().algorithm, 'eddsaLegacy');
      const enc = await pub.getEncryptionKey();
      assert.deepEqual(enc.getAlgorithmInfo(), { algorithm: 'ecdh', curve: 'curve25519Legacy' });
      assert.equal(((await pub.getPrimaryUser()).selfCertification.features?.[0] ?? 0) & 0x08, 0);
      const sec = await openpgp.readPrivateKey({ armoredKey: kp.privateArmored });
      assert.equal(sec.isDecrypted(), false, 'secret part is protected');

      const pubFile = await writeKey('new-pub.asc', kp.publicArmored);
      const secFile = await writeKey('new-sec.asc', kp.privateArmored);
      const g = new GpgHome();
      g.ok(['--import', pubFile]);
      g.ok(['--import', secFile], pass);
      assert.match(g.ok(['--list-secret-keys', '--with-colons']).toString(), new RegExp(`fpr:+${kp.fingerprint}`));

      // gpg encrypts to it, we decrypt with the passphrase.
      const data = sourceText(30_000, 8);
      const plain = path.join(dir, 'new-plain.txt');
      fs.writeFileSync(plain, data);
      const gpgMade = path.join(dir, 'new-gpg.gpg');
      g.ok(['-o', gpgMade, '--recipient', 'new@example.invalid', '--encrypt', plain]);
      const decryptionKeys = await loadPrivateKeys([secFile], async () => pass);
      assert.ok((await through(createDecryptStream({ loadDecryptionKeys: async () => decryptionKeys }), fs.readFileSync(gpgMade))).equals(data));

      // We encrypt to it, gpg decrypts with the passphrase.
      const ours = path.join(dir, 'new-ours.gpg');
      fs.writeFileSync(ours, await through(createEncryptStream({ recipients: await loadPublicKeys([pubFile]) }), data));
      const r = g.decrypt(ours, pass);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.plain.equals(data));
    });

    it('requires a passphrase', async () => {
      await rejectsWith(generateKeyPair('x', 'x@example.invalid', ''), 'usage');
    });
  });
});
