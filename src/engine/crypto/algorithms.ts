// OpenPGP's algorithm ids (RFC 4880 §9, RFC 9580 §9) as the crypto code needs them: one table each, for
// the readers and writers that work without openpgp.js (decrypt.ts, rsaSessionKey.ts, recipient.ts,
// unlock.ts, signature.ts).
import { getCiphers } from 'node:crypto';

/** A symmetric algorithm: openpgp.js's name, its key size, and node:crypto's CFB cipher when there is one. */
export interface SymmetricAlgorithm {
  readonly id: number;
  readonly name: string;
  readonly keyBytes: number;
  readonly cfb?: { readonly name: string; readonly block: number };
  /** openpgp.js has no such cipher: only node:crypto reads it. */
  readonly nodeOnly?: true;
}

const SYMMETRIC: readonly SymmetricAlgorithm[] = [
  { id: 2, name: 'tripledes', keyBytes: 24, cfb: { name: 'des-ede3-cfb', block: 8 } },
  { id: 3, name: 'cast5', keyBytes: 16, cfb: { name: 'cast5-cfb', block: 8 } },
  { id: 4, name: 'blowfish', keyBytes: 16, cfb: { name: 'bf-cfb', block: 8 } },
  { id: 7, name: 'aes128', keyBytes: 16, cfb: { name: 'aes-128-cfb', block: 16 } },
  { id: 8, name: 'aes192', keyBytes: 24, cfb: { name: 'aes-192-cfb', block: 16 } },
  { id: 9, name: 'aes256', keyBytes: 32, cfb: { name: 'aes-256-cfb', block: 16 } },
  { id: 10, name: 'twofish', keyBytes: 32 },
  // Camellia (RFC 5581): gpg encrypts with it when told to (`cipher-algo CAMELLIA256`, a key's
  // preferences), and duplicity restores it; openpgp.js has no Camellia, so only node:crypto reads it.
  { id: 11, name: 'camellia128', keyBytes: 16, cfb: { name: 'camellia-128-cfb', block: 16 }, nodeOnly: true },
  { id: 12, name: 'camellia192', keyBytes: 24, cfb: { name: 'camellia-192-cfb', block: 16 }, nodeOnly: true },
  { id: 13, name: 'camellia256', keyBytes: 32, cfb: { name: 'camellia-256-cfb', block: 16 }, nodeOnly: true },
];

export const symmetricById = (id: number): SymmetricAlgorithm | undefined => SYMMETRIC.find((a) => a.id === id);
export const symmetricByName = (name: string): SymmetricAlgorithm | undefined => SYMMETRIC.find((a) => a.name === name);

let available: Set<string> | undefined;

/** node:crypto's CFB cipher for an algorithm (openpgp.js's name), if this Node's OpenSSL has it. */
export function nodeCfb(name: string): { name: string; block: number } | undefined {
  available ??= new Set(getCiphers());
  const c = symmetricByName(name)?.cfb;
  return c && available.has(c.name) ? c : undefined;
}

/** RSA (encrypt or sign) and RSA encrypt-only. */
export const RSA_ALGOS: ReadonlySet<number> = new Set([1, 2]);

/** node:crypto names of OpenPGP hash algorithms (RFC 9580 §9.5). */
export const HASH_NAMES: Readonly<Record<number, string>> = {
  1: 'md5',
  2: 'sha1',
  3: 'ripemd160',
  8: 'sha256',
  9: 'sha384',
  10: 'sha512',
  11: 'sha224',
  12: 'sha3-256',
  14: 'sha3-512',
};

/** OpenPGP's two-octet checksum: the sum of the bytes modulo 65536 (session keys, unprotected secret keys). */
export function checksum16(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) s = (s + b[i]) & 0xffff;
  return s;
}

/** A session key as OpenPGP encrypts it to a public key: algorithm octet ‖ key ‖ checksum16 (RFC 9580 §5.1.3). */
export function encodeSessionKey(algorithm: number, key: Uint8Array): Buffer {
  const m = Buffer.alloc(key.length + 3);
  m[0] = algorithm;
  m.set(key, 1);
  m.writeUInt16BE(checksum16(key), m.length - 2);
  return m;
}

/** The session key of an encoded `m` (encodeSessionKey), or undefined when its algorithm, size or checksum does not fit. */
export function decodeSessionKey(m: Uint8Array): { data: Uint8Array; algorithm: string } | undefined {
  if (m.length < 3) return undefined;
  const algorithm = symmetricById(m[0]);
  const key = m.subarray(1, m.length - 2);
  if (algorithm?.keyBytes !== key.length) return undefined;
  if (checksum16(key) !== ((m[m.length - 2] << 8) | m[m.length - 1])) return undefined;
  return { data: Uint8Array.from(key), algorithm: algorithm.name };
}
