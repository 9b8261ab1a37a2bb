// The extension's engine client against the real engine process (dist/engineLauncher.js running
// dist/engineHost.js, as the extension starts it; built by test/setup.ts): requests run in a child
// process, progress and logs come back, errors are typed, cancelling stops the work, a dead engine is
// replaced on the next request, and the engine's compiled code is kept between processes.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient, EngineError, errorText, hintOf, isCancelled, isHeldElsewhere, needsRestoreKey, needsSignKey, type LogLevel } from '../../../src/extension/engineClient';
import type { Progress } from '../../../src/engine/progress';
import { BACKGROUND_NICE } from '../../../src/launch/priority';
import { REPO } from '../../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../../helpers/gpg';
import { tempDir } from '../../helpers/tmp';

const HOST = path.join(REPO, 'dist', 'engineLauncher.js');
const PROTECTED_PUB = path.resolve(__dirname, '../../fixtures/keys/protected-pub.asc');
const PROTECTED_SEC = path.resolve(__dirname, '../../fixtures/keys/protected-sec.asc');
const ENGINE_NICE = Math.max(BACKGROUND_NICE, os.getPriority());

function client(extra: Partial<ConstructorParameters<typeof EngineClient>[0]> = {}) {
  const root = tempDir('offsite-client-');
  const logs: [LogLevel, string][] = [];
  const c = new EngineClient({ hostScript: HOST, env: { ...process.env, XDG_CACHE_HOME: path.join(root, 'cache') }, log: (l, m) => logs.push([l, m]), ...extra });
  return { c, root, logs };
}

function tree(root: string, files: Record<string, string | Buffer>): string {
  const src = path.join(root, 'src');
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), data);
  }
  return src;
}

/** The nice value of each thread of a process (field 19 of /proc/PID/task/TID/stat). */
function threadNices(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      return []; // a thread that has ended since
    }
    return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
  });
}

function manifests(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.includes('.manifest')) : [];
}

