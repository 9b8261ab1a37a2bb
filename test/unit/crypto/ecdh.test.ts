// ECDH with node:crypto (crypto/ecdh.ts) against the real gpg 2.2, on every curve it makes keys for:
// what gpg encrypts to a NIST, brainpool, secp256k1 or cv25519 key Offsite decrypts (also with
// Camellia, which openpgp.js lacks), giving the session key gpg names; the PKESKs Offsite writes gpg
// decrypts; a wrong key is told as before.
import * as assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as openpgp from 'openpgp';
import type { PrivateKey } from 'openpgp';
import { createDecryptStream } from '../../../src/engine/crypto/decrypt';
import { ECDH_ALGO, ecdhSessionKeyPacket, ecSecretMatches, nativeEcdhSessionKey, readEcdhPublic } from '../../../src/engine/crypto/ecdh';
import { createEncryptStream } from '../../../src/engine/crypto/encrypt';
import { loadPrivateKeys, loadVerificationKeys } from '../../../src/engine/crypto/keys';
import { packet, splitPackets } from '../../../src/engine/crypto/packets';
import { loadRecipients, nativeKeyPackets, type Recipient } from '../../../src/engine/crypto/recipient';
import { s2kKey } from '../../../src/engine/crypto/unlock';
import { rejectsWith } from '../../helpers/errors';
import { tempDir } from '../../helpers/tmp';
import { GpgHome, mixedData, pkeskBodies, RSA_SEC, through } from './gpgEnv';

/** A key gpg makes: the primary's algorithm and the encryption subkey's curve (gpg's names). */
interface Made {
  readonly name: string;
  readonly primary: string;
  readonly curve: string;
}

const MADE: readonly Made[] = [
  { name: 'nistp256', primary: 'nistp256', curve: 'nistp256' },
  { name: 'nistp384', primary: 'nistp384', curve: 'nistp384' },
  { name: 'nistp521', primary: 'nistp521', curve: 'nistp521' },
  { name: 'brainpoolP256r1', primary: 'brainpoolP256r1', curve: 'brainpoolP256r1' },
  { name: 'brainpoolP384r1', primary: 'brainpoolP384r1', curve: 'brainpoolP384r1' },
  { name: 'brainpoolP512r1', primary: 'brainpoolP512r1', curve: 'brainpoolP512r1' },
  { name: 'secp256k1', primary: 'secp256k1', curve: 'secp256k1' },
  { name: 'cv25519', primary: 'ed25519', curve: 'cv25519' },
  // A brainpool encryption subkey under a key whose signatures openpgp.js checks.
  { name: 'ed25519+brainpoolP256r1', primary: 'ed25519', curve: 'brainpoolP256r1' },
];

interface Key {
  readonly made: Made;
  readonly fpr: string;
  /** The encryption subkey's key id (upper-case hex). */
  readonly subkeyId: string;
  readonly pubFile: string;
  readonly sec: PrivateKey[];
}

