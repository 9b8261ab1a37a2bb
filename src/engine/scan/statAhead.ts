// Stat ahead: the lstat of every path of the previous backup, made by a worker thread while the main
// thread walks. A no-change incremental is the walk and little else, and one lstat (~2 µs of kernel
// time, ~1.5 µs of Node making its BigIntStats) is close to half of the main thread's time per path;
// the other core was idle. The previous stat cache lists the paths in the walk's order, so the worker
// (statAheadWorker.ts) stats them in that order into a ring in shared memory, and the walk takes each
// result it meets there instead of making the call itself.
//
// The main thread never waits for the worker: a path the ring does not have (yet), a path that is not
// in the previous cache (new, or left out by the rules), and a path whose lstat failed in the worker
// are stat'ed by the walk itself, as without this. When the walk gets ahead of the worker, the worker
// skips as many records as the walk stat'ed meanwhile, and both go on from about the same place.
// Results for paths the walk has passed (deleted since, or the worker lagging behind) are dropped. A
// result is the path's state a few ms before the walk reaches it: the same race as between any walk's
// lstat and its read, and taken after the scan's start time, so the stat cache's racy rule
// (statCache.ts) still covers it.
//
// Ring layout (one SharedArrayBuffer): CTRL Int32 [produced, consumed, state (STOP), workerWaiting,
// walkAhead]; per slot NF BigInt64 fields (FIELDS order), Int32 [relative path length, stat ok], and
// PATH_MAX bytes of the path relative to the root (components joined by '/').
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { compareJoinedPaths } from '../pathIndex';
import type { Lstat } from './scanner';
import { startEngineWorker } from '../util/engineWorker';

const FIELDS = ['mode', 'uid', 'gid', 'size', 'mtimeNs', 'ctimeNs', 'mtimeMs', 'ino', 'dev', 'nlink', 'rdev'] as const;
const NF = FIELDS.length;
/** Slots in the ring (a power of two). */
export const SLOTS = 1024;
/** Longest relative path a slot holds; the worker stops at a longer one (the walk stats the rest). */
export const PATH_MAX = 512;

export const PRODUCED = 0;
export const CONSUMED = 1;
export const STATE = 2;
export const WORKER_WAITING = 3;
/** Paths the walk stat'ed itself because the ring was empty: the worker skips as many records. */
export const WALK_AHEAD = 4;
/** STATE: the main thread asks the worker to stop. */
export const STOP = 1;

const CTRL_BYTES = 24;
const FIELDS_AT = CTRL_BYTES;
const META_AT = FIELDS_AT + SLOTS * NF * 8;
const PATHS_AT = META_AT + SLOTS * 8;
const RING_BYTES = PATHS_AT + SLOTS * PATH_MAX;

/** Typed views of the ring, the same on both sides. */
export class Ring {
  readonly ctrl: Int32Array;
  readonly fields: BigInt64Array;
  /** Per slot: [relative path length, 1 if the stat is there]. */
  readonly meta: Int32Array;
  readonly paths: Uint8Array;

  constructor(readonly sab: SharedArrayBuffer) {
    this.ctrl = new Int32Array(sab, 0, 5);
    this.fields = new BigInt64Array(sab, FIELDS_AT, SLOTS * NF);
    this.meta = new Int32Array(sab, META_AT, SLOTS * 2);
    this.paths = new Uint8Array(sab, PATHS_AT, SLOTS * PATH_MAX);
  }

  static create(): Ring {
    return new Ring(new SharedArrayBuffer(RING_BYTES));
  }

  /** Worker side: the stat of slot `s`. */
  putStat(s: number, st: Lstat): void {
    const f = this.fields;
    const at = s * NF;
    f[at] = st.mode;
    f[at + 1] = st.uid;
    f[at + 2] = st.gid;
    f[at + 3] = st.size;
    f[at + 4] = st.mtimeNs;
    f[at + 5] = st.ctimeNs;
    f[at + 6] = st.mtimeMs;
    f[at + 7] = st.ino;
    f[at + 8] = st.dev;
    f[at + 9] = st.nlink;
    f[at + 10] = st.rdev;
  }

  getStat(s: number): Lstat {
    const f = this.fields;
    const at = s * NF;
    return {
      mode: f[at],
      uid: f[at + 1],
      gid: f[at + 2],
      size: f[at + 3],
      mtimeNs: f[at + 4],
      ctimeNs: f[at + 5],
      mtimeMs: f[at + 6],
      ino: f[at + 7],
      dev: f[at + 8],
      nlink: f[at + 9],
      rdev: f[at + 10],
    };
  }
}

