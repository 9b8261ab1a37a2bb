// Read-only views of a remote: collection status (chains, sets, volumes, dates), the files of the
// backup as of a time (from the signature chain, like duplicity's list-current-files), and the
// history of one path (the sets whose signature archive stored or deleted it).
import * as fs from 'node:fs';
import { chainAtTime, futureChainTime, setsAtTime, signatureChainFor, type BackupChain, type BackupSet } from '../chain/collection';
import { timeToString } from '../chain/time';
import { OffsiteError } from '../errors';
import { manifestName, parseName, setKeyOf } from '../manifest/naming';
import { compareIndex, indexEquals, indexToBytes } from '../pathIndex';
import type { EntryMeta, EntryType, PathIndex } from '../types';
import { auditRemote, setDamage, type DamagedSet, type InProgressFiles, type InterruptedSet } from './audit';
import type { Repository } from './repository';
import { openForRead, setsForTime, type ReadOptions } from './restore';
import { mergeSignatureChain, readCachedSigtar, readCachedSigtarHeaders, type HeaderEntry } from './sigtar';

export interface SetStatus {
  readonly type: 'full' | 'inc';
  readonly time: number;
  readonly volumes: number;
  readonly bytes: number;
  /** Why the set evidently cannot be restored (audit.ts setDamage). */
  readonly damage?: string;
}

export interface ChainStatus {
  readonly startTime: number;
  readonly endTime: number;
  readonly sets: readonly SetStatus[];
  readonly hasSignatures: boolean;
  /** Why its full set evidently cannot be restored: then the chain is no backup at all. */
  readonly damage?: string;
}

export interface CollectionStatus {
  readonly url: string;
  /** Oldest first. The primary chain is the newest one without damage. */
  readonly chains: readonly ChainStatus[];
  /** Files that `cleanup` removes: sets without a manifest that nothing depends on, stray signature files. */
  readonly leftovers: readonly string[];
  /** A backup interrupted on this machine: the next backup resumes it, unless `blocker` says why not. */
  readonly interrupted?: InterruptedSet;
  /** Sets no restore can use that cleanup keeps, with the reason. */
  readonly damaged: readonly DamagedSet[];
  /**
   * Temporary objects of uploads that did not finish (temp files, unfinished multipart uploads): what
   * the backend's cleanupPartial finds, so what `cleanup` removes, seen in the listing of the remote
   * (list({ partial: true })). Without those the store would not list (an S3 key not allowed to list
   * multipart uploads: the log says so).
   */
  readonly temporary: readonly string[];
  /** Temporary files and folders of runs that died, in the local cache: `cleanup` removes them too. */
  readonly localTemporary: readonly string[];
  /** Sets without a manifest and temporary uploads written recently: a backup running elsewhere may be writing them (cleanup keeps them). */
  readonly inProgress?: readonly InProgressFiles[];
  /** The newest restorable chain's end, dated in the future by this machine's clock (`now`): a clock was wrong (chain/collection.ts futureChainTime). */
  readonly future?: { readonly time: number; readonly now: number };
}

function setBytes(set: BackupSet, sizes: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const name of set.volumes.values()) n += sizes.get(name) ?? 0;
  if (set.manifestName) n += sizes.get(set.manifestName) ?? 0;
  return n;
}

