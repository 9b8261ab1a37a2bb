import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BackendError } from '../../../src/engine/backend/backend';
import type { BlobSource } from '../../../src/engine/backend/backend';
import {
  FileBackend,
  classifyFsError,
  fileUrlPath,
  isPartialName,
  partialNameFor,
} from '../../../src/engine/backend/fileBackend';
import { openBackend, registerBackend, registeredSchemes } from '../../../src/engine/backend/registry';
import { FaultBackend } from '../../../src/engine/backend/faultBackend';
import { LimitBackend } from '../../../src/engine/backend/limitBackend';
import { MemoryBackend } from '../../../src/engine/backend/memoryBackend';
import { RetryBackend } from '../../../src/engine/backend/retryBackend';
import { OffsiteError } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { bufferSource, describeBackendConformance, expectKind, gatedSource, getAll, listNames } from './conformance';

describeBackendConformance('file', () => new FileBackend(path.join(tempDir(), 'remote', 'not-yet')), {
  makeLeftover: async (b) => {
    const dir = (b as FileBackend).displayUrl.slice('file://'.length);
    const name = partialNameFor('duplicity-full.20261126T131509Z.vol1.difftar.gpg');
    await fsp.writeFile(path.join(dir, name), randomBytes(1000), { mode: 0o600 });
    return name;
  },
});

