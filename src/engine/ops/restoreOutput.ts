// Where a restore's paths go: a TreeWriter (treeWriter.ts: the safety rules, temporary names, attributes)
// run inline for a single file, or in a worker thread for a folder or the whole tree (restore.ts uses
// it where the volumes are local files; see there). A full restore
// spends most of its time in system calls (creating 47k files and folders: mkdir, open, write, rename,
// chmod, utimes); in the worker they overlap with the decryption, decompression and tar parsing on
// this thread. The operations go over in batches (a few hundred entries, or 256 KiB of file data in a
// transferred buffer that comes back for reuse), at most MAX_IN_FLIGHT batches ahead of the worker, so
// memory stays bounded. The worker's first error is thrown here at the next call, and nothing after
// it is written.
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../log';
import { indexEquals, indexToString, isPrefixOf } from '../pathIndex';
import type { PathIndex } from '../types';
import type { Refusal, RefusalCause, Restorable } from './setReader';
import { TreeWriter } from './treeWriter';
import { decodeError, startEngineWorker } from '../util/engineWorker';
import { encodeMeta, type WriterAck, type WriterBatch, type WriterInit, type WriterOp } from './writerProtocol';

export interface FilesystemOutputOptions {
  readonly target: string;
  /** Replace files that exist already (the caller has checked the target otherwise). */
  readonly force: boolean;
  readonly restoreOwners: boolean;
  readonly log: Logger;
  readonly refusals: Refusal[];
  readonly onFile?: (index: PathIndex, bytes: number) => void;
  /** Where the writing runs; default: a worker when the first path is a folder, else this thread. */
  readonly writer?: 'inline' | 'worker';
}

const BATCH_BYTES = 256 << 10;
const BATCH_OPS = 512;
const MAX_IN_FLIGHT = 2;

export class FilesystemOutput {
  private inline: TreeWriter | undefined;
  private worker: Worker | undefined;
  private ops: WriterOp[] = [];
  private buf: ArrayBuffer | null = null;
  private used = 0;
  private readonly spare: ArrayBuffer[] = [];
  private inFlight = 0;
  /** The first error: reported by the worker (nothing after it is written), or the worker gone. */
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private workerFiles = 0;
  private workerBytes = 0;
  /** The last member that is not a folder. */
  private leaf: { index: PathIndex; type: string } | undefined;
  /** The last path added. */
  private last: PathIndex | undefined;

  constructor(private readonly opts: FilesystemOutputOptions) {}

  /** Files written (in worker mode: confirmed by the worker so far, all of them after finish()). */
  get files(): number {
    return this.inline?.files ?? this.workerFiles;
  }

  get bytes(): number {
    return this.inline?.bytes ?? this.workerBytes;
  }

  async add(item: Restorable): Promise<void> {
    // A path the backup holds twice (only a forged archive does: paths come in order, once each): the
    // first one is restored, the later ones are left out, whatever their types, so the second cannot
    // replace or redirect the first (a symlink, then a file through it). Without this, the writer saw
    // a path it had just written and refused to overwrite it, as if it were the user's.
    const last = this.last;
    if (last && indexEquals(last, item.index)) {
      return this.refused(indexToString(item.index), 'the backup holds this path more than once; the first was restored', 'archive');
    }
    this.last = item.index;
    // Members under a symlink or file of the backup (only a forged archive has them) are refused here,
    // before their data is read: the worker would refuse them too (it checks every parent in the
    // target), but only after this thread had decoded their data, deltas included.
    const leaf = this.leaf;
    if (leaf && leaf.index.length < item.index.length && isPrefixOf(leaf.index, item.index)) {
      const what = leaf.type === 'sym' ? 'a symlink' : leaf.type === 'reg' ? 'a file' : `a ${leaf.type}`;
      return this.refused(indexToString(item.index), `${indexToString(leaf.index)} is not a folder in the backup (${what}): nothing under it is restored`, 'archive');
    }
    // The top (the target itself) is always written as a folder (treeWriter.ts).
    if (item.meta.type !== 'dir' && item.index.length > 0) this.leaf = { index: item.index, type: item.meta.type };
    if (!this.inline && !this.worker) this.start((this.opts.writer ?? (item.meta.type === 'dir' ? 'worker' : 'inline')) === 'worker');
    if (this.worker) return this.addThroughWorker(item);
    const w = this.inline!;
    if (!w.begin(item.index, item.meta)) return;
    try {
      if (item.produce) await item.produce(async (chunk) => w.write(chunk));
    } catch (e) {
      w.abort();
      throw e;
    }
    const n = w.end();
    this.opts.onFile?.(item.index, n);
  }

