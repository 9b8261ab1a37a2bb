// The run's AbortSignal is shared by every operation: each may listen to it while it runs, and must
// stop listening when it ends. Node warns of a leak (MaxListenersExceededWarning) past the signal's
// limit; a CLI backup with --concurrency 16, or whose connections dropped, printed that warning.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { getEventListeners, setMaxListeners } from 'node:events';
import { openBackend } from '../../../../src/engine/backend/registry';
import { RetryBackend } from '../../../../src/engine/backend/retryBackend';
import type { SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { bufferSource, getAll } from '../conformance';
import { sftpSuite } from './sftpFixture';

describe('sftp backend: abort listeners on the run signal', function () {
  this.timeout(60_000);
  const suite = sftpSuite();

  const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

  it('leaves no listener behind after many operations that waited for a connection to open', async () => {
    const signal = new AbortController().signal;
    setMaxListeners(100, signal); // 24 operations at once may listen: only what stays counts here
    const b = suite.fx.open(undefined, { options: { concurrency: 16, sshConnections: 2 } });
    suite.open.push(b);
    // All start before the first connection is open: each waits for it.
    await Promise.all(Array.from({ length: 24 }, (_, i) => b.put(`f${i}`, bufferSource(randomBytes(1000)), { signal })));
    await Promise.all(Array.from({ length: 24 }, (_, i) => getAll(b, `f${i}`, { signal })));
    assert.equal(listeners(signal), 0);
  });

  it('leaves no listener behind when connections drop and are opened again', async () => {
    const signal = new AbortController().signal;
    const b = suite.fx.open();
    suite.open.push(b);
    const retrying = new RetryBackend(b, { baseDelayMs: 10 });
    for (let i = 0; i < 12; i++) {
      await retrying.put(`f${i}`, bufferSource(randomBytes(1000)), { signal });
      assert.ok(suite.fx.sshd.killSessions() > 0, 'the session was killed');
    }
    assert.equal(listeners(signal), 0);
  });

  it('raises the run signal’s listener limit with the concurrency, so many operations in flight are no leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    try {
      const signal = new AbortController().signal;
      const { url } = suite.fx.freshRemote();
      const b = (await openBackend(url, { signal, options: suite.fx.options({ concurrency: 24 }) })) as SftpBackend;
      suite.open.push(b);
      await b.put('first', bufferSource(Buffer.from('x')), { signal }); // the connections are open
      // 24 uploads at once, each listening for the abort while it writes.
      await Promise.all(Array.from({ length: 24 }, (_, i) => b.put(`f${i}`, bufferSource(randomBytes(256 * 1024), 4096), { signal })));
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      assert.deepEqual(
        warnings.filter((w) => w.includes('MaxListeners')),
        [],
      );
      assert.equal(listeners(signal), 0);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
