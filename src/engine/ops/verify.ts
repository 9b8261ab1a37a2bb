// Verify: the backup as of a time against the local folder (duplicity's verify and compare_verbose):
// type, permissions and whole-second mtime of every path, symlink targets, and with compareData the
// contents of every regular file. Local paths the backup does not have are reported as new, when the
// same selection as the backup's is given.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupSet } from '../chain/collection';
import { timeToString } from '../chain/time';
import { OffsiteError } from '../errors';
import { parseName, signatureName } from '../manifest/naming';
import { compareIndex, indexToString } from '../pathIndex';
import { LISTINGS, ListingCache } from '../scan/listingCache';
import { scanTree, type ScanEntry, type ScanSummary, type SelectionRule } from '../scan/scanner';
import { unmatchedRuleWarning } from '../scan/selection';
import type { EntryMeta, PathIndex } from '../types';
import { openForRead, setsForTime, type ReadOptions } from './restore';
import { fetchRemote, openDecoded, withFile, wrappingOf } from './remoteFiles';
import type { Repository } from './repository';
import { TYPE_WORDS } from './inspect';
import { restoreRecords, type ReadContext, type Restorable } from './setReader';
import { mergeSignatureChain, readSigtar } from './sigtar';

type SigStreams = Parameters<typeof mergeSignatureChain>[0];

export interface VerifyOptions extends ReadOptions {
  readonly source: string;
  readonly compareData?: boolean;
  /** The backup's selection, so local paths it excludes are not reported as new. */
  readonly rules?: readonly SelectionRule[];
  readonly gitignore?: boolean;
}

export interface Difference {
  readonly path: string;
  readonly reason: string;
}

export interface VerifyResult {
  readonly time: number;
  readonly compared: number;
  readonly differences: readonly Difference[];
}

/** What verify compares of a local path: from the scan, or from an lstat of its own. */
interface LocalState {
  readonly type: EntryMeta['type'] | 'sock';
  readonly mode: number;
  /** Whole seconds (negative times as they are: a difference only when either side is positive). */
  readonly mtime: number;
  readonly mtimeMs: number;
  readonly linkname?: Buffer;
}

function localOf(e: ScanEntry): LocalState {
  return { type: e.meta.type, mode: e.meta.mode, mtime: e.meta.mtime, mtimeMs: Number(e.mtimeNs / 1_000_000n), linkname: e.meta.linkname };
}

/**
 * A source path's lstat, or undefined when it is not there: gone, or a folder on its way is now a
 * file or a symlink (ENOTDIR, ELOOP). Other errors (a folder we may not search, a name too long) are
 * the path's own problem, never the end of a verify or a drill: `{ failed }`.
 */
export function lstatSource(p: Buffer): fs.Stats | { failed: NodeJS.ErrnoException } | undefined {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    return { failed: e as NodeJS.ErrnoException };
  }
}

/** A path's local state (lstatSource), its failure as the path's difference. */
function lstatLocal(p: Buffer): LocalState | { error: string } | undefined {
  const st = lstatSource(p);
  if (st === undefined || 'failed' in st) return st && { error: errorText(st.failed) };
  return { type: typeOf(st), mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000), mtimeMs: st.mtimeMs };
}

/** An error's message without the path Node appends (the difference names the path already). */
function errorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code && err.syscall ? `${err.code} (${err.syscall})` : err.message;
}

/** What a path is, in the words of a difference: 'file', 'folder', 'symlink', … (the CLI's TYPE_WORDS). */
function kindOf(t: LocalState['type']): string {
  return t === 'sock' ? 'socket' : TYPE_WORDS[t];
}

function typeOf(st: fs.Stats): EntryMeta['type'] | 'sock' {
  if (st.isFile()) return 'reg';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'sym';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chr';
  if (st.isBlockDevice()) return 'blk';
  return 'sock';
}

/** One read buffer for every comparison (they run one at a time): a 1 MiB buffer per file made GC
 *  a third of verify's time (profiled, bench/README.md). */
let compareBuf: Buffer | undefined;

