// Unlocking protected secret keys with node:crypto (crypto/unlock.ts): the S2K against the RFC's
// algorithm written out plainly, keys from gpg 2.2 (its export protects with the largest S2K count)
// and from openpgp.js unlocked to the same secret numbers as openpgp.js's decryptKey, wrong
// passphrases refused, and what it does not handle left to openpgp.js.
import * as assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as openpgp from 'openpgp';
import type { PrivateKey } from 'openpgp';
import { checksum16 } from '../../../src/engine/crypto/algorithms';
import { createDecryptStream } from '../../../src/engine/crypto/decrypt';
import { createEncryptStream } from '../../../src/engine/crypto/encrypt';
import { generateKeyPair, loadPrivateKeys, loadPublicKeys } from '../../../src/engine/crypto/keys';
import { packet, splitPackets, writeMpi } from '../../../src/engine/crypto/packets';
import { s2kKey, unlockNatively } from '../../../src/engine/crypto/unlock';
import { OffsiteError } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { GpgHome, PROTECTED_PASSPHRASE, PROTECTED_SEC, sourceText, through } from './gpgEnv';

/** RFC 4880 §3.7.1.3 as written: the whole input in one buffer per hash context. */
function s2kReference(type: number, hash: string, salt: Buffer, count: number, pass: Buffer, keyBytes: number): Buffer {
  const data = Buffer.concat([salt, pass]);
  const total = type === 3 ? Math.max(count, data.length) : data.length;
  const out: Buffer[] = [];
  for (let i = 0; Buffer.concat(out).length < keyBytes; i++) {
    const input = Buffer.alloc(i + total);
    for (let o = 0; o < total; o++) input[i + o] = data[o % data.length];
    out.push(createHash(hash).update(input).digest());
  }
  return Buffer.concat(out).subarray(0, keyBytes);
}

/** The secret numbers of every (sub)key of a decrypted key, as openpgp.js holds them ('stub' for a GNU stub). */
function secrets(k: PrivateKey): string[] {
  return k.getKeys().map((sub) => {
    const params = (sub.keyPacket as unknown as { privateParams: Record<string, Uint8Array> | null }).privateParams;
    return params ? JSON.stringify(Object.entries(params).map(([n, v]) => [n, Buffer.from(v).toString('hex')])) : 'stub';
  });
}

