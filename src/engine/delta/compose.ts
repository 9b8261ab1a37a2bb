// Restoring a file from a snapshot and the librsync deltas after it (FORMAT §7.2, §9) in one pass.
// Applying each delta in turn wrote and read back every intermediate version (ten sets of a 100 MiB
// file: ~2 GB of temp-file traffic). Instead the deltas are composed first: each version is a list of
// pieces, ranges of the basis (the snapshot) or of the literal spool (the deltas' LITERAL bytes), and a
// delta's COPY maps a range of the previous version onto the pieces that hold it. The final list is
// then written out once: straight from the snapshot's stream when it reads the snapshot front to back
// (appends and in-place edits, the usual case; no temp file at all), else from a temp copy of it.
// Memory: the piece lists (24 bytes a piece, merged when contiguous) and up to SPOOL_MEMORY of
// literals; a version with more than MAX_PIECES pieces is written to a temp file and becomes the basis.
import * as fs from 'node:fs';
import { OffsiteError } from '../errors';
import { readFullySync, writeAllSync } from '../util/syncIo';
import { copyPastEnd, OutputGatherer, walkDelta } from './patch';

export interface ComposeOptions {
  /** A new private temp file name each call (the caller removes nothing: files are removed here). */
  readonly tempFile: () => string;
  /** Literal bytes kept in memory before the spool goes to a temp file (default 8 MiB). */
  readonly spoolMemory?: number;
  /** Pieces a version may have before it is written out as the new basis (default 256k). */
  readonly maxPieces?: number;
}

const SPOOL_BLOCK = 256 * 1024;
const READ_PIECE = 1024 * 1024;
/** Source of a piece: `src` ≥ 0 is an offset in the basis, `src` < 0 is −1 − offset in the spool. */
const lit = (offset: number) => -1 - offset;

/** One version of the file: pieces in output order, with their cumulative end offsets. */
class Pieces {
  src: Float64Array = new Float64Array(64);
  len: Float64Array = new Float64Array(64);
  end: Float64Array = new Float64Array(64);
  n = 0;
  private hint = 0;

  get size(): number {
    return this.n === 0 ? 0 : this.end[this.n - 1];
  }

  push(src: number, len: number): void {
    const n = this.n;
    if (n > 0) {
      const ps = this.src[n - 1];
      // Contiguous with the previous piece, in the same store: extend it.
      if ((ps >= 0 && src === ps + this.len[n - 1]) || (ps < 0 && src === ps - this.len[n - 1])) {
        this.len[n - 1] += len;
        this.end[n - 1] += len;
        return;
      }
    }
    if (n === this.src.length) {
      this.src = grow(this.src);
      this.len = grow(this.len);
      this.end = grow(this.end);
    }
    this.src[n] = src;
    this.len[n] = len;
    this.end[n] = (n > 0 ? this.end[n - 1] : 0) + len;
    this.n = n + 1;
  }

  /** The piece holding output offset `pos` (< size). COPYs mostly go forward: the last answer is tried first. */
  find(pos: number): number {
    const h = this.hint;
    if (h < this.n && this.end[h] > pos && (h === 0 || this.end[h - 1] <= pos)) return h;
    if (h + 1 < this.n && this.end[h + 1] > pos && this.end[h] <= pos) return (this.hint = h + 1);
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.end[mid] > pos) hi = mid;
      else lo = mid + 1;
    }
    return (this.hint = lo);
  }

  /** Appends the pieces that hold [pos, pos+len) of `from` (the caller checked the range). */
  copyFrom(from: Pieces, pos: number, len: number): void {
    let i = from.find(pos);
    while (len > 0) {
      const start = from.end[i] - from.len[i];
      const skip = pos - start;
      const n = Math.min(from.len[i] - skip, len);
      const s = from.src[i];
      this.push(s >= 0 ? s + skip : s - skip, n);
      pos += n;
      len -= n;
      i++;
    }
  }
}

