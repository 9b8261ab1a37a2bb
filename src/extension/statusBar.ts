// One status bar item for the window: the age of the last backup ("$(cloud-upload) 2h ago"), a
// spinner while one runs, a warning background when the last run failed or backups went stale. The
// text is computed by statusBarView (schedule.ts) from the model; this only renders it.
import * as vscode from 'vscode';
import { redactUrl } from '../engine/backend/backendUtil';
import type { BackupModel } from './model';
import { statusBarView, type StatusBarView } from './schedule';

export class BackupStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly ticker: NodeJS.Timeout;
  private _view?: StatusBarView;

  constructor(private readonly model: BackupModel) {
    this.item = vscode.window.createStatusBarItem('offsite.status', vscode.StatusBarAlignment.Left, -100);
    this.item.name = vscode.l10n.t('Offsite Backup');
    this.item.command = 'offsite.showStatus';
    this.disposables.push(this.item, model.onDidChangeState(() => this.render()), vscode.workspace.onDidGrantWorkspaceTrust(() => this.render()));
    // The age in the text ("5m ago") must move on even when nothing happens.
    this.ticker = setInterval(() => this.render(), 30_000);
    this.render();
  }

  /** What the item shows now (for tests and the status command). */
  get view(): StatusBarView | undefined {
    return this._view;
  }

  get warning(): boolean {
    return this.item.backgroundColor !== undefined;
  }

  render(): void {
    const folders = this.model.configuredFolders;
    if (folders.length === 0) {
      this._view = undefined;
      this.item.hide();
      return;
    }
    const view = statusBarView(
      folders.map((f) => ({ name: f.name, url: redactUrl(f.config.url), record: this.model.record(f), running: f.running?.kind, staleAfterHours: f.config.settings.staleAfter })),
      Date.now() / 1000,
    );
    const untrusted = !vscode.workspace.isTrusted;
    this._view = untrusted ? { ...view, text: `$(shield) ${vscode.l10n.t('Backups off')}`, warning: false } : view;
    this.item.text = this._view.text;
    const md = new vscode.MarkdownString(untrusted ? `${vscode.l10n.t('Offsite does not back up untrusted workspaces.')}\n\n---\n\n${view.tooltip}` : view.tooltip, true);
    this.item.tooltip = md;
    this.item.backgroundColor = this._view.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.item.show();
  }

  dispose(): void {
    clearInterval(this.ticker);
    for (const d of this.disposables) d.dispose();
  }
}
