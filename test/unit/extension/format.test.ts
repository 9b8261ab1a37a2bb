import * as assert from 'node:assert/strict';
import { emptyStats } from '../../../src/engine/ops/stats';
import { busyText, currentChainIndex, drillSummary, folderDescription, formatAge, formatBytes, formatStatusReport, formatTime, lastRestorableTime, operationOf, progressMessage, retentionFailureText, statsSummary, tooLargeToCompare, unrestorableSets } from '../../../src/extension/format';

describe('extension: wording', () => {
  it('ages', () => {
    assert.equal(formatAge(-5), 'just now');
    assert.equal(formatAge(-60), 'just now'); // clocks differ a little (the engine's CLOCK_SKEW_SECONDS)
    assert.equal(formatAge(-61), 'in the future'); // a wrong clock: not "just now" for days
    assert.equal(formatAge(-86400 * 30), 'in the future');
    assert.equal(formatAge(59), 'just now');
    assert.equal(formatAge(60), '1m ago');
    assert.equal(formatAge(3599), '59m ago');
    assert.equal(formatAge(2 * 3600 + 59), '2h ago');
    assert.equal(formatAge(86400 * 3 + 5), '3d ago');
  });

  it('a backup made whose removal of old backups was refused: the message, then its hint', () => {
    assert.equal(
      retentionFailureText('app', { message: 'The backup of 20991231T000000Z is dated in the future', hint: 'Check the clock.' }),
      'Backup of app done, but old backups were not removed (offsite.keepFull): The backup of 20991231T000000Z is dated in the future. Check the clock.',
    );
    assert.equal(retentionFailureText('app', { message: 'Permission denied.' }), 'Backup of app done, but old backups were not removed (offsite.keepFull): Permission denied.');
  });

  it('a folder that runs an operation: what it runs, named for the folder (a scheduled backup as such), and what its item in the Backups view says', () => {
    // Each operation's sentence, as English (not "a verify of web").
    assert.deepEqual(
      (['backup', 'restore', 'verify', 'drill'] as const).map((kind) => busyText('web', { kind, background: false })),
      [
        'Offsite is already backing up web',
        'Offsite is already restoring from the backup of web',
        'Offsite is already verifying the backup of web',
        'Offsite is already running a restore drill of web',
      ],
    );
    assert.equal(busyText('app', { kind: 'backup', background: true }), 'Offsite is already running a scheduled backup of app');
    assert.deepEqual((['backup', 'restore', 'verify', 'drill'] as const).map((k) => folderDescription(undefined, k)), ['backing up…', 'restoring…', 'verifying…', 'running a restore drill…']);
    // How the log names it when it fails or is cancelled.
    assert.deepEqual((['backup', 'restore', 'verify', 'drill'] as const).map((kind) => operationOf(kind, 'web')), ['Backup of web', 'Restore of web', 'Verification of web', 'Restore drill of web']);
    // Beside a folder's name: what it runs first, then where (the view, its title, the folder pick alike).
    assert.equal(folderDescription('file:///b/app', 'verify'), 'verifying… · file:///b/app');
    assert.equal(folderDescription('file:///b/app', undefined), 'file:///b/app');
    assert.equal(folderDescription(undefined, 'backup'), 'backing up…');
    assert.equal(folderDescription(undefined, undefined), undefined);
  });

  it('the current chain: the newest not marked damaged, -1 when every one is', () => {
    const chain = (damage?: string) => ({ ...(damage === undefined ? {} : { damage }) });
    assert.equal(currentChainIndex({ chains: [chain(), chain(), chain('no volumes')] } as never), 1);
    assert.equal(currentChainIndex({ chains: [chain(), chain()] } as never), 1);
    assert.equal(currentChainIndex({ chains: [chain('gap')] } as never), -1);
    assert.equal(currentChainIndex({ chains: [] } as never), -1);
  });

  it('a damaged set, and every later set of its chain, cannot be restored; the newest restorable time is before them', () => {
    const set = (time: number, damage?: string) => ({ type: time === 100 || time === 500 ? ('full' as const) : ('inc' as const), time, volumes: 1, bytes: 1, ...(damage === undefined ? {} : { damage }) });
    const healthy = { startTime: 100, endTime: 300, hasSignatures: true, sets: [set(100), set(200), set(300)] };
    assert.deepEqual([...unrestorableSets(healthy)], []);
    const damaged = { ...healthy, sets: [set(100), set(200, 'volume 1 is missing'), set(300)] };
    assert.deepEqual([...unrestorableSets(damaged)], [
      [200, 'damaged: volume 1 is missing'],
      [300, `it builds on the damaged incremental set of ${formatTime(200)}`],
    ]);
    assert.equal(lastRestorableTime({ chains: [damaged] }), 100, 'the full set before it');
    assert.equal(lastRestorableTime({ chains: [healthy] }), 300);
    const badFull = { startTime: 500, endTime: 600, hasSignatures: true, damage: 'no manifest', sets: [set(500, 'no manifest'), set(600)] };
    assert.equal(unrestorableSets(badFull).get(600), `it builds on the damaged full set of ${formatTime(500)}`);
    assert.equal(lastRestorableTime({ chains: [healthy, badFull] }), 300, 'a chain whose full set is damaged does not count');
    assert.equal(lastRestorableTime({ chains: [badFull] }), undefined);
    assert.equal(lastRestorableTime({ chains: [] }), undefined);
  });

  it('sizes', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1536), '1.5 KB');
    assert.equal(formatBytes(23 * 1024 * 1024), '23 MB');
    assert.equal(formatBytes(4.2 * 1024 ** 3), '4.2 GB');
  });

  it('times are local and sortable', () => {
    const t = new Date(2026, 6, 27, 14, 5, 9).getTime() / 1000;
    assert.equal(formatTime(t), '2026-07-27 14:05:09');
  });

  it('progress lines report files and bytes', () => {
    assert.equal(progressMessage({ operation: 'backup', phase: 'scan', files: 1234, bytes: 5 * 1024 * 1024, uploadedBytes: 1024 * 1024, path: 'src/a.ts' }), 'Reading: 1,234 files, 5.0 MB read, 1.0 MB uploaded — src/a.ts');
    assert.equal(progressMessage({ operation: 'restore', phase: 'write', files: 3, bytes: 10 }), 'Writing: 3 files, 10 B written');
    const long = `${'x/'.repeat(60)}file.txt`;
    assert.match(progressMessage({ operation: 'backup', phase: 'upload', files: 1, bytes: 0, path: long }), /— …\/x\/x\/.*file\.txt$/);
  });

  it('statistics summary', () => {
    assert.equal(statsSummary({ ...emptyStats(0), NewFiles: 3, ChangedFiles: 2, DeletedFiles: 1, TotalDestinationSizeChange: 1.2 * 1024 * 1024, ElapsedTime: 3.42 }), '3 new, 2 changed, 1 deleted; 1.2 MB uploaded in 3.4 s');
  });

  it('the status report lists chains and sets, or says what is wrong', () => {
    const s = {
      url: 'file:///b/p',
      chains: [{ startTime: 0, endTime: 100, hasSignatures: true, sets: [{ type: 'full' as const, time: 0, volumes: 2, bytes: 2048 }, { type: 'inc' as const, time: 100, volumes: 1, bytes: 10 }] }],
      leftovers: ['duplicity-inc.x.vol1.difftar.gpg'],
      damaged: [],
      temporary: ['.offsite-part-a', '.offsite-part-b'],
      localTemporary: [],
    };
    const text = formatStatusReport('p', 'file:///b/p', s);
    assert.match(text, /^p → file:\/\/\/b\/p$/m);
    assert.match(text, /Current chain: .*, 2 set\(s\)$/m);
    assert.match(text, /full\s+\S+ \S+\s+2 volume\(s\)\s+2\.0 KB/);
    assert.match(text, /incremental\s+\S+ \S+\s+1 volume\(s\)\s+10 B/);
    assert.match(text, /1 file\(s\) of interrupted backups remain; "offsite cleanup" removes them/);
    assert.match(text, /2 temporary upload\(s\) that did not finish remain; "offsite cleanup" removes them/);
    const running = formatStatusReport('p', 'u', { ...s, inProgress: [{ set: { type: 'inc', startTime: 0, time: 200 }, files: ['v1', 'v2'], lastWrite: 300, age: 60 }, { files: ['.offsite-part-c'] }] });
    assert.match(running, /In progress\? 3 file\(s\) of an unfinished backup written recently: a backup on another machine may be writing them; "offsite cleanup" keeps them\./);
    assert.doesNotMatch(text, /In progress/);
    assert.match(formatStatusReport('p', 'u', { url: 'u', chains: [], leftovers: [], damaged: [], temporary: [], localTemporary: [] }), /No backups yet/);
    assert.match(formatStatusReport('p', 'u', { url: 'u', chains: [], leftovers: [], damaged: [], temporary: ['.offsite-part-a'], localTemporary: [] }), /No backups yet\.\n  1 temporary upload/);
    assert.match(formatStatusReport('p', 'u', undefined, 'connection refused'), /Could not read the remote: connection refused/);
  });

  it('a restore drill: files restored, identical, failed, changed; and its progress', () => {
    const base = { time: 1_800_000_000, filesInBackup: 340, bytes: 1000, seconds: 2, seed: 7 };
    const file = (outcome: 'match' | 'mismatch' | 'changed' | 'error') => ({ path: `f-${outcome}`, bytes: 1, outcome });
    const ok = drillSummary({ ...base, files: [file('match'), file('match'), file('changed')], matched: 2, failed: 0, changed: 1, ok: true });
    assert.equal(ok, `3 of 340 file(s) restored from the backup of ${formatTime(1_800_000_000)} with an empty cache, as on a new machine: 2 identical to the workspace, 1 changed since the backup (not compared)`);
    const bad = drillSummary({ ...base, files: [file('match'), file('mismatch')], matched: 1, failed: 1, changed: 0, ok: false });
    assert.match(bad, /: 1 FAILED \(damaged, or not restorable\), 1 identical to the workspace$/);
    assert.equal(progressMessage({ operation: 'verify', phase: 'drill', files: 3, bytes: 2048, path: 'src/a.ts' }), 'Restoring and comparing: 3 files, 2.0 KB checked — src/a.ts');
  });

  it('a version larger than diffEditor.maxFileSize (MB; VS Code\'s 50 when unset or not a number; 0 = no limit) is too large to compare', () => {
    const MB = 1024 * 1024;
    assert.equal(tooLargeToCompare(50 * MB, undefined), false);
    assert.equal(tooLargeToCompare(50 * MB + 1, undefined), true);
    assert.equal(tooLargeToCompare(48 * MB, 'big'), false);
    assert.equal(tooLargeToCompare(2 * MB, 1), true);
    assert.equal(tooLargeToCompare(MB, 1), false);
    assert.equal(tooLargeToCompare(10_000 * MB, 0), false, '0: no limit, as VS Code\'s');
    assert.equal(tooLargeToCompare(60 * MB, -3), true, 'a negative value: the default');
  });
});
