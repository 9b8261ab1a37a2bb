// Remote file names (duplicity's file_naming.py, FORMAT.md §2): the only place that knows them.
import { OffsiteError } from '../errors';
import { stringToTime, timeToString } from '../chain/time';

export type SetType = 'full' | 'inc';

/** One backup set's identity as a map key: its type and times (its files' names all carry them). */
export function setKeyOf(type: SetType, startTime: number | undefined, endTime: number): string {
  return `${type}:${startTime ?? ''}:${endTime}`;
}
export type Suffix = 'gpg' | 'gz' | '';

export interface ParsedName {
  kind: 'volume' | 'manifest' | 'signature';
  /** For signatures: 'full' = full-signatures, 'inc' = new-signatures. */
  setType: SetType;
  /** inc sets and new-signatures only. */
  startTime?: number;
  /** The set's time (a full set's only time). */
  endTime: number;
  volumeNumber?: number;
  encrypted: boolean;
  gzipped: boolean;
  /** A '.part' / '.p' file of a backup in progress (duplicity keeps them in its local cache only). */
  partial: boolean;
  /** A --short-filenames name (base-36 times). */
  short: boolean;
}

/**
 * duplicity's --file-prefix options. A plain string is --file-prefix; the others are added after it
 * for manifests, volumes ("archive") and signatures respectively.
 */
export interface NamePrefixes {
  file?: string;
  manifest?: string;
  archive?: string;
  signature?: string;
}

export interface NameOptions {
  prefix?: string | NamePrefixes;
  /** --short-filenames. */
  short?: boolean;
  /** The '.part' infix of local files being written. */
  partial?: boolean;
}

function prefixesOf(p: string | NamePrefixes | undefined): Required<NamePrefixes> {
  if (p === undefined) return { file: '', manifest: '', archive: '', signature: '' };
  if (typeof p === 'string') return { file: p, manifest: '', archive: '', signature: '' };
  return { file: p.file ?? '', manifest: p.manifest ?? '', archive: p.archive ?? '', signature: p.signature ?? '' };
}

// ---------------------------------------------------------------------------------------------
// Writing

export function volumeName(
  setType: SetType,
  endTime: number,
  startTime: number | undefined,
  volumeNumber: number,
  suffix: Suffix,
  opts: NameOptions = {},
): string {
  if (!Number.isInteger(volumeNumber) || volumeNumber < 1) throw new OffsiteError('internal', `Bad volume number ${volumeNumber}`);
  const p = prefixesOf(opts.prefix);
  const vol = opts.short ? `${toBase36(volumeNumber)}.dt` : `vol${volumeNumber}.difftar`;
  return p.file + p.archive + setPart(setType, endTime, startTime, opts.short) + vol + partOf(opts) + suffixOf(suffix, opts.short);
}

/** Manifests are never gzipped (dup_main.get_man_fileobj() asks for encryption only). */
export function manifestName(setType: SetType, endTime: number, startTime: number | undefined, encrypted: boolean, opts: NameOptions = {}): string {
  const p = prefixesOf(opts.prefix);
  return p.file + p.manifest + setPart(setType, endTime, startTime, opts.short) + (opts.short ? 'm' : 'manifest') + partOf(opts) + suffixOf(encrypted ? 'gpg' : '', opts.short);
}

export function signatureName(setType: SetType, endTime: number, startTime: number | undefined, suffix: Suffix, opts: NameOptions = {}): string {
  const p = prefixesOf(opts.prefix);
  let base: string;
  if (setType === 'full') {
    base = opts.short ? `dfs.${toBase36(endTime)}.st` : `duplicity-full-signatures.${timeToString(endTime)}.sigtar`;
  } else {
    const start = needStart(startTime);
    base = opts.short
      ? `dns.${toBase36(start)}.${toBase36(endTime)}.st`
      : `duplicity-new-signatures.${timeToString(start)}.to.${timeToString(endTime)}.sigtar`;
  }
  return p.file + p.signature + base + partOf(opts) + suffixOf(suffix, opts.short);
}

function setPart(setType: SetType, endTime: number, startTime: number | undefined, short?: boolean): string {
  if (setType === 'full') return short ? `df.${toBase36(endTime)}.` : `duplicity-full.${timeToString(endTime)}.`;
  const start = needStart(startTime);
  return short ? `di.${toBase36(start)}.${toBase36(endTime)}.` : `duplicity-inc.${timeToString(start)}.to.${timeToString(endTime)}.`;
}

function needStart(startTime: number | undefined): number {
  if (startTime === undefined) throw new OffsiteError('internal', 'An incremental set needs a start time');
  return startTime;
}

