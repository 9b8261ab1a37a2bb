// The local archive dir ("cache"): plaintext manifests and gzip'd signature archives of the remote's
// sets, so an incremental needs no private key, plus Offsite's own stat cache and the checkpoint of
// an interrupted backup. One folder per remote URL, like duplicity's (<cache>/<md5 of the URL>). The
// remote is authoritative: the cache is rebuilt from it when lost (sync.ts).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withoutPassword } from '../backend/backendUtil';
import { canonicalScheme } from '../backend/schemes';
import { OffsiteError } from '../errors';
import { deadTemporaries } from '../util/temporaries';
import { COPY_RECORDS } from './copyRecords';
import type { SetFileKind } from './setFiles';

/** ~/.cache/offsite (XDG_CACHE_HOME honoured), or the platform's own cache folder. */
export function defaultCacheRoot(): string {
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'offsite');
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'offsite', 'Cache');
  return path.join(process.env.XDG_CACHE_HOME || path.join(home, '.cache'), 'offsite');
}

/** The folder of remembered encryption-key checks in a cache root (crypto/recipient.ts). */
export function keyCacheDir(root: string): string {
  return path.join(root, 'keys');
}

/**
 * duplicity's default backup name: the MD5 of the target URL string, less a password written in it
 * (user:password@) and a trailing slash, with a file:// folder's path without '//' and '/./' (and
 * file:/abs written file:///abs), and with the scheme in lower case and s3:// for duplicity's
 * boto3+s3:// (sftp:// for its paramiko+sftp://, scp://, …): the
 * same remote with its password given another way (OFFSITE_SSH_PASSWORD, as the extension's cron line
 * does), or written file:///mnt/usb/p/ one day and file:///mnt/usb//p the next, must find the same
 * cache (else the backup asks for the private key to rebuild it), and with it the same lock.
 */
export function archiveDirFor(url: string, root: string = defaultCacheRoot()): string {
  const unprotected = withoutPassword(url);
  const named = normalFileUrl(withCanonicalScheme(unprotected.replace(TRAILING_SLASHES, '')));
  const dir = path.join(root, md5Hex(named));
  // The names of before (released builds named the cache by the whole URL, then by the URL without its
  // password): the cache is taken over once, whatever the spelling normalised away.
  for (const before of new Set([url, unprotected])) if (before !== named) adoptLegacy(path.join(root, md5Hex(before)), dir);
  return dir;
}

/** Slashes ending a URL's path, unless they are all of it (file:///) or follow an rclone remote (rclone://r:/). */
const TRAILING_SLASHES = /(?<=[^/:])\/+$/;

/**
 * A file:// URL with its path's empty and '.' segments dropped (file:///a//./b is file:///a/b, as the
 * local file system reads it), and file:/abs, which fileBackend.ts reads as the same folder, written
 * file:///abs. Only file://: on sftp:// a leading '//' is an absolute path (duplicity's convention),
 * and an object store's keys differ by a doubled slash. '..' stays (through a symlink it is not the
 * folder above), and a URL with a query or fragment is left as written. After withCanonicalScheme
 * (the scheme in lower case).
 */
