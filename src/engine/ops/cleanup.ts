// cleanup: removes what interrupted runs left behind and no backup can use — files of sets without a
// manifest that no complete set depends on, signature files of no kept set, the set of an interrupted
// backup that cannot be resumed, temporary objects of interrupted uploads, and stale local temp
// folders. Without `force` it only lists them. It never removes a set that has its manifest, the
// volumes of a set that complete later sets continue (damage: it says so, see audit.ts), or the set
// of an interrupted backup the next backup resumes; nor, unless `keepRecent` is 0, a set without its
// manifest or a temporary upload written in the last `keepRecent` seconds (or of unknown age): a
// backup running on another machine may be writing it (audit.ts InProgressFiles).
import * as fs from 'node:fs';
import { acquireLock } from '../cache/lock';
import { auditRemote, type DamagedSet, type InProgressFiles, type InterruptedSet } from './audit';
import { clearCheckpoint } from './checkpoint';
import { openForRead, type ReadOptions } from './restore';
import { removeFiles } from './retention';

export interface CleanupResult {
  readonly remote: readonly string[];
  readonly temporary: readonly string[];
  readonly local: readonly string[];
  readonly deleted: boolean;
  /** The interrupted backup the next backup resumes: kept. */
  readonly resumable?: InterruptedSet;
  /** Sets no restore can use that are kept all the same, with the reason. */
  readonly damaged: readonly DamagedSet[];
  /** Files a backup running on another machine may be writing: kept. */
  readonly inProgress: readonly InProgressFiles[];
}

export async function cleanup(opts: ReadOptions & { force?: boolean; keepRecent?: number }): Promise<CleanupResult> {
  const lock = await acquireLock(opts.archive.file('lockfile'), 'cleanup', { signal: opts.signal });
  try {
    const local = [...opts.archive.staleTempDirs(), ...opts.archive.staleTempFiles()];
    const { repo, tempDir } = await openForRead(opts, { partial: true });
    try {
      const audit = auditRemote(repo, { now: Math.floor((opts.now ?? Date.now)() / 1000), keepRecent: opts.keepRecent });
      const interrupted = audit.interrupted;
      const remote = [...audit.leftovers, ...(interrupted?.blocker !== undefined ? interrupted.files : [])];
      // Only those the listing saw, and found old: one that appeared since is an upload just begun.
      // Without --force the listing's are the answer: the remote is not listed again to say them.
      let temporary = [...audit.temporary];
      if (opts.force && temporary.length) temporary = await opts.backend.cleanupPartial({ only: new Set(temporary), signal: opts.signal });
      if (opts.force) {
        await removeFiles(repo, remote, opts.signal);
        // The next backup would otherwise try to settle a checkpoint whose files are gone.
        if (interrupted?.blocker !== undefined) clearCheckpoint(opts.archive);
        for (const d of local) fs.rmSync(d, { recursive: true, force: true });
      }
      return {
        remote,
        temporary,
        local: local.filter((d) => !d.startsWith(tempDir)),
        deleted: !!opts.force,
        ...(interrupted && interrupted.blocker === undefined ? { resumable: interrupted } : {}),
        damaged: audit.damaged,
        inProgress: audit.inProgress,
      };
    } finally {
      fs.rmSync(tempDir, { recursive: true, force: true });
    }
  } finally {
    lock.release();
  }
}
