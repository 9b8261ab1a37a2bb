// Backup: scan the source in duplicity's order next to the state of the previous backup (the merged
// signature chain, plus Offsite's stat cache), and store what changed:
//   new or changed regular file  → snapshot/ (or diff/ against the previous signature)
//   other new or changed path    → snapshot/ (no data)
//   vanished path                → deleted/
// in 64 KiB multivol chunks, packed into size-capped encrypted volumes that upload while the next one is
// written; then the signature archive and, last, the manifest (a set without a manifest is incomplete,
// so an interrupted backup never looks like a finished one). A checkpoint in the archive dir lets the
// next run resume an interrupted backup after its last volume that ended on a file boundary.
// FORMAT §6, §8, §10; duplicity's diffdir.get_delta_iter and dup_main.write_multivol.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { BackendError, type Backend } from '../backend/backend';
import { cacheAccessError, type ArchiveDir } from '../cache/archiveDir';
import { acquireLock } from '../cache/lock';
import type { BackupChain, BackupSet, Collection } from '../chain/collection';
import { CLOCK_SKEW_SECONDS, signatureChainFor } from '../chain/collection';
import { timeToString } from '../chain/time';
import { asRecipient } from '../crypto/recipient';
import { DeltaEncoder } from '../delta/delta';
import { blockLengthFor, parseSignature, SignatureBuilder } from '../delta/signature';
import { OffsiteError, isCancellation, throwIfAborted } from '../errors';
import type { Logger } from '../log';
import { formatFileChangeOf, formatManifest, type FileChange, type Manifest } from '../manifest/manifest';
import { manifestName, parseName, signatureName, volumeName } from '../manifest/naming';
import { compareIndex, indexToBytes, indexToString, isPrefixOf } from '../pathIndex';
import { throttled, type ProgressSink } from '../progress';
import { LISTINGS, ListingCache } from '../scan/listingCache';
import { scanTreeSync, sourceFolderStat, type ScanEntry, type SelectionRule } from '../scan/scanner';
import { unmatchedRuleWarning } from '../scan/selection';
import { StatAhead } from '../scan/statAhead';
import { changedRuleInput, formatRuleInputs, readRuleInputs, RULE_INPUTS, RuleInputs } from '../scan/gitignore';
import { NoChangeProbe, type ProbeResult } from '../scan/noChangeProbe';
import { RACY_WINDOW_NS, STAT_CACHES, StatCacheCursor, statCacheComplete, statCacheWholeTree, StatCacheWriter, statRecordOf, statUnchanged, type StatRecord } from '../scan/statCache';
import type { EntryMeta, EntryType, PathIndex } from '../types';
import { deletedHeader, formatMemberName, metaToTarHeader } from '../volume/difftar';
import { setDamage, splitTemporaryUploads } from './audit';
import { clearCheckpoint, PARTIAL_FILELIST, PARTIAL_SIGTAR, readCheckpoint, resumeBlocker, writeCheckpoint, type Checkpoint, type ResumePoint } from './checkpoint';
import { encodeToFile, encoder, type CryptoContext } from './remoteFiles';
import { cacheNameOf, Repository } from './repository';
import { AppendFile, cachedSigtarGzip, mergeSignatureChain, readCachedSigtar, SIGTAR_COPY_PIECE, SigtarWriter, type SigEntry } from './sigtar';
import { emptyStats, type BackupStats } from './stats';
import { VolumeWriter, type FinishedVolume } from './volumeWriter';

/** duplicity reads and stores file data in 64 KiB pieces (diffdir.get_read_size). */
export const CHUNK = 64 * 1024;
const READ_SIZE = 1 << 20;
/**
 * The scan loop gives the event loop a turn at least this often. Small files and unchanged ones are
 * handled with synchronous reads and already-resolved promises, which never reach the poll phase, so a
 * compression job that finished in the threadpool waited for this thread before its next step (its
 * primed window done, another output chunk): the pool sat idle (whole backup at ~135% of 2 cores).
 */
const YIELD_MS = 0.5;
/** zlib level of incremental backups' compressible data (full backups: the encrypter's default, 1). */
const INC_DEFLATE_LEVEL = 6;

export interface BackupOptions {
  readonly source: string;
  readonly backend: Backend;
  readonly archive: ArchiveDir;
  readonly crypto: CryptoContext;
  readonly log: Logger;
  readonly volumeSize: number;
  readonly full?: boolean;
  /** Start a new chain when the current one's full backup is older than this many seconds. */
  readonly fullIfOlderThan?: number;
  readonly rules?: readonly SelectionRule[];
  readonly gitignore?: boolean;
  readonly allowSourceMismatch?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressSink;
  /** Clock in milliseconds (tests inject one). */
  readonly now?: () => number;
  /** The smallest previous stat cache whose paths a worker thread stats ahead of the walk (default: statAhead.ts's). */
  readonly statAheadMinBytes?: number;
  /** false: always walk the tree, never take the no-change probe's word (noChangeProbe.ts; tests compare the two). */
  readonly noChangeProbe?: boolean;
}

export interface FileError {
  readonly path: string;
  readonly message: string;
}

export interface BackupResult {
  readonly type: 'full' | 'inc';
  readonly time: number;
  readonly stats: BackupStats;
  readonly errors: readonly FileError[];
  readonly volumes: number;
  /** True when this run finished a backup an earlier run had started. */
  readonly resumed: boolean;
  /** True when the no-change probe found the tree as the previous backup left it, so nothing was walked. */
  readonly probed: boolean;
}

/**
 * Every path below the root is backed up, or every path .gitignore files keep: no selection rules
 * (whose 'scan' verdicts walk folders that have no record). Only then can a stat cache's records stand
 * for the tree (statCache.ts's FLAG_WHOLE_TREE, FLAG_GITIGNORE_TREE).
 */
function wholeTreeSelection(opts: BackupOptions): boolean {
  return (opts.rules ?? []).length === 0;
}

/**
 * The no-change probe of the cache folder's stat cache (there is one: each backup removes the older),
 * started before the remote is even listed, so that its worker thread is under way when the backup
 * decides whether it needs a walk (BackupRun takes it only for an incremental from that very cache).
 */
function startProbe(opts: BackupOptions): NoChangeProbe | undefined {
  const probe = probeFor(opts);
  // bin/offsite starts the probe's worker ahead for every backup: one the probe did not take is ended.
  NoChangeProbe.discardPrestarted();
  return probe;
}

