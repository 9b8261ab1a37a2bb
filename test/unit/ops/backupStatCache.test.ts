// Incrementals decided from a complete stat cache: the signature chain is not read when nothing
// changed, deletions come from the stat records the scan did not meet, and the outcome is the same as
// comparing against the signature chain (an incomplete, corrupt or old-format cache falls back to it).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup, type BackupOptions, type BackupResult } from '../../../src/engine/ops/backup';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { restore } from '../../../src/engine/ops/restore';
import { statCacheComplete } from '../../../src/engine/scan/statCache';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree, type Spec } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

let crypto: CryptoContext;
before(async () => {
  crypto = await rsaCrypto();
});

/** A source tree, its own cache folder and remote. */
function env(work: string, name: string, spec: Spec, options: Partial<BackupOptions> = {}) {
  const src = path.join(work, name, 'src');
  makeTree(src, spec);
  const archive = ArchiveDir.open(path.join(work, name, 'cache'));
  const backend = new MemoryBackend();
  const log = new MemoryLogger();
  const run = (): Promise<BackupResult> => backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20, ...options });
  let restores = 0;
  const restored = async (time?: number) => {
    const out = path.join(work, name, `out-${++restores}`);
    await restore({ backend, archive, crypto, log: new MemoryLogger(), target: out, time });
    return snapshotTree(out);
  };
  const statFile = () => {
    const names = archive.names().filter((n) => n.startsWith('offsite-stat.'));
    assert.equal(names.length, 1, `one stat cache: ${names.join(', ')}`);
    return archive.file(names[0]);
  };
  const sigFiles = () => archive.names().filter((n) => n.includes('.sigtar')).map((n) => archive.file(n));
  return { src, archive, backend, log, run, restored, statFile, sigFiles };
}

/** Clears the stat cache's "complete" flag: the next incremental compares against the signature chain. */
function clearCompleteFlag(file: string): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(4), 0, 4, 12);
  fs.closeSync(fd);
}

function tree(): Spec {
  return {
    'a.txt': 'alpha\n',
    'big.bin': randomBytesSeeded(600_000, 7),
    docs: { 'one.md': '# one\n', 'two.md': '# two\n', deep: { 'x.txt': 'x' } },
    gone: { 'g1.txt': 'g1', 'g2.txt': 'g2', sub: { 'g3.txt': 'g3' } },
    'link': { symlink: 'a.txt' },
    'mode.sh': { content: '#!/bin/sh\n', mode: 0o644 },
    'z-last.txt': 'last\n',
  };
}

/** The same day of edits: content (mid-file and whole), a symlink target, a mode, deletions, additions. */
function edit(src: string): void {
  const fd = fs.openSync(path.join(src, 'big.bin'), 'r+');
  fs.writeSync(fd, Buffer.from('patched in the middle'), 0, 21, 300_000);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(src, 'docs', 'two.md'), '# two, rewritten\n');
  fs.unlinkSync(path.join(src, 'link'));
  fs.symlinkSync('docs/one.md', path.join(src, 'link'));
  fs.chmodSync(path.join(src, 'mode.sh'), 0o755);
  fs.rmSync(path.join(src, 'gone'), { recursive: true });
  fs.unlinkSync(path.join(src, 'z-last.txt'));
  fs.writeFileSync(path.join(src, 'docs', 'new.txt'), 'new\n');
  fs.mkdirSync(path.join(src, 'added'));
  fs.writeFileSync(path.join(src, 'added', 'n.bin'), randomBytesSeeded(70_000, 9));
}

/** Two backups of the same edits stored the same things. */
function assertSameOutcome(a: BackupResult, b: BackupResult): void {
  for (const k of ['NewFiles', 'ChangedFiles', 'DeletedFiles', 'DeltaEntries', 'SourceFiles', 'SourceFileSize', 'RawDeltaSize'] as const) {
    assert.equal(a.stats[k], b.stats[k], k);
  }
}

const RACY = 2100; // files changed within 2 s of a scan are read again next time (statCache.ts)

