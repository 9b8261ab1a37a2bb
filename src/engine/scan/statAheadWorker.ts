// The worker thread of statAhead.ts (bundled as dist/statAhead.js): reads the previous stat cache in
// order and puts the lstat of each of its paths into the ring, at most SLOTS ahead of the walk. It stops
// at the end of the cache, when asked to, at a path longer than a slot holds, or at an unreadable cache;
// the walk stats whatever the ring does not have.
import * as fs from 'node:fs';
import { workerData } from 'node:worker_threads';
import { rootedPath, StatCacheCursor } from './statCache';
import { CONSUMED, PATH_MAX, PRODUCED, Ring, SLOTS, STATE, STOP, WALK_AHEAD, WORKER_WAITING } from './statAhead';

const { sab, root, file } = workerData as { sab: SharedArrayBuffer; root: string; file: string };
const ring = new Ring(sab);
const ctrl = ring.ctrl;
const BIG = { bigint: true, throwIfNoEntry: false } as const;

function run(): void {
  const { full, rel, relAt } = rootedPath(root, PATH_MAX);
  // Synchronous to the end: a threadpool read-ahead would never be picked up.
  const cursor = StatCacheCursor.open(file, { readAhead: false });
  try {
    let produced = 0;
    let skipped = 0;
    for (let len = cursor.shiftPath(rel); len !== undefined; len = cursor.shiftPath(rel)) {
      if (len < 0) return; // no room in a slot: the walk stats the rest itself
      if (len === 0) continue; // the root: the walk stats it (it follows a symlink there)
      if (skipped < Atomics.load(ctrl, WALK_AHEAD)) {
        skipped++; // the walk has most likely stat'ed this one itself
        continue;
      }
      for (;;) {
        if (Atomics.load(ctrl, STATE) === STOP) return;
        const consumed = Atomics.load(ctrl, CONSUMED);
        if (produced - consumed < SLOTS) break;
        Atomics.store(ctrl, WORKER_WAITING, 1);
        Atomics.wait(ctrl, CONSUMED, consumed, 200);
        Atomics.store(ctrl, WORKER_WAITING, 0);
      }
      const s = produced & (SLOTS - 1);
      let st: fs.BigIntStats | undefined;
      try {
        st = fs.lstatSync(full.subarray(0, relAt + len), BIG);
      } catch {
        st = undefined; // EACCES, ENOTDIR, a NUL in a damaged cache, …: the walk's own lstat reports it
      }
      if (st !== undefined) ring.putStat(s, st);
      rel.copy(ring.paths, s * PATH_MAX, 0, len);
      ring.meta[s * 2] = len;
      ring.meta[s * 2 + 1] = st === undefined ? 0 : 1;
      Atomics.store(ctrl, PRODUCED, ++produced);
    }
  } finally {
    cursor.close();
  }
}

run();
