// OpenPGP ECDH (RFC 6637, RFC 9580 §5.1.5 and §11.5) with node:crypto, for the session key of a PKESK v3
// packet (algorithm 18): the shared point (createECDH, or X25519 KeyObjects for cv25519), the KDF,
// AES key wrap (RFC 3394) and the PKCS#5-padded session key with its checksum. Every curve gpg 2.2
// makes works here, also those openpgp.js will not use on Node: brainpool (its ECDSA needs the optional
// `eckey-utils` to check the key's own signatures before it decrypts) and secp256k1 (off by its config);
// and the session key's cipher may be any (Camellia, which openpgp.js lacks, goes on to node:crypto).
// Decrypting with one's own secret key needs no check of the key's signatures, as with RSA
// (rsaSessionKey.ts). Anything unexpected returns undefined, and the caller goes the openpgp.js way.
import { createCipheriv, createDecipheriv, createECDH, createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type ECDH, type KeyObject } from 'node:crypto';
import type { PrivateKey } from 'openpgp';
import { decodeSessionKey, encodeSessionKey } from './algorithms';
import { packet, readMpi, Tag, writeMpi } from './packets';
import { perSubkey } from './subkeys';

/** OpenPGP's id of ECDH (RFC 6637 §5). */
export const ECDH_ALGO = 18;

/** A curve gpg 2.2 uses for ECDH: node's name, or X25519 for cv25519 (0x40-prefixed native point). */
interface Curve {
  /** The OID's bytes, without the length octet. */
  readonly oid: string;
  readonly node: string;
  readonly x25519?: true;
}

const CURVES: readonly Curve[] = [
  { oid: '2a8648ce3d030107', node: 'prime256v1' },
  { oid: '2b81040022', node: 'secp384r1' },
  { oid: '2b81040023', node: 'secp521r1' },
  { oid: '2b2403030208010107', node: 'brainpoolP256r1' },
  { oid: '2b240303020801010b', node: 'brainpoolP384r1' },
  { oid: '2b240303020801010d', node: 'brainpoolP512r1' },
  { oid: '2b8104000a', node: 'secp256k1' },
  { oid: '2b060104019755010501', node: 'X25519', x25519: true },
];

/** A key packet's curve and public point, from the curve field at `o` (OID length octet, OID, point MPI). */
interface CurvePoint {
  readonly curve: Curve;
  /** The curve field as written: OID length octet and OID. */
  readonly oidField: Buffer;
  /** The public point Q (04‖x‖y, or 40‖u for cv25519). */
  readonly q: Buffer;
}

/** The curve and point at `o` (and where they end), or undefined for a curve not in the table. */
function readCurvePoint(body: Buffer, o: number): (CurvePoint & { next: number }) | undefined {
  if (o >= body.length) return undefined;
  const oidEnd = o + 1 + body[o];
  const curve = CURVES.find((c) => c.oid === body.subarray(o + 1, oidEnd).toString('hex'));
  const q = curve && oidEnd <= body.length ? readMpi(body, oidEnd) : undefined;
  return curve && q ? { curve, oidField: body.subarray(o, oidEnd), q: q.value, next: q.next } : undefined;
}

const okpKey = (u: Buffer, d?: Buffer): KeyObject =>
  d === undefined
    ? createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: u.toString('base64url') }, format: 'jwk' })
    : createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', x: u.toString('base64url'), d: d.toString('base64url') }, format: 'jwk' });

/**
 * The private key of the secret scalar `d` (as OpenPGP stores it, big-endian) on `k`'s curve. Throws
 * when `d` does not give `k`'s public point (node takes an X25519 JWK's `x` without checking it) or
 * is out of range.
 */
function privateKeyOf(k: CurvePoint, d: Uint8Array): { readonly ecdh: ECDH } | { readonly x25519: KeyObject } {
  const n = k.curve.x25519 ? 32 : (k.q.length - 1) / 2;
  const scalar = Buffer.alloc(Math.max(n, d.length));
  scalar.set(d, scalar.length - d.length);
  if (k.curve.x25519) {
    // OpenPGP stores the X25519 secret big-endian; the native key is little-endian.
    const x25519 = okpKey(k.q.subarray(1), scalar.reverse());
    if (createPublicKey(x25519).export({ format: 'jwk' }).x !== k.q.subarray(1).toString('base64url')) throw notOurs();
    return { x25519 };
  }
  const ecdh = createECDH(k.curve.node);
  ecdh.setPrivateKey(scalar);
  if (!ecdh.getPublicKey().equals(k.q)) throw notOurs();
  return { ecdh };
}

const notOurs = () => new Error('the secret scalar does not belong to the public point');

