// A backup target as the operations see it: the remote (authoritative), its parsed collection of
// sets and chains, and the local archive dir that caches plaintext metadata. Metadata missing from the
// cache is fetched from the remote (which needs the private key); cached metadata whose remote file is
// gone is removed (duplicity's sync_archive, FORMAT §11); a cached copy that does not match what was
// recorded when it was written is fetched again, never believed (cache/copyRecords.ts).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Backend } from '../backend/backend';
import { accessDenied, cacheAccessError, type ArchiveDir } from '../cache/archiveDir';
import { CopyRecords, type CopyRecord } from '../cache/copyRecords';
import { isCancellation, OffsiteError } from '../errors';
import type { Logger } from '../log';
import { MAX_MANIFEST_BYTES, parseManifest, type Manifest } from '../manifest/manifest';
import { parseName, setKeyOf, type ParsedName } from '../manifest/naming';
import { readTar } from '../volume/tar';
import { buildCollection, type BackupSet, type Collection } from '../chain/collection';
import { fetchRemote, openDecoded, readRemoteSmall, withFile, wrappingOf, type CryptoContext } from './remoteFiles';
import { cachedSigtarGzip, openCachedSigtar } from './sigtar';

const WRAP_SUFFIX = /\.(gpg|gz|g|z)$/;

/** The cache's name for a remote metadata file: plaintext manifests, gzip'd sigtars. */
export function cacheNameOf(remoteName: string): string {
  const base = remoteName.replace(WRAP_SUFFIX, '');
  const p = parseName(remoteName);
  return p?.kind === 'signature' ? `${base}.gz` : base;
}

export class Repository {
  private _collection?: Collection;
  private remote = new Map<string, number>();
  private partial: readonly string[] = [];
  private mtimes = new Map<string, Date>();
  private targets = new Map<string, string>();
  readonly copies: CopyRecords;
  /**
   * A cached manifest without a record (written by duplicity, or by an Offsite before records) is
   * compared with the remote one when the remote one can be decrypted; otherwise it is used when it
   * reads as a whole manifest. A backup turns this off: it reads only the last manifest's source folder,
   * and must not ask for a private key it does not need.
   */
  compareUnrecorded = true;

  constructor(
    readonly backend: Backend,
    readonly archive: ArchiveDir,
    readonly crypto: CryptoContext,
    readonly log: Logger,
    readonly tempDir: string,
  ) {
    this.copies = new CopyRecords(archive);
  }

  get collection(): Collection {
    if (!this._collection) throw new Error('Repository.refresh() first');
    return this._collection;
  }

  /** Remote file names with their sizes (from the last refresh). */
  get remoteFiles(): ReadonlyMap<string, number> {
    return this.remote;
  }

  /**
   * Leftovers of unfinished uploads (what cleanupPartial removes), sorted: seen by the last refresh
   * that was asked for them, empty otherwise.
   */
  get temporaryUploads(): readonly string[] {
    return this.partial;
  }

  /**
   * When the remote last wrote `name` (a remote file or a leftover of an unfinished upload), by the
   * remote's clock, as the last refresh listed it; undefined when the remote does not say.
   */
  remoteMtime(name: string): Date | undefined {
    return this.mtimes.get(name);
  }

  /** The final name a leftover of an unfinished upload was for, when the remote tells it (BackendFileInfo.target). */
  uploadTarget(partialName: string): string | undefined {
    return this.targets.get(partialName);
  }

  /** Lists the remote; with `partial`, the leftovers of unfinished uploads too, in the same listing. */
  async refresh(signal?: AbortSignal, options: { partial?: boolean } = {}): Promise<Collection> {
    const names = new Map<string, number>();
    const partial: string[] = [];
    const mtimes = new Map<string, Date>();
    const targets = new Map<string, string>();
    for await (const f of this.backend.list({ signal, partial: options.partial })) {
      if (f.partial) partial.push(f.name);
      else names.set(f.name, f.size);
      if (f.mtime) mtimes.set(f.name, f.mtime);
      if (f.partial && f.target !== undefined) targets.set(f.name, f.target);
    }
    this.remote = names;
    this.mtimes = mtimes;
    this.targets = targets;
    this.partial = partial.sort();
    this._collection = buildCollection(names.keys());
    return this._collection;
  }

