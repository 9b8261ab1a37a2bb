// The restore drill: proof that the backup can be restored on a machine that has nothing but the
// remote and the private key. It reads with a fresh, empty cache in a private temp folder (so every
// manifest and signature file comes from the remote and must be decrypted, as after losing the
// machine), restores a random sample of files into that folder, compares each with the source by
// SHA-256, reports, and removes everything it wrote. Files changed in the source since the backup are
// reported as such, not as damage. The outcome can be recorded in the real cache folder, so front ends
// can remind the user when no drill has run for a while.
import { createHash, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../backend/backend';
import { ArchiveDir, makeRunTempDir } from '../cache/archiveDir';
import { OffsiteError, throwIfAborted } from '../errors';
import type { Logger } from '../log';
import { compareIndex, indexToString } from '../pathIndex';
import { throttled, type ProgressSink } from '../progress';
import type { PathIndex } from '../types';
import { sourceFolderStat } from '../scan/scanner';
import { listFiles } from './inspect';
import type { CryptoContext } from './remoteFiles';
import { openForRead, setsForTime } from './restore';
import { restoreRecords, type ReadContext } from './setReader';
import { lstatSource } from './verify';

export const DEFAULT_DRILL_SAMPLE = 20;
const DRILL_RECORD = 'offsite-drill.json';

export interface DrillOptions {
  readonly backend: Backend;
  readonly crypto: CryptoContext;
  readonly log: Logger;
  /** The backed-up folder: restored files are compared with it. */
  readonly source: string;
  /** How many files to restore (default 20). */
  readonly sample?: number;
  /** As of this time (seconds since the epoch; default now). */
  readonly time?: number;
  /** Chooses the sample (default random; the result gives it, to replay a drill). */
  readonly seed?: number;
  /** Where the private temp folder is made (default the OS temp folder). */
  readonly tempRoot?: string;
  readonly signal?: AbortSignal;
  readonly now?: () => number;
  readonly onProgress?: ProgressSink;
}

export interface DrillFile {
  readonly path: string;
  /** Bytes restored. */
  readonly bytes: number;
  readonly outcome: 'match' | 'mismatch' | 'changed' | 'error';
  readonly detail?: string;
}

export interface DrillResult {
  /** End time of the backup set restored. */
  readonly time: number;
  /** Regular files in the backup as of that time. */
  readonly filesInBackup: number;
  readonly files: readonly DrillFile[];
  readonly matched: number;
  /** Restored data that differs from an unchanged source file, or that could not be restored: damage. */
  readonly failed: number;
  /** Changed or gone in the source since the backup: not compared. */
  readonly changed: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly seed: number;
  /** No damage found, and at least one file compared (or none to compare). */
  readonly ok: boolean;
}

/** What is kept of the last drill in the cache folder. */
export interface DrillRecord {
  /** When it finished (seconds since the epoch). */
  readonly at: number;
  readonly ok: boolean;
  readonly setTime: number;
  readonly matched: number;
  readonly failed: number;
  readonly changed: number;
}

/** Picks `n` items of a stream uniformly (reservoir sampling): memory stays at `n` whatever its length. */
function reservoir<T>(n: number, seed: number): { offer(x: T): void; readonly seen: number; take(): T[] } {
  let s = seed >>> 0 || 1;
  const next = () => {
    // xorshift32: the same seed gives the same sample.
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const kept: T[] = [];
  let seen = 0;
  return {
    offer(x: T) {
      seen++;
      if (kept.length < n) kept.push(x);
      else {
        const j = Math.floor(next() * seen);
        if (j < n) kept[j] = x;
      }
    },
    get seen() {
      return seen;
    },
    take: () => kept,
  };
}

async function sha256OfFile(file: Buffer | string): Promise<{ hash: string; size: number }> {
  // O_NONBLOCK: a source path that became a fifo must not make the drill wait for a writer.
  const fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ECHANGED' });
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { hash: h.digest('hex'), size };
  } finally {
    await fh.close();
  }
}

/** Errors that mean "this file of the backup cannot be restored" (damage), not "the drill cannot run". */
function isDamage(e: unknown): e is OffsiteError {
  return OffsiteError.is(e) && (e.code === 'integrity' || e.code === 'format' || e.code === 'signature' || e.code === 'unsafePath');
}

export async function drill(opts: DrillOptions): Promise<DrillResult> {
  const started = Date.now();
  const want = Math.max(1, Math.floor(opts.sample ?? DEFAULT_DRILL_SAMPLE));
  const seed = opts.seed ?? randomInt(1, 2 ** 31 - 1);
  const progress = throttled(opts.onProgress);
  const source = Buffer.from(path.resolve(opts.source));
  // Without the folder every file would be "changed since the backup", nothing compared, and the
  // drill a success (verify's scan fails the same way).
  sourceFolderStat(source.toString(), 'Give the folder that was backed up: the drill compares the files it restores with it');
  const temp = makeRunTempDir(opts.tempRoot ?? os.tmpdir(), 'offsite-drill');
  try {
    // A fresh cache: nothing of this machine's cache is used.
    const archive = ArchiveDir.open(path.join(temp, 'cache'));
    const time = opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000);
    const read = { backend: opts.backend, archive, crypto: opts.crypto, log: opts.log, time, signal: opts.signal, now: opts.now };

    const pick = reservoir<PathIndex>(want, seed);
    for await (const f of listFiles(read)) if (f.meta.type === 'reg') pick.offer(f.index);
    const sample = pick.take().sort(compareIndex); // in backup order: volumes are read front to back

    const { repo, tempDir } = await openForRead(read);
    const files: DrillFile[] = [];
    let setTime = time;
    let bytes = 0;
    try {
      const sets = await setsForTime(repo, time, opts);
      setTime = sets.at(-1)!.set.endTime;
      const ctx: ReadContext = { repo, log: opts.log, signal: opts.signal, refusals: [] };
      const out = path.join(temp, 'restore');
      fs.mkdirSync(out, { mode: 0o700 });
      let n = 0;
      for (const index of sample) {
        throwIfAborted(opts.signal);
        const rel = indexToString(index);
        const file = path.join(out, `file-${++n}`);
        let restored: { hash: string; size: number; mtime: number } | undefined;
        try {
          for await (const item of restoreRecords(ctx, sets, index)) {
            if (item.index.length !== index.length || item.meta.type !== 'reg') continue;
            const h = createHash('sha256');
            let size = 0;
            const fh = await fs.promises.open(file, 'w', 0o600);
            try {
              await item.produce?.(async (chunk) => {
                h.update(chunk);
                size += chunk.length;
                for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off)).bytesWritten;
              });
            } finally {
              await fh.close();
            }
            restored = { hash: h.digest('hex'), size, mtime: item.meta.mtime };
          }
        } catch (e) {
          if (!isDamage(e)) throw e;
          files.push({ path: rel, bytes: 0, outcome: 'error', detail: e.message });
          opts.log.warn(`Drill: ${rel} could not be restored: ${e.message}`);
          continue;
        } finally {
          fs.rmSync(file, { force: true });
        }
        if (!restored) {
          files.push({ path: rel, bytes: 0, outcome: 'error', detail: 'listed in the signatures, but not found in the volumes' });
          continue;
        }
        bytes += restored.size;
        progress({ operation: 'verify', phase: 'drill', files: n, bytes, path: rel });
        const srcPath = Buffer.concat([source, ...index.flatMap((c) => [Buffer.from('/'), c])]);
        const found = lstatSource(srcPath);
        if (found && 'failed' in found) {
          files.push({ path: rel, bytes: restored.size, outcome: 'changed', detail: `cannot read the source file: ${found.failed.code ?? found.failed.message}` });
          continue;
        }
        const st = found;
        // A time before 1970 is stored as 0 (duplicity's format): compared as stored.
        if (!st?.isFile() || st.size !== restored.size || Math.max(0, Math.floor(st.mtimeMs / 1000)) !== restored.mtime) {
          files.push({ path: rel, bytes: restored.size, outcome: 'changed', detail: !st ? 'no longer in the source' : !st.isFile() ? 'no longer a file in the source' : 'changed in the source since the backup' });
          continue;
        }
        let local: { hash: string; size: number };
        try {
          local = await sha256OfFile(srcPath);
        } catch (e) {
          files.push({ path: rel, bytes: restored.size, outcome: 'changed', detail: `cannot read the source file: ${(e as Error).message}` });
          continue;
        }
        if (local.hash === restored.hash) files.push({ path: rel, bytes: restored.size, outcome: 'match' });
        else {
          files.push({ path: rel, bytes: restored.size, outcome: 'mismatch', detail: `restored data (sha256 ${restored.hash.slice(0, 16)}…) differs from the unchanged source file (${local.hash.slice(0, 16)}…)` });
          opts.log.warn(`Drill: ${rel}: the restored data differs from the source`);
        }
      }
    } finally {
      fs.rmSync(tempDir, { recursive: true, force: true });
    }
    const count = (o: DrillFile['outcome'] | 'failed') => files.filter((f) => (o === 'failed' ? f.outcome === 'mismatch' || f.outcome === 'error' : f.outcome === o)).length;
    const failed = count('failed');
    return {
      time: setTime,
      filesInBackup: pick.seen,
      files,
      matched: count('match'),
      failed,
      changed: count('changed'),
      bytes,
      seconds: (Date.now() - started) / 1000,
      seed,
      ok: failed === 0,
    };
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

/** Keeps the outcome of a drill in the remote's cache folder (for "last drill" reminders). */
export function recordDrill(archive: ArchiveDir, r: DrillResult, at = Math.floor(Date.now() / 1000)): DrillRecord {
  const rec: DrillRecord = { at, ok: r.ok, setTime: r.time, matched: r.matched, failed: r.failed, changed: r.changed };
  archive.writeAtomic(DRILL_RECORD, JSON.stringify(rec));
  return rec;
}

/** The last recorded drill of this remote, if any. */
export function lastDrill(archive: ArchiveDir): DrillRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(archive.file(DRILL_RECORD), 'utf8')) as DrillRecord;
    return typeof r.at === 'number' ? r : undefined;
  } catch {
    return undefined;
  }
}
