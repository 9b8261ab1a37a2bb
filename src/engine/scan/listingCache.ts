// Folder listings of the previous scan, so that a folder that has not changed is not read again:
// open + getdents + close for each folder was a third of a no-change incremental's time (26k folders
// in the benchmark's workspace, perf).
//
// A folder's names cannot change without its mtime and ctime changing (creating, deleting or renaming
// an entry updates both; a program can set the mtime back, never the ctime), so a listing is reused
// when the folder's inode, device, mtime and ctime are what they were when it was listed. As in the
// stat cache, a listing made less than RACY_WINDOW_NS after the folder's last change is stored as racy
// and never reused: the kernel's coarse clock could give a change made just after the listing the same
// times. Git's untracked cache relies on the same property of folder times.
//
// Nothing here fails a scan: a listing file that is missing, truncated, corrupt or out of order is
// used up to the first fault and the scan lists folders itself from there on; a listing that cannot be
// written is dropped (the next scan lists every folder).
//
// File layout (little-endian):
//   header  "OFFDIRS1" u32 version=1
//   blocks (deflated) and end marker as in blockFile.ts, as the stat cache's
// A record: varint path length + the folder's path relative to the root (components joined by '/',
// empty for the root), u8 flags (bit 0: racy), i64 mtimeNs, i64 ctimeNs, u64 ino, u64 dev, varint name
// count, then each name as varint length + bytes, sorted bytewise as the scanner sorts them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { compareIndex, compareJoinedPaths } from '../pathIndex';
import { SetFileKind } from '../cache/setFiles';
import type { PathIndex } from '../types';
import { readFullySync } from '../util/syncIo';
import { BlockFileWriter, BlockReader, getVarint, putVarint } from './blockFile';
import { RACY_WINDOW_NS } from './statCache';

/** Listing files in the cache folder, named by the time of the set whose scan wrote them. */
export const LISTINGS = new SetFileKind('offsite-dirs');

/** What a listing is checked against: the folder's lstat (bigint). */
export interface FolderStat {
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly ino: bigint;
  readonly dev: bigint;
}

/** The scanner's view: names for a folder it is about to read, and what it read. */
export interface Listings {
  /** The folder's sorted names from the previous scan, when it has not changed since; else undefined. */
  lookup(index: PathIndex, st: FolderStat): Buffer[] | undefined;
  /** The folder's sorted names as this scan has them (read, or reused). Folders come in scan order. */
  record(index: PathIndex, st: FolderStat, names: readonly Buffer[]): void;
}

const MAGIC = Buffer.from('OFFDIRS1', 'latin1');
const VERSION = 1;
const HEADER_LEN = 12;
const RACY = 1;
const SLASH = 0x2f;

interface Listing {
  /** The folder's path relative to the root, components joined by '/' (a view into the block). */
  readonly path: Buffer;
  readonly racy: boolean;
  /** mtimeNs, ctimeNs, ino, dev as stored (32 bytes, a view into the block). */
  readonly stat: Buffer;
  readonly names: Buffer[];
}

// The folder's stat as the file stores it, for a byte comparison (no BigInt read per record).
const STAT = new ArrayBuffer(32);
const STAT_I64 = new BigInt64Array(STAT);
const STAT_U64 = new BigUint64Array(STAT);
const STAT_BYTES = Buffer.from(STAT);
if (os.endianness() !== 'LE') throw new Error('listingCache.ts assumes a little-endian machine');

function statBytes(st: FolderStat): Buffer {
  STAT_I64[0] = st.mtimeNs;
  STAT_I64[1] = st.ctimeNs;
  STAT_U64[2] = st.ino;
  STAT_U64[3] = st.dev;
  return STAT_BYTES;
}

export interface ListingCacheOptions {
  /** The previous scan's listing file, if any. */
  readonly previous?: string;
  /** Where this scan's listings go (a 0600 temp file beside it until close()); none: read only. */
  readonly next?: string;
  /** When this scan began (ns since the epoch; default now): listings of folders changed since shortly before are racy. */
  readonly scanStartNs?: bigint;
  /** Told once why listings stopped being read or written (debug). */
  readonly onProblem?: (message: string) => void;
}

/**
 * Listings read from the previous file and written to the next one, with synchronous I/O (the scanner
 * is synchronous) and the blocks' compression in the threadpool (blockFile.ts).
 */