  /** Files this run deleted from the remote: gone from the listing, without listing it again. */
  forget(names: Iterable<string>): void {
    for (const n of names) this.remote.delete(n);
    this._collection = buildCollection(this.remote.keys());
  }

  /**
   * Removes cached metadata (and its records) whose remote file no longer exists (the remote is
   * authoritative), except the manifest of a set whose volumes are still there: the copy is all that is
   * left of a manifest the remote lost, and cleanup points to it.
   */
  pruneCache(): string[] {
    const wanted = new Set<string>();
    const volumesOf = new Set<string>();
    const setOf = (p: ParsedName) => setKeyOf(p.setType, p.startTime, p.endTime);
    for (const name of this.remote.keys()) {
      const p = parseName(name);
      if (p && (p.kind === 'manifest' || p.kind === 'signature')) wanted.add(cacheNameOf(name));
      if (p?.kind === 'volume' && !p.partial) volumesOf.add(setOf(p));
    }
    const removed: string[] = [];
    for (const local of this.archive.names()) {
      const p = parseName(local);
      if (!p || (p.kind !== 'manifest' && p.kind !== 'signature')) continue;
      if (p.kind === 'manifest' && !p.partial && volumesOf.has(setOf(p))) continue;
      if (!wanted.has(local)) {
        this.archive.remove(local);
        removed.push(local);
      }
    }
    for (const local of this.copies.names()) if (!wanted.has(local)) this.changeRecords((c) => c.remove(local));
    if (removed.length) this.log.info(`Removed ${removed.length} cached metadata file(s) no longer on the remote`);
    return removed;
  }

  /** Records a manifest's cached copy (written by the caller) as made from a remote file of `remoteSize` bytes. */
  recordManifestCopy(local: string, text: Buffer, remoteSize: number): void {
    this.recordCopy(local, { size: text.length, sha256: sha256(text), remoteSize });
  }

  /** Records a signature archive's cached copy (written by the caller) as made from a remote file of `remoteSize` bytes. */
  recordSigtarCopy(local: string, remoteSize: number, size = fs.statSync(this.archive.file(local)).size): void {
    this.recordCopy(local, { size, remoteSize });
  }

  private recordCopy(local: string, record: CopyRecord): void {
    this.changeRecords((c) => c.set(local, record));
  }

  /** A change to the copies' records, whose folder may be another user's (a run with sudo made it): the cache folder's error. */
  private changeRecords(change: (copies: CopyRecords) => void): void {
    try {
      change(this.copies);
    } catch (e) {
      throw cacheAccessError(e, this.archive.dir);
    }
  }

  /**
   * A set's manifest: the cached copy when it matches its record, else fetched, decrypted and cached.
   * A copy that does not match (or, without a record, does not read as a whole manifest or differs
   * from the remote one) is never used: it is fetched again, or the error says the cache is damaged.
   */
  async manifest(set: BackupSet, signal?: AbortSignal): Promise<Manifest> {
    const remoteName = set.manifestName;
    if (!remoteName) throw new OffsiteError('integrity', `The backup set of ${new Date(set.endTime * 1000).toISOString()} has no manifest`, { hint: 'It is incomplete; run offsite cleanup' });
    const local = cacheNameOf(remoteName);
    const file = this.archive.file(local);
    if ((fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0) > MAX_MANIFEST_BYTES) throw manifestTooLarge(remoteName, `(its copy in the local cache, ${file}) is larger than any manifest`);
    const text = this.readCached(file);
    if (text === undefined) return this.fetchManifest(remoteName, local, signal);
    const rec = this.copies.get(local);
    if (rec) {
      const why = this.manifestCopyMismatch(remoteName, rec, text);
      if (why === undefined) {
        return parseManifestOf(text, remoteName); // as the remote wrote it: the remote's manifest is unreadable
      }
      return this.refetchDamaged(remoteName, local, why, () => this.fetchManifest(remoteName, local, signal));
    }
    // No record: a whole manifest lists every volume of its set (an empty copy lists none, a cut one
    // lacks the last ones).
    let parsed: Manifest | undefined;
    let why: string | undefined;
    try {
      parsed = parseManifest(text);
      const listed = new Set(parsed.volumes.map((v) => v.volumeNumber));
      const unlisted = [...set.volumes.keys()].filter((n) => !listed.has(n));
      if (text.length === 0) why = 'it is empty';
      else if (listed.size === 0) why = 'it lists no volumes';
      else if (unlisted.length) why = `it does not list volume ${unlisted.join(', ')} of the set: it was cut short`;
    } catch (e) {
      why = (e as Error).message;
    }
    if (why !== undefined) return this.refetchDamaged(remoteName, local, why, () => this.fetchManifest(remoteName, local, signal));
    if (!this.compareUnrecorded) return parsed!;
    let remote: Buffer;
    try {
      remote = await this.readRemoteManifest(remoteName, signal);
    } catch (e) {
      if (isCancellation(e)) throw e;
      // Without the private key (or the remote) it cannot be checked: it reads as a whole manifest.
      this.log.debug(`The cached copy of ${remoteName} has no record and could not be compared with the remote one (${(e as Error).message}); using it`);
      return parsed!;
    }
    if (remote.equals(text)) {
      this.recordManifestCopy(local, text, this.remote.get(remoteName) ?? 0);
      return parsed!;
    }
    this.log.warn(`The local cache copy ${this.archive.file(local)} does not match the remote manifest ${remoteName}: using the remote one, and replacing the copy`);
    return this.keepManifest(remoteName, local, remote);
  }

