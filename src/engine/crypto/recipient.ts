// The keys a backup is encrypted to, as the encrypter uses them: each writes the PKESK packet that
// gives a volume's session key to its key (RFC 4880 §5.1).
//
// openpgp.js decides which keys may receive backups (keys.ts: v4, not revoked or expired, an
// encryption key gpg 2.2 reads) and which of a key's subkeys encrypts. For an RSA or ECDH (ecdh.ts)
// encryption key that verdict is remembered in a small file named by a SHA-256 of the key's bytes (the key file, or
// gpg's export of a keyring entry) and of where they came from, so the next backup to the same
// bytes writes its PKESKs with node:crypto and never loads openpgp.js: ~30–40 ms of every backup, a tenth of a no-change one
// (bench/README.md). The remembered verdict holds only which subkey to use and until when; the RSA
// numbers (or curve and point) are read from the key's own bytes each time, so an altered cache file cannot point a backup
// at a key that is not in them. It is trusted for a day at most, and never past an expiry date or a
// packet dated after the check; after that, or when anything does not fit, openpgp.js checks again.
import { constants, createHash, createPublicKey, publicEncrypt } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { PublicKey, Subkey } from 'openpgp';
import { OffsiteError } from '../errors';
import { encodeSessionKey, RSA_ALGOS } from './algorithms';
import { dearmor, looksArmored } from './armor';
import { assertEncryptionKeyUsable, assertSomeEncryptionKey, describeKey, keySpecBytes, publicKeysOf, usableEncryptionKeys, type KeySpecBytes } from './keys';
import { openpgpLib } from './openpgpLib';
import { ECDH_ALGO, ecdhSessionKeyPacket, readEcdhPublic, type EcdhPublic } from './ecdh';
import { packet, readMpi, splitPackets, Tag, writeMpi } from './packets';

/** Someone a backup is encrypted to. */
export interface Recipient {
  /** The primary key's fingerprint, lower-case hex (as openpgp.js gives it). */
  readonly fingerprint: string;
  /** For messages: "RSA-3072 A53C…1B62 Name <email>". */
  readonly description: string;
  /** The PKESK v3 packet (header included) giving `sessionKey`, an AES-256 key, to this recipient. */
  sessionKeyPacket(sessionKey: Buffer): Promise<Buffer>;
}

/** What the encrypter accepts: recipients, or openpgp.js keys (checked at every message). */
export type EncryptionKey = Recipient | PublicKey;

export function asRecipient(k: EncryptionKey): Recipient {
  return 'sessionKeyPacket' in k ? k : openpgpRecipient(k);
}

/** A recipient through openpgp.js, its key checked again for every message (a backup may run past its expiry). */
export function openpgpRecipient(key: PublicKey): Recipient {
  return {
    fingerprint: key.getFingerprint(),
    description: describeKey(key),
    async sessionKeyPacket(sessionKey) {
      await assertEncryptionKeyUsable(key);
      const p = await openpgpLib().encryptSessionKey({ data: sessionKey, algorithm: 'aes256', encryptionKeys: [key], format: 'binary' });
      return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    },
  };
}

/** OpenPGP's id of AES-256 (RFC 4880 §9.2). */
const AES256 = 9;
/** How long a remembered verdict is trusted at most. */
const TRUST_MS = 24 * 3600 * 1000;
/** Verdict files kept in the folder (one per key file version). */
const KEEP = 32;

interface Verdict {
  readonly format: 1;
  /** When openpgp.js checked the keys (ms since the epoch), and until when the verdict holds. */
  readonly checked: number;
  readonly until: number;
  readonly keys: readonly { readonly fingerprint: string; readonly encryptionKey: string; readonly description: string }[];
}

/** A key packet node:crypto encrypts to: its v4 fingerprint (lower-case hex), and RSA's public numbers or ECDH's parameters. */
type NativeKeyPacket = { readonly fingerprint: string; readonly algorithm: number } & NativeParams;
type NativeParams = { readonly rsa: { readonly n: Buffer; readonly e: Buffer }; readonly ecdh?: undefined } | { readonly ecdh: EcdhPublic; readonly rsa?: undefined };

/** The binary packets of a key file: armored ("PGP PUBLIC/PRIVATE KEY BLOCK") or not. */
async function keyPacketBytes(data: Buffer): Promise<Buffer | undefined> {
  if (!looksArmored(data)) return data;
  const out: Buffer[] = [];
  try {
    for await (const b of dearmor(Readable.from([data]), ['PUBLIC KEY BLOCK', 'PRIVATE KEY BLOCK'])) out.push(b);
  } catch {
    return undefined; // not a key block: openpgp.js reads the file and says what is wrong
  }
  return Buffer.concat(out);
}

