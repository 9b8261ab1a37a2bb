// The S3 client's settings, against real parts: a server that accepts connections and never answers
// (a silent TCP listener started here) must fail each attempt after the idle timeout, with one request
// per attempt (RetryBackend retries, the SDK does not); a clock that is off is corrected between our
// attempts; the SDK's log lines are readable and carry no secret; a misspelled profile is named.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { RetryBackend } from '../../../../src/engine/backend/retryBackend';
import { S3_CONNECT_TIMEOUT_MS, S3_IDLE_TIMEOUT_MS, createS3Client } from '../../../../src/engine/backend/s3/s3Client';
import { createS3Backend } from '../../../../src/engine/backend/s3Backend';
import { OffsiteError } from '../../../../src/engine/errors';
import { expectKind, listNames } from '../conformance';
import { silentListener } from '../../../helpers/silentListener';
import { tempDir } from '../../../helpers/tmp';
import type { S3Server } from '../../../helpers/s3Server';
import { freshRemote, s3Options, sharedS3Server } from './s3Fixture';

async function handlerConfig(client: S3Client): Promise<{ socketTimeout?: number; connectionTimeout?: number }> {
  return (client.config.requestHandler as unknown as { configProvider: Promise<{ socketTimeout?: number; connectionTimeout?: number }> }).configProvider;
}

