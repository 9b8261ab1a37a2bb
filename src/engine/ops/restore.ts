// Restore: the tree (or one path) as of a time, from the chain covering that time, reading only the
// volumes that may hold the requested path (FORMAT §9).
import * as fs from 'node:fs';
import type { Backend } from '../backend/backend';
import type { ArchiveDir } from '../cache/archiveDir';
import { chainAtTime, setsAtTime, type BackupSet, type Collection } from '../chain/collection';
import { timeToString } from '../chain/time';
import { OffsiteError } from '../errors';
import type { Logger } from '../log';
import type { Manifest } from '../manifest/manifest';
import { manifestName, signatureName } from '../manifest/naming';
import { indexToString } from '../pathIndex';
import { throttled, type ProgressSink } from '../progress';
import type { PathIndex } from '../types';
import { lastWrite, writtenRecently } from './audit';
import { readCheckpoint } from './checkpoint';
import type { CryptoContext } from './remoteFiles';
import { Repository } from './repository';
import { FilesystemOutput } from './restoreOutput';
import { restoreRecords, type ReadContext, type Refusal, type Restorable } from './setReader';
import { deadRestoreTemporary } from './treeWriter';

export interface ReadOptions {
  readonly backend: Backend;
  readonly archive: ArchiveDir;
  readonly crypto: CryptoContext;
  readonly log: Logger;
  /** Seconds since the epoch; default now. */
  readonly time?: number;
  readonly signal?: AbortSignal;
  readonly now?: () => number;
}

export interface RestoreOptions extends ReadOptions {
  readonly target: string;
  /** Restore only this path (a file or a folder), written at target/path. */
  readonly path?: PathIndex;
  readonly force?: boolean;
  /** Default: when running as root, as duplicity does. */
  readonly restoreOwners?: boolean;
  readonly onProgress?: ProgressSink;
}

export interface RestoreResult {
  /** End time of the last set restored. */
  readonly time: number;
  readonly files: number;
  readonly bytes: number;
  /** Archive members that were not restored, and why. */
  readonly refusals: readonly Refusal[];
}

/**
 * The sets to read for a time, with their manifests: the chain's full set and its incrementals up to
 * then. `opts.now`: this machine's clock (ReadOptions.now), which judges whether a newer set without
 * its manifest may be a backup still running elsewhere.
 */
export async function setsForTime(repo: Repository, time: number, opts: Pick<ReadOptions, 'signal' | 'now'>): Promise<{ set: BackupSet; manifest: Manifest }[]> {
  const collection: Collection = repo.collection;
  const chain = collection.chains.length ? chainAtTime(collection, time) : undefined;
  // duplicity falls back to the oldest full backup for a time before it; restoring a later state as if
  // it were older would mislead, so that is an error here.
  const sets = chain && chain.fullSet.endTime <= time ? setsAtTime(chain, time) : [];
  checkNoNewerDamagedSets(repo, sets.at(-1)?.endTime ?? -1, time, Math.floor((opts.now ?? Date.now)() / 1000));
  if (collection.chains.length === 0) {
    throw new OffsiteError('notFound', `No backups found at ${repo.backend.displayUrl}`, { hint: 'Check the URL, or run a backup first' });
  }
  if (sets.length === 0) {
    const oldest = collection.chains[0].fullSet.endTime;
    throw new OffsiteError('notFound', `No backup as old as ${new Date(time * 1000).toISOString()}: the oldest is from ${new Date(oldest * 1000).toISOString()} (${timeToString(oldest)})`, {
      hint: 'Give a later --time',
      needs: { input: 'laterTime', wrong: true },
    });
  }
  const out: { set: BackupSet; manifest: Manifest }[] = [];
  for (const set of sets) {
    const manifest = await repo.manifest(set, opts.signal);
    checkListsVolumes(set, manifest);
    out.push({ set, manifest });
  }
  return out;
}

/**
 * A manifest that lists no volume would restore nothing, silently: every set duplicity or Offsite
 * writes has at least one volume (duplicity's write_multivol always writes vol1; Offsite's
 * VolumeWriter.finish() writes an empty one when nothing changed). Such a manifest was damaged or
 * replaced (anyone with the public key can encrypt one), so it is an error naming the manifest.
 */
