import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BlockRecords,
  emptyFlatStat,
  RACY_WINDOW_NS,
  StatCacheBlocks,
  StatCacheCursor,
  statCacheWholeTree,
  StatCacheWriter,
  statCacheComplete,
  statRecordOf,
  statUnchanged,
  type StatCacheWriterOptions,
  type StatRecord,
} from '../../../src/engine/scan/statCache';
import { scanTreeSync, type ScanEntry } from '../../../src/engine/scan/scanner';
import { OffsiteError } from '../../../src/engine/errors';
import { indexFromBytes, indexToString } from '../../../src/engine/pathIndex';
import type { EntryType, PathIndex } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';

const FUTURE = BigInt(Date.now() + 3_600_000) * 1_000_000n;

async function writeAll(
  file: string,
  records: readonly StatRecord[],
  options: StatCacheWriterOptions = { scanStartNs: FUTURE },
): Promise<void> {
  const w = await StatCacheWriter.create(file, options);
  for (const r of records) w.add(r);
  await w.close();
}

/** Every record, in order (async: a corrupt file rejects). */
async function readAll(file: string): Promise<StatRecord[]> {
  const cursor = StatCacheCursor.open(file);
  const out: StatRecord[] = [];
  try {
    for (let r = cursor.shift(); r !== undefined; r = cursor.shift()) out.push(r);
  } finally {
    cursor.close();
  }
  return out;
}

function scanOne(root: string, name: string): ScanEntry {
  for (const e of scanTreeSync(root, { onError: (_i, err) => assert.fail(err) })) {
    if (indexToString(e.index) === name) return e;
  }
  throw new Error(`${name} not scanned`);
}

/** Records in index order: every type, extreme numbers, non-UTF-8 names. */
function syntheticRecords(n: number): StatRecord[] {
  const types: EntryType[] = ['dir', 'reg', 'sym', 'fifo', 'chr', 'blk'];
  const out: StatRecord[] = [{ index: [], type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 1n, ctimeNs: 2n, ino: 3n }];
  for (let i = 0; i < n; i++) {
    const dir = Buffer.from(`d${String(Math.floor(i / 100)).padStart(5, '0')}`);
    if (i % 100 === 0) {
      out.push({ index: [dir], type: 'dir', mode: 0o700, uid: 1, gid: 2, size: 0, mtimeNs: -5n, ctimeNs: 7n, ino: BigInt(i) });
    }
    const name = Buffer.concat([Buffer.from(`f${String(i % 100).padStart(3, '0')}`), Buffer.from([0xff, 0x20, 0xc3])]);
    out.push({
      index: [dir, name],
      type: types[i % types.length],
      mode: i % 0o10000,
      uid: i % 3 === 0 ? 2 ** 32 - 1 : i,
      gid: i,
      size: i % 7 === 0 ? 2 ** 52 + i : i,
      mtimeNs: BigInt(i) * 1_000_000_007n - 10n ** 18n,
      ctimeNs: 1_700_000_000_123_456_789n + BigInt(i),
      ino: i % 5 === 0 ? 2n ** 64n - 1n - BigInt(i) : BigInt(i),
    });
  }
  return out;
}

function comparable(records: readonly StatRecord[]): unknown[] {
  return records.map((r) => ({ ...r, index: r.index.map((c) => c.toString('hex')) }));
}

