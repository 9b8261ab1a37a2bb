// Suite 7, changing sources: files that grow, shrink, vanish, are replaced or change type while the
// backup reads them. The change is made at the exact moment the engine opens the file (before or just
// after the open), through a hook on the fs module, so each case is deterministic; a last case runs
// `offsite backup` while another process keeps changing the tree. The backup completes and counts the
// files it could not read; every other file restores identically; the changed file restores to a
// version it really had (or is reported); the next backup of the quiet tree restores identically.
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MemoryBackend } from '../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../src/engine/log';
import { backup, type BackupResult } from '../../src/engine/ops/backup';
import { offsite } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { makeTree, randomBytesSeeded, snapshotTree, type TreeEntry } from '../helpers/tree';
import { runCase, suiteSeed } from './figures';
import { restoredTree, rsaCrypto } from './support';

const SUITE = '7 changing sources';
const T1 = 1_650_000_000_000;

// The real module object: the engine's `import * as fs` reads its functions from it at call time.
const realFs: typeof fs = require('node:fs');

/**
 * While `body` runs, opening `victim` (by any of fs's open functions) runs `before` just before the
 * open and `after` just after it. Returns how often the hook fired, so a case can prove it did.
 */
async function onOpen<T>(victim: string, hooks: { before?: () => void; after?: () => void; afterRead?: () => void }, body: () => Promise<T>): Promise<{ result: T; fired: number }> {
  const openSync = realFs.openSync;
  const open = realFs.promises.open;
  const readSync = realFs.readSync;
  const victimFds = new Set<number>();
  let fired = 0;
  let busy = false; // the hooks open files themselves
  const hit = (p: fs.PathLike) => !busy && Buffer.from(p instanceof URL ? p.pathname : (p as string | Buffer)).equals(Buffer.from(victim));
  const run = (f?: () => void) => {
    busy = true;
    try {
      f?.();
    } finally {
      busy = false;
    }
  };
  realFs.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
    if (!hit(p)) return (openSync as (...a: unknown[]) => number)(p, ...rest);
    fired++;
    run(hooks.before);
    const fd = (openSync as (...a: unknown[]) => number)(p, ...rest);
    victimFds.add(fd);
    run(hooks.after);
    return fd;
  }) as typeof fs.openSync;
  realFs.readSync = ((fd: number, ...rest: unknown[]) => {
    const n = (readSync as (...a: unknown[]) => number)(fd, ...rest);
    if (victimFds.has(fd) && !busy) run(hooks.afterRead);
    return n;
  }) as typeof fs.readSync;
  realFs.promises.open = (async (p: fs.PathLike, ...rest: unknown[]) => {
    if (!hit(p)) return (open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(p, ...rest);
    fired++;
    run(hooks.before);
    const fh = await (open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(p, ...rest);
    run(hooks.after);
    const read = fh.read.bind(fh) as (...a: unknown[]) => Promise<fs.promises.FileReadResult<Buffer>>;
    (fh as { read: unknown }).read = async (...a: unknown[]) => {
      const r = await read(...a);
      run(hooks.afterRead);
      return r;
    };
    return fh;
  }) as typeof fs.promises.open;
  try {
    return { result: await body(), fired };
  } finally {
    realFs.openSync = openSync;
    realFs.promises.open = open;
    realFs.readSync = readSync;
  }
}

const without = (tree: TreeEntry[], p: string) => tree.filter((e) => e.path !== p);
const entryOf = (tree: TreeEntry[], p: string) => tree.find((e) => e.path === p);

describe(`reliability ${SUITE}: files that change while the backup reads them`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(SUITE);
  const VICTIM = 'victim.bin';

  interface Case {
    readonly name: string;
    /** Whether the file counts as unreadable (an error) rather than stored. */
    readonly error: boolean;
    readonly before?: (p: string) => void;
    readonly after?: (p: string) => void;
    readonly afterRead?: (p: string) => void;
    /** The versions of the victim a restore may show (besides the state before the change). */
    readonly acceptable: (restored: TreeEntry | undefined, original: Buffer, now: TreeEntry | undefined) => boolean;
  }
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const cases: Case[] = [
    {
      name: 'grows as it is opened',
      error: false,
      after: (p) => fs.appendFileSync(p, randomBytesSeeded(300_000, seed + 9)),
      acceptable: (r, original, now) => r?.sha256 === sha(original) || r?.sha256 === now?.sha256,
    },
    {
      // A log written faster than the backup reads it: after every read, 1 MiB more (50 MiB at most,
      // so a backup that chased it would be caught by the size check, not hang the suite).
      name: 'keeps growing while it is read (only what it held when opened is stored)',
      error: false,
      afterRead: (p) => {
        if (fs.statSync(p).size < 50 << 20) fs.appendFileSync(p, Buffer.alloc(1 << 20, 0x41));
      },
      acceptable: (r, original) => r?.sha256 === sha(original),
    },
    {
      name: 'shrinks after it was opened',
      error: false,
      after: (p) => fs.truncateSync(p, 1000),
      acceptable: (r, original) => r?.sha256 === sha(original.subarray(0, 1000)),
    },
    {
      name: 'vanishes before it is opened',
      error: true,
      before: (p) => fs.rmSync(p),
      acceptable: (r) => r === undefined,
    },
    {
      name: 'vanishes after it was opened (the open file is still read whole)',
      error: false,
      after: (p) => fs.rmSync(p),
      acceptable: (r, original) => r?.sha256 === sha(original),
    },
    {
      name: 'is replaced by a fifo before it is opened (must not wait for a writer)',
      error: true,
      before: (p) => {
        fs.rmSync(p);
        execFileSync('mkfifo', [p]);
      },
      acceptable: (r) => r === undefined,
    },
    {
      name: 'is replaced by a folder before it is opened',
      error: true,
      before: (p) => {
        fs.rmSync(p);
        fs.mkdirSync(p);
      },
      acceptable: (r) => r === undefined,
    },
    {
      name: 'is replaced by a symlink before it is opened',
      error: true,
      before: (p) => {
        fs.rmSync(p);
        fs.symlinkSync('a.txt', p);
      },
      acceptable: (r) => r === undefined,
    },
    {
      name: 'is replaced by another file (an editor saving by rename) before it is opened',
      error: false,
      before: (p) => {
        fs.writeFileSync(`${p}.new`, 'the new version\n');
        fs.renameSync(`${p}.new`, p);
      },
      acceptable: (r) => r?.sha256 === sha(Buffer.from('the new version\n')),
    },
  ];

  for (const kind of ['full', 'incremental'] as const) {
    for (const c of cases) {
      it(`${kind}: a file that ${c.name}: the backup completes${c.error ? ' and counts it' : ''}, all else restores`, async () => {
        await runCase(SUITE, `${kind}: ${c.name}`, undefined, async () => {
          const box = tempDir('offsite-changing-');
          const src = path.join(box, 'src');
          const original = randomBytesSeeded(200_000, seed);
          makeTree(src, { 'a.txt': 'a\n', [VICTIM]: original, sub: { 'b.bin': randomBytesSeeded(90_000, seed + 1), 'c.txt': 'c\n' }, 'z.txt': 'last\n' });
          const backend = new MemoryBackend();
          const archive = ArchiveDir.open(path.join(box, 'cache'));
          const crypto = await rsaCrypto();
          const run = (t: number) => backup({ source: src, backend, archive, crypto, log: new MemoryLogger(), volumeSize: 128 * 1024, now: () => t });
          const victim = path.join(src, VICTIM);
          let t = T1;
          if (kind === 'incremental') {
            await run(t);
            t += 10_000;
            fs.writeFileSync(victim, original); // changed content (same bytes, new times): read again
            fs.appendFileSync(path.join(src, 'a.txt'), 'more\n');
          }
          const before = snapshotTree(src);
          const hooks = { before: c.before && (() => c.before!(victim)), after: c.after && (() => c.after!(victim)), afterRead: c.afterRead && (() => c.afterRead!(victim)) };
          const { result, fired } = await onOpen(victim, hooks, () => run(t));
          assert.equal(fired, 1, 'the change happened while the backup opened the file');
          const r = result as BackupResult;
          if (c.error) {
            assert.deepEqual(r.errors.map((e) => e.path), [VICTIM], JSON.stringify(r.errors));
            assert.equal(r.stats.Errors, 1);
          } else assert.deepEqual(r.errors, []);
          const restored = await restoredTree(backend, t / 1000);
          // Everything else as it was when the backup started; the victim as some version it had.
          const others = (tree: TreeEntry[]) => without(tree, VICTIM).filter((e) => e.path !== '.');
          assert.deepEqual(others(restored), others(before));
          const v = entryOf(restored, VICTIM);
          const prior = kind === 'incremental' && c.error ? entryOf(before, VICTIM) : undefined;
          assert.ok(c.acceptable(v, original, entryOf(snapshotTree(src), VICTIM)) || (prior !== undefined && v?.sha256 === prior.sha256), `the victim restored as ${JSON.stringify(v)}`);
          // Once the tree is quiet, the next backup catches up exactly.
          const next = await run(t + 10_000);
          assert.deepEqual(next.errors, []);
          assert.deepEqual(await restoredTree(backend), snapshotTree(src));
        });
      });
    }
  }

  it('a fifo named .gitignore, or .git, with --gitignore: the scan does not wait on it', async () => {
    await runCase(SUITE, 'fifo .gitignore and .git', undefined, async () => {
      const box = tempDir('offsite-changing-');
      const src = path.join(box, 'src');
      makeTree(src, { 'a.txt': 'a', sub: { '.gitignore': { fifo: true }, 'b.txt': 'b' }, wt: { '.git': { fifo: true }, 'c.txt': 'c' } });
      const backend = new MemoryBackend();
      const r = await backup({ source: src, backend, archive: ArchiveDir.open(path.join(box, 'cache')), crypto: await rsaCrypto(), log: new MemoryLogger(), volumeSize: 1 << 20, gitignore: true, now: () => T1 });
      assert.deepEqual(r.errors, []);
      assert.deepEqual(await restoredTree(backend), snapshotTree(src));
    });
  });

  it('offsite backup while another process keeps changing the tree: completes, counts, and the next backup catches up', async () => {
    await runCase(SUITE, 'concurrent changes (CLI)', seed, async () => {
      const box = tempDir('offsite-changing-cli-');
      const src = path.join(box, 'src');
      const files: Record<string, Buffer | string> = {};
      for (let i = 0; i < 40; i++) files[`f${String(i).padStart(2, '0')}.bin`] = randomBytesSeeded(20_000 + i * 3000, seed + i);
      makeTree(src, { churn: files, steady: { 'keep.txt': 'steady\n', 'big.bin': randomBytesSeeded(1_500_000, seed) }, 'log.txt': '' });
      const steady = snapshotTree(path.join(src, 'steady'));
      // The mutator: appends to a log as fast as it can, rewrites, deletes, recreates, renames and
      // retypes churn files, until told to stop.
      const mutator = spawn(process.execPath, ['-e', MUTATOR, src, String(seed)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let mutErr = '';
      mutator.stderr.on('data', (d) => (mutErr += d));
      await new Promise((r) => setTimeout(r, 200));
      const url = `file://${path.join(box, 'vault')}`;
      const cache = path.join(box, 'cache');
      const t0 = Date.now();
      let r;
      try {
        r = await offsite(['--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, src, url], { timeoutMs: 120_000 });
      } finally {
        mutator.kill('SIGTERM');
        await new Promise((res) => mutator.once('close', res));
      }
      assert.equal(mutErr, '', 'the mutator ran');
      assert.ok(Date.now() - t0 < 110_000, 'the backup did not chase the growing file');
      assert.ok(r.code === 0 || r.code === 3, `exit ${r.code}: ${r.stderr}`);
      const stats = JSON.parse(r.stdout);
      if (r.code === 3) {
        assert.ok(stats.Errors > 0);
        assert.match(r.stderr, /could not be read/);
      }
      assert.equal(typeof stats.SourceFiles, 'number');
      // The files nobody touched restore exactly.
      const out = path.join(box, 'out');
      const rr = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--path', 'steady', url, out]);
      assert.equal(rr.code, 0, rr.stderr);
      assert.deepEqual(snapshotTree(path.join(out, 'steady')), steady);
      // The quiet tree: the next backup restores identically.
      await new Promise((res) => setTimeout(res, 1100));
      const n = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url]);
      assert.equal(n.code, 0, n.stderr);
      const out2 = path.join(box, 'out2');
      const r2 = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, url, out2]);
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(snapshotTree(out2), snapshotTree(src));
    });
  });
});

