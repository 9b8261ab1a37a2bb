// The framing of the local cache files written during a scan, shared by the stat cache
// (statCache.ts) and the folder listings (listingCache.ts): after each file's own header,
//   blocks  u8 codec (0 raw, 1 deflate-raw) u32 rawLength u32 storedLength u32 crc32(raw) bytes…
//   end     u8 0xff u32 recordCount(low) u32 recordCount(high) u32 crc32(the previous 8 bytes)
// and varints (7 bits per byte, least significant first) inside the blocks.
//
// Compression runs in the libuv threadpool (BlockWriter, BlockReader's read-ahead): the scan that
// writes and reads these files is the main thread's work, and zlib there was ~8% of a no-change
// incremental (perf, 220k paths).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { OffsiteError } from '../errors';
import { readFullySync, writeAllSync } from '../util/syncIo';

/** Length of a block header, and of the end marker. */
const BLOCK_HEADER_LEN = 13;
/** Raw bytes per block by default: big enough to compress well, small enough to keep memory flat. */
const BLOCK_TARGET = 256 * 1024;
const CODEC_RAW = 0;
const CODEC_DEFLATE = 1;
const CODEC_END = 0xff;
/** A reader refuses blocks larger than this (a corrupt length must not allocate gigabytes). */
const MAX_BLOCK = 64 * 1024 * 1024;

/**
 * zlib's output comes in chunkSize pieces (16 KiB by default), each a round trip through Node's stream
 * machinery and, for the threadpool calls, through the event loop, then concatenated: a 256 KiB block
 * took 1.2–2 ms to inflate in the threadpool that way against ~0.45 ms in one piece (0.37 against 0.26
 * ms in place). The piece is a little longer than the known raw length, or zlib, its output full, is
 * called once more (with a fresh piece) only to find the end. A deflated block is no longer than its
 * raw bytes but for a few bytes of framing: a piece of the raw length and 1 KiB holds it too.
 */
const deflateOptions = (rawLen: number): zlib.ZlibOptions => ({ level: 1, chunkSize: Math.max(rawLen, 1024) + 1024 });
const inflateOptions = (rawLen: number): zlib.ZlibOptions => ({ maxOutputLength: rawLen, chunkSize: Math.min(rawLen, 1 << 20) + 64 });
/** Blocks being deflated in the threadpool at once per writer; beyond that they are deflated in place. */
const MAX_IN_FLIGHT = 3;

/** One block: header and stored bytes (deflated at level 1 when `compress`). */
export function encodeBlock(raw: Buffer, compress: boolean): Buffer {
  return frame(raw, compress ? zlib.deflateRawSync(raw, deflateOptions(raw.length)) : raw, compress);
}

function frame(raw: Buffer, stored: Buffer, deflated: boolean): Buffer {
  const head = Buffer.allocUnsafe(BLOCK_HEADER_LEN);
  head[0] = deflated ? CODEC_DEFLATE : CODEC_RAW;
  head.writeUInt32LE(raw.length, 1);
  head.writeUInt32LE(stored.length, 5);
  head.writeUInt32LE(zlib.crc32(raw), 9);
  return Buffer.concat([head, stored]);
}

/**
 * A cache file written through a private temp file beside it (`<file>.<pid>.<random>.tmp`, 0600) and
 * renamed into place by end(): the caller's header, records packed into blocks of about BLOCK_TARGET
 * raw bytes (deflated in the threadpool by a BlockWriter), the end marker with the record count. A
 * record is written into room()'s buffer from `pos`, then added(). Errors are thrown, and the temp file
 * is removed when end() fails; abort() removes it otherwise.
 */
export class BlockFileWriter {
  /** Records added so far. */
  count = 0;
  /** Where the next record starts in room()'s buffer. */
  pos = 0;
  /** Taking records: false after end() or abort(). */
  open = true;
  private readonly fd: number;
  private readonly temp: string;
  private readonly blocks: BlockWriter;
  private fdOpen = true;
  private block: Buffer;

