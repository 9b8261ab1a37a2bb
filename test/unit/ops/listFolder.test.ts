// listFolder: one folder of a backup as of a time, from the signature chain, with the set's deleted
// paths merged in, paged, and closing what it opened when the caller stops early.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { OffsiteError } from '../../../src/engine/errors';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { listFiles } from '../../../src/engine/ops/inspect';
import { listFolder, type ListFolderOptions } from '../../../src/engine/ops/listFolder';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { indexFromBytes, indexToString } from '../../../src/engine/pathIndex';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

let crypto: CryptoContext;
before(async () => {
  crypto = await rsaCrypto();
});

type Row = [string, string, boolean?];

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('listFolder (one folder of a backup, from the signature chain)', function () {
  this.timeout(60_000);
  const backend = new MemoryBackend();
  let work: string;
  let archive: ArchiveDir;
  const log = new MemoryLogger();
  // Whole seconds, well in the past: set times never collide and no file is "racy".
  const T1 = (Math.floor(Date.now() / 1000) - 600) * 1000;
  const T2 = T1 + 60_000;

  const rows = async (o: Partial<ListFolderOptions> & { dir?: string; afterPath?: string }, arch = archive): Promise<Row[]> => {
    const out: Row[] = [];
    for await (const e of listFolder({ backend, archive: arch, crypto, log, time: T2 / 1000, ...o, path: o.dir === undefined ? undefined : indexFromBytes(o.dir), after: o.afterPath === undefined ? undefined : indexFromBytes(o.afterPath) })) {
      out.push(e.deleted ? [indexToString(e.index), e.meta.type, true] : [indexToString(e.index), e.meta.type]);
    }
    return out;
  };

  before(async () => {
    work = tempDir('offsite-listfolder-');
    const src = path.join(work, 'src');
    // 'a-b.txt' sorts after everything below 'a' although '-' < '/': a folder's paths are contiguous.
    makeTree(src, { a: { 'x.txt': 'x' }, 'a-b.txt': 'ab', d: { 'b.txt': 'b', e: { 'f.txt': 'f', 'g.txt': 'g' } }, g: { 'h.txt': 'h' }, 'z.txt': 'z' });
    const old = new Date(T1 - 3600_000);
    for (const p of ['a/x.txt', 'a-b.txt', 'd/b.txt', 'd/e/f.txt', 'd/e/g.txt', 'g/h.txt', 'z.txt']) fs.utimesSync(path.join(src, p), old, old);
    archive = ArchiveDir.open(path.join(work, 'cache'));
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20, now: () => T1 });
    fs.rmSync(path.join(src, 'd', 'e'), { recursive: true });
    fs.rmSync(path.join(src, 'g', 'h.txt'));
    fs.writeFileSync(path.join(src, 'n.txt'), 'new');
    const r = await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20, now: () => T2 });
    assert.equal(r.type, 'inc');
  });

  it('lists a folder\'s direct children in index order, and nothing of a neighbour with a longer name', async () => {
    assert.deepEqual(await rows({ dir: '', depth: 1 }), [['a', 'dir'], ['a-b.txt', 'reg'], ['d', 'dir'], ['g', 'dir'], ['n.txt', 'reg'], ['z.txt', 'reg']]);
    assert.deepEqual(await rows({ dir: 'a', depth: 1 }), [['a/x.txt', 'reg']]);
    assert.deepEqual(await rows({ dir: 'a.txt', depth: 1 }), [], 'a path that is not a folder has no children');
    assert.deepEqual(await rows({ dir: 'nope', depth: 1 }), []);
  });

  it('without depth it lists the whole subtree, exactly what listFiles lists there', async () => {
    const all: Row[] = [];
    for await (const f of listFiles({ backend, archive, crypto, log, time: T2 / 1000 })) if (f.index.length) all.push([indexToString(f.index), f.meta.type]);
    assert.deepEqual(await rows({}), all);
    assert.deepEqual(await rows({ dir: 'd' }), all.filter(([p]) => p.startsWith('d/')));
  });

  it('merges in the set\'s deleted paths (a gone folder as a folder), a listed path never shown as deleted', async () => {
    assert.deepEqual(await rows({ dir: '', depth: 1, deleted: true }), [['a', 'dir'], ['a-b.txt', 'reg'], ['d', 'dir'], ['g', 'dir'], ['n.txt', 'reg'], ['z.txt', 'reg']]);
    assert.deepEqual(await rows({ dir: 'd', depth: 1, deleted: true }), [['d/b.txt', 'reg'], ['d/e', 'dir', true]]);
    assert.deepEqual(await rows({ dir: 'd/e', depth: 1, deleted: true }), [['d/e/f.txt', 'reg', true], ['d/e/g.txt', 'reg', true]]);
    assert.deepEqual(await rows({ dir: 'g', depth: 1, deleted: true }), [['g/h.txt', 'reg', true]]);
    // As of the full set nothing was deleted, and the folder is there.
    assert.deepEqual(await rows({ dir: 'd/e', depth: 1, deleted: true, time: T1 / 1000 }), [['d/e/f.txt', 'reg'], ['d/e/g.txt', 'reg']]);
  });

  it('pages: limit, then after the last path, gives the whole folder once', async () => {
    const whole = await rows({ dir: '', depth: 2, deleted: true });
    assert.ok(whole.length > 6, JSON.stringify(whole));
    const pages: Row[][] = [];
    let after: string | undefined;
    for (;;) {
      const page = await rows({ dir: '', depth: 2, deleted: true, limit: 3, afterPath: after });
      if (page.length === 0) break;
      assert.ok(page.length <= 3);
      pages.push(page);
      after = page.at(-1)![0];
    }
    assert.deepEqual(pages.flat(), whole);
    assert.deepEqual(await rows({ dir: '', depth: 1, limit: 0 }), []);
  });

  it('reads the signature files from the remote with an empty cache (decrypting them)', async () => {
    const fresh = ArchiveDir.open(path.join(work, 'fresh-cache'));
    assert.deepEqual(await rows({ dir: 'd', depth: 1, deleted: true }, fresh), [['d/b.txt', 'reg'], ['d/e', 'dir', true]]);
  });

  it('closes the signature files when the caller stops early', async function () {
    // A signature file bigger than one read (1 MiB), so a stop in the middle leaves it open unless closed.
    const src = path.join(work, 'big');
    fs.mkdirSync(src);
    const old = new Date(T1 - 3600_000);
    for (let i = 0; i < 1500; i++) {
      const f = path.join(src, `f${String(i).padStart(4, '0')}`);
      fs.writeFileSync(f, randomBytes(48 * 1024));
      fs.utimesSync(f, old, old);
    }
    const big = new MemoryBackend();
    const bigArchive = ArchiveDir.open(path.join(work, 'big-cache'));
    await backup({ source: src, backend: big, archive: bigArchive, crypto, log, volumeSize: 64 << 20 });
    const sigtar = bigArchive.names().find((n) => n.includes('signatures'))!;
    assert.ok(fs.statSync(bigArchive.file(sigtar)).size > 1 << 20, 'the signature file is bigger than one read');
    const before = openFds();
    for (let i = 0; i < 10; i++) {
      for await (const e of listFolder({ backend: big, archive: bigArchive, crypto, log, depth: 1, limit: 2 })) assert.ok(e);
      for await (const e of listFolder({ backend: big, archive: bigArchive, crypto, log, depth: 1 })) {
        assert.ok(e);
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(openFds(), before, 'no file descriptor left open');
  });

  it('an empty remote gives the clear "no backup" error', async () => {
    await assert.rejects(
      (async () => {
        for await (const e of listFolder({ backend: new MemoryBackend(), archive: ArchiveDir.open(path.join(work, 'empty-cache')), crypto, log, depth: 1 })) assert.fail(`unexpected ${indexToString(e.index)}`);
      })(),
      (e: unknown) => OffsiteError.is(e, 'notFound'),
    );
  });
});
