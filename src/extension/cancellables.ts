// What runs now and can be cancelled, whoever started it: a backup, restore, verify or drill (the
// model's exclusive operations) and the reads shown with a progress notification (a version of a
// file, its history, a restore of one file: Ui.withProgress). "Cancel Running Backup, Restore or
// Verify" cancels them all; the context key offsite.cancellable offers it while any runs.
import * as vscode from 'vscode';

export class Cancellables implements vscode.Disposable {
  private readonly running = new Set<AbortController>();

  /** Registers an operation's controller until the returned function is called (when it ends). */
  add(abort: AbortController): () => void {
    this.running.add(abort);
    this.changed();
    return () => {
      if (this.running.delete(abort)) this.changed();
    };
  }

  get size(): number {
    return this.running.size;
  }

  /** Cancels every operation that runs and is not cancelled yet; how many. */
  cancelAll(): number {
    let n = 0;
    for (const a of this.running) {
      if (a.signal.aborted) continue;
      a.abort();
      n++;
    }
    return n;
  }

  private changed(): void {
    void vscode.commands.executeCommand('setContext', 'offsite.cancellable', this.running.size > 0);
  }

  dispose(): void {
    this.cancelAll();
  }
}
