// `offsite restore` and bad input: every failure gives exit 1 and one clear line on stderr naming the
// problem, writes nothing outside the target, and leaves existing files alone.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OFFSITE, offsite, run } from '../helpers/cli';
import { forgeFullSet } from '../helpers/forge';
import { ECC_SEC, RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const PROTECTED_PUB = path.resolve(__dirname, '../fixtures/keys/protected-pub.asc');
const PROTECTED_SEC = path.resolve(__dirname, '../fixtures/keys/protected-sec.asc');
const PROTECTED_PASSPHRASE = 'offsite-test-passphrase'; // see test/fixtures/keys/README.md

/** One line on stderr, starting with "offsite: ". */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('Warning: '));
  assert.equal(lines.length, 1, `one error line expected, got:\n${stderr}`);
  assert.match(lines[0], /^offsite: /);
  return lines[0];
}

/** Everything in `dir` (names only, recursively), to check nothing appeared around a target. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      out.push(path.join(rel, n));
      const p = path.join(d, n);
      if (fs.lstatSync(p).isDirectory()) walk(p, path.join(rel, n));
    }
  };
  walk(dir, '');
  return out;
}

/**
 * `offsite restore` of the remote folder `vault` (in `box`, made by root) run as 'nobody': the remote,
 * a copy of the key and a fresh cache folder are opened to that user first.
 */
async function restoreAsNobody(box: string, vault: string, target: string, opts: { cache: string; force?: boolean }) {
  // Remote files are private (0600); this remote is shared with the user the restore runs as.
  fs.chmodSync(box, 0o777);
  fs.chmodSync(vault, 0o755);
  for (const n of fs.readdirSync(vault)) fs.chmodSync(path.join(vault, n), 0o644);
  const key = path.join(box, 'key-for-nobody.asc');
  if (!fs.existsSync(key)) fs.copyFileSync(RSA_SEC, key);
  fs.chmodSync(key, 0o644);
  const cache = path.join(box, opts.cache);
  fs.mkdirSync(cache, { recursive: true });
  fs.chmodSync(cache, 0o777);
  const args = ['--archive-dir', cache, 'restore', '--key', key, ...(opts.force ? ['--force'] : []), `file://${vault}`, target];
  return run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, OFFSITE, ...args], { env: { HOME: box, OFFSITE_PASSPHRASE: '' } });
}

