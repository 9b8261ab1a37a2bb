// Parallel raw deflate, pigz style. The byte stream is cut into blocks; each block's compressible
// runs are deflated by node's async zlib (libuv threadpool, so several blocks compress on all cores
// at once) with the preceding 32 KiB as preset dictionary and Z_SYNC_FLUSH, which ends every piece on
// a byte boundary without a final block. Runs that would not compress (judged on a byte-entropy
// sample: running deflate on random data costs more than the rest of the pipeline) are written as
// stored blocks directly. Concatenated in order and closed by an empty final block, the pieces are
// one valid raw-deflate stream that any inflater (gpg, zlib) reads.
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';

export interface ParallelDeflateOptions {
  /** Bytes per compression job (default 512 KiB). */
  readonly blockSize?: number;
  /**
   * Jobs compressing at once. Default: cores + 1, but at most the libuv threadpool size − 1
   * (UV_THREADPOOL_SIZE, default 4), so file reads, which share that pool, are not starved.
   */
  readonly maxInFlight?: number;
  /** zlib level for compressible runs (default 1: deflate speed is the bottleneck, level 6 gains little). */
  readonly level?: number;
  /** Sample entropy (bits per byte) above which a 64 KiB segment is stored (default 7.2). */
  readonly storeAboveEntropy?: number;
}

const WINDOW = 32 * 1024;
const SEGMENT = 64 * 1024;
const STORED_MAX = 65535;
/** An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block code. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

const LOG_TABLE = (() => {
  const t = new Float64Array(4097);
  for (let i = 1; i <= 4096; i++) t[i] = i * Math.log2(i);
  return t;
})();
const hist = new Uint32Array(256);

/**
 * Order-0 entropy in bits per byte of a sample of `seg` (8 runs of 512 bytes spread over it, or the
 * whole of a short segment). Random or already compressed data scores ~7.95; source text 4–5.5.
 */
export function sampleEntropy(seg: Buffer): number {
  hist.fill(0);
  let n = 0;
  if (seg.length <= 4096) {
    for (let i = 0; i < seg.length; i++) hist[seg[i]]++;
    n = seg.length;
  } else {
    const step = Math.floor((seg.length - 512) / 7);
    for (let r = 0; r < 8; r++) {
      const o = r * step;
      for (let i = o; i < o + 512; i++) hist[seg[i]]++;
    }
    n = 4096;
  }
  if (n === 0) return 0;
  let s = 0;
  for (let i = 0; i < 256; i++) s += LOG_TABLE[hist[i]];
  return Math.log2(n) - s / n;
}

/** Stored (uncompressed) deflate blocks for `data`, non-final, starting and ending byte-aligned. */
export function storedBlocks(data: Buffer, out: Buffer[]): void {
  for (let o = 0; o < data.length; o += STORED_MAX) {
    const piece = data.subarray(o, Math.min(o + STORED_MAX, data.length));
    const h = Buffer.allocUnsafe(5);
    h[0] = 0x00; // BFINAL=0, BTYPE=00; the rest of the byte is padding
    h.writeUInt16LE(piece.length, 1);
    h.writeUInt16LE(piece.length ^ 0xffff, 3);
    out.push(h, piece);
  }
}

function deflateAsync(data: Buffer, dictionary: Buffer | undefined, level: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.deflateRaw(
      data,
      {
        level,
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        // Few output chunks per job: each one is a round trip through the (busy) main thread.
        chunkSize: 128 * 1024,
        ...(dictionary && dictionary.length > 0 ? { dictionary } : {}),
      },
      (err, out) => (err ? reject(err) : resolve(out)),
    );
  });
}

interface Job {
  done: boolean;
  readonly result: Promise<Buffer[]>;
}

/**
 * Compresses a byte stream into one raw-deflate stream, using several threads. `write` copies into the
 * current block; `drain` must be awaited regularly (it emits finished blocks in order and waits while
 * too many are in flight); `end` flushes everything and adds the final block.
 */
