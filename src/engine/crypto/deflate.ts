// Parallel raw deflate, pigz style. The byte stream is cut into blocks; each block's compressible
// runs are deflated by node's async zlib (libuv threadpool, so several blocks compress on all cores
// at once) on reused zlib streams primed with the preceding 32 KiB, and Z_SYNC_FLUSH, which ends every
// piece on a byte boundary without a final block. Runs that would not compress (judged on a byte-entropy
// sample: running deflate on random data costs more than the rest of the pipeline) are written as
// stored blocks directly. Concatenated in order and closed by an empty final block, the pieces are
// one valid raw-deflate stream that any inflater (gpg, zlib) reads.
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';
import { OffsiteError } from '../errors';

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

/**
 * A long-lived raw-deflate stream that compresses one job at a time, each as a continuation of a
 * stream whose last 32 KiB are given. A zlib stream per job (zlib.deflateRaw) cost its creation, init
 * and dictionary on every 512 KiB block (measured: twice the main-thread time and ~8% more pool time).
 * Node cannot change a stream's preset dictionary after creation, so the window is primed instead:
 * after a reset, the 32 KiB before the job are deflated and their output dropped; every write ends
 * with Z_SYNC_FLUSH (byte-aligned, no final block), so the job's own output follows on and its
 * back-references into that window decode against the same bytes in the real stream.
 */
class DeflateHandle {
  private readonly stream: zlib.DeflateRaw;
  private out: Buffer[] | undefined;
  broken = false;

  constructor(readonly level: number) {
    // Few output chunks per job: each one is a round trip through the (busy) main thread.
    // memLevel 9 (zlib's default is 8): a hash table twice as large and twice the symbols per block,
    // for 384 KiB of state instead of 256: the same output within 0.2%, deflated 7% faster for source
    // text and 32% faster for the half-random pages of a database file (measured at level 1).
    this.stream = zlib.createDeflateRaw({ level, memLevel: 9, flush: zlib.constants.Z_SYNC_FLUSH, chunkSize: 128 * 1024 });
    this.stream.on('data', (c: Buffer) => this.out?.push(c));
    // Errors also reach the write callbacks below; a broken handle is not reused.
    this.stream.on('error', () => (this.broken = true));
  }

  run(data: Buffer, window: Buffer | undefined): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      this.stream.reset();
      const job = () => {
        const out: Buffer[] = [];
        this.out = out;
        this.stream.write(data, (err) => {
          this.out = undefined;
          if (err) return reject(err);
          // Every piece ends with the sync flush's empty stored block (00 00 ff ff). Output arriving
          // after the callback would be lost from this piece: fail loudly rather than corrupt a volume.
          if (!endsWithSyncMarker(out)) {
            this.broken = true;
            return reject(new Error('deflate: a piece did not end on a sync flush'));
          }
          resolve(out);
        });
      };
      if (!window || window.length === 0) return job();
      this.out = undefined;
      this.stream.write(window, (err) => (err ? reject(err) : job()));
    });
  }

  close(): void {
    this.stream.destroy();
  }
}

function endsWithSyncMarker(chunks: readonly Buffer[]): boolean {
  const tail: number[] = [];
  for (let i = chunks.length - 1; i >= 0 && tail.length < 4; i--) {
    for (let j = chunks[i].length - 1; j >= 0 && tail.length < 4; j--) tail.unshift(chunks[i][j]);
  }
  return tail.length === 4 && tail[0] === 0 && tail[1] === 0 && tail[2] === 0xff && tail[3] === 0xff;
}

/** Idle handles by level, shared by every deflater of the process; closed after a quiet spell. */
const idle = new Map<number, DeflateHandle[]>();
const MAX_IDLE = 6;
const IDLE_MS = 15_000;
let idleTimer: NodeJS.Timeout | undefined;

async function deflatePiece(data: Buffer, window: Buffer | undefined, level: number): Promise<Buffer[]> {
  const h = idle.get(level)?.pop() ?? new DeflateHandle(level);
  try {
    return await h.run(data, window);
  } finally {
    release(h);
  }
}

function release(h: DeflateHandle): void {
  let list = idle.get(h.level);
  if (!list) idle.set(h.level, (list = []));
  if (h.broken || list.length >= MAX_IDLE) h.close();
  else list.push(h);
  armIdleTimer();
}

/**
 * The zlib state is ~400 KB per handle, a spare block 512 KiB: a long-lived process (the extension's
 * engine) frees them once backups stop.
 */
function armIdleTimer(): void {
  idleTimer?.refresh();
  idleTimer ??= setTimeout(() => {
    idleTimer = undefined;
    for (const l of idle.values()) for (const x of l.splice(0)) x.close();
    spareBlocks.clear();
  }, IDLE_MS).unref();
}

interface Job {
  done: boolean;
  readonly result: Promise<Buffer[]>;
  /** The block's whole buffer, for reuse once the job's pieces were emitted. */
  readonly buffer: Buffer;
}