function localFile(dir: string, data: Buffer, mode = 0o600): BlobSource & { localPath: string } {
  const p = path.join(dir, `src-${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(p, data, { mode });
  return { size: data.length, localPath: p, open: () => fs.createReadStream(p) };
}

describe('FileBackend', () => {
  it('creates the folder (0700) at the first put, writes 0600 files, leaves no temp', async () => {
    const root = tempDir();
    const dir = path.join(root, 'a', 'b');
    const b = new FileBackend(dir);
    assert.equal(b.displayUrl, `file://${dir}`);
    assert.deepEqual(await listNames(b), []);
    assert.equal(fs.existsSync(dir), false, 'list must not create the folder');
    await b.put('duplicity-full.20261126T131509Z.manifest', bufferSource(Buffer.from('m')));
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(fs.readdirSync(dir), ['duplicity-full.20261126T131509Z.manifest']);
    assert.equal(fs.statSync(path.join(dir, 'duplicity-full.20261126T131509Z.manifest')).mode & 0o777, 0o600);
    await b.put('duplicity-full.20261126T131509Z.manifest', bufferSource(Buffer.from('m2')), { overwrite: true });
    assert.equal(fs.statSync(path.join(dir, 'duplicity-full.20261126T131509Z.manifest')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, 'duplicity-full.20261126T131509Z.manifest')).nlink, 1);
    assert.deepEqual(fs.readdirSync(dir), ['duplicity-full.20261126T131509Z.manifest']);
  });

  it('copies a local file (copy_file_range path) as 0600, with size checks', async () => {
    const root = tempDir();
    const b = new FileBackend(path.join(root, 'remote'));
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const src = localFile(root, data, 0o644);
    let opened = 0;
    const progress: number[] = [];
    await b.put('v.gpg', { ...src, open: () => (opened++, src.open()) }, { onProgress: (n) => progress.push(n) });
    assert.equal(opened, 0, 'a localPath source is copied, not streamed');
    assert.deepEqual(progress, [data.length]);
    assert.ok((await getAll(b, 'v.gpg')).equals(data));
    assert.equal(fs.statSync(path.join(root, 'remote', 'v.gpg')).mode & 0o777, 0o600);
    await expectKind(b.put('v.gpg', src), 'exists');
    // The file grew or shrank after its size was taken: refused, nothing visible.
    for (const size of [data.length - 1, data.length + 1]) {
      await assert.rejects(b.put('w.gpg', { ...src, size }), (e) => OffsiteError.is(e, 'sourceChanged'));
      assert.deepEqual(await listNames(b), ['v.gpg']);
      assert.deepEqual(await b.cleanupPartial({ dryRun: true }), []);
    }
    // A missing local file is the caller's error (ENOENT of the source), not a remote 'notFound'.
    await assert.rejects(
      b.put('x.gpg', { size: 1, localPath: path.join(root, 'gone'), open: () => fs.createReadStream(path.join(root, 'gone')) }),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && !(e instanceof BackendError),
    );
  });

  it('hides and cleans the temp file of a put killed midway (a crash)', async function () {
    const root = tempDir();
    const dir = path.join(root, 'remote');
    const b = new FileBackend(dir);
    await b.put('keep', bufferSource(Buffer.from('keep')));
    const script = path.join(root, 'crash.ts');
    const modulePath = path.resolve(__dirname, '../../../src/engine/backend/fileBackend.ts');
    fs.writeFileSync(
      script,
      `import { Readable } from 'node:stream';
       import { FileBackend } from ${JSON.stringify(modulePath)};
       const b = new FileBackend(${JSON.stringify(dir)});
       let sent = 0;
       const open = () => new Readable({ read() {
         if (sent >= 3 * 1024 * 1024) { process.stdout.write('stalled\\n'); return; }
         sent += 1024 * 1024; this.push(Buffer.alloc(1024 * 1024, 7));
       } });
       void b.put('vol1.difftar.gpg', { size: 10 * 1024 * 1024, open });`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('stalled') && resolve());
      child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    // Wait until the first megabytes reached the temp file, then kill -9: no cleanup code runs.
    const temps = (): string[] => fs.readdirSync(dir).filter(isPartialName);
    for (let i = 0; i < 100 && (temps().length === 0 || fs.statSync(path.join(dir, temps()[0])).size === 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const left = temps();
    assert.equal(left.length, 1, 'the killed put left its temp file');
    assert.match(left[0], /^\.offsite-part-[0-9a-f]{12}-vol1\.difftar\.gpg$/);
    assert.equal(fs.statSync(path.join(dir, left[0])).mode & 0o777, 0o600);
    assert.deepEqual(await listNames(b), ['keep']);
    await expectKind(b.stat('vol1.difftar.gpg'), 'notFound');
    assert.deepEqual(await b.cleanupPartial({ dryRun: true }), left);
    assert.deepEqual(await b.cleanupPartial(), left);
    assert.deepEqual(fs.readdirSync(dir), ['keep']);
  });

  it("leaves another put's temp file alone while it runs", async () => {
    const b = new FileBackend(path.join(tempDir(), 'r'));
    const src = gatedSource(randomBytes(100_000), 50_000);
    const putting = b.put('busy', src);
    await src.reachedGate;
    assert.deepEqual(await b.cleanupPartial(), []);
    src.release();
    await putting;
    assert.equal((await b.stat('busy')).size, 100_000);
  });

  it('uses a short temp name when the final name is long', () => {
    const long = 'd'.repeat(250);
    assert.match(partialNameFor(long), /^\.offsite-part-[0-9a-f]{12}$/);
    assert.ok(isPartialName(partialNameFor('x')));
    assert.ok(!isPartialName('duplicity-full.20261126T131509Z.manifest'));
  });

  it('stores a 255-byte name', async () => {
    const b = new FileBackend(path.join(tempDir(), 'r'));
    const name = 'n'.repeat(255);
    await b.put(name, bufferSource(Buffer.from('x')));
    assert.deepEqual(await listNames(b), [name]);
  });

  it('refuses invalid and reserved names', async () => {
    const b = new FileBackend(path.join(tempDir(), 'r'));
    for (const name of ['', '.', '..', 'a/b', '../x', 'a\0b']) {
      await expectKind(b.put(name, bufferSource(Buffer.from('x'))), 'permanent');
      await expectKind(b.stat(name), 'permanent');
    }
    await expectKind(b.put('.offsite-part-1234', bufferSource(Buffer.from('x'))), 'permanent');
  });

  it('falls back to check-then-rename where hard links are not supported', async () => {
    const b = new FileBackend(path.join(tempDir(), 'r'));
    // The module object itself (the `import * as` namespace is read-only); the backend reads it per call.
    const mutable = require('node:fs/promises') as { link: typeof fsp.link };
    const realLink = mutable.link;
    let calls = 0;
    mutable.link = async () => {
      calls++;
      throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
    };
    try {
      // Two puts of one name that both passed the early check: the second must meet 'exists'.
      const first = gatedSource(Buffer.from('one'), 1);
      const second = gatedSource(Buffer.from('two'), 1);
      const p1 = b.put('a', first);
      const p2 = b.put('a', second);
      await Promise.all([first.reachedGate, second.reachedGate]);
      first.release();
      await p1;
      second.release();
      await expectKind(p2, 'exists');
      assert.equal((await getAll(b, 'a')).toString(), 'one');
      assert.deepEqual(await b.cleanupPartial({ dryRun: true }), []);
      assert.equal(calls, 2, 'the patched link() was used');
    } finally {
      mutable.link = realLink;
    }
  });

  it('reports a folder where a file should be, and lists only files', async () => {
    const dir = tempDir();
    const b = new FileBackend(dir);
    fs.mkdirSync(path.join(dir, 'sub.gpg'));
    await b.put('f', bufferSource(Buffer.from('f')));
    fs.symlinkSync(path.join(dir, 'f'), path.join(dir, 'link'));
    fs.symlinkSync(path.join(dir, 'missing'), path.join(dir, 'dangling'));
    assert.deepEqual(await listNames(b), ['f', 'link']);
    await expectKind(b.stat('sub.gpg'), 'permanent');
    await expectKind(getAll(b, 'sub.gpg'), 'permanent');
    await expectKind(b.put('sub.gpg', bufferSource(Buffer.from('x')), { overwrite: true }), 'permanent');
  });

  it('reports a remote path under a file as a permanent error', async () => {
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'file'), 'x');
    const b = new FileBackend(path.join(root, 'file', 'remote'));
    const e = await expectKind(b.put('a', bufferSource(Buffer.from('x'))), 'permanent');
    assert.match(e.message, /not a folder/);
    assert.ok(e.hint);
  });

  it('lists thousands of files, skipping temps', async () => {
    const dir = tempDir();
    const b = new FileBackend(dir);
    for (let i = 0; i < 1500; i++) fs.writeFileSync(path.join(dir, `f${i}`), Buffer.alloc(i % 7));
    fs.writeFileSync(path.join(dir, partialNameFor('f1')), 'tmp');
    const seen = new Map<string, number>();
    for await (const f of b.list()) seen.set(f.name, f.size);
    assert.equal(seen.size, 1500);
    assert.equal(seen.get('f1499'), 1499 % 7);
  });

  it('errors when the file shrinks while it is read', async () => {
    const dir = tempDir();
    const b = new FileBackend(dir);
    await b.put('v', bufferSource(randomBytes(4 * 1024 * 1024)));
    const s = await b.get('v');
    fs.truncateSync(path.join(dir, 'v'), 1000);
    await expectKind(
      (async () => {
        for await (const _ of s) void _;
      })(),
      'permanent',
    );
  });

  it('classifies errno values', () => {
    const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: x`), { code });
    const cases: Array<[string, string]> = [
      ['ENOENT', 'notFound'],
      ['EACCES', 'permission'],
      ['EPERM', 'permission'],
      ['EROFS', 'permission'],
      ['ENOSPC', 'noSpace'],
      ['EDQUOT', 'noSpace'],
      ['EIO', 'transient'],
      ['ETIMEDOUT', 'transient'],
      ['ESTALE', 'transient'],
      ['EAGAIN', 'transient'],
      ['EMFILE', 'transient'],
      ['ENOTDIR', 'permanent'],
      ['EINVAL', 'permanent'],
      ['EFBIG', 'permanent'],
    ];
    for (const [code, kind] of cases) {
      const e = classifyFsError(err(code), 'put', 'v.gpg', '/backups');
      assert.ok(e instanceof BackendError, code);
      assert.equal(e.kind, kind, code);
      assert.equal(e.op, 'put');
      assert.equal(e.file, 'v.gpg');
      assert.ok(e.message.includes('/backups'), `${code}: the message names the folder: ${e.message}`);
      assert.ok(e.hint && e.hint.length > 10, `${code}: a hint says what to do`);
      assert.equal((e.cause as Error).message, `${code}: x`);
    }
    assert.equal(classifyFsError(err('ENOSPC'), 'put', 'v.gpg', '/b').code, 'noSpace');
    assert.equal(classifyFsError(err('EACCES'), 'list', undefined, '/b').code, 'permission');
  });
});

describe('file:// URLs and the registry', () => {
  it('reads file URLs as duplicity does', () => {
    assert.equal(fileUrlPath('file:///abs/path'), '/abs/path');
    assert.equal(fileUrlPath('file://relative/path'), 'relative/path');
    assert.equal(fileUrlPath('file://rel'), 'rel');
    assert.equal(fileUrlPath('file:///with%20space/%C3%A9'), '/with space/é');
    assert.equal(fileUrlPath('file://Rel%20x/a%20b'), 'Rel%20x/a b');
    assert.equal(fileUrlPath('file:/abs'), '/abs');
    assert.equal(fileUrlPath('FILE:///x?query#frag'), '/x');
    for (const bad of ['file:rel', 'file://', 'file:', 'file:///%zz', 'http://x']) {
      assert.throws(() => fileUrlPath(bad), (e) => OffsiteError.is(e, 'usage'), bad);
    }
  });

  it('opens file:// URLs, absolute and relative (case kept)', async () => {
    const root = tempDir();
    const abs = (await openBackend(`file://${root}/My Backups`)) as FileBackend;
    assert.ok(abs instanceof FileBackend);
    assert.equal(abs.displayUrl, `file://${root}/My Backups`);
    await abs.put('x', bufferSource(Buffer.from('x')));
    assert.ok(fs.existsSync(path.join(root, 'My Backups', 'x')));
    const rel = await openBackend('file://Vault/sub', { options: { cwd: root } });
    assert.equal(rel.displayUrl, `file://${root}/Vault/sub`);
    const enc = await openBackend(`file://${root}/a%20b`);
    assert.equal(enc.displayUrl, `file://${root}/a b`);
  });

  it('refuses unknown schemes and non-URLs with usage errors', async () => {
    for (const url of ['gopher://host/x', '/plain/path', 'relative', 'C:\\backups', '']) {
      await assert.rejects(openBackend(url), (e) => OffsiteError.is(e, 'usage') && !!e.hint, url);
    }
    await assert.rejects(openBackend('zz://user:hunter2@host/x'), (e: Error) => !e.message.includes('hunter2'));
  });

  it('lets schemes register themselves and hands them the parsed and raw URL', async () => {
    let got: [string, string, unknown] | undefined;
    registerBackend('Test+Mem', async (url, ctx, raw) => {
      got = [url.hostname, raw, ctx.options?.flag];
      return new MemoryBackend();
    });
    assert.ok(registeredSchemes().includes('test+mem'));
    assert.ok(registeredSchemes().includes('file'));
    const b = await openBackend('TEST+MEM://Host.Example/p', { options: { flag: 1 } });
    assert.ok(b instanceof MemoryBackend);
    assert.deepEqual(got, ['Host.Example', 'TEST+MEM://Host.Example/p', 1]);
    await assert.rejects(openBackend('test+mem://[bad'), (e) => OffsiteError.is(e, 'usage'));
    assert.throws(() => registerBackend('no spaces', async () => new MemoryBackend()));
  });
});

