import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BackendFileInfo, BlobSource, GetOptions, OpOptions, PutOptions } from '../../../src/engine/backend/backend';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { LimitBackend } from '../../../src/engine/backend/limitBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { isCancellation } from '../../../src/engine/errors';
import { bufferSource, describeBackendConformance, expectKind, readAll } from './conformance';

/** Counts operations running at once in the inner backend. */
class Probe extends MemoryBackend {
  now = 0;
  max = 0;
  order: string[] = [];
  private async track<T>(name: string, f: () => Promise<T>): Promise<T> {
    this.now++;
    this.max = Math.max(this.max, this.now);
    this.order.push(name);
    try {
      await new Promise((r) => setTimeout(r, 5));
      return await f();
    } finally {
      this.now--;
    }
  }
  override put(name: string, s: BlobSource, o?: PutOptions): Promise<void> {
    return this.track(name, () => super.put(name, s, o));
  }
  override stat(name: string, o?: OpOptions): Promise<BackendFileInfo> {
    return this.track(name, () => super.stat(name, o));
  }
  override remove(name: string, o?: OpOptions): Promise<void> {
    return this.track(name, () => super.remove(name, o));
  }
  override get(name: string, o?: GetOptions): Promise<Readable> {
    return this.track(name, () => super.get(name, o));
  }
}

describeBackendConformance('memory behind limit 2', () => new LimitBackend(new MemoryBackend(), 2));

describe('LimitBackend', () => {
  it('runs at most n operations at once, first come first served', async () => {
    const probe = new Probe();
    const b = new LimitBackend(probe, 3);
    assert.equal(b.properties.connections, 3);
    await Promise.all(Array.from({ length: 12 }, (_, i) => b.put(`p${i}`, bufferSource(randomBytes(1000)))));
    await Promise.all(Array.from({ length: 12 }, (_, i) => b.stat(`p${i}`)));
    await Promise.all(Array.from({ length: 12 }, (_, i) => b.remove(`p${i}`)));
    assert.equal(probe.max, 3);
    assert.deepEqual(
      probe.order.slice(0, 12),
      Array.from({ length: 12 }, (_, i) => `p${i}`),
    );
    assert.equal(b.running, 0);
  });

  it('holds a get slot until its stream ends or is destroyed', async () => {
    const probe = new Probe();
    probe.setRaw('v', randomBytes(300_000));
    const b = new LimitBackend(probe, 1);
    const s = await b.get('v');
    let statDone = false;
    const stat = b.stat('v').then(() => (statDone = true));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(statDone, false, 'stat ran while a get stream was open');
    assert.equal(b.queued, 1);
    assert.equal((await readAll(s)).length, 300_000);
    await stat;
    const s2 = await b.get('v');
    s2.destroy();
    await b.stat('v');
    assert.equal(b.running, 0);
  });

  it('frees the slot of a failed operation', async () => {
    const b = new LimitBackend(new FaultBackend(new MemoryBackend(), { rules: [{ op: ['get', 'put'], kind: 'permanent', times: 2 }] }), 1);
    await expectKind(b.get('x'), 'permanent');
    await expectKind(b.put('x', bufferSource(Buffer.from('x'))), 'permanent');
    await b.put('x', bufferSource(Buffer.from('x')));
    assert.equal(b.running, 0);
  });

  it('drops a waiter whose signal fires', async () => {
    const probe = new Probe();
    probe.setRaw('v', Buffer.from('v'));
    const b = new LimitBackend(probe, 1);
    const s = await b.get('v');
    const ac = new AbortController();
    const waiting = b.stat('v', { signal: ac.signal });
    assert.equal(b.queued, 1);
    ac.abort();
    await assert.rejects(waiting, (e) => isCancellation(e));
    assert.equal(b.queued, 0);
    await readAll(s);
    await b.stat('v');
    assert.equal(b.running, 0);
    assert.throws(() => new LimitBackend(probe, 0), RangeError);
  });
});
