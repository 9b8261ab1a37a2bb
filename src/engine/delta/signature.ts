// librsync signatures as duplicity writes them (FORMAT §7.1): a 12-byte header (magic, block length,
// strong-sum length) and, per block of the file, its rollsum and a truncated MD4. Byte-identical to
// `rdiff -H md4 -R rollsum -b B -S 8 signature`.
import { OffsiteError } from '../errors';
import { md4Into } from './md4';
import { LOOKUP_MULTIPLIER, rollsumDigestInt, rollsumInit, rollsumOfSums, type RollsumState } from './rollsum';
import * as simd from './sigSimd';

// ops/backup.ts imports the encoder next to the signature functions; delta.ts imports only types from
// this file, so this re-export makes no import cycle at run time.
export { DeltaEncoder } from './delta';

/** rollsum + MD4 (what duplicity writes). */
export const SIG_MAGIC_MD4 = 0x72730136;
const SIG_MAGIC_BLAKE2 = 0x72730137;
const SIG_MAGIC_RK_MD4 = 0x72730146;
const SIG_MAGIC_RK_BLAKE2 = 0x72730147;

/** duplicity's strong-sum length (`rs_sig_begin(block_len, 8, RS_MD4_SIG_MAGIC)`). */
export const DEFAULT_STRONG_LEN = 8;
/** An MD4 digest has 16 bytes; librsync refuses longer strong sums for MD4. */
export const MAX_MD4_STRONG_LEN = 16;
/** Far above anything librsync users pick (duplicity: 2048); keeps a corrupt header from allocating GBs. */
const MAX_BLOCK_LEN = 1 << 26;
const HEADER_LEN = 12;

/**
 * duplicity's diffdir.get_block_size(): 512 below 1,024,000*2 bytes, then floor(size / 1,024,000) * 512,
 * capped at 2048 (FORMAT §7.1).
 */
export function blockLengthFor(fileSize: number): number {
  if (!(fileSize >= 1024000)) return 512;
  return Math.min(Math.floor(fileSize / 1024000) * 512, 2048);
}

function checkParams(blockLen: number, strongLen: number): void {
  if (!Number.isSafeInteger(blockLen) || blockLen < 1 || blockLen > MAX_BLOCK_LEN) {
    throw new OffsiteError('internal', `Invalid librsync block length ${blockLen}`);
  }
  if (!Number.isSafeInteger(strongLen) || strongLen < 1 || strongLen > MAX_MD4_STRONG_LEN) {
    throw new OffsiteError('internal', `Invalid MD4 strong-sum length ${strongLen} (1 to 16)`);
  }
}

/**
 * Streaming signature writer: feed the file in chunks of any size; finish() returns the whole signature
 * (12-byte header + entries), byte-identical to `rdiff -H md4 -R rollsum -b B -S 8 signature`.
 */
export class SignatureBuilder {
  private readonly blockLen: number;
  private readonly strongLen: number;
  /** The partial block carried between update() calls. */
  private readonly pending: Buffer;
  private pendingLen = 0;
  private out: Buffer;
  private outLen = HEADER_LEN;
  private readonly weak: RollsumState = { s1: 0, s2: 0 };
  private finished = false;

  constructor(blockLen: number, strongLen: number = DEFAULT_STRONG_LEN) {
    checkParams(blockLen, strongLen);
    this.blockLen = blockLen;
    this.strongLen = strongLen;
    this.pending = Buffer.allocUnsafe(blockLen);
    this.out = Buffer.allocUnsafe(4096);
    this.out.writeUInt32BE(SIG_MAGIC_MD4, 0);
    this.out.writeUInt32BE(blockLen, 4);
    this.out.writeUInt32BE(strongLen, 8);
  }

