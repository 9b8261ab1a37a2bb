// A multi-root workspace (a .code-workspace with two folders): Backup Workspace backs up every folder,
// and one that fails, is busy or whose remote another run has locked is reported once for all, never
// stopping the others; one folder's running backup holds up no other folder's commands.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { archiveDirFor } from '../../../src/engine/cache/archiveDir';
import type { OffsiteApi } from '../../../src/extension/extension';
import type { BackupNode } from '../../../src/extension/snapshotTree';
import { fixture, logFrom, manifests, nextSecond, offsite, waitFor, writeRandomBlobs } from './fixture';

const fx = fixture();
const secondRemote = () => path.join(path.dirname(fx.remoteDir), 'second');

describe('Offsite in a multi-root workspace', () => {
  let api: OffsiteApi;

  before(async () => {
    api = await offsite();
    api.ui.script();
  });

  it('opens both folders, each with its own remote; the first one\'s encryption key file is missing', () => {
    assert.deepEqual(api.model.folders.map((f) => f.name), ['workspace', 'second']);
    assert.deepEqual(api.model.configuredFolders.map((f) => f.config.url), [`${fx.remoteRoot}/workspace`, `${fx.remoteRoot}/second`]);
    assert.match(api.model.folders[0].config.keys.encryptKeys?.[0] ?? '', /missing-pub\.asc$/);
  });

  it('Backup Workspace backs up the second folder when the first fails, and says which failed in one error', async () => {
    const notices = api.ui.notices.length;
    const results = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[] | undefined;
    const shown = api.ui.notices.slice(notices);
    assert.equal(results?.length, 1, JSON.stringify(shown));
    assert.equal(manifests(secondRemote()).length, 1, 'the second folder is backed up');
    assert.equal(manifests(fx.remoteDir).length, 0);
    const errors = shown.filter((n) => n.severity === 'error');
    assert.equal(errors.length, 1, JSON.stringify(shown));
    assert.match(errors[0].message, /1 of 2 folders not backed up/);
    assert.match(errors[0].message, /workspace: .*missing-pub\.asc/);
    assert.doesNotMatch(errors[0].message, /second:/);
    assert.ok(shown.some((n) => n.severity === 'info' && /Backup of second done/.test(n.message)), JSON.stringify(shown));
    assert.ok(api.model.record(api.model.folders[0]).lastFailure, 'the failure is recorded for the first folder');
    assert.equal(api.model.record(api.model.folders[1]).lastFailure, undefined);
  });

  it('a folder that is busy does not keep the others from being backed up', async () => {
    const first = api.model.folders[0];
    await vscode.workspace.getConfiguration('offsite', first.folder.uri).update('encryptKeys', undefined, vscode.ConfigurationTarget.WorkspaceFolder);
    await waitForKeys(api);
    await nextSecond();
    // The first folder is running something (as a backup started a moment before would be).
    const folder = api.model.folders[0];
    const log = await logFrom(api); // what this test's commands log, whatever ran before it
    folder.running = { kind: 'backup', background: true, abort: new AbortController(), files: 0 };
    const notices = api.ui.notices.length;
    try {
      const results = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as unknown[] | undefined;
      const shown = api.ui.notices.slice(notices);
      assert.equal(results?.length, 1, JSON.stringify(shown));
      assert.equal(manifests(secondRemote()).length, 2, 'the second folder is backed up again');
      assert.equal(manifests(fx.remoteDir).length, 0, 'the busy one is not');
      const warned = shown.filter((n) => n.severity !== 'info');
      assert.equal(warned.length, 1, JSON.stringify(shown));
      assert.equal(warned[0].severity, 'warning', 'busy is not a failure');
      assert.match(warned[0].message, /1 of 2 folders not backed up: workspace: Offsite is already running a scheduled backup of workspace/);
      // Asked of that folder alone: said with its ways out; a scheduled backup shows no progress, so Show Log.
      const alone = api.ui.notices.length;
      assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace', folder.folder.uri), undefined);
      assert.deepEqual(
        api.ui.notices.slice(alone).map((n) => [n.severity, n.message, n.actions]),
        [['info', 'Offsite is already running a scheduled backup of workspace. Wait for it to finish, or cancel it.', ['Show Log', 'Cancel It']]],
      );
    } finally {
      folder.running = undefined;
    }
    // And with nothing in the way, both are backed up.
    await nextSecond();
    const both = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as unknown[] | undefined;
    assert.equal(both?.length, 2, JSON.stringify(api.ui.notices.slice(-3)));
    assert.equal(manifests(fx.remoteDir).length, 1);
    // Each refusal is logged once (Backup Workspace's of that folder, and the one asked of it alone),
    // before the backup of it that followed.
    const refusals = (await log.lines()).filter((l) => l.includes('Offsite is already running a scheduled backup of workspace'));
    assert.equal(refusals.length, 2, refusals.join('\n'));
    assert.ok(refusals.every((l) => l.includes('Not backing up workspace: ')), refusals.join('\n'));
  });

  it('a folder\'s operation beginning or ending refreshes that folder\'s item in the Backups view, not the whole tree', async () => {
    const [first, second] = api.model.folders;
    const items = (await api.tree.getChildren()) as BackupNode[];
    assert.deepEqual(items.map((n) => n.kind === 'folder' && n.folder), [first, second]);
    const chains = async () => ((await api.tree.getChildren(items[0])) as BackupNode[]).map((n) => (n.kind === 'chain' ? n.chain.startTime : n.kind));
    const chainsBefore = await chains();
    // VS Code has shown both items, idle.
    for (const n of items) assert.equal(api.tree.getTreeItem(n).contextValue, 'folder');
    const fired: (BackupNode | undefined | void)[] = [];
    const sub = api.tree.onDidChangeTreeData((e) => fired.push(e));
    try {
      // A verify of the first folder begins: its state changes before verify() waits for anything.
      const verifying = api.model.verify(first).catch(() => undefined); // (it ends cancelled)
      assert.equal(fired.length, 1, 'one change');
      assert.equal(fired[0], items[0], 'of the first folder\'s item (the object VS Code has), not of the whole tree (undefined)');
      assert.equal(api.tree.getTreeItem(items[0]).contextValue, 'folder-busy');
      assert.match(String(api.tree.getTreeItem(items[0]).description), /^verifying… · /);
      // It ends (cancelled): the same item again, before verify() returns.
      fired.length = 0;
      api.model.cancel(first);
      await verifying;
      assert.ok(fired.includes(items[0]), `the first folder's item: ${fired.length} change(s)`);
      assert.ok(!fired.includes(items[1]), 'the other folder\'s item is left alone');
      assert.equal(api.tree.getTreeItem(items[0]).contextValue, 'folder');
      // A state change that leaves every folder as it was (a record written) refreshes no item.
      fired.length = 0;
      await api.model.updateRecord(second, {});
      assert.ok(!fired.some((e) => e !== undefined && e.kind === 'folder'), 'no folder item for a change of no folder\'s operation');
    } finally {
      sub.dispose();
      api.model.cancel(first);
    }
    // Under the refreshed item, the same chains.
    assert.deepEqual(await chains(), chainsBefore);
  });

  it('a folder whose remote another live run has locked (cron, another window) is named as not backed up, in a warning; the other is backed up', async function () {
    this.timeout(60_000);
    const second = api.model.folders[1];
    // The lock a CLI backup of the second folder's remote holds (in the engine's cache root: this
    // host's environment), by a live process on this host.
    const lock = path.join(archiveDirFor(second.config.url), 'lockfile');
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command: 'backup' }), { mode: 0o600 });
    await nextSecond();
    const firstSets = manifests(fx.remoteDir).length;
    const secondSets = manifests(secondRemote()).length;
    const notices = api.ui.notices.length;
    try {
      const results = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as unknown[] | undefined;
      const shown = api.ui.notices.slice(notices);
      assert.equal(results?.length, 1, JSON.stringify(shown));
      assert.equal(manifests(fx.remoteDir).length, firstSets + 1, 'the first folder is backed up');
      assert.equal(manifests(secondRemote()).length, secondSets, 'the locked one is not');
      assert.ok(shown.some((n) => n.severity === 'info' && /Backup of workspace done/.test(n.message)), JSON.stringify(shown));
      const warned = shown.filter((n) => n.severity !== 'info');
      assert.equal(warned.length, 1, JSON.stringify(shown));
      assert.equal(warned[0].severity, 'warning', 'a remote held by another run is no failure');
      assert.match(warned[0].message, new RegExp(`1 of 2 folders not backed up: second: Another Offsite run is writing to this backup: process ${process.pid}`));
      assert.doesNotMatch(warned[0].message, /workspace:/);
      assert.deepEqual(warned[0].actions, ['Show Log'], 'nothing to fix in the settings');
      assert.equal(api.model.record(second).lastFailure, undefined, 'a backup that could not start is not a failed one');
      const view = await waitFor('the status bar after the run', () => (api.model.folders.every((f) => !f.running) ? api.statusBar.view : undefined));
      assert.doesNotMatch(view.text, /failed/i);
      assert.equal(view.warning, false);
      assert.ok(fs.existsSync(lock), 'the other run\'s lock is left alone');
    } finally {
      fs.rmSync(lock, { force: true });
    }
  });

  it('while one folder\'s backup runs, the other folder is backed up (by hand and by the schedule), the busy one is shown so in the Backups view, and a second backup of it is refused with a message (its Cancel stops the first)', async function () {
    this.timeout(300_000);
    const [first, second] = api.model.folders;
    const big = path.join(fx.workspace, 'busy-big');
    // Incompressible data: the first folder's backup takes long enough to be caught running.
    await writeRandomBlobs(big, 48, 8);
    const firstSets = manifests(fx.remoteDir).length;
    const secondSets = manifests(secondRemote()).length;
    const folderItems = async () => Promise.all(((await api.tree.getChildren()) as BackupNode[]).map((n) => api.tree.getTreeItem(n)));
    // Hourly backups (the scheduler is run by hand below, an hour on).
    const config = vscode.workspace.getConfiguration('offsite');
    await config.update('schedule', 60, vscode.ConfigurationTarget.Workspace);
    await waitFor('the schedule', () => api.model.folders.every((f) => f.config.settings.schedule === 60));
    await nextSecond();
    try {
      const running = vscode.commands.executeCommand('offsite.backupWorkspace', first.folder.uri);
      const run = await waitFor('the first folder\'s backup to be under way', () => (first.running && first.running.files > 0 ? first.running : undefined), 60_000);
      // The Backups view: the first folder busy (its Backup action gives way to Cancel), the second as ever.
      const [busyItem, idleItem] = await folderItems();
      assert.equal(busyItem.contextValue, 'folder-busy');
      assert.match(String(busyItem.description), /^backing up… · /);
      assert.equal(idleItem.contextValue, 'folder');
      assert.doesNotMatch(String(idleItem.description), /backing up/);

      // The other folder's backup is not held up by it.
      let notices = api.ui.notices.length;
      const other = (await vscode.commands.executeCommand('offsite.backupWorkspace', second.folder.uri)) as unknown[] | undefined;
      assert.equal(other?.length, 1, JSON.stringify(api.ui.notices.slice(notices)));
      assert.equal(manifests(secondRemote()).length, secondSets + 1, 'the second folder is backed up meanwhile');
      assert.equal(first.running, run, 'while the first one\'s backup still runs');

      // The schedule, an hour on: the second folder is backed up; the busy one is left to its run, unsaid.
      notices = api.ui.notices.length;
      await api.scheduler.tick(Date.now() / 1000 + 3600);
      assert.equal(manifests(secondRemote()).length, secondSets + 2, 'the scheduled backup of the second folder ran');
      assert.deepEqual(api.ui.notices.slice(notices), []);
      assert.equal(first.running, run, 'and the first one\'s backup still runs, alone');

      // Cancel from the idle folder's item cancels nothing: each folder's Cancel is its own.
      assert.equal(await vscode.commands.executeCommand('offsite.cancel', { kind: 'folder', folder: second }), 0);
      assert.equal(first.running, run);

      // A second backup of the busy folder: said, with the ways to its progress and to cancel it; not run, not an attempt.
      const attempt = api.model.record(first).lastAttempt;
      notices = api.ui.notices.length;
      assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace', first.folder.uri), undefined);
      const said = api.ui.notices.slice(notices);
      assert.deepEqual(
        said.map((n) => [n.severity, n.message, n.actions]),
        [['info', 'Offsite is already backing up workspace. Wait for it to finish, or cancel it.', ['Show Progress', 'Cancel It']]],
      );
      assert.equal(first.running, run, 'the same run goes on: no second one');
      assert.equal(api.model.record(first).lastAttempt, attempt, 'a refused backup is no attempt (it would put the schedule off)');

      // Its Cancel stops the run it names.
      api.ui.click('Cancel It');
      await vscode.commands.executeCommand('offsite.backupWorkspace', first.folder.uri);
      assert.equal(await running, undefined, 'cancelled');
      assert.equal(manifests(fx.remoteDir).length, firstSets, 'the first folder got no set: the one backup was cancelled, none ran twice');
      assert.equal(api.model.record(first).lastFailure, undefined);
      await waitFor('the Backups view to show the folder idle again', async () => (await folderItems())[0].contextValue === 'folder');
    } finally {
      api.model.cancel(first);
      fs.rmSync(big, { recursive: true, force: true });
      await config.update('schedule', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });
});

async function waitForKeys(api: OffsiteApi): Promise<void> {
  const end = Date.now() + 10_000;
  while (!api.model.folders[0].config.keys.encryptKeys?.[0]?.endsWith('rsa-pub.asc')) {
    if (Date.now() > end) throw new Error(`the first folder's keys: ${JSON.stringify(api.model.folders[0].config.keys)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
