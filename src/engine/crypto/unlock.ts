// Unlocking a passphrase-protected secret key (RFC 4880 §5.5.3) with node:crypto. openpgp.js makes
// the iterated-and-salted S2K's whole input in one buffer before hashing it: with gpg's usual count
// (65,011,712 bytes, the largest) that is a 62 MiB allocation per key packet, a primary key and its
// subkey at once, so a one-file restore with a gpg key peaked at ~182 MiB (~82 MiB unprotected). Here the
// S2K is hashed in 64 KiB steps, the secret numbers deciphered and checked, and the key given back to
// openpgp.js as an unprotected key it reads and validates as usual.
//
// Handled: v4 key packets of the algorithms gpg 2.2 makes or reads (RSA, DSA, ElGamal, ECDSA, EdDSA,
// ECDH), s2k usage 254 (SHA-1 check) or 255 (sum), simple/salted/iterated S2K, AES-128/192/256-CFB,
// and GNU stubs beside them (a primary key kept offline). Anything else (AEAD protection, v5/v6 keys,
// other ciphers) returns undefined: the caller then lets openpgp.js unlock it.
import { createDecipheriv, createHash, type Hash } from 'node:crypto';
import type { PrivateKey } from 'openpgp';
import { OffsiteError } from '../errors';
import { checksum16, HASH_NAMES, nodeCfb, symmetricById } from './algorithms';
import { ecSecretMatches } from './ecdh';
import { openpgpLib } from './openpgpLib';
import { packet, readMpi, splitPackets } from './packets';

const STEP = 64 * 1024;

/** The S2K specifier's fields (RFC 4880 §3.7.1). */
interface S2k {
  readonly type: number;
  readonly hash: string;
  readonly salt: Buffer;
  /** Bytes of salt ‖ passphrase hashed (at least their length). */
  readonly count: number;
}

/**
 * The key RFC 4880 §3.7.1 derives from `passphrase`: hash contexts preloaded with 0, 1, … zero bytes
 * until there are `keyBytes`, each hashing salt ‖ passphrase repeated to `count` bytes, fed in steps.
 */
export function s2kKey(s2k: S2k, passphrase: Buffer, keyBytes: number): Buffer {
  const data = Buffer.concat([s2k.salt, passphrase]);
  const total = s2k.type === 3 ? Math.max(s2k.count, data.length) : data.length;
  // A step of whole repetitions, so every step and the tail start at the beginning of `data`.
  const reps = data.length === 0 ? 0 : Math.max(1, Math.floor(STEP / data.length));
  const step = Buffer.concat(new Array<Buffer>(reps).fill(data));
  const out: Buffer[] = [];
  for (let i = 0, have = 0; have < keyBytes; i++) {
    const h: Hash = createHash(s2k.hash);
    h.update(Buffer.alloc(i));
    let left = total;
    while (left >= step.length && step.length > 0) {
      h.update(step);
      left -= step.length;
    }
    if (left > 0) h.update(step.subarray(0, left));
    const d = h.digest();
    out.push(d);
    have += d.length;
  }
  return Buffer.concat(out).subarray(0, keyBytes);
}

/** Where a v4 key packet's public part ends, for the algorithms gpg 2.2 uses; undefined otherwise. */
function publicPartEnd(body: Buffer): number | undefined {
  if (body[0] !== 4 || body.length < 6) return undefined;
  const algo = body[5];
  let o = 6;
  const mpis = (n: number): boolean => {
    for (let i = 0; i < n; i++) {
      const m = readMpi(body, o);
      if (!m) return false;
      o = m.next;
    }
    return true;
  };
  const oid = (): boolean => {
    if (o >= body.length) return false;
    o += 1 + body[o];
    return o <= body.length;
  };
  switch (algo) {
    case 1: // RSA
    case 2:
    case 3:
      return mpis(2) ? o : undefined;
    case 16: // ElGamal
      return mpis(3) ? o : undefined;
    case 17: // DSA
      return mpis(4) ? o : undefined;
    case 19: // ECDSA
    case 22: // EdDSA (legacy)
      return oid() && mpis(1) ? o : undefined;
    case 18: // ECDH: curve, point, KDF parameters
      if (!oid() || !mpis(1) || o >= body.length) return undefined;
      o += 1 + body[o];
      return o <= body.length ? o : undefined;
    default:
      return undefined;
  }
}