function probeFor(opts: BackupOptions): NoChangeProbe | undefined {
  if (opts.full || opts.noChangeProbe === false || !wholeTreeSelection(opts)) return undefined;
  const gitignore = opts.gitignore === true;
  const name = opts.archive.newest(STAT_CACHES);
  if (name === undefined || !statCacheWholeTree(opts.archive.file(name), gitignore)) return undefined;
  if (gitignore) {
    // The .gitignore files (in the tree and above it) and info/exclude files the last scan read: any
    // change there may change what is selected, and shows in no record.
    const inputs = readRuleInputs(opts.archive.file(RULE_INPUTS.name(STAT_CACHES.timeOf(name)!)));
    const changed = inputs === undefined ? 'no record of them' : changedRuleInput(inputs);
    if (changed !== undefined) {
      opts.log.debug(`No-change probe: the .gitignore rules may have changed (${changed}); walking the tree`);
      return undefined;
    }
  }
  return NoChangeProbe.start(opts.source, opts.archive.file(name));
}

/** A sorted stream we can peek at and advance up to an index. */
class Cursor<T extends { index: PathIndex }> {
  private it: AsyncIterator<T>;
  private head?: T;
  private done = false;
  constructor(src: AsyncIterable<T>) {
    this.it = src[Symbol.asyncIterator]();
  }
  async peek(): Promise<T | undefined> {
    if (!this.head && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.head = r.value;
    }
    return this.head;
  }
  async next(): Promise<T | undefined> {
    const h = await this.peek();
    this.head = undefined;
    return h;
  }
  /** Ends the underlying iterator early (closing the files a generator holds). */
  async close(): Promise<void> {
    this.done = true;
    await this.it.return?.(undefined);
  }
  /** Pops and returns the element at `index` if there is one; elements before it go to `skipped`. */
  async take(index: PathIndex, skipped?: (t: T) => Promise<void>): Promise<T | undefined> {
    for (;;) {
      const h = await this.peek();
      if (!h) return undefined;
      const c = compareIndex(h.index, index);
      if (c > 0) return undefined;
      this.head = undefined;
      if (c === 0) return h;
      if (skipped) await skipped(h);
    }
  }
}

/**
 * The stat cache written with the chain's last set, as a cursor in scan order. A corrupt or unreadable
 * file ends it early (failed), with a warning: the files are then compared by reading them.
 */
class PrevStat {
  failed = false;
  private cursor: StatCacheCursor | undefined;

  constructor(
    file: string | undefined,
    private readonly warn: (message: string) => void,
  ) {
    if (file === undefined) return;
    try {
      this.cursor = StatCacheCursor.open(file);
    } catch (e) {
      this.fail(e);
    }
  }

  peek(): StatRecord | undefined {
    try {
      return this.cursor?.peek();
    } catch (e) {
      this.fail(e);
      return undefined;
    }
  }

  shift(): StatRecord | undefined {
    const h = this.peek();
    this.cursor?.shift();
    return h;
  }

  /** The record of `index`, skipping (and dropping) the records before it. */
  find(index: PathIndex): StatRecord | undefined {
    try {
      return this.cursor?.find(index);
    } catch (e) {
      this.fail(e);
      return undefined;
    }
  }

  close(): void {
    this.cursor?.close();
    this.cursor = undefined;
  }

  private fail(e: unknown): void {
    this.failed = true;
    this.cursor = undefined; // the cursor closed itself
    this.warn(`Ignoring the stat cache (${(e as Error).message}): unchanged files will be read once to compare`);
  }
}

/** Cuts a byte stream into duplicity's members: one member below 64 KiB, else 64 KiB multivol chunks. */
class Chunker {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  chunks = 0;
  constructor(private readonly emit: (data: Buffer, chunk: number | undefined, last: boolean) => Promise<void>) {}

  async push(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    // Emit a chunk only when more data is known to follow it, so every emitted chunk is "not last".
    while (this.pendingBytes > CHUNK) await this.emit(this.take(CHUNK), ++this.chunks, false);
  }

  async end(): Promise<void> {
    if (this.chunks === 0 && this.pendingBytes < CHUNK) {
      await this.emit(this.take(this.pendingBytes), undefined, true);
      return;
    }
    // The remainder (up to 64 KiB) is the last chunk; an exact multiple of 64 KiB ends with an empty
    // chunk, as in duplicity (FORMAT §6.4).
    if (this.pendingBytes === CHUNK) await this.emit(this.take(CHUNK), ++this.chunks, false);
    await this.emit(this.take(this.pendingBytes), ++this.chunks, true);
  }

  /**
   * The first n pending bytes. A snapshot's reads are 64 KiB member buffers, so the first piece is
   * usually exactly the chunk (no copy); joining all pending pieces every time copied each multi-chunk
   * file once more (two 64 KiB pieces per take).
   */
  private take(n: number): Buffer {
    const first = this.pending[0];
    let out: Buffer;
    if (first !== undefined && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length > n) this.pending[0] = first.subarray(n);
      else this.pending.shift();
    } else {
      let k = 0;
      let got = 0;
      while (got < n) got += this.pending[k++].length;
      const joined = k === 1 ? this.pending[0] : Buffer.concat(this.pending.slice(0, k), got);
      out = joined.subarray(0, n);
      this.pending.splice(0, k, ...(got > n ? [joined.subarray(n)] : []));
    }
    this.pendingBytes -= n;
    return out;
  }
}

/** duplicity's ROPath.__eq__ for the metadata it compares (FORMAT §10). */
function sameMeta(a: EntryMeta, b: EntryMeta): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'sym') return !!a.linkname && !!b.linkname && a.linkname.equals(b.linkname);
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  if (a.type === 'chr' || a.type === 'blk') return a.devmajor === b.devmajor && a.devminor === b.devminor;
  return a.mtime === b.mtime;
}

function canonicalSource(source: string): string {
  // duplicity's Path.get_canonical: drop empty and '.' components and trailing slashes, keep a leading '/'.
  const abs = source.startsWith('/');
  const parts = source.split('/').filter((c) => c !== '' && c !== '.');
  return (abs ? '/' : '') + parts.join('/') || (abs ? '/' : '.');
}

export async function backup(opts: BackupOptions): Promise<BackupResult> {
  const now = opts.now ?? Date.now;
  const lock = await acquireLock(opts.archive.file('lockfile'), 'backup', { signal: opts.signal });
  // What a killed run left in the cache folder (its temp folder, half-written files) goes first.
  for (const stale of [...opts.archive.staleTempDirs(), ...opts.archive.staleTempFiles()]) {
    try {
      fs.rmSync(stale, { recursive: true, force: true });
    } catch (e) {
      opts.log.warn(`Could not remove ${stale}, left by an interrupted run: ${(e as Error).message}`); // not this backup's concern
    }
  }
  let tempDir: string | undefined;
  let probe: ReturnType<typeof startProbe> | undefined;
  try {
    // In here: a cache folder that fails now must not keep the lock of a process that lives on (the extension's engine).
    tempDir = opts.archive.makeTempDir();
    probe = startProbe(opts);
    return await new BackupRun(opts, tempDir, now, probe).run();
  } finally {
    probe?.cancel();
    if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true });
    lock.release();
  }
}

