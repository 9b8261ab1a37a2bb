// Every question and notification goes through here, so there is one place that (a) shows them with
// VS Code's own UI and (b) records them, and lets the integration tests answer the questions that
// would otherwise wait for a person (modal dialogs, input boxes, quick picks, file dialogs). Outside
// tests nothing is scripted and this is a thin pass-through.
import * as vscode from 'vscode';
import { Cancellables } from './cancellables';

export type Severity = 'info' | 'warning' | 'error';

export interface Notice {
  readonly severity: Severity;
  readonly message: string;
  readonly actions: readonly string[];
  readonly modal: boolean;
  readonly detail?: string;
}

/** One scripted answer: an action/label/text, undefined (dismissed), or a function of the prompt. */
export type Answer = string | undefined | ((prompt: string) => string | undefined);

export interface Prompt {
  readonly kind: 'notify' | 'input' | 'pick' | 'open' | 'save';
  readonly text: string;
}

export class Ui {
  /** Every cancellable operation of the window (the Cancel command reaches the reads shown here too). */
  constructor(readonly operations = new Cancellables()) {}

  readonly notices: Notice[] = [];
  readonly prompts: Prompt[] = [];
  /** The titles of the progress notifications shown (withProgress). */
  readonly progressShown: string[] = [];
  /** How long work runs before withProgress shows its notification (a quick read shows none). */
  progressDelayMs = 1000;
  private readonly running = new Set<AbortController>();
  private readonly answers: Answer[] = [];
  private readonly clicks: string[] = [];
  /** Tests: questions get scripted answers, and a question with none is dismissed instead of waiting. */
  scripted = false;

  /** Tests: queue answers for the next questions, in order. */
  script(...answers: Answer[]): void {
    this.scripted = true;
    this.answers.push(...answers);
  }

  /** Tests: the next non-modal notification that offers this action gets it clicked. */
  click(action: string): void {
    this.scripted = true;
    this.clicks.push(action);
  }

  /** Tests: the answers (and clicks) not used yet (and forgets them). */
  takeUnusedAnswers(): Answer[] {
    return [...this.answers.splice(0), ...this.clicks.splice(0)];
  }

  /**
   * A notification. Non-modal ones are shown and not waited for by callers that don't need the
   * answer (a command should not hang on a notification); modal ones are questions.
   */
  notify(severity: Severity, message: string, opts: { modal?: boolean; detail?: string } = {}, ...actions: string[]): Thenable<string | undefined> {
    this.record({ severity, message, actions, modal: !!opts.modal, detail: opts.detail });
    if (opts.modal && this.scripted) return Promise.resolve(this.answer('notify', message));
    const show = severity === 'error' ? vscode.window.showErrorMessage : severity === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    const shown = show(message, { modal: !!opts.modal, detail: opts.detail }, ...actions);
    // In tests a non-modal notification is clicked only when scripted: do not leave callers waiting for it.
    if (this.scripted && !opts.modal) return Promise.resolve(this.clicks.length && actions.includes(this.clicks[0]) ? this.clicks.shift() : undefined);
    return shown;
  }

  /**
   * Runs a task that may take long (reading a version of a big file from a slow remote): past
   * progressDelayMs a cancellable progress notification shows until it ends; Cancel aborts its signal.
   */
  async withProgress<T>(title: string, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    this.running.add(abort);
    const unregister = this.operations.add(abort);
    const work = task(abort.signal);
    const show = () => {
      this.progressShown.push(title);
      void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (_progress, token) => {
        const sub = token.onCancellationRequested(() => abort.abort());
        return work.then(
          () => sub.dispose(),
          () => sub.dispose(),
        );
      });
    };
    const timer = this.progressDelayMs > 0 ? setTimeout(show, this.progressDelayMs) : (show(), undefined);
    try {
      return await work;
    } finally {
      clearTimeout(timer);
      this.running.delete(abort);
      unregister();
    }
  }

  /** Tests: what the Cancel button of withProgress's notifications does, for all that run (only those); how many. */
  cancelProgress(): number {
    for (const a of this.running) a.abort();
    return this.running.size;
  }

  async input(options: vscode.InputBoxOptions): Promise<string | undefined> {
    const text = [options.title, options.prompt].filter(Boolean).join(' — ');
    if (this.scripted) {
      const a = this.answer('input', text);
      if (a !== undefined && options.validateInput) {
        const problem = await options.validateInput(a);
        if (problem) throw new Error(`Scripted input "${a}" rejected: ${typeof problem === 'string' ? problem : problem.message}`);
      }
      return a;
    }
    this.prompts.push({ kind: 'input', text });
    return vscode.window.showInputBox({ ignoreFocusOut: true, ...options });
  }

  /** A quick pick; a scripted answer selects the item whose label (without icons) equals or starts with it. */
  async pick<T extends vscode.QuickPickItem>(items: readonly T[] | Thenable<readonly T[]>, options: vscode.QuickPickOptions): Promise<T | undefined> {
    const text = options.title ?? options.placeHolder ?? '';
    if (this.scripted) {
      const list = await items;
      const a = this.answer('pick', text);
      if (a === undefined) return undefined;
      const clean = (l: string) => l.replace(/\$\([a-z0-9~-]+\)\s*/g, '');
      const found = list.find((i) => clean(i.label) === a) ?? list.find((i) => clean(i.label).startsWith(a));
      if (!found) throw new Error(`Scripted pick "${a}" not among: ${list.map((i) => clean(i.label)).join(' | ')}`);
      return found;
    }
    this.prompts.push({ kind: 'pick', text });
    return vscode.window.showQuickPick(items, { ignoreFocusOut: true, ...options }) as Thenable<T | undefined>;
  }

  async openDialog(options: vscode.OpenDialogOptions): Promise<vscode.Uri | undefined> {
    if (this.scripted) {
      const a = this.answer('open', options.title ?? '');
      return a === undefined ? undefined : vscode.Uri.file(a);
    }
    this.prompts.push({ kind: 'open', text: options.title ?? '' });
    return (await vscode.window.showOpenDialog(options))?.[0];
  }

  async saveDialog(options: vscode.SaveDialogOptions): Promise<vscode.Uri | undefined> {
    if (this.scripted) {
      const a = this.answer('save', options.title ?? '');
      return a === undefined ? undefined : vscode.Uri.file(a);
    }
    this.prompts.push({ kind: 'save', text: options.title ?? '' });
    return vscode.window.showSaveDialog(options);
  }

  private answer(kind: Prompt['kind'], text: string): string | undefined {
    this.prompts.push({ kind, text });
    const a = this.answers.shift();
    return typeof a === 'function' ? a(text) : a;
  }

  private record(n: Notice): void {
    this.notices.push(n);
    if (this.notices.length > 200) this.notices.splice(0, this.notices.length - 200);
  }
}
