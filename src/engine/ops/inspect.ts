// Read-only views of a remote: collection status (chains, sets, volumes, dates), the files of the
// backup as of a time (from the signature chain, like duplicity's list-current-files), and the
// history of one path (the sets whose signature archive stored or deleted it).
import * as fs from 'node:fs';
import { chainAtTime, setsAtTime, signatureChainFor, type BackupChain, type BackupSet } from '../chain/collection';
import { timeToString } from '../chain/time';
import { OffsiteError } from '../errors';
import { compareIndex, indexEquals, indexToString } from '../pathIndex';
import { parseName } from '../manifest/naming';
import type { EntryMeta, EntryType, PathIndex } from '../types';
import type { Repository } from './repository';
import { openForRead, setsForTime, type ReadOptions } from './restore';
import { mergeSignatureChain, readCachedSigtar, readCachedSigtarHeaders, type HeaderEntry } from './sigtar';

export interface SetStatus {
  readonly type: 'full' | 'inc';
  readonly time: number;
  readonly volumes: number;
  readonly bytes: number;
}

export interface ChainStatus {
  readonly startTime: number;
  readonly endTime: number;
  readonly sets: readonly SetStatus[];
  readonly hasSignatures: boolean;
}

export interface CollectionStatus {
  readonly url: string;
  readonly chains: readonly ChainStatus[];
  /** Names of files that belong to no complete set (interrupted backups, orphaned incrementals). */
  readonly incomplete: readonly string[];
}

function setBytes(set: BackupSet, sizes: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const name of set.volumes.values()) n += sizes.get(name) ?? 0;
  if (set.manifestName) n += sizes.get(set.manifestName) ?? 0;
  return n;
}

export async function status(opts: ReadOptions): Promise<CollectionStatus> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const c = repo.collection;
    const sizes = repo.remoteFiles;
    const chains = c.chains.map((chain: BackupChain) => ({
      startTime: chain.startTime,
      endTime: chain.endTime,
      hasSignatures: signatureChainFor(c, chain)?.endTime === chain.endTime,
      sets: [chain.fullSet, ...chain.incSets].map((s) => ({ type: s.type, time: s.endTime, volumes: s.volumes.size, bytes: setBytes(s, sizes) })),
    }));
    const incomplete = [...c.incompleteSets, ...c.orphanedIncs].flatMap((s) => [...s.volumes.values(), ...(s.manifestName ? [s.manifestName] : [])]);
    return { url: opts.backend.displayUrl, chains, incomplete };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

function pretty(t: number): string {
  return new Date(t * 1000).toUTCString();
}

export function formatStatus(s: CollectionStatus): string {
  const lines: string[] = [`Collection status of ${s.url}`, ''];
  if (s.chains.length === 0) lines.push('No backup chains found.');
  s.chains.forEach((c, i) => {
    const primary = i === s.chains.length - 1;
    lines.push(`${primary ? 'Primary' : 'Secondary'} backup chain${c.hasSignatures ? '' : ' (no matching signatures)'}:`);
    lines.push(`  Chain start time: ${pretty(c.startTime)} (${timeToString(c.startTime)})`);
    lines.push(`  Chain end time:   ${pretty(c.endTime)} (${timeToString(c.endTime)})`);
    lines.push(`  Number of contained backup sets: ${c.sets.length}`);
    lines.push(`  Total number of contained volumes: ${c.sets.reduce((n, x) => n + x.volumes, 0)}`);
    lines.push('   Type of backup set:   Time:                            Num volumes:   Size:');
    for (const set of c.sets) {
      lines.push(`   ${(set.type === 'full' ? 'Full' : 'Incremental').padEnd(20)}  ${pretty(set.time).padEnd(32)} ${String(set.volumes).padStart(12)}   ${set.bytes}`);
    }
    lines.push('');
  });
  lines.push(s.incomplete.length ? `Found ${s.incomplete.length} file(s) of incomplete or orphaned backup sets (offsite cleanup removes them).` : 'No orphaned or incomplete backup sets found.');
  return `${lines.join('\n')}\n`;
}

export interface ListedFile {
  readonly index: PathIndex;
  readonly meta: EntryMeta;
}

/**
 * The signature files (local copies, fetched when missing) that describe the backup as of `time`, and
 * that backup's last set; undefined when there is nothing to list. Throws the clear errors: no backup
 * at that time, or its signature files missing.
 */
