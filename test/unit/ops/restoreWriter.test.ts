// Where a restore writes from (restore.ts): a worker thread for a tree read from local volumes
// (file://), this thread for a remote whose volumes are downloaded (any backend without localPath:
// sftp://, s3://, rclone://, here the in-memory one) and for a single file. Same tree either way.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../../../src/engine/backend/backend';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { restore } from '../../../src/engine/ops/restore';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

describe('restore: where the files are written from', function () {
  this.timeout(60_000);
  let crypto: CryptoContext;
  before(async () => {
    crypto = await rsaCrypto();
  });

  const cases: { name: string; backend: (work: string) => Backend; tree: RegExp; file: RegExp }[] = [
    { name: 'file://', backend: (work) => new FileBackend(path.join(work, 'vault')), tree: /from a worker thread/, file: /on this thread/ },
    { name: 'a downloaded remote', backend: () => new MemoryBackend(), tree: /on this thread/, file: /on this thread/ },
  ];
  for (const c of cases) {
    it(`${c.name}: the tree ${c.tree.source}, one file ${c.file.source}, the same files`, async () => {
      const work = tempDir('offsite-restore-writer-');
      const src = path.join(work, 'src');
      makeTree(src, { 'a.txt': 'a', sub: { 'b.bin': randomBytesSeeded(300_000, 3), deeper: { 'c.txt': 'c' } } });
      const backend = c.backend(work);
      const archive = ArchiveDir.open(path.join(work, 'cache'));
      await backup({ source: src, backend, archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20 });

      const treeLog = new MemoryLogger();
      await restore({ backend, archive, crypto, log: treeLog, target: path.join(work, 'tree') });
      assert.ok(treeLog.lines.some((l) => l.startsWith('debug: Writing into') && c.tree.test(l)), treeLog.lines.join('\n'));
      assert.deepEqual(snapshotTree(path.join(work, 'tree')), snapshotTree(src));

      const fileLog = new MemoryLogger();
      await restore({ backend, archive, crypto, log: fileLog, target: path.join(work, 'one'), path: [Buffer.from('sub'), Buffer.from('b.bin')] });
      assert.ok(fileLog.lines.some((l) => l.startsWith('debug: Writing into') && c.file.test(l)), fileLog.lines.join('\n'));
      assert.ok(fs.readFileSync(path.join(work, 'one', 'sub', 'b.bin')).equals(fs.readFileSync(path.join(src, 'sub', 'b.bin'))));
    });
  }
});
