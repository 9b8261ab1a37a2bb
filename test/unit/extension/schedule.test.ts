import * as assert from 'node:assert/strict';
import { emptyStats } from '../../../src/engine/ops/stats';
import { formatTime } from '../../../src/extension/format';
import { backupDue, drillDue, drillLine, isStale, secondsUntilDue, statusBarView, type FolderView } from '../../../src/extension/schedule';

const H = 3600;
const NOW = 1_800_000_000;

function view(p: Partial<FolderView> & { record?: FolderView['record'] }): FolderView {
  return { name: 'proj', url: 'file:///b/proj', staleAfterHours: 24, record: {}, ...p };
}

describe('extension: schedule rules', () => {
  it('a scheduled backup is due schedule minutes after the last attempt or success', () => {
    assert.equal(backupDue({}, 0, NOW), false, 'schedule off');
    assert.equal(backupDue({}, 30, NOW), true, 'never ran');
    assert.equal(backupDue({ lastSuccess: NOW - 29 * 60 }, 30, NOW), false);
    assert.equal(backupDue({ lastSuccess: NOW - 30 * 60 }, 30, NOW), true);
    assert.equal(backupDue({ lastSuccess: NOW - 3 * H, lastAttempt: NOW - 60 }, 30, NOW), false, 'a failed attempt also waits a period');
    assert.equal(secondsUntilDue({ lastSuccess: NOW - 10 * 60 }, 30, NOW), 20 * 60);
  });

  it('a time still to come (the clock was set back) does not stop the schedule until then', () => {
    const year = 365 * 24 * H;
    assert.equal(backupDue({ lastAttempt: NOW + year }, 30, NOW), true, 'an attempt "next year" is no reason to wait a year');
    assert.equal(backupDue({ lastSuccess: NOW + year, lastAttempt: NOW - 60 }, 30, NOW), false, 'the real last attempt still counts');
    assert.equal(backupDue({ lastSuccess: NOW + year, lastAttempt: NOW - 31 * 60 }, 30, NOW), true);
    assert.equal(secondsUntilDue({ lastSuccess: NOW + year, lastAttempt: NOW - 10 * 60 }, 30, NOW), 20 * 60);
    assert.equal(secondsUntilDue({}, 0, NOW), undefined);
  });

  it('stale after staleAfter hours without a success; a folder never backed up is new, not stale', () => {
    assert.equal(isStale({}, 24, NOW), false);
    assert.equal(isStale({ lastSuccess: NOW - 24 * H }, 24, NOW), false);
    assert.equal(isStale({ lastSuccess: NOW - 24 * H - 1 }, 24, NOW), true);
    assert.equal(isStale({ lastSuccess: NOW - 1000 * H }, 0, NOW), false, '0 = never warn');
  });

  it('a restore drill is due drillEvery days after the last drill (or with none), once there are backups, unless snoozed', () => {
    const drill = (daysAgo: number, failed = 0) => ({ at: NOW - daysAgo * 24 * H, ok: failed === 0, setTime: NOW - 40 * 24 * H, matched: 20 - failed, failed, changed: 0 });
    assert.equal(drillDue({}, 30, NOW), false, 'nothing to drill yet');
    assert.equal(drillDue({ lastSuccess: NOW }, 30, NOW), true, 'never drilled');
    assert.equal(drillDue({ lastSuccess: NOW, lastDrill: drill(29) }, 30, NOW), false);
    assert.equal(drillDue({ lastSuccess: NOW, lastDrill: drill(31) }, 30, NOW), true);
    assert.equal(drillDue({ lastSuccess: NOW, lastVerify: { time: NOW, ok: true, differences: 0 } }, 30, NOW), true, 'a verify is not a drill (it uses the local cache)');
    assert.equal(drillDue({ lastSuccess: NOW }, 0, NOW), false, '0 = off');
    assert.equal(drillDue({ lastSuccess: NOW, drillSnoozedUntil: NOW + 60 }, 30, NOW), false, '"Later"');
    assert.equal(drillDue({ lastSuccess: NOW, drillSnoozedUntil: NOW - 60 }, 30, NOW), true, 'the snooze is over');
    assert.equal(drillLine(drill(3), NOW), `${formatTime(NOW - 3 * 24 * H)} (3d ago): 20 file(s) matched`);
    assert.match(drillLine(drill(0, 2), NOW), /: 2 file\(s\) FAILED \(damaged or unrestorable\), 18 matched$/);
    assert.match(drillLine({ ...drill(0), matched: 0, changed: 4 }, NOW), /nothing compared \(4 file\(s\) changed since the backup\)$/);
  });

  it('the status bar: age, spinner, failure, staleness, and a tooltip with statistics, chain and verify', () => {
    const ok = view({ record: { lastSuccess: NOW - 2 * H - 5, lastType: 'inc', chainSets: 3, lastStats: { ...emptyStats(NOW), NewFiles: 2, ChangedFiles: 1, TotalDestinationSizeChange: 2048, ElapsedTime: 1.25 } } });
    const v = statusBarView([ok], NOW);
    assert.equal(v.text, '$(cloud-upload) 2h ago');
    assert.equal(v.warning, false);
    assert.match(v.tooltip, /Last backup: .* \(2h ago\), incremental/);
    assert.match(v.tooltip, /Last run: 2 new, 1 changed, 0 deleted; 2\.0 KB uploaded in 1\.3 s/);
    assert.match(v.tooltip, /Chain length: 3 set\(s\)/);
    assert.match(v.tooltip, /Last verify: never/);
    assert.match(v.tooltip, /Last restore drill: never/);
    const drilled = statusBarView([view({ record: { ...ok.record, lastDrill: { at: NOW - 2 * 24 * H, ok: true, setTime: NOW - 3 * 24 * H, matched: 20, failed: 0, changed: 1 } } })], NOW);
    assert.match(drilled.tooltip, /Last restore drill: .* \(2d ago\): 20 file\(s\) matched, 1 changed since the backup/);
    const damaged = statusBarView([view({ record: { ...ok.record, lastDrill: { at: NOW - 60, ok: false, setTime: NOW - 3 * H, matched: 19, failed: 1, changed: 0 } } })], NOW);
    assert.match(damaged.tooltip, /\$\(error\) Last restore drill: .*1 file\(s\) FAILED/);
    assert.equal(statusBarView([{ ...ok, running: 'backup' }], NOW).text, '$(sync~spin) Backing up…');
    // Whatever runs is said as it is: a verify is no backup (the bar said "Backing up" for all four).
    for (const [kind, text, line] of [
      ['verify', 'Verifying…', 'Verifying now…'],
      ['restore', 'Restoring…', 'Restoring now…'],
      ['drill', 'Running a restore drill…', 'Running a restore drill now…'],
    ] as const) {
      const v = statusBarView([{ ...ok, running: kind }], NOW);
      assert.equal(v.text, `$(sync~spin) ${text}`);
      assert.match(v.tooltip, new RegExp(`^${line} *$`, 'm'));
      assert.doesNotMatch(v.tooltip, /Backing up/);
    }
    const failed = statusBarView([view({ record: { ...ok.record, lastFailure: { time: NOW - 60, message: 'disk full' } } })], NOW);
    assert.equal(failed.text, '$(warning) Backup failed');
    assert.equal(failed.warning, true);
    assert.match(failed.tooltip, /Last attempt failed 1m ago: disk full/);
    const stale = statusBarView([view({ record: { lastSuccess: NOW - 50 * H } })], NOW);
    assert.equal(stale.text, '$(warning) 2d ago');
    assert.equal(stale.warning, true);
    assert.equal(statusBarView([view({})], NOW).text, '$(cloud-upload) No backup yet');
  });

  it('a failure is the state only until a later success: one made by cron or another window counts too (read from the remote)', () => {
    // A scheduled run failed at 10:00 (offline); cron backed up at 11:00, and the remote's status says so.
    const rec = { lastSuccess: NOW - H, lastFailure: { time: NOW - 2 * H, message: 'remote unreachable' } };
    const v = statusBarView([view({ record: rec })], NOW);
    assert.equal(v.text, '$(cloud-upload) 1h ago');
    assert.equal(v.warning, false);
    assert.doesNotMatch(v.tooltip, /Last attempt failed/);
    // A failure after the last success is still the state.
    const later = statusBarView([view({ record: { ...rec, lastFailure: { time: NOW - 60, message: 'remote unreachable' } } })], NOW);
    assert.equal(later.text, '$(warning) Backup failed');
    assert.match(later.tooltip, /Last attempt failed 1m ago: remote unreachable/);
  });

  it('several folders: the oldest success counts, and the spinner names the running ones', () => {
    const a = view({ name: 'a', record: { lastSuccess: NOW - 60 } });
    const b = view({ name: 'b', record: { lastSuccess: NOW - 5 * H } });
    assert.equal(statusBarView([a, b], NOW).text, '$(cloud-upload) 5h ago');
    assert.equal(statusBarView([a, { ...b, running: 'backup' }], NOW).text, '$(sync~spin) Backing up b…');
    const c = view({ name: 'c' });
    assert.equal(statusBarView([{ ...a, running: 'backup' }, { ...b, running: 'verify' }, { ...c, running: 'backup' }], NOW).text, '$(sync~spin) Backing up a, c, verifying b…');
    assert.equal(statusBarView([a, view({ name: 'c' })], NOW).text, '$(cloud-upload) No backup yet');
    assert.equal(statusBarView([a, b], NOW).tooltip.split('---').length, 2, 'one tooltip section per folder');
  });
});
