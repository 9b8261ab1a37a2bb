import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compileSelection, globToRegex, literalRulePath, type SelectionRule } from '../../../src/engine/scan/selection';
import { scanTree } from '../../../src/engine/scan/scanner';
import { OffsiteError } from '../../../src/engine/errors';
import type { PathIndex } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';
import { duplicityBackupIndexes } from './realTools';

const inc = (glob: string): SelectionRule => ({ kind: 'include', glob });
const exc = (glob: string): SelectionRule => ({ kind: 'exclude', glob });

function show(index: PathIndex): string {
  return index.length === 0 ? '.' : index.map((c) => c.toString('utf8')).join('/');
}

function write(root: string, rel: string | Buffer, content = 'x'): void {
  const p = Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel)]);
  fs.mkdirSync(p.subarray(0, p.lastIndexOf(0x2f)), { recursive: true });
  fs.writeFileSync(p, content);
}

function tree(): string {
  const root = tempDir('offsite-sel-');
  for (const f of [
    'a/b/f.txt',
    'a/b/g.log',
    'a/c.log',
    'a-b/x',
    'build/out.js',
    'logs',
    'node_modules/pkg/index.js',
    'node_modules/pkg/lib/x.ts',
    'src/main.ts',
    'src/README.md',
    'src/lib/util.ts',
    'src/lib/deep/more.ts',
    'src/lab/other.ts',
    'docs/readme.md',
    'Docs2/Guide.MD',
    'DOCS/x',
    'with space/f',
    'top.log',
    'zeta.ts',
  ]) {
    write(root, f);
  }
  write(root, Buffer.from('bad\xff/file', 'latin1'));
  fs.mkdirSync(path.join(root, 'emptydir'));
  fs.mkdirSync(path.join(root, 'node_modules/.bin'));
  fs.symlinkSync('../pkg/index.js', path.join(root, 'node_modules/.bin/tool'));
  return root;
}

/** Our rule as duplicity's command line option (relative rules get the root in front). */
function duplicityArgs(root: string, rules: readonly SelectionRule[]): string[] {
  return rules.flatMap((r) => {
    let glob = r.glob;
    let prefix = '';
    if (glob.startsWith('ignorecase:')) {
      prefix = 'ignorecase:';
      glob = glob.slice(prefix.length);
    }
    if (!glob.startsWith('/') && !glob.startsWith('**')) glob = `${root}/${glob}`;
    return [`--${r.kind}`, prefix + glob];
  });
}

async function ourScan(root: string, rules: readonly SelectionRule[]): Promise<string[]> {
  const out: string[] = [];
  for await (const e of scanTree(root, { rules, onError: (i, err) => assert.fail(`${show(i)}: ${err.message}`) })) {
    out.push(show(e.index));
  }
  return out;
}