/** Parses the S2K specifier at `o`; undefined for types we do not derive (GNU stubs, Argon2, …). */
export function readS2k(body: Buffer, o: number): { s2k: S2k; next: number } | undefined {
  const type = body[o];
  const hash = HASH_NAMES[body[o + 1]];
  if (hash === undefined) return undefined;
  if (type === 0) return { s2k: { type, hash, salt: Buffer.alloc(0), count: 0 }, next: o + 2 };
  if (type === 1) return o + 10 > body.length ? undefined : { s2k: { type, hash, salt: body.subarray(o + 2, o + 10), count: 0 }, next: o + 10 };
  if (type === 3) {
    if (o + 11 > body.length) return undefined;
    const c = body[o + 10];
    return { s2k: { type, hash, salt: body.subarray(o + 2, o + 10), count: (16 + (c & 15)) << ((c >> 4) + 6) }, next: o + 11 };
  }
  return undefined;
}

/**
 * The secret key packet's body with its secret numbers deciphered (s2k usage 0, two-byte sum), the
 * body as it is if not protected or a stub, undefined when this is not a form handled here. Throws
 * OffsiteError('passphrase') when the check of the deciphered numbers fails.
 */
function unprotect(body: Buffer, passphrase: Buffer, describe: () => string): Buffer | undefined {
  const pubEnd = publicPartEnd(body);
  if (pubEnd === undefined || pubEnd >= body.length) return undefined;
  const usage = body[pubEnd];
  if (usage === 0) return body;
  if (usage !== 254 && usage !== 255) return undefined;
  // A GNU stub (S2K type 101, "GNU"): no secret here (gpg --export-secret-subkeys); kept as it is.
  if (body[pubEnd + 2] === 101 && body.subarray(pubEnd + 4, pubEnd + 7).toString('latin1') === 'GNU') return body;
  // AES only (what gpg 2.2 and openpgp.js protect keys with).
  const alg = symmetricById(body[pubEnd + 1]);
  const cipher = alg?.name.startsWith('aes') ? nodeCfb(alg.name) : undefined;
  const spec = cipher && readS2k(body, pubEnd + 2);
  if (!alg || !cipher || !spec || spec.next + cipher.block > body.length) return undefined;
  const iv = body.subarray(spec.next, spec.next + cipher.block);
  const key = s2kKey(spec.s2k, passphrase, alg.keyBytes);
  const d = createDecipheriv(cipher.name, key, iv);
  const plain = Buffer.concat([d.update(body.subarray(spec.next + cipher.block)), d.final()]);
  let secret: Buffer;
  if (usage === 254) {
    if (plain.length < 20) return undefined;
    secret = plain.subarray(0, plain.length - 20);
    if (!createHash('sha1').update(secret).digest().equals(plain.subarray(plain.length - 20))) throw wrongPassphrase(describe());
  } else {
    if (plain.length < 2) return undefined;
    secret = plain.subarray(0, plain.length - 2);
    if (checksum16(secret) !== plain.readUInt16BE(plain.length - 2)) throw wrongPassphrase(describe());
  }
  const sum = Buffer.alloc(2);
  sum.writeUInt16BE(checksum16(secret));
  return Buffer.concat([body.subarray(0, pubEnd), Buffer.from([0]), secret, sum]);
}

function wrongPassphrase(description: string): OffsiteError {
  return new OffsiteError('passphrase', `Wrong passphrase for the key ${description}`, { hint: 'Enter the passphrase again', needs: { input: 'passphrase', wrong: true } });
}

