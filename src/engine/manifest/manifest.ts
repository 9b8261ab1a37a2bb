// Manifests (duplicity's manifest.py, FORMAT.md §5): the on-disk text, byte for byte, and a parser
// exactly as tolerant as duplicity's Manifest.from_string() / VolumeInfo.from_string(). The text is
// bytes (paths need not be UTF-8), so it is handled as a latin1 string: one char per byte.
import type { PathIndex } from '../types';
import { OffsiteError } from '../errors';
import { compareIndex } from '../pathIndex';

export interface VolumeInfo {
  volumeNumber: number;
  startIndex: PathIndex;
  /** Chunk number when the volume starts inside a split file (not on its last chunk). */
  startBlock?: number;
  endIndex: PathIndex;
  endBlock?: number;
  /** e.g. { SHA1: hex }; written in insertion order. */
  hashes: Record<string, string>;
}

export interface FileChange {
  action: 'new' | 'changed' | 'deleted';
  index: PathIndex;
}

export interface Manifest {
  hostname?: string;
  localdir?: Buffer;
  /** In manifest order (a volume listed twice keeps its first place, as in duplicity's dict). */
  volumes: VolumeInfo[];
  /** undefined: no Filelist section. duplicity always writes one ('Filelist 0' when empty). */
  filelist?: FileChange[];
}

/**
 * The largest manifest read (decrypted size): a manifest is held whole in memory, and a hostile one
 * (anyone with the public key can write one) can inflate a 1.4 MB file to gigabytes. Its file list
 * takes ~60 bytes per path (`    changed  src/some/folder/file.ts`, quoted names longer) and a full
 * set lists every path: 128 MiB is ~2.2 million paths in one set, 22 times the 100k-file workspace
 * the benchmark measures; the volume lines add ~150 bytes per volume (a 1 TB set in 32 MB volumes:
 * ~5 MB). Reading one this large takes ~3 times it in memory, well under V8's 512 MiB string limit.
 */
export const MAX_MANIFEST_BYTES = 128 * 2 ** 20;

// Python's bytes regexes: \s is [ \t\n\r\f\v] only, '.' is anything but '\n'.
const WS = '[ \\t\\n\\r\\f\\v]';
const WS_CHARS = ' \t\n\r\f\v';

// ---------------------------------------------------------------------------------------------
// Quoting (manifest.py Quote() / Unquote())

