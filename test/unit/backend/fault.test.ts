import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackendErrorKind } from '../../../src/engine/backend/backend';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { LimitBackend } from '../../../src/engine/backend/limitBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { RetryBackend } from '../../../src/engine/backend/retryBackend';
import { isCancellation } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { bufferSource, describeBackendConformance, expectKind, getAll, listNames } from './conformance';

const memoryLeftover = async (b: { cleanupPartial(o: { dryRun: true }): Promise<string[]> }, inner: MemoryBackend): Promise<string> => {
  await assert.rejects(inner.put('crashed', bufferSource(Buffer.alloc(10), 4, 11)));
  const [name] = await b.cleanupPartial({ dryRun: true });
  return name;
};

{
  let inner = new MemoryBackend();
  describeBackendConformance(
    'memory behind fault (no faults)',
    () => new FaultBackend((inner = new MemoryBackend()), {}),
    { makeLeftover: (b) => memoryLeftover(b, inner) },
  );
}
{
  let inner = new MemoryBackend();
  describeBackendConformance(
    'memory behind fault, limit and retry (no faults)',
    () => new RetryBackend(new LimitBackend(new FaultBackend((inner = new MemoryBackend())), 3), { baseDelayMs: 1 }),
    { makeLeftover: (b) => memoryLeftover(b, inner) },
  );
}

async function readCounting(b: FaultBackend, name: string): Promise<{ got: number; error?: unknown }> {
  const s = await b.get(name);
  let got = 0;
  try {
    for await (const c of s) got += (c as Buffer).length;
  } catch (error) {
    return { got, error };
  }
  return { got };
}

