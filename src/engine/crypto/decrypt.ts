// Streaming OpenPGP decryption. Fast path for what gpg and we write (PKESK/SKESK + SEIPD v1 with a
// node-supported cipher, then ZIP/ZLIB/uncompressed packets around a literal, optionally one-pass
// signed): openpgp.js only decrypts the session key; CFB, the MDC, inflate and packet parsing are
// node:crypto/zlib and our own parser. Everything else (SEIPD v2 / AEAD, ciphers node lacks) goes to
// openpgp.js, streamed. Old SED packets (no integrity protection) are refused.
//
// Errors are raised where they are known: before any output for a wrong key or an unsigned message,
// at the end for MDC failures and truncation (callers treat output as untrusted until the end). When
// parsing fails inside the encrypted data, the rest is still decrypted so that a damaged or altered
// file is reported as 'integrity' rather than as a parse error.
import { createDecipheriv, createHash } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { enums, PrivateKey, PublicKey, SignaturePacket } from 'openpgp';
import { OffsiteError } from '../errors';
import { nodeCfb, symmetricById } from './algorithms';
import { dearmor, looksArmored } from './armor';
import { asyncTransform } from './asyncTransform';
import { ByteReader } from './byteReader';
import { createCfbDecipher } from './cfb';
import { describeKey } from './keys';
import { openpgpLib } from './openpgpLib';
import { packet, packetBody, readPacketHeader, readSmallBody, Tag, TruncatedError, type PacketHeader } from './packets';
import { nativeEcdhSessionKey } from './ecdh';
import { nativeRsaSessionKey } from './rsaSessionKey';
import { NOT_BY_SIGNER, parseOnePass, readSignaturePacket, SignatureHasher, verifyWithDigest } from './signature';
import { readS2k, s2kKey } from './unlock';


/**
 * What a message may need, each asked for only when one turns out to need it (the keys and the
 * password are loaders, never given up front).
 */
export interface DecryptOptions {
  /**
   * Loads the private keys when a message turns out to be encrypted to keys (has a PKESK packet), so
   * that a protected key's passphrase is asked only then: a backup made with a passphrase and no key
   * never unlocks one. Called for every such message: the caller keeps the answer (cryptoConfig.ts
   * loads them once a run).
   */
  loadDecryptionKeys?: () => Promise<PrivateKey[] | undefined>;
  /**
   * Asked for the password when a message turns out to need one (a symmetric (SKESK) message that no
   * decryption key opens, e.g. duplicity's without a key), so that it is asked only then. Called for
   * every such message: the caller keeps the answer (cryptoConfig.ts asks once a run).
   */
  password?: () => Promise<string | undefined>;
  /** The error for a message encrypted to keys only when no decryption key was given (default: one naming its key ids). */
  noKey?: () => OffsiteError;
  /** When given, the message MUST be signed by one of them. */
  verificationKeys?: PublicKey[];
  /**
   * With verificationKeys: the good signature must have been made at or after this time (epoch
   * seconds; the time of the backup set the file belongs to, which its name says). An older signed
   * file renamed into a newer set (a replay: last week's backup shown as today's) is refused.
   */
  signedNotBefore?: number;
}

interface SessionKey {
  readonly data: Uint8Array;
  /** Absent for v6 key packets: the SEIPD v2 / AEAD packet names its cipher. */
  readonly algorithm?: string;
  readonly fromPassword: boolean;
}

const PLAIN_TAGS = new Set<number>([Tag.Literal, Tag.Compressed, Tag.OnePassSignature, Tag.Signature]);

const DAMAGED_HINT = 'The file is damaged, truncated or was altered; restore it from another copy and do not trust its content';

function integrityError(message: string, cause?: unknown): OffsiteError {
  return new OffsiteError('integrity', message, { hint: DAMAGED_HINT, cause });
}

const WRONG_PASSWORD = 'Wrong passphrase for this encrypted file';
const PASSWORD_HINT = 'Enter the passphrase the backup was made with';

function wrongPassword(cause?: unknown): OffsiteError {
  return new OffsiteError('passphrase', WRONG_PASSWORD, { hint: PASSWORD_HINT, cause, needs: { input: 'passphrase', wrong: true, symmetric: true } });
}

/**
 * The one error for a backup made with a passphrase and no key read without that passphrase: code
 * 'passphrase' with needs { symmetric }, which the extension's gateway answers by asking for it.
 */
