// The backend conformance suite: one function that registers mocha tests checking the contract in
// src/engine/backend/backend.ts. Every backend (file, memory, sftp, s3, rclone, wrappers) runs it, so
// the engine can treat all remotes alike. Not a test file itself: call describeBackendConformance()
// from one.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Backend, BackendErrorKind, BackendFileInfo, BlobSource, GetOptions } from '../../../src/engine/backend/backend';
import { BackendError } from '../../../src/engine/backend/backend';
import { isCancellation } from '../../../src/engine/errors';

/** Things a backend may declare it cannot do; the matching tests are then not registered. */
export type ConformanceGap =
  /** put cannot be interrupted by an AbortSignal once it started sending. */
  | 'abortMidPut'
  /** a get stream does not stop when its AbortSignal fires. */
  | 'abortGet'
  /** put never calls onProgress. */
  | 'progress'
  /** two puts of one new name racing may both succeed (no atomic create-if-absent on this remote). */
  | 'noClobberRace';

export interface ConformanceOptions {
  /** Capabilities the backend lacks (each skips the tests that need it; say why in the caller). */
  readonly cannot?: readonly ConformanceGap[];
  /**
   * Creates, directly in the remote, a leftover exactly as a crashed put would leave it (a temp file, an
   * unfinished multipart upload) and returns the name cleanupPartial() should report for it.
   */
  readonly makeLeftover?: (backend: Backend) => Promise<string>;
  /** Strings that must never appear in displayUrl (passwords, secret keys). */
  readonly secrets?: readonly string[];
  /** Size of the big round trip (default 5 MiB). */
  readonly bigSize?: number;
  /** How many puts run at once in the concurrency test (default 20). */
  readonly concurrentPuts?: number;
  /** Longest file name to try (default 200 characters). */
  readonly maxNameLength?: number;
  /** Per-test timeout in ms (default mocha's). */
  readonly timeoutMs?: number;
}

/** Each call gives a fresh, empty remote. The suite closes it after the test. */
export type MakeBackend = () => Promise<Backend> | Backend;

// ---------------------------------------------------------------------------------------------------
// Helpers, exported for the backend tests that go beyond the contract.

/** A re-openable source over a buffer, served in `chunk`-byte pieces. */
export function bufferSource(data: Buffer, chunk = 64 * 1024, size = data.length): BlobSource {
  return {
    size,
    open(): Readable {
      let pos = 0;
      return new Readable({
        highWaterMark: chunk,
        read(): void {
          if (pos >= data.length) {
            this.push(null);
            return;
          }
          const end = Math.min(pos + chunk, data.length);
          this.push(data.subarray(pos, end));
          pos = end;
        },
      });
    },
  };
}

export interface GatedSource extends BlobSource {
  /** Resolves once the bytes before the gate were all handed to the consumer and it asks for more. */
  readonly reachedGate: Promise<void>;
  /** Lets the rest through (or, when failWith is given, errors the stream at the gate). */
  release(failWith?: Error): void;
  /** How many times open() was called. */
  readonly opens: number;
}