interface Marks {
  readonly sigtarBytes: number;
  readonly filelistBytes: number;
  readonly stats: BackupStats;
  /** The last path accounted for in these marks (BackupRun.accounted). */
  readonly index?: PathIndex;
}

class BackupRun {
  private readonly repo: Repository;
  private stats: BackupStats;
  private readonly errors: FileError[] = [];
  private readonly progress: ReturnType<typeof throttled>;
  private volumes!: VolumeWriter;
  private sigtar!: SigtarWriter;
  private filelist!: AppendFile;
  private statOut?: StatCacheWriter;
  /** When the scan began, for the racy rule of the stat cache and listings (ns since the epoch). */
  private scanStartNs = 0n;
  private ahead?: StatAhead;
  /** The no-change probe found the tree as the previous backup left it: nothing to walk. */
  private noChange?: Extract<ProbeResult, { unchanged: true }>;
  /** With .gitignore: the rule files the walk read (kept beside the stat cache for the probe). */
  private ruleInputs?: RuleInputs;
  private readonly erroredDirs: PathIndex[] = [];
  /** A path of this set's state has no stat record (it kept an older version after an error). */
  private incomplete = false;
  private readonly readBuf = Buffer.allocUnsafe(READ_SIZE);
  private files = 0;
  private checkpoint!: Checkpoint;
  /** Closed volumes of this run with the marks at their end, until their upload is confirmed. */
  private readonly closed = new Map<number, { v: FinishedVolume; marks: Marks; uploaded: boolean }>();
  /**
   * A put of this run completed, or may have placed its file: it failed in a way that does not say it
   * did not (a lost connection, a retried attempt whose answer was lost), or it was still running.
   */
  private mayHaveUploaded = false;
  private putsRunning = 0;
  private resumeFrom?: ResumePoint;
  private nextConfirm = 1;
  private contiguous: { v: FinishedVolume; marks: Marks }[] = [];
  /**
   * The last path of the scan whose members, signature, file-list line and counters are all written:
   * the volume's last path, or an unchanged one after it (counted, nothing stored). A resume point
   * after a volume continues after this path, not after the volume's last: the marks count the
   * unchanged ones, which a resumed run would otherwise count again.
   */
  private accounted?: PathIndex;

  constructor(
    private readonly opts: BackupOptions,
    private readonly tempDir: string,
    private readonly now: () => number,
    private readonly probe?: NoChangeProbe,
  ) {
    this.repo = new Repository(opts.backend, opts.archive, opts.crypto, opts.log, tempDir);
    this.repo.compareUnrecorded = false; // see Repository.compareUnrecorded
    this.stats = emptyStats(now() / 1000);
    this.progress = throttled(opts.onProgress);
  }

  async run(): Promise<BackupResult> {
    try {
      return await this.runBackup();
    } finally {
      this.ahead?.close(); // whatever failed, the worker thread of statAhead.ts stops
    }
  }

