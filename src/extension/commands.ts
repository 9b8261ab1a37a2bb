// Every command of the extension, registered through one wrapper (git's createCommand): command bodies
// are the happy path; the wrapper turns a typed EngineError into one notification with the actions
// that help (Configure, Open Settings, Show Log, Manage Workspace Trust), stays silent on
// cancellation, and never makes the command wait on the notification.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { diffMaxFileSizeMB, fromBackupUri, originalUri, SCHEME, toBackupUri, type BackupFileSystemProvider } from './backupFs';
import { readSettings, targetOf, updateSetting } from './config';
import type { Refusal } from '../engine/ops/setReader';
import { describeNotRestored } from '../engine/ops/notRestored';
import { EngineError, errorText, isCancelled, isHeldElsewhere, needsRestoreKey, needsSignKey, SettingError } from './engineClient';
import { redactUrl } from '../engine/backend/backendUtil';
import { crontabLine, cronUrl, offsiteForCron, offsiteOnPath, workspaceRelative } from './folderConfig';
import { drillSummary, formatAge, formatBytes, formatStatusReport, formatTime, folderDescription, retentionFailureText, statsSummary, tooLargeToCompare } from './format';
import { BusyError, type BackupModel, type FolderBackup } from './model';
import { currentFailure, drillLine } from './schedule';
import type { Secrets } from './secrets';
import { versionTimeOf, type EntryNode, type SetNode } from './snapshotTree';
import { STATUS_URI, type StatusDocumentProvider } from './statusDocument';
import type { Ui } from './ui';

type Handler = (...args: unknown[]) => unknown;

/** An entry's type in words (as the engine's inspect.ts names them; that module is not for the extension host's bundle). */
const TYPE_WORDS: Readonly<Record<string, string>> = { reg: 'file', dir: 'folder', sym: 'symlink', fifo: 'fifo', chr: 'character device', blk: 'block device' };

interface TimeChoice {
  readonly time: number;
  readonly label: string;
}

function fail(code: string, message: string, hint?: string): never {
  throw new EngineError({ code, message, hint });
}

/** The `offsite:` URI of a file's version: what a diff shows, and the key under which the file system keeps the copy it read. */
function versionUri(f: FolderBackup, rel: string, time: number): vscode.Uri {
  return toBackupUri(vscode.Uri.joinPath(f.folder.uri, ...rel.split('/')), { folder: f.folder.uri.toString(), path: rel, time });
}

function hasFolder(x: unknown): x is { folder: FolderBackup } {
  return typeof x === 'object' && x !== null && 'folder' in x && typeof (x as { folder: unknown }).folder === 'object' && 'config' in ((x as { folder: object }).folder ?? {});
}

