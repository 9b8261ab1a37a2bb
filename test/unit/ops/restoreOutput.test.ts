// FilesystemOutput: the result must be exactly the archive's tree (contents delivered in pieces from a
// reused buffer, modes, mtimes), read-only folders filled before they get their mode, no temporary
// file left, a path given twice refused (or, with force, its last version), and nothing written
// through a symlink member.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
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

describe('ops: FilesystemOutput (restoring into a folder)', function () {
  this.timeout(60_000);

  it('writes many small files, a big one, read-only folders and exact modes and mtimes', async () => {
    const target = path.join(tempDir(), 'out');
    const refusals: Refusal[] = [];
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals });
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
    const strict = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals: [] });
    await strict.add(dir(''));
    await strict.add(file('x', a));
    await assert.rejects(strict.add(file('x', b)), /Refusing to overwrite/);

    const target2 = path.join(tempDir(), 'out');
    const forced = new FilesystemOutput({ target: target2, force: true, restoreOwners: false, log: new MemoryLogger(), refusals: [] });
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
    const out = new FilesystemOutput({ target, force: false, restoreOwners: false, log: new MemoryLogger(), refusals });
    await out.add(dir(''));
    await out.add({ index: idx('link'), meta: { ...meta('sym', 0o777, 1), linkname: Buffer.from(outside) } });
    await out.add(file('link/escape.txt', Buffer.from('x')));
    await out.finish();
    assert.deepEqual(fs.readdirSync(outside), []);
    assert.equal(refusals.length, 1);
    assert.match(refusals[0].reason, /symlink/);
  });
});
