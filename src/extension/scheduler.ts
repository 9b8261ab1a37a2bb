// Automatic backups while VS Code is open (offsite.schedule minutes apart), and a warning when backups
// went stale (offsite.staleAfter hours without a success). Failures of scheduled runs notify with
// "Show Log" and "Retry", once for a failure that repeats; offsite.notifications decides what is shown. Untrusted workspaces never
// back up. The rules themselves are pure (schedule.ts); the restore drill reminder is drillReminder.ts.
import * as vscode from 'vscode';
import { errorText, isCancelled, isHeldElsewhere } from './engineClient';
import { retentionFailureText, statsSummary } from './format';
import type { BackupModel, FolderBackup } from './model';
import { backupDue, currentFailure, isStale } from './schedule';
import type { Ui } from './ui';

const TICK_MS = 60_000;
/** How often a folder that looks stale or failed has the remote's status read again (cron may have backed it up since). */
const RECHECK_S = 600;

export class Scheduler implements vscode.Disposable {
  private readonly timer: NodeJS.Timeout;
  private readonly first: NodeJS.Timeout;
  /** Remote URL → the lastSuccess we already warned about (stale). */
  private readonly staleWarned = new Map<string, number>();
  /** Setting problems already shown in this window (their messages name the setting and the value). */
  private readonly problemsShown = new Set<string>();
  /** The last keepFull refusal told per remote (a scheduled backup repeats it each run). */
  private readonly retentionSaid = new Map<string, string>();

  constructor(
    private readonly model: BackupModel,
    private readonly ui: Ui,
  ) {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    // Not at activation: let the window settle first.
    this.first = setTimeout(() => void this.tick(), 20_000);
  }

  /** One round: start due backups, warn about stale ones. */
  async tick(now = Date.now() / 1000): Promise<void> {
    if (!vscode.workspace.isTrusted) return;
    const due: Promise<void>[] = [];
    // The record is what this window last saw; cron, another machine or another window may have backed
    // up since: the remote says so before the status bar or a notification says "stale" or "failed".
    // All such folders at once, so that one slow or unreachable remote does not hold up the others.
    // Not one read within RECHECK_S, whoever read it (this check, the Backups view, a command).
    const recheck = this.model.configuredFolders.filter((f) => {
      const rec = this.model.record(f);
      const s = f.config.settings;
      return (isStale(rec, s.staleAfter, now) || currentFailure(rec)) && !f.running && this.model.statusAge(f, now * 1000) >= RECHECK_S * 1000;
    });
    await Promise.all(recheck.map((f) => this.model.refreshStatus(f, { interactive: false }).catch(() => undefined)));
    for (const f of this.model.configuredFolders) {
      const s = f.config.settings;
      this.showProblems(f);
      const rec = this.model.record(f);
      if (!f.running && backupDue(rec, s.schedule, now)) due.push(this.scheduledBackup(f));
      if (s.notifications !== 'off' && isStale(rec, s.staleAfter, now) && this.staleWarned.get(f.config.url) !== rec.lastSuccess) {
        this.staleWarned.set(f.config.url, rec.lastSuccess!);
        const backUp = vscode.l10n.t('Back Up Now');
        const showLog = vscode.l10n.t('Show Log');
        void this.ui
          .notify('warning', vscode.l10n.t('No successful backup of {0} for more than {1} hours.', f.name, s.staleAfter), {}, backUp, showLog)
          .then((a) => this.act(a, f, { [backUp]: 'offsite.backupWorkspace', [showLog]: 'offsite.showLog' }));
      }
    }
    await Promise.all(due);
  }

  /**
   * A setting with a value Offsite cannot use, and that no backup reports (a schedule of "60" or -5
   * means no scheduled backups; a bad staleAfter, no warning): said once per window. Those a backup
   * cannot honour stop it instead, with the same words.
   */
  private showProblems(f: FolderBackup): void {
    if (f.config.settings.notifications === 'off') return;
    for (const p of f.config.problems ?? []) {
      if (p.blocksBackup || this.problemsShown.has(p.message)) continue;
      this.problemsShown.add(p.message);
      const openSettings = vscode.l10n.t('Open Settings');
      void this.ui
        .notify('warning', vscode.l10n.t('Offsite: {0}.', p.message), {}, openSettings)
        .then((a) => a === openSettings && vscode.commands.executeCommand('workbench.action.openSettings', `offsite.${p.setting}`));
    }
  }

  private async scheduledBackup(f: FolderBackup): Promise<void> {
    const level = f.config.settings.notifications;
    // The failure the last attempt ended with (none after a success, cron's too): the same one again is not news.
    const failedBefore = currentFailure(this.model.record(f));
    try {
      const r = await this.model.backup(f, { background: true });
      if (level === 'all') void this.ui.notify('info', vscode.l10n.t('Scheduled backup of {0} done: {1}', f.name, statsSummary(r.stats)));
      // Refused the same way each hour (a chain dated in the future stays so): said once, until it changes.
      const retention = r.retentionFailure?.message;
      if (retention !== undefined && level !== 'off' && this.retentionSaid.get(f.config.url) !== retention) {
        const showLog = vscode.l10n.t('Show Log');
        void this.ui
          .notify('warning', retentionFailureText(f.name, r.retentionFailure!), {}, showLog)
          .then((a) => this.act(a, f, { [showLog]: 'offsite.showLog' }));
      }
      if (retention === undefined) this.retentionSaid.delete(f.config.url);
      else this.retentionSaid.set(f.config.url, retention);
    } catch (e) {
      // Another window or cron is backing up the same remote: not a failure of ours.
      if (isCancelled(e) || isHeldElsewhere(e) || level === 'off') return;
      // A remote down for hours fails every run alike: notified once, then the status bar keeps saying it.
      if (failedBefore !== undefined && failedBefore.message === (e instanceof Error ? e.message : String(e))) return;
      const showLog = vscode.l10n.t('Show Log');
      const retry = vscode.l10n.t('Retry');
      const message = errorText(e);
      void this.ui
        .notify('error', vscode.l10n.t('Scheduled backup of {0} failed: {1}', f.name, message), {}, showLog, retry)
        .then((a) => this.act(a, f, { [showLog]: 'offsite.showLog', [retry]: 'offsite.backupWorkspace' }));
    }
  }

  private act(answer: string | undefined, f: FolderBackup, commands: Record<string, string>): void {
    const command = answer === undefined ? undefined : commands[answer];
    if (command) void vscode.commands.executeCommand(command, f.folder.uri);
  }

  dispose(): void {
    clearInterval(this.timer);
    clearTimeout(this.first);
  }
}
