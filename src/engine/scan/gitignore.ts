// The ignore rules git applies to untracked files (gitignore(5), git's dir.c and wildmatch.c), for the
// scanner's `gitignore: true` option:
// - patterns from .gitignore files (each relative to its own folder; a deeper file wins), then
//   .git/info/exclude (lowest precedence); inside one file the last matching pattern wins;
// - `!` negates, a trailing '/' matches folders only, a pattern with no other '/' matches the name at
//   any depth, otherwise it is anchored to its file's folder; `*` `?` `[...]` (with `[:class:]`) do not
//   match '/', `**/`, `/**/` and `/**` cross folders, `\` quotes the next character;
// - an ignored folder is not descended into (the scanner's job), so nothing below it can come back;
// - a folder holding `.git` starts a repository: an enclosing repository's rules stop there, its own
//   info/exclude starts; a scan root inside a repository also gets that repository's info/exclude and
//   the .gitignore files above the root; .gitignore files apply even outside any repository.
// Matching is on bytes, as git does: paths and patterns are held as latin1 strings (one char per byte).
// Not applied: core.excludesFile and other per-user git configuration (a backup should not depend on
// the settings of whoever runs it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SetFileKind } from '../cache/setFiles';

export interface GitignorePattern {
  /** The pattern as written (latin1), for messages and tests. */
  readonly source: string;
  readonly negative: boolean;
  readonly mustBeDir: boolean;
  /** No '/' except a trailing one: matched against the name at any depth. */
  readonly basenameOnly: boolean;
  /** Tests the name (basenameOnly) or the path relative to the file's folder. */
  readonly test: (s: string) => boolean;
}

/** The patterns of one file, and where its folder is relative to the scan root. */
export class GitignoreList {
  /**
   * @param patterns in file order
   * @param cut characters to drop from a scan-root-relative path to get the path relative to the
   *   file's folder ('a/b/' → 4); 0 for the root or a folder above it
   * @param prefix prepended after the cut: the scan root's path relative to a folder above it ('x/y/')
   */
  constructor(
    readonly patterns: readonly GitignorePattern[],
    readonly cut = 0,
    readonly prefix = '',
  ) {}

  /** true: ignored, false: re-included by a negation, undefined: no pattern matched. */
  match(rel: string, basename: string, isDir: boolean): boolean | undefined {
    let local: string | undefined;
    for (let i = this.patterns.length - 1; i >= 0; i--) {
      const p = this.patterns[i];
      if (p.mustBeDir && !isDir) continue;
      let hit: boolean;
      if (p.basenameOnly) hit = p.test(basename);
      else {
        local ??= this.prefix + rel.slice(this.cut);
        hit = p.test(local);
      }
      if (hit) return !p.negative;
    }
    return undefined;
  }
}

/** The lists that apply in one folder, deepest first (an immutable linked list shared by subfolders). */
export interface GitContext {
  readonly list: GitignoreList;
  readonly next: GitContext | undefined;
}

/**
 * Whether git ignores a path, given the lists of its folder.
 * @param rel path relative to the scan root, latin1, no leading '/'
 */
export function isGitIgnored(ctx: GitContext | undefined, rel: string, basename: string, isDir: boolean): boolean {
  for (let c = ctx; c !== undefined; c = c.next) {
    const r = c.list.match(rel, basename, isDir);
    if (r !== undefined) return r;
  }
  return false;
}

/** Parses the text of a .gitignore or info/exclude file (bytes as latin1). */
export function parseGitignore(content: Buffer | string): GitignorePattern[] {
  let text = typeof content === 'string' ? content : content.toString('latin1');
  if (text.startsWith('\xef\xbb\xbf')) text = text.slice(3); // UTF-8 BOM, skipped by git
  const out: GitignorePattern[] = [];
  for (let line of text.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '' || line.startsWith('#')) continue;
    line = trimTrailingSpaces(line);
    const p = compilePattern(line);
    if (p) out.push(p);
  }
  return out;
}

/** git's trim_trailing_spaces(): unescaped trailing spaces go. */
function trimTrailingSpaces(s: string): string {
  let lastSpace = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === ' ') {
      if (lastSpace < 0) lastSpace = i;
    } else if (c === '\\') {
      i++;
      if (i >= s.length) return s;
      lastSpace = -1;
    } else lastSpace = -1;
  }
  return lastSpace >= 0 ? s.slice(0, lastSpace) : s;
}