describe('extension: EngineClient (real engine process)', () => {
  const open: EngineClient[] = [];
  afterEach(() => open.splice(0).forEach((c) => c.dispose()));

  it('starts no process until the first request, then runs requests in a child process', async () => {
    const { c } = client();
    open.push(c);
    assert.equal(c.pid, undefined);
    const t = await c.request({ op: 'parseTime', time: '2026-07-27T10:00:00Z' });
    assert.equal(t, Date.UTC(2026, 6, 27, 10) / 1000);
    assert.ok(c.pid && c.pid !== process.pid);
    assert.equal(c.startCount, 1);
    // With bin/offsite's memory flags, and the initial old generation it gives a backup (fewer full GCs).
    const argv = fs.readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').split('\0');
    for (const flag of ['--max-semi-space-size=2', '--initial-old-space-size=32', '--no-flush-bytecode']) assert.ok(argv.includes(flag), `${flag} in ${argv.join(' ')}`);
    // At a background priority (nice 10, or this process's nice value if that is higher), every
    // thread Node and V8 had started.
    const nices = threadNices(c.pid);
    assert.ok(nices.length > 3, `threads: ${nices.join(' ')}`);
    assert.deepEqual(new Set(nices), new Set([ENGINE_NICE]));
  });

  it('backs up with progress and engine logs, then reads the file back as of that backup', async () => {
    const { c, root, logs } = client();
    open.push(c);
    const src = tree(root, { 'a.txt': 'hello\n', 'd/b.txt': 'world\n' });
    const remote = { url: `file://${path.join(root, 'remote')}` };
    const progress: Progress[] = [];
    const r = await c.request({ op: 'backup', remote, keys: { encryptKeys: [RSA_PUB] }, source: src }, { onProgress: (p) => progress.push(p) });
    // The threads the backup started (the libuv threadpool's) inherited the background priority.
    assert.deepEqual(new Set(threadNices(c.pid!)), new Set([ENGINE_NICE]));
    assert.equal(r.type, 'full');
    assert.equal(r.stats.NewFiles, 4); // the root, a.txt, d, d/b.txt
    assert.ok(progress.length > 0 && progress.every((p) => p.operation === 'backup'));
    assert.equal(progress.at(-1)!.phase, 'done');
    assert.ok(logs.some(([, m]) => /engine request #\d+: backup/.test(m)), 'the client logs the operation (never the request itself)');
    const out = path.join(root, 'out.txt');
    const read = await c.request({ op: 'readFile', remote, keys: { restoreKey: RSA_SEC }, path: 'd/b.txt', time: r.time, output: out });
    assert.equal(read.found, true);
    assert.equal(fs.readFileSync(out, 'utf8'), 'world\n');
    const changes = await c.request({ op: 'changes', remote, keys: { restoreKey: RSA_SEC } });
    assert.deepEqual(changes.map((x) => [x.type, x.new, x.changed, x.deleted, x.files]), [['full', 2, 0, 0, undefined]], 'counts of every set (files only)');
    const one = await c.request({ op: 'changes', remote, keys: { restoreKey: RSA_SEC }, time: r.time });
    assert.deepEqual(one[0].files, [{ path: 'a.txt', action: 'new' }, { path: 'd/b.txt', action: 'new' }]);
  });

  it('lists one folder at a time (children, the set\'s deleted paths, pages), and runs and records a restore drill', async function () {
    this.timeout(60_000);
    const { c, root } = client();
    open.push(c);
    const src = tree(root, { 'a.txt': 'a\n', 'd/b.txt': 'b\n', 'd/gone.txt': 'bye\n', 'd/e/f.txt': 'f\n', 'z.txt': 'z\n' });
    const remote = { url: `file://${path.join(root, 'remote')}` };
    const keys = { encryptKeys: [RSA_PUB], restoreKey: RSA_SEC };
    await c.request({ op: 'backup', remote, keys, source: src });
    await new Promise((r) => setTimeout(r, 1100));
    fs.rmSync(path.join(src, 'd', 'gone.txt'));
    const inc = await c.request({ op: 'backup', remote, keys, source: src });
    const rows = (l: { path: string; type: string; deleted?: true }[]) => l.map((e) => `${e.path}:${e.type}${e.deleted ? ':deleted' : ''}`);
    assert.deepEqual(rows(await c.request({ op: 'list', remote, keys, time: inc.time, path: '', depth: 1, deleted: true })), ['a.txt:reg', 'd:dir', 'z.txt:reg']);
    assert.deepEqual(rows(await c.request({ op: 'list', remote, keys, time: inc.time, path: 'd', depth: 1, deleted: true })), ['d/b.txt:reg', 'd/e:dir', 'd/gone.txt:reg:deleted']);
    assert.deepEqual(rows(await c.request({ op: 'list', remote, keys, time: inc.time, path: 'd', depth: 1, deleted: true, limit: 2 })), ['d/b.txt:reg', 'd/e:dir']);
    assert.deepEqual(rows(await c.request({ op: 'list', remote, keys, time: inc.time, path: 'd', depth: 1, deleted: true, after: 'd/e' })), ['d/gone.txt:reg:deleted']);
    // Without the new fields: the whole listing with the root, as before.
    assert.deepEqual(rows(await c.request({ op: 'list', remote, keys, time: inc.time })), ['.:dir', 'a.txt:reg', 'd:dir', 'd/b.txt:reg', 'd/e:dir', 'd/e/f.txt:reg', 'z.txt:reg']);

    assert.equal(await c.request({ op: 'lastDrill', remote }), null, 'no drill yet');
    const d = await c.request({ op: 'drill', remote, keys, source: src, sample: 10 });
    assert.equal(d.ok, true);
    assert.equal(d.matched, 4);
    assert.equal(d.filesInBackup, 4);
    const last = await c.request({ op: 'lastDrill', remote });
    assert.ok(last && last.ok && last.matched === 4 && last.setTime === inc.time, JSON.stringify(last));
  });

  it('turns engine errors into typed EngineErrors with the engine\'s code and hint', async () => {
    const { c } = client();
    open.push(c);
    await assert.rejects(c.request({ op: 'status', remote: { url: 'nosuch://x' } }), (e: unknown) => {
      assert.ok(EngineError.is(e, 'usage'));
      assert.match(e.message, /Unknown kind of remote/);
      assert.match(e.hint ?? '', /Supported remotes/);
      return true;
    });
    await assert.rejects(c.request({ op: 'parseTime', time: 'yesterday-ish' }), (e: unknown) => EngineError.is(e) && !isCancelled(e));
  });

  it('keeps which input an engine error is about (needs) across the process boundary', async () => {
    const { c, root } = client();
    open.push(c);
    const src = tree(root, { 'a.txt': 'a\n' });
    const remote = { url: `file://${path.join(root, 'remote')}` };
    const r = await c.request({ op: 'backup', remote, keys: { encryptKeys: [PROTECTED_PUB] }, source: src });
    const read = (keys: { restoreKey?: string; passphrase?: string }, time = r.time) => c.request({ op: 'readFile', remote, keys, path: 'a.txt', time, output: path.join(root, 'out') });
    const needs = async (p: Promise<unknown>, code: string, want: unknown) =>
      assert.rejects(p, (e: unknown) => {
        assert.ok(EngineError.is(e, code), String(e));
        assert.deepEqual(e.needs, want, e.message);
        return true;
      });
    await needs(read({ restoreKey: PROTECTED_SEC, passphrase: 'not it' }), 'passphrase', { input: 'passphrase', wrong: true });
    await needs(read({ restoreKey: PROTECTED_SEC }), 'passphrase', { input: 'passphrase', wrong: false });
    await needs(read({}), 'key', { input: 'secretKey', wrong: false });
    await needs(read({ restoreKey: RSA_SEC }), 'decrypt', { input: 'secretKey', wrong: true });
    // A time before the first backup: a later one is what it takes.
    await needs(read({}, r.time - 86400), 'notFound', { input: 'laterTime', wrong: true });
    await assert.rejects(c.request({ op: 'status', remote: { url: 'nosuch://x' } }), (e: unknown) => EngineError.is(e, 'usage') && e.needs === undefined);
  });

  it('cancels through the protocol: the backup stops and leaves no set', async function () {
    this.timeout(120_000);
    const { c, root } = client();
    open.push(c);
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 8; i++) files[`blob${i}.bin`] = crypto.randomBytes(8 * 1024 * 1024);
    const src = tree(root, files);
    const remoteDir = path.join(root, 'remote');
    const ac = new AbortController();
    const started = Date.now();
    const p = c.request({ op: 'backup', remote: { url: `file://${remoteDir}` }, keys: { encryptKeys: [RSA_PUB] }, source: src, volumeSizeMB: 2 }, { signal: ac.signal, onProgress: (x) => x.files > 0 && ac.abort() });
    await assert.rejects(p, (e: unknown) => isCancelled(e));
    assert.ok(Date.now() - started < 60_000);
    assert.deepEqual(manifests(remoteDir), [], 'no manifest: no set');
    // The engine is still usable after a cancel.
    assert.equal(typeof (await c.request({ op: 'parseTime', time: '1D' })), 'number');
  });

  it('replaces a dead engine process on the next request, and fails the requests it was running', async () => {
    const { c, root } = client();
    open.push(c);
    await c.request({ op: 'parseTime', time: 'now' });
    const first = c.pid!;
    const src = tree(root, { 'big.bin': crypto.randomBytes(32 * 1024 * 1024) });
    const running = c.request({ op: 'backup', remote: { url: `file://${path.join(root, 'r')}` }, keys: { encryptKeys: [RSA_PUB] }, source: src });
    process.kill(first, 'SIGKILL');
    await assert.rejects(running, (e: unknown) => EngineError.is(e, 'internal') && /stopped unexpectedly/.test(e.message));
    await c.request({ op: 'parseTime', time: 'now' });
    assert.ok(c.pid && c.pid !== first);
    assert.equal(c.startCount, 2);
  });

  it('keeps the lower priority an engine was started with (nice 15 stays 15)', async () => {
    // The editor itself may run niced: the engine's nice value is raised to 10, never lowered. (Only
    // root may lower it: run unprivileged, a lowering attempt fails anyway and this cannot tell.)
    const root = tempDir('offsite-nice-');
    const niced = path.join(root, 'node-niced');
    fs.writeFileSync(niced, `#!/bin/sh\nexec nice -n 15 ${JSON.stringify(process.execPath)} "$@"\n`, { mode: 0o700 });
    const { c } = client({ execPath: niced });
    open.push(c);
    assert.equal(await c.request({ op: 'parseTime', time: '2026-07-27T10:00:00Z' }), Date.UTC(2026, 6, 27, 10) / 1000);
    assert.deepEqual(new Set(threadNices(c.pid!)), new Set([Math.max(15, os.getPriority())]));
  });

  it('stops an idle engine, and a disposed client refuses new requests', async () => {
    const { c } = client({ idleTimeoutMs: 100 });
    await c.request({ op: 'parseTime', time: 'now' });
    const pid = c.pid!;
    for (let i = 0; i < 100 && c.pid !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.pid, undefined, 'stopped after being idle');
    for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(isAlive(pid), false, 'the process is gone');
    c.dispose();
    await assert.rejects(c.request({ op: 'parseTime', time: 'now' }), (e: unknown) => isCancelled(e));
  });

  it("keeps the engine's compiled code between processes, with the code of every kind of request it served", async () => {
    const root = tempDir('offsite-client-');
    const xdg = path.join(root, 'cache');
    const logs: string[] = [];
    const start = () => new EngineClient({ hostScript: HOST, env: { ...process.env, XDG_CACHE_HOME: xdg, NODE_DEBUG: 'offsite' }, idleTimeoutMs: 100, log: (_l, m) => logs.push(m) });
    const dir = path.join(xdg, 'offsite', 'code-cache');
    const stopped = async (c: EngineClient) => {
      const pid = c.pid!;
      for (let i = 0; i < 200 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(isAlive(pid), false, 'the idle engine is gone');
    };
    /** The engine bundle's cache file (and, once a key was read, openpgp.js's bundle's). */
    const firstLine = (vendors: string[] = []) => {
      const names = fs.readdirSync(dir).sort();
      assert.equal(names.length, 1 + vendors.length, names.join(', '));
      assert.match(names[0], /^engineHost-[0-9a-f]{32}-v[\d.]+-\w+\.bin$/);
      vendors.forEach((v, i) => assert.match(names[1 + i], new RegExp(`^${v}-[0-9a-f]{32}-v[\\d.]+-\\w+\\.bin$`)));
      for (const n of names) assert.equal(fs.statSync(path.join(dir, n)).mode & 0o777, 0o600);
      const b = fs.readFileSync(path.join(dir, names[0]));
      return b.toString('latin1', 0, b.indexOf(0x0a));
    };

    let c = start();
    await c.request({ op: 'parseTime', time: 'now' });
    await stopped(c);
    c.dispose();
    assert.ok(logs.some((m) => /code cache .*: none/.test(m)), logs.join('\n'));
    assert.equal(firstLine(), 'offsite-code-cache 1 parseTime');

    logs.length = 0;
    c = start();
    const src = tree(root, { 'a.txt': 'hello\n' });
    const r = await c.request({ op: 'backup', remote: { url: `file://${path.join(root, 'remote')}` }, keys: { encryptKeys: [RSA_PUB] }, source: src });
    assert.equal(r.type, 'full');
    assert.equal(r.probed, false);
    await stopped(c);
    c.dispose();
    assert.ok(logs.some((m) => /code cache .*: used/.test(m)), logs.join('\n'));
    assert.equal(firstLine(['vendor-openpgp']), 'offsite-code-cache 1 parseTime backup:full');
  });

  it('says an error with its hint (the extension\'s way for an input it takes otherwise than the CLI), and tells a run held elsewhere (busy here, locked by another) from a failure', () => {
    assert.equal(errorText(new EngineError({ code: 'unreachable', message: 'No route to host', hint: 'Check the network' })), 'No route to host. Check the network');
    assert.equal(errorText(new EngineError({ code: 'internal', message: 'Boom' })), 'Boom');
    assert.equal(errorText(new Error('plain')), 'plain');
    assert.equal(errorText('text'), 'text');
    // The engine's hints speak the CLI's options: where the error says (needs) which input it takes, the
    // extension says its own way, whatever the hint's words; other hints are kept, --time or not.
    const tooEarly = { code: 'notFound', message: 'No backup as old as 2001-01-01', needs: { input: 'laterTime', wrong: true } } as const;
    assert.equal(errorText(new EngineError({ ...tooEarly, hint: 'Give a later --time' })), 'No backup as old as 2001-01-01. Pick a later date or time');
    assert.equal(hintOf(new EngineError({ ...tooEarly, hint: 'Choose a later time' })), 'Pick a later date or time');
    const damaged = new EngineError({ code: 'integrity', message: 'The manifest x lists no volume', hint: 'restore as of another time (--time)' });
    assert.equal(hintOf(damaged), 'restore as of another time (--time)');
    const noKey = { code: 'key', message: 'The private key is needed to read the backup', needs: { input: 'secretKey', wrong: false } } as const;
    assert.equal(errorText(new EngineError({ ...noKey, hint: 'Pass --key KEY' })), 'The private key is needed to read the backup. Set offsite.restoreKey to your private key file (or its gpg key id)');
    assert.equal(hintOf(new EngineError({ ...noKey, hint: 'Name your secret key' })), 'Set offsite.restoreKey to your private key file (or its gpg key id)');
    assert.ok(needsRestoreKey(new EngineError({ ...noKey, code: 'decrypt' })), 'no secret key given, whatever the code');
    // A key given but not the right one, an encryption key file not there, a key that cannot be unlocked: their own hint, no restoreKey.
    const wrongKey = new EngineError({ code: 'decrypt', message: 'No secret key for this file', hint: 'Give the secret key of X', needs: { input: 'secretKey', wrong: true } });
    assert.equal(hintOf(wrongKey), 'Give the secret key of X');
    assert.equal(needsRestoreKey(wrongKey), false);
    assert.equal(hintOf(new EngineError({ code: 'key', message: 'The key file k.asc does not exist', hint: 'Check the path of the key file' })), 'Check the path of the key file');
    // No signature by the key set to check them with: the hint names offsite.signKey, not the CLI's --sign-key.
    const unsigned = new EngineError({ code: 'signature', message: 'The file is not signed, but a signature is required', hint: 'Do not trust it. Check --sign-key', needs: { input: 'signKey', wrong: true } });
    assert.equal(errorText(unsigned), 'The file is not signed, but a signature is required. Do not trust it: someone other than the signer you set may have written it. Check the offsite.signKey setting');
    assert.equal(needsSignKey(unsigned), true);
    assert.equal(needsRestoreKey(unsigned), false);
    const badSignature = new EngineError({ code: 'signature', message: 'Bad signature by key X', hint: 'The data was changed after it was signed; do not trust this file' });
    assert.equal(hintOf(badSignature), 'The data was changed after it was signed; do not trust this file');
    assert.equal(needsSignKey(badSignature), false);
    const locked = new EngineError({ code: 'key', message: 'Cannot unlock the key X: bad data' });
    assert.equal(errorText(locked), 'Cannot unlock the key X: bad data');
    assert.equal(needsRestoreKey(locked), false);
    assert.equal(isHeldElsewhere(new EngineError({ code: 'busy', message: 'running' })), true);
    assert.equal(isHeldElsewhere(new EngineError({ code: 'locked', message: 'cron has it' })), true);
    assert.equal(isHeldElsewhere(new EngineError({ code: 'unreachable', message: 'down' })), false);
    assert.equal(isHeldElsewhere(new Error('locked')), false);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
