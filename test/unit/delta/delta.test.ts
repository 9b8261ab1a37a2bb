import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffsiteError } from '../../../src/engine/errors';
import { DELTA_MAGIC, DeltaEncoder, MAX_LITERAL_RUN } from '../../../src/engine/delta/delta';
import { md4 } from '../../../src/engine/delta/md4';
import { blockLengthFor, parseSignature, SignatureBuilder } from '../../../src/engine/delta/signature';
import { decodeDelta, randomChunks, rdiffDelta, rdiffPatch, rdiffSignature, SAMPLES, seededBytes, summarize } from './rdiffTool';

const LIBRSYNC = path.join(SAMPLES, '07-librsync');

function sign(data: Buffer, blockLen = blockLengthFor(data.length), strongLen?: number): Buffer {
  const b = new SignatureBuilder(blockLen, strongLen);
  b.update(data);
  return b.finish();
}

function encode(sig: Buffer, chunks: Buffer[], expectedSize?: number): Buffer {
  const e = new DeltaEncoder(parseSignature(sig), expectedSize);
  const parts = chunks.map((c) => e.update(c));
  parts.push(e.finish());
  return Buffer.concat(parts);
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('delta/DeltaEncoder', () => {
  const old = seededBytes(300_000, 11);
  const edited = Buffer.from(old);
  edited.fill(0x55, 100_000, 100_100);
  const scenarios: Record<string, Buffer> = {
    unchanged: old,
    'insertion (5 bytes at 1000)': Buffer.concat([old.subarray(0, 1000), Buffer.from('hello'), old.subarray(1000)]),
    'deletion (100 bytes at 50000)': Buffer.concat([old.subarray(0, 50_000), old.subarray(50_100)]),
    'in-place edit (100 bytes at 100000)': edited,
    'append (70000 bytes)': Buffer.concat([old, seededBytes(70_000, 12)]),
    'truncation (to 123457 bytes)': old.subarray(0, 123_457),
    'empty new file': Buffer.alloc(0),
    'random new content': seededBytes(200_000, 13),
    'halves swapped': Buffer.concat([old.subarray(150_000), old.subarray(0, 150_000)]),
    'prefix added and tail cut': Buffer.concat([seededBytes(777, 14), old.subarray(0, 250_001)]),
    'short last block moved to the front': Buffer.concat([old.subarray(299_520), old.subarray(0, 299_520)]),
  };
  const oldSig = sign(old);

  for (const [name, data] of Object.entries(scenarios)) {
    it(`${name}: byte-identical to rdiff delta, and rdiff patch rebuilds the file`, () => {
      const ours = encode(oldSig, [data]);
      assert.ok(ours.equals(rdiffDelta(oldSig, data)), 'same bytes as rdiff delta');
      assert.ok(rdiffPatch(old, ours).equals(data), 'rdiff patch gives the new file');
      assert.ok(encode(oldSig, randomChunks(data, data.length, 5000)).equals(ours), 'chunking does not change the delta');
    });
  }

  it('the size hint only sizes the scan buffer: the same delta for a hint of 0, the size, or far too small', () => {
    for (const [name, data] of Object.entries(scenarios)) {
      const ours = encode(oldSig, [data]);
      // 2.5 MB read as the backup reads (1 MiB pieces) with a 20 KB hint: a file that grew after its lstat.
      for (const hint of [0, 1, data.length, 20_000]) assert.ok(encode(oldSig, [data], hint).equals(ours), `${name}, hint ${hint}`);
    }
    const grown = Buffer.concat([old, seededBytes(2_500_000, 22), old.subarray(0, 100_000)]);
    const whole = encode(oldSig, [grown]);
    assert.ok(rdiffPatch(old, whole).equals(grown));
    const pieces = [grown.subarray(0, 1 << 20), grown.subarray(1 << 20, 2 << 20), grown.subarray(2 << 20)];
    assert.ok(encode(oldSig, pieces, 20_000).equals(whole));
  });

  it('empty old file: all literal, which rdiff patch applies', () => {
    const data = seededBytes(100_000, 21);
    const sig = sign(Buffer.alloc(0));
    const ours = encode(sig, randomChunks(data, 3, 4000));
    assert.deepEqual(summarize(decodeDelta(ours)), ['LIT 32768', 'LIT 32768', 'LIT 32768', 'LIT 1696']);
    assert.ok(rdiffPatch(Buffer.alloc(0), ours).equals(data));
    assert.equal(encode(sig, []).toString('hex'), '7273023600', 'empty to empty');
  });

  it('text with scattered edits, for every block length duplicity uses', () => {
    for (const size of [100_000, 2_100_000, 3_100_000, 4_200_000]) {
      const base = Buffer.from(Array.from({ length: Math.ceil(size / 40) }, (_, i) => `line ${i} of a text file here\n`).join('').slice(0, size));
      const lines = base.toString('latin1').split('\n');
      for (let i = 7; i < lines.length; i += 997) lines[i] = `changed ${i}`;
      lines.splice(1234, 3);
      lines.splice(40_000, 0, 'an inserted line');
      const next = Buffer.from(lines.join('\n'), 'latin1');
      const sig = sign(base);
      const ours = encode(sig, randomChunks(next, size, 70_000));
      assert.ok(rdiffPatch(base, ours).equals(next), `size ${size}`);
      assert.ok(ours.length < next.length / 4, `delta of ${ours.length} bytes is small`);
    }
  });

  it('repeated blocks: continues the matched run, so the delta is smaller than rdiff’s and still patches', () => {
    const zeros = Buffer.alloc(100_000);
    const longer = Buffer.alloc(100_100);
    const sig = sign(zeros);
    const ours = encode(sig, [longer]);
    const theirs = rdiffDelta(sig, longer);
    assert.ok(rdiffPatch(zeros, ours).equals(longer));
    assert.ok(ours.length < theirs.length, `${ours.length} < ${theirs.length}`);
    assert.deepEqual(summarize(decodeDelta(ours)).slice(0, 1), ['COPY 0 99840']);
  });

  it('matches signatures with other block and strong-sum lengths (made by rdiff)', () => {
    const base = seededBytes(50_000, 31);
    const next = Buffer.concat([base.subarray(0, 20_000), Buffer.from('xyz'), base.subarray(20_000)]);
    for (const [b, s] of [[16, 8], [700, 16], [2048, 4], [100, 1]]) {
      const sig = rdiffSignature(base, b, s);
      const ours = encode(sig, [next]);
      assert.ok(rdiffPatch(base, ours).equals(next), `-b ${b} -S ${s}`);
      // A 1-byte strong sum collides often, so only the longer ones must equal rdiff's choice.
      if (s >= 4) assert.ok(ours.equals(rdiffDelta(sig, next)), `-b ${b} -S ${s} same as rdiff`);
    }
  });

  it('short strong sums: a block whose 1-byte MD4 prefix collides with the expected block is not taken for it', () => {
    const base = seededBytes(4096, 81);
    const target = md4(base.subarray(512, 1024))[0];
    let impostor: Buffer = Buffer.alloc(0);
    for (let seed = 82; ; seed++) {
      impostor = seededBytes(512, seed);
      if (md4(impostor)[0] === target) break;
    }
    const next = Buffer.concat([base.subarray(0, 512), impostor, base.subarray(1024)]);
    const sig = rdiffSignature(base, 512, 1);
    const ours = encode(sig, [next]);
    assert.ok(rdiffPatch(base, ours).equals(next));
    assert.ok(ours.equals(rdiffDelta(sig, next)));
  });

  describe('the hand-decoded examples of FORMAT §7.2', () => {
    it('07-librsync/new.delta', () => {
      const basis = fs.readFileSync(path.join(LIBRSYNC, 'basis.txt'));
      const next = fs.readFileSync(path.join(LIBRSYNC, 'new.txt'));
      const ours = encode(fs.readFileSync(path.join(LIBRSYNC, 'basis.md4-rollsum-b16-s8.sig')), [next]);
      assert.equal(ours.toString('hex'), hex('72730236 450010 03 78797a 452010 451010 05 4444444421 00').toString('hex'));
      assert.ok(ours.equals(fs.readFileSync(path.join(LIBRSYNC, 'new.delta'))));
      assert.ok(rdiffPatch(basis, ours).equals(next));
    });

    it('a file shorter than one block never matches: one LITERAL', () => {
      const readme = Buffer.from('x'.repeat(55));
      const ours = encode(sign(Buffer.from('y'.repeat(61))), [readme]);
      assert.equal(ours.toString('hex'), `7273023637${readme.toString('hex')}00`);
    });

    it('an unchanged 5000-byte file: COPY_N1_N2(0, 5000)', () => {
      const blob = seededBytes(5000, 41);
      assert.equal(encode(sign(blob), [blob]).toString('hex'), '7273023646001388' + '00');
    });

    it('100 bytes overwritten at 500,000 of a 1,100,000-byte file', () => {
      const base = seededBytes(1_100_000, 42);
      const next = Buffer.from(base);
      seededBytes(100, 43).copy(next, 500_000);
      const ours = encode(sign(base), randomChunks(next, 44, 100_000));
      assert.equal(ours.length, 4 + 6 + 3 + 512 + 9 + 1);
      assert.equal(ours.subarray(0, 13).toString('hex'), '72730236 47 00 0007a000 42 0200'.replace(/ /g, ''));
      assert.ok(ours.subarray(13, 13 + 512).equals(next.subarray(499_712, 500_224)));
      assert.equal(ours.subarray(525).toString('hex'), '4f 0007a200 000926e0 00'.replace(/ /g, ''));
    });

    it('70,000 bytes appended: literal runs cut at 32 KiB with LITERAL_N2', () => {
      const base = seededBytes(100_352 + 300, 45);
      const next = Buffer.concat([base, seededBytes(70_000, 46)]);
      const cmds = decodeDelta(encode(sign(base), [next]));
      assert.deepEqual(summarize(cmds), ['COPY 0 100352', 'LIT 32768', 'LIT 32768', 'LIT 4764']);
      assert.deepEqual(cmds.map((c) => c.opcode), [0x47, 0x42, 0x42, 0x42]);
    });
  });

  it('uses the smallest opcode widths', () => {
    // Literal of 64 bytes is immediate, 65 takes LITERAL_N1, 300 LITERAL_N2; copies at growing offsets.
    const base = seededBytes(600_000, 51);
    const sig = sign(base, 16);
    const next = Buffer.concat([
      seededBytes(64, 52), base.subarray(0, 16), // immediate literal, COPY_N1_N1
      seededBytes(65, 53), base.subarray(16, 16 + 304), // LITERAL_N1, COPY_N1_N2
      seededBytes(300, 54), base.subarray(4096, 4096 + 16), // LITERAL_N2, COPY_N2_N1
      seededBytes(1, 55), base.subarray(70_000, 70_000 + 70_000), // COPY_N4_N4
    ]);
    const cmds = decodeDelta(encode(sig, [next]));
    assert.deepEqual(cmds.map((c) => c.opcode.toString(16)), ['40', '45', '41', '46', '42', '49', '1', '4f']);
    assert.deepEqual(summarize(cmds), ['LIT 64', 'COPY 0 16', 'LIT 65', 'COPY 16 304', 'LIT 300', 'COPY 4096 16', 'LIT 1', 'COPY 70000 70000']);
    assert.ok(rdiffPatch(base, encode(sig, [next])).equals(next));
  });

  it('streams: output comes as input arrives, and the magic first', () => {
    const e = new DeltaEncoder(parseSignature(sign(old)));
    assert.equal(e.update(Buffer.alloc(0)).toString('hex'), DELTA_MAGIC.toString(16));
    const fresh = seededBytes(4 << 20, 61);
    let total = 4;
    for (let o = 0; o < fresh.length; o += 1 << 20) {
      const out = e.update(fresh.subarray(o, o + (1 << 20)));
      // Everything but the pending literal run (<= 32 KiB) and one window is already out.
      assert.ok(out.length >= (1 << 20) - MAX_LITERAL_RUN - 2048, `chunk at ${o} gave ${out.length} bytes`);
      total += out.length;
    }
    const last = e.finish();
    assert.ok(last.length <= MAX_LITERAL_RUN + 2048 + 16);
    assert.equal(last[last.length - 1], 0);
    assert.equal(total + last.length, 4 + fresh.length + 3 * Math.ceil(fresh.length / MAX_LITERAL_RUN) + 1);
  });

  it('one-byte updates give the same delta as one update', () => {
    const base = seededBytes(5000, 71);
    const next = Buffer.concat([base.subarray(0, 2000), Buffer.from('12345'), base.subarray(2100)]);
    const sig = sign(base);
    const bytes = [...next].map((b) => Buffer.of(b));
    assert.ok(encode(sig, bytes).equals(encode(sig, [next])));
  });

  it('refuses use after finish()', () => {
    const e = new DeltaEncoder(parseSignature(sign(Buffer.alloc(0))));
    e.finish();
    assert.throws(() => e.update(Buffer.from('x')), (err: unknown) => OffsiteError.is(err, 'internal'));
    assert.throws(() => e.finish(), (err: unknown) => OffsiteError.is(err, 'internal'));
  });
});
