// Servers and URLs that cannot hold a backup, told apart from a folder not made yet and from a server
// that is down: a URL naming a file (OpenSSH answers ENOTDIR with "no such file") and an sshd without
// the sftp subsystem (ssh2: "Unable to start subsystem", also its words for a connection lost then).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RetryBackend } from '../../../../src/engine/backend/retryBackend';
import type { SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { bufferSource, expectKind, listNames } from '../conformance';
import { sftpSuite } from './sftpFixture';

describe('sftp backend: a remote URL that names a file', function () {
  this.timeout(60_000);
  const suite = sftpSuite();

  function at(dir: string): SftpBackend {
    const b = suite.fx.open(`sftp://${suite.fx.sshd.user}@127.0.0.1:${suite.fx.sshd.port}/${dir}`);
    suite.open.push(b);
    return b;
  }

  function aFile(): string {
    const { dir } = suite.fx.freshRemote();
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.writeFileSync(dir, 'I am a file\n');
    return dir;
  }

  it('says the URL is not a folder when listing, putting and cleaning up, and leaves the file alone', async () => {
    const file = aFile();
    const b = at(file);
    const ops = [() => listNames(b), () => b.put('duplicity-full.20240101T000000Z.vol1.difftar.gpg', bufferSource(Buffer.from('x'))), () => b.cleanupPartial({ dryRun: true })];
    for (const op of ops) {
      const e = await expectKind(op(), 'permanent');
      assert.match(e.message, /is not a folder/);
      assert.equal(e.hint, 'Point the remote URL at a folder');
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'I am a file\n');
  });

  it('keeps saying so on a later put, and makes the folder once the file is gone (a failed put does not mark the folder ready)', async () => {
    const file = aFile();
    const b = at(file);
    const put = (name: string) => b.put(name, bufferSource(Buffer.from('x')));
    for (const name of ['first', 'second']) {
      const e = await expectKind(put(name), 'permanent');
      assert.match(e.message, /is not a folder/, name);
    }
    fs.rmSync(file);
    await put('third');
    assert.deepEqual(await listNames(b), ['third']);
  });

  it('names the file when a parent of the folder is one', async () => {
    const file = aFile();
    const b = at(`${file}/sub/dir`);
    for (const op of [() => listNames(b), () => b.put('probe', bufferSource(Buffer.from('x')))]) {
      const e = await expectKind(op(), 'permanent');
      assert.ok(e.message.includes(`${file} on the server is not one`), e.message);
    }
  });

  it('still lists a folder not made yet as empty, and makes it on the first put', async () => {
    const { dir } = suite.fx.freshRemote();
    const b = at(`${dir}/a/b`);
    assert.deepEqual(await listNames(b), []);
    await b.put('probe', bufferSource(Buffer.from('x')));
    assert.deepEqual(await listNames(b), ['probe']);
  });
});

describe('sftp backend: an SSH server without SFTP', function () {
  this.timeout(60_000);
  const suite = sftpSuite({ sftpSubsystem: false });

  it('fails at once with a permanent error saying the server offers no SFTP (not "unreachable", not retried)', async () => {
    const b = suite.fx.open();
    suite.open.push(b);
    let retries = 0;
    const retrying = new RetryBackend(b, { baseDelayMs: 10, onRetry: () => retries++ });
    const e = await expectKind(listNames(retrying), 'permanent');
    assert.equal(retries, 0);
    assert.match(e.message, /accepted the SSH login but offers no SFTP/);
    assert.doesNotMatch(e.message + (e.hint ?? ''), /reachable|retries/);
    assert.match(e.hint ?? '', /Subsystem sftp/);
  });
});
