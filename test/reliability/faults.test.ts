// Suite 2, faults: backups and restores through the fault-injecting backend wrapper (errors, short
// writes, lost replies, streams cut midway, delays, on put/get/list/stat/remove) under the retrying
// wrapper the CLI uses, and over SFTP through a TCP proxy that cuts and stalls connections. Transient
// faults are retried and every set restores identically; a fault that does not go away fails with a
// clear error naming the operation and the file; nothing is lost: no partial file under a final name,
// earlier sets still restore, and the next backup completes.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../../src/engine/backend/backend';
import { BackendError } from '../../src/engine/backend/backend';
import { FaultBackend, type FaultPlan, type FaultRule } from '../../src/engine/backend/faultBackend';
import { MemoryBackend } from '../../src/engine/backend/memoryBackend';
import { RetryBackend } from '../../src/engine/backend/retryBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { OffsiteError } from '../../src/engine/errors';
import { MemoryLogger } from '../../src/engine/log';
import { backup } from '../../src/engine/ops/backup';
import { readCheckpoint } from '../../src/engine/ops/checkpoint';
import { offsite, type RunResult } from '../helpers/cli';
import { startFaultProxy, type FaultProxy } from '../helpers/faultProxy';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { makeTree, randomBytesSeeded, snapshotTree, type TreeEntry } from '../helpers/tree';
import { serverFiles, startFixture, type SftpFixture } from '../unit/backend/sftp/sftpFixture';
import { figuresOf, runCase, suiteSeed } from './figures';
import { between, decryptWhole, restoredTree, rng, rsaCrypto } from './support';

const SUITE = '2 faults';
const RANDOM_CASES = 16;
/** Fake set times (ms), before the real clock so a restore "as of now" covers them. */
const T1 = 1_700_000_000_000;
const T2 = T1 + 3_600_000;

interface Trees {
  src: string;
  a: TreeEntry[];
  b: TreeEntry[];
}

/** A source in state A; `toB()` edits it into state B. */
function makeSource(seed: number): { src: string; toB: () => void } {
  const src = path.join(tempDir('offsite-faults-'), 'src');
  const notes: Record<string, string> = {};
  for (let i = 0; i < 15; i++) notes[`n${i}.txt`] = `note ${i} of seed ${seed}\n`.repeat(i * 7 + 1);
  makeTree(src, { notes, 'a.bin': randomBytesSeeded(450_000, seed), sub: { 'b.bin': randomBytesSeeded(250_000, seed + 1), l: { symlink: '../notes/n1.txt' } } });
  return {
    src,
    toB: () => {
      const fd = fs.openSync(path.join(src, 'a.bin'), 'r+');
      fs.writeSync(fd, Buffer.from(`edit ${seed}`), 0, 8, 200_000);
      fs.closeSync(fd);
      fs.rmSync(path.join(src, 'notes', 'n2.txt'));
      fs.writeFileSync(path.join(src, 'notes', 'n3.txt'), 'rewritten\n');
      fs.writeFileSync(path.join(src, 'new.bin'), randomBytesSeeded(300_000, seed + 2));
    },
  };
}

/** Every file under a final name decrypts whole: no partial file was ever published. */
async function assertNoPartialFinals(memory: MemoryBackend): Promise<void> {
  const dir = tempDir('offsite-faults-check-');
  for (const n of memory.names()) {
    const f = path.join(dir, n);
    fs.writeFileSync(f, memory.raw(n));
    await decryptWhole(f).catch((e) => assert.fail(`${n} is not whole: ${(e as Error).message}`));
    fs.rmSync(f);
  }
}

function retrying(inner: Backend, retries: { n: number }): RetryBackend {
  return new RetryBackend(inner, { attempts: 8, baseDelayMs: 1, maxDelayMs: 5, onRetry: () => retries.n++ });
}

