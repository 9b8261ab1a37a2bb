// Retries 'transient' backend errors with exponential backoff and jitter. Every other kind (notFound,
// exists, auth, permission, noSpace, permanent), cancellations and non-backend errors (a local source
// that fails) go straight to the caller: retrying them cannot help.
import type { Readable } from 'node:stream';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { BackendError } from './backend';
import { abortableDelay } from './backendUtil';
import { throwIfAborted } from '../errors';

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  readonly attempts?: number;
  /** Delay before the first retry; doubles for each further one (default 1000 ms). */
  readonly baseDelayMs?: number;
  /** Upper bound of one delay (default 30 000 ms). */
  readonly maxDelayMs?: number;
  /** Called before each retry with the error, the number of the attempt that failed (1-based) and the wait. */
  readonly onRetry?: (e: Error, attempt: number, delayMs: number) => void;
  /** Source of randomness for the jitter, in [0, 1) (tests make it deterministic). */
  readonly random?: () => number;
}

export class RetryBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly inner: Backend,
    private readonly opts: RetryOptions = {},
  ) {
    this.displayUrl = inner.displayUrl;
    this.properties = inner.properties;
    this.attempts = Math.max(1, Math.floor(opts.attempts ?? 5));
    this.baseDelayMs = Math.max(0, opts.baseDelayMs ?? 1000);
    this.maxDelayMs = Math.max(this.baseDelayMs, opts.maxDelayMs ?? 30_000);
  }

  /**
   * Each attempt re-opens the source (the inner backend calls source.open() again). When a retry of a
   * put without overwrite meets 'exists', an earlier attempt most likely succeeded and only its answer
   * was lost: a file of the expected size then counts as success.
   */
  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    let attempt = 0;
    await this.run(options.signal, async () => {
      attempt++;
      try {
        await this.inner.put(name, source, options);
      } catch (e) {
        if (attempt > 1 && !options.overwrite && BackendError.isKind(e, 'exists')) {
          // A stat that fails transiently cannot tell either way: retry the attempt (and the stat).
          const info = await this.inner.stat(name, { signal: options.signal }).catch((se: unknown) => {
            if (BackendError.isKind(se, 'transient')) throw se;
            return undefined;
          });
          if (info?.size === source.size) return;
        }
        throw e;
      }
    });
  }

  /**
   * Retries opening the stream only. A stream that fails midway is the caller's to retry (with an
   * offset, to resume): bytes already delivered cannot be taken back.
   */
  get(name: string, options: GetOptions = {}): Promise<Readable> {
    return this.run(options.signal, () => this.inner.get(name, options));
  }

  stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    return this.run(options.signal, () => this.inner.stat(name, options));
  }

  /** Retried as a whole: the listing is gathered first, so a retry never yields a name twice. */
  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    const all = await this.run(options.signal, async () => {
      const infos: BackendFileInfo[] = [];
      for await (const info of this.inner.list(options)) infos.push(info);
      return infos;
    });
    yield* all;
  }

  remove(name: string, options: OpOptions = {}): Promise<void> {
    return this.run(options.signal, () => this.inner.remove(name, options));
  }

  /** A batch is retried whole (removing a missing name is not an error); without one, name by name. */
  async removeMany(names: readonly string[], options: OpOptions = {}): Promise<void> {
    const inner = this.inner;
    if (inner.removeMany) return this.run(options.signal, () => inner.removeMany!(names, options));
    for (const n of names) await this.remove(n, options);
  }

  cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    return this.run(options.signal, () => this.inner.cleanupPartial(options));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  localPath(name: string): string | undefined {
    return this.inner.localPath?.(name);
  }

  /** The wait before retry number `retry` (1-based): base·2^(retry−1), capped, with "equal jitter". */
  delayFor(retry: number): number {
    const exp = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(retry - 1, 30));
    const random = this.opts.random ?? Math.random;
    // Half fixed, half random: spreads out clients that failed together, yet always backs off.
    return Math.round(exp / 2 + (random() * exp) / 2);
  }

  private async run<T>(signal: AbortSignal | undefined, op: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      try {
        return await op();
      } catch (e) {
        if (!BackendError.isKind(e, 'transient') || signal?.aborted) throw e;
        if (attempt >= this.attempts) throw attempt > 1 ? gaveUp(e, attempt) : e;
        const delay = this.delayFor(attempt);
        this.opts.onRetry?.(e, attempt, delay);
        await abortableDelay(delay, signal);
      }
    }
  }
}

/** The last error of a retried operation, saying that it was retried (each retry was logged as it came). */
function gaveUp(e: BackendError, attempts: number): BackendError {
  return new BackendError(e.kind, e.op, e.file, `${e.message} (gave up after ${attempts} attempts)`, { cause: e, hint: e.hint });
}
