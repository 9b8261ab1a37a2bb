// Writing restored paths into a folder, safely: nothing is ever written outside the target (archive
// paths are checked when parsed, and every parent folder inside the target must be a real folder,
// never a symlink, so a symlink member cannot redirect later members), files are written under a
// temporary name and renamed into place only when complete, folders get their permissions and times
// after their contents (FORMAT §9 step 7), owners only when running as root. A restore killed outright
// (SIGKILL, a crash) cannot remove its temporary file: the next restore into the target removes those
// it meets (sweep()).
//
// Synchronous and self-contained (no logger, no engine state): restoreOutput.ts runs it inline for a
// single file, and in a worker thread (restoreWriterWorker.ts) for a tree, where these system calls,
// most of a full restore's time, overlap with the decryption on the main thread.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { ownerAlive } from '../util/temporaries';
import { OffsiteError } from '../errors';
import { indexToString, isPrefixOf } from '../pathIndex';
import { lookupGid, lookupUid } from '../scan/owners';
import type { EntryMeta, PathIndex } from '../types';
import type { RefusalCause } from './setReader';

const SLASH = Buffer.from('/');
/** Linux's NAME_MAX: the longest name of one file (most file systems). */
const NAME_MAX = 255;
/**
 * A restore's temporary name (restoreTempPrefix): `.offsite-restore-HOST-PID-RANDOM-N`, HOST a hash of
 * the host's name (a target on a shared mount may be written from another machine or container, whose
 * pids mean nothing here).
 */
const TEMP_NAME = /^\.offsite-restore-([0-9a-f]{8})-(\d+)-[0-9a-f]{12}-\d+$/;
const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);

/**
 * The first part of this run's temporary names, `.offsite-restore-HOST-PID-RANDOM`: our host and pid (a
 * later restore removes those of a process that is gone), random per run (unguessable); a counter
 * follows (no randomness per file).
 */
