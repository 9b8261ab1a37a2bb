// rclone://remote:path remotes: the rclone program does the work (lsjson, copyto/rcat, moveto, cat,
// deletefile), so the user's rclone configuration reaches every provider rclone supports, as with
// duplicity's rclone backend. Uploads go to a temporary name that is then moved to the final one:
// Debian's rclone 1.60 writes `local` and some other remotes in place, where a reader would see a
// partial file. One rclone process per operation; a few operations run at once.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ChildProcess } from 'node:child_process';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { BackendError } from './backend';
import { checkName, checkRange, normalizeAbort, sizeMismatch } from './backendUtil';
import { cleanupCandidate, isPartialName, partialNameFor, partialTarget } from './fileBackend';
import { registerBackend, type BackendContext } from './registry';
import { classifyRclone, displayRemote, makeRedactor, rcloneEnv, remoteParts, runRclone, secretsToEnv, spawnRclone, stopChild, type RcloneEnv } from './rclone/rcloneRun';
import { OffsiteError, cancelled, throwIfAborted } from '../errors';

/** The options the CLI and the extension may set (BackendContext.options), all optional. */
export interface RcloneOptions {
  /** The rclone program (default "rclone" on PATH, or OFFSITE_RCLONE). */
  readonly rcloneBinary?: string;
  /** rclone's config file (default RCLONE_CONFIG, else rclone's own default). */
  readonly rcloneConfig?: string;
  /** Operations in flight at once (BackendProperties.connections). Default 4. */
  readonly concurrency?: number;
  /** Environment of the rclone processes (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface RcloneBackendParams {
  /** rclone's remote:path, e.g. "gdrive:backups/laptop" or "local:/srv/backup". */
  readonly remote: string;
  readonly binary?: string;
  readonly config?: string;
  readonly concurrency?: number;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * duplicity's reading of rclone://… (backend.py + rclonebackend.py): what follows "rclone://" is the
 * remote; the part after its first "/" is percent-decoded; then the first ":/" becomes ":". So
 * rclone://gdrive:backups/x is "gdrive:backups/x", rclone://gdrive:/backups is "gdrive:backups", and
 * an absolute local path needs two slashes: rclone://local://srv/backup is "local:/srv/backup".
 */
export function parseRcloneUrl(rawUrl: string): string {
  const m = /^rclone:\/\/(.*)$/is.exec(rawUrl);
  if (!m) throw badUrl(rawUrl, 'it must start with rclone://');
  const rest = m[1].replace(/[?#].*$/s, '');
  const slash = rest.indexOf('/');
  let tail = slash < 0 ? '' : rest.slice(slash);
  try {
    tail = decodeURIComponent(tail);
  } catch {
    throw badUrl(rawUrl, 'it has an invalid %-escape');
  }
  const remote = ((slash < 0 ? rest : rest.slice(0, slash)) + tail).replace(':/', ':');
  if (!remote.includes(':')) throw badUrl(rawUrl, 'it names no rclone remote ("name:" before the path)');
  if (remote.startsWith(':') ? !/^:[A-Za-z0-9_-]+[,:]/.test(remote) : !/^[^:/\\]+:/.test(remote)) throw badUrl(rawUrl, 'the remote name is not valid');
  if (remote.includes('\0')) throw badUrl(rawUrl, 'it contains a NUL character');
  // Secrets that secretsToEnv cannot move off rclone's command line: refused, saying how to write them.
  const { problem } = secretsToEnv(remote);
  if (problem) throw badUrl(rawUrl, problem);
  return remote;
}

/**
 * rclone's timeouts and retries for a dead link. The caller retries whole operations (RetryBackend,
 * 5 attempts), so rclone's own retries multiply: even at --low-level-retries 1, rclone's S3 backend
 * tries a request up to 4 times (its pacer 2 × its SDK 2), and a list of bucket/path makes two requests
 * (a HEAD: is the path a file?, then the list), 8 timeouts per run. rclone's --timeout (default 5 min)
 * is both the idle time of a transfer and the wait for an answer's headers: 30 s, as s3:// waits (a
 * live store answers in seconds, but some providers take several seconds to finish a large upload
 * before they answer, and a timeout shorter than that would fail every such upload however often it
 * is retried). At 10 s a silent S3 server failed an rclone list in ~80 s and `offsite status` in ~7
 * min (measured 6m52s; an sftp server, ~2m44s; s3://, 2m56s); at 30 s that is ~4 min and ~20 min.
 * Remotes without the pacer-and-SDK layering (local, sftp, most others) fail in 1–2 timeouts per
 * request. A setting of the user's (RCLONE_TIMEOUT, RCLONE_CONTIMEOUT, RCLONE_LOW_LEVEL_RETRIES,
 * RCLONE_RETRIES) wins: a flag would override it.
 */
const RCLONE_TIMEOUT_FLAGS: ReadonlyArray<readonly [flag: string, value: string, envName: string]> = [
  ['--retries', '1', 'RCLONE_RETRIES'],
  ['--low-level-retries', '1', 'RCLONE_LOW_LEVEL_RETRIES'],
  ['--contimeout', '10s', 'RCLONE_CONTIMEOUT'],
  ['--timeout', '30s', 'RCLONE_TIMEOUT'],
];

export function rcloneTimeoutArgs(env: Readonly<Record<string, string | undefined>>): string[] {
  return RCLONE_TIMEOUT_FLAGS.flatMap(([flag, value, envName]) => (env[envName] ? [] : [flag, value]));
}

/**
 * duplicity turns the first ":/" into ":", so rclone://loc:/srv/b is the path srv/b below the remote's
 * root (for a local remote, the current folder), not /srv/b: a warning says so, and how to write
 * either meaning. Undefined for URLs without that form.
 */
export function rcloneSlashWarning(rawUrl: string): string | undefined {
  const m = /^rclone:\/\/([^/]*?):\/([^/].*)?$/is.exec(rawUrl.replace(/[?#].*$/s, ''));
  if (!m || m[1] === '' || m[1].startsWith(':') || m[1].includes(',')) return undefined;
  const name = m[1];
  const rest = m[2] ?? '';
  return `rclone://${name}:/${rest} means "${name}:${rest}" (as duplicity reads it): a path below the remote's root, for a local remote below the current folder. ` +
    `For the absolute path /${rest} write rclone://${name}://${rest}; write rclone://${name}:${rest} to keep this meaning without this warning`;
}

function badUrl(url: string, why: string): OffsiteError {
  return new OffsiteError('usage', `Bad rclone URL "${makeRedactor(url)(url)}": ${why}`, {
    hint: 'Write it as rclone://REMOTE:path, with REMOTE a name from `rclone listremotes`',
  });
}

interface LsEntry {
  Path?: string;
  Name?: string;
  Size?: number;
  ModTime?: string;
  IsDir?: boolean;
}

export class RcloneBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  private readonly rc: RcloneEnv;
  /** The remote given to rclone: its secrets are in rclone's environment (secretsToEnv). */
  private readonly remote: string;
  /** The name of the rclone.conf remote the URL names; undefined for a backend made on the fly (":s3,…"). */
  private readonly confName: string | undefined;
  /** The bucket a missing folder may be (missingBucket): rclone's features of the remote, asked once. */
  private bucketRoot: Promise<string | undefined> | undefined;
  /** Temp names of this backend's puts in progress: cleanupPartial leaves them alone. */
  private readonly inflight = new Set<string>();
  /** rclone processes running, so close() can end them. */
  private readonly children = new Set<ChildProcess>();
  /** Where rclone's config file comes from, for messages. */
  private readonly configSource: string;

  constructor(params: RcloneBackendParams) {
    // Secrets of a connection string go to rclone in its environment, never on its command line.
    const hidden = secretsToEnv(params.remote);
    this.remote = hidden.remote;
    const name = remoteParts(params.remote)?.name;
    this.confName = name?.startsWith(':') ? undefined : name;
    const redact = makeRedactor(params.remote, hidden);
    this.displayUrl = `rclone://${displayRemote(params.remote)}`;
    const env = { ...rcloneEnv(params.env ?? process.env), ...hidden.env };
    this.configSource = params.config ? 'the rclone config option' : env.RCLONE_CONFIG ? 'RCLONE_CONFIG' : "rclone's default";
    const globalArgs = [...(params.config ? ['--config', params.config] : []), ...rcloneTimeoutArgs(env)];
    this.rc = { binary: params.binary ?? 'rclone', globalArgs, env, redact, where: this.displayUrl };
    this.properties = { connections: Math.max(1, Math.floor(params.concurrency ?? 4)) };
  }

  /** remote:path/name (no "/" after a bare "remote:"). */
  private target(name: string): string {
    const r = this.remote;
    return r.endsWith(':') || r.endsWith('/') ? `${r}${name}` : `${r}/${name}`;
  }

  private fail(res: { code: number; stderr: string }, op: string, name?: string): BackendError {
    return classifyRclone(this.rc, res, op, name);
  }

  private async run(args: readonly string[], op: string, name: string | undefined, signal?: AbortSignal): Promise<{ code: number; stdout: Buffer; stderr: string }> {
    throwIfAborted(signal);
    try {
      const res = await runRclone(this.rc, args, signal);
      throwIfAborted(signal);
      return res;
    } catch (e) {
      throw this.spawnError(e, op, name, signal);
    }
  }

  private spawnError(e: unknown, op: string, name: string | undefined, signal?: AbortSignal): unknown {
    const n = normalizeAbort(e, signal);
    if (n !== e || e instanceof OffsiteError) return n;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return new BackendError('permanent', op, name, `rclone is not installed (cannot run "${this.rc.binary}")`, {
        cause: e,
        hint: 'Install rclone (e.g. apt install rclone, or from rclone.org), or set OFFSITE_RCLONE to its path',
      });
    }
    return new BackendError('permanent', op, name, `Cannot run rclone for ${this.displayUrl}: ${(e as Error).message}`, { cause: e, hint: 'Check the rclone installation' });
  }

  /** Checks that rclone runs and knows the remote (a remote defined by a connection string needs nothing). */
  async check(signal?: AbortSignal): Promise<void> {
    const res = await this.run(['listremotes'], 'open', undefined, signal);
    if (res.code !== 0) throw this.fail(res, 'open');
    const name = this.confName;
    if (name === undefined) return;
    const known = res.stdout.toString('utf8').split('\n').map((l) => l.trim().replace(/:$/, ''));
    // Single-letter names are Windows drives ("C:") to rclone: local paths, not remotes.
    if (!known.includes(name) && !(name.length === 1 && process.platform === 'win32')) {
      const file = await this.configFile(signal);
      if (file && !file.exists) {
        throw new OffsiteError('config', `rclone has no remote named "${name}": its config file ${file.path} (${this.configSource}) does not exist`, {
          hint: this.configSource === "rclone's default" ? 'Set RCLONE_CONFIG to your rclone.conf, or add the remote with `rclone config`' : `Point ${this.configSource} at your rclone.conf, or add the remote with \`rclone config\``,
        });
      }
      throw new OffsiteError('config', `rclone has no remote named "${name}"${file ? ` in ${file.path} (${this.configSource})` : ''}`, {
        hint: `Add it with \`rclone config\`, or pick one of: ${known.filter((k) => k).join(', ') || '(none configured)'}`,
      });
    }
  }

  /** The config file rclone reads (`rclone config file`) and whether it exists; undefined if rclone does not say. */
  private async configFile(signal?: AbortSignal): Promise<{ path: string; exists: boolean } | undefined> {
    const res = await this.run(['config', 'file'], 'open', undefined, signal);
    const lines = res.stdout.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (res.code !== 0 || lines.length === 0) return undefined;
    // "Configuration file is stored at:\nPATH", or "Configuration file doesn't exist, but rclone will use this path:\nPATH".
    return { path: lines[lines.length - 1], exists: !/doesn't exist/i.test(lines[0]) };
  }

  // ----------------------------------------------------------------------------------------- put

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    checkName('put', name);
    if (isPartialName(name)) {
      throw new BackendError('permanent', 'put', name, `"${name}" is reserved for temporary files`, { hint: 'Use another name' });
    }
    const { signal } = options;
    throwIfAborted(signal);
    if (!options.overwrite && (await this.exists(name, signal))) throw this.existsError(name);
    const temp = partialNameFor(name);
    this.inflight.add(temp);
    let tempMayExist = false;
    try {
      if (source.localPath !== undefined) {
        // The local file's own errors (missing, unreadable, changed) reach the caller as they are.
        const st = await fsp.stat(source.localPath);
        if (st.size !== source.size) throw sizeMismatch(name, source.size, st.size, st.size > source.size);
        tempMayExist = true;
        // An absolute path: rclone would read "dir:x/file" as a remote. copyto checks the size (and
        // the hash, where the remote has one) of what it wrote.
        const res = await this.run(['copyto', path.resolve(source.localPath), this.target(temp)], 'put', name, signal);
        if (res.code !== 0) throw this.fail(res, 'put', name);
      } else {
        tempMayExist = true;
        await this.rcat(name, source, temp, options);
      }
      // No check for the final name again here: the backup lock allows one writer (see 'noClobberRace').
      const res = await this.run(['moveto', this.target(temp), this.target(name)], 'put', name, signal);
      if (res.code !== 0) throw this.fail(res, 'put', name);
      tempMayExist = false;
      options.onProgress?.(source.size);
    } catch (e) {
      if (tempMayExist) await this.run(['deletefile', this.target(temp)], 'put', name).catch(() => undefined);
      throw normalizeAbort(e, signal);
    } finally {
      this.inflight.delete(temp);
    }
  }

  /** Streams the source into `rclone rcat`, refusing a source that is not exactly source.size bytes. */
  private async rcat(name: string, source: BlobSource, temp: string, options: PutOptions): Promise<void> {
    const { signal, onProgress } = options;
    const { child, stderr, exited } = spawnRclone(this.rc, ['rcat', '--size', String(source.size), this.target(temp)], 'pipe');
    this.children.add(child);
    const stream = source.open();
    const onAbort = (): void => {
      stream.destroy(cancelled());
      stopChild(child);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let got = 0;
    let failure: unknown;
    try {
      try {
        await pipeline(
          stream,
          async function* (src: AsyncIterable<Buffer>) {
            for await (const chunk of src) {
              got += chunk.length;
              if (got > source.size) throw sizeMismatch(name, source.size, got, true);
              yield chunk;
              onProgress?.(got);
            }
            if (got !== source.size) throw sizeMismatch(name, source.size, got, false);
          },
          child.stdin!,
        );
      } catch (e) {
        failure = e;
        stopChild(child);
      }
      const code = await exited.catch((e: unknown) => {
        throw this.spawnError(e, 'put', name, signal);
      });
      if (signal?.aborted) throw cancelled();
      // The source's own error wins over rclone's reaction to a closed stdin.
      if (failure !== undefined && (OffsiteError.is(failure) || !(failure as NodeJS.ErrnoException).code?.startsWith('EPIPE'))) throw failure;
      if (code !== 0) throw this.fail({ code, stderr: stderr() }, 'put', name);
      if (failure !== undefined) throw failure;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.children.delete(child);
    }
  }

  private async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.statPath(name, 'put', name, signal);
      return true;
    } catch (e) {
      if (BackendError.isKind(e, 'notFound')) return false;
      throw e;
    }
  }

  private existsError(name: string): BackendError {
    return new BackendError('exists', 'put', name, `${name} already exists in ${this.displayUrl}`, { hint: 'Refusing to replace it; remove it first if it is not needed' });
  }

  // ----------------------------------------------------------------------------------------- get

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    checkName('get', name);
    const { signal } = options;
    throwIfAborted(signal);
    // The size first: rclone cat of a missing object prints nothing and succeeds (S3), and a range
    // past the end must be an error, not a short stream.
    const info = await this.statPath(name, 'get', name, signal);
    const { start, end } = checkRange('get', name, info.size, options.offset, options.length);
    if (end === start) return Readable.from([]);
    const args = ['cat', ...(start > 0 ? ['--offset', String(start)] : []), ...(end < info.size ? ['--count', String(end - start)] : []), this.target(name)];
    let proc;
    try {
      proc = spawnRclone(this.rc, args);
    } catch (e) {
      throw this.spawnError(e, 'get', name, signal);
    }
    const { child, stderr, exited } = proc;
    this.children.add(child);
    const expected = end - start;
    let got = 0;
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    const onAbort = (): void => {
      out.destroy(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', (d: Buffer) => {
      got += d.length;
    });
    child.stdout!.pipe(out, { end: false });
    // The stream ends only once rclone has exited well: its exit code is the verdict on the bytes.
    exited.then(
      (code) => {
        if (out.destroyed) return;
        if (code !== 0) out.destroy(this.fail({ code, stderr: stderr() }, 'get', name));
        else if (got !== expected) {
          out.destroy(new BackendError('transient', 'get', name, `rclone delivered ${got} of the ${expected} bytes of ${name} from ${this.displayUrl}`, { hint: 'The file changed or the transfer broke; try again' }));
        } else out.end();
      },
      (e: unknown) => out.destroy(this.spawnError(e, 'get', name, signal) as Error),
    );
    out.on('close', () => {
      signal?.removeEventListener('abort', onAbort);
      stopChild(child);
      this.children.delete(child);
    });
    return out;
  }

  // ----------------------------------------------------------------------------------------- the rest

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    checkName('stat', name);
    return this.statPath(name, 'stat', name, options.signal);
  }

  private async statPath(file: string, op: string, name: string, signal?: AbortSignal): Promise<BackendFileInfo> {
    const res = await this.run(['lsjson', '--stat', '--no-mimetype', this.target(file)], op, name, signal);
    if (res.code !== 0) {
      const err = this.fail(res, op, name);
      // A missing folder means a missing file.
      if (res.code === 3 || err.kind === 'notFound') throw this.notFound(op, name);
      throw err;
    }
    const e = parseJson<LsEntry>(res.stdout, op, name, this.displayUrl);
    // For a missing object, some remotes (S3) describe a "directory" instead of failing.
    if (!e || e.IsDir || typeof e.Size !== 'number' || e.Size < 0) throw this.notFound(op, name);
    return { name, size: e.Size, mtime: toDate(e.ModTime) };
  }

  private notFound(op: string, name: string): BackendError {
    return new BackendError('notFound', op, name, `${name} does not exist in ${this.displayUrl}`, { hint: 'Check the remote URL, or list the remote to see what it holds' });
  }

  private async lsjson(op: string, signal?: AbortSignal): Promise<LsEntry[]> {
    // Each file's time as the remote tells it in the listing (an object store's upload time, with
    // --use-server-modtime: no request per object for its modtime metadata): cleanup keeps the sets a
    // backup elsewhere may be writing by it (audit.ts). --no-modtime would give none, and keep them all.
    const res = await this.run(['lsjson', '--files-only', '--no-mimetype', '--use-server-modtime', this.remote], op, undefined, signal);
    if (res.code === 3) {
      // No folder yet: the first put creates it; but not a bucket (a mistyped name), as s3:// does not.
      const bucket = await this.missingBucket(op, signal);
      if (bucket === undefined) return [];
      throw new BackendError('notFound', op, undefined, `The bucket "${bucket}" of ${this.displayUrl} does not exist`, {
        hint: `Create the bucket first (rclone mkdir REMOTE:${bucket}), or check the bucket name in the URL`,
      });
    }
    if (res.code !== 0) throw this.fail(res, op);
    return parseJson<LsEntry[]>(res.stdout, op, undefined, this.displayUrl) ?? [];
  }

  /**
   * The bucket of a bucket-based remote (s3, b2, gcs, azureblob, swift, …: rclone's BucketBased
   * feature) whose path names one that does not exist; undefined for any other remote, and when the
   * bucket exists (its prefix is only empty). rclone lists a missing bucket as a missing folder, and
   * its first upload would create it. Only where the remote's root is the URL's path (not under an
   * alias or crypt, which hide the bucket: a missing one is created there as before).
   */
  private async missingBucket(op: string, signal?: AbortSignal): Promise<string | undefined> {
    const parts = remoteParts(this.remote);
    if (!parts) return undefined;
    this.bucketRoot ??= this.bucketOf(parts.path, op, signal).catch((e: unknown) => {
      this.bucketRoot = undefined; // a failed or cancelled ask is asked again next time
      throw e;
    });
    const root = await this.bucketRoot;
    if (root === undefined) return undefined;
    const bucket = root.split('/')[0];
    if (bucket === root) return bucket; // the bucket itself is the folder not found
    const top = await this.run(['lsjson', '--files-only', '--no-mimetype', '--no-modtime', '--max-depth', '1', `${parts.remote}${bucket}`], op, undefined, signal);
    return top.code === 3 ? bucket : undefined;
  }

  /** The URL's path (without its ":") when the remote is bucket-based and rooted there; else undefined. */
  private async bucketOf(urlPath: string, op: string, signal?: AbortSignal): Promise<string | undefined> {
    const res = await this.run(['backend', 'features', this.remote], op, undefined, signal);
    if (res.code !== 0) return undefined;
    const f = parseJson<{ Root?: string; Features?: { BucketBased?: boolean } }>(res.stdout, op, undefined, this.displayUrl);
    const trim = (p: string): string => p.replace(/^\/+|\/+$/g, '');
    const root = trim(urlPath.slice(1));
    return f?.Features?.BucketBased && trim(f.Root ?? '') === root && root !== '' ? root : undefined;
  }

  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    for (const e of await this.lsjson('list', options.signal)) {
      const name = e.Name ?? e.Path ?? '';
      if (e.IsDir || name === '' || name.includes('/') || typeof e.Size !== 'number') continue;
      if (!isPartialName(name)) yield { name, size: e.Size, mtime: toDate(e.ModTime) };
      else if (options.partial && !this.inflight.has(name)) yield { name, size: e.Size, mtime: toDate(e.ModTime), partial: true, ...partialTarget(name) };
    }
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    checkName('remove', name);
    const res = await this.run(['deletefile', this.target(name)], 'remove', name, options.signal);
    if (res.code === 0 || res.code === 3 || res.code === 4) return;
    const err = this.fail(res, 'remove', name);
    if (err.kind !== 'notFound') throw err;
  }

