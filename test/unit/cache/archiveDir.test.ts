import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { archiveDirFor, withoutPassword } from '../../../src/engine/cache/archiveDir';

describe('cache: the archive folder of a remote', () => {
  const root = '/cache/root';
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');

  it("is duplicity's default backup name: the MD5 of the URL string as written", () => {
    for (const url of ['file:///backups/project', 'sftp://me@host:2222/backups/Proj%20X', 'rclone://remote:backups', 's3://bucket/prefix?region=eu-west-1']) {
      assert.equal(archiveDirFor(url, root), path.join(root, md5(url)), url);
    }
  });

  it('is the same with or without a password written in the URL (the cron line leaves it out): one cache, one lock', () => {
    const withPw = 'sftp://me:s3cr%40t@host/backups/project';
    assert.equal(withoutPassword(withPw), 'sftp://me@host/backups/project');
    assert.equal(archiveDirFor(withPw, root), archiveDirFor('sftp://me@host/backups/project', root));
    // Another user or host is another remote.
    assert.notEqual(archiveDirFor(withPw, root), archiveDirFor('sftp://you@host/backups/project', root));
    // Nothing else of the URL is touched: a colon in a path or an rclone remote is not a password.
    for (const url of ['rclone://remote:backups', 'file:///a:b/c', 'sftp://host/x@y:z']) assert.equal(withoutPassword(url), url);
  });
});