/** Whether the local file holds the backup's data; `{ error }` when it cannot be opened or read. */
async function sameContent(file: Buffer, item: Restorable): Promise<boolean | { error: string }> {
  // Synchronous reads: thousands of small files, each async read a thread-pool round trip.
  let fd: number;
  try {
    // O_NONBLOCK: a path that became a fifo since the scan must not make verify wait for a writer.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    return { error: errorText(e) };
  }
  let pos = 0;
  let same = true;
  let failed: { error: string } | undefined;
  const buf = (compareBuf ??= Buffer.allocUnsafe(1 << 20));
  try {
    await item.produce?.(async (chunk) => {
      if (!same) return;
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(buf.length, chunk.length - off);
        let bytesRead: number;
        try {
          bytesRead = fs.readSync(fd, buf, 0, n, pos);
        } catch (e) {
          failed = { error: errorText(e) };
          same = false;
          return;
        }
        if (bytesRead !== n || !buf.subarray(0, n).equals(chunk.subarray(off, off + n))) {
          same = false;
          return;
        }
        pos += n;
        off += n;
      }
    });
    if (same && fs.readSync(fd, buf, 0, 1, pos) !== 0) same = false;
  } finally {
    fs.closeSync(fd);
  }
  return failed ?? same;
}

export async function verify(opts: VerifyOptions): Promise<VerifyResult> {
  const { repo, tempDir } = await openForRead(opts);
  let listings: ListingCache | undefined;
  try {
    const time = opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000);
    const sets = await setsForTime(repo, time, opts);
    const ctx: ReadContext = { repo, log: opts.log, signal: opts.signal, refusals: [] };
    const sigs = await signatureFilesOf(repo, sets.map((s) => s.set), opts.signal);
    const sigIt = mergeSignatureChain(sigs.streams)[Symbol.asyncIterator]();
    const sigMismatch = (what: string) =>
      new OffsiteError('integrity', `The signature files do not match the backup's data (${what}): ${sigs.names.join(', ')}`, {
        file: sigs.names.at(-1),
        hint: 'A signature file was damaged or replaced; restores still work, but make a new full backup (offsite backup --full) before the next incremental',
      });
    const root = Buffer.from(path.resolve(opts.source));
    const differences: Difference[] = [];
    let compared = 0;
    let lookedUp = 0;
    const diff = (index: PathIndex, reason: string) => {
      differences.push({ path: indexToString(index), reason });
      opts.log.info(`Difference found: ${indexToString(index)}: ${reason}`);
    };

    // Local paths, in the same order, to find the ones the backup lacks; the scan's lstat of a path
    // the backup has is the one compared (a second lstat per path was a quarter of verify's time).
    // The last backup's folder listings, read only: folders unchanged since are not read again.
    const prevDirs = opts.archive.newest(LISTINGS);
    listings = prevDirs === undefined ? undefined : new ListingCache({ previous: opts.archive.file(prevDirs) });
    const local = scanTree(root.toString(), { rules: opts.rules, gitignore: opts.gitignore, signal: opts.signal, onError: () => {}, listings });
    let walked: ScanSummary | undefined;
    /** The scan's next entry; at the end, undefined and its summary kept in `walked`. */
    const nextLocal = async (): Promise<ScanEntry | undefined> => {
      const step = await local.next();
      if (!step.done) return step.value;
      walked ??= step.value;
      return undefined;
    };
    let localHead = await nextLocal();
    /** Reports local paths before `upTo` as new; returns the scan's entry for `upTo` when it has one. */
    const passLocal = async (upTo: PathIndex | undefined): Promise<ScanEntry | undefined> => {
      while (localHead && (upTo === undefined || compareIndex(localHead.index, upTo) < 0)) {
        // As duplicity's "New file", but saying what it is: a new folder is one line, and so is each path in it.
        diff(localHead.index, `new ${kindOf(localHead.meta.type)}, not in the backup`);
        localHead = await nextLocal();
      }
      if (!localHead || !upTo || compareIndex(localHead.index, upTo) !== 0) return undefined;
      const met = localHead;
      localHead = await nextLocal();
      return met;
    };

    for await (const item of restoreRecords(ctx, sets, [])) {
      const sig = (await sigIt.next()).value;
      if (!sig || compareIndex(sig.index, item.index) !== 0 || !sameRecordedMeta(sig.meta, item.meta)) {
        throw sigMismatch(`at ${indexToString(item.index)}: ${sig ? `${indexToString(sig.index)}, a ${sig.meta.type}` : 'nothing'} in the signatures`);
      }
      const scanned = await passLocal(item.index);
      compared++;
      const p = scanned?.path ?? Buffer.concat([root, ...item.index.flatMap((c) => [Buffer.from('/'), c])]);
      // Paths the scan did not meet (excluded by other rules, unreadable folders, sockets) are looked up.
      if (!scanned) lookedUp++;
      const st = scanned ? localOf(scanned) : lstatLocal(p);
      const m = item.meta;
      if (!st) {
        diff(item.index, 'missing');
        continue;
      }
      if ('error' in st) {
        diff(item.index, `cannot be read: ${st.error}`);
        continue;
      }
      const t = st.type;
      if (t !== m.type) {
        diff(item.index, `is a ${kindOf(t)}, expected a ${kindOf(m.type)}`);
        continue;
      }
      if (t === 'sym') {
        let target: Buffer;
        try {
          target = st.linkname ?? fs.readlinkSync(p, { encoding: 'buffer' });
        } catch (e) {
          diff(item.index, `cannot be read: ${errorText(e)}`);
          continue;
        }
        if (!m.linkname || !target.equals(m.linkname)) diff(item.index, `points to ${target.toString()}, expected ${m.linkname?.toString()}`);
        continue;
      }
      if ((st.mode & 0o7777) !== (m.mode & 0o7777)) {
        diff(item.index, `has permissions ${(st.mode & 0o7777).toString(8)}, expected ${(m.mode & 0o7777).toString(8)}`);
        continue;
      }
      if ((t === 'reg' || t === 'dir' || t === 'fifo') && st.mtime !== m.mtime && (m.mtime > 0 || st.mtime > 0)) {
        diff(item.index, `has mtime ${new Date(st.mtimeMs).toISOString()}, expected ${new Date(m.mtime * 1000).toISOString()}`);
        continue;
      }
      if ((t === 'reg' || t === 'dir' || t === 'fifo') && st.mtimeMs < 0 && m.mtime === 0) {
        // Stored as 0, as duplicity stores any time before 1970: as equal as the format can tell, but
        // not silently (a restore gives it 1970-01-01).
        opts.log.warn(`${indexToString(item.index)}: its modification time ${new Date(st.mtimeMs).toISOString()} is before 1970; the backup holds 1970-01-01T00:00:00Z (duplicity's format has no earlier times)`);
      }
      if (t === 'reg' && opts.compareData) {
        const same = await sameContent(p, item);
        if (same !== true) diff(item.index, same === false ? 'data differs' : `cannot be read: ${same.error}`);
      }
    }
    const extra = (await sigIt.next()).value;
    if (extra) throw sigMismatch(`${indexToString(extra.index)} is only in the signatures`);
    await passLocal(undefined);
    // The walk is done: rules that matched nothing were most likely meant for another folder.
    for (const rule of walked?.unmatchedRules ?? []) opts.log.warn(unmatchedRuleWarning(root.toString(), rule));
    opts.log.debug(`Verify compared ${compared} paths, ${lookedUp} of them looked up outside the scan; ${listings?.reused ?? 0} folders from the last backup's listings`);
    return { time: sets.at(-1)!.set.endTime, compared, differences };
  } finally {
    await listings?.close();
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

/** The signatures record each path's metadata as its volume member does (both come from one scan). */
function sameRecordedMeta(a: EntryMeta, b: EntryMeta): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'sym') return !!a.linkname && !!b.linkname && a.linkname.equals(b.linkname);
  return (a.mode & 0o7777) === (b.mode & 0o7777) && a.mtime === b.mtime;
}

