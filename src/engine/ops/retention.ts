// Retention, with duplicity's rules: whole chains only (an old full set is kept while a newer
// incremental depends on it), never the newest restorable chain; without `force` nothing is deleted
// and the caller lists what would be. A chain goes with all its signature files, and with the complete
// incrementals outside it that continue it (duplicity leaves those as orphans, which no restore can
// use). A chain whose full set evidently cannot be restored (audit.ts:
// no volumes, a gap, an empty or unreadable manifest) is no backup to keep: it is not counted, and it
// is deleted only when it is older than every chain kept. The manifests go first, newest set first,
// and only then the volumes and signature files (in batches where the remote has them), so an
// interrupted removal leaves a shorter valid chain plus files `cleanup` recognises, never a
// complete-looking set with missing volumes.
import * as fs from 'node:fs';
import type { BackupChain, BackupSet, Collection } from '../chain/collection';
import { futureChainTime, signatureChainFor } from '../chain/collection';
import { acquireLock } from '../cache/lock';
import { timeToString } from '../chain/time';
import { OffsiteError } from '../errors';
import { parseName, setKeyOf } from '../manifest/naming';
import { chainsDamage } from './audit';
import { openForRead, type ReadOptions } from './restore';
import type { Repository } from './repository';

export interface KeptChain {
  readonly startTime: number;
  readonly endTime: number;
  /** Why it is kept. */
  readonly reason: string;
  /** Why its full set cannot be restored, for a damaged chain. */
  readonly damage?: string;
}

export interface RemovalPlan {
  /** End times of the chains removed. */
  readonly chains: readonly number[];
  /** The chains left, oldest first. */
  readonly kept: readonly KeptChain[];
  /** Remote files, in deletion order. */
  readonly files: readonly string[];
  readonly deleted: boolean;
}

function setFiles(set: BackupSet): string[] {
  return [...(set.manifestName ? [set.manifestName] : []), ...[...set.volumes.entries()].sort((a, b) => b[0] - a[0]).map(([, n]) => n)];
}

/**
 * A chain's files, newest set first, then its signature files: those of every signature chain rooted
 * at its full set (as duplicity deletes the signature chains older than the time), also one longer
 * than the chain (its last set lost its manifest) or shorter (its last set lost its signatures), and
 * the new-signatures files of its sets that continue no signature chain (its full-signatures file lost).
 */
function chainFiles(c: Collection, chain: BackupChain): string[] {
  const files: string[] = [];
  for (const s of [...chain.incSets].reverse()) files.push(...setFiles(s));
  files.push(...setFiles(chain.fullSet));
  const matched = signatureChainFor(c, chain);
  for (const sig of c.signatureChains) {
    // The newest chain's matched signature chain is its own, whatever its start (collection.ts matchPair).
    if (sig !== matched && (sig.startTime !== chain.startTime || sig === c.matchedSignatureChain)) continue;
    files.push(...[...sig.incs].reverse().map((i) => i.name), ...(sig.full ? [sig.full] : []));
  }
  const sets = new Set(chain.incSets.map((s) => setKeyOf(s.type, s.startTime, s.endTime)));
  for (const name of [...c.orphanedSignatures].reverse()) {
    const p = parseName(name)!;
    if (sets.has(setKeyOf(p.setType, p.startTime, p.endTime))) files.push(name);
  }
  return files;
}

/**
 * The files of the complete incrementals in no chain (superseded by a later one of the same start, or
 * continuing one of those) that continue a set of the `removed` chains, directly or through one
 * another, with their signature files, newest set first: once those chains go no restore can use them,
 * and left behind they would be damage that cleanup keeps. None continues a set of a kept chain.
 */
function dependentFiles(repo: Repository, removed: readonly BackupChain[]): string[] {
  const c = repo.collection;
  const keptTimes = new Set(c.chains.filter((ch) => !removed.includes(ch)).flatMap((ch) => [ch.fullSet, ...ch.incSets].map((s) => s.endTime)));
  const ends = new Set(removed.flatMap((ch) => [ch.fullSet, ...ch.incSets].map((s) => s.endTime)));
  const loose = [...c.supersededIncs, ...c.orphanedIncs].sort((a, b) => a.endTime - b.endTime);
  const sets: BackupSet[] = [];
  for (const s of loose) {
    if (!ends.has(s.startTime!) || keptTimes.has(s.startTime!)) continue;
    sets.push(s);
    ends.add(s.endTime);
  }
  const keys = new Set(sets.map((s) => setKeyOf(s.type, s.startTime, s.endTime)));
  const signatures = [...repo.remoteFiles.keys()].filter((n) => {
    const p = parseName(n);
    return p?.kind === 'signature' && !p.partial && keys.has(setKeyOf(p.setType, p.startTime, p.endTime));
  });
  return [...sets.reverse().flatMap(setFiles), ...signatures.sort().reverse()];
}

/** Which chains go; every other chain is kept, for the reason `reason` gives. */
interface Pick {
  readonly remove: readonly BackupChain[];
  reason(chain: BackupChain, damage: string | undefined): string;
}

