// OpenPGP packet framing (RFC 4880 §4.2, RFC 9580 §4.2): header encoding for what we write, header
// parsing and body reading (definite, partial and indeterminate lengths) for what we read.
import { OffsiteError } from '../errors';
import type { ByteReader } from './byteReader';

export const Tag = {
  PKESK: 1,
  Signature: 2,
  SKESK: 3,
  OnePassSignature: 4,
  Compressed: 8,
  SymEncrypted: 9, // old SED, no integrity protection: refused
  Marker: 10,
  Literal: 11,
  SEIPD: 18,
  MDC: 19,
  AEADEncrypted: 20, // LibrePGP OCB (gpg 2.3+ with AEAD keys)
  Padding: 21,
} as const;

/** Body length of a packet as its header says: a definite size, partial chunks, or "until the end". */
export type LengthKind = 'definite' | 'partial' | 'indeterminate';

export interface PacketHeader {
  readonly tag: number;
  readonly kind: LengthKind;
  /** Definite: the body size; partial: the first chunk's size; indeterminate: 0. */
  readonly length: number;
  /** The header bytes as read (for handing a packet to openpgp.js unchanged). */
  readonly raw: Buffer;
}

/** New-format length octets for a definite length (RFC 4880 §4.2.2). */
export function encodeLength(len: number): Buffer {
  if (len < 192) return Buffer.from([len]);
  if (len < 8384) {
    const v = len - 192;
    return Buffer.from([(v >> 8) + 192, v & 0xff]);
  }
  const b = Buffer.alloc(5);
  b[0] = 0xff;
  b.writeUInt32BE(len, 1);
  return b;
}

/** A complete new-format packet with a definite length. */
export function packet(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xc0 | tag]), encodeLength(body.length), body]);
}

/** The partial-length octet for a chunk of 2^exp bytes (exp 9..30; the first chunk must be ≥ 512). */
export function partialLengthOctet(exp: number): number {
  return 0xe0 | exp;
}

/**
 * Writes one packet body with partial body lengths of 2^exp bytes, then a final definite length,
 * so a packet of unknown size can be streamed. Bodies shorter than one chunk get a single definite
 * length. Pieces are passed on by reference (no copy) in order: header octets and body slices.
 */
export class PartialBodyWriter {
  private readonly chunk: number;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private started = false;

  constructor(
    private readonly tag: number,
    private readonly exp: number,
    private readonly emit: (piece: Buffer) => void,
  ) {
    if (exp < 9 || exp > 30) throw new RangeError('partial length exponent must be 9..30');
    this.chunk = 2 ** exp;
  }

  write(data: Buffer): void {
    if (data.length === 0) return;
    this.pending.push(data);
    this.pendingLength += data.length;
    while (this.pendingLength >= this.chunk) this.emitChunk();
  }

  end(): void {
    this.emitHeader(encodeLength(this.pendingLength));
    for (const p of this.pending) this.emit(p);
    this.pending = [];
    this.pendingLength = 0;
  }

  private emitHeader(lengthOctets: Buffer): void {
    if (!this.started) {
      this.started = true;
      this.emit(Buffer.concat([Buffer.from([0xc0 | this.tag]), lengthOctets]));
    } else {
      this.emit(lengthOctets);
    }
  }

  private emitChunk(): void {
    this.emitHeader(Buffer.from([partialLengthOctet(this.exp)]));
    let need = this.chunk;
    while (need > 0) {
      const head = this.pending[0];
      if (head.length <= need) {
        this.emit(head);
        this.pending.shift();
        need -= head.length;
      } else {
        this.emit(head.subarray(0, need));
        this.pending[0] = head.subarray(need);
        need = 0;
      }
    }
    this.pendingLength -= this.chunk;
  }
}

/**
 * The packets of a whole packet sequence in memory with definite lengths (as keys are written): tag
 * and body (slices of `bin`). `complete` is false when a header does not fit (partial or
 * indeterminate lengths, bytes cut short); `packets` then holds those before it.
 */
export function splitPackets(bin: Buffer): { packets: { tag: number; body: Buffer }[]; complete: boolean } {
  const packets: { tag: number; body: Buffer }[] = [];
  let o = 0;
  while (o < bin.length) {
    const h = bin[o];
    if ((h & 0x80) === 0) return { packets, complete: false };
    let tag: number;
    let len: number;
    let start: number;
    if (h & 0x40) {
      tag = h & 0x3f;
      if (o + 2 > bin.length) return { packets, complete: false };
      const l0 = bin[o + 1];
      if (l0 < 192) [len, start] = [l0, o + 2];
      else if (l0 < 224 && o + 3 <= bin.length) [len, start] = [((l0 - 192) << 8) + bin[o + 2] + 192, o + 3];
      else if (l0 === 255 && o + 6 <= bin.length) [len, start] = [bin.readUInt32BE(o + 2), o + 6];
      else return { packets, complete: false };
    } else {
      tag = (h >> 2) & 0x0f;
      const lt = h & 3;
      const n = 1 << lt;
      if (lt === 3 || o + 1 + n > bin.length) return { packets, complete: false };
      len = bin.readUIntBE(o + 1, n);
      start = o + 1 + n;
    }
    if (start + len > bin.length) return { packets, complete: false };
    packets.push({ tag, body: bin.subarray(start, start + len) });
    o = start + len;
  }
  return { packets, complete: true };
}

