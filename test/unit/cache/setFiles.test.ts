// The per-set files Offsite keeps in the cache folder: names by set time, the newest found, the older
// ones removed, temporaries and other kinds left alone.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { SetFileKind } from '../../../src/engine/cache/setFiles';
import { tempDir } from '../../helpers/tmp';

describe('cache: per-set files', () => {
  const stat = new SetFileKind('offsite-stat');
  const dirs = new SetFileKind('offsite-dirs');

  it('names a set time and reads it back; temporaries and other kinds are not of the kind', () => {
    assert.equal(stat.name('20261128T070000Z'), 'offsite-stat.20261128T070000Z');
    assert.equal(stat.timeOf('offsite-stat.20261128T070000Z'), '20261128T070000Z');
    for (const n of ['offsite-stat.20261128T070000Z.tmp-123', 'offsite-stat.20261128T070000Z.123.ab12.tmp', 'offsite-dirs.20261128T070000Z', 'offsite-stat.2026', 'xoffsite-stat.20261128T070000Z']) {
      assert.equal(stat.timeOf(n), undefined, n);
    }
  });

  it('finds the newest by set time and removes the others of its kind only', () => {
    const archive = ArchiveDir.open(tempDir('offsite-setfiles-'));
    const files = ['offsite-stat.20261127T230000Z', 'offsite-stat.20261128T010000Z', 'offsite-stat.20261128T010000Z.tmp-1', 'offsite-dirs.20261128T020000Z', 'duplicity-full.20261127T230000Z.manifest'];
    for (const f of files) fs.writeFileSync(archive.file(f), f);
    assert.equal(archive.newest(stat), 'offsite-stat.20261128T010000Z');
    assert.equal(archive.newest(dirs), 'offsite-dirs.20261128T020000Z');
    assert.equal(archive.newest(new SetFileKind('offsite-rules')), undefined);
    archive.removeOthers(stat, 'offsite-stat.20261128T010000Z');
    assert.deepEqual(archive.names().sort(), files.filter((f) => f !== 'offsite-stat.20261127T230000Z').sort());
  });
});