function partOf(opts: NameOptions): string {
  return opts.partial ? (opts.short ? '.p' : '.part') : '';
}

function suffixOf(s: Suffix, short?: boolean): string {
  if (s === 'gpg') return short ? '.g' : '.gpg';
  if (s === 'gz') return short ? '.z' : '.gz';
  return '';
}

export function toBase36(n: number): string {
  return n.toString(36);
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface Patterns {
  fullVolShort: RegExp;
  fullVol: RegExp;
  fullManShort: RegExp;
  fullMan: RegExp;
  incVolShort: RegExp;
  incVol: RegExp;
  incManShort: RegExp;
  incMan: RegExp;
  fullSigShort: RegExp;
  fullSig: RegExp;
  newSigShort: RegExp;
  newSig: RegExp;
}

const cache = new Map<string, Patterns>();

// file_naming.prepare_regex(), with Python's '.' (anything but '\n') spelled out.
function patternsFor(prefix: string | NamePrefixes | undefined): Patterns {
  const p = prefixesOf(prefix);
  const key = JSON.stringify(p);
  let pats = cache.get(key);
  if (pats) return pats;
  const e = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const vol = '^' + e(p.file + p.archive);
  const man = '^' + e(p.file + p.manifest);
  const sig = '^' + e(p.file + p.signature);
  const any = '[^\\n]*?';
  const b36 = '[0-9a-z]+?';
  pats = {
    fullVolShort: new RegExp(`${vol}df\\.(?<time>${b36})\\.(?<num>[0-9a-z]+)\\.dt(?<partial>\\.p)?($|\\.)`),
    fullVol: new RegExp(`${vol}duplicity-full\\.(?<time>${any})\\.vol(?<num>[0-9]+)\\.difftar(?<partial>\\.part)?($|\\.)`),
    fullManShort: new RegExp(`${man}df\\.(?<time>${b36})\\.m(?<partial>\\.p)?($|\\.)`),
    fullMan: new RegExp(`${man}duplicity-full\\.(?<time>${any})\\.manifest(?<partial>\\.part)?($|\\.)`),
    incVolShort: new RegExp(`${vol}di\\.(?<start>${b36})\\.(?<end>${b36})\\.(?<num>[0-9a-z]+)\\.dt(?<partial>\\.p)?($|\\.)`),
    incVol: new RegExp(`${vol}duplicity-inc\\.(?<start>${any})\\.to\\.(?<end>${any})\\.vol(?<num>[0-9]+)\\.difftar(?<partial>\\.part)?($|\\.)`),
    incManShort: new RegExp(`${man}di\\.(?<start>${b36})\\.(?<end>${b36})\\.m(?<partial>\\.p)?(\\.|$)`),
    incMan: new RegExp(`${man}duplicity-inc\\.(?<start>${any})\\.to\\.(?<end>${any})\\.manifest(?<partial>\\.part)?(\\.|$)`),
    fullSigShort: new RegExp(`${sig}dfs\\.(?<time>${b36})\\.st(?<partial>\\.p)?(\\.|$)`),
    fullSig: new RegExp(`${sig}duplicity-full-signatures\\.(?<time>${any})\\.sigtar(?<partial>\\.part)?(\\.|$)`),
    newSigShort: new RegExp(`${sig}dns\\.(?<start>${b36})\\.(?<end>${b36})\\.st(?<partial>\\.p)?(\\.|$)`),
    newSig: new RegExp(`${sig}duplicity-new-signatures\\.(?<start>${any})\\.to\\.(?<end>${any})\\.sigtar(?<partial>\\.part)?(\\.|$)`),
  };
  cache.set(key, pats);
  return pats;
}

/**
 * Time part of a long name: the new UTC format, the old local format with an offset (any time
 * separator), or epoch seconds, uppercased first as file_naming.parse() does. duplicity would also
 * take intervals and dates relative to the current time here; we do not, so a listing parses the same
 * at any time. 0 counts as unparsable, as in duplicity.
 */
function longTime(s: string): number | undefined {
  const u = s.toUpperCase();
  const t = /^\d+$/.test(u) ? Number(u) : stringToTime(u);
  return t ? t : undefined;
}

function shortTime(s: string): number | undefined {
  const t = parseInt(s, 36);
  return t ? t : undefined;
}

/**
 * duplicity's file_naming.parse(): long and short names, old time formats, prefixes, .gpg/.g and
 * .gz/.z; undefined for foreign files (lockfile, .par2 files, anything else). Unlike duplicity, par2
 * recovery files ('<name>.par2', '<name>.vol0+1.par2') are foreign, not volumes, and volumes get
 * their `partial` flag too.
 */
export function parseName(name: string, prefix?: string | NamePrefixes): Readonly<ParsedName> | undefined {
  // Each backup parses every name of the remote and of the cache folder several times over (the
  // collection, the cache's pruning, the set being written): for a chain of hundreds of sets that was
  // ~15 µs a call (up to a dozen regular expressions). Parsed once per process, bounded.
  const key = prefix === undefined ? name : `${typeof prefix === 'string' ? prefix : JSON.stringify(prefix)}\0${name}`;
  let r = parsed.get(key);
  if (r === undefined) {
    r = parseUncached(name, prefix) ?? null;
    if (r !== null) Object.freeze(r);
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(key, r);
  }
  return r ?? undefined;
}

/** parseName's results (null: not a duplicity name), frozen, by prefix and name. */
const parsed = new Map<string, Readonly<ParsedName> | null>();
const PARSED_MAX = 100_000;

function parseUncached(name: string, prefix?: string | NamePrefixes): ParsedName | undefined {
  if (name.endsWith('.par2')) return undefined;
  const p = patternsFor(prefix);
  const r = parseFull(name, p) ?? parseInc(name, p) ?? parseSig(name, p);
  if (!r) return undefined;
  // set_encryption_or_compression(): only the end of the name counts.
  r.gzipped = name.endsWith('.z') || name.endsWith('gz');
  r.encrypted = name.endsWith('.g') || name.endsWith('.gpg');
  return r;
}

function result(r: Omit<ParsedName, 'encrypted' | 'gzipped'>): ParsedName {
  return { ...r, encrypted: false, gzipped: false };
}

// Short patterns first, then long ones, as in parse().
function parseFull(name: string, p: Patterns): ParsedName | undefined {
  let short = true;
  let m1 = p.fullVolShort.exec(name);
  let m2 = p.fullManShort.exec(name);
  if (!m1 && !m2) {
    short = false;
    m1 = p.fullVol.exec(name);
    m2 = p.fullMan.exec(name);
  }
  const m = m1 ?? m2;
  if (!m) return undefined;
  const t = short ? shortTime(m.groups!.time) : longTime(m.groups!.time);
  if (!t) return undefined;
  if (m1) return result({ kind: 'volume', setType: 'full', endTime: t, volumeNumber: volNum(m1.groups!.num, short), partial: m1.groups!.partial !== undefined, short });
  return result({ kind: 'manifest', setType: 'full', endTime: t, partial: m2!.groups!.partial !== undefined, short });
}

function parseInc(name: string, p: Patterns): ParsedName | undefined {
  let short = true;
  let m1 = p.incVolShort.exec(name);
  let m2 = p.incManShort.exec(name);
  if (!m1 && !m2) {
    short = false;
    m1 = p.incVol.exec(name);
    m2 = p.incMan.exec(name);
  }
  const m = m1 ?? m2;
  if (!m) return undefined;
  const t1 = short ? shortTime(m.groups!.start) : longTime(m.groups!.start);
  const t2 = short ? shortTime(m.groups!.end) : longTime(m.groups!.end);
  if (!t1 || !t2) return undefined;
  if (m1) return result({ kind: 'volume', setType: 'inc', startTime: t1, endTime: t2, volumeNumber: volNum(m1.groups!.num, short), partial: m1.groups!.partial !== undefined, short });
  return result({ kind: 'manifest', setType: 'inc', startTime: t1, endTime: t2, partial: m2!.groups!.partial !== undefined, short });
}

function parseSig(name: string, p: Patterns): ParsedName | undefined {
  let short = true;
  let m = p.fullSigShort.exec(name);
  if (!m) {
    short = false;
    m = p.fullSig.exec(name);
  }
  if (m) {
    const t = short ? shortTime(m.groups!.time) : longTime(m.groups!.time);
    return t ? result({ kind: 'signature', setType: 'full', endTime: t, partial: m.groups!.partial !== undefined, short }) : undefined;
  }
  short = true;
  m = p.newSigShort.exec(name);
  if (!m) {
    short = false;
    m = p.newSig.exec(name);
  }
  if (!m) return undefined;
  const t1 = short ? shortTime(m.groups!.start) : longTime(m.groups!.start);
  const t2 = short ? shortTime(m.groups!.end) : longTime(m.groups!.end);
  if (!t1 || !t2) return undefined;
  return result({ kind: 'signature', setType: 'inc', startTime: t1, endTime: t2, partial: m.groups!.partial !== undefined, short });
}

function volNum(s: string, short: boolean): number {
  return short ? parseInt(s, 36) : Number(s);
}