async function removePlan(opts: ReadOptions & { force?: boolean }, pick: (chains: readonly BackupChain[], damage: ReadonlyMap<BackupChain, string>) => Pick): Promise<RemovalPlan> {
  const lock = await acquireLock(opts.archive.file('lockfile'), 'remove', { signal: opts.signal });
  const { repo, tempDir } = await openForRead(opts).catch((e) => {
    lock.release();
    throw e;
  });
  try {
    const chainDamage = chainsDamage(repo);
    const now = Math.floor((opts.now ?? Date.now)() / 1000);
    // A damaged chain is not counted, whatever its date (a stray manifest named in 2099).
    const future = futureChainTime(repo.collection.chains.filter((ch) => !chainDamage.has(ch)), now);
    if (future !== undefined) {
      throw new OffsiteError('format', `The backup of ${timeToString(future)} is dated in the future (this machine's clock says ${timeToString(now)}): which backups are the newest cannot be told, so none is deleted`, {
        hint: "Check this machine's clock. If it is right, that backup was dated by a wrong clock where it was made: delete its files (named with that time) by hand",
      });
    }
    const p = pick(repo.collection.chains, chainDamage);
    const files = [...new Set([...dependentFiles(repo, p.remove), ...p.remove.flatMap((ch) => chainFiles(repo.collection, ch))])];
    const kept = repo.collection.chains
      .filter((ch) => !p.remove.includes(ch))
      .map((ch) => ({ startTime: ch.startTime, endTime: ch.endTime, reason: p.reason(ch, chainDamage.get(ch)), ...(chainDamage.has(ch) ? { damage: chainDamage.get(ch) } : {}) }));
    if (opts.force) await removeFiles(repo, files, opts.signal);
    return { chains: p.remove.map((ch) => ch.endTime), kept, files, deleted: !!opts.force };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
    lock.release();
  }
}

const damagedReason = (newest: string) => `not counted as a kept chain, and not deleted: it is newer than ${newest}`;

/**
 * Deletes `files` (see chainFiles): every manifest first, one at a time and in order, then the rest,
 * in batches where the remote has them (a batch has no order; once no manifest is left an interruption
 * can only leave files that `cleanup` removes).
 */
export async function removeFiles(repo: Repository, files: readonly string[], signal?: AbortSignal): Promise<void> {
  const { backend } = repo;
  const deleted = (name: string): void => {
    repo.forget([name]);
    repo.log.info(`Deleted ${name}`);
  };
  const isManifest = (n: string) => parseName(n)?.kind === 'manifest';
  const rest = files.filter((n) => !isManifest(n));
  try {
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
  } finally {
    // The cache's copies (and their records) of what is gone, as far as it got.
    repo.pruneCache();
  }
}

/**
 * Chains that ended before `time` (duplicity's get_chains_older_than) and are older than the newest
 * restorable chain, which is always kept, as is every chain after it.
 */
export function removeOlderThan(opts: ReadOptions & { time: number; force?: boolean }): Promise<RemovalPlan> {
  return removePlan(opts, (chains, damage) => {
    const newest = chains.findLastIndex((ch) => !damage.has(ch));
    return {
      remove: newest < 0 ? [] : chains.slice(0, newest).filter((ch) => ch.endTime < opts.time),
      reason: (ch, d) =>
        newest < 0 ? 'no chain here can be restored, so none is deleted'
        : ch === chains[newest] ? 'the newest restorable chain, never deleted'
        : d !== undefined && chains.indexOf(ch) > newest ? damagedReason('the newest restorable chain')
        : `it ends after ${timeToString(opts.time)}`,
    };
  });
}

/**
 * duplicity's remove-all-but-n-full: the chains that end before the full backup of the `n`th newest
 * restorable chain, newest by that full backup (get_nth_last_backup_chain sorts by start time). On
 * one machine chains do not overlap, and these are the chains before the `n` newest. When two machines
 * back up into one remote their chains overlap: one begun earlier that ends after that full backup
 * holds backups newer than it, and is kept (ordered by end time instead, the other machine's newer
 * full backup would go). Damaged chains are not counted, and those that end after that time stay.
 * With fewer than `n` restorable chains nothing is deleted.
 */
export function removeAllButNFull(opts: ReadOptions & { n: number; force?: boolean }): Promise<RemovalPlan> {
  if (!Number.isInteger(opts.n) || opts.n < 1) throw new OffsiteError('usage', `Keep at least one full backup (got ${opts.n})`);
  const newest = opts.n === 1 ? 'the restorable chain with the newest full backup' : `one of the ${opts.n} restorable chains with the newest full backups`;
  return removePlan(opts, (chains, damage) => {
    const restorable = chains.filter((ch) => !damage.has(ch)).sort((a, b) => a.startTime - b.startTime);
    const kept = new Set(restorable.slice(-opts.n));
    const since = restorable.length >= opts.n ? restorable[restorable.length - opts.n].startTime : undefined;
    return {
      remove: since === undefined ? [] : chains.filter((ch) => ch.endTime < since),
      reason: (ch, d) =>
        since === undefined ? `fewer than ${opts.n} chain(s) can be restored, so none is deleted`
        : d !== undefined ? damagedReason(opts.n === 1 ? 'the newest restorable chain' : 'the oldest restorable chain kept')
        : kept.has(ch) ? newest
        : `it ends after ${timeToString(since)}, the ${opts.n === 1 ? 'newest full backup' : 'oldest full backup kept'} (it overlaps that chain: a backup from another machine into this remote?)`,
    };
  });
}
