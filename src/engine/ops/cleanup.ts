// cleanup: removes what interrupted runs left behind and no resumable backup can use — files of
// incomplete sets (no manifest) and orphaned incrementals, signature files of no complete set,
// temporary objects of interrupted uploads, and stale local temp folders. Without `force` it only
// lists them. The set a checkpoint says can be resumed is kept.
import * as fs from 'node:fs';
import { acquireLock } from '../cache/lock';
import { parseName } from '../manifest/naming';
import { readCheckpoint } from './checkpoint';
import { openForRead, type ReadOptions } from './restore';
import { removeFiles } from './retention';

export interface CleanupResult {
  readonly remote: readonly string[];
  readonly temporary: readonly string[];
  readonly local: readonly string[];
  readonly deleted: boolean;
}

export async function cleanup(opts: ReadOptions & { force?: boolean }): Promise<CleanupResult> {
  const lock = await acquireLock(opts.archive.file('lockfile'), 'cleanup', { signal: opts.signal });
  try {
    const local = [...opts.archive.staleTempDirs(), ...opts.archive.staleTempFiles()];
    const { repo, tempDir } = await openForRead(opts);
    try {
      const c = repo.collection;
      const resumable = readCheckpoint(opts.archive)?.time;
      const complete = new Set<string>();
      for (const chain of c.chains) for (const s of [chain.fullSet, ...chain.incSets]) complete.add(`${s.type}:${s.startTime ?? ''}:${s.endTime}`);
      const remote: string[] = [];
      for (const name of repo.remoteFiles.keys()) {
        const p = parseName(name);
        if (!p || p.partial) continue;
        if (complete.has(`${p.setType}:${p.startTime ?? ''}:${p.endTime}`)) continue;
        if (resumable !== undefined && p.endTime === resumable) continue;
        remote.push(name);
      }
      // Manifests first, so an interrupted cleanup never leaves a set that looks complete.
      remote.sort((a, b) => Number(parseName(b)!.kind === 'manifest') - Number(parseName(a)!.kind === 'manifest'));
      const temporary = await opts.backend.cleanupPartial({ dryRun: !opts.force, signal: opts.signal });
      if (opts.force) {
        await removeFiles(repo, remote, opts.signal);
        for (const d of local) fs.rmSync(d, { recursive: true, force: true });
      }
      return { remote, temporary, local: local.filter((d) => !d.startsWith(tempDir)), deleted: !!opts.force };
    } finally {
      fs.rmSync(tempDir, { recursive: true, force: true });
    }
  } finally {
    lock.release();
  }
}