export function noPassword(): OffsiteError {
  return new OffsiteError('passphrase', 'This file is encrypted with a passphrase (symmetric), and none was given', {
    hint: PASSWORD_HINT,
    needs: { input: 'passphrase', wrong: false, symmetric: true },
  });
}

function notEncrypted(what: string): OffsiteError {
  return new OffsiteError('decrypt', `Not an encrypted OpenPGP message (${what})`, {
    hint: 'Give an encrypted file (a .gpg volume or manifest); plain data is refused so it cannot pass for a backup',
  });
}

/**
 * binary or armored OpenPGP message → plaintext, streaming with bounded memory.
 * Errors (OffsiteError): 'decrypt' no matching secret key or not an encrypted OpenPGP message;
 * 'passphrase' wrong or missing password (noPassword); 'integrity' MDC failure or truncated message (raised at the end);
 * 'signature' unsigned or not signed by one of verificationKeys; 'format' malformed packets.
 */
export function createDecryptStream(opts: DecryptOptions): Transform {
  return asyncTransform(async ({ input, push }) => {
    const raw = new ByteReader(input);
    const head: Buffer[] = [];
    let got = 0;
    while (got < 64) {
      const c = await raw.readUpTo(64 - got);
      if (!c) break;
      head.push(c);
      got += c.length;
    }
    const first = Buffer.concat(head);
    if (first.length === 0) throw notEncrypted('the file is empty');
    raw.unshift(first);
    let reader = raw;
    if (looksArmored(first)) reader = new ByteReader(dearmor(raw.rest()));
    else if ((first[0] & 0x80) === 0) throw notEncrypted('no OpenPGP packet at the start');
    await decryptMessage(reader, opts, push);
  });
}

