// status, cleanup and retention through the CLI on remotes that are damaged or hold an interrupted
// backup: a set that cannot be restored never counts as a kept chain, cleanup never removes a set
// with its manifest nor one that complete sets continue, and status says what cleanup and the next
// backup will do. Real file:// remotes; the interrupted backups are made in-process (a put that fails
// for good) into the cache folder the CLI then uses.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultBackend } from '../../src/engine/backend/faultBackend';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir, archiveDirFor } from '../../src/engine/cache/archiveDir';
import { stringToTime } from '../../src/engine/chain/time';
import { MemoryLogger } from '../../src/engine/log';
import { backup } from '../../src/engine/ops/backup';
import { readCheckpoint } from '../../src/engine/ops/checkpoint';
import { encodeToFile } from '../../src/engine/ops/remoteFiles';
import { offsite } from '../helpers/cli';
import { RSA_PUB, RSA_SEC, rsaCrypto } from '../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

interface Remote {
  work: string;
  src: string;
  vault: string;
  url: string;
  cache: string;
  times: number[];
}

function remote(spec: Parameters<typeof makeTree>[1]): Remote {
  const work = tempDir('offsite-damage-');
  const src = path.join(work, 'src');
  const vault = path.join(work, 'vault');
  makeTree(src, spec);
  return { work, src, vault, url: `file://${vault}`, cache: path.join(work, 'cache'), times: [] };
}

async function bk(r: Remote, ...extra: string[]): Promise<string> {
  const res = await offsite(['--archive-dir', r.cache, 'backup', '--json', '--encrypt-key', RSA_PUB, ...extra, r.src, r.url]);
  assert.equal(res.code, 0, res.stderr);
  const t = JSON.parse(res.stdout).BackupTime as string;
  r.times.push(stringToTime(t)!);
  await sleep(1100);
  return t;
}

const cli = (r: Remote, ...args: string[]) => offsite(['--archive-dir', r.cache, ...args]);
const files = (r: Remote) => fs.readdirSync(r.vault).sort();
const only = (r: Remote, re: RegExp) => files(r).filter((n) => re.test(n));

async function restores(r: Remote, ...extra: string[]): Promise<boolean> {
  const out = path.join(r.work, `out-${Math.random().toString(36).slice(2)}`);
  const res = await offsite(['--archive-dir', path.join(r.work, 'fresh-cache'), 'restore', '--key', RSA_SEC, ...extra, r.url, out]);
  return res.code === 0;
}