describe('offsite restore', function () {
  this.timeout(120_000);
  let work: string;
  let src: string;
  let url: string;
  let cache: string;
  let firstTime: number;

  before(async () => {
    work = tempDir('offsite-restore-');
    src = path.join(work, 'src');
    url = `file://${path.join(work, 'vault')}`;
    cache = path.join(work, 'cache');
    makeTree(src, {
      'a.txt': 'first version\n',
      docs: { 'guide.md': '# guide\n', 'deep': { 'x.bin': randomBytesSeeded(300_000, 3) } },
      'big.bin': randomBytesSeeded(2_200_000, 5),
    });
    const r = await offsite(['--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
    assert.equal(r.code, 0, r.stderr);
    firstTime = Math.floor(Date.now() / 1000);
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'a.txt'), 'second version\n');
    const r2 = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
    assert.equal(r2.code, 0, r2.stderr);
  });

  it('restores one file as of an earlier time at TARGET/REL, and one folder', async () => {
    const out = path.join(tempDir(), 'out');
    const r = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--time', String(firstTime), '--path', 'a.txt', url, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(out, 'a.txt'), 'utf8'), 'first version\n');
    assert.deepEqual(fs.readdirSync(out), ['a.txt']);
    const out2 = path.join(tempDir(), 'out');
    const r2 = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--path', 'docs', url, out2]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(snapshotTree(path.join(out2, 'docs')), snapshotTree(path.join(src, 'docs')));
  });

  it('accepts duplicity time syntax: an interval and a date', async () => {
    // "2s" must reach back no further than the first set: on a slow machine the tests before
    // this one may take less than two seconds.
    await sleep(Math.max(0, (firstTime + 2) * 1000 + 50 - Date.now()));
    for (const t of ['2s', 'now', '2000-01-01']) {
      const out = path.join(tempDir(), 'out');
      const r = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--time', t, '--path', 'a.txt', url, out]);
      if (t === '2000-01-01') {
        assert.equal(r.code, 1);
        assert.match(oneLine(r.stderr), /No backup as old as .*\. Give a later --time$/);
      } else assert.equal(r.code, 0, `${t}: ${r.stderr}`);
    }
    const bad = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--time', 'yesterdayish', url, path.join(tempDir(), 'o')]);
    assert.equal(bad.code, 1);
    assert.match(oneLine(bad.stderr), /yesterdayish/);
  });

  it('refuses a non-empty target and leaves its files alone; --force writes into it', async () => {
    const target = tempDir();
    fs.writeFileSync(path.join(target, 'mine.txt'), 'precious');
    const r = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, url, target]);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /not empty.*--force/);
    assert.deepEqual(fs.readdirSync(target), ['mine.txt']);
    const f = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--force', url, target]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(fs.readFileSync(path.join(target, 'mine.txt'), 'utf8'), 'precious');
    assert.equal(fs.readFileSync(path.join(target, 'a.txt'), 'utf8'), 'second version\n');
  });

  it('refuses an empty target name, a link to nothing and a path through a file, creating nothing', async () => {
    // As 'nobody', who cannot write into '/': were the empty name taken as '' + '/' + name again,
    // this test would fail on EACCES instead of restoring into the machine's root.
    const dir = tempDir();
    fs.chmodSync(dir, 0o777);
    const empty = await run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, OFFSITE, '--archive-dir', path.join(dir, 'cache'), 'restore', '--key', RSA_SEC, url, ''], { cwd: dir, env: { HOME: dir } });
    assert.equal(empty.code, 1);
    assert.match(oneLine(empty.stderr), /restore target is empty/);
    fs.symlinkSync('nowhere', path.join(dir, 'link'));
    fs.writeFileSync(path.join(dir, 'file'), 'mine');
    const before = listing(dir);
    const link = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, url, path.join(dir, 'link')]);
    assert.equal(link.code, 1);
    assert.match(oneLine(link.stderr), /link\b.*symbolic link to nothing \(nowhere\)/);
    const through = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, url, path.join(dir, 'file', 'sub')]);
    assert.equal(through.code, 1);
    assert.match(oneLine(through.stderr), /file\/sub cannot be used: ENOTDIR/);
    assert.deepEqual(listing(dir), before);
    assert.equal(fs.readFileSync(path.join(dir, 'file'), 'utf8'), 'mine');
  });

  it("--force --path under the user's own symlink: refused, and the message blames the target, not the backup", async () => {
    const box = tempDir();
    const elsewhere = path.join(box, 'elsewhere');
    const target = path.join(box, 'target');
    fs.mkdirSync(elsewhere);
    fs.mkdirSync(target);
    fs.symlinkSync(elsewhere, path.join(target, 'docs'));
    const r = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--force', '--path', 'docs/guide.md', url, target]);
    assert.equal(r.code, 1, r.stderr);
    const line = oneLine(r.stderr);
    assert.match(line, /docs\/guide\.md \(docs in the target is not a folder but a symlink \(following it could write outside the target\)\)/);
    assert.match(line, /No other file was restored; files in the target were in the way and were left as they are: move them away, or restore into an empty folder$/);
    assert.doesNotMatch(line, /Everything else|tampered/);
    assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing written through the symlink');
    assert.equal(fs.readlinkSync(path.join(target, 'docs')), elsewhere, 'the symlink left as it is');
  });

  it('device files: restored as root, as duplicity does (exit 0, verify finds no difference); as another user left out, not blamed on the backup', async () => {
    const box = tempDir('offsite-dev-');
    const vault = `file://${path.join(box, 'vault')}`;
    const src = path.join(box, 'src');
    const out = path.join(box, 'out');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'a\n');
    if (process.getuid?.() === 0) {
      await run('mknod', ['-m', '640', path.join(src, 'nulldev'), 'c', '1', '3']);
      const b = await offsite(['--archive-dir', path.join(box, 'c'), 'backup', '--encrypt-key', RSA_PUB, src, vault]);
      assert.equal(b.code, 0, b.stderr);
      const r = await offsite(['--archive-dir', path.join(box, 'c2'), 'restore', '--key', RSA_SEC, vault, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const st = fs.lstatSync(path.join(out, 'nulldev'));
      assert.ok(st.isCharacterDevice());
      assert.equal(st.rdev, fs.lstatSync(path.join(src, 'nulldev')).rdev);
      assert.equal(st.mode & 0o7777, 0o640);
      const v = await offsite(['--archive-dir', path.join(box, 'c2'), 'verify', '--key', RSA_SEC, vault, out]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /0 difference\(s\)/);
    } else {
      await forgeFullSet(path.join(box, 'vault'), 1_700_000_000, [
        { name: 'snapshot/./', type: 'dir', mode: 0o755 },
        { name: 'snapshot/a.txt', data: 'a\n' },
        { name: 'snapshot/nulldev', type: 'chr' },
      ]);
    }
    // The same backup restored by a user who is not root (as root, through setpriv).
    const asUser = path.join(box, 'as-user');
    const r = process.getuid?.() === 0 ? await restoreAsNobody(box, path.join(box, 'vault'), asUser, { cache: 'c3' }) : await offsite(['--archive-dir', path.join(box, 'c3'), 'restore', '--key', RSA_SEC, vault, asUser]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Warning: Not restoring nulldev: device files can be made only by root; restore as root to restore it/);
    const line = oneLine(r.stderr);
    assert.match(line, /Everything else was restored; some could not be made on this system \(see the warnings\)$/);
    assert.doesNotMatch(line, /tampered/);
    assert.equal(fs.readFileSync(path.join(asUser, 'a.txt'), 'utf8'), 'a\n');
    assert.equal(fs.existsSync(path.join(asUser, 'nulldev')), false);
  });

  it('as a user who is not root: --force writes into its own read-only folders, and leaves out what another user\'s folder holds', async () => {
    const box = tempDir('offsite-ro-');
    fs.chmodSync(box, 0o777);
    const s = path.join(box, 'src');
    makeTree(s, { rodir: { f: 'backup\n' }, zdir: { file: 'later\n' } });
    fs.chmodSync(path.join(s, 'rodir'), 0o555);
    const b = await offsite(['--archive-dir', path.join(box, 'c0'), 'backup', '--encrypt-key', RSA_PUB, s, `file://${path.join(box, 'vault')}`]);
    assert.equal(b.code, 0, b.stderr);
    const asNobody = (target: string, cache: string, force: boolean) => restoreAsNobody(box, path.join(box, 'vault'), target, { cache, force });
    const mine = path.join(box, 'mine');
    fs.mkdirSync(mine, { mode: 0o777 });
    fs.chmodSync(mine, 0o777);
    const first = await asNobody(mine, 'c1', false);
    assert.equal(first.code, 0, first.stderr);
    fs.chmodSync(mine, 0o755);
    fs.chownSync(mine, fs.statSync(path.join(mine, 'rodir')).uid, fs.statSync(path.join(mine, 'rodir')).gid);
    // Again with --force into that restore, whose rodir is read-only (0555, as in the backup).
    const again = await asNobody(mine, 'c2', true);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(fs.statSync(path.join(mine, 'rodir')).mode & 0o777, 0o555, "the backup's mode again");
    assert.equal(fs.readFileSync(path.join(mine, 'zdir', 'file'), 'utf8'), 'later\n');
    // A read-only folder of root's in the target: its member is left out, the rest restored.
    const other = path.join(box, 'other');
    makeTree(other, { rodir: { f: 'root\'s\n' } });
    fs.chmodSync(path.join(other, 'rodir'), 0o555);
    fs.chmodSync(other, 0o777);
    const r = await asNobody(other, 'c3', true);
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneLine(r.stderr), /rodir\/f \(the target does not let this user write it .*files in the target were in the way/);
    assert.equal(fs.readFileSync(path.join(other, 'rodir', 'f'), 'utf8'), "root's\n");
    assert.equal(fs.readFileSync(path.join(other, 'zdir', 'file'), 'utf8'), 'later\n');
  });

  it('without a key: says the private key is needed', async () => {
    const out = path.join(tempDir(), 'out');
    const r = await offsite(['--archive-dir', path.join(tempDir(), 'c'), 'restore', url, out]);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /private key is needed.*--key/);
    assert.equal(fs.existsSync(out), false);
  });

  it('with the wrong secret key: says no key matches', async () => {
    const out = path.join(tempDir(), 'out');
    const r = await offsite(['--archive-dir', path.join(tempDir(), 'c'), 'restore', '--key', ECC_SEC, url, out]);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /key/i);
    assert.ok(!fs.existsSync(out) || fs.readdirSync(out).length === 0);
  });

  it('with a wrong passphrase: says so, and a right one works', async () => {
    const w = tempDir('offsite-pp-');
    const s = path.join(w, 'src');
    makeTree(s, { 'f.txt': 'protected\n' });
    const u = `file://${path.join(w, 'vault')}`;
    const b = await offsite(['--archive-dir', path.join(w, 'c'), 'backup', '--encrypt-key', PROTECTED_PUB, s, u]);
    assert.equal(b.code, 0, b.stderr);
    const bad = await offsite(['--archive-dir', path.join(w, 'c'), 'restore', '--key', PROTECTED_SEC, u, path.join(w, 'o1')], { env: { OFFSITE_PASSPHRASE: 'not it' } });
    assert.equal(bad.code, 1);
    const line = oneLine(bad.stderr);
    assert.match(line, /Wrong passphrase.*Check OFFSITE_PASSPHRASE/);
    assert.ok(!line.includes('not it'), 'the passphrase never appears in messages');
    const good = await offsite(['--archive-dir', path.join(w, 'c'), 'restore', '--key', PROTECTED_SEC, u, path.join(w, 'o2')], { env: { OFFSITE_PASSPHRASE: PROTECTED_PASSPHRASE } });
    assert.equal(good.code, 0, good.stderr);
    assert.equal(fs.readFileSync(path.join(w, 'o2', 'f.txt'), 'utf8'), 'protected\n');
  });

  it("unlocks gpg's protected key without openpgp.js's 62 MiB S2K buffers: a one-file restore stays small", async () => {
    // gpg 2.2 exports protected keys with the largest S2K count (65,011,712 bytes hashed); openpgp.js
    // builds that input in one buffer per key packet, both at once: this restore peaked at ~182 MiB.
    const w = tempDir('offsite-s2k-');
    const s = path.join(w, 'src');
    makeTree(s, { 'f.txt': 'protected\n' });
    const u = `file://${path.join(w, 'vault')}`;
    assert.equal((await offsite(['--archive-dir', path.join(w, 'c'), 'backup', '--encrypt-key', PROTECTED_PUB, s, u])).code, 0);
    // bin/offsite as users run it (its sh line's Node flags), under GNU time for the peak RSS.
    const r = await run('/usr/bin/time', ['-f', 'peak-kb %M', OFFSITE, '--archive-dir', path.join(w, 'c'), 'restore', '--key', PROTECTED_SEC, '--path', 'f.txt', u, path.join(w, 'o')], {
      env: { OFFSITE_PASSPHRASE: PROTECTED_PASSPHRASE },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(w, 'o', 'f.txt'), 'utf8'), 'protected\n');
    const kb = Number(/peak-kb (\d+)/.exec(r.stderr)?.[1]);
    assert.ok(kb > 10_000 && kb < 140 * 1024, `peak RSS ${Math.round(kb / 1024)} MiB`);
  });

  it('a restore killed with SIGKILL mid-write leaves a temporary file; the next restore into the target removes such files of dead runs, and nothing of the user', async () => {
    const w = tempDir('offsite-killed-');
    const s = path.join(w, 'src');
    makeTree(s, { 'big.bin': randomBytesSeeded(24 << 20, 21), sub: { 'small.txt': 'small\n' } });
    const u = `file://${path.join(w, 'vault')}`;
    const c = path.join(w, 'c');
    const b = await offsite(['--archive-dir', c, 'backup', '--encrypt-key', RSA_PUB, s, u]);
    assert.equal(b.code, 0, b.stderr);
    const target = path.join(w, 'out');
    fs.mkdirSync(target);
    // Killed the moment its first temporary file appears (big.bin's: the write has just begun).
    const child = spawn(process.execPath, [OFFSITE, '--archive-dir', c, 'restore', '--key', RSA_SEC, u, target], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    const watcher = fs.watch(target, (_event, name) => {
      if (String(name).startsWith('.offsite-restore-')) child.kill('SIGKILL');
    });
    const [, signal] = await exited;
    watcher.close();
    assert.equal(signal, 'SIGKILL');
    const temps = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('.offsite-restore-'));
    const left = temps(target);
    assert.equal(left.length, 1, `the killed restore left its temporary file: ${fs.readdirSync(target).join(' ')}`);
    assert.ok(!fs.existsSync(path.join(target, 'big.bin')));
    // The same command again: a target holding only a dead run's temporary counts as empty.
    let r = await offsite(['--archive-dir', c, 'restore', '--key', RSA_SEC, u, target]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(temps(target), []);
    assert.match(r.stderr, new RegExp(`Removed \\S*${left[0]}, a temporary file of a restore that was interrupted \\(process ${child.pid} is gone\\)`));
    assert.ok(fs.readFileSync(path.join(target, 'big.bin')).equals(fs.readFileSync(path.join(s, 'big.bin'))));

    // What another run killed in a folder further down leaves, and files the next restore must keep: a
    // running restore's temporary (this process is alive), a dead one's of another host (a shared
    // mount: its pids mean nothing here), the user's own files of similar names (not of the form, or not
    // a private file as a restore makes).
    const dead = child.pid!;
    const host = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
    const other = host === '00000000' ? '11111111' : '00000000';
    const write = (rel: string, content: string, mode: number) => {
      fs.writeFileSync(path.join(target, rel), content);
      fs.chmodSync(path.join(target, rel), mode); // whatever the umask
    };
    write(`sub/.offsite-restore-${host}-${dead}-0123456789ab-7`, 'partial', 0o600);
    const keep = [
      `.offsite-restore-${host}-${process.pid}-0123456789ab-1`,
      `.offsite-restore-${other}-${dead}-0123456789ab-1`,
      '.offsite-restore-notes.txt',
      `sub/.offsite-restore-${host}-${dead}-abcdefabcdef-2`,
    ];
    write(keep[0], 'live', 0o600);
    write(keep[1], 'another host', 0o600);
    write(keep[2], 'mine', 0o600);
    write(keep[3], 'mine too', 0o644);
    r = await offsite(['--archive-dir', c, 'restore', '--key', RSA_SEC, '--force', u, target]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(temps(target).sort(), keep.slice(0, 3).sort());
    assert.deepEqual(temps(path.join(target, 'sub')), [path.basename(keep[3])]);
    assert.equal(r.stderr.match(/temporary file of a restore that was interrupted/g)?.length, 1, r.stderr);
    assert.ok(fs.readFileSync(path.join(target, 'big.bin')).equals(fs.readFileSync(path.join(s, 'big.bin'))));
    assert.equal(fs.readFileSync(path.join(target, 'sub', 'small.txt'), 'utf8'), 'small\n');
    // Not empty now: the user's files count.
    r = await offsite(['--archive-dir', c, 'restore', '--key', RSA_SEC, u, target]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not empty/);
  });

  describe('damaged remote files', () => {
    let vault: string;
    let cache2: string;
    beforeEach(() => {
      vault = path.join(tempDir('offsite-dmg-'), 'vault');
      fs.cpSync(path.join(work, 'vault'), vault, { recursive: true });
      cache2 = path.join(tempDir(), 'c');
    });
    const vol = (n: number) => fs.readdirSync(vault).find((f) => new RegExp(`^duplicity-full\\..*\\.vol${n}\\.difftar\\.gpg$`).test(f))!;

    it('a flipped byte in a volume: hash mismatch naming the volume', async () => {
      const f = path.join(vault, vol(2));
      const buf = fs.readFileSync(f);
      buf[buf.length >> 1] ^= 0x01;
      fs.writeFileSync(f, buf);
      const r = await offsite(['--archive-dir', cache2, 'restore', '--key', RSA_SEC, `file://${vault}`, path.join(tempDir(), 'o')]);
      assert.equal(r.code, 1);
      const line = oneLine(r.stderr);
      assert.match(line, /SHA1 hash mismatch/);
      assert.ok(line.includes(vol(2)), line);
    });

    it('a truncated volume: hash mismatch', async () => {
      const f = path.join(vault, vol(1));
      fs.truncateSync(f, fs.statSync(f).size - 100);
      const r = await offsite(['--archive-dir', cache2, 'restore', '--key', RSA_SEC, `file://${vault}`, path.join(tempDir(), 'o')]);
      assert.equal(r.code, 1);
      assert.match(oneLine(r.stderr), /hash mismatch/);
    });

    it('a missing volume: named in the error', async () => {
      const name = vol(2);
      fs.rmSync(path.join(vault, name));
      const r = await offsite(['--archive-dir', cache2, 'restore', '--key', RSA_SEC, `file://${vault}`, path.join(tempDir(), 'o')]);
      assert.equal(r.code, 1);
      assert.match(oneLine(r.stderr), /Volume 2 .*missing|missing/);
    });

    it('a volume swapped with one of another set: refused', async () => {
      const other = fs.readdirSync(vault).find((f) => /^duplicity-inc\..*\.vol1\.difftar\.gpg$/.test(f))!;
      fs.copyFileSync(path.join(vault, other), path.join(vault, vol(1)));
      const r = await offsite(['--archive-dir', cache2, 'restore', '--key', RSA_SEC, `file://${vault}`, path.join(tempDir(), 'o')]);
      assert.equal(r.code, 1);
      assert.match(oneLine(r.stderr), /hash mismatch/);
    });
  });

  describe('hostile archives', () => {
    it('refuses members with .., absolute paths, symlink escapes and devices, writes nothing outside the target', async () => {
      const box = tempDir('offsite-hostile-');
      const vault = path.join(box, 'vault');
      const outside = path.join(box, 'outside');
      fs.mkdirSync(outside);
      await forgeFullSet(vault, 1_700_000_000, [
        { name: 'snapshot/./', type: 'dir', mode: 0o755 },
        { name: 'snapshot/../evil-dotdot.txt', data: 'escaped' },
        { name: 'snapshot//etc/evil-abs.txt', data: 'escaped' },
        { name: 'snapshot/a-link', type: 'symlink', linkname: outside },
        { name: 'snapshot/a-link/evil-through-link.txt', data: 'escaped' },
        { name: 'snapshot/dev', type: 'chr' },
        { name: 'snapshot/good.txt', data: 'fine' },
        { name: '/etc/evil-no-prefix.txt', data: 'escaped' },
      ]);
      const before = listing(box);
      const target = path.join(box, 'target');
      const r = await offsite(['--archive-dir', path.join(tempDir(), 'c'), 'restore', '--key', RSA_SEC, `file://${vault}`, target]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneLine(r.stderr), /not restored.*the backup holds entries no backup tool writes: it may have been tampered with$/);
      assert.equal(fs.readFileSync(path.join(target, 'good.txt'), 'utf8'), 'fine');
      assert.deepEqual(listing(outside), [], 'nothing written through the symlink');
      const after = listing(box).filter((p) => !p.startsWith('target'));
      assert.deepEqual(after, before, 'nothing new around the target');
      assert.ok(!fs.existsSync('/etc/evil-abs.txt') && !fs.existsSync('/etc/evil-no-prefix.txt'));
    });

    it('a member claiming more data than the volume holds: a clear error', async () => {
      const box = tempDir('offsite-hostile-');
      const vault = path.join(box, 'vault');
      await forgeFullSet(vault, 1_700_000_000, [
        { name: 'snapshot/./', type: 'dir', mode: 0o755 },
        { name: 'snapshot/huge.bin', data: 'short', size: 1e12 },
      ]);
      const r = await offsite(['--archive-dir', path.join(tempDir(), 'c'), 'restore', '--key', RSA_SEC, `file://${vault}`, path.join(box, 'target')]);
      assert.equal(r.code, 1);
      assert.match(oneLine(r.stderr), /truncat|end of data|integrity|short/i);
    });
  });
});
