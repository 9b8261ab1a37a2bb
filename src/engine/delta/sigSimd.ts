// The two sums of a signature's blocks (rollsum and MD4, see signature.ts) for many whole blocks at
// once, in WebAssembly SIMD: MD4 runs four blocks side by side, one in each 32-bit lane, and the
// rollsum of a block takes 16 bytes a step. The module is small enough to emit here, instruction by
// instruction (no build step, no binary in the repository); it is compiled once, synchronously, on
// first use. Where WebAssembly SIMD is missing, available() is false and the scalar code runs.
//
// Memory: one 64 KiB input area at 0 (plus room for the lanes of a last, partial group of four),
// then the outputs: MD4 states at MD4_OUT (64 bytes per group of four blocks: the four a words, then
// the b, c and d words) and the rollsum parts at ROLL_OUT (per block: the byte sum and the sum of
// each byte times its distance from the block's end).

/** Bytes of whole blocks taken per call. */
export const INPUT_BYTES = 64 * 1024;
/** Largest block length the module handles (duplicity's blocks are 512 to 2048 bytes). */
export const MAX_BLOCK = 2048;
const MD4_OUT = INPUT_BYTES + 3 * MAX_BLOCK;
const MAX_BLOCKS = INPUT_BYTES / 64;
const ROLL_OUT = MD4_OUT + (MAX_BLOCKS / 4) * 64 + 64;
const MEMORY_PAGES = Math.ceil((ROLL_OUT + MAX_BLOCKS * 8) / 65536);

// ----------------------------------------------------------------------------- a tiny wasm emitter

