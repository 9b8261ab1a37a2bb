// Native RSA for the session key of a PKESK v3 packet (RFC 4880 §5.1), the step every restore pays once
// per volume: openpgp.js does the RSA private operation in JavaScript BigInt (~60–100 ms for a 3072-bit
// key, more than decrypting a whole small volume), OpenSSL through node:crypto with CRT in ~2 ms.
// node refuses RSA_PKCS1_PADDING for privateDecrypt (CVE-2023-46809), so the raw RSA operation runs
// with RSA_NO_PADDING and the EME-PKCS1-v1_5 block is checked here. Anything unexpected (other
// algorithms, other packet versions, a block or checksum that does not fit) returns undefined, and the
// caller goes the openpgp.js way, which then reports the real problem.
import { constants, createPrivateKey, privateDecrypt, type KeyObject } from 'node:crypto';
import type { PrivateKey } from 'openpgp';
import { decodeSessionKey, RSA_ALGOS } from './algorithms';
import { perSubkey } from './subkeys';

interface RsaKey {
  readonly keyId: string;
  readonly key: KeyObject;
  readonly modulusBytes: number;
}

const b64u = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const toBig = (u: Uint8Array) => BigInt(`0x${Buffer.from(u).toString('hex') || '0'}`);
function fromBig(x: bigint): Buffer {
  const h = x.toString(16);
  return Buffer.from(h.length % 2 ? `0${h}` : h, 'hex');
}

/** The decrypted RSA (sub)keys of `k` as node KeyObjects (made once per key). */
const rsaKeysOf = perSubkey((p, sub): RsaKey | undefined => {
  if (!RSA_ALGOS.has(p.algorithm)) return undefined;
  const n = p.publicParams?.n;
  const e = p.publicParams?.e;
  const s = p.privateParams;
  if (!n || !e || !s?.d || !s.p || !s.q || !s.u) return undefined;
  // OpenPGP stores p < q and u = p⁻¹ mod q; JWK wants qi = q⁻¹ mod p. Swapping the primes makes
  // OpenPGP's u exactly JWK's qi.
  const d = toBig(s.d);
  const jp = toBig(s.q);
  const jq = toBig(s.p);
  const jwk = { kty: 'RSA', n: b64u(n), e: b64u(e), d: b64u(s.d), p: b64u(s.q), q: b64u(s.p), dp: b64u(fromBig(d % (jp - 1n))), dq: b64u(fromBig(d % (jq - 1n))), qi: b64u(s.u) };
  return { keyId: sub.getKeyID().toHex().toUpperCase(), key: createPrivateKey({ key: jwk, format: 'jwk' }), modulusBytes: n.length };
});

/** EME-PKCS1-v1_5 decoding plus OpenPGP's algorithm byte and two-byte checksum. */
function unpad(block: Buffer): { data: Uint8Array; algorithm: string } | undefined {
  if (block[0] !== 0 || block[1] !== 2) return undefined;
  const sep = block.indexOf(0, 2);
  if (sep < 10) return undefined; // at least 8 bytes of non-zero padding
  return decodeSessionKey(block.subarray(sep + 1));
}

/**
 * The session key from one of the PKESK packet bodies, decrypted natively with one of `keys`' RSA
 * (sub)keys, or undefined when this fast path does not apply (the caller then uses openpgp.js).
 */
export function nativeRsaSessionKey(pkeskBodies: readonly Buffer[], keys: readonly PrivateKey[]): { data: Uint8Array; algorithm: string } | undefined {
  for (const body of pkeskBodies) {
    // version 3, key id (8), public-key algorithm (1), one MPI
    if (body.length < 12 || body[0] !== 3) continue;
    if (!RSA_ALGOS.has(body[9])) continue;
    const keyId = body.subarray(1, 9).toString('hex').toUpperCase();
    const bits = body.readUInt16BE(10);
    const c = body.subarray(12, 12 + ((bits + 7) >> 3));
    for (const k of keys) {
      if (!k.isDecrypted()) continue;
      for (const rk of rsaKeysOf(k)) {
        if (keyId !== '0000000000000000' && keyId !== rk.keyId) continue;
        if (c.length > rk.modulusBytes) continue;
        const padded = Buffer.alloc(rk.modulusBytes);
        c.copy(padded, rk.modulusBytes - c.length);
        let block: Buffer;
        try {
          block = privateDecrypt({ key: rk.key, padding: constants.RSA_NO_PADDING }, padded);
        } catch {
          continue;
        }
        const r = unpad(block);
        if (r) return r;
      }
    }
  }
  return undefined;
}
