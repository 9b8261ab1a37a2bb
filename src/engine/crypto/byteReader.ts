// Pull-style reading of a chunked byte stream for packet parsers: exact reads for headers,
// zero-copy slices for bodies. Can record what it hands out so a parser that gives up can replay
// the consumed bytes to another reader (the openpgp.js fallback).
import { TruncatedError } from './packets';

export class ByteReader {
  private head: Buffer | undefined;
  private readonly it: AsyncIterator<Buffer>;
  private done = false;
  private recording: Buffer[] | undefined;

  constructor(source: AsyncIterable<Buffer> | AsyncIterator<Buffer>) {
    this.it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source;
  }

  /** Starts keeping a copy of everything read from now on (for small prefixes only). */
  startRecording(): void {
    this.recording = [];
  }

  /** Stops recording and returns what was read since startRecording(). */
  stopRecording(): Buffer {
    const r = Buffer.concat(this.recording ?? []);
    this.recording = undefined;
    return r;
  }

  private async fill(): Promise<boolean> {
    while (!this.head || this.head.length === 0) {
      if (this.done) return false;
      const n = await this.it.next();
      if (n.done) {
        this.done = true;
        return false;
      }
      this.head = n.value;
    }
    return true;
  }

  /** The next 1..n bytes (a slice of the current chunk), or null at the end of input. */
  async readUpTo(n: number): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    const h = this.head as Buffer;
    let out: Buffer;
    if (h.length <= n) {
      out = h;
      this.head = undefined;
    } else {
      out = h.subarray(0, n);
      this.head = h.subarray(n);
    }
    this.recording?.push(out);
    return out;
  }

  /** Exactly n bytes; throws TruncatedError if the input ends first. */
  async readExact(n: number): Promise<Buffer> {
    const first = await this.readUpTo(n);
    if (!first) throw new TruncatedError();
    if (first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const c = await this.readUpTo(n - got);
      if (!c) throw new TruncatedError();
      parts.push(c);
      got += c.length;
    }
    return Buffer.concat(parts, n);
  }

  /** Puts bytes back in front of the input (they were read and turned out to belong to someone else). */
  unshift(b: Buffer): void {
    if (b.length === 0) return;
    this.head = this.head && this.head.length > 0 ? Buffer.concat([b, this.head]) : b;
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  /** Everything not read yet, as chunks. */
  async *rest(): AsyncGenerator<Buffer> {
    for (;;) {
      const c = await this.readUpTo(Number.MAX_SAFE_INTEGER);
      if (!c) return;
      yield c;
    }
  }

  /** Lets the source clean up (e.g. when the parser stops early). */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}
