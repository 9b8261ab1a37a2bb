// The stat cache: what every scanned path looked like at the last backup, so an incremental can skip
// unchanged files without reading them. Duplicity compares whole-second mtimes only and misses a
// same-second, same-size edit; we compare nanosecond mtime and ctime, inode, size, mode and owner.
//
// Racy entries (git's "racy clean" problem): file times come from a coarse kernel clock (a few ms; 1-2 s
// on some file systems), so a file changed again right after we looked at it can keep the same times.
// A record whose ctime is within RACY_WINDOW_NS of the scan's start (or later) is stored as racy and
// never counts as unchanged; it is simply read again next time. ctime, unlike mtime, cannot be set
// by programs, so this also holds for files with mtimes in the future.
//
// File layout (little-endian):
//   header  "OFFSTAT1" u32 version=1 u32 flags (bit 0: complete, see FLAG_COMPLETE; bit 1: whole tree,
//           see FLAG_WHOLE_TREE; bit 2: the tree .gitignore files keep, FLAG_GITIGNORE_TREE)
//   blocks and end marker as in blockFile.ts
// A block holds whole records: varint sharedComponents (leading index components equal to the previous
// record's), varint newComponents, then each new component as varint length + bytes; u8 type (bit 7:
// racy), varint mode, uid, gid, size, i64 mtimeNs, i64 ctimeNs, u64 ino. Sharing components keeps both
// the file and the reader's allocations small (one new Buffer per record, typically). A block's first
// record shares none (since the no-change probe, which reads blocks apart; older files may share).
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { EntryType, PathIndex } from '../types';
import { SetFileKind } from '../cache/setFiles';
import { OffsiteError } from '../errors';
import { compareIndex } from '../pathIndex';
import { readFullySync } from '../util/syncIo';
import { BlockFileWriter, BlockReader, getVarint, putVarint, readBlockAt, readBlockHeaderAt, type BlockRef } from './blockFile';
import type { ScanEntry } from './scanner';

export interface StatRecord {
  readonly index: PathIndex;
  readonly type: EntryType;
  /** Permission bits (S_IMODE). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly ino: bigint;
  /** Stored too close to its last change to be trusted (see the top of statCache.ts). */
  readonly racy?: boolean;
}

export function statRecordOf(e: ScanEntry): StatRecord {
  return {
    index: e.index,
    type: e.meta.type,
    mode: e.meta.mode,
    uid: e.meta.uid,
    gid: e.meta.gid,
    size: e.size,
    mtimeNs: e.mtimeNs,
    ctimeNs: e.ctimeNs,
    ino: e.ino,
  };
}

/** Stat caches in the cache folder, named by the time of the set they describe. */
export const STAT_CACHES = new SetFileKind('offsite-stat');

