// Network faults between the backend and a real sshd, through a loopback TCP proxy: connections cut
// mid-upload and mid-download, and stalled ones.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackendError } from '../../../../src/engine/backend/backend';
import { RetryBackend } from '../../../../src/engine/backend/retryBackend';
import type { SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { startFaultProxy, type FaultProxy } from '../../../helpers/faultProxy';
import { tempDir } from '../../../helpers/tmp';
import { bufferSource, expectKind, getAll, listNames } from '../conformance';
import { closeAll, serverFiles, startFixture, type SftpFixture } from './sftpFixture';

describe('sftp backend: network faults (TCP proxy)', function () {
  this.timeout(60_000);
  let fx: SftpFixture;
  let proxy: FaultProxy;
  let knownHosts: string;
  const open: SftpBackend[] = [];
  const logs: string[] = [];

  before(async () => {
    fx = await startFixture();
    proxy = await startFaultProxy(fx.sshd.port);
    knownHosts = path.join(fx.home, 'known_hosts_proxy');
    fs.writeFileSync(knownHosts, fx.sshd.knownHostsLines(`[127.0.0.1]:${proxy.port}`).join('\n') + '\n');
  });
  after(async () => {
    await proxy?.close();
    await fx?.sshd.stop();
  });
  afterEach(async () => {
    proxy.clear();
    logs.length = 0;
    await closeAll(open);
  });

  function viaProxy(extra: Record<string, unknown> = {}): { backend: SftpBackend; dir: string } {
    const { dir } = fx.freshRemote();
    const backend = fx.open(`sftp://${fx.sshd.user}@127.0.0.1:${proxy.port}/${dir}`, {
      log: (_level, m) => logs.push(m),
      options: { knownHosts, sshConnections: 1, ...extra },
    });
    open.push(backend);
    return { backend, dir };
  }

  it('resumes an upload cut midway on a new connection; no partial file under the final name', async () => {
    const { backend, dir } = viaProxy();
    await backend.put('first', bufferSource(Buffer.from('before the cut')));
    const data = randomBytes(8 * 1024 * 1024);
    const accepted = proxy.accepted;
    const struck = proxy.struck;
    proxy.inject({ kind: 'cut', direction: 'up', afterBytes: 3 * 1024 * 1024 });
    // The connection in the pool is already open: the fault must hit the next one, so drop it first.
    await backend.close();
    const b2 = viaProxyOn(dir);
    const seen: number[] = [];
    await b2.put('duplicity-full.20240101T000000Z.vol1.difftar.gpg', bufferSource(data), { onProgress: (n) => seen.push(n) });
    assert.equal(proxy.struck, struck + 1, 'the proxy cut the connection');
    assert.ok(proxy.accepted >= accepted + 2, 'a new connection was opened');
    // It resumed where the server's copy ended, not from the start.
    assert.ok(
      logs.some((m) => /interrupted after [1-9]\d* bytes.*resuming/.test(m)),
      `the resume was logged: ${logs.join(' | ')}`,
    );
    assert.equal(seen[seen.length - 1], data.length);
    assert.ok((await getAll(b2, 'duplicity-full.20240101T000000Z.vol1.difftar.gpg')).equals(data));
    assert.deepEqual(serverFiles(dir), ['duplicity-full.20240101T000000Z.vol1.difftar.gpg', 'first'], 'no temp left on the server');
  });

  function viaProxyOn(dir: string, extra: Record<string, unknown> = {}): SftpBackend {
    const b = fx.open(`sftp://${fx.sshd.user}@127.0.0.1:${proxy.port}/${dir}`, {
      log: (_level, m) => logs.push(m),
      options: { knownHosts, sshConnections: 1, ...extra },
    });
    open.push(b);
    return b;
  }

  it('resumes a cut upload of a local file by reading from where the server stopped', async () => {
    const { dir } = viaProxy();
    const local = path.join(tempDir(), 'vol.gpg');
    const data = randomBytes(5 * 1024 * 1024 + 123);
    fs.writeFileSync(local, data);
    let opens = 0;
    const source = {
      size: data.length,
      localPath: local,
      open: () => {
        opens++;
        return fs.createReadStream(local);
      },
    };
    const b = viaProxyOn(dir);
    // Past the 2 MiB write window, so some writes were surely acknowledged before the cut.
    proxy.inject({ kind: 'cut', direction: 'up', afterBytes: 3.5 * 1024 * 1024 });
    await b.put('vol', source);
    assert.equal(opens, 0, 'the file was read directly (from the offset on the resume), never through open()');
    assert.ok((await getAll(b, 'vol')).equals(data));
    assert.deepEqual(serverFiles(dir), ['vol']);
  });

  it('fails a cut upload as transient when resuming is off, leaving no final name; the next put succeeds', async () => {
    const { dir } = viaProxy();
    const b = viaProxyOn(dir, { resumeAttempts: 0 });
    const data = randomBytes(4 * 1024 * 1024);
    proxy.inject({ kind: 'cut', direction: 'up', afterBytes: 2 * 1024 * 1024 });
    const e = await expectKind(b.put('vol', bufferSource(data)), 'transient');
    assert.match(e.message, /connection/i);
    assert.ok(!serverFiles(dir).includes('vol'), 'a partial file under the final name');
    // The connection died, so the temp file stays for cleanupPartial (the backend could not remove it).
    const left = await b.cleanupPartial();
    assert.ok(left.every((n) => n.startsWith('.offsite-part-')));
    assert.deepEqual(serverFiles(dir), []);
    await b.put('vol', bufferSource(data));
    assert.ok((await getAll(b, 'vol')).equals(data));
  });

  it('completes a cut upload through RetryBackend (as the CLI wraps it), with a fresh temp file', async () => {
    const { dir } = viaProxy();
    const inner = viaProxyOn(dir, { resumeAttempts: 0 });
    const retries: string[] = [];
    const b = new RetryBackend(inner, { baseDelayMs: 50, onRetry: (e) => retries.push(e.message) });
    const data = randomBytes(4 * 1024 * 1024);
    proxy.inject({ kind: 'cut', direction: 'up', afterBytes: 2 * 1024 * 1024 });
    await b.put('duplicity-full.20240101T000000Z.vol1.difftar.gpg', bufferSource(data));
    assert.equal(retries.length, 1, 'one retry');
    assert.deepEqual(serverFiles(dir), ['duplicity-full.20240101T000000Z.vol1.difftar.gpg'], 'the failed attempt left no temp file');
    assert.ok((await getAll(b, 'duplicity-full.20240101T000000Z.vol1.difftar.gpg')).equals(data));
  });

  it('gives up after resumeAttempts when every connection is cut', async () => {
    const { backend, dir } = viaProxy({ resumeAttempts: 2 });
    await backend.put('seed', bufferSource(Buffer.from('x')));
    await backend.close();
    proxy.always({ kind: 'cut', direction: 'up', afterBytes: 256 * 1024 });
    const b = viaProxyOn(dir, { resumeAttempts: 2 });
    await expectKind(b.put('vol', bufferSource(randomBytes(3 * 1024 * 1024))), 'transient');
    proxy.clear();
    assert.deepEqual(await listNames(b), ['seed']);
    assert.equal(serverFiles(dir).filter((n) => n === 'vol').length, 0);
  });

  it('resumes a download cut midway and delivers every byte once', async () => {
    const { backend, dir } = viaProxy();
    const data = randomBytes(6 * 1024 * 1024);
    await backend.put('v', bufferSource(data));
    await backend.close();
    const struck = proxy.struck;
    proxy.inject({ kind: 'cut', direction: 'down', afterBytes: 2 * 1024 * 1024 });
    const b = viaProxyOn(dir);
    const got = await getAll(b, 'v');
    assert.equal(proxy.struck, struck + 1);
    assert.equal(got.length, data.length);
    assert.ok(got.equals(data));
    // A ranged get resumes at the right place too.
    await b.close();
    proxy.inject({ kind: 'cut', direction: 'down', afterBytes: 1024 * 1024 });
    const b2 = viaProxyOn(dir);
    const part = await getAll(b2, 'v', { offset: 12345, length: 3 * 1024 * 1024 });
    assert.equal(proxy.struck, struck + 2);
    assert.ok(part.equals(data.subarray(12345, 12345 + 3 * 1024 * 1024)));
  });

  it('times out a stalled upload with a clear transient error instead of hanging', async () => {
    const { backend, dir } = viaProxy();
    await backend.put('seed', bufferSource(Buffer.from('x')));
    await backend.close();
    proxy.always({ kind: 'stall', direction: 'up', afterBytes: 512 * 1024 });
    const b = viaProxyOn(dir, { timeoutMs: 1500, resumeAttempts: 1 });
    const t0 = Date.now();
    const e = await expectKind(b.put('vol', bufferSource(randomBytes(4 * 1024 * 1024))), 'transient');
    const took = Date.now() - t0;
    assert.match(e.message, /stalled|timed out|Timed out|Keepalive/i);
    assert.ok(took < 20_000, `took ${took} ms`);
    assert.ok(!serverFiles(dir).includes('vol'));
  });

  it('times out a connection that stalls during the handshake', async () => {
    const { dir } = fx.freshRemote();
    proxy.always({ kind: 'stall', direction: 'down', afterBytes: 100 });
    const b = viaProxyOn(dir, { timeoutMs: 1000 });
    const t0 = Date.now();
    const e = await expectKind(b.stat('x'), 'transient');
    assert.ok(Date.now() - t0 < 10_000);
    assert.match(e.message, /Cannot connect/);
    assert.ok(e instanceof BackendError && e.hint);
  });
});