  /** `target`: raw bytes per block (at most BLOCK_TARGET). */
  constructor(
    private readonly file: string,
    header: Buffer,
    compress = true,
    private readonly target = BLOCK_TARGET,
  ) {
    this.block = Buffer.allocUnsafe(target + 8192);
    this.temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    this.fd = fs.openSync(this.temp, 'wx', 0o600);
    this.blocks = new BlockWriter(this.fd, compress);
    try {
      writeAllSync(this.fd, header);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** The buffer to write a record of at most `need` bytes into, from `pos` (a full block is handed over first). */
  room(need: number): Buffer {
    if (this.pos + need > this.block.length) {
      this.flush();
      if (need > this.block.length) this.block = Buffer.allocUnsafe(need + this.target); // a record bigger than a block
    }
    return this.block;
  }

  /** The record written into room()'s buffer ends at `end`. */
  added(end: number): void {
    this.pos = end;
    this.count++;
    if (end >= this.target) this.flush();
  }

  /**
   * Writes the last block and the end marker, then `patch` bytes into the header at their offset
   * (what is known only at the end), syncs the data when `durable`, and renames the file into place.
   */
  async end(opts: { readonly patch?: { readonly at: number; readonly bytes: Buffer }; readonly durable?: boolean } = {}): Promise<void> {
    this.open = false;
    try {
      this.flush();
      await this.blocks.end(encodeEnd(this.count));
      if (opts.patch) writeAllSync(this.fd, opts.patch.bytes, opts.patch.at);
      if (opts.durable) await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
      this.closeFd();
      fs.renameSync(this.temp, this.file);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Drops the temp file (blocks still being deflated are not written); the file in place, if any, stays. */
  abort(): void {
    this.open = false;
    this.blocks.close();
    try {
      this.closeFd();
    } catch {
      // nothing more is written to it either way
    }
    fs.rmSync(this.temp, { force: true });
  }

  private closeFd(): void {
    if (!this.fdOpen) return;
    this.fdOpen = false; // before closing: the number may be reused at once
    fs.closeSync(this.fd);
  }

  private flush(): void {
    if (this.pos === 0) return;
    // The block goes to the BlockWriter, which deflates it in the background: a new one for the next records.
    this.blocks.add(this.block.subarray(0, this.pos));
    this.block = Buffer.allocUnsafe(this.target + 8192);
    this.pos = 0;
  }
}

/**
 * Appends blocks to a file in order, deflating them in the threadpool: add() returns at once and the
 * block is written (synchronously, from the main thread) when it and every block before it are ready.
 * A write error is kept and thrown by the next add() and by flush().
 */
export class BlockWriter {
  /** Blocks deflated in the threadpool (the others were deflated in place, MAX_IN_FLIGHT being reached). */
  inPool = 0;
  private readonly queue: { raw: Buffer; block?: Buffer }[] = [];
  /** Blocks being deflated in the threadpool now (their callbacks still to come, after close() too). */
  inFlight = 0;
  private error: Error | undefined;
  private closed = false;
  private readonly whenIdle: (() => void)[] = [];

  constructor(
    private readonly fd: number,
    private readonly compress: boolean,
  ) {}

  /** Queues a block of `raw`, which is read until the block is written: the caller must not reuse it. */
  add(raw: Buffer): void {
    if (this.error) throw this.error;
    if (this.closed) throw new OffsiteError('internal', 'BlockWriter.add() after close');
    const item: { raw: Buffer; block?: Buffer } = { raw };
    this.queue.push(item);
    if (!this.compress || this.inFlight >= MAX_IN_FLIGHT) {
      item.block = encodeBlock(raw, this.compress);
      this.writeReady();
      return;
    }
    this.inFlight++;
    this.inPool++;
    zlib.deflateRaw(raw, deflateOptions(raw.length), (err, stored) => {
      this.inFlight--;
      if (err) this.error ??= err;
      else item.block = frame(raw, stored, true);
      this.writeReady();
    });
  }

  /** Writes bytes after every queued block (the end marker). */
  async end(tail: Buffer): Promise<void> {
    await this.flush();
    writeAllSync(this.fd, tail);
  }

  /** Resolves when every queued block is written; rejects with the first write or deflate error. */
  async flush(): Promise<void> {
    if (this.queue.length > 0 && !this.error) await new Promise<void>((resolve) => this.whenIdle.push(resolve));
    if (this.error) throw this.error;
  }

  /** Stops writing: blocks still being deflated are dropped (the caller closes the file after this). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake();
  }

  private writeReady(): void {
    if (this.closed) return;
    try {
      while (this.queue.length > 0 && this.queue[0].block !== undefined && !this.error) {
        writeAllSync(this.fd, this.queue[0].block);
        this.queue.shift();
      }
    } catch (e) {
      this.error ??= e as Error;
    }
    if (this.queue.length === 0 || this.error) this.wake();
  }

  private wake(): void {
    for (const w of this.whenIdle.splice(0)) w();
  }
}

/**
 * Reads the blocks of a file in order, synchronously, inflating the block after the one handed out
 * in the threadpool meanwhile (the caller then finds it ready, or inflates it itself if it comes
 * back before the event loop has run). next() throws only the file's I/O errors.
 */
export class BlockReader {
  /** Blocks found already inflated by the read-ahead. */
  readyAhead = 0;
  private ahead: Pending | { end: number } | { bad: string } | undefined;

  /**
   * `offset`: where the first block header is. `readAhead` false: no inflating in the threadpool (for
   * a caller that does not let the event loop run meanwhile, whose read-ahead would only be wasted).
   */
  constructor(
    private readonly fd: number,
    private offset: number,
    private readonly readAhead = true,
  ) {}

  /** The read-ahead is still inflating the next block. */
  get inflating(): boolean {
    return this.readAhead && this.ahead !== undefined && 'head' in this.ahead && this.ahead.head[0] === CODEC_DEFLATE && this.ahead.raw === undefined;
  }

  /** Where the next block would start (after next() returned the end: just past the end marker). */
  get position(): number {
    return this.offset;
  }

  /**
   * The next block's raw bytes; 'end' at an end marker that counts `records` (the records read so far);
   * or why the file is not valid.
   */
  next(records: number): Buffer | 'end' | { bad: string } {
    const p = this.ahead ?? this.readAt(this.offset);
    this.ahead = undefined;
    if ('bad' in p) return p;
    if ('end' in p) {
      this.offset += BLOCK_HEADER_LEN;
      return p.end === records ? 'end' : { bad: 'record count mismatch' };
    }
    this.offset = p.next;
    if (p.raw !== undefined) this.readyAhead++;
    const raw = p.raw ?? unpackBlock(p.head, p.stored);
    p.raw = raw; // a read-ahead finishing later is ignored
    if (typeof raw === 'string') return { bad: raw };
    const ahead = this.readAt(this.offset);
    if ('head' in ahead && this.readAhead) this.inflateAhead(ahead);
    this.ahead = ahead;
    return raw;
  }

  private readAt(offset: number): Pending | { end: number } | { bad: string } {
    const ref = readBlockHeaderAt(this.fd, offset);
    if (!('stored' in ref)) return ref;
    const stored = readStoredAt(this.fd, ref);
    return stored === undefined ? { bad: 'truncated' } : { head: ref.head, stored, next: ref.next };
  }

  private inflateAhead(p: Pending): void {
    if (p.head[0] !== CODEC_DEFLATE) return;
    zlib.inflateRaw(p.stored, inflateOptions(p.head.readUInt32LE(1)), (err, raw) => {
      p.raw ??= err ? 'bad compressed data' : checked(p.head, raw);
    });
  }
}

interface Pending {
  readonly head: Buffer;
  readonly stored: Buffer;
  /** Offset of the block after this one. */
  readonly next: number;
  raw?: Buffer | string;
}

/** A data block found by readBlockHeaderAt: read it with readBlockAt. */
export interface BlockRef {
  readonly offset: number;
  readonly head: Buffer;
  readonly stored: number;
  /** Offset of the block after this one. */
  readonly next: number;
}

/**
 * The block header at `offset`, without its bytes: a data block, the end marker (with its record
 * count), or why it is neither. For a reader that walks the headers and reads only some blocks.
 */
export function readBlockHeaderAt(fd: number, offset: number): BlockRef | { end: number } | { bad: string } {
  const head = Buffer.allocUnsafe(BLOCK_HEADER_LEN);
  if (readFullySync(fd, head, offset) !== BLOCK_HEADER_LEN) return { bad: 'truncated' };
  const h = readBlockHeader(head);
  if (!('stored' in h)) return h;
  return { offset, head, stored: h.stored, next: offset + BLOCK_HEADER_LEN + h.stored };
}

/** The raw bytes of the block `ref` (read, inflated on this thread, checked), or why they are not valid. */
export function readBlockAt(fd: number, ref: BlockRef): Buffer | { bad: string } {
  const stored = readStoredAt(fd, ref);
  if (stored === undefined) return { bad: 'truncated' };
  const raw = unpackBlock(ref.head, stored);
  return typeof raw === 'string' ? { bad: raw } : raw;
}

/** The stored bytes of the block `ref`; undefined if the file ends first. */
function readStoredAt(fd: number, ref: BlockRef): Buffer | undefined {
  const stored = Buffer.allocUnsafe(ref.stored);
  return readFullySync(fd, stored, ref.offset + BLOCK_HEADER_LEN) === ref.stored ? stored : undefined;
}

/** The end marker after `count` records. */
export function encodeEnd(count: number): Buffer {
  const end = Buffer.alloc(BLOCK_HEADER_LEN);
  end[0] = CODEC_END;
  end.writeUInt32LE(count % 2 ** 32, 1);
  end.writeUInt32LE(Math.floor(count / 2 ** 32), 5);
  end.writeUInt32LE(zlib.crc32(end.subarray(1, 9)), 9);
  return end;
}

/**
 * What a 13-byte header announces: the end (with its record count), a data block (the stored length
 * to read next), or why it is neither.
 */
function readBlockHeader(head: Buffer): { end: number } | { stored: number } | { bad: string } {
  if (head[0] === CODEC_END) {
    if (head.readUInt32LE(9) !== zlib.crc32(head.subarray(1, 9))) return { bad: 'bad end marker' };
    return { end: head.readUInt32LE(1) + head.readUInt32LE(5) * 2 ** 32 };
  }
  const rawLen = head.readUInt32LE(1);
  const storedLen = head.readUInt32LE(5);
  if ((head[0] !== CODEC_RAW && head[0] !== CODEC_DEFLATE) || rawLen > MAX_BLOCK || storedLen > MAX_BLOCK) return { bad: 'bad block header' };
  return { stored: storedLen };
}

/** A data block's raw bytes from its header and stored bytes, or why they are not valid. */
function unpackBlock(head: Buffer, stored: Buffer): Buffer | string {
  const rawLen = head.readUInt32LE(1);
  let raw: Buffer;
  try {
    raw = head[0] === CODEC_RAW ? stored : zlib.inflateRawSync(stored, inflateOptions(rawLen));
  } catch {
    return 'bad compressed data';
  }
  return checked(head, raw);
}

function checked(head: Buffer, raw: Buffer): Buffer | string {
  return raw.length === head.readUInt32LE(1) && zlib.crc32(raw) === head.readUInt32LE(9) ? raw : 'checksum mismatch';
}

export function putVarint(b: Buffer, pos: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new OffsiteError('internal', `Cannot store ${v} as a varint`);
  }
  while (v >= 0x80) {
    b[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  b[pos++] = v;
  return pos;
}

/** -1 on a truncated or over-long varint. */
export function getVarint(b: Buffer, cur: { pos: number }): number {
  let v = 0;
  let mul = 1;
  for (let k = 0; k < 8; k++) {
    if (cur.pos >= b.length) return -1;
    const byte = b[cur.pos++];
    v += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return v;
    mul *= 0x80;
  }
  return -1;
}
