// What a process leaves behind while it runs, named by its pid (a run's temporary folder, a file being
// written, the cache's lock), is removed by another process only once that process is gone: readers
// take no lock, so a live one's temporaries stay. One rule for "gone" (ownerAlive) and one walk of a
// folder for the temporaries of processes that are gone (deadTemporaries).
import * as fs from 'node:fs';
import * as path from 'node:path';

let thisBoot: { readonly id: string | undefined } | undefined;

/** This boot's id (Linux: the kernel's, the same for every process until the machine starts again), undefined elsewhere. */
export function bootId(): string | undefined {
  if (!thisBoot) {
    try {
      thisBoot = { id: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined };
    } catch {
      thisBoot = { id: undefined };
    }
  }
  return thisBoot.id;
}

/**
 * Whether the process that made a temporary (or took a lock) is still running: its pid is, and the
 * boot id recorded with it, when one was, is this boot's (another one: the machine started again
 * since, and the pid may be another process's now). A name without a pid: an old run's, gone.
 */
export function ownerAlive(pid: string | number | undefined, boot?: string): boolean {
  if (pid === undefined) return false;
  const now = boot === undefined ? undefined : bootId();
  if (now !== undefined && now !== boot) return false;
  const n = Number(pid);
  if (n === process.pid) return true;
  try {
    process.kill(n, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Full paths of the entries of `dir` (none when it cannot be read) that `pattern` takes for a
 * temporary, the first of its groups that matched holding the pid (none matched: a name without a pid,
 * an old run's), whose process is gone (ownerAlive), and that `is` accepts, given the entry's lstat
 * (any entry without it).
 */
export function deadTemporaries(dir: string, pattern: RegExp, is?: (st: fs.Stats) => boolean): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const m = pattern.exec(n);
    if (!m || ownerAlive(m.slice(1).find((g) => g !== undefined))) continue;
    const p = path.join(dir, n);
    if (is) {
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st || !is(st)) continue;
    }
    out.push(p);
  }
  return out;
}
