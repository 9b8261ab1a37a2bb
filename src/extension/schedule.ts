// When things are due (the next scheduled backup, the stale warning, the restore drill reminder) and what the
// status bar says about it. Pure: the times come in as arguments, so the rules are tested under plain
// Node with made-up clocks.
import type { DrillRecord } from '../engine/ops/drill';
import type { BackupStats } from '../engine/ops/stats';
import { capitalized, formatAge, formatBytes, formatTime, operationActivity, statsSummary, type OperationKind } from './format';

const HOUR = 3600;
const DAY = 86400;

/** What the extension remembers about one folder's backups (globalState, keyed by the remote URL). */
export interface FolderRecord {
  /** End time of the last successful backup (from this window, cron, or the remote's status). */
  lastSuccess?: number;
  lastStats?: BackupStats;
  lastType?: 'full' | 'inc';
  /** Start time of the last scheduled or manual attempt. */
  lastAttempt?: number;
  /** The last run failed (cleared by a success). */
  lastFailure?: { time: number; message: string };
  /** Sets in the current chain, from the last status. */
  chainSets?: number;
  lastVerify?: { time: number; ok: boolean; differences: number };
  /** The last restore drill (this window's, or the engine's record of one the CLI ran). */
  lastDrill?: DrillRecord;
  /** "Later" on the drill reminder: not before this time. */
  drillSnoozedUntil?: number;
}

/**
 * When the schedule last ran: the later of the last attempt and the last success, not counting a time
 * still to come (the clock was set back since, or the remote's sets were written by a machine whose
 * clock is ahead), which would otherwise stop the schedule until then.
 */
function lastRun(rec: FolderRecord, now: number): number {
  return Math.max(0, ...[rec.lastAttempt, rec.lastSuccess].filter((t): t is number => t !== undefined && t <= now));
}

/** A scheduled backup is due: schedule > 0 and at least that many minutes since the last attempt. */
export function backupDue(rec: FolderRecord, scheduleMinutes: number, now: number): boolean {
  if (!(scheduleMinutes > 0)) return false;
  return now - lastRun(rec, now) >= scheduleMinutes * 60;
}

/** Seconds until the next scheduled backup (0 when due; undefined when the schedule is off). */
export function secondsUntilDue(rec: FolderRecord, scheduleMinutes: number, now: number): number | undefined {
  if (!(scheduleMinutes > 0)) return undefined;
  return Math.max(0, lastRun(rec, now) + scheduleMinutes * 60 - now);
}

/** No successful backup for longer than staleAfter hours (0 = never warn). A folder never backed up is not stale: it is new. */
export function isStale(rec: FolderRecord, staleAfterHours: number, now: number): boolean {
  if (!(staleAfterHours > 0) || rec.lastSuccess === undefined) return false;
  return now - rec.lastSuccess > staleAfterHours * HOUR;
}

/**
 * A restore drill is due: backups exist, no drill ran for more than drillEvery days (or none ever
 * ran), and the reminder is not snoozed. drillEvery 0 = never.
 */
export function drillDue(rec: FolderRecord, drillEveryDays: number, now: number): boolean {
  if (!(drillEveryDays > 0) || rec.lastSuccess === undefined) return false;
  if (rec.drillSnoozedUntil !== undefined && now < rec.drillSnoozedUntil) return false;
  const since = rec.lastDrill?.at;
  if (since === undefined) return true;
  return now - since > drillEveryDays * DAY;
}

/** "2026-07-27 14:05:09 (3d ago): all 20 files matched" — one line about a drill. */
export function drillLine(d: DrillRecord, now: number): string {
  const outcome = d.failed > 0
    ? `${d.failed} file(s) FAILED (damaged or unrestorable), ${d.matched} matched`
    : d.matched > 0
      ? `${d.matched} file(s) matched${d.changed ? `, ${d.changed} changed since the backup` : ''}`
      : d.changed > 0
        ? `nothing compared (${d.changed} file(s) changed since the backup)`
        : 'no files to compare';
  return `${formatTime(d.at)} (${formatAge(now - d.at)}): ${outcome}`;
}

export interface FolderView {
  readonly name: string;
  readonly url: string;
  readonly record: FolderRecord;
  /** What the folder runs now (a backup, a restore, a verify, a drill); undefined when idle. */
  readonly running?: OperationKind;
  readonly staleAfterHours: number;
}

