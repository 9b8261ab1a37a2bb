// "Show Backup Status" opens a read-only text document on the `offsite-status:` scheme; its content is
// set by the command and refreshed in place when the command runs again.
import * as vscode from 'vscode';

export const STATUS_SCHEME = 'offsite-status';
export const STATUS_URI = vscode.Uri.from({ scheme: STATUS_SCHEME, path: '/Offsite Backup Status.txt' });

export class StatusDocumentProvider implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly _onDidChange = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this._onDidChange.event;
  private text = '';

  provideTextDocumentContent(): string {
    return this.text;
  }

  set content(text: string) {
    this.text = text;
    this._onDidChange.fire(STATUS_URI);
  }

  dispose(): void {
    this._onDidChange.dispose();
  }
}