/** A record's fields without its path, filled in place by BlockRecords.shiftPath (no object per record). */
export interface FlatStat {
  type: EntryType;
  racy: boolean;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

export function emptyFlatStat(): FlatStat {
  return { type: 'reg', racy: false, mode: 0, uid: 0, gid: 0, size: 0, mtimeNs: 0n, ctimeNs: 0n, ino: 0n };
}

/** True when nothing that could mean a content or metadata change differs. */
export function statUnchanged(e: ScanEntry, r: StatRecord): boolean {
  return (
    r.racy !== true &&
    e.mtimeNs === r.mtimeNs &&
    e.ctimeNs === r.ctimeNs &&
    e.size === r.size &&
    e.ino === r.ino &&
    e.meta.type === r.type &&
    e.meta.mode === r.mode &&
    e.meta.uid === r.uid &&
    e.meta.gid === r.gid
  );
}

/** Changes within this long before the scan started may not show in the file's times. */
export const RACY_WINDOW_NS = 2_000_000_000n;

const MAGIC = Buffer.from('OFFSTAT1', 'latin1');
const VERSION = 1;
const HEADER_LEN = 16;
const TYPES: readonly EntryType[] = ['reg', 'dir', 'sym', 'fifo', 'chr', 'blk'];
const TYPE_CODE: Record<EntryType, number> = { reg: 0, dir: 1, sym: 2, fifo: 3, chr: 4, blk: 5 };
const RACY_BIT = 0x80;
/**
 * Header flag: the file has a record for every path of its backup set's state (no path kept from an
 * older set because it could not be read, not a resumed backup). Only then may an incremental take
 * "no record met by the scan" to mean "deleted" without reading the signature chain.
 */
const FLAG_COMPLETE = 1;
/**
 * Header flag: besides being complete, the records are every path below the root: the scan had no
 * selection rules, did not follow .gitignore files and left nothing out for an error. A folder whose
 * record still matches then holds exactly the names it held (see listingCache.ts), so the tree is
 * unchanged when every record matches its path's lstat (noChangeProbe.ts), without walking it.
 */
const FLAG_WHOLE_TREE = 2;
/**
 * Header flag: as FLAG_WHOLE_TREE, but the scan followed .gitignore files: the records are every path
 * below the root that they did not leave out, given the rule files recorded beside the cache
 * (offsite-rules.<time>, gitignore.ts RuleInputs), which the probe checks first.
 */
const FLAG_GITIGNORE_TREE = 4;
const FLAGS_OFFSET = 12;
/**
 * Raw bytes per block: blocks are the no-change probe's unit of work between its two threads
 * (~1,200 records of the benchmark's workspace each, a few ms of lstats), and compress as well.
 */
const BLOCK_RAW = 64 * 1024;
const SLASH = 0x2f;

export interface StatCacheWriterOptions {
  /** When the scan whose records are written began (ns since the epoch); default: when create() runs. */
  readonly scanStartNs?: bigint;
  /** deflate each block (level 1); default true. */
  readonly compress?: boolean;
}

/** Writes records (added in index order) to `path` atomically: a 0600 temp file renamed on close. */
export class StatCacheWriter {
  private prevIndex: PathIndex | undefined;

  private constructor(
    private readonly file: BlockFileWriter,
    private readonly racyFromNs: bigint,
  ) {}

  static async create(path: string, options: StatCacheWriterOptions = {}): Promise<StatCacheWriter> {
    const header = Buffer.alloc(HEADER_LEN);
    MAGIC.copy(header, 0);
    header.writeUInt32LE(VERSION, 8);
    const start = options.scanStartNs ?? BigInt(Date.now()) * 1_000_000n;
    return new StatCacheWriter(new BlockFileWriter(path, header, options.compress ?? true, BLOCK_RAW), start - RACY_WINDOW_NS);
  }

  /**
   * Adds one record; records must come in strictly increasing index order. Synchronous: full blocks
   * are deflated and written in the background, and a write error is thrown by a later add() or close().
   */
  add(r: StatRecord): void {
    if (!this.file.open) throw new OffsiteError('internal', 'StatCacheWriter.add() called after close');
    const index = r.index;
    const prev = this.prevIndex;
    let shared = 0;
    if (prev !== undefined) {
      const max = Math.min(prev.length, index.length);
      while (shared < max && (prev[shared] === index[shared] || prev[shared].equals(index[shared]))) shared++;
      // Strictly increasing: the previous index is a proper prefix, or the first differing component is larger.
      const ordered = shared < max ? Buffer.compare(prev[shared], index[shared]) < 0 : prev.length < index.length;
      if (!ordered) throw new OffsiteError('internal', 'Stat cache records must be added in index order');
    }
    let need = 64;
    for (let k = 0; k < index.length; k++) {
      const c = index[k];
      if (k >= shared && (c.length === 0 || c.includes(SLASH) || c.includes(0))) throw new OffsiteError('internal', 'Stat cache: invalid path component');
      need += c.length + 5;
    }
    const b = this.file.room(need);
    // A block's first record shares nothing: each block can be decoded alone (noChangeProbe.ts).
    if (this.file.pos === 0) shared = 0;
    let pos = putVarint(b, this.file.pos, shared);
    pos = putVarint(b, pos, index.length - shared);
    for (let k = shared; k < index.length; k++) {
      const c = index[k];
      pos = putVarint(b, pos, c.length);
      pos += c.copy(b, pos);
    }
    const racy = r.racy === true || r.ctimeNs >= this.racyFromNs;
    b[pos++] = TYPE_CODE[r.type] | (racy ? RACY_BIT : 0);
    pos = putVarint(b, pos, r.mode);
    pos = putVarint(b, pos, r.uid);
    pos = putVarint(b, pos, r.gid);
    pos = putVarint(b, pos, r.size);
    pos = putTimes(b, pos, r.mtimeNs, r.ctimeNs, r.ino);
    this.file.added(pos);
    this.prevIndex = index;
  }

