// createDecryptStream: what gpg 2.2, duplicity and openpgp.js write must come out byte-exact; every
// failure must be the right OffsiteError code.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as openpgp from 'openpgp';
import type { PrivateKey, PublicKey } from 'openpgp';
import { createDecryptStream, type DecryptOptions } from '../../../src/engine/crypto/decrypt';
import { createEncryptStream } from '../../../src/engine/crypto/encrypt';
import { loadPrivateKeys, loadPublicKeys } from '../../../src/engine/crypto/keys';
import { OffsiteError, type ErrorCode } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { rejectsWith as rejectsWithCode } from '../../helpers/errors';
import { ECC_FPR, ECC_PUB, ECC_SEC, GpgHome, mixedData, noise, pkeskBodies, PROTECTED_SEC, repeatedSource, RSA_FPR, RSA_PUB, RSA_SEC, sampleFiles, sourceText, through } from './gpgEnv';

describe('crypto: createDecryptStream', function () {
  this.timeout(120_000);
  let dir: string;
  let home: GpgHome;
  let rsaSec: PrivateKey[];
  let eccSec: PrivateKey[];
  let rsaPub: PublicKey[];
  let eccPub: PublicKey[];
  const data = mixedData(2 * 1024 * 1024 + 123, 21);
  let plainFile: string;

  before(async () => {
    dir = tempDir();
    home = new GpgHome([RSA_SEC, ECC_SEC]);
    plainFile = path.join(dir, 'plain.bin');
    fs.writeFileSync(plainFile, data);
    rsaSec = await loadPrivateKeys([RSA_SEC], async () => undefined);
    eccSec = await loadPrivateKeys([ECC_SEC], async () => undefined);
    rsaPub = await loadPublicKeys([RSA_PUB]);
    eccPub = await loadPublicKeys([ECC_PUB]);
  });
  after(() => GpgHome.killAll());

  function gpgEncrypt(name: string, args: string[], passphrase?: string, input = plainFile): string {
    const out = path.join(dir, name);
    home.ok(['--yes', '-o', out, ...args, input], passphrase);
    return out;
  }

  async function decryptFile(file: string, opts: DecryptOptions, chunkSizes?: number[]): Promise<Buffer> {
    return through(createDecryptStream(opts), fs.readFileSync(file), chunkSizes);
  }

  async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
    await rejectsWithCode(p, code, message, { hint: true });
  }

  /** Refused for want of a signature by the key given: the hint names the CLI's --sign-key, `needs` says which input (the extension's offsite.signKey). */
  async function rejectsForSigner(p: Promise<unknown>, message: RegExp): Promise<void> {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(OffsiteError.is(e, 'signature'), String(e));
      assert.match(e.message, message);
      assert.match(e.hint ?? '', /--sign-key/);
      assert.doesNotMatch(e.hint ?? '', /setting/);
      assert.deepEqual(e.needs, { input: 'signKey', wrong: true });
      return true;
    });
  }

  describe('gpg 2.2 output', () => {
    const variants: [string, string[]][] = [
      ['gpg -e (default ZLIB)', []],
      ['gpg -e -z 0 (no compression)', ['-z', '0']],
      ['--compress-algo zip', ['--compress-algo', 'zip']],
      ['--compress-algo zlib', ['--compress-algo', 'zlib']],
      ['--compress-algo bzip2 (openpgp.js inflates)', ['--compress-algo', 'bzip2']],
      ['--cipher-algo 3DES (8-byte block)', ['--cipher-algo', '3DES']],
      ['--cipher-algo CAST5 (not in node: openpgp.js fallback)', ['--cipher-algo', 'CAST5']],
      ['--cipher-algo CAMELLIA256 (not in openpgp.js: node only)', ['--cipher-algo', 'CAMELLIA256']],
      ['armored', ['--armor']],
      ['hidden recipient (key id 0)', ['--throw-keyids']],
    ];
    for (const [label, args] of variants) {
      it(`${label}: byte-exact`, async () => {
        const f = gpgEncrypt(`${label.replace(/\W+/g, '_')}.gpg`, ['--recipient', RSA_FPR, ...args, '--encrypt']);
        assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => rsaSec }, [7, 65536, 1000])).equals(data));
      });
    }

    it('cv25519 recipient, signed (gpg -s -e): byte-exact, signature verified', async () => {
      const f = gpgEncrypt('signed.gpg', ['--recipient', ECC_FPR, '--local-user', ECC_FPR, '--sign', '--encrypt']);
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec, verificationKeys: eccPub })).equals(data));
      // Without verification keys the signature is ignored.
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec })).equals(data));
    });

    it('signed with --textmode (text literal, text signature): verifies, output as gpg -d', async () => {
      const text = Buffer.from('line one\nline two\r\nline three\n\nend');
      const src = path.join(dir, 'text.txt');
      fs.writeFileSync(src, text);
      const f = gpgEncrypt('textmode.gpg', ['--textmode', '--recipient', ECC_FPR, '--local-user', ECC_FPR, '--sign', '--encrypt'], undefined, src);
      const want = home.decrypt(f).plain; // gpg -d on Unix drops the CRs of a text literal
      assert.equal(want.toString(), 'line one\nline two\nline three\n\nend');
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec, verificationKeys: eccPub }, [5])).equals(want));
    });

    it('signed and BZip2-compressed: verified through openpgp.js', async () => {
      const f = gpgEncrypt('signed-bz.gpg', ['--compress-algo', 'bzip2', '--recipient', ECC_FPR, '--local-user', ECC_FPR, '--sign', '--encrypt']);
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec, verificationKeys: eccPub })).equals(data));
      await rejectsForSigner(decryptFile(f, { loadDecryptionKeys: async () => eccSec, verificationKeys: rsaPub }), /./);
    });

    for (const [label, args] of [['', []], [' --cipher-algo CAMELLIA128 (not in openpgp.js)', ['--cipher-algo', 'CAMELLIA128']]] as [string, string[]][]) {
      it(`gpg --symmetric${label}: byte-exact with the passphrase`, async () => {
        const f = gpgEncrypt(`sym${args.length}.gpg`, [...args, '--symmetric'], 'sym pass');
        assert.ok((await decryptFile(f, { password: async () => 'sym pass' })).equals(data));
        // Camellia's key is derived by Offsite, not openpgp.js: a wrong passphrase is still told apart.
        if (args.length > 0) await rejectsWith(decryptFile(f, { password: async () => 'wrong' }), 'passphrase');
      });
    }

    it('empty plaintext', async () => {
      const empty = path.join(dir, 'empty.txt');
      fs.writeFileSync(empty, '');
      const f = gpgEncrypt('empty.gpg', ['--recipient', RSA_FPR, '--encrypt'], undefined, empty);
      assert.equal((await decryptFile(f, { loadDecryptionKeys: async () => rsaSec })).length, 0);
    });
  });

  describe('duplicity fixtures', () => {
    const fixtures: [string, string, () => DecryptOptions][] = [
      ['01-dup-enc-chain', '', () => ({ loadDecryptionKeys: async () => rsaSec })],
      ['04-dup-signed-ecc', '', () => ({ loadDecryptionKeys: async () => eccSec, verificationKeys: eccPub })],
      ['05-dup-symmetric', 'test-passphrase', () => ({ password: async () => 'test-passphrase' })],
      ['06-indep-openpgpjs', '', () => ({ loadDecryptionKeys: async () => rsaSec })],
    ];
    for (const [sample, pass, opts] of fixtures) {
      it(`${sample}: every .gpg file equals gpg -d`, async () => {
        const files = sampleFiles(sample);
        assert.ok(files.length >= 3);
        for (const f of files) {
          const want = home.decrypt(f, pass);
          assert.equal(want.code, 0, want.stderr);
          assert.ok((await decryptFile(f, opts())).equals(want.plain), path.basename(f));
        }
      });
    }
  });

  describe('our own output and openpgp.js output', () => {
    it('round trip through createEncryptStream, signed, several chunkings', async () => {
      const [signingKey] = eccSec;
      const enc = await through(createEncryptStream({ recipients: [...rsaPub, ...eccPub], signingKey }), data);
      const f = path.join(dir, 'ours.gpg');
      fs.writeFileSync(f, enc);
      for (const chunks of [[1 << 20], [1, 2, 3, 500], [65537]]) {
        assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub }, chunks)).equals(data));
      }
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec })).equals(data));
    });

    it('SEIPD v2 (AEAD) from openpgp.js goes through the openpgp.js fallback', async () => {
      const msg = await openpgp.encrypt({
        message: await openpgp.createMessage({ binary: data }),
        passwords: ['aead pass'],
        format: 'binary',
        config: { aeadProtect: true },
      });
      const f = path.join(dir, 'aead.gpg');
      fs.writeFileSync(f, msg);
      assert.equal(msg[0] & 0x3f, 3); // SKESK
      assert.ok((await decryptFile(f, { password: async () => 'aead pass' })).equals(data));
      await rejectsWith(decryptFile(f, { password: async () => 'nope' }), 'passphrase');
    });

    it('openpgp.js signed + encrypted message (prepended one-pass) verifies', async () => {
      const msg = await openpgp.encrypt({
        message: await openpgp.createMessage({ binary: sourceText(10_000) }),
        encryptionKeys: rsaPub,
        signingKeys: eccSec,
        format: 'binary',
      });
      const f = path.join(dir, 'pgpjs-signed.gpg');
      fs.writeFileSync(f, msg);
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub })).equals(sourceText(10_000)));
      await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => rsaSec, verificationKeys: rsaPub }), 'signature', /not by the expected/);
    });
  });

  describe('errors', () => {
    let good: string;
    before(() => {
      good = gpgEncrypt('good.gpg', ['--recipient', RSA_FPR, '--encrypt']);
    });

    it('wrong secret key → decrypt, naming the key the file is for', async () => {
      await rejectsWith(decryptFile(good, { loadDecryptionKeys: async () => eccSec }), 'decrypt', /E58B2D7FA184113F/);
    });

    it('a brainpool key, which openpgp.js will not use on Node (without its optional eckey-utils), decrypts (ecdh.ts); its session key packet damaged → decrypt naming the key and the reason, not "no secret key"', async () => {
      const fpr = home.genKey('Brainpool <bp@example.invalid>', 'brainpoolP256r1', 'brainpoolP256r1');
      const secFile = path.join(dir, 'bp-sec.asc');
      fs.writeFileSync(secFile, home.ok(['--armor', '--export-secret-keys', fpr], ''));
      const bpSec = await loadPrivateKeys([secFile], async () => undefined);
      const f = gpgEncrypt('to-brainpool.gpg', ['--recipient', fpr, '--encrypt']);
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => bpSec })).equals(data));
      // The wrapped session key's last byte changed: the key unwrap's check fails, openpgp.js cannot try.
      const bytes = fs.readFileSync(f);
      const [pkesk] = await pkeskBodies(bytes);
      bytes[bytes.indexOf(pkesk) + pkesk.length - 1] ^= 1;
      const damaged = path.join(dir, 'to-brainpool-damaged.gpg');
      fs.writeFileSync(damaged, bytes);
      await rejectsWith(decryptFile(damaged, { loadDecryptionKeys: async () => bpSec }), 'decrypt', /^The secret key ECDSA-brainpoolP256r1 .* is the one this file is encrypted to, but its session key does not open with it, and openpgp.js will not use the key: .*eckey-utils/);
      // Another key still gets the usual answer.
      await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => rsaSec }), 'decrypt', /^No secret key for this file/);
    });

    it('no key at all → decrypt', async () => {
      await rejectsWith(decryptFile(good, {}), 'decrypt');
    });

    it('wrong passphrase → passphrase (duplicity fixture 05 and gpg --symmetric)', async () => {
      const [f] = sampleFiles('05-dup-symmetric');
      await rejectsWith(decryptFile(f, { password: async () => 'wrong' }), 'passphrase');
      await rejectsWith(decryptFile(f, {}), 'passphrase');
    });

    it('the keys are loaded only for a message encrypted to keys, the password asked for only by a symmetric message no key opens; a key-only message without a key gives noKey', async () => {
      const [sym] = sampleFiles('05-dup-symmetric');
      const want = home.decrypt(sym, 'test-passphrase');
      let asked = 0;
      let loaded = 0;
      const password = async () => (asked++, 'test-passphrase');
      const loadDecryptionKeys = async () => (loaded++, rsaSec);
      const noKey = () => new OffsiteError('key', 'The private key is needed here', { needs: { input: 'secretKey', wrong: false } });
      // Encrypted to a key: never asked, with or without the key.
      assert.ok((await decryptFile(good, { loadDecryptionKeys, password, noKey })).equals(data));
      assert.equal(loaded, 1);
      await assert.rejects(decryptFile(good, { password, noKey }), (e: unknown) => OffsiteError.is(e, 'key') && e.message === 'The private key is needed here');
      assert.equal(asked, 0);
      // Symmetric: asked, also when a key is given (it cannot open the file).
      assert.ok((await decryptFile(sym, { password, noKey })).equals(want.plain));
      assert.ok((await decryptFile(sym, { loadDecryptionKeys, password })).equals(want.plain));
      assert.equal(asked, 2);
      assert.equal(loaded, 1, 'a symmetric message loads no key');
      // openpgp.js's path (SEIPD v2) asks the same way.
      const aead = path.join(dir, 'aead-lazy.gpg');
      fs.writeFileSync(aead, await openpgp.encrypt({ message: await openpgp.createMessage({ binary: data }), passwords: ['test-passphrase'], format: 'binary', config: { aeadProtect: true } }));
      assert.ok((await decryptFile(aead, { password, noKey })).equals(data));
      assert.equal(asked, 3);
    });

    it('a message open to a key or a passphrase, given the wrong key: both paths (gpg\'s SEIPD v1, openpgp.js\'s SEIPD v2) ask for the password, or need the key', async () => {
      const gpgBoth = gpgEncrypt('both.gpg', ['--recipient', RSA_FPR, '--symmetric', '--encrypt'], 'test-passphrase');
      // A key that announces SEIPD v2 (gpg 2.2's do not: openpgp.js would write v1 for them).
      const { privateKey: v2Sec } = await openpgp.generateKey({ userIDs: [{ name: 'aead' }], type: 'curve25519', format: 'object', config: { aeadProtect: true } });
      const aeadBoth = path.join(dir, 'aead-both.gpg');
      const msg = await openpgp.encrypt({ message: await openpgp.createMessage({ binary: data }), encryptionKeys: v2Sec.toPublic(), passwords: ['test-passphrase'], format: 'binary', config: { aeadProtect: true } });
      fs.writeFileSync(aeadBoth, msg);
      const seipd = (await openpgp.readMessage({ binaryMessage: msg })).packets.findPacket(openpgp.enums.packet.symEncryptedIntegrityProtectedData) as unknown as { version: number };
      assert.equal(seipd.version, 2);
      for (const [f, rightKey] of [[gpgBoth, rsaSec], [aeadBoth, [v2Sec]]] as [string, PrivateKey[]][]) {
        let asked = 0;
        const password = async () => (asked++, 'test-passphrase');
        assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec, password })).equals(data), f);
        assert.equal(asked, 1, f);
        assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => rightKey, password })).equals(data), f);
        assert.equal(asked, 1, f);
        const failure = await decryptFile(f, { loadDecryptionKeys: async () => eccSec, password: async () => undefined }).then(() => undefined, (e: unknown) => ({ code: (e as OffsiteError).code, needs: (e as OffsiteError).needs }));
        assert.deepEqual(failure, { code: 'decrypt', needs: { input: 'secretKey', wrong: true } }, f);
        await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => eccSec, password: async () => 'wrong' }), 'passphrase');
      }
    });

    it('a wrong passphrase that opens the SKESK to a cipher the fast path does not take (Twofish) is a wrong passphrase, not damage', async () => {
      // A wrong passphrase decrypts the session key packet to random bytes; ~1 in 300 name a cipher with
      // a key of the right size. Found here by asking openpgp.js (a low S2K count keeps the search short).
      const config = { s2kIterationCountByte: 0, aeadProtect: false } as Partial<openpgp.Config>;
      const msg = (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: data }), passwords: ['right'], format: 'binary', config })) as Uint8Array;
      const message = await openpgp.readMessage({ binaryMessage: msg });
      let wrong: string | undefined;
      for (let i = 0; wrong === undefined && i < 20_000; i++) {
        const k = await openpgp.decryptSessionKeys({ message, passwords: [`wrong-${i}`] }).catch(() => undefined);
        if (k?.[0].algorithm === 'twofish') wrong = `wrong-${i}`;
      }
      assert.ok(wrong, 'a wrong passphrase that opens the session key packet to Twofish');
      const file = path.join(dir, 'twofish-by-chance.gpg');
      fs.writeFileSync(file, msg);
      assert.ok((await decryptFile(file, { password: async () => 'right' })).equals(data));
      await rejectsWith(decryptFile(file, { password: async () => wrong }), 'passphrase', /Wrong passphrase/);
    });

    it('a symmetric message: no password → needs it (symmetric), a wrong one → passphrase, wrong (symmetric)', async () => {
      const [sym] = sampleFiles('05-dup-symmetric');
      const needs = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => ({ code: (e as OffsiteError).code, needs: (e as OffsiteError).needs }));
      assert.deepEqual(await needs(decryptFile(sym, { password: async () => undefined })), { code: 'passphrase', needs: { input: 'passphrase', wrong: false, symmetric: true } });
      assert.deepEqual(await needs(decryptFile(sym, { password: async () => 'wrong' })), { code: 'passphrase', needs: { input: 'passphrase', wrong: true, symmetric: true } });
    });

    it('a flipped byte anywhere in the encrypted data → integrity (MDC)', async () => {
      const bytes = fs.readFileSync(good);
      for (const at of [500, Math.floor(bytes.length / 2), bytes.length - 30, bytes.length - 1]) {
        const bad = Buffer.from(bytes);
        bad[at] ^= 0x01;
        const f = path.join(dir, `flip-${at}.gpg`);
        fs.writeFileSync(f, bad);
        await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => rsaSec }), 'integrity');
      }
    });

    it('a flipped byte in an uncompressed message → integrity, raised at the end after the data', async () => {
      const f0 = gpgEncrypt('z0.gpg', ['--recipient', RSA_FPR, '-z', '0', '--encrypt']);
      const bad = fs.readFileSync(f0);
      bad[bad.length - 1000] ^= 0x80;
      let emitted = 0;
      await assert.rejects(
        pipeline(
          Readable.from([bad]),
          createDecryptStream({ loadDecryptionKeys: async () => rsaSec }),
          new Writable({
            write(c: Buffer, _e, cb) {
              emitted += c.length;
              cb();
            },
          }),
        ),
        (e: unknown) => OffsiteError.is(e, 'integrity'),
      );
      assert.ok(emitted > data.length / 2, 'data was streamed before the check');
    });

    it('a truncated message → integrity', async () => {
      const bytes = fs.readFileSync(good);
      for (const len of [450, Math.floor(bytes.length / 2), bytes.length - 1, bytes.length - 21]) {
        const f = path.join(dir, `trunc-${len}.gpg`);
        fs.writeFileSync(f, bytes.subarray(0, len));
        await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => rsaSec }), 'integrity');
      }
    });

    it('unsigned message with verificationKeys → signature, before any output', async () => {
      let emitted = 0;
      await assert.rejects(
        pipeline(
          fs.createReadStream(good),
          createDecryptStream({ loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub }),
          new Writable({
            write(c: Buffer, _e, cb) {
              emitted += c.length;
              cb();
            },
          }),
        ),
        (e: unknown) => OffsiteError.is(e, 'signature') && /not signed/.test(e.message),
      );
      assert.equal(emitted, 0);
      await rejectsForSigner(decryptFile(good, { loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub }), /not signed/);
    });

    it('signed by another key → signature', async () => {
      const f = gpgEncrypt('signed-rsa.gpg', ['--recipient', ECC_FPR, '--local-user', RSA_FPR, '--sign', '--encrypt']);
      await rejectsForSigner(decryptFile(f, { loadDecryptionKeys: async () => eccSec, verificationKeys: eccPub }), /signed by .*, not by the expected signing key/);
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => eccSec, verificationKeys: rsaPub })).equals(data));
    });

    it('signed over SHA-1 or RIPEMD-160 (gpg digest-algo, which gpg accepts) → signature naming the digest, not "Bad signature"; without verification keys it decrypts', async () => {
      for (const digest of ['SHA1', 'RIPEMD160']) {
        const f = gpgEncrypt(`signed-${digest}.gpg`, ['--digest-algo', digest, '--recipient', RSA_FPR, '--local-user', RSA_FPR, '--sign', '--encrypt']);
        await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => rsaSec, verificationKeys: rsaPub }), 'signature', new RegExp(`^The signature by key EA5CAF56C3041B62 is over a ${digest} digest, which Offsite does not accept`));
        assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => rsaSec })).equals(data));
      }
    });

    it('signed by a DSA key (gpg 1.x\'s default, which gpg accepts and openpgp.js refuses) → signature saying the key cannot check it, not "Bad signature"', async () => {
      home.ok(['--quick-gen-key', 'Old DSA <dsa@example.invalid>', 'dsa2048', 'sign', 'never'], '');
      const dsaPub = await openpgp.readKeys({ binaryKeys: home.ok(['--export', 'dsa@example.invalid']) });
      const f = gpgEncrypt('signed-dsa.gpg', ['--recipient', RSA_FPR, '--local-user', 'dsa@example.invalid', '--sign', '--encrypt']);
      await rejectsWith(decryptFile(f, { loadDecryptionKeys: async () => rsaSec, verificationKeys: dsaPub }), 'signature', /^The signing key [0-9A-F]{16} cannot check this signature: .*dsa keys are considered too weak$/);
      assert.ok((await decryptFile(f, { loadDecryptionKeys: async () => rsaSec })).equals(data));
    });

    it('a bad signature (over other data, by the right key) → signature', async () => {
      // One-pass signature packet + literal 'AAAA' + a signature packet over 'AAAA' (good) or 'BBBB' (bad).
      const detached = async (text: string) =>
        (await openpgp.readSignature({ binarySignature: await openpgp.sign({ message: await openpgp.createMessage({ binary: Buffer.from(text) }), signingKeys: eccSec, detached: true, format: 'binary' }) })).packets[0];
      const signed = await openpgp.sign({ message: await openpgp.createMessage({ binary: Buffer.from('AAAA') }), signingKeys: eccSec, format: 'binary' });
      const opsAndLiteral = (await openpgp.readMessage({ binaryMessage: signed })).packets.filter((p) => !(p instanceof openpgp.SignaturePacket));
      const messageWith = async (sig: openpgp.SignaturePacket, name: string) => {
        const list = new openpgp.PacketList();
        list.push(...opsAndLiteral, sig);
        const f = path.join(dir, name);
        fs.writeFileSync(f, await openpgp.encrypt({ message: new openpgp.Message(list), encryptionKeys: rsaPub, format: 'binary' }));
        return f;
      };
      const good = await messageWith(await detached('AAAA'), 'sig-good.gpg');
      assert.equal((await decryptFile(good, { loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub })).toString(), 'AAAA');
      const bad = await messageWith(await detached('BBBB'), 'sig-bad.gpg');
      await rejectsWith(decryptFile(bad, { loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub }), 'signature', /Bad signature/);
      // One-pass header but the signature packet is missing.
      const list = new openpgp.PacketList();
      list.push(...opsAndLiteral);
      const none = path.join(dir, 'sig-missing.gpg');
      fs.writeFileSync(none, await openpgp.encrypt({ message: new openpgp.Message(list), encryptionKeys: rsaPub, format: 'binary' }));
      await rejectsForSigner(decryptFile(none, { loadDecryptionKeys: async () => rsaSec, verificationKeys: eccPub }), /no signature/);
    });

    it('not OpenPGP, plain OpenPGP data, empty input → decrypt', async () => {
      const notPgp = path.join(dir, 'not.gpg');
      fs.writeFileSync(notPgp, 'hello, this is text');
      await rejectsWith(decryptFile(notPgp, { loadDecryptionKeys: async () => rsaSec }), 'decrypt');
      const stored = gpgEncrypt('store.gpg', ['--store']);
      await rejectsWith(decryptFile(stored, { loadDecryptionKeys: async () => rsaSec }), 'decrypt', /plain data/);
      await rejectsWith(through(createDecryptStream({ loadDecryptionKeys: async () => rsaSec }), Buffer.alloc(0)), 'decrypt');
      const armoredKey = path.join(dir, 'key.asc');
      fs.copyFileSync(RSA_PUB, armoredKey);
      await rejectsWith(decryptFile(armoredKey, { loadDecryptionKeys: async () => rsaSec }), 'decrypt');
    });

    it('old SED packet (no integrity protection) → integrity, refused', async () => {
      // SKESK v4 (AES-256, simple S2K SHA-256) followed by a tag 9 packet.
      const skesk = Buffer.from([0xc3, 0x04, 0x04, 0x09, 0x00, 0x08]);
      const sed = Buffer.concat([Buffer.from([0xc9, 0x20]), noise(32, 3)]);
      await rejectsWith(through(createDecryptStream({ password: async () => 'x' }), Buffer.concat([skesk, sed])), 'integrity', /SED/);
    });

    it('malformed packet header → format', async () => {
      // A PKESK whose length runs past the end is truncation; a reserved tag 0 is malformed.
      await rejectsWith(through(createDecryptStream({ loadDecryptionKeys: async () => rsaSec }), Buffer.from([0xc0, 0x01, 0x00])), 'format');
    });

    it('a secret key still locked by its passphrase → key', async () => {
      const locked = await openpgp.readPrivateKey({ armoredKey: fs.readFileSync(PROTECTED_SEC, 'utf8') });
      assert.equal(locked.isDecrypted(), false);
      await rejectsWith(decryptFile(good, { loadDecryptionKeys: async () => [locked] }), 'key', /locked/);
    });
  });

  it('keeps memory bounded: 96 MiB encrypted and decrypted into a slow consumer', async () => {
    const enc = createEncryptStream({ recipients: rsaPub });
    const dec = createDecryptStream({ loadDecryptionKeys: async () => rsaSec });
    const total = 96 * 1024 * 1024;
    const block = mixedData(1 << 20, 12);
    const src = repeatedSource(block, total);
    let lag = 0;
    let got = 0;
    let same = true;
    await pipeline(
      src.stream,
      enc,
      dec,
      new Writable({
        write(c: Buffer, _e, cb) {
          const at = got % block.length;
          same &&= at + c.length <= block.length ? c.equals(block.subarray(at, at + c.length)) : true;
          got += c.length;
          lag = Math.max(lag, src.produced() - got);
          setImmediate(cb);
        },
      }),
    );
    assert.equal(got, total);
    assert.ok(same, 'output equals input');
    // Bytes read but not yet delivered (a buffering decryptor would hold the whole message).
    assert.ok(lag < 24 * 1024 * 1024, `${(lag / 1048576).toFixed(1)} MiB in flight`);
  });
});
