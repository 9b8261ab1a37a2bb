// The window's backup state: one FolderBackup per workspace folder (its effective configuration, what
// runs now, the remote's last known status) plus a FolderRecord per remote URL in globalState (last
// success, statistics, last failure, last verify), shared by every window that backs up to it. Every
// engine operation of the extension goes through here, so the status bar, the tree, the context keys
// and the progress UI all derive from one place (git's Model + OperationManager pattern).
import * as vscode from 'vscode';
import type { CollectionStatus } from '../engine/ops/inspect';
import type { Cancellables } from './cancellables';
import type { SetChanges } from '../engine/service';
import { folderConfig } from './config';
import { EngineError, hintOf, isCancelled, isHeldElsewhere, SettingError, type EngineOp, type EngineResults } from './engineClient';
import { FOLDER_PAGE, sortNodes, toPage, type FileNode } from './fileTree';
import { redactUrl } from '../engine/backend/backendUtil';
import type { FolderConfig } from './folderConfig';
import { busyText, currentChainIndex, lastRestorableTime, operationOf, operationOn, progressMessage, type OperationKind } from './format';
import type { EngineGateway, RequestBuilder } from './gateway';
import type { FolderRecord } from './schedule';

/** The entries of one folder of a set loaded so far (pages are appended as the user asks for more). */
export interface FolderListing {
  readonly nodes: FileNode[];
  /** The cursor of the next page, while the folder has more. */
  readonly next?: string;
}

export interface Running {
  readonly kind: OperationKind;
  readonly background: boolean;
  readonly abort: AbortController;
  /** Files and bytes so far (for the status bar). */
  files: number;
}

/**
 * A folder asked for an operation while it runs one: said as such (which folder, what it runs; Cancel
 * reaches that run), not as a failure. Other folders are not held up by it.
 */
export class BusyError extends EngineError {
  constructor(
    readonly folder: FolderBackup,
    readonly running: Running,
  ) {
    super({ code: 'busy', message: busyText(folder.name, running), hint: 'Wait for it to finish, or cancel it' });
  }
}

export class FolderBackup {
  running?: Running;
  status?: CollectionStatus;
  statusError?: string;
  /** Per-set change counts (all sets), loaded with the tree. */
  changes?: Map<number, SetChanges>;
  changesError?: string;
  /** Folders of sets listed so far, by `${set time}:${folder path}`. */
  readonly listings = new Map<string, Promise<FolderListing>>();

  constructor(
    readonly folder: vscode.WorkspaceFolder,
    public config: FolderConfig,
  ) {}

  get name(): string {
    return this.folder.name;
  }

  clearCaches(): void {
    this.status = undefined;
    this.statusError = undefined;
    this.changes = undefined;
    this.changesError = undefined;
    this.listings.clear();
  }
}

const RECORD_PREFIX = 'offsite.record:';


function now(): number {
  return Date.now() / 1000;
}

export class BackupModel implements vscode.Disposable {
  private readonly _onDidChangeState = new vscode.EventEmitter<void>();
  /** Running operations, records or configuration changed (status bar, context keys). */
  readonly onDidChangeState = this._onDidChangeState.event;
  private readonly _onDidChangeBackups = new vscode.EventEmitter<FolderBackup | undefined>();
  /** What is known about a folder's backups changed (the tree). undefined: all folders. */
  readonly onDidChangeBackups = this._onDidChangeBackups.event;
  private readonly _onDidBackup = new vscode.EventEmitter<FolderBackup>();
  /** A backup of a folder succeeded (manual or scheduled). */
  readonly onDidBackup = this._onDidBackup.event;
  private readonly disposables: vscode.Disposable[] = [];
  private _folders: FolderBackup[] = [];
  /**
   * Remote URL → when this window last read its status (ms; when the read began, whatever came of
   * it): one record for whoever reads it (a command, the Backups view shown again, the scheduler's
   * check of a record that looks stale or failed), so that none reads a remote another just read.
   */
  readonly statusReadAt = new Map<string, number>();
  /** The errors logged so far (logEnd): each is logged once, by the first that meets it. */
  private readonly logged = new WeakSet<object>();

