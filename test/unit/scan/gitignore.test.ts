import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { compilePattern, parseGitignore, wildmatchRegexSource } from '../../../src/engine/scan/gitignore';
import { scanTree, type ScanOptions } from '../../../src/engine/scan/scanner';
import type { PathIndex } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';
import { git, gitUntrackedNotIgnored } from './realTools';

function write(root: string, rel: string | Buffer, content = 'x'): void {
  const p = Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel)]);
  fs.mkdirSync(p.subarray(0, p.lastIndexOf(0x2f)), { recursive: true });
  fs.writeFileSync(p, content);
}

const rel = (index: PathIndex): string => index.map((c) => c.toString('latin1')).join('/');

async function scan(root: string, options: Partial<ScanOptions> = {}): Promise<{ all: string[]; files: string[] }> {
  const all: string[] = [];
  const files: string[] = [];
  for await (const e of scanTree(root, { gitignore: true, ...options, onError: (_i, err) => assert.fail(err) })) {
    const r = rel(e.index);
    all.push(r);
    // What `git ls-files --others` can list: files and symlinks outside .git.
    if (e.meta.type !== 'dir' && !/(^|\/)\.git(\/|$)/.test(r)) files.push(r);
  }
  return { all, files: files.sort() };
}

function newRepo(): string {
  const work = tempDir('offsite-git-');
  const repo = path.join(work, 'repo');
  fs.mkdirSync(repo);
  git(repo, ['init', '-q']);
  return repo;
}

/** A workspace with one file per interesting name. */
const FILES = [
  'a.log',
  'a.txt',
  'b.LOG',
  'build/out.js',
  'build/keep.me',
  'doc/build/x',
  'doc/frotz/y',
  'doc/a.log',
  'doc/important.log',
  'foo/bar/baz.txt',
  'foo/baz.txt',
  'foo/x/y/baz.txt',
  'a/b/c/d.tmp',
  'abc/x.tmp',
  'lib/deep/one.js',
  'lib/deep/two.ts',
  'lib/x.min.js',
  'node_modules/p/index.js',
  'sub/node_modules/q.js',
  'sub/.gitignore',
  'sub/keep.log',
  'sub/inner/z.log',
  'sub/inner/z.txt',
  '#hash',
  '!bang',
  'trail ',
  'sp ace',
  '[x]',
  'x1',
  'xa',
  'ü.txt',
  'q?.txt',
];

