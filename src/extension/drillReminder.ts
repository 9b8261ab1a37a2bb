// The restore drill reminder: when no drill has run for offsite.drillEvery days (0 = never remind), a
// notification offers "Run Drill" and "Later". Checked once after startup (lazily: the window settles
// first) and after each successful backup; the check is cheap, the engine reads one small file of the
// local cache (lastDrill), no remote and no key. offsite.notifications = off silences it. "Later"
// snoozes it for a day in every window; otherwise a window reminds at most once a day per remote.
import * as vscode from 'vscode';
import { formatAge, formatTime } from './format';
import type { BackupModel, FolderBackup } from './model';
import { drillDue } from './schedule';
import type { Ui } from './ui';

const DAY = 86400;

export type DrillAnswer = 'run' | 'later' | undefined;

export class DrillReminder implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly startup: NodeJS.Timeout;
  /** Remote URL → when this window last reminded about it. */
  private readonly remindedAt = new Map<string, number>();
  private startupDone = false;

  constructor(
    private readonly model: BackupModel,
    private readonly ui: Ui,
    opts: { startupDelayMs?: number } = {},
  ) {
    this.startup = setTimeout(() => {
      void this.checkAll().finally(() => (this.startupDone = true));
    }, opts.startupDelayMs ?? 15_000);
    this.disposables.push(model.onDidBackup((f) => void this.check(f).catch(() => undefined)));
  }

  /** The check after startup has run. */
  get startupChecked(): boolean {
    return this.startupDone;
  }

  /** Checks every configured folder; returns those reminded about. */
  async checkAll(now?: number): Promise<FolderBackup[]> {
    const reminded: FolderBackup[] = [];
    for (const f of this.model.configuredFolders) if (await this.check(f, now).catch(() => false)) reminded.push(f);
    return reminded;
  }

  /** Reminds about one folder if a drill is due; true when it did. */
  async check(f: FolderBackup, now = Date.now() / 1000): Promise<boolean> {
    const s = f.config.settings;
    if (!vscode.workspace.isTrusted || !f.config.configured || s.notifications === 'off' || !(s.drillEvery > 0)) return false;
    await this.model.refreshLastDrill(f);
    const rec = this.model.record(f);
    if (!drillDue(rec, s.drillEvery, now)) return false;
    const last = this.remindedAt.get(f.config.url);
    if (last !== undefined && now - last < DAY) return false;
    this.remindedAt.set(f.config.url, now);
    const run = vscode.l10n.t('Run Drill');
    const later = vscode.l10n.t('Later');
    const why = vscode.l10n.t('A drill restores a sample of files as a new machine would (no local cache, your private key) and compares them with the workspace.');
    const message = rec.lastDrill
      ? vscode.l10n.t('Time for a restore drill of {0}: the last one ran {1} ({2}). {3}', f.name, formatTime(rec.lastDrill.at), formatAge(now - rec.lastDrill.at), why)
      : vscode.l10n.t('Time for a restore drill of {0}: none has run yet. {1}', f.name, why);
    void this.ui.notify('info', message, {}, run, later).then((a) => this.answer(f, a === run ? 'run' : a === later ? 'later' : undefined));
    return true;
  }

  /** What the reminder's buttons do: run the drill now, or snooze the reminder for a day. */
  async answer(f: FolderBackup, a: DrillAnswer, now = Date.now() / 1000): Promise<void> {
    if (a === 'run') await vscode.commands.executeCommand('offsite.drill', f.folder.uri);
    else if (a === 'later') await this.model.updateRecord(f, { drillSnoozedUntil: now + DAY });
  }

  dispose(): void {
    clearTimeout(this.startup);
    for (const d of this.disposables) d.dispose();
  }
}
