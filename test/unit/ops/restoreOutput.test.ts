// FilesystemOutput, writing on this thread and in its worker thread: the result must be exactly the
// archive's tree (contents delivered in pieces from a reused buffer, modes, mtimes), read-only folders
// filled before they get their mode, no temporary file left, a path given twice refused (or, with
// force, its last version), nothing written through a symlink member; from the worker, errors arrive
// as they were thrown (kind, code, hint) and nothing after them is written.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffsiteError } from '../../../src/engine/errors';
import { MemoryLogger } from '../../../src/engine/log';
import { FilesystemOutput } from '../../../src/engine/ops/restoreOutput';
import type { Restorable, Refusal } from '../../../src/engine/ops/setReader';
import type { EntryMeta, PathIndex } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';

const idx = (p: string): PathIndex => (p === '' ? [] : p.split('/').map((c) => Buffer.from(c)));
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

function meta(type: EntryMeta['type'], mode: number, mtime: number): EntryMeta {
  return { type, mode, uid, gid, uname: '', gname: '', mtime };
}

function file(p: string, data: Buffer, mode = 0o644, mtime = 1_600_000_000): Restorable {
  return {
    index: idx(p),
    meta: meta('reg', mode, mtime),
    // Delivered in pieces from one reused buffer, as a decrypting reader may do.
    produce: async (write) => {
      const scratch = Buffer.alloc(1000);
      for (let o = 0; o < data.length; o += scratch.length) {
        const n = data.copy(scratch, 0, o, Math.min(o + scratch.length, data.length));
        await write(scratch.subarray(0, n));
      }
    },
  };
}

const dir = (p: string, mode = 0o755, mtime = 1_500_000_000): Restorable => ({ index: idx(p), meta: meta('dir', mode, mtime) });

