// Our own tar codec. Writing mirrors Python 3.11 tarfile's PAX_FORMAT byte for byte (what duplicity
// 0.8.22 writes, FORMAT.md §6.1); reading accepts what any duplicity version wrote: ustar, pax,
// GNU long names, base-256 numbers, no footer, junk after the end (§6.5, §15 item 14). Names are
// bytes throughout: duplicity stores undecodable file names raw under `hdrcharset=BINARY`.
import { isUtf8 } from 'node:buffer';
import { OffsiteError } from '../errors';

export type TarType = 'file' | 'hardlink' | 'symlink' | 'chr' | 'blk' | 'dir' | 'fifo' | 'other';

export interface TarHeader {
  /** Member name as bytes; directories end with '/' when written (encodeTarHeader adds it). */
  name: Buffer;
  type: TarType;
  /** The mode field as stored (writers mask it to 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds; a pax record can make it fractional. */
  mtime: number;
  linkname: Buffer;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** The raw typeflag byte, needed to write type 'other'; readTar sets it for 'other' entries. */
  typeflag?: number;
}

export interface TarEntry {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
}

export const TAR_BLOCK = 512;
/** Python tarfile's RECORDSIZE (20 blocks): footers pad the stream to a multiple of it. */
export const TAR_RECORD = 10240;

const NUL_BLOCK = Buffer.alloc(TAR_BLOCK);
const MAX_META_SIZE = 1 << 20; // pax / GNU long-name payloads; real ones are a few KiB at most

const FLAG_OF: Record<Exclude<TarType, 'other'>, number> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  chr: 0x33,
  blk: 0x34,
  dir: 0x35,
  fifo: 0x36,
};

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * NULs from `size` to the next multiple of 512 (empty when already aligned): a view of a shared zero
 * block (one allocation less per member), never to be written to.
 */
export function tarPadding(size: number): Buffer {
  const r = size % TAR_BLOCK;
  return NUL_BLOCK.subarray(0, r === 0 ? 0 : TAR_BLOCK - r);
}

/**
 * duplicity's footer for encrypted volumes (`TarBlockIter.get_footer()`): zeros up to the next
 * multiple of 10,240 counted from the start of the volume's tar stream; a full 10,240 when aligned.
 */
export function tarFooter(bytesSoFar: number): Buffer {
  return Buffer.alloc(TAR_RECORD - (bytesSoFar % TAR_RECORD));
}

/**
 * The end Python's `TarFile.close()` writes (sigtars, FORMAT §8): two zero blocks, then zeros up to
 * the next multiple of 10,240.
 */
export function tarArchiveEnd(bytesSoFar: number): Buffer {
  const after = bytesSoFar + 2 * TAR_BLOCK;
  const r = after % TAR_RECORD;
  return Buffer.alloc(2 * TAR_BLOCK + (r === 0 ? 0 : TAR_RECORD - r));
}

/**
 * Header block(s) exactly as Python 3.11 tarfile (PAX_FORMAT) writes them: ustar header, preceded by a
 * pax 'x' header when a field does not fit (long/non-ASCII name or linkname, undecodable bytes →
 * hdrcharset=BINARY, big numbers). Directories' names end with '/'.
 */
export function encodeTarHeader(h: TarHeader): Buffer {
  let name = h.name;
  if (h.type === 'dir' && (name.length === 0 || name[name.length - 1] !== 0x2f)) {
    name = Buffer.concat([name, Buffer.from('/')]);
  }
  const flag = typeflagOf(h);

  // Fields that do not fit ustar go to pax records, in Python's order (create_pax_header()).
  const pax: [string, Buffer][] = [];
  if (!isAscii(name) || name.length > 100) pax.push(['path', name]);
  if (!isAscii(h.linkname) || h.linkname.length > 100) pax.push(['linkpath', h.linkname]);
  for (const [key, value] of [['uname', h.uname], ['gname', h.gname]] as const) {
    if (!isAsciiString(value) || value.length > 32) pax.push([key, Buffer.from(value, 'utf8')]);
  }
  const main = ustarBlock({
    name: asciiReplace(name),
    mode: h.mode & 0o7777,
    uid: numberField('uid', h.uid, 8, pax),
    gid: numberField('gid', h.gid, 8, pax),
    size: numberField('size', h.size, 12, pax),
    mtime: numberField('mtime', h.mtime, 12, pax),
    flag,
    linkname: asciiReplace(h.linkname),
    uname: ownerField(h.uname),
    gname: ownerField(h.gname),
    dev: h.type === 'chr' || h.type === 'blk' ? [h.devmajor, h.devminor] : undefined,
  });
  if (pax.length === 0) return main;
  return Buffer.concat([paxHeader(pax), main]);
}

