// Applies librsync deltas (FORMAT §7.2) with bounded memory: the delta is parsed as it streams in, the
// basis is read by ranges, and the output goes out in order through an awaited write callback. Accepts
// every opcode width (rdiff's, duplicity's and the N8 forms librsync never emits) and rejects what
// librsync's patcher rejects (zero-length commands, reserved opcodes, a missing END).
import type { FileHandle } from 'node:fs/promises';
import { OffsiteError } from '../errors';
import { DELTA_MAGIC } from './delta';

/** Random access to the previous version of a file. */
export interface RandomAccessSource {
  /** Up to `length` bytes at `position`; fewer only at the end of the source. */
  read(position: number, length: number): Promise<Buffer>;
}

export function bufferSource(buf: Buffer): RandomAccessSource {
  return {
    read(position, length) {
      return Promise.resolve(buf.subarray(Math.min(position, buf.length), Math.min(position + length, buf.length)));
    },
  };
}

/** Small reads are served from a read-ahead window, since deltas are mostly runs of ascending COPYs. */
const READ_AHEAD = 128 * 1024;

export function fileHandleSource(fh: FileHandle): RandomAccessSource {
  let cache: Buffer = Buffer.alloc(0);
  let cachePos = 0;
  async function readFully(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === length ? buf : buf.subarray(0, got);
  }
  return {
    async read(position, length) {
      if (position >= cachePos && position + length <= cachePos + cache.length) {
        return cache.subarray(position - cachePos, position - cachePos + length);
      }
      if (length >= READ_AHEAD / 2) return readFully(position, length);
      // The cache buffer is replaced, never overwritten, so slices handed out earlier stay valid.
      cache = await readFully(position, READ_AHEAD);
      cachePos = position;
      return cache.subarray(0, Math.min(length, cache.length));
    },
  };
}

/** Output is gathered into chunks of this size; bigger pieces are written as they are. */
const OUT_CHUNK = 256 * 1024;
/** Basis bytes are read at most this many at a time. */
const COPY_PIECE = 1024 * 1024;
const WIDTHS = [1, 2, 4, 8];

function formatError(message: string): OffsiteError {
  return new OffsiteError('format', message, { hint: 'The backup volume holding this delta is damaged or is not a librsync delta' });
}

/** Pulls bytes off the delta stream, keeping only the current chunk. */
class DeltaReader {
  private readonly it: AsyncIterator<Buffer>;
  chunk: Buffer = Buffer.alloc(0);
  off = 0;
  /** Bytes of the delta consumed before `chunk`. */
  base = 0;

  constructor(delta: AsyncIterable<Buffer>) {
    this.it = delta[Symbol.asyncIterator]();
  }

  get offset(): number {
    return this.base + this.off;
  }

  /** Makes at least one byte available; false at the end of the delta. */
  async more(): Promise<boolean> {
    while (this.off >= this.chunk.length) {
      const r = await this.it.next();
      if (r.done) return false;
      this.base += this.chunk.length;
      const v: Uint8Array = r.value;
      this.chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.off = 0;
    }
    return true;
  }

  async byte(what: string): Promise<number> {
    if (this.off >= this.chunk.length && !(await this.more())) throw formatError(`Delta is truncated: it ends inside ${what} at byte ${this.offset}`);
    return this.chunk[this.off++];
  }

  /** A big-endian unsigned integer of `width` bytes if the current chunk holds it, else -1. */
  uintNow(width: number, what: string): number {
    if (this.chunk.length - this.off < width) return -1;
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + this.chunk[this.off++];
    if (v > Number.MAX_SAFE_INTEGER) throw formatError(`Delta has an impossible ${what} (${v}) at byte ${this.offset - width}`);
    return v;
  }

