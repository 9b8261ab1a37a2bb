// Include/exclude rules with duplicity 0.8.22's semantics (selection.py, globmatch.py), so a rule set
// selects the same paths in Offsite as `duplicity --include/--exclude` on the same tree.
//
// Semantics:
// - Rules are tried in order; the first rule that matches a path decides (include or exclude). A path
//   that no rule matches is included (the scanner may let .gitignore decide it instead).
// - A rule matches a path when its glob matches the path itself or one of its ancestors: excluding a
//   folder excludes everything below it, including a folder includes everything below it.
// - "Scan": an include rule that could match something below a folder (the folder's path matches a
//   leading part of the glob, e.g. folder `src` for `src/**/*.ts`) marks the folder to be searched.
//   Rules are still tried after it; if no later rule includes the folder, it is descended into and
//   backed up only if something inside it is (duplicity's result 2). A non-folder that is only
//   "scanned" is left out.
// - Globs: `*` and `?` match within one path component, `**` matches across '/', `[...]` is a
//   character class (`[!...]` or `[^...]` negated). No escapes: `\` is an ordinary character.
//   As in duplicity, `/**/` needs at least one folder in between: `src/**/*.ts` does not match
//   `src/main.ts` (`src/**.ts` matches both).
// - A glob ending in '/' matches folders only (their contents still match through the folder).
// - `ignorecase:` in front of a glob makes it case-insensitive.
// - Where a glob is anchored:
//   * Absolute (starts with '/'): matched against the absolute path, as duplicity does. It must be
//     able to match the source folder or something in it (duplicity's "file specification cannot
//     match any files in the base directory" error otherwise).
//   * Starting with `**`: matched against '/' + the path relative to the source folder, so
//     `**/*.log` matches `a.log` and `x/y/a.log`, and `**` cannot reach above the source folder.
//   * Otherwise relative to the source folder: `node_modules` is `<root>/node_modules` only (write
//     `**/node_modules` for any depth), `build/` is the folder `<root>/build`, `*.tmp` matches at the
//     top level only. A leading './' is dropped.
//   * `**` alone matches everything.
// Paths are matched as text: their bytes decoded as UTF-8, invalid bytes as U+FFFD (duplicity's
// util.fsdecode with "replace").
import { OffsiteError } from '../errors';

export interface SelectionRule {
  readonly kind: 'include' | 'exclude';
  readonly glob: string;
}

/** What the rules say about one path. 'none': no rule matched (the default, include, applies). */
export type Verdict = 'include' | 'exclude' | 'scan' | 'none';

export interface Selection {
  /** No rules at all: every path is 'none'. */
  readonly isEmpty: boolean;
  /**
   * @param rel the path relative to the source folder, with a leading '/', components joined by '/'
   *   (e.g. '/src/a.ts'); decoded as UTF-8.
   * @param isDir whether the path is a directory (not a symlink to one)
   */
  test(rel: string, isDir: boolean): Verdict;
  /** One count per rule: the paths tested that the rule decided so far. */
  readonly matches: readonly number[];
  /**
   * The rules that decided no path, once a whole walk is done: a rule written relative to another
   * folder than the source (`ws/node_modules` for `node_modules`), a glob with no match now, or one
   * whose paths an earlier rule decides. Not an error, as duplicity's refusal of a rule that cannot
   * match is: a rule for files that come and go (log files, a build folder) matches nothing at times.
   */
  unmatchedRules(): SelectionRule[];
}

interface CompiledRule {
  readonly include: boolean;
  /** Matched against the absolute path (root + rel) rather than rel. */
  readonly absolute: boolean;
  /** `**`: matches every path. */
  readonly all: boolean;
  readonly match: RegExp;
  /** Set for globs ending in '/': an exact match must be a directory. */
  readonly exact?: RegExp;
  /** Include rules: folders that could hold a match. */
  readonly scan?: RegExp;
  /** The path the glob names when it is a plain relative path (no glob characters, no ignorecase:), without the leading '/'. */
  readonly literal?: string;
}