describe('scan/selection', () => {
  describe('agrees with real duplicity on what a backup contains', () => {
    const root = tree();
    const cases: [string, (root: string) => SelectionRule[]][] = [
      ['no rules', () => []],
      ['exclude a top-level folder by name', () => [exc('node_modules')]],
      ['exclude by extension at any depth', () => [exc('**/*.log')]],
      ['include a deep pattern, exclude the rest (scanned folders)', () => [inc('src/**/*.ts'), exc('**')]],
      ['include **/*.ts everywhere', () => [inc('**/*.ts'), exc('**')]],
      ['folder-only globs leave a same-named file alone', () => [exc('build/'), exc('logs/')]],
      ['ignorecase', () => [inc('ignorecase:**/docs'), exc('**')]],
      ['absolute globs, first match wins', (r) => [inc(`${r}/a/b`), exc(`${r}/a`)]],
      ['classes and ?', () => [exc('**/[fg].*'), inc('src/l?b'), exc('**')]],
      ['an earlier exclude beats a later include of the parent', () => [exc('**/deep'), inc('src'), exc('**')]],
      ['folder-only include keeps scanned ancestors; empty folder included', () => [inc('src/lib/deep/'), inc('emptydir'), exc('**')]],
      ['negated class', () => [exc('**/[!a-m]*.ts')]],
      ['non-UTF-8 names and spaces', () => [inc('bad*'), inc('with space'), exc('**')]],
      ['excluding the root leaves only the root', (r) => [exc(r)]],
      ['include below an excluded folder content glob', () => [inc('**/.bin'), exc('node_modules/**')]],
      ['* does not cross folders', () => [exc('*/*.log'), exc('*.ts')]],
    ];
    for (const [name, rulesOf] of cases) {
      it(name, async () => {
        const rules = rulesOf(root);
        const ours = await ourScan(root, rules);
        const theirs = duplicityBackupIndexes(root, duplicityArgs(root, rules)).map(show);
        assert.deepEqual(ours, theirs);
      });
    }
  });

  describe('verdicts', () => {
    const root = '/home/u/ws';
    const v = (rules: SelectionRule[], rel: string, isDir = false): string => compileSelection(root, rules).test(rel, isDir);

    it('no rule matched → none; first matching rule decides', () => {
      assert.equal(v([], '/x'), 'none');
      assert.equal(v([exc('a')], '/b'), 'none');
      assert.equal(v([exc('a'), inc('a')], '/a'), 'exclude');
      assert.equal(v([inc('a'), exc('a')], '/a/deep/file'), 'include');
    });

    it('relative globs are anchored at the root unless they start with **', () => {
      assert.equal(v([exc('node_modules')], '/node_modules', true), 'exclude');
      assert.equal(v([exc('node_modules')], '/x/node_modules', true), 'none');
      assert.equal(v([exc('**/node_modules')], '/x/node_modules', true), 'exclude');
      assert.equal(v([exc('**/node_modules')], '/node_modules', true), 'exclude');
      assert.equal(v([exc('**/*.log')], '/a.log'), 'exclude');
      assert.equal(v([exc('*.log')], '/x/a.log'), 'none');
      assert.equal(v([exc('./build')], '/build/x'), 'exclude');
    });

    it('absolute globs match the absolute path', () => {
      assert.equal(v([exc('/home/u/ws/a')], '/a/b'), 'exclude');
      assert.equal(v([exc('/home/*/ws/a')], '/a'), 'exclude');
      assert.equal(v([exc('/home/u/ws')], '/anything'), 'exclude');
    });

    it('scan: an include that could match below a folder', () => {
      assert.equal(v([inc('src/**/*.ts'), exc('**')], '/src', true), 'scan');
      assert.equal(v([inc('src/**/*.ts'), exc('**')], '/src/x/y', true), 'scan');
      assert.equal(v([inc('src/**/*.ts'), exc('**')], '/src/x/y.js'), 'scan');
      assert.equal(v([inc('src/**/*.ts'), exc('**')], '/src/x/y.ts'), 'include');
      assert.equal(v([inc('src/**/*.ts'), exc('**')], '/docs', true), 'exclude');
      assert.equal(v([inc('a/b/c')], '/a', true), 'scan');
      assert.equal(v([inc('a/b/c'), inc('a')], '/a', true), 'include');
    });

    it('folder-only globs', () => {
      assert.equal(v([exc('build/')], '/build', true), 'exclude');
      assert.equal(v([exc('build/')], '/build', false), 'none');
      assert.equal(v([exc('build/')], '/build/x', false), 'exclude');
    });

    it('ignorecase and character classes', () => {
      assert.equal(v([exc('ignorecase:**/*.JPG')], '/a/B.jpg'), 'exclude');
      assert.equal(v([exc('**/*.JPG')], '/a/B.jpg'), 'none');
      assert.equal(v([exc('[abc]x')], '/bx'), 'exclude');
      assert.equal(v([exc('[!abc]x')], '/bx'), 'none');
      assert.equal(v([exc('[^abc]x')], '/dx'), 'exclude');
      assert.equal(v([exc('[]]x')], '/]x'), 'exclude');
      assert.equal(v([exc('?x')], '/éx'), 'exclude');
      assert.equal(v([exc('?x')], '/😀x'), 'exclude');
      assert.equal(v([exc('a[b')], '/a[b'), 'exclude');
      assert.equal(v([exc('**')], '/x'), 'exclude');
    });

    it('counts, per rule, the paths it decided (a rule after the one that decides a path is not counted)', () => {
      const rules = [inc('src/*.ts'), exc('build/'), exc('build'), exc('ws/node_modules'), exc('**/*.log'), exc('**')];
      const s = compileSelection(root, rules);
      assert.deepEqual(s.matches, [0, 0, 0, 0, 0, 0]);
      for (const [rel, dir] of [['/src', true], ['/src/a.ts', false], ['/src/b.js', false], ['/build', true], ['/build', false], ['/node_modules', true]] as const) s.test(rel, dir);
      // /src is only scanned by the include, and decided by '**', as are /src/b.js and /node_modules; the
      // file /build matches the folder-only 'build/' but is decided by 'build'.
      assert.deepEqual(s.matches, [1, 1, 1, 0, 0, 3]);
      assert.deepEqual(s.unmatchedRules(), [exc('ws/node_modules'), exc('**/*.log')]);
    });

    it('rejects globs that cannot match under the root, or are malformed', () => {
      const usage = (e: unknown): boolean => OffsiteError.is(e, 'usage');
      assert.throws(() => compileSelection(root, [exc('/etc/passwd')]), usage);
      assert.throws(() => compileSelection(root, [exc('a//b')]), usage);
      assert.throws(() => compileSelection(root, [exc('../x')]), usage);
      assert.throws(() => compileSelection(root, [exc('')]), usage);
      assert.throws(() => compileSelection(root, [exc('[z-a]')]), usage);
    });

    it('translates globs like globmatch.py', () => {
      assert.equal(globToRegex('a*b?c'), 'a[^/]*b[^/]c');
      assert.equal(globToRegex('**/x.y'), '.*\\/x\\.y');
      assert.equal(globToRegex('[!a-c]'), '[^a-c]');
      assert.equal(globToRegex('[x'), '\\[x');
    });
  });

  it('literalRulePath: the path a plain rule names, as compiled (the CLI\'s check of rules written from the current folder)', () => {
    const rows: [string, { path: string; dirOnly: boolean } | undefined][] = [
      ['ws/node_modules', { path: 'ws/node_modules', dirOnly: false }],
      ['./ws/src/', { path: 'ws/src', dirOnly: true }],
      ['././a', { path: 'a', dirOnly: false }],
      ['ws/*.log', undefined],
      ['ws/a?', undefined],
      ['ws/[ab]', undefined],
      ['**/node_modules', undefined],
      ['ignorecase:ws/A', undefined],
      ['/root/ws/a', undefined],
      ['**', undefined],
    ];
    for (const [glob, want] of rows) assert.deepEqual(literalRulePath('/root/ws', { kind: 'exclude', glob }), want, glob);
    assert.throws(() => literalRulePath('/root/ws', { kind: 'exclude', glob: '../x' }), (e: unknown) => OffsiteError.is(e, 'usage'));
  });
});