/**
 * Whether the secret scalar `d` of an EC key packet (ECDH 18 or ECDSA 19; `body` its v4 public part)
 * on a curve of the table gives the packet's public point; undefined for other packets. openpgp.js's
 * own check of a brainpool or secp256k1 ECDSA key fails on Node (it signs with the optional
 * eckey-utils), so unlock.ts asks this instead.
 */
export function ecSecretMatches(body: Buffer, d: Uint8Array): boolean | undefined {
  if (body.length < 7 || body[0] !== 4 || (body[5] !== ECDH_ALGO && body[5] !== 19)) return undefined;
  const k = readCurvePoint(body, 6);
  if (!k) return undefined;
  try {
    privateKeyOf(k, d);
    return true;
  } catch {
    return false; // another point, or a scalar out of range
  }
}

/** The key-wrap ciphers of the KDF parameters (AES-128/192/256), by OpenPGP id. */
const WRAP: Readonly<Record<number, { name: string; keyBytes: number }>> = {
  7: { name: 'id-aes128-wrap', keyBytes: 16 },
  8: { name: 'id-aes192-wrap', keyBytes: 24 },
  9: { name: 'id-aes256-wrap', keyBytes: 32 },
};
/** RFC 3394's default initial value. */
const WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/** The KDF's hashes RFC 6637 §9 allows (SHA-256/384/512), by OpenPGP id: each at least as long as any wrap key. */
const KDF_HASHES: Readonly<Record<number, string>> = { 8: 'sha256', 9: 'sha384', 10: 'sha512' };

/** An ECDH key packet's public part, as the KDF needs it. */
export interface EcdhPublic extends CurvePoint {
  /** The KDF parameters field as written: size octet, 01, hash id, cipher id. */
  readonly kdfField: Buffer;
  readonly hash: string;
  readonly wrap: { name: string; keyBytes: number };
}

/**
 * The ECDH public parameters of a key packet's algorithm-specific part starting at `o` (curve OID,
 * point MPI, KDF parameters), or undefined for a curve, hash or cipher not handled here.
 */
export function readEcdhPublic(body: Buffer, o: number): (EcdhPublic & { next: number }) | undefined {
  const cp = readCurvePoint(body, o);
  if (!cp || cp.next + 4 > body.length || body[cp.next] !== 3 || body[cp.next + 1] !== 1) return undefined;
  const hash = KDF_HASHES[body[cp.next + 2]];
  const wrap = WRAP[body[cp.next + 3]];
  if (hash === undefined || wrap === undefined) return undefined;
  return { curve: cp.curve, oidField: cp.oidField, q: cp.q, kdfField: body.subarray(cp.next, cp.next + 4), hash, wrap, next: cp.next + 4 };
}

/**
 * The key-encryption key of RFC 6637 §7: the hash of 00 00 00 01 ‖ Z ‖ param, cut to the wrap
 * cipher's key size, where param is the curve, the algorithm (18), the KDF parameters,
 * "Anonymous Sender    " and the recipient's fingerprint (a v5 key's first 20 octets).
 */
function kek(k: EcdhPublic, z: Buffer, fingerprint: Uint8Array): Buffer {
  const param = Buffer.concat([k.oidField, Buffer.from([ECDH_ALGO]), k.kdfField, Buffer.from('Anonymous Sender    ', 'latin1'), fingerprint.subarray(0, 20)]);
  return createHash(k.hash).update(Buffer.from([0, 0, 0, 1])).update(z).update(param).digest().subarray(0, k.wrap.keyBytes);
}

/** A point as this curve writes it: uncompressed (04‖x‖y), or 40‖u for cv25519. */
function pointOk(k: EcdhPublic, p: Buffer): boolean {
  return k.curve.x25519 ? p.length === 33 && p[0] === 0x40 : p.length === k.q.length && p[0] === 4;
}

/** Z, the shared secret of the secret scalar `d` (as OpenPGP stores it, big-endian) and the point `v`. */
function sharedSecret(k: EcdhPublic, d: Uint8Array, v: Buffer): Buffer {
  const own = privateKeyOf(k, d);
  return 'x25519' in own ? diffieHellman({ privateKey: own.x25519, publicKey: okpKey(v.subarray(1)) }) : own.ecdh.computeSecret(v);
}

