// The no-change probe against a real tree and the stat cache a real backup wrote: every record that
// still matches is counted, and each kind of change stops it, on one thread or two.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup, type BackupResult } from '../../../src/engine/ops/backup';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { NoChangeProbe, probePart, workerPart, type ProbeResult } from '../../../src/engine/scan/noChangeProbe';
import { StatCacheBlocks, statCacheWholeTree } from '../../../src/engine/scan/statCache';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, type Spec } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

let crypto: CryptoContext;
before(async () => {
  crypto = await rsaCrypto();
});

/** A whole second: utimes can put it back exactly (its nanoseconds are 0). */
const MTIME = 1_700_000_000;
const RACY = 2100; // records of files changed within 2 s of their scan are racy (statCache.ts)

function spec(): Spec {
  return {
    'a.txt': 'alpha\n',
    docs: { 'one.md': '# one\n', deep: { 'x.txt': { content: 'x', mtime: MTIME }, 'y.txt': 'y' } },
    link: { symlink: 'a.txt' },
    'run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
    empty: {},
  };
}

/** A tree backed up once (a full backup writes the stat cache the probe reads). */
async function backedUp(s: Spec, waitRacy = true): Promise<{ src: string; statFile: string; first: BackupResult; work: string }> {
  const work = tempDir('offsite-probe-');
  const src = path.join(work, 'src');
  makeTree(src, s);
  if (waitRacy) await sleep(RACY);
  const archive = ArchiveDir.open(path.join(work, 'cache'));
  const first = await backup({ source: src, backend: new MemoryBackend(), archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20 });
  const stats = archive.names().filter((n) => n.startsWith('offsite-stat.'));
  assert.equal(stats.length, 1);
  const statFile = archive.file(stats[0]);
  assert.equal(statCacheWholeTree(statFile), true, 'a backup of the whole tree without errors says so');
  return { src, statFile, first, work };
}

const probe = (src: string, statFile: string, worker: boolean): Promise<ProbeResult> => NoChangeProbe.start(src, statFile, { worker }).run();

function assertChanged(r: ProbeResult, what: RegExp): void {
  assert.equal(r.unchanged, false, 'the change is seen');
  if (!r.unchanged) assert.match(r.why, what);
}

