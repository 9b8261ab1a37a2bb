// sftp:// remotes on an SSH server (duplicity's main remote). Uploads go to a temporary name, are
// checked for size on the server, then renamed (no clobber, or posix-rename to replace), so a reader
// never sees a half-written file. Writes and reads are pipelined (many requests in flight) over a
// small pool of connections, a broken connection is replaced, and an upload or download cut midway
// resumes where the server's copy ends instead of starting over.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { FileEntry, Stats } from 'ssh2';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { BackendError } from './backend';
import { abortableDelay, checkName, checkRange, envNumber, normalizeAbort, sizeMismatch } from './backendUtil';
import { cleanupCandidate, isPartialName, partialNameFor, partialTarget } from './fileBackend';
import { registerBackend, type BackendContext } from './registry';
import { OffsiteError, cancelled, throwIfAborted } from '../errors';
import { SftpConnection, type ConnectParams, type Log } from './sftp/sftpConnection';
import { FX, classifySftpError, isTransientNetworkError, sftpStatus } from './sftp/sftpErrors';
import { parseSftpUrl, resolveSshTarget, sftpDisplayUrl, type SftpUrl } from './sftp/sftpTarget';
import { defaultKeyFiles, publicKeyBlobOf, type AuthPlan } from './sftp/sshAuth';

/** The options the CLI and the extension may set (BackendContext.options), all optional. */
export interface SftpOptions {
  /** Private key file(s) to use instead of the config's IdentityFile and the default ~/.ssh/id_*. */
  readonly sshKey?: string | readonly string[];
  /** known_hosts file to read and record accepted keys in, instead of ~/.ssh/known_hosts. */
  readonly knownHosts?: string;
  /** `SHA256:…` fingerprint of the host key to accept (and record) for a host not yet known. */
  readonly acceptHostKey?: string;
  /** Operations in flight at once (BackendProperties.connections). Default 4. */
  readonly concurrency?: number;
  /** SSH connections they share. Default min(concurrency, 2): more gains little on one link. */
  readonly sshConnections?: number;
  /** ssh config file (default ~/.ssh/config). */
  readonly sshConfig?: string;
  /** System-wide ssh config, read for HashKnownHosts (default /etc/ssh/ssh_config). */
  readonly sshSystemConfig?: string;
  /** Home folder for `~` and the ~/.ssh defaults (default the OS user's): tests use a private one. */
  readonly home?: string;
  /** Environment for SSH_AUTH_SOCK, OFFSITE_SSH_PASSPHRASE, OFFSITE_SSH_PASSWORD (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Silence longer than this on a connection with requests in flight kills it (default 30 s, or
   * OFFSITE_SSH_TIMEOUT seconds from the environment; OFFSITE_SSH_TIMEOUT_MS, milliseconds, for tests).
   */
  readonly timeoutMs?: number;
  /** fsync each uploaded file on the server before the rename (default true, when the server can). */
  readonly fsync?: boolean;
  /** How often one put or get resumes after a lost connection before it gives up (default 3). */
  readonly resumeAttempts?: number;
}

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_TIMEOUT_MS = 30_000;
/** A put keeps this many bytes of writes unanswered at most: enough to fill a fast link. */
const WRITE_WINDOW_BYTES = 2 * 1024 * 1024;
const WRITE_WINDOW_REQUESTS = 64;
/** Reads of a get: size of one request (below OpenSSH's 255 KiB limit) and how many are in flight. */
const READ_CHUNK = 128 * 1024;
const READ_WINDOW = 16;
/** Writes are gathered to this size: fewer, larger SFTP requests. */
const WRITE_GATHER = 128 * 1024;

const O_WRITE_EXCL = 'wx';

/** Everything resolved from the URL, ~/.ssh/config and the options (see createSftpBackend). */
export interface SftpBackendParams extends ConnectParams {
  /** Remote folder: relative to the login folder, or absolute. */
  readonly dir: string;
  readonly concurrency: number;
  readonly sshConnections: number;
  readonly fsync: boolean;
  readonly resumeAttempts: number;
}

interface Upload {
  readonly name: string;
  readonly temp: string;
  /** The temp file may exist on the server (remove it if the put fails). */
  created: boolean;
  /** The connection the upload holds (it may move to a new one after a lost connection). */
  conn?: SftpConnection;
}