const BIG = { bigint: true, throwIfNoEntry: true } as const;

/**
 * Below ~70k paths (a stat cache takes ~15 bytes per path) the worker hardly pays on a 2-core machine:
 * a no-change incremental of 20k files (47k paths, 0.7 MB) took 0.61–0.65 s with it and 0.64–0.71 s
 * without, for ~20% more CPU and 14 MiB; of 100k files (220k paths), 1.52–1.54 s against
 * 1.87–1.99 s (alternating runs, bench/README.md).
 */
export const MIN_CACHE_BYTES = 1024 * 1024;

/** The main thread's side. */
export class StatAhead {
  /** Paths whose lstat came from the worker / was made by the walk itself. */
  hits = 0;
  own = 0;
  private next = 0;
  private produced = 0;
  private readonly skip: number;
  private closed = false;
  /** Resolves when the worker thread has exited. */
  readonly exited: Promise<void>;

  private constructor(
    private readonly ring: Ring,
    worker: Worker,
    root: Buffer,
    onProblem: (message: string) => void,
  ) {
    this.skip = root.length + 1;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    // A failed worker (an unreadable cache) only means the walk stats the rest itself.
    worker.on('error', (e) => onProblem(`the worker thread stopped: ${e.message}`));
    worker.unref();
  }

  /**
   * Starts the worker on `statCacheFile` (the previous backup's stat cache) for the tree at `root`,
   * or returns undefined where it would not pay: a small cache, a single core.
   */
  static start(
    root: string,
    statCacheFile: string,
    options: { readonly minCacheBytes?: number; readonly onProblem?: (message: string) => void } = {},
  ): StatAhead | undefined {
    if (os.availableParallelism() < 2) return undefined;
    try {
      if (fs.statSync(statCacheFile).size < (options.minCacheBytes ?? MIN_CACHE_BYTES)) return undefined;
    } catch {
      return undefined;
    }
    const ring = Ring.create();
    const rootAbs = path.resolve(root);
    const worker = startEngineWorker(path.join(__dirname, 'statAhead.js'), path.join(__dirname, 'statAheadWorker.ts'), {
      workerData: { sab: ring.sab, root: rootAbs, file: statCacheFile },
      // It decodes records and makes system calls; its garbage is a Buffer per record.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    });
    return new StatAhead(ring, worker, Buffer.from(rootAbs), options.onProblem ?? (() => {}));
  }

  /** The lstat of `p` (an absolute path under the root, as the walk makes it). Throws as fs.lstatSync. */
  readonly lstat = (p: Buffer): Lstat => {
    const ring = this.ring;
    const ctrl = ring.ctrl;
    for (;;) {
      if (this.next >= this.produced) {
        this.produced = Atomics.load(ctrl, PRODUCED);
        if (this.next >= this.produced) {
          // The worker is behind: this path is most likely its next record, which it need not stat now.
          Atomics.add(ctrl, WALK_AHEAD, 1);
          break;
        }
      }
      const s = this.next & (SLOTS - 1);
      const at = s * PATH_MAX;
      const c = compareJoinedPaths(ring.paths, at, at + ring.meta[s * 2], p, this.skip, p.length);
      if (c > 0) break; // not in the previous cache
      // Read before the slot is given back: the worker may refill it at once.
      const st = c === 0 && ring.meta[s * 2 + 1] === 1 ? ring.getStat(s) : undefined;
      this.next++;
      Atomics.store(ctrl, CONSUMED, this.next);
      if (Atomics.load(ctrl, WORKER_WAITING) !== 0) Atomics.notify(ctrl, CONSUMED);
      if (st !== undefined) {
        this.hits++;
        return st;
      }
      if (c === 0) break; // the worker's lstat failed: the walk's own reports why
      // c < 0: a path the walk has passed (gone since, or left out); dropped.
    }
    this.own++;
    return fs.lstatSync(p, BIG);
  };

  /** Results in the ring the walk has not reached yet. */
  buffered(): number {
    return Atomics.load(this.ring.ctrl, PRODUCED) - this.next;
  }

  /** Stops the worker (it ends at its next record) and lets the process exit without it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ring.ctrl, STATE, STOP);
    Atomics.notify(this.ring.ctrl, CONSUMED);
  }
}