function normalFileUrl(url: string): string {
  const m = /^file:(\/\/)?([^?#]*)$/s.exec(url);
  if (!m) return url;
  // file:/abs: no '//', so the path is all of it (file:relative is no file URL, left as written).
  const p = m[1] === undefined ? (m[2].startsWith('/') ? m[2] : undefined) : m[2];
  if (p === undefined) return url;
  const segments = p.split('/').filter((c) => c !== '' && c !== '.');
  if (segments.length === 0) return p.startsWith('/') ? 'file:///' : url;
  return `file://${p.startsWith('/') ? '/' : ''}${segments.join('/')}`;
}

/**
 * The URL with its scheme as backend/schemes.ts reads it: in lower case, and duplicity's other name of
 * a scheme written as the scheme it names (FILE:/…, boto3+s3://): one cache and one lock for each.
 */
function withCanonicalScheme(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  if (!m) return url;
  const scheme = canonicalScheme(m[1]);
  return scheme === m[1] ? url : `${scheme}${url.slice(m[1].length)}`;
}

const md5Hex = (s: string): string => createHash('md5').update(s).digest('hex');

/**
 * The cache made before the name left the password out (named by the whole URL) becomes this one,
 * once: its stat cache, resume point and records kept. Should the rename fail (another process made
 * it first, or cannot), the cache is rebuilt from the remote, as any lost cache is.
 */
function adoptLegacy(legacy: string, dir: string): void {
  if (fs.existsSync(dir) || !fs.existsSync(legacy)) return;
  try {
    fs.renameSync(legacy, dir);
  } catch {
    /* rebuilt instead */
  }
}

/**
 * `e` as an error a user can act on when the file system refused this user a file in the cache folder
 * `dir` (EACCES, EPERM: most often a file a run as another user, or with sudo, left in a folder that is
 * writable all the same): it names the folder and says what to do. Other errors come back unchanged.
 */
export function cacheAccessError(e: unknown, dir: string): unknown {
  const err = e as NodeJS.ErrnoException | undefined;
  if (!accessDenied(e) || typeof err?.path !== 'string') return e;
  const rel = path.relative(dir, path.resolve(err.path));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return e; // the folder itself: ArchiveDir.open says so
  return new OffsiteError('permission', `Cannot use ${rel} in the local cache folder ${dir}: permission denied (${err.syscall ?? 'access'})`, {
    file: err.path,
    cause: e,
    hint: 'Make the folder and everything in it yours and readable (a run as another user, or with sudo, may have left the file there), or remove the folder: it is rebuilt from the remote (for an encrypted backup that takes your private key, --key)',
  });
}

/** Whether the file system refused this user (EACCES, EPERM). */
export function accessDenied(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

export class ArchiveDir {
  constructor(readonly dir: string) {}

  static open(dir: string): ArchiveDir {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.accessSync(dir, fs.constants.W_OK);
    } catch (e) {
      throw new OffsiteError('permission', `Cannot use the local cache folder ${dir}: ${(e as Error).message}`, {
        cause: e,
        hint: 'Make it writable, or choose another with --archive-dir',
      });
    }
    return new ArchiveDir(dir);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  has(name: string): boolean {
    return fs.existsSync(this.file(name));
  }

  names(): string[] {
    try {
      return fs.readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  /**
   * A private temp folder for this run, removed by the caller (and after a crash by the next backup or
   * by cleanup). Its name holds our pid: readers (restore, verify) take no lock, so only folders of
   * processes that are gone may be removed by others.
   */
  makeTempDir(): string {
    const tmp = path.join(this.dir, 'tmp');
    try {
      fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
      return fs.mkdtempSync(path.join(tmp, `run-${process.pid}-`));
    } catch (e) {
      // The folder itself is writable (open() checked), not what is in it: made by another user (sudo) or changed since.
      throw new OffsiteError('permission', `Cannot use the local cache folder ${this.dir}: ${(e as Error).message}`, {
        cause: e,
        hint: 'Make it and what it holds yours and writable, or choose another with --archive-dir',
      });
    }
  }

  /** Temp folders of runs that are no longer alive (a crash, a kill); anything else in tmp/ is an older run's. */
  staleTempDirs(): string[] {
    return deadTemporaries(path.join(this.dir, 'tmp'), /^(?:run-(\d+)-)?/);
  }

  /** A temporary name for writing `name` (renamed over it when complete), marked with our pid. */
  tempFile(name: string): string {
    return `${this.file(name)}.tmp-${process.pid}`;
  }

  /**
   * Temporary files in the cache folder left by processes that are gone: writeAtomic's and tempFile's
   * (NAME.tmp-PID) and the stat cache's (NAME.PID.HEX.tmp), in the copies' records folder
   * (copyRecords.ts: NAME.json.tmp-PID), and in the cache root's `keys/` (crypto/recipient.ts:
   * SHA256.json.PID.tmp; this folder's parent is the cache root, as archiveDirFor makes it). Full paths.
   */
  staleTempFiles(): string[] {
    const file = (st: fs.Stats) => st.isFile();
    return [
      ...deadTemporaries(this.dir, /\.tmp-(\d+)$|\.(\d+)\.[0-9a-f]+\.tmp$/),
      ...deadTemporaries(this.file(COPY_RECORDS), /\.json\.tmp-(\d+)$/, file),
      ...deadTemporaries(keyCacheDir(path.dirname(this.dir)), /^[0-9a-f]{64}\.json\.(\d+)\.tmp$/, file),
    ];
  }

  /** Writes a small file atomically (temp + fsync + rename), private. */
  writeAtomic(name: string, data: Buffer | string): void {
    const target = this.file(name);
    const tmp = this.tempFile(name);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  }

  /** Copies the file `from` to `name` atomically (temp + fsync + rename), private. */
  copyAtomic(from: string, name: string): void {
    const tmp = this.tempFile(name);
    try {
      fs.copyFileSync(from, tmp);
      fs.chmodSync(tmp, 0o600);
      const fd = fs.openSync(tmp, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file(name));
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  remove(name: string): void {
    fs.rmSync(this.file(name), { force: true, recursive: true });
  }

  /** The newest file of `kind` (by its set's time), or undefined. */
  newest(kind: SetFileKind): string | undefined {
    return this.names().filter((n) => kind.timeOf(n) !== undefined).sort().at(-1);
  }

  /** Removes every file of `kind` but `keep`. */
  removeOthers(kind: SetFileKind, keep: string): void {
    for (const n of this.names()) if (n !== keep && kind.timeOf(n) !== undefined) this.remove(n);
  }
}

/**
 * A private (0700) temporary folder `PREFIX-PID-XXXXXX` in `root` (os.tmpdir(): a drill's, the
 * extension's copies of file versions), after removing those of PREFIX that processes now gone (a crash,
 * a kill) left there: they hold backed-up data in plain text. Only this user's folders are touched.
 */
export function makeRunTempDir(root: string, prefix: string): string {
  // An unreadable root: mkdtemp says what is wrong with it.
  const mine = (st: fs.Stats) => st.isDirectory() && st.uid === process.getuid?.();
  for (const p of deadTemporaries(root, new RegExp(`^${prefix}-(\\d+)-[A-Za-z0-9]{6}$`), mine)) fs.rmSync(p, { recursive: true, force: true });
  return fs.mkdtempSync(path.join(root, `${prefix}-${process.pid}-`));
}
