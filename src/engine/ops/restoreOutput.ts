// Writing restored paths into a folder, safely: nothing is ever written outside the target (archive
// paths are checked when parsed, and every parent folder inside the target must be a real folder,
// never a symlink, so a symlink member cannot redirect later members), files are written under a
// temporary name and renamed into place only when complete, folders get their permissions and times
// after their contents (FORMAT §9 step 7), owners only when running as root.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { OffsiteError } from '../errors';
import type { Logger } from '../log';
import { indexToString, isPrefixOf } from '../pathIndex';
import { lookupGid, lookupUid } from '../scan/owners';
import type { EntryMeta, PathIndex } from '../types';
import type { Refusal, Restorable } from './setReader';

const SLASH = Buffer.from('/');

export interface FilesystemOutputOptions {
  readonly target: string;
  /** Replace files that exist already (the caller has checked the target otherwise). */
  readonly force: boolean;
  readonly restoreOwners: boolean;
  readonly log: Logger;
  readonly refusals: Refusal[];
  readonly onFile?: (index: PathIndex, bytes: number) => void;
}

export class FilesystemOutput {
  private readonly root: Buffer;
  private readonly pendingDirs: { index: PathIndex; path: Buffer; meta: EntryMeta }[] = [];
  private readonly knownDirs = new Set<string>();
  /** Temporary names: random per run (unguessable), then a counter (no randomness per file). */
  private readonly tempPrefix = randomBytes(6).toString('hex');
  private tempSeq = 0;
  files = 0;
  bytes = 0;

  constructor(private readonly opts: FilesystemOutputOptions) {
    this.root = Buffer.from(opts.target.replace(/\/+$/, '') || '/');
    fs.mkdirSync(this.root, { recursive: true });
    this.knownDirs.add(this.root.toString('latin1'));
  }

  private pathOf(index: PathIndex): Buffer {
    const parts: Buffer[] = [this.root];
    for (const c of index) parts.push(SLASH, c);
    return Buffer.concat(parts);
  }

  private refuse(index: PathIndex, reason: string): void {
    this.opts.refusals.push({ member: indexToString(index), reason });
    this.opts.log.warn(`Not restoring ${indexToString(index)}: ${reason}`);
  }

  /** Makes sure every folder from the target down to `index`'s parent is a real folder. */
  private ensureParents(index: PathIndex): boolean {
    for (let n = 1; n < index.length; n++) {
      const p = this.pathOf(index.slice(0, n));
      const key = p.toString('latin1');
      if (this.knownDirs.has(key)) continue;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) {
        fs.mkdirSync(p, { mode: 0o755 });
      } else if (!st.isDirectory()) {
        this.refuse(index, `${indexToString(index.slice(0, n))} is not a folder${st.isSymbolicLink() ? ' (a symlink: following it could write outside the target)' : ''}`);
        return false;
      }
      this.knownDirs.add(key);
    }
    return true;
  }

  private async closeDirsNotAbove(index: PathIndex): Promise<void> {
    while (this.pendingDirs.length && !isPrefixOf(this.pendingDirs[this.pendingDirs.length - 1].index, index)) {
      const d = this.pendingDirs.pop()!;
      this.applyAttributes(d.path, d.meta, false);
    }
  }

  async add(item: Restorable): Promise<void> {
    await this.closeDirsNotAbove(item.index);
    const { index, meta } = item;
    if (!this.ensureParents(index)) return;
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
        this.knownDirs.add(p.toString('latin1'));
        this.pendingDirs.push({ index, path: p, meta });
        return;
      }
      case 'reg': {
        if (existing?.isDirectory()) return this.refuse(index, 'a folder with that name exists in the target');
        const tmp = Buffer.concat([this.pathOf(index.slice(0, -1)), SLASH, Buffer.from(`.offsite-restore-${this.tempPrefix}-${++this.tempSeq}`)]);
        // Synchronous open/write/close: a restore writes thousands of small files, and a thread-pool
        // round trip per call cost more than the calls. Measured against a version that created files
        // and folders in pool jobs, several at once: that one used 60% more CPU (threads contending
        // for the same folders' locks in the kernel) for no gain in time (bench/README.md).
        const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        let n = 0;
        try {
          if (item.produce) {
            await item.produce(async (chunk) => {
              n += chunk.length;
              let off = 0;
              while (off < chunk.length) off += fs.writeSync(fd, chunk, off);
            });
          }
        } catch (e) {
          fs.closeSync(fd);
          fs.rmSync(tmp, { force: true });
          throw e;
        }
        fs.closeSync(fd);
        fs.renameSync(tmp, p);
        this.applyAttributes(p, meta, false);
        this.files++;
        this.bytes += n;
        this.opts.onFile?.(index, n);
        return;
      }
      case 'sym': {
        if (existing?.isDirectory()) return this.refuse(index, 'a folder with that name exists in the target');
        if (existing) fs.unlinkSync(p);
        fs.symlinkSync(meta.linkname ?? Buffer.alloc(0), p);
        this.applyAttributes(p, meta, true);
        this.files++;
        return;
      }
      case 'fifo': {
        if (existing?.isDirectory()) return this.refuse(index, 'a folder with that name exists in the target');
        if (existing) fs.unlinkSync(p);
        // Node has no mkfifo(); coreutils' mkfifo is on every system that has fifos. It takes the path
        // as text, and a name need not be UTF-8: made under an ASCII name in the target's top folder
        // (a string the user gave), then renamed into place.
        const tmp = Buffer.concat([this.root, SLASH, Buffer.from(`.offsite-restore-${this.tempPrefix}-${++this.tempSeq}`)]);
        execFileSync('mkfifo', ['-m', '600', tmp.toString()]);
        try {
          fs.renameSync(tmp, p);
        } catch (e) {
          fs.rmSync(tmp, { force: true });
          throw e;
        }
        this.applyAttributes(p, meta, false);
        this.files++;
        return;
      }
      default:
        return this.refuse(index, `${meta.type === 'chr' || meta.type === 'blk' ? 'device files' : `${meta.type} entries`} are not restored`);
    }
  }

  async finish(): Promise<void> {
    while (this.pendingDirs.length) {
      const d = this.pendingDirs.pop()!;
      this.applyAttributes(d.path, d.meta, false);
    }
  }

  /** Owner (as root), then permissions, then mtime (FORMAT §9.7); symlinks keep their own times. */
  private applyAttributes(p: Buffer, meta: EntryMeta, symlink: boolean): void {
    if (this.opts.restoreOwners) {
      // The name wins over the number, as in duplicity (unless the name is unknown here).
      const uid = (meta.uname ? lookupUid(meta.uname) : undefined) ?? meta.uid;
      const gid = (meta.gname ? lookupGid(meta.gname) : undefined) ?? meta.gid;
      try {
        fs.lchownSync(p, uid, gid);
      } catch (e) {
        this.opts.log.warn(`Cannot set the owner of ${p.toString()}: ${(e as Error).message}`);
      }
    }
    if (symlink) return;
    fs.chmodSync(p, meta.mode & 0o7777);
    fs.utimesSync(p, new Date(), meta.mtime);
  }
}