function checkListsVolumes(set: BackupSet, m: Manifest): void {
  if (m.volumes.length > 0) return;
  const name = set.manifestName!;
  const what = m.hostname === undefined && m.localdir === undefined && !('filelist' in m) ? 'is not a manifest (none of its lines is a manifest field)' : 'lists no volume';
  const onRemote = set.volumes.size;
  throw new OffsiteError('integrity', `The manifest ${name} ${what}${onRemote ? `, though the remote holds ${onRemote} volume(s) of that set` : ''}`, {
    file: name,
    hint: 'It was damaged or replaced on the remote (or in the local cache); restore as of another time (--time), or make a new full backup (offsite backup --full)',
  });
}

/**
 * Refuses to restore an older state as if it were the one asked for: a set made after `chosen` and by
 * `time` that cannot be used (its manifest or signature file is missing, or it continues a set that
 * is) means the remote lost files, by damage or by someone deleting them to roll the backup back. The
 * one set this machine's checkpoint explains (a backup interrupted or running here) is not damage.
 * Sets without a manifest written recently may be a backup running on another machine (audit.ts
 * InProgressFiles): still refused, as that cannot be told from damage, but the hint says so.
 */
function checkNoNewerDamagedSets(repo: Repository, chosen: number, time: number, now: number): void {
  const c = repo.collection;
  const explained = readCheckpoint(repo.archive)?.time;
  const suspects = [...c.incompleteSets, ...c.orphanedIncs].filter((s) => s.endTime > chosen && s.endTime <= time && s.endTime !== explained);
  if (suspects.length === 0) return;
  const encrypted = (s: BackupSet) => s.encrypted || s.volumes.size === 0;
  const missing = suspects.map((s) => {
    if (!s.manifestName) return manifestName(s.type, s.endTime, s.startTime, encrypted(s));
    if (s === c.discardedLastInc) return signatureName(s.type, s.endTime, s.startTime, encrypted(s) ? 'gpg' : '');
    // An orphaned incremental: the set it continues is incomplete or gone.
    const base = c.incompleteSets.find((x) => x.endTime === s.startTime);
    return base ? manifestName(base.type, base.endTime, base.startTime, encrypted(base)) : `the backup set of ${timeToString(s.startTime!)}`;
  });
  const unique = [...new Set(missing)];
  const newer = chosen < 0 ? 'Backups' : `Backups newer than ${timeToString(chosen)}`;
  const anyway = chosen < 0 ? '' : `; to restore the last complete backup anyway, give --time ${timeToString(chosen)}`;
  // A set with its manifest is damage, not a backup being written; one the remote does not date counts
  // as possibly running (as status says), but has no time to name.
  const written = suspects.map((s) => lastWrite(repo, [...s.volumes.values()]));
  const running = suspects.every((s, i) => !s.manifestName && writtenRecently(written[i], now));
  const dated = written.filter((t): t is number => t !== undefined);
  const when = dated.length === suspects.length ? ` (last written ${timeToString(Math.max(...dated))} by the remote's clock)` : '';
  throw new OffsiteError('integrity', `${newer} cannot be used: ${unique.join(', ')} ${unique.length === 1 ? 'is' : 'are'} missing on the remote`, {
    file: unique[0],
    hint:
      running ?
        `A backup running on another machine may be writing ${suspects.length === 1 ? 'that set' : 'those sets'}${when}: restore again once it has finished${anyway}`
      : `If a backup was interrupted, run the next backup or offsite cleanup first${anyway}`,
  });
}

/**
 * Opens the repository for reading: lists the remote (with `partial`, its unfinished uploads too:
 * Repository.temporaryUploads) and prunes the cache. Caller removes tempDir.
 */
export async function openForRead(opts: ReadOptions, listing: { partial?: boolean } = {}): Promise<{ repo: Repository; tempDir: string }> {
  const tempDir = opts.archive.makeTempDir();
  try {
    const repo = new Repository(opts.backend, opts.archive, opts.crypto, opts.log, tempDir);
    await repo.refresh(opts.signal, listing);
    repo.pruneCache();
    return { repo, tempDir };
  } catch (e) {
    fs.rmSync(tempDir, { recursive: true, force: true });
    throw e;
  }
}

