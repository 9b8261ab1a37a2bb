// The "Backups" view: (folders →) chains → sets (date, full/incremental, size, files changed) → the
// folder/file tree as of that set, with the files the set deleted shown (and restorable from the set
// before). Children load lazily from the model, a folder at a time as it is expanded (a big folder a
// page at a time, with "Show more…"); errors show as a node rather than a notification.
import * as vscode from 'vscode';
import type { ChainStatus, SetStatus } from '../engine/ops/inspect';
import { isCancelled } from './engineClient';
import type { FileNode } from './fileTree';
import { redactUrl } from '../engine/backend/backendUtil';
import { currentChainIndex, folderDescription, formatAge, formatBytes, formatTime, unrestorableSets, type OperationKind } from './format';
import type { BackupModel, FolderBackup } from './model';

export type BackupNode = FolderNode | ChainNode | SetNode | EntryNode | MoreNode | MessageNode;

export interface FolderNode {
  readonly kind: 'folder';
  readonly folder: FolderBackup;
}

export interface ChainNode {
  readonly kind: 'chain';
  readonly folder: FolderBackup;
  readonly chain: ChainStatus;
  readonly current: boolean;
}

export interface SetNode {
  readonly kind: 'set';
  readonly folder: FolderBackup;
  readonly set: SetStatus;
  /** The set before it in the chain (deleted files are restored as of then). */
  readonly previous?: number;
  readonly parent: ChainNode;
}

export interface EntryNode {
  readonly kind: 'entry';
  readonly folder: FolderBackup;
  readonly node: FileNode;
  /** The set the entry is listed in. */
  readonly setTime: number;
  /** The set before it (deleted entries are restored as of then). */
  readonly previousTime?: number;
}

/** The backup time of the version an entry stands for: its set, or for a deleted entry the set before. */
export function versionTimeOf(n: EntryNode): number | undefined {
  return n.node.deleted ? n.previousTime : n.setTime;
}

/** The last child of a folder with more entries than one page: loads the next page. */
export interface MoreNode {
  readonly kind: 'more';
  readonly folder: FolderBackup;
  readonly setTime: number;
  /** The folder whose entries these are ('' = the set's root). */
  readonly dir: string;
  /** The node to refresh when more are loaded. */
  readonly parent: SetNode | EntryNode;
  readonly shown: number;
}

const SHOW_MORE = 'offsite.showMoreEntries';

export interface MessageNode {
  readonly kind: 'message';
  readonly text: string;
  readonly error?: boolean;
}

export class SnapshotTreeProvider implements vscode.TreeDataProvider<BackupNode>, vscode.Disposable {
  private readonly _onDidChangeTreeData = new vscode.EventEmitter<BackupNode | undefined | void>();
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  private readonly disposables: vscode.Disposable[] = [];
  private refreshTimer?: NodeJS.Timeout;
  /** Folders whose change counts are being read. */
  private readonly loadingChanges = new Set<FolderBackup>();
  /** unrestorableSets of each chain shown, worked out once per chain (a new status brings new chain objects). */
  private readonly unrestorable = new WeakMap<ChainStatus, Map<number, string>>();
  /**
   * Each folder's item (several folders), one object per folder: VS Code knows an element by its
   * object, so a change of one folder's state refreshes that item (and its children) alone.
   */
  private readonly folderNodes = new WeakMap<FolderBackup, FolderNode>();
  /** What each folder ran when its item was last made (its description, icon and actions say so). */
  private readonly shownRunning = new WeakMap<FolderBackup, OperationKind | undefined>();