const GLOB_SPECIAL = /[*?[\\]/;

/** One pattern line (comments and blank lines already removed); undefined when it can never match. */
export function compilePattern(line: string): GitignorePattern | undefined {
  let p = line;
  const negative = p.startsWith('!');
  if (negative) p = p.slice(1);
  let mustBeDir = false;
  if (p.endsWith('/')) {
    mustBeDir = true;
    p = p.slice(0, -1);
  }
  if (p === '') return undefined;
  const basenameOnly = !p.includes('/');
  if (!basenameOnly && p.startsWith('/')) p = p.slice(1);
  let test: (s: string) => boolean;
  if (!GLOB_SPECIAL.test(p)) {
    const lit = p;
    test = (s) => s === lit;
  } else if (basenameOnly && p[0] === '*' && !GLOB_SPECIAL.test(p.slice(1))) {
    const suffix = p.slice(1);
    test = (s) => s.endsWith(suffix);
  } else {
    const source = wildmatchRegexSource(p, !basenameOnly);
    if (source === undefined) return undefined;
    const re = new RegExp(`^${source}$`, 's');
    test = (s) => re.test(s);
  }
  return { source: line, negative, mustBeDir, basenameOnly, test };
}

const CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  blank: '\\x20\\x09',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '\\x21-\\x7e',
  lower: 'a-z',
  print: '\\x20-\\x7e',
  punct: '\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e',
  space: '\\x20\\x09\\x0a\\x0d',
  upper: 'A-Z',
  xdigit: '0-9A-Fa-f',
};

function hex(code: number): string {
  return '\\x' + code.toString(16).padStart(2, '0');
}

function literal(ch: string): string {
  return /[A-Za-z0-9]/.test(ch) ? ch : hex(ch.charCodeAt(0));
}

/**
 * wildmatch() as a regular expression source over latin1 text; undefined when the pattern can never
 * match (a trailing backslash, an unterminated class, an unknown [:class:]).
 * @param pathname WM_PATHNAME: wildcards do not match '/'. Also git's match_pathname() quirk: it
 *   compares the wildcard-free head of the pattern itself and hands only the rest to wildmatch(), so
 *   a `**` right after that head counts as being at the start (`a**` + `/b` matches `ab`).
 */
export function wildmatchRegexSource(pat: string, pathname: boolean): string | undefined {
  let out = '';
  const n = pat.length;
  let i = 0;
  const head = pathname ? pat.search(GLOB_SPECIAL) : -1;
  while (i < n) {
    const c = pat[i];
    if (c === '\\') {
      if (i + 1 >= n) return undefined;
      out += literal(pat[i + 1]);
      i += 2;
    } else if (c === '?') {
      out += pathname ? '[^/]' : '.';
      i++;
    } else if (c === '*') {
      let j = i;
      while (pat[j] === '*') j++;
      const boundaryBefore = i === 0 || i === head || pat[i - 1] === '/';
      const next = pat[j];
      const boundaryAfter = j >= n || next === '/' || (next === '\\' && pat[j + 1] === '/');
      if (j - i >= 2 && boundaryBefore && boundaryAfter) {
        if (next === '/') {
          out += '(?:.*/)?'; // "**/": zero or more folders
          j++;
        } else out += '.*';
      } else out += pathname ? '[^/]*' : '.*';
      i = j;
    } else if (c === '[') {
      const r = classRegex(pat, i + 1, pathname);
      if (r === undefined) return undefined;
      out += r.source;
      i = r.end;
    } else {
      out += literal(c);
      i++;
    }
  }
  return out;
}

