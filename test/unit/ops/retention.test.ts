// Retention in-process: a removal interrupted at any file leaves a remote whose complete chains all
// restore, and which cleanup and a second removal bring to what an uninterrupted removal leaves.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { OffsiteError } from '../../../src/engine/errors';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { cleanup } from '../../../src/engine/ops/cleanup';
import { formatStatus, status } from '../../../src/engine/ops/inspect';
import type { CryptoContext } from '../../../src/engine/ops/remoteFiles';
import { restore } from '../../../src/engine/ops/restore';
import { removeAllButNFull, removeOlderThan } from '../../../src/engine/ops/retention';
import { manifestName, parseName, signatureName, volumeName } from '../../../src/engine/manifest/naming';
import { timeToString } from '../../../src/engine/chain/time';
import { runPython } from '../../helpers/dupSamples';
import { rsaCrypto } from '../../helpers/gpg';
import { makeTree, snapshotTree } from '../../helpers/tree';
import { tempDir } from '../../helpers/tmp';

describe('retention (in-process)', function () {
  this.timeout(120_000);
  let crypto: CryptoContext;
  let work: string;
  let baseRemote: string;
  let baseCache: string;
  const trees = new Map<number, ReturnType<typeof snapshotTree>>();

  before(async () => {
    crypto = await rsaCrypto();
    work = tempDir('offsite-retention-');
    const src = path.join(work, 'src');
    baseRemote = path.join(work, 'remote');
    baseCache = path.join(work, 'cache');
    fs.mkdirSync(baseRemote);
    makeTree(src, { 'a.txt': 'v0' });
    const archive = ArchiveDir.open(baseCache);
    let t = 1_700_000_000_000;
    // chain 1: full + 2 incrementals; chain 2: full + 1; chain 3: full.
    for (const [i, full] of [true, false, false, true, false, true].entries()) {
      fs.writeFileSync(path.join(src, 'a.txt'), `v${i}`);
      t += 100_000;
      const now = t;
      const r = await backup({ source: src, backend: new FileBackend(baseRemote), archive, crypto, log: new MemoryLogger(), volumeSize: 1 << 20, full, now: () => now });
      trees.set(r.time, snapshotTree(src));
    }
  });

  it('interrupted at every file it deletes: what is left restores, and cleanup and a second run finish the job', async () => {
    const run = (remote: string, cache: string, backend = new FileBackend(remote) as FileBackend | FaultBackend) => ({ backend, archive: ArchiveDir.open(cache), crypto, log: new MemoryLogger() });
    const clean = path.join(work, 'clean');
    fs.cpSync(baseRemote, clean, { recursive: true });
    const plan = await removeAllButNFull({ ...run(clean, path.join(work, 'clean-cache')), n: 1, force: true });
    const expected = fs.readdirSync(clean).sort();
    assert.equal(plan.chains.length, 2);
    for (let k = 1; k <= plan.files.length; k++) {
      const remote = path.join(work, `r${k}`);
      const cache = path.join(work, `c${k}`);
      fs.cpSync(baseRemote, remote, { recursive: true });
      fs.cpSync(baseCache, cache, { recursive: true });
      const faulty = new FaultBackend(new FileBackend(remote), { rules: [{ op: 'remove', calls: [k], kind: 'permanent' }] });
      await assert.rejects(removeAllButNFull({ ...run(remote, cache, faulty), n: 1, force: true }));
      // Every complete chain left restores as of its last set (which needs every set before it).
      const s = await status(run(remote, cache));
      assert.deepEqual(s.damaged, [], `k=${k}: an interrupted removal leaves leftovers, never damage`);
      for (const chain of s.chains) {
        assert.equal(chain.damage, undefined, `k=${k}`);
        const out = path.join(work, `out-${k}-${chain.endTime}`);
        await restore({ ...run(remote, cache), time: chain.endTime, target: out });
        assert.deepEqual(snapshotTree(out), trees.get(chain.endTime), `k=${k}, chain of ${chain.endTime}`);
      }
      // The files were all written seconds ago: cleanup is told no backup elsewhere writes them.
      await cleanup({ ...run(remote, cache), force: true, keepRecent: 0 });
      await removeAllButNFull({ ...run(remote, cache), n: 1, force: true });
      assert.deepEqual(fs.readdirSync(remote).sort(), expected, `k=${k}`);
      const c = await cleanup(run(remote, cache));
      assert.deepEqual([...c.remote, ...c.damaged.flatMap((d) => d.files)], [], `k=${k}`);
    }
  });

  it("the signature files of a chain go with it, also when its signature chain is longer or shorter than it, or lost its full-signatures file (as duplicity's do, or cleanup's would)", async () => {
    const names = fs.readdirSync(baseRemote).sort();
    const times = [...trees.keys()]; // chain 1: 0-2, chain 2: 3-4, chain 3: 5
    const of = (kind: string, time: number) => names.find((n) => parseName(n)?.kind === kind && parseName(n)!.endTime === time)!;
    const cases: [string, string][] = [
      ['its last incremental lost its manifest (an interrupted run): the signature chain is longer', of('manifest', times[2])],
      ['its last incremental lost its new-signatures file: the signature chain is shorter', of('signature', times[2])],
      ['its full-signatures file is missing: its new-signatures files continue nothing', of('signature', times[0])],
    ];
    for (const [what, lost] of cases) {
      const remote = path.join(work, `sig-${cases.findIndex((c) => c[1] === lost)}`);
      fs.cpSync(baseRemote, remote, { recursive: true });
      fs.rmSync(path.join(remote, lost));
      const cache = tempDir('offsite-retention-cache-');
      const plan = await removeOlderThan({ backend: new FileBackend(remote), archive: ArchiveDir.open(cache), crypto, log: new MemoryLogger(), time: times[3], force: true });
      assert.equal(plan.chains.length, 1, what);
      const left = fs.readdirSync(remote).filter((n) => parseName(n)?.kind === 'signature' && parseName(n)!.endTime < times[3]);
      assert.deepEqual(left, [], what);
    }
  });

  it('the incrementals that continue a removed chain outside it (one superseded by a later one of the same start, one on that) go with it, not left as damage cleanup keeps', async () => {
    const names = fs.readdirSync(baseRemote).sort();
    const times = [...trees.keys()]; // chain 1: 0-2, chain 2: 3-4, chain 3: 5
    const remote = path.join(work, 'superseded');
    fs.cpSync(baseRemote, remote, { recursive: true });
    // Another incremental on the full set of chain 1, older than the one chain 1 uses (so superseded by it), and one on that (orphaned).
    const loose = [
      [times[0], times[0] + 5],
      [times[0] + 5, times[1] + 3],
    ];
    const inc1 = names.filter((n) => parseName(n)?.setType === 'inc' && parseName(n)!.endTime === times[1]);
    for (const [start, end] of loose) {
      for (const n of inc1) fs.copyFileSync(path.join(baseRemote, n), path.join(remote, n.replace(/\d{8}T\d{6}Z\.to\.\d{8}T\d{6}Z/, `${timeToString(start)}.to.${timeToString(end)}`)));
    }
    const ops = { backend: new FileBackend(remote), archive: ArchiveDir.open(tempDir('offsite-retention-cache-')), crypto, log: new MemoryLogger() };
    assert.equal((await status(ops)).damaged.length, 2, 'before: both kept as damage, with reasons');
    const plan = await removeOlderThan({ ...ops, time: times[3], force: true });
    assert.equal(plan.chains.length, 1);
    assert.deepEqual(fs.readdirSync(remote).filter((n) => parseName(n)!.endTime < times[3]), []);
    assert.deepEqual((await status(ops)).damaged, []);
  });

  it('a set dated in the future (a wrong clock, here or where it was made): status says so, and retention deletes nothing, as it cannot tell which backups are the newest', async () => {
    const times = [...trees.keys()]; // chain 3 (times[5]) is 100 s after `now`
    const now = () => (times[4] + 1) * 1000;
    const remote = path.join(work, 'future');
    fs.cpSync(baseRemote, remote, { recursive: true });
    const before = fs.readdirSync(remote).sort();
    const ops = { backend: new FileBackend(remote), archive: ArchiveDir.open(tempDir('offsite-retention-cache-')), crypto, log: new MemoryLogger(), now };
    const s = await status(ops);
    assert.deepEqual(s.future, { time: times[5], now: times[4] + 1 });
    assert.match(formatStatus(s), new RegExp(`The backup of ${timeToString(times[5])} is dated in the future`));
    for (const force of [false, true]) {
      const refused = (e: unknown) => OffsiteError.is(e, 'format') && /dated in the future/.test(e.message) && /none is deleted/.test(e.message);
      await assert.rejects(removeAllButNFull({ ...ops, n: 1, force }), refused);
      await assert.rejects(removeOlderThan({ ...ops, time: times[4] + 1, force }), refused);
    }
    assert.deepEqual(fs.readdirSync(remote).sort(), before);
    // Within a minute is no skew (as backup allows).
    assert.equal((await status({ ...ops, now: () => (times[5] - 30) * 1000 })).future, undefined);
    assert.equal((await removeAllButNFull({ ...ops, now: () => (times[5] - 30) * 1000, n: 3 })).files.length, 0);
  });

  it('two machines backing up into one remote (overlapping chains): remove-all-but-n-full keeps the chain with the newest full backup and the one that ends after it, as duplicity does', async () => {
    const D = 86_400;
    const t = (k: number) => 1_800_000_000 + k * D;
    const set = (type: 'full' | 'inc', end: number, start?: number) => [volumeName(type, t(end), start === undefined ? undefined : t(start), 1, 'gpg'), manifestName(type, t(end), start === undefined ? undefined : t(start), true), signatureName(type, t(end), start === undefined ? undefined : t(start), 'gpg')];
    // An old chain; machine A's, begun on day 0 and continued up to day 4; machine B's, a full backup on day 2 continued on day 3.
    const names = [...set('full', -2), ...set('inc', -1, -2), ...set('full', 0), ...set('inc', 1, 0), ...set('inc', 4, 1), ...set('full', 2), ...set('inc', 3, 2)];
    const duplicity = runPython<Record<string, number[]>>(PY_REMOVE_ALL_BUT_N_FULL, { names, ns: [1, 2, 3, 4] });
    assert.deepEqual({ ...duplicity }, { 1: [t(-1)], 2: [t(-1)], 3: [], 4: [] }, "duplicity's choice");
    for (const n of [1, 2, 3, 4]) {
      const remote = tempDir('offsite-retention-two-');
      for (const name of names) fs.writeFileSync(path.join(remote, name), 'x');
      const ops = { backend: new FileBackend(remote), archive: ArchiveDir.open(tempDir('offsite-retention-cache-')), crypto, log: new MemoryLogger(), now: () => t(10) * 1000 };
      const plan = await removeAllButNFull({ ...ops, n, force: true });
      assert.deepEqual(plan.chains, duplicity[n], `n=${n}`);
      // B's chain (the newest full backup) is never the one to go, nor A's, which has the newest data.
      assert.ok(fs.existsSync(path.join(remote, manifestName('full', t(2), undefined, true))), `n=${n}`);
      assert.ok(fs.existsSync(path.join(remote, manifestName('inc', t(4), t(1), true))), `n=${n}`);
      if (n === 1) {
        assert.deepEqual(
          plan.kept.map((k) => [k.startTime, k.reason]),
          [
            [t(2), 'the restorable chain with the newest full backup'],
            [t(0), `it ends after ${timeToString(t(2))}, the newest full backup (it overlaps that chain: a backup from another machine into this remote?)`],
          ],
        );
      }
    }
  });
});

/** duplicity's remove-all-but-n-full (dup_main.remove_all_but_n_full): the end times of the chains it removes, for each n. */
const PY_REMOVE_ALL_BUT_N_FULL = `
import gettext, json, sys
gettext.install('duplicity')
from duplicity import dup_collections, log
log.setup(); log.setverbosity(log.ERROR)
class Backend: pass
sc = json.load(sys.stdin)
names = [n.encode() for n in sc['names']]
cs = dup_collections.CollectionsStatus(Backend(), None, 'replicate')
chains, cs.orphaned_backup_sets, cs.incomplete_backup_sets = cs.get_backup_chains(names)
cs.all_backup_chains = cs.get_sorted_chains(chains)
sig_chains, _ = cs.get_signature_chains(False, filelist=names)
cs.set_matched_chain_pair(sig_chains, cs.all_backup_chains)
cs.values_set = 1
print(json.dumps({str(n): [c.end_time for c in cs.get_chains_older_than(cs.get_nth_last_full_backup_time(n))] for n in sc['ns']}))
`;