describe('backup: incrementals from a complete stat cache', function () {
  this.timeout(60_000);

  it('a no-change incremental reads no signature file and stores nothing', async () => {
    const e = env(tempDir('offsite-statmode-'), 't', tree());
    await sleep(RACY);
    await e.run();
    assert.equal(statCacheComplete(e.statFile()), true, 'a clean backup writes a complete stat cache');
    // Any read of the chain's signatures would now fail.
    for (const f of e.sigFiles()) fs.writeFileSync(f, 'not a signature file');
    const r = await e.run();
    assert.equal(r.type, 'inc');
    assert.equal(r.stats.DeltaEntries, 0);
    assert.equal(r.stats.SourceFiles, 16);
    assert.equal(r.stats.SourceFileSize, fs.statSync(path.join(e.src, 'big.bin')).size + 6 + 6 + 6 + 1 + 2 + 2 + 2 + 10 + 5);
    assert.equal(statCacheComplete(e.statFile()), true);
  });

  it('stores edits, deletions and additions exactly as the signature-chain comparison does', async () => {
    const work = tempDir('offsite-statmode-');
    const fast = env(work, 'fast', tree());
    const slow = env(work, 'slow', tree());
    await sleep(RACY);
    const full = await fast.run();
    await slow.run();
    const before = await fast.restored();
    clearCompleteFlag(slow.statFile());
    await sleep(1100);
    edit(fast.src);
    edit(slow.src);
    const a = await fast.run();
    const b = await slow.run();
    assertSameOutcome(a, b);
    assert.equal(a.stats.DeletedFiles, 6); // gone/, its 3 files, its sub/, z-last.txt
    assert.equal(a.stats.NewFiles, 3); // docs/new.txt, added/, added/n.bin
    assert.ok(a.stats.RawDeltaSize < 80_000, `big.bin went as a delta (${a.stats.RawDeltaSize} bytes in all)`);
    assert.deepEqual(await fast.restored(), snapshotTree(fast.src));
    assert.deepEqual(await fast.restored(full.time), before);
    assert.equal(statCacheComplete(fast.statFile()), true);
    assert.equal(statCacheComplete(slow.statFile()), true, 'the fallback writes a complete cache again');
  });

  it('with the lstats made ahead by a worker thread: the same edits, deletions and additions stored', async () => {
    const work = tempDir('offsite-statmode-');
    const ahead = env(work, 'ahead', tree(), { statAheadMinBytes: 0 });
    const plain = env(work, 'plain', tree());
    await sleep(RACY);
    for (const e of [ahead, plain]) await e.run();
    await sleep(1100);
    for (const e of [ahead, plain]) edit(e.src);
    const [a, b] = [await ahead.run(), await plain.run()];
    assertSameOutcome(a, b);
    // Started and consulted for each of the 12 paths below the root (how many it had ready is timing).
    assert.ok(ahead.log.lines.some((l) => /Stat ahead: \d+ of 12 paths/.test(l)), ahead.log.lines.join('\n'));
    assert.ok(!plain.log.lines.some((l) => l.includes('Stat ahead')), 'not for a small cache by default');
    assert.deepEqual(await ahead.restored(), snapshotTree(ahead.src));
    const c = await ahead.run();
    assert.equal(c.stats.DeltaEntries, 0, 'then nothing changed');
    assert.equal(statCacheComplete(ahead.statFile()), true);
  });

  it('a file kept from an older set after a read error makes the cache incomplete: its deletion is still seen', async () => {
    const e = env(tempDir('offsite-statmode-'), 't', tree());
    await sleep(RACY);
    await e.run();
    await sleep(1100);
    fs.writeFileSync(path.join(e.src, 'a.txt'), 'alpha, edited\n');
    const fsModule = require('node:fs') as typeof fs;
    const realOpenSync = fsModule.openSync;
    fsModule.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
      if (String(p).endsWith('/a.txt')) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
      return (realOpenSync as (...a: unknown[]) => number)(p, ...rest);
    }) as typeof fs.openSync;
    let r: BackupResult;
    try {
      r = await e.run();
    } finally {
      fsModule.openSync = realOpenSync;
    }
    assert.equal(r.errors.length, 1);
    assert.equal(statCacheComplete(e.statFile()), false, 'a.txt is in the state without a stat record');
    fs.unlinkSync(path.join(e.src, 'a.txt'));
    const r2 = await e.run();
    assert.equal(r2.stats.DeletedFiles, 1);
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
    assert.equal(statCacheComplete(e.statFile()), true);
  });

  it('a resumed backup writes records only for what it scanned after the resume point: not complete', async () => {
    const spec: Spec = {};
    for (let i = 0; i < 12; i++) spec[`f${String(i).padStart(2, '0')}.bin`] = randomBytesSeeded(300_000, 10 + i);
    const work = tempDir('offsite-statmode-');
    const src = path.join(work, 'src');
    makeTree(src, spec);
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const memory = new MemoryBackend();
    const log = new MemoryLogger();
    const faulty = new FaultBackend(memory, { rules: [{ op: 'put', calls: [6], action: 'fail', kind: 'permanent' }] });
    await assert.rejects(backup({ source: src, backend: faulty, archive, crypto, log, volumeSize: 512 * 1024 }));
    const r = await backup({ source: src, backend: memory, archive, crypto, log, volumeSize: 512 * 1024 });
    assert.equal(r.resumed, true);
    const stat = archive.names().find((n) => n.startsWith('offsite-stat.'));
    assert.ok(stat);
    assert.equal(statCacheComplete(archive.file(stat)), false);
  });

  it('a stat cache damaged part way: the signature chain takes over, deletions on both sides of the damage are seen', async () => {
    // Long names fill the cache's 256 KiB blocks quickly: ~900 records each.
    const spec: Spec = {};
    const long = (i: number) => `${String(i).padStart(5, '0')}-${'n'.repeat(200)}`;
    for (let i = 0; i < 3000; i++) spec[long(i)] = `file ${i}\n`;
    const e = env(tempDir('offsite-statmode-'), 't', spec);
    await sleep(RACY);
    await e.run();
    const file = e.statFile();
    assert.equal(statCacheComplete(file), true);
    // Flip a byte in the middle of the file: a block after the first fails its checksum.
    const bytes = fs.readFileSync(file);
    bytes[Math.floor(bytes.length * 0.6)] ^= 0xff;
    fs.writeFileSync(file, bytes);
    await sleep(1100);
    for (const i of [10, 1500, 1800, 2999]) fs.unlinkSync(path.join(e.src, long(i)));
    fs.writeFileSync(path.join(e.src, long(2000)), 'changed\n');
    const r = await e.run();
    assert.equal(r.stats.DeletedFiles, 4);
    assert.equal(r.stats.ChangedFiles, 2); // the file, and the folder that lost files
    assert.ok(e.log.lines.some((l) => l.includes('Ignoring the stat cache')), e.log.lines.join('\n'));
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
  });
});