  /** Why a manifest's cached copy does not match its record (a damaged copy, or the remote file replaced since), or undefined. */
  private manifestCopyMismatch(remoteName: string, rec: CopyRecord, text: Buffer): string | undefined {
    const remoteSize = this.remote.get(remoteName);
    return (
      rec.size !== text.length ? `it has ${text.length} bytes, ${rec.size} when it was written`
      : rec.sha256 !== undefined && rec.sha256 !== sha256(text) ? 'its bytes changed since it was written'
      : remoteSize !== undefined && rec.remoteSize !== remoteSize ? `the remote file has ${remoteSize} bytes now, ${rec.remoteSize} when the copy was made`
      : undefined
    );
  }

  /**
   * The cached plaintext of a manifest, read without fetching anything, when it can stand for the
   * remote's: it matches its record (`recorded`), or it has none (duplicity's cache, an older one: the
   * caller must judge it). undefined when there is no copy, it cannot be read, or it does not match
   * its record: damage of the local cache (manifest() fetches it again), which says nothing about the
   * remote.
   */
  cachedManifestCopy(remoteName: string): { text: Buffer; recorded: boolean } | undefined {
    const local = cacheNameOf(remoteName);
    let text: Buffer;
    try {
      text = fs.readFileSync(this.archive.file(local));
    } catch {
      return undefined;
    }
    const rec = this.copies.get(local);
    if (!rec) return { text, recorded: false };
    return this.manifestCopyMismatch(remoteName, rec, text) === undefined ? { text, recorded: true } : undefined;
  }

  private async readRemoteManifest(remoteName: string, signal?: AbortSignal): Promise<Buffer> {
    this.log.info(`Fetching ${remoteName} from the remote`);
    const limit = { maxBytes: MAX_MANIFEST_BYTES, onTooLarge: () => manifestTooLarge(remoteName, 'decrypts to more than any manifest holds') };
    return readRemoteSmall(this.backend, remoteName, wrappingOf(parseName(remoteName)!), this.crypto, this.tempDir, limit, signal).catch((e) => {
      throw withFile(e, remoteName);
    });
  }

