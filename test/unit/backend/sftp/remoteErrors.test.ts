// Password logins and the server-side errors users meet: wrong password, a folder they may not read,
// a full disk. Needs root (CI runs as root): a throwaway account and a tiny tmpfs are made and removed.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { createTestUser, type TestUser } from '../../../helpers/sshd';
import { tempDir } from '../../../helpers/tmp';
import { bufferSource, expectKind, getAll, listNames } from '../conformance';
import { closeAll, serverFiles, startFixture, type SftpFixture } from './sftpFixture';

describe('sftp backend: passwords and remote errors', function () {
  this.timeout(60_000);
  let fx: SftpFixture;
  let user: TestUser;
  const open: SftpBackend[] = [];

  before(async () => {
    fx = await startFixture({ passwordAuth: true });
    user = await createTestUser();
  });
  after(async () => {
    await closeAll(open);
    await fx?.sshd.stop();
    await user?.remove();
  });
  afterEach(async () => {
    await closeAll(open);
  });

  function asUser(rel: string, options: Record<string, unknown>, prompt?: (q: string) => Promise<string | undefined>): SftpBackend {
    const b = fx.open(`sftp://${user.name}@127.0.0.1:${fx.sshd.port}/${rel}`, {
      options: { sshKey: undefined, ...options },
      prompt: prompt ? (q) => prompt(q) : undefined,
    });
    open.push(b);
    return b;
  }

  it('logs in with OFFSITE_SSH_PASSWORD; files land in the account, owned by it', async () => {
    const b = asUser('backups', { env: { OFFSITE_SSH_PASSWORD: user.password } });
    await b.put('duplicity-full.20240101T000000Z.manifest', bufferSource(Buffer.from('manifest')));
    assert.deepEqual(await listNames(b), ['duplicity-full.20240101T000000Z.manifest']);
    const st = fs.statSync(path.join(user.home, 'backups', 'duplicity-full.20240101T000000Z.manifest'));
    assert.equal(st.uid, user.uid);
  });

  it('asks for the password through the prompt callback', async () => {
    const asked: string[] = [];
    const b = asUser('backups', {}, async (q) => {
      asked.push(q);
      return user.password;
    });
    assert.ok((await listNames(b)).length >= 0);
    assert.equal(asked.length, 1);
    assert.match(asked[0], new RegExp(`Password for ${user.name}@127\\.0\\.0\\.1`));
  });

  it('refuses a wrong password with an auth error', async () => {
    const b = asUser('backups', { env: { OFFSITE_SSH_PASSWORD: 'not-the-password' } });
    const e = await expectKind(b.stat('x'), 'auth');
    assert.match(e.message, /refused the login.*password/);
    assert.ok(e.hint?.includes('OFFSITE_SSH_PASSWORD'));
  });

  it('reports an unreadable remote folder as permission denied, and nothing is lost', async () => {
    const b = asUser('locked', { env: { OFFSITE_SSH_PASSWORD: user.password } });
    await b.put('keep', bufferSource(Buffer.from('keep')));
    const dir = path.join(user.home, 'locked');
    fs.chmodSync(dir, 0o000);
    try {
      const e = await expectKind(
        (async () => {
          for await (const f of b.list()) void f;
        })(),
        'permission',
      );
      assert.match(e.message, /Permission denied/);
      assert.ok(e.hint);
      await expectKind(b.put('new', bufferSource(Buffer.from('n'))), 'permission');
      await expectKind(b.stat('keep'), 'permission');
    } finally {
      fs.chmodSync(dir, 0o700);
    }
    assert.deepEqual(serverFiles(dir), ['keep']);
    assert.equal((await getAll(b, 'keep')).toString(), 'keep');
  });

  it('reports a file it may not read as permission denied', async () => {
    const b = asUser('ro', { env: { OFFSITE_SSH_PASSWORD: user.password } });
    await b.put('secret', bufferSource(Buffer.from('s')));
    fs.chmodSync(path.join(user.home, 'ro', 'secret'), 0o000);
    await expectKind(getAll(b, 'secret'), 'permission');
  });
});

describe('sftp backend: remote disk full', function () {
  this.timeout(60_000);
  let fx: SftpFixture;
  let mountPoint: string;
  const open: SftpBackend[] = [];

  before(async () => {
    fx = await startFixture();
    // A 1 MiB tmpfs as the remote folder (root only; CI runs as root).
    mountPoint = path.join(tempDir('offsite-full-'), 'remote');
    fs.mkdirSync(mountPoint);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mountPoint]);
  });
  after(async () => {
    await closeAll(open);
    if (mountPoint) execFileSync('umount', [mountPoint]);
    await fx?.sshd.stop();
  });

  it('fails a put that does not fit with a clear noSpace error, leaving nothing behind', async () => {
    const b = fx.open(`sftp://${fx.sshd.user}@127.0.0.1:${fx.sshd.port}/${mountPoint}`);
    open.push(b);
    await b.put('small', bufferSource(Buffer.from('fits')));
    const e = await expectKind(b.put('duplicity-full.20240101T000000Z.vol1.difftar.gpg', bufferSource(randomBytes(3 * 1024 * 1024))), 'noSpace');
    assert.match(e.message, /disk is full/);
    assert.ok(e.hint?.includes('Free space'));
    assert.deepEqual(serverFiles(mountPoint), ['small'], 'no final name, and the temp file was removed');
    assert.equal((await getAll(b, 'small')).toString(), 'fits');
    // Space freed: the same put goes through.
    await b.put('duplicity-full.20240101T000000Z.vol1.difftar.gpg', bufferSource(randomBytes(512 * 1024)));
  });
});
