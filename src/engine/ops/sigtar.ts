// Signature archives (FORMAT §8): one member per changed path — `signature/<path>` with the librsync
// signature of a regular file's new contents, `snapshot/<path>` for other types, `deleted/<path>` —
// in index order. A full-signatures file describes the whole tree; the state at the end of a chain is
// the merge of its signature files, later ones winning, `deleted/` removing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { accessDenied, cacheAccessError } from '../cache/archiveDir';
import type { EntryMeta, PathIndex } from '../types';
import { OffsiteError } from '../errors';
import { compareIndex } from '../pathIndex';
import { deletedHeader, formatMemberName, metaToTarHeader, parseMemberName, tarHeaderToMeta } from '../volume/difftar';
import { encodeTarHeader, readTar, tarArchiveEnd, tarPadding } from '../volume/tar';
import { writeAllSync } from '../util/syncIo';

export interface SigEntry {
  readonly index: PathIndex;
  readonly kind: 'signature' | 'snapshot';
  readonly meta: EntryMeta;
  /** The librsync signature of a regular file. */
  readonly signature?: Buffer;
}

/**
 * Appends to a private file through a buffer, with explicit flush and fsync so a checkpoint can name a
 * length that is on disk; can reopen a file truncated to such a length (resume).
 */
export class AppendFile {
  private buf = Buffer.allocUnsafe(256 * 1024);
  private used = 0;
  private written: number;

  private constructor(private readonly fh: fs.promises.FileHandle, start: number) {
    this.written = start;
  }

  /** Opens `file` for appending: new and empty, or truncated to `resumeAt` bytes. */
  static async open(file: string, resumeAt?: number): Promise<AppendFile> {
    if (resumeAt === undefined) return new AppendFile(await fs.promises.open(file, 'w', 0o600), 0);
    const fh = await fs.promises.open(file, 'r+');
    await fh.truncate(resumeAt);
    return new AppendFile(fh, resumeAt);
  }

  /** Bytes appended so far (flushed or not). */
  get length(): number {
    return this.written + this.used;
  }

  async write(data: Buffer): Promise<void> {
    if (this.used + data.length > this.buf.length) await this.flush();
    if (data.length > this.buf.length) {
      writeAllSync(this.fh.fd, data, this.written);
      this.written += data.length;
      return;
    }
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    // Synchronous: an async write would queue behind the backup's compression jobs (util/syncIo.ts).
    writeAllSync(this.fh.fd, this.buf.subarray(0, this.used), this.written);
    this.written += this.used;
    this.used = 0;
  }