export class SftpBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  private readonly pool: ConnectionPool;
  /** Temp names of this backend's puts in progress: cleanupPartial leaves them alone. */
  private readonly inflight = new Set<string>();
  private readonly dir: string;
  private readonly fsync: boolean;
  private readonly resumeAttempts: number;
  private dirReady = false;
  private readonly log?: Log;

  constructor(params: SftpBackendParams) {
    this.displayUrl = params.where;
    this.dir = params.dir;
    this.properties = { connections: params.concurrency };
    this.pool = new ConnectionPool(params, params.sshConnections);
    this.fsync = params.fsync;
    this.resumeAttempts = params.resumeAttempts;
    this.log = params.log;
  }

  private remote(name: string): string {
    return this.dir === '.' ? name : path.posix.join(this.dir, name);
  }

  private classify(e: unknown, op: string, name?: string, signal?: AbortSignal): unknown {
    const n = normalizeAbort(e, signal);
    if (n !== e) return n;
    return classifySftpError(e, { op, name, where: this.displayUrl });
  }

  /** Connects now (first use would anyway): lets a front end report connection problems early. */
  async connect(options: OpOptions = {}): Promise<void> {
    await this.withConnection('connect', undefined, options.signal, async () => undefined);
  }

  // ----------------------------------------------------------------------------------------- put

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    checkName('put', name);
    if (isPartialName(name)) {
      throw new BackendError('permanent', 'put', name, `"${name}" is reserved for temporary files`, { hint: 'Use another name' });
    }
    throwIfAborted(options.signal);
    const final = this.remote(name);
    const tempName = partialNameFor(name);
    const up: Upload = { name, temp: this.remote(tempName), created: false };
    this.inflight.add(tempName);
    try {
      up.conn = await this.pool.acquire(options.signal);
      if (!options.overwrite && (await this.exists(up.conn, final))) throw this.existsError(name);
      await this.upload(up, source, options);
      await this.commit(up.conn, name, up.temp, final, options.overwrite === true);
      up.created = false;
    } catch (e) {
      if (up.created) await this.removeQuietly(up.temp);
      throw this.classify(e, 'put', name, options.signal);
    } finally {
      if (up.conn) this.pool.release(up.conn);
      this.inflight.delete(tempName);
    }
  }

  private existsError(name: string): BackendError {
    return new BackendError('exists', 'put', name, `${name} already exists on ${this.displayUrl}`, {
      hint: 'Refusing to replace it; remove it first if it is not needed',
    });
  }

  private async exists(conn: SftpConnection, remotePath: string): Promise<boolean> {
    try {
      await conn.call<Stats>((cb) => conn.sftp.stat(remotePath, cb));
      return true;
    } catch (e) {
      if (sftpStatus(e) === FX.NO_SUCH_FILE) return false;
      throw e;
    }
  }

  /**
   * Writes the source to the temp file. After a lost connection it resumes on a new one from the
   * last acknowledged byte (the server has everything it acknowledged), up to resumeAttempts times.
   */
  private async upload(up: Upload, source: BlobSource, options: PutOptions): Promise<void> {
    let acked = 0;
    for (let attempt = 0; ; attempt++) {
      const conn = up.conn!;
      let handle: Buffer | undefined;
      try {
        if (!up.created) {
          up.created = true;
          handle = await this.openForWrite(conn, up.name, up.temp);
        } else {
          handle = await conn.call<Buffer>((cb) => conn.sftp.open(up.temp, 'r+', cb)).catch(async (e: unknown) => {
            // The connection died before the server created the file: start afresh.
            if (sftpStatus(e) !== FX.NO_SUCH_FILE) throw e;
            acked = 0;
            return await this.openForWrite(conn, up.name, up.temp);
          });
          const st = await conn.call<Stats>((cb) => conn.sftp.fstat(handle!, cb));
          if (st.size < acked) acked = 0; // the server lost acknowledged data: start over
        }
        const h = handle;
        acked = await this.writeFrom(conn, h, up.name, source, acked, options, (n) => (acked = n));
        handle = undefined;
        await this.finishUpload(conn, h, up.name, up.temp, source.size);
        return;
      } catch (e) {
        if (handle) await closeQuietly(conn, handle);
        if (options.signal?.aborted || !isTransientNetworkError(e) || attempt >= this.resumeAttempts) {
          throw await this.explainWriteFailure(conn, e, 'put', up.name, up.temp);
        }
        this.log?.('warn', `Upload of ${up.name} to ${this.displayUrl} interrupted after ${acked} bytes (${(e as Error).message}); resuming`);
        this.pool.release(conn);
        up.conn = undefined;
        await abortableDelay(200 * 2 ** attempt, options.signal);
        up.conn = await this.pool.acquire(options.signal);
      }
    }
  }

  private async openForWrite(conn: SftpConnection, name: string, temp: string): Promise<Buffer> {
    const attrs = { mode: 0o600 };
    try {
      return await conn.call<Buffer>((cb) => conn.sftp.open(temp, O_WRITE_EXCL, attrs, cb));
    } catch (e) {
      if (sftpStatus(e) !== FX.NO_SUCH_FILE || this.dirReady) throw await this.explainWriteFailure(conn, e, 'put', name);
    }
    // The first backup to a new folder: create it (and its parents), then try again.
    try {
      await this.mkdirs(conn);
      return await conn.call<Buffer>((cb) => conn.sftp.open(temp, O_WRITE_EXCL, attrs, cb));
    } catch (e) {
      if (sftpStatus(e) === FX.NO_SUCH_FILE) throw (await this.notAFolder(conn, 'put', name)) ?? e;
      throw e;
    }
  }

  /**
   * The error to give when the remote folder or one of its parents exists but is not a folder, else
   * undefined. OpenSSH answers ENOTDIR with "no such file", which reads as a folder not made yet: a
   * listing then came out empty and the first upload failed with "<volume> does not exist".
   */
  private async notAFolder(conn: SftpConnection, op: string, name?: string): Promise<BackendError | undefined> {
    const parts = this.dir.split('/');
    for (let i = parts.length; i >= 1; i--) {
      const p = parts.slice(0, i).join('/');
      if (p === '' || p === '.') return undefined; // the root or the login folder: folders
      const st = await conn.call<Stats>((cb) => conn.sftp.stat(p, cb)).catch((e: unknown) => {
        if (sftpStatus(e) === FX.NO_SUCH_FILE) return undefined; // not there: look at its parent
        return null; // cannot tell (permission): the original error stands
      });
      if (st === null) return undefined;
      if (st === undefined) continue;
      if (st.isDirectory()) return undefined; // the rest is merely missing
      const what = p === this.dir ? `${this.displayUrl} is not a folder` : `${this.displayUrl} cannot be a folder: ${p} on the server is not one`;
      return new BackendError('permanent', op, name, what, { hint: 'Point the remote URL at a folder' });
    }
    return undefined;
  }

  private async mkdirs(conn: SftpConnection): Promise<void> {
    const parts = this.dir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (p === '' || p === '.') continue;
      try {
        await conn.call<void>((cb) => conn.sftp.mkdir(p, { mode: 0o700 }, cb));
      } catch (e) {
        // Exists already (FAILURE on OpenSSH), or a parent we may not stat: the next step tells.
        if (sftpStatus(e) === FX.PERMISSION_DENIED) {
          const st = await conn.call<Stats>((cb) => conn.sftp.stat(p, cb)).catch(() => undefined);
          if (!st) throw e;
        } else if (sftpStatus(e) !== FX.FAILURE) {
          throw e;
        }
      }
    }
    // Ready only when it is a folder now: mkdir fails alike on a folder and on a file of that name, and
    // a file taken for the folder made every later put of this backend fail with "<name> does not exist".
    const st = await conn.call<Stats>((cb) => conn.sftp.stat(this.dir, cb)).catch(() => undefined);
    if (st?.isDirectory()) this.dirReady = true;
  }

  /**
   * Streams the source from `start` into the open handle with many writes in flight; returns the
   * number of bytes acknowledged (== source.size). Calls onAcked with the contiguous acknowledged
   * prefix, which is what a resume may trust.
   */
  private async writeFrom(
    conn: SftpConnection,
    handle: Buffer,
    name: string,
    source: BlobSource,
    start: number,
    options: PutOptions,
    onAcked: (n: number) => void,
  ): Promise<number> {
    const { signal } = options;
    // A local file is read from `start` (a resume skips nothing), each chunk written at once.
    const local = source.localPath !== undefined;
    const stream = local ? localChunks(source.localPath!, start, conn.maxWriteLength >= WRITE_GATHER) : source.open();
    const onAbort = (): void => {
      if (stream instanceof Readable) stream.destroy(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Writes in flight, in offset order; the acknowledged prefix ends at the first unfinished one.
    // Writes in offset order; the acknowledged prefix ends at the first one not answered OK (a failed
    // write stays in the queue, so the prefix never passes it).
    const queue: Array<{ end: number; ok: boolean }> = [];
    let outstanding = 0;
    let inflightBytes = 0;
    let acked = start;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const settle = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const issue = (buf: Buffer, offset: number): void => {
      const entry = { end: offset + buf.length, ok: false };
      queue.push(entry);
      outstanding++;
      inflightBytes += buf.length;
      conn.send<void>((cb) => conn.sftp.write(handle, buf, 0, buf.length, offset, cb), (err) => {
        outstanding--;
        inflightBytes -= buf.length;
        if (err) {
          failure ??= conn.failure ?? err;
        } else {
          entry.ok = true;
          const before = acked;
          while (queue.length && queue[0].ok) acked = queue.shift()!.end;
          if (acked !== before) {
            onAcked(acked);
            options.onProgress?.(acked);
          }
        }
        settle();
      });
    };
    try {
      let pos = local ? start : 0; // position in the source
      let offset = start; // next write offset in the file
      let gather: Buffer[] = [];
      let gathered = 0;
      const flush = (): void => {
        if (gathered === 0) return;
        const buf = gather.length === 1 ? gather[0] : Buffer.concat(gather, gathered);
        issue(buf, offset);
        offset += gathered;
        gather = [];
        gathered = 0;
      };
      for await (const raw of stream) {
        let chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as Uint8Array);
        const chunkStart = pos;
        pos += chunk.length;
        if (pos > source.size) throw sizeMismatch(name, source.size, pos, true);
        if (pos <= offset) continue; // resuming: skip what the server already has
        if (chunkStart < offset) chunk = chunk.subarray(offset - chunkStart);
        if (failure) throw failure;
        throwIfAborted(signal);
        gather.push(chunk);
        gathered += chunk.length;
        if (gathered >= WRITE_GATHER || local) flush(); // a local chunk's buffer is read into again
        while (!failure && (inflightBytes >= WRITE_WINDOW_BYTES || outstanding >= WRITE_WINDOW_REQUESTS)) {
          await new Promise<void>((r) => (wake = r));
        }
      }
      flush();
      if (pos !== source.size) throw sizeMismatch(name, source.size, pos, false);
      while (!failure && outstanding > 0) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      if (source.size === 0) options.onProgress?.(0);
      return acked;
    } catch (e) {
      // Let the writes in flight finish (or fail with the connection) before the handle is reused.
      while (outstanding > 0 && conn.alive) await new Promise<void>((r) => (wake = r));
      throw failure && !(e instanceof OffsiteError) && !isAbort(e, signal) ? failure : e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (stream instanceof Readable) stream.destroy();
      else stream.return(undefined);
    }
  }

  /** Checks the size the server has, makes it durable, and closes the handle. */
  private async finishUpload(conn: SftpConnection, handle: Buffer, name: string, temp: string, size: number): Promise<void> {
    const st = await conn.call<Stats>((cb) => conn.sftp.fstat(handle, cb));
    if (st.size !== size) {
      // Everything was acknowledged, so the server lost or added data: not something a retry fixes.
      throw new BackendError('permanent', 'put', name, `After the upload the server has ${st.size} bytes of ${name}, not ${size}`, {
        hint: 'The server did not store what it acknowledged; check its disk and log',
      });
    }
    try {
      if (this.fsync && conn.has('fsync@openssh.com')) await conn.call<void>((cb) => conn.sftp.ext_openssh_fsync(handle, cb));
      await conn.call<void>((cb) => conn.sftp.close(handle, cb));
    } catch (e) {
      throw await this.explainWriteFailure(conn, e, 'put', name, temp);
    }
  }

  private async commit(conn: SftpConnection, name: string, temp: string, final: string, overwrite: boolean): Promise<void> {
    try {
      if (overwrite && conn.has('posix-rename@openssh.com')) {
        await conn.call<void>((cb) => conn.sftp.ext_openssh_rename(temp, final, cb));
      } else {
        // SFTP rename never replaces a file (OpenSSH links then unlinks): the no-clobber commit.
        if (overwrite) await this.removeOn(conn, final);
        await conn.call<void>((cb) => conn.sftp.rename(temp, final, cb));
      }
    } catch (e) {
      if (sftpStatus(e) === FX.FAILURE && !overwrite && (await this.exists(conn, final))) throw this.existsError(name);
      throw await this.explainWriteFailure(conn, e, 'put', name);
    }
  }

  /**
   * SFTP v3 reports a full disk or quota as a bare FAILURE: ask the server's statvfs whether the folder
   * has room left, to tell "disk full" from other refusals. (A quota does not show in statvfs: the
   * message then says the server gave no reason, and the hint names both.)
   */
  private async explainWriteFailure(conn: SftpConnection, e: unknown, op: string, name: string, temp?: string): Promise<unknown> {
    if (sftpStatus(e) !== FX.FAILURE) return e;
    if (conn.alive && conn.has('statvfs@openssh.com')) {
      try {
        const vfs = await conn.call<{ f_bavail: number; f_frsize: number; f_bsize: number; f_favail: number }>((cb) =>
          conn.sftp.ext_openssh_statvfs(temp ?? this.dir, cb as never),
        );
        const free = vfs.f_bavail * (vfs.f_frsize || vfs.f_bsize);
        if (free < 1024 * 1024 || vfs.f_favail === 0) return classifySftpError(e, { op, name, where: this.displayUrl, noSpace: true });
      } catch {
        // No statvfs answer: fall through to the generic message.
      }
    }
    return new BackendError('permanent', op, name, `The SFTP server could not write ${name} on ${this.displayUrl} and gave no reason`, {
      cause: e,
      hint: 'The remote disk may be full or a quota reached; check the server (df, quota, its log)',
    });
  }

  // ----------------------------------------------------------------------------------------- get

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    checkName('get', name);
    throwIfAborted(options.signal);
    const remotePath = this.remote(name);
    let conn: SftpConnection;
    let handle: Buffer;
    let size: number;
    try {
      conn = await this.pool.acquire(options.signal);
    } catch (e) {
      throw this.classify(e, 'get', name, options.signal);
    }
    try {
      handle = await conn.call<Buffer>((cb) => conn.sftp.open(remotePath, 'r', cb));
      size = (await conn.call<Stats>((cb) => conn.sftp.fstat(handle, cb))).size;
    } catch (e) {
      this.pool.release(conn);
      throw this.classify(e, 'get', name, options.signal);
    }
    let range: { start: number; end: number };
    try {
      range = checkRange('get', name, size, options.offset, options.length);
    } catch (e) {
      await closeQuietly(conn, handle);
      this.pool.release(conn);
      throw e;
    }
    return new SftpReadStream(this, this.pool, conn, handle, name, remotePath, range.start, range.end, options.signal, this.resumeAttempts);
  }

  /** @internal for SftpReadStream */
  classifyFor(e: unknown, op: string, name: string, signal?: AbortSignal): Error {
    return this.classify(e, op, name, signal) as Error;
  }

  // ----------------------------------------------------------------------------------------- stat, list, remove

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    checkName('stat', name);
    return await this.withConnection('stat', name, options.signal, async (conn) => {
      const st = await conn.call<Stats>((cb) => conn.sftp.stat(this.remote(name), cb));
      if (!st.isFile()) throw new BackendError('notFound', 'stat', name, `${name} on ${this.displayUrl} is not a file`);
      return { name, size: st.size, mtime: new Date(st.mtime * 1000) };
    });
  }

  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    const entries = await this.withConnection('list', undefined, options.signal, (conn) => this.readDir(conn, 'list'));
    for (const e of entries) {
      if ((e.attrs.mode & 0o170000) !== 0o100000) continue;
      const info = { name: e.filename, size: e.attrs.size, mtime: new Date(e.attrs.mtime * 1000) };
      if (!isPartialName(e.filename)) yield info;
      else if (options.partial && !this.inflight.has(e.filename)) yield { ...info, partial: true, ...partialTarget(e.filename) };
    }
  }

  /** The folder's entries; a folder that does not exist yet (no backup made) is empty, a file is an error. */
  private async readDir(conn: SftpConnection, op: string): Promise<FileEntry[]> {
    let handle: Buffer;
    try {
      handle = await conn.call<Buffer>((cb) => conn.sftp.opendir(this.dir, cb));
    } catch (e) {
      if (sftpStatus(e) !== FX.NO_SUCH_FILE) throw e;
      const bad = await this.notAFolder(conn, op);
      if (bad) throw bad;
      return [];
    }
    const out: FileEntry[] = [];
    try {
      for (;;) {
        const batch = await conn.call<FileEntry[] | false>((cb) => conn.sftp.readdir(handle, cb as never)).catch((e: unknown) => {
          if (sftpStatus(e) === FX.EOF) return false as const;
          throw e;
        });
        if (!batch) break;
        out.push(...batch);
      }
    } finally {
      await closeQuietly(conn, handle);
    }
    return out;
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    checkName('remove', name);
    await this.withConnection('remove', name, options.signal, (conn) => this.removeOn(conn, this.remote(name)));
  }

  private async removeOn(conn: SftpConnection, remotePath: string): Promise<void> {
    try {
      await conn.call<void>((cb) => conn.sftp.unlink(remotePath, cb));
    } catch (e) {
      if (sftpStatus(e) !== FX.NO_SUCH_FILE) throw e;
    }
  }

  private async removeQuietly(remotePath: string): Promise<void> {
    try {
      const conn = await this.pool.acquire();
      try {
        await this.removeOn(conn, remotePath);
      } finally {
        this.pool.release(conn);
      }
    } catch {
      // Left for cleanupPartial.
    }
  }

  async cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    return await this.withConnection('cleanup', undefined, options.signal, async (conn) => {
      const found = (await this.readDir(conn, 'cleanup')).map((e) => e.filename).filter((n) => cleanupCandidate(n, this.inflight, options));
      found.sort();
      if (!options.dryRun) for (const n of found) await this.removeOn(conn, this.remote(n));
      return found;
    });
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Runs `fn` on a pooled connection, classifying its errors; the connection is released after. */
  private async withConnection<T>(op: string, name: string | undefined, signal: AbortSignal | undefined, fn: (conn: SftpConnection) => Promise<T>): Promise<T> {
    throwIfAborted(signal);
    let conn: SftpConnection | undefined;
    try {
      conn = await this.pool.acquire(signal);
      return await fn(conn);
    } catch (e) {
      throw this.classify(e, op, name, signal);
    } finally {
      if (conn) this.pool.release(conn);
    }
  }
}

