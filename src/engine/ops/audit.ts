// What a remote holds besides its good chains, decided once for status, cleanup and retention so that
// they agree: chains whose full set evidently cannot be restored (damage the listing shows, or the
// cached plaintext manifest), the set of a backup interrupted on this machine (which the next backup
// resumes, or not), leftovers (sets without a manifest that no complete set depends on, and signature
// files of no kept set), and damaged sets that are kept: a set with its manifest is never a leftover,
// nor is a set that complete later sets continue (its manifest lost is damage, not an interrupted run).
import type { BackupChain, BackupSet } from '../chain/collection';
import { timeToString } from '../chain/time';
import { parseManifest } from '../manifest/manifest';
import { manifestName, parseName, setKeyOf, signatureName, type SetType } from '../manifest/naming';
import { readCheckpoint, resumeBlocker, type Checkpoint } from './checkpoint';
import { cacheNameOf, type Repository } from './repository';

/** A set kept on the remote although no restore can use it. */
export interface DamagedSet {
  readonly type: SetType;
  readonly startTime?: number;
  readonly time: number;
  /** Its files on the remote. */
  readonly files: readonly string[];
  /** What is wrong, and why it is kept. */
  readonly reason: string;
  /** The local cache's plaintext copy of its missing manifest, when there is one. */
  readonly cachedManifest?: string;
}

/** The set of a backup that was interrupted on this machine (its checkpoint is in the cache). */
export interface InterruptedSet {
  readonly type: SetType;
  readonly startTime?: number;
  readonly time: number;
  readonly files: readonly string[];
  /** Why it cannot be resumed; undefined when the next backup (same folder, same keys) resumes it. */
  readonly blocker?: string;
}

/**
 * Files without use that a backup running on another machine may be writing right now (the local lock
 * only keeps runs on this machine apart): the files of a set without its manifest, or a temporary
 * upload, written less than `keepRecent` seconds ago by the remote's clock, or whose age the remote does
 * not tell. cleanup keeps them; status shows them as "in progress?".
 */
export interface InProgressFiles {
  /** The set they are of; undefined for a temporary upload. */
  readonly set?: { readonly type: SetType; readonly startTime?: number; readonly time: number };
  readonly files: readonly string[];
  /** When the newest of them was written (seconds, the remote's clock); undefined when the remote does not say. */
  readonly lastWrite?: number;
  /** Seconds from lastWrite to this machine's clock when audited (negative when the remote's clock is ahead). */
  readonly age?: number;
}

/**
 * How long after its last write a set without its manifest (or a temporary upload) is kept as possibly
 * being written by a backup running on another machine: a day. A running backup writes to the remote
 * at least once a volume (32 MB by default: minutes even on a slow uplink), but between two volumes it
 * may scan for long (an incremental of a large tree with few changes), and the remote's clock, which
 * dates the files, may be behind this machine's by minutes. Keeping an interrupted set for a day costs
 * only space, and a daily `cleanup --force` removes it the day after; deleting a running backup's
 * volumes leaves a set whose manifest names volumes that are gone.
 */
export const KEEP_RECENT_SECONDS = 24 * 3600;

export interface AuditOptions {
  /** This machine's clock, seconds. */
  readonly now: number;
  /** KEEP_RECENT_SECONDS unless given; 0 keeps none (the user said so). */
  readonly keepRecent?: number;
}

export interface RemoteAudit {
  /** The chains whose full set evidently cannot be restored, with the reason. */
  readonly chainDamage: ReadonlyMap<BackupChain, string>;
  readonly interrupted?: InterruptedSet;
  /** Files of nothing anyone can use: what cleanup removes (besides an interrupted set that cannot be resumed). */
  readonly leftovers: readonly string[];
  /** Temporary uploads that did not finish (Repository.temporaryUploads), as leftovers: what cleanup removes. */
  readonly temporary: readonly string[];
  /** Leftovers and temporary uploads a backup running elsewhere may be writing: kept. */
  readonly inProgress: readonly InProgressFiles[];
  readonly damaged: readonly DamagedSet[];
}

const setKey = (s: BackupSet) => setKeyOf(s.type, s.startTime, s.endTime);
const checkpointKey = (c: Checkpoint | undefined) => c && setKeyOf(c.type, c.startTime, c.time);
const filesOf = (s: BackupSet) => [...(s.manifestName ? [s.manifestName] : []), ...[...s.volumes.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n)];

/**
 * Why a set with a manifest evidently cannot be restored, from what can be seen without a private
 * key: the remote's names and sizes, and (unless `cachedManifest` is false: a backup does not parse
 * it for every run) the local cache's plaintext copy of its manifest when there is one. undefined when
 * nothing shows (which does not prove it can be).
 */