async function runBackup(backend: Backend, archive: ArchiveDir, src: string, nowMs: number) {
  return backup({ source: src, backend, archive, crypto: await rsaCrypto(), log: new MemoryLogger(), volumeSize: 128 * 1024, now: () => nowMs });
}

describe(`reliability ${SUITE}: fault-injecting backend`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(SUITE);

  it(`${RANDOM_CASES} seeded runs with random transient faults on every operation: retried, every set restores identically`, async () => {
    const r = rng(seed);
    const retries = { n: 0 };
    let injected = 0;
    for (let i = 0; i < RANDOM_CASES; i++) {
      const caseSeed = Math.floor(r() * 2 ** 31);
      await runCase(SUITE, `random faults #${i}`, caseSeed, async () => {
        const cr = rng(caseSeed);
        const memory = new MemoryBackend();
        // A few targeted faults of each kind, plus random transient errors before any call.
        const rules: FaultRule[] = [
          { op: 'put', action: 'shortWrite', bytes: between(cr, 0, 100_000), calls: [between(cr, 1, 6)], times: 1 },
          { op: 'put', action: 'lostReply', calls: [between(cr, 1, 8)], times: 1 },
          { op: 'get', action: 'cutStream', bytes: between(cr, 0, 60_000), calls: [between(cr, 1, 4)], times: 1 },
          { op: 'list', action: 'cutStream', items: between(cr, 0, 5), calls: [between(cr, 1, 3)], times: 1 },
          { op: ['put', 'get'], action: 'delay', delayMs: between(cr, 1, 30), calls: [between(cr, 1, 6)] },
        ];
        const plan: FaultPlan = { rules, random: { seed: caseSeed, probability: 0.12, kinds: ['transient'] } };
        const faulty = new FaultBackend(memory, plan);
        const backend = retrying(faulty, retries);
        const { src, toB } = makeSource(caseSeed);
        const archive = ArchiveDir.open(path.join(tempDir('offsite-faults-cache-'), 'c'));
        const trees: Partial<Trees> = { src, a: snapshotTree(src) };
        await runBackup(backend, archive, src, T1);
        toB();
        trees.b = snapshotTree(src);
        const inc = await runBackup(backend, archive, src, T2);
        assert.equal(inc.type, 'inc');
        assert.deepEqual(await restoredTree(backend, T1 / 1000), trees.a, 'the full set restores (through faults)');
        assert.deepEqual(await restoredTree(backend, T2 / 1000), trees.b, 'the incremental restores (through faults)');
        await assertNoPartialFinals(memory);
        injected += faulty.calls.filter((c) => c.fault).length;
        fs.rmSync(path.dirname(src), { recursive: true, force: true });
      });
    }
    figuresOf(SUITE).notes.push(`${injected} faults injected, ${retries.n} retries in the random runs`);
    assert.ok(injected >= RANDOM_CASES * 4, `faults were injected (${injected})`);
    assert.ok(retries.n > 0, 'retries happened');
  });

  it('regressions: a lost reply whose checking stat fails once; volume downloads cut midway', async () => {
    await runCase(SUITE, 'lost reply, then a transient stat fault', undefined, async () => {
      // The put lands but its answer is lost; the retry meets 'exists' and stats the file to see whether
      // it is ours, and that stat fails once: this used to end the backup with "already exists".
      const memory = new MemoryBackend();
      const faulty = new FaultBackend(memory, { rules: [{ op: 'put', action: 'lostReply', calls: [1] }, { op: 'stat', calls: [1] }] });
      const { src } = makeSource(seed + 3);
      await runBackup(retrying(faulty, { n: 0 }), ArchiveDir.open(path.join(tempDir(), 'c')), src, T1);
      assert.ok(faulty.calls.some((c) => c.op === 'stat' && c.fault), 'the stat fault fired');
      assert.deepEqual(await restoredTree(memory), snapshotTree(src));
    });
    await runCase(SUITE, 'downloads cut midway', undefined, async () => {
      // A retrying backend retries opening a stream, not one that breaks midway: the reader must.
      const memory = new MemoryBackend();
      const { src } = makeSource(seed + 4);
      await runBackup(memory, ArchiveDir.open(path.join(tempDir(), 'c')), src, T1);
      const faulty = new FaultBackend(memory, { rules: [{ op: 'get', name: /\.vol[12]\./, action: 'cutStream', bytes: 1000, times: 3 }] });
      assert.deepEqual(await restoredTree(retrying(faulty, { n: 0 })), snapshotTree(src));
      assert.equal(faulty.calls.filter((c) => c.fault).length, 3);
    });
  });

  describe('faults that do not go away: a clear error, nothing lost, the next backup completes', () => {
    interface FinalCase {
      readonly name: string;
      readonly plan: FaultPlan;
      /** What the error must say. */
      readonly expect: { code: string; message: RegExp };
    }
    const cases: FinalCase[] = [
      { name: 'a volume upload refused for good (permission)', plan: { rules: [{ op: 'put', name: /\.vol3\./, kind: 'permission' }] }, expect: { code: 'permission', message: /vol3\.difftar\.gpg/ } },
      { name: 'a volume upload failing transiently every time', plan: { rules: [{ op: 'put', name: /\.vol2\./, kind: 'transient' }] }, expect: { code: 'unreachable', message: /vol2\.difftar\.gpg/ } },
      { name: 'the signature upload failing for good', plan: { rules: [{ op: 'put', name: /signatures/, kind: 'permanent' }] }, expect: { code: 'unreachable', message: /signatures\..*\.sigtar\.gpg/ } },
      { name: 'the manifest upload failing for good', plan: { rules: [{ op: 'put', name: /manifest/, kind: 'permanent' }] }, expect: { code: 'unreachable', message: /manifest\.gpg/ } },
      { name: 'the remote full after 100 kB', plan: { noSpaceAfterBytes: 100_000 }, expect: { code: 'noSpace', message: /no space/i } },
      { name: 'a short write of a volume that fails for good', plan: { rules: [{ op: 'put', name: /\.vol1\./, action: 'shortWrite', bytes: 5000, kind: 'permanent' }] }, expect: { code: 'unreachable', message: /vol1\.difftar\.gpg/ } },
      { name: 'the listing refused (auth)', plan: { rules: [{ op: 'list', kind: 'auth' }] }, expect: { code: 'auth', message: /list/ } },
    ];
    for (const c of cases) {
      it(`incremental backup with ${c.name}`, async () => {
        await runCase(SUITE, c.name, undefined, async () => {
          const memory = new MemoryBackend();
          const { src, toB } = makeSource(seed);
          const archive = ArchiveDir.open(path.join(tempDir('offsite-faults-cache-'), 'c'));
          const a = snapshotTree(src);
          await runBackup(memory, archive, src, T1);
          toB();
          const b = snapshotTree(src);
          const faulty = new FaultBackend(memory, c.plan);
          const err = await runBackup(retrying(faulty, { n: 0 }), archive, src, T2).then(
            () => assert.fail('the backup should fail'),
            (e: unknown) => e,
          );
          assert.ok(err instanceof OffsiteError, `a typed error, got ${String(err)}`);
          assert.equal(err.code, c.expect.code, err.message);
          assert.match(err.message, c.expect.message);
          assert.doesNotMatch(err.message, /undefined|\[object/);
          // Nothing lost: the earlier set restores, nothing partial is published, the next run completes.
          await assertNoPartialFinals(memory);
          assert.deepEqual(await restoredTree(memory, T1 / 1000), a);
          const again = await runBackup(memory, archive, src, T2 + 10_000);
          assert.deepEqual(await restoredTree(memory), b);
          assert.equal(readCheckpoint(archive), undefined);
          const sets = memory.names().filter((n) => /manifest/.test(n));
          assert.equal(sets.length, 2, `two complete sets: ${memory.names().join(' ')}`);
          assert.ok(again.type === 'inc', 'still one chain');
          assert.deepEqual(memory.partialNames(), [], 'temporaries of the failed run are gone');
        });
      });
    }

    it('a manifest that landed although its upload reported failure: the next backup sees a complete set and removes the temporaries', async () => {
      await runCase(SUITE, 'manifest landed, reply lost for good', undefined, async () => {
        const memory = new MemoryBackend();
        const { src, toB } = makeSource(seed + 5);
        const archive = ArchiveDir.open(path.join(tempDir('offsite-faults-cache-'), 'c'));
        await runBackup(memory, archive, src, T1);
        toB();
        // A short write (retried) leaves a temporary upload; the manifest lands but its reply is lost.
        const faulty = new FaultBackend(memory, { rules: [{ op: 'put', name: /\.vol1\./, action: 'shortWrite', bytes: 3000, times: 1 }, { op: 'put', name: /manifest/, action: 'lostReply', kind: 'permanent' }] });
        await assert.rejects(runBackup(retrying(faulty, { n: 0 }), archive, src, T2), (e: unknown) => OffsiteError.is(e) && /manifest/.test((e as Error).message));
        assert.ok(memory.partialNames().length > 0, 'a temporary upload was left');
        await runBackup(memory, archive, src, T2 + 10_000);
        assert.deepEqual(memory.partialNames(), [], 'the next backup removed it');
        assert.equal(readCheckpoint(archive), undefined);
        assert.deepEqual(await restoredTree(memory, T2 / 1000), snapshotTree(src));
      });
    });

    it('a restore whose volume cannot be read: a clear error naming the file, and nothing half-written in the target', async () => {
      await runCase(SUITE, 'restore with a volume download failing for good', undefined, async () => {
        const memory = new MemoryBackend();
        const { src } = makeSource(seed + 7);
        await runBackup(memory, ArchiveDir.open(path.join(tempDir(), 'c')), src, T1);
        const faulty = new FaultBackend(memory, { rules: [{ op: 'get', name: /\.vol2\./, kind: 'transient' }] });
        const err = await restoredTree(retrying(faulty, { n: 0 })).then(
          () => assert.fail('the restore should fail'),
          (e: unknown) => e,
        );
        assert.ok(BackendError.isKind(err, 'transient'), String(err));
        assert.match((err as Error).message, /vol2\.difftar\.gpg/);
        assert.ok(faulty.count('get') >= 8, `retried (${faulty.count('get')} gets)`);
      });
    });
  });
});

