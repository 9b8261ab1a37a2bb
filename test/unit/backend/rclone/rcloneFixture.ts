// rclone remotes for tests: a private config file (never the user's) with a `local` remote and an S3
// remote on the test server, and a private HOME for rclone's caches.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRcloneBackend, type RcloneBackend } from '../../../../src/engine/backend/rcloneBackend';
import type { S3Server } from '../../../helpers/s3Server';
import { tempDir } from '../../../helpers/tmp';

export interface RcloneFixture {
  readonly config: string;
  readonly home: string;
  /** The environment of rclone (and of offsite or duplicity running it). */
  readonly env: Record<string, string>;
  /** A fresh, empty remote: a new folder through `loc:`, or a new prefix through `s3t:` (needs a server). */
  freshLocal(): { url: string; dir: string };
  freshS3(bucket: string): { url: string; prefix: string };
  open(url: string, extra?: Record<string, unknown>): Promise<RcloneBackend>;
}

export function rcloneFixture(server?: S3Server): RcloneFixture {
  const home = tempDir('offsite-rclone-home-');
  const config = path.join(home, 'rclone.conf');
  const lines = ['[loc]', 'type = local', ''];
  if (server) {
    lines.push(
      '[s3t]',
      'type = s3',
      'provider = Other',
      `access_key_id = ${server.accessKeyId}`,
      `secret_access_key = ${server.secretAccessKey}`,
      `endpoint = ${server.endpoint}`,
      'force_path_style = true',
      'region = us-east-1',
      '',
    );
  }
  fs.writeFileSync(config, lines.join('\n'), { mode: 0o600 });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('RCLONE_')) env[k] = v;
  Object.assign(env, { HOME: home, RCLONE_CONFIG: config, XDG_CONFIG_HOME: path.join(home, '.config'), XDG_CACHE_HOME: path.join(home, '.cache') });
  const root = tempDir('offsite-rclone-remotes-');
  return {
    config,
    home,
    env,
    freshLocal() {
      const dir = path.join(root, randomBytes(5).toString('hex'));
      // duplicity's reading: rclone://loc://abs/path is loc:/abs/path.
      return { url: `rclone://loc:/${dir}`, dir };
    },
    freshS3(bucket: string) {
      const prefix = `rc/${randomBytes(5).toString('hex')}`;
      return { url: `rclone://s3t:${bucket}/${prefix}`, prefix };
    },
    open(url: string, extra: Record<string, unknown> = {}) {
      return createRcloneBackend(new URL('rclone:'), { options: { env, ...extra } }, url);
    },
  };
}
