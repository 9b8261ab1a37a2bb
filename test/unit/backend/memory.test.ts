import * as assert from 'node:assert/strict';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { bufferSource, describeBackendConformance, getAll, gatedSource } from './conformance';

describeBackendConformance('memory', () => new MemoryBackend(), {
  makeLeftover: async (b) => {
    // A put whose source fails leaves its partial behind, as a crashed upload would.
    const src = gatedSource(Buffer.alloc(1000), 500);
    const p = b.put('crashed.difftar.gpg', src);
    await src.reachedGate;
    src.release(new Error('crash'));
    await p.catch(() => undefined);
    return (b as MemoryBackend).partialNames()[0];
  },
});

describe('MemoryBackend test helpers', () => {
  it('gives raw access to the stored bytes and corrupts one byte', async () => {
    const b = new MemoryBackend();
    await b.put('v', bufferSource(Buffer.from([1, 2, 3, 4])));
    assert.deepEqual([...b.raw('v')], [1, 2, 3, 4]);
    b.corrupt('v', 2);
    assert.deepEqual([...(await getAll(b, 'v'))], [1, 2, 0xfc, 4]);
    b.corrupt('v', 0, 0x01);
    assert.deepEqual([...b.raw('v')], [0, 2, 0xfc, 4]);
    assert.throws(() => b.corrupt('v', 4), /outside/);
    assert.throws(() => b.raw('nope'), /no file/);
  });

  it('stores, truncates and names files directly', async () => {
    const b = new MemoryBackend({ name: 'dry' });
    assert.equal(b.displayUrl, 'memory://dry');
    b.setRaw('b', Buffer.from('hello'));
    b.setRaw('a', Buffer.from('x'));
    assert.deepEqual(b.names(), ['a', 'b']);
    b.truncate('b', 2);
    assert.equal((await getAll(b, 'b')).toString(), 'he');
    assert.equal((await b.stat('b')).size, 2);
  });

  it('keeps the partial of a failed put until cleanupPartial', async () => {
    const b = new MemoryBackend();
    await assert.rejects(b.put('x', bufferSource(Buffer.alloc(10), 4, 11)));
    assert.equal(b.partialNames().length, 1);
    assert.deepEqual(b.names(), []);
    const left = b.partialNames();
    assert.deepEqual(await b.cleanupPartial({ dryRun: true }), left);
    assert.deepEqual(b.partialNames(), left);
    assert.deepEqual(await b.cleanupPartial(), left);
    assert.deepEqual(b.partialNames(), []);
  });
});
