// The no-change probe: before an incremental walks the tree, check the previous stat cache against the
// file system, record by record, on both cores. When every record still matches, the tree is as the
// previous backup left it and the backup writes an empty incremental without walking (ops/backup.ts);
// at the first difference the probe stops and the backup walks as usual.
//
// Why this can stand for the walk: only a stat cache written with FLAG_WHOLE_TREE or FLAG_GITIGNORE_TREE
// is probed (statCache.ts: no selection rules, nothing left out for an error, so its records are every
// path below the root, or every path the .gitignore files keep, and the backup checks those rule files
// first: gitignore.ts RuleInputs, ops/backup.ts). A name added to, removed from or renamed in a folder changes the folder's mtime and ctime,
// which its record holds (folder listings rely on the same, listingCache.ts); a file's change shows in
// its own record as statUnchanged() compares it (type, permission bits, owner, size, mtime, ctime,
// inode). Racy records (statCache.ts) count as changed. The walk made an lstat per path too: the probe
// makes the same calls without the walk's work around them (readdir, entries, selection, new records),
// and splits them between this thread and a worker thread.
//
// Sharing: the stat cache's blocks stand alone (a block's first record shares no path components with
// the one before), so the two threads split the work by blocks (~1,200 records each), claimed in order
// by compare-and-swap on NEXT: each thread reads every block header but only the blocks it claims. A
// thread that finds a difference sets STOP and both end; the records checked must add up to the count
// the file ends with. A worker that has not started when this thread is done is never waited for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { decodeError, discardPrestarted, encodeError, startEngineWorker, takePrestarted, type WireError } from '../util/engineWorker';
import { PROBE_BUNDLED, PROBE_SOURCE, PROBE_WORKER_OPTIONS, probeWantsWorker } from './probeWorker';
import { OffsiteError } from '../errors';
import { typeOf } from './fileType';
import { emptyFlatStat, rootedPath, StatCacheBlocks, type FlatStat } from './statCache';

/** The worker's entry next to this bundle (probeWorker.ts; bin/offsite may have started it already). */
const BUNDLED = path.join(__dirname, PROBE_BUNDLED);

/** Longest path (relative to the root) the probe checks; a longer one ends it (the walk handles it). */
const PATH_MAX = 4096;

// Control words (Int32 in a SharedArrayBuffer).
/** The next block nobody has claimed. */
const NEXT = 0;
/** Non-zero: a difference was found (or a thread failed): stop. */
const STOP = 1;
/** IDLE until the worker starts (RUNNING) or this thread no longer wants it (CLOSED). */
const STATE = 2;
const IDLE = 0;
const RUNNING = 1;
const CLOSED = 2;
const CTRL_WORDS = 3;

export type ProbeResult =
  | { readonly unchanged: true; readonly records: number; readonly bytes: number; readonly workerRecords: number }
  | { readonly unchanged: false; readonly why: string };

/** What one thread found in the blocks it claimed. */
export interface PartResult {
  /** Records checked, and the sum of their sizes. */
  records: number;
  bytes: number;
  /** The first difference this thread met (relative path and what differs), if any. */
  changed?: string;
  /** The record count of the cache's end marker, when this thread read up to it. */
  total?: number;
}

/** The worker thread's job: the control words, the tree, the stat cache. */
export interface ProbeJob {
  readonly sab: SharedArrayBuffer;
  readonly root: string;
  readonly file: string;
}

/** The worker thread's report. */
export type WorkerReport = { readonly part: PartResult } | { readonly error: WireError };

/**
 * A probe of the stat cache `statFile` (written with FLAG_WHOLE_TREE for the tree at `root`) against the
 * file system. start() sets the worker thread going at once (a worker takes 40–100 ms to start, more
 * on a busy machine): the caller starts it as early as it can and calls run() when the backup is
 * settled on an incremental from that cache, or cancel() when it is not.
 */
export class NoChangeProbe {
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
  private worker?: Worker;
  private report?: Promise<WorkerReport>;
  private ended = false;

  private constructor(
    readonly root: string,
    readonly statFile: string,
  ) {}

  /** `worker` false: run() checks every record on the calling thread. */
  static start(root: string, statFile: string, options: { readonly worker?: boolean } = {}): NoChangeProbe {
    const p = new NoChangeProbe(path.resolve(root), statFile);
    if (options.worker !== false && probeWantsWorker()) {
      const job: ProbeJob = { sab: p.ctrl.buffer as SharedArrayBuffer, root: p.root, file: statFile };
      // Started by bin/offsite while the bundle loaded (probeWorker.ts), or now.
      const w = takePrestarted(BUNDLED, job) ?? startEngineWorker(BUNDLED, path.join(__dirname, PROBE_SOURCE), { ...PROBE_WORKER_OPTIONS, workerData: job });
      w.unref();
      p.worker = w;
      p.report = new Promise<WorkerReport>((resolve) => {
        w.once('message', (m: WorkerReport) => resolve(m));
        w.once('error', (e) => resolve({ error: encodeError(e) }));
        w.once('exit', (code) => resolve({ error: { name: 'Error', message: `the worker thread exited (${code}) without a report` } }));
      });
    }
    return p;
  }

  /** Ends the worker bin/offsite started for a backup, unless start() took it. */
  static discardPrestarted(): void {
    discardPrestarted(BUNDLED);
  }