describe('crypto: ECDH with node:crypto, against gpg 2.2', function () {
  this.timeout(240_000);
  let home: GpgHome;
  let dir: string;
  let rsaSec: PrivateKey[];
  const keys = new Map<string, Key>();
  const data = mixedData(300_000, 33);
  let plainFile: string;

  before(async () => {
    dir = tempDir('offsite-ecdh-');
    home = new GpgHome();
    plainFile = path.join(dir, 'plain.bin');
    fs.writeFileSync(plainFile, data);
    rsaSec = await loadPrivateKeys([RSA_SEC], async () => undefined);
    for (const made of MADE) {
      const fpr = home.genKey(`ECDH ${made.name} <${made.name.replace(/\W/g, '-')}@example.invalid>`, made.primary, made.curve);
      const listing = home.ok(['--with-colons', '--list-keys', fpr]).toString();
      const subkeyId = /^sub:[^:]*:[^:]*:18:([0-9A-F]{16}):/m.exec(listing)![1];
      const pubFile = path.join(dir, `${made.name}-pub.asc`);
      const secFile = path.join(dir, `${made.name}-sec.asc`);
      fs.writeFileSync(pubFile, home.ok(['--armor', '--export', fpr]));
      fs.writeFileSync(secFile, home.ok(['--armor', '--export-secret-keys', fpr], ''));
      keys.set(made.name, { made, fpr, subkeyId, pubFile, sec: await loadPrivateKeys([secFile], async () => undefined) });
    }
  });
  after(() => GpgHome.killAll());

  const key = (name: string): Key => keys.get(name)!;

  function gpgEncrypt(name: string, args: string[]): string {
    const out = path.join(dir, name);
    home.ok(['--yes', '-o', out, ...args, '--encrypt', plainFile]);
    return out;
  }

  async function decrypt(file: string, sec: PrivateKey[]): Promise<Buffer> {
    return through(createDecryptStream({ loadDecryptionKeys: async () => sec }), fs.readFileSync(file));
  }

  /** gpg's own session key of a file it decrypts: "ALGO:HEX". */
  function gpgSessionKey(file: string): string {
    const r = home.run(['--show-session-key', '-o', '/dev/null', '--decrypt', file], '');
    assert.equal(r.status, 0, r.stderr);
    return /session key: '(\d+:[0-9A-F]+)'/.exec(r.stderr)![1];
  }

  /** A recipient whose PKESK ecdh.ts writes to the key's ECDH subkey, read from its public key file. */
  async function ecdhRecipient(k: Key): Promise<Recipient> {
    const [p] = (await nativeKeyPackets(fs.readFileSync(k.pubFile))).filter((x) => x.algorithm === ECDH_ALGO);
    assert.ok(p?.ecdh, k.made.name);
    const fpr = Buffer.from(p.fingerprint, 'hex');
    return { fingerprint: k.fpr.toLowerCase(), description: k.made.name, sessionKeyPacket: async (sk) => ecdhSessionKeyPacket(p.ecdh!, fpr.subarray(-8), fpr, 9, sk) };
  }

  for (const made of MADE) {
    for (const cipher of ['AES256', 'CAMELLIA256']) {
      it(`${made.name}, ${cipher}: gpg encrypts, Offsite opens the session key gpg names and decrypts byte-exact`, async () => {
        const k = key(made.name);
        const f = gpgEncrypt(`${made.name}-${cipher}.gpg`, ['--recipient', k.fpr, '--cipher-algo', cipher]);
        const got = nativeEcdhSessionKey(await pkeskBodies(fs.readFileSync(f)), k.sec);
        assert.ok(got, 'the native path opens it');
        assert.equal(`${cipher === 'AES256' ? 9 : 13}:${Buffer.from(got.data).toString('hex').toUpperCase()}`, gpgSessionKey(f));
        assert.ok((await decrypt(f, k.sec)).equals(data));
      });
    }

    it(`${made.name}: Offsite writes the ECDH PKESK, gpg decrypts byte-exact (and so does Offsite)`, async () => {
      const k = key(made.name);
      const f = path.join(dir, `ours-${made.name}.gpg`);
      fs.writeFileSync(f, await through(createEncryptStream({ recipients: [await ecdhRecipient(k)] }), data));
      assert.match(home.ok(['--list-packets', f], '').toString(), new RegExp(`:pubkey enc packet: version 3, algo 18, keyid ${k.subkeyId}`));
      const r = home.decrypt(f);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.plain.equals(data), 'gpg: plaintext differs');
      assert.ok(r.status.some((l) => l.startsWith('[GNUPG:] DECRYPTION_OKAY')));
      assert.ok((await decrypt(f, k.sec)).equals(data), 'Offsite: plaintext differs');
    });
  }

  it("a passphrase-protected brainpool key gpg made unlocks with its passphrase (openpgp.js cannot check its ECDSA numbers: they are checked natively) and decrypts; a wrong one is told", async () => {
    const fpr = home.genKey('Protected bp <protected-bp@example.invalid>', 'brainpoolP384r1', 'brainpoolP384r1', 'bp pass');
    const secFile = path.join(dir, 'protected-bp-sec.asc');
    fs.writeFileSync(secFile, home.ok(['--armor', '--export-secret-keys', fpr], 'bp pass'));
    assert.match(home.ok(['--list-packets', secFile]).toString(), /iter\+salt S2K/, 'exported protected');
    const sec = await loadPrivateKeys([secFile], async () => 'bp pass');
    assert.ok((await decrypt(gpgEncrypt('to-protected-bp.gpg', ['--recipient', fpr]), sec)).equals(data));
    await rejectsWith(loadPrivateKeys([secFile], async () => 'not it'), 'passphrase', /^Wrong passphrase for the key ECDSA-brainpoolP384r1/);
  });

  it("a brainpool key protected in a form openpgp.js unlocks (3DES: Offsite's own unlocking takes AES only) unlocks with its passphrase, its numbers checked natively; a wrong one is told", async () => {
    const k = key('brainpoolP256r1');
    const [sec] = k.sec;
    const pass = '3des pass';
    // Each secret packet protected as s2k usage 254 (SHA-1 check) with 3DES-CFB and iterated SHA-256.
    const subs = sec.getKeys();
    let n = 0;
    const packets = splitPackets(Buffer.from(sec.write())).packets.map(({ tag, body }) => {
      if (tag !== 5 && tag !== 7) return packet(tag, body);
      const pubLen = (subs[n++].keyPacket as unknown as { writePublicKey(): Uint8Array }).writePublicKey().length;
      assert.equal(body[pubLen], 0, 'exported unprotected');
      const secret = body.subarray(pubLen + 1, body.length - 2);
      const salt = randomBytes(8);
      const iv = randomBytes(8);
      const c = createCipheriv('des-ede3-cfb', s2kKey({ type: 3, hash: 'sha256', salt, count: 65536 }, Buffer.from(pass), 24), iv);
      const enc = Buffer.concat([c.update(Buffer.concat([secret, createHash('sha1').update(secret).digest()])), c.final()]);
      return packet(tag, Buffer.concat([body.subarray(0, pubLen), Buffer.from([254, 2, 3, 8]), salt, Buffer.from([0x60]), iv, enc]));
    });
    assert.equal(n, 2);
    const file = path.join(dir, 'bp-3des-sec.gpg');
    fs.writeFileSync(file, Buffer.concat(packets));
    const unlocked = await loadPrivateKeys([file], async () => pass);
    assert.ok((await decrypt(gpgEncrypt('to-bp-3des.gpg', ['--recipient', k.fpr]), unlocked)).equals(data));
    await rejectsWith(loadPrivateKeys([file], async () => 'not it'), 'passphrase', /^Wrong passphrase for the key ECDSA-brainpoolP256r1/);
  });

  it('a hidden recipient (gpg --throw-keyids): the ECDH key is found by trying the keys given', async () => {
    const f = gpgEncrypt('hidden.gpg', ['--recipient', key('secp256k1').fpr, '--throw-keyids']);
    assert.ok((await decrypt(f, [...rsaSec, ...key('brainpoolP384r1').sec, ...key('secp256k1').sec])).equals(data));
  });

  it('a wrong key gives the same error as before: no secret key for this file, naming the key it is for', async () => {
    const bp = key('brainpoolP256r1');
    const f = gpgEncrypt('to-bp256.gpg', ['--recipient', bp.fpr]);
    for (const wrong of [rsaSec, key('brainpoolP384r1').sec, key('cv25519').sec]) {
      await rejectsWith(decrypt(f, wrong), 'decrypt', new RegExp(`^No secret key for this file: it is encrypted to ${bp.subkeyId}`), { hint: true });
    }
    const hidden = gpgEncrypt('hidden-bp.gpg', ['--recipient', bp.fpr, '--throw-keyids']);
    await rejectsWith(decrypt(hidden, key('brainpoolP512r1').sec), 'decrypt', /^No secret key for this file: it is encrypted to hidden recipient/, { hint: true });
  });

  it("a damaged ECDH session key to a brainpool key gpg made (which openpgp.js will not use): said so, with what to do", async () => {
    const k = key('brainpoolP256r1');
    const bytes = fs.readFileSync(gpgEncrypt('damaged-bp.gpg', ['--recipient', k.fpr]));
    const [body] = await pkeskBodies(bytes);
    bytes[bytes.indexOf(body) + body.length - 1] ^= 1; // the wrapped key's last byte
    const e = await rejectsWith(through(createDecryptStream({ loadDecryptionKeys: async () => k.sec }), bytes), 'decrypt', /is the one this file is encrypted to, but its session key does not open with it/, { hint: true });
    assert.equal(e.hint, 'The file may be damaged (restore it from another copy), or gpg may still read it (restore with duplicity)');
  });

  it('new backups: a NIST, cv25519 or brainpool-subkey key checked once by openpgp.js is remembered and its PKESKs written natively; gpg decrypts', async () => {
    for (const name of ['nistp384', 'cv25519', 'ed25519+brainpoolP256r1']) {
      const k = key(name);
      const verdicts = path.join(dir, `verdicts-${name}`);
      await loadRecipients([k.pubFile], { verdictDir: verdicts });
      const [file] = fs.readdirSync(verdicts).filter((n) => n.endsWith('.json'));
      assert.ok(file, `${name}: a verdict is remembered`);
      // Marked, so the recipient made from it is told from openpgp.js's.
      const v = JSON.parse(fs.readFileSync(path.join(verdicts, file), 'utf8')) as { keys: { description: string }[] };
      v.keys[0].description = 'remembered';
      fs.writeFileSync(path.join(verdicts, file), JSON.stringify(v));
      const [r] = await loadRecipients([k.pubFile], { verdictDir: verdicts });
      assert.equal(r.description, 'remembered', name);
      const f = path.join(dir, `remembered-${name.replace(/\W/g, '-')}.gpg`);
      fs.writeFileSync(f, await through(createEncryptStream({ recipients: [r] }), data));
      const g = home.decrypt(f);
      assert.equal(g.code, 0, `${name}: ${g.stderr}`);
      assert.ok(g.plain.equals(data), name);
    }
  });

  it("a brainpool key gpg made checks no --sign-key signature (openpgp.js's ECDSA on its curve): said, not passed", async () => {
    const f = gpgEncrypt('signed-by-bp.gpg', ['--recipient', key('cv25519').fpr, '--local-user', key('brainpoolP256r1').fpr, '--sign']);
    const verificationKeys = await loadVerificationKeys([key('brainpoolP256r1').pubFile]);
    await rejectsWith(through(createDecryptStream({ loadDecryptionKeys: async () => key('cv25519').sec, verificationKeys }), fs.readFileSync(f)), 'signature', /cannot check this signature/);
  });

  it('new backups to a brainpool or secp256k1 key gpg made (ECDSA primary): refused saying why, and that its backups still restore', async () => {
    for (const name of ['brainpoolP256r1', 'secp256k1']) {
      const e = await rejectsWith(loadRecipients([key(name).pubFile]), 'key', /cannot receive backups: openpgp\.js, which checks a key .* does not take its curve on Node/, { hint: true });
      assert.match(e.hint ?? '', /already encrypted to this key restore/);
      assert.doesNotMatch(e.message, /\n|Require stack/);
    }
  });
});

