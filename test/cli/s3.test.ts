// The offsite command on s3:// against a real S3 API (OpenStack Swift + s3api, started by the tests):
// full and incremental backups, restore as of a time, verify, retention, credentials from a profile,
// stock duplicity's boto3 backend reading what Offsite wrote and the reverse, the server killed
// mid-upload, the errors a user meets, and a restore refused for objects archived in GLACIER.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidObjectState, ListBucketsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { RetryBackend } from '../../src/engine/backend/retryBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { cryptoForRead } from '../../src/engine/cryptoConfig';
import { OffsiteError } from '../../src/engine/errors';
import { nullLogger } from '../../src/engine/log';
import { parseName } from '../../src/engine/manifest/naming';
import { restore } from '../../src/engine/ops/restore';
import { offsite, type RunResult } from '../helpers/cli';
import { RSA_PUB, RSA_SEC, RSA_SUBKEY, duplicity, gnupgHome } from '../helpers/gpg';
import { freePort } from '../helpers/sshd';
import { sharedS3Server, type S3Server } from '../helpers/s3Server';
import { silentListener } from '../helpers/silentListener';
import { tempDir } from '../helpers/tmp';
import { snapshotTree } from '../helpers/tree';
import { leaveMultipart, openS3 } from '../unit/backend/s3/s3Fixture';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
}

function makeSource(blobMiB = 3): string {
  const src = tempDir('offsite-src-');
  fs.mkdirSync(path.join(src, 'docs', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(src, 'README.md'), '# hello\n');
  fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'version 1\n'.repeat(1000));
  fs.writeFileSync(path.join(src, 'docs', 'deep', 'blob.bin'), randomBytes(blobMiB * 1024 * 1024));
  return src;
}