function isAbort(e: unknown, signal?: AbortSignal): boolean {
  return normalizeAbort(e, signal) !== e || OffsiteError.is(e, 'cancelled');
}

/**
 * The chunks of a local file from `start` (a volume in the temp folder), read synchronously
 * WRITE_GATHER bytes at a time instead of through a read stream whose buffers were then gathered and
 * copied. With `reuse`, one buffer serves every chunk: ssh2 copies a write's data into its request
 * before write() returns when the data fits in one request. The caller writes each chunk before
 * asking for the next.
 */
function* localChunks(file: string, start: number, reuse: boolean): Generator<Buffer, void, undefined> {
  const fd = fs.openSync(file, 'r');
  try {
    let buf = Buffer.allocUnsafe(WRITE_GATHER);
    for (let pos = start; ; ) {
      if (!reuse) buf = Buffer.allocUnsafe(WRITE_GATHER);
      const n = fs.readSync(fd, buf, 0, WRITE_GATHER, pos);
      if (n === 0) return;
      pos += n;
      yield buf.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function closeQuietly(conn: SftpConnection, handle: Buffer): Promise<void> {
  if (!conn.alive) return;
  await conn.call<void>((cb) => conn.sftp.close(handle, cb)).catch(() => undefined);
}

/**
 * A few SSH connections shared by all operations: an operation takes the least busy live one, a new
 * one is opened while there are fewer than `size` and all are busy, and dead ones are dropped.
 */
class ConnectionPool {
  private readonly conns: SftpConnection[] = [];
  private opening: Promise<SftpConnection> | undefined;
  private closed = false;
  private readonly log?: Log;

  constructor(
    private readonly params: ConnectParams,
    private readonly size: number,
  ) {
    this.log = params.log;
  }

  async acquire(signal?: AbortSignal): Promise<SftpConnection> {
    throwIfAborted(signal);
    if (this.closed) throw new BackendError('permanent', 'connect', undefined, `The connection to ${this.params.where} is closed`);
    for (let i = this.conns.length - 1; i >= 0; i--) {
      if (!this.conns[i].alive && this.conns[i].active <= 0) this.conns.splice(i, 1);
    }
    const live = this.conns.filter((c) => c.alive);
    let best = live.reduce<SftpConnection | undefined>((a, c) => (a === undefined || c.active < a.active ? c : a), undefined);
    if (!best || (best.active > 0 && live.length < this.size)) {
      try {
        best = await this.openOne(signal);
      } catch (e) {
        if (!best) throw e;
        this.log?.('debug', `Could not open another connection to ${this.params.where}: ${(e as Error).message}`);
      }
    }
    best.active++;
    return best;
  }

  private async openOne(signal?: AbortSignal): Promise<SftpConnection> {
    // One connection at a time: a burst of operations should not open a dozen at once.
    this.opening ??= SftpConnection.open(this.params).then(
      (c) => {
        this.opening = undefined;
        if (this.closed) {
          void c.close();
          throw new BackendError('permanent', 'connect', undefined, `The connection to ${this.params.where} is closed`);
        }
        this.conns.push(c);
        return c;
      },
      (e: unknown) => {
        this.opening = undefined;
        throw e;
      },
    );
    if (!signal) return await this.opening;
    // Every operation that waits for the connection listens to the run's signal only while it waits.
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        this.opening,
        new Promise<never>((_, reject) => {
          onAbort = () => reject(cancelled());
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  release(conn: SftpConnection): void {
    conn.active--;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.conns.splice(0);
    await Promise.all(all.map((c) => c.close()));
  }
}

/**
 * A get: reads of READ_CHUNK bytes, READ_WINDOW in flight, delivered in order. A lost connection is
 * replaced and the read resumes at the first byte not yet delivered.
 */
class SftpReadStream extends Readable {
  private pos: number;
  private next: number;
  private readonly reqs: Array<{ pos: number; len: number; data?: Buffer; err?: unknown }> = [];
  private resumes = 0;
  private reconnecting = false;
  private released = false;

  constructor(
    private readonly backend: SftpBackend,
    private readonly pool: ConnectionPool,
    private conn: SftpConnection,
    private handle: Buffer,
    private readonly name: string,
    private readonly remotePath: string,
    start: number,
    private readonly end: number,
    private readonly signal: AbortSignal | undefined,
    private readonly resumeAttempts: number,
  ) {
    super({ highWaterMark: READ_CHUNK * 2 });
    this.pos = start;
    this.next = start;
    if (signal) {
      const onAbort = (): void => {
        this.destroy(cancelled());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }

  override _read(): void {
    this.pump();
  }

  private pump(): void {
    if (this.destroyed || this.reconnecting) return;
    if (this.pos >= this.end) {
      this.finish();
      return;
    }
    // Deliver what arrived in order.
    while (this.reqs.length > 0 && (this.reqs[0].data !== undefined || this.reqs[0].err !== undefined)) {
      const r = this.reqs[0];
      if (r.err !== undefined) {
        this.onError(r.err);
        return;
      }
      const data = r.data!;
      if (data.length === 0) {
        this.destroy(
          new BackendError('permanent', 'get', this.name, `${this.name} on ${this.backend.displayUrl} ended at ${r.pos} bytes, before ${this.end}`, {
            hint: 'The remote file was truncated while it was read; verify the backup',
          }),
        );
        return;
      }
      this.reqs.shift();
      this.pos += data.length;
      this.resumes = 0;
      if (data.length < r.len) {
        // A short read: ask again for the rest, before anything queued behind it.
        this.reqs.unshift({ pos: r.pos + data.length, len: r.len - data.length });
        this.issue(this.reqs[0]);
      }
      if (!this.push(data)) return;
      if (this.pos >= this.end) {
        this.finish();
        return;
      }
    }
    while (this.reqs.length < READ_WINDOW && this.next < this.end) {
      const len = Math.min(READ_CHUNK, this.end - this.next);
      const r = { pos: this.next, len };
      this.next += len;
      this.reqs.push(r);
      this.issue(r);
    }
  }

  private issue(r: { pos: number; len: number; data?: Buffer; err?: unknown }): void {
    const conn = this.conn;
    const buf = Buffer.allocUnsafe(r.len);
    conn.send<number>((cb) => conn.sftp.read(this.handle, buf, 0, r.len, r.pos, cb), (err, bytesRead) => {
      if (conn !== this.conn) return; // an answer from a connection we left
      if (err) {
        // EOF before the end: the file shrank.
        if (sftpStatus(err) === FX.EOF) r.data = Buffer.alloc(0);
        else r.err = conn.failure ?? err;
      } else {
        r.data = buf.subarray(0, bytesRead);
      }
      if (r === this.reqs[0]) this.pump();
    });
  }

  private onError(e: unknown): void {
    if (this.signal?.aborted) {
      this.destroy(cancelled());
      return;
    }
    if (!isTransientNetworkError(e) || this.resumes >= this.resumeAttempts) {
      this.destroy(this.backend.classifyFor(e, 'get', this.name, this.signal));
      return;
    }
    this.resumes++;
    this.reconnecting = true;
    const old = this.conn;
    void (async () => {
      try {
        await abortableDelay(200 * 2 ** (this.resumes - 1), this.signal);
        this.pool.release(old);
        this.released = true;
        const conn = await this.pool.acquire(this.signal);
        this.released = false;
        this.conn = conn;
        this.handle = await conn.call<Buffer>((cb) => conn.sftp.open(this.remotePath, 'r', cb));
        this.reqs.length = 0;
        this.next = this.pos;
        this.reconnecting = false;
        this.pump();
      } catch (err) {
        this.reconnecting = false;
        if (isTransientNetworkError(err) && this.resumes < this.resumeAttempts) this.onError(err);
        else this.destroy(this.backend.classifyFor(err, 'get', this.name, this.signal));
      }
    })();
  }

  private finish(): void {
    if (this.readableEnded) return;
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    const conn = this.conn;
    if (!this.released) {
      this.released = true;
      void closeQuietly(conn, this.handle).finally(() => this.pool.release(conn));
    }
    cb(err);
  }
}

// --------------------------------------------------------------------------------------------- factory

function optString(o: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new OffsiteError('usage', `The sftp option ${key} must be a string`);
  return v;
}

function optNumber(o: Readonly<Record<string, unknown>>, key: string, min: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min) throw new OffsiteError('usage', `The sftp option ${key} must be a whole number of at least ${min}, not ${String(v)}`);
  return n;
}

/** Builds an SftpBackend from a URL and the front end's context (see SftpOptions). */
export function createSftpBackend(url: URL, ctx: BackendContext = {}): SftpBackend {
  const o = (ctx.options ?? {}) as Readonly<Record<string, unknown>>;
  const u: SftpUrl = parseSftpUrl(url);
  const env = (o.env as SftpOptions['env']) ?? process.env;
  const home = optString(o, 'home') ?? os.homedir();
  const localUser = safeUserName();
  const target = resolveSshTarget(u, { configFile: optString(o, 'sshConfig'), systemConfigFile: optString(o, 'sshSystemConfig'), home, localUser });
  const where = sftpDisplayUrl(u);
  const sshKey = o.sshKey;
  const explicitKeys = (Array.isArray(sshKey) ? (sshKey as string[]) : typeof sshKey === 'string' && sshKey ? [sshKey] : []).map((f) =>
    path.resolve(f.replace(/^~(?=\/|$)/, home)),
  );
  const knownHosts = optString(o, 'knownHosts');
  const userKnown = knownHosts !== undefined ? [path.resolve(knownHosts)] : (target.userKnownHostsFiles ?? [path.join(home, '.ssh', 'known_hosts')]);
  const concurrency = optNumber(o, 'concurrency', 1) ?? DEFAULT_CONCURRENCY;
  // IdentitiesOnly with named keys: of the agent's keys, only the copies of those (OpenSSH's way).
  const namedKeys = explicitKeys.length ? explicitKeys : target.identityFiles;
  const agentKeysOnly = target.identitiesOnly && namedKeys.length > 0 ? namedKeys.map(publicKeyBlobOf).filter((b) => b !== undefined) : undefined;
  const auth: AuthPlan = {
    user: target.user,
    agentSocket: agentKeysOnly?.length === 0 ? undefined : env.SSH_AUTH_SOCK || undefined,
    agentKeysOnly,
    explicitKeys: namedKeys,
    explicitFromConfig: explicitKeys.length === 0,
    defaultKeys: defaultKeyFiles(home),
    passphrase: env.OFFSITE_SSH_PASSPHRASE,
    password: env.OFFSITE_SSH_PASSWORD ?? u.password,
    prompt: ctx.prompt,
    label: `${target.user}@${target.hostName}${target.port === 22 ? '' : `:${target.port}`}`,
  };
  return new SftpBackend({
    hostName: target.hostName,
    port: target.port,
    hostKeyAlias: target.hostKeyAlias,
    where,
    // The user's files first; the system-wide one is read too when the user's is the default.
    knownHostsFiles: knownHosts !== undefined ? userKnown : [...userKnown, '/etc/ssh/ssh_known_hosts'],
    knownHostsRecordFile: userKnown[0],
    hashKnownHosts: target.hashKnownHosts,
    acceptHostKey: optString(o, 'acceptHostKey'),
    auth,
    timeoutMs: optNumber(o, 'timeoutMs', 100) ?? envNumber(env, 'OFFSITE_SSH_TIMEOUT', 'seconds') ?? envNumber(env, 'OFFSITE_SSH_TIMEOUT_MS', 'milliseconds') ?? DEFAULT_TIMEOUT_MS,
    log: ctx.log,
    dir: u.path,
    concurrency,
    sshConnections: optNumber(o, 'sshConnections', 1) ?? Math.min(concurrency, 2),
    fsync: o.fsync !== false,
    resumeAttempts: optNumber(o, 'resumeAttempts', 0) ?? 3,
  });
}

function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'root';
  }
}

registerBackend('sftp', async (url, ctx) => createSftpBackend(url, ctx));
