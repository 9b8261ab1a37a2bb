// The offsite command on rclone:// remotes: through an rclone S3 remote on the test server (Swift +
// s3api) and an rclone `local` remote, read and written by stock duplicity's rclone backend with the
// same URL, and the errors for a missing rclone and an unknown remote.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite, type RunResult } from '../helpers/cli';
import { RSA_PUB, RSA_SEC, RSA_SUBKEY, duplicity, gnupgHome } from '../helpers/gpg';
import { sharedS3Server, type S3Server } from '../helpers/s3Server';
import { tempDir } from '../helpers/tmp';
import { snapshotTree } from '../helpers/tree';
import { rcloneEnv } from '../../src/engine/backend/rclone/rcloneRun';
import { rcloneFixture, type RcloneFixture } from '../unit/backend/rclone/rcloneFixture';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
}

function makeSource(): string {
  const src = tempDir('offsite-src-');
  fs.mkdirSync(path.join(src, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(src, 'README.md'), '# hello\n');
  fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'version 1\n'.repeat(1000));
  fs.writeFileSync(path.join(src, 'docs', 'blob.bin'), randomBytes(2 * 1024 * 1024));
  return src;
}

describe('offsite CLI over rclone://', function () {
  this.timeout(300_000);
  let server: S3Server;
  let fx: RcloneFixture;
  let bucket: string;
  let gnupg: string;

  before(async () => {
    server = await sharedS3Server();
    fx = rcloneFixture(server);
    bucket = await server.createBucket();
    gnupg = gnupgHome();
  });

  function cli(args: string[], extra: NodeJS.ProcessEnv = {}, cache = tempDir('offsite-cache-')): Promise<RunResult> {
    return offsite(['--archive-dir', cache, ...args], { env: { ...fx.env, GNUPGHOME: gnupg, TZ: 'UTC', ...extra } });
  }

  it('backs up (full, incremental) to an rclone S3 remote, restores as of each time and verifies', async () => {
    const src = makeSource();
    const { url } = fx.freshS3(bucket);
    const cache = tempDir('offsite-cache-');
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url], {}, cache), 'full backup');
    const first = snapshotTree(src);
    const t1 = Math.floor(Date.now() / 1000);
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'version 2\n');
    fs.rmSync(path.join(src, 'README.md'));
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url], {}, cache), 'incremental backup');
    const r1 = path.join(tempDir('offsite-restore-'), 'r1');
    ok(await cli(['restore', '--key', RSA_SEC, '--time', String(t1), url, r1]), 'restore as of the full backup');
    assert.deepEqual(snapshotTree(r1), first);
    const r2 = path.join(tempDir('offsite-restore-'), 'r2');
    ok(await cli(['restore', '--key', RSA_SEC, url, r2]), 'restore latest');
    assert.deepEqual(snapshotTree(r2), snapshotTree(src));
    ok(await cli(['verify', '--key', RSA_SEC, '--compare-data', url, src], {}, cache), 'verify');
    const st = await cli(['status', url], {}, cache);
    ok(st, 'status');
    assert.ok(!st.stdout.includes(server.secretAccessKey) && !st.stderr.includes(server.secretAccessKey));
  });

  it('shares rclone://loc://… with duplicity\'s rclone backend, both ways', async () => {
    const src = makeSource();
    const { url, dir } = fx.freshLocal();
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]), 'offsite backup');
    assert.ok(fs.readdirSync(dir).some((n) => n.endsWith('.manifest.gpg')), `the files are in ${dir}`);
    assert.ok(!fs.readdirSync(dir).some((n) => n.startsWith('.offsite-part-')), 'temporary files left');
    const out = path.join(tempDir('offsite-restore-'), 'dup');
    const d = await duplicity(gnupg, ['restore', '--archive-dir', tempDir('offsite-dupcache-'), url, out], fx.env);
    assert.equal(d.code, 0, `duplicity restore: ${d.stdout}\n${d.stderr}`);
    assert.deepEqual(snapshotTree(out), snapshotTree(src));

    const other = fx.freshLocal();
    const full = await duplicity(gnupg, ['full', '--archive-dir', tempDir('offsite-dupcache-'), '--encrypt-key', RSA_SUBKEY, src, other.url], fx.env);
    assert.equal(full.code, 0, `duplicity full: ${full.stdout}\n${full.stderr}`);
    const out2 = path.join(tempDir('offsite-restore-'), 'o');
    ok(await cli(['restore', '--key', RSA_SEC, other.url, out2]), 'offsite restore of duplicity\'s set');
    assert.deepEqual(snapshotTree(out2), snapshotTree(src));
  });

  it('says clearly when rclone is missing or the remote is not configured', async () => {
    const { url } = fx.freshLocal();
    const missing = await cli(['status', url], { OFFSITE_RCLONE: '/nonexistent/rclone' });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /rclone is not installed.*Install rclone/s);
    const unknown = await cli(['status', 'rclone://nosuchremote:backups']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /rclone has no remote named "nosuchremote".*rclone config.*loc, s3t/s);
    const noRemote = await cli(['status', 'rclone://just-a-path']);
    assert.equal(noRemote.code, 1);
    assert.match(noRemote.stderr, /names no rclone remote/);
    const missingConfig = path.join(tempDir('offsite-rclone-noconf-'), 'rclone.conf');
    const noConfig = await cli(['status', url], { RCLONE_CONFIG: missingConfig });
    assert.equal(noConfig.code, 1);
    assert.match(noConfig.stderr, new RegExp(`no remote named "loc": its config file ${missingConfig} \\(RCLONE_CONFIG\\) does not exist`));
  });

  it('says clearly that the bucket of the URL does not exist, for every command, and never creates it (as s3:// does)', async () => {
    const missing = `no-such-bucket-${randomBytes(4).toString('hex')}`;
    const src = makeSource();
    const out = path.join(tempDir('offsite-restore-'), 'r');
    for (const url of [`rclone://s3t:${missing}/p/q`, `rclone://s3t:${missing}`]) {
      for (const args of [['status', url], ['list', url], ['restore', '--key', RSA_SEC, url, out], ['backup', '--encrypt-key', RSA_PUB, src, url]]) {
        const r = await cli(args);
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`The bucket "${missing}" of ${url.replace(/[/.]/g, '\\$&')} does not exist.*rclone mkdir`, 's'), args[0]);
      }
    }
    const buckets = execFileSync('rclone', ['lsf', '--dirs-only', 's3t:'], { env: rcloneEnv(fx.env), encoding: 'utf8' });
    assert.ok(buckets.includes(`${bucket}/`) && !buckets.includes(missing), buckets);
    assert.ok(!fs.existsSync(out), 'nothing restored');
    // An empty prefix of a bucket that exists, and a folder of a local remote not made yet, are no error.
    ok(await cli(['status', fx.freshS3(bucket).url]), 'status of a fresh prefix');
    ok(await cli(['status', fx.freshLocal().url]), 'status of a fresh local folder');
  });

  /** rclone through a wrapper that records its command lines (what every user reads in /proc/PID/cmdline); bash, as dash drops RCLONE_CONFIG_MY-VAULT_… (a "-" in a variable's name). */
  function argvRecorder(): { env: Record<string, string>; argv: () => string } {
    const wrap = tempDir('offsite-rclone-argv-');
    const argvLog = path.join(wrap, 'argv.log');
    fs.writeFileSync(path.join(wrap, 'rclone'), `#!/bin/bash\ntr '\\0' ' ' < /proc/$$/cmdline >> '${argvLog}'\necho >> '${argvLog}'\nexec rclone "$@"\n`, { mode: 0o755 });
    return { env: { OFFSITE_RCLONE: path.join(wrap, 'rclone') }, argv: () => fs.readFileSync(argvLog, 'utf8') };
  }

  it('never prints the secrets of a connection-string remote, also one with a ":" left unquoted in a value', async () => {
    const secret = server.secretAccessKey;
    const rec = argvRecorder();
    // The endpoint from the environment: duplicity's reading turns the first ":/" of the URL into ":".
    const s3env = { RCLONE_S3_ENDPOINT: server.endpoint, RCLONE_S3_FORCE_PATH_STYLE: 'true', ...rec.env };
    const quoted = `rclone://:s3,provider=Other,access_key_id='${server.accessKeyId}',secret_access_key=${secret},region=us-east-1:${bucket}/cs-${randomBytes(4).toString('hex')}`;
    const cache = tempDir('offsite-cache-');
    const outputs: RunResult[] = [];
    const b = await cli(['-v', 'backup', '--json', '--encrypt-key', RSA_PUB, makeSource(), quoted], s3env, cache);
    ok(b, 'backup through a connection string');
    outputs.push(b, await cli(['-v', 'status', quoted], s3env, cache), await cli(['status', '--json', quoted], s3env, cache), await cli(['-v', 'list', quoted], s3env, cache));
    // The access key id "account:user" unquoted: rclone reads ":s3,…,access_key_id=account" as the remote and the rest, the secret too, as the path.
    const unquoted = `rclone://:s3,provider=Other,access_key_id=${server.accessKeyId},secret_access_key=${secret},region=us-east-1:${bucket}/x`;
    const bad = await cli(['-v', 'status', unquoted], s3env);
    assert.equal(bad.code, 1, bad.stderr);
    outputs.push(bad);
    for (const r of outputs) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `a secret printed:\n${r.stdout}\n${r.stderr}`);
    const argv = rec.argv();
    assert.match(argv, /\b(rcat|copyto)\b/, 'the backup ran rclone through the wrapper');
    assert.ok(!argv.includes(secret), `a secret on rclone's command line:\n${argv}`);
  });

  it('keeps the secrets of nested remotes (crypt in crypt, alias of an on-the-fly s3) off rclone\'s command line and out of its messages', async () => {
    const rec = argvRecorder();
    const obscure = (pw: string): string => execFileSync('rclone', ['obscure', pw], { encoding: 'utf8' }).trim();
    const outer = obscure(`outer-${randomBytes(6).toString('hex')}`);
    const inner = obscure(`inner-${randomBytes(6).toString('hex')}`);
    const dir = tempDir('offsite-rclone-crypt-');
    // The outer layer leaves names plain (but for a .bin): two layers of encrypted names pass 255 bytes.
    const crypt = `rclone://:crypt,password=${outer},remote=':crypt,password=${inner},remote=${dir}:',filename_encryption=off:`;
    const src = makeSource();
    const cache = tempDir('offsite-cache-');
    const outputs: RunResult[] = [];
    const b = await cli(['-v', 'backup', '--encrypt-key', RSA_PUB, src, crypt], rec.env, cache);
    ok(b, 'backup through crypt in crypt');
    const restored = path.join(tempDir('offsite-restore-'), 'r');
    const r = await cli(['-v', 'restore', '--key', RSA_SEC, crypt, restored], rec.env);
    ok(r, 'restore through crypt in crypt');
    assert.deepEqual(snapshotTree(restored), snapshotTree(src));
    outputs.push(b, r);
    // Each layer got its own password: the folder's names are encrypted, the inner one alone reads
    // them (the outer layer's names, .bin added).
    assert.ok(!fs.readdirSync(dir).some((n) => n.includes('duplicity')), fs.readdirSync(dir).join(' '));
    const env = { ...fx.env, RCLONE_CONFIG_IN_TYPE: 'crypt', RCLONE_CONFIG_IN_PASSWORD: inner };
    const innerNames = execFileSync('rclone', ['lsf', `in,remote=${dir}:`], { env, encoding: 'utf8' }).split('\n').filter((n) => n);
    assert.ok(innerNames.length >= 3 && innerNames.every((n) => /^duplicity-.*\.bin$/.test(n)), innerNames.join(' '));

    // A remote of rclone.conf whose name has a "-" (rclone 1.60 reads RCLONE_CONFIG_MY-VAULT_…), its password from the URL.
    const vaultDir = tempDir('offsite-rclone-vault-');
    fs.appendFileSync(fx.config, `\n[my-vault]\ntype = crypt\nremote = ${vaultDir}\n`);
    const vault = await cli(['-v', 'backup', '--encrypt-key', RSA_PUB, src, `rclone://my-vault,password=${inner}:`], rec.env);
    ok(vault, 'backup to a named crypt remote given its password in the URL');
    outputs.push(vault);
    assert.ok(fs.readdirSync(vaultDir).length >= 3 && !fs.readdirSync(vaultDir).some((n) => n.includes('duplicity')), 'names encrypted');

    // An alias of an s3 remote made on the fly, its account:user quoted one level in (the endpoint from
    // the environment: duplicity's reading turns the first ":/" of the URL into ":").
    const secret = server.secretAccessKey;
    const prefix = `nested-${randomBytes(4).toString('hex')}`;
    const s3 = `:s3,provider=Other,access_key_id=''${server.accessKeyId}'',secret_access_key=${secret},region=us-east-1:${bucket}/${prefix}`;
    const alias = `rclone://:alias,remote='${s3}':`;
    const s3env = { RCLONE_S3_ENDPOINT: server.endpoint, RCLONE_S3_FORCE_PATH_STYLE: 'true', ...rec.env };
    const a = await cli(['-v', 'backup', '--encrypt-key', RSA_PUB, src, alias], s3env, cache);
    ok(a, 'backup through an alias of an on-the-fly s3 remote');
    outputs.push(a, await cli(['-v', 'status', alias], s3env, cache), await cli(['list', alias], s3env, cache));
    ok(outputs[outputs.length - 1], 'list');
    const objects = execFileSync('rclone', ['lsf', `s3t:${bucket}/${prefix}`], { env: rcloneEnv(fx.env), encoding: 'utf8' });
    assert.match(objects, /duplicity-full\..*\.manifest\.gpg/);
    for (const o of outputs) {
      for (const s of [outer, inner, secret]) assert.ok(!o.stdout.includes(s) && !o.stderr.includes(s), `a secret printed:\n${o.stdout}\n${o.stderr}`);
    }
    const argv = rec.argv();
    assert.match(argv, /\b(rcat|copyto)\b.*offsite_crypt_/, 'the backups ran rclone through the wrapper');
    for (const s of [outer, inner, secret]) assert.ok(!argv.includes(s), `a secret on rclone's command line:\n${argv}`);
  });

  it('keeps duplicity\'s reading of rclone://loc:/path (below the current folder for a local remote) and warns, naming the absolute form', async () => {
    const src = makeSource();
    const cwd = tempDir('offsite-rclone-cwd-');
    const abs = path.join(tempDir('offsite-rclone-abs-'), 'store');
    const url = `rclone://loc:${abs}`; // one slash after the colon
    const r = await offsite(['--archive-dir', tempDir('offsite-cache-'), 'backup', '--encrypt-key', RSA_PUB, src, url], { cwd, env: { ...fx.env, GNUPGHOME: gnupg, TZ: 'UTC' } });
    ok(r, 'backup');
    assert.match(r.stderr, new RegExp(`For the absolute path ${abs} write rclone://loc:/${abs}`));
    assert.ok(!fs.existsSync(abs), 'not the absolute path');
    assert.ok(fs.readdirSync(path.join(cwd, abs.slice(1))).some((n) => n.endsWith('.manifest.gpg')), 'below the current folder, as duplicity 0.8.22 writes it');
    const st = await offsite(['--archive-dir', tempDir('offsite-cache-'), 'status', `rclone://loc:/${abs}`], { cwd, env: { ...fx.env, GNUPGHOME: gnupg, TZ: 'UTC' } });
    ok(st, 'status of the absolute form');
    assert.doesNotMatch(st.stderr, /means "loc:/);
  });
});