describe('crypto: unlocking protected secret keys natively', function () {
  this.timeout(120_000);
  after(() => GpgHome.killAll());

  it('derives the S2K key as RFC 4880 §3.7.1 does: simple, salted, iterated; several hash contexts when one is too short', () => {
    const salt = Buffer.from('0123456789abcdef', 'hex');
    const cases: [number, string, number, string, number][] = [
      [0, 'sha1', 0, 'pw', 16],
      [1, 'sha256', 0, 'pass phrase', 32],
      [3, 'sha1', 65536, 'a', 16],
      [3, 'sha1', 65011712, 'offsite-test-passphrase', 16], // gpg's count: hashed in steps, not in one buffer
      [3, 'sha1', 1024, 'longer than the count would be if it were not at least the data', 32], // two SHA-1 contexts
      [3, 'sha1', 100_003, 'odd', 24],
      [3, 'sha512', 4096, 'x', 32],
      [3, 'sha256', 16_777_216, '', 32], // empty passphrase: the salt alone repeats
    ];
    for (const [type, hash, count, pass, keyBytes] of cases) {
      const got = s2kKey({ type, hash, salt: type === 0 ? Buffer.alloc(0) : salt, count }, Buffer.from(pass), keyBytes);
      const want = s2kReference(type, hash, type === 0 ? Buffer.alloc(0) : salt, count, Buffer.from(pass), keyBytes);
      assert.equal(got.toString('hex'), want.toString('hex'), `${type} ${hash} ${count} ${JSON.stringify(pass)} ${keyBytes}`);
    }
  });

  it("unlocks gpg 2.2's exports (ed25519/cv25519 and RSA, AES-128, count 65,011,712) to openpgp.js's secret numbers", async () => {
    const g = new GpgHome();
    // As gpg makes keys by default: a signing primary key and an encryption subkey, both protected.
    g.ok(['--quick-gen-key', 'Unlock RSA <unlock-rsa@example.invalid>', 'rsa2048', 'sign', 'never'], 'rsa pass');
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(g.ok(['--with-colons', '--list-keys', 'unlock-rsa@example.invalid']).toString())?.[1];
    assert.ok(fpr);
    g.ok(['--quick-add-key', fpr, 'rsa2048', 'encr', 'never'], 'rsa pass');
    const rsaFile = path.join(tempDir('offsite-unlock-'), 'rsa-sec.asc');
    fs.writeFileSync(rsaFile, g.ok(['--armor', '--export-secret-keys', 'unlock-rsa@example.invalid'], 'rsa pass'));
    for (const [file, pass] of [
      [PROTECTED_SEC, PROTECTED_PASSPHRASE],
      [rsaFile, 'rsa pass'],
    ]) {
      const locked = await openpgp.readPrivateKey({ armoredKey: fs.readFileSync(file, 'utf8') });
      assert.equal(locked.isDecrypted(), false);
      const native = await unlockNatively(locked, pass, () => 'the key');
      assert.ok(native, `${file}: handled natively`);
      assert.equal(native.getFingerprint(), locked.getFingerprint());
      assert.ok(native.getKeys().every((k) => k.keyPacket.isDecrypted()), 'every key packet unlocked');
      const viaOpenpgp = await openpgp.decryptKey({ privateKey: locked, passphrase: pass });
      assert.deepEqual(secrets(native), secrets(viaOpenpgp));
      await assert.rejects(unlockNatively(locked, `${pass}x`, () => 'the key'), (e: unknown) => OffsiteError.is(e, 'passphrase') && /Wrong passphrase for the key the key/.test((e as Error).message));
    }
    // The primary key kept offline (gpg --export-secret-subkeys: a GNU stub beside the subkey).
    const subOnly = await openpgp.readPrivateKey({ armoredKey: g.ok(['--armor', '--export-secret-subkeys', 'unlock-rsa@example.invalid'], 'rsa pass').toString() });
    assert.equal((subOnly.keyPacket as unknown as { isDummy(): boolean }).isDummy(), true);
    const native = await unlockNatively(subOnly, 'rsa pass', () => 'k');
    assert.ok(native, 'handled natively');
    assert.deepEqual(secrets(native), secrets(await openpgp.decryptKey({ privateKey: subOnly, passphrase: 'rsa pass' })));
    assert.deepEqual(secrets(native).map((x) => x === 'stub'), [true, false], 'the stub as it was, the subkey unlocked');
  });

  it('unlocks keys openpgp.js protected (AES-256, SHA-256) and what loadPrivateKeys unlocks decrypts backups', async () => {
    const dir = tempDir('offsite-unlock-');
    const made = await generateKeyPair('Unlock ECC', 'unlock-ecc@example.invalid', 'ecc pass');
    const sec = path.join(dir, 'ecc-sec.asc');
    const pub = path.join(dir, 'ecc-pub.asc');
    fs.writeFileSync(sec, made.privateArmored);
    fs.writeFileSync(pub, made.publicArmored);
    const locked = await openpgp.readPrivateKey({ armoredKey: made.privateArmored });
    const native = await unlockNatively(locked, 'ecc pass', () => 'k');
    assert.ok(native);
    assert.deepEqual(secrets(native), secrets(await openpgp.decryptKey({ privateKey: locked, passphrase: 'ecc pass' })));

    const data = sourceText(50_000, 3);
    const enc = await through(createEncryptStream({ recipients: await loadPublicKeys([pub]) }), data);
    const [key] = await loadPrivateKeys([sec], async () => 'ecc pass');
    assert.ok(key.isDecrypted());
    assert.ok((await through(createDecryptStream({ loadDecryptionKeys: async () => [key] }), enc)).equals(data));
    await assert.rejects(loadPrivateKeys([sec], async () => 'nope'), (e: unknown) => OffsiteError.is(e, 'passphrase'));
  });

  it('leaves to openpgp.js what it does not handle (AEAD-protected keys), which still unlocks them', async () => {
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'AEAD', email: 'aead-key@example.invalid' }],
      passphrase: 'aead pass',
      format: 'object',
      config: { v6Keys: false, aeadProtect: true },
    });
    assert.equal(await unlockNatively(privateKey, 'aead pass', () => 'k'), undefined);
    const file = path.join(tempDir('offsite-unlock-'), 'aead-sec.asc');
    fs.writeFileSync(file, privateKey.armor());
    const [key] = await loadPrivateKeys([file], async () => 'aead pass');
    assert.ok(key.isDecrypted());
    // An unprotected key passes through as it is.
    const plain = await openpgp.decryptKey({ privateKey, passphrase: 'aead pass' });
    const same = await unlockNatively(plain, 'ignored', () => 'k');
    assert.ok(same);
    assert.deepEqual(secrets(same), secrets(plain));
  });

  it("a usage-255 key whose secret scalar is not its point's (the sum made to fit) is a wrong passphrase: the EC check catches what the sum missed", async () => {
    const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'nistP256', userIDs: [{ email: 'sum-255@example.invalid' }], format: 'object', config: { v6Keys: false } });
    const p = privateKey.keyPacket as unknown as { privateParams: { d: Uint8Array }; writePublicKey(): Uint8Array };
    const pass = 'sum pass';
    /** The key with its primary's scalar `d` protected as s2k usage 255 does (AES-128, iterated SHA-256, two-byte sum). */
    const protectedWith = async (d: Uint8Array) => {
      const salt = randomBytes(8);
      const iv = randomBytes(16);
      const key = s2kKey({ type: 3, hash: 'sha256', salt, count: 65536 }, Buffer.from(pass), 16);
      const secret = writeMpi(Buffer.from(d));
      const sum = Buffer.alloc(2);
      sum.writeUInt16BE(checksum16(secret));
      const c = createCipheriv('aes-128-cfb', key, iv);
      const enc = Buffer.concat([c.update(Buffer.concat([secret, sum])), c.final()]);
      // count octet 0x60: (16 + 0) << (6 + 6) = 65536
      const body = Buffer.concat([Buffer.from(p.writePublicKey()), Buffer.from([255, 7, 3, 8]), salt, Buffer.from([0x60]), iv, enc]);
      const packets = splitPackets(Buffer.from(privateKey.write())).packets.map((q, i) => packet(q.tag, i === 0 ? body : q.body));
      return openpgp.readPrivateKey({ binaryKey: Buffer.concat(packets) });
    };
    const right = await protectedWith(p.privateParams.d);
    assert.equal(right.keyPacket.isDecrypted(), false, "the primary protected");
    const unlocked = await unlockNatively(right, pass, () => 'k');
    assert.ok(unlocked, 'handled natively');
    assert.deepEqual(secrets(unlocked), secrets(privateKey));
    const d1 = Buffer.from(p.privateParams.d);
    d1[d1.length - 1] ^= 1;
    await assert.rejects(unlockNatively(await protectedWith(d1), pass, () => 'k'), (e: unknown) => OffsiteError.is(e, 'passphrase') && /^Wrong passphrase for the key k$/.test((e as Error).message));
  });
});