  async cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    const names = (await this.lsjson('cleanupPartial', options.signal))
      .map((e) => e.Name ?? '')
      .filter((n) => cleanupCandidate(n, this.inflight, options))
      .sort();
    if (options.dryRun) return names;
    const removed: string[] = [];
    for (const n of names) {
      await this.remove(n, options);
      removed.push(n);
    }
    return removed;
  }

  async close(): Promise<void> {
    for (const c of this.children) stopChild(c);
    this.children.clear();
  }
}

function parseJson<T>(buf: Buffer, op: string, name: string | undefined, where: string): T | undefined {
  const text = buf.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new BackendError('permanent', op, name, `rclone's answer for ${where} is not JSON`, { cause: e, hint: 'Check the rclone version (1.57 or newer is needed)' });
  }
}

function toDate(s: string | undefined): Date | undefined {
  if (!s) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Builds an rclone backend from the URL and the front end's options (see RcloneOptions); checks the remote. */
export async function createRcloneBackend(_url: URL, ctx: BackendContext, rawUrl: string): Promise<RcloneBackend> {
  const o = (ctx.options ?? {}) as Record<string, unknown>;
  const env = (o.env as RcloneOptions['env']) ?? process.env;
  const s = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const backend = new RcloneBackend({
    remote: parseRcloneUrl(rawUrl),
    binary: s(o.rcloneBinary) ?? s(env.OFFSITE_RCLONE),
    config: s(o.rcloneConfig),
    concurrency: typeof o.concurrency === 'number' && o.concurrency >= 1 ? o.concurrency : undefined,
    env,
  });
  await backend.check(ctx.signal);
  const warning = rcloneSlashWarning(rawUrl);
  if (warning) ctx.log?.('warn', warning);
  return backend;
}

registerBackend('rclone', createRcloneBackend, { opaque: true });
