// The composition root (git's main.ts): builds the log, the engine client (a child process, started on
// first use so activation stays cheap), the model, the commands, the `offsite:` file system, the tree,
// the status bar, the scheduler and the drill reminder, and disposes them all together.
import * as vscode from 'vscode';
import { BackupFileSystemProvider, SCHEME } from './backupFs';
import { CommandCenter } from './commands';
import { EngineClient } from './engineClient';
import { DrillReminder } from './drillReminder';
import { redactUrl } from '../engine/backend/backendUtil';
import { folderDescription } from './format';
import { EngineGateway } from './gateway';
import { BackupModel } from './model';
import { Scheduler } from './scheduler';
import { Secrets } from './secrets';
import { SnapshotTreeProvider, type BackupNode } from './snapshotTree';
import { BackupStatusBar } from './statusBar';
import { STATUS_SCHEME, StatusDocumentProvider } from './statusDocument';
import { Ui } from './ui';

/** What activate() returns: for other extensions and for the integration tests. */
export interface OffsiteApi {
  /** The engine process's pid while it runs (the engine never runs on the extension host's thread). */
  readonly enginePid: () => number | undefined;
  readonly ui: Ui;
  readonly model: BackupModel;
  readonly tree: SnapshotTreeProvider;
  /** The Backups view (its description: where one folder's backups go, and what it runs). */
  readonly backupsView: vscode.TreeView<BackupNode>;
  readonly statusBar: BackupStatusBar;
  readonly scheduler: Scheduler;
  readonly drillReminder: DrillReminder;
  /** The log (the Offsite output channel), and where it is written. */
  readonly log: vscode.LogOutputChannel;
  readonly logUri: vscode.Uri;
  /** How long activate() took, in ms (for the benchmark). */
  readonly activationMs: number;
}

/** How old the Backups view's status may be when the view is shown again. */
const STATUS_MAX_AGE_MS = 5 * 60_000;

export function activate(context: vscode.ExtensionContext): OffsiteApi {
  const t0 = performance.now();
  const log = vscode.window.createOutputChannel('Offsite', { log: true });
  const ui = new Ui();
  const client = new EngineClient({
    hostScript: context.asAbsolutePath('dist/engineLauncher.js'),
    log: (level, message) => log[level === 'debug' ? 'debug' : level](message),
  });
  const secrets = new Secrets(context.secrets, context.globalState, (m) => log.warn(m));
  const gateway = new EngineGateway(client, secrets, ui);
  const model = new BackupModel(gateway, context.globalState, log, ui.operations);
  const statusDoc = new StatusDocumentProvider();
  const fsProvider = new BackupFileSystemProvider(model);
  const tree = new SnapshotTreeProvider(model);
  const treeView = vscode.window.createTreeView('offsite.backups', { treeDataProvider: tree, showCollapseAll: true });
  const statusBar = new BackupStatusBar(model);
  const scheduler = new Scheduler(model, ui);
  const drillReminder = new DrillReminder(model, ui);
  const commands = new CommandCenter(model, ui, secrets, log, statusDoc, fsProvider);

  // The view shows where each folder's backups go, and (one folder: it has no item of its own) what it runs.
  const describeView = () => {
    const folders = model.folders;
    const only = folders.length === 1 ? folders[0] : undefined;
    const where = only?.config.url ? redactUrl(only.config.url) : undefined;
    treeView.description = folderDescription(where, only?.running?.kind);
  };
  describeView();

  const disposables: vscode.Disposable[] = [
    log,
    { dispose: () => client.dispose() },
    model,
    statusDoc,
    fsProvider,
    tree,
    treeView,
    statusBar,
    scheduler,
    drillReminder,
    commands,
    vscode.workspace.registerFileSystemProvider(SCHEME, fsProvider, { isReadonly: true, isCaseSensitive: true }),
    vscode.workspace.registerTextDocumentContentProvider(STATUS_SCHEME, statusDoc),
    model.onDidChangeState(describeView),
    // Shown again after a while: what it shows is read again (cron, another machine or retention may have changed the remote).
    treeView.onDidChangeVisibility((e) => e.visible && void model.refreshOlderThan(STATUS_MAX_AGE_MS)),
  ];
  context.subscriptions.push({ dispose: () => disposables.reverse().forEach((d) => d.dispose()) });
  const activationMs = performance.now() - t0;
  log.debug(`activated in ${activationMs.toFixed(1)} ms`);
  return { enginePid: () => client.pid, ui, model, tree, backupsView: treeView, statusBar, scheduler, drillReminder, log, logUri: context.logUri, activationMs };
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