/**
 * Block buffers of finished jobs, shared by every deflater of the process (a backup writes a volume
 * after another, each with its own deflater). A fresh 512 KiB buffer per block was ~390 MiB of
 * ArrayBuffers in a 20k-file full backup, and V8 counts such external memory against its
 * old-generation limit: it started a major GC every ~14 MB of them (~75 in that backup, ~25 ms of
 * marking each). Kept while deflaters run; dropped after a quiet spell, as the zlib handles.
 */
const spareBlocks = new Map<number, Buffer[]>();
const MAX_SPARE_BLOCKS = 8;

/**
 * Compresses a byte stream into one raw-deflate stream, using several threads. `write` copies into the
 * current block; `drain` must be awaited regularly (it emits finished blocks in order and waits while
 * too many are in flight); `end` flushes everything and adds the final block. The pieces given to
 * `emit` may be slices of a block: they are valid until the promise it returns settles (the block is
 * then reused), so `emit` must have consumed or copied them by then.
 */
export class ParallelDeflater {
  private readonly blockSize: number;
  private readonly maxInFlight: number;
  private readonly level: number;
  private readonly threshold: number;
  private block: Buffer;
  private fill = 0;
  private prev: Buffer | undefined;
  /** An emitted block that is still `prev` (the next block's dictionary is taken from it). */
  private emittedPrev: Buffer | undefined;
  private readonly jobs: Job[] = [];
  private failure: unknown;
  private ended = false;

  constructor(
    private readonly emit: (pieces: Buffer[]) => Promise<void>,
    opts: ParallelDeflateOptions = {},
  ) {
    this.blockSize = Math.max(opts.blockSize ?? 512 * 1024, WINDOW);
    const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? Math.min(availableParallelism() + 1, pool - 1));
    this.level = opts.level ?? 1;
    this.threshold = opts.storeAboveEntropy ?? 7.2;
    this.block = this.newBlock();
  }

  /** Copies `data` into blocks, starting a job for each full block. */
  write(data: Buffer): void {
    // After end() the current block is a spare that another deflater may be filling.
    if (this.ended) throw new OffsiteError('internal', 'ParallelDeflater.write() after end()');
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
    while (this.jobs.length > 0 && (this.jobs[0].done || this.jobs.length >= this.maxInFlight)) await this.emitNext();
    if (this.failure) throw this.failure;
  }

  /** Compresses what is left, emits everything, then the final empty block. */
  async end(): Promise<void> {
    this.ended = true;
    if (this.fill > 0) this.submit();
    while (this.jobs.length > 0) await this.emitNext();
    await this.emit([FINAL_BLOCK]);
    this.recycle(this.emittedPrev);
    this.recycle(this.block);
  }

  private async emitNext(): Promise<void> {
    const job = this.jobs.shift() as Job;
    await this.emit(await job.result);
    // Its pieces are consumed and its zlib writes done: the buffer can take another block, unless
    // the next block (not yet submitted) still needs its last 32 KiB. (A block, at least 32 KiB, has
    // an ArrayBuffer of its own: Node pools only allocations under 4 KiB.)
    if (this.prev?.buffer === job.buffer.buffer) this.emittedPrev = job.buffer;
    else this.recycle(job.buffer);
  }

  private submit(): void {
    const buffer = this.block;
    const block = this.fill === this.blockSize ? buffer : buffer.subarray(0, this.fill);
    const prev = this.prev;
    this.prev = block;
    this.block = this.newBlock();
    this.fill = 0;
    // compressBlock copies what it needs of `prev` before it returns (its dictionaries).
    const job: Job = { done: false, result: this.compressBlock(block, prev), buffer };
    this.recycle(this.emittedPrev);
    this.emittedPrev = undefined;
    job.result.then(
      () => (job.done = true),
      (e: unknown) => {
        job.done = true;
        this.failure ??= e;
      },
    );
    this.jobs.push(job);
  }

  private newBlock(): Buffer {
    return spareBlocks.get(this.blockSize)?.pop() ?? Buffer.allocUnsafe(this.blockSize);
  }

  private recycle(buffer: Buffer | undefined): void {
    if (!buffer || buffer.length !== this.blockSize) return;
    let list = spareBlocks.get(this.blockSize);
    if (!list) spareBlocks.set(this.blockSize, (list = []));
    if (list.length < MAX_SPARE_BLOCKS) list.push(buffer);
    armIdleTimer();
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
    const parts: (Buffer[] | Promise<Buffer[]>)[] = runs.map((r) => {
      const data = block.subarray(r.start, r.end);
      if (r.store) {
        const out: Buffer[] = [];
        storedBlocks(data, out);
        return out;
      }
      return deflatePiece(data, this.dictionary(block, prev, r.start), this.level);
    });
    const out: Buffer[] = [];
    for (const p of parts) out.push(...(await p));
    return out;
  }

  /** The 32 KiB of the stream before offset `at` of `block` (the decoder's window at that point). */
  private dictionary(block: Buffer, prev: Buffer | undefined, at: number): Buffer | undefined {
    if (at >= WINDOW) return block.subarray(at - WINDOW, at);
    if (!prev) return at > 0 ? block.subarray(0, at) : undefined;
    return Buffer.concat([prev.subarray(prev.length - (WINDOW - at)), block.subarray(0, at)]);
  }
}
