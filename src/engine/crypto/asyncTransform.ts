// A Transform whose work is one async function that pulls input chunks and awaits its pushes, so
// packet parsers and the parallel compressor can be written as plain sequential code while keeping
// Node's backpressure in both directions: the function only gets a chunk when it asks for one, and
// `push` waits while the readable side is full.
import { Transform, type TransformCallback } from 'node:stream';

export interface AsyncTransformIo {
  /** The input as an async iterable of Buffers (ends when the writable side ends). */
  readonly input: AsyncIterable<Buffer>;
  /** Pushes output; resolves when the consumer is ready for more. */
  push(chunk: Buffer): Promise<void>;
}

class StreamClosedError extends Error {
  constructor() {
    super('stream closed');
    this.name = 'StreamClosedError';
  }
}

class AsyncTransform extends Transform {
  private readonly queue: { chunk: Buffer; cb: TransformCallback }[] = [];
  private inputEnded = false;
  private flushCb: TransformCallback | undefined;
  private inputWaiter: (() => void) | undefined;
  private outputWaiter: (() => void) | undefined;
  private stopped = false;
  private started = false;

  constructor(private readonly body: (io: AsyncTransformIo) => Promise<void>) {
    super({ readableHighWaterMark: 1 << 18, writableHighWaterMark: 1 << 16 });
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    const input: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const c = await this.nextInput();
          return c === null ? { done: true, value: undefined } : { done: false, value: c };
        },
        return: async () => ({ done: true, value: undefined }),
      }),
    };
    const io: AsyncTransformIo = { input, push: (c) => this.pushAsync(c) };
    this.body(io).then(
      async () => {
        // The work may finish before the input does (trailing bytes): drain the rest so the
        // writer is not left hanging, then end the readable side.
        try {
          while ((await this.nextInput()) !== null) {
            /* discard */
          }
        } catch {
          return;
        }
        const cb = this.flushCb;
        this.flushCb = undefined;
        cb?.();
      },
      (err: unknown) => {
        if (err instanceof StreamClosedError) return;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  private async nextInput(): Promise<Buffer | null> {
    for (;;) {
      if (this.stopped) throw new StreamClosedError();
      const item = this.queue.shift();
      if (item) {
        item.cb();
        return item.chunk;
      }
      if (this.inputEnded) return null;
      await new Promise<void>((resolve) => (this.inputWaiter = resolve));
    }
  }

  private async pushAsync(chunk: Buffer): Promise<void> {
    if (this.stopped) throw new StreamClosedError();
    if (chunk.length === 0) return;
    if (!this.push(chunk)) {
      await new Promise<void>((resolve) => (this.outputWaiter = resolve));
      if (this.stopped) throw new StreamClosedError();
    }
  }

  private wakeInput(): void {
    const w = this.inputWaiter;
    this.inputWaiter = undefined;
    w?.();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.start();
    this.queue.push({ chunk: Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk), cb });
    this.wakeInput();
  }

  override _flush(cb: TransformCallback): void {
    this.start();
    this.inputEnded = true;
    this.flushCb = cb;
    this.wakeInput();
  }

  override _read(size: number): void {
    super._read(size);
    const w = this.outputWaiter;
    this.outputWaiter = undefined;
    w?.();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.stopped = true;
    this.wakeInput();
    const w = this.outputWaiter;
    this.outputWaiter = undefined;
    w?.();
    cb(err);
  }
}

/** Builds a Transform from an async function over its input and output (see AsyncTransformIo). */
export function asyncTransform(body: (io: AsyncTransformIo) => Promise<void>): Transform {
  return new AsyncTransform(body);
}