async function decryptMessage(r: ByteReader, opts: DecryptOptions, push: (b: Buffer) => Promise<void>): Promise<void> {
  r.startRecording();
  const keyPackets: Buffer[] = [];
  const pkeskBodies: Buffer[] = [];
  const skeskBodies: Buffer[] = [];
  let pkeskIds: string[] = [];
  let h: PacketHeader | undefined;
  for (;;) {
    try {
      h = await readPacketHeader(r);
    } catch (e) {
      if (e instanceof TruncatedError) throw integrityError('The message is truncated', e);
      throw e;
    }
    if (!h) throw notEncrypted('no encrypted data packet');
    if (h.tag === Tag.PKESK || h.tag === Tag.SKESK) {
      const body = await readSmallBody(r, h).catch(mapTruncated);
      keyPackets.push(packet(h.tag, body));
      if (h.tag === Tag.PKESK) {
        pkeskIds.push(body.length >= 9 ? body.subarray(1, 9).toString('hex').toUpperCase() : '?');
        pkeskBodies.push(body);
      } else {
        skeskBodies.push(body);
      }
    } else if (h.tag === Tag.Marker || h.tag === Tag.Padding) {
      await readSmallBody(r, h).catch(mapTruncated);
    } else if (h.tag === Tag.SEIPD || h.tag === Tag.AEADEncrypted) {
      break;
    } else if (h.tag === Tag.SymEncrypted) {
      throw integrityError('The message uses the obsolete encryption without integrity protection (SED packet), which Offsite refuses');
    } else if (PLAIN_TAGS.has(h.tag)) {
      throw notEncrypted('it holds plain data');
    } else {
      throw new OffsiteError('format', `Unexpected OpenPGP packet (tag ${h.tag}) before the encrypted data`, { hint: DAMAGED_HINT });
    }
  }
  pkeskIds = pkeskIds.map((id) => (id === '0000000000000000' ? 'hidden recipient' : id));
  if (keyPackets.length === 0) throw notEncrypted('no session key packet');
  // The private keys only now, and only for a message encrypted to keys.
  const keys = pkeskIds.length > 0 ? ((await opts.loadDecryptionKeys?.()) ?? []) : [];

  const body = packetBody(r, h)[Symbol.asyncIterator]();
  const firstBody = await body.next().catch(mapTruncated);
  if (firstBody.done || firstBody.value.length === 0) throw integrityError('The message is truncated');
  // One decision for both paths of which key or password opens the message (and when to ask for the password).
  const sessionKeys = await decryptSessionKeys(keyPackets, pkeskBodies, skeskBodies, pkeskIds, keys, opts);
  const fastShape = h.tag === Tag.SEIPD && firstBody.value[0] === 1;
  const algorithm = sessionKeys[0].algorithm;
  const cipher = fastShape && algorithm !== undefined ? nodeCfb(algorithm) : undefined;
  if (!cipher || sessionKeys.some((k) => k.algorithm !== algorithm)) {
    // Not our fast path (SEIPD v2, AEAD, a cipher node lacks): replay what we read and hand the
    // whole message to openpgp.js with its session keys.
    const consumed = r.stopRecording();
    let out = 0;
    try {
      await decryptWithOpenpgp(replay(consumed, r), opts, sessionKeys, (b) => ((out += b.length), push(b)));
    } catch (e) {
      // A wrong passphrase opens a v4 SKESK to random bytes, which now and then (~1 in 300) name a
      // cipher of the right key size the fast path does not take (Twofish): openpgp.js then fails on
      // the SEIPD v1 data before any comes out, as "damaged" — it is the passphrase. (AEAD data, v2:
      // a wrong passphrase fails at its SKESK already, so a failure there is the data's.)
      if (fastShape && out === 0 && sessionKeys.every((k) => k.fromPassword) && !OffsiteError.is(e, 'signature')) throw wrongPassword(e);
      throw e;
    }
    return;
  }
  r.stopRecording();

  // Ciphertext after the version byte; find the session key whose quick check (repeated prefix bytes)
  // matches, then stream.
  const ct = new ByteReader(chain(firstBody.value.subarray(1), body));
  const prefix = await ct.readExact(cipher.block + 2).catch(mapTruncated);
  const key = sessionKeys.find((k) => quickCheck(cipher, k.data, prefix));
  if (!key) {
    if (sessionKeys.every((k) => k.fromPassword)) throw wrongPassword();
    throw new OffsiteError('decrypt', 'The decrypted session key does not fit the data', { hint: DAMAGED_HINT });
  }
  ct.unshift(prefix);
  const mdcState = { checked: false };
  const gen = decryptSeipd(ct, cipher, key.data, mdcState);
  const plain = new ByteReader(gen);
  const inner = new InnerParser(opts.verificationKeys, push, opts.signedNotBefore);
  try {
    await inner.parse(plain, 0);
    // Whatever follows the packets is still MDC-protected: decrypt it so the check runs.
    while (!(await gen.next()).done) {
      /* discard */
    }
  } catch (e) {
    if (!(e instanceof OffsiteError) || (e.code !== 'integrity' && e.code !== 'signature')) {
      // A parse error inside encrypted data: if the MDC fails too, the file was damaged. The
      // generator computes the MDC over every chunk it yields, whoever consumed them.
      try {
        while (!(await gen.next()).done) {
          /* discard */
        }
      } catch (e2) {
        if (OffsiteError.is(e2, 'integrity')) throw e2;
      }
    }
    throw e;
  }
  if (!mdcState.checked) throw integrityError('The message ended before its integrity check');
  await inner.finish();
  // Trailing bytes after the encrypted packet are ignored (gpg does the same).
}

function mapTruncated(e: unknown): never {
  if (e instanceof TruncatedError) throw integrityError('The message is truncated', e);
  throw e;
}

async function* chain(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.length > 0) yield first;
  for (;;) {
    const n = await rest.next();
    if (n.done) return;
    yield n.value;
  }
}

async function* replay(prefix: Buffer, r: ByteReader): AsyncGenerator<Buffer> {
  yield prefix;
  yield* r.rest();
}

function quickCheck(cipher: { name: string; block: number }, key: Uint8Array, prefix: Buffer): boolean {
  const d = createDecipheriv(cipher.name, key, Buffer.alloc(cipher.block));
  const p = d.update(prefix);
  const b = cipher.block;
  return p[b - 2] === p[b] && p[b - 1] === p[b + 1];
}

/**
 * Bytes deciphered (and read from a volume: remoteFiles.ts) at a time: large enough that
 * per-call costs vanish, and (with its cipher block of slack) under bin/offsite's malloc mmap
 * threshold of 128 KiB, so each buffer comes from the heap; 256 KiB pieces were an mmap, page faults
 * and a munmap each.
 */
export const PIECE = 112 * 1024;