describe('scan/gitignore', () => {
  it('leaves out exactly what git ignores (nested files, negations, folder-only, anchors, info/exclude)', async () => {
    const repo = newRepo();
    for (const f of FILES) write(repo, f);
    write(
      repo,
      '.gitignore',
      [
        '# comment',
        '*.log',
        '!important.log',
        '/build/*',
        '!/build/keep.me',
        'doc/frotz/',
        'foo/**/baz.txt',
        'a/**/*.tmp',
        'node_modules/',
        '*.min.js',
        '\\#hash',
        '\\!bang',
        'trail\\ ',
        'sp ace   ',
        '\\[x]',
        'x[0-9]',
        'q\\?.txt',
        'ü.txt',
        '',
      ].join('\r\n'),
    );
    write(repo, 'sub/.gitignore', '!*.log\ninner/*.log\n/node_modules\n');
    write(repo, 'lib/.gitignore', '**/deep/*.js\n');
    write(repo, '.git/info/exclude', 'abc/\nsub/keep.log\n');
    const ours = await scan(repo);
    const theirs = gitUntrackedNotIgnored(repo);
    assert.deepEqual(ours.files, theirs);
    // A few facts spelled out, so that an agreeing-but-wrong git setup would still be noticed.
    assert.ok(theirs.includes('doc/important.log'));
    assert.ok(theirs.includes('build/keep.me'));
    assert.ok(!theirs.includes('a.log'));
    assert.ok(!theirs.includes('abc/x.tmp'));
    assert.ok(theirs.includes('sub/keep.log'), 'sub/.gitignore beats info/exclude');
    assert.ok(!theirs.includes('sub/inner/z.log'));
    // Ignored folders are not descended into.
    assert.ok(ours.all.includes('node_modules') === false);
    assert.ok(!ours.all.some((p) => p.startsWith('node_modules/')));
  });

  it('always keeps .git and everything in it', async () => {
    const repo = newRepo();
    write(repo, 'a.txt');
    write(repo, '.gitignore', '*\n.git\n.git/\n*.sample\n');
    write(repo, '.git/info/exclude', '*\n');
    const ours = await scan(repo);
    assert.ok(ours.all.includes('.git'));
    assert.ok(ours.all.includes('.git/HEAD'));
    assert.ok(ours.all.some((p) => p.endsWith('.sample')), 'hooks/*.sample kept');
    assert.ok(!ours.all.includes('a.txt'));
    assert.ok(!ours.all.includes('.gitignore'));
  });

  it('applies a nested repository’s own rules inside it, not the outer ones', async () => {
    const repo = newRepo();
    write(repo, '.gitignore', '*.log\nignored-repo/\n');
    write(repo, 'top.log');
    const inner = path.join(repo, 'inner');
    fs.mkdirSync(inner);
    git(inner, ['init', '-q']);
    write(inner, '.gitignore', '*.tmp\n');
    write(inner, 'x.log');
    write(inner, 'x.tmp');
    write(inner, 'x.txt');
    const ignoredRepo = path.join(repo, 'ignored-repo');
    fs.mkdirSync(ignoredRepo);
    git(ignoredRepo, ['init', '-q']);
    write(ignoredRepo, 'f');
    const ours = await scan(repo);
    const innerFiles = ours.files.filter((f) => f.startsWith('inner/')).map((f) => f.slice('inner/'.length));
    assert.deepEqual(innerFiles, gitUntrackedNotIgnored(inner));
    assert.deepEqual(innerFiles, ['.gitignore', 'x.log', 'x.txt']);
    assert.ok(!ours.all.some((p) => p.startsWith('ignored-repo')));
    assert.ok(!ours.all.includes('top.log'));
  });

  it('uses the enclosing repository’s rules when the root is a folder inside it', async () => {
    const repo = newRepo();
    write(repo, '.gitignore', '/ws/gen/\n*.tmp\nws/local.txt\n');
    write(repo, '.git/info/exclude', 'secret\n');
    write(repo, 'ws/.gitignore', '!keep.tmp\n');
    for (const f of ['ws/gen/a', 'ws/a.tmp', 'ws/keep.tmp', 'ws/local.txt', 'ws/src/secret', 'ws/src/ok']) write(repo, f);
    const ours = await scan(path.join(repo, 'ws'));
    const theirs = gitUntrackedNotIgnored(repo)
      .filter((f) => f.startsWith('ws/'))
      .map((f) => f.slice(3));
    assert.deepEqual(ours.files, theirs);
    assert.deepEqual(theirs, ['.gitignore', 'keep.tmp', 'src/ok']);
  });

  it('lets explicit rules decide first; gitignore only decides what no rule matched', async () => {
    const repo = newRepo();
    write(repo, '.gitignore', 'dist/\n*.log\n');
    for (const f of ['dist/keep.txt', 'dist/other.txt', 'a.log', 'b.txt', 'c.txt']) write(repo, f);
    const ours = await scan(repo, {
      rules: [
        { kind: 'include', glob: 'dist/keep.txt' },
        { kind: 'include', glob: 'a.log' },
        { kind: 'exclude', glob: 'c.txt' },
      ],
    });
    assert.deepEqual(ours.files, ['.gitignore', 'a.log', 'b.txt', 'dist/keep.txt']);
    assert.ok(ours.all.includes('dist'), 'the folder comes back with what is included in it');
  });

  it('matches random patterns exactly as git does', async function () {
    this.timeout(300_000);
    const repo = newRepo();
    // Folder names never repeat as file names, so every path below can exist at once.
    for (const d1 of ['', 'a/', 'ab/', 'x.c/']) {
      for (const d2 of ['', 'a/', 'b.c/']) for (const n of ['b', 'aa', 'a.c', '.h', 'B', 'xb']) write(repo, d1 + d2 + n);
    }
    const piece = fc.constantFrom(
      ...['a', 'b', '*', '?', '**', '.c', '[a-b]', '[!a]', 'x', '\\*', 'B', '[[:upper:]]', '[^b-]', '[]a]', '[-a]'],
      ...['\\a', '[[:alpha:][:punct:]]', '[.]', '[a', 'c]', '**/**', '*/', '[[:x]'],
    );
    const pattern = fc
      .tuple(
        fc.boolean(),
        fc.constantFrom('', '/'),
        fc.array(fc.array(piece, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
        fc.constantFrom('', '/'),
      )
      .map(([neg, lead, parts, trail]) => `${neg ? '!' : ''}${lead}${parts.map((p) => p.join('')).join('/')}${trail}`);
    await fc.assert(
      fc.asyncProperty(fc.array(pattern, { minLength: 1, maxLength: 5 }), fc.array(pattern, { maxLength: 3 }), async (top, nested) => {
        fs.writeFileSync(path.join(repo, '.gitignore'), top.join('\n') + '\n');
        fs.writeFileSync(path.join(repo, 'a/.gitignore'), nested.join('\n') + '\n');
        const ours = await scan(repo);
        const theirs = gitUntrackedNotIgnored(repo);
        assert.deepEqual(ours.files, theirs, `patterns ${JSON.stringify(top)} / a: ${JSON.stringify(nested)}`);
      }),
      { numRuns: 80, seed: 4242 },
    );
  });

  describe('patterns', () => {
    const hit = (pattern: string, s: string): boolean => compilePattern(pattern)!.test(s);

    it('parses lines as git does', () => {
      const ps = parseGitignore(Buffer.from('\xef\xbb\xbf# c\n\n  \nfoo  \nbar\\ \n!neg\nd/\n/anch\r\n', 'latin1'));
      assert.deepEqual(
        ps.map((p) => [p.source, p.negative, p.mustBeDir, p.basenameOnly]),
        [
          ['foo', false, false, true],
          ['bar\\ ', false, false, true],
          ['!neg', true, false, true],
          ['d/', false, true, true],
          ['/anch', false, false, false],
        ],
      );
    });

    it('wildcards', () => {
      assert.ok(hit('*.c', 'x.c'));
      assert.ok(hit('a/*', 'a/b'));
      assert.ok(!hit('a/*', 'a/b/c'));
      assert.ok(hit('a/**', 'a/b/c'));
      assert.ok(!hit('a/**', 'a'));
      assert.ok(hit('**/b', 'b'));
      assert.ok(hit('**/b', 'a/x/b'));
      assert.ok(hit('a/**/b', 'a/b'));
      assert.ok(hit('a/**/b', 'a/x/y/b'));
      assert.ok(!hit('*a**/b', 'xax/y/b'), '** not at a boundary is *');
      assert.ok(hit('*a**/b', 'xax/b'));
      // git's match_pathname: ** right after the literal head acts as a leading **/.
      assert.ok(hit('a**/b', 'ab'));
      assert.ok(hit('a**/b', 'ax/y/b'));
      assert.ok(hit('a?/c', 'ab/c'));
      assert.ok(!hit('a?c/d', 'a/c/d'));
      assert.ok(hit('[[:digit:]x]', '5'));
      assert.ok(hit('[]]', ']'));
      assert.ok(hit('[!a]', 'b'));
      assert.ok(!hit('a[/]b/c', 'a/b/c'), 'a class never matches /');
      assert.equal(compilePattern('[abc'), undefined, 'unterminated class never matches');
      assert.equal(compilePattern('abc\\'), undefined, 'trailing backslash never matches');
      assert.equal(compilePattern('[[:nope:]]'), undefined);
      assert.equal(wildmatchRegexSource('a\\*', false), 'a\\x2a');
    });
  });
});