  /** A big-endian unsigned integer of `width` bytes. */
  async uint(width: number, what: string): Promise<number> {
    const now = this.uintNow(width, what);
    if (now >= 0) return now;
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + (await this.byte(what));
    if (v > Number.MAX_SAFE_INTEGER) throw formatError(`Delta has an impossible ${what} (${v}) at byte ${this.offset - width}`);
    return v;
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

/** What a delta says to do, in order (see walkDelta). */
export interface DeltaCommands {
  /** Bytes of a LITERAL (a view of the delta's current chunk: copy it to keep it), in order. */
  literal(piece: Buffer): Promise<void> | void;
  /** A COPY of `length` bytes of the basis from `position` (both ≥ 1 byte, within safe integers). */
  copy(position: number, length: number): Promise<void> | void;
}

/**
 * Parses a librsync delta (any valid opcode widths, incl. rdiff's) as it streams in, calling `cmds` for
 * each command (awaited when it returns a promise). Throws OffsiteError('format') on a bad
 * magic/opcode/truncated delta and on data after END.
 */
export async function walkDelta(delta: AsyncIterable<Buffer>, cmds: DeltaCommands): Promise<void> {
  const r = new DeltaReader(delta);
  try {
    const magic = await r.uint(4, 'the magic number');
    if (magic !== DELTA_MAGIC) {
      throw formatError(`Not a librsync delta: magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${DELTA_MAGIC.toString(16)}`);
    }
    for (;;) {
      const at = r.offset;
      // Synchronous fast paths while the current chunk has the bytes: most commands are a few bytes.
      const op = r.off < r.chunk.length ? r.chunk[r.off++] : await r.byte('a command');
      if (op === 0x00) break;
      if (op <= 0x44) {
        let len = op <= 0x40 ? op : r.uintNow(WIDTHS[op - 0x41], 'LITERAL length');
        if (len < 0) len = await r.uint(WIDTHS[op - 0x41], 'LITERAL length');
        if (len === 0) throw formatError(`Delta has a LITERAL of length 0 at byte ${at}`);
        let left = len;
        while (left > 0) {
          if (r.off >= r.chunk.length && !(await r.more())) {
            throw formatError(`Delta is truncated: it ends inside a LITERAL of ${len} bytes (command at byte ${at})`);
          }
          const n = Math.min(left, r.chunk.length - r.off);
          const pending = cmds.literal(r.chunk.subarray(r.off, r.off + n));
          if (pending) await pending;
          r.off += n;
          left -= n;
        }
      } else if (op <= 0x54) {
        const k = op - 0x45;
        let where = r.uintNow(WIDTHS[k >> 2], 'COPY position');
        if (where < 0) where = await r.uint(WIDTHS[k >> 2], 'COPY position');
        let len = r.uintNow(WIDTHS[k & 3], 'COPY length');
        if (len < 0) len = await r.uint(WIDTHS[k & 3], 'COPY length');
        if (len === 0) throw formatError(`Delta has a COPY of length 0 at byte ${at}`);
        if (where + len > Number.MAX_SAFE_INTEGER) throw formatError(`Delta has an impossible COPY (${where}+${len}) at byte ${at}`);
        const pending = cmds.copy(where, len);
        if (pending) await pending;
      } else {
        throw formatError(`Delta has a reserved opcode 0x${op.toString(16)} at byte ${at}`);
      }
    }
    if (await r.more()) throw formatError(`Delta has data after its END command (byte ${r.offset})`);
  } finally {
    await r.close();
  }
}

/** The error for a COPY that reaches past the end of the version it copies from. */
export function copyPastEnd(position: number, length: number, reached?: number): OffsiteError {
  const end = reached !== undefined ? ` at byte ${reached}` : '';
  return new OffsiteError('integrity', `Delta copies bytes ${position}..${position + length} of the previous version, past its end${end}`, {
    hint: 'The delta does not belong to this version of the file: the backup chain is damaged or out of order',
  });
}

/**
 * Gathers output pieces into chunks of OUT_CHUNK for an awaited `write`; big pieces go through as they
 * are. Chunks handed to `write` are never modified afterwards.
 */
export class OutputGatherer {
  written = 0;
  /** Allocated when a small piece needs it: most files' output is a few big pieces, or none. */
  private out: Buffer | undefined;
  private outLen = 0;

  constructor(private readonly write: (chunk: Buffer) => Promise<void> | void) {}

  /** Takes a copy of a small piece (no await needed: returns undefined), else emits through `write`. */
  add(piece: Buffer): Promise<void> | undefined {
    if (piece.length < OUT_CHUNK / 4 && this.outLen + piece.length <= OUT_CHUNK) {
      this.out ??= Buffer.allocUnsafe(OUT_CHUNK);
      piece.copy(this.out, this.outLen);
      this.outLen += piece.length;
      return undefined;
    }
    return this.emit(piece);
  }

  async flush(): Promise<void> {
    if (this.outLen === 0) return;
    // Handed to write() and then dropped, never reused (write may keep it).
    const chunk = this.out!.subarray(0, this.outLen);
    this.out = undefined;
    this.outLen = 0;
    this.written += chunk.length;
    await this.write(chunk);
  }

  private async emit(piece: Buffer): Promise<void> {
    await this.flush();
    if (piece.length >= OUT_CHUNK / 4) {
      this.written += piece.length;
      await this.write(piece);
      return;
    }
    this.out = Buffer.allocUnsafe(OUT_CHUNK);
    piece.copy(this.out, 0);
    this.outLen = piece.length;
  }
}

/**
 * Applies a librsync delta (any valid opcode widths, incl. rdiff's) streamed from `delta` to `basis`,
 * writing the result through `write` in order (await each call: backpressure). Returns bytes written.
 * Throws OffsiteError('format') on a bad magic/opcode/truncated delta (and on data after END),
 * OffsiteError('integrity') when a COPY reaches past the end of the basis.
 * Chunks given to `write` are never modified afterwards; they may be views of the delta's chunks or of
 * what `basis.read` returned, so `write` must not modify them either.
 */
export async function applyDelta(
  basis: RandomAccessSource,
  delta: AsyncIterable<Buffer>,
  write: (chunk: Buffer) => Promise<void> | void,
): Promise<number> {
  const out = new OutputGatherer(write);
  await walkDelta(delta, {
    literal: (piece) => out.add(piece),
    copy: async (where, len) => {
      for (let done = 0; done < len; ) {
        const want = Math.min(COPY_PIECE, len - done);
        const piece = await basis.read(where + done, want);
        if (piece.length < want) throw copyPastEnd(where, len, piece.length > 0 ? where + done + piece.length : undefined);
        const pending = out.add(piece.length === want ? piece : piece.subarray(0, want));
        if (pending) await pending;
        done += want;
      }
    },
  });
  await out.flush();
  return out.written;
}
