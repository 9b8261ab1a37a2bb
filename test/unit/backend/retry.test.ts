import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { BackendErrorKind, BlobSource } from '../../../src/engine/backend/backend';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { RetryBackend } from '../../../src/engine/backend/retryBackend';
import { isCancellation } from '../../../src/engine/errors';
import { bufferSource, expectKind, getAll, listNames } from './conformance';

function counted(data: Buffer): BlobSource & { opens: number } {
  const inner = bufferSource(data, 16 * 1024);
  const src = {
    opens: 0,
    size: data.length,
    open() {
      src.opens++;
      return inner.open();
    },
  };
  return src;
}

describe('RetryBackend', () => {
  it('retries transient put failures, re-opening the source each time', async () => {
    const inner = new MemoryBackend();
    const fault = new FaultBackend(inner, { rules: [{ op: 'put', calls: [1, 2], action: 'shortWrite', bytes: 30_000 }] });
    const seen: Array<[string, number, number]> = [];
    const b = new RetryBackend(fault, { baseDelayMs: 2, onRetry: (e, attempt, delay) => seen.push([e.message, attempt, delay]) });
    const data = randomBytes(100_000);
    const src = counted(data);
    await b.put('vol1', src);
    assert.equal(src.opens, 3);
    assert.ok(inner.raw('vol1').equals(data));
    assert.deepEqual(
      seen.map(([m, a]) => [/shortWrite/.test(m), a]),
      [
        [true, 1],
        [true, 2],
      ],
    );
    assert.ok(seen[0][2] >= 1 && seen[0][2] <= 2, `first delay ${seen[0][2]}`);
    assert.ok(seen[1][2] >= 2 && seen[1][2] <= 4, `second delay ${seen[1][2]}`);
  });

  for (const kind of ['permanent', 'notFound', 'exists', 'auth', 'permission', 'noSpace'] as BackendErrorKind[]) {
    it(`fails at once on '${kind}'`, async () => {
      const fault = new FaultBackend(new MemoryBackend(), { rules: [{ kind }] });
      let retries = 0;
      const b = new RetryBackend(fault, { baseDelayMs: 1, onRetry: () => retries++ });
      await expectKind(b.put('a', bufferSource(Buffer.from('a'))), kind);
      await expectKind(b.stat('a'), kind);
      await expectKind(b.get('a'), kind);
      await expectKind(b.remove('a'), kind);
      await expectKind(listNames(b), kind);
      assert.equal(retries, 0);
      assert.deepEqual(
        (['put', 'stat', 'get', 'remove', 'list'] as const).map((op) => fault.count(op)),
        [1, 1, 1, 1, 1],
      );
    });
  }

  it('does not retry errors of the source or of the caller', async () => {
    const fault = new FaultBackend(new MemoryBackend());
    const b = new RetryBackend(fault, { baseDelayMs: 1 });
    await assert.rejects(b.put('x', bufferSource(Buffer.alloc(10), 4, 9)), (e: Error) => /more than/.test(e.message));
    const boom = new Error('read error');
    const src: BlobSource = {
      size: 5,
      open: () => {
        throw boom;
      },
    };
    await assert.rejects(b.put('y', src), (e) => e === boom);
    assert.equal(fault.count('put'), 2);
  });

  it('gives up after `attempts` attempts with the last error', async () => {
    const fault = new FaultBackend(new MemoryBackend(), { rules: [{ op: 'stat' }] });
    const attempts: number[] = [];
    const b = new RetryBackend(fault, { attempts: 4, baseDelayMs: 1, onRetry: (_e, a) => attempts.push(a) });
    const e = await expectKind(b.stat('x'), 'transient');
    assert.match(e.message, /stat #4 of x\) \(gave up after 4 attempts\)$/);
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.equal(fault.count('stat'), 4);
  });

  it('retries opening a get, but leaves a stream that fails midway to the caller', async () => {
    const inner = new MemoryBackend();
    const data = randomBytes(200_000);
    inner.setRaw('v', data);
    const fault = new FaultBackend(inner, {
      rules: [
        { op: 'get', calls: [1] },
        { op: 'get', calls: [2], action: 'cutStream', bytes: 50_000 },
      ],
    });
    const b = new RetryBackend(fault, { baseDelayMs: 1 });
    await expectKind(getAll(b, 'v'), 'transient');
    assert.equal(fault.count('get'), 2, 'the cut stream was not retried');
    assert.ok((await getAll(b, 'v', { offset: 50_000 })).equals(data.subarray(50_000)));
  });

  it('retries a listing as a whole and never yields a name twice', async () => {
    const inner = new MemoryBackend();
    for (const n of ['a', 'b', 'c']) inner.setRaw(n, Buffer.from(n));
    const fault = new FaultBackend(inner, { rules: [{ op: 'list', action: 'cutStream', items: 2, calls: [1, 2] }] });
    const b = new RetryBackend(fault, { baseDelayMs: 1 });
    const names: string[] = [];
    for await (const f of b.list()) names.push(f.name);
    assert.deepEqual(names.sort(), ['a', 'b', 'c']);
    assert.equal(fault.count('list'), 3);
  });

  it('takes an "exists" after a lost reply as the earlier attempt having landed', async () => {
    const inner = new MemoryBackend();
    const fault = new FaultBackend(inner, { rules: [{ op: 'put', action: 'lostReply', times: 1 }] });
    const b = new RetryBackend(fault, { baseDelayMs: 1 });
    const data = randomBytes(1000);
    await b.put('m', bufferSource(data));
    assert.ok(inner.raw('m').equals(data));
    assert.equal(fault.count('put'), 2);
    // A different file (other size) under that name is still an 'exists' error.
    fault.setPlan({ rules: [{ op: 'put', calls: [3] }] });
    await expectKind(b.put('m', bufferSource(randomBytes(999))), 'exists');
    // ...and on a first attempt 'exists' is never explained away, whatever the size.
    await expectKind(b.put('m', bufferSource(randomBytes(1000))), 'exists');
  });

  it('backs off exponentially with jitter, capped', () => {
    const low = new RetryBackend(new MemoryBackend(), { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
    const high = new RetryBackend(new MemoryBackend(), { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 });
    assert.deepEqual([1, 2, 3, 4, 5, 6, 60].map((n) => low.delayFor(n)), [50, 100, 200, 400, 500, 500, 500]);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 60].map((n) => high.delayFor(n)), [100, 200, 400, 800, 1000, 1000, 1000]);
    const real = new RetryBackend(new MemoryBackend(), { baseDelayMs: 100 });
    const samples = Array.from({ length: 200 }, () => real.delayFor(3));
    assert.ok(samples.every((d) => d >= 200 && d <= 400));
    assert.ok(new Set(samples).size > 20, 'jittered');
  });

  it('stops waiting and retrying when aborted', async () => {
    const fault = new FaultBackend(new MemoryBackend(), { rules: [{ op: 'stat' }] });
    const b = new RetryBackend(fault, { baseDelayMs: 10_000 });
    const ac = new AbortController();
    const t = Date.now();
    setTimeout(() => ac.abort(), 30);
    await assert.rejects(b.stat('x', { signal: ac.signal }), (e) => isCancellation(e));
    assert.ok(Date.now() - t < 1000);
    assert.equal(fault.count('stat'), 1);
  });

  it('removeMany over a backend without batches: name by name, each retried; missing names are fine', async () => {
    const inner = new MemoryBackend();
    for (const n of ['a', 'b', 'c', 'keep']) await inner.put(n, bufferSource(Buffer.from(n)));
    const fault = new FaultBackend(inner, { rules: [{ op: 'remove', name: 'b', times: 2, action: 'fail', kind: 'transient' }] });
    const b = new RetryBackend(fault, { baseDelayMs: 1 });
    await b.removeMany(['a', 'b', 'c', 'never-there']);
    assert.deepEqual(await listNames(inner), ['keep']);
    assert.equal(fault.calls.filter((c) => c.op === 'remove' && c.name === 'b').length, 3, 'b tried three times');
  });

  it('passes displayUrl, properties and cleanupPartial through', async () => {
    const inner = new MemoryBackend({ name: 'r', connections: 3 });
    const b = new RetryBackend(inner);
    assert.equal(b.displayUrl, 'memory://r');
    assert.equal(b.properties.connections, 3);
    await assert.rejects(inner.put('x', bufferSource(Buffer.alloc(3), 1, 4)));
    assert.equal((await b.cleanupPartial()).length, 1);
    assert.deepEqual(inner.partialNames(), []);
  });
});