/** The session key wrapped to `k` (the encoded m of RFC 6637 §8) with a fresh ephemeral key: V and C. */
function wrapSessionKey(k: EcdhPublic, fingerprint: Uint8Array, m: Buffer): { v: Buffer; c: Buffer } {
  let v: Buffer;
  let z: Buffer;
  if (k.curve.x25519) {
    const eph = generateKeyPairSync('x25519');
    const u = Buffer.from(eph.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    v = Buffer.concat([Buffer.from([0x40]), u]);
    z = diffieHellman({ privateKey: eph.privateKey, publicKey: okpKey(k.q.subarray(1)) });
  } else {
    const e = createECDH(k.curve.node);
    v = e.generateKeys();
    z = e.computeSecret(k.q);
  }
  const w = createCipheriv(k.wrap.name, kek(k, z, fingerprint), WRAP_IV);
  return { v, c: Buffer.concat([w.update(m), w.final()]) };
}

/**
 * The PKESK v3 packet (header included) giving `sessionKey` (of OpenPGP cipher `algorithm`) to the
 * ECDH key `k` whose key id and fingerprint are given.
 */
export function ecdhSessionKeyPacket(k: EcdhPublic, keyId: Buffer, fingerprint: Uint8Array, algorithm: number, sessionKey: Buffer): Buffer {
  const plain = encodeSessionKey(algorithm, sessionKey);
  // PKCS#5 padding to a multiple of 8 octets (RFC 6637 §8).
  const pad = 8 - (plain.length % 8);
  const { v, c } = wrapSessionKey(k, fingerprint, Buffer.concat([plain, Buffer.alloc(pad, pad)]));
  return packet(Tag.PKESK, Buffer.concat([Buffer.from([3]), keyId, Buffer.from([ECDH_ALGO]), writeMpi(v), Buffer.from([c.length]), c]));
}

/** The session key in the unwrapped m: PKCS#5 padding, algorithm octet, key, checksum; or undefined. */
function unpad(m: Buffer): { data: Uint8Array; algorithm: string } | undefined {
  const pad = m[m.length - 1];
  if (pad < 1 || pad > 8 || m.length < pad + 3) return undefined;
  for (let i = m.length - pad; i < m.length; i++) if (m[i] !== pad) return undefined;
  return decodeSessionKey(m.subarray(0, m.length - pad));
}

interface EcdhSecret {
  readonly keyId: string;
  readonly pub: EcdhPublic;
  readonly d: Uint8Array;
  readonly fingerprint: Uint8Array;
}

/** The decrypted ECDH (sub)keys of `k` (read once per key). */
const ecdhKeysOf = perSubkey((p, sub): EcdhSecret | undefined => {
  const d = p.privateParams?.d;
  if (p.algorithm !== ECDH_ALGO || !d) return undefined;
  // The public part: version, time, algorithm (v5: and a four-octet length), then the parameters.
  const body = Buffer.from(p.writePublicKey());
  const pub = p.version === 4 || p.version === 5 ? readEcdhPublic(body, p.version === 4 ? 6 : 10) : undefined;
  const fingerprint = p.getFingerprintBytes();
  return pub && fingerprint ? { keyId: sub.getKeyID().toHex().toUpperCase(), pub, d, fingerprint } : undefined;
});

/** The session key `key` opens from the ephemeral point `v` and the wrapped key `c`, or undefined. */
function unwrapWith(key: EcdhSecret, v: Buffer, c: Buffer): { data: Uint8Array; algorithm: string } | undefined {
  if (!pointOk(key.pub, v) || c.length < 16 || c.length % 8 !== 0) return undefined;
  try {
    const u = createDecipheriv(key.pub.wrap.name, kek(key.pub, sharedSecret(key.pub, key.d, v), key.fingerprint), WRAP_IV);
    return unpad(Buffer.concat([u.update(c), u.final()]));
  } catch {
    return undefined; // not this key (the unwrap's integrity check), or a point node refuses
  }
}

/**
 * The session key from one of the PKESK packet bodies, decrypted natively with one of `keys`' ECDH
 * (sub)keys, or undefined when this path does not apply (the caller then uses openpgp.js).
 */
export function nativeEcdhSessionKey(pkeskBodies: readonly Buffer[], keys: readonly PrivateKey[]): { data: Uint8Array; algorithm: string } | undefined {
  for (const body of pkeskBodies) {
    // version 3, key id (8), public-key algorithm (1), the point V as an MPI, size octet and C
    if (body.length < 12 || body[0] !== 3 || body[9] !== ECDH_ALGO) continue;
    const keyId = body.subarray(1, 9).toString('hex').toUpperCase();
    const v = readMpi(body, 10);
    if (!v || v.next >= body.length || v.next + 1 + body[v.next] !== body.length) continue;
    const c = body.subarray(v.next + 1);
    for (const k of keys) {
      if (!k.isDecrypted()) continue;
      for (const ek of ecdhKeysOf(k)) {
        if (keyId !== '0000000000000000' && keyId !== ek.keyId) continue;
        const r = unwrapWith(ek, v.value, c);
        if (r) return r;
      }
    }
  }
  return undefined;
}