/** wildmatch's '[' case, starting after the '['. */
function classRegex(pat: string, start: number, pathname: boolean): { source: string; end: number } | undefined {
  const n = pat.length;
  let i = start;
  let negated = false;
  if (pat[i] === '!' || pat[i] === '^') {
    negated = true;
    i++;
  }
  let members = '';
  let prev = 0; // previous character code, 0 after a range or a [:class:]
  for (;;) {
    if (i >= n) return undefined;
    let ch = pat.charCodeAt(i);
    if (ch === 0x5c /* \ */) {
      i++;
      if (i >= n) return undefined;
      ch = pat.charCodeAt(i);
      members += hex(ch);
    } else if (ch === 0x2d /* - */ && prev !== 0 && i + 1 < n && pat[i + 1] !== ']') {
      i++;
      let hi = pat.charCodeAt(i);
      if (hi === 0x5c) {
        i++;
        if (i >= n) return undefined;
        hi = pat.charCodeAt(i);
      }
      if (prev <= hi) members += `${hex(prev)}-${hex(hi)}`;
      ch = 0;
    } else if (ch === 0x5b /* [ */ && pat[i + 1] === ':') {
      let k = i + 2;
      while (k < n && pat[k] !== ']') k++;
      if (k >= n) return undefined;
      const nameLen = k - (i + 2) - 1;
      if (nameLen < 0 || pat[k - 1] !== ':') {
        members += hex(ch); // no ":]": an ordinary '['
      } else {
        const cls = CLASSES[pat.slice(i + 2, k - 1)];
        if (cls === undefined) return undefined;
        members += cls;
        i = k;
        ch = 0;
      }
    } else {
      members += hex(ch);
    }
    prev = ch;
    i++;
    if (i >= n) return undefined;
    if (pat[i] === ']') break;
  }
  const end = i + 1;
  if (negated) return { source: `[^${pathname ? '/' : ''}${members}]`, end };
  if (members === '') return { source: '(?!)', end };
  return { source: `${pathname ? '(?!/)' : ''}[${members}]`, end };
}

// --- Loading files -------------------------------------------------------------------------------

/**
 * The files a scan took .gitignore rules from or looked for (and the `.git` entries whose presence
 * decided where a repository starts), each with its state as the scan found it: the no-change probe
 * (noChangeProbe.ts) checks them again, since a change there changes what is selected without any
 * stat record showing it. A state is the file's mode, inode, size, mtime and ctime (of the very file
 * read), 'absent', 'exists', 'racy' (changed within `racyFromNs` of the scan: never taken as the
 * same) or 'error:CODE' (never the same either).
 */
export class RuleInputs {
  readonly list: RuleInput[] = [];

  constructor(private readonly racyFromNs: bigint) {}

  /** A rules file looked for at `p` (`follow`: through a symlink): `st` what was opened, if it was. */
  file(p: Buffer | string, follow: boolean, st: fs.BigIntStats | undefined, code?: string): void {
    const state = st === undefined ? missingState(code) : st.ctimeNs >= this.racyFromNs ? 'racy' : statState(st);
    this.list.push({ path: Buffer.from(p).toString('base64'), how: follow ? 'stat' : 'lstat', state });
  }

  /** An entry whose presence decided something. */
  exists(p: string, present: boolean): void {
    this.list.push({ path: Buffer.from(p).toString('base64'), how: 'exists', state: present ? 'exists' : 'absent' });
  }
}

/** Rule inputs in the cache folder, kept beside the stat cache of the set of the same time. */
export const RULE_INPUTS = new SetFileKind('offsite-rules');

/** The file's text for `list` (ArchiveDir.writeAtomic writes it). */
export function formatRuleInputs(list: readonly RuleInput[]): string {
  return JSON.stringify({ version: 1, inputs: list });
}

/** The rule inputs kept in `file`; undefined when missing or unreadable. */
export function readRuleInputs(file: string): RuleInput[] | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: number; inputs?: RuleInput[] };
    return parsed.version === 1 && Array.isArray(parsed.inputs) ? parsed.inputs : undefined;
  } catch {
    return undefined;
  }
}

export interface RuleInput {
  /** The path's bytes, base64. */
  readonly path: string;
  readonly how: 'lstat' | 'stat' | 'exists';
  readonly state: string;
}

