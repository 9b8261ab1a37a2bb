// The offsite command over sftp:// against a real sshd: full and incremental backups, restore as of a
// time, verify, host key acceptance, and a backup whose connection is cut midway (through the fault
// proxy). The remote folder is on this machine, so stock duplicity restores it too (file://).
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite, offsiteOnTerminal, type RunResult } from '../helpers/cli';
import { startFaultProxy, type FaultProxy } from '../helpers/faultProxy';
import { RSA_PUB, RSA_SEC, duplicity, gnupgHome } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { snapshotTree } from '../helpers/tree';
import { makeUserKey } from '../helpers/sshd';
import { serverFiles, startFixture, type SftpFixture } from '../unit/backend/sftp/sftpFixture';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
}

describe('offsite CLI over sftp://', function () {
  this.timeout(300_000);
  let fx: SftpFixture;
  let proxy: FaultProxy;
  let gnupg: string;
  let cache: string;

  before(async () => {
    fx = await startFixture();
    proxy = await startFaultProxy(fx.sshd.port);
    // The proxy is another "host" for known_hosts: record the server's key under its port too.
    fs.appendFileSync(fx.knownHosts, fx.sshd.knownHostsLines(`[127.0.0.1]:${proxy.port}`).join('\n') + '\n');
    gnupg = gnupgHome();
    cache = tempDir('offsite-cache-');
  });
  after(async () => {
    await proxy?.close();
    await fx?.sshd.stop();
  });

  /** Runs offsite with a private HOME (its ~/.ssh is the fixture's), no agent, a private cache. */
  function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return offsite(['--archive-dir', cache, '--ssh-key', fx.sshd.userKey.file, ...args], {
      env: { HOME: fx.home, SSH_AUTH_SOCK: '', GNUPGHOME: gnupg, TZ: 'UTC', ...extraEnv },
    });
  }

  function makeSource(): string {
    const src = tempDir('offsite-src-');
    fs.mkdirSync(path.join(src, 'docs', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(src, 'README.md'), '# hello\n');
    fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'version 1\n'.repeat(1000));
    fs.writeFileSync(path.join(src, 'docs', 'deep', 'blob.bin'), randomBytes(3 * 1024 * 1024));
    return src;
  }

  it('backs up (full, incremental), restores as of each time and verifies', async () => {
    const src = makeSource();
    const { dir, url } = fx.freshRemote();
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]), 'full backup');
    const first = snapshotTree(src);
    const t1 = Math.floor(Date.now() / 1000);
    const afterFull = serverFiles(dir);
    assert.ok(afterFull.some((n) => /^duplicity-full\.\d{8}T\d{6}Z\.vol1\.difftar\.gpg$/.test(n)), afterFull.join(' '));
    assert.ok(afterFull.some((n) => /^duplicity-full\.\d{8}T\d{6}Z\.manifest\.gpg$/.test(n)));
    assert.ok(!afterFull.some((n) => n.startsWith('.offsite-part-')), 'temporary files left on the server');

    await sleep(1100); // duplicity's whole-second mtimes
    fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'version 2\n'.repeat(1000));
    fs.rmSync(path.join(src, 'README.md'));
    fs.writeFileSync(path.join(src, 'new.txt'), 'new');
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url]), 'incremental backup');
    const second = snapshotTree(src);
    assert.ok(serverFiles(dir).some((n) => n.startsWith('duplicity-inc.')));

    const r1 = path.join(tempDir('offsite-restore-'), 'r1');
    ok(await cli(['restore', '--key', RSA_SEC, '--time', String(t1), url, r1]), 'restore as of the full backup');
    assert.deepEqual(snapshotTree(r1), first);
    const r2 = path.join(tempDir('offsite-restore-'), 'r2');
    ok(await cli(['restore', '--key', RSA_SEC, url, r2]), 'restore latest');
    assert.deepEqual(snapshotTree(r2), second);
    ok(await cli(['verify', '--key', RSA_SEC, '--compare-data', url, src]), 'verify');

    // Stock duplicity reads what went over sftp (the remote folder is local here).
    const r3 = path.join(tempDir('offsite-restore-'), 'r3');
    const dup = await duplicity(gnupg, ['restore', '--archive-dir', tempDir('offsite-dupcache-'), `file://${dir}`, r3]);
    assert.equal(dup.code, 0, dup.stderr);
    assert.deepEqual(snapshotTree(r3), second);
  });

  it('refuses an unknown host with the fingerprint, then accepts it with --accept-host-key', async () => {
    const kh = path.join(tempDir(), 'known_hosts');
    const { url } = fx.freshRemote();
    const src = makeSource();
    const refused = await cli(['--known-hosts', kh, 'backup', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(refused.code, 1);
    const fp = fx.sshd.fingerprints.get('ssh-ed25519')!;
    assert.ok(refused.stderr.includes(fp), refused.stderr);
    assert.ok(refused.stderr.includes(`--accept-host-key ${fp}`), refused.stderr);
    const accepted = await cli(['--known-hosts', kh, '--accept-host-key', fp, 'backup', '--encrypt-key', RSA_PUB, src, url]);
    ok(accepted, 'backup with --accept-host-key');
    assert.match(fs.readFileSync(kh, 'utf8'), /ssh-ed25519 AAAA/);
    // Said without -v, as ssh says "Permanently added …": a file of the user's was written.
    assert.ok(accepted.stderr.includes(`Recorded the host key of [127.0.0.1]:${fx.sshd.port} (ssh-ed25519 ${fp}) in ${kh}`), accepted.stderr);
    ok(await cli(['--known-hosts', kh, 'status', url]), 'status without the flag');
  });

  it('completes a backup whose connection is cut mid-upload; the next backup and earlier restores still work', async () => {
    const src = makeSource();
    const { dir } = fx.freshRemote();
    const url = `sftp://${fx.sshd.user}@127.0.0.1:${proxy.port}/${dir}`;
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]), 'first backup');
    const first = snapshotTree(src);
    const t1 = Math.floor(Date.now() / 1000);
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'docs', 'deep', 'blob.bin'), randomBytes(3 * 1024 * 1024));
    // Every new connection for a while is cut after 1.5 MB sent: uploads resume and retry through it.
    const struck = proxy.struck;
    proxy.inject({ kind: 'cut', direction: 'up', afterBytes: 1_500_000 }, 3);
    const r = await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
    proxy.clear();
    ok(r, 'backup through cuts');
    assert.ok(proxy.struck > struck, 'the proxy cut at least one connection');
    const files = serverFiles(dir);
    assert.ok(!files.some((n) => n.startsWith('.offsite-part-')), `temp files left: ${files.join(' ')}`);
    const second = snapshotTree(src);
    const t2 = Math.floor(Date.now() / 1000);

    await sleep(1100);
    fs.writeFileSync(path.join(src, 'later.txt'), 'later');
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url]), 'next backup');
    const r1 = path.join(tempDir('offsite-restore-'), 'r1');
    ok(await cli(['restore', '--key', RSA_SEC, '--time', String(t1), url, r1]), 'restore the first set');
    assert.deepEqual(snapshotTree(r1), first);
    const r2 = path.join(tempDir('offsite-restore-'), 'r2');
    ok(await cli(['restore', '--key', RSA_SEC, '--time', String(t2), url, r2]), 'restore the set made through the cuts');
    assert.deepEqual(snapshotTree(r2), second);
  });

  it('fails a stalled backup with a clear error instead of hanging', async () => {
    const src = makeSource();
    const { dir } = fx.freshRemote();
    const url = `sftp://${fx.sshd.user}@127.0.0.1:${proxy.port}/${dir}`;
    proxy.always({ kind: 'stall', direction: 'up', afterBytes: 200_000 });
    try {
      const t0 = Date.now();
      // OFFSITE_SSH_TIMEOUT: seconds, as the help says (the default 30 s would take 5 × 30 s and more).
      const r = await cli(['backup', '--encrypt-key', RSA_PUB, src, url], { OFFSITE_SSH_TIMEOUT: '1' });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /stalled|timed out|Timed out/i);
      assert.ok(Date.now() - t0 < 120_000, `${Date.now() - t0} ms: the 30 s default would take over 150 s`);
    } finally {
      proxy.clear();
    }
    assert.ok(!serverFiles(dir).some((n) => n.startsWith('duplicity-')), 'a final name on the server after a failed backup');
  });

  it('refuses an OFFSITE_SSH_TIMEOUT (OFFSITE_SSH_TIMEOUT_MS) that is no number of seconds (milliseconds), naming it', async () => {
    for (const [key, bad, unit] of [
      ['OFFSITE_SSH_TIMEOUT', 'abc', 'seconds'],
      ['OFFSITE_SSH_TIMEOUT', '0', 'seconds'],
      ['OFFSITE_SSH_TIMEOUT', '-1', 'seconds'],
      ['OFFSITE_SSH_TIMEOUT_MS', 'abc', 'milliseconds'],
      ['OFFSITE_SSH_TIMEOUT_MS', '99', 'milliseconds'],
    ]) {
      const r = await cli(['status', `sftp://${fx.sshd.user}@127.0.0.1:${fx.sshd.port}/x`], { [key]: bad });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`${key} must be a number of ${unit} of at least [0-9.]+, not "${bad}"`), `${key}=${bad}`);
    }
  });

  it('backs up with --concurrency 16 without a listener-leak warning', async () => {
    const src = tempDir('offsite-src-');
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(src, `big${i}.bin`), randomBytes(2 * 1024 * 1024));
    const { url } = fx.freshRemote();
    const r = await cli(['--concurrency', '16', 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
    ok(r, 'backup');
    assert.doesNotMatch(r.stderr, /MaxListeners|memory leak/, r.stderr);
  });

  it('fails a backup to a URL that names a file, saying so, with no word of resuming', async () => {
    const src = makeSource();
    const { dir, url } = fx.freshRemote();
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.writeFileSync(dir, 'I am a file\n');
    const r = await cli(['backup', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /is not a folder\. Point the remote URL at a folder/);
    assert.doesNotMatch(r.stderr, /does not exist|resumes it/);
    assert.equal(fs.readFileSync(dir, 'utf8'), 'I am a file\n');
  });

  it('fails at once on a server that offers SSH but no SFTP', async () => {
    const noSftp = await startFixture({ sftpSubsystem: false });
    try {
      const t0 = Date.now();
      const r = await offsite(['--archive-dir', cache, '--ssh-key', noSftp.sshd.userKey.file, '--known-hosts', noSftp.knownHosts, 'status', noSftp.freshRemote().url], {
        env: { HOME: noSftp.home, SSH_AUTH_SOCK: '' },
      });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /accepted the SSH login but offers no SFTP.*Subsystem sftp/);
      assert.doesNotMatch(r.stderr, /retrying|reachable/);
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    } finally {
      await noSftp.sshd.stop();
    }
  });

  it('status reports the temporary uploads of a killed backup, the ones cleanup removes; those written in the last day (by the server\'s clock) it keeps, a backup elsewhere may be writing them', async () => {
    const src = makeSource();
    const { dir, url } = fx.freshRemote();
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url]), 'backup');
    const clean = await cli(['status', url]);
    ok(clean, 'status');
    assert.match(clean.stdout, /No orphaned or incomplete backup sets found/);
    // What a backup killed mid-upload leaves: temporary files under the names its uploads use, and a
    // set without its manifest. Written just now: as a backup running on another machine writes them.
    const temps = ['.offsite-part-0123456789ab-duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol1.difftar.gpg', '.offsite-part-ba9876543210'];
    const vol = 'duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol1.difftar.gpg';
    for (const t of [...temps, vol]) fs.writeFileSync(path.join(dir, t), 'partial');
    const running = await cli(['status', url]);
    ok(running, 'status');
    assert.equal(running.stdout.match(/^In progress\? .*offsite cleanup keeps it/gm)?.length, 3, running.stdout);
    assert.match(running.stdout, /In progress\? 1 file\(s\) of the incomplete incremental set of 20240102T000000Z: last written \S+ by the remote's clock/);
    const keeps = await cli(['cleanup', '--force', url]);
    ok(keeps, 'cleanup --force');
    assert.match(keeps.stdout, /Nothing to clean up/);
    for (const t of [...temps, vol]) assert.ok(fs.existsSync(path.join(dir, t)), t);
    // Two days later (the sftp server's mtimes say so) they are what an interrupted run left.
    const twoDaysAgo = Date.now() / 1000 - 2 * 86400;
    for (const t of [...temps, vol]) fs.utimesSync(path.join(dir, t), twoDaysAgo, twoDaysAgo);
    const st = await cli(['status', url]);
    ok(st, 'status');
    assert.match(st.stdout, /Found 2 temporary upload\(s\) that did not finish.*\(offsite cleanup removes them\)/);
    assert.doesNotMatch(st.stdout, /No orphaned or incomplete backup sets found/);
    const json = JSON.parse((await cli(['status', '--json', url])).stdout) as { temporary: string[] };
    assert.deepEqual(json.temporary, [...temps].sort());
    const dry = await cli(['cleanup', url]);
    ok(dry, 'cleanup');
    for (const t of [...temps, vol]) assert.ok(dry.stdout.includes(`Would delete ${t}`), dry.stdout);
    ok(await cli(['cleanup', '--force', url]), 'cleanup --force');
    assert.match((await cli(['status', url])).stdout, /No orphaned or incomplete backup sets found/);
  });

  it('asks for an SSH key passphrase on a terminal as a question (a space after it) and never shows what is typed', async () => {
    const secret = 'tr0ub4dor &3';
    const enc = await makeUserKey(tempDir(), 'id_asked', secret);
    fs.appendFileSync(path.join(fx.sshd.dir, 'authorized_keys'), `${enc.publicLine}\n`);
    const { url } = fx.freshRemote();
    const env = { HOME: fx.home, SSH_AUTH_SOCK: '', OFFSITE_SSH_PASSPHRASE: undefined };
    const r = await offsiteOnTerminal(['--archive-dir', cache, '--ssh-key', enc.file, 'status', url], [{ after: `Passphrase for the SSH key ${enc.file}:`, type: secret }], { env });
    assert.equal(r.code, 0, r.output);
    assert.equal(r.unanswered, 0, r.output);
    assert.ok(r.output.includes(`Passphrase for the SSH key ${enc.file}: `), JSON.stringify(r.output));
    assert.ok(!r.output.includes(secret) && !r.output.includes('tr0ub4dor'), JSON.stringify(r.output));
    assert.match(r.output, /No backup chains found/);
  });

  it('says where a wrong SSH key passphrase came from (OFFSITE_SSH_PASSPHRASE), and a bad --concurrency as given', async () => {
    const enc = await makeUserKey(tempDir(), 'id_enc', 'correct horse');
    const { url } = fx.freshRemote();
    const r = await offsite(['--archive-dir', cache, '--ssh-key', enc.file, 'status', url], {
      env: { HOME: fx.home, SSH_AUTH_SOCK: '', OFFSITE_SSH_PASSPHRASE: 'wrong' },
    });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /Wrong passphrase for the SSH key .*id_enc\. Check OFFSITE_SSH_PASSPHRASE, or unset it to be asked on a terminal/);
    assert.doesNotMatch(r.stderr, /enter the right one/);
    const bad = await cli(['--concurrency', 'abc', 'status', url]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--concurrency must be a whole number of at least 1, not abc\b/);
    assert.doesNotMatch(bad.stderr, /NaN/);
  });
});
