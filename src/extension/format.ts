// Words and numbers for the UI: ages ("2h ago"), sizes, dates, progress lines, statistics and the
// status report. Pure, so the wording is unit-tested under plain Node.
import type { Progress } from '../engine/progress';
import type { BackupStats } from '../engine/ops/stats';
import type { ChainStatus, CollectionStatus } from '../engine/ops/inspect';
import type { DrillResult } from '../engine/ops/drill';
import { CLOCK_SKEW_SECONDS } from '../engine/chain/collection';

/**
 * "just now", "5m ago", "2h ago", "3d ago" (seconds between then and now); "in the future" for a time
 * more than a minute ahead (a wrong clock, here or where the backup was made: engine CLOCK_SKEW_SECONDS).
 */
export function formatAge(seconds: number): string {
  if (seconds < -CLOCK_SKEW_SECONDS) return 'in the future';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** A backup made, whose removal of old backups (offsite.keepFull) was refused or failed. */
export function retentionFailureText(folder: string, failure: { readonly message: string; readonly hint?: string }): string {
  const why = failure.hint ? `${failure.message.replace(/\.+$/, '')}. ${failure.hint}` : failure.message;
  return `Backup of ${folder} done, but old backups were not removed (offsite.keepFull): ${why}`;
}

/** What runs on a folder (the model's exclusive operations: one at a time per folder). */
export type OperationKind = 'backup' | 'restore' | 'verify' | 'drill';

const OPERATION_WORDS: Record<OperationKind, { readonly name: string; readonly doing: string; readonly doingTo: (folder: string) => string }> = {
  backup: { name: 'backup', doing: 'backing up', doingTo: (f) => `backing up ${f}` },
  restore: { name: 'restore', doing: 'restoring', doingTo: (f) => `restoring from the backup of ${f}` },
  verify: { name: 'verification', doing: 'verifying', doingTo: (f) => `verifying the backup of ${f}` },
  drill: { name: 'restore drill', doing: 'running a restore drill', doingTo: (f) => `running a restore drill of ${f}` },
};

/** What a folder runs, as the Backups view says it beside the folder: "backing up…", "verifying…". */
function operationDoing(kind: OperationKind): string {
  return `${operationActivity(kind)}…`;
}

/**
 * A folder as described beside its name (the Backups view, the view's title with one folder, the
 * folder pick): what it runs, if anything, then where its backups go. "backing up… · sftp://h/p".
 */
export function folderDescription(where: string | undefined, running: OperationKind | undefined): string | undefined {
  return running ? [operationDoing(running), where].filter(Boolean).join(' · ') : where;
}

/** The same without the ellipsis, to be named in a sentence: "backing up", "running a restore drill". */
export function operationActivity(kind: OperationKind): string {
  return OPERATION_WORDS[kind].doing;
}

/**
 * An operation on a named folder, as the busy message and the log say it: "backing up web", "verifying
 * the backup of web", "restoring from the backup of web", "running a restore drill of web".
 */
export function operationOn(kind: OperationKind, folder: string): string {
  return OPERATION_WORDS[kind].doingTo(folder);
}

/** An operation on a named folder, as the log says how it ended: "Backup of web", "Verification of web", "Restore drill of web". */
export function operationOf(kind: OperationKind, folder: string): string {
  return `${capitalized(OPERATION_WORDS[kind].name)} of ${folder}`;
}

/** The text with its first letter in upper case. */
export function capitalized(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * Said when a command asks a folder for an operation while it runs one (another folder's run does not
 * matter): what it runs, and on which folder. "Offsite is already verifying the backup of web";
 * one the scheduler started is named so: "Offsite is already running a scheduled backup of web".
 */
export function busyText(folder: string, running: { readonly kind: OperationKind; readonly background: boolean }): string {
  const doing = running.background ? `running a scheduled ${OPERATION_WORDS[running.kind].name} of ${folder}` : operationOn(running.kind, folder);
  return `Offsite is already ${doing}`;
}

/** 1 decimal below 10 units, none above: "0 B", "512 B", "1.5 KB", "23 MB", "4.2 GB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = Math.max(0, n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time, sortable and short: "2026-07-27 14:05:09". */
export function formatTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The chain backups continue and restores use: the newest one not marked damaged (-1: none). */
export function currentChainIndex(s: Pick<CollectionStatus, 'chains'>): number {
  return s.chains.findLastIndex((c) => c.damage === undefined);
}

/**
 * Why sets of a chain cannot be restored, by set time: a set's own damage, and every set after it in
 * the chain, which builds on it (a damaged full set makes the whole chain so).
 */
export function unrestorableSets(chain: Pick<ChainStatus, 'sets'>): Map<number, string> {
  const out = new Map<number, string>();
  let after: string | undefined;
  for (const s of chain.sets) {
    if (after !== undefined) out.set(s.time, after);
    else if (s.damage !== undefined) {
      out.set(s.time, `damaged: ${s.damage}`);
      after = `it builds on the damaged ${s.type === 'full' ? 'full' : 'incremental'} set of ${formatTime(s.time)}`;
    }
  }
  return out;
}

/** The newest backup time that can be restored: in the current chain, before its first damaged set. */
export function lastRestorableTime(s: Pick<CollectionStatus, 'chains'>): number | undefined {
  const current = currentChainIndex(s);
  if (current < 0) return undefined;
  const sets = s.chains[current].sets;
  const bad = sets.findIndex((x) => x.damage !== undefined);
  return (bad < 0 ? sets : sets.slice(0, bad)).at(-1)?.time;
}

const PHASES: Record<string, string> = { scan: 'Reading', upload: 'Uploading', download: 'Downloading', write: 'Writing', done: 'Finishing', drill: 'Restoring and comparing' };

/** One line for withProgress: "Reading: 1,234 files, 45 MB read, 12 MB uploaded — src/a.ts". */
export function progressMessage(p: Progress): string {
  const verb = p.operation === 'backup' ? 'read' : p.operation === 'restore' ? 'written' : 'checked';
  const parts = [`${p.files.toLocaleString('en-US')} files`, `${formatBytes(p.bytes)} ${verb}`];
  if (p.uploadedBytes !== undefined && p.uploadedBytes > 0) parts.push(`${formatBytes(p.uploadedBytes)} uploaded`);
  const phase = PHASES[p.phase] ?? p.phase;
  const where = p.path ? ` — ${p.path.length > 60 ? `…${p.path.slice(-59)}` : p.path}` : '';
  return `${phase}: ${parts.join(', ')}${where}`;
}

/** "3 new, 2 changed, 1 deleted; 1.2 MB uploaded in 3.4 s" */
export function statsSummary(s: BackupStats): string {
  const changes = `${s.NewFiles} new, ${s.ChangedFiles} changed, ${s.DeletedFiles} deleted`;
  return `${changes}; ${formatBytes(s.TotalDestinationSizeChange)} uploaded in ${s.ElapsedTime.toFixed(1)} s`;
}

/** The status report shown by "Show Backup Status", one section per folder. */
export function formatStatusReport(folderName: string, url: string, s: CollectionStatus | undefined, error?: string): string {
  const lines = [`${folderName} → ${url}`, ''];
  if (error) {
    lines.push(`  Could not read the remote: ${error}`, '');
    return lines.join('\n');
  }
  const temporary = s?.temporary.length ? `  ${s.temporary.length} temporary upload(s) that did not finish remain; "offsite cleanup" removes them.` : undefined;
  if (!s || s.chains.length === 0) {
    lines.push('  No backups yet.', ...(temporary ? [temporary] : []), '');
    return lines.join('\n');
  }
  const current = currentChainIndex(s);
  s.chains.forEach((c, i) => {
    const label = c.damage !== undefined ? 'Damaged' : i === current ? 'Current' : 'Older';
    lines.push(`  ${label} chain: ${formatTime(c.startTime)} … ${formatTime(c.endTime)}, ${c.sets.length} set(s)${c.hasSignatures ? '' : ' (signatures missing)'}${c.damage !== undefined ? ` — not restorable: its full set: ${c.damage}` : ''}`);
    for (const set of c.sets) {
      lines.push(`    ${set.type === 'full' ? 'full       ' : 'incremental'}  ${formatTime(set.time)}  ${String(set.volumes).padStart(3)} volume(s)  ${formatBytes(set.bytes).padStart(8)}${set.damage !== undefined ? `  damaged: ${set.damage}` : ''}`);
    }
  });
  const i = s.interrupted;
  if (i) {
    lines.push('', i.blocker === undefined ? `  ${i.files.length} file(s) of an interrupted backup remain; the next backup resumes it.` : `  ${i.files.length} file(s) of an interrupted backup remain; it cannot be resumed (${i.blocker}): the next backup or "offsite cleanup" removes them.`);
  }
  if (s.leftovers.length) lines.push('', `  ${s.leftovers.length} file(s) of interrupted backups remain; "offsite cleanup" removes them.`);
  if (temporary) lines.push('', temporary);
  const running = (s.inProgress ?? []).reduce((n, p) => n + p.files.length, 0);
  if (running) lines.push('', `  In progress? ${running} file(s) of an unfinished backup written recently: a backup on another machine may be writing them; "offsite cleanup" keeps them.`);
  for (const d of s.damaged) lines.push('', `  Damaged ${d.type === 'full' ? 'full' : 'incremental'} set of ${formatTime(d.time)} (kept): ${d.reason}.`);
  lines.push('');
  return lines.join('\n');
}

/**
 * The outcome of a restore drill in one sentence: "12 of 340 file(s) restored from the backup of …
 * with an empty cache: 11 identical to the workspace, 1 changed since the backup (not compared)."
 */
export function drillSummary(r: DrillResult): string {
  const parts = [`${r.matched} identical to the workspace`];
  if (r.failed) parts.unshift(`${r.failed} FAILED (damaged, or not restorable)`);
  if (r.changed) parts.push(`${r.changed} changed since the backup (not compared)`);
  return `${r.files.length} of ${r.filesInBackup} file(s) restored from the backup of ${formatTime(r.time)} with an empty cache, as on a new machine: ${parts.join(', ')}`;
}

/** VS Code's default of `diffEditor.maxFileSize` (MB; 1.100's diff editor computes no diff above it). */
const DIFF_MAX_FILE_SIZE_MB = 50;

/**
 * Whether a version of `size` bytes is too large to compare in a diff, under the user's
 * `diffEditor.maxFileSize` (MB, 0 = no limit; VS Code's default when unset or not a number). Such a
 * version is not read into the extension host's memory: it is offered to restore instead (streamed).
 */
export function tooLargeToCompare(size: number, maxFileSizeMB: unknown): boolean {
  const mb = typeof maxFileSizeMB === 'number' && Number.isFinite(maxFileSizeMB) && maxFileSizeMB >= 0 ? maxFileSizeMB : DIFF_MAX_FILE_SIZE_MB;
  return mb > 0 && size > mb * 1024 * 1024;
}