export class CommandCenter implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly model: BackupModel,
    private readonly ui: Ui,
    private readonly secrets: Secrets,
    private readonly log: vscode.LogOutputChannel,
    private readonly statusDoc: StatusDocumentProvider,
    private readonly versions: BackupFileSystemProvider,
  ) {
    const table: Record<string, Handler> = {
      'offsite.backupWorkspace': (a) => this.backupWorkspace(a),
      'offsite.restoreFileAsOf': (a) => this.restoreFileAsOf(a),
      'offsite.compareWithBackup': (a) => this.compareWithBackup(a),
      'offsite.restoreWorkspaceTo': (a) => this.restoreWorkspaceTo(a),
      'offsite.verify': (a) => this.verify(a),
      'offsite.drill': (a) => this.drill(a),
      'offsite.showStatus': () => this.showStatus(),
      'offsite.showLog': () => this.log.show(),
      'offsite.configure': (a) => this.configure(a),
      'offsite.refresh': () => this.refresh(),
      'offsite.createKey': (a) => this.createKey(a),
      'offsite.copyCronCommand': (a) => this.copyCronCommand(a),
      // From a busy folder's item in the Backups view: that folder's run; else everything that runs.
      'offsite.cancel': (a) => this.model.cancel(hasFolder(a) ? a.folder : undefined),
      'offsite.forgetSecrets': () => this.forgetSecrets(),
      'offsite.compareWithCurrent': (a) => this.compareWithCurrent(a as EntryNode),
      'offsite.restoreVersion': (a) => this.restoreVersion(a as EntryNode),
      'offsite.restoreTo': (a) => this.restoreTo(a as EntryNode | SetNode),
      'offsite.restoreThisVersion': (a) => this.restoreThisVersion(a),
    };
    for (const [id, fn] of Object.entries(table)) this.disposables.push(vscode.commands.registerCommand(id, this.createCommand(id, fn)));
    // The diff's "Restore this version" title action: shown when the active tab compares a backup version.
    const updateDiffContext = () => void vscode.commands.executeCommand('setContext', 'offsite.inBackupDiff', this.activeBackupUri() !== undefined);
    this.disposables.push(vscode.window.tabGroups.onDidChangeTabs(updateDiffContext), vscode.window.onDidChangeActiveTextEditor(updateDiffContext));
  }

  /**
   * The one wrapper: errors → notifications, cancellation → silence; each logged once (BackupModel.logEnd:
   * here, unless the operation that failed logged it). The command resolves to undefined on error.
   */
  private createCommand(id: string, fn: Handler): Handler {
    return async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (e) {
        this.showError(id, e);
        return undefined;
      }
    };
  }

  private showError(id: string, e: unknown): void {
    // Once: unless the operation that failed (the model's) has logged it, as the command.
    this.model.logEnd(id, e);
    if (isCancelled(e)) return;
    if (e instanceof BusyError) {
      this.showBusy(e);
      return;
    }
    const showLog = vscode.l10n.t('Show Log');
    const configure = vscode.l10n.t('Configure Backup…');
    const openSettings = vscode.l10n.t('Open Settings');
    const manageTrust = vscode.l10n.t('Manage Workspace Trust');
    if (!(e instanceof EngineError)) {
      void this.ui.notify('error', vscode.l10n.t('Offsite: {0}', e instanceof Error ? e.message : String(e)), {}, showLog).then((a) => a && this.log.show());
      return;
    }
    const actions: Record<string, () => unknown> = {};
    switch (e.code) {
      case 'noFolder':
        // (Not "Configure Backup…": with no folder it could only say this again.)
        actions[vscode.l10n.t('Open Folder')] = () => vscode.commands.executeCommand('workbench.action.files.openFolder');
        break;
      case 'setting':
        actions[openSettings] = () => vscode.commands.executeCommand('workbench.action.openSettings', e instanceof SettingError ? e.setting : '@ext:offsite.offsite');
        break;
      case 'config':
        actions[configure] = () => vscode.commands.executeCommand('offsite.configure');
        break;
      case 'untrusted':
        actions[manageTrust] = () => vscode.commands.executeCommand('workbench.trust.manage');
        break;
      case 'key':
      case 'usage':
      case 'unreachable':
      case 'auth':
      case 'permission':
      case 'noSpace':
      case 'hostKey':
        actions[openSettings] = () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:offsite.offsite');
        break;
    }
    // The private key is missing: errorText says to set offsite.restoreKey, and Open Settings goes there.
    if (needsRestoreKey(e)) actions[openSettings] = () => vscode.commands.executeCommand('workbench.action.openSettings', 'offsite.restoreKey');
    // Not signed by the key set: errorText says to check offsite.signKey, and Open Settings goes there.
    if (needsSignKey(e)) actions[openSettings] = () => vscode.commands.executeCommand('workbench.action.openSettings', 'offsite.signKey');
    actions[showLog] = () => this.log.show();
    const text = errorText(e);
    // Not found, a remote another run holds, or nothing to act on (no file open, an unsaved document):
    // said, not alarmed. (A folder busy here is showBusy's.)
    const severity = e.code === 'notFound' || e.code === 'target' || e.code === 'noFolder' || isHeldElsewhere(e) ? 'warning' : 'error';
    void this.ui.notify(severity, vscode.l10n.t('Offsite: {0}', text.replace(/\.\.$/, '.')), {}, ...Object.keys(actions)).then((a) => a && actions[a]?.());
  }

  /**
   * A command asked of a folder that runs an operation: said (which folder, what it runs), with a way
   * to its progress (the notification center; a scheduled backup shows none: the log) and to cancel it.
   */
  private showBusy(e: BusyError): void {
    // (model.assertIdle, which refused it, has logged it.)
    const { running } = e;
    const showProgress = vscode.l10n.t('Show Progress');
    const showLog = vscode.l10n.t('Show Log');
    const cancel = vscode.l10n.t('Cancel It');
    const actions: Record<string, () => unknown> = running.background
      ? { [showLog]: () => this.log.show() }
      : { [showProgress]: () => vscode.commands.executeCommand('notifications.showList') };
    actions[cancel] = () => running.abort.abort();
    // errorText: the message and BusyError's hint, "Wait for it to finish, or cancel it".
    void this.ui.notify('info', `${errorText(e)}.`, {}, ...Object.keys(actions)).then((a) => a && actions[a]?.());
  }

  // ---- targets ---------------------------------------------------------------------------------

  /** The folder a command acts on: from its argument (URI or tree node), the active editor, the only folder, or a pick. */
  private async pickFolder(arg: unknown, opts: { configured?: boolean } = { configured: true }): Promise<FolderBackup> {
    let f: FolderBackup | undefined;
    if (hasFolder(arg)) f = arg.folder;
    else if (arg instanceof vscode.Uri) f = this.model.folderOf(arg.scheme === SCHEME ? originalUri(arg) : arg);
    if (!f) {
      const folders = this.model.folders;
      if (folders.length === 0) fail('noFolder', vscode.l10n.t('No folder is open'), vscode.l10n.t('Open a folder to back it up'));
      const candidates = opts.configured ? folders.filter((x) => x.config.configured) : [...folders];
      const active = vscode.window.activeTextEditor?.document.uri;
      const byEditor = active ? this.model.folderOf(active) : undefined;
      if (candidates.length === 1) f = candidates[0];
      else if (byEditor && candidates.includes(byEditor) && arg === undefined && folders.length > 1 && candidates.length > 1) f = byEditor;
      else if (candidates.length > 1) {
        const pick = await this.ui.pick(
          candidates.map((x) => ({ label: x.name, description: folderDescription(x.config.url ? redactUrl(x.config.url) : undefined, x.running?.kind) ?? '', folder: x })),
          { title: vscode.l10n.t('Which folder?') },
        );
        if (!pick) fail('cancelled', 'Cancelled');
        f = pick.folder;
      } else f = folders[0];
    }
    if (opts.configured && !f.config.configured) this.notConfigured(f);
    return f;
  }

  private notConfigured(f: FolderBackup): never {
    const missing = !f.config.url ? 'offsite.remote' : 'offsite.encryptKeys';
    fail('config', vscode.l10n.t('Offsite is not configured for {0}: {1} is not set', f.name, missing), vscode.l10n.t('Run "Offsite: Configure Backup…", or set offsite.remote and offsite.encryptKeys'));
  }

  private requireTrust(): void {
    if (!vscode.workspace.isTrusted) {
      fail('untrusted', vscode.l10n.t('Offsite does not back up untrusted workspaces'), vscode.l10n.t('Trust this workspace if you want it backed up (its settings could otherwise send your files to a stranger\'s remote)'));
    }
  }

  /**
   * The file a command acts on: its argument, or the file of the active editor or tab (a binary file or
   * an image has no text editor); a document that is no file on disk is said to be so.
   */
  private targetFile(arg: unknown, action: 'compare' | 'restore'): vscode.Uri {
    let uri: vscode.Uri | undefined;
    if (arg instanceof vscode.Uri) uri = arg.scheme === SCHEME ? originalUri(arg) : arg;
    else {
      const active = this.activeBackupUri();
      uri = active ? originalUri(active) : this.activeResource();
    }
    if (!uri) {
      fail('target', action === 'compare' ? vscode.l10n.t('No file to compare') : vscode.l10n.t('No file to restore'), vscode.l10n.t('Open a file of the workspace first, or pick one in the Backups view (deleted files are listed there)'));
    }
    const name = path.posix.basename(uri.path) || uri.toString(true);
    if (uri.scheme === 'untitled') fail('target', vscode.l10n.t('{0} is not saved yet: Offsite backs up files on disk', name), vscode.l10n.t('Save it in the workspace folder: the next backup keeps it'));
    if (uri.scheme !== 'file') fail('target', vscode.l10n.t('{0} ({1}:) is not a file on disk: Offsite backs up the files of the workspace', name, uri.scheme), vscode.l10n.t('Open the file itself, or pick one in the Backups view'));
    return uri;
  }

  /** The file shown in the editor area: the active text editor's, else the active tab's (binary, image, notebook, the right side of a diff). */
  private activeResource(): vscode.Uri | undefined {
    const editor = vscode.window.activeTextEditor?.document.uri;
    if (editor?.scheme === 'file') return editor;
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    const tab =
      input instanceof vscode.TabInputText || input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputNotebook ? input.uri
      : input instanceof vscode.TabInputTextDiff ? input.modified
      : undefined;
    // (The output panel's document, say, when it has the focus: the file of the editor area is meant.)
    return tab?.scheme === 'file' ? tab : (editor ?? tab);
  }

  /** The folder of a file a command compares or restores, configured. */
  private folderOfFile(uri: vscode.Uri): FolderBackup {
    const f = this.model.folderOf(uri);
    if (!f) {
      if (this.model.folders.length === 0) fail('noFolder', vscode.l10n.t('{0} is not in a folder of the workspace: no folder is open', uri.fsPath), vscode.l10n.t('Open the folder it is in to back it up'));
      fail('target', vscode.l10n.t('{0} is not in a folder of the workspace: Offsite backs up the workspace folders', uri.fsPath));
    }
    if (!f.config.configured) this.notConfigured(f);
    return f;
  }

  private relativePath(f: FolderBackup, uri: vscode.Uri): string {
    const rel = workspaceRelative(f.folder.uri.fsPath, uri.fsPath);
    if (rel === undefined) fail('target', vscode.l10n.t('{0} is not inside the workspace folder {1}', uri.fsPath, f.name));
    return rel;
  }

  /** The backup version shown by the active tab (the left side of a backup diff, or a backup file alone). */
  private activeBackupUri(): vscode.Uri | undefined {
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    if (input instanceof vscode.TabInputTextDiff && input.original.scheme === SCHEME) return input.original;
    if (input instanceof vscode.TabInputText && input.uri.scheme === SCHEME) return input.uri;
    return undefined;
  }

  // ---- time ------------------------------------------------------------------------------------

  /**
   * A time to restore or compare as of: the dates where this file changed (file-first history), or the
   * backup sets of the folder, or one typed in duplicity's syntax (3D, 2W, 2026-07-27).
   */
  private async pickTime(f: FolderBackup, rel: string | undefined, title: string): Promise<TimeChoice> {
    const typeIt = { label: `$(edit) ${vscode.l10n.t('Type a date or time…')}`, description: vscode.l10n.t('e.g. 3D, 2W, 1h30m, 2026-07-27, 2026-07-27T14:00'), time: -1 };
    const nowS = Date.now() / 1000;
    const items = (async () => {
      let picks: { label: string; description: string; time: number }[];
      if (rel !== undefined) {
        // (Every set's signatures: with many sets not cached here, a while.)
        const versions = await this.ui.withProgress(vscode.l10n.t('Offsite: reading the versions of {0}…', rel), (signal) =>
          this.model.read(f, 'history', (remote, keys) => ({ op: 'history', remote, keys, path: rel }), { signal }),
        );
        // Only the sets where it was a file can be shown or restored as one (not where it was a
        // folder or a symlink); a version without a type comes from an older engine: a file.
        picks = versions
          .filter((v) => v.action !== 'deleted' && (v.type === undefined || v.type === 'reg'))
          .reverse()
          .map((v) => ({ label: formatTime(v.time), description: `${v.action === 'new' ? vscode.l10n.t('added') : vscode.l10n.t('changed')} · ${formatAge(nowS - v.time)}`, time: v.time }));
        if (picks.length === 0) {
          // Backed up, but never as a file (a symlink, a folder): saying it is in no backup would be wrong.
          const other = versions.filter((v) => v.action !== 'deleted' && v.type !== undefined && v.type !== 'reg').at(-1);
          if (other) {
            fail(
              'notFound',
              vscode.l10n.t('{0} is backed up as a {1}, not as a file: only a file\'s versions can be compared or restored here', rel, TYPE_WORDS[other.type ?? ''] ?? other.type),
              other.type === 'sym' ? vscode.l10n.t('Open the file it points to; Restore Workspace To… restores symlinks') : vscode.l10n.t('Its files are in the Backups view'),
            );
          }
          fail('notFound', vscode.l10n.t('{0} is in no backup of {1}', rel, f.name), vscode.l10n.t('Back it up first, or check offsite.exclude and .gitignore; a file renamed or moved since has its versions under its old name, in the Backups view'));
        }
      } else {
        const s = await this.model.statusOf(f);
        picks = s.chains
          .flatMap((c) => c.sets)
          .reverse()
          .map((set) => ({ label: formatTime(set.time), description: `${set.type === 'full' ? vscode.l10n.t('full') : vscode.l10n.t('incremental')} · ${formatAge(nowS - set.time)}`, time: set.time }));
        if (picks.length === 0) fail('notFound', vscode.l10n.t('There is no backup of {0} yet', f.name), vscode.l10n.t('Run "Offsite: Backup Workspace" first'));
      }
      return [...picks, typeIt];
    })();
    // Let errors of the listing surface before the quick pick opens (it would otherwise spin).
    await items;
    const pick = await this.ui.pick(await items, { title, placeHolder: rel !== undefined ? vscode.l10n.t('Versions of {0}, newest first', rel) : vscode.l10n.t('Backups of {0}, newest first', f.name), matchOnDescription: true });
    if (!pick) fail('cancelled', 'Cancelled');
    if (pick.time >= 0) return { time: pick.time, label: pick.label };
    for (let prompt = vscode.l10n.t('As of when? duplicity\'s syntax: 3D (3 days ago), 2W, 1h30m, 2026-07-27, 2026-07-27T14:00:00'); ; ) {
      const text = await this.ui.input({ title, prompt, placeHolder: '3D' });
      if (text === undefined) fail('cancelled', 'Cancelled');
      try {
        const time = await this.model.gateway.client.request({ op: 'parseTime', time: text.trim() });
        return { time, label: formatTime(time) };
      } catch (e) {
        if (!EngineError.is(e)) throw e;
        prompt = e.message;
      }
    }
  }

  // ---- backup ----------------------------------------------------------------------------------

  /** Backs up every configured folder (or the one given); returns the summaries. */
  private async backupWorkspace(arg: unknown): Promise<unknown[]> {
    this.requireTrust();
    const targets = arg !== undefined ? [await this.pickFolder(arg)] : this.model.configuredFolders;
    if (targets.length === 0) {
      if (this.model.folders.length === 0) fail('noFolder', vscode.l10n.t('No folder is open'), vscode.l10n.t('Open a folder to back it up'));
      this.notConfigured(this.model.folders[0]);
    }
    const results: unknown[] = [];
    const failures: { f: FolderBackup; e: unknown }[] = [];
    let cancelled: unknown;
    for (const f of targets) {
      let r: Awaited<ReturnType<BackupModel['backup']>>;
      try {
        r = await this.model.backup(f);
      } catch (e) {
        // One folder: its error, as any command's. Several: a folder that fails or is busy keeps none
        // of the others from being backed up (all are reported at the end); a cancel stops them all.
        if (targets.length === 1) throw e;
        if (isCancelled(e)) {
          cancelled = e;
          break;
        }
        failures.push({ f, e });
        continue;
      }
      results.push(r);
      const summary = statsSummary(r.stats);
      if (r.errors.length) {
        const showLog = vscode.l10n.t('Show Log');
        void this.ui
          .notify('warning', vscode.l10n.t('Backup of {0} done, but {1} file(s) could not be read: {2}', f.name, r.errors.length, r.errors.slice(0, 3).map((x) => x.path).join(', ')), {}, showLog)
          .then((a) => a && this.log.show());
      } else void this.ui.notify('info', vscode.l10n.t('Backup of {0} done ({1}): {2}', f.name, r.type === 'full' ? vscode.l10n.t('full') : vscode.l10n.t('incremental'), summary));
      if (r.retentionFailure) {
        const showLog = vscode.l10n.t('Show Log');
        void this.ui.notify('warning', retentionFailureText(f.name, r.retentionFailure), {}, showLog).then((a) => a && this.log.show());
      }
    }
    if (failures.length) this.notifyNotBackedUp(failures, targets.length);
    if (cancelled !== undefined) throw cancelled;
    return results;
  }

  /** One notification for the folders of a multi-folder backup that failed or were busy (a warning when all were only busy). */
  private notifyNotBackedUp(failures: readonly { f: FolderBackup; e: unknown }[], of: number): void {
    // (The model has logged each.)
    const reasons = failures.map(({ f, e }) => {
      return `${f.name}: ${errorText(e).replace(/\.+$/, '')}`;
    });
    const onlyBusy = failures.every(({ e }) => isHeldElsewhere(e));
    const showLog = vscode.l10n.t('Show Log');
    const openSettings = vscode.l10n.t('Open Settings');
    const actions = onlyBusy ? [showLog] : [openSettings, showLog];
    void this.ui
      .notify(onlyBusy ? 'warning' : 'error', vscode.l10n.t('Offsite: {0} of {1} folders not backed up: {2}.', failures.length, of, reasons.join('; ')), {}, ...actions)
      .then((a) => {
        if (a === showLog) this.log.show();
        else if (a === openSettings) void vscode.commands.executeCommand('workbench.action.openSettings', '@ext:offsite.offsite');
      });
  }

  // ---- compare and restore one file --------------------------------------------------------------

  private async compareWithBackup(arg: unknown): Promise<vscode.Uri | undefined> {
    const file = this.targetFile(arg, 'compare');
    const f = this.folderOfFile(file);
    const rel = this.relativePath(f, file);
    const t = await this.pickTime(f, rel, vscode.l10n.t('Compare {0} with the backup of…', path.basename(file.fsPath)));
    return this.openComparison(f, file, rel, t);
  }

  private async restoreFileAsOf(arg: unknown): Promise<vscode.Uri | undefined> {
    const file = this.targetFile(arg, 'restore');
    const f = this.folderOfFile(file);
    const rel = this.relativePath(f, file);
    const t = await this.pickTime(f, rel, vscode.l10n.t('Restore {0} as of…', path.basename(file.fsPath)));
    const backupUri = await this.openComparison(f, file, rel, t);
    if (!backupUri) return undefined; // too large to compare: Restore To… was offered
    // The diff shows what would change; the restore itself is one click away (here or in the title bar).
    const restore = vscode.l10n.t('Restore This Version');
    void this.ui.notify('info', vscode.l10n.t('Restore {0} as of {1}? The diff shows the backup version on the left.', rel, t.label), {}, restore).then((a) => {
      // Clicking here is the confirmation: no second question, unless the file has unsaved changes.
      if (a === restore) void this.createCommand('offsite.restoreThisVersion', () => this.restoreThisVersion(backupUri, true))();
    });
    return backupUri;
  }

  /**
   * Opens the backup version of a file next to the current one (or alone, if the file is gone); or,
   * for a version larger than a diff shows (diffEditor.maxFileSize), says so and offers Restore To…
   * (undefined): such a version is never read into the extension host's memory.
   */
  private async openComparison(f: FolderBackup, file: vscode.Uri, rel: string, t: TimeChoice): Promise<vscode.Uri | undefined> {
    const backupUri = versionUri(f, rel, t.time);
    // A big file, a slow remote: the volume holding it is downloaded first (by the engine, to a private
    // temporary file), with a notification to cancel it. Its size is known only then: duplicity's
    // signatures and manifests do not record a file's size.
    const found = await this.ui.withProgress(vscode.l10n.t('Offsite: reading {0} as of {1}…', rel, t.label), (signal) => this.versions.has(backupUri, signal));
    if (!found) fail('notFound', vscode.l10n.t('{0} is not in the backup of {1}', rel, t.label));
    if (tooLargeToCompare(found.size, diffMaxFileSizeMB())) {
      const restoreTo = vscode.l10n.t('Restore To…');
      void this.ui
        .notify(
          'warning',
          vscode.l10n.t('{0} as of {1} is {2}: too large for VS Code to compare (diffEditor.maxFileSize). Restore To… writes it where you choose.', rel, t.label, formatBytes(found.size)),
          {},
          restoreTo,
        )
        .then((a) => {
          // (From the copy just read for its size: not downloaded again.)
          if (a === restoreTo) void this.createCommand('offsite.restoreTo', () => this.restoreFileTo(f, rel, t.time))();
        });
      return undefined;
    }
    const exists = fs.existsSync(file.fsPath);
    if (exists) {
      await vscode.commands.executeCommand('vscode.diff', backupUri, file, vscode.l10n.t('{0} (backup of {1}) ↔ current', path.basename(file.fsPath), t.label), { preview: true });
    } else {
      await vscode.commands.executeCommand('vscode.open', backupUri, { preview: true });
    }
    return backupUri;
  }

  /** "Restore this version": writes the backup version over the current file, after asking. */
  private async restoreThisVersion(arg: unknown, confirmed = false): Promise<string | undefined> {
    const backupUri = arg instanceof vscode.Uri && arg.scheme === SCHEME ? arg : this.activeBackupUri();
    if (!backupUri) fail('target', vscode.l10n.t('No backup version is open'), vscode.l10n.t('Use "Offsite: Compare with Backup…" first'));
    const ref = fromBackupUri(backupUri);
    const f = this.model.folders.find((x) => x.folder.uri.toString() === ref.folder);
    if (!f) fail('notFound', vscode.l10n.t('The workspace folder of {0} is not open', ref.path));
    return this.restoreFileVersion(f, ref.path, ref.time, confirmed);
  }

  private async restoreFileVersion(f: FolderBackup, rel: string, time: number, confirmed: boolean): Promise<string | undefined> {
    const fileUri = vscode.Uri.joinPath(f.folder.uri, ...rel.split('/'));
    const target = fileUri.fsPath;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === fileUri.toString());
    // A click on "Restore This Version" confirms replacing the file, not losing its unsaved changes: those are asked about anyway.
    if ((!confirmed && fs.existsSync(target)) || doc?.isDirty) {
      const restore = vscode.l10n.t('Restore');
      const answer = await this.ui.notify(
        'warning',
        vscode.l10n.t('Restore {0} as of {1}?', rel, formatTime(time)),
        { modal: true, detail: doc?.isDirty ? vscode.l10n.t('The current file is replaced by the backup version. Its unsaved changes will be lost.') : vscode.l10n.t('The current file is replaced by the backup version.') },
        restore,
      );
      if (answer !== restore) return undefined;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const r = await this.ui.withProgress(vscode.l10n.t('Offsite: restoring {0} as of {1}…', rel, formatTime(time)), (signal) => this.writeVersion(f, rel, time, target, signal));
    if (!r.found) fail('notFound', vscode.l10n.t('{0} is not in the backup of {1}', rel, formatTime(time)));
    // The engine writes private (0600) files; give the file back its own permissions.
    fs.chmodSync(target, r.mode & 0o7777);
    if (doc?.isDirty) {
      await vscode.window.showTextDocument(doc);
      await vscode.commands.executeCommand('workbench.action.files.revert');
    }
    this.log.info(`Restored ${rel} of ${f.name} as of ${formatTime(time)}`);
    void this.ui.notify('info', vscode.l10n.t('Restored {0} as of {1}.', rel, formatTime(time)));
    return target;
  }

  // ---- tree actions ----------------------------------------------------------------------------

  private async compareWithCurrent(n: EntryNode): Promise<vscode.Uri | undefined> {
    const time = versionTimeOf(n);
    if (n?.kind !== 'entry' || time === undefined) fail('target', vscode.l10n.t('Pick a file in the Backups view'));
    const file = vscode.Uri.joinPath(n.folder.folder.uri, ...n.node.path.split('/'));
    return this.openComparison(n.folder, file, n.node.path, { time, label: formatTime(time) });
  }

  private async restoreVersion(n: EntryNode): Promise<unknown> {
    const time = versionTimeOf(n);
    if (n?.kind !== 'entry' || time === undefined) fail('target', vscode.l10n.t('Pick a file or folder in the Backups view'));
    this.requireTrust();
    if (n.node.kind !== 'dir') return this.restoreFileVersion(n.folder, n.node.path, time, false);
    this.model.assertIdle(n.folder, 'restore');
    const restore = vscode.l10n.t('Restore');
    const answer = await this.ui.notify(
      'warning',
      vscode.l10n.t('Restore the folder {0} as of {1}?', n.node.path, formatTime(time)),
      { modal: true, detail: vscode.l10n.t('Files in it with the same names are replaced by their backup versions; other files are left alone.') },
      restore,
    );
    if (answer !== restore) return undefined;
    const cfg = n.folder.config;
    const r = await this.model.run(n.folder, 'restore', vscode.l10n.t('Offsite: restoring {0}', n.node.path), 'restore', (remote, keys) => ({
      op: 'restore',
      remote,
      keys,
      target: cfg.folder.fsPath,
      path: n.node.path,
      time,
      force: true,
    }));
    this.notifyRestored(r, vscode.l10n.t('Restored {0}: {1} file(s), {2}.', n.node.path, r.files, formatBytes(r.bytes)));
    return r;
  }

  private async restoreTo(n: EntryNode | SetNode): Promise<unknown> {
    if (n?.kind === 'set') return this.restoreFolderTo(n.folder, { time: n.set.time, label: formatTime(n.set.time) });
    const time = n?.kind === 'entry' ? versionTimeOf(n) : undefined;
    if (n?.kind !== 'entry' || time === undefined) fail('target', vscode.l10n.t('Pick a file, folder or backup in the Backups view'));
    if (n.node.kind !== 'dir') return this.restoreFileTo(n.folder, n.node.path, time);
    this.model.assertIdle(n.folder, 'restore');
    const dest = await this.ui.openDialog({ title: vscode.l10n.t('Restore the folder {0} into…', n.node.path), canSelectFolders: true, canSelectFiles: false, openLabel: vscode.l10n.t('Restore Here') });
    if (!dest) return undefined;
    const r = await this.model.run(n.folder, 'restore', vscode.l10n.t('Offsite: restoring {0}', n.node.path), 'restore', (remote, keys) => ({
      op: 'restore',
      remote,
      keys,
      target: dest.fsPath,
      path: n.node.path,
      time,
    }));
    this.notifyRestored(r, vscode.l10n.t('Restored {0} file(s) to {1}.', r.files, path.join(dest.fsPath, n.node.path)));
    return r;
  }

  /**
   * Writes a file's version to `output`: from the copy the `offsite:` file system keeps when it has
   * read it already (for a diff, or to learn its size), else streamed there by the engine; either way
   * under a temporary name renamed over `output`.
   */
  private async writeVersion(f: FolderBackup, rel: string, time: number, output: string, signal: AbortSignal): Promise<{ found: false } | { found: true; mode: number }> {
    const copied = await this.versions.copyTo(versionUri(f, rel, time), output, signal);
    if (copied) return { found: true, mode: copied.mode };
    return this.model.read(f, 'readFile', (remote, keys) => ({ op: 'readFile', remote, keys, path: rel, time, output }), { signal });
  }

  /** Restores one file's version to a place the user chooses. */
  private async restoreFileTo(f: FolderBackup, rel: string, time: number): Promise<string | undefined> {
    const dest = await this.ui.saveDialog({
      title: vscode.l10n.t('Restore {0} as of {1} to…', rel, formatTime(time)),
      defaultUri: vscode.Uri.file(path.join(os.homedir(), path.posix.basename(rel))),
      saveLabel: vscode.l10n.t('Restore Here'),
    });
    if (!dest) return undefined;
    const r = await this.ui.withProgress(vscode.l10n.t('Offsite: restoring {0} as of {1}…', rel, formatTime(time)), (signal) => this.writeVersion(f, rel, time, dest.fsPath, signal));
    if (!r.found) fail('notFound', vscode.l10n.t('{0} is not in the backup of {1}', rel, formatTime(time)));
    fs.chmodSync(dest.fsPath, r.mode & 0o7777);
    void this.ui.notify('info', vscode.l10n.t('Restored {0} as of {1} to {2}.', rel, formatTime(time), dest.fsPath));
    return dest.fsPath;
  }

  /**
   * A restore's summary; when it left members out (the user's own files in the way, what this system
   * cannot make, entries no backup tool writes), a warning that says which and what it means, as the
   * CLI's exit 1 does (the engine has logged each one).
   */
  private notifyRestored(r: { files: number; refusals: readonly Refusal[] }, done: string, action?: string, onAction?: () => void): void {
    if (r.refusals.length === 0) {
      void this.ui.notify('info', done, {}, ...(action ? [action] : [])).then((a) => a && a === action && onAction?.());
      return;
    }
    const { message, hint } = describeNotRestored(r);
    const showLog = vscode.l10n.t('Show Log');
    void this.ui
      .notify('warning', vscode.l10n.t('{0} But {1}. {2}.', done, message, hint), {}, showLog, ...(action ? [action] : []))
      .then((a) => (a === showLog ? this.log.show() : a && a === action && onAction?.()));
  }

  // ---- whole workspace -------------------------------------------------------------------------

  private async restoreWorkspaceTo(arg: unknown): Promise<unknown> {
    const f = await this.pickFolder(arg);
    // (Said before a time and a place are asked for, not after.)
    this.model.assertIdle(f, 'restore');
    const t = hasFolder(arg) && (arg as { kind?: string }).kind === 'set' ? { time: (arg as SetNode).set.time, label: formatTime((arg as SetNode).set.time) } : await this.pickTime(f, undefined, vscode.l10n.t('Restore {0} as of…', f.name));
    return this.restoreFolderTo(f, t);
  }

  /** Restores a whole backup into a new folder under the chosen one; a failed or cancelled restore leaves nothing behind. */
  private async restoreFolderTo(f: FolderBackup, t: TimeChoice): Promise<unknown> {
    this.model.assertIdle(f, 'restore');
    const parent = await this.ui.openDialog({
      title: vscode.l10n.t('Restore {0} as of {1} into… (a new folder is made inside)', f.name, t.label),
      canSelectFolders: true,
      canSelectFiles: false,
      openLabel: vscode.l10n.t('Restore Here'),
    });
    if (!parent) return undefined;
    const stamp = formatTime(t.time).replace(/[: ]/g, (c) => (c === ' ' ? '_' : '-'));
    let target = path.join(parent.fsPath, `${f.name}-${stamp}`);
    for (let i = 2; fs.existsSync(target); i++) target = path.join(parent.fsPath, `${f.name}-${stamp}-${i}`);
    try {
      const r = await this.model.run(f, 'restore', vscode.l10n.t('Offsite: restoring {0} as of {1}', f.name, t.label), 'restore', (remote, keys) => ({
        op: 'restore',
        remote,
        keys,
        target,
        time: t.time,
      }));
      const open = vscode.l10n.t('Open in New Window');
      this.notifyRestored(r, vscode.l10n.t('Restored {0} file(s), {1}, to {2}.', r.files, formatBytes(r.bytes), target), open, () => void vscode.commands.executeCommand('vscode.openFolder', vscode.Uri.file(target), { forceNewWindow: true }));
      return { ...r, target };
    } catch (e) {
      fs.rmSync(target, { recursive: true, force: true });
      throw e;
    }
  }

  private async verify(arg: unknown): Promise<unknown> {
    const f = await this.pickFolder(arg);
    const r = await this.model.verify(f);
    if (r.differences.length === 0) {
      void this.ui.notify('info', vscode.l10n.t('Verify of {0}: {1} file(s) restored and compared with the workspace, no differences.', f.name, r.compared));
    } else {
      for (const d of r.differences) this.log.warn(`Verify ${f.name}: ${d.path}: ${d.reason}`);
      const showLog = vscode.l10n.t('Show Log');
      void this.ui
        .notify('warning', vscode.l10n.t('Verify of {0}: {1} difference(s) between the backup of {2} and the workspace (changed since?): {3}', f.name, r.differences.length, formatTime(r.time), r.differences.slice(0, 3).map((d) => d.path).join(', ')), {}, showLog)
        .then((a) => a && this.log.show());
    }
    return r;
  }

  /**
   * Restore drill: a random sample of files restored with no local cache (the private key is needed,
   * as on a new machine) and compared with the workspace; the result is shown, logged and recorded.
   */
  private async drill(arg: unknown): Promise<unknown> {
    const f = await this.pickFolder(arg);
    const r = await this.model.drill(f);
    const summary = drillSummary(r);
    this.log.info(`Restore drill of ${f.name}: ${summary} (${r.seconds.toFixed(1)} s, seed ${r.seed})`);
    for (const x of r.files) {
      if (x.outcome === 'mismatch' || x.outcome === 'error') this.log.error(`Restore drill of ${f.name}: ${x.path}: ${x.detail ?? x.outcome}`);
      else if (x.outcome === 'changed') this.log.info(`Restore drill of ${f.name}: ${x.path}: ${x.detail ?? 'changed since the backup'}`);
    }
    const showLog = vscode.l10n.t('Show Log');
    if (r.failed > 0) {
      const bad = r.files.filter((x) => x.outcome === 'mismatch' || x.outcome === 'error').slice(0, 3).map((x) => x.path);
      void this.ui
        .notify('error', vscode.l10n.t('Restore drill of {0} FAILED: {1}. Failed: {2}', f.name, summary, bad.join(', ')), {}, showLog)
        .then((a) => a && this.log.show());
    } else if (r.matched === 0) {
      void this.ui.notify('warning', vscode.l10n.t('Restore drill of {0}: nothing could be compared. {1}', f.name, summary), {}, showLog).then((a) => a && this.log.show());
    } else {
      void this.ui.notify('info', vscode.l10n.t('Restore drill of {0} passed: {1}.', f.name, summary));
    }
    return r;
  }

  private async showStatus(): Promise<string> {
    const parts: string[] = [`Offsite backup status, ${formatTime(Date.now() / 1000)}`, ''];
    if (!vscode.workspace.isTrusted) parts.push(vscode.l10n.t('This workspace is not trusted: Offsite does not back it up.'), '');
    const folders = this.model.folders;
    if (folders.length === 0) parts.push(vscode.l10n.t('No folder is open.'));
    for (const f of folders) {
      if (!f.config.configured) {
        parts.push(`${f.name}: ${vscode.l10n.t('not configured (set offsite.remote and offsite.encryptKeys)')}`, '');
        continue;
      }
      let error: string | undefined;
      const s = await this.model.refreshStatus(f).catch((e) => {
        error = errorText(e);
        return undefined;
      });
      parts.push(formatStatusReport(f.name, redactUrl(f.config.url), s, error));
      for (const p of f.config.problems ?? []) parts.push(`  Setting not used: ${p.message}${p.blocksBackup ? ' (backups stop until it is corrected)' : ''}`);
      const rec = this.model.record(f);
      if (rec.lastStats) parts.push(`  Last run: ${statsSummary(rec.lastStats)}`);
      // As the status bar says it: not once a backup succeeded since (cron's, another window's, read from the remote just now).
      const failure = currentFailure(rec);
      if (failure) parts.push(`  Last failure (${formatTime(failure.time)}): ${failure.message}`);
      parts.push(`  Last verify: ${rec.lastVerify ? `${formatTime(rec.lastVerify.time)}, ${rec.lastVerify.ok ? 'no differences' : `${rec.lastVerify.differences} difference(s)`}` : 'never'}`);
      parts.push(`  Last restore drill: ${rec.lastDrill ? drillLine(rec.lastDrill, Date.now() / 1000) : 'never'}`, '');
    }
    const text = parts.join('\n');
    this.statusDoc.content = text;
    const doc = await vscode.workspace.openTextDocument(STATUS_URI);
    await vscode.window.showTextDocument(doc, { preview: true });
    this.log.show(true);
    return text;
  }

  private async refresh(): Promise<void> {
    for (const f of this.model.folders) f.clearCaches();
    await Promise.all(this.model.configuredFolders.map((f) => this.model.refreshStatus(f).catch(() => undefined)));
  }

  private async forgetSecrets(): Promise<void> {
    // What it forgets is what the command's title names: key and backup passphrases, SSH passwords, S3 keys.
    const { forgotten, kept } = await this.secrets.clear();
    if (kept === 0 && forgotten === 0) void this.ui.notify('info', vscode.l10n.t('Offsite had no remembered passphrases, passwords or S3 keys to forget.'));
    else if (kept === 0) void this.ui.notify('info', vscode.l10n.t('Offsite forgot {0} remembered passphrase(s), password(s) and S3 key(s).', forgotten));
    else {
      const showLog = vscode.l10n.t('Show Log');
      void this.ui
        .notify('warning', vscode.l10n.t('Offsite forgot {0} remembered passphrase(s), password(s) and S3 key(s), but VS Code\'s secret storage refused to delete {1}: they are still in your keyring. Try again once it is unlocked.', forgotten, kept), {}, showLog)
        .then((a) => a === showLog && this.log.show());
    }
  }

  // ---- configuration ---------------------------------------------------------------------------

  private async configure(arg: unknown): Promise<void> {
    const f = await this.pickFolder(arg, { configured: false });
    const s = readSettings(f.folder.uri);
    if (!s.remote || s.encryptKeys.length === 0) {
      // First run: a short wizard (remote, then key).
      if (!s.remote && !(await this.configureRemote(f))) return;
      if (readSettings(f.folder.uri).encryptKeys.length === 0 && !(await this.configureKeys(f))) return;
      const backUp = vscode.l10n.t('Back Up Now');
      void this.ui.notify('info', vscode.l10n.t('Offsite is ready: {0} backs up to {1}.', f.name, redactUrl(this.model.folderOf(f.folder.uri)?.config.url ?? '')), {}, backUp).then((a) => {
        if (a === backUp) void vscode.commands.executeCommand('offsite.backupWorkspace', f.folder.uri);
      });
      return;
    }
    const items = [
      { label: `$(globe) ${vscode.l10n.t('Remote')}`, description: redactUrl(s.remote), id: 'remote' },
      { label: `$(key) ${vscode.l10n.t('Encryption Keys')}`, description: s.encryptKeys.join(', '), id: 'keys' },
      { label: `$(unlock) ${vscode.l10n.t('Restore Key')}`, description: s.restoreKey || vscode.l10n.t('not set'), id: 'restoreKey' },
      { label: `$(add) ${vscode.l10n.t('Create a New Key Pair…')}`, description: '', id: 'createKey' },
      { label: `$(clock) ${vscode.l10n.t('Schedule')}`, description: s.schedule > 0 ? vscode.l10n.t('every {0} min', s.schedule) : vscode.l10n.t('off'), id: 'schedule' },
      { label: `$(settings-gear) ${vscode.l10n.t('All Offsite Settings…')}`, description: '', id: 'settings' },
    ];
    const pick = await this.ui.pick(items, { title: vscode.l10n.t('Configure Offsite for {0}', f.name) });
    switch (pick?.id) {
      case 'remote':
        await this.configureRemote(f);
        break;
      case 'keys':
        await this.configureKeys(f);
        break;
      case 'restoreKey':
        await this.configureRestoreKey(f);
        break;
      case 'createKey':
        await this.createKey(f.folder.uri);
        break;
      case 'schedule':
        await this.configureSchedule(f);
        break;
      case 'settings':
        await vscode.commands.executeCommand('workbench.action.openSettings', '@ext:offsite.offsite');
        break;
    }
  }

  private async configureRemote(f: FolderBackup): Promise<boolean> {
    const kinds = [
      { label: `$(folder) ${vscode.l10n.t('A local folder or mounted drive')}`, description: 'file://', id: 'file' },
      { label: `$(remote) ${vscode.l10n.t('An SFTP server')}`, description: 'sftp://user@host/path', id: 'sftp' },
      { label: `$(cloud) ${vscode.l10n.t('An S3 bucket')}`, description: 's3://bucket/prefix', id: 's3' },
      { label: `$(link) ${vscode.l10n.t('Another URL')}`, description: 'rclone://remote:path, …', id: 'other' },
    ];
    const kind = await this.ui.pick(kinds, { title: vscode.l10n.t('Where should backups go? Each workspace folder gets its own subfolder there.') });
    if (!kind) return false;
    let url: string | undefined;
    if (kind.id === 'file') {
      const dir = await this.ui.openDialog({ title: vscode.l10n.t('Backup root folder'), canSelectFolders: true, canSelectFiles: false, openLabel: vscode.l10n.t('Back Up Here') });
      url = dir ? vscode.Uri.file(dir.fsPath).toString() : undefined;
    } else {
      url = await this.ui.input({
        title: vscode.l10n.t('Remote URL'),
        prompt: vscode.l10n.t('The root URL; {0} backs up to <URL>/{0}. No passwords here: Offsite asks and keeps them in secret storage.', f.name),
        placeHolder: kind.description,
        value: kind.id === 'other' ? '' : kind.description.replace(/user@host\/path|bucket\/prefix/, ''),
        validateInput: (v) => (/^[a-z][a-z0-9+.-]*:\/\/./i.test(v.trim()) ? undefined : vscode.l10n.t('Write a URL such as {0}', kind.description)),
      });
    }
    if (!url) return false;
    const target = await this.pickTarget('remote', f);
    if (target === undefined) return false;
    await updateSetting('remote', url.trim(), f.folder, target);
    return true;
  }

  /** User settings by default (one root for all workspaces), or this workspace. */
  private async pickTarget(key: string, f: FolderBackup): Promise<vscode.ConfigurationTarget | undefined> {
    const current = targetOf(key, f.folder);
    const items = [
      { label: vscode.l10n.t('User Settings'), description: vscode.l10n.t('every workspace, each folder in its own chain'), target: vscode.ConfigurationTarget.Global },
      { label: vscode.l10n.t('Workspace Settings'), description: vscode.l10n.t('only this workspace'), target: vscode.ConfigurationTarget.Workspace },
    ];
    if (current !== vscode.ConfigurationTarget.Global) items.reverse();
    return (await this.ui.pick(items, { title: vscode.l10n.t('Save offsite.{0} in…', key) }))?.target;
  }

  private async configureKeys(f: FolderBackup): Promise<boolean> {
    const items = [
      { label: `$(file) ${vscode.l10n.t('A public key file…')}`, description: '.asc, .gpg', id: 'file' },
      { label: `$(key) ${vscode.l10n.t('A key in my GnuPG keyring…')}`, description: vscode.l10n.t('key id, fingerprint or email'), id: 'id' },
      { label: `$(add) ${vscode.l10n.t('Create a new key pair…')}`, description: vscode.l10n.t('no GnuPG needed'), id: 'create' },
    ];
    const pick = await this.ui.pick(items, { title: vscode.l10n.t('Which public key encrypts the backups?') });
    if (!pick) return false;
    if (pick.id === 'create') return (await this.createKey(f.folder.uri)) !== undefined;
    let spec: string | undefined;
    if (pick.id === 'file') spec = (await this.ui.openDialog({ title: vscode.l10n.t('Public key file'), canSelectFiles: true, filters: { 'OpenPGP keys': ['asc', 'gpg', 'pgp', 'key', 'pub'], 'All files': ['*'] } }))?.fsPath;
    else spec = await this.ui.input({ title: vscode.l10n.t('Key id, fingerprint or email'), prompt: vscode.l10n.t('A public key in your GnuPG keyring (gpg --list-keys)') });
    if (!spec?.trim()) return false;
    const keys = readSettings(f.folder.uri).encryptKeys;
    await updateSetting('encryptKeys', [...keys.filter((k) => k !== spec), spec.trim()], f.folder);
    return true;
  }

  private async configureRestoreKey(f: FolderBackup): Promise<void> {
    const uri = await this.ui.openDialog({ title: vscode.l10n.t('Your private key file (to restore)'), canSelectFiles: true, filters: { 'OpenPGP keys': ['asc', 'gpg', 'pgp', 'key'], 'All files': ['*'] } });
    if (uri) await updateSetting('restoreKey', uri.fsPath, f.folder);
  }

  private async configureSchedule(f: FolderBackup): Promise<void> {
    const items = [
      { label: vscode.l10n.t('Off'), minutes: 0 },
      { label: vscode.l10n.t('Every 30 minutes'), minutes: 30 },
      { label: vscode.l10n.t('Every hour'), minutes: 60 },
      { label: vscode.l10n.t('Every 4 hours'), minutes: 240 },
      { label: vscode.l10n.t('Daily'), minutes: 1440 },
    ];
    const pick = await this.ui.pick(items, { title: vscode.l10n.t('Back up automatically while VS Code is open') });
    if (pick) await updateSetting('schedule', pick.minutes, f.folder);
  }

  /**
   * Makes an OpenPGP key pair (for people without GnuPG): the public key goes into offsite.encryptKeys,
   * the private key, protected by a passphrase, into a file the user picks, with a plain warning.
   */
  private async createKey(arg: unknown): Promise<string | undefined> {
    const f = await this.pickFolder(arg, { configured: false }).catch(() => undefined);
    const name = await this.ui.input({ title: vscode.l10n.t('Create Key (1/4): your name'), prompt: vscode.l10n.t('Your name, stored in the key'), value: os.userInfo().username });
    if (!name?.trim()) return undefined;
    const email = await this.ui.input({ title: vscode.l10n.t('Create Key (2/4): your email'), prompt: vscode.l10n.t('Your email, stored in the key'), validateInput: (v) => (/^[^@\s]+@[^@\s]+$/.test(v.trim()) ? undefined : vscode.l10n.t('An email address, e.g. me@example.com')) });
    if (!email) return undefined;
    const passphrase = await this.ui.input({
      title: vscode.l10n.t('Create Key (3/4): passphrase'),
      prompt: vscode.l10n.t('Protects the private key. Without it (and the key file) no backup can be restored.'),
      password: true,
      validateInput: (v) => (v.length >= 8 ? undefined : vscode.l10n.t('At least 8 characters')),
    });
    if (!passphrase) return undefined;
    const again = await this.ui.input({ title: vscode.l10n.t('Create Key (3/4): passphrase'), prompt: vscode.l10n.t('The same passphrase again'), password: true });
    if (again === undefined) return undefined;
    if (again !== passphrase) fail('passphrase', vscode.l10n.t('The two passphrases differ'), vscode.l10n.t('Run Create Key again'));
    const dest = await this.ui.saveDialog({
      title: vscode.l10n.t('Create Key (4/4): where to save the private key'),
      defaultUri: vscode.Uri.file(path.join(os.homedir(), 'offsite-private-key.asc')),
      saveLabel: vscode.l10n.t('Save Private Key'),
      filters: { 'OpenPGP keys': ['asc'] },
    });
    if (!dest) return undefined;
    if (fs.existsSync(dest.fsPath)) fail('exists', vscode.l10n.t('{0} exists already', dest.fsPath), vscode.l10n.t('Choose another file name: Offsite never overwrites a key'));
    const key = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: vscode.l10n.t('Offsite: creating a key pair…') }, () =>
      this.model.gateway.client.request({ op: 'createKey', name: name.trim(), email: email.trim(), passphrase }),
    );
    const privateFile = dest.fsPath;
    const base = privateFile.replace(/(-private(-key)?|-secret(-key)?)?\.asc$/i, '');
    let publicFile = `${base}-public.asc`;
    for (let i = 2; fs.existsSync(publicFile); i++) publicFile = `${base}-public-${i}.asc`;
    fs.mkdirSync(path.dirname(privateFile), { recursive: true });
    // 0600, and never over an existing file: a key is never overwritten.
    fs.writeFileSync(privateFile, key.privateArmored, { mode: 0o600, flag: 'wx' });
    fs.writeFileSync(publicFile, key.publicArmored, { mode: 0o644, flag: 'wx' });
    const keys = readSettings(f?.folder.uri).encryptKeys;
    await updateSetting('encryptKeys', [...keys, publicFile], f?.folder);
    if (!readSettings(f?.folder.uri).restoreKey) await updateSetting('restoreKey', privateFile, f?.folder, targetOf('encryptKeys', f?.folder));
    await this.secrets.set('pgpPassphrase', privateFile, passphrase, false);
    this.log.info(`Created key ${key.fingerprint}: public ${publicFile}, private ${privateFile}`);
    const kit = vscode.l10n.t('Open Recovery Kit');
    const answer = await this.ui.notify(
      'warning',
      vscode.l10n.t('Keep a copy of your private key somewhere else'),
      {
        modal: true,
        detail: vscode.l10n.t(
          'Your new private key is only in {0}. If this machine is lost, stolen or its disk fails, the key goes with it, and no backup can ever be restored. Keep a copy of the key file and its passphrase elsewhere: a USB stick in a drawer, a password manager, or the printed recovery kit.\n\nFingerprint: {1}',
          privateFile,
          key.fingerprint,
        ),
      },
      kit,
    );
    if (answer === kit) {
      const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: recoveryKit(key.fingerprint, privateFile, publicFile, key.privateArmored, f ? redactUrl(f.config.url || readSettings(f.folder.uri).remote) : '') });
      await vscode.window.showTextDocument(doc);
    }
    return publicFile;
  }

  private async copyCronCommand(arg: unknown): Promise<string> {
    const f = await this.pickFolder(arg);
    const installed = offsiteOnPath();
    const line = crontabLine(f.config, offsiteForCron(installed));
    await vscode.env.clipboard.writeText(line);
    const copied = vscode.l10n.t('Copied the offsite command for {0}: add it with crontab -e (the README says how to install the offsite command). It writes the same chain as the extension.', f.name);
    // A crontab is a plain file: what offsite.remote holds secret stays out of the line, and the user is told how to give it.
    const left = cronUrl(f.config.url);
    const notes = [
      // The .vsix holds no CLI: without one installed the job would only mail "offsite: not found".
      ...(installed === undefined ? [vscode.l10n.t('No offsite command is on this machine\'s PATH: install it (npm install -g . in a clone of Offsite, after npm run build; see the README), or the job has nothing to run.')] : []),
      ...(left.password ? [vscode.l10n.t('The password in offsite.remote is not in it: give it to the job in OFFSITE_SSH_PASSWORD (read from a file only you can read), or log in with an SSH key (offsite.sshKey or ssh-agent).')] : []),
      ...(left.secrets ? [vscode.l10n.t('The secrets in offsite.remote are *** in it: replace them, or better name an rclone remote configured with rclone config.')] : []),
    ];
    void this.ui.notify(notes.length ? 'warning' : 'info', [copied, ...notes].join(' '));
    return line;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

function recoveryKit(fingerprint: string, privateFile: string, publicFile: string, privateArmored: string, remote: string): string {
  return [
    '# Offsite recovery kit',
    '',
    'Print this page, or save it somewhere other than this computer. With it, your passphrase and the',
    'remote, any computer can restore your backups, with Offsite or with plain duplicity and GnuPG.',
    '',
    `- Key fingerprint: \`${fingerprint}\``,
    `- Private key file: \`${privateFile}\``,
    `- Public key file: \`${publicFile}\``,
    remote ? `- Backups: \`${remote}\` (each workspace folder in its own subfolder)` : '- Backups: the URL in the offsite.remote setting',
    '- Passphrase: (write it down separately; it is not on this page)',
    '',
    '## Restore on a new computer',
    '',
    '```sh',
    '# with Offsite',
    'offsite restore --key private-key.asc <remote>/<folder> restored/',
    '# or with duplicity',
    'gpg --import private-key.asc',
    'duplicity restore <remote>/<folder> restored/',
    '```',
    '',
    '## The private key (protected by your passphrase)',
    '',
    '```',
    privateArmored.trim(),
    '```',
    '',
  ].join('\n');
}