describe('S3 client settings', function () {
  this.timeout(120_000);
  let server: S3Server;
  let bucket: string;

  before(async () => {
    server = await sharedS3Server();
    bucket = await server.createBucket();
  });

  it('makes one attempt per request, with a 30 s idle timeout and a 10 s connect timeout by default', async () => {
    assert.equal(S3_IDLE_TIMEOUT_MS, 30_000);
    assert.equal(S3_CONNECT_TIMEOUT_MS, 10_000);
    const { client } = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    assert.equal(await client.config.maxAttempts(), 1);
    const cfg = await handlerConfig(client);
    assert.equal(cfg.socketTimeout, S3_IDLE_TIMEOUT_MS);
    assert.equal(cfg.connectionTimeout, S3_CONNECT_TIMEOUT_MS);
    client.destroy();
    // OFFSITE_S3_TIMEOUT (seconds) sets another; unset or empty, the default.
    for (const [value, expected] of [['2.5', 2500], ['', S3_IDLE_TIMEOUT_MS], [undefined, S3_IDLE_TIMEOUT_MS]] as const) {
      const remote = await freshRemote(server, bucket);
      const b = await createS3Backend(new URL(remote.url), { options: s3Options(server, { env: { OFFSITE_S3_TIMEOUT: value } }) }, remote.url);
      assert.equal((await handlerConfig(b.client)).socketTimeout, expected, value);
      await b.close();
    }
  });

  it('refuses a tuning variable that is no number, naming it, as sftp\'s OFFSITE_SSH_TIMEOUT (it was ignored, leaving the default)', async () => {
    for (const [key, value] of [['OFFSITE_S3_TIMEOUT', 'x'], ['OFFSITE_S3_TIMEOUT', '0'], ['OFFSITE_S3_TIMEOUT', '30s'], ['OFFSITE_S3_PART_MB', '-5'], ['OFFSITE_S3_MULTIPART_MB', 'big']]) {
      const remote = await freshRemote(server, bucket);
      await assert.rejects(
        createS3Backend(new URL(remote.url), { options: s3Options(server, { env: { [key]: value } }) }, remote.url),
        (e: unknown) => OffsiteError.is(e, 'usage') && e.message.startsWith(`${key} must be a number of `) && e.message.endsWith(`not ${JSON.stringify(value)}`),
        `${key}=${value}`,
      );
    }
  });

  it('fails a silent server after the idle timeout, one request per attempt of the retry wrapper', async () => {
    const silent = await silentListener();
    try {
      const url = `s3://${bucket}/x`;
      const b = await createS3Backend(new URL(url), { options: s3Options(server, { s3EndpointUrl: `http://127.0.0.1:${silent.port}`, env: { OFFSITE_S3_TIMEOUT: '1' } }) }, url);
      const retries: number[] = [];
      const r = new RetryBackend(b, { attempts: 3, baseDelayMs: 10, onRetry: (_e, n) => retries.push(n) });
      const t0 = Date.now();
      const e = await expectKind(listNames(r), 'transient');
      const took = Date.now() - t0;
      assert.match(e.message, /Cannot reach the S3 server .*no answer in time/);
      assert.deepEqual(retries, [1, 2]);
      assert.equal(silent.requests(), 3, 'one request per attempt: the SDK does not retry on its own');
      assert.ok(took >= 3000 && took < 10_000, `took ${took} ms`);
      await r.close();
    } finally {
      await silent.close();
    }
  });

  it('corrects a clock that is off between attempts of the retry wrapper (the SDK no longer retries)', async () => {
    const remote = await freshRemote(server, bucket);
    // This computer's clock 20 minutes fast (as the SDK reads it: Date.now): the server refuses the
    // first request, and the SDK takes the server's time from the answer.
    const realNow = Date.now;
    Date.now = () => realNow() + 20 * 60_000;
    try {
      const plain = await createS3Backend(new URL(remote.url), { options: s3Options(server) }, remote.url);
      const first = await expectKind(listNames(plain), 'transient');
      assert.match(first.message, /clock of this computer differs .*corrected for the next attempt/);
      assert.deepEqual(await listNames(plain), [], 'the next attempt is signed with the corrected time');
      await plain.close();
      const b = await createS3Backend(new URL(remote.url), { options: s3Options(server) }, remote.url);
      const retries: string[] = [];
      const r = new RetryBackend(b, { baseDelayMs: 10, onRetry: (e) => retries.push(e.message) });
      assert.deepEqual(await listNames(r), []);
      assert.equal(retries.length, 1);
      await r.close();
    } finally {
      Date.now = realNow;
    }
  });

  it('logs readable lines for failed requests (command, object, error, status), never the secret or a signature', async () => {
    const remote = await freshRemote(server, bucket);
    const secret = `wrong-${randomBytes(8).toString('hex')}`;
    const lines: string[] = [];
    const log = (_level: string, m: string): void => {
      lines.push(m);
    };
    const good = await createS3Backend(new URL(remote.url), { options: s3Options(server), log }, remote.url);
    await expectKind(good.stat('missing.gpg'), 'notFound');
    const bad = await createS3Backend(new URL(remote.url), { options: s3Options(server, { s3SecretAccessKey: secret }), log }, remote.url);
    await expectKind(listNames(bad), 'auth');
    await good.close();
    await bad.close();
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0], new RegExp(`^S3 SDK: HeadObjectCommand s3://${bucket}/${remote.prefix}missing\\.gpg failed: NotFound \\(HTTP 404[,)]`));
    assert.match(lines[1], new RegExp(`^S3 SDK: ListObjectsV2Command s3://${bucket}/${remote.prefix}\\* failed: SignatureDoesNotMatch: .+\\(HTTP 403[,)]`));
    for (const l of lines) {
      assert.doesNotMatch(l, /\[object Object\]/);
      assert.ok(!l.includes(secret) && !l.includes(server.secretAccessKey), `a secret in: ${l}`);
      assert.doesNotMatch(l, /Signature=|Credential=|AWS4-HMAC-SHA256/);
    }
  });

  it('names a profile that is in neither the credentials nor the config file (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)', async () => {
    const home = tempDir('offsite-s3-profile-');
    const credentials = path.join(home, 'creds');
    const config = path.join(home, 'conf');
    fs.writeFileSync(credentials, '[good]\naws_access_key_id = a\naws_secret_access_key = b\n');
    fs.writeFileSync(config, '[default]\nregion = us-east-1\n[profile viaconfig]\nregion = us-east-1\n[sso-session s]\nsso_region = us-east-1\n');
    const env = { AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: config };
    await assert.rejects(createS3Client({ endpoint: server.endpoint, profile: 'goood', env }), (e: unknown) => {
      assert.ok(OffsiteError.is(e, 'config'));
      assert.equal(e.message, `The AWS profile 'goood' (--s3-profile) is not in ${credentials} or ${config}`);
      assert.equal(e.hint, 'Profiles there: default, good, viaconfig');
      return true;
    });
    await assert.rejects(createS3Client({ endpoint: server.endpoint, env: { ...env, AWS_PROFILE: 's' } }), /The AWS profile 's' \(AWS_PROFILE\)/);
    for (const profile of ['good', 'viaconfig', 'default']) {
      const { client } = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1', profile, env });
      client.destroy();
    }
    // Explicit keys do not need the profile's.
    const { client } = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1', profile: 'goood', env, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    client.destroy();
  });
});
