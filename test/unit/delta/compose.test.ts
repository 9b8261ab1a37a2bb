// Composing a chain of librsync deltas over a snapshot and writing the result once: equal to applying
// the deltas one after another (rdiff's patch), for deltas made by rdiff and by hand; the snapshot read
// as a stream when the result reads it forward, from a temp copy otherwise; literals spooled to a temp
// file past the memory limit; fragmented versions written out as a new basis.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { patchThroughDeltas, type ComposeOptions } from '../../../src/engine/delta/compose';
import { OffsiteError } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { prng, randomChunks, rdiffDelta, rdiffPatch, rdiffSignature, seededBytes } from './rdiffTool';

async function* stream(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

/** A snapshot stream that records how far it was read. */
function tracked(data: Buffer, seed: number) {
  const state = { read: 0, done: false };
  const chunks = randomChunks(data, seed, 70_000);
  const it = (async function* () {
    for (const c of chunks) {
      state.read += c.length;
      yield c;
    }
    state.done = true;
  })();
  return { it, state };
}

interface Run {
  out: Buffer;
  temps: string[];
  snapshot: { read: number; done: boolean };
}

async function compose(snapshot: Buffer, deltas: Buffer[], opts: Partial<ComposeOptions> = {}, seed = 1): Promise<Run> {
  const dir = tempDir('offsite-compose-');
  const temps: string[] = [];
  const tempFile = () => {
    const f = path.join(dir, `t${temps.length}`);
    temps.push(f);
    return f;
  };
  const snap = tracked(snapshot, seed);
  const parts: Buffer[] = [];
  const n = await patchThroughDeltas(
    snap.it,
    deltas.map((d, i) => stream(randomChunks(d, seed + i + 1, 5000))),
    async (c) => {
      parts.push(Buffer.from(c));
    },
    { tempFile, ...opts },
  );
  const out = Buffer.concat(parts);
  assert.equal(n, out.length, 'returns the bytes written');
  for (const t of temps) assert.equal(fs.existsSync(t), false, `temp file ${t} removed`);
  return { out, temps, snapshot: snap.state };
}

/** Versions made by `edit`, and rdiff's deltas between consecutive ones (block length 512). */
function chain(v0: Buffer, days: number, edit: (v: Buffer, day: number) => Buffer) {
  const versions = [v0];
  const deltas: Buffer[] = [];
  for (let d = 1; d <= days; d++) {
    const prev = versions[d - 1];
    const next = edit(prev, d);
    deltas.push(rdiffDelta(rdiffSignature(prev, 512), next));
    versions.push(next);
  }
  return { versions, deltas };
}

/** rdiff's own result of applying the deltas one by one. */
function sequential(v0: Buffer, deltas: Buffer[]): Buffer {
  let v = v0;
  for (const d of deltas) v = rdiffPatch(v, d);
  return v;
}

/** A day of the benchmark's database file: an overwrite in the middle and an append. */
function appendAndPatch(v: Buffer, day: number): Buffer {
  const out = Buffer.concat([v, seededBytes(20_000 + day * 100, 100 + day)]);
  seededBytes(4096, 200 + day).copy(out, Math.floor(v.length * 0.37) + day * 8192);
  return out;
}

/** Blocks moved around, some cut, some duplicated, new bytes between. */
function shuffle(v: Buffer, day: number): Buffer {
  const rnd = uniform(300 + day);
  const parts: Buffer[] = [];
  for (let i = 0; i < 12; i++) {
    const start = Math.floor(rnd() * (v.length - 8000));
    parts.push(v.subarray(start, start + 1000 + Math.floor(rnd() * 7000)));
    if (i % 3 === 0) parts.push(seededBytes(300, 400 + day * 20 + i));
  }
  return Buffer.concat(parts);
}

/** A pseudo-random number in [0, 1). */
function uniform(seed: number): () => number {
  const next = prng(seed);
  return () => next() / 2 ** 32;
}

describe('delta/compose: one pass over a snapshot and its deltas', function () {
  this.timeout(60_000);

  it('appends and in-place edits over ten sets: equal to rdiff patching in turn, the snapshot read once as a stream, no temp file', async () => {
    const v0 = seededBytes(400_000, 1);
    const { versions, deltas } = chain(v0, 9, appendAndPatch);
    assert.ok(sequential(v0, deltas).equals(versions[9]));
    const r = await compose(v0, deltas);
    assert.ok(r.out.equals(versions[9]));
    assert.deepEqual(r.temps, []);
    assert.equal(r.snapshot.read, v0.length, 'the snapshot was read up to its end');
  });

  it('moved, cut and repeated blocks: read from a temp copy of the snapshot; equal to rdiff in turn', async () => {
    const v0 = seededBytes(300_000, 2);
    const { versions, deltas } = chain(v0, 5, shuffle);
    const r = await compose(v0, deltas);
    assert.ok(r.out.equals(versions[5]));
    assert.ok(r.out.equals(sequential(v0, deltas)));
    assert.equal(r.temps.length, 1, 'one temp file: the snapshot');
  });

  it('one delta, and none', async () => {
    const v0 = seededBytes(200_000, 3);
    const { versions, deltas } = chain(v0, 1, appendAndPatch);
    assert.ok((await compose(v0, deltas)).out.equals(versions[1]));
    const plain = await compose(v0, []);
    assert.ok(plain.out.equals(v0));
    assert.deepEqual(plain.temps, []);
    assert.ok((await compose(Buffer.alloc(0), [])).out.equals(Buffer.alloc(0)));
  });

  it('spools literals to a temp file past the memory limit', async () => {
    const v0 = seededBytes(100_000, 4);
    // Each day adds 300 KB of new bytes: more than one 256 KiB spool block each.
    const { versions, deltas } = chain(v0, 4, (v, d) => Buffer.concat([v.subarray(0, 50_000), seededBytes(300_000, 500 + d), v.subarray(50_000)]));
    const r = await compose(v0, deltas, { spoolMemory: 1 });
    assert.ok(r.out.equals(versions[4]));
    assert.equal(r.temps.length, 1, 'the spool went to a file');
  });

  it('writes a too fragmented version out as the new basis and goes on from it', async () => {
    const v0 = seededBytes(200_000, 5);
    const { versions, deltas } = chain(v0, 6, (v, d) => (d % 2 ? shuffle(v, d) : appendAndPatch(v, d)));
    const r = await compose(v0, deltas, { maxPieces: 4 });
    assert.ok(r.out.equals(versions[6]));
    assert.ok(r.temps.length >= 3, `snapshot copy and rewritten versions (${r.temps.length} temp files)`);
  });

  it('random edit chains match rdiff applied in turn', async () => {
    for (let seed = 10; seed < 16; seed++) {
      const rnd = uniform(seed);
      const v0 = seededBytes(20_000 + Math.floor(rnd() * 60_000), seed);
      const { deltas } = chain(v0, 1 + Math.floor(rnd() * 6), (v, d) => {
        const r2 = uniform(seed * 100 + d);
        const cut = Math.floor(r2() * v.length);
        const ops = [
          () => Buffer.concat([v.subarray(cut), v.subarray(0, cut)]),
          () => Buffer.concat([v.subarray(0, cut), seededBytes(Math.floor(r2() * 5000) + 1, seed + d), v.subarray(cut)]),
          () => v.subarray(0, cut),
          () => Buffer.concat([v, v.subarray(0, Math.min(cut, 3000))]),
          () => shuffle(v.length > 9000 ? v : Buffer.concat([v, seededBytes(9000, d)]), d),
        ];
        return ops[Math.floor(r2() * ops.length)]();
      });
      const r = await compose(v0, deltas, { maxPieces: seed % 2 ? 8 : undefined, spoolMemory: seed % 3 ? 1 : undefined }, seed);
      assert.ok(r.out.equals(sequential(v0, deltas)), `seed ${seed}`);
    }
  });

  it('a COPY past the end of the snapshot or of an intermediate version is an integrity error', async () => {
    const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
    // COPY 0..200 (N1 position, N1 length), END
    const copy200 = hex('72730236 45 00 c8 00');
    await assert.rejects(compose(seededBytes(100, 6), [copy200]), (e) => OffsiteError.is(e, 'integrity'));
    // The first delta leaves 3 bytes; the second copies 10 of them.
    const lit3 = hex('72730236 03 616263 00');
    const copy10 = hex('72730236 45 00 0a 00');
    await assert.rejects(compose(seededBytes(100, 6), [lit3, copy10]), (e) => OffsiteError.is(e, 'integrity'));
    // And a bad delta is a format error, as in applyDelta.
    await assert.rejects(compose(seededBytes(100, 6), [hex('72730236 55 00')]), (e) => OffsiteError.is(e, 'format'));
  });
});
