// The restore writer's own defences against a target that changes under it (treeWriter.ts): a folder
// swapped for a symlink while its contents are written, and a new target under a permissive umask.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TreeWriter } from '../../../src/engine/ops/treeWriter';
import type { EntryMeta } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';

const meta = (type: EntryMeta['type'], mode: number): EntryMeta => ({ type, mode, uid: 0, gid: 0, uname: '', gname: '', mtime: 86_400 });
const ix = (...names: string[]) => names.map((n) => Buffer.from(n));

describe('restore writer: a target that changes under it', () => {
  it("a folder swapped for a symlink while its contents were written: what the symlink points at keeps its mode and time", () => {
    const work = tempDir('offsite-treewriter-');
    const outside = path.join(work, 'outside');
    fs.mkdirSync(outside, { mode: 0o700 });
    const before = fs.statSync(outside);
    const warnings: string[] = [];
    const w = new TreeWriter({ target: path.join(work, 'target'), force: false, restoreOwners: false, onRefuse: () => undefined, onWarn: (m) => warnings.push(m) });
    w.begin(ix(), meta('dir', 0o755));
    w.begin(ix('a'), meta('dir', 0o777));
    assert.equal(w.begin(ix('a', 'x'), meta('reg', 0o644)), true);
    w.write(Buffer.from('x'));
    w.end();
    // Someone who can write the target swaps a/ for a symlink before a/ gets its mode and time.
    fs.renameSync(path.join(work, 'target', 'a'), path.join(work, 'moved'));
    fs.symlinkSync(outside, path.join(work, 'target', 'a'));
    w.finish();
    const after = fs.statSync(outside);
    assert.equal(after.mode & 0o7777, 0o700, 'the mode of the folder outside the target was changed');
    assert.equal(after.mtimeMs, before.mtimeMs, 'the time of the folder outside the target was changed');
    assert.ok(warnings.some((m) => m.includes('no longer a folder')), warnings.join('\n'));
    // The file itself got its attributes (through its descriptor).
    const x = fs.statSync(path.join(work, 'moved', 'x'));
    assert.equal(x.mode & 0o7777, 0o644);
    assert.equal(x.mtimeMs, 86_400_000);
  });

  it('a new target folder is never group or world writable, whatever the umask (a path restore keeps it as made)', () => {
    const work = tempDir('offsite-treewriter-');
    const old = process.umask(0);
    try {
      const w = new TreeWriter({ target: path.join(work, 'new', 'target'), force: false, restoreOwners: false, onRefuse: () => undefined, onWarn: () => undefined });
      assert.equal(w.begin(ix('sub', 'f'), meta('reg', 0o600)), true);
      w.end();
      w.finish();
    } finally {
      process.umask(old);
    }
    for (const d of ['new', 'new/target', 'new/target/sub']) assert.equal(fs.statSync(path.join(work, d)).mode & 0o022, 0, `${d} is writable by others`);
  });
});
