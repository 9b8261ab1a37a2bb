// file:// remotes: a local (or mounted) folder. Puts are atomic and never clobber: the data goes to a
// private temporary name in the same folder, is fsynced, then hard-linked to the final name (link()
// fails with EEXIST instead of replacing) or renamed over it when overwrite is asked.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { BackendError } from './backend';
import { checkName, checkRange, inCleanupScope, normalizeAbort, sizeMismatch } from './backendUtil';
import { OffsiteError, cancelled, throwIfAborted } from '../errors';

/**
 * Temporary names start with a dot (hidden, and duplicity's parser only takes names that start with its
 * prefixes, so it never mistakes one for a backup file) and this marker, which cleanupPartial looks for.
 */
const TEMP_PREFIX = '.offsite-part-';
const NAME_MAX = 255;
/** Bytes per read of a get, and how much a put gathers before one write: large I/O, bounded memory. */
const READ_CHUNK = 1024 * 1024;
const WRITE_BATCH = 1024 * 1024;

/** True for the names of temporary files of puts (in progress or interrupted). */
export function isPartialName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** Whether cleanupPartial may remove `name`: a temporary upload, not one of this backend's own in flight, in options.only's scope. */
export function cleanupCandidate(name: string, inflight: ReadonlySet<string>, options: CleanupPartialOptions): boolean {
  return isPartialName(name) && !inflight.has(name) && inCleanupScope(options, name);
}

/**
 * The final name a temporary name of partialNameFor carries (it does when that fits), as the `target`
 * of its BackendFileInfo: an object to spread into one, empty when it carries none.
 */
export function partialTarget(partial: string): { target?: string } {
  const m = partial.startsWith(TEMP_PREFIX) ? /^[0-9a-f]{12}-(.+)$/s.exec(partial.slice(TEMP_PREFIX.length)) : null;
  return m ? { target: m[1] } : {};
}

/** A fresh temporary name for an upload of `name` (it carries the final name when that fits). */
export function partialNameFor(name: string): string {
  const base = `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`;
  const full = `${base}-${name}`;
  return Buffer.byteLength(full) <= NAME_MAX ? full : base;
}

/**
 * The folder of a file:// URL, as duplicity reads it (localbackend.py): what follows "file://" is the
 * path, so file:///abs/path is absolute and file://relative/path is relative to the working folder;
 * "file:/abs" is accepted too. The part after the first "/" is percent-decoded, the first segment of a
 * relative path is not (Python's urlparse treats it as the netloc). Query and fragment are dropped.
 */