/** Whether every decrypted packet of `key` passes openpgp.js's check, or for EC keys ecdh.ts's ecSecretMatches. */
async function eachPacketValid(key: PrivateKey): Promise<boolean> {
  for (const sub of key.getKeys()) {
    const p = sub.keyPacket as unknown as { isDummy(): boolean; isDecrypted(): boolean | null; privateParams?: { d?: Uint8Array }; writePublicKey(): Uint8Array; validate(): Promise<void> };
    if (p.isDummy() || !p.isDecrypted()) continue;
    const d = p.privateParams?.d;
    const native = d === undefined ? undefined : ecSecretMatches(Buffer.from(p.writePublicKey()), d);
    if (native !== undefined) {
      if (!native) return false;
      continue;
    }
    try {
      await p.validate();
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * `key` unlocked by openpgp.js, as its decryptKey does (each packet deciphered, then the key
 * validated), for the forms unlockNatively leaves to it (other ciphers, AEAD protection); a key whose
 * validation openpgp.js cannot make on Node (brainpool, secp256k1 ECDSA) is checked by eachPacketValid,
 * as unlockNatively does. Errors are openpgp.js's (the caller tells a wrong passphrase from them).
 */
export async function decryptKeyChecked(key: PrivateKey, passphrase: string): Promise<PrivateKey> {
  const clone = (key as unknown as { clone(deep: boolean): PrivateKey }).clone(true);
  try {
    await Promise.all(clone.getKeys().map((sub) => (sub.keyPacket as unknown as { decrypt(p: string): Promise<void> }).decrypt(passphrase)));
    try {
      await (clone as unknown as { validate(): Promise<void> }).validate();
    } catch (e) {
      if (!(await eachPacketValid(clone))) throw e;
    }
    return clone;
  } catch (e) {
    (clone as unknown as { clearPrivateParams(): void }).clearPrivateParams();
    throw new Error(`Error decrypting private key: ${(e as Error).message}`, { cause: e }); // as decryptKey says it
  }
}

/**
 * `key` unlocked with `passphrase` without openpgp.js's S2K (see the file comment), checked by
 * openpgp.js's validate() as decryptKey does (or eachPacketValid); undefined when a packet is in a form not handled here.
 * A wrong passphrase: OffsiteError('passphrase').
 */
export async function unlockNatively(key: PrivateKey, passphrase: string, describe: () => string): Promise<PrivateKey | undefined> {
  const { packets, complete } = splitPackets(Buffer.from(key.write()));
  if (!complete) return undefined;
  const pass = Buffer.from(passphrase, 'utf8');
  const out: Buffer[] = [];
  for (const p of packets) {
    if (p.tag !== 5 && p.tag !== 7) {
      out.push(packet(p.tag, p.body));
      continue;
    }
    const body = unprotect(p.body, pass, describe);
    if (!body) return undefined;
    out.push(packet(p.tag, body));
  }
  const lib = openpgpLib();
  let unlocked: PrivateKey;
  try {
    unlocked = await lib.readPrivateKey({ binaryKey: Buffer.concat(out) });
  } catch {
    return undefined; // openpgp.js reads what it wrote; if not, it unlocks the key itself
  }
  if (!unlocked.isDecrypted() || unlocked.getFingerprint() !== key.getFingerprint()) return undefined;
  try {
    // What decryptKey does after deciphering (public in openpgp.js, missing from its type declarations).
    await (unlocked as unknown as { validate(): Promise<void> }).validate();
  } catch (e) {
    // The numbers passed their check but do not make the key: a wrong passphrase the sum missed. Unless
    // openpgp.js could not check them: a brainpool or secp256k1 ECDSA key on Node (it signs with its
    // optional eckey-utils), whose packets are checked again, those on such curves natively.
    if (await eachPacketValid(unlocked)) return unlocked;
    throw new OffsiteError('passphrase', `Wrong passphrase for the key ${describe()}`, { hint: 'Enter the passphrase again', cause: e, needs: { input: 'passphrase', wrong: true } });
  }
  return unlocked;
}
