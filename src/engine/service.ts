// The engine as a request/response service with plain-data requests and results, for front ends
// that run it somewhere else: the VS Code extension runs it in a child process (serviceMain.ts) so
// its own thread never stalls. Everything a request needs is in it; secrets (a passphrase read from
// SecretStorage) travel in the request and are never logged.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from './backend/backend';
import './backend/all';
import { openBackend } from './backend/registry';
import { RetryBackend } from './backend/retryBackend';
import { ArchiveDir, archiveDirFor, defaultCacheRoot, keyCacheDir } from './cache/archiveDir';
import { parseTimeSpec, timeToString } from './chain/time';
import { generateKeyPair } from './crypto/keys';
import { cryptoForBackup, cryptoForRead, type KeyConfig } from './cryptoConfig';
import { isCancellation, OffsiteError, type NeededInput } from './errors';
import type { Logger } from './log';
import { indexFromBytes, indexToString } from './pathIndex';
import type { Progress } from './progress';
import { backup } from './ops/backup';
import { cleanup } from './ops/cleanup';
import { fileHistory, listFiles, status } from './ops/inspect';
import { openForRead, readFileAt, restore, type ReadOptions } from './ops/restore';
import { removeAllButNFull } from './ops/retention';
import type { BackupStats } from './ops/stats';
import { restoreTempPrefix, sweepRestoreTemporaries } from './ops/treeWriter';
import { verify } from './ops/verify';
import { drill, lastDrill, recordDrill } from './ops/drill';
import { listFolder } from './ops/listFolder';
import type { SelectionRule } from './scan/selection';

export const DEFAULT_VOLUME_SIZE_MB = 32;

export interface RemoteConfig {
  readonly url: string;
  /** Root of the local cache (default ~/.cache/offsite). */
  readonly archiveDir?: string;
  readonly sshKey?: string;
  readonly knownHosts?: string;
  readonly acceptHostKey?: string;
  readonly s3EndpointUrl?: string;
  readonly s3Profile?: string;
  /** sftp://: the SSH password, and the passphrase of an encrypted SSH key (from SecretStorage; never logged). */
  readonly sshPassword?: string;
  readonly sshPassphrase?: string;
  /** s3://: keys from the extension's SecretStorage (both, or neither: then the AWS chain); never logged. */
  readonly s3AccessKeyId?: string;
  readonly s3SecretAccessKey?: string;
  readonly s3SessionToken?: string;
}

export interface KeySpec {
  readonly encryptKeys?: readonly string[];
  readonly signKey?: string;
  readonly restoreKey?: string;
  /** The private key's passphrase, when the front end has one (SecretStorage). */
  readonly passphrase?: string;
  /**
   * The passphrase of a backup made with a passphrase and no key (symmetric, duplicity without a key),
   * when the front end has one; without it, reading such a backup fails with needs
   * { input: 'passphrase', symmetric: true }, for the front end to ask.
   */
  readonly backupPassphrase?: string;
}

export interface Selection {
  readonly excludes?: readonly string[];
  readonly includes?: readonly string[];
  readonly gitignore?: boolean;
}

/** A time: duplicity's syntax ('now', '3D', '2026-07-27', ISO 8601, epoch seconds) or epoch seconds. */
export type TimeSpec = string | number;