/** A big-endian number plus `add`, as OpenPGP writes a scalar. */
function plus(d: Uint8Array, add: bigint): Buffer {
  const h = (BigInt(`0x${Buffer.from(d).toString('hex') || '0'}`) + add).toString(16);
  return Buffer.from(h.length % 2 ? `0${h}` : h, 'hex');
}

/** The (sub)key packets of a key openpgp.js makes: public part and secret scalar. */
async function ecPackets(curve: 'nistP256' | 'curve25519Legacy'): Promise<{ algorithm: number; body: Buffer; d: Uint8Array }[]> {
  const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve, userIDs: [{ email: `ec-${curve}@example.invalid` }], format: 'object', config: { v6Keys: false } });
  return privateKey.getKeys().map((sub) => {
    const p = sub.keyPacket as unknown as { algorithm: number; privateParams: { d: Uint8Array }; writePublicKey(): Uint8Array };
    return { algorithm: p.algorithm, body: Buffer.from(p.writePublicKey()), d: p.privateParams.d };
  });
}

describe('crypto: ECDH key checks (ecdh.ts)', () => {
  /** P-256's group order. */
  const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

  it("ecSecretMatches: a NIST key's own scalar matches; d+1, the order and d plus the order (the same point, out of range) do not", async () => {
    const packets = await ecPackets('nistP256');
    assert.deepEqual(packets.map((p) => p.algorithm), [19, ECDH_ALGO]);
    for (const { body, d } of packets) {
      assert.equal(ecSecretMatches(body, d), true);
      assert.equal(ecSecretMatches(body, plus(d, 1n)), false, 'd+1');
      assert.equal(ecSecretMatches(body, plus(new Uint8Array(0), P256_ORDER)), false, 'the order');
      assert.equal(ecSecretMatches(body, plus(d, P256_ORDER)), false, 'd + the order');
    }
  });

  it("ecSecretMatches: a cv25519 subkey's own scalar matches, another does not (the X25519 key's public part is derived, not taken on trust)", async () => {
    const [eddsa, ecdh] = await ecPackets('curve25519Legacy');
    assert.equal(ecSecretMatches(eddsa.body, eddsa.d), undefined, 'EdDSA: not a curve of the table');
    assert.equal(ecdh.algorithm, ECDH_ALGO);
    assert.equal(ecSecretMatches(ecdh.body, ecdh.d), true);
    // +8: X25519 clears the scalar's three lowest bits, so +1 would be the same key.
    assert.equal(ecSecretMatches(ecdh.body, plus(ecdh.d, 8n)), false);
  });

  it('readEcdhPublic: KDF hashes SHA-256/384/512 only (RFC 6637 §9); SHA-1, MD5, RIPEMD-160 are left to openpgp.js', async () => {
    const [, ecdh] = await ecPackets('nistP256');
    const kdf = ecdh.body.length - 4;
    assert.deepEqual([...ecdh.body.subarray(kdf, kdf + 2)], [3, 1], 'the KDF parameters end the packet');
    for (const [id, ok] of [[8, true], [9, true], [10, true], [2, false], [1, false], [3, false], [11, false]] as const) {
      const body = Buffer.from(ecdh.body);
      body[kdf + 2] = id;
      body[kdf + 3] = 9; // AES-256: a 32-byte wrap key, more than SHA-1's 20
      assert.equal(readEcdhPublic(body, 6) !== undefined, ok, `hash ${id}`);
    }
  });
});