describe(`reliability ${SUITE}: SFTP through a proxy that cuts and stalls connections`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(`${SUITE} sftp`);
  let fx: SftpFixture;
  let proxy: FaultProxy;
  let cache: string;

  before(async () => {
    fx = await startFixture();
    proxy = await startFaultProxy(fx.sshd.port);
    fs.appendFileSync(fx.knownHosts, fx.sshd.knownHostsLines(`[127.0.0.1]:${proxy.port}`).join('\n') + '\n');
    cache = tempDir('offsite-faults-sftp-cache-');
  });
  after(async () => {
    await proxy?.close();
    await fx?.sshd.stop();
  });

  function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return offsite(['--archive-dir', cache, '--ssh-key', fx.sshd.userKey.file, ...args], { env: { HOME: fx.home, SSH_AUTH_SOCK: '', TZ: 'UTC', ...env } });
  }

  it('backups and restores complete through cut connections (seeded cut points, both directions)', async () => {
    const r = rng(seed);
    const { src, toB } = makeSource(seed);
    fs.writeFileSync(path.join(src, 'big.bin'), randomBytesSeeded(1_500_000, seed + 9));
    const { dir } = fx.freshRemote();
    const url = `sftp://${fx.sshd.user}@127.0.0.1:${proxy.port}/${dir}`;
    const struck = proxy.struck;
    const cutUp = between(r, 200_000, 1_200_000);
    await runCase(SUITE, `sftp full backup, uploads cut after ${cutUp} bytes`, seed, async () => {
      proxy.inject({ kind: 'cut', direction: 'up', afterBytes: cutUp }, 2);
      const b = await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
      proxy.clear();
      assert.equal(b.code, 0, b.stderr);
    });
    const a = snapshotTree(src);
    const t1 = Math.floor(Date.now() / 1000);
    await new Promise((res) => setTimeout(res, 1100));
    toB();
    const cutUp2 = between(r, 100_000, 600_000);
    await runCase(SUITE, `sftp incremental, uploads cut after ${cutUp2} bytes`, seed, async () => {
      proxy.inject({ kind: 'cut', direction: 'up', afterBytes: cutUp2 }, 2);
      const b = await cli(['backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, url]);
      proxy.clear();
      assert.equal(b.code, 0, b.stderr);
    });
    const bTree = snapshotTree(src);
    for (const [label, time, expected] of [['the full set', t1, a], ['the incremental', undefined, bTree]] as const) {
      const cutDown = between(r, 50_000, 1_000_000);
      await runCase(SUITE, `sftp restore of ${label}, downloads cut after ${cutDown} bytes`, seed, async () => {
        const out = path.join(tempDir('offsite-faults-out-'), 'out');
        proxy.inject({ kind: 'cut', direction: 'down', afterBytes: cutDown }, 2);
        const res = await cli(['restore', '--key', RSA_SEC, ...(time ? ['--time', String(time)] : []), url, out]);
        proxy.clear();
        assert.equal(res.code, 0, res.stderr);
        assert.deepEqual(snapshotTree(out), expected);
      });
    }
    assert.ok(proxy.struck > struck, 'the proxy cut connections');
    assert.deepEqual(serverFiles(dir).filter((n) => !n.startsWith('duplicity-')), [], 'no temporary files left on the server');
  });

  it('a connection that stalls is given up after the timeout and retried: the backup completes and both sets restore', async () => {
    await runCase(SUITE, 'sftp stalled upload, then retried', undefined, async () => {
      const { src, toB } = makeSource(seed + 1);
      const { dir } = fx.freshRemote();
      const url = `sftp://${fx.sshd.user}@127.0.0.1:${proxy.port}/${dir}`;
      const first = await cli(['backup', '--encrypt-key', RSA_PUB, src, url]);
      assert.equal(first.code, 0, first.stderr);
      const a = snapshotTree(src);
      const t1 = Math.floor(Date.now() / 1000);
      await new Promise((res) => setTimeout(res, 1100));
      toB();
      // (A stall that never ends is test/cli/sftp.test.ts's case: a clear error instead of a hang.)
      const struck = proxy.struck;
      proxy.inject({ kind: 'stall', direction: 'up', afterBytes: 150_000 }, 1);
      const next = await cli(['backup', '--encrypt-key', RSA_PUB, src, url], { OFFSITE_SSH_TIMEOUT_MS: '1500' });
      proxy.clear();
      assert.equal(next.code, 0, next.stderr);
      assert.equal(proxy.struck, struck + 1, 'the upload stalled once');
      assert.match(next.stderr, /retrying|resuming/);
      for (const [time, expected] of [[t1, a], [undefined, snapshotTree(src)]] as const) {
        const out = path.join(tempDir('offsite-faults-out-'), 'out');
        const res = await cli(['restore', '--key', RSA_SEC, ...(time ? ['--time', String(time)] : []), url, out]);
        assert.equal(res.code, 0, res.stderr);
        assert.deepEqual(snapshotTree(out), expected);
      }
      assert.deepEqual(serverFiles(dir).filter((n) => !n.startsWith('duplicity-')), [], 'no temporary files left on the server');
    });
  });
});
