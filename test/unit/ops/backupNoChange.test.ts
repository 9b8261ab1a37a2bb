// A no-change incremental decided by the no-change probe (noChangeProbe.ts) instead of a walk: the same
// set as a walk makes, the previous stat cache kept for it, and the next change still found. The probe
// is taken only when the stat cache stands for the whole tree.
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
import { statCacheComplete, statCacheWholeTree } from '../../../src/engine/scan/statCache';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree, type Spec } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

let crypto: CryptoContext;
before(async () => {
  crypto = await rsaCrypto();
});

/** A whole second: utimes can put it back exactly (its nanoseconds are 0). */
const MTIME = 1_700_000_000;
const RACY = 2100; // files changed within 2 s of a scan are read again next time (statCache.ts)

function tree(): Spec {
  return {
    'a.txt': 'alpha\n',
    'big.bin': randomBytesSeeded(300_000, 3),
    docs: { 'one.md': '# one\n', deep: { 'x.txt': { content: 'x', mtime: MTIME } } },
    link: { symlink: 'a.txt' },
    'skip.log': 'a log\n',
  };
}

function env(work: string, name: string, options: Partial<BackupOptions> = {}) {
  const src = path.join(work, name, 'src');
  makeTree(src, tree());
  const archive = ArchiveDir.open(path.join(work, name, 'cache'));
  const backend = new MemoryBackend();
  let log = new MemoryLogger();
  const run = (): Promise<BackupResult> => {
    log = new MemoryLogger();
    return backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20, ...options });
  };
  const probeLines = () => log.lines.filter((l) => l.includes('No-change probe'));
  const only = (prefix: string) => {
    const names = archive.names().filter((n) => n.startsWith(prefix) && !n.includes('.tmp'));
    assert.equal(names.length, 1, `one ${prefix} file: ${names.join(', ')}`);
    return archive.file(names[0]);
  };
  const restored = async (time?: number) => {
    const out = path.join(work, name, `out-${Date.now()}-${Math.random()}`);
    await restore({ backend, archive, crypto, log: new MemoryLogger(), target: out, time });
    return snapshotTree(out);
  };
  return { src, archive, backend, run, probeLines, statFile: () => only('offsite-stat.'), dirsFile: () => only('offsite-dirs.'), restored };
}

const STATS = ['NewFiles', 'ChangedFiles', 'DeletedFiles', 'DeltaEntries', 'SourceFiles', 'SourceFileSize', 'RawDeltaSize', 'Errors'] as const;