describe('offsite CLI over s3://', function () {
  this.timeout(300_000);
  let server: S3Server;
  let bucket: string;
  let gnupg: string;
  let home: string;
  let client: S3Client;

  before(async () => {
    server = await sharedS3Server();
    bucket = await server.createBucket();
    gnupg = gnupgHome();
    home = tempDir('offsite-s3-home-');
    client = await server.client();
  });
  after(() => client?.destroy());

  /** A private HOME (no ~/.aws of the user), the server's keys in the environment, a private cache. */
  function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      HOME: home,
      AWS_CONFIG_FILE: path.join(home, '.aws', 'config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(home, '.aws', 'credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ENDPOINT_URL: '',
      AWS_PROFILE: '',
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      GNUPGHOME: gnupg,
      TZ: 'UTC',
      ...extra,
    };
  }

  function cli(args: string[], extra: NodeJS.ProcessEnv = {}, cache = tempDir('offsite-cache-')): Promise<RunResult> {
    return offsite(['--archive-dir', cache, '--s3-endpoint-url', server.endpoint, ...args], { env: env(extra) });
  }

  function freshUrl(scheme = 's3'): { url: string; prefix: string } {
    const prefix = `cli/${randomBytes(5).toString('hex')}`;
    return { url: `${scheme}://${bucket}/${prefix}`, prefix: `${prefix}/` };
  }

  async function keys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) out.push(o.Key!.slice(prefix.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async function uploads(prefix: string): Promise<string[]> {
    const r = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return (r.Uploads ?? []).map((u) => u.Key!.slice(prefix.length));
  }

  it('backs up (full, incremental), restores as of each time, verifies, lists and applies retention', async () => {
    const src = makeSource();
    const { url, prefix } = freshUrl();
    const cache = tempDir('offsite-cache-');
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url], {}, cache), 'full backup');
    const first = snapshotTree(src);
    const t1 = Math.floor(Date.now() / 1000);
    const afterFull = await keys(prefix);
    assert.ok(afterFull.filter((n) => /^duplicity-full\.\d{8}T\d{6}Z\.vol\d+\.difftar\.gpg$/.test(n)).length >= 3, afterFull.join(' '));
    assert.ok(afterFull.every((n) => parseName(n) !== undefined), `only duplicity names in the bucket: ${afterFull.join(' ')}`);

    await sleep(1100);
    fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'version 2\n'.repeat(1000));
    fs.rmSync(path.join(src, 'README.md'));
    fs.writeFileSync(path.join(src, 'new.txt'), 'new');
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url], {}, cache), 'incremental backup');
    const second = snapshotTree(src);
    assert.ok((await keys(prefix)).some((n) => n.startsWith('duplicity-inc.')));

    // Restores with an empty cache: everything comes from the bucket.
    const r1 = path.join(tempDir('offsite-restore-'), 'r1');
    ok(await cli(['restore', '--key', RSA_SEC, '--time', String(t1), url, r1]), 'restore as of the full backup');
    assert.deepEqual(snapshotTree(r1), first);
    const r2 = path.join(tempDir('offsite-restore-'), 'r2');
    ok(await cli(['restore', '--key', RSA_SEC, url, r2]), 'restore latest');
    assert.deepEqual(snapshotTree(r2), second);
    const r3 = path.join(tempDir('offsite-restore-'), 'r3');
    ok(await cli(['restore', '--key', RSA_SEC, '--path', 'docs/a.txt', url, r3]), 'restore one file');
    assert.equal(fs.readFileSync(path.join(r3, 'docs', 'a.txt'), 'utf8'), 'version 2\n'.repeat(1000));
    ok(await cli(['verify', '--key', RSA_SEC, '--compare-data', url, src], {}, cache), 'verify');
    const st = await cli(['status', url], {}, cache);
    ok(st, 'status');
    assert.match(st.stdout, /Full/i);
    const ls = await cli(['list', '--key', RSA_SEC, url], {}, cache);
    ok(ls, 'list');
    assert.match(ls.stdout, /docs\/deep\/blob\.bin/);

    // A second chain, then retention keeps only it.
    await sleep(1100);
    ok(await cli(['backup', '--full', '--encrypt-key', RSA_PUB, src, url], {}, cache), 'second full backup');
    const dry = await cli(['remove-all-but-n-full', '1', url], {}, cache);
    ok(dry, 'retention (dry run)');
    assert.match(dry.stdout, /Would delete 1 backup chain/);
    ok(await cli(['remove-all-but-n-full', '1', '--force', url], {}, cache), 'retention');
    const left = await keys(prefix);
    assert.equal(new Set(left.map((n) => parseName(n)!.endTime)).size, 1, `one set left: ${left.join(' ')}`);
    const r4 = path.join(tempDir('offsite-restore-'), 'r4');
    ok(await cli(['restore', '--key', RSA_SEC, url, r4]), 'restore after retention');
    assert.deepEqual(snapshotTree(r4), second);
    ok(await cli(['remove-older-than', 'now', '--force', url], {}, cache), 'remove-older-than never removes the last chain');
    assert.deepEqual(await keys(prefix), left);
  });

  it('takes the keys from a profile (--s3-profile) and the endpoint from AWS_ENDPOINT_URL; boto3+s3:// is the same remote', async () => {
    const profileHome = tempDir('offsite-s3-profile-');
    fs.mkdirSync(path.join(profileHome, '.aws'), { mode: 0o700 });
    fs.writeFileSync(path.join(profileHome, '.aws', 'credentials'), `[backup]\naws_access_key_id = ${server.accessKeyId}\naws_secret_access_key = ${server.secretAccessKey}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(profileHome, '.aws', 'config'), '[profile backup]\nregion = us-east-1\n', { mode: 0o600 });
    const penv = {
      HOME: profileHome,
      AWS_CONFIG_FILE: path.join(profileHome, '.aws', 'config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(profileHome, '.aws', 'credentials'),
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_REGION: '',
      AWS_ENDPOINT_URL: server.endpoint,
    };
    const src = makeSource(1);
    const { url, prefix } = freshUrl();
    const r = await offsite(['--archive-dir', tempDir('offsite-cache-'), '--s3-profile', 'backup', 'backup', '--encrypt-key', RSA_PUB, src, url], { env: env(penv) });
    ok(r, 'backup with a profile');
    assert.ok((await keys(prefix)).some((n) => n.endsWith('.manifest.gpg')));
    const out = path.join(tempDir('offsite-restore-'), 'r');
    const r2 = await offsite(['--archive-dir', tempDir('offsite-cache-'), '--s3-profile', 'backup', 'restore', '--key', RSA_SEC, url.replace(/^s3:/, 'boto3+s3:'), out], { env: env(penv) });
    ok(r2, 'restore through boto3+s3://');
    assert.deepEqual(snapshotTree(out), snapshotTree(src));
    const bad = await offsite(['--archive-dir', tempDir('offsite-cache-'), '--s3-profile', 'nobody', 'status', url], { env: env(penv) });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, new RegExp(`The AWS profile 'nobody' \\(--s3-profile\\) is not in ${penv.AWS_SHARED_CREDENTIALS_FILE} or ${penv.AWS_CONFIG_FILE}.*Profiles there: backup`));
  });

  it('takes the keys as the AWS CLI and duplicity do: --s3-profile first, then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then AWS_PROFILE', async () => {
    const profileHome = tempDir('offsite-s3-profile-');
    fs.mkdirSync(path.join(profileHome, '.aws'), { mode: 0o700 });
    const creds = path.join(profileHome, '.aws', 'credentials');
    fs.writeFileSync(creds, `[good]\naws_access_key_id = ${server.accessKeyId}\naws_secret_access_key = ${server.secretAccessKey}\n[stale]\naws_access_key_id = ${server.accessKeyId}\naws_secret_access_key = not-the-secret-0123456789\n`, { mode: 0o600 });
    const files = { HOME: profileHome, AWS_CONFIG_FILE: path.join(profileHome, '.aws', 'config'), AWS_SHARED_CREDENTIALS_FILE: creds };
    const src = makeSource(1);
    const { url } = freshUrl();
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url]), 'backup');
    // A shell's AWS_PROFILE and the keys given for this backup: the keys (the AWS CLI's and boto3's order).
    ok(await cli(['status', url], { ...files, AWS_PROFILE: 'stale' }), 'status with the keys and AWS_PROFILE of other keys');
    // --s3-profile, given on the command line, wins over the keys.
    ok(await cli(['--s3-profile', 'good', 'status', url], { ...files, AWS_SECRET_ACCESS_KEY: 'not-the-secret-0123456789' }), 'status with --s3-profile and wrong keys');
    const wrong = await cli(['--s3-profile', 'stale', 'status', url], files);
    assert.equal(wrong.code, 1, 'the profile given, not the keys');
    assert.match(wrong.stderr, /refused the credentials/);
    // AWS_PROFILE alone still chooses the keys, and one that does not exist is an error, as for the AWS CLI.
    ok(await cli(['status', url], { ...files, AWS_PROFILE: 'good', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }), 'status with AWS_PROFILE only');
    const none = await cli(['status', url], { ...files, AWS_PROFILE: 'nobody' });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /The AWS profile 'nobody' \(AWS_PROFILE\) is not in/);
  });

  it('fails in bounded time against an endpoint that accepts connections and never answers: five attempts, one request each', async () => {
    const silent = await silentListener();
    try {
      const t0 = Date.now();
      // OFFSITE_S3_TIMEOUT shortens the 30 s idle timeout for the test: 5 attempts of 1 s, and the waits between.
      const r = await offsite(['--archive-dir', tempDir('offsite-cache-'), '--s3-endpoint-url', `http://127.0.0.1:${silent.port}`, 'status', `s3://${bucket}/x`], { env: env({ OFFSITE_S3_TIMEOUT: '1' }) });
      const took = Date.now() - t0;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /Cannot reach the S3 server .*no answer in time/);
      assert.equal((r.stderr.match(/retrying \(attempt \d\)/g) ?? []).length, 4, r.stderr);
      assert.equal(silent.requests(), 5, 'one request per attempt');
      assert.ok(took < 40_000, `took ${took} ms`);
    } finally {
      await silent.close();
    }
  });

  it('-v shows the SDK\'s failed requests as readable lines, without keys or signatures', async () => {
    const src = makeSource(1);
    const { url } = freshUrl();
    const r = await cli(['-v', 'backup', '--encrypt-key', RSA_PUB, src, url]);
    ok(r, 'backup -v');
    const lines = r.stderr.split('\n').filter((l) => l.includes('S3 SDK'));
    assert.ok(lines.length > 0, r.stderr);
    for (const l of lines) {
      assert.doesNotMatch(l, /\[object Object\]/);
      assert.match(l, /S3 SDK: \w+Command s3:\/\/\S+ failed: \w+/);
      assert.ok(!l.includes(server.secretAccessKey) && !/Signature=|Credential=/.test(l), l);
    }
  });

  it('writes sets that duplicity (boto3+s3) restores, and restores sets that duplicity wrote', async () => {
    const src = makeSource(2);
    const { url, prefix } = freshUrl();
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]), 'offsite backup');
    const dupEnv = { HOME: home, AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey, AWS_CONFIG_FILE: path.join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none') };
    const boto = `boto3+s3://${bucket}/${prefix}`;
    const s3args = ['--s3-endpoint-url', server.endpoint, '--s3-region-name', 'us-east-1'];
    const out = path.join(tempDir('offsite-restore-'), 'dup');
    const d = await duplicity(gnupg, ['restore', ...s3args, '--archive-dir', tempDir('offsite-dupcache-'), boto, out], dupEnv);
    assert.equal(d.code, 0, `duplicity restore: ${d.stdout}\n${d.stderr}`);
    assert.deepEqual(snapshotTree(out), snapshotTree(src));

    // The other way: duplicity writes a chain (multipart volumes too), Offsite restores it.
    const src2 = makeSource(9);
    const { prefix: p2 } = freshUrl();
    const boto2 = `boto3+s3://${bucket}/${p2}`;
    const dcache = tempDir('offsite-dupcache-');
    const full = await duplicity(gnupg, ['full', ...s3args, '--archive-dir', dcache, '--encrypt-key', RSA_SUBKEY, '--volsize', '6', '--s3-multipart-chunk-size', '5', src2, boto2], dupEnv);
    assert.equal(full.code, 0, `duplicity full: ${full.stdout}\n${full.stderr}`);
    const t1 = Math.floor(Date.now() / 1000);
    const first = snapshotTree(src2);
    await sleep(1100);
    fs.writeFileSync(path.join(src2, 'docs', 'a.txt'), 'changed by duplicity\n');
    const inc = await duplicity(gnupg, ['incremental', ...s3args, '--archive-dir', dcache, '--encrypt-key', RSA_SUBKEY, src2, boto2], dupEnv);
    assert.equal(inc.code, 0, `duplicity incremental: ${inc.stdout}\n${inc.stderr}`);
    const o1 = path.join(tempDir('offsite-restore-'), 'o1');
    ok(await cli(['restore', '--key', RSA_SEC, '--time', String(t1), `s3://${bucket}/${p2}`, o1]), 'offsite restore of the full set');
    assert.deepEqual(snapshotTree(o1), first);
    const o2 = path.join(tempDir('offsite-restore-'), 'o2');
    ok(await cli(['restore', '--key', RSA_SEC, boto2, o2]), 'offsite restore of the latest set');
    assert.deepEqual(snapshotTree(o2), snapshotTree(src2));
  });

  it('survives the server killed mid-upload: retries or fails clearly, shows no partial object, cleanup keeps leftovers begun in the last day and aborts them with --keep-recent 0, the next backup succeeds', async () => {
    const src = makeSource(40);
    const { url, prefix } = freshUrl();
    const cache = tempDir('offsite-cache-');
    // Volumes of 12 MB sent in 5 MiB parts: the kill lands in a multipart upload.
    const knobs = { OFFSITE_S3_PART_MB: '5', OFFSITE_S3_MULTIPART_MB: '5' };
    const running = cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '12', src, url], knobs, cache);
    let killed = false;
    for (let i = 0; i < 600 && !killed; i++) {
      if ((await uploads(prefix).catch(() => [])).length > 0) {
        server.kill();
        killed = true;
      } else await sleep(25);
    }
    assert.ok(killed, 'no multipart upload was seen in progress');
    await sleep(1500);
    await server.start();
    const r = await running;
    if (r.code !== 0) {
      // Allowed: a clear one-line error, then nothing of the set counts as complete.
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /Cannot reach the S3 server|S3 server failed/);
    }
    const names = await keys(prefix);
    assert.ok(names.every((n) => parseName(n) !== undefined), `only final names: ${names.join(' ')}`);
    const b = await openS3(server, { bucket, prefix, url });
    for (const n of names) assert.ok((await b.stat(n)).size > 0, `${n} is empty`);
    await b.close();
    // Leftover multipart uploads (their abort could not reach the dead server) are listed, then removed.
    // A multipart upload whose abort could not reach the dead server is aborted once it is back
    // (after the next success, or on close); one left by a crashed process is for `offsite cleanup`.
    if (r.code === 0) assert.deepEqual(await uploads(prefix), [], 'the interrupted multipart upload was aborted later');
    const b2 = await openS3(server, { bucket, prefix, url });
    await leaveMultipart(b2, { bucket, prefix, url }, 'duplicity-full.20261126T131509Z.vol9.difftar.gpg');
    await b2.close();
    const left = await uploads(prefix);
    assert.ok(left.length >= 1);
    // Begun seconds ago by the store's clock (ListMultipartUploads dates each): a backup running on
    // another machine may be sending them, so cleanup keeps them unless told otherwise.
    const keeps = await cli(['cleanup', '--force', url], {}, cache);
    ok(keeps, 'cleanup');
    for (const k of left) assert.match(keeps.stdout, new RegExp(`In progress\\? the temporary upload ${k.replace(/\./g, '\\.')} \\(unfinished multipart upload \\w+\\): last written \\S+ by the remote's clock`));
    assert.deepEqual((await uploads(prefix)).sort(), [...left].sort());
    const dry = await cli(['cleanup', '--keep-recent', '0', url], {}, cache);
    ok(dry, 'cleanup (dry run)');
    for (const k of left) assert.ok(dry.stdout.includes(`Would delete ${k} (unfinished multipart upload`), dry.stdout);
    ok(await cli(['cleanup', '--force', '--keep-recent', '0', url], {}, cache), 'cleanup');
    assert.deepEqual(await uploads(prefix), []);

    ok(await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '12', src, url], knobs, cache), 'the next backup');
    const out = path.join(tempDir('offsite-restore-'), 'r');
    ok(await cli(['restore', '--key', RSA_SEC, url, out]), 'restore');
    assert.deepEqual(snapshotTree(out), snapshotTree(src));
    ok(await cli(['verify', '--key', RSA_SEC, '--compare-data', url, src], {}, cache), 'verify');
  });

  it('gives one clear line for wrong credentials, a missing bucket and an endpoint where nothing listens', async () => {
    const src = makeSource(1);
    const { url } = freshUrl();
    const wrong = await cli(['backup', '--encrypt-key', RSA_PUB, src, url], { AWS_SECRET_ACCESS_KEY: 'not-the-secret-0123456789' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the credentials \((SignatureDoesNotMatch|InvalidAccessKeyId)\)/);
    assert.match(wrong.stderr, /AWS_ACCESS_KEY_ID/);
    assert.ok(!wrong.stderr.includes('not-the-secret') && !wrong.stderr.includes(server.secretAccessKey));

    // Every command, the read-only ones too (no empty collection), and the bucket is not created.
    const out = path.join(tempDir('offsite-restore-'), 'r');
    for (const args of [['backup', '--encrypt-key', RSA_PUB, src], ['status'], ['list'], ['restore', '--key', RSA_SEC]]) {
      const nobucket = await cli([...args, 's3://no-such-bucket-x/p', ...(args[0] === 'restore' ? [out] : [])]);
      assert.equal(nobucket.code, 1, `${args[0]}: ${nobucket.stderr}`);
      assert.match(nobucket.stderr, /The bucket "no-such-bucket-x" does not exist.*Create the bucket first/, args[0]);
    }
    assert.ok(!fs.existsSync(out));
    const client = await server.client();
    const { Buckets } = await client.send(new ListBucketsCommand({}));
    client.destroy();
    assert.ok(!(Buckets ?? []).some((b) => b.Name === 'no-such-bucket-x'));

    const port = await freePort();
    const t0 = Date.now();
    const down = await offsite(['--archive-dir', tempDir('offsite-cache-'), '--s3-endpoint-url', `http://127.0.0.1:${port}`, 'status', url], { env: env() });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /Cannot reach the S3 server .*connection refused.*--s3-endpoint-url/s);
    assert.ok(Date.now() - t0 < 60_000, 'gave up in reasonable time');
    const badUrl = await offsite(['--archive-dir', tempDir('offsite-cache-'), '--s3-endpoint-url', 'localhost:9000', 'status', url], { env: env() });
    assert.equal(badUrl.code, 1);
    assert.match(badUrl.stderr, /is not a URL|must be an http/);
  });

  it('refuses, with a clear error and no retry, to restore volumes archived in GLACIER', async () => {
    const src = makeSource(1);
    const { url, prefix } = freshUrl();
    ok(await cli(['backup', '--encrypt-key', RSA_PUB, src, url]), 'backup');
    // The engine's restore, in process, over the real bucket; the store answers as AWS does for a
    // GLACIER object that was not thawed (the test server has only STANDARD).
    const s3 = await openS3(server, { bucket, prefix, url });
    let refused = 0;
    s3.client.middlewareStack.add(
      (next, context) => async (args) => {
        const key = (args.input as { Key?: string }).Key ?? '';
        if (context.commandName === 'GetObjectCommand' && key.includes('.difftar.')) {
          refused++;
          throw new InvalidObjectState({ message: 'The operation is not valid for the object\'s storage class', StorageClass: 'GLACIER', $metadata: { httpStatusCode: 403 } });
        }
        return next(args);
      },
      { step: 'initialize', name: 'testGlacier' },
    );
    const backend = new RetryBackend(s3, { baseDelayMs: 1 });
    const target = path.join(tempDir('offsite-restore-'), 'r');
    await assert.rejects(
      restore({ backend, archive: ArchiveDir.open(tempDir('offsite-cache-')), crypto: cryptoForRead({ restoreKey: RSA_SEC }), log: nullLogger, target }),
      (e: unknown) => OffsiteError.is(e) && /archived in the GLACIER storage class and must be restored \(thawed\)/.test(e.message) && /restore-object/.test(e.hint ?? ''),
    );
    assert.equal(refused, 1, 'not retried');
    await s3.close();
  });
});
