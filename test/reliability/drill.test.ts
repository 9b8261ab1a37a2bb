// Suite 8, the restore drill: `offsite verify --drill` restores a random sample of files with no local
// cache (a fresh, private cache folder: manifests and signatures come from the remote and need the
// key, as on a new machine), compares them with the source by SHA-256, reports, and removes what it
// wrote. It finds damage (a damaged volume, data that differs from an unchanged source file), tells
// files changed since the backup apart from damage, and records its outcome for reminders.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir, archiveDirFor } from '../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../src/engine/log';
import { drill } from '../../src/engine/ops/drill';
import { handle } from '../../src/engine/service';
import { offsite } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { makeTree, randomBytesSeeded } from '../helpers/tree';
import { runCase, suiteSeed } from './figures';
import { listing, rsaCrypto } from './support';

const SUITE = '8 restore drill';

describe(`reliability ${SUITE}: offsite verify --drill`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(SUITE);
  let work: string;
  let src: string;
  let vault: string;
  let url: string;
  let cacheRoot: string;
  let count: number;

  before(async () => {
    work = tempDir('offsite-drill-test-');
    src = path.join(work, 'src');
    const spec: Record<string, Record<string, Buffer | string>> = {};
    for (let d = 0; d < 4; d++) {
      spec[`dir${d}`] = {};
      for (let f = 0; f < 10; f++) spec[`dir${d}`][`f${f}.bin`] = f % 3 ? randomBytesSeeded(5_000 + f * 20_000, seed + d * 10 + f) : `text ${d}/${f}\n`;
    }
    makeTree(src, { ...spec, 'big.bin': randomBytesSeeded(1_200_000, seed), empty: '' });
    count = 42;
    vault = path.join(work, 'vault');
    url = `file://${vault}`;
    cacheRoot = path.join(work, 'cache');
    const b = await offsite(['--archive-dir', cacheRoot, 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
    assert.equal(b.code, 0, b.stderr);
    await new Promise((r) => setTimeout(r, 1100));
    fs.writeFileSync(path.join(src, 'dir1', 'f1.bin'), randomBytesSeeded(30_000, seed + 99));
    const i = await offsite(['--archive-dir', cacheRoot, 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
    assert.equal(i.code, 0, i.stderr);
  });

  /** Runs the drill through the CLI with a private TMPDIR, to see what it leaves there. */
  async function cliDrill(args: string[], u = url, s = src) {
    const tmp = tempDir('offsite-drill-tmp-');
    const r = await offsite(['--archive-dir', cacheRoot, 'verify', '--drill', '--key', RSA_SEC, ...args, u, s], { env: { TMPDIR: tmp } });
    return { ...r, leftInTmp: listing(tmp) };
  }

  it('restores a sample with no local cache, finds it identical, reports, records, and leaves nothing behind', async () => {
    await runCase(SUITE, 'healthy backup, sample of 10', undefined, async () => {
      const cacheBefore = listing(archiveDirFor(url, cacheRoot));
      // The local cache is not used: even a damaged one changes nothing.
      for (const n of fs.readdirSync(archiveDirFor(url, cacheRoot))) if (n.endsWith('.manifest')) fs.writeFileSync(path.join(archiveDirFor(url, cacheRoot), n), 'garbage');
      const r = await cliDrill(['--sample', '10']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`10 of ${count} file\\(s\\) restored, 10 identical to the source, 0 damaged, 0 changed since the backup`));
      assert.deepEqual(r.leftInTmp, [], 'the private temp folder is gone');
      const after = listing(archiveDirFor(url, cacheRoot));
      assert.deepEqual(after.filter((n) => !cacheBefore.includes(n)), ['offsite-drill.json'], 'only the record was added to the cache folder');
      const rec = JSON.parse(fs.readFileSync(path.join(archiveDirFor(url, cacheRoot), 'offsite-drill.json'), 'utf8'));
      assert.equal(rec.ok, true);
      assert.ok(Math.abs(rec.at - Date.now() / 1000) < 120);
    });
  });

  it('needs the private key, as a new machine would', async () => {
    await runCase(SUITE, 'no key', undefined, async () => {
      const r = await offsite(['--archive-dir', cacheRoot, 'verify', '--drill', url, src], { env: { OFFSITE_PASSPHRASE: undefined } });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /private key is needed/);
    });
  });

  it('a damaged volume: the files in it are reported as damaged, naming the volume (exit 1)', async () => {
    await runCase(SUITE, 'damaged volume, every file sampled', undefined, async () => {
      const v2 = path.join(tempDir('offsite-drill-dmg-'), 'vault');
      fs.cpSync(vault, v2, { recursive: true });
      const vol = fs.readdirSync(v2).find((n) => /^duplicity-full\..*\.vol2\.difftar\.gpg$/.test(n))!;
      const buf = fs.readFileSync(path.join(v2, vol));
      buf[buf.length >> 1] ^= 1;
      fs.writeFileSync(path.join(v2, vol), buf);
      const r = await cliDrill(['--sample', '1000'], `file://${v2}`);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`Difference found: .*${vol.replace(/\./g, '\\.')}`));
      assert.match(r.stdout, /[1-9]\d* damaged/);
      assert.deepEqual(r.leftInTmp, []);
    });
  });

  it('data that differs from an unchanged-looking source file is damage; a file changed since the backup is not', async () => {
    await runCase(SUITE, 'silent difference vs. changed file', undefined, async () => {
      const s2 = path.join(tempDir('offsite-drill-src-'), 'src');
      fs.cpSync(src, s2, { recursive: true, preserveTimestamps: true });
      // Same size and mtime, other bytes: only comparing data can tell.
      const silent = path.join(s2, 'dir2', 'f4.bin');
      const st = fs.statSync(silent);
      fs.writeFileSync(silent, randomBytesSeeded(st.size, seed + 7));
      fs.utimesSync(silent, st.atime, st.mtime);
      fs.appendFileSync(path.join(s2, 'dir3', 'f5.bin'), 'changed since');
      const r = await cliDrill(['--sample', '1000'], url, s2);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /Difference found: dir2\/f4\.bin: restored data .* differs from the unchanged source file/);
      assert.match(r.stdout, /Not compared: dir3\/f5\.bin: changed in the source since the backup/);
      assert.match(r.stdout, /1 damaged, 1 changed since the backup/);
    });
  });

  it('engine: the same seed picks the same sample; the service runs it and reports the last drill', async () => {
    await runCase(SUITE, 'seeded sample, service ops', seed, async () => {
      const crypto = await rsaCrypto();
      const opts = { backend: new FileBackend(vault), crypto, log: new MemoryLogger(), source: src, sample: 5, seed, tempRoot: tempDir('offsite-drill-root-') };
      // What a drill killed outright left (plain text of backed-up files): removed by the next one.
      const stale = path.join(opts.tempRoot, 'offsite-drill-999999-Ab12Cd');
      fs.mkdirSync(path.join(stale, 'restore'), { recursive: true });
      fs.writeFileSync(path.join(stale, 'restore', 'file-1'), 'plain text');
      const a = await drill(opts);
      const b = await drill(opts);
      assert.deepEqual(a.files.map((f) => f.path), b.files.map((f) => f.path));
      assert.equal(a.files.length, 5);
      assert.equal(a.filesInBackup, count);
      assert.ok(a.ok && a.matched === 5, JSON.stringify(a.files));
      assert.deepEqual(fs.readdirSync(opts.tempRoot), []);
      const remote = { url, archiveDir: tempDir('offsite-drill-svc-') };
      assert.equal(await handle({ op: 'lastDrill', remote }, { log: new MemoryLogger() }), null);
      const progress: unknown[] = [];
      const r = (await handle({ op: 'drill', remote, keys: { restoreKey: RSA_SEC }, source: src, sample: 3 }, { log: new MemoryLogger(), onProgress: (p) => progress.push(p) })) as { ok: boolean; files: unknown[] };
      assert.equal(r.ok, true);
      assert.equal(r.files.length, 3);
      const last = (await handle({ op: 'lastDrill', remote }, { log: new MemoryLogger() })) as { ok: boolean; at: number; matched: number };
      assert.equal(last.ok, true);
      assert.equal(last.matched, 3);
      assert.ok(ArchiveDir.open(archiveDirFor(url, remote.archiveDir)).has('offsite-drill.json'));
    });
  });
});