  /**
   * Writes the end marker, syncs and renames the file into place. `complete`: the records cover every
   * path of the set's state (see FLAG_COMPLETE); `wholeTree`: and every path below the root (see
   * FLAG_WHOLE_TREE), or with `gitignore` every path .gitignore files kept (FLAG_GITIGNORE_TREE).
   * Known only at the end, so written into the header now.
   */
  async close(options: { readonly complete?: boolean; readonly wholeTree?: boolean; readonly gitignore?: boolean } = {}): Promise<void> {
    if (!this.file.open) throw new OffsiteError('internal', 'StatCacheWriter closed twice');
    const flags = Buffer.alloc(4);
    const complete = options.complete === true;
    const whole = complete && options.wholeTree === true ? (options.gitignore === true ? FLAG_GITIGNORE_TREE : FLAG_WHOLE_TREE) : 0;
    flags.writeUInt32LE((complete ? FLAG_COMPLETE : 0) | whole);
    await this.file.end({ patch: { at: FLAGS_OFFSET, bytes: flags }, durable: true });
  }

  /** Drops the temp file; the previous cache file (if any) stays. */
  async abort(): Promise<void> {
    this.file.abort();
  }
}

/**
 * True when the stat cache at `path` says it is complete (a record for every path of its set's state).
 * Reads only the header: a file corrupt further on is reported by StatCacheCursor, which the caller
 * must then handle (see ops/backup.ts). False when the file is missing or not a stat cache.
 */
export function statCacheComplete(path: string): boolean {
  return (headerFlags(path) & FLAG_COMPLETE) !== 0;
}

/**
 * True when the stat cache at `path` has a record for every path below its root (FLAG_WHOLE_TREE), or
 * with `gitignore` for every path .gitignore files kept (FLAG_GITIGNORE_TREE).
 */
export function statCacheWholeTree(path: string, gitignore = false): boolean {
  const flags = headerFlags(path);
  return (flags & FLAG_COMPLETE) !== 0 && (flags & (gitignore ? FLAG_GITIGNORE_TREE : FLAG_WHOLE_TREE)) !== 0;
}

/** The header's flags; 0 when the file is missing or not a stat cache. */
function headerFlags(path: string): number {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return 0;
  }
  try {
    const header = readHeader(fd);
    return 'bad' in header ? 0 : header.readUInt32LE(FLAGS_OFFSET);
  } finally {
    fs.closeSync(fd);
  }
}

/** The header of the open file `fd`, or why it is not a stat cache this version reads. */
function readHeader(fd: number): Buffer | { bad: string } {
  const header = Buffer.alloc(HEADER_LEN);
  if (readFullySync(fd, header, 0) !== HEADER_LEN) return { bad: 'short header' };
  if (!header.subarray(0, 8).equals(MAGIC)) return { bad: 'not a stat cache' };
  if (header.readUInt32LE(8) !== VERSION) return { bad: `unknown version ${header.readUInt32LE(8)}` };
  return header;
}

/**
 * Reads a stat cache in index order, synchronously, one block in memory and one record decoded at a
 * time (a scan consults it once per path: no promise per record, and no block's worth of records
 * kept alive past the young generation). A missing file has no records; a corrupt or truncated one
 * throws OffsiteError('format') from the call that meets the fault (the caller then reads files).
 */
