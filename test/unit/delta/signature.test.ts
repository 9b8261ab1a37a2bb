import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffsiteError } from '../../../src/engine/errors';
import { md4 } from '../../../src/engine/delta/md4';
import { rollsum, rollsumDigestInt, rollsumInit, rollsumRollout, rollsumRotate, type RollsumState } from '../../../src/engine/delta/rollsum';
import { blockLengthFor, parseSignature, SIG_MAGIC_MD4, SignatureBuilder } from '../../../src/engine/delta/signature';
import * as simd from '../../../src/engine/delta/sigSimd';
import { prng, randomChunks, rdiffDefaultSignature, rdiffSignature, SAMPLES, seededBytes } from './rdiffTool';

const LIBRSYNC = path.join(SAMPLES, '07-librsync');

function sign(data: Buffer, blockLen: number, strongLen?: number, chunks?: Buffer[]): Buffer {
  const b = new SignatureBuilder(blockLen, strongLen);
  for (const c of chunks ?? [data]) b.update(c);
  return b.finish();
}

function formatError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(OffsiteError.is(e, 'format'), `expected a format error, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(e.hint, 'has a hint');
    return true;
  });
}

describe('delta/signature', () => {
  describe('blockLengthFor (duplicity get_block_size)', () => {
    const cases: [number, number][] = [
      [0, 512],
      [1, 512],
      [1_023_999, 512],
      [1_024_000, 512],
      [1_100_000, 512],
      [2_047_999, 512],
      [2_048_000, 1024],
      [3_071_999, 1024],
      [3_072_000, 1536],
      [4_095_999, 1536],
      [4_096_000, 2048],
      [33_566_777, 2048],
      [10 * 2 ** 30, 2048],
    ];
    for (const [size, want] of cases) {
      it(`${size} bytes -> ${want}`, () => assert.equal(blockLengthFor(size), want));
    }
  });

  describe('MD4 and rollsum', () => {
    it('MD4 matches the RFC 1320 test vectors', () => {
      const vectors: [string, string][] = [
        ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
        ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
        ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
        ['message digest', 'd9130a8164549fe818874806e1c7014b'],
        ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
        ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '043f8582f241db351ce627e153e7f0e4'],
        ['1234567890'.repeat(8), 'e33b4ddc9c38f2199c3e7b164fcc0536'],
      ];
      for (const [input, hex] of vectors) assert.equal(md4(Buffer.from(input)).toString('hex'), hex, JSON.stringify(input));
    });

    it('MD4 agrees with a second implementation (hash-wasm) at every length around the 64-byte padding edges', async () => {
      const { createMD4 } = await import('hash-wasm');
      const ref = await createMD4();
      const data = seededBytes(5000, 7);
      for (let len = 0; len < 300; len++) {
        ref.init();
        ref.update(data.subarray(3, 3 + len));
        assert.equal(md4(data.subarray(3, 3 + len)).toString('hex'), ref.digest('hex'), `length ${len}`);
      }
      for (const len of [511, 512, 513, 1024, 2048, 4095, 4096, 4097, 5000 - 9]) {
        ref.init();
        ref.update(data.subarray(9, 9 + len));
        assert.equal(md4(data.subarray(9, 9 + len)).toString('hex'), ref.digest('hex'), `length ${len}`);
      }
    });

    it('rollsum gives the hand-computed values of FORMAT §7.1', () => {
      assert.equal(rollsum(Buffer.alloc(16, 'A')), 0x33000600);
      assert.equal(rollsum(Buffer.alloc(16, 'B')), 0x33880610);
      assert.equal(rollsum(Buffer.from('DDDD')), 0x03de018c);
      assert.equal(rollsum(Buffer.alloc(0)), 0);
    });

    it('rolling a window by one byte, or shrinking it, equals computing it afresh', () => {
      const data = seededBytes(3000, 8);
      for (const n of [1, 2, 3, 5, 16, 512, 2048]) {
        const st: RollsumState = { s1: 0, s2: 0 };
        rollsumInit(data, 0, n, st);
        for (let p = 0; p + n < data.length; p++) {
          const fresh: RollsumState = { s1: 0, s2: 0 };
          rollsumInit(data, p, n, fresh);
          assert.equal(rollsumDigestInt(st), rollsumDigestInt(fresh), `window ${n} at ${p}`);
          rollsumRotate(st, data[p], data[p + n], n);
        }
        const tail: RollsumState = { s1: 0, s2: 0 };
        rollsumInit(data, data.length - n, n, tail);
        for (let len = n; len > 1; len--) {
          rollsumRollout(tail, data[data.length - len], len);
          assert.equal(rollsumDigestInt(tail) >>> 0, rollsum(data, data.length - len + 1), `shrunk to ${len - 1}`);
        }
      }
    });
  });

  describe('SignatureBuilder', () => {
    // 4,200,000 bytes gives 2048-byte blocks, so every block length duplicity uses is covered.
    const sizes = [0, 1, 511, 512, 513, 100_000, 2_048_000, 3_100_000, 4_200_000];
    for (const size of sizes) {
      const blockLen = blockLengthFor(size);
      it(`is byte-identical to rdiff for ${size} bytes (block ${blockLen}), whole and in random chunks`, () => {
        const data = seededBytes(size, size + 1);
        const want = rdiffSignature(data, blockLen);
        assert.equal(want.length, 12 + Math.ceil(size / blockLen) * 12);
        assert.ok(sign(data, blockLen).equals(want), 'one update()');
        assert.ok(sign(data, blockLen, undefined, randomChunks(data, size + 2, 3 * blockLen)).equals(want), 'random chunks');
      });
    }

    it('is byte-identical to rdiff for other block and strong-sum lengths', () => {
      const data = seededBytes(20_000, 99);
      for (const [b, s] of [[16, 8], [100, 4], [700, 16], [4096, 1], [1, 8], [64, 8], [1024, 16], [2048, 3]]) {
        const want = rdiffSignature(data, b, s);
        assert.ok(sign(data, b, s).equals(want), `-b ${b} -S ${s}`);
        assert.ok(sign(data, b, s, randomChunks(data, b, 50)).equals(want), `-b ${b} -S ${s} chunked`);
      }
    });

    it('matches text data and the fixtures of 07-librsync', () => {
      const basis = fs.readFileSync(path.join(LIBRSYNC, 'basis.txt'));
      assert.ok(sign(basis, 16).equals(fs.readFileSync(path.join(LIBRSYNC, 'basis.md4-rollsum-b16-s8.sig'))));
      assert.ok(sign(basis, 512).equals(fs.readFileSync(path.join(LIBRSYNC, 'basis.duplicity-style.sig'))));
      const text = Buffer.from('The quick brown fox jumps over the lazy dog.\n'.repeat(500));
      assert.ok(sign(text, 512).equals(rdiffSignature(text, 512)));
    });

    describe('whole blocks in WebAssembly SIMD (sigSimd.ts)', () => {
      afterEach(() => simd.setSimdEnabled(true));

      it('is used on this Node for every block length duplicity uses, and not for others', () => {
        for (const b of [512, 1024, 1536, 2048]) assert.equal(simd.available(b), true, `block ${b}`);
        for (const b of [16, 100, 700, 4096]) assert.equal(simd.available(b), false, `block ${b}`);
      });

      it('agrees with the scalar code: random data, block counts around groups of four, every strong length, any chunking', () => {
        const next = prng(4242);
        const rnd = (): number => (next() >>> 0) / 2 ** 32;
        for (let round = 0; round < 60; round++) {
          const blockLen = 64 * (1 + Math.floor(rnd() * 32));
          const strongLen = 1 + Math.floor(rnd() * 16);
          const size = Math.floor(rnd() * 11 * blockLen) + (round % 3 === 0 ? 0 : Math.floor(rnd() * blockLen));
          const data = seededBytes(size, round);
          simd.setSimdEnabled(false);
          const want = sign(data, blockLen, strongLen);
          simd.setSimdEnabled(true);
          assert.ok(sign(data, blockLen, strongLen).equals(want), `${size} bytes, block ${blockLen}, strong ${strongLen}`);
          assert.ok(sign(data, blockLen, strongLen, randomChunks(data, round, 5 * blockLen)).equals(want), `${size} bytes chunked`);
        }
      });

      it('agrees with the scalar code at the largest sums (all bytes 0xff) and at zero, and past one call of input', () => {
        for (const fill of [0xff, 0x00, 0x80]) {
          for (const blockLen of [512, 2048]) {
            const data = Buffer.alloc(simd.INPUT_BYTES * 2 + 3 * blockLen + 17, fill);
            simd.setSimdEnabled(false);
            const want = sign(data, blockLen);
            simd.setSimdEnabled(true);
            assert.ok(sign(data, blockLen).equals(want), `fill ${fill}, block ${blockLen}`);
          }
        }
      });
    });

    it("writes the empty file's signature as the bare header", () => {
      assert.equal(sign(Buffer.alloc(0), 512).toString('hex'), '727301360000020000000008');
    });

    it('refuses use after finish() and bad parameters', () => {
      const b = new SignatureBuilder(512);
      b.finish();
      assert.throws(() => b.update(Buffer.from('x')), (e: unknown) => OffsiteError.is(e, 'internal'));
      assert.throws(() => b.finish(), (e: unknown) => OffsiteError.is(e, 'internal'));
      assert.throws(() => new SignatureBuilder(0), (e: unknown) => OffsiteError.is(e, 'internal'));
      assert.throws(() => new SignatureBuilder(512, 17), (e: unknown) => OffsiteError.is(e, 'internal'));
      assert.throws(() => new SignatureBuilder(1.5), (e: unknown) => OffsiteError.is(e, 'internal'));
    });
  });

  describe('parseSignature', () => {
    it('reads the header and every entry of an rdiff signature', () => {
      const data = seededBytes(10_000, 5);
      const raw = rdiffSignature(data, 1024, 8);
      const sig = parseSignature(raw);
      assert.equal(sig.blockLen, 1024);
      assert.equal(sig.strongLen, 8);
      assert.equal(sig.blockCount, 10);
      for (let i = 0; i < 10; i++) {
        const block = data.subarray(i * 1024, (i + 1) * 1024);
        assert.equal(sig.weakSums[i] >>> 0, rollsum(block), `weak ${i}`);
        assert.ok(Buffer.from(sig.strongSums.subarray(i * 8, i * 8 + 8)).equals(md4(block).subarray(0, 8)), `strong ${i}`);
      }
    });

    it('accepts the empty signature and a 16-byte strong sum', () => {
      assert.equal(parseSignature(sign(Buffer.alloc(0), 512)).blockCount, 0);
      const sig = parseSignature(sign(seededBytes(3000, 1), 512, 16));
      assert.equal(sig.strongLen, 16);
      assert.equal(sig.blockCount, 6);
    });

    it('rejects what is not a well-formed MD4 + rollsum signature with a format error', () => {
      const good = sign(seededBytes(2000, 3), 512);
      formatError(() => parseSignature(Buffer.alloc(0)), /truncated/);
      formatError(() => parseSignature(good.subarray(0, 11)), /truncated/);
      formatError(() => parseSignature(good.subarray(0, good.length - 1)), /truncated/);
      formatError(() => parseSignature(rdiffDefaultSignature(seededBytes(100, 1))), /RabinKarp \+ BLAKE2/);
      formatError(() => parseSignature(Buffer.from('rs\x027\0\0\x02\0\0\0\0\x08', 'latin1')), /not a librsync signature/);
      formatError(() => parseSignature(Buffer.from('garbage, not a signature at all')), /not a librsync signature/);
      const zeroBlock = Buffer.from(good);
      zeroBlock.writeUInt32BE(0, 4);
      formatError(() => parseSignature(zeroBlock), /block length 0/);
      for (const bad of [0, 17, 0xffffffff]) {
        const s = Buffer.from(good);
        s.writeUInt32BE(bad, 8);
        formatError(() => parseSignature(s), /strong-sum length/);
      }
      assert.equal(good.readUInt32BE(0), SIG_MAGIC_MD4);
    });
  });
});