export function fileUrlPath(url: string): string {
  const m = /^file:(.*)$/is.exec(url);
  if (!m) throw badFileUrl(url, 'it does not start with file:');
  const rest = m[1].replace(/[?#].*$/s, '');
  let p: string;
  if (rest.startsWith('//')) {
    const afterSlashes = rest.slice(2);
    const slash = afterSlashes.indexOf('/');
    p = slash < 0 ? afterSlashes : afterSlashes.slice(0, slash) + decode(url, afterSlashes.slice(slash));
  } else if (rest.startsWith('/')) {
    p = decode(url, rest);
  } else {
    throw badFileUrl(url, 'a local folder is written file:///absolute/path or file://relative/path');
  }
  if (p === '') throw badFileUrl(url, 'the folder is missing');
  if (p.includes('\0')) throw badFileUrl(url, 'it contains a NUL character');
  return p;
}

function decode(url: string, s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badFileUrl(url, 'it has an invalid %-escape');
  }
}

function badFileUrl(url: string, why: string): OffsiteError {
  return new OffsiteError('usage', `Bad file:// URL "${url}": ${why}`, {
    hint: 'Write the folder as file:///absolute/path or file://relative/path',
  });
}

// errno → kind. Anything not listed is 'permanent'.
const TRANSIENT_CODES = new Set([
  'EIO', 'ETIMEDOUT', 'EAGAIN', 'EBUSY', 'EINTR', 'ESTALE', 'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED',
  'ENETDOWN', 'ENETUNREACH', 'ENETRESET', 'EHOSTUNREACH', 'EHOSTDOWN', 'EPIPE', 'EMFILE', 'ENFILE',
  'ENOLCK', 'EREMOTEIO', 'ENOTCONN', 'ECANCELED',
]);
/** link() errors meaning "this file system has no hard links" (vfat, some FUSE and SMB mounts). */
const NO_LINK_CODES = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK', 'EXDEV']);

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

export class FileBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties = { connections: 2 };
  private readonly dir: string;
  /** Temp names of this instance's puts in progress: cleanupPartial must not pull them away. */
  private readonly inflight = new Set<string>();

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.displayUrl = `file://${this.dir}`;
  }

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    checkName('put', name);
    if (isPartialName(name)) {
      throw new BackendError('permanent', 'put', name, `"${name}" is reserved for temporary files`, {
        hint: `Names starting with ${TEMP_PREFIX} are used for uploads in progress`,
      });
    }
    const { signal } = options;
    throwIfAborted(signal);
    const tempName = partialNameFor(name);
    const temp = path.join(this.dir, tempName);
    const final = path.join(this.dir, name);
    // Cheap early refusal, so a refused put does not write the whole file first; link() below is
    // what makes "no clobber" hold against a concurrent writer.
    if (!options.overwrite && (await fsp.lstat(final).then(() => true, () => false))) throw this.existsError(name);
    this.inflight.add(tempName);
    try {
      await this.ensureDir('put', name);
      if (source.localPath !== undefined) await this.copyLocal(name, source, temp, options);
      else await this.writeStream(name, source, temp, options);
      throwIfAborted(signal);
      await this.commit(name, temp, final, options.overwrite === true);
      await this.syncDir();
    } catch (e) {
      // Best effort: a crash leaves the temp file instead, which cleanupPartial removes later.
      await fsp.unlink(temp).catch(() => undefined);
      if (e instanceof SourceError) throw normalizeAbort(e.cause, signal);
      if (e instanceof OffsiteError) throw e;
      if (signal?.aborted) throw cancelled();
      throw this.fsError('put', name, e);
    } finally {
      this.inflight.delete(tempName);
    }
  }

  private async copyLocal(name: string, source: BlobSource, temp: string, options: PutOptions): Promise<void> {
    const localPath = source.localPath as string;
    // Open the source first so that its errors (missing, unreadable) reach the caller as local errors.
    const src = await fsp.open(localPath, 'r').catch((e: unknown) => {
      throw new SourceError(e);
    });
    await src.close();
    // copyFile uses copy_file_range (or a reflink), and creates the file with the source's mode:
    // local sources are our own private temp files, and we chmod 0600 right after anyway.
    await fsp.copyFile(localPath, temp, fsConstants.COPYFILE_EXCL);
    const fh = await fsp.open(temp, 'r+');
    try {
      await fh.chmod(0o600);
      const { size } = await fh.stat();
      if (size !== source.size) throw sizeMismatch(name, source.size, size, size > source.size);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    options.onProgress?.(source.size);
  }

  private async writeStream(name: string, source: BlobSource, temp: string, options: PutOptions): Promise<void> {
    const { signal, onProgress } = options;
    const fh = await fsp.open(temp, 'wx', 0o600);
    let stream: Readable | undefined;
    const onAbort = (): void => {
      stream?.destroy(cancelled());
    };
    try {
      stream = source.open();
      signal?.addEventListener('abort', onAbort, { once: true });
      let received = 0;
      let batch: Buffer[] = [];
      let batched = 0;
      const flush = async (): Promise<void> => {
        if (batched === 0) return;
        const bufs = batch;
        batch = [];
        batched = 0;
        await writeAll(fh, bufs);
        onProgress?.(received);
      };
      const it = stream[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await it.next();
        } catch (e) {
          throw new SourceError(e);
        }
        if (next.done) break;
        const chunk = next.value as Uint8Array;
        received += chunk.length;
        if (received > source.size) throw sizeMismatch(name, source.size, received, true);
        batch.push(chunk as Buffer);
        batched += chunk.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      await flush();
      if (received !== source.size) throw sizeMismatch(name, source.size, received, false);
      if (received === 0) onProgress?.(0);
      await fh.datasync();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stream?.destroy();
      await fh.close();
    }
  }

  private async commit(name: string, temp: string, final: string, overwrite: boolean): Promise<void> {
    if (overwrite) {
      await fsp.rename(temp, final);
      return;
    }
    try {
      await fsp.link(temp, final);
    } catch (e) {
      if (errno(e) === 'EEXIST') throw this.existsError(name);
      if (!NO_LINK_CODES.has(errno(e) ?? '')) throw e;
      // No hard links here: check, then rename. Not atomic against a concurrent writer of the same
      // name, which the backup lock rules out.
      const there = await fsp.lstat(final).then(
        () => true,
        (err: unknown) => (errno(err) === 'ENOENT' ? false : Promise.reject(err)),
      );
      if (there) throw this.existsError(name);
      await fsp.rename(temp, final);
      return;
    }
    // The final name now holds the data; a failure to drop the temp name only leaves a second link
    // that cleanupPartial removes.
    await fsp.unlink(temp).catch(() => undefined);
  }

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    checkName('get', name);
    const { signal } = options;
    throwIfAborted(signal);
    let fh: FileHandle;
    try {
      fh = await fsp.open(path.join(this.dir, name), 'r');
    } catch (e) {
      throw this.fsError('get', name, e);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw this.notAFile('get', name);
      const { start, end } = checkRange('get', name, st.size, options.offset, options.length);
      throwIfAborted(signal);
      return new FileRangeStream(fh, start, end, signal, (e) => this.fsError('get', name, e), () => this.shrunk(name));
    } catch (e) {
      await fh.close();
      if (e instanceof OffsiteError) throw e;
      throw this.fsError('get', name, e);
    }
  }

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    checkName('stat', name);
    throwIfAborted(options.signal);
    let st;
    try {
      st = await fsp.stat(path.join(this.dir, name));
    } catch (e) {
      throw this.fsError('stat', name, e);
    }
    if (!st.isFile()) throw this.notAFile('stat', name);
    return { name, size: st.size, mtime: st.mtime };
  }

  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    const { signal } = options;
    throwIfAborted(signal);
    let dir;
    try {
      dir = await fsp.opendir(this.dir, { bufferSize: 256 });
    } catch (e) {
      if (errno(e) === 'ENOENT') return; // no backup yet: the folder appears with the first put
      throw this.fsError('list', undefined, e);
    }
    // Stat in batches: a remote of thousands of volumes lists fast, memory stays bounded.
    let batch: string[] = [];
    try {
      for await (const entry of dir) {
        throwIfAborted(signal);
        if (entry.isDirectory() || (isPartialName(entry.name) && (!options.partial || this.inflight.has(entry.name)))) continue;
        batch.push(entry.name);
        if (batch.length >= 64) {
          yield* await this.statBatch(batch);
          batch = [];
        }
      }
    } catch (e) {
      if (e instanceof OffsiteError) throw e;
      throw this.fsError('list', undefined, e);
    }
    yield* await this.statBatch(batch);
  }

  private async statBatch(names: string[]): Promise<BackendFileInfo[]> {
    const infos = await Promise.all(
      names.map(async (name): Promise<BackendFileInfo | undefined> => {
        try {
          const st = await fsp.stat(path.join(this.dir, name));
          if (!st.isFile()) return undefined;
          return isPartialName(name) ? { name, size: st.size, mtime: st.mtime, partial: true, ...partialTarget(name) } : { name, size: st.size, mtime: st.mtime };
        } catch (e) {
          if (errno(e) === 'ENOENT') return undefined; // removed while we listed
          throw this.fsError('list', name, e);
        }
      }),
    );
    return infos.filter((i): i is BackendFileInfo => i !== undefined);
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    checkName('remove', name);
    throwIfAborted(options.signal);
    try {
      await fsp.unlink(path.join(this.dir, name));
    } catch (e) {
      if (errno(e) === 'ENOENT') return;
      throw this.fsError('remove', name, e);
    }
  }

  async cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    throwIfAborted(options.signal);
    let names: string[];
    try {
      names = (await fsp.readdir(this.dir)).filter((n) => cleanupCandidate(n, this.inflight, options));
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw this.fsError('cleanupPartial', undefined, e);
    }
    names.sort();
    if (options.dryRun) return names;
    const removed: string[] = [];
    for (const n of names) {
      throwIfAborted(options.signal);
      try {
        await fsp.unlink(path.join(this.dir, n));
        removed.push(n);
      } catch (e) {
        if (errno(e) === 'ENOENT') continue;
        throw this.fsError('cleanupPartial', n, e);
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    // Nothing held open between operations.
  }

  /** The local path of `name` (which may not exist), so readers can use the file in place. */
  localPath(name: string): string {
    checkName('localPath', name);
    return path.join(this.dir, name);
  }

  /** The first backup creates the folder (private, like everything we write). */
  private async ensureDir(op: string, name: string): Promise<void> {
    try {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw this.fsError(op, name, e);
    }
  }

  /** Makes the new directory entry durable. Some file systems cannot fsync a folder: that is fine. */
  private async syncDir(): Promise<void> {
    let fh: FileHandle | undefined;
    try {
      fh = await fsp.open(this.dir, 'r');
      await fh.sync();
    } catch (e) {
      if (!['EINVAL', 'EBADF', 'EISDIR', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES', 'EPERM'].includes(errno(e) ?? '')) throw e;
    } finally {
      await fh?.close();
    }
  }

  private existsError(name: string): BackendError {
    return new BackendError('exists', 'put', name, `${name} already exists in ${this.displayUrl}`, {
      hint: 'Refusing to replace it; remove it first if it is not needed',
    });
  }

  private notAFile(op: string, name: string): BackendError {
    return new BackendError('permanent', op, name, `${name} in ${this.displayUrl} is not a regular file`, {
      hint: 'Move the folder or device of that name out of the backup folder',
    });
  }

  private shrunk(name: string): BackendError {
    return new BackendError('permanent', 'get', name, `${name} in ${this.displayUrl} became shorter while it was read`, {
      hint: 'Something else is changing the backup folder; stop it and try again',
    });
  }

  private fsError(op: string, name: string | undefined, e: unknown): BackendError | OffsiteError {
    return classifyFsError(e, op, name, this.dir);
  }
}

/**
 * Classifies a file system error of an operation on `name` (undefined: the folder itself) in the
 * folder `dir`, with a message that names the file and a hint that says what to do.
 */
export function classifyFsError(e: unknown, op: string, name: string | undefined, dir: string): BackendError | OffsiteError {
  const displayUrl = `file://${dir}`;
  if (e instanceof OffsiteError) return e;
  const code = errno(e) ?? 'EUNKNOWN';
  const where = name === undefined ? displayUrl : `${name} in ${displayUrl}`;
  const opts = (hint: string): { cause: unknown; hint: string } => ({ cause: e, hint });
  switch (code) {
    case 'ENOENT':
      return new BackendError('notFound', op, name, `${name === undefined ? displayUrl : where} does not exist`, opts(
        'Check the remote URL, or list the remote to see what it holds',
      ));
    case 'EACCES':
    case 'EPERM':
      return new BackendError('permission', op, name, `Permission denied (${op}) for ${where}`, opts(
        `Give your user read and write access to ${dir}`,
      ));
    case 'EROFS':
      return new BackendError('permission', op, name, `${dir} is on a read-only file system (${op} of ${where})`, opts(
        'Choose a writable folder, or mount it read-write',
      ));
    case 'ENOSPC':
      return new BackendError('noSpace', op, name, `No space left on the disk of ${dir} (${op} of ${where})`, opts(
        'Free some space there, or remove old backups',
      ));
    case 'EDQUOT':
      return new BackendError('noSpace', op, name, `Disk quota exceeded on ${dir} (${op} of ${where})`, opts(
        'Free some space there, remove old backups, or raise the quota',
      ));
    case 'ENOTDIR':
      return new BackendError('permanent', op, name, `${dir} or one of its parents is not a folder`, opts(
        'Point the remote URL at a folder',
      ));
    case 'EISDIR':
      return new BackendError('permanent', op, name, `${where} is a folder, not a file`, opts(
        'Move that folder out of the backup folder',
      ));
    case 'ENAMETOOLONG':
      return new BackendError('permanent', op, name, `The path of ${where} is too long for the file system`, opts(
        'Use a shorter folder path or file prefix',
      ));
    default:
      if (TRANSIENT_CODES.has(code)) {
        return new BackendError('transient', op, name, `I/O error ${code} (${op}) on ${where}`, opts(
          'This may be temporary (a network mount or a busy disk); try again, and check the disk if it persists',
        ));
      }
      return new BackendError('permanent', op, name, `${op} of ${where} failed: ${(e as Error)?.message ?? String(e)}`, opts(
        'Check the backup folder and its disk',
      ));
  }
}

/** Marks an error of the source stream, which the caller must see as is (it is a local problem). */
class SourceError extends Error {
  constructor(cause: unknown) {
    super('source error', { cause });
  }
}

async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  // writev may write less than asked (signals, quotas): continue where it stopped.
  let total = 0;
  for (const b of bufs) total += b.length;
  let done = 0;
  while (done < total) {
    let rest = bufs;
    if (done > 0) {
      rest = [];
      let skip = done;
      for (const b of bufs) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten === 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
    done += bytesWritten;
  }
}

/** Streams bytes [start, end) of an open file; closes it when done, failed or destroyed. */
class FileRangeStream extends Readable {
  private pos: number;
  private reading = false;

  constructor(
    private readonly fh: FileHandle,
    start: number,
    private readonly end: number,
    private readonly signal: AbortSignal | undefined,
    private readonly mapError: (e: unknown) => Error,
    private readonly shrunk: () => Error,
  ) {
    super({ highWaterMark: READ_CHUNK });
    this.pos = start;
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = (): void => {
    this.destroy(cancelled());
  };

  override _read(): void {
    if (this.reading) return;
    if (this.pos >= this.end) {
      this.push(null);
      return;
    }
    this.reading = true;
    const want = Math.min(READ_CHUNK, this.end - this.pos);
    const buf = Buffer.allocUnsafe(want);
    this.fh.read(buf, 0, want, this.pos).then(
      ({ bytesRead }) => {
        this.reading = false;
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(this.shrunk());
          return;
        }
        this.pos += bytesRead;
        this.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
        if (this.pos >= this.end) this.push(null);
      },
      (e: unknown) => {
        this.reading = false;
        this.destroy(this.mapError(e));
      },
    );
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.fh.close().then(
      () => cb(err),
      () => cb(err),
    );
  }
}