function statState(st: fs.BigIntStats): string {
  return `${st.mode}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** The state of a path that could not be opened or stat'ed, from the error's code. */
function missingState(code: string | undefined): string {
  return code === 'ENOENT' || code === 'ENOTDIR' ? 'absent' : `error:${code ?? '?'}`;
}

/** The first input whose state is not what the scan found (its path and states), or undefined. */
export function changedRuleInput(inputs: readonly RuleInput[]): string | undefined {
  for (const i of inputs) {
    const p = Buffer.from(i.path, 'base64');
    let now: string;
    if (i.how === 'exists') now = fs.existsSync(p) ? 'exists' : 'absent';
    else {
      try {
        const st = i.how === 'stat' ? fs.statSync(p, { bigint: true }) : fs.lstatSync(p, { bigint: true });
        now = statState(st);
      } catch (e) {
        now = missingState((e as NodeJS.ErrnoException).code);
      }
    }
    if (now !== i.state || i.state === 'racy' || i.state.startsWith('error:')) return `${p.toString()} (${i.state} → ${now})`;
  }
  return undefined;
}

/** Reads a small file without following a symlink (git refuses symlinked .gitignore); undefined if absent. */
export function readRulesFile(file: Buffer | string, inputs?: RuleInputs): Buffer | undefined {
  return readRegularFile(file, false, inputs);
}

/**
 * A regular file's bytes, else undefined: absent, a folder named .gitignore, an I/O error (git skips
 * those too), or a fifo, whose opening would wait for a writer forever (hence O_NONBLOCK).
 */
function readRegularFile(file: Buffer | string, follow: boolean, inputs?: RuleInputs): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | (follow ? 0 : fs.constants.O_NOFOLLOW));
  } catch (e) {
    inputs?.file(file, follow, undefined, (e as NodeJS.ErrnoException).code);
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    const content = st.isFile() ? fs.readFileSync(fd) : undefined;
    inputs?.file(file, follow, st); // once read: a read error is recorded as that instead
    return content;
  } catch (e) {
    inputs?.file(file, follow, undefined, (e as NodeJS.ErrnoException).code ?? 'EIO');
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** The info/exclude file of the repository whose `.git` entry is at `dotGit` (folder or gitdir file). */
export function readInfoExclude(dotGit: Buffer, inputs?: RuleInputs): Buffer | undefined {
  const sep = Buffer.from('/');
  const direct = readRulesFile(Buffer.concat([dotGit, sep, Buffer.from('info/exclude')]), inputs);
  if (direct !== undefined) return direct;
  // A worktree or submodule: `.git` is a file "gitdir: <path>"; a linked worktree shares the main
  // repository's info/exclude (named by its `commondir`).
  const text = readRegularFile(dotGit, true, inputs)?.toString('latin1');
  const m = text === undefined ? null : /^gitdir: (.*)$/m.exec(text);
  if (!m) return undefined;
  const gitdir = path.resolve(path.dirname(dotGit.toString('latin1')), m[1].trim());
  let common = gitdir;
  const commondir = readRegularFile(Buffer.from(path.join(gitdir, 'commondir'), 'latin1'), true, inputs);
  if (commondir) common = path.resolve(gitdir, commondir.toString('latin1').trim()); // else not a linked worktree
  return readRulesFile(Buffer.from(path.join(common, 'info', 'exclude'), 'latin1'), inputs);
}

/**
 * The git context of a scan root that is not itself a repository's top folder but lies inside one:
 * that repository's info/exclude and the .gitignore files from its top down to the root's parent.
 * Undefined when the root is a repository's top or in none.
 */
export function contextAboveRoot(rootAbs: string, inputs?: RuleInputs): GitContext | undefined {
  const exists = (p: string): boolean => {
    const present = fs.existsSync(p);
    inputs?.exists(p, present);
    return present;
  };
  if (exists(path.join(rootAbs, '.git'))) return undefined;
  const chain: string[] = [];
  let dir = rootAbs;
  for (;;) {
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    chain.unshift(parent);
    dir = parent;
    if (exists(path.join(dir, '.git'))) break;
  }
  // chain[0] is the repository's top; build lowest precedence first.
  let ctx: GitContext | undefined;
  const top = chain[0];
  const exclude = readInfoExclude(Buffer.from(path.join(top, '.git')), inputs);
  // Paths are matched as latin1 views of their bytes.
  const prefixOf = (d: string): string => Buffer.from(path.relative(d, rootAbs) + '/').toString('latin1');
  if (exclude !== undefined) ctx = { list: new GitignoreList(parseGitignore(exclude), 0, prefixOf(top)), next: ctx };
  for (const d of chain) {
    const content = readRulesFile(path.join(d, '.gitignore'), inputs);
    if (content !== undefined) ctx = { list: new GitignoreList(parseGitignore(content), 0, prefixOf(d)), next: ctx };
  }
  return ctx;
}
