// One-pass signatures over streamed literal data. The digest is computed with node:crypto as the data
// flows (openpgp.js's streaming sign would keep a copy of the whole message for its detached output);
// openpgp.js is used only for the public-key step, through the same hook its own streaming verifier
// uses (`hashed`) and, when signing, by supplying the digest through the packet's `hash` step.
import { createHash, type Hash } from 'node:crypto';
import type { PrivateKey, PublicKey, SignaturePacket } from 'openpgp';
import { OffsiteError } from '../errors';
import { HASH_NAMES } from './algorithms';
import { describeKey } from './keys';
import { openpgpLib } from './openpgpLib';
import { packet, Tag } from './packets';

const CR = Buffer.from([0x0d]);
/** Signature types (RFC 4880 §5.2.1) and the hash we sign with (§9.4). */
const SIG_BINARY = 0;
const SIG_TEXT = 1;
const SHA512 = 10;

/** Public-key algorithms gpg 2.2 can verify (no Ed25519/Ed448 of RFC 9580, no PQC). */
const GPG22_SIGNING_ALGOS = new Set([1, 3, 17, 19, 22]);

/** The v4 signature trailer: signature data, 0x04 0xFF, its length (RFC 4880 §5.2.4). */
function v4Trailer(signatureData: Uint8Array): Buffer {
  const t = Buffer.alloc(6);
  t[0] = 4;
  t[1] = 0xff;
  t.writeUInt32BE(signatureData.length, 2);
  return Buffer.concat([signatureData, t]);
}

/** An object openpgp's SignaturePacket.sign() accepts as "data" whose bytes it never reads. */
function unreadData(): unknown {
  return { text: null, getBytes: () => new ReadableStream<Uint8Array>() };
}

/**
 * What an error about a file with no signature by the key given says to do (the CLI's words; `needs`
 * tells the extension to name its offsite.signKey setting instead, extension/engineClient.ts hintOf).
 */
export const NOT_BY_SIGNER = {
  hint: 'Do not trust it: someone other than the signer you named may have written it. Check --sign-key',
  needs: { input: 'signKey', wrong: true },
} as const;

export interface StreamSigner {
  /** The one-pass signature packet that goes before the literal packet. */
  readonly onePassPacket: Buffer;
  /** Feeds literal data (the bytes of the literal packet's content). */
  update(data: Buffer): void;
  /** The signature packet that goes after the literal packet. */
  finish(): Promise<Buffer>;
}

/**
 * Prepares a binary-document signature (type 0x00, SHA-512) by `key`'s signing (sub)key. Refuses keys
 * whose signatures gpg 2.2 could not check, and locked keys.
 */
export async function createStreamSigner(key: PrivateKey): Promise<StreamSigner> {
  const date = new Date();
  let signing;
  try {
    signing = await key.getSigningKey(undefined, date);
  } catch (e) {
    throw new OffsiteError('key', `The key ${describeKey(key)} cannot sign: ${(e as Error).message}`, {
      hint: 'Choose a signing key that is valid today and has a signing-capable key or subkey',
      cause: e,
    });
  }
  const kp = signing.keyPacket;
  if (kp.version !== 4 || !GPG22_SIGNING_ALGOS.has(kp.algorithm)) {
    throw new OffsiteError('key', `The signing key ${describeKey(key)} would make signatures gpg 2.2 cannot check (v${kp.version} key, algorithm ${kp.algorithm})`, {
      hint: 'Use a v4 RSA, DSA, ECDSA or legacy Ed25519 key (as made by gpg 2.2 or "Create Key")',
    });
  }
  if (!kp.isDecrypted()) {
    throw new OffsiteError('key', `The signing key ${describeKey(key)} is still locked by its passphrase`, {
      hint: 'Load it with its passphrase before signing',
    });
  }
  const hashAlgo = SHA512;
  const keyId = Buffer.from(kp.getKeyID().toHex(), 'hex');
  const onePassPacket = packet(
    Tag.OnePassSignature,
    Buffer.concat([Buffer.from([3, SIG_BINARY, hashAlgo, kp.algorithm]), keyId, Buffer.from([1])]),
  );
  const hasher = createHash('sha512');
  return {
    onePassPacket,
    update: (data) => hasher.update(data),
    finish: async () => {
      const { SignaturePacket: Packet, config } = openpgpLib();
      const sig = new Packet();
      sig.signatureType = SIG_BINARY;
      sig.hashAlgorithm = hashAlgo;
      sig.publicKeyAlgorithm = kp.algorithm;
      // sign() fills in signatureData (version, times, issuer subpackets), then asks for the digest of
      // data ‖ trailer: we have hashed the data already, so we only add the trailer.
      (sig as unknown as { hash: () => Promise<Uint8Array> }).hash = async () => {
        hasher.update(v4Trailer(sig.signatureData as Uint8Array));
        return new Uint8Array(hasher.digest());
      };
      const signFn = sig.sign as unknown as (k: unknown, d: unknown, date: Date, detached: boolean, config: unknown) => Promise<void>;
      await signFn.call(sig, kp, unreadData(), date, false, config);
      return packet(Tag.Signature, Buffer.from(sig.write()));
    },
  };
}

/** One-pass signature packet fields (RFC 4880 §5.4). */
export interface OnePass {
  readonly version: number;
  readonly signatureType: number;
  readonly hashAlgorithm: number;
  readonly publicKeyAlgorithm: number;
  readonly keyIdHex: string;
}