describe('no-change probe', function () {
  this.timeout(60_000);

  for (const worker of [false, true]) {
    describe(worker ? 'with its worker thread' : 'on one thread', () => {
      it('counts every path and byte of an untouched tree, as the backup did', async () => {
        const t = await backedUp(spec());
        const r = await probe(t.src, t.statFile, worker);
        assert.ok(r.unchanged, JSON.stringify(r));
        assert.equal(r.records, t.first.stats.SourceFiles);
        assert.equal(r.bytes, t.first.stats.SourceFileSize);
        if (!worker) assert.equal(r.workerRecords, 0);
      });

      it('sees a same-size rewrite whose mtime was put back (its ctime moved)', async () => {
        const t = await backedUp(spec());
        const f = path.join(t.src, 'docs', 'deep', 'x.txt');
        fs.writeFileSync(f, 'X');
        fs.utimesSync(f, MTIME, MTIME);
        assert.equal(fs.statSync(f, { bigint: true }).mtimeNs, BigInt(MTIME) * 1_000_000_000n, 'the same mtime, to the nanosecond');
        assertChanged(await probe(t.src, t.statFile, worker), /^docs\/deep\/x\.txt: modified$/);
      });

      it('sees a file added deep down, through its folder', async () => {
        const t = await backedUp(spec());
        fs.writeFileSync(path.join(t.src, 'docs', 'deep', 'new.txt'), 'new');
        assertChanged(await probe(t.src, t.statFile, worker), /^docs\/deep: modified$/);
      });

      it('sees a deletion, a rename and an empty folder added', async () => {
        const changes = [
          (src: string) => fs.unlinkSync(path.join(src, 'docs', 'one.md')),
          (src: string) => fs.renameSync(path.join(src, 'docs', 'one.md'), path.join(src, 'docs', 'uno.md')),
          (src: string) => fs.mkdirSync(path.join(src, 'empty', 'inner')),
        ];
        const trees = await Promise.all(changes.map(() => backedUp(spec())));
        for (let i = 0; i < changes.length; i++) {
          changes[i](trees[i].src);
          assertChanged(await probe(trees[i].src, trees[i].statFile, worker), /^(docs|empty): modified$/);
        }
      });

      it('takes no record written within the racy window as unchanged', async () => {
        const t = await backedUp(spec(), false);
        assertChanged(await probe(t.src, t.statFile, worker), /^\.: recorded too soon after a change to be trusted$/);
      });

      it('sees a mode change, a symlink pointed elsewhere and a file turned into a folder', async () => {
        const [t, u, v] = await Promise.all([backedUp(spec()), backedUp(spec()), backedUp(spec())]);
        fs.chmodSync(path.join(t.src, 'run.sh'), 0o700);
        assertChanged(await probe(t.src, t.statFile, worker), /^run\.sh: permissions or owner$/);

        fs.unlinkSync(path.join(u.src, 'link'));
        fs.symlinkSync('docs/one.md', path.join(u.src, 'link'));
        assertChanged(await probe(u.src, u.statFile, worker), /: modified$/);

        fs.unlinkSync(path.join(v.src, 'a.txt'));
        fs.mkdirSync(path.join(v.src, 'a.txt'));
        assertChanged(await probe(v.src, v.statFile, worker), /^(\.: modified|a\.txt: another type)$/);
      });

      it('cannot tell from a damaged or missing stat cache', async () => {
        const t = await backedUp(spec());
        const truncated = path.join(t.work, 'truncated');
        fs.writeFileSync(truncated, fs.readFileSync(t.statFile).subarray(0, fs.statSync(t.statFile).size - 5));
        assertChanged(await probe(t.src, truncated, worker), /stat cache cannot be read|worker thread failed/);
        assertChanged(await probe(t.src, path.join(t.work, 'missing'), worker), /stat cache cannot be read \(ENOENT/);
      });
    });
  }

  it('shares the blocks between two passes: each is checked once, the sums add up', async () => {
    const files: Spec = {};
    for (let d = 0; d < 20; d++) {
      const dir: Spec = {};
      for (let f = 0; f < 250; f++) dir[`file-${f}.txt`] = `${d}/${f}`;
      files[`d${d}`] = dir;
    }
    const t = await backedUp(files);
    const total = t.first.stats.SourceFiles;
    const blocks = StatCacheBlocks.open(t.statFile);
    let n = 0;
    for (let ref = blocks.nextBlock(); !('end' in ref); ref = blocks.nextBlock()) n++;
    blocks.close();
    assert.ok(n >= 3, `${n} blocks of ${total} records`);
    // The worker's side claims everything when it is first; a pass after it finds nothing left.
    const sab = new SharedArrayBuffer(12);
    const w = workerPart(t.src, t.statFile, sab);
    assert.ok(w && 'part' in w, JSON.stringify(w));
    assert.equal(w.part.records, total);
    assert.equal(w.part.total, total);
    assert.equal(w.part.changed, undefined);
    const after = probePart(t.src, t.statFile, new Int32Array(sab));
    assert.deepEqual(after, { records: 0, bytes: 0, total });
    // A worker that comes after the main thread gave up on it does nothing.
    const closed = new Int32Array(new SharedArrayBuffer(12));
    closed[2] = 2;
    assert.equal(workerPart(t.src, t.statFile, closed.buffer as SharedArrayBuffer), undefined);
    // Nor does one that starts after STOP (cancel(), or a difference found by the other thread).
    const stopped = new Int32Array(new SharedArrayBuffer(12));
    stopped[1] = 1;
    assert.deepEqual(workerPart(t.src, t.statFile, stopped.buffer as SharedArrayBuffer), { part: { records: 0, bytes: 0 } });
    assert.equal(stopped[0], 0, 'no block claimed');
    // With both threads running, every record is still counted once.
    for (let i = 0; i < 3; i++) {
      const r = await probe(t.src, t.statFile, true);
      assert.ok(r.unchanged);
      assert.equal(r.records, total);
      assert.equal(r.bytes, t.first.stats.SourceFileSize);
    }
    // A change in the last chunk is found whichever thread claims it.
    fs.writeFileSync(path.join(t.src, 'd9', 'file-99.txt'), 'changed');
    assertChanged(await probe(t.src, t.statFile, true), /^d9\/file-99\.txt: modified$/);
  });

  it('cancel() ends the probe: run() is refused after it, a second cancel() is harmless', async () => {
    const t = await backedUp(spec());
    const p = NoChangeProbe.start(t.src, t.statFile, { worker: true });
    p.cancel();
    p.cancel();
    await assert.rejects(() => p.run(), /after it ended/);
  });
});
