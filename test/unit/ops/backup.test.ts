// The backup operation in-process, on the memory and fault backends: what it reads, what it stores,
// resuming an interrupted backup, and cancelling one.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { isCancellation, OffsiteError } from '../../../src/engine/errors';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { readCheckpoint } from '../../../src/engine/ops/checkpoint';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { restore } from '../../../src/engine/ops/restore';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

let crypto: CryptoContext;
before(async () => {
  crypto = await rsaCrypto();
});

function env(spec: Parameters<typeof makeTree>[1]) {
  const work = tempDir('offsite-ops-');
  const src = path.join(work, 'src');
  makeTree(src, spec);
  return { work, src, archive: ArchiveDir.open(path.join(work, 'cache')), log: new MemoryLogger() };
}

async function restored(backend: MemoryBackend | FaultBackend, archive: ArchiveDir, work: string): Promise<ReturnType<typeof snapshotTree>> {
  const out = path.join(work, `out-${Math.random().toString(36).slice(2)}`);
  await restore({ backend, archive, crypto, log: new MemoryLogger(), target: out });
  return snapshotTree(out);
}

describe('backup (in-process)', function () {
  this.timeout(60_000);

  it('does not open unchanged files at all on an incremental', async () => {
    const { work, src, archive, log } = env({ 'a.txt': 'a', 'b.txt': 'b', sub: { 'c.bin': randomBytesSeeded(100_000, 1) } });
    const backend = new MemoryBackend();
    // Files changed within 2 s of a scan are "racy" (their times may not show a change yet) and are
    // read again next time; these were made long enough before.
    await sleep(2100);
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'b.txt'), 'changed');
    // The backup reads source files with synchronous calls (bench/README.md), and either kind counts.
    const opened: string[] = [];
    const realOpen = fs.promises.open;
    // The module object itself (the namespace import's properties are read-only views of it).
    const fsModule = require('node:fs') as typeof fs;
    const realOpenSync = fsModule.openSync;
    const note = (p: fs.PathLike) => {
      if (String(p).startsWith(src)) opened.push(path.relative(src, String(p)));
    };
    fs.promises.open = (async (p: fs.PathLike, ...rest: unknown[]) => {
      note(p);
      return (realOpen as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(p, ...rest);
    }) as typeof fs.promises.open;
    fsModule.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
      note(p);
      return (realOpenSync as (...a: unknown[]) => number)(p, ...rest);
    }) as typeof fs.openSync;
    let r;
    try {
      r = await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    } finally {
      fs.promises.open = realOpen;
      fsModule.openSync = realOpenSync;
    }
    assert.deepEqual(opened, ['b.txt']);
    assert.equal(r.type, 'inc');
    assert.equal(r.stats.ChangedFiles, 1);
    assert.deepEqual(await restored(backend, archive, work), snapshotTree(src));
  });

  it('stores a changed big file as a small delta', async () => {
    const big = randomBytesSeeded(3_000_000, 2);
    const { work, src, archive, log } = env({ 'big.bin': big });
    const backend = new MemoryBackend();
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    await sleep(1100);
    const fd = fs.openSync(path.join(src, 'big.bin'), 'r+');
    fs.writeSync(fd, Buffer.from('patched!'), 0, 8, 1_500_000);
    fs.closeSync(fd);
    const r = await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    assert.ok(r.stats.RawDeltaSize < 5000, `delta of ${r.stats.RawDeltaSize} bytes`);
    assert.deepEqual(await restored(backend, archive, work), snapshotTree(src));
  });

  it('compresses the signature archive even when its sums look random (repeated data, as in a database file)', async () => {
    // 32 MiB of one random 128 KiB page repeated: 16384 signature blocks of 2 KiB, whose 12-byte sums
    // repeat every 64 blocks (768 bytes). Byte by byte they look random (the entropy sample would store
    // them), yet deflate makes a few kilobytes of them; stored, they would be ≥ 192 KiB.
    const page = randomBytesSeeded(128 * 1024, 3);
    const { src, archive, log } = env({ 'app.db': Buffer.concat(Array.from({ length: 256 }, () => page)) });
    const backend = new MemoryBackend();
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 64 << 20 });
    const sig: number[] = [];
    for await (const f of backend.list()) if (f.name.includes('signatures')) sig.push(f.size);
    assert.equal(sig.length, 1);
    assert.ok(sig[0] < 20_000, `signature archive of ${sig[0]} bytes`);
  });

  it("writes the manifest's file list with duplicity's quoting, from the paths it recorded", async () => {
    const { src, archive, log } = env({ 'plain.txt': 'a', 'with space.txt': 'b', "it's.txt": 'c', 'back\\slash.txt': 'd', 'd i r': { 'x"y.txt': 'e' } });
    const backend = new MemoryBackend();
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    const manifest = archive.names().find((n) => /^duplicity-full\.\d{8}T\d{6}Z\.manifest$/.test(n));
    assert.ok(manifest, `no manifest in ${archive.names().join(' ')}`);
    const text = fs.readFileSync(archive.file(manifest), 'latin1');
    const list = text.slice(text.indexOf('Filelist '));
    // Spelled out: duplicity's Quote() escapes spaces, quotes and backslashes as \xNN inside double quotes.
    assert.equal(
      list.split('\n').slice(0, 6).join('\n'),
      [
        'Filelist 5',
        '    new      "back\\x5cslash.txt"',
        '    new      "d\\x20i\\x20r/x\\x22y.txt"',
        '    new      "it\\x27s.txt"',
        '    new      plain.txt',
        '    new      "with\\x20space.txt"',
      ].join('\n'),
    );
  });

  it('resumes an interrupted backup after the volumes already uploaded', async () => {
    const spec: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) spec[`f${String(i).padStart(2, '0')}.bin`] = randomBytesSeeded(300_000, 10 + i);
    const { work, src, archive, log } = env(spec);
    const memory = new MemoryBackend();
    // The 6th put fails for good: the run stops with volumes 1..5 (or so) uploaded.
    const faulty = new FaultBackend(memory, { rules: [{ op: 'put', calls: [6], action: 'fail', kind: 'permanent' }] });
    await assert.rejects(backup({ source: src, backend: faulty, archive, crypto, log, volumeSize: 512 * 1024 }));
    const cp = readCheckpoint(archive);
    assert.ok(cp?.resume, 'a resume point was recorded');
    const kept = cp.resume.volumes.length;
    assert.ok(kept >= 1);
    const puts: string[] = [];
    const counting = new FaultBackend(memory, { rules: [] });
    const r = await backup({ source: src, backend: counting, archive, crypto, log, volumeSize: 512 * 1024 });
    for (const c of counting.calls) if (c.op === 'put') puts.push(c.name!);
    assert.equal(r.resumed, true);
    for (let n = 1; n <= kept; n++) assert.ok(!puts.some((p) => p.endsWith(`.vol${n}.difftar.gpg`)), `volume ${n} was not uploaded again`);
    assert.equal(readCheckpoint(archive), undefined);
    assert.equal(r.stats.NewFiles, 13);
    assert.deepEqual(await restored(memory, archive, work), snapshotTree(src));
  });

  it('a resumed backup interrupted again before its first put says the next run resumes it, which does, to a set that restores whole', async () => {
    const spec: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) spec[`f${String(i).padStart(2, '0')}.bin`] = randomBytesSeeded(300_000, 70 + i);
    const { work, src, archive } = env(spec);
    const files = new FileBackend(path.join(work, 'vault'));
    const volumeSize = 512 * 1024;
    const stopped = (log: MemoryLogger) => log.lines.filter((l) => l.includes('The backup stopped'));
    // 1: the 6th put is refused: volumes before it are uploaded, with a resume point.
    const log1 = new MemoryLogger();
    await assert.rejects(backup({ source: src, backend: new FaultBackend(files, { rules: [{ op: 'put', calls: [6], kind: 'permanent' }] }), archive, crypto, log: log1, volumeSize }));
    const first = readCheckpoint(archive);
    assert.ok(first?.resume, log1.lines.join('\n'));
    const kept = first.resume.volumes.length;
    assert.ok(kept >= 1);
    // 2: resumed, and its very first put is refused (nothing of this run reaches the remote).
    const log2 = new MemoryLogger();
    const second = new FaultBackend(files, { rules: [{ op: 'put', calls: [1], kind: 'permanent' }] });
    await assert.rejects(backup({ source: src, backend: second, archive, crypto, log: log2, volumeSize }), (e) => !isCancellation(e));
    assert.ok(log2.lines.some((l) => l.includes('Resuming the interrupted full backup')), log2.lines.join('\n'));
    assert.equal(second.calls.filter((c) => c.op === 'put').length, 1, 'the run stopped at its first put');
    assert.equal(stopped(log2).length, 1, log2.lines.join('\n'));
    assert.match(stopped(log2)[0], /the next run resumes it after f\d\d\.bin/);
    const again = readCheckpoint(archive);
    assert.equal(again?.time, first.time);
    assert.equal(again?.resume?.volumes.length, kept, 'the resume point is where the first run left it');
    // 3: resumed to the end, without uploading the kept volumes again.
    const log3 = new MemoryLogger();
    const third = new FaultBackend(files, { rules: [] });
    const r = await backup({ source: src, backend: third, archive, crypto, log: log3, volumeSize });
    assert.equal(r.resumed, true);
    assert.equal(r.time, first.time);
    const puts = third.calls.filter((c) => c.op === 'put').map((c) => c.name!);
    for (let n = 1; n <= kept; n++) assert.ok(!puts.some((p) => p.endsWith(`.vol${n}.difftar.gpg`)), `volume ${n} was not uploaded again`);
    assert.deepEqual(log3.lines.filter((l) => l.startsWith('warn: ')), [], 'no warning on the way');
    assert.equal(readCheckpoint(archive), undefined);
    assert.equal(r.stats.NewFiles, 13);
    const out = path.join(work, 'out');
    await restore({ backend: files, archive, crypto, log: new MemoryLogger(), target: out });
    assert.deepEqual(snapshotTree(out), snapshotTree(src));
    // A fresh machine (no local cache) restores it too.
    const fresh = path.join(work, 'out-fresh');
    await restore({ backend: files, archive: ArchiveDir.open(path.join(work, 'cache-fresh')), crypto, log: new MemoryLogger(), target: fresh });
    assert.deepEqual(snapshotTree(fresh), snapshotTree(src));
  });

  it('a resumed incremental, interrupted twice, counts each path once in its statistics and restores whole', async () => {
    const name = (i: number) => `f${String(i).padStart(2, '0')}.bin`;
    const spec: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) spec[name(i)] = randomBytesSeeded(300_000, 70 + i);
    const { work, src, archive } = env(spec);
    const files = new FileBackend(path.join(work, 'vault'));
    const volumeSize = 512 * 1024;
    await sleep(2100); // not "racy": the incremental trusts the stat cache for the files left alone
    await backup({ source: src, backend: files, archive, crypto, log: new MemoryLogger(), volumeSize });
    await sleep(1100);
    // Every other file changes: each volume ends with a changed file, and unchanged ones (counted,
    // nothing stored) follow it before the next volume begins.
    for (let i = 0; i < 12; i += 2) fs.writeFileSync(path.join(src, name(i)), randomBytesSeeded(310_000, 170 + i));
    fs.rmSync(path.join(src, name(5)));
    await assert.rejects(backup({ source: src, backend: new FaultBackend(files, { rules: [{ op: 'put', calls: [6], kind: 'permanent' }] }), archive, crypto, log: new MemoryLogger(), volumeSize }));
    assert.ok(readCheckpoint(archive)?.resume, 'a resume point was recorded');
    await assert.rejects(backup({ source: src, backend: new FaultBackend(files, { rules: [{ op: 'put', calls: [1], kind: 'permanent' }] }), archive, crypto, log: new MemoryLogger(), volumeSize }));
    const r = await backup({ source: src, backend: files, archive, crypto, log: new MemoryLogger(), volumeSize });
    assert.equal(r.type, 'inc');
    assert.equal(r.resumed, true);
    const names = fs.readdirSync(src);
    assert.equal(r.stats.SourceFiles, names.length + 1, 'the files and the root, each once');
    assert.equal(r.stats.SourceFileSize, names.reduce((n, f) => n + fs.statSync(path.join(src, f)).size, 0));
    assert.deepEqual([r.stats.NewFiles, r.stats.ChangedFiles, r.stats.DeletedFiles], [0, 7, 1]);
    const out = path.join(work, 'out');
    await restore({ backend: files, archive: ArchiveDir.open(path.join(work, 'cache-fresh')), crypto, log: new MemoryLogger(), target: out });
    assert.deepEqual(snapshotTree(out), snapshotTree(src));
  });

  it('says the next run resumes or removes what was uploaded only when something may have been', async () => {
    const spec = { 'a.bin': randomBytesSeeded(100_000, 3) };
    const stopped = (log: MemoryLogger): string[] => log.lines.filter((l) => l.includes('The backup stopped'));
    // The first put is refused: nothing reached the remote.
    const refused = env(spec);
    const permanent = new FaultBackend(new MemoryBackend(), { rules: [{ op: 'put', calls: [1], action: 'fail', kind: 'permanent' }] });
    await assert.rejects(backup({ source: refused.src, backend: permanent, archive: refused.archive, crypto, log: refused.log, volumeSize: 1 << 20 }));
    assert.deepEqual(stopped(refused.log), []);
    // The first put loses its connection: its file may be there.
    const lost = env(spec);
    const transient = new FaultBackend(new MemoryBackend(), { rules: [{ op: 'put', calls: [1], action: 'fail', kind: 'transient' }] });
    await assert.rejects(backup({ source: lost.src, backend: transient, archive: lost.archive, crypto, log: lost.log, volumeSize: 1 << 20 }));
    assert.equal(stopped(lost.log).length, 1, lost.log.lines.join('\n'));
  });

  it('a cancelled backup leaves no set and no checkpoint behind', async () => {
    const spec: Record<string, Buffer> = {};
    for (let i = 0; i < 8; i++) spec[`f${i}.bin`] = randomBytesSeeded(400_000, 40 + i);
    const { src, archive, log } = env(spec);
    const memory = new MemoryBackend();
    const ac = new AbortController();
    const slow = new FaultBackend(memory, { rules: [{ op: 'put', action: 'delay', delayMs: 100 }] });
    setTimeout(() => ac.abort(), 300);
    await assert.rejects(backup({ source: src, backend: slow, archive, crypto, log, volumeSize: 256 * 1024, signal: ac.signal }), (e) => isCancellation(e));
    assert.deepEqual(memory.names(), []);
    assert.equal(readCheckpoint(archive), undefined);
  });

  it('cancelling while volumes are being written, at many points, never leaves an unhandled error (the engine process would die)', async () => {
    // The bug this guards: a volume's temp file destroyed by the cancel while a write to it was in
    // flight emitted 'error' with no listener, and the engine process exited (found in the extension host).
    const spec: Record<string, Buffer | string> = {};
    for (let i = 0; i < 6; i++) spec[`blob${i}.bin`] = randomBytesSeeded(8_000_000, 60 + i);
    for (let i = 0; i < 100; i++) spec[`t${i}.txt`] = `line ${i} `.repeat(4000);
    const { src, work, log } = env(spec);
    const outcomes: string[] = [];
    for (let round = 0; round < 12; round++) {
      const archive = ArchiveDir.open(path.join(work, `cache-${round}`));
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 30 + round * 90);
      try {
        await backup({ source: src, backend: new MemoryBackend(), archive, crypto, log, volumeSize: 8 << 20, signal: ac.signal });
        outcomes.push('done');
      } catch (e) {
        assert.ok(isCancellation(e), `round ${round}: ${(e as Error).message}`);
        outcomes.push('cancelled');
      }
      // An error emitted after the cancel would surface here, in a later turn of the event loop.
      await sleep(50);
    }
    assert.ok(outcomes.includes('cancelled'), outcomes.join(' '));
  });

  it('an unknown source folder is a clear error', async () => {
    const { work, archive, log } = env({});
    await assert.rejects(backup({ source: path.join(work, 'nope'), backend: new MemoryBackend(), archive, crypto, log, volumeSize: 1 << 20 }), (e) => OffsiteError.is(e, 'notFound'));
  });

  it("a cache folder whose temporary folder cannot be made: a clear error naming the cache, and the lock released (the extension's engine process lives on)", async () => {
    const { src, archive, log } = env({ 'a.txt': 'a' });
    fs.writeFileSync(archive.file('tmp'), ''); // a file where the folder should be: mkdir fails, even as root
    const backend = new MemoryBackend();
    await assert.rejects(backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 }), (e) => {
      assert.ok(OffsiteError.is(e, 'permission'), String(e));
      assert.match(e.message, new RegExp(`local cache folder ${archive.dir}`));
      assert.match(e.hint ?? '', /--archive-dir/);
      return true;
    });
    assert.equal(fs.existsSync(archive.file('lockfile')), false, 'the lock is released');
    fs.rmSync(archive.file('tmp'));
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 }); // not 'locked' by this live process
  });
});