describe('status, cleanup and retention on damaged and interrupted remotes', function () {
  this.timeout(180_000);

  describe('a chain whose full set cannot be restored is no chain to keep', () => {
    it('a stray empty manifest named like a newer full backup: retention keeps the real chain and says why', async () => {
      const r = remote({ 'a.txt': 'one' });
      await bk(r);
      const real = files(r);
      fs.writeFileSync(path.join(r.vault, 'duplicity-full.20991231T000000Z.manifest.gpg'), '');
      const st = await cli(r, 'status', r.url);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /Primary backup chain:\n {2}Chain start time: .*\(20\d\d/);
      assert.match(st.stdout, /Damaged backup chain \(not restorable: its full set: its manifest duplicity-full\.20991231T000000Z\.manifest\.gpg is empty\)/);
      for (const args of [['remove-all-but-n-full', '1'], ['remove-older-than', 'now']]) {
        const res = await cli(r, ...args, '--force', r.url);
        assert.equal(res.code, 0, res.stderr);
        assert.match(res.stdout, /nothing deleted/, args.join(' '));
        assert.match(res.stdout, /20991231T000000Z: damaged \(its full set: its manifest .* is empty\), not counted as a kept chain, and not deleted/);
        for (const f of real) assert.ok(files(r).includes(f), `${args[0]} kept ${f}`);
      }
      assert.ok(await restores(r));
    });

    it("the newest full set's only volume is missing: status shows it damaged, retention keeps the older complete chain", async () => {
      const r = remote({ 'a.txt': 'one' });
      await bk(r);
      const first = files(r);
      fs.appendFileSync(path.join(r.src, 'a.txt'), 'two');
      const t2 = await bk(r, '--full');
      fs.rmSync(path.join(r.vault, `duplicity-full.${t2}.vol1.difftar.gpg`));
      const st = await cli(r, 'status', r.url);
      assert.match(st.stdout, /Primary backup chain:\n(?:.*\n){5} {3}Full .* 1 {3}\d+\n\nDamaged backup chain/);
      assert.match(st.stdout, /Damaged backup chain \(not restorable: its full set: it has no volumes on the remote\)/);
      assert.doesNotMatch(st.stdout, /No orphaned or incomplete backup sets found/);
      const json = JSON.parse((await cli(r, 'status', '--json', r.url)).stdout);
      assert.deepEqual(json.chains.map((c: { damage?: string }) => c.damage), [undefined, 'it has no volumes on the remote']);
      for (const args of [['remove-all-but-n-full', '1'], ['remove-older-than', 'now']]) {
        const res = await cli(r, ...args, '--force', r.url);
        assert.equal(res.code, 0, res.stderr);
        assert.match(res.stdout, /nothing deleted/);
        for (const f of first) assert.ok(files(r).includes(f), `${args[0]} kept ${f}`);
      }
      assert.ok(await restores(r, '--time', String(r.times[0])));

      // The next backup does not add incrementals to that chain: it starts a new one.
      const next = await cli(r, 'backup', '--json', '--encrypt-key', RSA_PUB, r.src, r.url);
      assert.equal(next.code, 0, next.stderr);
      assert.equal(JSON.parse(next.stdout).BackupType, 'full');
      assert.match(next.stderr, new RegExp(`The last backup chain cannot be restored \\(its full set of ${t2}: it has no volumes on the remote\\): starting a new chain`));
      assert.ok(await restores(r));
    });

    it("an incremental set's volume is missing: the next backup starts a new chain, the sets before it and the new one restore", async () => {
      const r = remote({ 'a.txt': 'one', 'b.txt': 'bee' });
      await bk(r);
      fs.appendFileSync(path.join(r.src, 'a.txt'), 'two');
      const t2 = await bk(r);
      fs.appendFileSync(path.join(r.src, 'b.txt'), 'three');
      await bk(r);
      const [vol] = only(r, new RegExp(`^duplicity-inc\\.[^.]+\\.to\\.${t2}\\.vol1\\.difftar\\.gpg$`));
      assert.ok(vol, 'the second set has a volume');
      fs.rmSync(path.join(r.vault, vol));
      fs.appendFileSync(path.join(r.src, 'a.txt'), 'four');
      const next = await cli(r, 'backup', '--json', '--encrypt-key', RSA_PUB, r.src, r.url);
      assert.equal(next.code, 0, next.stderr);
      assert.equal(JSON.parse(next.stdout).BackupType, 'full', 'an incremental on the damaged set could not be restored');
      assert.match(next.stderr, new RegExp(`The last backup chain cannot be restored past its incremental set of ${t2} \\(it has no volumes on the remote\\): starting a new chain`));
      const out = path.join(r.work, 'latest');
      const res = await offsite(['--archive-dir', path.join(r.work, 'fresh-cache'), 'restore', '--key', RSA_SEC, r.url, out]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(fs.readFileSync(path.join(out, 'a.txt'), 'utf8'), 'onetwofour');
      assert.equal(fs.readFileSync(path.join(out, 'b.txt'), 'utf8'), 'beethree');
      assert.ok(await restores(r, '--time', String(r.times[0])), 'the full set before the damage still restores');
    });

    it('damaged chains are not counted: older chains go, a damaged one newer than every chain kept stays; a cached manifest listing more volumes shows the damage', async () => {
      const r = remote({ 'a.txt': 'one', 'big.bin': randomBytesSeeded(1_500_000, 3) });
      const t1 = await bk(r, '--volsize', '1');
      const t2 = await bk(r, '--full', '--volsize', '1');
      // Only the writer's cached manifest can tell that chain 2 lacks its last volume.
      assert.ok(only(r, new RegExp(`^duplicity-full\\.${t2}\\.vol2\\.`)).length === 1);
      fs.rmSync(path.join(r.vault, `duplicity-full.${t2}.vol2.difftar.gpg`));
      const t3 = await bk(r, '--full', '--volsize', '1');
      const st = await cli(r, 'status', r.url);
      assert.match(st.stdout, /Damaged backup chain \(not restorable: its full set: its manifest lists 2 volume\(s\), the remote has 1\)/);
      assert.equal((st.stdout.match(/^Primary backup chain/gm) ?? []).length, 1);

      const keep2 = await cli(r, 'remove-all-but-n-full', '2', '--force', r.url);
      assert.equal(keep2.code, 0, keep2.stderr);
      assert.match(keep2.stdout, /nothing deleted/, 'two restorable chains: chain 1 and chain 3');
      assert.match(keep2.stdout, new RegExp(`${t2}: damaged .*not deleted: it is newer than the oldest restorable chain kept`));

      const keep1 = await cli(r, 'remove-all-but-n-full', '1', '--force', r.url);
      assert.equal(keep1.code, 0, keep1.stderr);
      assert.match(keep1.stdout, new RegExp(`Deleted 2 backup chain\\(s\\) ending at: ${t1}, ${t2}`));
      assert.deepEqual(files(r).filter((n) => !n.includes(t3)), []);
      assert.ok(await restores(r));
    });
  });

  describe('cleanup removes leftovers, never damage', () => {
    async function threeSets(): Promise<Remote & { full: string; inc1: string; inc2: string }> {
      const r = remote({ 'a.txt': 'a', 'big.bin': randomBytesSeeded(1_500_000, 4) });
      const full = await bk(r, '--volsize', '1');
      fs.appendFileSync(path.join(r.src, 'a.txt'), 'b');
      const inc1 = await bk(r);
      fs.appendFileSync(path.join(r.src, 'a.txt'), 'c');
      const inc2 = await bk(r);
      return { ...r, full, inc1, inc2 };
    }

    it("the full set's manifest missing: cleanup --force deletes nothing, says the cache holds the manifest, and that copy brings the backup back", async () => {
      const r = await threeSets();
      const manifest = `duplicity-full.${r.full}.manifest.gpg`;
      fs.rmSync(path.join(r.vault, manifest));
      const before = files(r);
      const st = await cli(r, 'status', r.url);
      assert.match(st.stdout, new RegExp(`Damaged full set of ${r.full} \\(\\d+ file\\(s\\), offsite cleanup keeps them\\): its manifest ${manifest.replace(/\./g, '\\.')} is missing, and 2 complete set\\(s\\) after it`));
      assert.match(st.stdout, /The local cache still holds the missing manifest/);
      assert.doesNotMatch(st.stdout, /cleanup removes/);

      const res = await cli(r, 'cleanup', '--force', r.url);
      assert.equal(res.code, 0, res.stderr);
      assert.doesNotMatch(res.stdout, /Deleted duplicity/);
      assert.match(res.stdout, new RegExp(`Kept ${before.length} file\\(s\\) of the damaged full set of ${r.full}`));
      const cached = /The local cache still holds the missing manifest \(([^)]+)\)/.exec(res.stdout)?.[1];
      assert.ok(cached && fs.existsSync(cached), `the cached manifest is still there: ${res.stdout}`);
      assert.deepEqual(files(r), before, 'nothing deleted');

      const restore = await offsite(['--archive-dir', path.join(r.work, 'c2'), 'restore', '--key', RSA_SEC, r.url, path.join(r.work, 'refused')]);
      assert.equal(restore.code, 1);
      assert.match(restore.stderr, new RegExp(`Backups cannot be used: ${manifest.replace(/\./g, '\\.')}.* missing on the remote`));

      // What the advice says: the copy, encrypted to the backup's key and uploaded, makes the sets usable again.
      await encodeToFile(fs.readFileSync(cached), path.join(r.vault, manifest), await rsaCrypto());
      assert.ok(await restores(r));
    });

    it("an incremental's manifest missing: cleanup keeps it and the complete set after it, and still removes a real leftover", async () => {
      const r = await threeSets();
      fs.rmSync(path.join(r.vault, `duplicity-inc.${r.full}.to.${r.inc1}.manifest.gpg`));
      const damaged = files(r);
      // A set without a manifest that nothing continues: the leftover of a run interrupted two days ago.
      const leftover = `duplicity-inc.${r.inc2}.to.20991231T000000Z.vol1.difftar.gpg`;
      fs.writeFileSync(path.join(r.vault, leftover), 'partial');
      const twoDaysAgo = Date.now() / 1000 - 2 * 86400;
      fs.utimesSync(path.join(r.vault, leftover), twoDaysAgo, twoDaysAgo);
      const st = await cli(r, 'status', r.url);
      assert.match(st.stdout, /Found 1 file\(s\) of incomplete backup sets that nothing depends on \(offsite cleanup removes them\)/);
      assert.match(st.stdout, new RegExp(`Damaged incremental set of ${r.inc1} .*1 complete set\\(s\\) after it \\(${r.inc2}\\)`));
      const res = await cli(r, 'cleanup', '--force', r.url);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(res.stdout.split('\n').filter((l) => l.startsWith('Deleted')), [`Deleted ${leftover}`]);
      assert.deepEqual(files(r), damaged);
      assert.ok(await restores(r, '--time', r.full));
    });
  });

  describe('an interrupted backup: status, cleanup and the next backup agree', () => {
    /** A backup of `r.src` that stops for good at the `failAt`th upload, in the cache folder the CLI uses. */
    async function interrupted(r: Remote, failAt: number, volumeSize: number) {
      const archive = ArchiveDir.open(archiveDirFor(r.url, r.cache));
      const faulty = new FaultBackend(new FileBackend(r.vault), { rules: [{ op: 'put', calls: [failAt], action: 'fail', kind: 'permanent' }] });
      await assert.rejects(backup({ source: r.src, backend: faulty, archive, crypto: await rsaCrypto(), log: new MemoryLogger(), volumeSize }));
      const cp = readCheckpoint(archive);
      assert.ok(cp);
      return { archive, checkpoint: cp };
    }

    it('that cannot be resumed (every volume ends inside a file): status says why and that cleanup removes it, cleanup does, and the next backup gives the same reason', async () => {
      const r = remote({ 'a.txt': 'one' });
      await bk(r);
      fs.writeFileSync(path.join(r.src, 'big.bin'), randomBytesSeeded(3_000_000, 5));
      const { archive, checkpoint } = await interrupted(r, 3, 512 * 1024);
      assert.equal(checkpoint.resume, undefined, 'no volume ended between two files');
      const vols = only(r, /^duplicity-inc\..*\.vol\d+\.difftar\.gpg$/);
      assert.ok(vols.length >= 2, vols.join());
      const reason = '(?:its volume 1 ends|each of its volumes 1–\\d+ ends) inside a file, and a backup resumes only after a volume that ends between two files';

      const st = await cli(r, 'status', r.url);
      assert.match(st.stdout, new RegExp(`Found ${vols.length} file\\(s\\) of the interrupted incremental set of \\w+, which cannot be resumed \\(${reason}\\): the next backup or offsite cleanup removes them\\.`));
      const dry = await cli(r, 'cleanup', r.url);
      for (const v of vols) assert.match(dry.stdout, new RegExp(`Would delete ${v.replace(/\./g, '\\.')}`));

      // The next backup, instead of cleanup, removes them and says why.
      const copy = path.join(r.work, 'vault-copy');
      fs.cpSync(r.vault, copy, { recursive: true });
      fs.cpSync(r.cache, `${r.cache}-copy`, { recursive: true });
      const next = await cli(r, 'backup', '--encrypt-key', RSA_PUB, r.src, r.url);
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, new RegExp(`Not resuming the interrupted backup of \\w+ \\(${reason}\\): removing what it uploaded`));
      assert.doesNotMatch(next.stderr, /no volume of it was complete/);

      // cleanup --force, on the copy: the volumes go, and so does the checkpoint that pointed to them.
      fs.rmSync(r.vault, { recursive: true });
      fs.renameSync(copy, r.vault);
      fs.rmSync(r.cache, { recursive: true });
      fs.renameSync(`${r.cache}-copy`, r.cache);
      const res = await cli(r, 'cleanup', '--force', r.url);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(only(r, /^duplicity-inc\./), []);
      assert.equal(readCheckpoint(archive), undefined);
      assert.match((await cli(r, 'status', r.url)).stdout, /No orphaned or incomplete backup sets found/);
      const after = await cli(r, 'backup', '--encrypt-key', RSA_PUB, r.src, r.url);
      assert.equal(after.code, 0, after.stderr);
      assert.doesNotMatch(after.stderr, /Warning/);
    });

    it('that can be resumed: status says the next backup resumes it, cleanup keeps it, and the next backup does', async () => {
      const spec: Record<string, Buffer> = { 'a.txt': Buffer.from('one') };
      const r = remote(spec);
      await bk(r);
      for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(r.src, `f${String(i).padStart(2, '0')}.bin`), randomBytesSeeded(300_000, 10 + i));
      const { checkpoint } = await interrupted(r, 6, 512 * 1024);
      assert.ok(checkpoint.resume, 'a resume point was recorded');
      const vols = only(r, /^duplicity-inc\..*\.vol\d+\.difftar\.gpg$/);
      assert.ok(vols.length >= 1);

      const st = await cli(r, 'status', r.url);
      assert.match(st.stdout, new RegExp(`Found ${vols.length} file\\(s\\) of the interrupted incremental set of \\w+: the next backup \\(of the same folder, to the same keys\\) resumes it, and offsite cleanup keeps them\\.`));
      assert.doesNotMatch(st.stdout, /cleanup removes/);
      const res = await cli(r, 'cleanup', '--force', r.url);
      assert.equal(res.code, 0, res.stderr);
      assert.doesNotMatch(res.stdout, /duplicity-inc/);
      assert.match(res.stdout, new RegExp(`Kept ${vols.length} file\\(s\\) of the interrupted incremental set of \\w+: the next backup .* resumes it`));
      for (const v of vols) assert.ok(files(r).includes(v));

      const next = await cli(r, '--verbose', 'backup', '--encrypt-key', RSA_PUB, r.src, r.url);
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, /Resuming the interrupted incremental backup/);
      const out = path.join(r.work, 'out');
      assert.equal((await offsite(['--archive-dir', r.cache, 'restore', '--key', RSA_SEC, r.url, out])).code, 0);
      assert.deepEqual(snapshotTree(out), snapshotTree(r.src));
    });
  });
});
