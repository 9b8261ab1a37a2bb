import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withoutPassword } from '../../../src/engine/backend/backendUtil';
import { archiveDirFor, makeRunTempDir } from '../../../src/engine/cache/archiveDir';
import { tempDir } from '../../helpers/tmp';

describe('cache: the archive folder of a remote', () => {
  const root = '/cache/root';
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');

  it('makes private run folders in a temp root, removing those of processes that are gone (and nothing else)', () => {
    const root = tempDir('offsite-runtemp-');
    const keep = ['offsite-x-999999', 'offsite-y-999999-abcdef', `offsite-x-${process.pid}-abcdef`, 'notours'];
    for (const n of [...keep, 'offsite-x-999999-abcdef']) fs.mkdirSync(path.join(root, n));
    fs.writeFileSync(path.join(root, 'offsite-x-999999-abcdef', 'plain'), 'text');
    const old = process.umask(0);
    let made: string;
    try {
      made = makeRunTempDir(root, 'offsite-x');
    } finally {
      process.umask(old);
    }
    assert.match(path.basename(made), new RegExp(`^offsite-x-${process.pid}-[A-Za-z0-9]{6}$`));
    assert.equal(fs.statSync(made).mode & 0o777, 0o700);
    assert.deepEqual(fs.readdirSync(root).sort(), [...keep, path.basename(made)].sort());
  });

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
    // A password may hold "@" (the URL parser takes the last one before the path as the end).
    const at = 'sftp://me:p@ss@host/x';
    assert.equal(new URL(at).host, 'host');
    assert.equal(withoutPassword(at), 'sftp://me@host/x');
    // Nothing else of the URL is touched: a colon in a path or an rclone remote is not a password.
    for (const url of ['rclone://remote:backups', 'rclone://remote:backups@home', 'file:///a:b/c', 'sftp://host/x@y:z', 'sftp://me@host/a@b']) {
      assert.equal(withoutPassword(url), url);
    }
  });

  it('is the same with or without a trailing slash (file:///mnt/usb/p/ is file:///mnt/usb/p): one cache, one lock', () => {
    for (const [a, b] of [
      ['file:///backups/project/', 'file:///backups/project'],
      ['file:///backups/project//', 'file:///backups/project'],
      ['sftp://me:pw@host/backups/', 'sftp://me@host/backups'],
      ['rclone://loc:backups/p/', 'rclone://loc:backups/p'],
      ['s3://bucket/prefix/', 's3://bucket/prefix'],
    ]) {
      assert.equal(archiveDirFor(a, root), path.join(root, md5(b)), a);
    }
    // A slash that is the whole path, or follows an rclone remote's colon, is no trailing slash.
    for (const url of ['file:///', 'rclone://loc:/']) assert.equal(archiveDirFor(url, root), path.join(root, md5(url)), url);
  });

  it("is the same for a file:// folder however its path is spelled ('//', '/./'): one cache, one lock", () => {
    for (const [a, b] of [
      ['file:///backups//project', 'file:///backups/project'],
      ['file:///backups/./project/', 'file:///backups/project'],
      ['file:////backups/project', 'file:///backups/project'],
      ['file://./rel//p/.', 'file://rel/p'],
      // file:/abs is the folder file:///abs (fileBackend.ts reads both so), as is the scheme in capitals.
      ['file:/backups/project', 'file:///backups/project'],
      ['file:/backups//project/', 'file:///backups/project'],
      ['FILE:///backups/project', 'file:///backups/project'],
      ['File:/backups/project', 'file:///backups/project'],
      ['file:/', 'file:///'],
    ]) {
      assert.equal(archiveDirFor(a, root), path.join(root, md5(b)), a);
    }
    // Other remotes keep theirs: on sftp:// a leading '//' is an absolute path (duplicity's convention),
    // and an object store's keys differ by a doubled slash.
    for (const url of ['sftp://me@host//abs/backups', 's3://bucket/a//b', 'rclone://r:a/./b']) assert.equal(archiveDirFor(url, root), path.join(root, md5(url)), url);
    // '..' is left alone (through a symlink it is not the folder above); so are a query and a fragment.
    for (const url of ['file:///mnt/link/../p', 'file:///a//b?x']) assert.equal(archiveDirFor(url, root), path.join(root, md5(url)), url);
  });

  it("is the same for duplicity's other names of a scheme (boto3+s3://, paramiko+sftp://, scp://): one cache, one lock", () => {
    for (const [a, b] of [
      ['boto3+s3://bucket/prefix', 's3://bucket/prefix'],
      ['BOTO3+S3://bucket/prefix/', 's3://bucket/prefix'],
      ['paramiko+sftp://me@host/backups', 'sftp://me@host/backups'],
      ['pexpect+sftp://me:pw@host//abs', 'sftp://me@host//abs'],
      ['scp://host/b', 'sftp://host/b'],
      ['paramiko+scp://host/b', 'sftp://host/b'],
      ['SFTP://me@host/backups', 'sftp://me@host/backups'],
    ]) {
      assert.equal(archiveDirFor(a, root), path.join(root, md5(b)), a);
    }
  });

  // The cache named as before each normalisation is taken over once, with what it holds.
  for (const [why, legacyName, url, named] of [
    ['the URL as written with its trailing slash', 'file:///backups/p/', 'file:///backups/p/', 'file:///backups/p'],
    ["duplicity's other name of its scheme", 'boto3+s3://bucket/p', 'boto3+s3://bucket/p', 's3://bucket/p'],
    ['file:/abs as written', 'file:/backups/p', 'file:/backups/p', 'file:///backups/p'],
    ['the URL as written with a doubled slash', 'file:///backups//p', 'file:///backups//p', 'file:///backups/p'],
    ['a scheme in capitals as written', 'FILE:///backups/p', 'FILE:///backups/p', 'file:///backups/p'],
  ]) {
    it(`takes over the cache named by ${why}, once`, () => {
      const root = tempDir();
      const legacy = path.join(root, md5(legacyName));
      fs.mkdirSync(legacy);
      fs.writeFileSync(path.join(legacy, 'stat-cache'), 'kept');
      const dir = archiveDirFor(url, root);
      assert.equal(dir, path.join(root, md5(named)));
      assert.equal(fs.readFileSync(path.join(dir, 'stat-cache'), 'utf8'), 'kept');
      assert.equal(fs.existsSync(legacy), false);
    });
  }

  it('takes over the cache named by the whole URL, password included, once', () => {
    const root = tempDir();
    const url = 'sftp://me:pw@host/backups';
    const legacy = path.join(root, md5(url));
    fs.mkdirSync(path.join(legacy, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(legacy, 'sub', 'stat-cache'), 'kept');
    const dir = archiveDirFor(url, root);
    assert.equal(dir, path.join(root, md5('sftp://me@host/backups')));
    assert.equal(fs.readFileSync(path.join(dir, 'sub', 'stat-cache'), 'utf8'), 'kept');
    assert.equal(fs.existsSync(legacy), false);
    // With both there, nothing moves.
    fs.mkdirSync(legacy);
    assert.equal(archiveDirFor(url, root), dir);
    assert.ok(fs.existsSync(legacy));
    assert.equal(fs.readFileSync(path.join(dir, 'sub', 'stat-cache'), 'utf8'), 'kept');
  });
});
