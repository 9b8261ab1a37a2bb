// Folder listings reused by the next scan (listingCache.ts): a scan with listings yields exactly what a
// plain scan yields, whatever changed in between; a folder is re-read when anything could have changed
// in it (names added, removed, renamed, its mtime set back) or when its listing was racy; a damaged
// listing file is used up to the fault and never fails the scan.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { indexToString } from '../../../src/engine/pathIndex';
import { ListingCache } from '../../../src/engine/scan/listingCache';
import { scanTreeSync, type ScanOptions } from '../../../src/engine/scan/scanner';
import { makeTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

/** Paths, types, sizes and whole-second mtimes of a scan, one line each. */
function scan(root: string, listings?: ListingCache, more: Partial<ScanOptions> = {}): string[] {
  const errors: string[] = [];
  const out = [...scanTreeSync(root, { onError: (i, e) => errors.push(`${indexToString(i)}: ${e.message}`), listings, ...more })].map(
    (e) => `${indexToString(e.index)} ${e.meta.type} ${e.size} ${e.meta.mtime}`,
  );
  assert.deepEqual(errors, []);
  return out;
}

/** Scans `root` with the listings of `prev` (if any) into `next`; returns the lines and the counts. */
async function scanWith(root: string, prev: string | undefined, next: string, scanStartNs = BigInt(Date.now()) * 1_000_000n) {
  const problems: string[] = [];
  const l = new ListingCache({ previous: prev, next, scanStartNs, onProblem: (m) => problems.push(m) });
  const lines = scan(root, l);
  await l.close();
  return { lines, reused: l.reused, listed: l.listed, problems };
}

const T = 1_700_000_000;

function folders(root: string): number {
  return 1 + fs.readdirSync(root, { recursive: true, withFileTypes: true }).filter((d) => d.isDirectory()).length;
}

describe('folder listings (listingCache.ts)', function () {
  this.timeout(30_000);
  let work: string;
  let root: string;

  /** A tree older than the racy window, listed once: listings of every folder, none racy. */
  async function agedTreeListed(): Promise<string> {
    work = tempDir('offsite-listings-');
    root = path.join(work, 'src');
    makeTree(root, {
      'a.txt': 'a',
      'a-b': { 'x.txt': 'x' },
      a: { b: { c: { 'deep.txt': 'deep', 'other.txt': 'o' } }, 'keep.txt': 'k' },
      empty: {},
      z: { 'z1.txt': '1', 'z2.txt': '2' },
    });
    fs.utimesSync(path.join(root, 'a', 'b', 'c'), T, T); // a whole second, so a test can set it back exactly
    await sleep(2_100); // folder ctimes older than the racy window of the scans below
    const first = await scanWith(root, undefined, path.join(work, 'dirs.1'));
    assert.equal(first.reused, 0);
    assert.equal(first.listed, folders(root));
    assert.deepEqual(first.lines, scan(root));
    return path.join(work, 'dirs.1');
  }

  it('an unchanged tree: every folder comes from the listings, the same entries as a plain scan', async () => {
    const dirs1 = await agedTreeListed();
    const second = await scanWith(root, dirs1, path.join(work, 'dirs.2'));
    assert.deepEqual(second.lines, scan(root));
    assert.equal(second.reused, folders(root));
    assert.equal(second.listed, 0);
    assert.deepEqual(second.problems, []);
    // The listings it wrote serve the next scan as well.
    const third = await scanWith(root, path.join(work, 'dirs.2'), path.join(work, 'dirs.3'));
    assert.equal(third.reused, folders(root));
    assert.equal(fs.statSync(path.join(work, 'dirs.3')).mode & 0o777, 0o600);
  });

  it('changed folders are read again: added, deleted, renamed names, a new folder, an mtime set back', async () => {
    const dirs1 = await agedTreeListed();
    await sleep(50); // past the coarse clock tick of the listing above
    const deep = path.join(root, 'a', 'b', 'c');
    const before = fs.statSync(deep, { bigint: true });
    fs.writeFileSync(path.join(deep, 'new.txt'), 'new'); // added...
    fs.utimesSync(deep, T, T); // ...with the folder's mtime set back (its ctime moves)
    fs.rmSync(path.join(root, 'z', 'z1.txt')); // deleted
    fs.renameSync(path.join(root, 'a-b', 'x.txt'), path.join(root, 'a-b', 'y.txt')); // renamed
    fs.mkdirSync(path.join(root, 'empty', 'sub')); // a new folder in a listed one
    fs.writeFileSync(path.join(root, 'a', 'keep.txt'), 'changed in place'); // its folder is unchanged
    assert.equal(fs.statSync(deep, { bigint: true }).mtimeNs, before.mtimeNs);

    const second = await scanWith(root, dirs1, path.join(work, 'dirs.2'));
    assert.deepEqual(second.lines, scan(root));
    for (const p of ['a/b/c/new.txt', 'a-b/y.txt', 'empty/sub']) assert.ok(second.lines.some((l) => l.startsWith(`${p} `)), p);
    for (const p of ['z/z1.txt', 'a-b/x.txt']) assert.ok(!second.lines.some((l) => l.startsWith(`${p} `)), p);
    // Re-read: a/b/c, z, a-b, empty and the new empty/sub; the root, a, a/b from the listings.
    assert.equal(second.listed, 5);
    assert.equal(second.reused, folders(root) - 5);
  });

  it('with selection rules and .gitignore: the same entries as a plain scan, excluded folders never listed', async () => {
    work = tempDir('offsite-listings-');
    root = path.join(work, 'src');
    makeTree(root, {
      '.gitignore': '*.log\nbuild/\n',
      'a.log': 'ignored',
      'keep.txt': 'k',
      build: { 'out.js': 'ignored', deep: { 'x.js': 'ignored' } },
      src: { 'main.ts': 'm', 'debug.log': 'ignored', nested: { '.gitignore': 'secret.txt\n', 'secret.txt': 's', 'ok.txt': 'o' } },
      z: { 'excluded.txt': 'e' },
    });
    await sleep(2_100);
    const options: Partial<ScanOptions> = { gitignore: true, rules: [{ kind: 'exclude', glob: 'z' }] };
    const plain = scan(root, undefined, options);
    assert.ok(!plain.some((l) => /build|\.log|secret|excluded/.test(l)), plain.join('\n'));
    const run = async (prev: string | undefined, next: string) => {
      const l = new ListingCache({ previous: prev, next, scanStartNs: BigInt(Date.now()) * 1_000_000n });
      const lines = scan(root, l, options);
      await l.close();
      return { lines, reused: l.reused, listed: l.listed };
    };
    const first = await run(undefined, path.join(work, 'dirs.1'));
    const second = await run(path.join(work, 'dirs.1'), path.join(work, 'dirs.2'));
    assert.deepEqual(first.lines, plain);
    assert.deepEqual(second.lines, plain);
    // The root, src and src/nested; build/ and z are excluded before they would be listed.
    assert.deepEqual([first.listed, second.reused, second.listed], [3, 3, 0]);
    // A .gitignore edited in a reused folder still counts: its rules are read, not cached.
    fs.writeFileSync(path.join(root, 'src', 'nested', '.gitignore'), 'ok.txt\n');
    const third = await run(path.join(work, 'dirs.2'), path.join(work, 'dirs.3'));
    assert.equal(third.reused, 3);
    assert.deepEqual(third.lines, scan(root, undefined, options));
    assert.ok(third.lines.some((l) => l.startsWith('src/nested/secret.txt ')) && !third.lines.some((l) => l.startsWith('src/nested/ok.txt ')));
  });

  it('racy listings (folders changed shortly before the scan began) are never reused', async () => {
    work = tempDir('offsite-listings-');
    root = path.join(work, 'src');
    makeTree(root, { a: { 'f.txt': 'f' }, b: {} });
    const first = await scanWith(root, undefined, path.join(work, 'dirs.1'));
    const second = await scanWith(root, path.join(work, 'dirs.1'), path.join(work, 'dirs.2'));
    assert.equal(first.listed, 3);
    assert.equal(second.reused, 0);
    assert.equal(second.listed, 3);
  });

  it("another tree's listings are not taken for this one, even with the same names", async () => {
    const dirs1 = await agedTreeListed();
    const twin = path.join(work, 'twin');
    fs.cpSync(root, twin, { recursive: true });
    fs.writeFileSync(path.join(twin, 'a', 'b', 'c', 'only-in-twin.txt'), 't');
    const r = await scanWith(twin, dirs1, path.join(work, 'dirs.twin'), BigInt(Date.now() + 10_000) * 1_000_000n);
    assert.equal(r.reused, 0);
    assert.deepEqual(r.lines, scan(twin));
  });

  for (const [name, damage, why] of [
    ['a flipped byte', (f: string) => flipByte(f, Math.floor(fs.statSync(f).size / 2)), /checksum mismatch|bad compressed data/],
    ['a truncated file', (f: string) => fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)), /truncated/],
    ['not a listing file', (f: string) => fs.writeFileSync(f, 'OFFSTAT1 something else'), /not a listing file/],
    ['a folder in its place', (f: string) => (fs.rmSync(f), fs.mkdirSync(f)), /EISDIR|directory/],
  ] as const) {
    it(`${name}: the scan reads the folders itself and says why once`, async () => {
      const dirs1 = await agedTreeListed();
      damage(dirs1);
      const r = await scanWith(root, dirs1, path.join(work, 'dirs.2'));
      assert.deepEqual(r.lines, scan(root));
      assert.equal(r.problems.length, 1, r.problems.join('\n'));
      assert.match(r.problems[0], why);
      assert.ok(r.listed > 0);
      // What this scan wrote is whole again.
      assert.equal((await scanWith(root, path.join(work, 'dirs.2'), path.join(work, 'dirs.3'))).reused, folders(root));
    });
  }

  it('listings that cannot be written: the scan goes on, nothing is left behind', async () => {
    const dirs1 = await agedTreeListed();
    const r = await scanWith(root, dirs1, path.join(work, 'no-such-folder', 'dirs.2'));
    assert.deepEqual(r.lines, scan(root));
    assert.equal(r.reused, folders(root));
    assert.match(r.problems.join('\n'), /listings not written/);
    assert.deepEqual(fs.readdirSync(work).sort(), ['dirs.1', 'src']);
  });

  it('abort() keeps the previous listings and leaves no temp file', async () => {
    const dirs1 = await agedTreeListed();
    const l = new ListingCache({ previous: dirs1, next: path.join(work, 'dirs.2'), scanStartNs: BigInt(Date.now()) * 1_000_000n });
    scan(root, l);
    l.abort();
    assert.deepEqual(fs.readdirSync(work).sort(), ['dirs.1', 'src']);
  });
});

function flipByte(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x55;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
}
