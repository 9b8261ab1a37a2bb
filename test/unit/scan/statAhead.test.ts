// Stat ahead (statAhead.ts): the walk with the worker thread's lstats yields exactly what a plain walk
// yields, whatever changed since the stat cache was written, whatever the worker managed to do, and
// however the ring wraps; the worker stops when asked, and a cache it cannot read only means the walk
// stats everything itself.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { scanTreeSync, type ScanEntry } from '../../../src/engine/scan/scanner';
import { PATH_MAX, SLOTS, StatAhead } from '../../../src/engine/scan/statAhead';
import { StatCacheWriter, statRecordOf } from '../../../src/engine/scan/statCache';
import { tempDir } from '../../helpers/tmp';

const fail = (_i: unknown, e: Error) => assert.fail(e);

function walk(root: string, ahead?: StatAhead): ScanEntry[] {
  return [...scanTreeSync(root, { onError: fail, lstat: ahead?.lstat })];
}

/** The stat cache of the tree as it is now. */
async function writeCache(root: string, file: string): Promise<void> {
  const w = await StatCacheWriter.create(file);
  for (const e of walk(root)) w.add(statRecordOf(e));
  await w.close({ complete: true });
}

/** Everything of an entry that the backup looks at. */
function comparable(entries: readonly ScanEntry[]): unknown[] {
  return entries.map((e) => ({ ...e, index: e.index.map((c) => c.toString('latin1')), path: e.path.toString('latin1') }));
}

/** A tree of `n` files spread over nested folders (names chosen to exercise the walk's order). */
function makeFiles(root: string, n: number): void {
  for (let i = 0; i < n; i++) {
    const dir = path.join(root, `d${i % 7}`, i % 2 ? 'a-b' : 'a', i % 3 ? 'x' : 'x.y');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `f${i}`), `${i}\n`);
  }
}

/** A tree of `n` files (makeFiles) and its stat cache, in a new folder. */
async function cachedTree(n: number): Promise<{ dir: string; root: string; cache: string }> {
  const dir = tempDir('offsite-ahead-');
  const root = path.join(dir, 'src');
  makeFiles(root, n);
  const cache = path.join(dir, 'stat');
  await writeCache(root, cache);
  return { dir, root, cache };
}

async function started(root: string, cache: string): Promise<StatAhead> {
  const ahead = StatAhead.start(root, cache, { minCacheBytes: 0 });
  assert.ok(ahead, 'started');
  return ahead;
}

/** Waits until the worker has filled what it can of the ring (it then exits, or waits for room). */
async function filled(ahead: StatAhead, want: number): Promise<void> {
  for (let t = 0; t < 1000 && ahead.buffered() < want; t++) await sleep(10);
  assert.equal(ahead.buffered(), want, 'the worker filled the ring');
}