/** The public parameters of a v4 key packet body node:crypto encrypts to (RSA, ECDH), and where they end. */
function nativeParams(body: Buffer): (NativeParams & { end: number }) | undefined {
  if (RSA_ALGOS.has(body[5])) {
    const n = readMpi(body, 6);
    const e = n && readMpi(body, n.next);
    return n && e ? { rsa: { n: n.value, e: e.value }, end: e.next } : undefined;
  }
  const ecdh = body[5] === ECDH_ALGO ? readEcdhPublic(body, 6) : undefined;
  return ecdh && { ecdh, end: ecdh.next };
}

/**
 * The v4 RSA and ECDH key and subkey packets (public or secret: the public part) of a key file's bytes.
 * Only definite lengths, as keys are written; anything else ends the scan (the caller then asks openpgp.js).
 */
export async function nativeKeyPackets(data: Buffer): Promise<NativeKeyPacket[]> {
  const bin = await keyPacketBytes(data);
  const out: NativeKeyPacket[] = [];
  if (!bin) return out;
  for (const { tag, body } of splitPackets(bin).packets) {
    // Public key 6, public subkey 14, secret key 5, secret subkey 7: version 4, time, algorithm, parameters.
    if ((tag === 6 || tag === 14 || tag === 5 || tag === 7) && body[0] === 4 && body.length > 6) {
      const params = nativeParams(body);
      if (params) {
        const pub = body.subarray(0, params.end);
        const head = Buffer.from([0x99, pub.length >> 8, pub.length & 0xff]);
        const fingerprint = createHash('sha1').update(head).update(pub).digest('hex');
        const { end: _, ...p } = params;
        out.push({ fingerprint, algorithm: body[5], ...p });
      }
    }
  }
  return out;
}

/** The PKESK v3 packet of RSA encryption with EME-PKCS1-v1_5 (RFC 4880 §5.1) to `k`. */
function rsaWriter(algorithm: number, rsa: { readonly n: Buffer; readonly e: Buffer }, keyId: Buffer): (sessionKey: Buffer) => Buffer {
  const key = createPublicKey({ key: { kty: 'RSA', n: rsa.n.toString('base64url'), e: rsa.e.toString('base64url') }, format: 'jwk' });
  return (sessionKey) => {
    const c = publicEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, encodeSessionKey(AES256, sessionKey));
    return packet(Tag.PKESK, Buffer.concat([Buffer.from([3, ...keyId, algorithm]), writeMpi(c)]));
  };
}

/** A recipient whose PKESKs node:crypto writes: RSA (EME-PKCS1-v1_5) or ECDH (ecdh.ts). */
function nativeRecipient(k: NativeKeyPacket, fingerprint: string, description: string, until: number, recheck: () => Promise<Recipient>): Recipient {
  const keyId = Buffer.from(k.fingerprint.slice(-16), 'hex');
  const fpr = Buffer.from(k.fingerprint, 'hex');
  const { rsa, ecdh } = k;
  const write = rsa ? rsaWriter(k.algorithm, rsa, keyId) : (sessionKey: Buffer) => ecdhSessionKeyPacket(ecdh, keyId, fpr, AES256, sessionKey);
  return {
    fingerprint,
    description,
    async sessionKeyPacket(sessionKey) {
      // A backup running past the verdict's end: openpgp.js checks the key again (and refuses it if it expired).
      if (Date.now() >= until) return (await recheck()).sessionKeyPacket(sessionKey);
      return write(sessionKey);
    },
  };
}

/** The newest creation time among a key's packets, and the first expiry of a signature after `now`. */
function keyDates(key: PublicKey, now: number): { newest: number; expiry: number } {
  let newest = 0;
  let expiry = Infinity;
  for (const p of key.toPacketList()) {
    const created = (p as { created?: Date | null }).created;
    if (created instanceof Date) newest = Math.max(newest, created.getTime());
    // A signature that has expired already stays so; one that expires later may change the verdict then.
    const exp = (p as { getExpirationTime?: () => Date | number }).getExpirationTime?.();
    if (exp instanceof Date && exp.getTime() > now) expiry = Math.min(expiry, exp.getTime());
  }
  return { newest, expiry };
}

