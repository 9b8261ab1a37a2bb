// What the native session-key paths (rsaSessionKey.ts, ecdh.ts) read of a decrypted key's (sub)keys:
// openpgp.js's key packet as far as they use it, and each subkey's reading made once per key.
import type { PrivateKey } from 'openpgp';

/** The fields of openpgp.js's key packet that the native paths read (not in its type declarations). */
export interface KeyPacketShape {
  algorithm: number;
  version: number;
  publicParams?: { n?: Uint8Array; e?: Uint8Array };
  privateParams?: { d?: Uint8Array; p?: Uint8Array; q?: Uint8Array; u?: Uint8Array };
  writePublicKey(): Uint8Array;
  getFingerprintBytes(): Uint8Array | null;
}

type SubkeyOf = ReturnType<PrivateKey['getKeys']>[number];

/**
 * `read` of each (sub)key's packet of a decrypted key, made once per key: what a subkey offers the native
 * path, or undefined (also when `read` throws: parameters OpenSSL does not take, which openpgp.js then
 * handles).
 */
export function perSubkey<T>(read: (p: KeyPacketShape, sub: SubkeyOf) => T | undefined): (k: PrivateKey) => T[] {
  const cache = new WeakMap<PrivateKey, T[]>();
  return (k) => {
    let out = cache.get(k);
    if (!out) {
      out = [];
      for (const sub of k.getKeys()) {
        try {
          const r = read(sub.keyPacket as unknown as KeyPacketShape, sub);
          if (r !== undefined) out.push(r);
        } catch {
          // openpgp.js will do it
        }
      }
      cache.set(k, out);
    }
    return out;
  };
}
