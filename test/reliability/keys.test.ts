// Suite 5, keys and secrets: a wrong key, a wrong passphrase, a missing secret key, an expired or a
// revoked key give one clear error line; the passphrase never appears in output, logs or errors (the
// test greps for it, verbose output included); temporary files are private even under umask 0 and are
// removed, also after a crash (by the next run's cleanup); the remote holds no plaintext (its bytes are
// grepped for a known file name and a known content).
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend, BlobSource, GetOptions, PutOptions } from '../../src/engine/backend/backend';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir, archiveDirFor } from '../../src/engine/cache/archiveDir';
import { MemoryLogger } from '../../src/engine/log';
import { backup } from '../../src/engine/ops/backup';
import { restore } from '../../src/engine/ops/restore';
import { handle, toServiceError } from '../../src/engine/service';
import { OFFSITE, offsite, type RunResult } from '../helpers/cli';
import { ECC_SEC, RSA_PUB, gnupgHome, gpg } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { makeTree, randomBytesSeeded, snapshotTree } from '../helpers/tree';
import { runCase, suiteSeed } from './figures';
import { archiveLeftovers, errorLine, rsaCrypto } from './support';

const SUITE = '5 keys and secrets';
const PROTECTED_PUB = path.resolve(__dirname, '../fixtures/keys/protected-pub.asc');
const PROTECTED_SEC = path.resolve(__dirname, '../fixtures/keys/protected-sec.asc');
const PROTECTED_PASSPHRASE = 'offsite-test-passphrase'; // test/fixtures/keys/README.md

/** Every regular file and folder under `dir` with its permission bits. */
function modes(dir: string): { path: string; mode: number; dir: boolean }[] {
  const out: { path: string; mode: number; dir: boolean }[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      return; // removed meanwhile
    }
    for (const n of names) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) {
        out.push({ path: p, mode: st.mode & 0o777, dir: true });
        walk(p);
      } else if (st.isFile()) out.push({ path: p, mode: st.mode & 0o777, dir: false });
    }
  };
  walk(dir);
  return out;
}

/** A backend wrapper that looks at the local folders whenever data moves (temporaries exist then). */
class Peeking implements Backend {
  readonly seen = new Map<string, { mode: number; dir: boolean }>();
  readonly displayUrl: string;
  readonly properties: Backend['properties'];
  constructor(
    private readonly inner: Backend,
    private readonly dirs: () => string[],
  ) {
    this.displayUrl = inner.displayUrl;
    this.properties = inner.properties;
  }
  private peek(): void {
    for (const d of this.dirs()) for (const m of modes(d)) this.seen.set(m.path, { mode: m.mode, dir: m.dir });
  }
  async put(name: string, source: BlobSource, options?: PutOptions) {
    this.peek();
    return this.inner.put(name, source, options);
  }
  async get(name: string, options?: GetOptions) {
    this.peek();
    return this.inner.get(name, options);
  }
  stat(name: string) {
    return this.inner.stat(name);
  }
  list() {
    return this.inner.list();
  }
  remove(name: string) {
    return this.inner.remove(name);
  }
  cleanupPartial(options?: { dryRun?: boolean }) {
    return this.inner.cleanupPartial(options);
  }
  close() {
    return this.inner.close();
  }
}

