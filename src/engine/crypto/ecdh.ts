// OpenPGP ECDH (RFC 6637, RFC 9580 §5.1.5 and §11.5) with node:crypto, for the session key of a PKESK v3
// packet (algorithm 18): the shared point (createECDH, or X25519 KeyObjects for cv25519), the KDF,
// AES key wrap (RFC 3394) and the PKCS#5-padded session key with its checksum. Every curve gpg 2.2
// makes works here, also those openpgp.js will not use on Node: brainpool (its ECDSA needs the optional
// `eckey-utils` to check the key's own signatures before it decrypts) and secp256k1 (off by its config);
// and the session key's cipher may be any (Camellia, which openpgp.js lacks, goes on to node:crypto).
// Decrypting with one's own secret key needs no check of the key's signatures, as with RSA
// (rsaSessionKey.ts). Anything unexpected returns undefined, and the caller goes the openpgp.js way.
import { createCipheriv, createDecipheriv, createECDH, createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { PrivateKey } from 'openpgp';
import { checksum16, HASH_NAMES, symmetricById } from './algorithms';
import { packet, readMpi, Tag, writeMpi } from './packets';
import { perSubkey } from './rsaSessionKey';

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

/**
 * Whether the secret scalar `d` of an EC key packet (ECDH 18 or ECDSA 19; `body` its v4 public part)
 * on a Weierstrass curve of the table gives the packet's public point; undefined for other packets.
 * openpgp.js's own check of a brainpool or secp256k1 ECDSA key fails on Node (it signs with the
 * optional eckey-utils), so unlock.ts asks this instead.
 */
export function ecSecretMatches(body: Buffer, d: Uint8Array): boolean | undefined {
  if (body[0] !== 4 || (body[5] !== ECDH_ALGO && body[5] !== 19) || body.length < 7) return undefined;
  const oidEnd = 7 + body[6];
  const curve = CURVES.find((c) => c.oid === body.subarray(7, oidEnd).toString('hex'));
  const q = readMpi(body, oidEnd);
  if (!curve || curve.x25519 || !q) return undefined;
  try {
    const e = createECDH(curve.node);
    e.setPrivateKey(d);
    return e.getPublicKey().equals(q.value);
  } catch {
    return false; // a scalar out of range
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

/** An ECDH key packet's public part, as the KDF needs it. */
export interface EcdhPublic {
  readonly curve: Curve;
  /** The curve field as written: OID length octet and OID. */
  readonly oidField: Buffer;
  /** The public point Q (04‖x‖y, or 40‖u for cv25519). */
  readonly q: Buffer;
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
  if (o >= body.length) return undefined;
  const oidEnd = o + 1 + body[o];
  const curve = CURVES.find((c) => c.oid === body.subarray(o + 1, oidEnd).toString('hex'));
  const q = curve && oidEnd <= body.length ? readMpi(body, oidEnd) : undefined;
  if (!curve || !q || q.next + 4 > body.length || body[q.next] !== 3 || body[q.next + 1] !== 1) return undefined;
  const hash = HASH_NAMES[body[q.next + 2]];
  const wrap = WRAP[body[q.next + 3]];
  if (hash === undefined || wrap === undefined) return undefined;
  return { curve, oidField: body.subarray(o, oidEnd), q: q.value, kdfField: body.subarray(q.next, q.next + 4), hash, wrap, next: q.next + 4 };
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

const okpKey = (u: Buffer, d?: Buffer): KeyObject =>
  d === undefined
    ? createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: u.toString('base64url') }, format: 'jwk' })
    : createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', x: u.toString('base64url'), d: d.toString('base64url') }, format: 'jwk' });

/** The ECDH secret's field size in bytes (X25519: 32). */
function fieldBytes(k: EcdhPublic): number {
  return k.curve.x25519 ? 32 : (k.q.length - 1) / 2;
}

/** A point as this curve writes it: uncompressed (04‖x‖y), or 40‖u for cv25519. */
function pointOk(k: EcdhPublic, p: Buffer): boolean {
  return k.curve.x25519 ? p.length === 33 && p[0] === 0x40 : p.length === k.q.length && p[0] === 4;
}

/** Z, the shared secret of the secret scalar `d` (as OpenPGP stores it, big-endian) and the point `v`. */
function sharedSecret(k: EcdhPublic, d: Uint8Array, v: Buffer): Buffer {
  const n = fieldBytes(k);
  const scalar = Buffer.alloc(Math.max(n, d.length));
  scalar.set(d, scalar.length - d.length);
  if (k.curve.x25519) {
    // OpenPGP stores the X25519 secret big-endian; the native key is little-endian.
    return diffieHellman({ privateKey: okpKey(k.q.subarray(1), Buffer.from(scalar).reverse()), publicKey: okpKey(v.subarray(1)) });
  }
  const e = createECDH(k.curve.node);
  e.setPrivateKey(scalar);
  if (!e.getPublicKey().equals(k.q)) throw new Error('the secret scalar does not belong to the public point');
  return e.computeSecret(v);
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
  const plain = Buffer.concat([Buffer.from([algorithm]), sessionKey, Buffer.alloc(2)]);
  plain.writeUInt16BE(checksum16(sessionKey), plain.length - 2);
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
  const body = m.subarray(0, m.length - pad);
  const algorithm = symmetricById(body[0]);
  const key = body.subarray(1, body.length - 2);
  if (algorithm?.keyBytes !== key.length) return undefined;
  if (checksum16(key) !== body.readUInt16BE(body.length - 2)) return undefined;
  return { data: Uint8Array.from(key), algorithm: algorithm.name };
}

interface EcdhSecret {
  readonly keyId: string;
  readonly pub: EcdhPublic;
  readonly d: Uint8Array;
  readonly fingerprint: Uint8Array;
}

interface KeyPacketShape {
  algorithm: number;
  version: number;
  privateParams?: { d?: Uint8Array };
  writePublicKey(): Uint8Array;
  getFingerprintBytes(): Uint8Array | null;
}

/** The decrypted ECDH (sub)keys of `k` (read once per key). */
const ecdhKeysOf = perSubkey((sub): EcdhSecret | undefined => {
  const p = sub.keyPacket as unknown as KeyPacketShape;
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