const IGNORECASE = 'ignorecase:';

/**
 * Compiles rules for the tree at `root` (an absolute path). Throws OffsiteError('usage') for a glob
 * that cannot match anything under root or is malformed. The selection counts the paths each rule
 * decides (matches, unmatchedRules).
 */
export function compileSelection(root: string, rules: readonly SelectionRule[]): Selection {
  const rootText = trimRoot(root);
  const compiled = rules.map((r) => compileRule(rootText, r));
  // The absolute path of rel: for root '/', rel itself.
  const absPrefix = rootText === '/' ? '' : rootText;
  const anyAbsolute = compiled.some((r) => r.absolute);
  const counts = compiled.map(() => 0);
  return {
    isEmpty: compiled.length === 0,
    matches: counts,
    unmatchedRules: () => rules.filter((_, i) => counts[i] === 0),
    test(rel: string, isDir: boolean): Verdict {
      if (compiled.length === 0) return 'none';
      const abs = anyAbsolute ? absPrefix + rel : '';
      let scan = false;
      for (let i = 0; i < compiled.length; i++) {
        const r = compiled[i];
        if (r.all) {
          counts[i]++;
          return r.include ? 'include' : scan ? 'scan' : 'exclude';
        }
        const s = r.absolute ? abs : rel;
        if (r.match.test(s)) {
          // A folder-only glob that matched exactly a non-folder says nothing.
          if (r.exact !== undefined && !isDir && r.exact.test(s)) continue;
          counts[i]++;
          if (r.include) return 'include';
          return scan ? 'scan' : 'exclude';
        }
        if (r.scan !== undefined && r.scan.test(s)) scan = true;
      }
      return scan ? 'scan' : 'none';
    },
  };
}

/** The warning for a rule that decided no path of the walk of `root`. */
export function unmatchedRuleWarning(root: string, rule: SelectionRule): string {
  return `The ${rule.kind} rule ${JSON.stringify(rule.glob)} matched no path in ${root} (rules are read relative to that folder; the first rule that matches a path decides it)`;
}

/**
 * The path relative to `root` a rule names when its glob is a plain path (`ws/node_modules`,
 * `./ws/src/`: no glob characters, not absolute, no ignorecase:), as the rule is compiled; undefined
 * for any other rule. Throws as compileSelection does for a malformed rule.
 */
export function literalRulePath(root: string, rule: SelectionRule): { readonly path: string; readonly dirOnly: boolean } | undefined {
  const r = compileRule(trimRoot(root), rule);
  return r.literal === undefined ? undefined : { path: r.literal, dirOnly: r.exact !== undefined };
}

function trimRoot(root: string): string {
  return root.length > 1 && root.endsWith('/') ? root.replace(/\/+$/, '') : root;
}

