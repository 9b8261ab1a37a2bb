// A damaged local cache through the CLI: a cached manifest or signature archive that was cut short,
// emptied or changed is never believed. With the private key it is fetched again from the remote (as a
// lost cache is rebuilt); without it, the error says the local copy is damaged and what to do, never
// an internal error, and never old data with exit 0.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { archiveDirFor } from '../../src/engine/cache/archiveDir';
import { COPY_RECORDS } from '../../src/engine/cache/copyRecords';
import { OFFSITE, offsite, run } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';

/** The one error line on stderr (warnings aside). */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('Warning: '));
  assert.equal(lines.length, 1, `one error line expected, got:\n${stderr}`);
  assert.match(lines[0], /^offsite: /);
  assert.doesNotMatch(lines[0], /internal error/);
  return lines[0];
}

describe('a damaged local cache', function () {
  this.timeout(180_000);
  let work: string;
  let src: string;
  let url: string;
  let cacheRoot: string;
  let cache: string;
  let saved: string;

  const cached = (pattern: RegExp) => {
    const names = fs.readdirSync(cache).filter((n) => pattern.test(n)).sort();
    assert.ok(names.length, `no cached file matches ${pattern}`);
    return path.join(cache, names.at(-1)!);
  };
  const newestManifest = () => cached(/^duplicity-inc\..*\.manifest$/);
  const newestSigtar = () => cached(/^duplicity-new-signatures\..*\.sigtar\.gz$/);
  const cli = (...args: string[]) => offsite(['--archive-dir', cacheRoot, ...args], { env: { OFFSITE_PASSPHRASE: undefined } });
  const restoreA = async (...extra: string[]) => {
    const out = path.join(tempDir('offsite-cache-out-'), 'o');
    const r = await cli('restore', ...extra, url, out);
    return { ...r, a: r.code === 0 ? fs.readFileSync(path.join(out, 'a'), 'utf8') : undefined };
  };

  before(async () => {
    work = tempDir('offsite-cache-');
    src = path.join(work, 's');
    url = `file://${path.join(work, 'r')}`;
    cacheRoot = path.join(work, 'c');
    cache = archiveDirFor(url, cacheRoot);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a'), 'v1\n');
    assert.equal((await cli('backup', '--encrypt-key', RSA_PUB, src, url)).code, 0);
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'a'), 'v2\n');
    const r = await cli('backup', '--encrypt-key', RSA_PUB, src, url);
    assert.equal(r.code, 0, r.stderr);
    saved = path.join(work, 'saved');
    fs.cpSync(cache, saved, { recursive: true });
  });

  beforeEach(() => {
    fs.rmSync(cache, { recursive: true, force: true });
    fs.cpSync(saved, cache, { recursive: true });
  });

  it('an emptied cached manifest: restore with the key fetches it again and restores the newest data', async () => {
    fs.writeFileSync(newestManifest(), '');
    const r = await restoreA('--key', RSA_SEC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.a, 'v2\n');
    assert.match(r.stderr, /local cache copy .*duplicity-inc\..*\.manifest is damaged/);
    assert.ok(fs.statSync(newestManifest()).size > 0, 'the copy was fetched again');
    // Healthy again: no warning the next time.
    const again = await restoreA('--key', RSA_SEC);
    assert.equal(again.a, 'v2\n');
    assert.doesNotMatch(again.stderr, /damaged/);
  });

  it('an emptied cached manifest without the key: a clear error about the local copy, not old data', async () => {
    fs.writeFileSync(newestManifest(), '');
    const r = await restoreA();
    assert.equal(r.code, 1);
    const line = errorLine(r.stderr);
    assert.match(line, /local cache copy .*duplicity-inc\..*\.manifest was damaged/);
    assert.match(line, /--key/);
  });

  it('an emptied cached manifest: verify --compare-data and list --history see the newest set', async () => {
    fs.writeFileSync(newestManifest(), '');
    const v = await cli('verify', '--compare-data', '--key', RSA_SEC, url, src);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /0 difference\(s\) found/);
    fs.writeFileSync(newestManifest(), '');
    const h = await cli('list', '--history', 'a', '--key', RSA_SEC, url);
    assert.equal(h.code, 0, h.stderr);
    assert.deepEqual(h.stdout.trim().split('\n').map((l) => l.split(' ')[1]), ['new', 'changed']);
  });

  it("one hex digit of a cached manifest's SHA1 changed: restored from the remote's manifest, the remote not blamed", async () => {
    const m = newestManifest();
    const text = fs.readFileSync(m, 'latin1');
    const changed = text.replace(/Hash SHA1 (.)/, (_, d: string) => `Hash SHA1 ${d === '0' ? '1' : '0'}`);
    assert.notEqual(changed, text);
    fs.writeFileSync(m, changed, 'latin1');
    const r = await restoreA('--key', RSA_SEC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.a, 'v2\n');
    assert.doesNotMatch(r.stderr, /changed or damaged on the remote/);
    assert.equal(fs.readFileSync(m, 'latin1'), text);
  });

  it('a cache without records (duplicity, an older Offsite): a changed manifest is compared with the remote one and replaced', async () => {
    fs.rmSync(path.join(cache, COPY_RECORDS), { recursive: true });
    const m = newestManifest();
    const text = fs.readFileSync(m, 'latin1');
    fs.writeFileSync(m, text.replace(/Hash SHA1 (.)/, (_, d: string) => `Hash SHA1 ${d === '0' ? '1' : '0'}`), 'latin1');
    const r = await restoreA('--key', RSA_SEC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.a, 'v2\n');
    assert.match(r.stderr, /does not match the remote manifest/);
    assert.equal(fs.readFileSync(m, 'latin1'), text);
    // ... and recorded: the next restore does not fetch it again.
    const again = await cli('-v', 'restore', '--key', RSA_SEC, url, path.join(tempDir('offsite-cache-out-'), 'o'));
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /Fetching/);
  });

  it('a cache without records: each signature archive is read through once, then recorded (later runs only compare sizes)', async () => {
    fs.rmSync(path.join(cache, COPY_RECORDS), { recursive: true });
    const r = await cli('list', url);
    assert.equal(r.code, 0, r.stderr);
    const dir = path.dirname(newestManifest());
    const sigtars = fs.readdirSync(dir).filter((n) => n.endsWith('.sigtar.gz')).sort();
    assert.ok(sigtars.length >= 2, sigtars.join(' '));
    const records = fs.readdirSync(path.join(dir, COPY_RECORDS)).filter((n) => n.endsWith('.sigtar.gz.json'));
    assert.deepEqual(records.map((n) => n.slice(0, -'.json'.length)).sort(), sigtars);
  });

  it('a cut cached manifest without a record and without the key: a clear error', async () => {
    fs.rmSync(path.join(cache, COPY_RECORDS), { recursive: true });
    const m = newestManifest();
    fs.truncateSync(m, 40);
    const r = await restoreA();
    assert.equal(r.code, 1);
    assert.match(errorLine(r.stderr), /local cache copy .*manifest was damaged/);
  });

  it('a truncated cached signature archive: backup with --key fetches it again; list without a key says what to do', async () => {
    const sig = newestSigtar();
    fs.truncateSync(sig, 60);
    const l = await cli('list', url);
    assert.equal(l.code, 1);
    const line = errorLine(l.stderr);
    assert.match(line, /local cache copy .*duplicity-new-signatures\..*\.sigtar\.gz was damaged/);
    assert.match(line, /--key/);

    assert.ok(!fs.existsSync(sig), 'the damaged copy was removed');
    fs.cpSync(path.join(saved, path.basename(sig)), sig);
    fs.truncateSync(sig, 60);
    fs.writeFileSync(path.join(src, 'a'), 'v3\n');
    const b = await cli('backup', '--key', RSA_SEC, '--encrypt-key', RSA_PUB, src, url);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /damaged/);
    const l2 = await cli('list', url);
    assert.equal(l2.code, 0, l2.stderr);
    assert.match(l2.stdout, / a\n/);
    fs.writeFileSync(path.join(src, 'a'), 'v2\n');
    saved = path.join(work, 'saved2');
    fs.cpSync(cache, saved, { recursive: true });
  });

  it('a cut cached signature archive without a record (an older cache): found before use, fetched again with --key', async () => {
    fs.rmSync(path.join(cache, COPY_RECORDS), { recursive: true });
    fs.truncateSync(newestSigtar(), 100);
    const l = await cli('list', url);
    assert.equal(l.code, 1);
    assert.match(errorLine(l.stderr), /sigtar\.gz was damaged \(unexpected end of file\)/);
    const l2 = await cli('list', '--key', RSA_SEC, url);
    assert.equal(l2.code, 0, l2.stderr);
  });

  it('a cached signature archive damaged inside (same size): the read fails clearly, the copy is removed, --key mends it', async () => {
    const s = newestSigtar();
    const bytes = fs.readFileSync(s);
    for (let i = 20; i < bytes.length - 8; i++) bytes[i] ^= 0x55; // the deflate data, not the gzip header or trailer
    fs.writeFileSync(s, bytes);
    const l = await cli('list', url);
    assert.equal(l.code, 1);
    assert.match(errorLine(l.stderr), /local cache copy .*sigtar\.gz is damaged .*it was removed/);
    assert.ok(!fs.existsSync(s));
    const l2 = await cli('list', '--key', RSA_SEC, url);
    assert.equal(l2.code, 0, l2.stderr);
    assert.match(l2.stdout, / a\n/);
  });

  it('files another user (a run with sudo) left in a cache folder that is ours, unreadable to us: one line naming the cache folder and what to do, for list, backup, restore and verify; nothing removed', async () => {
    // As a user who is not root (setpriv): the folders become that user's, the files stay root's (0600).
    const NOBODY = 65534;
    const box = tempDir('offsite-cache-other-');
    fs.chmodSync(box, 0o777);
    fs.chmodSync(work, 0o755);
    const remote = url.slice('file://'.length);
    fs.chmodSync(remote, 0o755);
    for (const n of fs.readdirSync(remote)) fs.chmodSync(path.join(remote, n), 0o644);
    fs.chmodSync(src, 0o755);
    fs.chmodSync(path.join(src, 'a'), 0o644);
    const key = path.join(box, 'key.asc');
    fs.copyFileSync(RSA_SEC, key);
    fs.chmodSync(key, 0o644);
    for (const d of [cacheRoot, cache, ...fs.readdirSync(cache).map((n) => path.join(cache, n)).filter((p) => fs.statSync(p).isDirectory())]) fs.chownSync(d, NOBODY, NOBODY);
    const rootsFiles = fs.readdirSync(cache).filter((n) => fs.statSync(path.join(cache, n)).isFile()).sort();
    assert.ok(rootsFiles.some((n) => n.endsWith('.manifest')) && rootsFiles.some((n) => n.endsWith('.sigtar.gz')), rootsFiles.join(' '));
    const asNobody = (...args: string[]) =>
      run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, OFFSITE, '--archive-dir', cacheRoot, ...args], { env: { HOME: box, OFFSITE_PASSPHRASE: '' } });
    const runs: [string, string[]][] = [
      ['list', ['list', url]],
      ['backup', ['backup', '--encrypt-key', RSA_PUB, src, url]],
      ['restore', ['restore', '--key', key, url, path.join(box, 'out')]],
      ['verify', ['verify', '--key', key, url, src]],
    ];
    for (const [what, args] of runs) {
      const r = await asNobody(...args);
      assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
      const line = errorLine(r.stderr);
      assert.match(line, new RegExp(`^offsite: Cannot use duplicity-\\S+ in the local cache folder ${cache}: permission denied \\(open\\)\\. Make the folder and everything in it yours and readable .*, or remove the folder: it is rebuilt from the remote`), what);
      assert.doesNotMatch(line, /EACCES|damaged/, what);
    }
    assert.deepEqual(fs.readdirSync(cache).filter((n) => fs.statSync(path.join(cache, n)).isFile()).sort(), rootsFiles, 'nothing removed as if damaged');
  });
});
