// A backup target as the operations see it: the remote (authoritative), its parsed collection of
// sets and chains, and the local archive dir that caches plaintext metadata. Metadata missing from the
// cache is fetched from the remote (which needs the private key); cached metadata whose remote file is
// gone is removed (duplicity's sync_archive, FORMAT §11).
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Backend } from '../backend/backend';
import type { ArchiveDir } from '../cache/archiveDir';
import { OffsiteError } from '../errors';
import type { Logger } from '../log';
import { MAX_MANIFEST_BYTES, parseManifest, type Manifest } from '../manifest/manifest';
import { parseName, type ParsedName } from '../manifest/naming';
import { buildCollection, type BackupSet, type Collection } from '../chain/collection';
import { fetchRemote, openDecoded, readRemoteSmall, withFile, wrappingOf, type CryptoContext } from './remoteFiles';
import { cachedSigtarGzip } from './sigtar';

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

  constructor(
    readonly backend: Backend,
    readonly archive: ArchiveDir,
    readonly crypto: CryptoContext,
    readonly log: Logger,
    readonly tempDir: string,
  ) {}

  get collection(): Collection {
    if (!this._collection) throw new Error('Repository.refresh() first');
    return this._collection;
  }

  /** Remote file names with their sizes (from the last refresh). */
  get remoteFiles(): ReadonlyMap<string, number> {
    return this.remote;
  }

  async refresh(signal?: AbortSignal): Promise<Collection> {
    const names = new Map<string, number>();
    for await (const f of this.backend.list({ signal })) names.set(f.name, f.size);
    this.remote = names;
    this._collection = buildCollection(names.keys());
    return this._collection;
  }

  /**
   * Removes cached metadata whose remote file no longer exists (the remote is authoritative), except
   * the manifest of a set whose volumes are still there: the copy is all that is left of a manifest the
   * remote lost, and cleanup points to it.
   */
  pruneCache(): string[] {
    const wanted = new Set<string>();
    const volumesOf = new Set<string>();
    const setOf = (p: ParsedName) => `${p.setType}:${p.startTime ?? ''}:${p.endTime}`;
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
    if (removed.length) this.log.info(`Removed ${removed.length} cached metadata file(s) no longer on the remote`);
    return removed;
  }

  /** A set's manifest: the cached copy, else fetched, decrypted and cached. */
  async manifest(set: BackupSet, signal?: AbortSignal): Promise<Manifest> {
    if (!set.manifestName) throw new OffsiteError('integrity', `The backup set of ${new Date(set.endTime * 1000).toISOString()} has no manifest`, { hint: 'It is incomplete; run offsite cleanup' });
    const local = cacheNameOf(set.manifestName);
    let text: Buffer;
    const name = set.manifestName;
    if (this.archive.has(local)) {
      const file = this.archive.file(local);
      if (fs.statSync(file).size > MAX_MANIFEST_BYTES) throw manifestTooLarge(name, `(its copy in the local cache, ${file}) is larger than any manifest`);
      text = fs.readFileSync(file);
    } else {
      const p = parseName(name)!;
      this.log.info(`Fetching ${name} from the remote`);
      const limit = { maxBytes: MAX_MANIFEST_BYTES, onTooLarge: () => manifestTooLarge(name, 'decrypts to more than any manifest holds') };
      text = await readRemoteSmall(this.backend, name, wrappingOf(p), this.crypto, this.tempDir, limit, signal).catch((e) => {
        throw withFile(e, set.manifestName!);
      });
      this.archive.writeAtomic(local, text);
    }
    try {
      return parseManifest(text);
    } catch (e) {
      throw withFile(e, set.manifestName);
    }
  }

  /** Path of the cached, gzip'd plaintext of a remote signature file, fetched when missing. */
  async sigtarFile(remoteName: string, signal?: AbortSignal): Promise<string> {
    const local = cacheNameOf(remoteName);
    const file = this.archive.file(local);
    if (fs.existsSync(file)) return file;
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