describe(`reliability ${SUITE}`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(SUITE);
  let work: string;
  let src: string;
  let rsaVault: string;
  let protectedVault: string;
  let keys: { expired: string; revoked: string; home: string };

  before(async () => {
    work = tempDir('offsite-keys-');
    src = path.join(work, 'src');
    makeTree(src, { 'notes.txt': 'hello\n', sub: { 'data.bin': randomBytesSeeded(200_000, seed) } });
    rsaVault = `file://${path.join(work, 'rsa-vault')}`;
    protectedVault = `file://${path.join(work, 'protected-vault')}`;
    for (const [key, url] of [[RSA_PUB, rsaVault], [PROTECTED_PUB, protectedVault]]) {
      const r = await offsite(['--archive-dir', path.join(work, 'cache'), 'backup', '--encrypt-key', key, src, url]);
      assert.equal(r.code, 0, r.stderr);
    }
    // An expired and a revoked key pair, made for this run in a private GnuPG home.
    const home = gnupgHome();
    const e = await gpg(home, ['--faked-system-time', '20200101T000000', '--quick-gen-key', 'Expired <expired@example.invalid>', 'future-default', 'default', '1d']);
    assert.equal(e.code, 0, e.stderr);
    const r = await gpg(home, ['--quick-gen-key', 'Revoked <revoked@example.invalid>', 'future-default', 'default', 'never']);
    assert.equal(r.code, 0, r.stderr);
    const revs = path.join(home, 'openpgp-revocs.d');
    const newest = fs.readdirSync(revs).map((n) => path.join(revs, n)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
    const list = await gpg(home, ['--with-colons', '--list-keys', 'revoked@example.invalid']);
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(list.stdout)![1];
    const cert = fs.readFileSync(newest.find((f) => f.includes(fpr))!, 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN');
    const certFile = path.join(work, 'revoke.asc');
    fs.writeFileSync(certFile, cert);
    assert.equal((await gpg(home, ['--import', certFile])).code, 0);
    keys = { expired: path.join(work, 'expired.asc'), revoked: path.join(work, 'revoked.asc'), home };
    fs.writeFileSync(keys.expired, (await gpg(home, ['--armor', '--export', 'expired@example.invalid'])).stdout);
    fs.writeFileSync(keys.revoked, (await gpg(home, ['--armor', '--export', 'revoked@example.invalid'])).stdout);
  });

  const fresh = () => ['--archive-dir', tempDir('offsite-keys-cache-')];
  const out = () => path.join(tempDir('offsite-keys-out-'), 'out');

  interface KeyCase {
    readonly name: string;
    readonly run: () => Promise<RunResult>;
    readonly message: RegExp;
  }
  const cases: KeyCase[] = [
    { name: 'restore with the wrong secret key', run: () => offsite([...fresh(), 'restore', '--key', ECC_SEC, rsaVault, out()]), message: /key/i },
    { name: 'restore with a public key where the secret key is needed', run: () => offsite([...fresh(), 'restore', '--key', RSA_PUB, rsaVault, out()]), message: /secret key|private key/i },
    { name: 'restore with no key at all', run: () => offsite([...fresh(), 'restore', rsaVault, out()], { env: { OFFSITE_PASSPHRASE: undefined } }), message: /private key is needed.*--key/ },
    { name: 'restore with a keyring id whose secret key is not there', run: () => offsite([...fresh(), 'restore', '--key', 'expired@example.invalid', rsaVault, out()], { env: { GNUPGHOME: keys.home } }), message: /secret key|private key|key/i },
    { name: 'restore with the wrong passphrase', run: () => offsite([...fresh(), 'restore', '--key', PROTECTED_SEC, protectedVault, out()], { env: { OFFSITE_PASSPHRASE: 'Wr0ng-Passphrase-1234' } }), message: /passphrase/i },
    { name: 'backup to an expired key', run: () => offsite([...fresh(), 'backup', '--encrypt-key', keys.expired, src, `file://${path.join(tempDir(), 'v')}`]), message: /expired/ },
    { name: 'backup to a revoked key', run: () => offsite([...fresh(), 'backup', '--encrypt-key', keys.revoked, src, `file://${path.join(tempDir(), 'v')}`]), message: /revoked/ },
    { name: 'signing with the wrong passphrase', run: () => offsite([...fresh(), 'backup', '--encrypt-key', RSA_PUB, '--sign-key', PROTECTED_SEC, src, `file://${path.join(tempDir(), 'v')}`], { env: { OFFSITE_PASSPHRASE: 'Wr0ng-Passphrase-1234' } }), message: /passphrase/i },
  ];
  for (const c of cases) {
    it(`${c.name}: one clear error line`, async () => {
      await runCase(SUITE, c.name, undefined, async () => {
        const r = await c.run();
        assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
        const line = errorLine(r.stderr);
        assert.match(line, c.message);
        assert.doesNotMatch(line, /internal error|undefined|\[object/);
        assert.ok(!r.stderr.includes('Wr0ng-Passphrase-1234') && !r.stdout.includes('Wr0ng-Passphrase-1234'), 'the passphrase is not shown');
      });
    });
  }

  it('the passphrase never appears in output, verbose logs or errors (CLI and engine service)', async () => {
    await runCase(SUITE, 'passphrase never shown', undefined, async () => {
      const env = { OFFSITE_PASSPHRASE: PROTECTED_PASSPHRASE };
      const runs: RunResult[] = [];
      const v = `file://${path.join(tempDir(), 'signed')}`;
      const cache = tempDir();
      runs.push(await offsite(['--archive-dir', cache, '--verbose', 'backup', '--encrypt-key', PROTECTED_PUB, '--sign-key', PROTECTED_SEC, src, v], { env }));
      assert.equal(runs[0].code, 0, runs[0].stderr);
      runs.push(await offsite([...fresh(), '--verbose', 'restore', '--key', PROTECTED_SEC, '--sign-key', PROTECTED_PUB, v, out()], { env }));
      assert.equal(runs[1].code, 0, runs[1].stderr);
      runs.push(await offsite([...fresh(), '--verbose', 'verify', '--key', PROTECTED_SEC, '--compare-data', v, src], { env }));
      runs.push(await offsite([...fresh(), '--verbose', 'list', '--key', PROTECTED_SEC, v], { env }));
      runs.push(await offsite([...fresh(), '--verbose', 'restore', '--key', PROTECTED_SEC, v, path.join(tempDir(), 'o')], { env: { OFFSITE_PASSPHRASE: `${PROTECTED_PASSPHRASE}-not` } }));
      for (const r of runs) {
        assert.ok(!r.stdout.includes(PROTECTED_PASSPHRASE) && !r.stderr.includes(PROTECTED_PASSPHRASE), `passphrase shown:\n${r.stdout}${r.stderr}`);
      }
      // The engine service (what the extension runs): logs and the error it returns.
      const log = new MemoryLogger();
      const remote = { url: v, archiveDir: tempDir() };
      const ok = await handle({ op: 'restore', remote, keys: { restoreKey: PROTECTED_SEC, passphrase: PROTECTED_PASSPHRASE }, target: out() }, { log });
      assert.ok(ok);
      const err = await handle({ op: 'restore', remote: { ...remote, archiveDir: tempDir() }, keys: { restoreKey: PROTECTED_SEC, passphrase: 'Wr0ng-Passphrase-1234' }, target: out() }, { log }).then(
        () => assert.fail('should fail'),
        (e: unknown) => toServiceError(e),
      );
      assert.equal(err.code, 'passphrase');
      const all = JSON.stringify({ lines: log.lines, err });
      assert.ok(!all.includes(PROTECTED_PASSPHRASE) && !all.includes('Wr0ng-Passphrase-1234'), all);
    });
  });

  it('temporary files are private (0600, folders 0700) even under umask 0, and removed afterwards', async () => {
    await runCase(SUITE, 'temporary files private and removed', undefined, async () => {
      const box = tempDir('offsite-keys-tmp-');
      const vault = path.join(box, 'vault');
      const archive = ArchiveDir.open(path.join(box, 'cache'));
      const target = path.join(box, 'target');
      const s = path.join(box, 'src');
      makeTree(s, { 'a.bin': randomBytesSeeded(700_000, seed + 1), 'b.txt': 'b', d: { 'c.bin': randomBytesSeeded(300_000, seed + 2) } });
      const old = process.umask(0);
      try {
        const crypto = await rsaCrypto();
        const peekB = new Peeking(new FileBackend(vault), () => [archive.dir]);
        await backup({ source: s, backend: peekB, archive, crypto, log: new MemoryLogger(), volumeSize: 200_000 });
        fs.appendFileSync(path.join(s, 'b.txt'), 'more');
        fs.writeFileSync(path.join(s, 'a.bin'), randomBytesSeeded(700_000, seed + 3));
        await backup({ source: s, backend: peekB, archive, crypto, log: new MemoryLogger(), volumeSize: 200_000, now: () => Date.now() + 5000 });
        // A restore that patches (temporary intermediate files) through a remote without local paths.
        const remote = new FileBackend(vault);
        const peekR = new Peeking(remote, () => [archive.dir, target]); // Peeking has no localPath: files are downloaded
        await restore({ backend: peekR, archive, crypto, log: new MemoryLogger(), target, now: () => Date.now() + 10_000 });
        assert.deepEqual(snapshotTree(target), snapshotTree(s));
        const seen = [...peekB.seen, ...peekR.seen].filter(([p]) => !p.startsWith(target) || path.basename(p).startsWith('.offsite-restore-'));
        assert.ok(seen.some(([p]) => p.includes(`${path.sep}tmp${path.sep}`)), 'temporaries were seen while data moved');
        for (const [p, m] of seen) assert.equal(m.mode, m.dir ? 0o700 : 0o600, `${p} has mode ${m.mode.toString(8)}`);
      } finally {
        process.umask(old);
      }
      assert.deepEqual(archiveLeftovers(archive.dir), [], 'no temporaries left in the cache folder');
      assert.deepEqual(fs.readdirSync(target).filter((n) => n.startsWith('.offsite-restore-')), []);
    });
  });

  it('after a crash, the temporaries it left are private, and offsite cleanup removes them', async () => {
    await runCase(SUITE, 'temporaries after a crash', undefined, async () => {
      const box = tempDir('offsite-keys-crash-');
      const s = path.join(box, 'src');
      makeTree(s, { 'a.bin': randomBytesSeeded(3_000_000, seed + 4), 'b.bin': randomBytesSeeded(2_000_000, seed + 5) });
      const url = `file://${path.join(box, 'vault')}`;
      const cacheRoot = path.join(box, 'cache');
      const archive = archiveDirFor(url, cacheRoot);
      fs.mkdirSync(archive, { recursive: true, mode: 0o700 });
      // Killed as soon as the first volume is being written into the run's temp folder.
      await new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [OFFSITE, '--archive-dir', cacheRoot, 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', s, url], { stdio: 'ignore' });
        const w = fs.watch(archive, { recursive: true }, (_t, name) => {
          if (name && String(name).startsWith('tmp/run-') && String(name).split('/').length >= 3) child.kill('SIGKILL');
        });
        child.on('error', reject);
        child.on('close', () => {
          w.close();
          resolve();
        });
      });
      const left = archiveLeftovers(archive).filter((n) => n.startsWith('tmp/') || n.includes('.tmp'));
      assert.ok(left.length > 0, `the crash left temporaries: ${fs.readdirSync(archive).join(' ')}`);
      for (const m of modes(archive)) assert.equal(m.mode, m.dir ? 0o700 : 0o600, `${m.path} has mode ${m.mode.toString(8)}`);
      const c = await offsite(['--archive-dir', cacheRoot, 'cleanup', '--force', url]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /Deleted .*tmp/);
      assert.deepEqual(archiveLeftovers(archive).filter((n) => n.startsWith('tmp/') || n.includes('.tmp')), []);
    });
  });

  it('the remote holds no plaintext: neither a known file name nor a known content is found in its bytes', async () => {
    await runCase(SUITE, 'no plaintext on the remote', undefined, async () => {
      const box = tempDir('offsite-keys-plain-');
      const s = path.join(box, 'src');
      const name = 'secret-plan-Qx7Zk.txt';
      const content = 'The launch code is 7291-ALPHA-Qx7Zk.\n';
      makeTree(s, { [name]: content.repeat(50), nested: { [`dir-${name}`]: { 'f.txt': content } }, link: { symlink: name } });
      const vault = path.join(box, 'vault');
      const cache = path.join(box, 'cache');
      const b = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, s, `file://${vault}`]);
      assert.equal(b.code, 0, b.stderr);
      await new Promise((r) => setTimeout(r, 1100));
      fs.appendFileSync(path.join(s, name), content);
      const i = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, s, `file://${vault}`]);
      assert.equal(i.code, 0, i.stderr);
      const needles = [name, 'secret-plan', 'Qx7Zk', content.trim(), 'launch code'].flatMap((n) => [Buffer.from(n), Buffer.from(n, 'utf16le')]);
      const files = fs.readdirSync(vault);
      assert.ok(files.length >= 6, files.join(' '));
      for (const f of files) {
        const bytes = fs.readFileSync(path.join(vault, f));
        for (const n of needles) assert.equal(bytes.indexOf(n), -1, `${f} contains ${JSON.stringify(n.toString())}`);
      }
    });
  });
});
