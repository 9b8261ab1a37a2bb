// verify() against a changed folder: every kind of difference is reported once, for the right path,
// whether the local state comes from verify's own scan or (for paths that scan excludes) from an
// lstat of its own; untouched paths are never reported.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { verify, type VerifyOptions } from '../../../src/engine/ops/verify';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

describe('verify: differences between the backup and the folder', function () {
  this.timeout(60_000);
  let crypto: CryptoContext;
  before(async () => {
    crypto = await rsaCrypto();
  });

  const T = 1_700_000_000;
  const file = (content: string, mode = 0o644) => ({ content, mode, mtime: T });

  /** A backed-up tree, then changes of every kind to `dir` (the root, or a folder in it). */
  async function changedBackup(dir: string): Promise<{ src: string; log: MemoryLogger; opts: Omit<VerifyOptions, 'source'> }> {
    const work = tempDir('offsite-verify-');
    const src = path.join(work, 'src');
    const tree = {
      'same.txt': file('same'),
      'gone.txt': file('gone'),
      'became-dir': file('file'),
      'perm.txt': file('perm'),
      'touched.txt': file('touched'),
      'edited.txt': file('abcdef'),
      link: { symlink: 'same.txt' },
    };
    makeTree(src, dir === '.' ? tree : { 'top.txt': file('top'), [dir]: tree });
    const d = path.join(src, dir);
    for (const p of new Set([src, d])) fs.utimesSync(p, T, T); // folders: no mtime noise
    const backend = new FileBackend(path.join(work, 'vault'));
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    await backup({ source: src, backend, archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20 });

    fs.rmSync(path.join(d, 'gone.txt'));
    fs.rmSync(path.join(d, 'became-dir'));
    fs.mkdirSync(path.join(d, 'became-dir'));
    fs.chmodSync(path.join(d, 'perm.txt'), 0o600);
    fs.utimesSync(path.join(d, 'touched.txt'), T + 3600, T + 3600);
    fs.writeFileSync(path.join(d, 'edited.txt'), 'abcXef'); // same size, same mtime below
    fs.utimesSync(path.join(d, 'edited.txt'), T, T);
    fs.rmSync(path.join(d, 'link'));
    fs.symlinkSync('elsewhere', path.join(d, 'link'));
    fs.writeFileSync(path.join(d, 'fresh.txt'), 'new');
    fs.mkdirSync(path.join(d, 'fresh-dir'));
    fs.writeFileSync(path.join(d, 'fresh-dir', 'inner.txt'), 'new');
    fs.utimesSync(path.join(d, 'fresh-dir'), T, T);
    fs.symlinkSync('same.txt', path.join(d, 'fresh-link'));
    for (const p of new Set([src, d])) fs.utimesSync(p, T, T);
    const log = new MemoryLogger();
    return { src, log, opts: { backend, archive, crypto, log, compareData: true } };
  }

  const expected = (prefix: string, newFileReported: boolean) =>
    [
      ['became-dir', /^is a folder, expected a file$/],
      ['edited.txt', /^data differs$/],
      ...(newFileReported ?
        ([
          ['fresh-dir', /^new folder, not in the backup$/],
          ['fresh-dir/inner.txt', /^new file, not in the backup$/],
          ['fresh-link', /^new symlink, not in the backup$/],
          ['fresh.txt', /^new file, not in the backup$/],
        ] as const)
      : []),
      ['gone.txt', /^missing$/],
      ['link', /^points to elsewhere, expected same\.txt$/],
      ['perm.txt', /^has permissions 600, expected 644$/],
      ['touched.txt', /^has mtime 2023-11-14T23:13:20\.000Z, expected 2023-11-14T22:13:20\.000Z$/],
    ].map(([p, r]) => [prefix + (p as string), r as RegExp] as const);

  function check(differences: readonly { path: string; reason: string }[], want: ReturnType<typeof expected>): void {
    const got = [...differences].sort((a, b) => a.path.localeCompare(b.path));
    assert.deepEqual(
      got.map((x) => x.path),
      want.map(([p]) => p),
      JSON.stringify(got, null, 1),
    );
    for (let i = 0; i < want.length; i++) assert.match(got[i].reason, want[i][1], got[i].path);
  }

  it('reports each change once (local state from the scan)', async () => {
    const { src, log, opts } = await changedBackup('.');
    const r = await verify({ ...opts, source: src });
    check(r.differences, expected('', true));
    assert.equal(r.compared, 8, 'the root and the 7 backed-up paths');
    // Only the path the scan could not meet (gone.txt) was looked up again.
    assert.ok(log.lines.includes("debug: Verify compared 8 paths, 1 of them looked up outside the scan; 0 folders from the last backup's listings"), log.lines.join('\n'));
  });

  it('paths the verify rules exclude are still compared, from an lstat of their own', async () => {
    const { src, log, opts } = await changedBackup('sub');
    const r = await verify({ ...opts, source: src, rules: [{ kind: 'exclude', glob: 'sub' }] });
    // sub/fresh.txt is not reported: the rules exclude it, so it is not "new" to this selection.
    check(r.differences, expected('sub/', false));
    assert.equal(r.compared, 10, 'the root, top.txt, sub and its 7 backed-up paths');
    assert.ok(log.lines.includes("debug: Verify compared 10 paths, 8 of them looked up outside the scan; 0 folders from the last backup's listings"), log.lines.join('\n'));
  });

  it("an unchanged folder has no differences; its folders come from the backup's listings", async () => {
    const work = tempDir('offsite-verify-');
    const src = path.join(work, 'src');
    makeTree(src, { 'a.txt': 'a', sub: { 'b.txt': 'b', link: { symlink: '../a.txt' } } });
    const backend = new FileBackend(path.join(work, 'vault'));
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    await sleep(2_100); // listings of folders changed within 2 s of a scan are not reused
    await backup({ source: src, backend, archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20 });
    const log = new MemoryLogger();
    const r = await verify({ backend, archive, crypto, log, source: src, compareData: true });
    assert.deepEqual(r.differences, []);
    assert.equal(r.compared, 5);
    assert.ok(log.lines.includes("debug: Verify compared 5 paths, 0 of them looked up outside the scan; 2 folders from the last backup's listings"), log.lines.join('\n'));
    // A file added since, in a folder whose mtime is then set back as it was: the listing is not
    // trusted (the folder's ctime moved), the file is found.
    const sub = path.join(src, 'sub');
    const { atime, mtime } = fs.statSync(sub);
    fs.writeFileSync(path.join(sub, 'late.txt'), 'late');
    fs.utimesSync(sub, atime, mtime);
    const again = await verify({ backend, archive, crypto, log: new MemoryLogger(), source: src, compareData: true });
    assert.deepEqual(
      again.differences.map((d) => `${d.path}: ${d.reason}`),
      ['sub/late.txt: new file, not in the backup'],
    );
  });
});
