// The writers' lock of a cache folder: a live owner is waited for, then refused; the lock of an owner
// that is gone is taken over.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireLock } from '../../../src/engine/cache/lock';
import { OffsiteError } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';

describe('the lock of a cache folder', () => {
  const lockOf = (owner: object) => {
    const file = path.join(tempDir('offsite-lock-'), 'lockfile');
    fs.writeFileSync(file, JSON.stringify({ host: os.hostname(), since: new Date().toISOString(), command: 'backup', ...owner }));
    return file;
  };

  it('a live owner is waited for, then refused; one written before this machine last started is taken over, its pid being another process now', async () => {
    // This process is alive: as the owner, with no boot id (an older Offsite) or this boot's, it holds the lock.
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    for (const owner of [{ pid: process.pid }, { pid: process.pid, boot }]) {
      await assert.rejects(acquireLock(lockOf(owner), 'remove', { waitMs: 300 }), (e) => OffsiteError.is(e, 'locked'));
    }
    const file = lockOf({ pid: process.pid, boot: '00000000-0000-0000-0000-000000000000' });
    const lock = await acquireLock(file, 'remove', { waitMs: 300 });
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).command, 'remove');
    lock.release();
    assert.equal(fs.existsSync(file), false);
  });
});
