import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { OffsiteError } from '../../../src/engine/errors';
import { DeltaEncoder } from '../../../src/engine/delta/delta';
import { applyDelta, bufferSource, fileHandleSource, type RandomAccessSource } from '../../../src/engine/delta/patch';
import { blockLengthFor, parseSignature, SignatureBuilder } from '../../../src/engine/delta/signature';
import { tempDir } from '../../helpers/tmp';
import { randomChunks, rdiffDelta, rdiffPatch, rdiffSignature, SAMPLES, seededBytes } from './rdiffTool';

const LIBRSYNC = path.join(SAMPLES, '07-librsync');

async function* stream(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

async function patch(basis: RandomAccessSource | Buffer, delta: Buffer | Buffer[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  const src = Buffer.isBuffer(basis) ? bufferSource(basis) : basis;
  const n = await applyDelta(src, stream(Array.isArray(delta) ? delta : [delta]), (c) => {
    parts.push(Buffer.from(c));
  });
  const out = Buffer.concat(parts);
  assert.equal(n, out.length, 'returns the number of bytes written');
  return out;
}

function encode(base: Buffer, next: Buffer, blockLen = blockLengthFor(base.length), chunk = 1 << 20): Buffer {
  const sb = new SignatureBuilder(blockLen);
  sb.update(base);
  const e = new DeltaEncoder(parseSignature(sb.finish()));
  const parts: Buffer[] = [];
  for (let o = 0; o < next.length; o += chunk) parts.push(e.update(next.subarray(o, o + chunk)));
  parts.push(e.finish());
  return Buffer.concat(parts);
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const MAGIC = '72730236';

async function rejects(delta: Buffer | Buffer[], code: 'format' | 'integrity', pattern: RegExp, basis = Buffer.alloc(100, 7)): Promise<void> {
  await assert.rejects(patch(basis, delta), (e: unknown) => {
    assert.ok(OffsiteError.is(e, code), `expected ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(e.hint);
    return true;
  });
}

describe('delta/applyDelta', () => {
  it('applies 07-librsync/new.delta to basis.txt', async () => {
    const basis = fs.readFileSync(path.join(LIBRSYNC, 'basis.txt'));
    const out = await patch(basis, fs.readFileSync(path.join(LIBRSYNC, 'new.delta')));
    assert.ok(out.equals(fs.readFileSync(path.join(LIBRSYNC, 'new.txt'))));
    assert.equal(out.toString(), `${'A'.repeat(16)}xyz${'C'.repeat(16)}${'B'.repeat(16)}DDDD!`);
  });

  describe("rdiff's deltas (made from an MD4 signature)", () => {
    const base = seededBytes(400_000, 1);
    const edits: Record<string, Buffer> = {
      insertion: Buffer.concat([base.subarray(0, 7000), Buffer.from('inserted'), base.subarray(7000)]),
      deletion: Buffer.concat([base.subarray(0, 90_000), base.subarray(95_000)]),
      'in-place edit': Buffer.concat([base.subarray(0, 200_000), seededBytes(3, 2), base.subarray(200_003)]),
      append: Buffer.concat([base, seededBytes(100_000, 3)]),
      truncation: base.subarray(0, 1234),
      'empty new file': Buffer.alloc(0),
      random: seededBytes(150_000, 4),
      'reordered halves': Buffer.concat([base.subarray(200_000), base.subarray(0, 200_000)]),
    };
    const sig = rdiffSignature(base, 512);
    for (const [name, next] of Object.entries(edits)) {
      it(`${name}: from a buffer, and from a file with the delta in random pieces`, async () => {
        const delta = rdiffDelta(sig, next);
        assert.ok((await patch(base, delta)).equals(next), 'buffer basis');
        const file = path.join(tempDir(), 'basis');
        fs.writeFileSync(file, base, { mode: 0o600 });
        const fh = await fs.promises.open(file, 'r');
        try {
          assert.ok((await patch(fileHandleSource(fh), randomChunks(delta, next.length + 1, 3000))).equals(next), 'file basis');
        } finally {
          await fh.close();
        }
      });
    }

    it('rdiff deltas against an empty basis, and with other block sizes', async () => {
      const next = seededBytes(70_000, 5);
      assert.ok((await patch(Buffer.alloc(0), rdiffDelta(rdiffSignature(Buffer.alloc(0), 512), next))).equals(next));
      for (const b of [16, 1024, 2048]) {
        const d = rdiffDelta(rdiffSignature(base, b), edits.insertion);
        assert.ok((await patch(base, d)).equals(edits.insertion), `block ${b}`);
      }
    });

    it('a delta fed one byte at a time', async () => {
      const small = seededBytes(3000, 6);
      const next = Buffer.concat([small.subarray(0, 1000), Buffer.from('zz'), small.subarray(1500)]);
      const delta = rdiffDelta(rdiffSignature(small, 512), next);
      assert.ok((await patch(small, [...delta].map((b) => Buffer.of(b)))).equals(next));
    });
  });

  it('round-trips our own deltas for random edit scripts (property)', async () => {
    const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 3000 }), ins: fc.uint8Array({ maxLength: 2000 }) });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 30_000 }), fc.array(edit, { maxLength: 6 }), fc.constantFrom(16, 64, 512), fc.integer({ min: 1, max: 5000 }), async (size, script, blockLen, chunk) => {
        const base = seededBytes(size, size + 1);
        let next = Buffer.from(base);
        for (const e of script) {
          const at = next.length ? e.at % next.length : 0;
          next = Buffer.concat([next.subarray(0, at), Buffer.from(e.ins), next.subarray(at + e.del)]);
        }
        const delta = encode(base, next, blockLen, chunk);
        assert.ok((await patch(base, randomChunks(delta, chunk, 4000))).equals(next));
      }),
      { numRuns: 150, seed: 20260101 },
    );
  });

  it('our deltas for large files patch back, through rdiff and through applyDelta', async () => {
    const base = seededBytes(4_200_000, 7);
    const next = Buffer.concat([base.subarray(0, 1_000_000), seededBytes(5000, 8), base.subarray(1_000_100, 3_000_000), base.subarray(3_500_000)]);
    const delta = encode(base, next);
    assert.ok(rdiffPatch(base, delta).equals(next));
    assert.ok((await patch(base, randomChunks(delta, 9, 50_000))).equals(next));
  });

  it('decodes every opcode width (all 16 COPY forms, LITERAL immediate/N1/N2/N4/N8), like rdiff patch', async () => {
    const basis = seededBytes(300, 10);
    const lit = (op: string, len: string, n: number) => hex(op + len + Buffer.alloc(n, 0x61 + n % 26).toString('hex'));
    const widths = [1, 2, 4, 8];
    const parts: Buffer[] = [hex(MAGIC), lit('05', '', 5), lit('40', '', 64), lit('41', '41', 0x41), lit('42', '0102', 0x102), lit('43', '00000007', 7), lit('44', '0000000000000003', 3)];
    const want: Buffer[] = [Buffer.alloc(5, 0x61 + 5), Buffer.alloc(64, 0x61 + 64 % 26), Buffer.alloc(0x41, 0x61 + 0x41 % 26), Buffer.alloc(0x102, 0x61 + 0x102 % 26), Buffer.alloc(7, 0x61 + 7), Buffer.alloc(3, 0x61 + 3)];
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        const pos = 10 + 4 * i + j;
        const len = 1 + 3 * j + i;
        const cmd = Buffer.alloc(1 + widths[i] + widths[j]);
        cmd[0] = 0x45 + 4 * i + j;
        cmd.writeUIntBE(pos, 1 + widths[i] - 1, 1);
        cmd.writeUIntBE(len, 1 + widths[i] + widths[j] - 1, 1);
        parts.push(cmd);
        want.push(basis.subarray(pos, pos + len));
      }
    }
    parts.push(hex('00'));
    const delta = Buffer.concat(parts);
    const expected = Buffer.concat(want);
    assert.ok((await patch(basis, delta)).equals(expected));
    assert.ok((await patch(basis, randomChunks(delta, 11, 3))).equals(expected), 'split everywhere');
    assert.ok(rdiffPatch(basis, delta).equals(expected), 'rdiff agrees');
  });

  it('reads the basis by ranges from a file: ascending, backward, across the read-ahead, large, up to the end', async () => {
    const base = seededBytes(5 << 20, 12);
    const file = path.join(tempDir(), 'basis');
    fs.writeFileSync(file, base, { mode: 0o600 });
    const copies: [number, number][] = [[0, 512], [512, 512], [1024, 100], [130_000, 2000], [10, 20], [131_000, 300_000], [1_000_000, 3_000_000], [base.length - 1, 1], [base.length - 70_000, 70_000]];
    const delta = Buffer.concat([hex(MAGIC), ...copies.map(([p, l]) => { const b = Buffer.alloc(9); b[0] = 0x4f; b.writeUInt32BE(p, 1); b.writeUInt32BE(l, 5); return b; }), hex('00')]);
    const fh = await fs.promises.open(file, 'r');
    try {
      const out = await patch(fileHandleSource(fh), delta);
      assert.ok(out.equals(Buffer.concat(copies.map(([p, l]) => base.subarray(p, p + l)))));
      const src = fileHandleSource(fh);
      assert.equal((await src.read(base.length - 10, 100)).length, 10, 'short read at the end');
      assert.equal((await src.read(base.length + 5, 10)).length, 0, 'empty read past the end');
    } finally {
      await fh.close();
    }
  });

  it('awaits each write, in order, in bounded pieces, without reading the delta far ahead', async () => {
    const basis = seededBytes(3 << 20, 13);
    const hugeLiteral = seededBytes(40 << 20, 14);
    const head = Buffer.concat([hex(MAGIC), hex('43'), Buffer.from([0x02, 0x80, 0x00, 0x00])]); // LITERAL_N4 40 MiB
    const tail = hex('4f 00000000 00300000 00'); // COPY_N4_N4(0, 3 MiB), END
    let consumed = 0;
    let written = 0;
    let inWrite = false;
    let maxPiece = 0;
    let maxAhead = 0;
    async function* delta(): AsyncGenerator<Buffer> {
      const all = [head, ...randomChunks(hugeLiteral, 15, 64 * 1024), tail];
      for (const c of all) {
        consumed += c.length;
        maxAhead = Math.max(maxAhead, consumed - written);
        yield c;
      }
    }
    const out: Buffer[] = [];
    const n = await applyDelta(bufferSource(basis), delta(), async (c) => {
      assert.ok(!inWrite, 'write calls never overlap');
      inWrite = true;
      maxPiece = Math.max(maxPiece, c.length);
      out.push(c);
      await new Promise((r) => setImmediate(r));
      written += c.length;
      inWrite = false;
    });
    assert.equal(n, hugeLiteral.length + basis.length);
    assert.ok(Buffer.concat(out).equals(Buffer.concat([hugeLiteral, basis])));
    assert.ok(maxPiece <= 1 << 20, `largest write ${maxPiece}`);
    assert.ok(maxAhead <= 512 * 1024, `read at most ${maxAhead} bytes ahead of the writes`);
  });

  describe('malformed deltas', () => {
    it('bad magic', async () => {
      await rejects(hex('72730136 00'), 'format', /Not a librsync delta: magic 0x72730136/);
      await rejects(Buffer.from('PK\x03\x04 a zip file'), 'format', /Not a librsync delta/);
    });
    it('truncated anywhere', async () => {
      await rejects(Buffer.alloc(0), 'format', /truncated.*magic/);
      await rejects(hex('727302'), 'format', /truncated/);
      await rejects(hex(MAGIC), 'format', /truncated.*command/);
      await rejects(hex(`${MAGIC} 03 6162`), 'format', /truncated.*LITERAL of 3 bytes/);
      await rejects(hex(`${MAGIC} 42 00`), 'format', /truncated.*LITERAL length/);
      await rejects(hex(`${MAGIC} 4f 00000000`), 'format', /truncated.*COPY length/);
      await rejects(hex(`${MAGIC} 45 00 10`), 'format', /truncated.*command/, Buffer.alloc(100));
      await rejects([hex(MAGIC), hex('05 61'), hex('6263')], 'format', /truncated/);
    });
    it('reserved opcodes', async () => {
      await rejects(hex(`${MAGIC} 55 00`), 'format', /reserved opcode 0x55 at byte 4/);
      await rejects(hex(`${MAGIC} 01 61 ff 00`), 'format', /reserved opcode 0xff at byte 6/);
    });
    it('zero-length commands, which librsync also refuses', async () => {
      await rejects(hex(`${MAGIC} 41 00 00`), 'format', /LITERAL of length 0/);
      await rejects(hex(`${MAGIC} 45 00 00 00`), 'format', /COPY of length 0/);
    });
    it('data after END', async () => {
      await rejects(hex(`${MAGIC} 00 00`), 'format', /data after its END/);
      await rejects([hex(`${MAGIC} 01 61 00`), Buffer.alloc(0), hex('ff')], 'format', /data after its END/);
    });
    it('impossible 8-byte numbers', async () => {
      await rejects(hex(`${MAGIC} 51 ffffffffffffffff 01 00`), 'format', /impossible COPY position/);
    });
    it('a COPY past the end of the basis is an integrity error', async () => {
      await rejects(hex(`${MAGIC} 45 60 05 00`), 'integrity', /copies bytes 96\.\.101 of the previous version, past its end at byte 100/);
      await rejects(hex(`${MAGIC} 45 c8 05 00`), 'integrity', /copies bytes 200\.\.205 of the previous version, past its end$/);
    });
  });

  it('passes on errors from the delta stream and from write, and closes the stream', async () => {
    let closed = false;
    async function* failing(): AsyncGenerator<Buffer> {
      try {
        yield hex(`${MAGIC} 02 6162`);
        throw new Error('network down');
      } finally {
        closed = true;
      }
    }
    await assert.rejects(applyDelta(bufferSource(Buffer.alloc(0)), failing(), () => undefined), /network down/);
    assert.ok(closed);
    closed = false;
    async function* endless(): AsyncGenerator<Buffer> {
      try {
        yield hex(MAGIC);
        for (;;) yield Buffer.concat([hex('40'), Buffer.alloc(64, 1)]);
      } finally {
        closed = true;
      }
    }
    let writes = 0;
    await assert.rejects(applyDelta(bufferSource(Buffer.alloc(0)), endless(), () => {
      if (++writes === 3) throw new Error('disk full');
    }), /disk full/);
    assert.ok(closed, 'the delta stream is closed when writing fails');
  });
});