export class ParallelDeflater {
  private readonly blockSize: number;
  private readonly maxInFlight: number;
  private readonly level: number;
  private readonly threshold: number;
  private block: Buffer;
  private fill = 0;
  private prev: Buffer | undefined;
  private readonly jobs: Job[] = [];
  private failure: unknown;

  constructor(
    private readonly emit: (pieces: Buffer[]) => Promise<void>,
    opts: ParallelDeflateOptions = {},
  ) {
    this.blockSize = Math.max(opts.blockSize ?? 512 * 1024, WINDOW);
    const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? Math.min(availableParallelism() + 1, pool - 1));
    this.level = opts.level ?? 1;
    this.threshold = opts.storeAboveEntropy ?? 7.2;
    this.block = Buffer.allocUnsafe(this.blockSize);
  }

  /** Copies `data` into blocks, starting a job for each full block. */
  write(data: Buffer): void {
    let o = 0;
    while (o < data.length) {
      const n = Math.min(this.blockSize - this.fill, data.length - o);
      data.copy(this.block, this.fill, o, o + n);
      this.fill += n;
      o += n;
      if (this.fill === this.blockSize) this.submit();
    }
  }

  /** Emits finished blocks in order; waits until fewer than maxInFlight jobs are running. */
  async drain(): Promise<void> {
    while (this.jobs.length > 0 && (this.jobs[0].done || this.jobs.length >= this.maxInFlight)) {
      const job = this.jobs.shift() as Job;
      await this.emit(await job.result);
    }
    if (this.failure) throw this.failure;
  }

  /** Compresses what is left, emits everything, then the final empty block. */
  async end(): Promise<void> {
    if (this.fill > 0) this.submit();
    while (this.jobs.length > 0) {
      const job = this.jobs.shift() as Job;
      await this.emit(await job.result);
    }
    await this.emit([FINAL_BLOCK]);
  }

  private submit(): void {
    const block = this.fill === this.blockSize ? this.block : this.block.subarray(0, this.fill);
    const prev = this.prev;
    this.prev = block;
    this.block = Buffer.allocUnsafe(this.blockSize);
    this.fill = 0;
    const job: Job = { done: false, result: this.compressBlock(block, prev) };
    job.result.then(
      () => (job.done = true),
      (e: unknown) => {
        job.done = true;
        this.failure ??= e;
      },
    );
    this.jobs.push(job);
  }

  /** Splits a block into runs of compressible / incompressible 64 KiB segments and encodes each run. */
  private async compressBlock(block: Buffer, prev: Buffer | undefined): Promise<Buffer[]> {
    const runs: { start: number; end: number; store: boolean }[] = [];
    for (let s = 0; s < block.length; s += SEGMENT) {
      const e = Math.min(s + SEGMENT, block.length);
      const store = sampleEntropy(block.subarray(s, e)) > this.threshold;
      const last = runs[runs.length - 1];
      if (last && last.store === store) last.end = e;
      else runs.push({ start: s, end: e, store });
    }
    const parts: (Buffer[] | Promise<Buffer>)[] = runs.map((r) => {
      const data = block.subarray(r.start, r.end);
      if (r.store) {
        const out: Buffer[] = [];
        storedBlocks(data, out);
        return out;
      }
      return deflateAsync(data, this.dictionary(block, prev, r.start), this.level);
    });
    const out: Buffer[] = [];
    for (const p of parts) {
      const v = await p;
      if (Array.isArray(v)) out.push(...v);
      else out.push(v);
    }
    return out;
  }

  /** The 32 KiB of the stream before offset `at` of `block` (the decoder's window at that point). */
  private dictionary(block: Buffer, prev: Buffer | undefined, at: number): Buffer | undefined {
    if (at >= WINDOW) return block.subarray(at - WINDOW, at);
    if (!prev) return at > 0 ? block.subarray(0, at) : undefined;
    return Buffer.concat([prev.subarray(prev.length - (WINDOW - at)), block.subarray(0, at)]);
  }
}