/** Source of the mutator process (argv: source folder, seed). */
const MUTATOR = `
const fs = require('fs'), path = require('path'), { execFileSync } = require('child_process');
const [src, seedText] = process.argv.slice(1);
let x = Number(seedText) >>> 0 || 1;
const rnd = (n) => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % n; };
const churn = path.join(src, 'churn');
const log = fs.openSync(path.join(src, 'log.txt'), 'a');
const chunk = Buffer.alloc(256 * 1024, 120);
let stop = false;
process.on('SIGTERM', () => { stop = true; });
function step() {
  if (stop) { fs.closeSync(log); process.exit(0); }
  try {
    fs.writeSync(log, chunk);
    const f = path.join(churn, 'f' + String(rnd(40)).padStart(2, '0') + '.bin');
    // Never open a fifo here: that would wait for a reader (the thing the backup must not do either).
    try { if (!fs.lstatSync(f).isFile()) fs.rmSync(f, { recursive: true, force: true }); } catch {}
    switch (rnd(7)) {
      case 0: fs.writeFileSync(f, Buffer.alloc(rnd(200000), rnd(256))); break;
      case 1: fs.rmSync(f, { recursive: true, force: true }); break;
      case 2: fs.appendFileSync(f, Buffer.alloc(5000, 7)); break;
      case 3: try { fs.truncateSync(f, rnd(1000)); } catch {} break;
      case 4: fs.rmSync(f, { recursive: true, force: true }); fs.mkdirSync(f); fs.writeFileSync(path.join(f, 'inner'), 'x'); break;
      case 5: fs.rmSync(f, { recursive: true, force: true }); execFileSync('mkfifo', [f]); break;
      case 6: fs.writeFileSync(f + '.tmp', 'renamed ' + rnd(1000)); fs.renameSync(f + '.tmp', f); break;
    }
  } catch (e) { if (!['ENOENT', 'EISDIR', 'ENOTDIR', 'EEXIST', 'ENOTEMPTY'].includes(e.code)) { process.stderr.write(String(e)); process.exit(1); } }
  setImmediate(step);
}
step();
`;