export async function status(opts: ReadOptions): Promise<CollectionStatus> {
  // Before this run makes its own (as cleanup does).
  const localTemporary = [...opts.archive.staleTempDirs(), ...opts.archive.staleTempFiles()];
  const { repo, tempDir } = await openForRead(opts, { partial: true });
  try {
    const c = repo.collection;
    const sizes = repo.remoteFiles;
    const now = Math.floor((opts.now ?? Date.now)() / 1000);
    const audit = auditRemote(repo, { now });
    const chains = c.chains.map((chain: BackupChain) => {
      const damage = audit.chainDamage.get(chain);
      return {
        startTime: chain.startTime,
        endTime: chain.endTime,
        hasSignatures: signatureChainFor(c, chain)?.endTime === chain.endTime,
        sets: [chain.fullSet, ...chain.incSets].map((s) => {
          const d = s === chain.fullSet ? damage : setDamage(repo, s); // the audit read the full set's already
          return { type: s.type, time: s.endTime, volumes: s.volumes.size, bytes: setBytes(s, sizes), ...(d === undefined ? {} : { damage: d }) };
        }),
        ...(damage === undefined ? {} : { damage }),
      };
    });
    const future = futureChainTime(c.chains.filter((ch) => !audit.chainDamage.has(ch)), now);
    return {
      url: opts.backend.displayUrl,
      chains,
      leftovers: audit.leftovers,
      ...(audit.interrupted ? { interrupted: audit.interrupted } : {}),
      damaged: audit.damaged,
      temporary: audit.temporary,
      localTemporary,
      inProgress: audit.inProgress,
      ...(future === undefined ? {} : { future: { time: future, now } }),
    };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

function pretty(t: number): string {
  return new Date(t * 1000).toUTCString();
}

/** "full set of 20261128T233259Z", "incremental set of 20261128T233300Z" */
export function describeSet(s: { type: 'full' | 'inc'; time: number }): string {
  return `${s.type === 'full' ? 'full' : 'incremental'} set of ${timeToString(s.time)}`;
}

/** What to do about a damaged set that is kept. */
export function damageAdvice(d: DamagedSet): string {
  if (d.cachedManifest !== undefined) {
    return `The local cache still holds the missing manifest (${d.cachedManifest}): keep that file; encrypted to the backup's key (gpg --encrypt --recipient KEY) and uploaded as ${manifestName(d.type, d.time, d.startTime, true)}, it makes these sets usable again.`;
  }
  return 'Restore as of an earlier time if there is one, make a new full backup (offsite backup --full), and delete these files by hand once you no longer need them.';
}

/**
 * The newest time before set `si` of chain `ci` that shows no damage (nor does any set it needs): in
 * that chain before its first damaged set, else in the newest older chain that has one.
 */
function lastGoodBefore(chains: readonly ChainStatus[], ci: number, si: number): number | undefined {
  for (let c = ci; c >= 0; c--) {
    const sets = chains[c].sets.slice(0, c === ci ? si : undefined);
    const bad = sets.findIndex((x) => x.damage !== undefined);
    const good = bad < 0 ? sets.length : bad;
    if (good > 0) return sets[good - 1].time;
  }
  return undefined;
}

/**
 * What to do about a damaged set of a chain, as the remote stands: the time to restore instead when
 * there is one, and in the newest chain (which the next backup may continue: an incremental on a
 * damaged set cannot be restored either) a new full backup.
 */
function damagedSetAdvice(chains: readonly ChainStatus[], ci: number, si: number): string {
  const t = lastGoodBefore(chains, ci, si);
  const restore = t === undefined ? 'No earlier backup here can be restored' : `The newest earlier backup that shows no damage is of ${timeToString(t)} (--time ${timeToString(t)})`;
  return `${restore}${ci === chains.length - 1 ? '; make a new full backup (offsite backup --full)' : ''}.`;
}

/** What status and cleanup say of files a backup running elsewhere may be writing (audit.ts InProgressFiles). */
export function describeInProgress(p: InProgressFiles): string {
  const what = p.set ? `${p.files.length} file(s) of the incomplete ${describeSet(p.set)}` : `the temporary upload ${p.files[0]}`;
  const when =
    p.lastWrite === undefined || p.age === undefined ? 'the remote does not tell when it was written'
    : `last written ${timeToString(p.lastWrite)} by the remote's clock (${p.age <= 0 ? 'not before now by this one' : `${agoText(p.age)} ago`})`;
  return `In progress? ${what}: ${when}, so a backup running on another machine may be writing it; offsite cleanup keeps it (--keep-recent 0 deletes it).`;
}

function agoText(seconds: number): string {
  return seconds < 3600 ? `${Math.max(1, Math.round(seconds / 60))} min` : `${(seconds / 3600).toFixed(1)} h`;
}

export function formatStatus(s: CollectionStatus): string {
  const lines: string[] = [`Collection status of ${s.url}`, ''];
  if (s.chains.length === 0) lines.push('No backup chains found.');
  const primary = s.chains.findLastIndex((c) => c.damage === undefined);
  s.chains.forEach((c, i) => {
    const label = c.damage !== undefined ? `Damaged backup chain (not restorable: its full set: ${c.damage})` : `${i === primary ? 'Primary' : 'Secondary'} backup chain`;
    lines.push(`${label}${c.hasSignatures ? '' : ' (no matching signatures)'}:`);
    lines.push(`  Chain start time: ${pretty(c.startTime)} (${timeToString(c.startTime)})`);
    lines.push(`  Chain end time:   ${pretty(c.endTime)} (${timeToString(c.endTime)})`);
    lines.push(`  Number of contained backup sets: ${c.sets.length}`);
    lines.push(`  Total number of contained volumes: ${c.sets.reduce((n, x) => n + x.volumes, 0)}`);
    lines.push('   Type of backup set:   Time:                            Num volumes:   Size:');
    c.sets.forEach((set, si) => {
      lines.push(`   ${(set.type === 'full' ? 'Full' : 'Incremental').padEnd(20)}  ${pretty(set.time).padEnd(32)} ${String(set.volumes).padStart(12)}   ${set.bytes}`);
      if (set.damage !== undefined) lines.push(`     Damaged: ${set.damage}. ${damagedSetAdvice(s.chains, i, si)}`);
    });
    lines.push('');
  });
  if (s.chains.length > 0 && primary < 0) lines.push('No backup chain here can be restored.', '');
  if (s.future) {
    lines.push(
      `The backup of ${timeToString(s.future.time)} is dated in the future (this machine's clock says ${timeToString(s.future.now)}): check the clocks. The next backup does not continue its chain (only --full backups can be made), and remove-older-than and remove-all-but-n-full delete nothing while it is there.`,
      '',
    );
  }
  const i = s.interrupted;
  if (i) {
    lines.push(
      i.blocker === undefined ?
        `Found ${i.files.length} file(s) of the interrupted ${describeSet(i)}: the next backup (of the same folder, to the same keys) resumes it, and offsite cleanup keeps them.`
      : `Found ${i.files.length} file(s) of the interrupted ${describeSet(i)}, which cannot be resumed (${i.blocker}): the next backup or offsite cleanup removes them.`,
    );
  }
  if (s.leftovers.length) lines.push(`Found ${s.leftovers.length} file(s) of incomplete backup sets that nothing depends on (offsite cleanup removes them).`);
  if (s.temporary.length) {
    lines.push(`Found ${s.temporary.length} temporary upload(s) that did not finish, of an interrupted backup or of one running now (offsite cleanup removes them).`);
  }
  if (s.localTemporary.length) {
    lines.push(`Found ${s.localTemporary.length} temporary file(s) of runs that died in the local cache (offsite cleanup removes them).`);
  }
  for (const p of s.inProgress ?? []) lines.push(describeInProgress(p));
  for (const d of s.damaged) lines.push(`Damaged ${describeSet(d)} (${d.files.length} file(s), offsite cleanup keeps them): ${d.reason}. ${damageAdvice(d)}`);
  if (!i && s.leftovers.length === 0 && s.temporary.length === 0 && s.localTemporary.length === 0 && (s.inProgress ?? []).length === 0 && s.damaged.length === 0 && s.chains.every((c) => c.damage === undefined && c.sets.every((x) => x.damage === undefined))) {
    lines.push('No orphaned or incomplete backup sets found.');
  }
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
export async function signatureFilesAt(repo: Repository, time: number, opts: Pick<ReadOptions, 'signal' | 'now'>): Promise<{ last: BackupSet; files: string[] } | undefined> {
  const c = repo.collection;
  const chain = chainAtTime(c, time);
  // As restore (setsForTime): for a time before the oldest full set there is no answer; duplicity's
  // oldest chain would list later files as if they were older.
  const sets = chain && chain.fullSet.endTime <= time ? setsAtTime(chain, time) : [];
  if (!chain || sets.length === 0) {
    await setsForTime(repo, time, opts); // throws the clear 'no backup' error
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
  for (const n of names) files.push(await repo.sigtarFile(n, opts.signal));
  return { last, files };
}

/** The paths of the backup as of a time, from the signature chain up to that set. */
export async function* listFiles(opts: ReadOptions): AsyncGenerator<ListedFile> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const at = await signatureFilesAt(repo, opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000), opts);
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
      if (p?.kind === 'signature' && !p.partial) sigNames.set(setKeyOf(p.setType, p.startTime, p.endTime), name);
    }
    const out: FileVersion[] = [];
    for (const chain of repo.collection.chains) {
      let present = false; // in the chain's state before the set read next
      for (const set of [chain.fullSet, ...chain.incSets]) {
        const sigName = sigNames.get(setKeyOf(set.type, set.startTime, set.endTime));
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

/** A type as the CLI names it. */
export const TYPE_WORDS: Readonly<Record<EntryType, string>> = { reg: 'file', dir: 'folder', sym: 'symlink', fifo: 'fifo', chr: 'character-device', blk: 'block-device' };

export function formatListLine(f: ListedFile): Buffer {
  // The path's own bytes, as `ls` prints them: a name that is not UTF-8 can be copied back into a command.
  // The backed-up folder itself is "." (as in the JSON form, and duplicity's list-current-files).
  const d = new Date(f.meta.mtime * 1000);
  return Buffer.concat([Buffer.from(`${d.toUTCString()} `), f.index.length ? indexToBytes(f.index) : DOT, NEWLINE]);
}

const NEWLINE = Buffer.from('\n');
const DOT = Buffer.from('.');
