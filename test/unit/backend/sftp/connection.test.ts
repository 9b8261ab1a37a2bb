// One SSH connection (SftpConnection) against a real sshd: no request may wait forever. ssh2 drops a
// request made on an SFTP channel that has begun to close, without ever calling it back; a backup
// then hung with its connection idle (CI, through a proxy cutting connections).
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Stats } from 'ssh2';
import { BackendError } from '../../../../src/engine/backend/backend';
import { SftpConnection } from '../../../../src/engine/backend/sftp/sftpConnection';
import type { SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { tempDir } from '../../../helpers/tmp';
import { getAll } from '../conformance';
import { startFixture, type SftpFixture } from './sftpFixture';

/** The request's outcome, or 'no answer' when it is still waiting after `ms`. */
async function outcome(p: Promise<unknown>, ms = 5000): Promise<unknown> {
  return await Promise.race([p.then(() => 'answered', (e: unknown) => e), delay(ms, 'no answer')]);
}

describe('sftp connection: requests always end', function () {
  this.timeout(30_000);
  let fx: SftpFixture;
  const conns: SftpConnection[] = [];

  before(async () => {
    fx = await startFixture();
  });
  after(async () => {
    await fx?.sshd.stop();
  });
  afterEach(async () => {
    await Promise.all(conns.splice(0).map((c) => c.close()));
  });

  async function connect(): Promise<SftpConnection> {
    const c = await SftpConnection.open({
      hostName: '127.0.0.1',
      port: fx.sshd.port,
      where: 'the test server',
      knownHostsFiles: [fx.knownHosts],
      knownHostsRecordFile: fx.knownHosts,
      auth: { user: fx.sshd.user, explicitKeys: [fx.sshd.userKey.file], defaultKeys: [], label: 'the test server' },
      timeoutMs: 20_000,
    });
    conns.push(c);
    return c;
  }

  function stat(c: SftpConnection): Promise<Stats> {
    return c.call<Stats>((cb) => c.sftp.stat('/', cb));
  }

  it('answers requests on a live connection', async () => {
    const c = await connect();
    assert.ok((await stat(c)).isDirectory());
    assert.equal(c.alive, true);
  });

  /** Fails unless `e` is a transient BackendError (what the retry and resume logic acts on). */
  function assertTransient(e: unknown): asserts e is BackendError {
    assert.ok(e instanceof BackendError && e.kind === 'transient', `a transient BackendError, not ${String(e)}`);
  }

  it('fails a request made once the SFTP channel has begun to close, as a transient error', async () => {
    const c = await connect();
    c.sftp.end();
    const e = await outcome(stat(c));
    assertTransient(e);
    assert.match(e.message, /the test server.*closed/);
    assert.equal(c.alive, false);
  });

  it('fails requests that ssh2 dropped when the connection dies (the channel closing as they are sent)', async () => {
    const c = await connect();
    // The channel starts closing between the connection's check and ssh2's send: the race CI hit.
    const dropped = c.call<Stats>((cb) => {
      c.sftp.end();
      c.sftp.stat('/', cb);
    });
    const pipelined = new Promise<void>((resolve, reject) => c.send((cb) => c.sftp.stat('/tmp', cb), (err) => (err ? reject(err) : resolve())));
    const [e, e2] = await Promise.all([outcome(dropped), outcome(pipelined)]);
    assertTransient(e);
    assertTransient(e2);
    assert.equal(c.alive, false);
  });

  it('fails a request ssh2 never answers when the connection is closed', async () => {
    const c = await connect();
    // Nothing reaches ssh2, so only the connection's own record of the request can end it.
    const lost = new Promise<void>((resolve, reject) => c.send(() => undefined, (err) => (err ? reject(err) : resolve())));
    const settled = outcome(lost);
    await c.close();
    assertTransient(await settled);
  });

  describe('uploads from a local file', () => {
    /** A backend with one connection whose ssh2 write limit is `maxWriteLen` (OpenSSH's: 261120). */
    async function backendWithWriteLimit(maxWriteLen?: number): Promise<SftpBackend> {
      const b = fx.open(undefined, { options: { sshConnections: 1 } });
      await b.connect();
      const [conn] = (b as unknown as { pool: { conns: SftpConnection[] } }).pool.conns;
      if (maxWriteLen !== undefined) (conn.sftp as unknown as { _maxWriteLen: number })._maxWriteLen = maxWriteLen;
      return b;
    }

    for (const limit of [undefined, 30_000]) {
      it(`stores every byte, ${limit ? `with a server limit (${limit}) below one chunk: ssh2 reads each chunk's rest later` : "reading into one reused buffer under OpenSSH's limit"}`, async () => {
        const b = await backendWithWriteLimit(limit);
        try {
          const file = path.join(tempDir(), 'vol');
          const data = randomBytes(3 * 1024 * 1024 + 4321);
          fs.writeFileSync(file, data);
          await b.put('vol', { size: data.length, localPath: file, open: () => fs.createReadStream(file) });
          assert.ok((await getAll(b, 'vol')).equals(data), 'the stored file equals the local one');
        } finally {
          await b.close();
        }
      });
    }
  });
});