  private async runBackup(): Promise<BackupResult> {
    const { opts } = this;
    const source = path.resolve(opts.source);
    // Before the remote is read (a missing folder fails at once). The walk stats the folder again when
    // it starts, and must: its listing is reused when that stat matches the last one, so a stat from
    // now would hide what the folder gains while the remote is read (backupStatCache.test.ts).
    sourceFolderStat(source, 'Check the path you gave to back up');
    if (opts.crypto.recipients.length === 0) encoder(opts.crypto); // throws the 'no key' error

    const previous = readCheckpoint(opts.archive);
    // After an interrupted run, with the temporary uploads, which settling it removes.
    let collection = await this.repo.refresh(opts.signal, { partial: previous !== undefined });
    this.repo.pruneCache();
    const recipients = opts.crypto.recipients.map((k) => asRecipient(k).fingerprint).sort();
    const resumable = previous ? await this.settlePrevious(previous, collection, source, recipients) : undefined;
    // Settling removed files of the interrupted run (its signature file may have made the chain look
    // longer than it is): decide on the remote as it is now.
    if (previous) collection = await this.repo.refresh(opts.signal);

    const chain = collection.chains.at(-1);
    const nowSec = Math.floor(this.now() / 1000);
    let type: 'full' | 'inc' = resumable?.type ?? 'inc';
    let sigFiles: string[] = [];
    let damage: { set: BackupSet; why: string } | undefined;
    if (!resumable) {
      if (opts.full || !chain) type = 'full';
      else if (opts.fullIfOlderThan !== undefined && chain.fullSet.endTime < nowSec - opts.fullIfOlderThan) {
        opts.log.info(`The last full backup (${timeToString(chain.fullSet.endTime)}) is older than the limit: starting a new chain`);
        type = 'full';
      } else if ((damage = firstDamagedSet(this.repo, chain)) !== undefined) {
        // An incremental applies on top of every set before it: on a damaged one (the full set or any
        // incremental), it could not be restored either. The sets before the damaged one stay restorable.
        const { set, why } = damage;
        opts.log.warn(
          set === chain.fullSet
            ? `The last backup chain cannot be restored (its full set of ${timeToString(set.endTime)}: ${why}): starting a new chain`
            : `The last backup chain cannot be restored past its incremental set of ${timeToString(set.endTime)} (${why}): starting a new chain (the backups before that set stay restorable)`,
        );
        type = 'full';
      } else if (signatureChainFor(collection, chain)?.endTime !== chain.endTime) {
        opts.log.warn('No signatures found for the last backup chain, switching to full backup');
        type = 'full';
      }
    }
    // The scan begins here: the worker thread of statAhead.ts starts on the previous stat cache now,
    // so that it is ahead of the walk when the walk starts.
    this.scanStartNs = BigInt(Date.now()) * 1_000_000n; // the file clock, not the set's (this.now)
    if (opts.gitignore === true && wholeTreeSelection(opts)) this.ruleInputs = new RuleInputs(this.scanStartNs - RACY_WINDOW_NS);
    if (type === 'inc') {
      const prevStat = this.prevStatFile(chain!);
      if (!resumable && this.probe?.statFile === prevStat) {
        const probe = await this.probe.run();
        if (probe.unchanged) {
          this.noChange = probe;
          opts.log.debug(`No-change probe: all ${probe.records} paths as the previous backup left them (${probe.workerRecords} checked by the worker thread); not walking the tree`);
        } else opts.log.debug(`No-change probe: ${probe.why}; walking the tree`);
      }
      if (!this.noChange) {
        this.ahead = StatAhead.start(source, prevStat, {
          minCacheBytes: opts.statAheadMinBytes,
          onProblem: (m) => opts.log.debug(`Stat ahead: ${m}`),
        });
      }
      const sigChain = signatureChainFor(collection, chain!)!;
      for (const n of [sigChain.full, ...sigChain.incs.map((i) => i.name)]) if (n) sigFiles.push(await this.repo.sigtarFile(n, opts.signal));
      await this.checkSource(chain!, source);
    } else sigFiles = [];
    this.probe?.cancel(); // not taken, or done: its worker thread stops now, not after the backup

    let time = resumable?.time ?? nowSec;
    if (!resumable) {
      // A set's time must be after the chain's end, in whole seconds (duplicity sleeps too), and a full
      // set's too after every set there: two sets of one second would have the same file names.
      if (type === 'inc' && chain!.endTime > nowSec + CLOCK_SKEW_SECONDS) {
        throw new OffsiteError('format', `The last backup (${timeToString(chain!.endTime)}) is dated in the future`, {
          hint: "Check this machine's clock. If it is right, that backup was dated by a wrong clock where it was made: until its files (named with that time) are deleted by hand, only full backups (--full) can be made here",
        });
      }
      let newest = 0;
      for (const n of this.repo.remoteFiles.keys()) newest = Math.max(newest, parseName(n)?.endTime ?? 0);
      const last = newest <= nowSec + CLOCK_SKEW_SECONDS ? newest : type === 'inc' ? chain!.endTime : 0;
      while (time <= last) {
        await sleep(Math.max(50, (last + 1) * 1000 - this.now()), undefined, { signal: opts.signal });
        time = Math.floor(this.now() / 1000);
      }
    }
    const startTime = type === 'inc' ? chain!.endTime : undefined;
    this.checkpoint = resumable ?? { type, time, startTime, source, recipients, uploaded: [] };
    this.resumeFrom = resumable?.resume;
    writeCheckpoint(opts.archive, this.checkpoint);
    opts.log.info(`${this.resumeFrom ? 'Resuming the interrupted ' : ''}${type === 'full' ? 'full' : 'incremental'} backup of ${source} to ${opts.backend.displayUrl}, set ${timeToString(time)}`);

    try {
      await this.write(type, time, startTime, source, sigFiles, chain);
    } catch (e) {
      await this.volumes?.abort();
      await this.sigtar?.abort();
      await this.filelist?.abort();
      await this.statOut?.abort();
      if (isCancellation(e)) {
        // A cancelled backup leaves nothing behind: the user asked for it to stop, not to pause.
        await this.removeRemote(this.checkpoint.uploaded);
        clearCheckpoint(opts.archive);
      } else if (this.checkpoint.uploaded.length && (this.resumeFrom !== undefined || this.mayHaveUploaded || this.putsRunning > 0)) {
        // (With nothing placed, by this run or the one it resumed, the next run only clears the
        // checkpoint and any temporary upload.)
        opts.log.warn(`The backup stopped; the next run resumes it${this.checkpoint.resume ? ` after ${indexToString(this.checkpoint.resume.index)}` : ''} or removes what it uploaded`);
      }
      throw e;
    }
    this.stats.EndTime = this.now() / 1000;
    this.stats.ElapsedTime = this.stats.EndTime - this.stats.StartTime;
    this.progress({ operation: 'backup', phase: 'done', files: this.files, bytes: this.stats.SourceFileSize, uploadedBytes: this.stats.TotalDestinationSizeChange }, true);
    return { type, time, stats: this.stats, errors: this.errors, volumes: this.volumes.volumes.length, resumed: !!this.resumeFrom, probed: !!this.noChange };
  }

  /**
   * An earlier run left a checkpoint: it crashed, failed or was killed. Returns the checkpoint when its
   * backup can be resumed; otherwise removes what it uploaded (never a file of a complete set).
   */
  private async settlePrevious(c: Checkpoint, collection: Collection, source: string, recipients: string[]): Promise<Checkpoint | undefined> {
    const { opts } = this;
    // Its temporary uploads go in any case: even a run that finished on the remote may have been
    // killed between placing its last file and removing that file's temporary copy. Not those of a
    // backup that may be running on another machine (audit.ts InProgressFiles). Only the temporary
    // uploads are judged: the rest of the audit (damage, leftovers) is cleanup's and status's.
    const ended = splitTemporaryUploads(this.repo, c, { now: Math.floor(this.now() / 1000) }).temporary;
    const temps = ended.length ? await opts.backend.cleanupPartial({ only: new Set(ended), signal: opts.signal }) : [];
    if (temps.length) opts.log.info(`Removed ${temps.length} temporary upload(s) of an interrupted run`);
    const complete = collection.chains.some((ch) => [ch.fullSet, ...ch.incSets].some((s) => s.endTime === c.time));
    if (complete) {
      // It finished on the remote; only the local bookkeeping was interrupted.
      clearCheckpoint(opts.archive);
      return undefined;
    }
    const why =
      c.source !== source ? 'it was a backup of another folder'
      : c.recipients.join() !== recipients.join() ? 'the encryption keys changed'
      : opts.full && c.type === 'inc' ? 'a full backup was asked for'
      : resumeBlocker(c, collection, this.repo.remoteFiles, opts.archive);
    if (!why) {
      const keep = new Set(c.resume!.volumes.map((v) => volumeName(c.type, c.time, c.startTime, v.volumeNumber, 'gpg')));
      await this.removeRemote(c.uploaded.filter((n) => !keep.has(n)));
      return { ...c, uploaded: [...keep] };
    }
    opts.log.warn(`Not resuming the interrupted backup of ${timeToString(c.time)} (${why}): removing what it uploaded`);
    const leftovers = new Set(c.uploaded);
    for (const name of this.repo.remoteFiles.keys()) if (parseName(name)?.endTime === c.time) leftovers.add(name);
    await this.removeRemote([...leftovers]);
    clearCheckpoint(opts.archive);
    return undefined;
  }

  /** The stat cache written with the chain's last set. */
  private prevStatFile(chain: BackupChain): string {
    return this.opts.archive.file(STAT_CACHES.name(timeToString(chain.endTime)));
  }

