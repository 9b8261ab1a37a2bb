// The block framing shared by the stat cache and the folder listings (blockFile.ts): blocks deflated in
// the threadpool are written in the order they were added, whatever order the pool finishes them in;
// a write error is reported, never lost; a writer that is closed writes nothing more; the reader gives
// the same blocks and the same verdicts on damage whether its read-ahead was ready or not.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlockReader, BlockWriter, encodeBlock, encodeEnd } from '../../../src/engine/scan/blockFile';
import { tempDir } from '../../helpers/tmp';

/** Blocks that deflate at very different speeds (random, text, zeros) and sizes. */
function blocks(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const size = 1000 + ((i * 7919) % 300_000);
    if (i % 3 === 0) out.push(randomBytes(size));
    else if (i % 3 === 1) out.push(Buffer.from(`block ${i} `.repeat(size / 8).slice(0, size)));
    else out.push(Buffer.alloc(size, i));
  }
  return out;
}

async function writeFile(file: string, raws: readonly Buffer[], compress = true): Promise<BlockWriter> {
  const fd = fs.openSync(file, 'w');
  const w = new BlockWriter(fd, compress);
  for (const r of raws) w.add(Buffer.from(r)); // the writer keeps its own copy until written
  await w.end(encodeEnd(raws.length));
  fs.closeSync(fd);
  return w;
}

/** Every block of the file; `turns`: let the event loop run between blocks until the read-ahead is done. */
async function readFile(file: string, turns: boolean, readAhead = true): Promise<{ raws: Buffer[]; result: unknown; reader: BlockReader }> {
  const fd = fs.openSync(file, 'r');
  try {
    const reader = new BlockReader(fd, 0, readAhead);
    const raws: Buffer[] = [];
    for (;;) {
      const b = reader.next(raws.length); // the test's end markers count blocks
      if (!Buffer.isBuffer(b)) return { raws, result: b, reader };
      raws.push(Buffer.from(b));
      if (turns) {
        while (reader.inflating) await sleep(1);
        await sleep(1); // time for a read-ahead, if one had been started
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

describe('scan/blockFile', () => {
  it('writes blocks in order, deflated in the threadpool or in place, and reads them back either way', async () => {
    const dir = tempDir('offsite-bf-');
    const raws = blocks(40);
    const file = path.join(dir, 'f');
    const w = await writeFile(file, raws);
    // Added without a turn of the event loop: three went to the pool, the rest were deflated in place.
    assert.equal(w.inPool, 3);
    const expected = Buffer.concat([...raws.map((r) => encodeBlock(r, true)), encodeEnd(raws.length)]);
    assert.ok(fs.readFileSync(file).equals(expected), 'the same bytes as deflating each block in turn');

    for (const turns of [false, true]) {
      const { raws: back, result, reader } = await readFile(file, turns);
      assert.equal(result, 'end');
      assert.equal(back.length, raws.length);
      back.forEach((b, i) => assert.ok(b.equals(raws[i]), `block ${i}`));
      assert.equal(reader.position, expected.length, 'just past the end marker');
      if (turns) assert.equal(reader.readyAhead, raws.length - 1, 'every block after the first was inflated ahead');
      else assert.equal(reader.readyAhead, 0);
    }
    // Without read-ahead (a reader that never lets the event loop run): nothing goes to the pool.
    const noAhead = await readFile(file, true, false);
    assert.equal(noAhead.result, 'end');
    noAhead.raws.forEach((b, i) => assert.ok(b.equals(raws[i]), `block ${i}`));
    assert.equal(noAhead.reader.readyAhead, 0);

    // Added with room in the pool each time: each block deflated there.
    const fd = fs.openSync(path.join(dir, 'g'), 'w');
    const w2 = new BlockWriter(fd, true);
    for (const r of raws) {
      w2.add(r);
      await w2.flush();
    }
    await w2.end(encodeEnd(raws.length));
    fs.closeSync(fd);
    assert.equal(w2.inPool, raws.length);
    assert.ok(fs.readFileSync(path.join(dir, 'g')).equals(expected));

    const plain = path.join(dir, 'raw');
    assert.equal((await writeFile(plain, raws, false)).inPool, 0);
    assert.deepEqual((await readFile(plain, true)).raws.map((b) => b.length), raws.map((b) => b.length));
  });

  it('reports a write error from the next add() and from end(), not later', async () => {
    const dir = tempDir('offsite-bf-');
    const file = path.join(dir, 'ro');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r'); // writes fail with EBADF
    const w = new BlockWriter(fd, true);
    w.add(randomBytes(10_000));
    // Every caller waiting hears of it.
    await Promise.all([assert.rejects(w.flush(), /EBADF/), assert.rejects(w.flush(), /EBADF/)]);
    assert.throws(() => w.add(Buffer.alloc(10)), /EBADF/);
    await assert.rejects(w.end(encodeEnd(1)), /EBADF/);
    fs.closeSync(fd);
  });

  it('a closed writer writes nothing more, even for blocks still being deflated', async () => {
    const dir = tempDir('offsite-bf-');
    const file = path.join(dir, 'f');
    const fd = fs.openSync(file, 'w');
    const w = new BlockWriter(fd, true);
    for (const r of blocks(3)) w.add(r); // all in the pool, none written yet
    assert.equal(w.inFlight, 3);
    w.close();
    while (w.inFlight > 0) await sleep(5); // their callbacks have run
    assert.equal(fs.fstatSync(fd).size, 0);
    fs.closeSync(fd);
    assert.throws(() => w.add(Buffer.alloc(1)), /after close/);
  });

  it('the same verdict on a damaged block whether the read-ahead inflated it or not', async () => {
    const dir = tempDir('offsite-bf-');
    const raws = blocks(4);
    const file = path.join(dir, 'f');
    await writeFile(file, raws);
    const good = fs.readFileSync(file);
    // The second block's stored bytes: after the first block (13-byte header + stored) and its own header.
    const head2 = 13 + good.readUInt32LE(5);
    const second = head2 + 13;
    const mid = second + (good.readUInt32LE(head2 + 5) >> 1);
    const cases: [string, Buffer][] = [
      ['a flipped byte in the second block', Buffer.from(good).fill(good[mid] ^ 0x55, mid, mid + 1)],
      ['a wrong checksum on the second block', Buffer.from(good).fill(good[second - 1] ^ 1, second - 1, second)],
      ['cut inside the second block', good.subarray(0, mid)],
    ];
    for (const [what, bytes] of cases) {
      fs.writeFileSync(file, bytes);
      const verdicts: unknown[] = [];
      for (const turns of [false, true]) {
        const { raws: back, result } = await readFile(file, turns);
        assert.equal(back.length, 1, `${what}: only the first block is good`);
        assert.ok(back[0].equals(raws[0]));
        verdicts.push(result);
      }
      assert.ok(verdicts.every((v) => typeof v === 'object' && v !== null && 'bad' in v), `${what}: ${JSON.stringify(verdicts)}`);
      assert.deepEqual(verdicts[0], verdicts[1], what);
    }
  });
});