/** SEIPD v1 body (after the version byte) → plaintext without prefix and MDC; checks the MDC at the end. */
async function* decryptSeipd(
  ct: ByteReader,
  cipher: { name: string; block: number },
  key: Uint8Array,
  state: { checked: boolean },
): AsyncGenerator<Buffer> {
  const d = createCfbDecipher(cipher.name, key, cipher.block);
  const mdc = createHash('sha1');
  let skip = cipher.block + 2;
  // The last 22 bytes are the MDC packet: hold back the latest chunk until the next one shows it is
  // not the last (no copying of large chunks).
  let held: Buffer | undefined;
  for (let ended = false; !ended; ) {
    // Work in pieces of up to PIECE bytes whatever the input's chunking: fewer, larger calls all the
    // way down (decipher, MDC hash, inflate in the threadpool) cost much less main-thread time.
    const chunks: Buffer[] = [];
    let n = 0;
    while (n < PIECE) {
      let c: Buffer | null;
      try {
        c = await ct.readUpTo(PIECE - n);
      } catch (e) {
        mapTruncated(e);
      }
      if (!c) {
        ended = true;
        break;
      }
      chunks.push(c);
      n += c.length;
    }
    let p = d.update(chunks);
    if (ended) {
      const f = d.final();
      if (f.length > 0) p = p.length > 0 ? Buffer.concat([p, f]) : f;
    }
    if (skip > 0) {
      const n = Math.min(skip, p.length);
      mdc.update(p.subarray(0, n));
      p = p.subarray(n);
      skip -= n;
    }
    if (p.length === 0) continue;
    if (!held) held = p;
    else if (p.length >= 22) {
      mdc.update(held);
      yield held;
      held = p;
    } else held = Buffer.concat([held, p]);
  }
  if (skip > 0 || !held || held.length < 22) throw integrityError('The message is truncated or has no integrity check (MDC)');
  const out = held.subarray(0, held.length - 22);
  const tail = held.subarray(held.length - 22);
  if (out.length > 0) {
    mdc.update(out);
    yield out;
  }
  if (tail[0] !== 0xd3 || tail[1] !== 0x14) throw integrityError('The message is truncated or has no integrity check (MDC)');
  mdc.update(tail.subarray(0, 2));
  if (!mdc.digest().equals(tail.subarray(2))) throw integrityError('Integrity check failed (MDC mismatch): the file was damaged or altered');
  state.checked = true;
}

/** The session keys `keys` (loaded for a message encrypted to keys, else none) or the password open. */
async function decryptSessionKeys(keyPackets: Buffer[], pkeskBodies: Buffer[], skeskBodies: Buffer[], pkeskIds: string[], keys: PrivateKey[], opts: DecryptOptions): Promise<SessionKey[]> {
  const hasSkesk = skeskBodies.length > 0;
  // RSA and ECDH through OpenSSL first (see rsaSessionKey.ts, ecdh.ts); openpgp.js for everything else and for errors.
  if (keys.length > 0 && keys.every((k) => k.isDecrypted())) {
    const fast = nativeRsaSessionKey(pkeskBodies, keys) ?? nativeEcdhSessionKey(pkeskBodies, keys);
    if (fast) return [{ ...fast, fromPassword: false }];
  }
  const message = await openpgpLib().readMessage({ binaryMessage: Buffer.concat(keyPackets) }).catch((e: unknown) => {
    throw new OffsiteError('format', `Malformed session key packet: ${(e as Error).message}`, { hint: DAMAGED_HINT, cause: e });
  });
  const out: SessionKey[] = [];
  let keyError: unknown;
  const locked = keys.find((k) => !k.isDecrypted());
  if (locked) {
    throw new OffsiteError('key', `The secret key ${describeKey(locked)} is still locked by its passphrase`, {
      hint: 'Load it with loadPrivateKeys, which asks for the passphrase',
    });
  }
  if (pkeskIds.length > 0 && keys.length > 0) {
    try {
      for (const k of await openpgpLib().decryptSessionKeys({ message, decryptionKeys: keys })) {
        out.push({ data: k.data, algorithm: k.algorithm ?? undefined, fromPassword: false });
      }
    } catch (e) {
      keyError = e;
    }
  }
  // The password only now, when no key opened the message: a backup encrypted to keys never asks for one.
  const password = out.length === 0 && hasSkesk ? await opts.password?.() : undefined;
  if (password !== undefined) {
    // A cipher openpgp.js lacks (Camellia): the key comes from the passphrase here, and a wrong
    // passphrase fails the quick check.
    const native = skeskBodies.flatMap((b) => nodeOnlySkeskKey(b, password) ?? []);
    if (native.length > 0) return native;
    try {
      for (const k of await openpgpLib().decryptSessionKeys({ message, passwords: [password] })) {
        out.push({ data: k.data, algorithm: k.algorithm ?? undefined, fromPassword: true });
      }
    } catch (e) {
      throw wrongPassword(e);
    }
  }
  if (out.length > 0) return out;
  // openpgp.js opened the session key (its checksum holds) but does not know its cipher: Camellia,
  // which Offsite reads only where it opens the session key itself (RSA and ECDH keys, passphrases).
  if (keyError instanceof Error && /Invalid enum value/.test(keyError.message)) {
    throw new OffsiteError('decrypt', 'Your secret key opens this file, but it is encrypted with a cipher Offsite reads only for RSA and ECDH keys and passphrases (Camellia, which gpg uses when its cipher-algo or the key\'s preferences say so)', {
      hint: 'Restore it with duplicity (gpg); for new backups, make gpg use AES (its default)',
      cause: keyError,
    });
  }
  if (pkeskIds.length > 0 && (keys.length > 0 || !hasSkesk)) {
    if (keys.length === 0 && opts.noKey) throw opts.noKey();
    // The right key, which Offsite did not open the session key with (ecdh.ts: a damaged packet) and
    // openpgp.js will not use (one it refuses or cannot verify, such as brainpool and secp256k1 keys
    // on Node without its optional eckey-utils): say that, not "no key".
    const right = keys.find((k) => k.getKeys().some((sub) => pkeskIds.includes(sub.getKeyID().toHex().toUpperCase())));
    const unusable = right && (await right.getDecryptionKeys().then(() => undefined, (e: unknown) => e));
    if (right && unusable instanceof Error) {
      throw new OffsiteError('decrypt', `The secret key ${describeKey(right)} is the one this file is encrypted to, but its session key does not open with it, and openpgp.js will not use the key: ${unusable.message.split('\n')[0]}`, {
        hint: 'The file may be damaged (restore it from another copy), or gpg may still read it (restore with duplicity)',
        cause: unusable,
      });
    }
    throw noSecretKey(pkeskIds, keys.length > 0, keyError);
  }
  throw noPassword();
}