  /**
   * Checks the records with the worker; unchanged: false with the first difference met, or why the
   * probe could not tell (an unreadable cache, a failed worker: the caller walks).
   */
  async run(): Promise<ProbeResult> {
    if (this.ended) throw new OffsiteError('internal', 'NoChangeProbe.run() after it ended');
    this.ended = true;
    const ctrl = this.ctrl;
    let mine: PartResult;
    try {
      mine = probePart(this.root, this.statFile, ctrl);
    } catch (e) {
      Atomics.store(ctrl, STOP, 1);
      mine = { records: 0, bytes: 0, changed: `the stat cache cannot be read (${(e as Error).message})` };
    }
    let theirs: PartResult = { records: 0, bytes: 0 };
    if (this.worker) {
      if (Atomics.compareExchange(ctrl, STATE, IDLE, CLOSED) === IDLE) {
        // It never began: this thread checked every block.
        void this.worker.terminate();
      } else {
        this.worker.ref(); // the report is all the process waits for now
        const r = await this.report!;
        if ('error' in r) return { unchanged: false, why: `the probe's worker thread failed: ${decodeError(r.error).message}` };
        theirs = r.part;
      }
    }
    const changed = mine.changed ?? theirs.changed;
    if (changed !== undefined) return { unchanged: false, why: changed };
    // Every record, each once: the blocks checked add up to the count the cache ends with.
    const total = mine.total ?? theirs.total;
    if (total === undefined || mine.records + theirs.records !== total || total === 0) {
      return { unchanged: false, why: `the records checked do not add up to the stat cache's (${mine.records} + ${theirs.records} of ${total})` };
    }
    return { unchanged: true, records: mine.records + theirs.records, bytes: mine.bytes + theirs.bytes, workerRecords: theirs.records };
  }

  /** Stops the worker thread without waiting for it (the probe is not needed). Idempotent. */
  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    Atomics.store(this.ctrl, STOP, 1);
    if (this.worker && Atomics.compareExchange(this.ctrl, STATE, IDLE, CLOSED) === IDLE) void this.worker.terminate();
  }
}

/** The worker's side: claims blocks unless the main thread has given up on it. */
export function workerPart(root: string, statFile: string, sab: SharedArrayBuffer): WorkerReport | undefined {
  const ctrl = new Int32Array(sab);
  if (Atomics.compareExchange(ctrl, STATE, IDLE, RUNNING) !== IDLE) return undefined;
  try {
    return { part: probePart(root, statFile, ctrl) };
  } catch (e) {
    Atomics.store(ctrl, STOP, 1);
    return { error: encodeError(e) };
  }
}

const BIG = { bigint: true, throwIfNoEntry: false } as const;

/** One thread's pass over the stat cache: checks the blocks it claims. Throws on an unreadable cache. */
export function probePart(rootAbs: string, statFile: string, ctrl: Int32Array): PartResult {
  const { full, rel, relAt } = rootedPath(rootAbs, PATH_MAX);
  const rec = emptyFlatStat();
  const out: PartResult = { records: 0, bytes: 0 };
  const blocks = StatCacheBlocks.open(statFile);
  try {
    for (let b = 0; ; b++) {
      const ref = blocks.nextBlock();
      if ('end' in ref) {
        out.total = ref.end;
        break;
      }
      if (Atomics.load(ctrl, STOP) !== 0) break;
      // Blocks are claimed in order: one the other thread took is passed over (its header only read).
      if (Atomics.compareExchange(ctrl, NEXT, b, b + 1) !== b) continue;
      const records = blocks.records(ref);
      for (let len = records.shiftPath(rel, rec); len !== undefined; len = records.shiftPath(rel, rec)) {
        const why =
          len < 0 ? 'a path longer than the probe checks'
          : difference(len === 0 ? full.subarray(0, relAt - 1) : full.subarray(0, relAt + len), rec, len === 0);
        if (why !== undefined) {
          out.changed = `${len === 0 ? '.' : len < 0 ? '…' : rel.toString('utf8', 0, len)}: ${why}`;
          Atomics.store(ctrl, STOP, 1);
          return out;
        }
        out.records++;
        out.bytes += rec.size;
      }
    }
  } finally {
    blocks.close();
  }
  return out;
}

/** What differs between the path's lstat now and its record (as statUnchanged compares them), if anything. */
function difference(p: Buffer, rec: FlatStat, isRoot: boolean): string | undefined {
  if (rec.racy) return 'recorded too soon after a change to be trusted';
  let st: fs.BigIntStats | undefined;
  try {
    // The root is followed if it is a symlink, as the scan does.
    st = isRoot ? fs.statSync(p, BIG) : fs.lstatSync(p, BIG);
  } catch (e) {
    return `cannot stat (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  if (st === undefined) return 'gone';
  const mode = Number(st.mode);
  const type = typeOf(mode);
  if (type !== rec.type) return 'another type';
  if ((mode & 0o7777) !== rec.mode || Number(st.uid) !== rec.uid || Number(st.gid) !== rec.gid) return 'permissions or owner';
  if ((type === 'reg' ? Number(st.size) : 0) !== rec.size || st.mtimeNs !== rec.mtimeNs || st.ctimeNs !== rec.ctimeNs || st.ino !== rec.ino) return 'modified';
  return undefined;
}