const I32 = 0x7f;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** Straight-line code of one function body. */
class Code {
  readonly bytes: number[] = [];
  get(l: number): this {
    return this.op(0x20, ...uleb(l));
  }
  set(l: number): this {
    return this.op(0x21, ...uleb(l));
  }
  tee(l: number): this {
    return this.op(0x22, ...uleb(l));
  }
  i32(n: number): this {
    return this.op(0x41, ...sleb(n | 0));
  }
  op(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  simd(code: number, ...imm: number[]): this {
    return this.op(0xfd, ...uleb(code), ...imm);
  }
  v128const(words: readonly number[]): this {
    const b = Buffer.alloc(16);
    words.forEach((w, i) => b.writeInt32LE(w | 0, i * 4));
    return this.simd(0x0c, ...b);
  }
  splat(n: number): this {
    return this.i32(n).simd(OP.splat);
  }
  load(offset = 0): this {
    return this.simd(0x00, 4, ...uleb(offset));
  }
  store(offset = 0): this {
    return this.simd(0x0b, 4, ...uleb(offset));
  }
  /** `while (local i < local n) body()`, unsigned: the loops of both functions. */
  whileBelow(i: number, n: number, body: () => void): this {
    this.op(BLOCK, VOID, LOOP, VOID).get(i).get(n).op(I32_GE_U, BR_IF, 1);
    body();
    return this.op(BR, 0, END, END);
  }
  /** local += n */
  inc(local: number, n: number): this {
    return this.get(local).i32(n).op(I32_ADD).set(local);
  }
  /** i8x16.shuffle of 32-bit lanes: `lanes` index the 8 lanes of the two operands. */
  shuffle32(lanes: readonly number[]): this {
    return this.simd(0x0d, ...lanes.flatMap((l) => [l * 4, l * 4 + 1, l * 4 + 2, l * 4 + 3]));
  }
}

const OP = {
  and: 0x4e,
  or: 0x50,
  xor: 0x51,
  bitselect: 0x52,
  add: 0xae,
  shl: 0xab,
  shrU: 0xad,
  extaddU8: 0x7d,
  extaddU16: 0x7f,
  extendLowU8: 0x89,
  extendHighU8: 0x8a,
  dot: 0xba,
  extract: 0x1b,
  splat: 0x11,
};
const BLOCK = 0x02;
const LOOP = 0x03;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const VOID = 0x40;
const I32_ADD = 0x6a;
const I32_MUL = 0x6c;
const I32_GE_U = 0x4f;
const I32_STORE = 0x36;

// MD4 (RFC 1320): the message word and the shift of each of the 48 steps.
const R1_SHIFTS = [3, 7, 11, 19];
const R2_ORDER = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
const R2_SHIFTS = [3, 5, 9, 13];
const R3_ORDER = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
const R3_SHIFTS = [3, 9, 11, 15];

/**
 * md4(ptr, blockLen, count, out): MD4 of `count` blocks of `blockLen` bytes (a multiple of 64) from
 * ptr, four at a time; each group of four writes its a, b, c and d vectors (64 bytes) at out.
 */
function md4Function(): number[] {
  // Parameters, then locals.
  const [ptr, len, count, out] = [0, 1, 2, 3];
  const [q, end, group] = [4, 5, 6]; // i32
  const v = 7; // v128 locals from here
  const [A, B, C, D, AA, BB, CC, DD, T, K2, K3] = [v, v + 1, v + 2, v + 3, v + 4, v + 5, v + 6, v + 7, v + 8, v + 9, v + 10];
  const X = v + 11; // x0..x15
  const L = X + 16; // four loaded rows
  const c = new Code();

  const step = (round: number, i: number, k: number, s: number): void => {
    const [a, b, cc, d] = [
      [A, B, C, D],
      [D, A, B, C],
      [C, D, A, B],
      [B, C, D, A],
    ][i % 4];
    if (round === 1) c.get(cc).get(d).get(b).simd(OP.bitselect);
    else if (round === 2) c.get(d).get(b).get(b).get(cc).simd(OP.xor).simd(OP.bitselect);
    else c.get(b).get(cc).simd(OP.xor).get(d).simd(OP.xor);
    c.get(a).simd(OP.add).get(X + k).simd(OP.add);
    if (round === 2) c.get(K2).simd(OP.add);
    if (round === 3) c.get(K3).simd(OP.add);
    c.tee(T).i32(s).simd(OP.shl).get(T).i32(32 - s).simd(OP.shrU).simd(OP.or).set(a);
  };
  const compress = (): void => {
    for (const [from, to] of [
      [A, AA],
      [B, BB],
      [C, CC],
      [D, DD],
    ]) c.get(from).set(to);
    for (let i = 0; i < 16; i++) step(1, i, i, R1_SHIFTS[i % 4]);
    for (let i = 0; i < 16; i++) step(2, i, R2_ORDER[i], R2_SHIFTS[i % 4]);
    for (let i = 0; i < 16; i++) step(3, i, R3_ORDER[i], R3_SHIFTS[i % 4]);
    for (const [to, from] of [
      [A, AA],
      [B, BB],
      [C, CC],
      [D, DD],
    ]) c.get(to).get(from).simd(OP.add).set(to);
  };

  c.splat(0x5a827999).set(K2).splat(0x6ed9eba1).set(K3);
  // for (group = 0; group < count; group += 4, ptr += 4 * len, out += 64)
  c.i32(0).set(group);
  c.whileBelow(group, count, () => {
    c.splat(0x67452301).set(A).splat(0xefcdab89).set(B).splat(0x98badcfe).set(C).splat(0x10325476).set(D);
    // for (q = ptr, end = ptr + len; q < end; q += 64): one 64-byte piece of each of the four blocks
    c.get(ptr).set(q).get(ptr).get(len).op(I32_ADD).set(end);
    c.whileBelow(q, end, () => {
      for (let j = 0; j < 4; j++) {
        // Words 4j..4j+3 of each block, transposed so that x[4j + n] holds word 4j + n of the four blocks.
        for (let lane = 0; lane < 4; lane++) {
          c.get(q);
          if (lane > 0) c.get(len).i32(lane).op(I32_MUL).op(I32_ADD);
          c.load(j * 16).set(L + lane);
        }
        // t0 = (r0[0], r1[0], r0[1], r1[1]) and so on, then the rows of x.
        c.get(L).get(L + 1).shuffle32([0, 4, 1, 5]).set(AA); // AA..DD are free here: scratch
        c.get(L).get(L + 1).shuffle32([2, 6, 3, 7]).set(BB);
        c.get(L + 2).get(L + 3).shuffle32([0, 4, 1, 5]).set(CC);
        c.get(L + 2).get(L + 3).shuffle32([2, 6, 3, 7]).set(DD);
        c.get(AA).get(CC).shuffle32([0, 1, 4, 5]).set(X + 4 * j);
        c.get(AA).get(CC).shuffle32([2, 3, 6, 7]).set(X + 4 * j + 1);
        c.get(BB).get(DD).shuffle32([0, 1, 4, 5]).set(X + 4 * j + 2);
        c.get(BB).get(DD).shuffle32([2, 3, 6, 7]).set(X + 4 * j + 3);
      }
      compress();
      c.inc(q, 64);
    });
    // The padding piece, the same for all four blocks: 0x80, zeros, the length in bits.
    for (let k = 0; k < 16; k++) c.v128const(k === 0 ? [0x80, 0x80, 0x80, 0x80] : [0, 0, 0, 0]).set(X + k);
    c.get(len).i32(8).op(I32_MUL).simd(OP.splat).set(X + 14);
    compress();
    c.get(out).get(A).store(0).get(out).get(B).store(16).get(out).get(C).store(32).get(out).get(D).store(48);
    c.inc(group, 4);
    c.get(ptr).get(len).i32(4).op(I32_MUL).op(I32_ADD).set(ptr);
    c.inc(out, 64);
  });
  c.op(END);
  const locals = [
    [...uleb(3), I32],
    [...uleb(L + 4 - v), V128],
  ];
  return [...vec(locals), ...c.bytes];
}

/**
 * rollsums(ptr, blockLen, count, out): for each of `count` blocks of `blockLen` bytes (a multiple of
 * 16), the sum of its bytes and the sum of each byte times (blockLen − its position), as two i32 at out.
 */
function rollsumFunction(): number[] {
  const [ptr, len, count, out] = [0, 1, 2, 3];
  const [q, end, i] = [4, 5, 6];
  const v = 7;
  const [S1, S2, BYTES, WLO, WHI] = [v, v + 1, v + 2, v + 3, v + 4];
  const c = new Code();
  // The weights 16..1 of a 16-byte step, as i16 lanes.
  const w16 = (ws: number[]) => [0, 2, 4, 6].map((k) => (ws[k] & 0xffff) | (ws[k + 1] << 16));
  c.v128const(w16([16, 15, 14, 13, 12, 11, 10, 9])).set(WLO);
  c.v128const(w16([8, 7, 6, 5, 4, 3, 2, 1])).set(WHI);
  c.i32(0).set(i);
  c.whileBelow(i, count, () => {
    c.v128const([0, 0, 0, 0]).set(S1).v128const([0, 0, 0, 0]).set(S2);
    c.get(ptr).set(q).get(ptr).get(len).op(I32_ADD).set(end);
    c.whileBelow(q, end, () => {
      c.get(q).load(0).set(BYTES);
      // s2 += 16 * s1 (the bytes before this step count once more for each of these 16 positions)
      c.get(S2).get(S1).i32(4).simd(OP.shl).simd(OP.add);
      c.get(BYTES).simd(OP.extendLowU8).get(WLO).simd(OP.dot).simd(OP.add);
      c.get(BYTES).simd(OP.extendHighU8).get(WHI).simd(OP.dot).simd(OP.add).set(S2);
      c.get(S1).get(BYTES).simd(OP.extaddU8).simd(OP.extaddU16).simd(OP.add).set(S1);
      c.inc(q, 16);
    });
    for (const [vecLocal, offset] of [
      [S1, 0],
      [S2, 4],
    ]) {
      c.get(out);
      for (let lane = 0; lane < 4; lane++) {
        c.get(vecLocal).simd(OP.extract, lane);
        if (lane > 0) c.op(I32_ADD);
      }
      c.op(I32_STORE, 2, ...uleb(offset));
    }
    c.inc(i, 1);
    c.get(ptr).get(len).op(I32_ADD).set(ptr);
    c.inc(out, 8);
  });
  c.op(END);
  const locals = [
    [...uleb(3), I32],
    [...uleb(5), V128],
  ];
  return [...vec(locals), ...c.bytes];
}

function moduleBytes(): Uint8Array {
  const type = [0x60, ...vec([[I32], [I32], [I32], [I32]]), 0x00];
  const bodies = [md4Function(), rollsumFunction()];
  const name = (s: string) => [...uleb(s.length), ...Buffer.from(s)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    ...section(3, vec([[0], [0]])),
    ...section(5, vec([[0x00, ...uleb(MEMORY_PAGES)]])),
    ...section(7, vec([[...name('memory'), 0x02, 0], [...name('md4'), 0x00, 0], [...name('rollsums'), 0x00, 1]])),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

// ----------------------------------------------------------------------------- the JS side

interface Instance {
  readonly mem: Uint8Array;
  readonly words: Int32Array;
  readonly md4: (ptr: number, len: number, count: number, out: number) => void;
  readonly rollsums: (ptr: number, len: number, count: number, out: number) => void;
}

let instance: Instance | null | undefined;
let disabled = false;

/** The part of the WebAssembly API used here (the project's type libraries leave it out). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

function load(): Instance | null {
  try {
    const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    const bytes = moduleBytes();
    // The results are read through an Int32Array: wasm memory is little-endian, the view native.
    const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    if (!wasm || !littleEndian || !wasm.validate(bytes)) return null;
    const e = new wasm.Instance(new wasm.Module(bytes)).exports as { memory: { buffer: ArrayBuffer }; md4: Instance['md4']; rollsums: Instance['rollsums'] };
    return { mem: new Uint8Array(e.memory.buffer), words: new Int32Array(e.memory.buffer), md4: e.md4, rollsums: e.rollsums };
  } catch {
    return null;
  }
}

function get(): Instance | null {
  if (disabled) return null;
  if (instance === undefined) instance = load();
  return instance;
}

/** Whether whole blocks of this length go through the SIMD code (for tests and the builder). */
export function available(blockLen: number): boolean {
  return blockLen % 64 === 0 && blockLen <= MAX_BLOCK && blockLen >= 64 && get() !== null;
}

/** Turns the SIMD code off or on (tests compare both paths). */
export function setSimdEnabled(enabled: boolean): void {
  disabled = !enabled;
}

/**
 * Sums `count` whole blocks of `blockLen` bytes from data[off...] (count * blockLen <= INPUT_BYTES):
 * calls emit(byteSum, weightedSum, md4Words, md4Index) for each block in order, with the raw rollsum
 * parts (rollsum.ts's rollsumOfSums makes the digest) and its MD4 state. md4Words holds the block's a, b, c, d at md4Index, md4Index+4, +8, +12.
 */
export function sumBlocks(
  data: Uint8Array,
  off: number,
  blockLen: number,
  count: number,
  emit: (byteSum: number, weightedSum: number, md4Words: Int32Array, md4Index: number) => void,
): void {
  const w = get()!;
  w.mem.set(data.subarray(off, off + count * blockLen), 0);
  w.rollsums(0, blockLen, count, ROLL_OUT);
  w.md4(0, blockLen, count, MD4_OUT);
  const words = w.words;
  for (let k = 0; k < count; k++) {
    const r = (ROLL_OUT >> 2) + 2 * k;
    emit(words[r], words[r + 1], words, (MD4_OUT >> 2) + (k >> 2) * 16 + (k & 3));
  }
}