/**
 * The session key of a v4 SKESK packet (RFC 4880 §5.3) whose cipher only node:crypto has, derived
 * from `passphrase`; undefined for other ciphers and forms (openpgp.js reads those).
 */
function nodeOnlySkeskKey(body: Buffer, passphrase: string): SessionKey | undefined {
  const alg = body[0] === 4 ? symmetricById(body[1]) : undefined;
  const cipher = alg?.nodeOnly ? nodeCfb(alg.name) : undefined;
  const spec = cipher && readS2k(body, 2);
  if (!alg || !cipher || !spec) return undefined;
  const key = s2kKey(spec.s2k, Buffer.from(passphrase, 'utf8'), alg.keyBytes);
  if (spec.next === body.length) return { data: Uint8Array.from(key), algorithm: alg.name, fromPassword: true };
  // An encrypted session key: its algorithm byte and key, in CFB with a zero IV.
  const d = createDecipheriv(cipher.name, key, Buffer.alloc(cipher.block));
  const m = Buffer.concat([d.update(body.subarray(spec.next)), d.final()]);
  const inner = symmetricById(m[0]);
  if (!inner || m.length - 1 !== inner.keyBytes) return undefined;
  return { data: Uint8Array.from(m.subarray(1)), algorithm: inner.name, fromPassword: true };
}

function noSecretKey(pkeskIds: string[], keysGiven: boolean, cause?: unknown): OffsiteError {
  const ids = pkeskIds.join(', ');
  return new OffsiteError('decrypt', `No secret key for this file: it is encrypted to ${ids}${keysGiven ? '' : ', and no secret key was given'}`, {
    hint: `Give the secret key of ${ids} (a key file or its id in your GnuPG keyring)`,
    cause,
    needs: { input: 'secretKey', wrong: keysGiven },
  });
}

/** Parses the packets inside the encrypted data: compressed, one-pass signatures, literal, signatures. */
class InnerParser {
  private readonly onePass: { keyIdHex: string; hasher: SignatureHasher; signatureType: number; publicKeyAlgorithm: number }[] = [];
  private readonly prepended: { sig: SignaturePacket; hasher: SignatureHasher }[] = [];
  private readonly trailing: Buffer[] = [];
  private literals = 0;
  private bzip2Verified = false;

  constructor(
    private readonly verificationKeys: PublicKey[] | undefined,
    private readonly push: (b: Buffer) => Promise<void>,
    private readonly signedNotBefore: number | undefined,
  ) {}

  private get verifying(): boolean {
    return (this.verificationKeys?.length ?? 0) > 0;
  }