export function setDamage(repo: Repository, set: BackupSet, opts: { cachedManifest?: boolean } = {}): string | undefined {
  if (!set.manifestName) return 'its manifest is missing';
  if (repo.remoteFiles.get(set.manifestName) === 0) return `its manifest ${set.manifestName} is empty`;
  const numbers = [...set.volumes.keys()].sort((a, b) => a - b);
  if (numbers.length === 0) return 'it has no volumes on the remote';
  const gap = numbers.findIndex((n, i) => n !== i + 1);
  if (gap >= 0) return `its volume ${gap + 1} is missing on the remote`;
  const empty = [...set.volumes.values()].find((n) => repo.remoteFiles.get(n) === 0);
  if (empty !== undefined) return `its volume ${empty} is empty`;
  if (opts.cachedManifest === false) return undefined;
  // Only a copy that stands for the remote's manifest (Repository.cachedManifestCopy): a recorded copy
  // that does not match its record, or a record-less one that is unreadable or lists fewer volumes than
  // the remote has (cut short, as Repository.manifest judges it), is damage of the local cache.
  const copy = repo.cachedManifestCopy(set.manifestName);
  if (!copy) return undefined;
  let listed: number;
  try {
    listed = parseManifest(copy.text).volumes.length;
  } catch (e) {
    return copy.recorded ? `its manifest cannot be read (the local copy, as the remote holds it: ${(e as Error).message})` : undefined;
  }
  if (!copy.recorded && listed < numbers.length) return undefined;
  if (listed !== numbers.length) return `its manifest lists ${listed} volume(s), the remote has ${numbers.length}`;
  return undefined;
}

/** The chains whose full set evidently cannot be restored, with the reason (what retention needs of the audit). */
export function chainsDamage(repo: Repository): Map<BackupChain, string> {
  const out = new Map<BackupChain, string>();
  for (const chain of repo.collection.chains) {
    const why = setDamage(repo, chain.fullSet);
    if (why !== undefined) out.set(chain, why);
  }
  return out;
}

export function auditRemote(repo: Repository, opts: AuditOptions): RemoteAudit {
  const c = repo.collection;
  const chainDamage = chainsDamage(repo);

  const inChains = new Set<BackupSet>(c.chains.flatMap((ch) => [ch.fullSet, ...ch.incSets]));
  const others = [...c.orphanedIncs, ...c.supersededIncs, ...c.incompleteSets].filter((s) => !inChains.has(s));
  const all = [...inChains, ...others];
  // The complete sets that continue a set, directly or through sets that are themselves continued.
  const continuedBy = new Map<BackupSet, BackupSet[]>();
  const descendants = (s: BackupSet): BackupSet[] => {
    let d = continuedBy.get(s);
    if (d) return d;
    d = [];
    continuedBy.set(s, d);
    for (const t of all) {
      if (t === s || t.type !== 'inc' || t.startTime !== s.endTime) continue;
      const below = descendants(t);
      if (t.manifestName) d.push(t);
      if (t.manifestName || below.length) d.push(...below);
    }
    return d;
  };

  const checkpoint = readCheckpoint(repo.archive);
  const ours = checkpointKey(checkpoint);
  // Set keys kept, with the file list of their damaged entry (signature files join it).
  const kept = new Map<string, string[] | undefined>([...inChains].map((x) => [setKey(x), undefined]));
  const leftovers: string[] = [];
  const damaged: DamagedSet[] = [];
  let interrupted: InterruptedSet | undefined;
  const interruptedFiles: string[] = [];
  const keep = (d: DamagedSet & { files: string[] }, sets: BackupSet[]) => {
    damaged.push(d);
    for (const x of sets) kept.set(setKey(x), d.files);
  };
  for (const s of others) {
    if (s.manifestName) continue;
    const after = descendants(s);
    if (after.length) {
      // Damage, not a leftover: kept with the complete sets that continue it (they are no use without it).
      const name = manifestName(s.type, s.endTime, s.startTime, s.encrypted);
      const cached = cacheNameOf(name);
      const with_ = after.filter((t) => !inChains.has(t));
      keep(
        {
          type: s.type,
          startTime: s.startTime,
          time: s.endTime,
          files: [...filesOf(s), ...with_.flatMap(filesOf)],
          reason: `its manifest ${name} is missing, and ${after.length} complete set(s) after it (${after.map((t) => timeToString(t.endTime)).join(', ')}) continue it, so no restore can use them either`,
          ...(repo.archive.has(cached) ? { cachedManifest: repo.archive.file(cached) } : {}),
        },
        [s, ...with_],
      );
      continue;
    }
    const files = filesOf(s);
    if (checkpoint && setKey(s) === ours) {
      const blocker = resumeBlocker(checkpoint, c, repo.remoteFiles, repo.archive);
      interrupted = { type: s.type, startTime: s.startTime, time: s.endTime, files: interruptedFiles, ...(blocker ? { blocker } : {}) };
      if (!blocker) kept.set(setKey(s), undefined);
      interruptedFiles.push(...files);
      continue;
    }
    leftovers.push(...files);
  }
  for (const s of others) {
    if (!s.manifestName || kept.has(setKey(s))) continue; // kept with the damaged set it continues
    keep({ type: s.type, startTime: s.startTime, time: s.endTime, files: filesOf(s), reason: keptCompleteReason(repo, s) }, [s]);
  }
  for (const name of repo.remoteFiles.keys()) {
    const p = parseName(name);
    if (!p || p.partial || p.kind !== 'signature') continue;
    const key = setKeyOf(p.setType, p.startTime, p.endTime);
    if (kept.has(key)) {
      kept.get(key)?.push(name);
      continue;
    }
    if (interrupted && key === setKeyOf(interrupted.type, interrupted.startTime, interrupted.time)) interruptedFiles.push(name);
    else leftovers.push(name);
  }
  return { chainDamage, interrupted, damaged, ...splitInProgress(repo, leftovers, checkpoint, opts) };
}

