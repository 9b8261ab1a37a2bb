// FilesystemOutput, writing on this thread and in its worker thread: the result must be exactly the
// archive's tree (contents delivered in pieces from a reused buffer, modes, mtimes), read-only folders
// filled before they get their mode, no temporary file left, a path given twice kept as first given,
// nothing written through a symlink member (nor through the user's own), names too long for the file
// system and device files (without root) left out with the right cause; from the worker, errors arrive
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

  it('a path given twice (only a forged archive has it): the first is kept, the later one left out, the rest written; with force too', async () => {
    for (const force of [false, true]) {
      const target = path.join(tempDir(), 'out');
      const refusals: Refusal[] = [];
      const out = new FilesystemOutput({ target, force, restoreOwners: false, log: new MemoryLogger(), refusals, writer });
      await out.add(dir(''));
      await out.add(file('x', Buffer.from('first')));
      await out.add(file('x', Buffer.from('second version'), 0o600));
      await out.add(dir('x'));
      await out.add(file('y', Buffer.from('fine')));
      await out.finish();
      assert.equal(fs.readFileSync(path.join(target, 'x'), 'utf8'), 'first', `force: ${force}`);
      assert.equal(fs.statSync(path.join(target, 'x')).mode & 0o7777, 0o644);
      assert.equal(fs.readFileSync(path.join(target, 'y'), 'utf8'), 'fine');
      assert.deepEqual(refusals, [
        { member: 'x', reason: 'the backup holds this path more than once; the first was restored', cause: 'archive' },
        { member: 'x', reason: 'the backup holds this path more than once; the first was restored', cause: 'archive' },
      ]);
      assert.deepEqual(fs.readdirSync(target).sort(), ['x', 'y'], 'no temporary file');
    }
  });

  it("the archive's top as a symlink: left out, the paths under it written into the target (a real folder)", async () => {
    const outside = tempDir();
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals, writer });
    await out.add({ index: [], meta: { ...meta('sym', 0o777, 1), linkname: Buffer.from(outside) } });
    await out.add(file('a.txt', Buffer.from('fine')));
    await out.finish();
    assert.deepEqual(fs.readdirSync(outside), []);
    assert.ok(fs.lstatSync(target).isDirectory());
    assert.equal(fs.readFileSync(path.join(target, 'a.txt'), 'utf8'), 'fine');
    assert.deepEqual(refusals.map((r) => [r.member, r.cause]), [['.', 'archive']]);
    assert.match(refusals[0].reason, /top folder is a symlink/);
  });

  it("with force, the user's symlink where the backup has a file is replaced, never followed", async () => {
    const outside = tempDir();
    fs.writeFileSync(path.join(outside, 'victim'), 'mine');
    const target = path.join(tempDir(), 'out');
    fs.mkdirSync(target);
    fs.symlinkSync(path.join(outside, 'victim'), path.join(target, 'link'));
    const out = new FilesystemOutput({ target, force: true, restoreOwners: false, log: new MemoryLogger(), refusals: [], writer });
    await out.add(dir(''));
    await out.add(file('link', Buffer.from('restored')));
    await out.finish();
    assert.ok(fs.lstatSync(path.join(target, 'link')).isFile());
    assert.equal(fs.readFileSync(path.join(target, 'link'), 'utf8'), 'restored');
    assert.equal(fs.readFileSync(path.join(outside, 'victim'), 'utf8'), 'mine');
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
    assert.match(refusals[0].reason, /link is not a folder in the backup \(a symlink\)/);
    assert.equal(refusals[0].cause, 'archive');

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
    assert.equal(refusals2[0].reason, 'link in the target is not a folder but a symlink (following it could write outside the target)');
    assert.equal(refusals2[0].cause, 'target', "the user's own symlink: the backup is not to blame");
    assert.equal(fs.readFileSync(path.join(target2, 'ok.txt'), 'utf8'), 'fine');
  });

  it('a name or path too long for the file system is left out and the rest written; a file whose data fails is removed, and nothing after it is written', async () => {
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals, writer });
    await out.add(dir(''));
    const deep = Array.from({ length: 24 }, () => 'd'.repeat(200));
    for (let k = 1; k <= deep.length; k++) await out.add(dir(deep.slice(0, k).join('/')));
    await out.add(file(`${deep.join('/')}/f`, Buffer.from('x')));
    await out.add(file('n'.repeat(300), Buffer.from('x')));
    await out.add(file('ok.txt', Buffer.from('fine')));
    await out.finish();
    assert.equal(fs.readFileSync(path.join(target, 'ok.txt'), 'utf8'), 'fine');
    const long = refusals.at(-1)!;
    assert.deepEqual(long, { member: 'n'.repeat(300), reason: 'a name in its path is longer than the 255 bytes this file system allows', cause: 'system' });
    const tooDeep = refusals.slice(0, -1);
    assert.ok(tooDeep.length >= 2, JSON.stringify(tooDeep.map((r) => r.member.length)));
    for (const r of tooDeep) assert.deepEqual([r.reason, r.cause], ['its path in the target is longer than this system allows', 'system']);
    assert.equal(tooDeep.at(-1)!.member, `${deep.join('/')}/f`);

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

  it('refusals and counts reach the caller; device files are made as root, else left out (not blamed on the backup)', async () => {
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const log = new MemoryLogger();
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log, refusals, writer });
    await out.add(dir(''));
    await out.add(dir('d'));
    await out.add(file('d/a', Buffer.from('12345')));
    await out.add({ index: idx('d/a/b'), meta: meta('reg', 0o644, 1) });
    await out.add({ index: idx('dev'), meta: { ...meta('chr', 0o640, 1_600_000_000), devmajor: 1, devminor: 3 } });
    await out.add({ index: idx('disk'), meta: { ...meta('blk', 0o600, 1_600_000_000), devmajor: 7, devminor: 0 } });
    await out.finish();
    assert.match(refusals[0].reason, /d\/a is not a folder/);
    assert.equal(out.bytes, 5);
    if (uid === 0) {
      assert.deepEqual(refusals.map((r) => r.member), ['d/a/b']);
      assert.equal(out.files, 3);
      const dev = fs.lstatSync(path.join(target, 'dev'));
      assert.ok(dev.isCharacterDevice());
      assert.equal(dev.rdev, (1 << 8) | 3, 'major 1, minor 3');
      assert.equal(dev.mode & 0o7777, 0o640);
      assert.equal(Math.floor(dev.mtimeMs / 1000), 1_600_000_000);
      const disk = fs.lstatSync(path.join(target, 'disk'));
      assert.ok(disk.isBlockDevice());
      assert.equal(disk.rdev, 7 << 8);
      assert.deepEqual(fs.readdirSync(target).filter((n) => n.startsWith('.offsite-restore-')), [], 'no temporary name left');
    } else {
      assert.deepEqual(refusals.map((r) => [r.member, r.cause]), [['d/a/b', 'archive'], ['dev', 'system'], ['disk', 'system']]);
      assert.equal(out.files, 1);
      assert.ok(log.lines.some((l) => /Not restoring dev: device files can be made only by root/.test(l)), log.lines.join('\n'));
    }
  });
});