export function restoreTempPrefix(): string {
  return `.offsite-restore-${HOST_TAG}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

export interface TreeWriterOptions {
  readonly target: string;
  /** Replace files that exist already (the caller has checked the target otherwise). */
  readonly force: boolean;
  readonly restoreOwners: boolean;
  /** A member left out, and why (the caller records and logs it). */
  readonly onRefuse: (member: string, reason: string, cause: RefusalCause) => void;
  readonly onWarn: (message: string) => void;
}

export class TreeWriter {
  private readonly root: Buffer;
  private readonly pendingDirs: { index: PathIndex; path: Buffer; meta: EntryMeta }[] = [];
  /**
   * Real folders checked (or made) by this run along the last path: [n] is the folder of the first n+1
   * components. Paths come in tree order, so the next one shares most of it; memory is the depth.
   */
  private readonly knownDirs: string[] = [];
  /** Temporary names: restoreTempPrefix(), then a counter. */
  private readonly tempPrefix = restoreTempPrefix();
  private tempSeq = 0;
  /** The regular file being written: begin() returned true, end() or abort() not called yet. */
  private open: { fd: number; tmp: Buffer; path: Buffer; meta: EntryMeta; bytes: number } | undefined;
  files = 0;
  bytes = 0;

  constructor(private readonly opts: TreeWriterOptions) {
    this.root = Buffer.from(opts.target.replace(/\/+$/, '') || '/');
    let existed = false;
    try {
      existed = fs.statSync(this.root, { throwIfNoEntry: false })?.isDirectory() ?? false; // the target: followed, as by mkdir
    } catch {
      // mkdir says what is wrong with it
    }
    // 0755 as the folders made above a restored path (ensureParents), never by the umask: the target
    // of a path restore keeps it (under umask 0 it was 0777, anyone could swap its folders for symlinks).
    fs.mkdirSync(this.root, { recursive: true, mode: 0o755 });
    if (existed) this.sweep(this.root);
  }

  /**
   * Writes a folder, symlink or fifo, or starts a regular file: then returns true, and its data follows
   * through write(), then end() (or abort()). False when there is nothing more to do for this entry
   * (written, or refused). Throws OffsiteError 'exists' rather than overwrite without `force`.
   */
  begin(index: PathIndex, meta: EntryMeta): boolean {
    if (this.open) throw new Error('TreeWriter: begin() while a file is open');
    this.closeDirsNotAbove(index);
    if (index.length === 0 && meta.type !== 'dir') {
      // The target itself: it is a folder (made above), and the backup's top is always one.
      return this.refuse(index, `the backup's top folder is a ${typeName(meta.type)} in the archive, which no backup holds; the paths under it are restored into the target`, 'archive');
    }
    try {
      return this.beginChecked(index, meta);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A folder of the target this user may not write into (a read-only one not made by this
      // restore, owned by another user): that member is left out, not the rest.
      if (code === 'EACCES' || code === 'EPERM') return this.refuse(index, `the target does not let this user write it (${(e as Error).message})`, 'target');
      // A name or path this file system cannot hold: that member is left out, not the rest.
      if (code !== 'ENAMETOOLONG') throw e;
      const longName = index.some((c) => c.length > NAME_MAX);
      return this.refuse(index, longName ? `a name in its path is longer than the ${NAME_MAX} bytes this file system allows` : 'its path in the target is longer than this system allows', 'system');
    }
  }

  private beginChecked(index: PathIndex, meta: EntryMeta): boolean {
    if (!this.ensureParents(index)) return false;
    const p = this.pathOf(index);
    const existing = index.length === 0 ? undefined : fs.lstatSync(p, { throwIfNoEntry: false });
    if (existing && !this.opts.force && !(existing.isDirectory() && meta.type === 'dir')) {
      throw new OffsiteError('exists', `Refusing to overwrite ${p.toString()}`, { hint: 'Restore into an empty folder, or pass --force' });
    }
    switch (meta.type) {
      case 'dir': {
        if (existing && !existing.isDirectory()) {
          if (existing.isSymbolicLink() || existing.isFile() || existing.isFIFO()) fs.unlinkSync(p);
        }
        if (index.length > 0 && (!existing || !existing.isDirectory())) fs.mkdirSync(p, { mode: 0o700 });
        else {
          writableDir(p);
          if (index.length > 0) this.sweep(p); // the top: in the constructor
        }
        if (index.length > 0) this.known(index.length - 1, p.toString('latin1'));
        this.pendingDirs.push({ index, path: p, meta });
        return false;
      }
      case 'reg': {
        if (existing?.isDirectory()) return this.refuse(index, 'a folder with that name exists in the target', 'target');
        const tmp = Buffer.concat([this.pathOf(index.slice(0, -1)), SLASH, Buffer.from(`${this.tempPrefix}-${++this.tempSeq}`)]);
        // Synchronous open/write/close: a restore writes thousands of small files, and a thread-pool
        // round trip per call cost more than the calls. Measured against a version that created files
        // and folders in pool jobs, several at once: that one used 60% more CPU (threads contending
        // for the same folders' locks in the kernel) for no gain in time (bench/README.md).
        const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        this.open = { fd, tmp, path: p, meta, bytes: 0 };
        return true;
      }
      case 'sym': {
        if (existing?.isDirectory()) return this.refuse(index, 'a folder with that name exists in the target', 'target');
        if (existing) fs.unlinkSync(p);
        fs.symlinkSync(meta.linkname ?? Buffer.alloc(0), p);
        this.applyAttributes(p, meta, true);
        this.files++;
        return false;
      }
      case 'fifo':
        return this.makeNode(index, p, existing, meta, ['mkfifo', '-m', '600']);
      case 'chr':
      case 'blk':
        // As duplicity does: device files are made by root (mknod needs CAP_MKNOD), else left out.
        if (process.getuid?.() !== 0) return this.refuse(index, 'device files can be made only by root; restore as root to restore it', 'system');
        return this.makeNode(index, p, existing, meta, ['mknod', '-m', '600'], [meta.type === 'chr' ? 'c' : 'b', String(meta.devmajor ?? 0), String(meta.devminor ?? 0)]);
      default:
        return this.refuse(index, `${meta.type as string} entries are not restored`, 'archive');
    }
  }

  /**
   * A fifo or device file, made by coreutils' mkfifo or mknod (Node has neither call). They take the
   * path as text, and a name need not be UTF-8: made under an ASCII name in the target's top folder (a
   * string the user gave; mkfifo and mknod never follow a symlink there, they fail on any existing
   * name), then renamed into place (a rename replaces the last component, never follows it).
   */
  private makeNode(index: PathIndex, p: Buffer, existing: fs.Stats | undefined, meta: EntryMeta, command: string[], after: string[] = []): false {
    if (existing?.isDirectory()) return this.refuse(index, 'a folder with that name exists in the target', 'target');
    const tmp = Buffer.concat([this.root, SLASH, Buffer.from(`${this.tempPrefix}-${++this.tempSeq}`)]);
    try {
      execFileSync(command[0], [...command.slice(1), tmp.toString(), ...after], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      // e.g. mknod without CAP_MKNOD (a container's root): that file is left out.
      const why = ((e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message).replace(/\s+/g, ' ');
      return this.refuse(index, `${command[0]} failed: ${why}`, 'system');
    }
    try {
      fs.renameSync(tmp, p);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    this.applyAttributes(p, meta, false);
    this.files++;
    return false;
  }

  /** Appends to the open file; on an error the file is removed (abort) before it is thrown. */
  write(chunk: Uint8Array): void {
    const f = this.open!;
    try {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(f.fd, chunk, off);
    } catch (e) {
      this.abort();
      throw e;
    }
    f.bytes += chunk.length;
  }

  /** Completes the open file: renamed into place, then its attributes. Returns its size. */
  end(): number {
    const f = this.open!;
    this.open = undefined;
    try {
      // Through the descriptor, before the rename: never through a path someone could swap meanwhile.
      this.applyAttributes(f.path, f.meta, false, f.fd);
      fs.closeSync(f.fd);
      fs.renameSync(f.tmp, f.path);
    } catch (e) {
      fs.rmSync(f.tmp, { force: true });
      throw e;
    }
    this.files++;
    this.bytes += f.bytes;
    return f.bytes;
  }

  /** Drops the open file (its data could not be read): nothing of it is left in the target. */
  abort(): void {
    const f = this.open;
    if (!f) return;
    this.open = undefined;
    try {
      fs.closeSync(f.fd);
    } finally {
      fs.rmSync(f.tmp, { force: true });
    }
  }

  /** Gives the folders still open their permissions and times, deepest first. */
  finish(): void {
    this.abort();
    while (this.pendingDirs.length) {
      const d = this.pendingDirs.pop()!;
      this.applyAttributes(d.path, d.meta, false);
    }
  }

  private pathOf(index: PathIndex): Buffer {
    const parts: Buffer[] = [this.root];
    for (const c of index) parts.push(SLASH, c);
    return Buffer.concat(parts);
  }

  private refuse(index: PathIndex, reason: string, cause: RefusalCause): false {
    this.opts.onRefuse(indexToString(index), reason, cause);
    return false;
  }

  /** Makes sure every folder from the target down to `index`'s parent is a real folder. */
  private ensureParents(index: PathIndex): boolean {
    for (let n = 1; n < index.length; n++) {
      const p = this.pathOf(index.slice(0, n));
      const key = p.toString('latin1');
      if (this.knownDirs[n - 1] === key) continue;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) {
        fs.mkdirSync(p, { mode: 0o755 });
      } else if (st.isDirectory()) {
        this.sweep(p);
      } else {
        // The main thread leaves out paths under a symlink or file of the backup (restoreOutput.ts):
        // this one is in the target already, the user's own (left as it is).
        this.refuse(index, `${indexToString(index.slice(0, n))} in the target is not a folder${st.isSymbolicLink() ? ' but a symlink (following it could write outside the target)' : ''}`, 'target');
        return false;
      }
      this.known(n - 1, key);
    }
    return true;
  }

  /** Removes, from a folder that was there before this restore, the temporary files of killed restores. */
  private sweep(dir: Buffer): void {
    sweepRestoreTemporaries(dir, this.opts.onWarn);
  }

  private known(depth: number, key: string): void {
    this.knownDirs.length = depth;
    this.knownDirs.push(key);
  }

  private closeDirsNotAbove(index: PathIndex): void {
    while (this.pendingDirs.length && !isPrefixOf(this.pendingDirs[this.pendingDirs.length - 1].index, index)) {
      const d = this.pendingDirs.pop()!;
      this.applyAttributes(d.path, d.meta, false);
    }
  }

  /**
   * Owner (as root), then permissions, then mtime (FORMAT §9.7); symlinks keep their own times. A file
   * is given them through `fd`, its open temporary; a folder through one opened without following a
   * symlink: a folder swapped for a symlink while its contents were written (by someone who can write
   * the folder above it) must not have the backup's mode and time given to what the symlink points at.
   */
  private applyAttributes(p: Buffer, meta: EntryMeta, symlink: boolean, fd?: number): void {
    if (this.opts.restoreOwners) {
      // The name wins over the number, as in duplicity (unless the name is unknown here).
      const uid = (meta.uname ? lookupUid(meta.uname) : undefined) ?? meta.uid;
      const gid = (meta.gname ? lookupGid(meta.gname) : undefined) ?? meta.gid;
      try {
        if (fd === undefined) fs.lchownSync(p, uid, gid);
        else fs.fchownSync(fd, uid, gid);
      } catch (e) {
        this.opts.onWarn(`Cannot set the owner of ${p.toString()}: ${(e as Error).message}`);
      }
    }
    if (symlink) return;
    let own: number | undefined;
    try {
      // (The target itself is the user's to name: a symlink to a folder is followed, as by mkdir.)
      if (fd === undefined && meta.type === 'dir') own = openDir(p, p.equals(this.root));
      const at = fd ?? own;
      if (at === undefined) {
        // A fifo or device node (opening one may block, or act on a device), renamed into place just
        // now; or a folder this user cannot read (openDir).
        fs.chmodSync(p, meta.mode & 0o7777);
        fs.utimesSync(p, new Date(), meta.mtime);
      } else {
        fs.fchmodSync(at, meta.mode & 0o7777);
        fs.futimesSync(at, new Date(), meta.mtime);
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A folder of the target owned by another user (--force): what it holds was left out already.
      // ELOOP, ENOTDIR: the folder is no longer one (a symlink or file now); its mode is left alone.
      if (code !== 'EPERM' && code !== 'ELOOP' && code !== 'ENOTDIR') throw e;
      this.opts.onWarn(`Cannot set the mode and time of ${p.toString()}: ${code === 'EPERM' ? (e as Error).message : 'it is no longer a folder'}`);
    } finally {
      if (own !== undefined) fs.closeSync(own);
    }
  }
}

/**
 * A folder, for fchmod and futimes; not through a symlink unless `follow`. One this user may not read
 * (a read-only folder of the backup that was in the target already: writableDir gave it only write and
 * search): undefined when lstat finds it a real folder still (its attributes then go by path), else ELOOP.
 */
function openDir(p: Buffer, follow: boolean): number | undefined {
  const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
  try {
    return fs.openSync(p, O_RDONLY | O_DIRECTORY | (follow ? 0 : O_NOFOLLOW));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EACCES') throw e;
    if (follow || fs.lstatSync(p).isDirectory()) return undefined;
    throw Object.assign(new Error(`${p.toString()} is not a folder`), { code: 'ELOOP' });
  }
}

function typeName(t: EntryMeta['type']): string {
  return t === 'sym' ? 'symlink' : t === 'reg' ? 'file' : t === 'chr' || t === 'blk' ? 'device file' : t;
}

/**
 * A folder of the backup that is in the target already (--force, or an earlier restore) may be
 * read-only, as the backup's own folder may be: it is made writable for this user while its contents are
 * written; its mode is then set from the backup when it is closed, as for a folder this restore made.
 * A folder of another user stays as it is (its members are left out: EACCES above).
 */
function writableDir(p: Buffer): void {
  try {
    fs.accessSync(p, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    try {
      fs.chmodSync(p, (fs.statSync(p).mode & 0o7777) | 0o700);
    } catch {
      // not ours: what cannot be written in it is left out
    }
  }
}

/**
 * Whether `name` in `dir` is the temporary file of a restore that was killed: a name of the form
 * restoreTempPrefix makes, of this host, whose process is gone, and a private file (mode 0600, as made
 * here: a file, fifo or device node) of this user. Its pid when so.
 */
export function deadRestoreTemporary(dir: Buffer, name: Buffer): string | undefined {
  const m = TEMP_NAME.exec(name.toString('latin1'));
  if (!m || m[1] !== HOST_TAG || ownerAlive(m[2])) return undefined;
  const st = fs.lstatSync(Buffer.concat([dir, SLASH, name]), { throwIfNoEntry: false });
  if (!st || st.isDirectory() || st.isSymbolicLink() || st.isSocket() || (st.mode & 0o7777) !== 0o600 || st.uid !== process.getuid?.()) return undefined;
  return m[2];
}

/**
 * Removes from `dir` the temporary files of restores that were killed (deadRestoreTemporary). Anything
 * else stays, whatever its name; a running restore's temporaries too.
 */
export function sweepRestoreTemporaries(dir: Buffer, onWarn: (message: string) => void): void {
  let names: Buffer[];
  try {
    names = fs.readdirSync(dir, { encoding: 'buffer' });
  } catch {
    return; // not ours to read: what it holds is left out anyway
  }
  for (const n of names) {
    const pid = deadRestoreTemporary(dir, n);
    if (pid === undefined) continue;
    const p = Buffer.concat([dir, SLASH, n]);
    try {
      fs.unlinkSync(p);
    } catch {
      continue;
    }
    onWarn(`Removed ${p.toString()}, a temporary file of a restore that was interrupted (process ${pid} is gone)`);
  }
}