function grow(a: Float64Array): Float64Array {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/** Append-only store of literal bytes: in memory up to a limit, then in a temp file. */
class LiteralSpool {
  private readonly blocks: Buffer[] = [];
  private current = Buffer.allocUnsafe(SPOOL_BLOCK);
  private fill = 0;
  private fd: number | undefined;
  private file: string | undefined;
  private fileBlocks = 0;
  /** Blocks before this one live in `blocks`; from it on (but for `current`), in the file. */
  private readonly memoryBlocks: number;
  size = 0;

  constructor(memory: number, private readonly tempFile: () => string) {
    this.memoryBlocks = Math.max(1, Math.floor(memory / SPOOL_BLOCK));
  }

  append(piece: Buffer): void {
    let o = 0;
    while (o < piece.length) {
      const n = Math.min(SPOOL_BLOCK - this.fill, piece.length - o);
      piece.copy(this.current, this.fill, o, o + n);
      this.fill += n;
      o += n;
      if (this.fill === SPOOL_BLOCK) this.seal();
    }
    this.size += piece.length;
  }

  /** `length` bytes at `offset` (within what was appended), as one or more buffers never modified later. */
  read(offset: number, length: number, out: Buffer[]): void {
    while (length > 0) {
      const b = Math.floor(offset / SPOOL_BLOCK);
      const within = offset - b * SPOOL_BLOCK;
      const n = Math.min(SPOOL_BLOCK - within, length);
      const sealed = this.blocks.length + (this.fd === undefined ? 0 : this.fileBlocks);
      if (b < this.blocks.length) out.push(this.blocks[b].subarray(within, within + n));
      else if (b < sealed) {
        const buf = Buffer.allocUnsafe(n);
        readExactly(this.fd!, buf, (b - this.blocks.length) * SPOOL_BLOCK + within);
        out.push(buf);
      } else out.push(this.current.subarray(within, within + n)); // bytes already written never change
      offset += n;
      length -= n;
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    if (this.file) fs.rmSync(this.file, { force: true });
    this.fd = undefined;
    this.file = undefined;
  }

  private seal(): void {
    if (this.blocks.length < this.memoryBlocks) this.blocks.push(this.current);
    else {
      if (this.fd === undefined) {
        this.file = this.tempFile();
        this.fd = fs.openSync(this.file, 'wx+', 0o600);
      }
      writeAllSync(this.fd, this.current, this.fileBlocks * SPOOL_BLOCK);
      this.fileBlocks++;
    }
    this.current = Buffer.allocUnsafe(SPOOL_BLOCK);
    this.fill = 0;
  }
}

function readExactly(fd: number, buf: Buffer, position: number): void {
  if (readFullySync(fd, buf, position) !== buf.length) throw new OffsiteError('internal', 'A restore temp file is shorter than written');
}

/**
 * Writes the file that results from applying `deltas` in order to `snapshot` through `write` (awaited:
 * backpressure), reading each delta and the snapshot once. Returns the bytes written.
 * The snapshot is read after all the deltas. Errors as applyDelta: OffsiteError('format') for a bad
 * delta, OffsiteError('integrity') for a COPY past the end of the version it copies from.
 */
export async function patchThroughDeltas(
  snapshot: AsyncIterable<Buffer>,
  deltas: readonly AsyncIterable<Buffer>[],
  write: (chunk: Buffer) => Promise<void> | void,
  opts: ComposeOptions,
): Promise<number> {
  if (deltas.length === 0) {
    // The snapshot's pieces as they come (views of the member's data, never modified): gathering them
    // cost two 256 KiB buffers per file, most of a full restore's allocations.
    let written = 0;
    for await (const c of snapshot) {
      written += c.length;
      await write(c);
    }
    return written;
  }
  const maxPieces = opts.maxPieces ?? 256 * 1024;
  const spool = new LiteralSpool(opts.spoolMemory ?? 8 * 1024 * 1024, opts.tempFile);
  const temps: string[] = [];
  /** The basis: the snapshot's stream until it has to be written to a file. */
  let basisFile: string | undefined;
  const basisToFile = async (): Promise<string> => {
    if (basisFile) return basisFile;
    const file = opts.tempFile();
    temps.push(file);
    const fh = await fs.promises.open(file, 'wx', 0o600);
    try {
      for await (const c of snapshot) await fh.write(c);
    } finally {
      await fh.close();
    }
    return (basisFile = file);
  };
  try {
    // The snapshot's size is unknown until it is read: a COPY past its end is found when writing.
    let version = new Pieces();
    version.push(0, Number.MAX_SAFE_INTEGER);
    for (const delta of deltas) {
      if (version.n > maxPieces) {
        // Too fragmented to keep composing in memory: this version becomes the basis.
        const file = opts.tempFile();
        temps.push(file);
        const fh = await fs.promises.open(file, 'wx', 0o600);
        try {
          await writePieces(version, await basisToFile(), spool, (c) => fh.write(c).then(() => undefined));
        } finally {
          await fh.close();
        }
        basisFile = file;
        version = new Pieces();
        version.push(0, fs.statSync(file).size);
      }
      const from = version;
      const next = new Pieces();
      await walkDelta(delta, {
        literal(piece) {
          next.push(lit(spool.size), piece.length);
          spool.append(piece);
        },
        copy(position, length) {
          if (position + length > from.size) throw copyPastEnd(position, length);
          next.copyFrom(from, position, length);
        },
      });
      version = next;
    }
    if (basisFile === undefined && readsForward(version)) return await streamPieces(version, snapshot, spool, write);
    return await writePieces(version, await basisToFile(), spool, write);
  } finally {
    spool.close();
    for (const t of temps) fs.rmSync(t, { force: true });
  }
}

/** True when the basis ranges come in ascending, non-overlapping order. */
function readsForward(v: Pieces): boolean {
  let at = 0;
  for (let i = 0; i < v.n; i++) {
    const s = v.src[i];
    if (s < 0) continue;
    if (s < at) return false;
    at = s + v.len[i];
  }
  return true;
}

/** Writes a version whose basis ranges read forward, reading the basis as a stream once. */
async function streamPieces(v: Pieces, basis: AsyncIterable<Buffer>, spool: LiteralSpool, write: (chunk: Buffer) => Promise<void> | void): Promise<number> {
  const out = new OutputGatherer(write);
  const it = basis[Symbol.asyncIterator]();
  let chunk: Buffer = Buffer.alloc(0);
  let chunkPos = 0; // basis offset of chunk[0]
  const pieces: Buffer[] = [];
  for (let i = 0; i < v.n; i++) {
    const s = v.src[i];
    if (s < 0) {
      pieces.length = 0;
      spool.read(-1 - s, v.len[i], pieces);
      for (const p of pieces) {
        const pending = out.add(p);
        if (pending) await pending;
      }
      continue;
    }
    for (let pos = s, len = v.len[i]; len > 0; ) {
      while (pos >= chunkPos + chunk.length) {
        chunkPos += chunk.length;
        const r = await it.next();
        if (r.done === true) throw copyPastEnd(s, v.len[i], chunkPos);
        chunk = r.value;
      }
      const from = pos - chunkPos;
      const n = Math.min(chunk.length - from, len);
      const pending = out.add(chunk.subarray(from, from + n));
      if (pending) await pending;
      pos += n;
      len -= n;
    }
  }
  // The rest of the snapshot is not needed: the set reader skips it (ending its iterator here would
  // end a multivolume body's reader before it found the next record).
  await out.flush();
  return out.written;
}

/** Writes a version by reading its basis ranges from `basisFile`. */
async function writePieces(v: Pieces, basisFile: string, spool: LiteralSpool, write: (chunk: Buffer) => Promise<void> | void): Promise<number> {
  const out = new OutputGatherer(write);
  const fh = await fs.promises.open(basisFile, 'r');
  const pieces: Buffer[] = [];
  try {
    for (let i = 0; i < v.n; i++) {
      const s = v.src[i];
      const len = v.len[i];
      if (s < 0) {
        pieces.length = 0;
        spool.read(-1 - s, len, pieces);
        for (const p of pieces) {
          const pending = out.add(p);
          if (pending) await pending;
        }
        continue;
      }
      for (let done = 0; done < len; ) {
        const want = Math.min(READ_PIECE, len - done);
        const buf = Buffer.allocUnsafe(want);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, s + done + got);
          if (bytesRead === 0) throw copyPastEnd(s, len, s + done + got);
          got += bytesRead;
        }
        const pending = out.add(buf);
        if (pending) await pending;
        done += want;
      }
    }
    await out.flush();
    return out.written;
  } finally {
    await fh.close();
  }
}