  /**
   * duplicity refuses to continue a chain made from another folder (Manifest.check_dirinfo, which
   * compares the folder's name as given). The name recorded is the one given then, so a relative one
   * (`offsite backup projA …`) is compared with the name given now, or with the end of the folder's
   * full path (the same folder named from elsewhere); only a name that says nothing of the folder
   * (`.`, `../…`) cannot be checked.
   */
  private async checkSource(chain: BackupChain, source: string): Promise<void> {
    if (this.opts.allowSourceMismatch) return;
    const last = chain.incSets.at(-1) ?? chain.fullSet;
    const m = await this.repo.manifest(last, this.opts.signal);
    const dir = m.localdir?.toString();
    if (!dir || dir === source || dir === canonicalSource(this.opts.source)) return;
    const unknowable = !path.isAbsolute(dir) && (dir === '.' || dir === '..' || dir.startsWith('../'));
    const sameTail = !path.isAbsolute(dir) && source.endsWith(`/${dir}`);
    if (!unknowable && !sameTail) {
      throw new OffsiteError('usage', `This backup chain was made from ${dir}, not from ${source}`, {
        hint: 'Back up each folder to its own remote URL, or pass --allow-source-mismatch if the folder was moved',
      });
    }
  }

  private async write(type: 'full' | 'inc', time: number, startTime: number | undefined, source: string, sigFiles: string[], chain: BackupChain | undefined): Promise<void> {
    const { opts } = this;
    // An incremental is mostly small (a day's edits): zlib level 6, as gpg does for duplicity, stores
    // it smaller for little CPU; a full backup is big and CPU-bound: level 1 (bench/README.md).
    const deflate = type === 'inc' ? { level: INC_DEFLATE_LEVEL } : undefined;
    // A signature archive is small (~2% of the data) and its MD4 sums look random byte by byte, yet
    // repeat wherever the data repeats (a database's equal pages): the entropy sample would store it,
    // so it is always deflated (measured: an edit day's archive 613 → 503 KB, as small as gpg's).
    const sigDeflate = { ...deflate, storeAboveEntropy: Infinity };
    const r = this.resumeFrom;
    if (r) this.stats = { ...r.stats, StartTime: this.stats.StartTime, TotalDestinationSizeChange: r.sizes.reduce((a, b) => a + b, 0) };
    try {
      this.sigtar = await SigtarWriter.open(opts.archive.file(PARTIAL_SIGTAR), r?.sigtarBytes);
      this.filelist = await AppendFile.open(opts.archive.file(PARTIAL_FILELIST), r?.filelistBytes);
    } catch (e) {
      throw cacheAccessError(e, opts.archive.dir); // another user's (sudo) interrupted run left them
    }
    this.nextConfirm = (r?.volumes.length ?? 0) + 1;
    this.volumes = new VolumeWriter({
      volumeSize: opts.volumeSize,
      tempDir: this.tempDir,
      encoder: () => encoder(opts.crypto, deflate),
      footer: true,
      maxPending: Math.max(2, opts.backend.properties.connections),
      firstVolume: this.nextConfirm,
      previous: r?.volumes,
      onClose: async () => {
        await this.sigtar.sync();
        await this.filelist.sync();
        return { sigtarBytes: this.sigtar.length, filelistBytes: this.filelist.length, stats: { ...this.stats }, index: this.accounted };
      },
      onVolume: (v, marks) => this.uploadVolume(type, time, startTime, v, marks as Marks),
    });
    const statName = STAT_CACHES.name(timeToString(time));
    const dirsName = LISTINGS.name(timeToString(time));
    if (this.noChange) this.reuseScan(this.noChange, dirsName);
    else {
      this.statOut = await StatCacheWriter.create(opts.archive.file(statName), { scanStartNs: this.scanStartNs });
      await this.walk(type, source, sigFiles, chain, dirsName);
    }

    await this.volumes.finish();
    await this.sigtar.finish();
    await this.filelist.close();

    // Signatures, then the manifest: its presence is what makes the set complete.
    const sigName = signatureName(type, time, startTime, 'gpg');
    const sigLocal = opts.archive.file(cacheNameOf(sigName));
    const sigPart = opts.archive.tempFile(cacheNameOf(sigName));
    const sigEnc = path.join(this.tempDir, 'sigtar.gpg');
    // The local gzip copy and the encrypted upload copy are made at once (both compress: two cores),
    // in 256 KiB steps: in 64 KiB ones (each a threadpool round trip for zlib) the two took ~0.55 s
    // for a 20k-file workspace's 39 MB archive, ~0.32 s so (1 MiB: no faster, ~8 MiB more RSS).
    const [, sigInfo] = await Promise.all([
      pipeline(fs.createReadStream(this.sigtar.file, { highWaterMark: SIGTAR_COPY_PIECE }), cachedSigtarGzip(), fs.createWriteStream(sigPart, { mode: 0o600 })),
      encodeToFile(fs.createReadStream(this.sigtar.file, { highWaterMark: SIGTAR_COPY_PIECE }), sigEnc, opts.crypto, sigDeflate),
    ]);
    await this.put(sigName, sigEnc, sigInfo.size);
    fs.renameSync(sigPart, sigLocal);
    this.repo.recordSigtarCopy(cacheNameOf(sigName), sigInfo.size);

    const manifest: Manifest = {
      hostname: os.hostname(),
      localdir: Buffer.from(canonicalSource(opts.source)),
      volumes: this.volumes.volumes,
    };
    const text = manifestWithFilelist(manifest, opts.archive.file(PARTIAL_FILELIST));
    const manName = manifestName(type, time, startTime, true);
    const manEnc = path.join(this.tempDir, 'manifest.gpg');
    const manInfo = await encodeToFile(text, manEnc, opts.crypto, deflate);
    opts.archive.writeAtomic(cacheNameOf(manName), text);
    this.repo.recordManifestCopy(cacheNameOf(manName), text, manInfo.size);
    await this.put(manName, manEnc, manInfo.size);

    clearCheckpoint(opts.archive);
    const rulesName = RULE_INPUTS.name(timeToString(time));
    if (this.noChange) {
      // The previous set's stat cache, and its rule inputs (without them the next run would only walk).
      const rules = opts.archive.file(RULE_INPUTS.name(timeToString(chain!.endTime)));
      if (opts.gitignore === true && fs.existsSync(rules)) opts.archive.copyAtomic(rules, rulesName);
      opts.archive.copyAtomic(this.prevStatFile(chain!), statName);
    } else {
      // Complete: a record for every path of this set's state (see statCacheComplete); whole tree: and
      // of every path below the root (or that .gitignore files keep), nothing left out: the no-change
      // probe may stand for the next walk. The rule files read go beside it first.
      const complete = !this.incomplete && !this.resumeFrom;
      const wholeTree = complete && wholeTreeSelection(opts) && this.errors.length === 0;
      if (wholeTree && this.ruleInputs) opts.archive.writeAtomic(rulesName, formatRuleInputs(this.ruleInputs.list));
      await this.statOut!.close({ complete, wholeTree, gitignore: opts.gitignore === true });
      this.statOut = undefined;
    }
    opts.archive.removeOthers(STAT_CACHES, statName);
    opts.archive.removeOthers(RULE_INPUTS, rulesName);
  }

