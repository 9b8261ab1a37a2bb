// Another machine's backup into the same remote, running now (the local lock only keeps runs on this
// machine apart): its set without a manifest and its temporary uploads are recent, and neither cleanup
// nor this machine's next backup (settling its own interrupted run) removes them; this machine's own
// interrupted run's temporary uploads go, however recent, as its checkpoint says they are its own. A
// restore as of its time is refused, saying it may be running.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import type { BackendFileInfo, ListOptions } from '../../../src/engine/backend/backend';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { timeToString } from '../../../src/engine/chain/time';
import { OffsiteError } from '../../../src/engine/errors';
import { MemoryLogger } from '../../../src/engine/log';
import { volumeName } from '../../../src/engine/manifest/naming';
import { backup } from '../../../src/engine/ops/backup';
import { readCheckpoint } from '../../../src/engine/ops/checkpoint';
import { cleanup } from '../../../src/engine/ops/cleanup';
import { describeInProgress, status } from '../../../src/engine/ops/inspect';
import { Repository } from '../../../src/engine/ops/repository';
import { restore } from '../../../src/engine/ops/restore';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, randomBytesSeeded } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

/** A folder backed up once (a full set) to a file:// remote, with the cache and keys that made it. */
async function backedUp() {
  const work = tempDir('offsite-inprogress-');
  const src = path.join(work, 'src');
  const vault = path.join(work, 'vault');
  makeTree(src, { 'a.txt': 'one' });
  const archive = ArchiveDir.open(path.join(work, 'cache'));
  const crypto = await rsaCrypto();
  const log = new MemoryLogger();
  await backup({ source: src, backend: new FileBackend(vault), archive, crypto, log, volumeSize: 1 << 20 });
  return { src, vault, archive, crypto, log };
}