export class StatCacheCursor {
  private head: StatRecord | undefined;
  private fd: number | undefined;
  private blocks: BlockReader | undefined;
  private block: Buffer = Buffer.alloc(0);
  private readonly cur = { pos: 0 };
  private prevIndex: PathIndex = [];
  private count = 0;
  /** shiftPath: where each component of the previous path ends in its output (-1: past its end). */
  private readonly pathEnds: number[] = [];

  private constructor(private readonly path: string) {}

  /** `readAhead` false: the reader never lets the event loop run (see BlockReader). */
  static open(path: string, options: { readonly readAhead?: boolean } = {}): StatCacheCursor {
    const c = new StatCacheCursor(path);
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return c;
      throw e;
    }
    c.fd = fd;
    try {
      const header = readHeader(fd);
      if ('bad' in header) throw c.corrupt(header.bad);
    } catch (e) {
      c.close();
      throw e;
    }
    c.blocks = new BlockReader(fd, HEADER_LEN, options.readAhead);
    return c;
  }

  /** The next record, left in place; undefined at the end. */
  peek(): StatRecord | undefined {
    if (this.head === undefined && this.fd !== undefined) {
      try {
        this.head = this.decodeNext();
      } catch (e) {
        this.close();
        throw e;
      }
      if (this.head === undefined) this.close();
    }
    return this.head;
  }

  /** The next record, consumed. */
  shift(): StatRecord | undefined {
    const h = this.peek();
    this.head = undefined;
    return h;
  }

  /** The record of `index`, if any, consuming it and every record before it. Calls come in increasing index order. */
  find(index: PathIndex): StatRecord | undefined {
    for (let h = this.peek(); h !== undefined; h = this.peek()) {
      const c = compareIndex(h.index, index);
      if (c > 0) return undefined;
      this.head = undefined;
      if (c === 0) return h;
    }
    return undefined;
  }

  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    this.blocks = undefined;
    this.block = Buffer.alloc(0);
    if (fd !== undefined) fs.closeSync(fd);
  }

  private corrupt(why: string): OffsiteError {
    return corruptCache(this.path, why);
  }

  /**
   * The next record's path only, relative to the root with its components joined by '/', written into
   * `out` from 0 (which must keep what the previous call wrote: a record shares leading components with
   * the one before). Returns its length, -1 if it does not fit, undefined at the end. Nothing is
   * checked but the framing: the caller (statAheadWorker.ts) uses the path only to stat it. A cursor is
   * read either this way or by records, not both.
   */
  shiftPath(out: Uint8Array): number | undefined {
    if (this.fd === undefined || !this.nextBlock()) return undefined;
    const len = decodeFlat(this.block, this.cur, this.pathEnds, out, undefined);
    if (len === undefined) throw this.corrupt('bad record');
    this.count++;
    return len;
  }

  /** Moves to the next block when the current one is used up; false at the end. */
  private nextBlock(): boolean {
    while (this.cur.pos >= this.block.length) {
      const next = this.blocks!.next(this.count);
      if (next === 'end') {
        if (readFullySync(this.fd!, Buffer.alloc(1), this.blocks!.position) !== 0) throw this.corrupt('data after the end');
        return false;
      }
      if ('bad' in next) throw this.corrupt(next.bad);
      this.block = next;
      this.cur.pos = 0;
    }
    return true;
  }

  private decodeNext(): StatRecord | undefined {
    if (!this.nextBlock()) return undefined;
    const r = decodeRecord(this.block, this.cur, this.prevIndex, this.count);
    if (r === undefined) throw this.corrupt('bad record');
    this.prevIndex = r.index;
    this.count++;
    return r;
  }
}

/**
 * A buffer holding `root` + '/' with room for a relative path of up to `max` bytes after it, where
 * shiftPath() writes: `full.subarray(0, relAt + len)` is then the path to stat.
 */
export function rootedPath(root: string, max: number): { readonly full: Buffer; readonly rel: Buffer; readonly relAt: number } {
  const rootBytes = Buffer.from(root);
  const relAt = rootBytes.length + 1;
  const full = Buffer.alloc(relAt + max);
  rootBytes.copy(full);
  full[rootBytes.length] = SLASH;
  return { full, rel: full.subarray(relAt), relAt };
}

