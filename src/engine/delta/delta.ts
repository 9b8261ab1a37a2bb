// librsync deltas (FORMAT §7.2), made the way librsync 2.3.2 makes them (src/delta.c): a window of
// block_len bytes slides over the new file; a window whose rollsum is in the signature and whose MD4
// confirms becomes a COPY (adjacent ones merged), otherwise one byte becomes literal and the window rolls
// on; at the end of input the window shrinks so a short tail can match the short last block. Literal
// runs are cut at 32 KiB and every opcode uses its smallest widths, so for files without repeated
// blocks the output is byte-identical to `rdiff delta`.
//
// One addition: before looking a fresh window up, we test the block that follows the last match (files
// usually change in place), which skips the rollsum for unchanged stretches and, for repeated blocks,
// picks the continuing block so that COPYs merge (librsync picks the first such block instead). With
// strong sums shorter than 8 bytes (never duplicity's) that test checks the weak sum too.
import { OffsiteError } from '../errors';
import { md4Into } from './md4';
import { LOOKUP_MULTIPLIER, ROLLSUM_CHAR_OFFSET, rollsumInit, type RollsumState } from './rollsum';
import type { Signature } from './signature';

// Local copies: under tsx's CommonJS output an imported binding is a getter call on every use.
const MIX = LOOKUP_MULTIPLIER;
const CHAR_OFFSET = ROLLSUM_CHAR_OFFSET;

export const DELTA_MAGIC = 0x72730236;

/** librsync's cap on a literal run (src/delta.c MAX_DATA_LEN). */
export const MAX_LITERAL_RUN = 32768;
/** Input is scanned in slices of this size, which bounds the working buffer. */
const SLICE = 1 << 20;
/** The smallest slice a scan buffer is made for (a file that grew past its hint is scanned in these). */
const MIN_SLICE = 16 * 1024;

export const OP_END = 0x00;
export const OP_LITERAL_N1 = 0x41;
export const OP_COPY_N1_N1 = 0x45;

/** Smallest of 1, 2, 4, 8 bytes that holds `v` (librsync's rs_int_len()). */
function intLen(v: number): number {
  if (v <= 0xff) return 1;
  if (v <= 0xffff) return 2;
  if (v <= 0xffffffff) return 4;
  return 8;
}
const WIDTH_CODE: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3 };

/**
 * Streaming delta against a parsed signature: update() returns the delta bytes ready so far (maybe empty;
 * the first call's output starts with the magic), finish() returns the rest ending with END.
 * Memory bounded: pending literal data is flushed in pieces of at most 32 KiB as librsync does.
 */
export class DeltaEncoder {
  private readonly sig: Signature;
  private readonly blockLen: number;
  private readonly count: number;
  // The signature's lookup structures, unpacked for the hot loops.
  private readonly filter: Int32Array;
  private readonly filterShift: number;
  private readonly slots: Int32Array;
  private readonly slotShift: number;
  /** Unscanned input plus the pending literal run: buf[lit, avail). */
  private readonly buf: Buffer;
  private avail = 0;
  /** Start of the current window. */
  private pos = 0;
  /** Start of the pending literal run (== pos when there is none). */
  private lit = 0;
  /** Pending COPY (matchLen 0: none). */
  private matchPos = 0;
  private matchLen = 0;
  /** Rollsum of the window [pos, pos + weakLen); weakLen 0 = not computed yet. */
  private s1 = 0;
  private s2 = 0;
  private weakLen = 0;
  private readonly fresh: RollsumState = { s1: 0, s2: 0 };
  /** The block expected at pos if the file continues unchanged after the last match. */
  private nextBlock = 0;
  /** MD4 of the window, computed at most once per window. */
  private readonly digest = Buffer.alloc(16);
  private digestPos = -1;
  private digestLen = 0;
  private out: Buffer;
  private outLen = 0;
  private finished = false;

  /**
   * @param expectedSize the new file's size when known (its lstat): the scan buffer is sized for it,
   *   up to a 1 MiB slice. A buffer of 1.1 MiB for every changed file (mostly small ones) was an
   *   mmap and tens of MiB of external memory per thousand files for V8 to collect. Any input
   *   length works whatever the hint; it only bounds how much is scanned per step.
   */
  constructor(signature: Signature, expectedSize = SLICE) {
    this.sig = signature;
    this.blockLen = signature.blockLen;
    this.count = signature.blockCount;
    this.filter = signature.lookup.filter;
    this.filterShift = 32 - signature.lookup.filterWordBits;
    this.slots = signature.lookup.slots;
    this.slotShift = 32 - signature.lookup.slotBits;
    const slice = Math.min(SLICE, Math.max(MIN_SLICE, expectedSize));
    this.buf = Buffer.allocUnsafe(slice + MAX_LITERAL_RUN + 2 * this.blockLen + 64);
    this.out = Buffer.allocUnsafe(Math.min(64 * 1024, 4096 + expectedSize));
    this.out.writeUInt32BE(DELTA_MAGIC, 0);
    this.outLen = 4;
  }