describe('a backup running on another machine into the same remote', function () {
  this.timeout(60_000);

  it("is kept by cleanup and by this machine's next backup; this machine's interrupted run's temporary uploads go, however recent", async () => {
    const { src, vault, archive, crypto, log } = await backedUp();
    // This machine's next backup stops at its second upload: a checkpoint, one volume on the remote.
    fs.writeFileSync(path.join(src, 'big.bin'), randomBytesSeeded(3_000_000, 1));
    const faulty = new FaultBackend(new FileBackend(vault), { rules: [{ op: 'put', calls: [2], action: 'fail', kind: 'permanent' }] });
    await assert.rejects(backup({ source: src, backend: faulty, archive, crypto, log, volumeSize: 512 * 1024 }));
    const cp = readCheckpoint(archive)!;
    assert.ok(cp);
    // Its temporary upload a kill left (a process killed mid-upload leaves one), and another machine's
    // backup, running: a volume written a minute ago and the upload of its next one.
    const ours = `.offsite-part-0123456789ab-${volumeName(cp.type, cp.time, cp.startTime, 7, 'gpg')}`;
    const elsewhere = cp.time + 3600;
    const theirVolume = volumeName('full', elsewhere, undefined, 1, 'gpg');
    const theirUpload = `.offsite-part-ba9876543210-${volumeName('full', elsewhere, undefined, 2, 'gpg')}`;
    const minuteAgo = Date.now() / 1000 - 60;
    for (const n of [ours, theirVolume, theirUpload]) {
      fs.writeFileSync(path.join(vault, n), 'partial');
      fs.utimesSync(path.join(vault, n), minuteAgo, minuteAgo);
    }

    const s = await status({ backend: new FileBackend(vault), archive, crypto, log });
    assert.deepEqual(s.temporary, [ours]);
    assert.deepEqual(
      s.inProgress?.map((p) => [p.set && timeToString(p.set.time), p.files]),
      [
        [timeToString(elsewhere), [theirVolume]],
        [undefined, [theirUpload]],
      ],
    );
    const dry = await cleanup({ backend: new FileBackend(vault), archive, crypto, log });
    assert.deepEqual(dry.temporary, [ours]);
    assert.ok(!dry.remote.includes(theirVolume));
    // A restore as of its time is refused (it cannot be told from a set that lost its manifest), saying why.
    const restoreThen = (now?: () => number) => restore({ backend: new FileBackend(vault), archive, crypto, log, time: elsewhere, now, target: path.join(tempDir('offsite-inprogress-out-'), 'o') });
    await assert.rejects(restoreThen(), (e: unknown) => OffsiteError.is(e, 'integrity') && /^A backup running on another machine may be writing that set \(last written \S+ by the remote's clock\): restore again once it has finished; to restore the last complete backup anyway, give --time /.test(e.hint ?? ''));
    // By the clock the options give (as every other age the engine judges), a day later the set is no
    // longer being written.
    const dayLater = () => Date.now() + 25 * 3600 * 1000;
    await assert.rejects(restoreThen(dayLater), (e: unknown) => OffsiteError.is(e, 'integrity') && /^If a backup was interrupted, run the next backup or offsite cleanup first/.test(e.hint ?? ''));

    // The next backup settles the interrupted run: its own temporary upload goes, the other machine's
    // files stay. It judges only the temporary uploads, not the whole audit: no damage checks, which
    // read the cached manifest of every chain's full set (audit.ts setDamage).
    const damageChecked: string[] = [];
    const cachedManifestCopy = Repository.prototype.cachedManifestCopy;
    Repository.prototype.cachedManifestCopy = function (this: Repository, name: string) {
      damageChecked.push(name);
      return cachedManifestCopy.call(this, name);
    };
    try {
      await backup({ source: src, backend: new FileBackend(vault), archive, crypto, log, volumeSize: 512 * 1024 });
    } finally {
      Repository.prototype.cachedManifestCopy = cachedManifestCopy;
    }
    assert.deepEqual(damageChecked, []);
    const left = fs.readdirSync(vault);
    assert.ok(!left.includes(ours), 'our temporary upload is removed');
    assert.ok(left.includes(theirUpload) && left.includes(theirVolume), "the other machine's files are kept");

    // A day later nothing writes them any more: cleanup removes them.
    const dayAgo = Date.now() / 1000 - 25 * 3600;
    for (const n of [theirVolume, theirUpload]) fs.utimesSync(path.join(vault, n), dayAgo, dayAgo);
    await assert.rejects(restoreThen(), (e: unknown) => OffsiteError.is(e, 'integrity') && /^If a backup was interrupted, run the next backup or offsite cleanup first/.test(e.hint ?? ''));
    const r = await cleanup({ backend: new FileBackend(vault), archive, crypto, log, force: true });
    assert.deepEqual([r.remote, r.temporary, r.inProgress], [[theirVolume], [theirUpload], []]);
    assert.ok(!fs.readdirSync(vault).some((n) => n === theirVolume || n === theirUpload));
  });

  it("a restore's refusal for newer sets, one of them with its manifest (an incremental on a set that lost its own), says interrupted or damaged, not running elsewhere", async () => {
    const { src, vault, archive, crypto, log } = await backedUp();
    for (const text of ['two', 'three']) {
      await new Promise((r) => setTimeout(r, 1100)); // set times are whole seconds
      fs.writeFileSync(path.join(src, 'a.txt'), text);
      await backup({ source: src, backend: new FileBackend(vault), archive, crypto, log, volumeSize: 1 << 20 });
    }
    const incManifests = fs.readdirSync(vault).filter((n) => n.startsWith('duplicity-inc.') && n.includes('.manifest')).sort();
    assert.equal(incManifests.length, 2);
    fs.rmSync(path.join(vault, incManifests[0]));
    const out = path.join(tempDir('offsite-inprogress-out-'), 'o');
    await assert.rejects(restore({ backend: new FileBackend(vault), archive, crypto, log, target: out }), (e: unknown) => {
      assert.ok(OffsiteError.is(e, 'integrity'), String(e));
      assert.match(e.message, /^Backups newer than \S+ cannot be used: /);
      assert.match(e.hint ?? '', /^If a backup was interrupted, run the next backup or offsite cleanup first/);
      return true;
    });
  });

  it('a remote that does not say when its files were written: their sets are kept as possibly in progress, unless --keep-recent 0', async () => {
    const { vault, archive, crypto, log } = await backedUp();
    // A volume of a set without its manifest, written two days ago (which this remote does not tell).
    const volume = volumeName('full', Math.floor(Date.now() / 1000) - 3600, undefined, 1, 'gpg');
    const twoDaysAgo = Date.now() / 1000 - 48 * 3600;
    fs.writeFileSync(path.join(vault, volume), 'partial');
    fs.utimesSync(path.join(vault, volume), twoDaysAgo, twoDaysAgo);
    const undated = () => new UndatedBackend(vault);

    const s = await status({ backend: undated(), archive, crypto, log });
    assert.deepEqual(s.inProgress?.map((p) => [p.files, p.lastWrite]), [[[volume], undefined]]);
    assert.match(describeInProgress(s.inProgress![0]), /the remote does not tell when it was written/);
    const kept = await cleanup({ backend: undated(), archive, crypto, log, force: true });
    assert.deepEqual([kept.remote, kept.inProgress.map((p) => p.files)], [[], [[volume]]]);
    assert.ok(fs.existsSync(path.join(vault, volume)), 'kept');
    // Dated, it is two days old: removed with no option.
    const dated = await cleanup({ backend: new FileBackend(vault), archive, crypto, log });
    assert.deepEqual(dated.remote, [volume]);
    const removed = await cleanup({ backend: undated(), archive, crypto, log, force: true, keepRecent: 0 });
    assert.deepEqual([removed.remote, removed.inProgress], [[volume], []]);
    assert.ok(!fs.existsSync(path.join(vault, volume)));
  });
});

/** A remote whose listing gives no file times (some rclone backends, a store that does not say). */
class UndatedBackend extends FileBackend {
  override async *list(options?: ListOptions): AsyncIterable<BackendFileInfo> {
    for await (const f of super.list(options)) yield { ...f, mtime: undefined };
  }
}