  async sync(): Promise<void> {
    await this.flush();
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.flush();
    await this.fh.close();
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/** Writes a plaintext signature tar, member by member, in index order. */
export class SigtarWriter {
  entries = 0;

  private constructor(readonly file: string, private readonly out: AppendFile) {}

  static async open(file: string, resumeAt?: number): Promise<SigtarWriter> {
    return new SigtarWriter(file, await AppendFile.open(file, resumeAt));
  }

  get length(): number {
    return this.out.length;
  }

  sync(): Promise<void> {
    return this.out.sync();
  }

  signature(index: PathIndex, meta: EntryMeta, sig: Buffer): Promise<void> {
    return this.member(metaToTarHeader(formatMemberName({ kind: 'signature', index }, false, 'sigtar'), meta, sig.length), sig);
  }

  snapshot(index: PathIndex, meta: EntryMeta): Promise<void> {
    return this.member(metaToTarHeader(formatMemberName({ kind: 'snapshot', index }, meta.type === 'dir', 'sigtar'), meta, 0));
  }

  deleted(index: PathIndex): Promise<void> {
    return this.member(deletedHeader(formatMemberName({ kind: 'deleted', index }, false, 'sigtar')));
  }

  async finish(): Promise<void> {
    await this.out.write(tarArchiveEnd(this.out.length));
    await this.out.close();
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }

  private async member(header: ReturnType<typeof deletedHeader>, data?: Buffer): Promise<void> {
    this.entries++;
    await this.out.write(encodeTarHeader(header));
    if (data && data.length) {
      await this.out.write(data);
      if (data.length % 512) await this.out.write(tarPadding(data.length));
    }
  }
}

type RawEntry = { index: PathIndex; kind: 'signature' | 'snapshot' | 'deleted'; meta: EntryMeta; signature?: Buffer };

/** The members of one plaintext signature tar stream, bodies read into memory (they are small). */
export async function* readSigtar(plain: AsyncIterable<Buffer>): AsyncGenerator<RawEntry> {
  for await (const entry of readTar(plain)) {
    const m = parseMemberName(entry.header.name);
    if (m.kind === 'diff') continue; // not valid in a sigtar; ignore like duplicity would fail to match
    let signature: Buffer | undefined;
    if (m.kind === 'signature') {
      const parts: Buffer[] = [];
      for await (const c of entry.body) parts.push(c);
      signature = Buffer.concat(parts);
    }
    yield { index: m.index, kind: m.kind, meta: tarHeaderToMeta(entry.header), signature };
  }
}

/** Steps in which a finished signature archive is read for its copies, and its gzip copy written. */
export const SIGTAR_COPY_PIECE = 256 << 10;

/**
 * The compressor of a signature archive's local copy (`.sigtar.gz`, read by openCachedSigtar), written
 * by a backup and when a lost cache is rebuilt: zlib level 1 with memLevel 9 (as the volumes' deflate),
 * in SIGTAR_COPY_PIECE output pieces, each a threadpool round trip. With zlib's 16 KiB, the 20k-file
 * workspace's archive (39 MB of tar) took 0.31–0.36 s to fetch and keep, 0.23–0.26 s so.
 */
export function cachedSigtarGzip(): zlib.Gzip {
  return zlib.createGzip({ level: 1, memLevel: 9, chunkSize: SIGTAR_COPY_PIECE });
}

/** Opens a cached `.sigtar.gz` (or a plain tar) as a plaintext stream. */
export function openCachedSigtar(file: string): Readable {
  const src = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  // pipeline, not pipe: a reader that stops early destroys the gunzip stream, and with it the file.
  return file.endsWith('.gz') ? pipeline(src, zlib.createGunzip(), () => undefined) : src;
}

/**
 * A cached copy found damaged while it was read (gzip's CRC-32 or length, a cut deflate stream, a tar
 * header's checksum): it is removed, so the next run fetches it again from the remote, and the error
 * names it and says so. One this user may not read (left by another user) is not damage: the cache
 * folder's error (cacheAccessError), nothing removed. Other errors (cancellation, a file system error)
 * pass unchanged.
 */
function cachedCopyError(file: string, e: unknown): unknown {
  if (accessDenied(e)) return cacheAccessError(e, path.dirname(file));
  const code = (e as NodeJS.ErrnoException)?.code;
  const damaged = (typeof code === 'string' && code.startsWith('Z_')) || OffsiteError.is(e, 'format') || OffsiteError.is(e, 'integrity');
  if (!damaged) return e;
  fs.rmSync(file, { force: true });
  return new OffsiteError('integrity', `The local cache copy ${file} is damaged (${(e as Error).message}); it was removed`, {
    file,
    cause: e,
    hint: 'Run the command again: the copy is fetched again from the remote (with --key KEY, your private key, where the command takes one). The remote itself was not found damaged',
  });
}

/** The members of a cached signature file, opened only when the first member is asked for. */
export async function* readCachedSigtar(file: string): AsyncGenerator<RawEntry> {
  try {
    yield* readSigtar(openCachedSigtar(file));
  } catch (e) {
    throw cachedCopyError(file, e);
  }
}

export type HeaderEntry = Omit<RawEntry, 'signature'>;

/** The members of a cached signature file, headers only (readTar skips the librsync signatures). */
export async function* readCachedSigtarHeaders(file: string): AsyncGenerator<HeaderEntry> {
  try {
    for await (const e of readTar(openCachedSigtar(file))) {
      const m = parseMemberName(e.header.name);
      if (m.kind === 'diff') continue;
      yield { index: m.index, kind: m.kind, meta: tarHeaderToMeta(e.header) };
    }
  } catch (e) {
    throw cachedCopyError(file, e);
  }
}

/**
 * Merges the signature files of a chain (oldest first) into the state at the chain's end, in index
 * order: for each path the newest member wins, and a `deleted/` member removes the path.
 */
export async function* mergeSignatureChain(streams: AsyncIterable<RawEntry>[]): AsyncGenerator<SigEntry> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  try {
    const heads: (RawEntry | undefined)[] = await Promise.all(its.map(async (it) => (await it.next()).value as RawEntry | undefined));
    for (;;) {
      let min: PathIndex | undefined;
      for (const h of heads) if (h && (min === undefined || compareIndex(h.index, min) < 0)) min = h.index;
      if (min === undefined) return;
      let winner: RawEntry | undefined;
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i];
        if (h && compareIndex(h.index, min) === 0) {
          winner = h; // later streams come later in the chain: last one wins
          heads[i] = (await its[i].next()).value as RawEntry | undefined;
        }
      }
      if (winner && winner.kind !== 'deleted') yield { index: winner.index, kind: winner.kind, meta: winner.meta, signature: winner.signature };
    }
  } finally {
    // A reader that stops early (an incremental needs the chain only up to its last changed path)
    // must not leave the files open.
    await Promise.all(its.map((it) => it.return?.(undefined)));
  }
}