describe('scan/statCache', () => {
  it('round-trips records of every kind, across many blocks, compressed or not', async () => {
    const dir = tempDir('offsite-sc-');
    const records = syntheticRecords(30_000);
    for (const compress of [true, false]) {
      const file = path.join(dir, `cache-${compress}`);
      await writeAll(file, records, { scanStartNs: FUTURE, compress });
      const back = await readAll(file);
      assert.equal(back.length, records.length);
      assert.deepEqual(comparable(back), comparable(records));
    }
    const size = fs.statSync(path.join(dir, 'cache-true')).size;
    assert.ok(size < records.length * 40, `compact: ${size} bytes for ${records.length} records`);
  });

  it('round-trips what the scanner sees, and an unchanged tree compares unchanged', async () => {
    const root = tempDir('offsite-sc-');
    fs.mkdirSync(path.join(root, 'a'));
    fs.writeFileSync(path.join(root, 'a/x'), 'x');
    fs.writeFileSync(Buffer.from(path.join(root, 'a/\xff'), 'latin1'), 'y');
    fs.symlinkSync('a', path.join(root, 'l'));
    const entries = [...scanTreeSync(root, { onError: (_i, e) => assert.fail(e) })];
    const file = path.join(tempDir('offsite-sc-'), 'cache');
    await writeAll(file, entries.map(statRecordOf));
    const back = await readAll(file);
    assert.equal(back.length, entries.length);
    const again = [...scanTreeSync(root, { onError: (_i, e) => assert.fail(e) })];
    again.forEach((e, i) => assert.ok(statUnchanged(e, back[i]), indexToString(e.index)));
  });

  it('stores a record bigger than a block (a very deep path) between ordinary ones', async () => {
    const file = path.join(tempDir('offsite-sc-'), 'c');
    const deep: Buffer[] = Array.from({ length: 1500 }, (_, i) => Buffer.from(`level-${i}-${'x'.repeat(200)}`));
    const base = { type: 'reg' as const, mode: 0o644, uid: 0, gid: 0, size: 1, mtimeNs: 1n, ctimeNs: 1n, ino: 1n };
    const records: StatRecord[] = [
      ...syntheticRecords(2000),
      { ...base, index: [Buffer.from('e'), ...deep] },
      { ...base, index: [Buffer.from('f')] },
    ];
    await writeAll(file, records);
    assert.deepEqual(comparable(await readAll(file)), comparable(records));
  });

  it('yields nothing for a missing file', async () => {
    assert.deepEqual(await readAll(path.join(tempDir('offsite-sc-'), 'none')), []);
  });

  it('detects corruption and truncation (OffsiteError format)', async () => {
    const dir = tempDir('offsite-sc-');
    const file = path.join(dir, 'cache');
    await writeAll(file, syntheticRecords(5000));
    const good = fs.readFileSync(file);
    const isFormat = (e: unknown): boolean => OffsiteError.is(e, 'format');
    const variants: [string, Buffer][] = [
      ['a flipped byte in the data', Buffer.from(good).fill(good[good.length >> 1] ^ 0x10, good.length >> 1, (good.length >> 1) + 1)],
      ['truncated in the middle', good.subarray(0, good.length >> 1)],
      ['truncated before the end marker', good.subarray(0, good.length - 13)],
      ['the end marker cut', good.subarray(0, good.length - 3)],
      ['garbage after the end', Buffer.concat([good, Buffer.from('x')])],
      ['another file', Buffer.from('not a stat cache at all, just text')],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, bytes] of variants) {
      fs.writeFileSync(file, bytes);
      await assert.rejects(readAll(file), isFormat, what);
    }
    // A wrong record count in an otherwise valid end marker.
    const bad = Buffer.from(good);
    bad.writeUInt32LE(bad.readUInt32LE(bad.length - 12) + 1, bad.length - 12);
    fs.writeFileSync(file, bad);
    await assert.rejects(readAll(file), isFormat);
  });

  it('refuses records out of index order', async () => {
    const dir = tempDir('offsite-sc-');
    const rec = (p: string): StatRecord => ({ index: indexFromBytes(p), type: 'reg', mode: 0, uid: 0, gid: 0, size: 0, mtimeNs: 0n, ctimeNs: 0n, ino: 0n });
    for (const [a, b] of [
      ['a-b', 'a/z'],
      ['b', 'a'],
      ['a', 'a'],
      ['a/b', 'a'],
    ]) {
      const w = await StatCacheWriter.create(path.join(dir, 'c'));
      w.add(rec(a));
      assert.throws(() => w.add(rec(b)), (e: unknown) => OffsiteError.is(e, 'internal'), `${a} then ${b}`);
      await w.abort();
    }
    const w = await StatCacheWriter.create(path.join(dir, 'c'));
    for (const p of ['', 'a', 'a/z', 'a-b']) w.add(rec(p));
    await w.close();
    assert.deepEqual((await readAll(path.join(dir, 'c'))).map((r) => indexToString(r.index)), ['.', 'a', 'a/z', 'a-b']);
  });

  it('writes atomically through a private temp file; abort keeps the previous cache', async () => {
    const dir = tempDir('offsite-sc-');
    const file = path.join(dir, 'cache');
    await writeAll(file, syntheticRecords(10));
    const before = fs.readFileSync(file);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);

    const w = await StatCacheWriter.create(file);
    for (const r of syntheticRecords(20)) w.add(r);
    const temps = fs.readdirSync(dir).filter((n) => n !== 'cache');
    assert.equal(temps.length, 1);
    assert.equal(fs.statSync(path.join(dir, temps[0])).mode & 0o777, 0o600);
    assert.ok(fs.readFileSync(file).equals(before), 'the old cache is untouched until close');
    await w.abort();
    assert.deepEqual(fs.readdirSync(dir), ['cache']);
    assert.ok(fs.readFileSync(file).equals(before));

    const w2 = await StatCacheWriter.create(file, { scanStartNs: FUTURE });
    for (const r of syntheticRecords(20)) w2.add(r);
    await w2.close();
    assert.deepEqual(fs.readdirSync(dir), ['cache']);
    assert.equal((await readAll(file)).length, syntheticRecords(20).length);
  });

  describe('statUnchanged', () => {
    async function recordAndReread(root: string, name: string, scanStartNs = FUTURE): Promise<StatRecord> {
      const file = path.join(tempDir('offsite-sc-'), 'c');
      const e = scanOne(root, name);
      const w = await StatCacheWriter.create(file, { scanStartNs });
      w.add({ ...statRecordOf(e), index: [] });
      await w.close();
      const [r] = await readAll(file);
      return { ...r, index: e.index };
    }

    it('sees a same-second, same-size rewrite that duplicity would miss', async () => {
      const root = tempDir('offsite-sc-');
      const f = path.join(root, 'f');
      fs.writeFileSync(f, 'aaaa');
      const r = await recordAndReread(root, 'f');
      assert.ok(statUnchanged(scanOne(root, 'f'), r));
      const { atime, mtime } = fs.statSync(f);
      fs.writeFileSync(f, 'bbbb');
      fs.utimesSync(f, atime, mtime); // same mtime (to the µs), same size: only ctime tells
      const e = scanOne(root, 'f');
      assert.equal(e.meta.mtime, Math.floor(mtime.getTime() / 1000));
      assert.equal(e.size, r.size);
      assert.equal(statUnchanged(e, r), false);
    });

    it('notices content, mode, owner, type and inode changes', async () => {
      const root = tempDir('offsite-sc-');
      const f = path.join(root, 'f');
      const changes: [string, () => void][] = [
        ['append', () => fs.appendFileSync(f, 'more')],
        ['chmod', () => fs.chmodSync(f, 0o600)],
        ['chown', () => fs.chownSync(f, 12345, 12345)],
        ['replaced by a rename', () => {
          const st = fs.statSync(f);
          fs.writeFileSync(f + '.new', fs.readFileSync(f));
          fs.utimesSync(f + '.new', st.atime, st.mtime);
          fs.renameSync(f + '.new', f);
        }],
        ['became a symlink', () => {
          fs.rmSync(f);
          fs.symlinkSync('xxxx', f);
        }],
      ];
      for (const [what, change] of changes) {
        fs.rmSync(f, { force: true });
        fs.writeFileSync(f, 'data');
        fs.chmodSync(f, 0o644);
        const r = await recordAndReread(root, 'f');
        assert.ok(statUnchanged(scanOne(root, 'f'), r), `${what}: unchanged before`);
        if (what === 'chown' && process.getuid?.() !== 0) continue;
        change();
        assert.equal(statUnchanged(scanOne(root, 'f'), r), false, what);
      }
    });

    it('never trusts a record stored within the racy window of the scan start', async () => {
      const root = tempDir('offsite-sc-');
      fs.writeFileSync(path.join(root, 'f'), 'x');
      const e = scanOne(root, 'f');
      const racy = await recordAndReread(root, 'f', e.ctimeNs + RACY_WINDOW_NS / 2n);
      assert.equal(racy.racy, true);
      assert.equal(statUnchanged(e, racy), false);
      const settled = await recordAndReread(root, 'f', e.ctimeNs + RACY_WINDOW_NS + 1n);
      assert.equal(settled.racy, undefined);
      assert.ok(statUnchanged(e, settled));
      // Default scan start is "now": a file written a moment ago is racy.
      const file = path.join(tempDir('offsite-sc-'), 'c');
      const w = await StatCacheWriter.create(file);
      w.add(statRecordOf(e));
      await w.close();
      assert.equal((await readAll(file))[0].racy, true);
    });
  });

  it('cursor: finds records for a scan running in the same order', async () => {
    const file = path.join(tempDir('offsite-sc-'), 'c');
    const records = syntheticRecords(500);
    await writeAll(file, records);
    const cursor = StatCacheCursor.open(file);
    const probe = (s: PathIndex): StatRecord | undefined => cursor.find(s);
    assert.deepEqual(probe([])?.index, []);
    assert.equal(probe([Buffer.from('d00000'), Buffer.from('a')]), undefined);
    const hit = probe(records[250].index);
    assert.deepEqual(hit?.index, records[250].index);
    assert.equal(hit?.ino, records[250].ino);
    assert.deepEqual(cursor.peek()?.index, records[251].index, 'the records before a hit are consumed, the next one is not');
    assert.equal(probe([Buffer.from('zzz')]), undefined);
    assert.equal(cursor.peek(), undefined);
    cursor.close();
    const empty = StatCacheCursor.open(file + '.missing');
    assert.equal(empty.find([]), undefined);
    empty.close();
  });

  it('records in the header whether the cache is complete; the records read the same either way', async () => {
    const dir = tempDir('offsite-sc-');
    const records = syntheticRecords(300);
    const plain = path.join(dir, 'plain');
    await writeAll(plain, records);
    assert.equal(statCacheComplete(plain), false, 'not complete unless the writer says so');
    const complete = path.join(dir, 'complete');
    const w = await StatCacheWriter.create(complete, { scanStartNs: FUTURE });
    for (const r of records) w.add(r);
    await w.close({ complete: true });
    assert.equal(statCacheComplete(complete), true);
    assert.deepEqual(await readAll(complete), await readAll(plain));
    assert.equal(statCacheComplete(path.join(dir, 'missing')), false);
    fs.writeFileSync(path.join(dir, 'other'), 'not a stat cache, but long enough');
    assert.equal(statCacheComplete(path.join(dir, 'other')), false);
  });

  it('says "whole tree" (or "the tree .gitignore keeps") only for a complete cache the writer says it of', async () => {
    const dir = tempDir('offsite-sc-');
    const records = syntheticRecords(50);
    const write = async (name: string, flags: { complete?: boolean; wholeTree?: boolean; gitignore?: boolean }) => {
      const w = await StatCacheWriter.create(path.join(dir, name), { scanStartNs: FUTURE });
      for (const r of records) w.add(r);
      await w.close(flags);
      return path.join(dir, name);
    };
    assert.equal(statCacheWholeTree(await write('both', { complete: true, wholeTree: true })), true);
    assert.equal(statCacheWholeTree(path.join(dir, 'both'), true), false, 'not the tree .gitignore keeps');
    assert.equal(statCacheComplete(path.join(dir, 'both')), true);
    assert.equal(statCacheWholeTree(await write('gitignore', { complete: true, wholeTree: true, gitignore: true }), true), true);
    assert.equal(statCacheWholeTree(path.join(dir, 'gitignore')), false, 'a .gitignore tree is not the whole tree');
    assert.equal(statCacheWholeTree(await write('complete', { complete: true })), false);
    assert.equal(statCacheWholeTree(await write('incomplete', { wholeTree: true })), false, 'never without complete');
    assert.equal(statCacheWholeTree(path.join(dir, 'missing')), false);
  });

  it('writes blocks that stand alone: each decodes by itself to the records a cursor reads', async () => {
    const dir = tempDir('offsite-sc-');
    const records = syntheticRecords(20_000);
    const file = path.join(dir, 'cache');
    await writeAll(file, records);
    const all = await readAll(file);
    assert.equal(all.length, records.length);
    const blocks = StatCacheBlocks.open(file);
    const paths: string[] = [];
    let n = 0;
    const out = Buffer.alloc(4096);
    const rec = emptyFlatStat();
    try {
      for (let ref = blocks.nextBlock(); ; ref = blocks.nextBlock()) {
        if ('end' in ref) {
          assert.equal(ref.end, records.length);
          break;
        }
        n++;
        const rs = blocks.records(ref);
        for (let len = rs.shiftPath(out, rec); len !== undefined; len = rs.shiftPath(out, rec)) {
          const want = all[paths.length];
          paths.push(out.toString('latin1', 0, len));
          assert.equal(rec.type, want.type);
          assert.equal(rec.mtimeNs, want.mtimeNs);
          assert.equal(rec.ino, want.ino);
          assert.equal(rec.size, want.size);
        }
      }
    } finally {
      blocks.close();
    }
    assert.ok(n >= 10, `${n} blocks`);
    assert.deepEqual(paths, all.map((r) => r.index.map((c) => c.toString('latin1')).join('/')));
    // A block whose first record leans on the one before (as before blocks stood alone) is refused.
    assert.throws(() => new BlockRecords(Buffer.from([1, 1, 1, 0x61]), 'old').shiftPath(out, rec), (e: unknown) => e instanceof OffsiteError && /does not stand alone/.test(e.message));
  });
});