describe('FaultBackend', () => {
  it('fails the Nth call of an operation with the given kind, and records calls', async () => {
    const inner = new MemoryBackend();
    const b = new FaultBackend(inner, { rules: [{ op: 'put', calls: [2], kind: 'permission' }] });
    await b.put('a', bufferSource(Buffer.from('a')));
    const e = await expectKind(b.put('b', bufferSource(Buffer.from('b'))), 'permission');
    assert.match(e.message, /put #2 of b/);
    await b.put('c', bufferSource(Buffer.from('c')));
    assert.deepEqual(inner.names(), ['a', 'c']);
    await b.stat('a');
    assert.deepEqual(
      b.calls.map((c) => [c.op, c.name, c.n, c.fault]),
      [
        ['put', 'a', 1, undefined],
        ['put', 'b', 2, 'fail (permission)'],
        ['put', 'c', 3, undefined],
        ['stat', 'a', 1, undefined],
      ],
    );
    assert.equal(b.count('put'), 3);
  });

  it('fails calls whose name matches, at most `times` times', async () => {
    const inner = new MemoryBackend();
    inner.setRaw('duplicity-full.20261126T131509Z.manifest.gpg', Buffer.from('m'));
    inner.setRaw('duplicity-full.20261126T131509Z.vol1.difftar.gpg', Buffer.from('v'));
    const b = new FaultBackend(inner, { rules: [{ op: ['get', 'stat'], name: /\.manifest\b/, times: 2, kind: 'notFound' }] });
    await getAll(b, 'duplicity-full.20261126T131509Z.vol1.difftar.gpg');
    await expectKind(getAll(b, 'duplicity-full.20261126T131509Z.manifest.gpg'), 'notFound');
    await expectKind(b.stat('duplicity-full.20261126T131509Z.manifest.gpg'), 'notFound');
    assert.equal((await getAll(b, 'duplicity-full.20261126T131509Z.manifest.gpg')).toString(), 'm');
  });

  it('short write: the put fails after N bytes and the inner backend shows nothing', async () => {
    const inner = new MemoryBackend();
    const b = new FaultBackend(inner, { rules: [{ op: 'put', action: 'shortWrite', bytes: 70_000 }] });
    await expectKind(b.put('vol1', bufferSource(randomBytes(200_000))), 'transient');
    assert.deepEqual(inner.names(), []);
    assert.equal(inner.partialNames().length, 1, 'the interrupted upload left a partial');
    await expectKind(b.stat('vol1'), 'notFound');

    const dir = tempDir();
    const onFile = new FaultBackend(new FileBackend(dir), { rules: [{ op: 'put', action: 'shortWrite', bytes: 5, kind: 'noSpace' }] });
    const src = bufferSource(randomBytes(100_000));
    await expectKind(onFile.put('vol1', { ...src, localPath: '/nonexistent/never-copied' }), 'noSpace');
    assert.deepEqual(fs.readdirSync(dir), [], 'no final name, no temp left');
  });

  it('cuts a get stream after N bytes with an error, never a short read', async () => {
    const inner = new MemoryBackend();
    inner.setRaw('v', randomBytes(300_000));
    const b = new FaultBackend(inner, { rules: [{ op: 'get', action: 'cutStream', bytes: 100_000, calls: [1] }] });
    const { got, error } = await readCounting(b, 'v');
    assert.equal(got, 100_000);
    assert.ok(error, 'the cut stream must error');
    await expectKind(Promise.reject(error), 'transient');
    const again = await readCounting(b, 'v');
    assert.equal(again.got, 300_000);
    assert.equal(again.error, undefined);
  });

  it("runs out of space after N total bytes ('noSpace') and frees space on remove", async () => {
    const inner = new MemoryBackend();
    const b = new FaultBackend(inner, { noSpaceAfterBytes: 1000 });
    await b.put('a', bufferSource(randomBytes(600)));
    const e = await expectKind(b.put('b', bufferSource(randomBytes(600), 100)), 'noSpace');
    assert.match(e.message, /no space/);
    assert.deepEqual(inner.names(), ['a']);
    await b.put('c', bufferSource(randomBytes(400)));
    await expectKind(b.put('d', bufferSource(randomBytes(1))), 'noSpace');
    await b.remove('a');
    await b.put('b', bufferSource(randomBytes(600)));
    assert.deepEqual(inner.names(), ['b', 'c']);
    assert.deepEqual(
      b.calls.filter((c) => c.fault).map((c) => [c.name, c.fault]),
      [
        ['b', 'noSpace after 1000 bytes'],
        ['d', 'noSpace after 1000 bytes'],
      ],
    );
  });

  it('delays calls, and an abort cuts the delay short', async () => {
    const b = new FaultBackend(new MemoryBackend(), { delayMs: 40, rules: [{ op: 'stat', action: 'delay', delayMs: 200 }] });
    let t = Date.now();
    await b.put('a', bufferSource(Buffer.from('a')));
    assert.ok(Date.now() - t >= 35, 'put delayed');
    t = Date.now();
    await b.stat('a');
    assert.ok(Date.now() - t >= 230, 'stat delayed by both');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    t = Date.now();
    await assert.rejects(b.stat('a', { signal: ac.signal }), (e) => isCancellation(e));
    assert.ok(Date.now() - t < 150, 'the abort ended the delay');
  });

  it('lost reply: the inner operation happened, the call fails', async () => {
    const inner = new MemoryBackend();
    const b = new FaultBackend(inner, { rules: [{ op: ['put', 'remove'], action: 'lostReply', times: 2 }] });
    await expectKind(b.put('a', bufferSource(Buffer.from('a'))), 'transient');
    assert.deepEqual(inner.names(), ['a']);
    await expectKind(b.remove('a'), 'transient');
    assert.deepEqual(inner.names(), []);
  });

  it('cuts a listing after N items', async () => {
    const inner = new MemoryBackend();
    for (const n of ['a', 'b', 'c', 'd']) inner.setRaw(n, Buffer.from(n));
    const b = new FaultBackend(inner, { rules: [{ op: 'list', action: 'cutStream', items: 2, times: 1 }] });
    const seen: string[] = [];
    await expectKind(
      (async () => {
        for await (const f of b.list()) seen.push(f.name);
      })(),
      'transient',
    );
    assert.equal(seen.length, 2);
    assert.deepEqual(await listNames(b), ['a', 'b', 'c', 'd']);
  });

  it('injects seeded random faults, reproducibly', async () => {
    const run = async (seed: number, probability: number, kinds?: BackendErrorKind[]): Promise<string[]> => {
      const inner = new MemoryBackend();
      inner.setRaw('x', Buffer.from('x'));
      const b = new FaultBackend(inner, { random: { seed, probability, kinds, ops: ['stat'] } });
      const out: string[] = [];
      for (let i = 0; i < 1000; i++) {
        out.push(await b.stat('x').then(() => 'ok', (e: { kind: string }) => e.kind));
      }
      await b.put('y', bufferSource(Buffer.from('y'))); // not in ops: never fails
      return out;
    };
    const a = await run(42, 0.3);
    assert.deepEqual(await run(42, 0.3), a, 'same seed, same faults');
    assert.notDeepEqual(await run(43, 0.3), a, 'another seed, other faults');
    const rate = a.filter((k) => k !== 'ok').length / a.length;
    assert.ok(rate > 0.25 && rate < 0.35, `fault rate ${rate}`);
    assert.ok(a.every((k) => k === 'ok' || k === 'transient'));
    assert.ok((await run(1, 0)).every((k) => k === 'ok'));
    const mixed = await run(7, 1, ['permanent', 'noSpace']);
    assert.ok(mixed.every((k) => k === 'permanent' || k === 'noSpace'));
    assert.ok(mixed.includes('permanent') && mixed.includes('noSpace'));
  });

  it('setPlan and reset change the faults of a running backend', async () => {
    const inner = new MemoryBackend();
    inner.setRaw('x', Buffer.from('x'));
    const b = new FaultBackend(inner);
    await b.stat('x');
    b.setPlan({ rules: [{ op: 'stat', kind: 'auth', times: 1 }] });
    await expectKind(b.stat('x'), 'auth');
    await b.stat('x');
    assert.equal(b.count('stat'), 3);
    b.reset();
    assert.equal(b.count('stat'), 0);
    assert.deepEqual(b.calls, []);
  });

  it('retries over transient faults end to end (file backend, random faults)', async () => {
    const dir = tempDir();
    const faulty = new FaultBackend(new FileBackend(path.join(dir, 'r')), { random: { seed: 9, probability: 0.3 } });
    const retries: number[] = [];
    const b = new RetryBackend(faulty, { attempts: 10, baseDelayMs: 1, maxDelayMs: 4, onRetry: (_e, n) => retries.push(n) });
    const blobs = Array.from({ length: 30 }, (_, i) => randomBytes(i * 1000));
    for (const [i, d] of blobs.entries()) await b.put(`v${i}`, bufferSource(d));
    for (const [i, d] of blobs.entries()) assert.ok((await getAll(b, `v${i}`)).equals(d));
    assert.equal((await listNames(b)).length, 30);
    assert.ok(retries.length > 10, `retried ${retries.length} times`);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'r')).sort(), blobs.map((_, i) => `v${i}`).sort());
  });
});
