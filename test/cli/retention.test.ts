// status, list, verify, remove-older-than, remove-all-but-n-full and cleanup through the CLI.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringToTime } from '../../src/engine/chain/time';
import { offsite } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { makeTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

describe('status, list, verify, retention and cleanup', function () {
  this.timeout(180_000);
  let work: string;
  let src: string;
  let vault: string;
  let url: string;
  let cache: string;
  const times: number[] = [];

  async function bk(...extra: string[]) {
    const r = await offsite(['--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, ...extra, src, url]);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(r.stdout).BackupTime as string;
    times.push(stringToTime(t)!);
    await sleep(1100);
  }

  before(async () => {
    work = tempDir('offsite-ret-');
    src = path.join(work, 'src');
    vault = path.join(work, 'vault');
    url = `file://${vault}`;
    cache = path.join(work, 'cache');
    makeTree(src, { 'a.txt': 'v1', 'b.txt': 'b' });
    await bk(); // chain 1: full
    fs.writeFileSync(path.join(src, 'a.txt'), 'v2');
    await bk(); // chain 1: inc
    await bk('--full'); // chain 2
    fs.rmSync(path.join(src, 'b.txt'));
    await bk(); // chain 2: inc (b deleted)
    await bk('--full'); // chain 3
  });

  it('status lists the chains and sets', async () => {
    const r = await offsite(['--archive-dir', cache, 'status', '--json', url]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.deepEqual(s.chains.map((c: { sets: { type: string }[] }) => c.sets.map((x) => x.type)), [['full', 'inc'], ['full', 'inc'], ['full']]);
    const text = await offsite(['--archive-dir', cache, 'status', url]);
    assert.match(text.stdout, /Primary backup chain/);
    assert.match(text.stdout, /No orphaned or incomplete backup sets found/);
  });

  it('list shows the files as of a time, and --history the sets where a file changed', async () => {
    const at = async (t: number) => (await offsite(['--archive-dir', cache, 'list', '--json', '--time', String(t), url])).stdout.trim().split('\n').map((l) => JSON.parse(l).path);
    assert.deepEqual(await at(times[1]), ['.', 'a.txt', 'b.txt']);
    assert.deepEqual(await at(times[3]), ['.', 'a.txt']);
    const h = await offsite(['--archive-dir', cache, 'list', '--history', 'b.txt', '--json', url]);
    assert.deepEqual(h.stdout.trim().split('\n').map((l) => JSON.parse(l).action), ['new', 'new', 'deleted']);
  });

  it('verify: 0 differences, then reports a changed file', async () => {
    const ok = await offsite(['--archive-dir', cache, 'verify', '--compare-data', '--key', RSA_SEC, url, src]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /0 difference\(s\) found/);
    fs.writeFileSync(path.join(src, 'a.txt'), 'v3');
    const bad = await offsite(['--archive-dir', cache, 'verify', '--compare-data', '--key', RSA_SEC, url, src]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /a\.txt/);
    fs.writeFileSync(path.join(src, 'a.txt'), 'v2');
  });

  it('remove-all-but-n-full lists without --force, deletes with it, never the newest chain', async () => {
    const before = fs.readdirSync(vault).sort();
    const dry = await offsite(['--archive-dir', cache, 'remove-all-but-n-full', '2', url]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /Would delete 1 backup chain/);
    assert.deepEqual(fs.readdirSync(vault).sort(), before, 'nothing deleted without --force');
    const r = await offsite(['--archive-dir', cache, 'remove-all-but-n-full', '2', '--force', url]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse((await offsite(['--archive-dir', cache, 'status', '--json', url])).stdout);
    assert.equal(s.chains.length, 2);
    assert.equal(s.chains[0].startTime, times[2]);
  });

  it('remove-older-than removes whole old chains but keeps the newest', async () => {
    const r = await offsite(['--archive-dir', cache, 'remove-older-than', 'now', '--force', url]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse((await offsite(['--archive-dir', cache, 'status', '--json', url])).stdout);
    assert.equal(s.chains.length, 1, 'the newest chain is kept even when older than the time');
    assert.equal(s.chains[0].startTime, times[4]);
    const out = path.join(work, 'out');
    assert.equal((await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, url, out])).code, 0);
  });

  /** Writes `name` in the remote folder, last modified `secondsAgo` ago. */
  function written(name: string, secondsAgo: number): string {
    const f = path.join(vault, name);
    fs.writeFileSync(f, 'partial');
    const t = (Date.now() - secondsAgo * 1000) / 1000;
    fs.utimesSync(f, t, t);
    return name;
  }

  it('cleanup lists and removes leftovers of interrupted runs, never a complete set', async () => {
    const complete = fs.readdirSync(vault).sort();
    // Leftovers of a run interrupted two days ago: a volume of a set that never got its manifest, and a temporary upload.
    written('duplicity-full.20300101T000000Z.vol1.difftar.gpg', 2 * 86400);
    written('.offsite-part-0123456789ab', 2 * 86400);
    const r0 = await offsite(['--archive-dir', cache, 'cleanup', url]);
    assert.equal(r0.code, 0, r0.stderr);
    assert.match(r0.stdout, /Would delete duplicity-full\.20300101T000000Z\.vol1\.difftar\.gpg/);
    assert.match(r0.stdout, /Would delete \.offsite-part-0123456789ab/);
    const r = await offsite(['--archive-dir', cache, 'cleanup', '--force', url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(vault).sort(), complete);
    const again = await offsite(['--archive-dir', cache, 'cleanup', url]);
    assert.match(again.stdout, /Nothing to clean up/);
  });

  it('cleanup --force keeps a set without its manifest and a temporary upload written in the last day (a backup running on another machine may be writing them), status says "In progress?"; --keep-recent sets the time, 0 deletes them', async () => {
    const complete = fs.readdirSync(vault).sort();
    // Another machine's backup, running: its first volume written 3 h ago, its second 10 min ago, one uploading now.
    const vols = [written('duplicity-inc.20300101T000000Z.to.20300102T000000Z.vol1.difftar.gpg', 3 * 3600), written('duplicity-inc.20300101T000000Z.to.20300102T000000Z.vol2.difftar.gpg', 600)];
    const temp = written('.offsite-part-ba9876543210-duplicity-inc.20300101T000000Z.to.20300102T000000Z.vol3.difftar.gpg', 60);
    const st = await offsite(['--archive-dir', cache, 'status', url]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /In progress\? 2 file\(s\) of the incomplete incremental set of 20300102T000000Z: last written \S+ by the remote's clock \(10 min ago\), so a backup running on another machine may be writing it; offsite cleanup keeps it \(--keep-recent 0 deletes it\)\./);
    assert.match(st.stdout, /In progress\? the temporary upload \.offsite-part-ba9876543210-\S+: last written \S+ by the remote's clock \(1 min ago\)/);
    assert.doesNotMatch(st.stdout, /Damaged|Found \d+ file\(s\) of incomplete backup sets|temporary upload\(s\) that did not finish|No orphaned/);
    const kept = await offsite(['--archive-dir', cache, 'cleanup', '--force', url]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /Nothing to clean up/);
    assert.match(kept.stdout, /In progress\? 2 file\(s\) of the incomplete incremental set/);
    assert.deepEqual(fs.readdirSync(vault).sort(), [...complete, ...vols, temp].sort());
    // Written more than 6 minutes ago: the set goes, the upload of a minute ago stays.
    const older = await offsite(['--archive-dir', cache, 'cleanup', '--force', '--keep-recent', '0.1', url]);
    assert.equal(older.code, 0, older.stderr);
    for (const v of vols) assert.ok(older.stdout.includes(`Deleted ${v}`), older.stdout);
    assert.deepEqual(fs.readdirSync(vault).sort(), [...complete, temp].sort());
    const all = await offsite(['--archive-dir', cache, 'cleanup', '--force', '--keep-recent', '0', url]);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(all.stdout.includes(`Deleted ${temp}`), all.stdout);
    assert.deepEqual(fs.readdirSync(vault).sort(), complete);
    const bad = await offsite(['--archive-dir', cache, 'cleanup', '--keep-recent', 'soon', url]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--keep-recent must be a number of hours, 0 or more \(got soon\)/);
  });
});