  async parse(r: ByteReader, depth: number): Promise<void> {
    for (;;) {
      const h = await readPacketHeader(r).catch(mapTruncated);
      if (!h) return;
      switch (h.tag) {
        case Tag.Compressed: {
          if (depth > 8) throw new OffsiteError('format', 'Compressed packets nested too deeply', { hint: DAMAGED_HINT });
          const br = new ByteReader(packetBody(r, h));
          const algo = (await br.readExact(1).catch(mapTruncated))[0];
          await this.decompressed(algo, br, depth);
          break;
        }
        case Tag.OnePassSignature: {
          const ops = parseOnePass(await readSmallBody(r, h).catch(mapTruncated));
          // v3 one-pass packets only (v6 ones belong to v6 keys, which gpg 2.2 cannot make either).
          if (this.verifying) this.onePass.push({ ...ops, hasher: new SignatureHasher(ops.version === 3 ? ops.hashAlgorithm : -1, ops.signatureType) });
          break;
        }
        case Tag.Signature: {
          const body = await readSmallBody(r, h).catch(mapTruncated);
          if (!this.verifying) break;
          const raw = packet(Tag.Signature, body);
          if (this.literals === 0) {
            const sig = await readSignaturePacket(raw);
            this.prepended.push({ sig, hasher: new SignatureHasher(sig.hashAlgorithm ?? -1, sig.signatureType ?? 0) });
          } else this.trailing.push(raw);
          break;
        }
        case Tag.Literal:
          await this.literal(r, h);
          break;
        case Tag.Marker:
        case Tag.Padding:
          await readSmallBody(r, h).catch(mapTruncated);
          break;
        default:
          throw new OffsiteError('format', `Unexpected OpenPGP packet (tag ${h.tag}) inside the encrypted data`, { hint: DAMAGED_HINT });
      }
    }
  }

  private async decompressed(algo: number, br: ByteReader, depth: number): Promise<void> {
    if (algo === 0) return this.parse(br, depth + 1);
    if (algo === 1 || algo === 2) {
      return this.parse(new ByteReader(inflate(br.rest(), algo === 1)), depth + 1);
    }
    if (algo === 3) return this.bzip2(br);
    throw new OffsiteError('format', `Unknown compression algorithm ${algo}`, { hint: DAMAGED_HINT });
  }

  private async literal(r: ByteReader, h: PacketHeader): Promise<void> {
    if (++this.literals > 1) throw new OffsiteError('format', 'More than one literal data packet in the message', { hint: DAMAGED_HINT });
    this.checkSignedBeforeData();
    const br = new ByteReader(packetBody(r, h));
    const fixed = await br.readExact(2).catch(mapTruncated);
    await br.readExact(fixed[1] + 4).catch(mapTruncated); // file name and date
    // Text literals ('t', 'u') hold CR LF line ends; gpg -d on Unix drops every CR, and so do we.
    const text = fixed[0] === 0x74 || fixed[0] === 0x75;
    const hashers = [...this.onePass.map((o) => o.hasher), ...this.prepended.map((p) => p.hasher)];
    for (;;) {
      const c = await br.readUpTo(1 << 20).catch(mapTruncated);
      if (!c) break;
      for (const hs of hashers) hs.update(c);
      await this.push(text ? withoutCr(c) : c);
    }
  }

  /** With verification keys, data must be signed by one of them: refuse before emitting anything. */
  private checkSignedBeforeData(): void {
    if (!this.verifying) return;
    const ids = [...this.onePass.map((o) => o.keyIdHex), ...this.prepended.map((p) => p.sig.issuerKeyID.toHex())];
    if (ids.length === 0) {
      throw new OffsiteError('signature', 'The file is not signed, but a signature is required', NOT_BY_SIGNER);
    }
    const known = ids.some((id) => this.isVerificationKey(id));
    if (!known) {
      throw new OffsiteError('signature', `The file is signed by ${ids.map((i) => i.toUpperCase()).join(', ')}, not by the expected signing key`, NOT_BY_SIGNER);
    }
  }

  private isVerificationKey(idHex: string): boolean {
    return (this.verificationKeys ?? []).some((k) => k.getKeys().some((sub) => sub.getKeyID().toHex() === idHex));
  }