export interface StatusBarView {
  readonly text: string;
  /** Markdown. */
  readonly tooltip: string;
  readonly warning: boolean;
}

/**
 * The last attempt's failure while it is still the state: no success came after it (the success may be
 * cron's or another window's, read from the remote's status, which does not clear lastFailure).
 */
export function currentFailure(rec: FolderRecord): FolderRecord['lastFailure'] {
  const f = rec.lastFailure;
  return f && !(rec.lastSuccess !== undefined && rec.lastSuccess >= f.time) ? f : undefined;
}


/**
 * What runs, as the status bar says it: "Verifying…" with one folder; with several, each running
 * folder by name, grouped by what it runs ("Backing up a, b, verifying c…").
 */
function runningText(running: readonly FolderView[], named: boolean): string {
  const kinds = [...new Set(running.map((f) => f.running!))];
  const parts = kinds.map((k) => {
    const doing = operationActivity(k);
    return named ? `${doing} ${running.filter((f) => f.running === k).map((f) => f.name).join(', ')}` : doing;
  });
  return `${capitalized(parts.join(', '))}…`;
}

/** One item for all folders: the spinner while any runs, else the oldest success; a warning on failure or staleness. */
export function statusBarView(folders: readonly FolderView[], now: number): StatusBarView {
  const running = folders.filter((f) => f.running);
  const failed = folders.filter((f) => currentFailure(f.record) && !f.running);
  const stale = folders.filter((f) => isStale(f.record, f.staleAfterHours, now));
  const successes = folders.map((f) => f.record.lastSuccess);
  const oldest = successes.some((s) => s === undefined) ? undefined : Math.min(...(successes as number[]));
  let text: string;
  if (running.length) text = `$(sync~spin) ${runningText(running, folders.length > 1)}`;
  else if (failed.length) text = `$(warning) Backup failed`;
  else if (oldest === undefined) text = '$(cloud-upload) No backup yet';
  else text = `${stale.length ? '$(warning)' : '$(cloud-upload)'} ${formatAge(now - oldest)}`;
  const sections = folders.map((f) => folderTooltip(f, now));
  return { text, tooltip: sections.join('\n\n---\n\n') + '\n\n_Click for status and log_', warning: !running.length && (failed.length > 0 || stale.length > 0) };
}

function folderTooltip(f: FolderView, now: number): string {
  const r = f.record;
  const lines = [`**${escapeMd(f.name)}** → \`${f.url}\``];
  if (f.running) lines.push(`${capitalized(operationActivity(f.running))} now…`);
  if (r.lastSuccess !== undefined) {
    lines.push(`Last backup: ${formatTime(r.lastSuccess)} (${formatAge(now - r.lastSuccess)})${r.lastType ? `, ${r.lastType === 'full' ? 'full' : 'incremental'}` : ''}`);
  } else lines.push('No backup yet');
  if (r.lastStats) lines.push(`Last run: ${statsSummary(r.lastStats)}; ${r.lastStats.SourceFiles} files, ${formatBytes(r.lastStats.SourceFileSize)} scanned`);
  if (r.chainSets !== undefined) lines.push(`Chain length: ${r.chainSets} set(s)`);
  if (r.lastVerify) lines.push(`Last verify: ${formatTime(r.lastVerify.time)}, ${r.lastVerify.ok ? 'no differences' : `${r.lastVerify.differences} difference(s)`}`);
  else lines.push('Last verify: never');
  lines.push(r.lastDrill ? `${r.lastDrill.failed > 0 ? '$(error) ' : ''}Last restore drill: ${drillLine(r.lastDrill, now)}` : 'Last restore drill: never');
  const failure = currentFailure(r);
  if (failure) lines.push(`$(error) Last attempt failed ${formatAge(now - failure.time)}: ${escapeMd(failure.message)}`);
  if (isStale(r, f.staleAfterHours, now)) lines.push(`$(warning) No successful backup for more than ${f.staleAfterHours} h`);
  return lines.join('  \n');
}

function escapeMd(s: string): string {
  return s.replace(/([\\`*_{}[\]()#+\-.!|<>])/g, '\\$1');
}