/**
 * The blocks of a stat cache one by one, for a reader that takes only some of them (noChangeProbe.ts):
 * nextBlock() walks the headers, records() reads and decodes one block alone (its first record shares
 * no components). Everything damaged throws OffsiteError('format').
 */
export class StatCacheBlocks {
  private offset = HEADER_LEN;

  private constructor(
    private readonly path: string,
    private fd: number | undefined,
  ) {}

  /** Throws if the file is missing or not a stat cache. */
  static open(path: string): StatCacheBlocks {
    const fd = fs.openSync(path, 'r');
    const c = new StatCacheBlocks(path, fd);
    try {
      const header = readHeader(fd);
      if ('bad' in header) throw corruptCache(path, header.bad);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** Where the next block is, or the end marker's record count. */
  nextBlock(): BlockRef | { end: number } {
    const ref = readBlockHeaderAt(this.fd!, this.offset);
    if ('bad' in ref) throw corruptCache(this.path, ref.bad);
    if ('end' in ref) return ref;
    this.offset = ref.next;
    return ref;
  }

  /** The records of one block. */
  records(ref: BlockRef): BlockRecords {
    const raw = readBlockAt(this.fd!, ref);
    if ('bad' in raw) throw corruptCache(this.path, raw.bad);
    return new BlockRecords(raw, this.path);
  }

  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** One block's records, decoded without the blocks before it. */
export class BlockRecords {
  private readonly cur = { pos: 0 };
  private readonly ends: number[] = [];

  constructor(
    private readonly block: Buffer,
    private readonly path: string,
  ) {}

  /**
   * The next record's path (relative to the root, components joined by '/') written into `out` from
   * 0, and its fields into `into`; returns the path's length, -1 if it does not fit, undefined at the
   * block's end.
   */
  shiftPath(out: Uint8Array, into: FlatStat): number | undefined {
    if (this.cur.pos >= this.block.length) return undefined;
    // A block written before blocks stood alone: its first record needs the one before it.
    if (this.cur.pos === 0 && this.block[0] !== 0) throw corruptCache(this.path, 'a block that does not stand alone');
    const len = decodeFlat(this.block, this.cur, this.ends, out, into);
    if (len === undefined) throw corruptCache(this.path, 'bad record');
    return len;
  }
}

function corruptCache(path: string, why: string): OffsiteError {
  return new OffsiteError('format', `The stat cache ${path} is corrupt (${why})`, {
    hint: 'It is rebuilt by the next backup; files are compared by content meanwhile.',
    file: path,
  });
}

/**
 * Decodes the record at `cur` (advancing it): its path into `out` from 0, relative to the root with
 * its components joined by '/' (`ends`: where each component of the previous path ends in `out`, -1
 * past its end), and, with `into`, its fields. The path's length, -1 if it does not fit in `out`, or
 * undefined if the framing is wrong.
 */
function decodeFlat(b: Buffer, cur: { pos: number }, ends: number[], out: Uint8Array, into: FlatStat | undefined): number | undefined {
  const shared = getVarint(b, cur);
  const fresh = getVarint(b, cur);
  if (shared < 0 || fresh < 0 || shared > ends.length) return undefined;
  ends.length = shared;
  let len = shared === 0 ? 0 : ends[shared - 1];
  let fits = len >= 0;
  for (let k = 0; k < fresh; k++) {
    const n = getVarint(b, cur);
    if (n <= 0 || cur.pos + n > b.length) return undefined;
    const at = len === 0 ? 0 : len + 1;
    if (fits && at + n <= out.length) {
      if (at > 0) out[len] = SLASH;
      b.copy(out, at, cur.pos, cur.pos + n);
      len = at + n;
    } else fits = false;
    ends.push(fits ? len : -1);
    cur.pos += n;
  }
  if (into === undefined) {
    cur.pos++; // type
    for (let k = 0; k < 4; k++) if (getVarint(b, cur) < 0) return undefined; // mode, uid, gid, size
    cur.pos += 24; // mtime, ctime, ino
    if (cur.pos > b.length) return undefined;
  } else if (!decodeFields(b, cur, into)) return undefined;
  return fits ? len : -1;
}

/** The fields after a record's path, written into `into`; false if they are out of place. */
function decodeFields(b: Buffer, cur: { pos: number }, into: FlatStat): boolean {
  if (cur.pos + 1 > b.length) return false;
  const typeByte = b[cur.pos++];
  const type = TYPES[typeByte & 0x7f];
  const mode = getVarint(b, cur);
  const uid = getVarint(b, cur);
  const gid = getVarint(b, cur);
  const size = getVarint(b, cur);
  if (type === undefined || mode < 0 || uid < 0 || gid < 0 || size < 0 || cur.pos + 24 > b.length) return false;
  into.type = type;
  into.racy = (typeByte & RACY_BIT) !== 0;
  into.mode = mode;
  into.uid = uid;
  into.gid = gid;
  into.size = size;
  TIMES_U8.set(b.subarray(cur.pos, cur.pos + 24));
  cur.pos += 24;
  into.mtimeNs = TIMES_I64[0];
  into.ctimeNs = TIMES_I64[1];
  into.ino = TIMES_U64[2];
  return true;
}

/** decodeRecord's fields, before they become the record. */
const FIELDS = emptyFlatStat();

/** Decodes the record at `cur` (advancing it); undefined if anything is out of place. */
function decodeRecord(b: Buffer, cur: { pos: number }, prev: PathIndex, count: number): StatRecord | undefined {
  const end = b.length;
  const shared = getVarint(b, cur);
  const fresh = getVarint(b, cur);
  if (shared < 0 || fresh < 0 || shared > prev.length) return undefined;
  // Strict order: a record extends its predecessor or differs from it at component `shared`.
  if (count > 0 && fresh === 0) return undefined;
  if (count === 0 && shared !== 0) return undefined;
  const index: Buffer[] = prev.slice(0, shared);
  for (let k = 0; k < fresh; k++) {
    const len = getVarint(b, cur);
    if (len <= 0 || cur.pos + len > end) return undefined;
    for (let q = cur.pos; q < cur.pos + len; q++) if (b[q] === SLASH || b[q] === 0) return undefined;
    // A view into the block: one object per component, no copy.
    index.push(b.subarray(cur.pos, cur.pos + len));
    cur.pos += len;
  }
  // (A block's first record shares nothing, though it may begin as the one before: compared whole.)
  if (count > 0 && (shared === 0 ? compareIndex(prev, index) >= 0 : shared < prev.length && Buffer.compare(prev[shared], index[shared]) >= 0)) return undefined;
  if (!decodeFields(b, cur, FIELDS)) return undefined;
  const { type, mode, uid, gid, size, mtimeNs, ctimeNs, ino } = FIELDS;
  return FIELDS.racy
    ? { index, type, mode, uid, gid, size, mtimeNs, ctimeNs, ino, racy: true }
    : { index, type, mode, uid, gid, size, mtimeNs, ctimeNs, ino };
}

// Three 64-bit fields through typed arrays: much cheaper than Buffer's BigInt read/write helpers.
// The file is little-endian; so are the machines Node runs on (checked once below).
const TIMES = new ArrayBuffer(24);
const TIMES_U8 = new Uint8Array(TIMES);
const TIMES_I64 = new BigInt64Array(TIMES);
const TIMES_U64 = new BigUint64Array(TIMES);
if (os.endianness() !== 'LE') throw new Error('statCache.ts assumes a little-endian machine');

function putTimes(b: Buffer, pos: number, mtimeNs: bigint, ctimeNs: bigint, ino: bigint): number {
  TIMES_I64[0] = mtimeNs;
  TIMES_I64[1] = ctimeNs;
  TIMES_U64[2] = ino;
  b.set(TIMES_U8, pos);
  return pos + 24;
}
