// status: one listing of the remote gives its sets and the leftovers of unfinished uploads (what
// cleanup removes), not a listing and then a dry run of cleanupPartial.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import type { ListOptions } from '../../../src/engine/backend/backend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { formatStatus, status } from '../../../src/engine/ops/inspect';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';
import { bufferSource } from '../backend/conformance';

/** A memory remote that records its listings and cleanupPartial calls. */
class Counting extends MemoryBackend {
  readonly calls: string[] = [];
  override list(options: ListOptions = {}) {
    this.calls.push(options.partial ? 'list partial' : 'list');
    return super.list(options);
  }
  override cleanupPartial(options: { dryRun?: boolean } = {}) {
    this.calls.push('cleanupPartial');
    return super.cleanupPartial(options);
  }
}

describe('status (collection status of a remote)', function () {
  this.timeout(60_000);

  it('lists the remote once, and reports the unfinished uploads of that listing as cleanup would remove them', async () => {
    const work = tempDir('offsite-status-');
    const src = path.join(work, 'src');
    makeTree(src, { 'a.txt': 'a' });
    const backend = new Counting();
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const crypto = await rsaCrypto();
    const log = new MemoryLogger();
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20 });
    // Two uploads that died midway (a source that ends early), as a killed backup leaves them.
    for (const n of ['duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol1.difftar.gpg', 'x.manifest.gpg']) {
      await assert.rejects(backend.put(n, bufferSource(Buffer.alloc(10), 4, 11)));
    }
    const left = backend.partialNames();
    assert.equal(left.length, 2);
    backend.calls.length = 0;
    const s = await status({ backend, archive, crypto, log });
    assert.deepEqual(backend.calls, ['list partial'], 'one listing, no dry run of cleanupPartial');
    assert.deepEqual(s.temporary, left);
    assert.equal(s.chains.length, 1);
    assert.equal(s.chains[0].sets.length, 1, 'the partial uploads are no sets');
    assert.match(formatStatus(s), /Found 2 temporary upload\(s\) that did not finish, of an interrupted backup or of one running now \(offsite cleanup removes them\)\./);
    assert.deepEqual(await backend.cleanupPartial({ dryRun: true }), s.temporary, 'what cleanup would remove');
  });
});