const NEEDS_QUOTE = /[ \t\n\r\f\v"'\\]/;
const QUOTE_ALL = /[ \t\n\r\f\v"'\\]/g;
const ESCAPE = /\\x([0-9a-fA-F]{2})/g;
const BAD_ESCAPE = /\\(?!x[0-9a-fA-F]{2})/;

/** Wraps in '"' and escapes whitespace, quotes and backslashes as \xHH when any is present. */
export function quote(s: Buffer): Buffer {
  const str = s.toString('latin1');
  return NEEDS_QUOTE.test(str) ? Buffer.from(quoteStr(str), 'latin1') : s;
}

function quoteStr(str: string): string {
  if (!NEEDS_QUOTE.test(str)) return str;
  return `"${str.replace(QUOTE_ALL, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`;
}

/** Inverse of quote(); OffsiteError('format') where duplicity's Unquote() would fail. */
export function unquote(s: Buffer): Buffer {
  return Buffer.from(unquoteStr(s.toString('latin1')), 'latin1');
}

function unquoteStr(q: string): string {
  if (q.length === 0) throw bad('an empty value');
  if (q[0] !== '"') return q;
  if (q[q.length - 1] !== '"') throw bad(`unbalanced quotes in ${JSON.stringify(q)}`);
  const inner = q.slice(1, -1);
  if (BAD_ESCAPE.test(inner)) throw bad(`bad escape in ${JSON.stringify(q)}`);
  return inner.replace(ESCAPE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function bad(what: string): OffsiteError {
  return new OffsiteError('format', `Unreadable manifest: ${what}`, {
    hint: 'The manifest is corrupt; duplicity could not read it either',
  });
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * duplicity's on-disk layout (written line by line while the backup runs): Hostname, Localdir, the
 * volumes, then Filelist. No trailing blank line.
 */
export function formatManifest(m: Manifest): Buffer {
  const parts: Buffer[] = [];
  if (m.hostname) parts.push(Buffer.from(`Hostname ${m.hostname}\n`, 'utf8'));
  if (m.localdir && m.localdir.length) parts.push(Buffer.from('Localdir ', 'latin1'), quote(m.localdir), Buffer.from('\n', 'latin1'));
  for (const v of m.volumes) parts.push(formatVolume(v), Buffer.from('\n', 'latin1'));
  if (m.filelist) {
    let text = `Filelist ${m.filelist.length}\n`;
    for (const f of m.filelist) text += formatFileChange(f);
    parts.push(Buffer.from(text, 'latin1'));
  }
  return Buffer.concat(parts);
}

/** One line of the Filelist section (latin1 text): what formatManifest writes per entry. */
export function formatFileChange(f: FileChange): string {
  return formatFileChangeOf(f.action, indexToLatin1(f.index));
}

/** formatFileChange of a path given as its bytes in latin1 (components joined by '/'). */
export function formatFileChangeOf(action: FileChange['action'], latin1Path: string): string {
  return `    ${action.padEnd(7)}  ${quoteStr(latin1Path)}\n`;
}

function formatVolume(v: VolumeInfo): Buffer {
  const lines = [
    `Volume ${v.volumeNumber}:`,
    `    StartingPath   ${indexText(v.startIndex)} ${blockText(v.startBlock)}`,
    `    EndingPath     ${indexText(v.endIndex)} ${blockText(v.endBlock)}`,
  ];
  for (const [name, value] of Object.entries(v.hashes)) lines.push(`    Hash ${name} ${value}`);
  return Buffer.from(lines.join('\n'), 'latin1');
}

function indexText(index: PathIndex): string {
  return index.length === 0 ? '.' : quoteStr(indexToLatin1(index));
}

function indexToLatin1(index: PathIndex): string {
  return index.map((c) => c.toString('latin1')).join('/');
}

function blockText(b: number | undefined): string {
  return b === undefined ? ' ' : String(b);
}

// ---------------------------------------------------------------------------------------------
// Parsing

const FIELD_RE = (name: string): RegExp => new RegExp(`(?:^|\\n)${name}${WS}([^\\n]*?)\\n`, 'i');
const HOSTNAME_RE = FIELD_RE('hostname');
const LOCALDIR_RE = FIELD_RE('localdir');
// Python: (?:^|\n)(volume\s.*(?:\n.*)*?)(?=\nvolume\s|$) where '$' also matches before a final '\n'.
const VOLUME_RE = new RegExp(`(?:^|\\n)(volume${WS}[^\\n]*(?:\\n[^\\n]*)*?)(?=\\nvolume${WS}|\\n?$)`, 'gi');
const FILELIST_RE = new RegExp(`(?:^|\\n)filelist${WS}([0-9]+)\\n([\\s\\S]*?)(?:\\nvolume${WS}|\\n?$)`, 'i');
const ACTIONS = new Set(['new', 'changed', 'deleted']);

/** Tolerant like duplicity (§5.3); OffsiteError('format') where duplicity fails. */
export function parseManifest(text: Buffer): Manifest {
  const s = text.toString('latin1');
  const m: Manifest = { volumes: [] };

  const host = HOSTNAME_RE.exec(s);
  if (host) {
    const raw = Buffer.from(unquoteStr(host[1]), 'latin1');
    try {
      m.hostname = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw bad('the hostname is not UTF-8');
    }
  }
  const dir = LOCALDIR_RE.exec(s);
  if (dir) m.localdir = Buffer.from(unquoteStr(dir[1]), 'latin1');

  // A dict keyed by volume number: a repeated number replaces the entry in its first place.
  const byNumber = new Map<number, VolumeInfo>();
  let highest = 0;
  let latest = 0;
  for (const match of s.matchAll(VOLUME_RE)) {
    const vi = parseVolume(match[1]);
    byNumber.set(vi.volumeNumber, vi);
    latest = vi.volumeNumber;
    highest = Math.max(highest, latest);
  }
  // Volumes numbered above the last one listed are leftovers of an interrupted run: dropped.
  for (let i = latest + 1; i <= highest; i++) {
    if (!byNumber.delete(i)) throw bad(`volume ${i} is missing`);
  }
  m.volumes = [...byNumber.values()];

  const fl = FILELIST_RE.exec(s);
  if (fl) {
    // Parsed on first use: a full set's list has a line per file, and restores never read it.
    const count = Number(fl[1]);
    const body = fl[2];
    let list: FileChange[] | undefined;
    Object.defineProperty(m, 'filelist', {
      enumerable: true,
      configurable: true,
      get: () => (list ??= count > 0 ? parseFileList(body) : []),
      set: (v: FileChange[]) => {
        list = v;
      },
    });
  }
  return m;
}

function splitWs(line: string): string[] {
  return line.split(/[ \t\n\r\f\v]+/).filter((x) => x.length > 0);
}

function stripWs(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && WS_CHARS.includes(s[a])) a++;
  while (b > a && WS_CHARS.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

// VolumeInfo.from_string(): first line 'Volume <n>:', then startingpath / endingpath / hash lines by
// their first word; anything else is ignored.
function parseVolume(block: string): VolumeInfo {
  const lines = stripWs(block).split('\n');
  const head = /^volume ([0-9]+):/i.exec(lines[0]);
  if (!head) throw bad(`bad volume line ${JSON.stringify(lines[0])}`);
  const volumeNumber = Number(head[1]);
  let startIndex: PathIndex | undefined;
  let endIndex: PathIndex | undefined;
  let startBlock: number | undefined;
  let endBlock: number | undefined;
  const hashes: Record<string, string> = {};
  for (let li = 1; li < lines.length; li++) {
    const line = lines[li];
    if (!line) continue;
    // Only three first words matter: look at the first word before splitting the line.
    let a = 0;
    while (a < line.length && WS_CHARS.includes(line[a])) a++;
    if (a === line.length) throw bad(`volume ${volumeNumber} has a line of only blanks`);
    let e = a;
    while (e < line.length && !WS_CHARS.includes(line[e])) e++;
    if (e - a !== 4 && e - a !== 10 && e - a !== 12) continue;
    const words = splitWs(line);
    const field = words[0].toLowerCase();
    if (field === 'startingpath' || field === 'endingpath') {
      if (words.length < 2) throw bad(`volume ${volumeNumber} has an empty ${words[0]}`);
      const index = stringToIndex(words[1]);
      const block = words.length > 2 ? blockNumber(words[2], volumeNumber) : undefined;
      if (field === 'startingpath') {
        startIndex = index;
        startBlock = block;
      } else {
        endIndex = index;
        endBlock = block;
      }
    } else if (field === 'hash') {
      if (words.length < 3) throw bad(`volume ${volumeNumber} has an incomplete Hash line`);
      hashes[utf8(words[1])] = utf8(words[2]);
    }
  }
  if (!startIndex || !endIndex) {
    throw bad(`volume ${volumeNumber} lacks its ${startIndex ? 'EndingPath' : 'StartingPath'}`);
  }
  const v: VolumeInfo = { volumeNumber, startIndex, endIndex, hashes };
  if (startBlock !== undefined) v.startBlock = startBlock;
  if (endBlock !== undefined) v.endBlock = endBlock;
  return v;
}

function blockNumber(w: string, vol: number): number {
  if (!/^[+-]?[0-9]+$/.test(w)) throw bad(`volume ${vol} has a bad block number ${JSON.stringify(w)}`);
  return Number(w);
}

function utf8(latin1: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(latin1, 'latin1'));
  } catch {
    throw bad('a hash line is not UTF-8');
  }
}

function stringToIndex(word: string): PathIndex {
  const s = unquoteStr(word);
  if (s === '.') return [];
  return s.split('/').map((c) => Buffer.from(c, 'latin1'));
}

// The Filelist is informational (duplicity reads it only for --file-changed): unreadable lines are
// skipped rather than failing the whole manifest.
function parseFileList(body: string): FileChange[] {
  const out: FileChange[] = [];
  for (const line of body.split('\n')) {
    const f = parseFileChange(line);
    if (f) out.push(f);
  }
  return out;
}

function parseFileChange(line: string): FileChange | undefined {
  const words = splitWs(line);
  if (words.length < 2 || !ACTIONS.has(words[0])) return undefined;
  try {
    return { action: words[0] as FileChange['action'], index: stringToIndex(words.slice(1).join('')) };
  } catch {
    return undefined;
  }
}

/**
 * duplicity's VolumeInfo.contains(): may this volume hold paths under `prefix` (restore of one path)?
 * True when StartingPath[:len(prefix)] ≤ prefix ≤ EndingPath, comparing tuples.
 */
export function volumeMayContain(v: VolumeInfo, prefix: PathIndex): boolean {
  return compareIndex(v.startIndex.slice(0, prefix.length), prefix) <= 0 && compareIndex(prefix, v.endIndex) <= 0;
}