/**
 * The signature files of the sets verified, each decrypted whole while it is read (so its MDC, and a
 * signature when one is required, are checked). They are not needed to restore, but the next
 * incremental builds on them: a missing or replaced one is damage verify must report.
 */
async function signatureFilesOf(repo: Repository, sets: readonly BackupSet[], signal?: AbortSignal): Promise<{ names: string[]; streams: SigStreams }> {
  const names: string[] = [];
  const streams: SigStreams = [];
  for (const set of sets) {
    const name = [...repo.remoteFiles.keys()].find((n) => {
      const p = parseName(n);
      return p?.kind === 'signature' && !p.partial && p.setType === set.type && p.endTime === set.endTime && (set.type === 'full' || p.startTime === set.startTime);
    });
    if (!name) {
      const expected = signatureName(set.type, set.endTime, set.startTime, set.encrypted ? 'gpg' : '');
      throw new OffsiteError('integrity', `The signature file of the backup set of ${timeToString(set.endTime)} is missing on the remote (${expected})`, {
        file: expected,
        hint: 'Restores still work; make a new full backup (offsite backup --full) before the next incremental',
      });
    }
    const fetched = await fetchRemote(repo.backend, name, repo.tempDir, { signal });
    const plain = await openDecoded(fetched.path, wrappingOf(parseName(name)!), repo.crypto, name);
    names.push(name);
    streams.push(
      (async function* () {
        try {
          yield* readSigtar(plain);
        } catch (e) {
          throw withFile(e, name);
        } finally {
          plain.destroy();
          fetched.dispose();
        }
      })(),
    );
  }
  return { names, streams };
}
