// The backup version of a file, read-only, on the `offsite:` scheme: the left side of "Compare with
// Backup" diffs. A FileSystemProvider rather than a text content provider, so binary and large files
// work and VS Code gets a real stat (git's fileSystemProvider.ts). The URI keeps the file's own path
// (so the language mode is right) and carries {folder, path, time} as JSON in the query (git's uri.ts).
// The engine writes each version to a private temp file (0600); they are dropped after a few idle
// minutes and when the extension stops.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as vscode from 'vscode';
import { makeRunTempDir } from '../engine/cache/archiveDir';
import { restoreTempPrefix, sweepRestoreTemporaries } from '../engine/ops/treeWriter';
import { EngineError, errorText } from './engineClient';
import { formatBytes, tooLargeToCompare } from './format';
import type { BackupModel } from './model';

export const SCHEME = 'offsite';

export interface BackupRef {
  /** The workspace folder's URI. */
  readonly folder: string;
  /** Relative to the folder, '/'-separated. */
  readonly path: string;
  /** The backup set time (epoch seconds): the version as of then. */
  readonly time: number;
}

export function toBackupUri(fileUri: vscode.Uri, ref: BackupRef): vscode.Uri {
  return fileUri.with({ scheme: SCHEME, query: JSON.stringify(ref), fragment: '' });
}

export function fromBackupUri(uri: vscode.Uri): BackupRef {
  try {
    const q = JSON.parse(uri.query) as Partial<BackupRef>;
    if (typeof q.folder === 'string' && typeof q.path === 'string' && typeof q.time === 'number') return { folder: q.folder, path: q.path, time: q.time };
  } catch {
    // fall through
  }
  throw vscode.FileSystemError.FileNotFound(uri);
}

/** The local file a backup URI stands for. */
export function originalUri(uri: vscode.Uri): vscode.Uri {
  return uri.with({ scheme: 'file', query: '', fragment: '' });
}

/** The user's `diffEditor.maxFileSize` (MB), for tooLargeToCompare. */
export function diffMaxFileSizeMB(): unknown {
  return vscode.workspace.getConfiguration('diffEditor').get('maxFileSize');
}

interface Cached {
  readonly file: string;
  readonly size: number;
  readonly mtime: number;
  /** The backup's permission bits (the temporary file itself is private, 0600). */
  readonly mode: number;
  lastUsed: number;
}

const IDLE_MS = 5 * 60 * 1000;

