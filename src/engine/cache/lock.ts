// One writer at a time per target: two VS Code windows, the extension and cron must not write the
// same chain at once. The lock is a file in the archive dir holding the owner's pid and host, created
// with O_EXCL. The lock of a process that died (same host, pid gone, or the machine started again since
// the lock was written: its pid may be another process's now) is taken over; a live owner is waited
// for briefly, then we fail with a clear message.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { OffsiteError } from '../errors';
import { bootId, ownerAlive } from '../util/temporaries';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
  readonly command: string;
  /** The kernel's boot id when the lock was written (Linux): another one means the machine started again since. */
  readonly boot?: string;
}

export interface Lock {
  release(): void;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

export async function acquireLock(file: string, command: string, opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<Lock> {
  const deadline = Date.now() + (opts.waitMs ?? 5000);
  const boot = bootId();
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command, ...(boot === undefined ? {} : { boot }) };
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, JSON.stringify(me));
      fs.closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          const owner = readOwner(file);
          if (owner?.pid === me.pid && owner.host === me.host) fs.rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(file);
    // An unreadable lock file is one being written right now, or garbage left by a crash mid-write:
    // treat garbage older than a few seconds as stale.
    const stale = owner
      ? owner.host === os.hostname() && !ownerAlive(owner.pid, owner.boot)
      : Date.now() - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) > 3000;
    if (stale) {
      // Take over by renaming the stale file away first, so two takers cannot both succeed.
      const aside = `${file}.stale-${process.pid}`;
      try {
        fs.renameSync(file, aside);
        fs.rmSync(aside, { force: true });
      } catch {
        /* somebody else took it over first; loop */
      }
      continue;
    }
    if (Date.now() >= deadline) {
      const who = owner ? `process ${owner.pid} on ${owner.host} (${owner.command}, since ${owner.since})` : 'another process';
      throw new OffsiteError('locked', `Another Offsite run is writing to this backup: ${who}`, {
        hint: 'Wait for it to finish and try again; if no such process exists, delete the lock file ' + file,
      });
    }
    if (opts.signal?.aborted) throw new OffsiteError('cancelled', 'Cancelled');
    await sleep(200);
  }
}