function checkTarget(target: string, path: PathIndex | undefined, force: boolean): void {
  // An empty name would make every path of the backup absolute ('' + '/' + name): into '/'.
  if (target === '') throw new OffsiteError('usage', 'The restore target is empty', { hint: 'Name the folder to restore into (. for the current one)' });
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(target, { throwIfNoEntry: false });
  } catch (e) {
    // ENOTDIR (a file where a folder of the path should be), EACCES, ELOOP, ENAMETOOLONG.
    throw new OffsiteError('exists', `The restore target ${target} cannot be used: ${(e as Error).message}`, { hint: 'Choose a new or empty folder' });
  }
  if (!st && fs.lstatSync(target, { throwIfNoEntry: false })?.isSymbolicLink()) {
    throw new OffsiteError('exists', `The restore target ${target} is a symbolic link to nothing (${fs.readlinkSync(target)})`, { hint: 'Create the folder it points to, or choose another target' });
  }
  if (!st) return;
  if (!st.isDirectory()) throw new OffsiteError('exists', `The restore target ${target} exists and is not a folder`, { hint: 'Choose a new or empty folder' });
  if (force) return;
  if (path && path.length) {
    const p = Buffer.concat([Buffer.from(target), ...path.flatMap((c) => [Buffer.from('/'), c])]);
    if (fs.existsSync(p)) throw new OffsiteError('exists', `${p.toString()} exists already`, { hint: 'Restore into another folder, or pass --force to replace it' });
    return;
  }
  // The temporary files of a restore into it that was killed do not count: the restore removes them.
  const dir = Buffer.from(target);
  if (fs.readdirSync(dir, { encoding: 'buffer' }).some((n) => deadRestoreTemporary(dir, n) === undefined)) {
    throw new OffsiteError('exists', `The restore target ${target} is not empty`, { hint: 'Restore into a new or empty folder, or pass --force to write into it (files with the same names are replaced)' });
  }
}

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  checkTarget(opts.target, opts.path, !!opts.force);
  const { repo, tempDir } = await openForRead(opts);
  try {
    const time = opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000);
    const sets = await setsForTime(repo, time, opts);
    const refusals: Refusal[] = [];
    const ctx: ReadContext = { repo, log: opts.log, signal: opts.signal, refusals };
    const progress = throttled(opts.onProgress);
    const out = new FilesystemOutput({
      target: opts.target,
      force: !!opts.force,
      restoreOwners: opts.restoreOwners ?? process.getuid?.() === 0,
      // The writer thread only where volumes are local files (file://). Over sftp:// (measured on
      // loopback) it added ~15-20 MiB to a peak of ~150 MiB made mostly of the SSH transport's
      // buffers, over the 160 MiB the engine keeps to; over a real link the download is the bottleneck.
      writer: repo.backend.localPath?.(sets[0].set.manifestName ?? '') !== undefined ? undefined : 'inline',
      log: opts.log,
      refusals,
      onFile: (index, bytes) => progress({ operation: 'restore', phase: 'write', files: out.files, bytes: out.bytes + bytes, path: indexToString(index) }),
    });
    const prefix = opts.path ?? [];
    let seen = 0;
    try {
      for await (const item of restoreRecords(ctx, sets, prefix)) {
        seen++;
        await out.add(item);
      }
      await out.finish();
    } finally {
      await out.dispose();
    }
    if (prefix.length && seen === 0) {
      throw new OffsiteError('notFound', `${indexToString(prefix)} is not in the backup as of ${timeToString(sets.at(-1)!.set.endTime)}`, { hint: 'Check the path (relative to the backed-up folder) and the time; offsite list shows what a backup holds' });
    }
    return { time: sets.at(-1)!.set.endTime, files: out.files, bytes: out.bytes, refusals };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

/** Streams one regular file as of a time through `write`; returns its metadata, or undefined when absent. */
export async function readFileAt(opts: ReadOptions & { path: PathIndex }, write: (chunk: Buffer) => Promise<void>): Promise<Restorable['meta'] | undefined> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const time = opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000);
    const sets = await setsForTime(repo, time, opts);
    const ctx: ReadContext = { repo, log: opts.log, signal: opts.signal, refusals: [] };
    for await (const item of restoreRecords(ctx, sets, opts.path)) {
      if (item.index.length !== opts.path.length) continue;
      if (item.meta.type !== 'reg') throw new OffsiteError('usage', `${indexToString(opts.path)} is not a file in that backup (it is a ${item.meta.type})`);
      await item.produce?.(write);
      return item.meta;
    }
    return undefined;
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}