function compileRule(rootText: string, rule: SelectionRule): CompiledRule {
  if (rule.kind !== 'include' && rule.kind !== 'exclude') {
    throw new OffsiteError('usage', `Unknown selection rule kind ${JSON.stringify(rule.kind)}`, {
      hint: "Use 'include' or 'exclude'.",
    });
  }
  const include = rule.kind === 'include';
  let glob = rule.glob;
  let ignoreCase = false;
  if (glob.toLowerCase().startsWith(IGNORECASE)) {
    glob = glob.slice(IGNORECASE.length).toLowerCase();
    ignoreCase = true;
  }
  if (glob === '**') return { include, absolute: false, all: true, match: /(?:)/ };
  while (glob.startsWith('./')) glob = glob.slice(2);
  if (glob === '' || glob === '.') {
    throw usage(rule.glob, 'is empty');
  }
  const absolute = glob.startsWith('/');
  if (!absolute && !glob.startsWith('**')) glob = '/' + glob;
  if (!absolute && /(^|\/)\.\.(\/|$)/.test(glob)) throw usage(rule.glob, "goes above the source folder with '..'");

  let dirOnly = false;
  if (glob === '/') glob = '/**';
  else if (glob.endsWith('/')) {
    dirOnly = true;
    glob = glob.slice(0, -1);
  }
  const parts = glob.split('/');
  if (parts.slice(1, -1).includes('')) throw usage(rule.glob, "has consecutive '/'");

  const flags = ignoreCase ? 'siu' : 'su';
  const re = (source: string): RegExp => {
    try {
      return new RegExp(source, flags);
    } catch (e) {
      throw usage(rule.glob, 'is not a valid pattern', e);
    }
  };
  const body = globToRegex(glob);
  const match = re(`^${body}(?:$|/)`);
  const exact = dirOnly ? re(`^${body}$`) : undefined;
  const scanSource = prefixRegex(glob);
  const scan = include ? re(scanSource) : undefined;

  if (absolute) {
    // duplicity refuses a glob that can neither match nor scan the source folder itself.
    if (!match.test(rootText) && !(scan ?? re(scanSource)).test(rootText)) {
      throw new OffsiteError('usage', `The rule ${JSON.stringify(rule.glob)} cannot match anything in ${rootText}`, {
        hint: 'Write rules relative to the source folder (node_modules, **/*.log) or starting with its full path.',
      });
    }
  }
  const literal = !absolute && !ignoreCase && !/[*?[]/.test(glob) ? glob.slice(1) : undefined;
  return { include, absolute, all: false, match, exact, scan, literal };
}

/** Matches the folders that could contain a match of glob: its leading parts, up to a first `**`. */
function prefixRegex(glob: string): string {
  const star2 = glob.indexOf('**');
  const g = star2 === -1 ? glob : glob.slice(0, star2 + 2);
  const parts = g.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  if (prefixes[0] === '') prefixes[0] = '/';
  return `^(?:${prefixes.map(globToRegex).join('|')})$`;
}

function usage(glob: string, what: string, cause?: unknown): OffsiteError {
  return new OffsiteError('usage', `The selection rule ${JSON.stringify(glob)} ${what}`, {
    hint: 'Fix the include/exclude rule in the settings.',
    cause,
  });
}

const SPECIAL = /[\\^$.*+?()[\]{}|/]/;

/** globmatch.py:glob_to_regex, emitting a JavaScript (u-flag) regex. */
export function globToRegex(pat: string): string {
  let res = '';
  let i = 0;
  const n = pat.length;
  while (i < n) {
    const c = pat[i];
    i++;
    if (c === '*' && pat[i] === '*') {
      res += '.*';
      i++;
    } else if (c === '*') {
      res += '[^/]*';
    } else if (c === '?') {
      res += '[^/]';
    } else if (c === '[') {
      let j = i;
      if (j < n && (pat[j] === '!' || pat[j] === '^')) j++;
      if (j < n && pat[j] === ']') j++;
      while (j < n && pat[j] !== ']') j++;
      if (j >= n) {
        res += '\\[';
      } else {
        let stuff = pat.slice(i, j);
        i = j + 1;
        let negate = false;
        if (stuff[0] === '!' || stuff[0] === '^') {
          negate = true;
          stuff = stuff.slice(1);
        }
        // Python keeps a leading ']' literal; JavaScript needs it escaped. A backslash is literal.
        stuff = stuff.replace(/\\/g, '\\\\').replace(/\]/g, '\\]');
        res += `[${negate ? '^' : ''}${stuff}]`;
      }
    } else {
      // Code points, not UTF-16 units, so that an astral character stays whole.
      const cp = pat.codePointAt(i - 1) ?? 0;
      if (cp > 0xffff) {
        res += String.fromCodePoint(cp);
        i++;
      } else {
        res += SPECIAL.test(c) ? '\\' + c : c;
      }
    }
  }
  return res;
}