  constructor(private readonly model: BackupModel) {
    this.disposables.push(
      this._onDidChangeTreeData,
      model.onDidChangeBackups(() => this.refreshSoon()),
      // A folder's operation began or ended: its item says so (and offers Cancel instead of Backup); the
      // other folders' items are left as they are. (One folder has no item: the view's description says it.)
      model.onDidChangeState(() => {
        if (!this.showsFolders()) return;
        for (const f of model.folders) {
          const node = this.folderNodes.get(f);
          if (node && this.shownRunning.get(f) !== f.running?.kind) this._onDidChangeTreeData.fire(node);
        }
      }),
      // Internal (the tree's "Show more…" item), so not contributed in package.json.
      vscode.commands.registerCommand(SHOW_MORE, (n: MoreNode) => this.showMore(n)),
    );
  }

  /** Loads the next page of a big folder and shows it under the same parent. */
  async showMore(n: MoreNode): Promise<void> {
    if (n?.kind !== 'more') return;
    try {
      await this.model.listMore(n.folder, n.setTime, n.dir);
    } catch (e) {
      // The item stays, so a click tries again.
      this.model.logEnd(`Show more of ${n.dir || n.folder.name}`, e);
      if (!isCancelled(e)) void vscode.window.showErrorMessage(vscode.l10n.t('Offsite: {0}', e instanceof Error ? e.message : String(e)));
    } finally {
      this._onDidChangeTreeData.fire(n.parent);
    }
  }

