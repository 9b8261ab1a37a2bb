// The framing of the local cache files written during a scan, shared by the stat cache
// (statCache.ts) and the folder listings (listingCache.ts): after each file's own header,
//   blocks  u8 codec (0 raw, 1 deflate-raw) u32 rawLength u32 storedLength u32 crc32(raw) bytes…
//   end     u8 0xff u32 recordCount(low) u32 recordCount(high) u32 crc32(the previous 8 bytes)
// and varints (7 bits per byte, least significant first) inside the blocks.
import * as zlib from 'node:zlib';
import { OffsiteError } from '../errors';

/** Length of a block header, and of the end marker. */
export const BLOCK_HEADER_LEN = 13;
const CODEC_RAW = 0;
const CODEC_DEFLATE = 1;
const CODEC_END = 0xff;
/** A reader refuses blocks larger than this (a corrupt length must not allocate gigabytes). */
const MAX_BLOCK = 64 * 1024 * 1024;

/** One block: header and stored bytes (deflated at level 1 when `compress`). */
export function encodeBlock(raw: Buffer, compress: boolean): Buffer {
  const stored = compress ? zlib.deflateRawSync(raw, { level: 1 }) : raw;
  const head = Buffer.allocUnsafe(BLOCK_HEADER_LEN);
  head[0] = compress ? CODEC_DEFLATE : CODEC_RAW;
  head.writeUInt32LE(raw.length, 1);
  head.writeUInt32LE(stored.length, 5);
  head.writeUInt32LE(zlib.crc32(raw), 9);
  return Buffer.concat([head, stored]);
}

/** The end marker after `count` records. */
export function encodeEnd(count: number): Buffer {
  const end = Buffer.alloc(BLOCK_HEADER_LEN);
  end[0] = CODEC_END;
  end.writeUInt32LE(count % 2 ** 32, 1);
  end.writeUInt32LE(Math.floor(count / 2 ** 32), 5);
  end.writeUInt32LE(zlib.crc32(end.subarray(1, 9)), 9);
  return end;
}

/**
 * What a 13-byte header announces: the end (with its record count), a data block (the stored length
 * to read next), or why it is neither.
 */
export function readBlockHeader(head: Buffer): { end: number } | { stored: number } | { bad: string } {
  if (head[0] === CODEC_END) {
    if (head.readUInt32LE(9) !== zlib.crc32(head.subarray(1, 9))) return { bad: 'bad end marker' };
    return { end: head.readUInt32LE(1) + head.readUInt32LE(5) * 2 ** 32 };
  }
  const rawLen = head.readUInt32LE(1);
  const storedLen = head.readUInt32LE(5);
  if ((head[0] !== CODEC_RAW && head[0] !== CODEC_DEFLATE) || rawLen > MAX_BLOCK || storedLen > MAX_BLOCK) return { bad: 'bad block header' };
  return { stored: storedLen };
}

/** A data block's raw bytes from its header and stored bytes, or why they are not valid. */
export function unpackBlock(head: Buffer, stored: Buffer): Buffer | string {
  const rawLen = head.readUInt32LE(1);
  let raw: Buffer;
  try {
    raw = head[0] === CODEC_RAW ? stored : zlib.inflateRawSync(stored, { maxOutputLength: rawLen });
  } catch {
    return 'bad compressed data';
  }
  return raw.length === rawLen && zlib.crc32(raw) === head.readUInt32LE(9) ? raw : 'checksum mismatch';
}

export function putVarint(b: Buffer, pos: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new OffsiteError('internal', `Cannot store ${v} as a varint`);
  }
  while (v >= 0x80) {
    b[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  b[pos++] = v;
  return pos;
}

/** -1 on a truncated or over-long varint. */
export function getVarint(b: Buffer, cur: { pos: number }): number {
  let v = 0;
  let mul = 1;
  for (let k = 0; k < 8; k++) {
    if (cur.pos >= b.length) return -1;
    const byte = b[cur.pos++];
    v += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return v;
    mul *= 0x80;
  }
  return -1;
}