export async function signatureFilesAt(repo: Repository, time: number, signal?: AbortSignal): Promise<{ last: BackupSet; files: string[] } | undefined> {
  const c = repo.collection;
  const chain = chainAtTime(c, time);
  const sets = chain ? setsAtTime(chain, time) : [];
  if (!chain || sets.length === 0) {
    await setsForTime(repo, time, signal); // throws the clear 'no backup' error
    return undefined;
  }
  const sig = signatureChainFor(c, chain);
  const last = sets.at(-1)!;
  const covered = !!sig && (sig.startTime === last.endTime || sig.incs.some((i) => i.endTime === last.endTime));
  if (!sig || !covered) {
    throw new OffsiteError('notFound', `The signature files for the backup of ${timeToString(last.endTime)} are missing`, { hint: 'Listing needs them; restore still works without them' });
  }
  const names = [sig.full, ...sig.incs.filter((i) => i.endTime <= last.endTime).map((i) => i.name)].filter((n): n is string => !!n);
  const files: string[] = [];
  for (const n of names) files.push(await repo.sigtarFile(n, signal));
  return { last, files };
}

/** The paths of the backup as of a time, from the signature chain up to that set. */
export async function* listFiles(opts: ReadOptions): AsyncGenerator<ListedFile> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const at = await signatureFilesAt(repo, opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000), opts.signal);
    if (!at) return;
    for await (const e of mergeSignatureChain(at.files.map((f) => readCachedSigtar(f)))) yield { index: e.index, meta: e.meta };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

export interface FileVersion {
  readonly time: number;
  readonly action: 'new' | 'changed' | 'deleted';
  /** What the path was in that set (not for 'deleted'). */
  readonly type?: EntryType;
}

/** The member of a cached signature file for `index`, if it has one (read up to there only). */
async function memberOf(file: string, index: PathIndex): Promise<HeaderEntry | undefined> {
  for await (const e of readCachedSigtarHeaders(file)) {
    const c = compareIndex(e.index, index);
    if (c === 0) return e;
    if (c > 0) return undefined; // members are in index order
  }
  return undefined;
}

/**
 * The sets, across all chains, in which a path changed. From each set's signature archive: it holds a
 * member for every path the set stored or deleted, with its type, so folders, symlinks and changes of
 * type are seen (a manifest's file list names regular files only, as duplicity's does). Each archive
 * is read only up to the path (members are in index order). A set whose signature archive is not on
 * the remote falls back to its manifest's file list, with a warning. Empty: the path is in no backup.
 */
export async function fileHistory(opts: ReadOptions & { path: PathIndex }): Promise<FileVersion[]> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const sigNames = new Map<string, string>();
    for (const name of repo.remoteFiles.keys()) {
      const p = parseName(name);
      if (p?.kind === 'signature' && !p.partial) sigNames.set(setKey(p.setType, p.startTime, p.endTime), name);
    }
    const out: FileVersion[] = [];
    for (const chain of repo.collection.chains) {
      let present = false; // in the chain's state before the set read next
      for (const set of [chain.fullSet, ...chain.incSets]) {
        const sigName = sigNames.get(setKey(set.type, set.startTime, set.endTime));
        if (sigName === undefined) {
          opts.log.warn(`The signature file of the backup set of ${timeToString(set.endTime)} is missing on the remote: its changes are taken from its manifest (regular files only)`);
          const f = (await repo.manifest(set, opts.signal)).filelist?.find((x) => indexEquals(x.index, opts.path));
          if (f) out.push(f.action === 'deleted' ? { time: set.endTime, action: 'deleted' } : { time: set.endTime, action: f.action, type: 'reg' });
          if (f) present = f.action !== 'deleted';
          continue;
        }
        const m = await memberOf(await repo.sigtarFile(sigName, opts.signal), opts.path);
        if (!m) continue;
        if (m.kind === 'deleted') {
          out.push({ time: set.endTime, action: 'deleted' });
          present = false;
        } else {
          out.push({ time: set.endTime, action: present ? 'changed' : 'new', type: m.meta.type });
          present = true;
        }
      }
    }
    return out;
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

function setKey(type: string, start: number | undefined, end: number): string {
  return `${type}:${start ?? ''}:${end}`;
}

/** A type as the CLI names it. */
export const TYPE_WORDS: Readonly<Record<EntryType, string>> = { reg: 'file', dir: 'folder', sym: 'symlink', fifo: 'fifo', chr: 'character-device', blk: 'block-device' };

export function formatListLine(f: ListedFile): string {
  const d = new Date(f.meta.mtime * 1000);
  return `${d.toUTCString()} ${indexToString(f.index)}`;
}