  /** Debounced: a backup fires several changes in a row. */
  refreshSoon(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this._onDidChangeTreeData.fire(), 100);
  }

  private unrestorableOf(chain: ChainStatus): Map<number, string> {
    let m = this.unrestorable.get(chain);
    if (m === undefined) this.unrestorable.set(chain, (m = unrestorableSets(chain)));
    return m;
  }

  getTreeItem(n: BackupNode): vscode.TreeItem {
    switch (n.kind) {
      case 'folder': {
        const item = new vscode.TreeItem(n.folder.name, vscode.TreeItemCollapsibleState.Expanded);
        const running = n.folder.running;
        this.shownRunning.set(n.folder, running?.kind);
        const where = n.folder.config.url ? redactUrl(n.folder.config.url) : vscode.l10n.t('not configured');
        item.description = folderDescription(where, running?.kind);
        item.tooltip = n.folder.config.url ? `${n.folder.folder.uri.fsPath} → ${redactUrl(n.folder.config.url)}` : undefined;
        item.iconPath = new vscode.ThemeIcon(running ? 'sync~spin' : 'root-folder');
        // Busy: its Backup action gives way to Cancel (for this folder only; the others keep theirs).
        item.contextValue = running ? 'folder-busy' : 'folder';
        return item;
      }
      case 'chain': {
        const c = n.chain;
        const item = new vscode.TreeItem(
          c.damage !== undefined ? vscode.l10n.t('Damaged chain {0}', formatTime(c.startTime))
          : n.current ? vscode.l10n.t('Chain since {0}', formatTime(c.startTime))
          : vscode.l10n.t('Older chain {0}', formatTime(c.startTime)),
          n.current ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed,
        );
        const bytes = c.sets.reduce((s, x) => s + x.bytes, 0);
        item.description = `${vscode.l10n.t('{0} set(s)', c.sets.length)} · ${formatBytes(bytes)}`;
        item.tooltip = `${formatTime(c.startTime)} … ${formatTime(c.endTime)}${c.hasSignatures ? '' : `\n${vscode.l10n.t('Signature files missing: listing needs them')}`}${c.damage === undefined ? '' : `\n${vscode.l10n.t('Not restorable: its full set: {0}', c.damage)}`}`;
        item.iconPath = new vscode.ThemeIcon(c.damage === undefined ? 'link' : 'warning');
        item.contextValue = 'chain';
        return item;
      }
      case 'set': {
        const s = n.set;
        const item = new vscode.TreeItem(formatTime(s.time), vscode.TreeItemCollapsibleState.Collapsed);
        const ch = n.folder.changes?.get(s.time);
        const changed = ch ? ch.new + ch.changed + ch.deleted : undefined;
        // A damaged set, or one built on it, lists (its signatures may be fine) but does not restore.
        const broken = this.unrestorableOf(n.parent.chain).get(s.time);
        item.description = [
          broken === undefined ? undefined : vscode.l10n.t('not restorable'),
          s.type === 'full' ? vscode.l10n.t('full') : vscode.l10n.t('incremental'),
          formatBytes(s.bytes),
          changed === undefined ? undefined : vscode.l10n.t('{0} changed', changed),
        ]
          .filter(Boolean)
          .join(' · ');
        item.tooltip = new vscode.MarkdownString(
          [
            `**${s.type === 'full' ? vscode.l10n.t('Full backup') : vscode.l10n.t('Incremental backup')}** ${formatTime(s.time)} (${formatAge(Date.now() / 1000 - s.time)})`,
            vscode.l10n.t('{0} volume(s), {1}', s.volumes, formatBytes(s.bytes)),
            ch ? vscode.l10n.t('{0} new, {1} changed, {2} deleted', ch.new, ch.changed, ch.deleted) : '',
            broken === undefined ? '' : `$(warning) ${vscode.l10n.t('Not restorable: {0}', broken)}`,
          ]
            .filter(Boolean)
            .join('  \n'),
          true,
        );
        item.iconPath = broken === undefined ? new vscode.ThemeIcon(s.type === 'full' ? 'package' : 'history') : new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
        item.contextValue = 'set';
        item.id = `${n.folder.folder.uri.toString()}#set:${s.time}`;
        return item;
      }
      case 'entry': {
        const e = n.node;
        const isDir = e.kind === 'dir';
        const item = new vscode.TreeItem(e.name, isDir ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
        // The workspace file's URI: the theme picks the file icon and VS Code shows its label decorations.
        item.resourceUri = vscode.Uri.joinPath(n.folder.folder.uri, ...e.path.split('/'));
        item.iconPath = isDir ? vscode.ThemeIcon.Folder : e.kind === 'link' ? new vscode.ThemeIcon('file-symlink-file') : vscode.ThemeIcon.File;
        if (e.deleted) {
          item.description = vscode.l10n.t('deleted');
          item.iconPath = new vscode.ThemeIcon(isDir ? 'folder' : 'trash', new vscode.ThemeColor('gitDecoration.deletedResourceForeground'));
        }
        item.tooltip = e.deleted
          ? vscode.l10n.t('{0} was deleted by the backup of {1}; its last version is from {2}', e.path, formatTime(n.setTime), n.previousTime ? formatTime(n.previousTime) : '?')
          : vscode.l10n.t('{0} as of {1}', e.path, formatTime(n.setTime));
        item.contextValue = `${isDir ? 'dir' : e.kind === 'file' ? 'file' : 'other'}${e.deleted ? ':deleted' : ''}`;
        item.id = `${n.folder.folder.uri.toString()}#${n.setTime}:${e.path}`;
        if (e.kind === 'file' && versionTimeOf(n) !== undefined) {
          item.command = { command: 'offsite.compareWithCurrent', title: vscode.l10n.t('Compare with Current'), arguments: [n] };
        }
        return item;
      }
      case 'more': {
        const item = new vscode.TreeItem(vscode.l10n.t('Show more…'), vscode.TreeItemCollapsibleState.None);
        item.description = vscode.l10n.t('{0} shown', n.shown);
        item.iconPath = new vscode.ThemeIcon('ellipsis');
        item.contextValue = 'more';
        item.id = `${n.folder.folder.uri.toString()}#${n.setTime}:${n.dir}#more`;
        item.command = { command: SHOW_MORE, title: vscode.l10n.t('Show more…'), arguments: [n] };
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(n.text, vscode.TreeItemCollapsibleState.None);
        item.iconPath = new vscode.ThemeIcon(n.error ? 'error' : 'info');
        item.tooltip = n.text;
        item.contextValue = 'message';
        if (n.error) item.command = { command: 'offsite.refresh', title: vscode.l10n.t('Refresh') };
        return item;
      }
    }
  }

  async getChildren(n?: BackupNode): Promise<BackupNode[]> {
    if (!n) {
      if (!vscode.workspace.isTrusted) return [];
      const folders = this.model.folders;
      if (folders.length === 1) return folders[0].config.configured ? this.chainsOf(folders[0]) : [];
      if (!this.showsFolders()) return [];
      return folders.map((folder) => {
        let node = this.folderNodes.get(folder);
        if (!node) this.folderNodes.set(folder, (node = { kind: 'folder', folder }));
        return node;
      });
    }
    switch (n.kind) {
      case 'folder':
        return n.folder.config.configured ? this.chainsOf(n.folder) : [{ kind: 'message', text: vscode.l10n.t('Not configured: set offsite.remote and offsite.encryptKeys') }];
      case 'chain':
        return this.setsOf(n);
      case 'set':
        return this.entriesOf(n, n.set.time, n.previous, '');
      case 'entry':
        return n.node.kind === 'dir' ? this.entriesOf(n, n.setTime, n.previousTime, n.node.path) : [];
      default:
        return [];
    }
  }

  /** Whether the view's top level is the folders (several, one configured at least). */
  private showsFolders(): boolean {
    const folders = this.model.folders;
    return vscode.workspace.isTrusted && folders.length > 1 && folders.some((f) => f.config.configured);
  }

  private async chainsOf(f: FolderBackup): Promise<BackupNode[]> {
    try {
      const s = await this.model.statusOf(f);
      if (s.chains.length === 0) {
        // One folder: an empty tree, so the welcome view offers "Backup Workspace".
        return this.model.folders.length === 1 ? [] : [{ kind: 'message', text: vscode.l10n.t('No backups yet at {0}', redactUrl(f.config.url)) }];
      }
      // Newest first.
      const current = currentChainIndex(s);
      return s.chains.map((chain, i) => ({ kind: 'chain' as const, folder: f, chain, current: i === current })).reverse();
    } catch (e) {
      return [{ kind: 'message', text: vscode.l10n.t('Cannot read {0}: {1}', redactUrl(f.config.url), e instanceof Error ? e.message : String(e)), error: true }];
    }
  }

  private async setsOf(n: ChainNode): Promise<BackupNode[]> {
    // Change counts need every set's manifest (cached locally after a backup from this machine; on
    // another, downloaded one by one): best effort, and not waited for, so hundreds of sets show at once
    // and get their counts when they come.
    const f = n.folder;
    // (Not again after a failure, a declined passphrase say, until Refresh.)
    if (!f.changes && f.changesError === undefined && !this.loadingChanges.has(f)) {
      this.loadingChanges.add(f);
      void this.model
        .changesOf(f)
        .then(
          () => this.refreshSoon(),
          (e) => {
            f.changesError = e instanceof Error ? e.message : String(e);
          },
        )
        .finally(() => this.loadingChanges.delete(f));
    }
    const sets = n.chain.sets;
    return sets.map((set, i) => ({ kind: 'set' as const, folder: n.folder, set, previous: i > 0 ? sets[i - 1].time : undefined, parent: n })).reverse();
  }

  private async entriesOf(parent: SetNode | EntryNode, setTime: number, previousTime: number | undefined, dir: string): Promise<BackupNode[]> {
    try {
      const l = await this.model.listFolder(parent.folder, setTime, dir);
      if (l.nodes.length === 0 && dir === '') return [{ kind: 'message', text: vscode.l10n.t('This backup holds no files') }];
      const out: BackupNode[] = l.nodes.map((node) => ({ kind: 'entry', folder: parent.folder, node, setTime, previousTime }));
      if (l.next !== undefined) out.push({ kind: 'more', folder: parent.folder, setTime, dir, parent, shown: l.nodes.length });
      return out;
    } catch (e) {
      return [{ kind: 'message', text: e instanceof Error ? e.message : String(e), error: true }];
    }
  }

  dispose(): void {
    clearTimeout(this.refreshTimer);
    for (const d of this.disposables) d.dispose();
  }
}