  /** After the MDC check: the signatures must include a good one by a verification key. */
  async finish(): Promise<void> {
    if (!this.verifying || this.bzip2Verified) return;
    if (this.literals === 0) throw new OffsiteError('format', 'The message holds no literal data', { hint: DAMAGED_HINT });
    const candidates: { sig: SignaturePacket; hasher: SignatureHasher }[] = [...this.prepended];
    // One-pass signatures nest: the last one-pass packet belongs to the first trailing signature.
    for (let i = 0; i < this.trailing.length; i++) {
      const ops = this.onePass[this.onePass.length - 1 - i];
      const sig = await readSignaturePacket(this.trailing[i]);
      if (!ops) continue;
      if (sig.issuerKeyID.toHex() !== ops.keyIdHex || sig.signatureType !== ops.signatureType || sig.publicKeyAlgorithm !== ops.publicKeyAlgorithm) {
        throw new OffsiteError('signature', 'A signature does not match its one-pass header', { hint: DAMAGED_HINT });
      }
      candidates.push({ sig, hasher: ops.hasher });
    }
    let lastError: unknown;
    for (const c of candidates) {
      if (!this.isVerificationKey(c.sig.issuerKeyID.toHex())) continue;
      try {
        await verifyWithDigest(c.sig, c.hasher, this.verificationKeys ?? []);
        signedInTime(c.sig.created, this.signedNotBefore);
        return;
      } catch (e) {
        lastError = e;
      }
    }
    if (lastError) throw lastError;
    throw new OffsiteError('signature', 'The file has no signature by the expected signing key', NOT_BY_SIGNER);
  }

  /** BZip2 (gpg `compress-algo bzip2`): node has no bzip2, so openpgp.js reads this packet. */
  private async bzip2(br: ByteReader): Promise<void> {
    const packetStream = (async function* () {
      yield Buffer.from([0xa3, 0x03]); // compressed packet, indeterminate length, BZip2
      yield* br.rest();
    })();
    const web = Readable.toWeb(Readable.from(packetStream)) as ReadableStream<Uint8Array>;
    let data: ReadableStream<Uint8Array> | Uint8Array | null;
    let verified: Promise<Date | null> | undefined;
    try {
      const message = await openpgpLib().readMessage({ binaryMessage: web });
      if (this.verifying) {
        const res = await openpgpLib().verify({ message, verificationKeys: this.verificationKeys ?? [], expectSigned: true, format: 'binary' });
        data = res.data;
        verified = goodSignatureTime(res.signatures);
      } else {
        data = message.unwrapCompressed().getLiteralData() as ReadableStream<Uint8Array> | Uint8Array | null;
      }
      if (!data) throw new OffsiteError('format', 'The message holds no literal data', { hint: DAMAGED_HINT });
      this.literals++;
      if (data instanceof Uint8Array) await this.push(Buffer.from(data));
      else for await (const c of data as unknown as AsyncIterable<Uint8Array>) await this.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    } catch (e) {
      throw mapOpenpgpError(e);
    }
    if (verified) {
      const created = await verified.catch((e: unknown) => {
        throw new OffsiteError('signature', 'No good signature by the expected signing key', { ...NOT_BY_SIGNER, cause: e });
      });
      signedInTime(created, this.signedNotBefore);
      this.bzip2Verified = true;
    }
  }
}

function withoutCr(c: Buffer): Buffer {
  if (c.indexOf(0x0d) === -1) return c;
  const out = Buffer.allocUnsafe(c.length);
  let n = 0;
  for (let i = 0; i < c.length; i++) if (c[i] !== 0x0d) out[n++] = c[i];
  return out.subarray(0, n);
}

const INFLATE_CHUNK = 256 * 1024;

/** Raw deflate (ZIP, algo 1) or zlib (ZLIB, algo 2) decompression in the threadpool. */
async function* inflate(source: AsyncIterable<Buffer>, raw: boolean): AsyncGenerator<Buffer> {
  // Output chunks of 256 KiB. Each is one threadpool round trip, and inflate is the critical path of
  // reading a volume. History: 64 KiB chunks (under bin/offsite's 128 KiB malloc mmap threshold, when
  // 256 KiB chunks cost verify 5.8 vs 5.2 s in page faults), then 112 KiB (the 100 MiB file's restore
  // 0.96 → 0.87 s), then, once blocks and buffers were reused elsewhere, 256 KiB: the 100 MiB file
  // 0.86 → 0.82 s, a full restore 3.62 → 3.39 s, verify 4.02 → 3.69 s, peak RSS +0–3 MiB. 1 MiB was
  // faster still but put an sftp:// full restore at 152 MiB of the 160 it must stay under.
  const z = raw ? zlib.createInflateRaw({ chunkSize: INFLATE_CHUNK }) : zlib.createInflate({ chunkSize: INFLATE_CHUNK });
  const feeding = pipeline(Readable.from(source, { objectMode: true, highWaterMark: 4 }), z);
  feeding.catch(() => undefined); // awaited below on success; on failure the iteration reports it
  let ok = false;
  try {
    for await (const c of z) yield c as Buffer;
    ok = true;
  } catch (e) {
    if (e instanceof OffsiteError) throw e;
    throw integrityError(`Corrupt compressed data inside the encrypted file (${(e as Error).message})`, e);
  } finally {
    if (!ok) z.destroy();
  }
  // Bytes after the end of the deflate stream (ignored by zlib) must still be read, so the source's
  // own checks (the MDC) run.
  await feeding;
}

