// Packs difftar members into size-capped volumes, encodes each volume (OpenPGP) into a private temp
// file while hashing it, and hands finished volumes to an uploader that runs alongside. Keeps the
// bookkeeping the manifest needs: first and last path (and multivol block) of each volume and the
// SHA1 of the stored bytes (FORMAT §5.1; duplicity's write_multivol/get_indicies).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PathIndex } from '../types';
import type { VolumeInfo } from '../manifest/manifest';
import { encodeTarHeader, tarFooter, tarPadding, type TarHeader } from '../volume/tar';
import { writeAllSync } from '../util/syncIo';

export interface Member {
  readonly index: PathIndex;
  readonly header: TarHeader; // name and size already set
  readonly data?: Buffer;
  /** For a multivol chunk that is not the file's last one: its chunk number (duplicity's "block"). */
  readonly block?: number;
}

export interface FinishedVolume {
  readonly volumeNumber: number;
  readonly file: string; // the encoded temp file
  readonly size: number;
  readonly info: VolumeInfo;
}

export interface VolumeWriterOptions {
  /** Cap on a volume's tar bytes. */
  readonly volumeSize: number;
  readonly tempDir: string;
  /** The encoder of one volume's plaintext (encryption), or undefined to store raw tar. */
  readonly encoder: () => Transform | undefined;
  /** Whether to write tar end blocks (duplicity writes them only in encrypted volumes). */
  readonly footer: boolean;
  /** Called when a volume's tar is complete; its result travels with the volume to onVolume. */
  readonly onClose?: () => Promise<unknown>;
  /** Called (not awaited) for each finished volume; may run concurrently with the next volume. */
  readonly onVolume: (v: FinishedVolume, marks: unknown) => Promise<void>;
  /** First volume number (resume continues after the volumes already uploaded). */
  readonly firstVolume?: number;
  /** Volumes uploaded by an earlier, interrupted run of the same backup (they stay in the manifest). */
  readonly previous?: readonly VolumeInfo[];
  /** Finished volumes waiting for or in upload before the writer waits (bounds temp disk use). */
  readonly maxPending?: number;
}

/**
 * Hashes and counts the encoded volume while writing it to its temp file with synchronous writes: a
 * write stream's writes were threadpool jobs queued behind the compression jobs, and the main thread
 * waited for them (a full backup spent ~1.6 s awaiting its output, deflate's drain included).
 */
class HashCount extends Writable {
  readonly sha1 = createHash('sha1');
  size = 0;
  private fd: number | undefined;

  constructor(file: string) {
    super({ highWaterMark: 1 << 20 });
    this.fd = fs.openSync(file, 'w', 0o600);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.sha1.update(chunk);
    this.size += chunk.length;
    try {
      writeAllSync(this.fd!, chunk);
    } catch (e) {
      return cb(e as Error); // a full disk: the volume (and the backup) fails with the system's error
    }
    cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    try {
      this.closeFile();
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    try {
      this.closeFile();
    } catch {
      // the stream's own error (if any) is the one reported
    }
    cb(e);
  }

  private closeFile(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) fs.closeSync(fd);
  }
}

interface OpenVolume {
  readonly number: number;
  readonly file: string;
  readonly input: Writable; // where tar bytes go
  readonly done: Promise<void>;
  readonly sink: HashCount;
  bytes: number;
  start?: { index: PathIndex; block?: number };
  end?: { index: PathIndex; block?: number };
}

export class VolumeWriter {
  private current?: OpenVolume;
  private nextNumber: number;
  private readonly pending = new Set<Promise<void>>();
  private failure?: unknown;
  /** Bytes of finished volumes (encoded). */
  totalBytes = 0;
  readonly volumes: VolumeInfo[] = [];

  constructor(private readonly opts: VolumeWriterOptions) {
    this.nextNumber = opts.firstVolume ?? 1;
    this.volumes.push(...(opts.previous ?? []));
  }

  /** Adds one member; starts a new volume first when this one would pass the cap. */
  async add(m: Member): Promise<void> {
    if (this.failure) throw this.failure;
    const header = encodeTarHeader(m.header);
    const dataLen = m.data?.length ?? 0;
    const size = header.length + dataLen + (dataLen % 512 ? 512 - (dataLen % 512) : 0);
    if (this.current && this.current.bytes > 0 && this.current.bytes + size > this.opts.volumeSize) await this.closeVolume();
    if (!this.current) await this.waitForRoom();
    const v = this.current ?? this.openVolume();
    v.start ??= { index: m.index, block: m.block };
    v.end = { index: m.index, block: m.block };
    await this.write(v, header);
    if (m.data && m.data.length) {
      await this.write(v, m.data);
      if (m.data.length % 512) await this.write(v, tarPadding(m.data.length));
    }
  }

  /** Closes the last volume (writing an empty one when nothing was added: duplicity always has vol1). */
  async finish(): Promise<VolumeInfo[]> {
    if (!this.current && this.volumes.length === 0) this.openVolume();
    if (this.current) await this.closeVolume();
    await Promise.all(this.pending);
    if (this.failure) throw this.failure;
    return this.volumes;
  }

  private async waitForRoom(): Promise<void> {
    const max = this.opts.maxPending ?? 2;
    while (this.pending.size >= max) await Promise.race(this.pending);
    if (this.failure) throw this.failure;
  }

  /** Stops: destroys the open volume and removes its temp file. */
  async abort(): Promise<void> {
    const v = this.current;
    this.current = undefined;
    if (v) {
      v.input.destroy();
      await v.done.catch(() => undefined);
      fs.rmSync(v.file, { force: true });
    }
    await Promise.allSettled([...this.pending]);
  }

  private openVolume(): OpenVolume {
    const number = this.nextNumber++;
    const file = path.join(this.opts.tempDir, `vol${number}`);
    const sink = new HashCount(file);
    const encoder = this.opts.encoder();
    const input: Writable = encoder ?? sink;
    const done = encoder ? pipeline(encoder, sink) : once(sink, 'finish').then(() => undefined);
    done.catch((e) => (this.failure ??= e));
    const v: OpenVolume = { number, file, input, done, sink, bytes: 0 };
    this.current = v;
    return v;
  }

  private async write(v: OpenVolume, buf: Buffer): Promise<void> {
    v.bytes += buf.length;
    if (!v.input.write(buf)) {
      await Promise.race([once(v.input, 'drain'), v.done]);
      if (this.failure) throw this.failure;
    }
  }

  private async closeVolume(): Promise<void> {
    const v = this.current!;
    this.current = undefined;
    if (this.opts.footer) v.input.write(tarFooter(v.bytes));
    v.input.end();
    await v.done;
    if (this.failure) throw this.failure;
    const start = v.start ?? { index: [] };
    const end = v.end ?? start;
    const info: VolumeInfo = {
      volumeNumber: v.number,
      startIndex: start.index,
      startBlock: start.block,
      endIndex: end.index,
      endBlock: end.block,
      hashes: { SHA1: v.sink.sha1.digest('hex') },
    };
    this.volumes.push(info);
    this.totalBytes += v.sink.size;
    const finished: FinishedVolume = { volumeNumber: v.number, file: v.file, size: v.sink.size, info };
    const marks = await this.opts.onClose?.();
    const p: Promise<void> = this.opts
      .onVolume(finished, marks)
      .catch((e) => {
        this.failure ??= e;
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}