describe('scan/statAhead', function () {
  this.timeout(60_000);

  it('gives the walk every lstat of an unchanged tree, the same as its own', async () => {
    const dir = tempDir('offsite-ahead-');
    const root = path.join(dir, 'src');
    makeFiles(root, 200);
    fs.symlinkSync('d0', path.join(root, 'link'));
    const cache = path.join(dir, 'stat');
    await writeCache(root, cache);
    const plain = walk(root);
    const ahead = await started(root, cache);
    await filled(ahead, plain.length - 1); // every path but the root
    await ahead.exited; // it has stat'ed the whole cache
    const got = walk(root, ahead);
    ahead.close();
    assert.deepEqual(comparable(got), comparable(plain));
    assert.equal(ahead.hits, plain.length - 1);
    assert.equal(ahead.own, 0);
  });

  it('is exact after additions, deletions and a file that became a folder', async () => {
    const { root, cache } = await cachedTree(120);
    const rel = (entries: ScanEntry[]) => new Set(entries.slice(1).map((e) => e.path.toString('latin1')));
    const old = rel(walk(root));
    fs.rmSync(path.join(root, 'd3'), { recursive: true }); // a folder and all inside
    fs.rmSync(path.join(root, 'd1', 'a-b', 'x', 'f1')); // a file
    fs.writeFileSync(path.join(root, 'd1', 'a-b', 'x', 'f1a'), 'new\n'); // new, where f1 was
    fs.mkdirSync(path.join(root, 'd0-new')); // a folder between two old ones
    fs.writeFileSync(path.join(root, 'd0-new', 'n'), 'n');
    fs.rmSync(path.join(root, 'd2', 'a', 'x', 'f2')); // a file that became a folder
    fs.mkdirSync(path.join(root, 'd2', 'a', 'x', 'f2'));
    fs.writeFileSync(path.join(root, 'd2', 'a', 'x', 'f2', 'inner'), 'i');
    fs.writeFileSync(path.join(root, 'd4', 'a', 'x.y', 'f4'), 'changed content\n');
    fs.writeFileSync(path.join(root, 'zz'), 'last');
    const plain = walk(root);
    const ahead = await started(root, cache);
    await ahead.exited;
    const got = walk(root, ahead);
    assert.deepEqual(comparable(got), comparable(plain));
    // Paths the cache had come from the worker (f2 a folder now, f4 changed); the 6 new ones from the walk.
    const now = [...rel(plain)];
    assert.equal(ahead.own, now.filter((p) => !old.has(p)).length);
    assert.equal(ahead.own, 6);
    assert.equal(ahead.hits, now.filter((p) => old.has(p)).length);
  });

  it('stays exact when the ring wraps and the walk overtakes the worker', async () => {
    const { root, cache } = await cachedTree(3 * SLOTS);
    const plain = walk(root);
    fs.writeFileSync(path.join(root, 'd5', 'a-b', 'x', 'f5'), 'changed\n'); // an existing file
    const expected = walk(root);
    const ahead = await started(root, cache);
    await filled(ahead, SLOTS); // a full ring, the worker waiting for room
    const got = walk(root, ahead);
    ahead.close();
    assert.deepEqual(comparable(got), comparable(expected));
    assert.ok(ahead.hits >= SLOTS, `at least the full ring came from the worker (${ahead.hits})`);
    assert.equal(ahead.hits + ahead.own, plain.length - 1);
    await ahead.exited;
  });

  it('stops a worker waiting for room when closed', async () => {
    const { root, cache } = await cachedTree(2 * SLOTS);
    const ahead = await started(root, cache);
    await filled(ahead, SLOTS);
    ahead.close();
    await ahead.exited;
  });

  it('leaves the rest to the walk at a path too long for a slot', async () => {
    const dir = tempDir('offsite-ahead-');
    const root = path.join(dir, 'src');
    makeFiles(root, 50);
    let deep = path.join(root, 'd1');
    for (let k = 0; k < 3; k++) deep = path.join(deep, String(k).repeat(200));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'f'), 'deep');
    const cache = path.join(dir, 'stat');
    await writeCache(root, cache);
    const plain = walk(root);
    const ahead = await started(root, cache);
    await ahead.exited;
    const got = walk(root, ahead);
    assert.deepEqual(comparable(got), comparable(plain));
    const longAt = plain.findIndex((e) => e.path.length - root.length - 1 > PATH_MAX);
    assert.ok(longAt > 0);
    assert.equal(ahead.hits, longAt - 1, 'every path before the long one');
    assert.equal(ahead.own, plain.length - longAt);
  });

  it('walks on by itself when the cache is unreadable', async () => {
    const dir = tempDir('offsite-ahead-');
    const root = path.join(dir, 'src');
    makeFiles(root, 100);
    const plain = walk(root);
    const garbage = path.join(dir, 'garbage');
    fs.writeFileSync(garbage, Buffer.alloc(4096, 7));
    const problems: string[] = [];
    const ahead = StatAhead.start(root, garbage, { minCacheBytes: 0, onProblem: (m) => problems.push(m) });
    assert.ok(ahead);
    await ahead.exited; // the worker's error ends it; nothing reaches the walk's process
    assert.deepEqual(problems, [`the worker thread stopped: The stat cache ${garbage} is corrupt (not a stat cache)`]);
    assert.deepEqual(comparable(walk(root, ahead)), comparable(plain));
    assert.equal(ahead.hits, 0);
    assert.equal(ahead.own, plain.length - 1);
  });

  it('leaves the rest to the walk when the cache is damaged part way', async () => {
    const dir = tempDir('offsite-ahead-');
    const root = path.join(dir, 'src');
    fs.mkdirSync(root);
    // Long names fill the cache's 256 KiB blocks quickly (~1100 records each).
    for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(root, `${String(i).padStart(5, '0')}-${'n'.repeat(200)}`), `${i}`);
    const cache = path.join(dir, 'stat');
    await writeCache(root, cache);
    const plain = walk(root);
    const bytes = fs.readFileSync(cache);
    bytes[Math.floor(bytes.length * 0.6)] ^= 0xff; // a block after the first fails its checksum
    fs.writeFileSync(cache, bytes);
    const ahead = await started(root, cache);
    await filled(ahead, SLOTS);
    const got = walk(root, ahead);
    await ahead.exited;
    assert.deepEqual(comparable(got), comparable(plain));
    assert.ok(ahead.hits >= SLOTS && ahead.hits < 3000, `the records before the damage (${ahead.hits})`);
    assert.equal(ahead.hits + ahead.own, 3000);
  });

  it('is not started for a small cache', async () => {
    const { dir, root, cache } = await cachedTree(10);
    assert.equal(StatAhead.start(root, cache), undefined);
    assert.equal(StatAhead.start(root, path.join(dir, 'missing'), { minCacheBytes: 0 }), undefined);
  });
});