  constructor(
    readonly gateway: EngineGateway,
    private readonly state: vscode.Memento,
    private readonly log: vscode.LogOutputChannel,
    /** The window's cancellable operations (shared with the Ui's progress reads). */
    private readonly operations: Cancellables,
  ) {
    this.reload();
    this.disposables.push(
      this._onDidChangeState,
      this._onDidChangeBackups,
      this._onDidBackup,
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.reload()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('offsite')) this.reload();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.reload()),
    );
  }

  get folders(): readonly FolderBackup[] {
    return this._folders;
  }

  get configuredFolders(): FolderBackup[] {
    return this._folders.filter((f) => f.config.configured);
  }

  /** Recomputes each folder's configuration; keeps state of folders whose remote did not change. */
  reload(): void {
    const old = new Map(this._folders.map((f) => [f.folder.uri.toString(), f]));
    this._folders = (vscode.workspace.workspaceFolders ?? []).map((wf) => {
      const cfg = folderConfig(wf);
      const prev = old.get(wf.uri.toString());
      if (prev && prev.config.url === cfg.url && JSON.stringify(prev.config.keys) === JSON.stringify(cfg.keys)) {
        prev.config = cfg;
        return prev;
      }
      const next = new FolderBackup(wf, cfg);
      // What still runs with the old remote or keys stays the folder's until it ends: shown, cancellable,
      // and exclusive (run() clears it wherever it is).
      if (prev?.running) next.running = prev.running;
      return next;
    });
    void this.updateContext();
    this._onDidChangeState.fire();
    this._onDidChangeBackups.fire(undefined);
  }

  /** The folder of a resource (or of the only folder), if any. */
  folderOf(uri?: vscode.Uri): FolderBackup | undefined {
    if (uri) {
      const wf = vscode.workspace.getWorkspaceFolder(uri);
      return wf ? this._folders.find((f) => f.folder.uri.toString() === wf.uri.toString()) : undefined;
    }
    return this._folders.length === 1 ? this._folders[0] : undefined;
  }

  record(f: FolderBackup): FolderRecord {
    return f.config.url ? this.state.get<FolderRecord>(RECORD_PREFIX + f.config.url, {}) : {};
  }

  async updateRecord(f: FolderBackup, patch: Partial<FolderRecord>): Promise<void> {
    if (!f.config.url) return;
    const next: FolderRecord = { ...this.record(f), ...patch };
    for (const k of Object.keys(next) as (keyof FolderRecord)[]) if (next[k] === undefined) delete next[k];
    await this.state.update(RECORD_PREFIX + f.config.url, next);
    this._onDidChangeState.fire();
  }

  /**
   * Throws BusyError when the folder runs an operation (a backup, restore, verify or drill): before a
   * command asks anything (a time, a place) or records an attempt. Only this folder's counts. The
   * refusal is logged here, once, whoever asked (a command, Backup Workspace for one of its folders,
   * the scheduler); what says it to the user does not log it again.
   */
  assertIdle(f: FolderBackup, asked: OperationKind): void {
    if (!f.running) return;
    const e = new BusyError(f, f.running);
    this.log.info(`Not ${operationOn(asked, f.name)}: ${e.message}`);
    this.logged.add(e);
    throw e;
  }

  /**
   * Logs how `what` ended when it did not succeed, once per error: whoever meets it first logs it (an
   * operation of the model, for whoever started it: a command, Backup Workspace for one of its
   * folders, the scheduler; else the command that failed), and whoever meets it again (the command
   * wrapper, which notifies) does not. Cancelled: as such, not as a failure. Refused because another
   * run holds the remote: as not started. Else failed, with the error's code and the hint the user is
   * shown (hintOf).
   */
  logEnd(what: string, thrown: unknown): object {
    // An object (a thrown primitive made an Error), so that whoever meets it again can tell it; returned to be rethrown.
    const e = typeof thrown === 'object' && thrown !== null ? thrown : new Error(String(thrown));
    if (this.logged.has(e)) return e;
    this.logged.add(e);
    if (isCancelled(e)) this.log.info(`${what} cancelled`);
    else if (!(e instanceof EngineError)) this.log.error(`${what} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    else {
      const hint = hintOf(e);
      const said = `[${e.code}] ${e.message}${hint ? ` (${hint})` : ''}`;
      if (isHeldElsewhere(e)) this.log.info(`${what} not started: ${said}`);
      else this.log.error(`${what} failed: ${said}`);
    }
    return e;
  }

  /**
   * Cancels what runs: a folder's operation; or, for none given, everything cancellable in the window
   * (every folder's operation, and the reads shown with progress: a version, a history, one file's restore).
   */
  cancel(f?: FolderBackup): number {
    if (!f) return this.operations.cancelAll();
    if (!f.running || f.running.abort.signal.aborted) return 0;
    f.running.abort.abort();
    return 1;
  }

  /** A read-only engine call (status, list, history, readFile, …): not exclusive, no progress UI. */
  read<Op extends EngineOp>(f: FolderBackup, op: Op, build: RequestBuilder<Op>, opts: { signal?: AbortSignal; interactive?: boolean } = {}): Promise<EngineResults[Op]> {
    return this.gateway.call(f.config, op, build, { signal: opts.signal, interactive: opts.interactive ?? true });
  }

  /**
   * An exclusive operation on a folder, shown with progress: a cancellable notification, or only the
   * window's progress and the status bar spinner when it runs in the background.
   */
  async run<Op extends EngineOp>(
    f: FolderBackup,
    kind: OperationKind,
    title: string,
    op: Op,
    build: RequestBuilder<Op>,
    opts: { background?: boolean } = {},
  ): Promise<EngineResults[Op]> {
    this.assertIdle(f, kind);
    const running: Running = { kind, background: !!opts.background, abort: new AbortController(), files: 0 };
    f.running = running;
    const unregister = this.operations.add(running.abort);
    this._onDidChangeState.fire();
    try {
      return await vscode.window.withProgress(
        { location: opts.background ? vscode.ProgressLocation.Window : vscode.ProgressLocation.Notification, title, cancellable: !opts.background },
        async (progress, token) => {
          const sub = token.onCancellationRequested(() => running.abort.abort());
          let lastMessage = '';
          try {
            return await this.gateway.call(f.config, op, build, {
              signal: running.abort.signal,
              interactive: !opts.background,
              onProgress: (p) => {
                running.files = p.files;
                const m = progressMessage(p);
                if (m !== lastMessage) progress.report({ message: m });
                lastMessage = m;
              },
            });
          } finally {
            sub.dispose();
          }
        },
      );
    } catch (e) {
      throw this.logEnd(operationOf(kind, f.name), e);
    } finally {
      // The settings may have changed meanwhile: the folder's FolderBackup is then a new one sharing it.
      for (const x of [f, ...this._folders]) if (x.running === running) x.running = undefined;
      unregister();
      this._onDidChangeState.fire();
    }
  }

  /** Backs up a folder; keeps the record (success or failure) for the status bar and the schedule. */
  async backup(f: FolderBackup, opts: { background?: boolean } = {}): Promise<EngineResults['backup']> {
    const cfg = f.config;
    try {
      // Refused before it counts as an attempt (which would put the next scheduled backup off).
      this.assertIdle(f, 'backup');
      await this.updateRecord(f, { lastAttempt: now() });
      this.log.info(`Backing up ${cfg.folder.fsPath} to ${redactUrl(cfg.url)}${opts.background ? ' (scheduled)' : ''}`);
      // A value it cannot honour (a volume size of -5, fullIfOlderThan "30 days") stops it, named, rather
      // than a backup made another way than the one set, or the engine's words about its own options.
      const problem = cfg.problems?.find((p) => p.blocksBackup);
      if (problem) throw new SettingError(`offsite.${problem.setting}`, problem.message);
      const r = await this.run(f, 'backup', vscode.l10n.t('Offsite: backing up {0}', f.name), 'backup', (remote, keys) => ({
        op: 'backup',
        remote,
        keys,
        source: cfg.folder.fsPath,
        volumeSizeMB: cfg.volumeSizeMB,
        fullIfOlderThan: cfg.fullIfOlderThan,
        keepFull: cfg.keepFull,
        ...cfg.selection,
      }), opts);
      await this.updateRecord(f, { lastSuccess: r.time, lastStats: r.stats, lastType: r.type, lastFailure: undefined });
      this.log.info(`Backup of ${f.name} done: ${r.type}, ${r.stats.DeltaEntries} change(s), ${r.stats.TotalDestinationSizeChange} bytes uploaded${r.errors.length ? `, ${r.errors.length} unreadable path(s)` : ''}`);
      for (const e of r.errors) this.log.warn(`Not backed up: ${e.path}: ${e.message}`);
      if (r.retentionFailure) this.log.warn(`Old backups of ${f.name} not removed (offsite.keepFull): ${r.retentionFailure.message}`);
      f.clearCaches();
      this._onDidChangeBackups.fire(f);
      void this.refreshStatus(f, { interactive: false }).catch(() => undefined);
      this._onDidBackup.fire(f);
      return r;
    } catch (thrown) {
      // (What run() logged already, a refusal or a failure before it ran: a setting it cannot honour.)
      const e = this.logEnd(operationOf('backup', f.name), thrown);
      // Cancelled; busy here, or the remote's lock held by another window or cron (whose backup is
      // under way): not a failed backup of ours; if that writer never ends, the stale warning says so in time.
      if (!isCancelled(e) && !isHeldElsewhere(e)) await this.updateRecord(f, { lastFailure: { time: now(), message: e instanceof Error ? e.message : String(e) } });
      throw e;
    }
  }

  /** Reads the remote's status; the newest set there counts as the last success (cron's too). */
  async refreshStatus(f: FolderBackup, opts: { interactive?: boolean } = {}): Promise<CollectionStatus> {
    this.statusReadAt.set(f.config.url, Date.now());
    try {
      const s = await this.read(f, 'status', (remote) => ({ op: 'status', remote }), opts);
      // New sets (another machine's, cron's) have no change counts yet: read those again with them.
      if (f.status && JSON.stringify(f.status.chains) !== JSON.stringify(s.chains)) f.changes = undefined;
      f.status = s;
      f.statusError = undefined;
      const current = currentChainIndex(s);
      const chain = current < 0 ? undefined : s.chains[current]; // (at(-1) would be the newest, damaged)
      // The remote is the truth: a backup made by cron counts, a deleted chain no longer does, nor a set
      // that cannot be restored (damaged, or built on a damaged one).
      await this.updateRecord(f, { chainSets: chain?.sets.length, lastSuccess: lastRestorableTime(s) });
      await this.updateContext();
      return s;
    } catch (e) {
      f.statusError = e instanceof Error ? e.message : String(e);
      throw e;
    } finally {
      this._onDidChangeBackups.fire(f);
    }
  }

  /** How long ago (ms, by the clock `now`) the remote of a folder was last read (statusReadAt); Infinity: never. */
  statusAge(f: FolderBackup, now = Date.now()): number {
    return now - (this.statusReadAt.get(f.config.url) ?? -Infinity);
  }

  /**
   * Reads again the status of the folders whose remote was read more than maxAgeMs ago (the Backups
   * view shown again: cron or another machine may have backed up, or retention removed chains, since).
   */
  async refreshOlderThan(maxAgeMs: number): Promise<void> {
    const old = this.configuredFolders.filter((f) => f.status !== undefined && !f.running && this.statusAge(f) > maxAgeMs);
    await Promise.all(old.map((f) => this.refreshStatus(f, { interactive: false }).catch(() => undefined)));
  }

  async statusOf(f: FolderBackup): Promise<CollectionStatus> {
    return f.status ?? this.refreshStatus(f);
  }

  /** Change counts of every set (needs the private key when the manifests are not cached). */
  async changesOf(f: FolderBackup): Promise<Map<number, SetChanges>> {
    if (f.changes) return f.changes;
    const list = await this.read(f, 'changes', (remote, keys) => ({ op: 'changes', remote, keys }));
    f.changes = new Map(list.map((c) => [c.time, c]));
    return f.changes;
  }

  /**
   * One folder of a set's tree (its first page; listMore adds the others), with the files that set
   * deleted. The engine answers per folder, so a set of any size never crosses as one message.
   */
  listFolder(f: FolderBackup, time: number, dir: string): Promise<FolderListing> {
    const key = `${time}:${dir}`;
    let l = f.listings.get(key);
    if (!l) {
      l = this.listPage(f, time, dir).then((p) => ({ nodes: sortNodes(p.nodes), next: p.next }));
      f.listings.set(key, l);
      l.catch(() => f.listings.delete(key));
    }
    return l;
  }

  /** Loads the next page of a folder listed with listFolder. */
  async listMore(f: FolderBackup, time: number, dir: string): Promise<FolderListing> {
    const key = `${time}:${dir}`;
    const have = await this.listFolder(f, time, dir);
    if (have.next === undefined) return have;
    const p = await this.listPage(f, time, dir, have.next);
    const merged: FolderListing = { nodes: sortNodes([...have.nodes, ...p.nodes]), next: p.next };
    // Unless a refresh dropped the listing meanwhile.
    if (f.listings.has(key)) f.listings.set(key, Promise.resolve(merged));
    return merged;
  }

  private async listPage(f: FolderBackup, time: number, dir: string, after?: string): Promise<{ nodes: FileNode[]; next?: string }> {
    const entries = await this.read(f, 'list', (remote, keys) => ({ op: 'list', remote, keys, time, path: dir, depth: 1, deleted: true, after, limit: FOLDER_PAGE + 1 }));
    return toPage(entries, FOLDER_PAGE);
  }

  /**
   * Restore drill: a sample of files restored with an empty cache, as on a new machine, compared with
   * the workspace. The outcome is recorded (status bar, reminder).
   */
  async drill(f: FolderBackup): Promise<EngineResults['drill']> {
    const cfg = f.config;
    this.assertIdle(f, 'drill'); // before the line below, as backup does: a refused drill did not start
    this.log.info(`Restore drill of ${f.name} from ${redactUrl(cfg.url)}`);
    const r = await this.run(f, 'drill', vscode.l10n.t('Offsite: restore drill of {0}', f.name), 'drill', (remote, keys) => ({ op: 'drill', remote, keys, source: cfg.folder.fsPath }));
    await this.updateRecord(f, { lastDrill: { at: Math.floor(now()), ok: r.ok, setTime: r.time, matched: r.matched, failed: r.failed, changed: r.changed }, drillSnoozedUntil: undefined });
    return r;
  }

  /**
   * The last drill as the engine recorded it in the local cache (cheap: no remote, no key), kept when
   * newer than the one remembered here (a drill run by the CLI counts too).
   */
  async refreshLastDrill(f: FolderBackup): Promise<FolderRecord['lastDrill']> {
    const fromEngine = await this.read(f, 'lastDrill', (remote) => ({ op: 'lastDrill', remote }), { interactive: false });
    const known = this.record(f).lastDrill;
    if (fromEngine && (!known || fromEngine.at > known.at)) await this.updateRecord(f, { lastDrill: fromEngine });
    return this.record(f).lastDrill;
  }

  async verify(f: FolderBackup): Promise<EngineResults['verify']> {
    const cfg = f.config;
    const r = await this.run(f, 'verify', vscode.l10n.t('Offsite: verifying the backup of {0}', f.name), 'verify', (remote, keys) => ({
      op: 'verify',
      remote,
      keys,
      source: cfg.folder.fsPath,
      compareData: true,
      ...cfg.selection,
    }));
    await this.updateRecord(f, { lastVerify: { time: now(), ok: r.differences.length === 0, differences: r.differences.length } });
    return r;
  }

  private async updateContext(): Promise<void> {
    const configured = this._folders.some((f) => f.config.configured);
    const hasBackups = this._folders.some((f) => (f.status?.chains.length ?? 0) > 0 || this.record(f).lastSuccess !== undefined);
    await Promise.all([
      vscode.commands.executeCommand('setContext', 'offsite.configured', configured),
      vscode.commands.executeCommand('setContext', 'offsite.hasBackups', hasBackups),
    ]);
  }

  dispose(): void {
    this.cancel();
    for (const d of this.disposables) d.dispose();
  }
}