export class ListingCache implements Listings {
  /** Folders whose names came from the previous scan / were read from the disk. */
  reused = 0;
  listed = 0;
  private readonly reader: ListingReader | undefined;
  private readonly writer: ListingWriter | undefined;

  constructor(private readonly opts: ListingCacheOptions) {
    this.reader = opts.previous ? ListingReader.open(opts.previous, (why) => this.problem(`previous listings not used from here (${why})`)) : undefined;
    try {
      if (opts.next !== undefined) this.writer = new ListingWriter(opts.next, (opts.scanStartNs ?? BigInt(Date.now()) * 1_000_000n) - RACY_WINDOW_NS);
    } catch (e) {
      this.problem(`listings not written (${(e as Error).message})`);
    }
  }

  lookup(index: PathIndex, st: FolderStat): Buffer[] | undefined {
    let l: Listing | undefined;
    try {
      l = this.reader?.find(index);
    } catch (e) {
      this.reader?.close(); // an I/O error reading the file: the scan lists folders itself from here
      this.problem(`previous listings not used from here (${(e as Error).message})`);
    }
    if (l !== undefined && !l.racy && l.stat.equals(statBytes(st))) {
      this.reused++;
      return l.names;
    }
    this.listed++;
    return undefined;
  }

  record(index: PathIndex, st: FolderStat, names: readonly Buffer[]): void {
    if (!this.writer?.ok) return;
    try {
      this.writer.add(index, st, names);
    } catch (e) {
      this.writer.abort();
      this.problem(`listings not written (${(e as Error).message})`);
    }
  }

  /** Completes the new listing file (renamed into place); closes the previous one. */
  async close(): Promise<void> {
    this.reader?.close();
    if (!this.writer?.ok) return;
    try {
      await this.writer.close();
    } catch (e) {
      this.writer.abort();
      this.problem(`listings not written (${(e as Error).message})`);
    }
  }

  /** Drops the new listing file (the scan did not complete); the previous one stays. */
  abort(): void {
    this.reader?.close();
    this.writer?.abort();
  }

  private problem(message: string): void {
    this.opts.onProblem?.(message);
  }
}

class ListingWriter {
  private readonly file: BlockFileWriter;
  private prev: PathIndex | undefined;

  constructor(
    final: string,
    private readonly racyFromNs: bigint,
  ) {
    const header = Buffer.alloc(HEADER_LEN);
    MAGIC.copy(header);
    header.writeUInt32LE(VERSION, 8);
    this.file = new BlockFileWriter(final, header);
  }

  get ok(): boolean {
    return this.file.open;
  }

  add(index: PathIndex, st: FolderStat, names: readonly Buffer[]): void {
    if (this.prev !== undefined && compareIndex(this.prev, index) >= 0) throw new Error('folders out of order');
    this.prev = index;
    let pathLen = Math.max(0, index.length - 1);
    for (const c of index) pathLen += c.length;
    let need = pathLen + 64 + names.length * 5;
    for (const n of names) need += n.length;
    const b = this.file.room(need);
    let pos = putVarint(b, this.file.pos, pathLen);
    for (let k = 0; k < index.length; k++) {
      if (k > 0) b[pos++] = SLASH;
      pos += index[k].copy(b, pos);
    }
    b[pos++] = st.ctimeNs >= this.racyFromNs ? RACY : 0;
    pos += statBytes(st).copy(b, pos);
    pos = putVarint(b, pos, names.length);
    for (const n of names) {
      pos = putVarint(b, pos, n.length);
      pos += n.copy(b, pos);
    }
    this.file.added(pos);
  }

  /** Not synced: a listing lost in a crash only means the next scan reads its folders. */
  close(): Promise<void> {
    return this.file.end();
  }

  abort(): void {
    this.file.abort();
  }
}

/**
 * Reads listings in order, one block in memory at a time and one record decoded at a time (decoding a
 * whole block's records at once kept thousands of them alive past the young generation); find() only
 * moves forward.
 */
class ListingReader {
  private readonly blocks: BlockReader;
  private block: Buffer = Buffer.alloc(0);
  private readonly cur = { pos: 0 };
  private current: Listing | undefined;
  private count = 0;
  private prev: Buffer | undefined;
  private done = false;

  private constructor(
    private readonly fd: number,
    private readonly fail: (why: string) => void,
  ) {
    this.blocks = new BlockReader(fd, HEADER_LEN);
  }