/**
 * Whether files last written at `t` (seconds, the remote's clock; undefined: it does not say) may be a
 * backup's still running elsewhere, at `now`: the one rule of status, cleanup, backup and restore.
 */
export function writtenRecently(t: number | undefined, now: number, keepRecent = KEEP_RECENT_SECONDS): boolean {
  return t === undefined || t > now - keepRecent;
}

/** Seconds since the epoch of the newest of `names` the remote dates; undefined when it dates none. */
export function lastWrite(repo: Repository, names: readonly string[]): number | undefined {
  const times = names.flatMap((n) => repo.remoteMtime(n)?.getTime() ?? []);
  return times.length ? Math.floor(Math.max(...times) / 1000) : undefined;
}

/**
 * The leftovers and temporary uploads a backup running elsewhere may be writing, set apart (see
 * InProgressFiles).
 */
function splitInProgress(repo: Repository, leftovers: string[], checkpoint: Checkpoint | undefined, opts: AuditOptions): Pick<RemoteAudit, 'leftovers' | 'temporary' | 'inProgress'> {
  const { temporary, inProgress } = splitTemporaryUploads(repo, checkpoint, opts);
  const keepRecent = opts.keepRecent ?? KEEP_RECENT_SECONDS;
  if (keepRecent <= 0) return { leftovers, temporary, inProgress };
  const bySet = new Map<string, string[]>();
  for (const name of leftovers) {
    const p = parseName(name)!;
    const key = setKeyOf(p.setType, p.startTime, p.endTime);
    bySet.set(key, [...(bySet.get(key) ?? []), name]);
  }
  const sets: InProgressFiles[] = [];
  for (const files of bySet.values()) {
    const t = lastWrite(repo, files);
    if (!writtenRecently(t, opts.now, keepRecent)) continue;
    const p = parseName(files[0])!;
    sets.push({ set: { type: p.setType, startTime: p.startTime, time: p.endTime }, files, ...writtenAt(t, opts.now) });
  }
  const kept = new Set(sets.flatMap((x) => x.files));
  return { leftovers: leftovers.filter((n) => !kept.has(n)), temporary, inProgress: [...sets, ...inProgress] };
}

/**
 * The temporary uploads of the last listing (Repository.temporaryUploads) that no backup writes any
 * more (`temporary`: what cleanup, and a backup settling an interrupted run, remove), set apart from
 * those a backup running elsewhere may be writing (`inProgress`), without the rest of the audit. One
 * for a file of the set of this machine's `checkpoint` (its backup is not running: the lock says so)
 * is ended whatever its age.
 */
export function splitTemporaryUploads(repo: Repository, checkpoint: Checkpoint | undefined, opts: AuditOptions): { temporary: string[]; inProgress: InProgressFiles[] } {
  const keepRecent = opts.keepRecent ?? KEEP_RECENT_SECONDS;
  if (keepRecent <= 0) return { temporary: [...repo.temporaryUploads], inProgress: [] };
  const ours = checkpointKey(checkpoint);
  const isOurs = (name: string) => {
    const p = parseName(repo.uploadTarget(name) ?? '');
    return p !== undefined && setKeyOf(p.setType, p.startTime, p.endTime) === ours;
  };
  const temporary: string[] = [];
  const inProgress: InProgressFiles[] = [];
  for (const name of repo.temporaryUploads) {
    const t = lastWrite(repo, [name]);
    if (writtenRecently(t, opts.now, keepRecent) && !isOurs(name)) inProgress.push({ files: [name], ...writtenAt(t, opts.now) });
    else temporary.push(name);
  }
  return { temporary, inProgress };
}

const writtenAt = (t: number | undefined, now: number) => (t === undefined ? {} : { lastWrite: t, age: now - t });

/** Why a set that has its manifest is in no chain (and is kept all the same). */
function keptCompleteReason(repo: Repository, s: BackupSet): string {
  const c = repo.collection;
  if (s === c.discardedLastInc) {
    return `its signature file ${signatureName(s.type, s.endTime, s.startTime, s.encrypted ? 'gpg' : '')} is missing, so restores and backups leave this last set out, as duplicity does`;
  }
  if (c.supersededIncs.includes(s)) return `a later incremental set continues the same set of ${timeToString(s.startTime!)}, and restores use that one, as duplicity does`;
  return `it continues the set of ${timeToString(s.startTime!)}, which is not on the remote, so no restore can use it`;
}