export function parseOnePass(body: Buffer): OnePass {
  if (body.length < 13) throw new OffsiteError('format', 'Malformed one-pass signature packet');
  return {
    version: body[0],
    signatureType: body[1],
    hashAlgorithm: body[2],
    publicKeyAlgorithm: body[3],
    keyIdHex: body.subarray(4, 12).toString('hex'),
  };
}

/**
 * Hashes literal data for a signature of type binary (0x00) or text (0x01, CRLF-canonical). An
 * unsupported hash algorithm hashes nothing, and verifying with it fails.
 */
export class SignatureHasher {
  private readonly hash: Hash | undefined;
  private lastWasCr = false;

  constructor(
    readonly hashAlgorithm: number,
    private readonly signatureType: number,
  ) {
    const name = HASH_NAMES[hashAlgorithm];
    this.hash = name ? createHash(name) : undefined;
  }

  get usable(): boolean {
    return this.hash !== undefined;
  }

  update(data: Buffer): void {
    if (!this.hash) return;
    if (this.signatureType !== SIG_TEXT) {
      this.hash.update(data);
      return;
    }
    // Text signatures hash lines ending in CR LF: a LF without CR before it gets one (as gpg and
    // openpgp.js canonicalizeEOL do; a lone CR stays).
    let start = 0;
    for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, i + 1)) {
      const prevCr = i > 0 ? data[i - 1] === 0x0d : this.lastWasCr;
      if (!prevCr) {
        this.hash.update(data.subarray(start, i));
        this.hash.update(CR);
        start = i;
      }
    }
    this.hash.update(data.subarray(start));
    if (data.length > 0) this.lastWasCr = data[data.length - 1] === 0x0d;
  }

  /** The final digest for a v4 signature with the given signature data. */
  digest(signatureData: Uint8Array): Uint8Array {
    if (!this.hash) throw new OffsiteError('signature', `Unsupported signature hash algorithm ${this.hashAlgorithm}`);
    this.hash.update(v4Trailer(signatureData));
    return new Uint8Array(this.hash.digest());
  }
}

/** Parses one signature packet (header included). */
export async function readSignaturePacket(raw: Buffer): Promise<SignaturePacket> {
  try {
    const s = await openpgpLib().readSignature({ binarySignature: raw });
    return s.packets[0];
  } catch (e) {
    throw new OffsiteError('format', `Malformed signature packet: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Checks `sig` (whose data was hashed by `hasher`) against the verification keys. Returns the key that
 * made it, or throws OffsiteError('signature').
 */
export async function verifyWithDigest(sig: SignaturePacket, hasher: SignatureHasher, keys: PublicKey[]): Promise<PublicKey> {
  if (sig.version !== 4) {
    throw new OffsiteError('signature', `Unsupported version ${sig.version} signature`, {
      hint: 'Offsite checks v4 signatures, as gpg 2.2 makes them',
    });
  }
  if (sig.hashAlgorithm !== hasher.hashAlgorithm) {
    throw new OffsiteError('signature', 'The signature does not match its one-pass header (hash algorithm)');
  }
  const digest = hasher.digest(sig.signatureData as Uint8Array);
  // openpgp.js refuses data signatures over SHA-1, RIPEMD-160 or MD5 (collisions make them
  // forgeable); gpg 2.2 takes the first two, so its digest-algo can make sets duplicity restores.
  // Refused when one of the keys made it (else the signer is the wrong one, said below).
  const weakDigest = openpgpLib().config.rejectMessageHashAlgorithms.has(sig.hashAlgorithm);
  let lastError: unknown;
  let keyRefused: unknown;
  for (const key of keys) {
    if (key.getKeys(sig.issuerKeyID).length === 0) continue;
    if (weakDigest) {
      throw new OffsiteError('signature', `The signature by key ${sig.issuerKeyID.toHex().toUpperCase()} is over a ${(HASH_NAMES[sig.hashAlgorithm] ?? String(sig.hashAlgorithm)).toUpperCase()} digest, which Offsite does not accept as proof of who signed (gpg does)`, {
        hint: 'Restore without --sign-key to read it unchecked; sign new backups over SHA-256 or stronger (gpg digest-algo)',
      });
    }
    let signing: Awaited<ReturnType<PublicKey['getSigningKey']>>;
    try {
      signing = await key.getSigningKey(sig.issuerKeyID, sig.created);
    } catch (e) {
      // The key, not the data: openpgp.js refuses DSA keys (gpg 1.x's default) that gpg accepts.
      keyRefused = e;
      continue;
    }
    try {
      (sig as unknown as { hashed: Promise<Uint8Array> }).hashed = Promise.resolve(digest);
      await sig.verify(signing.keyPacket, sig.signatureType as number, {});
      return key;
    } catch (e) {
      lastError = e;
    }
  }
  if (!lastError && keyRefused) {
    throw new OffsiteError('signature', `The signing key ${sig.issuerKeyID.toHex().toUpperCase()} cannot check this signature: ${(keyRefused as Error).message.replace(/\.+$/, '')}`, {
      hint: 'The set was not checked: restore without --sign-key to read it unchecked (gpg, and so duplicity, may accept the key)',
      cause: keyRefused,
    });
  }
  if (lastError) {
    throw new OffsiteError('signature', `Bad signature by key ${sig.issuerKeyID.toHex().toUpperCase()}: ${(lastError as Error).message}`, {
      hint: 'The data was changed after it was signed, or the signing key is not valid; do not trust this file',
      cause: lastError,
    });
  }
  throw new OffsiteError('signature', `Signed by key ${sig.issuerKeyID.toHex().toUpperCase()}, which is not one of the expected signing keys`, NOT_BY_SIGNER);
}
