// The one rule for "the process that made this temporary is gone" (pid, and the boot id when one was
// recorded) and the one walk of a folder for such temporaries, which the cache's stale folders and
// files, the system temp folder's run folders (makeRunTempDir) and the lock share.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bootId, deadTemporaries, ownerAlive } from '../../../src/engine/util/temporaries';
import { tempDir } from '../../helpers/tmp';

describe('temporaries of processes that are gone', () => {
  // A process that ran and was reaped: its pid is free.
  const dead = String(spawnSync(process.execPath, ['-e', '0']).pid);
  const otherBoot = '00000000-0000-0000-0000-000000000000';

  it('one table: whose process is alive, and which entries of a folder are temporaries of processes that are gone', async () => {
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const me = String(process.pid);
      const child = String(live.pid);
      const boot = bootId();
      assert.ok(boot, 'Linux records a boot id');
      const alive: [string | number | undefined, string | undefined, boolean, string][] = [
        [me, undefined, true, 'this process'],
        [process.pid, boot, true, 'this process, this boot'],
        [me, otherBoot, false, 'this pid, written before the machine last started: another process then'],
        [child, undefined, true, 'another live process'],
        [child, boot, true, 'another live process, this boot'],
        [dead, undefined, false, 'a process that is gone'],
        [dead, boot, false, 'a process that is gone, this boot'],
        [undefined, undefined, false, 'no pid: an old run'],
      ];
      for (const [pid, b, want, why] of alive) assert.equal(ownerAlive(pid, b), want, why);

      const file = (st: fs.Stats) => st.isFile();
      const dir = (st: fs.Stats) => st.isDirectory();
      // [rule, pattern, accepted by, entries ('/' ends a folder's name), the entries found]
      const walks: [string, RegExp, ((st: fs.Stats) => boolean) | undefined, string[], string[]][] = [
        ['the pid in the first group', /\.tmp-(\d+)$/, undefined, [`a.tmp-${dead}`, `b.tmp-${me}`, `c.tmp-${child}`, 'd.tmp-x', 'plain'], [`a.tmp-${dead}`]],
        ['the pid in whichever group matched', /\.tmp-(\d+)$|\.(\d+)\.[0-9a-f]+\.tmp$/, undefined, [`a.tmp-${dead}`, `b.${dead}.9f.tmp`, `c.${me}.9f.tmp`, `d.${child}.9f.tmp`], [`a.tmp-${dead}`, `b.${dead}.9f.tmp`]],
        ['a name that matches without a pid: an old run, gone', /^(?:run-(\d+)-)?/, undefined, [`run-${dead}-a/`, `run-${me}-b/`, 'older/', 'file'], ['file', `run-${dead}-a`, 'older']],
        ['regular files only', /\.tmp-(\d+)$/, file, [`a.tmp-${dead}`, `b.tmp-${dead}/`], [`a.tmp-${dead}`]],
        ['folders only', /^x-(\d+)-\w{6}$/, dir, [`x-${dead}-abcdef/`, `x-${dead}-ghijkl`, `x-${child}-mnopqr/`, `x-${dead}-toolong/`], [`x-${dead}-abcdef`]],
      ];
      for (const [rule, pattern, is, entries, want] of walks) {
        const root = tempDir('offsite-temporaries-');
        for (const e of entries) {
          if (e.endsWith('/')) fs.mkdirSync(path.join(root, e));
          else fs.writeFileSync(path.join(root, e), '');
        }
        assert.deepEqual(deadTemporaries(root, pattern, is).map((p) => path.relative(root, p)).sort(), [...want].sort(), rule);
      }
      assert.deepEqual(deadTemporaries(path.join(tempDir('offsite-temporaries-'), 'missing'), /(\d+)/), [], 'a folder that does not exist holds none');
    } finally {
      live.kill();
    }
  });
});