  /** Gives the folders their attributes and waits until everything is written (then stops the worker). */
  async finish(): Promise<void> {
    if (this.inline) return this.inline.finish();
    if (!this.worker) return;
    this.ops.push({ t: 'finish' });
    try {
      this.post();
      await this.drain();
      this.throwIfFailed();
    } finally {
      await this.dispose();
    }
  }

  /** At the end, also after an error (then it is a must): lets the worker complete what was sent, then stops it. */
  async dispose(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.post();
    await this.drain();
    this.worker = undefined;
    await w.terminate();
  }

  private start(useWorker: boolean): void {
    this.opts.log.debug(`Writing into ${this.opts.target} ${useWorker ? 'from a worker thread' : 'on this thread'}`);
    const init: WriterInit = { target: this.opts.target, force: this.opts.force, restoreOwners: this.opts.restoreOwners };
    if (!useWorker) {
      this.inline = new TreeWriter({ ...init, onRefuse: (m, r, c) => this.refused(m, r, c), onWarn: (m) => this.opts.log.warn(m) });
      return;
    }
    const w = startWorker(init);
    w.on('message', (a: WriterAck) => this.onAck(a));
    w.on('error', (e) => this.fail(new Error(`The restore's writer thread failed: ${e.message}`)));
    w.on('exit', () => this.fail(new Error("The restore's writer thread stopped")));
    this.worker = w;
  }

  private async addThroughWorker(item: Restorable): Promise<void> {
    this.throwIfFailed();
    this.ops.push({ t: 'begin', index: item.index.map((c) => c.toString('latin1')), meta: encodeMeta(item.meta) });
    if (item.meta.type === 'reg') {
      let n = 0;
      try {
        if (item.produce) {
          await item.produce(async (chunk) => {
            n += chunk.length;
            await this.pushData(chunk);
          });
        }
      } catch (e) {
        this.ops.push({ t: 'abort' });
        throw e;
      }
      this.ops.push({ t: 'end' });
      this.opts.onFile?.(item.index, n);
    }
    if (this.ops.length >= BATCH_OPS) await this.postAndThrottle();
  }

  private async pushData(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      this.throwIfFailed();
      if (this.buf === null) {
        this.buf = this.spare.pop() ?? new ArrayBuffer(BATCH_BYTES);
        this.used = 0;
      }
      const len = Math.min(chunk.length - off, BATCH_BYTES - this.used);
      new Uint8Array(this.buf, this.used, len).set(chunk.subarray(off, off + len));
      this.ops.push({ t: 'data', off: this.used, len });
      this.used += len;
      off += len;
      if (this.used === BATCH_BYTES) await this.postAndThrottle();
    }
  }

  private post(): void {
    if (this.ops.length === 0 || !this.worker || this.failure) return;
    const batch: WriterBatch = { ops: this.ops, buf: this.buf };
    this.worker.postMessage(batch, this.buf ? [this.buf] : []);
    this.inFlight++;
    this.ops = [];
    this.buf = null;
    this.used = 0;
  }

  private async postAndThrottle(): Promise<void> {
    this.post();
    while (this.inFlight >= MAX_IN_FLIGHT && !this.failure) await this.nextAck();
    this.throwIfFailed();
  }

  /** Until the worker has done what was sent; after a failure it writes nothing more, so not then. */
  private async drain(): Promise<void> {
    while (this.inFlight > 0 && !this.failure) await this.nextAck();
  }

  private nextAck(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  private onAck(a: WriterAck): void {
    this.inFlight--;
    if (a.buf && this.spare.length < MAX_IN_FLIGHT) this.spare.push(a.buf);
    this.workerFiles = a.files;
    this.workerBytes = a.bytes;
    for (const r of a.refusals) this.refused(r.member, r.reason, r.cause);
    for (const w of a.warnings) this.opts.log.warn(w);
    if (a.error) this.fail(decodeError(a.error));
    this.notify();
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private refused(member: string, reason: string, cause: RefusalCause): void {
    this.opts.refusals.push({ member, reason, cause });
    this.opts.log.warn(`Not restoring ${member}: ${reason}`);
  }
}

function startWorker(init: WriterInit): Worker {
  // A small heap: the worker only passes buffers to system calls.
  return startEngineWorker(path.join(__dirname, 'restoreWriter.js'), path.join(__dirname, 'restoreWriterWorker.ts'), {
    workerData: init,
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32 },
  });
}