/** The MPI at `o` of `b` (RFC 4880 §3.2): its bytes and where the next field starts; undefined when it does not fit. */
export function readMpi(b: Buffer, o: number): { value: Buffer; next: number } | undefined {
  if (o + 2 > b.length) return undefined;
  const next = o + 2 + ((b.readUInt16BE(o) + 7) >> 3);
  return next > b.length ? undefined : { value: b.subarray(o + 2, next), next };
}

/** An MPI (RFC 4880 §3.2) of the unsigned big-endian number `b`: its bit count, then its bytes from the first non-zero one. */
export function writeMpi(b: Buffer): Buffer {
  let z = 0;
  while (z < b.length - 1 && b[z] === 0) z++;
  const v = b.subarray(z);
  const bits = (v.length - 1) * 8 + (32 - Math.clz32(v[0]));
  return Buffer.concat([Buffer.from([bits >> 8, bits & 0xff]), v]);
}

function formatError(message: string): OffsiteError {
  return new OffsiteError('format', message, {
    hint: 'The file is damaged or is not an OpenPGP message; restore it from another copy',
  });
}

/** Reads a packet header; undefined at a clean end of input. */
export async function readPacketHeader(r: ByteReader): Promise<PacketHeader | undefined> {
  const first = await r.readUpTo(1);
  if (!first) return undefined;
  const ctb = first[0];
  if ((ctb & 0x80) === 0) throw formatError(`Malformed OpenPGP packet header (byte 0x${ctb.toString(16).padStart(2, '0')})`);
  if (ctb & 0x40) {
    const tag = ctb & 0x3f;
    const { kind, length, raw } = await readNewLength(r);
    return { tag, kind, length, raw: Buffer.concat([Buffer.from([ctb]), raw]) };
  }
  const tag = (ctb >> 2) & 0x0f;
  const lt = ctb & 3;
  if (lt === 3) return { tag, kind: 'indeterminate', length: 0, raw: Buffer.from([ctb]) };
  const n = lt === 0 ? 1 : lt === 1 ? 2 : 4;
  const lb = await r.readExact(n);
  const length = n === 1 ? lb[0] : n === 2 ? lb.readUInt16BE(0) : lb.readUInt32BE(0);
  return { tag, kind: 'definite', length, raw: Buffer.concat([Buffer.from([ctb]), lb]) };
}

async function readNewLength(r: ByteReader): Promise<{ kind: LengthKind; length: number; raw: Buffer }> {
  const b0 = (await r.readExact(1))[0];
  if (b0 < 192) return { kind: 'definite', length: b0, raw: Buffer.from([b0]) };
  if (b0 < 224) {
    const b1 = (await r.readExact(1))[0];
    return { kind: 'definite', length: ((b0 - 192) << 8) + b1 + 192, raw: Buffer.from([b0, b1]) };
  }
  if (b0 === 255) {
    const lb = await r.readExact(4);
    return { kind: 'definite', length: lb.readUInt32BE(0), raw: Buffer.concat([Buffer.from([b0]), lb]) };
  }
  return { kind: 'partial', length: 2 ** (b0 & 0x1f), raw: Buffer.from([b0]) };
}

/**
 * The body of a packet as a stream of slices of the reader's chunks (no copies), following partial
 * lengths. An indeterminate body runs to the end of the input. A body cut short is an error: for an
 * encrypted packet, the caller turns it into 'integrity' (truncated message).
 */
export async function* packetBody(r: ByteReader, h: PacketHeader, maxSlice = 1 << 20): AsyncGenerator<Buffer> {
  if (h.kind === 'indeterminate') {
    for (;;) {
      const c = await r.readUpTo(maxSlice);
      if (!c) return;
      yield c;
    }
  }
  let remaining = h.length;
  let partial = h.kind === 'partial';
  for (;;) {
    while (remaining > 0) {
      const c = await r.readUpTo(Math.min(remaining, maxSlice));
      if (!c) throw new TruncatedError();
      remaining -= c.length;
      yield c;
    }
    if (!partial) return;
    const next = await readNewLength(r);
    remaining = next.length;
    partial = next.kind === 'partial';
  }
}

/** Reads a whole (small) packet body into memory; refuses bodies over `limit` bytes. */
export async function readSmallBody(r: ByteReader, h: PacketHeader, limit = 1 << 20): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of packetBody(r, h)) {
    n += c.length;
    if (n > limit) throw formatError(`OpenPGP packet (tag ${h.tag}) is unexpectedly large`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** The input ended inside a packet. */
export class TruncatedError extends Error {
  constructor() {
    super('OpenPGP data ends in the middle of a packet');
    this.name = 'TruncatedError';
  }
}