export type ServiceRequest =
  | ({ op: 'backup'; remote: RemoteConfig; keys: KeySpec; source: string; volumeSizeMB?: number; full?: boolean; fullIfOlderThan?: string; keepFull?: number } & Selection)
  | { op: 'restore'; remote: RemoteConfig; keys: KeySpec; target: string; path?: string; time?: TimeSpec; force?: boolean }
  | { op: 'readFile'; remote: RemoteConfig; keys: KeySpec; path: string; time?: TimeSpec; output: string }
  | { op: 'status'; remote: RemoteConfig }
  /**
   * The paths of the backup as of a time. With `path`, only what lies below that folder ('' = the
   * root), `depth` levels deep (1 = its children), so a tree can ask per folder; `deleted` adds the
   * paths the listed set deleted (ListEntry.deleted); `after` and `limit` page through a big folder
   * (ask limit + 1 to learn whether there is more). With any of these the folder's own entry is not
   * listed; without them, the whole listing with the root ('.'), as before.
   */
  | { op: 'list'; remote: RemoteConfig; keys: KeySpec; time?: TimeSpec; path?: string; depth?: number; deleted?: boolean; after?: string; limit?: number }
  | { op: 'history'; remote: RemoteConfig; keys: KeySpec; path: string }
  | ({ op: 'verify'; remote: RemoteConfig; keys: KeySpec; source: string; compareData?: boolean; time?: TimeSpec } & Selection)
  | { op: 'cleanup'; remote: RemoteConfig; force?: boolean }
  | { op: 'createKey'; name: string; email: string; passphrase: string }
  /** The sets' changes from their manifests: counts for every set, or one set's files when a time is given. */
  | { op: 'changes'; remote: RemoteConfig; keys: KeySpec; time?: TimeSpec }
  /** A time in duplicity's syntax as epoch seconds (validates what a user typed). */
  | { op: 'parseTime'; time: TimeSpec }
  /**
   * Restore drill: a random sample of files restored with no local cache (the private key is needed)
   * and compared with the source; the outcome (DrillResult) is recorded for lastDrill.
   */
  | { op: 'drill'; remote: RemoteConfig; keys: KeySpec; source: string; sample?: number; time?: TimeSpec }
  /** The last recorded drill of this remote (a DrillRecord), or null; reads only the local cache. */
  | { op: 'lastDrill'; remote: RemoteConfig };

export interface SetChanges {
  readonly time: number;
  readonly type: 'full' | 'inc';
  readonly new: number;
  readonly changed: number;
  readonly deleted: number;
  /** Only when the request named a time: that set's changes, path by path. */
  readonly files?: readonly { path: string; action: 'new' | 'changed' | 'deleted' }[];
}

export interface BackupSummary {
  readonly type: 'full' | 'inc';
  /** The no-change probe stood for the walk (BackupResult.probed). */
  readonly probed: boolean;
  readonly time: number;
  readonly stats: BackupStats;
  readonly errors: readonly { path: string; message: string }[];
  readonly removedChains: readonly number[];
  /** keepFull's removal after the backup, refused or failed (the backup itself was made). */
  readonly retentionFailure?: { readonly message: string; readonly hint?: string };
}

export interface ListEntry {
  readonly path: string;
  readonly type: string;
  readonly mode: number;
  readonly mtime: number;
  /** Only with `deleted`: the listed set deleted this path (type 'dir' when deleted paths lie below it, else 'reg'). */
  readonly deleted?: true;
}

export interface ServiceContext {
  readonly signal?: AbortSignal;
  readonly log: Logger;
  readonly onProgress?: (p: Progress) => void;
}

/** Plain-data form of an error, for crossing a process boundary. */
export interface ServiceError {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
  /** The file the error is about (e.g. the SSH key whose passphrase is wrong), when there is one. */
  readonly file?: string;
  /** The input at fault (OffsiteError.needs), when there is one. */
  readonly needs?: NeededInput;
}

