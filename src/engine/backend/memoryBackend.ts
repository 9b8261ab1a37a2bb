// A remote held in memory, for tests and dry runs. It keeps the contract of a real remote (atomic
// puts, no clobber, ranged gets, abort) and lets tests reach the stored bytes directly. A failed put
// leaves a partial entry behind, as a crashed upload would, so cleanupPartial has real work to do.
import { Readable } from 'node:stream';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { BackendError } from './backend';
import { checkName, checkRange, inCleanupScope, normalizeAbort, sizeMismatch } from './backendUtil';
import { cancelled, throwIfAborted } from '../errors';

interface StoredFile {
  data: Buffer;
  mtime: Date;
}

const CHUNK = 64 * 1024;

export class MemoryBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  private readonly files = new Map<string, StoredFile>();
  private readonly partials = new Map<string, { chunks: Buffer[]; mtime: Date }>();
  private partialSeq = 0;

  constructor(options: { name?: string; connections?: number } = {}) {
    this.displayUrl = `memory://${options.name ?? 'test'}`;
    this.properties = { connections: options.connections ?? 8 };
  }

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    checkName('put', name);
    const { signal } = options;
    throwIfAborted(signal);
    if (!options.overwrite && this.files.has(name)) throw existsError(name);
    // The partial exists from the first byte on, like an upload in progress.
    const partialName = `${name}.partial-${++this.partialSeq}`;
    const chunks: Buffer[] = [];
    this.partials.set(partialName, { chunks, mtime: new Date() });
    let received = 0;
    const stream = source.open();
    const onAbort = (): void => {
      stream.destroy(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of stream) {
        throwIfAborted(signal);
        const buf = Buffer.from(chunk as Uint8Array); // a copy: sources may reuse their buffers
        received += buf.length;
        if (received > source.size) throw sizeMismatch(name, source.size, received, true);
        chunks.push(buf);
        options.onProgress?.(received);
        // Yield like real I/O would, so concurrent operations interleave.
        await new Promise<void>((r) => setImmediate(r));
      }
      throwIfAborted(signal);
      if (received !== source.size) throw sizeMismatch(name, source.size, received, false);
      if (!options.overwrite && this.files.has(name)) {
        this.partials.delete(partialName); // refused, not interrupted: nothing to clean up later
        throw existsError(name);
      }
      if (source.size === 0) options.onProgress?.(0);
      this.files.set(name, { data: Buffer.concat(chunks, received), mtime: new Date() });
      this.partials.delete(partialName);
    } catch (e) {
      throw normalizeAbort(e, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stream.destroy();
    }
  }

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    checkName('get', name);
    const { signal } = options;
    throwIfAborted(signal);
    const file = this.files.get(name);
    if (!file) throw notFound('get', name);
    const { start, end } = checkRange('get', name, file.data.length, options.offset, options.length);
    const data = file.data;
    let pos = start;
    const stream = new Readable({
      highWaterMark: CHUNK,
      read(): void {
        if (pos >= end) {
          this.push(null);
          return;
        }
        const next = Math.min(pos + CHUNK, end);
        const chunk = Buffer.from(data.subarray(pos, next));
        pos = next;
        // Asynchronous like a real read, so an abort can land between chunks.
        setImmediate(() => this.push(chunk));
      },
      destroy(err, cb): void {
        signal?.removeEventListener('abort', onAbort);
        cb(err);
      },
    });
    const onAbort = (): void => {
      stream.destroy(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    return stream;
  }

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    checkName('stat', name);
    throwIfAborted(options.signal);
    const file = this.files.get(name);
    if (!file) throw notFound('stat', name);
    return { name, size: file.data.length, mtime: file.mtime };
  }

  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    throwIfAborted(options.signal);
    for (const [name, file] of [...this.files]) {
      throwIfAborted(options.signal);
      yield { name, size: file.data.length, mtime: file.mtime };
    }
    if (!options.partial) return;
    for (const [name, { chunks, mtime }] of [...this.partials]) {
      throwIfAborted(options.signal);
      yield { name, size: chunks.reduce((n, c) => n + c.length, 0), mtime, partial: true, target: name.replace(/\.partial-\d+$/, '') };
    }
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    checkName('remove', name);
    throwIfAborted(options.signal);
    this.files.delete(name);
  }

  async cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    throwIfAborted(options.signal);
    const names = [...this.partials.keys()].filter((n) => inCleanupScope(options, n)).sort();
    if (!options.dryRun) for (const n of names) this.partials.delete(n);
    return names;
  }

  async close(): Promise<void> {
    // Nothing to release: the data stays readable, which is what tests want.
  }

  // --- test helpers -------------------------------------------------------------------------------

  /** The stored bytes of `name` (the live buffer: changes show in later gets). */
  raw(name: string): Buffer {
    const file = this.files.get(name);
    if (!file) throw new Error(`MemoryBackend: no file ${name}`);
    return file.data;
  }

  /** Stores `data` under `name` directly, bypassing put (no checks, replaces). */
  setRaw(name: string, data: Buffer, mtime = new Date()): void {
    this.files.set(name, { data: Buffer.from(data), mtime });
  }

  /** Flips the bits of the byte at `offset` of `name` (XOR with `mask`). */
  corrupt(name: string, offset: number, mask = 0xff): void {
    const data = this.raw(name);
    if (offset < 0 || offset >= data.length) throw new Error(`MemoryBackend: offset ${offset} outside ${name} (${data.length} bytes)`);
    data[offset] ^= mask;
  }

  /** Cuts `name` to its first `length` bytes. */
  truncate(name: string, length: number): void {
    const file = this.files.get(name);
    if (!file) throw new Error(`MemoryBackend: no file ${name}`);
    file.data = Buffer.from(file.data.subarray(0, length));
  }

  /** Final names, sorted. */
  names(): string[] {
    return [...this.files.keys()].sort();
  }

  /** Names of the partial uploads left by failed puts (what cleanupPartial would remove). */
  partialNames(): string[] {
    return [...this.partials.keys()].sort();
  }
}

function existsError(name: string): BackendError {
  return new BackendError('exists', 'put', name, `${name} already exists on the remote`, {
    hint: 'Refusing to replace it; remove it first if it is not needed',
  });
}

function notFound(op: string, name: string): BackendError {
  return new BackendError('notFound', op, name, `${name} does not exist on the remote`, {
    hint: 'Check the remote URL, or list the remote to see what it holds',
  });
}
