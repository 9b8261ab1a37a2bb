// `offsite list` as the README shows it (`offsite list --time 2026-07-27 URL`): the files as of a time,
// the backed-up folder itself named "." as duplicity's list-current-files names it, and a time before
// the oldest backup an error, as restore says it, never the oldest backup's files passed off as older.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { offsite } from '../helpers/cli';
import { RSA_PUB } from '../helpers/gpg';
import { makeTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

describe('offsite list', function () {
  this.timeout(120_000);
  let url: string;
  let cache: string;
  let backupTime: string;

  before(async () => {
    const work = tempDir('offsite-list-');
    const src = path.join(work, 's');
    url = `file://${path.join(work, 'r')}`;
    cache = path.join(work, 'c');
    makeTree(src, { 'a.txt': 'a', dir: { 'b.txt': 'b' } });
    const r = await offsite(['--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(r.code, 0, r.stderr);
    backupTime = JSON.parse(r.stdout).BackupTime;
  });

  it('names the backed-up folder "." in the text form, as the JSON form and duplicity do', async () => {
    const r = await offsite(['--archive-dir', cache, 'list', url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout.trim().split('\n').map((l) => l.replace(/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT /, '')),
      ['.', 'a.txt', 'dir', 'dir/b.txt'],
    );
  });

  it('a time before the oldest backup: exit 1 and the message restore gives, not the oldest backup listed', async () => {
    for (const time of ['2000-01-01', '3650D']) {
      const r = await offsite(['--archive-dir', cache, 'list', '--time', time, url]);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^offsite: No backup as old as .*: the oldest is from .* \\(${backupTime}\\)\\. Give a later --time\\n$`));
    }
    const at = await offsite(['--archive-dir', cache, 'list', '--json', '--time', backupTime, url]);
    assert.equal(at.code, 0, at.stderr);
    assert.equal(at.stdout.trim().split('\n').length, 4);
  });

  it('--history with --time: refused (the history covers every backup), not silently ignored', async () => {
    const r = await offsite(['--archive-dir', cache, 'list', '--history', 'a.txt', '--time', '3D', url]);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^offsite: --history lists every backup in which the path changed; --time does not apply to it\. /);
  });
});
