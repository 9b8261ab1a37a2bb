// status: one listing of the remote gives its sets and the leftovers of unfinished uploads (what
// cleanup removes, or keeps as written by a backup running elsewhere), not a listing and then a dry run
// of cleanupPartial.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ListOptions } from '../../../src/engine/backend/backend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { COPY_RECORDS } from '../../../src/engine/cache/copyRecords';
import { timeToString } from '../../../src/engine/chain/time';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { formatStatus, status } from '../../../src/engine/ops/inspect';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, randomBytesSeeded } from '../../helpers/tree';
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
    // Just written: a backup running on another machine may be writing them.
    const fresh = await status({ backend, archive, crypto, log });
    assert.deepEqual(backend.calls, ['list partial'], 'one listing, no dry run of cleanupPartial');
    assert.deepEqual(fresh.temporary, []);
    assert.deepEqual(fresh.inProgress?.map((p) => p.files), left.map((n) => [n]));
    assert.match(formatStatus(fresh), /In progress\? the temporary upload .*: last written .* by the remote's clock \(.*\), so a backup running on another machine may be writing it; offsite cleanup keeps it/);
    // A day and a minute later they are leftovers.
    const s = await status({ backend, archive, crypto, log, now: () => Date.now() + (24 * 3600 + 60) * 1000 });
    assert.deepEqual(s.temporary, left);
    assert.deepEqual(s.inProgress, []);
    assert.equal(s.chains.length, 1);
    assert.equal(s.chains[0].sets.length, 1, 'the partial uploads are no sets');
    assert.match(formatStatus(s), /Found 2 temporary upload\(s\) that did not finish, of an interrupted backup or of one running now \(offsite cleanup removes them\)\./);
    assert.deepEqual(await backend.cleanupPartial({ dryRun: true }), s.temporary, 'what cleanup would remove');
  });
});

describe('status: a damaged copy in the local cache is not damage of the remote', function () {
  this.timeout(60_000);

  it('a cut, changed or record-less short copy of a manifest shows no damage; a copy to be believed that lists a volume the remote lost does', async () => {
    const work = tempDir('offsite-status-copy-');
    const src = path.join(work, 'src');
    makeTree(src, { 'big.bin': randomBytesSeeded(300_000, 3) });
    const backend = new MemoryBackend();
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const crypto = await rsaCrypto();
    const log = new MemoryLogger();
    await backup({ source: src, backend, archive, crypto, log, volumeSize: 100_000 });
    const local = archive.names().find((n) => /^duplicity-full\..*\.manifest$/.test(n))!;
    const whole = fs.readFileSync(archive.file(local), 'latin1');
    const damage = async () => (await status({ backend, archive, crypto, log })).chains[0].damage;
    assert.equal(await damage(), undefined);
    const records = archive.file(COPY_RECORDS);
    const saved = path.join(work, 'records');
    fs.cpSync(records, saved, { recursive: true });
    const cases: [string, () => void][] = [
      ['cut short (its record says longer)', () => fs.writeFileSync(archive.file(local), whole.slice(0, 40), 'latin1')],
      ['a byte changed (its record has another hash)', () => fs.writeFileSync(archive.file(local), whole.replace('StartingPath', 'StartingPxth'), 'latin1')],
      ['without a record, cut after its first volume', () => {
        fs.rmSync(records, { recursive: true });
        fs.writeFileSync(archive.file(local), whole.slice(0, whole.indexOf('Volume 2')), 'latin1');
      }],
    ];
    for (const [what, damageCopy] of cases) {
      damageCopy();
      assert.equal(await damage(), undefined, what);
      fs.writeFileSync(archive.file(local), whole, 'latin1');
      fs.rmSync(records, { recursive: true, force: true });
      fs.cpSync(saved, records, { recursive: true });
    }
    // The copy is whole and recorded: the remote that lost its last volume is damaged.
    const vols = backend.names().filter((n) => /^duplicity-full\..*\.vol\d+\.difftar\.gpg$/.test(n)).sort();
    assert.ok(vols.length >= 3, vols.join(' '));
    await backend.remove(vols.at(-1)!);
    assert.match((await damage()) ?? '', /its manifest lists \d+ volume\(s\), the remote has \d+/);
  });
});

describe('status: what to do about a damaged set, as the remote stands', () => {
  const T = 1_800_000_000;
  const set = (type: 'full' | 'inc', time: number, damage?: string) => ({ type, time, volumes: 1, bytes: 10, ...(damage === undefined ? {} : { damage }) });
  const chain = (...sets: ReturnType<typeof set>[]) => ({
    startTime: sets[0].time,
    endTime: sets.at(-1)!.time,
    hasSignatures: true,
    sets,
    ...(sets[0].damage === undefined ? {} : { damage: sets[0].damage }),
  });
  const text = (...chains: ReturnType<typeof chain>[]) => formatStatus({ url: 'file:///v', chains, leftovers: [], damaged: [], temporary: [], localTemporary: [] });
  const damagedLines = (s: string) => s.split('\n').filter((l) => l.includes('Damaged: '));
  const at = (t: number) => timeToString(t);

  it('the only chain, its full set damaged: no earlier time or chain to restore is offered', () => {
    const s = text(chain(set('full', T, 'it has no volumes on the remote'), set('inc', T + 10)));
    assert.deepEqual(damagedLines(s), ['     Damaged: it has no volumes on the remote. No earlier backup here can be restored; make a new full backup (offsite backup --full).']);
    assert.match(s, /No backup chain here can be restored\./);
  });

  it('the newest chain damaged, an older good one: the time to restore is the older chain\'s last set', () => {
    const s = text(chain(set('full', T), set('inc', T + 10)), chain(set('full', T + 20, 'its volume 2 is missing on the remote')));
    assert.deepEqual(damagedLines(s), [`     Damaged: its volume 2 is missing on the remote. The newest earlier backup that shows no damage is of ${at(T + 10)} (--time ${at(T + 10)}); make a new full backup (offsite backup --full).`]);
  });

  it('an incremental damaged: the set before it (not an earlier damaged one) is the time to restore', () => {
    const s = text(chain(set('full', T), set('inc', T + 10, 'its manifest is missing'), set('inc', T + 20), set('inc', T + 30, 'its volume 1 is empty')));
    assert.deepEqual(damagedLines(s), [
      `     Damaged: its manifest is missing. The newest earlier backup that shows no damage is of ${at(T)} (--time ${at(T)}); make a new full backup (offsite backup --full).`,
      `     Damaged: its volume 1 is empty. The newest earlier backup that shows no damage is of ${at(T)} (--time ${at(T)}); make a new full backup (offsite backup --full).`,
    ]);
  });

  it('an older chain damaged, a newer good one: nothing earlier, and no new full backup asked for', () => {
    const s = text(chain(set('full', T, 'its manifest is missing')), chain(set('full', T + 20), set('inc', T + 30)));
    assert.deepEqual(damagedLines(s), ['     Damaged: its manifest is missing. No earlier backup here can be restored.']);
    assert.match(s, /Primary backup chain/);
  });
});