  /**
   * The scan: walks the tree against the previous state (the stat cache, else the signature chain),
   * storing what changed and recording every path in the new stat cache and folder listings.
   */
  private async walk(type: 'full' | 'inc', source: string, sigFiles: string[], chain: BackupChain | undefined, dirsName: string): Promise<void> {
    const { opts } = this;
    const r = this.resumeFrom;
    // The previous state: the merged signature chain, and the stat cache written with the chain's last set.
    // The signature files are opened only when first read (a no-change incremental never reads them).
    const prevSig = new Cursor<SigEntry>(mergeSignatureChain(sigFiles.map((f) => readCachedSigtar(f))));
    const statFile = chain && type === 'inc' ? this.prevStatFile(chain) : undefined;
    const prevStat = new PrevStat(statFile, (m) => opts.log.warn(m));
    const done = r?.index; // everything up to here is in the volumes already uploaded
    // With a complete stat cache, its records are exactly the paths of the previous state: a path whose
    // record matches is unchanged, a record the scan does not meet is a deletion, and the signature
    // chain is read (lazily) only up to the paths that changed. Otherwise the chain is the state.
    let statMode = !!statFile && statCacheComplete(statFile);
    /** Every path of the previous state up to here is accounted for (met by the scan, or deleted). */
    let frontier: PathIndex | undefined;
    const goneFromStat = async (rec: StatRecord): Promise<void> => {
      await this.vanished(rec.index, rec.type, done);
      frontier = rec.index;
    };
    // A stat cache found corrupt part way: what its lost records said is unknown, so the signature
    // chain takes over from the frontier on.
    const leaveStatMode = async (): Promise<void> => {
      statMode = false;
      opts.log.debug('Stat cache unreadable part way: comparing against the signature chain from here');
      if (frontier) await prevSig.take(frontier);
    };

    // Folder listings: the newest in the cache folder, whichever set's scan wrote it (listingCache.ts).
    const prevDirs = opts.archive.newest(LISTINGS);
    const listings = new ListingCache({
      previous: prevDirs === undefined ? undefined : opts.archive.file(prevDirs),
      next: opts.archive.file(dirsName),
      scanStartNs: this.scanStartNs,
      onProblem: (m) => opts.log.debug(`Folder listings: ${m}`),
    });
    const ahead = this.ahead;
    let scanned = false;
    let unmatched: readonly SelectionRule[] = [];
    // The synchronous walk: no promise per path (the loop below awaits only real work, yields and
    // checks the abort signal; scanTreeSync itself does not look at one).
    const scan = scanTreeSync(source, {
      rules: opts.rules,
      gitignore: opts.gitignore,
      onError: (index, err) => this.fileError(index, err, true),
      listings,
      // The lstats the worker thread has made ahead of the walk (started in run()).
      lstat: ahead?.lstat,
      ruleInputs: this.ruleInputs,
    });
    try {
      let lastYield = performance.now();
      // By hand rather than for…of, for the walk's result (its rules that decided no path).
      let step = scan.next();
      for (; !step.done; step = scan.next()) {
        const entry = step.value;
        throwIfAborted(opts.signal);
        if (performance.now() - lastYield > YIELD_MS) {
          await setImmediate();
          lastYield = performance.now();
        }
        const skip = done !== undefined && compareIndex(entry.index, done) <= 0;
        let stat: StatRecord | undefined;
        if (statMode) {
          // Records before this path: deleted since the previous backup.
          let h = prevStat.peek();
          let c = 0;
          while (h !== undefined && (c = compareIndex(h.index, entry.index)) < 0) {
            prevStat.shift();
            await goneFromStat(h);
            h = prevStat.peek();
          }
          if (prevStat.failed) await leaveStatMode();
          else if (h !== undefined && c === 0) stat = prevStat.shift();
        }
        if (statMode) {
          frontier = entry.index;
          if (skip) continue;
          if (stat && statUnchanged(entry, stat)) {
            this.unchanged(entry);
            continue;
          }
          await this.process(entry, await prevSig.take(entry.index), stat);
          this.accounted = entry.index;
          continue;
        }
        const sig = await prevSig.take(entry.index, (s) => this.vanished(s.index, s.meta.type, done));
        stat ??= prevStat.find(entry.index);
        if (skip) continue;
        await this.process(entry, sig, stat);
        this.accounted = entry.index;
      }
      unmatched = step.value.unmatchedRules;
      if (statMode) {
        for (let rec = prevStat.shift(); rec; rec = prevStat.shift()) await goneFromStat(rec);
        if (prevStat.failed) await leaveStatMode();
      }
      if (!statMode) for (let s = await prevSig.next(); s; s = await prevSig.next()) await this.vanished(s.index, s.meta.type, done);
      scanned = true;
    } finally {
      ahead?.close();
      await prevSig.close();
      prevStat.close();
      if (scanned) await listings.close();
      else listings.abort();
    }
    for (const rule of unmatched) opts.log.warn(unmatchedRuleWarning(path.resolve(source), rule));
    if (ahead) opts.log.debug(`Stat ahead: ${ahead.hits} of ${ahead.hits + ahead.own} paths stat'ed by the worker thread`);
    opts.log.debug(`Folder listings: ${listings.reused} of ${listings.reused + listings.listed} folders unchanged since the previous scan, not read again`);
    // Only the newest listings are kept (they describe the folder as it is, whatever becomes of this set).
    if (scanned && opts.archive.has(dirsName)) opts.archive.removeOthers(LISTINGS, dirsName);

  }

  /**
   * The no-change probe's answer instead of a walk: every path is as the previous backup recorded it,
   * so the newest folder listings describe this set too and are kept under its name (its stat cache
   * is too, once the set is complete: write()).
   */
  private reuseScan(probe: Extract<ProbeResult, { unchanged: true }>, dirsName: string): void {
    const { archive } = this.opts;
    this.files = probe.records;
    this.stats.SourceFiles += probe.records;
    this.stats.SourceFileSize += probe.bytes;
    const prevDirs = archive.newest(LISTINGS);
    if (prevDirs !== undefined) {
      archive.copyAtomic(archive.file(prevDirs), dirsName);
      archive.removeOthers(LISTINGS, dirsName);
    }
  }