describe('backup: the no-change probe', function () {
  this.timeout(60_000);

  it('makes the same empty incremental as a walk, keeping the stat cache and listings for it', async () => {
    const work = tempDir('offsite-nochange-');
    const probed = env(work, 'probed');
    const walked = env(work, 'walked', { noChangeProbe: false });
    await sleep(RACY);
    for (const e of [probed, walked]) await e.run();
    const cache = fs.readFileSync(probed.statFile());
    const dirs = fs.readFileSync(probed.dirsFile());
    await sleep(1100); // a set per second
    const a = await probed.run();
    const b = await walked.run();
    assert.equal(probed.probeLines().length, 1);
    assert.match(probed.probeLines()[0], /all 9 paths as the previous backup left them .*not walking the tree/);
    assert.deepEqual(walked.probeLines(), [], 'noChangeProbe: false walks');
    assert.equal(a.type, 'inc');
    assert.equal(a.probed, true, 'the result says the probe stood for the walk');
    assert.equal(b.probed, false);
    for (const k of STATS) assert.equal(a.stats[k], b.stats[k], k);
    assert.equal(a.stats.DeltaEntries, 0);
    assert.equal(a.volumes, b.volumes);
    // Like duplicity's, an empty set has one (empty) volume: restore requires a manifest to list one.
    assert.equal(a.volumes, 1);
    // The previous set's stat cache and listings, byte for byte, under the new set's time.
    assert.match(path.basename(probed.statFile()), new RegExp(`offsite-stat\\.\\d{8}T\\d{6}Z`));
    assert.ok(fs.readFileSync(probed.statFile()).equals(cache), 'the stat cache is the previous one');
    assert.ok(fs.readFileSync(probed.dirsFile()).equals(dirs), 'the listings are the previous ones');
    assert.equal((fs.statSync(probed.statFile()).mode & 0o777).toString(8), '600');
    assert.equal(statCacheWholeTree(probed.statFile()), true);
    // The same files on the remote, and a restore of the new set gives the tree.
    const names = async (e: typeof probed) => {
      const out: string[] = [];
      for await (const f of e.backend.list()) out.push(f.name.replace(/\d{8}T\d{6}Z/g, 'T'));
      return out.sort();
    };
    assert.deepEqual(await names(probed), await names(walked));
    assert.deepEqual(await probed.restored(), snapshotTree(probed.src));
  });

  it('after a probed set, the next change is found and stored', async () => {
    const e = env(tempDir('offsite-nochange-'), 'e');
    await sleep(RACY);
    await e.run();
    await sleep(1100);
    await e.run();
    assert.equal(e.probeLines().length, 1);
    assert.match(e.probeLines()[0], /not walking/);
    await sleep(1100);
    fs.writeFileSync(path.join(e.src, 'docs', 'deep', 'x.txt'), 'y'); // same size, same mtime below
    fs.utimesSync(path.join(e.src, 'docs', 'deep', 'x.txt'), MTIME, MTIME);
    fs.writeFileSync(path.join(e.src, 'docs', 'new.txt'), 'new\n');
    const r = await e.run();
    assert.match(e.probeLines()[0], /No-change probe: docs: modified; walking the tree/);
    assert.equal(r.probed, false, 'a probe that found a change: walked');
    assert.equal(r.stats.NewFiles, 1);
    assert.equal(r.stats.ChangedFiles, 2, 'docs/ (its mtime) and docs/deep/x.txt');
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
  });

  it('is not taken when selection rules leave paths out', async () => {
    const work = tempDir('offsite-nochange-');
    const ruled = env(work, 'ruled', { rules: [{ kind: 'exclude', glob: '**/*.log' }] });
    await sleep(RACY);
    await ruled.run();
    assert.equal(statCacheComplete(ruled.statFile()), true);
    assert.equal(statCacheWholeTree(ruled.statFile()), false, 'the records are not the whole tree');
    assert.equal(statCacheWholeTree(ruled.statFile(), true), false);
    await sleep(1100);
    const again = await ruled.run();
    assert.equal(again.type, 'inc');
    assert.equal(again.stats.DeltaEntries, 0);
    assert.deepEqual(ruled.probeLines(), []);
    // Without the rules now: the cache of the ruled backups is not the whole tree, so the backup walks
    // and finds the log file they left out (a probe of that cache would have missed it).
    await sleep(1100);
    const log = new MemoryLogger();
    const r = await backup({ source: ruled.src, backend: ruled.backend, archive: ruled.archive, crypto, log, volumeSize: 1 << 20 });
    assert.equal(r.stats.NewFiles, 1, 'skip.log');
    assert.deepEqual(log.lines.filter((l) => l.includes('No-change probe')), []);
    assert.equal(statCacheWholeTree(ruled.statFile()), true, 'that walk was of the whole tree');
  });

  it('with .gitignore: taken while the rule files (in the tree and above it) stay as they were', async () => {
    // outer/ is a repository's top (its .gitignore and info/exclude apply above the root); the root
    // outer/proj has a .gitignore that leaves out *.log and itself (so no stat record shows it).
    const work = tempDir('offsite-nochange-');
    const outer = path.join(work, 'outer');
    fs.mkdirSync(path.join(outer, '.git', 'info'), { recursive: true });
    fs.writeFileSync(path.join(outer, '.gitignore'), 'cache/\n');
    const src = path.join(outer, 'proj');
    makeTree(src, { ...tree(), '.gitignore': '*.log\n.gitignore\n', cache: { 'c.bin': 'cached' }, 'keep.tmp': 'tmp\n' });
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const backend = new MemoryBackend();
    let log = new MemoryLogger();
    const run = (gitignore = true) => {
      log = new MemoryLogger();
      return backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20, gitignore });
    };
    const probeLine = () => log.lines.find((l) => l.includes('No-change probe')) ?? '(none)';
    const statFile = () => archive.file(archive.names().filter((n) => /^offsite-stat\.\d{8}T\d{6}Z$/.test(n))[0]);
    const stored = async () => {
      const out = path.join(work, `out-${Date.now()}`);
      await restore({ backend, archive, crypto, log: new MemoryLogger(), target: out });
      return snapshotTree(out).map((e) => e.path);
    };
    await sleep(RACY);
    const first = await run();
    assert.equal(statCacheWholeTree(statFile(), true), true, 'the tree .gitignore keeps, with its rule files beside');
    assert.equal(statCacheWholeTree(statFile()), false);
    assert.equal(archive.names().filter((n) => n.startsWith('offsite-rules.')).length, 1);
    const paths = await stored();
    assert.ok(!paths.includes('skip.log') && !paths.includes('cache') && !paths.includes('.gitignore'), paths.join(' '));

    await sleep(1100);
    let r = await run();
    assert.match(probeLine(), /all \d+ paths as the previous backup left them/);
    assert.equal(r.stats.SourceFiles, first.stats.SourceFiles);
    assert.equal(archive.names().filter((n) => n.startsWith('offsite-rules.')).length, 1, 'kept for the new set, the old one removed');

    // The root's own .gitignore (left out by itself: no record) no longer leaves out *.log.
    fs.writeFileSync(path.join(src, '.gitignore'), '.gitignore\n');
    await sleep(RACY);
    r = await run();
    assert.match(probeLine(), /the \.gitignore rules may have changed \(.*proj\/\.gitignore/);
    assert.equal(r.stats.NewFiles, 1, 'skip.log');
    await sleep(1100);
    await run();
    assert.match(probeLine(), /not walking the tree/);

    // Above the root: the repository's .gitignore, then its info/exclude appearing.
    fs.writeFileSync(path.join(outer, '.gitignore'), '\n');
    await sleep(RACY);
    r = await run();
    assert.match(probeLine(), /rules may have changed \(.*outer\/\.gitignore/);
    assert.equal(r.stats.NewFiles, 2, 'cache/ and cache/c.bin');
    fs.writeFileSync(path.join(outer, '.git', 'info', 'exclude'), '*.tmp\n');
    await sleep(RACY);
    r = await run();
    assert.match(probeLine(), /rules may have changed \(.*info\/exclude/);
    assert.equal(r.stats.DeletedFiles, 1, 'keep.tmp');
    await sleep(1100);
    await run();
    assert.match(probeLine(), /not walking the tree/);

    // Switching .gitignore off: the cache is not of the whole tree; the walk finds the ignored files.
    await sleep(1100);
    r = await run(false);
    assert.equal(probeLine(), '(none)');
    assert.equal(r.stats.NewFiles, 2, '.gitignore and keep.tmp');
    assert.equal(statCacheWholeTree(statFile()), true);
    // And on again: the whole-tree cache is not what .gitignore keeps; the walk drops them again.
    await sleep(1100);
    r = await run(true);
    assert.equal(probeLine(), '(none)');
    assert.equal(r.stats.DeletedFiles, 2);
    const final = await stored();
    assert.ok(!final.includes('.gitignore') && !final.includes('keep.tmp'), final.join(' '));
  });

  it('is not taken by a full backup, and a walk follows a probe that finds a change', async () => {
    const e = env(tempDir('offsite-nochange-'), 'e');
    await sleep(RACY);
    await e.run();
    await sleep(1100);
    const full = await backup({ source: e.src, backend: e.backend, archive: e.archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20, full: true });
    assert.equal(full.type, 'full');
    assert.equal(full.probed, false);
    fs.rmSync(path.join(e.src, 'docs', 'deep'), { recursive: true });
    await sleep(1100);
    const r = await e.run();
    assert.match(e.probeLines()[0], /walking the tree/);
    assert.equal(r.stats.DeletedFiles, 2);
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
  });

  it('a probed set whose manifest upload fails is resumed by the next run, and probing comes back after', async () => {
    const e = env(tempDir('offsite-nochange-'), 'e');
    await sleep(RACY);
    await e.run();
    const goodStat = e.statFile();
    const cache = fs.readFileSync(goodStat);
    await sleep(1100);
    const faulty = new FaultBackend(e.backend, { rules: [{ op: 'put', name: /\.manifest\.gpg$/, action: 'fail', kind: 'permanent' }] });
    const log = new MemoryLogger();
    await assert.rejects(backup({ source: e.src, backend: faulty, archive: e.archive, crypto, log, volumeSize: 1 << 20 }));
    assert.ok(log.lines.some((l) => l.includes('No-change probe: all 9 paths')), log.lines.join('\n'));
    // The last good set's stat cache is still the one, unchanged.
    assert.equal(e.statFile(), goodStat);
    assert.ok(fs.readFileSync(goodStat).equals(cache));
    // The next run resumes the interrupted set (a resumed backup walks: no probe) and completes it.
    await sleep(1100);
    const resumed = await e.run();
    assert.equal(resumed.resumed, true);
    assert.deepEqual(e.probeLines(), []);
    assert.equal(statCacheComplete(e.statFile()), false, 'a resumed set writes records only after its resume point');
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
    // A full walk writes a whole-tree cache again, and the run after it probes.
    await sleep(1100);
    await e.run();
    assert.equal(statCacheWholeTree(e.statFile()), true);
    await sleep(1100);
    const r = await e.run();
    assert.equal(r.stats.DeltaEntries, 0);
    assert.match(e.probeLines()[0], /not walking the tree/);
    assert.deepEqual(await e.restored(), snapshotTree(e.src));
  });
});