  update(data: Uint8Array): Buffer {
    if (this.finished) throw new OffsiteError('internal', 'DeltaEncoder.update() after finish()');
    let off = 0;
    while (off < data.length) {
      const want = Math.min(data.length - off, SLICE);
      if (this.buf.length - this.avail < want) this.compact();
      const n = Math.min(want, this.buf.length - this.avail);
      this.buf.set(data.subarray(off, off + n), this.avail);
      this.avail += n;
      off += n;
      this.scan();
    }
    return this.takeOutput();
  }

  finish(): Buffer {
    if (this.finished) throw new OffsiteError('internal', 'DeltaEncoder.finish() called twice');
    this.finished = true;
    this.scanTail();
    this.flushPending(this.pos);
    this.reserve(1);
    this.out[this.outLen++] = OP_END;
    return this.takeOutput();
  }

  /** Drops everything before the pending literal run; what stays is at most 32 KiB + one block. */
  private compact(): void {
    const keep = this.lit;
    if (keep === 0) return;
    this.buf.copyWithin(0, keep, this.avail);
    this.avail -= keep;
    this.pos -= keep;
    this.lit = 0;
    this.digestPos = -1;
  }

  /** Scans while the window is whole and the byte after it is present (librsync's rs_delta_s_scan). */
  private scan(): void {
    const B = this.blockLen;
    const buf = this.buf;
    const end = this.avail - B;
    const { filter, slots } = this;
    const fShift = this.filterShift;
    const sShift = this.slotShift;
    const mask = (slots.length >> 1) - 1;
    const outOffset = B * CHAR_OFFSET;
    let pos = this.pos;
    while (pos < end) {
      if (this.weakLen === 0) {
        const next = this.nextBlock;
        if (this.expectedMatches(pos, B)) {
          this.appendMatch(next, pos, B);
          pos += B;
          this.weakLen = 0;
          continue;
        }
        if (this.weakLen === 0) this.initWeak(pos, B);
      }
      const idx = this.findMatch(pos, B);
      if (idx >= 0) {
        this.appendMatch(idx, pos, B);
        pos += B;
        this.weakLen = 0;
        continue;
      }
      // A miss: this byte becomes literal. Then roll on in a tight loop while no block has the
      // window's weak sum (the Bloom filter settles most windows), up to the literal-run cap or the
      // end of the scannable input; only a weak-sum hit goes back to the strong-sum check above.
      this.appendMiss(pos);
      let s1 = this.s1;
      let s2 = this.s2;
      const limit = Math.min(end, this.lit + MAX_LITERAL_RUN);
      for (;;) {
        const o = buf[pos];
        s1 = (s1 + buf[pos + B] - o) | 0;
        s2 = (s2 + s1 - B * o - outOffset) | 0;
        pos++;
        if (pos >= limit) break;
        const w = (s2 << 16) | (s1 & 0xffff);
        const m = Math.imul(w, MIX);
        const bits = (1 << (m & 31)) | (1 << ((m >>> 5) & 31));
        if ((filter[m >>> fShift] & bits) !== bits) continue;
        let e = 0;
        for (let sl = m >>> sShift; (e = slots[2 * sl + 1]) !== 0 && slots[2 * sl] !== w; sl = (sl + 1) & mask);
        if (e !== 0) break;
      }
      this.s1 = s1;
      this.s2 = s2;
    }
    this.pos = pos;
  }

  /** End of input: the window shrinks from the front (librsync's rs_delta_s_flush). */
  private scanTail(): void {
    let pos = this.pos;
    const avail = this.avail;
    while (pos < avail) {
      if (this.weakLen === 0) {
        const len = avail - pos;
        const next = this.nextBlock;
        if (this.expectedMatches(pos, len)) {
          this.appendMatch(next, pos, len);
          pos += len;
          this.weakLen = 0;
          continue;
        }
        if (this.weakLen === 0) this.initWeak(pos, len);
      }
      const len = this.weakLen;
      const idx = this.findMatch(pos, len);
      if (idx >= 0) {
        this.appendMatch(idx, pos, len);
        pos += len;
        this.weakLen = 0;
        continue;
      }
      this.appendMiss(pos);
      const o = this.buf[pos] + CHAR_OFFSET;
      this.s1 = (this.s1 - o) | 0;
      this.s2 = (this.s2 - len * o) | 0;
      this.weakLen = len - 1;
      pos++;
    }
    this.pos = pos;
  }