  /** A cached file's bytes; undefined when there is none, the cache folder's error when this user may not read it. */
  private readCached(file: string): Buffer | undefined {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw cacheAccessError(e, this.archive.dir);
    }
  }

  /** Fetches a manifest, caches and records its plaintext, and parses it. */
  private async fetchManifest(remoteName: string, local: string, signal?: AbortSignal): Promise<Manifest> {
    return this.keepManifest(remoteName, local, await this.readRemoteManifest(remoteName, signal));
  }

  /** A manifest's plaintext as the remote holds it: cached, recorded and parsed. */
  private keepManifest(remoteName: string, local: string, text: Buffer): Manifest {
    this.archive.writeAtomic(local, text);
    this.recordManifestCopy(local, text, this.remote.get(remoteName) ?? 0);
    return parseManifestOf(text, remoteName);
  }

  /**
   * A cached copy that cannot be trusted: removed, and fetched again from the remote (as a lost cache
   * is rebuilt). When that fails (most often: no private key given), the error says the local copy is
   * damaged, not the remote, and how to mend it.
   */
  private async refetchDamaged<T>(remoteName: string, local: string, why: string, fetch: () => Promise<T>): Promise<T> {
    const file = this.archive.file(local);
    this.archive.remove(local);
    this.changeRecords((c) => c.remove(local));
    this.log.warn(`The local cache copy ${file} is damaged (${why}): removed; fetching ${remoteName} again from the remote`);
    try {
      return await fetch();
    } catch (e) {
      if (isCancellation(e)) throw e;
      const cause = OffsiteError.is(e) ? e.userMessage : (e as Error).message;
      throw new OffsiteError('integrity', `The local cache copy ${file} was damaged (${why}) and could not be fetched again from the remote (${cause})`, {
        file,
        cause: e,
        hint: 'The copy was removed; run the command again with --key KEY (your private key) to fetch it from the remote. The remote itself was not found damaged',
      });
    }
  }

  /**
   * Path of the cached, gzip'd plaintext of a remote signature file, fetched when missing. A copy whose
   * size differs from its record (cut short, or the remote file replaced) is fetched again; one without
   * a record is read through once (gzip's CRC-32 checks every byte) and then recorded.
   */
  async sigtarFile(remoteName: string, signal?: AbortSignal): Promise<string> {
    const local = cacheNameOf(remoteName);
    const file = this.archive.file(local);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st) {
      const rec = this.copies.get(local);
      const remoteSize = this.remote.get(remoteName);
      let why: string | undefined;
      if (rec) {
        why =
          rec.size !== st.size ? `it has ${st.size} bytes, ${rec.size} when it was written`
          : remoteSize !== undefined && rec.remoteSize !== remoteSize ? `the remote file has ${remoteSize} bytes now, ${rec.remoteSize} when the copy was made`
          : undefined;
      } else {
        why = await unreadableSigtar(file, this.archive.dir);
        if (why === undefined && remoteSize !== undefined) this.recordSigtarCopy(local, remoteSize, st.size);
      }
      if (why === undefined) return file;
      return this.refetchDamaged(remoteName, local, why, () => this.fetchSigtar(remoteName, local, signal));
    }
    return this.fetchSigtar(remoteName, local, signal);
  }

  private async fetchSigtar(remoteName: string, local: string, signal?: AbortSignal): Promise<string> {
    const file = this.archive.file(local);
    const p = parseName(remoteName);
    if (!p) throw new OffsiteError('internal', `Not a signature file name: ${remoteName}`);
    this.log.info(`Fetching ${remoteName} from the remote`);
    const fetched = await fetchRemote(this.backend, remoteName, this.tempDir, { signal });
    const part = this.archive.tempFile(local);
    try {
      await pipeline(await openDecoded(fetched.path, wrappingOf(p), this.crypto, remoteName), cachedSigtarGzip(), fs.createWriteStream(part, { mode: 0o600 }));
      fs.renameSync(part, file);
    } catch (e) {
      fs.rmSync(part, { force: true });
      throw withFile(e, remoteName);
    } finally {
      fetched.dispose();
    }
    // Outside the remote file's errors: a records folder another user's is the cache's (changeRecords).
    this.recordSigtarCopy(local, fetched.size);
    return file;
  }
}

/** The error for a manifest past MAX_MANIFEST_BYTES (a decompression bomb, or not a manifest at all). */
function manifestTooLarge(name: string, what: string): OffsiteError {
  return new OffsiteError('integrity', `The manifest ${name} ${what}: the limit is ${MAX_MANIFEST_BYTES / 2 ** 20} MiB, about 2 million paths in one backup set`, {
    file: name,
    hint: 'It was damaged or replaced on the remote (or in the local cache); restore as of another time (--time), or make a new full backup (offsite backup --full)',
  });
}

/** A manifest's text parsed; an unreadable one is named by its remote file. */
function parseManifestOf(text: Buffer, remoteName: string): Manifest {
  try {
    return parseManifest(text);
  } catch (e) {
    throw withFile(e, remoteName);
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * Why a cached signature archive cannot be read to its end (gzip and tar), or undefined when it can.
 * One this user may not read (left by another user) is not damage, and not to be removed: that throws
 * the cache folder's error (cacheAccessError).
 */
async function unreadableSigtar(file: string, cacheDir: string): Promise<string | undefined> {
  try {
    for await (const e of readTar(openCachedSigtar(file))) void e;
    return undefined;
  } catch (e) {
    if (accessDenied(e)) throw cacheAccessError(e, cacheDir);
    return (e as Error).message;
  }
}
