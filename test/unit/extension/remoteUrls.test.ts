// s3:// and rclone:// remotes in the extension: the setting's pattern accepts them, each folder's URL
// under them is what the engine's backends read, the cron line carries the S3 options, and S3 keys
// are asked for only when none are configured the AWS way.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseRcloneUrl } from '../../../src/engine/backend/rcloneBackend';
import { parseS3Url } from '../../../src/engine/backend/s3/s3Url';
import { awsCredentialsConfigured, decodeS3Keys, encodeS3Keys, isS3Url, s3KeysIdFor } from '../../../src/extension/awsCredentials';
import { DEFAULT_SETTINGS, cronCommand, resolveFolderConfig, type RawSettings } from '../../../src/extension/folderConfig';
import { REPO } from '../../helpers/cli';

const raw = (s: Partial<RawSettings>): RawSettings => ({ ...DEFAULT_SETTINGS, ...s });
const folder = { name: 'my project', fsPath: '/home/me/my project' };

describe('extension: s3:// and rclone:// remotes', () => {
  it('offsite.remote\'s pattern (package.json) accepts them like the others', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    const pattern = new RegExp(pkg.contributes.configuration.properties['offsite.remote'].pattern);
    for (const ok of ['', 's3://bucket/prefix', 'boto3+s3://bucket/prefix', 'rclone://remote:path', 'rclone://gdrive:backups/x', 'file:///mnt/b', 'sftp://me@nas/b']) assert.ok(pattern.test(ok), ok);
    for (const bad of ['bucket/prefix', 'remote:path', '/mnt/b']) assert.ok(!pattern.test(bad), bad);
  });

  it('s3://bucket/prefix: each folder backs up under the prefix, as the s3 backend reads it', () => {
    const c = resolveFolderConfig(raw({ remote: 's3://bucket/prefix', encryptKeys: ['ABCDEF01'], s3EndpointUrl: ' http://127.0.0.1:9000 ', s3Profile: 'work' }), folder);
    assert.equal(c.url, 's3://bucket/prefix/my%20project');
    assert.equal(c.configured, true);
    assert.deepEqual(parseS3Url(c.url), { bucket: 'bucket', prefix: 'prefix/my project/' });
    assert.deepEqual(parseS3Url(resolveFolderConfig(raw({ remote: 's3://bucket', encryptKeys: ['k'] }), folder).url), { bucket: 'bucket', prefix: 'my project/' });
    assert.equal(c.remote.s3EndpointUrl, 'http://127.0.0.1:9000');
    assert.equal(c.remote.s3Profile, 'work');
    assert.equal(
      cronCommand(c),
      "nice -n 10 offsite --s3-endpoint-url http://127.0.0.1:9000 --s3-profile work backup --encrypt-key ABCDEF01 --gitignore '/home/me/my project' s3://bucket/prefix/my%20project >/dev/null",
    );
  });

  it('rclone://remote:path: each folder backs up under the path, as the rclone backend reads it', () => {
    const c = resolveFolderConfig(raw({ remote: 'rclone://remote:path', encryptKeys: ['k'] }), folder);
    assert.equal(c.url, 'rclone://remote:path/my%20project');
    assert.equal(parseRcloneUrl(c.url), 'remote:path/my project');
    // The root of a remote: "remote:/x" is rclone's "remote:x".
    assert.equal(parseRcloneUrl(resolveFolderConfig(raw({ remote: 'rclone://remote:', encryptKeys: ['k'] }), folder).url), 'remote:my project');
  });

  it('S3 keys are remembered per remote URL (and endpoint), as JSON that round-trips', () => {
    const c = resolveFolderConfig(raw({ remote: 's3://bucket/prefix', encryptKeys: ['k'], s3EndpointUrl: 'http://127.0.0.1:9000' }), folder);
    assert.equal(s3KeysIdFor(c), 's3://bucket/prefix @ http://127.0.0.1:9000');
    assert.equal(s3KeysIdFor(resolveFolderConfig(raw({ remote: 's3://bucket/prefix', encryptKeys: ['k'] }), folder)), 's3://bucket/prefix');
    assert.ok(isS3Url(c.url) && isS3Url('boto3+s3://b/p') && !isS3Url('rclone://s3:b') && !isS3Url('file:///s3'));
    const keys = { accessKeyId: 'AKIA1', secretAccessKey: 's3cr3t' };
    assert.deepEqual(decodeS3Keys(encodeS3Keys(keys)), keys);
    assert.deepEqual(decodeS3Keys(encodeS3Keys({ ...keys, sessionToken: 'tok' })), { ...keys, sessionToken: 'tok' });
    assert.deepEqual(decodeS3Keys(encodeS3Keys({ ...keys, sessionToken: undefined })), keys);
    for (const bad of [undefined, '', 'not json', '{"accessKeyId":"a"}', '{"accessKeyId":"","secretAccessKey":"x"}']) assert.equal(decodeS3Keys(bad), undefined, String(bad));
  });

  it('credentials count as configured from AWS_* variables, a named profile, or a default profile with keys', () => {
    const files: Record<string, string> = {};
    const read = (f: string) => files[f];
    const home = '/home/me';
    assert.equal(awsCredentialsConfigured(undefined, {}, home, read), false, 'nothing anywhere');
    assert.equal(awsCredentialsConfigured(undefined, { AWS_ACCESS_KEY_ID: 'a' }, home, read), true);
    assert.equal(awsCredentialsConfigured(undefined, { AWS_PROFILE: 'work' }, home, read), true);
    assert.equal(awsCredentialsConfigured('work', {}, home, read), true, 'offsite.s3Profile');
    assert.equal(awsCredentialsConfigured(undefined, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/x' }, home, read), true);
    files['/home/me/.aws/config'] = '[default]\nregion = eu-west-1\n[profile other]\naws_access_key_id = x\n';
    assert.equal(awsCredentialsConfigured(undefined, {}, home, read), false, 'a region alone, or another profile, is no credentials');
    files['/home/me/.aws/config'] += '[default]\ncredential_process = /bin/get-creds\n';
    assert.equal(awsCredentialsConfigured(undefined, {}, home, read), true);
    delete files['/home/me/.aws/config'];
    files['/elsewhere/creds'] = '[default]\naws_access_key_id = a\naws_secret_access_key = b\n';
    assert.equal(awsCredentialsConfigured(undefined, {}, home, read), false);
    assert.equal(awsCredentialsConfigured(undefined, { AWS_SHARED_CREDENTIALS_FILE: '/elsewhere/creds' }, home, read), true);
    files['/home/me/.aws/credentials'] = '[default]\naws_access_key_id = a\n';
    assert.equal(awsCredentialsConfigured(undefined, {}, home, read), true);
  });
});
