// Retention and cleanup, with duplicity's rules: whole chains only (an old full set is kept while a
// newer incremental depends on it), never the newest chain; without `force` nothing is deleted and
// the caller lists what would be. The manifests go first, newest set first, and only then the volumes
// and signature files (in batches where the remote has them), so an interrupted removal leaves a
// shorter valid chain plus files `cleanup` recognises, never a complete-looking set with missing volumes.
import * as fs from 'node:fs';
import type { BackupChain, BackupSet, Collection } from '../chain/collection';
import { signatureChainFor } from '../chain/collection';
import { acquireLock } from '../cache/lock';
import { OffsiteError } from '../errors';
import { parseName } from '../manifest/naming';
import { openForRead, type ReadOptions } from './restore';
import { cacheNameOf, type Repository } from './repository';

export interface RemovalPlan {
  /** End times of the chains removed. */
  readonly chains: readonly number[];
  /** Remote files, in deletion order. */
  readonly files: readonly string[];
  readonly deleted: boolean;
}

function setFiles(set: BackupSet): string[] {
  return [...(set.manifestName ? [set.manifestName] : []), ...[...set.volumes.entries()].sort((a, b) => b[0] - a[0]).map(([, n]) => n)];
}

function chainFiles(c: Collection, chain: BackupChain): string[] {
  const files: string[] = [];
  for (const s of [...chain.incSets].reverse()) files.push(...setFiles(s));
  files.push(...setFiles(chain.fullSet));
  const sig = signatureChainFor(c, chain);
  if (sig) files.push(...[...sig.incs].reverse().map((i) => i.name), ...(sig.full ? [sig.full] : []));
  return files;
}

async function removePlan(opts: ReadOptions & { force?: boolean }, pick: (c: Collection) => BackupChain[]): Promise<RemovalPlan> {
  const lock = await acquireLock(opts.archive.file('lockfile'), 'remove', { signal: opts.signal });
  const { repo, tempDir } = await openForRead(opts).catch((e) => {
    lock.release();
    throw e;
  });
  try {
    const chains = pick(repo.collection);
    const files = chains.flatMap((ch) => chainFiles(repo.collection, ch));
    if (opts.force) await removeFiles(repo, files, opts.signal);
    return { chains: chains.map((ch) => ch.endTime), files, deleted: !!opts.force };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
    lock.release();
  }
}

/**
 * Deletes `files` (see chainFiles): every manifest first, one at a time and in order, then the rest,
 * in batches where the remote has them (a batch has no order; once no manifest is left an interruption
 * can only leave files that `cleanup` removes).
 */
export async function removeFiles(repo: Repository, files: readonly string[], signal?: AbortSignal): Promise<void> {
  const { backend } = repo;
  const deleted = (name: string): void => {
    const p = parseName(name);
    if (p && (p.kind === 'manifest' || p.kind === 'signature')) repo.archive.remove(cacheNameOf(name));
    repo.log.info(`Deleted ${name}`);
  };
  const isManifest = (n: string) => parseName(n)?.kind === 'manifest';
  const rest = files.filter((n) => !isManifest(n));
  for (const name of files.filter(isManifest)) {
    await backend.remove(name, { signal });
    deleted(name);
  }
  if (backend.removeMany) {
    if (rest.length > 0) await backend.removeMany(rest, { signal });
    rest.forEach(deleted);
  } else {
    for (const name of rest) {
      await backend.remove(name, { signal });
      deleted(name);
    }
  }
}

/** Chains that ended before `time`, except the newest chain (duplicity's get_chains_older_than). */
export function removeOlderThan(opts: ReadOptions & { time: number; force?: boolean }): Promise<RemovalPlan> {
  return removePlan(opts, (c) => c.chains.slice(0, -1).filter((ch) => ch.endTime < opts.time));
}

/** All chains but the newest `n` full backups and their incrementals. */
export function removeAllButNFull(opts: ReadOptions & { n: number; force?: boolean }): Promise<RemovalPlan> {
  if (!Number.isInteger(opts.n) || opts.n < 1) throw new OffsiteError('usage', `Keep at least one full backup (got ${opts.n})`);
  return removePlan(opts, (c) => c.chains.slice(0, Math.max(0, c.chains.length - opts.n)));
}