  /**
   * Whether the window is the block that follows the last match. An 8-byte or longer MD4 prefix settles
   * it alone (as it does after a weak-sum hit in librsync); shorter strong sums collide too easily, so
   * then the weak sum must agree as well.
   */
  private expectedMatches(pos: number, len: number): boolean {
    const next = this.nextBlock;
    if (next >= this.count) return false;
    if (this.sig.strongLen < 8) {
      this.initWeak(pos, len);
      if (((this.s2 << 16) | (this.s1 & 0xffff)) !== this.sig.weakSums[next]) return false;
    }
    return this.strongMatches(pos, len, next);
  }

  private initWeak(pos: number, len: number): void {
    rollsumInit(this.buf, pos, len, this.fresh);
    this.s1 = this.fresh.s1;
    this.s2 = this.fresh.s2;
    this.weakLen = len;
  }

  /** The first signature block with the window's weak and strong sum, or -1. */
  private findMatch(pos: number, len: number): number {
    const w = (this.s2 << 16) | (this.s1 & 0xffff);
    const m = Math.imul(w, MIX);
    const bits = (1 << (m & 31)) | (1 << ((m >>> 5) & 31));
    if ((this.filter[m >>> this.filterShift] & bits) !== bits) return -1;
    const slots = this.slots;
    const mask = (slots.length >> 1) - 1;
    for (let s = m >>> this.slotShift; ; s = (s + 1) & mask) {
      const e = slots[2 * s + 1];
      if (e === 0) return -1;
      if (slots[2 * s] === w && this.strongMatches(pos, len, e - 1)) return e - 1;
    }
  }

  private strongMatches(pos: number, len: number, block: number): boolean {
    if (this.digestPos !== pos || this.digestLen !== len) {
      md4Into(this.buf, pos, len, this.digest, 0);
      this.digestPos = pos;
      this.digestLen = len;
    }
    const sl = this.sig.strongLen;
    const strong = this.sig.strongSums;
    const d = this.digest;
    for (let k = 0, p = block * sl; k < sl; k++) if (d[k] !== strong[p + k]) return false;
    return true;
  }

  /** librsync's rs_appendmatch(): extend the pending COPY when adjacent, else flush and start one. */
  private appendMatch(block: number, pos: number, len: number): void {
    const where = block * this.blockLen;
    if (this.matchLen > 0 && this.matchPos + this.matchLen === where) {
      this.matchLen += len;
    } else {
      this.flushPending(pos);
      this.matchPos = where;
      this.matchLen = len;
    }
    this.lit = pos + len;
    this.nextBlock = block + 1;
  }

  /** librsync's rs_appendmiss() for the byte at pos: flush a pending COPY or a full literal run first. */
  private appendMiss(pos: number): void {
    if (this.matchLen > 0 || pos - this.lit >= MAX_LITERAL_RUN) this.flushPending(pos);
  }

  /** Emits the pending COPY or the literal run [lit, pos). */
  private flushPending(pos: number): void {
    if (this.matchLen > 0) {
      this.emitCopy(this.matchPos, this.matchLen);
      this.matchLen = 0;
    } else if (pos > this.lit) {
      this.emitLiteral(this.lit, pos);
    }
    this.lit = pos;
  }

  private emitLiteral(start: number, end: number): void {
    const len = end - start;
    this.reserve(5 + len);
    const o = this.out;
    let q = this.outLen;
    if (len <= 64) {
      o[q++] = len;
    } else {
      const w = intLen(len);
      o[q++] = OP_LITERAL_N1 + WIDTH_CODE[w];
      q = writeUIntBE(o, q, len, w);
    }
    this.buf.copy(o, q, start, end);
    this.outLen = q + len;
  }

  private emitCopy(where: number, len: number): void {
    this.reserve(17);
    const o = this.out;
    const ww = intLen(where);
    const lw = intLen(len);
    let q = this.outLen;
    o[q++] = OP_COPY_N1_N1 + 4 * WIDTH_CODE[ww] + WIDTH_CODE[lw];
    q = writeUIntBE(o, q, where, ww);
    q = writeUIntBE(o, q, len, lw);
    this.outLen = q;
  }

  private reserve(n: number): void {
    if (this.outLen + n <= this.out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.outLen + n));
    this.out.copy(bigger, 0, 0, this.outLen);
    this.out = bigger;
  }

  private takeOutput(): Buffer {
    const result = Buffer.allocUnsafe(this.outLen);
    this.out.copy(result, 0, 0, this.outLen);
    this.outLen = 0;
    // Don't keep a buffer grown by one huge update() call.
    if (this.out.length > 4 * SLICE) this.out = Buffer.allocUnsafe(64 * 1024);
    return result;
  }
}

/** Writes `v` (< 2^53) big-endian in `width` bytes at o[q...]; returns the next offset. */
function writeUIntBE(o: Buffer, q: number, v: number, width: number): number {
  if (width === 8) {
    o.writeUInt32BE(Math.floor(v / 0x100000000), q);
    o.writeUInt32BE(v >>> 0, q + 4);
  } else {
    o.writeUIntBE(v, q, width);
  }
  return q + width;
}