/** The verdict on `keys` (all usable, checked at `now`) worth remembering, or undefined. */
async function verdictOf(keys: readonly PublicKey[], now: Date): Promise<Verdict | undefined> {
  let until = now.getTime() + TRUST_MS;
  const out: Verdict['keys'][number][] = [];
  for (const key of keys) {
    const enc = await key.getEncryptionKey(undefined, now);
    // Only keys node:crypto encrypts to: RSA, ECDH on a curve and with KDF parameters ecdh.ts handles.
    if (enc.keyPacket.version !== 4 || !nativeParams(Buffer.from(enc.keyPacket.write()))) return undefined;
    const dates = keyDates(key, now.getTime());
    if (dates.newest > now.getTime()) return undefined; // a packet from the future may change the verdict
    until = Math.min(until, dates.expiry);
    const subkeyExpiry = enc === key ? null : await (enc as Subkey).getExpirationTime(now);
    for (const exp of [await key.getExpirationTime(), subkeyExpiry]) if (exp instanceof Date) until = Math.min(until, exp.getTime());
    out.push({ fingerprint: key.getFingerprint(), encryptionKey: enc.getFingerprint(), description: describeKey(key) });
  }
  return until > now.getTime() ? { format: 1, checked: now.getTime(), until, keys: out } : undefined;
}

async function readVerdict(file: string): Promise<Verdict | undefined> {
  try {
    const v = JSON.parse(await fsp.readFile(file, 'utf8')) as Verdict;
    const ok =
      v.format === 1 &&
      Number.isFinite(v.checked) &&
      Number.isFinite(v.until) &&
      Array.isArray(v.keys) &&
      v.keys.length > 0 &&
      v.keys.every((k) => typeof k.fingerprint === 'string' && typeof k.encryptionKey === 'string' && typeof k.description === 'string');
    return ok ? v : undefined;
  } catch {
    return undefined;
  }
}

async function writeVerdict(dir: string, file: string, v: Verdict): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsp.writeFile(temp, JSON.stringify(v), { mode: 0o600 });
    await fsp.rename(temp, file);
    const names = (await fsp.readdir(dir)).filter((n) => n.endsWith('.json'));
    if (names.length > KEEP) {
      const dated = await Promise.all(names.map(async (n) => ({ n, t: (await fsp.stat(path.join(dir, n))).mtimeMs })));
      dated.sort((a, b) => b.t - a.t);
      for (const d of dated.slice(KEEP)) await fsp.rm(path.join(dir, d.n), { force: true });
    }
  } catch {
    // A read-only or full disk: openpgp.js checks the keys next time too.
    await fsp.rm(temp, { force: true }).catch(() => undefined);
  }
}

/** The recipients of one spec's bytes from a remembered verdict, or undefined when it does not apply. */
async function fromVerdict(v: Verdict | undefined, bytes: KeySpecBytes, now: number): Promise<Recipient[] | undefined> {
  if (!v || now < v.checked || now >= v.until) return undefined;
  const packets = new Map((await nativeKeyPackets(bytes.data)).map((p) => [p.fingerprint, p]));
  const out: Recipient[] = [];
  let parsed: Promise<PublicKey[]> | undefined;
  for (const k of v.keys) {
    const p = packets.get(k.encryptionKey.toLowerCase());
    if (!p) return undefined;
    // The same key through openpgp.js, which checks it for every message (and refuses it once expired).
    const recheck = async () => {
      const key = (await (parsed ??= publicKeysOf(bytes))).find((c) => c.getFingerprint() === k.fingerprint);
      if (!key) throw new OffsiteError('key', `The key ${k.description} is no longer in ${bytes.where}`, { hint: 'Check the encryption key setting' });
      return openpgpRecipient(key);
    };
    out.push(nativeRecipient(p, k.fingerprint, k.description, v.until, recheck));
  }
  return out;
}

/**
 * The recipients for key specs (key files, or key ids, fingerprints or emails in the GnuPG keyring),
 * as loadPublicKeys checks them. With `verdictDir`, RSA keys checked before are used without
 * openpgp.js (see the file comment); without it, every key goes through openpgp.js.
 */
export async function loadRecipients(specs: readonly string[], opts: { gnupgHome?: string; verdictDir?: string } = {}): Promise<Recipient[]> {
  assertSomeEncryptionKey(specs);
  const out = new Map<string, Recipient>();
  for (const spec of specs) {
    const bytes = await keySpecBytes(spec, opts);
    // Named by the bytes and where they came from: a keyring query skips unusable keys, a file may not.
    const digest = createHash('sha256').update(bytes.data).update(bytes.fromFile ? '\0file' : '\0keyring').digest('hex');
    const file = opts.verdictDir === undefined ? undefined : path.join(opts.verdictDir, `${digest}.json`);
    const now = Date.now();
    const remembered = file === undefined ? undefined : await fromVerdict(await readVerdict(file), bytes, now);
    if (remembered) {
      for (const r of remembered) out.set(r.fingerprint, r);
      continue;
    }
    const keys = await usableEncryptionKeys(bytes);
    for (const k of keys) out.set(k.getFingerprint(), openpgpRecipient(k));
    if (file !== undefined) {
      const v = await verdictOf(keys, new Date(now));
      if (v) await writeVerdict(path.dirname(file), file, v);
    }
  }
  return [...out.values()];
}