describe('localPath (reading file:// files in place)', () => {
  it('gives the path of a name, through the wrappers unless faults concern get', async () => {
    const dir = tempDir();
    const file = new FileBackend(dir);
    await file.put('v.gpg', bufferSource(Buffer.from('data')));
    assert.equal(file.localPath('v.gpg'), path.join(dir, 'v.gpg'));
    assert.equal(fs.readFileSync(file.localPath('v.gpg')).toString(), 'data');
    assert.throws(() => file.localPath('../x'), (e) => BackendError.isKind(e, 'permanent'));
    assert.equal(new RetryBackend(new LimitBackend(file, 2)).localPath('v.gpg'), path.join(dir, 'v.gpg'));
    const fault = new FaultBackend(file, { rules: [{ op: 'put' }] });
    assert.equal(fault.localPath('v.gpg'), path.join(dir, 'v.gpg'));
    fault.setPlan({ rules: [{ op: ['stat', 'get'], action: 'cutStream', bytes: 1 }] });
    assert.equal(fault.localPath('v.gpg'), undefined);
    fault.setPlan({ random: { seed: 1, probability: 0.1 } });
    assert.equal(fault.localPath('v.gpg'), undefined);
    assert.equal(new RetryBackend(new MemoryBackend()).localPath('v.gpg'), undefined);
  });
});