  private async put(name: string, file: string, size: number): Promise<void> {
    this.checkpoint.uploaded.push(name); // before: a crash mid-put must still know the name
    writeCheckpoint(this.opts.archive, this.checkpoint);
    this.putsRunning++;
    try {
      await this.opts.backend.put(name, { size, open: () => fs.createReadStream(file), localPath: file }, { signal: this.opts.signal });
    } catch (e) {
      // A refusal (permission, no space, not a folder, …) placed nothing; anything else may have.
      if (!(e instanceof BackendError) || e.kind === 'transient') this.mayHaveUploaded = true;
      throw e;
    } finally {
      this.putsRunning--;
    }
    this.mayHaveUploaded = true;
    this.stats.TotalDestinationSizeChange += size;
    fs.rmSync(file, { force: true });
  }

  private async uploadVolume(type: 'full' | 'inc', time: number, startTime: number | undefined, v: FinishedVolume, marks: Marks): Promise<void> {
    const name = volumeName(type, time, startTime, v.volumeNumber, 'gpg');
    this.closed.set(v.volumeNumber, { v, marks, uploaded: false });
    this.opts.log.debug(`Uploading ${name} (${v.size} bytes)`);
    await this.put(name, v.file, v.size);
    this.closed.get(v.volumeNumber)!.uploaded = true;
    this.advanceResumePoint();
    this.progress({ operation: 'backup', phase: 'upload', files: this.files, bytes: this.stats.SourceFileSize, uploadedBytes: this.stats.TotalDestinationSizeChange });
  }

  /**
   * Moves the checkpoint's resume point over the volumes uploaded without a gap, up to the last of them
   * that ends on a file boundary (a volume ending inside a file cannot be resumed after).
   */
  private advanceResumePoint(): void {
    let moved = false;
    for (let c = this.closed.get(this.nextConfirm); c?.uploaded; c = this.closed.get(this.nextConfirm)) {
      this.closed.delete(this.nextConfirm++);
      this.contiguous.push(c);
      if (c.v.info.endBlock !== undefined) continue;
      const point = this.checkpoint.resume;
      const end = c.v.info.endIndex;
      this.checkpoint = {
        ...this.checkpoint,
        resume: {
          volumes: [...(point?.volumes ?? []), ...this.contiguous.map((x) => x.v.info)],
          sizes: [...(point?.sizes ?? []), ...this.contiguous.map((x) => x.v.size)],
          index: c.marks.index !== undefined && compareIndex(c.marks.index, end) > 0 ? c.marks.index : end,
          sigtarBytes: c.marks.sigtarBytes,
          filelistBytes: c.marks.filelistBytes,
          stats: c.marks.stats,
        },
      };
      this.contiguous = [];
      moved = true;
    }
    if (moved) writeCheckpoint(this.opts.archive, this.checkpoint);
  }

  private async removeRemote(names: readonly string[]): Promise<void> {
    for (const name of names) {
      await this.opts.backend.remove(name).catch((e) => this.opts.log.warn(`Could not remove ${name}: ${(e as Error).message}`));
    }
  }

  private fileError(index: PathIndex, err: Error, scanning: boolean): void {
    // A path that vanished during the scan is simply absent from the new state; any other error keeps
    // an older version in it, without a stat record.
    if (!scanning || (err as NodeJS.ErrnoException).code !== 'ENOENT') this.incomplete = true;
    if (scanning && (err as NodeJS.ErrnoException).code !== 'ENOENT') this.erroredDirs.push(index);
    const p = indexToString(index);
    this.errors.push({ path: p, message: err.message });
    this.stats.Errors++;
    this.opts.log.warn(`Cannot read ${p}: ${err.message}`);
  }

  private async addFileChange(action: FileChange['action'], index: PathIndex): Promise<void> {
    await this.filelist.write(Buffer.from(`${action}\t${indexToBytes(index).toString('base64')}\n`));
  }

  /** A path in the previous state that the scan did not meet. */
  private async vanished(index: PathIndex, type: EntryType, done: PathIndex | undefined): Promise<void> {
    if (done !== undefined && compareIndex(index, done) <= 0) return; // recorded before the interruption
    // Below a folder we could not list, absence means "unknown", not "deleted": keep the old state.
    if (this.erroredDirs.some((d) => isPrefixOf(d, index))) return;
    if (index.length === 0) return; // never delete the root
    await this.volumes.add({ index, header: deletedHeader(formatMemberName({ kind: 'deleted', index }, false, 'volume')) });
    await this.sigtar.deleted(index);
    this.stats.DeletedFiles++;
    this.stats.DeltaEntries++;
    if (type === 'reg') await this.addFileChange('deleted', index);
    this.accounted = index;
  }

  /** A path the stat cache shows unchanged: counted, recorded again, nothing stored. */
  private unchanged(e: ScanEntry): void {
    this.files++;
    this.stats.SourceFiles++;
    this.stats.SourceFileSize += e.size;
    this.statOut!.add(statRecordOf(e));
    this.accounted = e.index;
  }

  // Counters are updated only after a path's members are added: a volume closing inside add() snapshots
  // them for the resume point, which must not count the path being added.
  private async process(e: ScanEntry, prior: SigEntry | undefined, stat: StatRecord | undefined): Promise<void> {
    this.files++;
    if (e.meta.type !== 'reg') {
      if (!prior || !sameMeta(prior.meta, e.meta)) {
        await this.volumes.add({ index: e.index, header: metaToTarHeader(formatMemberName({ kind: 'snapshot', index: e.index }, e.meta.type === 'dir', 'volume'), e.meta, 0) });
        await this.sigtar.snapshot(e.index, e.meta);
        this.count(prior ? 'changed' : 'new', e);
        this.warnIfBefore1970(e);
      }
      this.stats.SourceFiles++;
      this.stats.SourceFileSize += e.size;
      this.statOut!.add(statRecordOf(e));
      return;
    }
    const priorFile = prior?.kind === 'signature' && prior.meta.type === 'reg' ? prior : undefined;
    // Unchanged by every stat field we know of: not read at all.
    if (priorFile && stat && sameMeta(priorFile.meta, e.meta) && statUnchanged(e, stat)) {
      this.stats.SourceFiles++;
      this.stats.SourceFileSize += e.size;
      this.statOut!.add(statRecordOf(e));
      return;
    }
    const outcome = await this.storeFile(e, priorFile);
    if (outcome === 'error') return;
    this.stats.SourceFiles++;
    if (outcome === 'stored') {
      this.count(prior ? 'changed' : 'new', e);
      await this.addFileChange(prior ? 'changed' : 'new', e.index);
      this.warnIfBefore1970(e);
    }
    this.statOut!.add(statRecordOf(e));
  }

