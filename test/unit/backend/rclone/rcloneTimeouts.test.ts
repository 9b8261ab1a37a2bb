// Real rclone against an S3 endpoint that accepts connections and never answers (a silent listener
// started here): a run fails in bounded time with a transient error, and a missing config file is named.
// The timeout is shortened through rclone's own RCLONE_TIMEOUT, which Offsite leaves to the user.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRcloneBackend } from '../../../../src/engine/backend/rcloneBackend';
import { OffsiteError } from '../../../../src/engine/errors';
import { expectKind, listNames } from '../conformance';
import { silentListener } from '../../../helpers/silentListener';
import { tempDir } from '../../../helpers/tmp';

function rcloneEnvFor(home: string, config: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('RCLONE_') && k !== 'AWS_CA_BUNDLE') env[k] = v;
  return { ...env, HOME: home, RCLONE_CONFIG: config, XDG_CONFIG_HOME: path.join(home, '.config'), XDG_CACHE_HOME: path.join(home, '.cache'), ...extra };
}

describe('rclone:// timeouts and configuration, with real rclone', function () {
  this.timeout(120_000);

  it('fails a silent S3 endpoint in bounded time: a transient error (for the retry wrapper), at most 8 requests per rclone run', async () => {
    const silent = await silentListener();
    try {
      const home = tempDir('offsite-rclone-stall-');
      const config = path.join(home, 'rclone.conf');
      fs.writeFileSync(config, ['[st]', 'type = s3', 'provider = Other', 'access_key_id = a', 'secret_access_key = b', `endpoint = http://127.0.0.1:${silent.port}`, 'force_path_style = true', 'region = us-east-1', ''].join('\n'));
      const b = await createRcloneBackend(new URL('rclone:'), { options: { env: rcloneEnvFor(home, config, { RCLONE_TIMEOUT: '1s' }) } }, 'rclone://st:bucket/x');
      const t0 = Date.now();
      const e = await expectKind(listNames(b), 'transient');
      const took = Date.now() - t0;
      assert.match(e.message, /rclone could not reach the remote/);
      // One low-level retry: rclone's S3 backend sends each of its 2 requests (a HEAD, the list) at most
      // 4 times (its pacer 2 × its SDK 2), each failing after RCLONE_TIMEOUT.
      assert.ok(silent.requests() <= 8, `${silent.requests()} requests in one run`);
      assert.ok(took < 15_000, `took ${took} ms`);
      await b.close();
    } finally {
      await silent.close();
    }
  });

  it('names the config file rclone used when it does not exist (RCLONE_CONFIG), or the file without the remote', async () => {
    const home = tempDir('offsite-rclone-noconf-');
    const missing = path.join(home, 'no-such-rclone.conf');
    await assert.rejects(createRcloneBackend(new URL('rclone:'), { options: { env: rcloneEnvFor(home, missing) } }, 'rclone://loc:backups'), (e: unknown) => {
      assert.ok(OffsiteError.is(e, 'config'));
      assert.equal(e.message, `rclone has no remote named "loc": its config file ${missing} (RCLONE_CONFIG) does not exist`);
      assert.match(e.hint ?? '', /Point RCLONE_CONFIG at your rclone\.conf/);
      return true;
    });
    const config = path.join(home, 'rclone.conf');
    fs.writeFileSync(config, '[other]\ntype = local\n');
    await assert.rejects(createRcloneBackend(new URL('rclone:'), { options: { env: rcloneEnvFor(home, config) } }, 'rclone://loc:backups'), (e: unknown) => {
      assert.ok(OffsiteError.is(e, 'config'));
      assert.equal(e.message, `rclone has no remote named "loc" in ${config} (RCLONE_CONFIG)`);
      assert.match(e.hint ?? '', /pick one of: other/);
      return true;
    });
  });
});
