// rclone:// URLs as duplicity reads them, redaction of secrets, and rclone's errors (pure), plus the
// registry opening both new schemes.
import * as assert from 'node:assert/strict';
import '../../../../src/engine/backend/all';
import { BackendError } from '../../../../src/engine/backend/backend';
import { redactSecretValues } from '../../../../src/engine/backend/backendUtil';
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
    assert.deepEqual(secretsToEnv(":s3,provider=Other,access_key_id=AK,secret_access_key='S3''C,R:ET',endpoint='http://h:1':bucket/x"), {
      remote: ":s3,provider=Other,endpoint='http://h:1':bucket/x",
      env: { RCLONE_S3_ACCESS_KEY_ID: 'AK', RCLONE_S3_SECRET_ACCESS_KEY: "S3'C,R:ET" },
      secretInPath: false,
    });
    assert.deepEqual(secretsToEnv('my-sftp,pass="p,w":dir'), { remote: 'my-sftp:dir', env: { RCLONE_CONFIG_MY_SFTP_PASS: 'p,w' }, secretInPath: false });
    // A value with an unquoted ":" ends the parameters: what follows, a secret too, would be the path.
    assert.equal(secretsToEnv(':s3,endpoint=http://h:1,secret_access_key=S:bucket').secretInPath, true);
    assert.deepEqual(secretsToEnv('gd,team_drive=x:dir').env, {});
    assert.equal(secretsToEnv('plain:dir').remote, 'plain:dir');
    // A ":" left unquoted ends the parameters: the URL is refused, the rest would be rclone's path, secrets too.
    assert.throws(() => parseRcloneUrl('rclone://:s3,access_key_id=acct:user,secret_access_key=S3CRET:bucket'), (e) => OffsiteError.is(e, 'usage') && !e.message.includes('S3CRET'));
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