  /**
   * duplicity's format stores whole seconds from 1970 on, and a time before it as 0 (duplicity warns
   * "has negative mtime, treating as 0"): said once per path, when the path is stored.
   */
  private warnIfBefore1970(e: ScanEntry): void {
    if (e.mtimeNs >= 0n) return;
    const when = new Date(Number(e.mtimeNs / 1_000_000n)).toISOString();
    this.opts.log.warn(`${indexToString(e.index)} has a modification time before 1970 (${when}): stored as 1970-01-01T00:00:00Z, as duplicity does (its format has no earlier times)`);
  }

  private count(kind: 'new' | 'changed', e: ScanEntry): void {
    this.stats.DeltaEntries++;
    if (kind === 'new') {
      this.stats.NewFiles++;
      this.stats.NewFileSize += e.size;
    } else {
      this.stats.ChangedFiles++;
      this.stats.ChangedFileSize += e.size;
    }
    this.progress({ operation: 'backup', phase: 'scan', files: this.files, bytes: this.stats.SourceFileSize, uploadedBytes: this.stats.TotalDestinationSizeChange, path: indexToString(e.index) });
  }

  /**
   * Reads a regular file once, computing its new signature and either its data (snapshot) or a delta
   * against the previous signature (diff). When the previous state has the same duplicity metadata
   * and the new signature equals the old one, the file is unchanged after all and nothing is stored.
   */
  private async storeFile(e: ScanEntry, prior: SigEntry | undefined): Promise<'stored' | 'unchanged' | 'error'> {
    // Synchronous open/read/close: most files are small, and each thread-pool round trip would queue
    // behind the compression jobs in the same pool (profiled: the main thread sat idle half the time).
    let fd: number;
    let limit: number;
    try {
      // O_NONBLOCK: the path may have become a fifo since the scan, and opening a fifo would wait for a
      // writer forever. Only what the file held when opened is read: a file that keeps growing (a log
      // being written) must not keep the backup reading forever.
      fd = fs.openSync(e.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      this.fileError(e.index, err as Error, false);
      return 'error';
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error('it is no longer a regular file (it changed while being backed up)'), { code: 'ECHANGED' });
      limit = st.size;
    } catch (err) {
      fs.closeSync(fd);
      this.fileError(e.index, err as Error, false);
      return 'error';
    }
    try {
      const sig = new SignatureBuilder(blockLengthFor(e.size));
      let delta: DeltaEncoder | undefined;
      if (prior?.signature) {
        try {
          delta = new DeltaEncoder(parseSignature(prior.signature), limit);
        } catch (err) {
          this.opts.log.warn(`Unreadable previous signature of ${indexToString(e.index)} (${(err as Error).message}): storing it whole`);
        }
      }
      const kind = delta ? 'diff' : 'snapshot';
      const maybeUnchanged = !!delta && !!prior && sameMeta(prior.meta, e.meta);
      let held: Buffer | undefined;
      const chunker = new Chunker(async (data, chunk, last) => {
        if (last && chunk === undefined && maybeUnchanged) {
          held = data; // one small member: decided after the signature comparison below
          return;
        }
        const name = formatMemberName({ kind, index: e.index, multivol: chunk }, false, 'volume');
        await this.volumes.add({ index: e.index, header: metaToTarHeader(name, e.meta, data.length), data, block: last ? undefined : chunk });
        this.stats.RawDeltaSize += data.length;
      });
      let read = 0;
      for (;;) {
        throwIfAborted(this.opts.signal);
        if (read >= limit) break;
        let bytesRead: number;
        let buf: Buffer;
        try {
          // A snapshot reads straight into a fresh buffer of at most one 64 KiB member, which
          // becomes the member's data (no copy of every byte); a delta reads through the reused
          // buffer (the encoder keeps what it needs).
          buf = delta ? this.readBuf : Buffer.allocUnsafeSlow(Math.min(CHUNK, limit - read));
          bytesRead = fs.readSync(fd, buf, 0, Math.min(buf.length, limit - read), null);
        } catch (err) {
          // Nothing of this file is in a volume yet (the first chunk goes out only once more than
          // 64 KiB is known): count it as unreadable and go on, keeping its previous version.
          if (chunker.chunks === 0) {
            this.fileError(e.index, err as Error, false);
            return 'error';
          }
          throw new OffsiteError('sourceChanged', `Error reading ${indexToString(e.index)}: ${(err as Error).message}`, { cause: err });
        }
        if (bytesRead === 0) break;
        const data = buf.subarray(0, bytesRead);
        read += bytesRead;
        sig.update(data);
        await chunker.push(delta ? delta.update(data) : data);
      }
      if (delta) await chunker.push(delta.finish());
      await chunker.end();
      const newSig = sig.finish();
      if (held && prior?.signature && newSig.equals(prior.signature)) {
        this.stats.SourceFileSize += read;
        return 'unchanged';
      }
      if (held) {
        await this.volumes.add({ index: e.index, header: metaToTarHeader(formatMemberName({ kind, index: e.index }, false, 'volume'), e.meta, held.length), data: held });
        this.stats.RawDeltaSize += held.length;
      }
      this.stats.SourceFileSize += read;
      await this.sigtar.signature(e.index, e.meta, newSig);
      return 'stored';
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * The manifest's text with the Filelist section made from the filelist file line by line: a full
 * backup of 100k files held 100k FileChange objects here, the run's peak memory (~100 MB).
 */
function manifestWithFilelist(m: Manifest, filelistFile: string): Buffer {
  const chunks: Buffer[] = [];
  let lines: string[] = [];
  let count = 0;
  for (const line of fs.readFileSync(filelistFile, 'latin1').split('\n')) {
    if (!line) continue;
    const [action, b64] = line.split('\t');
    // The path's bytes as they were recorded (indexToBytes of a PathIndex: components joined by '/').
    lines.push(formatFileChangeOf(action as FileChange['action'], Buffer.from(b64, 'base64').toString('latin1')));
    count++;
    if (lines.length === 4096) {
      chunks.push(Buffer.from(lines.join(''), 'latin1'));
      lines = [];
    }
  }
  chunks.push(Buffer.from(lines.join(''), 'latin1'));
  return Buffer.concat([formatManifest({ ...m, filelist: undefined }), Buffer.from(`Filelist ${count}\n`, 'latin1'), ...chunks]);
}

/** The first set of `chain` that evidently cannot be restored, from the listing only (no manifest, no volumes, a gap, an empty file). */
function firstDamagedSet(repo: Repository, chain: BackupChain): { set: BackupSet; why: string } | undefined {
  for (const set of [chain.fullSet, ...chain.incSets]) {
    const why = setDamage(repo, set, { cachedManifest: false });
    if (why !== undefined) return { set, why };
  }
  return undefined;
}