/** A source that stops after `gateAt` bytes until released: a put "in progress". */
export function gatedSource(data: Buffer, gateAt: number, chunk = 16 * 1024): GatedSource {
  let opens = 0;
  let reached!: () => void;
  const reachedGate = new Promise<void>((r) => (reached = r));
  let released: { e?: Error } | undefined;
  let onRelease: (() => void) | undefined;
  return {
    size: data.length,
    reachedGate,
    get opens() {
      return opens;
    },
    release(failWith?: Error): void {
      released = { e: failWith };
      onRelease?.();
    },
    open(): Readable {
      opens++;
      let pos = 0;
      const pushNext = (): void => {
        if (pos >= data.length) {
          stream.push(null);
          return;
        }
        const limit = pos < gateAt && !released ? gateAt : data.length;
        const end = Math.min(pos + chunk, limit);
        stream.push(data.subarray(pos, end));
        pos = end;
      };
      const stream = new Readable({
        highWaterMark: chunk,
        read(): void {
          if (pos !== gateAt || released) {
            if (released?.e && pos >= gateAt) stream.destroy(released.e);
            else pushNext();
            return;
          }
          // At the gate: wait for release() (Readable calls read() again only after a push).
          onRelease = () => {
            onRelease = undefined;
            if (released?.e) stream.destroy(released.e);
            else pushNext();
          };
          reached();
        },
      });
      return stream;
    },
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

export async function getAll(backend: Backend, name: string, options?: GetOptions): Promise<Buffer> {
  return readAll(await backend.get(name, options));
}

export async function listNames(backend: Backend): Promise<string[]> {
  const names: string[] = [];
  for await (const f of backend.list()) names.push(f.name);
  return names.sort();
}

/** One list({ partial: true }): the final names and the leftovers of unfinished uploads, each sorted. */
export async function listWithPartial(backend: Backend): Promise<{ finals: string[]; partial: string[] }> {
  const finals: string[] = [];
  const partial: string[] = [];
  for await (const f of backend.list({ partial: true })) (f.partial ? partial : finals).push(f.name);
  return { finals: finals.sort(), partial: partial.sort() };
}

/** Asserts that `p` rejects with a BackendError of `kind`; returns it. */
export async function expectKind(p: Promise<unknown>, kind: BackendErrorKind): Promise<BackendError> {
  try {
    await p;
  } catch (e) {
    assert.ok(BackendError.isKind(e), `expected a BackendError '${kind}', got ${String(e)}`);
    assert.equal(e.kind, kind, `expected kind '${kind}', got '${e.kind}': ${e.message}`);
    assert.ok(e.message.length > 0);
    return e;
  }
  assert.fail(`expected a BackendError '${kind}', but it succeeded`);
}

/** A get must fail with `kind`, either at get() or while streaming: never a short stream. */
async function expectGetFails(backend: Backend, name: string, options: GetOptions, kind: BackendErrorKind): Promise<void> {
  await expectKind(
    (async () => {
      const s = await backend.get(name, options);
      const data = await readAll(s);
      return data.length;
    })(),
    kind,
  );
}

async function expectInvisible(backend: Backend, name: string): Promise<void> {
  assert.ok(!(await listNames(backend)).includes(name), `${name} must not be listed`);
  await expectKind(backend.stat(name), 'notFound');
  await expectGetFails(backend, name, {}, 'notFound');
}

/** After a failed put: no final name appeared, and cleanupPartial removes leftovers, never final names. */
async function expectCleanAfterFailure(backend: Backend, name: string, before: string[]): Promise<void> {
  await expectInvisible(backend, name);
  assert.deepEqual(await listNames(backend), before);
  const dry = await backend.cleanupPartial({ dryRun: true });
  for (const n of dry) assert.ok(!before.includes(n), `cleanupPartial would remove the final name ${n}`);
  const removed = await backend.cleanupPartial();
  assert.deepEqual([...removed].sort(), [...dry].sort(), 'dryRun reports what a real run removes');
  assert.deepEqual(await backend.cleanupPartial(), [], 'nothing left after cleanupPartial');
  assert.deepEqual(await listNames(backend), before);
  for (const n of before) await backend.stat(n);
}

function isNotTransient(e: unknown): boolean {
  return !BackendError.isKind(e, 'transient');
}

// Every character duplicity puts in names: long and short names, old local-time names with ':' and
// '+'/'-' offsets or another time separator, file prefixes (user-chosen: '_', '~', '@', '=' seen).
const DUPLICITY_NAMES = [
  'duplicity-full.20261126T131509Z.vol1.difftar.gpg',
  'duplicity-full.20261126T131509Z.manifest.gpg',
  'duplicity-full-signatures.20261126T131509Z.sigtar.gpg',
  'duplicity-inc.20261126T131509Z.to.20261126T131630Z.vol12.difftar.gz',
  'duplicity-inc.20261126T131509Z.to.20261126T131630Z.manifest',
  'duplicity-new-signatures.20261126T131509Z.to.20261126T131630Z.sigtar',
  'duplicity-full.2002-08-17T16:17:01-07:00.vol1.difftar.gpg',
  'duplicity-inc.2002-08-17T16:17:01+02:00.to.2002-08-18T16:17:01+02:00.manifest.gpg',
  'duplicity-full.2002-08-17T16.17.01Z.manifest',
  'df.tp42v1.1.dt.z',
  'df.tp42v1.m',
  'di.tp42v1.tp42w0.a.dt.g',
  'dns.tp42v1.tp42w0.st.g',
  'dfs.tp42v1.st.p',
  'host_A~b@c=d,e-duplicity-full.20261126T131509Z.manifest.gpg',
  'duplicity-full.20261126T131509Z.manifest.part',
  'lockfile',
  'x',
];

// ---------------------------------------------------------------------------------------------------

export function describeBackendConformance(title: string, makeBackend: MakeBackend, opts: ConformanceOptions = {}): void {
  const cannot = new Set(opts.cannot ?? []);
  const bigSize = opts.bigSize ?? 5 * 1024 * 1024;

  describe(`${title}: backend conformance`, function () {
    if (opts.timeoutMs !== undefined) this.timeout(opts.timeoutMs);
    let open: Backend[] = [];

    async function fresh(): Promise<Backend> {
      const b = await makeBackend();
      open.push(b);
      return b;
    }

    afterEach(async () => {
      const closing = open;
      open = [];
      for (const b of closing) await b.close();
    });

    it('has a displayUrl without secrets and a positive connection count', async () => {
      const b = await fresh();
      assert.equal(typeof b.displayUrl, 'string');
      assert.ok(b.displayUrl.length > 0);
      assert.ok(!/:\/\/[^/@]*:[^/@]*@/.test(b.displayUrl), `displayUrl ${b.displayUrl} shows user:password@`);
      for (const s of opts.secrets ?? []) assert.ok(!b.displayUrl.includes(s), 'displayUrl contains a secret');
      assert.ok(Number.isInteger(b.properties.connections) && b.properties.connections >= 1);
    });

    it('starts empty: list is empty, cleanupPartial finds nothing', async () => {
      const b = await fresh();
      assert.deepEqual(await listNames(b), []);
      assert.deepEqual(await listWithPartial(b), { finals: [], partial: [] });
      assert.deepEqual(await b.cleanupPartial({ dryRun: true }), []);
      assert.deepEqual(await b.cleanupPartial(), []);
    });

    for (const [label, size] of [
      ['empty', 0],
      ['1 byte', 1],
      [`${bigSize} bytes`, bigSize],
    ] as const) {
      it(`round trip: put, stat, list, get (${label})`, async () => {
        const b = await fresh();
        const data = randomBytes(size);
        await b.put('f.bin', bufferSource(data));
        const info = await b.stat('f.bin');
        assert.equal(info.name, 'f.bin');
        assert.equal(info.size, size);
        if (info.mtime !== undefined) assert.ok(!Number.isNaN(info.mtime.getTime()), 'mtime is a valid date');
        const listed = [];
        for await (const f of b.list()) listed.push(f);
        assert.deepEqual(
          listed.map((f) => [f.name, f.size]),
          [['f.bin', size]],
        );
        assert.ok((await getAll(b, 'f.bin')).equals(data), 'content differs');
      });
    }

    // cleanup keeps a set that a backup on another machine may be writing by the age of its files
    // (audit.ts KEEP_RECENT_SECONDS): a listing that dates none would keep every interrupted set.
    it('list and stat date each file: when it was written, by the remote\'s clock (here the same as this machine\'s)', async () => {
      const b = await fresh();
      const before = Date.now();
      await b.put('dated.bin', bufferSource(randomBytes(10)));
      const listed: BackendFileInfo[] = [];
      for await (const f of b.list()) listed.push(f);
      for (const [how, info] of [['list', listed[0]], ['stat', await b.stat('dated.bin')]] as const) {
        assert.ok(info?.mtime instanceof Date && !Number.isNaN(info.mtime.getTime()), `${how} gives no mtime: ${JSON.stringify(info)}`);
        // Within a minute: the remote's own clock and its whole seconds (file systems, S3) allowed for.
        assert.ok(Math.abs(info.mtime.getTime() - before) < 60_000, `${how}: ${info.mtime.toISOString()} is not when it was written (${new Date(before).toISOString()})`);
      }
    });

    if (!cannot.has('progress')) {
      it('reports put progress, ending at the full size', async () => {
        const b = await fresh();
        const data = randomBytes(1024 * 1024 + 7);
        const seen: number[] = [];
        await b.put('p.bin', bufferSource(data), { onProgress: (n) => seen.push(n) });
        assert.ok(seen.length > 0, 'onProgress never called');
        for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], 'progress went backwards');
        assert.ok(seen.every((n) => n >= 0 && n <= data.length));
        assert.equal(seen[seen.length - 1], data.length);
      });
    }

    it('serves byte ranges', async () => {
      const b = await fresh();
      const size = 300 * 1024 + 3;
      const data = randomBytes(size);
      await b.put('r.bin', bufferSource(data));
      const cases: Array<[number | undefined, number | undefined]> = [
        [0, undefined],
        [1, undefined],
        [70000, undefined],
        [undefined, 5],
        [0, size],
        [12345, 200000],
        [size - 1, 1],
        [size - 1, undefined],
        [100, 0],
        [size, 0],
        [size, undefined],
      ];
      for (const [offset, length] of cases) {
        const got = await getAll(b, 'r.bin', { offset, length });
        const from = offset ?? 0;
        const want = data.subarray(from, length === undefined ? size : from + length);
        assert.ok(got.equals(want), `range offset=${offset} length=${length}: ${got.length} bytes, want ${want.length}`);
      }
    });

    it('refuses a range past the end (permanent), never a short stream', async () => {
      const b = await fresh();
      const data = randomBytes(1000);
      await b.put('r.bin', bufferSource(data));
      await expectGetFails(b, 'r.bin', { offset: 0, length: 1001 }, 'permanent');
      await expectGetFails(b, 'r.bin', { offset: 999, length: 2 }, 'permanent');
      await expectGetFails(b, 'r.bin', { offset: 1001 }, 'permanent');
      await expectGetFails(b, 'r.bin', { offset: 5000, length: 1 }, 'permanent');
      await b.put('empty', bufferSource(Buffer.alloc(0)));
      await expectGetFails(b, 'empty', { offset: 0, length: 1 }, 'permanent');
    });

    it('reports a missing name as notFound (stat and get)', async () => {
      const b = await fresh();
      await expectKind(b.stat('missing.gpg'), 'notFound');
      await expectGetFails(b, 'missing.gpg', {}, 'notFound');
      await b.put('present', bufferSource(Buffer.from('x')));
      await expectKind(b.stat('missing.gpg'), 'notFound');
      await expectGetFails(b, 'missing.gpg', { offset: 0, length: 1 }, 'notFound');
    });

    it('lists final names with their sizes', async () => {
      const b = await fresh();
      const sizes = new Map([
        ['a', 3],
        ['b.gpg', 0],
        ['c.manifest', 70000],
      ]);
      for (const [n, s] of sizes) await b.put(n, bufferSource(randomBytes(s)));
      const listed = new Map<string, number>();
      for await (const f of b.list()) {
        assert.ok(!listed.has(f.name), `${f.name} listed twice`);
        listed.set(f.name, f.size);
      }
      assert.deepEqual([...listed].sort(), [...sizes].sort());
    });

    it('does not show a put in progress (list, stat, get)', async () => {
      const b = await fresh();
      await b.put('done', bufferSource(Buffer.from('done')));
      const data = randomBytes(200 * 1024);
      const src = gatedSource(data, 64 * 1024);
      const putting = b.put('busy.difftar.gpg', src);
      await Promise.race([src.reachedGate, putting]);
      assert.deepEqual(await listNames(b), ['done']);
      await expectKind(b.stat('busy.difftar.gpg'), 'notFound');
      await expectGetFails(b, 'busy.difftar.gpg', {}, 'notFound');
      src.release();
      await putting;
      assert.deepEqual(await listNames(b), ['busy.difftar.gpg', 'done']);
      assert.ok((await getAll(b, 'busy.difftar.gpg')).equals(data));
    });

    it('removes names; removing a missing name is fine', async () => {
      const b = await fresh();
      await b.put('a', bufferSource(Buffer.from('aaa')));
      await b.put('b', bufferSource(Buffer.from('bbb')));
      await b.remove('a');
      assert.deepEqual(await listNames(b), ['b']);
      await expectKind(b.stat('a'), 'notFound');
      await b.remove('a');
      await b.remove('never-there');
      assert.deepEqual(await listNames(b), ['b']);
      await b.put('a', bufferSource(Buffer.from('new')));
      assert.equal((await getAll(b, 'a')).toString(), 'new');
    });

    it("refuses to replace a name ('exists') unless overwrite", async () => {
      const b = await fresh();
      const first = randomBytes(5000);
      await b.put('m.manifest', bufferSource(first));
      await expectKind(b.put('m.manifest', bufferSource(Buffer.from('other'))), 'exists');
      assert.ok((await getAll(b, 'm.manifest')).equals(first), 'content changed by a refused put');
      assert.deepEqual(await listNames(b), ['m.manifest'], 'a refused put left something visible');
      await b.put('m.manifest', bufferSource(Buffer.from('shorter')), { overwrite: true });
      assert.equal((await getAll(b, 'm.manifest')).toString(), 'shorter');
      assert.equal((await b.stat('m.manifest')).size, 7);
      await b.put('fresh', bufferSource(Buffer.from('ok')), { overwrite: true });
      assert.equal((await getAll(b, 'fresh')).toString(), 'ok');
      assert.deepEqual(await b.cleanupPartial(), []);
    });

    if (!cannot.has('noClobberRace')) {
      it("lets exactly one of two racing puts of a new name win, the other gets 'exists'", async () => {
        const b = await fresh();
        const one = randomBytes(100_000);
        const two = randomBytes(100_000);
        const src1 = gatedSource(one, 50_000);
        const src2 = gatedSource(two, 50_000);
        const p1 = b.put('race', src1);
        const p2 = b.put('race', src2);
        await Promise.all([Promise.race([src1.reachedGate, p1]), Promise.race([src2.reachedGate, p2])]);
        src1.release();
        src2.release();
        const [r1, r2] = await Promise.allSettled([p1, p2]);
        const won = [r1, r2].filter((r) => r.status === 'fulfilled').length;
        assert.equal(won, 1, 'exactly one put wins');
        const lost = (r1.status === 'rejected' ? r1 : r2) as PromiseRejectedResult;
        assert.ok(BackendError.isKind(lost.reason, 'exists'), `the loser gets 'exists', not ${String(lost.reason)}`);
        const got = await getAll(b, 'race');
        assert.ok(got.equals(r1.status === 'fulfilled' ? one : two), 'the content is the winner\'s');
        assert.deepEqual(await listNames(b), ['race']);
        assert.deepEqual(await b.cleanupPartial(), []);
      });
    }

    if (!cannot.has('abortMidPut')) {
      it('is atomic when a put is aborted midway', async () => {
        const b = await fresh();
        await b.put('keep', bufferSource(Buffer.from('keep')));
        const src = gatedSource(randomBytes(300 * 1024), 100 * 1024);
        const ac = new AbortController();
        const putting = b.put('vol.difftar.gpg', src, { signal: ac.signal });
        await Promise.race([src.reachedGate, putting]);
        ac.abort();
        await assert.rejects(putting, (e) => isCancellation(e), 'an aborted put rejects with a cancellation');
        await expectCleanAfterFailure(b, 'vol.difftar.gpg', ['keep']);
      });
    }

    it('does nothing for a put aborted before it starts', async () => {
      const b = await fresh();
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(b.put('x', bufferSource(Buffer.from('x')), { signal: ac.signal }), (e) => isCancellation(e));
      await expectCleanAfterFailure(b, 'x', []);
    });

    it('is atomic when the source stream fails midway, and reports the source error', async () => {
      const b = await fresh();
      await b.put('keep', bufferSource(Buffer.from('keep')));
      const src = gatedSource(randomBytes(300 * 1024), 100 * 1024);
      const boom = new Error('local disk read failed');
      const putting = b.put('vol.difftar.gpg', src);
      await Promise.race([src.reachedGate, putting]);
      src.release(boom);
      await assert.rejects(putting, (e: unknown) => {
        const err = e as Error;
        return err === boom || err.cause === boom || err.message.includes(boom.message);
      });
      await expectCleanAfterFailure(b, 'vol.difftar.gpg', ['keep']);
    });

    if (opts.makeLeftover) {
      const makeLeftover = opts.makeLeftover;
      it('cleanupPartial finds and removes the leftovers of a crashed put, never final names', async () => {
        const b = await fresh();
        await b.put('duplicity-full.20261126T131509Z.manifest.gpg', bufferSource(Buffer.from('m')));
        await b.put('a', bufferSource(Buffer.from('a')));
        const leftover = await makeLeftover(b);
        const finals = ['a', 'duplicity-full.20261126T131509Z.manifest.gpg'];
        assert.deepEqual(await listNames(b), finals, 'a leftover is listed');
        assert.deepEqual(await b.cleanupPartial({ dryRun: true }), [leftover]);
        assert.deepEqual(await b.cleanupPartial({ dryRun: true }), [leftover], 'dryRun removed something');
        assert.deepEqual(await b.cleanupPartial(), [leftover]);
        assert.deepEqual(await b.cleanupPartial(), []);
        assert.deepEqual(await listNames(b), finals);
      });

      // cleanup and backup pass `only` to leave alone what a backup running elsewhere may be writing.
      it('cleanupPartial({ only }) reports and removes only the leftovers named, and leaves the others', async () => {
        const b = await fresh();
        await b.put('a', bufferSource(Buffer.from('a')));
        const leftover = await makeLeftover(b);
        for (const only of [new Set<string>(), new Set(['a', `${leftover}x`])]) {
          assert.deepEqual(await b.cleanupPartial({ dryRun: true, only }), [], [...only].join());
          assert.deepEqual(await b.cleanupPartial({ only }), [], [...only].join());
        }
        assert.deepEqual(await listWithPartial(b), { finals: ['a'], partial: [leftover] }, 'the leftover not named stays');
        assert.deepEqual(await b.cleanupPartial({ dryRun: true, only: new Set([leftover]) }), [leftover]);
        assert.deepEqual(await b.cleanupPartial({ only: new Set([leftover, 'a']) }), [leftover]);
        assert.deepEqual(await listWithPartial(b), { finals: ['a'], partial: [] });
      });

      it('list({ partial: true }) reports the leftovers of a crashed put, marked partial, with the final names', async () => {
        const b = await fresh();
        await b.put('duplicity-full.20261126T131509Z.manifest.gpg', bufferSource(Buffer.from('m')));
        await b.put('a', bufferSource(Buffer.from('a')));
        const leftover = await makeLeftover(b);
        const finals = ['a', 'duplicity-full.20261126T131509Z.manifest.gpg'];
        const listed: BackendFileInfo[] = [];
        for await (const f of b.list({ partial: true })) listed.push(f);
        assert.deepEqual(listed.filter((f) => f.partial).map((f) => f.name), [leftover], 'the name cleanupPartial reports');
        assert.deepEqual(listed.filter((f) => !f.partial).map((f) => f.name).sort(), finals);
        for (const f of listed) assert.ok(f.partial === true || f.partial === undefined, `${f.name}: partial is true or absent`);
        assert.deepEqual(await listNames(b), finals, 'without the option, leftovers stay unlisted');
        await b.cleanupPartial();
        assert.deepEqual(await listWithPartial(b), { finals, partial: [] }, 'removed leftovers are not listed');
      });
    }

    it(`runs ${opts.concurrentPuts ?? 20} puts at once`, async () => {
      const b = await fresh();
      const n = opts.concurrentPuts ?? 20;
      const blobs = Array.from({ length: n }, (_, i) => randomBytes((i * 37 * 1024) % (300 * 1024)));
      await Promise.all(blobs.map((d, i) => b.put(`c${i}.bin`, bufferSource(d, 16 * 1024))));
      assert.deepEqual(await listNames(b), blobs.map((_, i) => `c${i}.bin`).sort());
      const got = await Promise.all(blobs.map((_, i) => getAll(b, `c${i}.bin`)));
      got.forEach((g, i) => assert.ok(g.equals(blobs[i]), `c${i}.bin differs`));
      assert.deepEqual(await b.cleanupPartial(), []);
    });

    it('serves concurrent gets of one name', async () => {
      const b = await fresh();
      const data = randomBytes(256 * 1024);
      await b.put('g', bufferSource(data));
      const got = await Promise.all(Array.from({ length: 8 }, (_, i) => getAll(b, 'g', { offset: i * 1000 })));
      got.forEach((g, i) => assert.ok(g.equals(data.subarray(i * 1000))));
    });

    it('rejects a source with more bytes than its size, leaving nothing', async () => {
      const b = await fresh();
      const data = randomBytes(100 * 1024);
      await assert.rejects(b.put('long', bufferSource(data, 16 * 1024, data.length - 1)), isNotTransient);
      await expectCleanAfterFailure(b, 'long', []);
    });

    it('rejects a source with fewer bytes than its size, leaving nothing', async () => {
      const b = await fresh();
      const data = randomBytes(100 * 1024);
      await assert.rejects(b.put('short', bufferSource(data, 16 * 1024, data.length + 1)), isNotTransient);
      await expectCleanAfterFailure(b, 'short', []);
      await assert.rejects(b.put('short0', bufferSource(Buffer.alloc(0), 1, 10)), isNotTransient);
      await expectCleanAfterFailure(b, 'short0', []);
    });

    it('stores every character duplicity uses in names', async () => {
      const b = await fresh();
      const long = ('duplicity-full.20261126T131509Z.' + 'x'.repeat(400)).slice(0, (opts.maxNameLength ?? 200) - 4) + '.gpg';
      const names = [...DUPLICITY_NAMES, long];
      for (const [i, n] of names.entries()) await b.put(n, bufferSource(Buffer.from(`${i}:${n}`)));
      assert.deepEqual(await listNames(b), [...names].sort());
      for (const [i, n] of names.entries()) {
        assert.equal((await getAll(b, n)).toString(), `${i}:${n}`);
        assert.equal((await b.stat(n)).size, Buffer.byteLength(`${i}:${n}`));
      }
      for (const n of names) await b.remove(n);
      assert.deepEqual(await listNames(b), []);
    });

    if (!cannot.has('abortGet')) {
      it('stops a get stream when its signal fires', async () => {
        const b = await fresh();
        await b.put('big', bufferSource(randomBytes(2 * 1024 * 1024)));
        const ac = new AbortController();
        const s = await b.get('big', { signal: ac.signal });
        let got = 0;
        await assert.rejects(
          (async () => {
            for await (const c of s) {
              got += (c as Buffer).length;
              if (got > 0) ac.abort();
            }
          })(),
          (e) => isCancellation(e),
        );
        assert.ok(got < 2 * 1024 * 1024, 'the whole stream was delivered after the abort');
      });

      it('refuses to start a get with an aborted signal', async () => {
        const b = await fresh();
        await b.put('x', bufferSource(Buffer.from('x')));
        const ac = new AbortController();
        ac.abort();
        await assert.rejects(getAll(b, 'x', { signal: ac.signal }), (e) => isCancellation(e));
      });
    }
  });
}
