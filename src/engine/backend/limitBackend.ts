// At most n operations at once against the inner backend (put, get, stat, remove; list and
// cleanupPartial are rare and pass straight through). A get holds its slot until its stream ends, fails
// or is destroyed, since the transfer is what loads the remote. Waiters are served first come, first served.
import type { Readable } from 'node:stream';
import { finished } from 'node:stream';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { cancelled, throwIfAborted } from '../errors';

export class LimitBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly inner: Backend,
    readonly n: number,
  ) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`LimitBackend needs n ≥ 1, got ${n}`);
    this.displayUrl = inner.displayUrl;
    this.properties = { ...inner.properties, connections: Math.min(inner.properties.connections, n) };
  }

  /** Operations running now (for tests and progress displays). */
  get running(): number {
    return this.active;
  }

  /** Operations waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    const release = await this.acquire(options.signal);
    try {
      await this.inner.put(name, source, options);
    } finally {
      release();
    }
  }

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    const release = await this.acquire(options.signal);
    let stream: Readable;
    try {
      stream = await this.inner.get(name, options);
    } catch (e) {
      release();
      throw e;
    }
    finished(stream, { readable: true, writable: false }, () => release());
    return stream;
  }

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    const release = await this.acquire(options.signal);
    try {
      return await this.inner.stat(name, options);
    } finally {
      release();
    }
  }

  list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    return this.inner.list(options);
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    const release = await this.acquire(options.signal);
    try {
      await this.inner.remove(name, options);
    } finally {
      release();
    }
  }

  async removeMany(names: readonly string[], options: OpOptions = {}): Promise<void> {
    const inner = this.inner;
    if (!inner.removeMany) {
      for (const n of names) await this.remove(n, options);
      return;
    }
    const release = await this.acquire(options.signal);
    try {
      await inner.removeMany(names, options);
    } finally {
      release();
    }
  }

  cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    return this.inner.cleanupPartial(options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Reading a local file in place does not load the remote: not limited. */
  localPath(name: string): string | undefined {
    return this.inner.localPath?.(name);
  }

  /** Waits for a slot; the returned function frees it (calling it twice is harmless). */
  private acquire(signal?: AbortSignal): Promise<() => void> {
    throwIfAborted(signal);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
    if (this.active < this.n) {
      this.active++;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      // The slot passes directly from the releaser to this waiter: `active` stays the same.
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(release);
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(cancelled());
      };
      this.waiting.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