export class BackupFileSystemProvider implements vscode.FileSystemProvider, vscode.Disposable {
  private readonly _onDidChangeFile = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this._onDidChangeFile.event;
  private readonly cache = new Map<string, Promise<Cached>>();
  private tempDir?: string;
  private counter = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly model: BackupModel) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
  }

  watch(): vscode.Disposable {
    // Backup versions never change.
    return new vscode.Disposable(() => undefined);
  }

  async stat(uri: vscode.Uri): Promise<vscode.FileStat> {
    const c = await this.fetchForEditor(uri);
    return { type: vscode.FileType.File, size: c.size, mtime: c.mtime * 1000, ctime: c.mtime * 1000, permissions: vscode.FilePermission.Readonly };
  }

  async readFile(uri: vscode.Uri): Promise<Uint8Array> {
    const c = await this.fetchForEditor(uri);
    // A version too large for a diff is not read into the extension host's memory (the commands offer
    // to restore it instead; this covers an editor that asks anyway, e.g. one restored after a reload).
    if (tooLargeToCompare(c.size, diffMaxFileSizeMB())) {
      throw new vscode.FileSystemError(vscode.l10n.t('{0} as of the backup is {1}: too large to open here (diffEditor.maxFileSize). Restore it instead.', path.basename(uri.path), formatBytes(c.size)));
    }
    return fs.promises.readFile(c.file);
  }

  /**
   * Whether the backup holds this version (fetched and cached for the editor that opens it next; the
   * engine streams it to a private temporary file, never into memory): its size, or undefined when the
   * backup does not hold it; the engine's own error otherwise, typed, so a command can say what is
   * wrong (a time before the first backup, a wrong passphrase) as it does for its other errors:
   * through VS Code's file system API the error would arrive as an untyped FileSystemError.
   */
  async has(uri: vscode.Uri, signal?: AbortSignal): Promise<{ size: number } | undefined> {
    try {
      const c = await this.fetch(uri, signal);
      return { size: c.size };
    } catch (e) {
      if (e instanceof vscode.FileSystemError && e.code === 'FileNotFound') return undefined;
      throw e;
    }
  }

  /**
   * Writes a version read already (by has(), or for an editor) to `dest` from the copy kept here,
   * with the backup's permissions, rather than downloading it again: its mode, or undefined when no
   * copy is kept (never read, dropped after idling, or its read failed). Written beside `dest` under
   * a restore's temporary name (private), then renamed over it.
   */
  async copyTo(uri: vscode.Uri, dest: string, signal?: AbortSignal): Promise<{ mode: number } | undefined> {
    const p = this.cache.get(uri.toString());
    const c = p && (await p.catch(() => undefined));
    if (!c) return undefined;
    c.lastUsed = Date.now();
    // A restore's temporary name (our host and pid), so that one a killed window left is removed by
    // the next restore into that folder, the engine's or this one.
    const dir = path.dirname(dest);
    sweepRestoreTemporaries(Buffer.from(dir), () => undefined);
    const tmp = path.join(dir, `${restoreTempPrefix()}-1`);
    try {
      await pipeline(fs.createReadStream(c.file), fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 }), { signal });
      fs.chmodSync(tmp, c.mode & 0o7777);
      fs.renameSync(tmp, dest);
      return { mode: c.mode };
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      // Swept meanwhile: read it again.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync(c.file)) return undefined;
      throw e;
    }
  }

  readDirectory(): [string, vscode.FileType][] {
    return [];
  }

  createDirectory(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  writeFile(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  delete(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  rename(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  /** fetch, with the engine's errors in the editor's terms (its own words, as a FileSystemError). */
  private async fetchForEditor(uri: vscode.Uri): Promise<Cached> {
    try {
      return await this.fetch(uri);
    } catch (e) {
      if (EngineError.is(e)) throw new vscode.FileSystemError(errorText(e));
      throw e;
    }
  }

  /** The version's content from the engine (cached), or FileNotFound when the file was not in that backup; EngineError on failure. */
  private fetch(uri: vscode.Uri, signal?: AbortSignal): Promise<Cached> {
    const key = uri.toString();
    let p = this.cache.get(key);
    if (!p) {
      // (A cancelled load is dropped from the cache like a failed one: the next read starts again.)
      p = this.load(uri, signal);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
    }
    return p.then((c) => {
      c.lastUsed = Date.now();
      return c;
    });
  }

  private async load(uri: vscode.Uri, signal?: AbortSignal): Promise<Cached> {
    const ref = fromBackupUri(uri);
    const f = this.model.folders.find((x) => x.folder.uri.toString() === ref.folder);
    if (!f) throw vscode.FileSystemError.Unavailable(uri);
    const file = path.join(this.dir(), `v${++this.counter}${path.extname(ref.path)}`);
    try {
      const r = await this.model.read(f, 'readFile', (remote, keys) => ({ op: 'readFile', remote, keys, path: ref.path, time: ref.time, output: file }), { signal });
      if (!r.found) throw vscode.FileSystemError.FileNotFound(uri);
      return { file, size: r.size, mtime: r.mtime, mode: r.mode, lastUsed: Date.now() };
    } catch (e) {
      fs.rmSync(file, { force: true });
      throw e;
    }
  }

  private dir(): string {
    if (!this.tempDir || !fs.existsSync(this.tempDir)) {
      // (Those of an extension host that was killed are removed first.)
      const dir = makeRunTempDir(os.tmpdir(), 'offsite-versions');
      this.tempDir = dir;
      // dispose() removes it; this also covers an extension host that exits without deactivating.
      process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    return this.tempDir;
  }

  private sweep(): void {
    const cutoff = Date.now() - IDLE_MS;
    for (const [key, p] of this.cache) {
      p.then(
        (c) => {
          if (c.lastUsed < cutoff && this.cache.get(key) === p) {
            this.cache.delete(key);
            fs.rmSync(c.file, { force: true });
          }
        },
        () => undefined,
      );
    }
  }

  dispose(): void {
    clearInterval(this.sweeper);
    this._onDidChangeFile.dispose();
    this.cache.clear();
    if (this.tempDir) fs.rmSync(this.tempDir, { recursive: true, force: true });
  }
}