  update(data: Uint8Array): void {
    if (this.finished) throw new OffsiteError('internal', 'SignatureBuilder.update() after finish()');
    const B = this.blockLen;
    let p = 0;
    if (this.pendingLen > 0) {
      const take = Math.min(B - this.pendingLen, data.length);
      this.pending.set(data.subarray(0, take), this.pendingLen);
      this.pendingLen += take;
      p = take;
      if (this.pendingLen < B) return;
      this.addBlock(this.pending, 0, B);
      this.pendingLen = 0;
    }
    if (data.length - p >= 2 * B && simd.available(B)) {
      // Runs of whole blocks through the SIMD sums, up to its input size at a time (the module is
      // compiled on first use: ~5 ms, which a backup without such a file never pays).
      const perCall = Math.floor(simd.INPUT_BYTES / B);
      for (let n = Math.floor((data.length - p) / B); n >= 2; n = Math.floor((data.length - p) / B)) {
        const count = Math.min(n, perCall);
        this.reserve(count);
        simd.sumBlocks(data, p, B, count, this.emitSums);
        p += count * B;
      }
    }
    for (; data.length - p >= B; p += B) this.addBlock(data, p, B);
    if (p < data.length) {
      this.pending.set(data.subarray(p), 0);
      this.pendingLen = data.length - p;
    }
  }

  /** The whole signature; the builder cannot be used afterwards. */
  finish(): Buffer {
    if (this.finished) throw new OffsiteError('internal', 'SignatureBuilder.finish() called twice');
    if (this.pendingLen > 0) this.addBlock(this.pending, 0, this.pendingLen);
    this.finished = true;
    return Buffer.from(this.out.subarray(0, this.outLen));
  }

  /** Makes room for `blocks` more entries. */
  private reserve(blocks: number): void {
    const need = this.outLen + blocks * (4 + this.strongLen);
    if (need <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < need) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.out.copy(bigger, 0, 0, this.outLen);
    this.out = bigger;
  }

  private writeWeak(w: number): void {
    const o = this.out;
    const q = this.outLen;
    o[q] = w >>> 24;
    o[q + 1] = w >>> 16;
    o[q + 2] = w >>> 8;
    o[q + 3] = w;
  }

  private addBlock(data: Uint8Array, off: number, len: number): void {
    this.reserve(1);
    rollsumInit(data, off, len, this.weak);
    this.writeWeak(rollsumDigestInt(this.weak));
    md4Into(data, off, len, this.out, this.outLen + 4, this.strongLen);
    this.outLen += 4 + this.strongLen;
  }

  /** One whole block's entry from the SIMD sums (see sigSimd.sumBlocks). */
  private readonly emitSums = (byteSum: number, weightedSum: number, md4: Int32Array, at: number): void => {
    this.writeWeak(rollsumOfSums(byteSum, weightedSum, this.blockLen));
    const o = this.out;
    let q = this.outLen + 4;
    for (let k = 0; k < this.strongLen; k++, q++) o[q] = md4[at + 4 * (k >> 2)] >>> (8 * (k & 3));
    this.outLen = q;
  };
}

/** A parsed MD4+rollsum signature, with the lookup structures DeltaEncoder needs. */
export interface Signature {
  readonly blockLen: number;
  readonly strongLen: number;
  readonly blockCount: number;
  /** Each block's rollsum digest as a signed int32. */
  readonly weakSums: Int32Array;
  /** Each block's strong sum, strongLen bytes apiece. */
  readonly strongSums: Uint8Array;
  /** Weak-sum index, see SignatureLookup. */
  readonly lookup: SignatureLookup;
}

/**
 * Hash index of the weak sums, read once per byte of new data, so it is built to stay in cache.
 * `m = Math.imul(weak, LOOKUP_MULTIPLIER)` mixes a weak sum. The filter is a blocked Bloom filter: the top
 * `filterWordBits` bits of m pick a 32-bit word and bits 0-4 and 5-9 of m two bits in it (16 to 32 filter
 * bits per block: about 1% false positives). `slots` is an open-addressing table of (weak sum, block + 1)
 * pairs, 0 = empty, at least half empty, probed linearly from pair number `m >>> (32 - slotBits)`.
 * Blocks with the same weak and strong sum are stored once, the first one winning, as librsync's
 * rs_build_hash_table() does.
 */
export interface SignatureLookup {
  readonly filter: Int32Array;
  readonly filterWordBits: number;
  readonly slots: Int32Array;
  readonly slotBits: number;
}

