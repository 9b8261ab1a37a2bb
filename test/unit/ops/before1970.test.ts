// Paths with modification times before 1970: duplicity's format stores whole seconds from 1970 on and
// such a time as 0 (duplicity warns "has negative mtime, treating as 0"). A backup says so once per
// path it stores, verify says so instead of claiming equality silently, and neither calls it a change.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { listFiles } from '../../../src/engine/ops/inspect';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { verify } from '../../../src/engine/ops/verify';
import { indexToString } from '../../../src/engine/pathIndex';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

describe('modification times before 1970', function () {
  this.timeout(60_000);
  let crypto: CryptoContext;
  before(async () => {
    crypto = await rsaCrypto();
  });

  // A Date: fs.utimes takes a negative number of seconds for "now".
  const OLD = new Date('1960-01-01T00:00:00Z');
  const setOld = (...ps: string[]) => {
    for (const p of ps) fs.utimesSync(p, OLD, OLD);
  };
  const warned = (log: MemoryLogger, what: RegExp) => log.lines.filter((l) => l.startsWith('warn: ') && what.test(l));

  it('backup warns once per stored path, stores 0; verify warns and finds no difference; an unchanged incremental is quiet', async () => {
    const work = tempDir('offsite-1970-');
    const src = path.join(work, 'src');
    makeTree(src, { d: { f: 'x' }, big: Buffer.alloc(200_000, 7), ok: 'y' });
    setOld(path.join(src, 'd', 'f'), path.join(src, 'big'), path.join(src, 'd'));
    const backend = new FileBackend(path.join(work, 'vault'));
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const log = new MemoryLogger();
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    const before1970 = /has a modification time before 1970 \(1960-01-01T00:00:00\.000Z\): stored as 1970-01-01/;
    assert.deepEqual(warned(log, before1970).map((l) => l.split(' ')[1]).sort(), ['big', 'd', 'd/f'], log.lines.join('\n'));

    const stored = new Map<string, number>();
    for await (const f of listFiles({ backend, archive, crypto, log: new MemoryLogger() })) stored.set(indexToString(f.index), f.meta.mtime);
    assert.equal(stored.get('d'), 0);
    assert.equal(stored.get('d/f'), 0);

    const vlog = new MemoryLogger();
    const r = await verify({ backend, archive, crypto, log: vlog, source: src, compareData: true });
    assert.deepEqual(r.differences, []);
    assert.deepEqual(warned(vlog, /is before 1970; the backup holds 1970-01-01/).map((l) => l.split(' ')[1]).sort(), ['big:', 'd/f:', 'd:']);

    await sleep(1100);
    const again = new MemoryLogger();
    const inc = await backup({ source: src, backend, archive, crypto, log: again, volumeSize: 1 << 20 });
    assert.equal(inc.stats.NewFiles + inc.stats.ChangedFiles, 0);
    assert.deepEqual(warned(again, /before 1970/), []);
  });

  it('verify still reports a file stored with a later time and now dated before 1970', async () => {
    const work = tempDir('offsite-1970-');
    const src = path.join(work, 'src');
    makeTree(src, { f: { content: 'x', mtime: 1_700_000_000 } });
    const backend = new FileBackend(path.join(work, 'vault'));
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    await backup({ source: src, backend, archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20 });
    setOld(path.join(src, 'f'));
    const r = await verify({ backend, archive, crypto, log: new MemoryLogger(), source: src });
    assert.deepEqual(r.differences.map((d) => d.path), ['f']);
    assert.match(r.differences[0].reason, /has mtime 1960-01-01T00:00:00\.000Z, expected 2023-/);
  });
});