for (const writer of ['inline', 'worker'] as const) describe(`ops: FilesystemOutput (restoring into a folder, ${writer})`, function () {
  this.timeout(60_000);

  it('writes many small files, a big one, read-only folders and exact modes and mtimes', async () => {
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals, writer });
    const items: Restorable[] = [dir('', 0o755, 1_400_000_000), dir('a'), dir('a/ro', 0o555, 1_450_000_000)];
    const want = new Map<string, { data: Buffer; mode: number; mtime: number }>();
    for (let i = 0; i < 300; i++) {
      const data = Buffer.from(`file ${i} `.repeat(i * 7 + 1));
      const p = `a/ro/f${String(i).padStart(3, '0')}`;
      const mode = [0o600, 0o644, 0o755, 0o640][i % 4];
      items.push(file(p, data, mode, 1_600_000_000 + i));
      want.set(p, { data, mode, mtime: 1_600_000_000 + i });
    }
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    items.push(dir('b', 0o700, 1_550_000_000), dir('b/c'), file('b/c/big.bin', big, 0o600, 1_650_000_000));
    want.set('b/c/big.bin', { data: big, mode: 0o600, mtime: 1_650_000_000 });
    for (const it of items) await out.add(it);
    await out.finish();

    assert.deepEqual(refusals, []);
    assert.equal(out.files, 301);
    for (const [p, w] of want) {
      const f = path.join(target, p);
      const st = fs.statSync(f);
      assert.ok(fs.readFileSync(f).equals(w.data), p);
      assert.equal(st.mode & 0o7777, w.mode, `${p} mode`);
      assert.equal(Math.floor(st.mtimeMs / 1000), w.mtime, `${p} mtime`);
    }
    const ro = fs.statSync(path.join(target, 'a/ro'));
    assert.equal(ro.mode & 0o7777, 0o555);
    assert.equal(Math.floor(ro.mtimeMs / 1000), 1_450_000_000, 'folder times are set after their contents');
    assert.equal(Math.floor(fs.statSync(target).mtimeMs / 1000), 1_400_000_000);
    assert.equal(fs.statSync(path.join(target, 'b')).mode & 0o7777, 0o700);
    assert.deepEqual(fs.readdirSync(path.join(target, 'a/ro')).filter((n) => n.startsWith('.offsite-restore-')), [], 'no temporary file left');
    fs.chmodSync(path.join(target, 'a/ro'), 0o755); // so the temp folder can be removed
  });

  it('a path given twice: refused without force, the last version with force', async () => {
    const a = Buffer.from('first');
    const b = Buffer.from('second version');
    const target = path.join(tempDir(), 'out');
    const strict = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals: [], writer });
    await strict.add(dir(''));
    await strict.add(file('x', a));
    // From the worker, the error comes at a later call (finish at the latest), as the same OffsiteError.
    await assert.rejects(
      (async () => {
        await strict.add(file('x', b));
        await strict.add(file('y', b));
        await strict.finish();
      })(),
      (e: unknown) => OffsiteError.is(e, 'exists') && /Refusing to overwrite/.test(e.message) && e.hint === 'Restore into an empty folder, or pass --force',
    );
    await strict.dispose();
    assert.equal(fs.readFileSync(path.join(target, 'x'), 'utf8'), 'first');
    assert.deepEqual(fs.readdirSync(target), ['x'], 'nothing written after the error, no temporary file');

    const target2 = path.join(tempDir(), 'out');
    const forced = new FilesystemOutput({ target: target2, force: true, restoreOwners: false, log: new MemoryLogger(), refusals: [], writer });
    await forced.add(dir(''));
    await forced.add(file('x', a));
    await forced.add(file('x', b, 0o600));
    await forced.finish();
    assert.equal(fs.readFileSync(path.join(target2, 'x'), 'utf8'), 'second version');
    assert.equal(fs.statSync(path.join(target2, 'x')).mode & 0o7777, 0o600);
  });

  it('a file member under a symlink member is refused, nothing is written outside', async () => {
    const outside = tempDir();
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals, writer });
    await out.add(dir(''));
    await out.add({ index: idx('link'), meta: { ...meta('sym', 0o777, 1), linkname: Buffer.from(outside) } });
    await out.add(file('link/escape.txt', Buffer.from('x')));
    await out.finish();
    assert.deepEqual(fs.readdirSync(outside), []);
    assert.equal(refusals.length, 1);
    assert.match(refusals[0].reason, /symlink/);

    // A symlink already in the target (restoring with force): the writer's own check of every parent.
    const target2 = path.join(tempDir(), 'out');
    fs.mkdirSync(target2);
    fs.symlinkSync(outside, path.join(target2, 'link'));
    const refusals2: Refusal[] = [];
    const out2 = new FilesystemOutput({ target: target2, force: true, restoreOwners: false, log: new MemoryLogger(), refusals: refusals2, writer });
    await out2.add(dir(''));
    await out2.add(file('link/escape.txt', Buffer.from('x')));
    await out2.add(file('ok.txt', Buffer.from('fine')));
    await out2.finish();
    assert.deepEqual(fs.readdirSync(outside), []);
    assert.deepEqual(refusals2.map((r) => r.member), ['link/escape.txt']);
    assert.match(refusals2[0].reason, /link is not a folder \(a symlink: following it could write outside the target\)/);
    assert.equal(fs.readFileSync(path.join(target2, 'ok.txt'), 'utf8'), 'fine');
  });

  it('a system error keeps its code; a file whose data fails is removed, and nothing after it is written', async () => {
    const target = path.join(tempDir(), 'out');
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals: [], writer });
    await out.add(dir(''));
    await assert.rejects(
      (async () => {
        await out.add(file('n'.repeat(300), Buffer.from('x')));
        await out.finish();
      })(),
      (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENAMETOOLONG',
    );
    await out.dispose();

    const target2 = path.join(tempDir(), 'out');
    const out2 = new FilesystemOutput({ target: target2, force: false, restoreOwners: false, log: new MemoryLogger(), refusals: [], writer });
    await out2.add(dir(''));
    await out2.add(file('before', Buffer.from('kept')));
    const broken: Restorable = {
      index: idx('broken'),
      meta: meta('reg', 0o644, 1),
      produce: async (write) => {
        await write(Buffer.alloc(300_000, 1)); // more than one batch: some of it reaches the file
        throw new OffsiteError('integrity', 'Integrity check failed (MDC mismatch)');
      },
    };
    await assert.rejects(out2.add(broken), (e: unknown) => OffsiteError.is(e, 'integrity'));
    await out2.dispose();
    assert.deepEqual(fs.readdirSync(target2), ['before'], 'the broken file and its temporary name are gone');
    assert.equal(fs.readFileSync(path.join(target2, 'before'), 'utf8'), 'kept');
  });

  it('refusals and counts reach the caller', async () => {
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const log = new MemoryLogger();
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log, refusals, writer });
    await out.add(dir(''));
    await out.add(dir('d'));
    await out.add(file('d/a', Buffer.from('12345')));
    await out.add({ index: idx('d/a/b'), meta: meta('reg', 0o644, 1) });
    await out.add({ index: idx('dev'), meta: meta('chr', 0o644, 1) });
    await out.finish();
    assert.deepEqual(
      refusals.map((r) => r.member),
      ['d/a/b', 'dev'],
    );
    assert.match(refusals[0].reason, /d\/a is not a folder/);
    assert.equal(out.files, 1);
    assert.equal(out.bytes, 5);
    assert.ok(log.lines.some((l) => /Not restoring dev: device files are not restored/.test(l)), log.lines.join('\n'));
  });
});
