// rclone:// URLs as duplicity reads them, redaction of secrets, and rclone's errors (pure), plus the
// registry opening both new schemes.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import '../../../../src/engine/backend/all';
import { BackendError } from '../../../../src/engine/backend/backend';
import { SECRET_PARAM, redactSecretValues } from '../../../../src/engine/backend/backendUtil';
import { openBackend } from '../../../../src/engine/backend/registry';
import { classifyRclone, displayRemote, lastError, makeRedactor, rcloneEnv, secretsToEnv } from '../../../../src/engine/backend/rclone/rcloneRun';
import { RcloneBackend, parseRcloneUrl, rcloneSlashWarning, rcloneTimeoutArgs } from '../../../../src/engine/backend/rcloneBackend';
import { OffsiteError } from '../../../../src/engine/errors';

describe('rclone:// URLs and errors', () => {
  it('reads URLs as duplicity does (first ":/" becomes ":", the path is decoded)', () => {
    assert.equal(parseRcloneUrl('rclone://gdrive:backups/laptop'), 'gdrive:backups/laptop');
    assert.equal(parseRcloneUrl('rclone://gdrive:/backups'), 'gdrive:backups');
    assert.equal(parseRcloneUrl('rclone://local://srv/backup'), 'local:/srv/backup');
    assert.equal(parseRcloneUrl('rclone://s3t:bucket/my%20dir'), 's3t:bucket/my dir');
    assert.equal(parseRcloneUrl('rclone://remote:'), 'remote:');
    assert.equal(parseRcloneUrl('rclone://:s3,provider=AWS:bucket/x'), ':s3,provider=AWS:bucket/x');
    for (const bad of ['rclone://nocolon/x', 'rclone://', 'rclone://a/b:c', 'rclone://x:a/%zz']) {
      assert.throws(() => parseRcloneUrl(bad), (e) => OffsiteError.is(e, 'usage'), bad);
    }
  });

  it('never shows the secrets of a connection-string remote', () => {
    const remote = ":s3,access_key_id=AK,secret_access_key='S3CRET',endpoint='http://h:1':bucket/x";
    assert.equal(displayRemote(remote), ':s3:bucket/x');
    assert.equal(displayRemote('gd,team_drive=x:dir'), 'gd:dir');
    assert.equal(displayRemote('plain:dir'), 'plain:dir');
    const redact = makeRedactor(remote);
    const text = `Failed to create file system for "${remote}": bad; also pass=hunter2 and https://u:pw@host/x`;
    const out = redact(text);
    for (const s of ['S3CRET', 'hunter2', ':pw@']) assert.ok(!out.includes(s), out);
    assert.match(out, /":s3:bucket\/x"/);
  });

  it('takes a parameter for a secret by the same names in its messages as in the remote URL (backendUtil\'s one list)', () => {
    for (const name of ['secret_access_key', 'pass', 'password', 'passwd', 'session_token', 'client_secret', 'account_key', 'endpoint', 'region', 'provider']) {
      const inUrl = redactSecretValues(`rclone://:s3,${name}=V4LUE:bucket`).includes('V4LUE');
      const inMessage = makeRedactor('other:x')(`bad value ${name}=V4LUE here`).includes('V4LUE');
      assert.equal(inMessage, inUrl, name);
    }
  });

  it("takes every option rclone marks as a password for a secret, and the keys, tokens and credentials rclone's help names", () => {
    const providers = JSON.parse(execFileSync('rclone', ['config', 'providers'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as Array<{ Name: string; Options: Array<{ Name: string; IsPassword?: boolean; Sensitive?: boolean }> }>;
    const marked = providers.flatMap((p) => p.Options.filter((o) => o.IsPassword || o.Sensitive).map((o) => `${p.Name}: ${o.Name}`));
    assert.ok(marked.length >= 10, `rclone marked only ${marked.length} options`);
    assert.deepEqual(marked.filter((m) => !SECRET_PARAM.test(m.slice(m.indexOf(': ') + 2))), [], 'options rclone marks as secret that Offsite would show');
    const names = new Set(providers.flatMap((p) => p.Options.map((o) => o.Name)));
    for (const name of ['sas_url', 'key', 'client_secret', 'service_account_credentials', 'token', 'authorization', 'headers', 'secret_access_key', 'sse_customer_key']) {
      assert.ok(names.has(name), `rclone has no option ${name}`);
      assert.ok(SECRET_PARAM.test(name), name);
      assert.ok(!redactSecretValues(`rclone://:azureblob,account=acct,${name}='V4LUE':c`).includes('V4LUE'), name);
      assert.ok(!makeRedactor('x:')(`bad ${name}="V4LUE"`).includes('V4LUE'), name);
      assert.deepEqual(secretsToEnv(`box,${name}=V4LUE:c`).env, { [`RCLONE_CONFIG_BOX_${name.toUpperCase()}`]: 'V4LUE' }, name);
    }
    for (const name of ['account', 'endpoint', 'region', 'provider', 'env_auth', 'upstreams', 'remote']) assert.ok(!SECRET_PARAM.test(name), name);
  });

  it('never shows a secret that follows a ":" left unquoted in a parameter (rclone reads the rest as the path)', () => {
    // An access key id with a colon (Swift's "account:user"), written without quotes.
    const remote = ':s3,provider=Other,access_key_id=acct:user,secret_access_key=S3CRET,region=us-east-1:bucket/x';
    assert.ok(!displayRemote(remote).includes('S3CRET'), displayRemote(remote));
    const b = new RcloneBackend({ remote, env: {} });
    assert.ok(!b.displayUrl.includes('S3CRET'), b.displayUrl);
    const out = makeRedactor(remote)(`Failed to create file system for "${remote}": secret_access_key not found`);
    assert.ok(!out.includes('S3CRET'), out);
  });

  it("moves a connection string's secret parameters into rclone's environment, off its command line", () => {
    // A backend made on the fly becomes a remote of its own, defined in the environment: rclone's
    // RCLONE_S3_… would reach every s3 remote of the command.
    assert.deepEqual(secretsToEnv(":s3,provider=Other,access_key_id=AK,secret_access_key='S3''C,R:ET',endpoint='http://h:1':bucket/x"), {
      remote: "offsite_s3_1,provider=Other,endpoint='http://h:1':bucket/x",
      env: { RCLONE_CONFIG_OFFSITE_S3_1_TYPE: 's3', RCLONE_CONFIG_OFFSITE_S3_1_ACCESS_KEY_ID: 'AK', RCLONE_CONFIG_OFFSITE_S3_1_SECRET_ACCESS_KEY: "S3'C,R:ET" },
      problem: undefined,
      renamed: [['offsite_s3_1', ':s3']],
    });
    // rclone 1.60 reads RCLONE_CONFIG_MY-SFTP_PASS, older ones RCLONE_CONFIG_MY_SFTP_PASS: both are set.
    assert.deepEqual(secretsToEnv('my-sftp,pass="p,w":dir'), { remote: 'my-sftp:dir', env: { 'RCLONE_CONFIG_MY-SFTP_PASS': 'p,w', RCLONE_CONFIG_MY_SFTP_PASS: 'p,w' }, problem: undefined, renamed: [] });
    // rclone's own variable name for a remote with a "." (fs.ConfigToEnv: capitals, "-" as "_").
    assert.deepEqual(secretsToEnv('my.box,pass=P:dir').env, { 'RCLONE_CONFIG_MY.BOX_PASS': 'P' });
    // A value with an unquoted ":" ends the parameters: what follows, a secret too, would be the path.
    assert.match(secretsToEnv(':s3,endpoint=http://h:1,secret_access_key=S:bucket').problem ?? '', /must be quoted/);
    assert.deepEqual(secretsToEnv('gd,team_drive=x:dir').env, {});
    assert.equal(secretsToEnv('plain:dir').remote, 'plain:dir');
    assert.equal(secretsToEnv('/local/path').remote, '/local/path');
    // A ":" left unquoted ends the parameters: the URL is refused, the rest would be rclone's path, secrets too.
    assert.throws(() => parseRcloneUrl('rclone://:s3,access_key_id=acct:user,secret_access_key=S3CRET:bucket'), (e) => OffsiteError.is(e, 'usage') && !e.message.includes('S3CRET'));
  });

  it('moves the secrets of nested remotes (crypt, alias, union…) into the environment too, at any depth', () => {
    const crypt = secretsToEnv(":crypt,password=OUTER,remote=':crypt,password=IN''NER,remote=/srv/b:',filename_encryption=off:sub");
    assert.deepEqual(crypt.env, {
      RCLONE_CONFIG_OFFSITE_CRYPT_1_TYPE: 'crypt',
      RCLONE_CONFIG_OFFSITE_CRYPT_1_PASSWORD: "IN'NER",
      RCLONE_CONFIG_OFFSITE_CRYPT_2_TYPE: 'crypt',
      RCLONE_CONFIG_OFFSITE_CRYPT_2_PASSWORD: 'OUTER',
    });
    assert.equal(crypt.remote, "offsite_crypt_2,remote='offsite_crypt_1,remote=/srv/b:',filename_encryption=off:sub");
    const alias = secretsToEnv(`:alias,remote=":s3,provider=Other,secret_access_key='S3CRET',env_auth=false:bucket/x":`);
    assert.equal(alias.remote, ":alias,remote='offsite_s3_1,provider=Other,env_auth=false:bucket/x':");
    assert.deepEqual(alias.env, { RCLONE_CONFIG_OFFSITE_S3_1_TYPE: 's3', RCLONE_CONFIG_OFFSITE_S3_1_SECRET_ACCESS_KEY: 'S3CRET' });
    // union's upstreams, with a mode; combine's dir=remote.
    const union = secretsToEnv(":union,upstreams='a:x :sftp,host=h,pass=P1:y:ro d=box,pass=P2:z':");
    assert.equal(union.remote, ":union,upstreams='a:x offsite_sftp_1,host=h:y:ro d=box:z':");
    assert.deepEqual(union.env, { RCLONE_CONFIG_OFFSITE_SFTP_1_TYPE: 'sftp', RCLONE_CONFIG_OFFSITE_SFTP_1_PASS: 'P1', RCLONE_CONFIG_BOX_PASS: 'P2' });
    for (const [remote, why] of [
      [":crypt,password=P,remote='box,pass=A:x',password2=Q:y", undefined],
      [":union,upstreams='box,pass=A:x box,pass=B:y':", /"box" is given different secrets/],
      [":sftp,host=h,set_env='PASSWORD=SECRET':", /parameter set_env holds a secret/],
      [":crypt,remote=':s3,endpoint=http://h:1,secret_access_key=S:b':", /must be quoted/],
    ] as const) {
      const r = secretsToEnv(remote);
      if (why) assert.match(r.problem ?? '', why, remote);
      else assert.equal(r.problem, undefined, remote);
      if (why) assert.match(r.problem ?? '', /rclone\.conf/);
    }
    assert.throws(() => parseRcloneUrl(":union,upstreams='box,pass=A:x box,pass=B:y':".replace(/^/, 'rclone://')), (e) => OffsiteError.is(e, 'usage') && !/\b[AB]:/.test(e.message) && /rclone\.conf/.test(e.message));
  });

  it('shows a backend made on the fly by the name the URL gave it in rclone\'s messages, secrets hidden', () => {
    const remote = ":alias,remote=':s3,secret_access_key=S3CRET:bucket':x";
    const given = secretsToEnv(remote).remote;
    const out = makeRedactor(remote)(`Failed to create file system for "${given}": oops; ERROR : offsite_s3_1: bad`);
    assert.ok(!out.includes('S3CRET') && !out.includes('offsite_s3_1'), out);
    assert.match(out, /":alias:x"/);
    assert.equal(new RcloneBackend({ remote, env: {} }).displayUrl, 'rclone://:alias:x');
  });

  it('hands AWS_CA_BUNDLE to rclone as RCLONE_CA_CERT (rclone 1.60 cannot use it)', () => {
    assert.deepEqual(rcloneEnv({ AWS_CA_BUNDLE: '/ca.pem', X: '1', U: undefined }), { RCLONE_CA_CERT: '/ca.pem', X: '1' });
    assert.deepEqual(rcloneEnv({ AWS_CA_BUNDLE: '/ca.pem', RCLONE_CA_CERT: '/mine.pem' }), { RCLONE_CA_CERT: '/mine.pem' });
  });

  it('classifies rclone failures from its last error line', () => {
    const r = { binary: 'rclone', globalArgs: [], env: {}, redact: (t: string) => t, where: 'rclone://s3t:b/x' };
    const ts = '2026/11/27 08:53:31 ';
    const cases: Array<[string, number, string]> = [
      [`${ts}ERROR : : error listing: SignatureDoesNotMatch: The request signature we calculated does not match\n\tstatus code: 403\n${ts}Failed to lsjson: SignatureDoesNotMatch: x`, 1, 'auth'],
      [`${ts}Failed to lsjson: RequestError: send request failed\ncaused by: Get "http://127.0.0.1:1/b": dial tcp 127.0.0.1:1: connect: connection refused`, 1, 'transient'],
      [`${ts}Failed to deletefile: s3t:b/x/missing is a directory or doesn't exist`, 1, 'notFound'],
      [`${ts}Failed to create file system for "nosuch:b": didn't find section in config file`, 1, 'permanent'],
      [`${ts}Failed to copyto: AccessDenied: Access Denied\n\tstatus code: 403`, 1, 'permission'],
      [`${ts}Failed to copyto: write /mnt/x: no space left on device`, 1, 'noSpace'],
      [`${ts}Failed to cat: something odd`, 5, 'transient'],
      [`${ts}Failed to cat: something odd`, 7, 'permanent'],
    ];
    for (const [stderr, code, kind] of cases) {
      const e = classifyRclone(r, { code, stderr }, 'list', undefined);
      assert.ok(e instanceof BackendError);
      assert.equal(e.kind, kind, stderr);
      assert.ok(!e.message.includes('2026/11/27'), 'no timestamps');
    }
    assert.match(classifyRclone(r, { code: 1, stderr: cases[3][0] }, 'open', undefined).hint ?? '', /rclone config/);
    // rclone's --timeout while waiting for an answer (a silent server).
    assert.equal(classifyRclone(r, { code: 1, stderr: `${ts}Failed to lsjson: RequestError: send request failed\ncaused by: Get "http://127.0.0.1:1/b": net/http: timeout awaiting response headers` }, 'list', undefined).kind, 'transient');
    // With one low-level retry, a provider's rate limit reaches us: it is worth a retry.
    assert.equal(classifyRclone(r, { code: 1, stderr: `${ts}Failed to copy: googleapi: Error 403: User Rate Limit Exceeded, userRateLimitExceeded` }, 'put', 'x').kind, 'transient');
    assert.equal(lastError(`${ts}NOTICE: x\n${ts}Failed to lsjson: boom\ncaused by: deeper`), 'Failed to lsjson: boom (caused by: deeper)');
  });

  it('passes rclone short timeouts and one low-level retry, unless the user set them (RCLONE_TIMEOUT, …)', () => {
    assert.deepEqual(rcloneTimeoutArgs({}), ['--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', '--timeout', '30s']);
    assert.deepEqual(rcloneTimeoutArgs({ RCLONE_TIMEOUT: '1m', RCLONE_LOW_LEVEL_RETRIES: '5' }), ['--retries', '1', '--contimeout', '10s']);
    assert.deepEqual(rcloneTimeoutArgs({ RCLONE_TIMEOUT: '' }), rcloneTimeoutArgs({}));
  });

  it('warns that rclone://remote:/path is a path below the remote (duplicity\'s reading), and says how to write an absolute one', () => {
    const w = rcloneSlashWarning('rclone://loc:/srv/backup/x');
    assert.ok(w);
    assert.match(w, /means "loc:srv\/backup\/x"/);
    assert.match(w, /For the absolute path \/srv\/backup\/x write rclone:\/\/loc:\/\/srv\/backup\/x/);
    assert.match(w, /write rclone:\/\/loc:srv\/backup\/x to keep this meaning/);
    for (const quiet of ['rclone://loc://srv/backup', 'rclone://loc:srv/backup', 'rclone://loc:', 'rclone://:s3,provider=AWS:/bucket/x', 'rclone://gdrive:backups/a:/b']) {
      assert.equal(rcloneSlashWarning(quiet), undefined, quiet);
    }
    // The meaning itself is duplicity's, unchanged.
    assert.equal(parseRcloneUrl('rclone://loc:/srv/backup/x'), 'loc:srv/backup/x');
  });

  it('opens s3:// and boto3+s3:// through the registry, and gives rclone:// its raw URL', async () => {
    const b = await openBackend('boto3+s3://some-bucket/a/b', { options: { s3EndpointUrl: 'http://127.0.0.1:9', s3AccessKeyId: 'k', s3SecretAccessKey: 's', s3Region: 'us-east-1', env: {} } });
    assert.equal(b.displayUrl, 's3://some-bucket/a/b/');
    await b.close();
    // rclone://remote:path is no WHATWG URL ("path" would be a port): it must still reach the factory.
    await assert.rejects(openBackend('rclone://nosuchremote:backups', { options: { rcloneBinary: '/nonexistent/rclone', env: {} } }), (e: unknown) => BackendError.isKind(e, 'permanent') && /rclone is not installed/.test((e as Error).message));
  });
});