  static open(file: string, fail: (why: string) => void): ListingReader | undefined {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail((e as Error).message);
      return undefined;
    }
    const r = new ListingReader(fd, fail);
    const header = Buffer.alloc(HEADER_LEN);
    try {
      if (readFullySync(fd, header, 0) !== HEADER_LEN || !header.subarray(0, 8).equals(MAGIC) || header.readUInt32LE(8) !== VERSION) {
        r.stop('not a listing file of this version');
      }
    } catch (e) {
      r.stop((e as Error).message); // e.g. EISDIR
    }
    return r;
  }

  find(index: PathIndex): Listing | undefined {
    for (;;) {
      this.current ??= this.next();
      if (this.current === undefined) return undefined;
      const c = comparePathIndex(this.current.path, index);
      if (c === 0) return this.current;
      if (c > 0) return undefined;
      this.current = undefined;
    }
  }

  close(): void {
    this.stop();
  }

  private stop(why?: string): void {
    if (this.done) return;
    this.done = true;
    this.block = Buffer.alloc(0);
    this.current = undefined;
    try {
      fs.closeSync(this.fd);
    } catch {
      // nothing more is read from it either way
    }
    if (why) this.fail(why);
  }

  /** The next record, reading the next block when this one is used up; undefined at the end or a fault. */
  private next(): Listing | undefined {
    while (!this.done && this.cur.pos >= this.block.length) this.nextBlock();
    if (this.done) return undefined;
    const l = this.decode();
    if (l === undefined) this.stop('bad record');
    return l;
  }

  private nextBlock(): void {
    const b = this.blocks.next(this.count);
    // The end: everything before it was read and checked.
    if (b === 'end') return this.stop();
    if ('bad' in b) return this.stop(b.bad);
    this.block = b;
    this.cur.pos = 0;
  }

  /** The record at the cursor (names and path components are views into the block); undefined if anything is off. */
  private decode(): Listing | undefined {
    const b = this.block;
    const cur = this.cur;
    const pathLen = getVarint(b, cur);
    if (pathLen < 0 || cur.pos + pathLen + 33 > b.length) return undefined;
    const path = b.subarray(cur.pos, cur.pos + pathLen);
    if (!validPath(path) || (this.prev !== undefined && compareJoinedPaths(this.prev, 0, this.prev.length, path, 0, path.length) >= 0)) return undefined;
    cur.pos += pathLen;
    const flags = b[cur.pos++];
    const stat = b.subarray(cur.pos, cur.pos + 32);
    cur.pos += 32;
    const n = getVarint(b, cur);
    if (n < 0) return undefined;
    const names: Buffer[] = [];
    for (let k = 0; k < n; k++) {
      const len = getVarint(b, cur);
      if (len <= 0 || cur.pos + len > b.length) return undefined;
      const name = b.subarray(cur.pos, cur.pos + len);
      if (name.includes(SLASH) || name.includes(0) || (k > 0 && Buffer.compare(names[k - 1], name) >= 0)) return undefined;
      names.push(name);
      cur.pos += len;
    }
    this.prev = path;
    this.count++;
    return { path, racy: (flags & RACY) !== 0, stat, names };
  }
}

/** A relative path as stored: '' (the root) or non-empty components joined by '/', no NUL. */
function validPath(p: Buffer): boolean {
  if (p.length === 0) return true;
  if (p[0] === SLASH || p[p.length - 1] === SLASH || p.includes(0)) return false;
  for (let i = 1; i < p.length; i++) if (p[i] === SLASH && p[i - 1] === SLASH) return false;
  return true;
}

/** compareIndex(the components of stored path `p`, index), without splitting `p`. */
function comparePathIndex(p: Buffer, index: PathIndex): number {
  let pos = 0;
  for (let k = 0; ; k++) {
    const pDone = pos >= p.length;
    const iDone = k >= index.length;
    if (pDone || iDone) return pDone && iDone ? 0 : pDone ? -1 : 1;
    const c = index[k];
    for (let i = 0; ; i++, pos++) {
      const pEnd = pos >= p.length || p[pos] === SLASH;
      const cEnd = i >= c.length;
      if (pEnd || cEnd) {
        if (!(pEnd && cEnd)) return pEnd ? -1 : 1;
        break;
      }
      if (p[pos] !== c[i]) return p[pos] - c[i];
    }
    pos++; // the '/' (or past the end: no component k + 1)
  }
}