/** Maps an openpgp.js error to our codes (fallback path). */
function mapOpenpgpError(e: unknown): unknown {
  if (e instanceof OffsiteError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/modification detected|mdc|integrity|authentication tag|tag verification|unexpected end|premature|truncated/i.test(msg)) return integrityError(msg, e);
  if (/not signed|signature|signed digest|signing key/i.test(msg)) {
    return new OffsiteError('signature', msg, { ...NOT_BY_SIGNER, cause: e });
  }
  if (/session key|decryption key|no key|private key/i.test(msg)) return new OffsiteError('decrypt', msg, { hint: 'Give the matching secret key', cause: e });
  if (/password|passphrase/i.test(msg)) return new OffsiteError('passphrase', msg, { hint: PASSWORD_HINT, cause: e });
  return new OffsiteError('format', `Cannot read the OpenPGP message: ${msg}`, { hint: DAMAGED_HINT, cause: e });
}

/** The whole message through openpgp.js (SEIPD v2 / AEAD, ciphers node lacks), streamed. */
async function decryptWithOpenpgp(source: AsyncIterable<Buffer>, opts: DecryptOptions, sessionKeys: SessionKey[], push: (b: Buffer) => Promise<void>): Promise<void> {
  const web = Readable.toWeb(Readable.from(source)) as ReadableStream<Uint8Array>;
  const verifying = (opts.verificationKeys?.length ?? 0) > 0;
  try {
    const message = await openpgpLib().readMessage({ binaryMessage: web });
    const res = await openpgpLib().decrypt({
      message,
      sessionKeys: sessionKeys.map((k) => ({ data: k.data, algorithm: k.algorithm as enums.symmetricNames })),
      ...(verifying ? { verificationKeys: opts.verificationKeys, expectSigned: true } : {}),
      format: 'binary',
      config: { allowUnauthenticatedStream: true },
    });
    const data = res.data as unknown;
    if (data instanceof Uint8Array) await push(Buffer.from(data));
    else for await (const c of data as AsyncIterable<Uint8Array>) await push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    if (verifying) signedInTime(await goodSignatureTime(res.signatures), opts.signedNotBefore);
  } catch (e) {
    if (e instanceof AggregateError) {
      throw new OffsiteError('signature', 'No good signature by the expected signing key', { ...NOT_BY_SIGNER, cause: e });
    }
    if (OffsiteError.is(e, 'signature')) throw e;
    throw mapOpenpgpError(e);
  }
}

/** The creation time of the first good signature of openpgp.js's verification results (AggregateError when none is good). */
function goodSignatureTime(signatures: readonly { verified: Promise<true>; signature: Promise<{ packets: ArrayLike<{ created: Date | null }> }> }[]): Promise<Date | null> {
  return Promise.any(
    signatures.map(async (s) => {
      await s.verified;
      return (await s.signature).packets[0]?.created ?? null;
    }),
  );
}

/** A good signature made before `notBefore` (DecryptOptions.signedNotBefore), or without a time, is refused. */
function signedInTime(created: Date | null | undefined, notBefore: number | undefined): void {
  if (notBefore === undefined) return;
  const at = created ? Math.floor(created.getTime() / 1000) : undefined;
  if (at !== undefined && at >= notBefore) return;
  const iso = (t: number) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
  throw new OffsiteError('signature', `${at === undefined ? 'The signature has no time' : `The file was signed at ${iso(at)}`}, before the time of its backup set (${iso(notBefore)}): an older signed file was put in its place`, {
    hint: 'Files on the remote were replaced with older ones; do not trust this set (an earlier set may be intact)',
  });
}
