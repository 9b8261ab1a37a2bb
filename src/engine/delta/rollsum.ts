// librsync's "rollsum" weak checksum (src/rollsum.h), the one duplicity's MD4 signatures use.
// Every byte counts as (byte + 31); s1 is the sum of those, s2 the sum of the running s1 values, and the
// digest packs both modulo 2^16 as (s2 << 16) | s1. The delta encoder inlines the rolling update in its
// hot loop; these helpers are for whole blocks and for tests.

/** librsync's ROLLSUM_CHAR_OFFSET. */
export const ROLLSUM_CHAR_OFFSET = 31;

/** Mixes a rollsum digest before it indexes a hash table (Fibonacci hashing: digests cluster). */
export const LOOKUP_MULTIPLIER = 0x9e3779b1 | 0;

/** Rollsum state: s1 and s2 are kept modulo 2^32 (only their low 16 bits reach the digest). */
export interface RollsumState {
  s1: number;
  s2: number;
}

/** Sets `state` to the rollsum of data[off, off + len). */
export function rollsumInit(data: Uint8Array, off: number, len: number, state: RollsumState): void {
  let s1 = 0;
  let s2 = 0;
  const end = off + len;
  let i = off;
  // Four bytes a step: s2 gains 4*s1 + 4a + 3b + 2c + d, which shortens the dependency chain.
  for (; i + 4 <= end; i += 4) {
    const a = data[i];
    const b = data[i + 1];
    const c = data[i + 2];
    const d = data[i + 3];
    s2 = (s2 + 4 * s1 + 4 * a + 3 * b + 2 * c + d) | 0;
    s1 = (s1 + a + b + c + d) | 0;
  }
  for (; i < end; i++) {
    s1 = (s1 + data[i]) | 0;
    s2 = (s2 + s1) | 0;
  }
  setFromSums(s1, s2, len, state);
}

/**
 * Sets `state` from two sums of a block's raw bytes: their sum, and the sum of each byte times
 * (len − its position). The offset's contribution is added once instead of per byte: len * 31 to
 * s1, len(len+1)/2 * 31 to s2.
 */
function setFromSums(byteSum: number, weightedSum: number, len: number, state: RollsumState): void {
  state.s1 = (byteSum + len * ROLLSUM_CHAR_OFFSET) | 0;
  state.s2 = (weightedSum + Math.imul(triangleMod32(len), ROLLSUM_CHAR_OFFSET)) | 0;
}

const fromSums: RollsumState = { s1: 0, s2: 0 };

/** The digest (as rollsumDigestInt) of a block of `len` bytes from the two sums the SIMD code computes. */
export function rollsumOfSums(byteSum: number, weightedSum: number, len: number): number {
  setFromSums(byteSum, weightedSum, len, fromSums);
  return rollsumDigestInt(fromSums);
}

/** len * (len + 1) / 2 modulo 2^32, as an int32 (exact for any block length a signature can hold). */
function triangleMod32(len: number): number {
  if (len < 0x4000000) return (len % 2 === 0 ? (len / 2) * (len + 1) : len * ((len + 1) / 2)) % 0x100000000 | 0;
  return Number(((BigInt(len) * BigInt(len + 1)) / 2n) & 0xffffffffn) | 0;
}

/** The 32-bit digest as a signed int32 (the form the encoder's tables use). */
export function rollsumDigestInt(state: RollsumState): number {
  return (state.s2 << 16) | (state.s1 & 0xffff);
}

/** The rollsum digest of data[off, off + len) as an unsigned 32-bit number (what signatures store). */
export function rollsum(data: Uint8Array, off = 0, len = data.length - off): number {
  const st: RollsumState = { s1: 0, s2: 0 };
  rollsumInit(data, off, len, st);
  return rollsumDigestInt(st) >>> 0;
}

/** Slides a window of `count` bytes by one: `out` leaves at the front, `inn` enters at the back. */
export function rollsumRotate(state: RollsumState, out: number, inn: number, count: number): void {
  state.s1 = (state.s1 + inn - out) | 0;
  state.s2 = (state.s2 + state.s1 - count * (out + ROLLSUM_CHAR_OFFSET)) | 0;
}

/** Shrinks a window of `count` bytes by dropping its first byte `out` (end of input). */
export function rollsumRollout(state: RollsumState, out: number, count: number): void {
  state.s1 = (state.s1 - (out + ROLLSUM_CHAR_OFFSET)) | 0;
  state.s2 = (state.s2 - count * (out + ROLLSUM_CHAR_OFFSET)) | 0;
}