/** Parses an MD4+rollsum signature (throws OffsiteError('format') on anything else / malformed). */
export function parseSignature(sig: Buffer): Signature {
  if (sig.length < HEADER_LEN) {
    throw new OffsiteError('format', `Signature is truncated: ${sig.length} bytes, shorter than its 12-byte header`, {
      hint: 'The signature file is damaged; run a full backup to replace it',
    });
  }
  const magic = sig.readUInt32BE(0);
  if (magic !== SIG_MAGIC_MD4) {
    const kind: Record<number, string> = {
      [SIG_MAGIC_BLAKE2]: 'rollsum + BLAKE2',
      [SIG_MAGIC_RK_MD4]: 'RabinKarp + MD4',
      [SIG_MAGIC_RK_BLAKE2]: 'RabinKarp + BLAKE2',
    };
    const what = kind[magic] ? `a ${kind[magic]} librsync signature` : `not a librsync signature (magic 0x${magic.toString(16).padStart(8, '0')})`;
    throw new OffsiteError('format', `Unsupported signature: ${what}; only rollsum + MD4 signatures (duplicity's) are supported`, {
      hint: 'Make signatures with duplicity or `rdiff -H md4 -R rollsum signature`',
    });
  }
  const blockLen = sig.readUInt32BE(4);
  const strongLen = sig.readUInt32BE(8);
  if (blockLen < 1 || blockLen > MAX_BLOCK_LEN) {
    throw new OffsiteError('format', `Malformed signature: block length ${blockLen}`, { hint: 'The signature file is damaged; run a full backup to replace it' });
  }
  if (strongLen < 1 || strongLen > MAX_MD4_STRONG_LEN) {
    throw new OffsiteError('format', `Malformed signature: strong-sum length ${strongLen} (MD4 allows 1 to 16)`, {
      hint: 'The signature file is damaged; run a full backup to replace it',
    });
  }
  const entry = 4 + strongLen;
  const body = sig.length - HEADER_LEN;
  if (body % entry !== 0) {
    throw new OffsiteError('format', `Signature is truncated: ${body} bytes of entries is not a multiple of ${entry}`, {
      hint: 'The signature file is damaged; run a full backup to replace it',
    });
  }
  const count = body / entry;
  const weakSums = new Int32Array(count);
  const strongSums = new Uint8Array(count * strongLen);
  for (let i = 0, p = HEADER_LEN; i < count; i++, p += entry) {
    weakSums[i] = sig.readInt32BE(p);
    strongSums.set(sig.subarray(p + 4, p + entry), i * strongLen);
  }
  return { blockLen, strongLen, blockCount: count, weakSums, strongSums, lookup: buildLookup(weakSums, strongSums, strongLen) };
}

function buildLookup(weak: Int32Array, strong: Uint8Array, strongLen: number): SignatureLookup {
  const count = weak.length;
  const slotBits = Math.max(4, Math.ceil(Math.log2(count * 2 + 1)));
  const filterWordBits = Math.min(28, Math.max(1, slotBits - 2));
  const filter = new Int32Array(2 ** filterWordBits);
  const slots = new Int32Array(2 * 2 ** slotBits);
  const mask = 2 ** slotBits - 1;
  const fShift = 32 - filterWordBits;
  const sShift = 32 - slotBits;
  for (let i = 0; i < count; i++) {
    const w = weak[i];
    const m = Math.imul(w, LOOKUP_MULTIPLIER);
    filter[m >>> fShift] |= (1 << (m & 31)) | (1 << ((m >>> 5) & 31));
    for (let s = m >>> sShift; ; s = (s + 1) & mask) {
      const e = slots[2 * s + 1];
      if (e === 0) {
        slots[2 * s] = w;
        slots[2 * s + 1] = i + 1;
        break;
      }
      if (slots[2 * s] === w && sameStrong(strong, strongLen, e - 1, i)) break;
    }
  }
  return { filter, filterWordBits, slots, slotBits };
}

function sameStrong(strong: Uint8Array, len: number, a: number, b: number): boolean {
  for (let k = 0, p = a * len, q = b * len; k < len; k++) if (strong[p + k] !== strong[q + k]) return false;
  return true;
}