describe('backup: folder listings of the previous scan', function () {
  this.timeout(60_000);

  it('an incremental reads only the folders that changed, and still stores what changed in them', async () => {
    // The walk's listings (a no-change probe would not walk at all: backupNoChange.test.ts).
    const e = env(tempDir('offsite-listings-'), 't', tree(), { noChangeProbe: false });
    const deep = path.join(e.src, 'docs', 'deep');
    fs.utimesSync(deep, 1_700_000_000, 1_700_000_000);
    await sleep(RACY);
    await e.run(); // full: lists every folder (there are no listings yet)
    const counts = () => {
      const line = e.log.lines.filter((l) => l.includes('Folder listings: ')).at(-1) ?? '';
      const m = /Folder listings: (\d+) of (\d+) folders/.exec(line);
      assert.ok(m, e.log.lines.join('\n'));
      return [Number(m[1]), Number(m[2])];
    };
    assert.deepEqual(counts(), [0, 5]);
    await e.run();
    assert.deepEqual(counts(), [5, 5], 'no change: no folder read again');
    const dirs = e.archive.names().filter((n) => n.startsWith('offsite-dirs.'));
    assert.equal(dirs.length, 1, `only the newest listings are kept: ${dirs.join(', ')}`);

    // A file added to a folder whose mtime is then set back: its ctime still says it changed.
    await sleep(1100);
    fs.writeFileSync(path.join(deep, 'sneaked-in.txt'), 'sneaked in\n');
    fs.utimesSync(deep, 1_700_000_000, 1_700_000_000);
    const r = await e.run();
    assert.deepEqual(counts(), [4, 5]);
    assert.equal(r.stats.NewFiles, 1);
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
  });

  it('a file added to the source folder after the backup began, before its walk, is stored: the walk lists the folder as it is then, not as the first check of the folder saw it', async () => {
    const e = env(tempDir('offsite-listings-'), 'late', { 'a.txt': 'alpha\n' }, { noChangeProbe: false });
    await sleep(RACY);
    await e.run(); // full: the root's listing is kept (not racy)
    await sleep(1100);
    // The file comes while the backup lists the remote, after its check of the source folder.
    const list = e.backend.list.bind(e.backend);
    e.backend.list = (o) => {
      e.backend.list = list;
      fs.writeFileSync(path.join(e.src, 'late.txt'), 'late\n');
      return list(o);
    };
    const r = await e.run();
    assert.equal(r.stats.NewFiles, 1);
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
  });
});