/** Largest value + 1 of an octal field of `len` bytes (len - 1 digits and a NUL), by len. */
const OCTAL_LIMIT = [0, 1, 8, 64, 512, 4096, 32768, 262144, 2097152, 16777216, 134217728, 1073741824, 8589934592];

/**
 * The ustar value of a number field; a value ustar cannot hold (negative, too big, a float) goes to a
 * pax record as Python writes it, and the ustar field gets 0 (or the float rounded half to even).
 */
function numberField(key: string, val: number, digits: number, pax: [string, Buffer][]): number {
  if (Number.isInteger(val) && val >= 0 && val < OCTAL_LIMIT[digits]) return val;
  const valInt = Number.isInteger(val) ? val : roundHalfEven(val);
  pax.push([key, Buffer.from(String(val), 'ascii')]);
  return valInt >= 0 && valInt < OCTAL_LIMIT[digits] ? valInt : 0;
}

/** uname/gname as ustar bytes; the few names of a backup are encoded once. */
const ownerBytes = new Map<string, Buffer>();
function ownerField(name: string): Buffer {
  let b = ownerBytes.get(name);
  if (!b) {
    b = Buffer.from(asciiReplaceString(name), 'ascii');
    if (ownerBytes.size < 256) ownerBytes.set(name, b);
  }
  return b;
}

function typeflagOf(h: TarHeader): number {
  if (h.type !== 'other') return FLAG_OF[h.type];
  if (h.typeflag === undefined) throw new OffsiteError('internal', "A tar header of type 'other' needs its typeflag");
  return h.typeflag;
}

interface UstarFields {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: number;
  linkname: Buffer;
  uname: Buffer;
  gname: Buffer;
  dev?: [number, number];
}

// Python's _create_header(): ustar magic, octal numbers with a trailing NUL, checksum "%06o\0 ".
const USTAR_MAGIC = Buffer.from('ustar\x0000', 'latin1');

function ustarBlock(f: UstarFields): Buffer {
  // From Node's buffer pool, zeroed: a header per path and archive, and Buffer.alloc makes each its
  // own ArrayBuffer (3x the time for 94k headers, and garbage V8 tracks one by one).
  const b = Buffer.allocUnsafe(TAR_BLOCK).fill(0);
  f.name.copy(b, 0, 0, Math.min(100, f.name.length));
  writeOctal(b, 100, 8, f.mode);
  writeOctal(b, 108, 8, f.uid);
  writeOctal(b, 116, 8, f.gid);
  writeOctal(b, 124, 12, f.size);
  writeOctal(b, 136, 12, f.mtime);
  b.fill(0x20, 148, 156);
  b[156] = f.flag;
  f.linkname.copy(b, 157, 0, Math.min(100, f.linkname.length));
  USTAR_MAGIC.copy(b, 257);
  f.uname.copy(b, 265, 0, Math.min(32, f.uname.length));
  f.gname.copy(b, 297, 0, Math.min(32, f.gname.length));
  if (f.dev) {
    writeOctal(b, 329, 8, f.dev[0]);
    writeOctal(b, 337, 8, f.dev[1]);
  }
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += b[i];
  writeOctal(b, 148, 7, sum); // six digits and a NUL; the eighth byte stays a space, as Python writes it
  return b;
}

/** `n` as len - 1 zero-padded octal digits and a NUL at b[off..off+len). */
function writeOctal(b: Buffer, off: number, len: number, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n >= OCTAL_LIMIT[len]) {
    // Python raises "overflow in number field" here too (only devmajor/devminor can get here).
    throw new OffsiteError('format', `Number ${n} does not fit a ${len}-byte tar field`);
  }
  b[off + len - 1] = 0;
  for (let i = off + len - 2; i >= off; i--) {
    const d = n % 8;
    b[i] = 0x30 + d;
    n = (n - d) / 8;
  }
}

// Python's _create_pax_generic_header(): hdrcharset=BINARY first when a value is not valid UTF-8.
function paxHeader(records: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  if (records.some(([, v]) => !isUtf8(v))) parts.push(Buffer.from('21 hdrcharset=BINARY\n', 'ascii'));
  for (const [key, value] of records) {
    const l = key.length + value.length + 3;
    let p = 0;
    for (;;) {
      const n = l + String(p).length;
      if (n === p) break;
      p = n;
    }
    parts.push(Buffer.from(`${p} ${key}=`, 'ascii'), value, Buffer.from('\n', 'ascii'));
  }
  const data = Buffer.concat(parts);
  const head = ustarBlock({
    name: Buffer.from('././@PaxHeader', 'ascii'),
    mode: 0,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 0,
    flag: 0x78, // 'x'
    linkname: Buffer.alloc(0),
    uname: Buffer.alloc(0),
    gname: Buffer.alloc(0),
  });
  return Buffer.concat([head, data, tarPadding(data.length)]);
}

function isAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] > 0x7f) return false;
  return true;
}

/**
 * The ustar field Python writes for a name it holds as a str decoded with surrogateescape, encoded
 * back with ('ascii', 'replace'): each non-ASCII *character* becomes one '?'. A valid UTF-8 sequence
 * is one character; each byte of an invalid sequence is one (surrogate) character.
 */
function asciiReplace(b: Buffer): Buffer {
  if (isAscii(b)) return b;
  const out: number[] = [];
  for (let i = 0; i < b.length; ) {
    if (b[i] < 0x80) {
      out.push(b[i]);
      i++;
    } else {
      out.push(0x3f);
      i += utf8SeqLen(b, i) || 1;
    }
  }
  return Buffer.from(out);
}

/** Length of the valid UTF-8 sequence (as Python's strict decoder sees it) starting at i, or 0. */
function utf8SeqLen(b: Buffer, i: number): number {
  const c = b[i];
  const cont = (j: number, lo = 0x80, hi = 0xbf): boolean => j < b.length && b[j] >= lo && b[j] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c === 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
  if (c === 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (c >= 0xe1 && c <= 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c === 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c === 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

function isAsciiString(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function asciiReplaceString(s: string): string {
  let out = '';
  for (const ch of s) out += ch.codePointAt(0)! < 0x80 ? ch : '?';
  return out;
}

// Python's round(): half to even.
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * Streaming reader of ONE tar archive: ustar, pax (x; g ignored), GNU L/K long names, base-256
 * numbers; stops at the first zero block; tolerates a missing footer and junk after the end (it
 * still drains the source so an outer decryptor can check its MDC). Each entry's body must be
 * consumed or it is skipped automatically when the next entry is requested. Truncated data →
 * OffsiteError('integrity'), garbage header (bad checksum) → OffsiteError('format'). Fast: no
 * per-byte work on bodies, slices not copies.
 *
 * Bodies yield slices of the source's chunks (valid until the consumer lets go of them). Types
 * without data (dir, symlink, hardlink, devices, fifo) have an empty body whatever their size field
 * says, as in Python's tarfile. Read an entry's body before asking for the next entry, never both at
 * once.
 */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<TarEntry> {
  const r = new ChunkReader(source);
  let current: BodyState | undefined;
  try {
    for (;;) {
      if (current) {
        current.stale = true;
        await r.skip(current.remaining + current.pad);
        current = undefined;
      }
      const header = await readHeader(r);
      if (!header) {
        await r.drain();
        return;
      }
      const hasData = header.type === 'file' || header.type === 'other';
      const size = hasData ? header.size : 0;
      current = { remaining: size, pad: (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK, stale: false, started: false };
      yield { header, body: bodyOf(r, current) };
    }
  } finally {
    await r.close();
  }
}

interface BodyState {
  remaining: number;
  pad: number;
  stale: boolean;
  started: boolean;
}

function bodyOf(r: ChunkReader, st: BodyState): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator]: async function* () {
      if (st.started) throw new OffsiteError('internal', 'A tar entry body can be read only once');
      st.started = true;
      while (st.remaining > 0) {
        if (st.stale) throw new OffsiteError('internal', 'A tar entry body was read after the next entry was requested');
        const chunk = await r.take(st.remaining);
        st.remaining -= chunk.length;
        yield chunk;
      }
    },
  };
}

interface Pending {
  longName?: Buffer;
  longLink?: Buffer;
  pax?: Map<string, Buffer>;
}

/** Next member's header with pax / GNU long names applied; undefined at the end of the archive. */
async function readHeader(r: ChunkReader): Promise<TarHeader | undefined> {
  // Extension headers in order; Python lets the outermost (first) one win, so we apply in reverse.
  const ext: Pending[] = [];
  for (;;) {
    const at = r.position;
    const block = await r.readExact(TAR_BLOCK);
    if (!block) {
      if (ext.length) throw truncated(r, 'the archive ends after an extended header');
      return undefined;
    }
    if (block.equals(NUL_BLOCK)) {
      if (ext.length) throw new OffsiteError('format', `Bad tar archive: an extended header is followed by the end of the archive (offset ${at})`);
      return undefined;
    }
    checkChecksum(block, at);
    const flag = block[156];
    const size = readNumber(block, 124, 12, at);
    if (flag === 0x78 || flag === 0x58 || flag === 0x67 || flag === 0x4c || flag === 0x4b) {
      // x, X (Solaris), g, L, K: a payload that describes the next member.
      if (size > MAX_META_SIZE) throw new OffsiteError('format', `Bad tar archive: extended header of ${size} bytes at offset ${at}`);
      const data = (await r.readExact(size)) ?? Buffer.alloc(0);
      if (data.length < size) throw truncated(r, 'an extended header is cut short');
      await r.skip((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK);
      if (flag === 0x67) continue; // global pax header: ignored (duplicity never writes one)
      if (flag === 0x4c) ext.push({ longName: Buffer.from(nts(data)) });
      else if (flag === 0x4b) ext.push({ longLink: Buffer.from(nts(data)) });
      else ext.push({ pax: parsePax(data, at) });
      continue;
    }
    const h = parseUstar(block, flag, size, at);
    for (let i = ext.length - 1; i >= 0; i--) applyExt(h, ext[i]);
    return h;
  }
}

function parseUstar(b: Buffer, flag: number, size: number, at: number): TarHeader {
  let name = Buffer.from(nts(b.subarray(0, 100)));
  const gnuMagic = b.toString('latin1', 257, 265) === 'ustar  \0';
  let type = typeOf(flag);
  // Old V7 tars mark directories only by a trailing slash on a type-NUL member.
  if (flag === 0 && name.length && name[name.length - 1] === 0x2f) type = 'dir';
  if (flag === 0x53) throw new OffsiteError('format', `GNU sparse tar members are not supported (offset ${at})`);
  // ustar long names: prefix + '/' + name (GNU headers use those bytes for other things).
  if (!gnuMagic) {
    const prefix = nts(b.subarray(345, 500));
    if (prefix.length) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  const h: TarHeader = {
    name,
    type,
    mode: readNumber(b, 100, 8, at),
    uid: readNumber(b, 108, 8, at),
    gid: readNumber(b, 116, 8, at),
    size,
    mtime: readNumber(b, 136, 12, at),
    linkname: Buffer.from(nts(b.subarray(157, 257))),
    uname: nts(b.subarray(265, 297)).toString('utf8'),
    gname: nts(b.subarray(297, 329)).toString('utf8'),
    devmajor: readNumber(b, 329, 8, at),
    devminor: readNumber(b, 337, 8, at),
  };
  if (type === 'other') h.typeflag = flag;
  return h;
}

function typeOf(flag: number): TarType {
  switch (flag) {
    case 0x30:
    case 0x00:
      return 'file';
    case 0x31:
      return 'hardlink';
    case 0x32:
      return 'symlink';
    case 0x33:
      return 'chr';
    case 0x34:
      return 'blk';
    case 0x35:
      return 'dir';
    case 0x36:
      return 'fifo';
    default:
      return 'other'; // '7' (contiguous) included: duplicity refuses it, as it refuses all of these
  }
}

function applyExt(h: TarHeader, e: Pending): void {
  if (e.longName) h.name = e.longName;
  if (e.longLink) h.linkname = e.longLink;
  if (!e.pax) return;
  for (const [key, value] of e.pax) {
    switch (key) {
      case 'path':
        h.name = Buffer.from(value);
        break;
      case 'linkpath':
        h.linkname = Buffer.from(value);
        break;
      case 'uname':
        h.uname = value.toString('utf8');
        break;
      case 'gname':
        h.gname = value.toString('utf8');
        break;
      case 'uid':
      case 'gid':
      case 'size': {
        // Python: int(value), 0 when that fails.
        const s = value.toString('latin1').trim();
        const n = /^[+-]?\d+$/.test(s) ? Number(s) : 0;
        if (!Number.isSafeInteger(n)) throw new OffsiteError('format', `Bad tar archive: pax ${key} ${s} is out of range`);
        h[key] = n;
        break;
      }
      case 'mtime': {
        const n = Number(value.toString('latin1').trim());
        h.mtime = Number.isFinite(n) ? n : 0;
        break;
      }
    }
  }
}

/** Pax records "<len> <key>=<value>\n", checked as strictly as Python's _proc_pax(). */
function parsePax(buf: Buffer, at: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const bad = (): OffsiteError => new OffsiteError('format', `Bad tar archive: malformed pax header at offset ${at}`);
  let pos = 0;
  while (pos < buf.length && buf[pos] !== 0) {
    let i = pos;
    while (i < buf.length && i - pos < 20 && buf[i] >= 0x30 && buf[i] <= 0x39) i++;
    if (i === pos || i >= buf.length || buf[i] !== 0x20) throw bad();
    const length = Number(buf.toString('latin1', pos, i));
    if (length < 5 || pos + length > buf.length) throw bad();
    const end = pos + length - 1; // the '\n'
    if (buf[end] !== 0x0a) throw bad();
    const kv = buf.subarray(i + 1, end);
    const eq = kv.indexOf(0x3d);
    if (eq <= 0) throw bad();
    out.set(kv.toString('utf8', 0, eq), kv.subarray(eq + 1));
    pos += length;
  }
  return out;
}

function nts(b: Buffer): Buffer {
  const z = b.indexOf(0);
  return z < 0 ? b : b.subarray(0, z);
}

// Python's nti(): base-256 when the first byte is 0x80 / 0xff, else octal text up to the first NUL.
function readNumber(b: Buffer, off: number, len: number, at: number): number {
  const first = b[off];
  if (first === 0x80 || first === 0xff) {
    let n = 0n;
    for (let i = off + 1; i < off + len; i++) n = (n << 8n) | BigInt(b[i]);
    if (first === 0xff) n -= 1n << BigInt(8 * (len - 1));
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new OffsiteError('format', `Bad tar archive: number out of range in the header at offset ${at}`);
    }
    return Number(n);
  }
  let start = off;
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  while (start < end && isSpace(b[start])) start++;
  while (end > start && isSpace(b[end - 1])) end--;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 7) throw new OffsiteError('format', `Bad tar archive: invalid number in the header at offset ${at}`);
    n = n * 8 + d;
  }
  return n;
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

// Python accepts the unsigned or the signed sum (some old tars used signed chars).
function checkChecksum(b: Buffer, at: number): void {
  let stored: number;
  try {
    stored = readNumber(b, 148, 8, at);
  } catch {
    stored = -1;
  }
  let unsigned = 256; // the checksum field counts as 8 spaces
  let signed = 256;
  for (let i = 0; i < TAR_BLOCK; i++) {
    if (i === 148) {
      i = 155;
      continue;
    }
    unsigned += b[i];
    signed += b[i] > 127 ? b[i] - 256 : b[i];
  }
  if (stored !== unsigned && stored !== signed) {
    throw new OffsiteError('format', `Bad tar archive: header checksum mismatch at offset ${at}`, {
      hint: 'The volume is corrupt or is not a duplicity volume',
    });
  }
}

function truncated(r: ChunkReader, what: string): OffsiteError {
  return new OffsiteError('integrity', `Truncated tar archive: ${what} (offset ${r.position})`, {
    hint: 'The file is incomplete or corrupt; check the remote copy',
  });
}

/** Pulls chunks from the source and hands out slices; tracks the absolute offset for messages. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer | Uint8Array>;
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;
  private consumedBefore = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  get position(): number {
    return this.consumedBefore + this.pos;
  }

  private async more(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      this.consumedBefore += this.chunk.length;
      const v = r.value;
      this.chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /** Exactly n bytes; undefined if the source ends before the first byte; fewer bytes if it ends mid-way. */
  async readExact(n: number): Promise<Buffer | undefined> {
    if (n === 0) return Buffer.alloc(0);
    if (this.pos + n <= this.chunk.length) {
      const b = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      return b;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.more())) {
        if (got === 0) return undefined;
        throw truncated(this, `${got} of ${n} bytes`);
      }
      const take = Math.min(n - got, this.chunk.length - this.pos);
      this.chunk.copy(out, got, this.pos, this.pos + take);
      this.pos += take;
      got += take;
    }
    return out;
  }

  /** Up to n (> 0) bytes, a slice of the current chunk. */
  async take(n: number): Promise<Buffer> {
    if (!(await this.more())) throw truncated(this, 'member data is cut short');
    const end = Math.min(this.chunk.length, this.pos + n);
    const b = this.chunk.subarray(this.pos, end);
    this.pos = end;
    return b;
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (!(await this.more())) throw truncated(this, 'member data is cut short');
      const step = Math.min(n, this.chunk.length - this.pos);
      this.pos += step;
      n -= step;
    }
  }

  /** Reads and discards the rest (junk after the end), so a decrypting source reaches its MDC check. */
  async drain(): Promise<void> {
    while (await this.more()) this.pos = this.chunk.length;
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.();
  }
}