export function toServiceError(e: unknown): ServiceError {
  if (e instanceof OffsiteError) return { code: e.code, message: e.message, hint: e.hint, file: e.file, needs: e.needs };
  if (e instanceof Error && (e.name === 'AbortError' || (e as NodeJS.ErrnoException).code === 'ABORT_ERR')) return { code: 'cancelled', message: 'Cancelled' };
  return { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

function toTime(t: TimeSpec | undefined): number | undefined {
  if (t === undefined) return undefined;
  return typeof t === 'number' ? t : parseTimeSpec(t, nowSec());
}

function keyConfig(k: KeySpec): KeyConfig {
  return {
    encryptKeys: k.encryptKeys,
    signKey: k.signKey,
    restoreKey: k.restoreKey,
    passphrase: async (what, kind) => {
      // None for the backup: the file that needs it fails with crypto/decrypt.ts's noPassword.
      if (kind === 'symmetric') return k.backupPassphrase;
      if (k.passphrase !== undefined) return k.passphrase;
      throw new OffsiteError('passphrase', `A passphrase is needed for ${what}`, { hint: 'Enter the passphrase of your private key', needs: { input: 'passphrase', wrong: false } });
    },
  };
}

function rules(s: Selection): SelectionRule[] {
  return [...(s.includes ?? []).map((glob) => ({ kind: 'include' as const, glob })), ...(s.excludes ?? []).map((glob) => ({ kind: 'exclude' as const, glob }))];
}

async function open(remote: RemoteConfig, ctx: ServiceContext): Promise<{ backend: Backend; archive: ArchiveDir }> {
  const backend = await openBackend(remote.url, {
    signal: ctx.signal,
    log: (level, m) => ctx.log[level](m),
    options: {
      sshKey: remote.sshKey,
      knownHosts: remote.knownHosts,
      acceptHostKey: remote.acceptHostKey,
      s3EndpointUrl: remote.s3EndpointUrl,
      s3Profile: remote.s3Profile,
      s3AccessKeyId: remote.s3AccessKeyId,
      s3SecretAccessKey: remote.s3SecretAccessKey,
      s3SessionToken: remote.s3SessionToken,
      ...(remote.sshPassword !== undefined || remote.sshPassphrase !== undefined
        ? { env: { ...process.env, OFFSITE_SSH_PASSWORD: remote.sshPassword ?? process.env.OFFSITE_SSH_PASSWORD, OFFSITE_SSH_PASSPHRASE: remote.sshPassphrase ?? process.env.OFFSITE_SSH_PASSPHRASE } }
        : {}),
    },
  });
  const archive = ArchiveDir.open(archiveDirFor(remote.url, remote.archiveDir ?? defaultCacheRoot()));
  return { backend: new RetryBackend(backend, { onRetry: (e, n, d) => ctx.log.warn(`${e.message}; retrying (attempt ${n}) in ${Math.round(d / 1000)} s`) }), archive };
}

export async function handle(req: ServiceRequest, ctx: ServiceContext): Promise<unknown> {
  if (req.op === 'createKey') return generateKeyPair(req.name, req.email, req.passphrase);
  if (req.op === 'parseTime') return toTime(req.time);
  if (req.op === 'lastDrill') return lastDrill(ArchiveDir.open(archiveDirFor(req.remote.url, req.remote.archiveDir ?? defaultCacheRoot()))) ?? null;
  const { backend, archive } = await open(req.remote, ctx);
  const base = { backend, archive, log: ctx.log, signal: ctx.signal };
  try {
    switch (req.op) {
      case 'backup': {
        const r = await backup({
          ...base,
          crypto: await cryptoForBackup({ ...keyConfig(req.keys), keyCacheDir: keyCacheDir(req.remote.archiveDir ?? defaultCacheRoot()) }),
          source: req.source,
          volumeSize: Math.round((req.volumeSizeMB ?? DEFAULT_VOLUME_SIZE_MB) * 1024 * 1024),
          full: req.full,
          fullIfOlderThan: req.fullIfOlderThan ? nowSec() - parseTimeSpec(req.fullIfOlderThan, nowSec()) : undefined,
          rules: rules(req),
          gitignore: req.gitignore,
          onProgress: ctx.onProgress,
        });
        let removedChains: readonly number[] = [];
        let retentionFailure: BackupSummary['retentionFailure'];
        if (req.keepFull && req.keepFull > 0) {
          // The set is written: a removal that cannot be done (a chain dated in the future, the remote
          // refusing a delete) is reported beside it, not as a failed backup.
          try {
            removedChains = (await removeAllButNFull({ ...base, crypto: cryptoForRead({}), n: req.keepFull, force: true })).chains;
          } catch (e) {
            if (isCancellation(e) || !OffsiteError.is(e)) throw e;
            ctx.log.warn(`Old backups not removed: ${e.message}`);
            retentionFailure = { message: e.message, hint: e.hint };
          }
        }
        const summary: BackupSummary = { type: r.type, probed: r.probed, time: r.time, stats: r.stats, errors: r.errors, removedChains, retentionFailure };
        return summary;
      }
      case 'restore': {
        const r = await restore({ ...base, crypto: cryptoForRead(keyConfig(req.keys)), target: req.target, path: req.path === undefined ? undefined : indexFromBytes(req.path), time: toTime(req.time), force: req.force, onProgress: ctx.onProgress });
        return { time: r.time, files: r.files, bytes: r.bytes, refusals: r.refusals };
      }
      case 'readFile': {
        // Written beside the output under a restore's temporary name, new and private (never a file of
        // the user's, as OUTPUT.part could be), then renamed over it; a killed engine's is removed by
        // the next read or restore into that folder.
        const dir = path.dirname(req.output);
        sweepRestoreTemporaries(Buffer.from(dir), (m) => ctx.log.warn(m));
        const tmp = path.join(dir, `${restoreTempPrefix()}-1`);
        const fh = await fs.promises.open(tmp, 'wx', 0o600);
        try {
          const meta = await readFileAt({ ...base, crypto: cryptoForRead(keyConfig(req.keys)), path: indexFromBytes(req.path), time: toTime(req.time) }, async (c) => {
            await fh.write(c);
          });
          await fh.close();
          if (!meta) {
            fs.rmSync(tmp, { force: true });
            return { found: false };
          }
          fs.renameSync(tmp, req.output);
          return { found: true, mode: meta.mode, mtime: meta.mtime, size: fs.statSync(req.output).size };
        } catch (e) {
          await fh.close().catch(() => undefined);
          fs.rmSync(tmp, { force: true });
          throw e;
        }
      }
      case 'status':
        return await status({ ...base, crypto: cryptoForRead({}) });
      case 'list': {
        const out: ListEntry[] = [];
        if (req.path !== undefined || req.depth !== undefined || req.deleted || req.after !== undefined || req.limit !== undefined) {
          const entries = listFolder({
            ...base,
            crypto: cryptoForRead(keyConfig(req.keys)),
            time: toTime(req.time),
            path: indexFromBytes(req.path ?? ''),
            depth: req.depth,
            deleted: req.deleted,
            after: req.after === undefined ? undefined : indexFromBytes(req.after),
            limit: req.limit,
          });
          for await (const e of entries) {
            out.push({ path: indexToString(e.index), type: e.meta.type, mode: e.meta.mode, mtime: e.meta.mtime, ...(e.deleted ? { deleted: true as const } : {}) });
          }
          return out;
        }
        for await (const f of listFiles({ ...base, crypto: cryptoForRead(keyConfig(req.keys)), time: toTime(req.time) })) {
          out.push({ path: indexToString(f.index), type: f.meta.type, mode: f.meta.mode, mtime: f.meta.mtime });
        }
        return out;
      }
      case 'history':
        return await fileHistory({ ...base, crypto: cryptoForRead(keyConfig(req.keys)), path: indexFromBytes(req.path) });
      case 'verify':
        return await verify({ ...base, crypto: cryptoForRead(keyConfig(req.keys)), source: req.source, compareData: req.compareData, time: toTime(req.time), rules: rules(req), gitignore: req.gitignore });
      case 'cleanup':
        return await cleanup({ ...base, crypto: cryptoForRead({}), force: req.force });
      case 'changes':
        return await setChanges({ ...base, crypto: cryptoForRead(keyConfig(req.keys)) }, toTime(req.time));
      case 'drill': {
        const r = await drill({ backend, log: ctx.log, signal: ctx.signal, crypto: cryptoForRead(keyConfig(req.keys)), source: req.source, sample: req.sample, time: toTime(req.time), onProgress: ctx.onProgress });
        recordDrill(archive, r);
        return r;
      }
    }
  } finally {
    await backend.close();
  }
}

async function setChanges(opts: ReadOptions, time: number | undefined): Promise<SetChanges[]> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const sets = repo.collection.chains.flatMap((c) => [c.fullSet, ...c.incSets]);
    // With a time: the set made at that time, else the last one before it (as a restore would use).
    const wanted = time === undefined ? sets : [sets.find((s) => s.endTime === time) ?? sets.filter((s) => s.endTime <= time).at(-1)].filter((s) => s !== undefined);
    const out: SetChanges[] = [];
    for (const set of wanted) {
      const files = (await repo.manifest(set, opts.signal)).filelist ?? [];
      const count = (a: string) => files.reduce((n, f) => n + (f.action === a ? 1 : 0), 0);
      out.push({
        time: set.endTime,
        type: set.type,
        new: count('new'),
        changed: count('changed'),
        deleted: count('deleted'),
        files: time === undefined ? undefined : files.map((f) => ({ path: indexToString(f.index), action: f.action })),
      });
    }
    return out;
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

/** For messages: a set time as duplicity names it. */
export { timeToString };
/** For the extension's tree: the relative path of a file inside the backed-up folder. */
export function relativePath(root: string, file: string): string | undefined {
  const rel = path.relative(root, file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? undefined : rel.split(path.sep).join('/');
}
