// What a careful user meets at the edges: Compare with Backup and Restore File As Of… on a binary file,
// an image, a symlink, a file never backed up, an untitled document, a document that is no file on
// disk, a file outside the folder; a version too large for a diff; a long read, and a long restore of
// one file, with its progress and Cancel; keepFull refused beside a backup made; a damaged set in the tree; a record that looks stale or failed while cron has backed up
// since; settings with values Offsite cannot use. A workspace and a file:// remote of its own (as the main suite's).
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as vscode from 'vscode';
import { timeToString } from '../../../src/engine/chain/time';
import { restoreTempPrefix } from '../../../src/engine/ops/treeWriter';
import { toBackupUri } from '../../../src/extension/backupFs';
import type { OffsiteApi } from '../../../src/extension/extension';
import { formatTime } from '../../../src/extension/format';
import type { BackupNode, SetNode } from '../../../src/extension/snapshotTree';
import { countReads, fixture, nextSecond, offsite, remoteFiles, waitFor, write, writeRandomBlobs } from './fixture';

const fx = fixture();
const execFileAsync = promisify(execFile);
// A 1×1 PNG: VS Code opens it in its image preview (a custom editor, no text editor).
const PIXEL_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

function activeDiff(): { original: vscode.Uri; modified: vscode.Uri } | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input as { original?: unknown; modified?: unknown } | undefined;
  return input && input.original instanceof vscode.Uri && input.modified instanceof vscode.Uri ? { original: input.original, modified: input.modified } : undefined;
}

async function backUp(): Promise<{ time: number; type: string }> {
  await nextSecond();
  const [b] = ((await vscode.commands.executeCommand('offsite.backupWorkspace')) ?? []) as { time: number; type: string }[];
  assert.ok(b, 'the backup returned a summary');
  return b;
}

/** A backup as cron makes it: the same engine and remote, not through this window's model. */
async function cronBackup(api: OffsiteApi): Promise<{ time: number }> {
  await nextSecond();
  const cfg = api.model.folders[0].config;
  return api.model.gateway.client.request({ op: 'backup', remote: cfg.remote, keys: cfg.keys, source: cfg.folder.fsPath, ...cfg.selection });
}

describe('Offsite at the edges: files that are not text files, documents that are no files, damage, progress, stale records, bad settings', () => {
  let api: OffsiteApi;
  const ws = fx.workspace;

  before(async () => {
    api = await offsite();
    api.ui.script();
  });

  afterEach(async function () {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    api.ui.progressDelayMs = 1000;
    const unused = api.ui.takeUnusedAnswers();
    if (this.currentTest?.state === 'passed') assert.deepEqual(unused, [], 'every scripted answer was used');
    if (this.currentTest?.state === 'failed') {
      console.log('notices:', JSON.stringify(api.ui.notices.slice(-6), null, 1));
      console.log('prompts:', JSON.stringify(api.ui.prompts.slice(-8)));
    }
  });

  /** The notices a command leaves (it resolves to undefined when it only said something). */
  async function said(command: string, ...args: unknown[]): Promise<{ result: unknown; notices: typeof api.ui.notices }> {
    const mark = api.ui.notices.length;
    const result = await vscode.commands.executeCommand(command, ...args);
    return { result, notices: api.ui.notices.slice(mark) };
  }

  it('Compare With Backup from the palette compares the binary file or the image of the active tab, which has no text editor', async () => {
    write(ws, 'pixel.png', PIXEL_PNG);
    const b = await backUp();
    for (const name of ['logo.bin', 'pixel.png']) {
      const file = path.join(ws, name);
      await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(file));
      await waitFor(`the tab of ${name}`, () => vscode.window.tabGroups.activeTabGroup.activeTab?.label === name);
      assert.equal(vscode.window.activeTextEditor, undefined, `${name}: no text editor, only the active tab has the file`);
      api.ui.script(formatTime(b.time));
      const { result, notices } = await said('offsite.compareWithBackup');
      assert.ok(result, `${name}: ${JSON.stringify(notices)}`);
      // The diff opens; for the image it is the image preview's, which the Tab API shows without an input.
      await waitFor(`the diff of ${name}`, () => vscode.window.tabGroups.activeTabGroup.activeTab?.label === `${name} (backup of ${formatTime(b.time)}) ↔ current`);
      if (name === 'logo.bin') {
        const diff = activeDiff();
        assert.equal(diff?.modified.fsPath, file);
        assert.equal(diff?.original.scheme, 'offsite');
      }
      const uri = result as vscode.Uri;
      assert.equal(uri.scheme, 'offsite');
      assert.ok(Buffer.from(await vscode.workspace.fs.readFile(uri)).equals(fs.readFileSync(file)), `${name}: the backup version, byte for byte`);
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    }
  });

  it('a symlink is said to be backed up as a symlink, not "in no backup"; a file in no backup says where a renamed one\'s versions are', async () => {
    fs.symlinkSync('README.md', path.join(ws, 'link.md'));
    write(ws, 'later.txt', 'renamed after the backup\n');
    try {
      await backUp();
      fs.renameSync(path.join(ws, 'later.txt'), path.join(ws, 'renamed.txt'));
      const link = await said('offsite.compareWithBackup', vscode.Uri.file(path.join(ws, 'link.md')));
      assert.equal(link.result, undefined);
      assert.equal(link.notices.length, 1, JSON.stringify(link.notices));
      assert.equal(link.notices[0].severity, 'warning');
      assert.match(link.notices[0].message, /link\.md is backed up as a symlink, not as a file/);
      assert.doesNotMatch(link.notices[0].message, /in no backup/);
      const renamed = await said('offsite.restoreFileAsOf', vscode.Uri.file(path.join(ws, 'renamed.txt')));
      assert.equal(renamed.notices.length, 1, JSON.stringify(renamed.notices));
      assert.match(renamed.notices[0].message, /renamed\.txt is in no backup of workspace\. .*offsite\.exclude and \.gitignore; a file renamed or moved since has its versions under its old name/);
    } finally {
      fs.rmSync(path.join(ws, 'link.md'), { force: true });
      fs.rmSync(path.join(ws, 'renamed.txt'), { force: true });
    }
  });

  it('an untitled document, a document that is no file on disk, a file outside the folder, no editor: a warning that says so, without Open Settings', async () => {
    const expect = async (command: string, re: RegExp, arg?: unknown) => {
      const { result, notices } = await said(command, ...(arg === undefined ? [] : [arg]));
      assert.equal(result, undefined);
      assert.equal(notices.length, 1, `${command}: ${JSON.stringify(notices)}`);
      assert.equal(notices[0].severity, 'warning', `${command}: ${JSON.stringify(notices[0])}`);
      assert.match(notices[0].message, re);
      assert.deepEqual(notices[0].actions, ['Show Log'], 'no Open Settings: no setting is at fault');
    };
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ content: 'not saved\n' }));
    await expect('offsite.compareWithBackup', /^Offsite: Untitled-\d+ is not saved yet: Offsite backs up files on disk/);
    await expect('offsite.restoreFileAsOf', /^Offsite: Untitled-\d+ is not saved yet/);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    // The status report is a document of its own scheme.
    await vscode.commands.executeCommand('offsite.showStatus');
    await waitFor('the status report', () => vscode.window.activeTextEditor?.document.uri.scheme === 'offsite-status');
    await expect('offsite.compareWithBackup', /\(offsite-status:\) is not a file on disk/);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await vscode.commands.executeCommand('workbench.action.closePanel');
    const outside = write(fx.scratch, 'outside.txt', 'not in the workspace\n');
    await expect('offsite.compareWithBackup', /outside\.txt is not in a folder of the workspace/, vscode.Uri.file(outside));
    await expect('offsite.compareWithBackup', /^Offsite: No file to compare\. Open a file of the workspace first/);
    await expect('offsite.restoreFileAsOf', /^Offsite: No file to restore\./);
  });

  it('reading a version shows a progress notification, and its Cancel stops the read quietly; the next read works', async function () {
    this.timeout(300_000);
    const big = path.join(ws, 'big.bin');
    await execFileAsync('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', 'count=48', 'status=none']);
    try {
      const b = await backUp();
      api.ui.progressDelayMs = 0;
      const reading = `Offsite: reading big.bin as of ${formatTime(b.time)}…`;
      const shown = api.ui.progressShown.length;
      api.ui.script(formatTime(b.time));
      const mark = api.ui.notices.length;
      const running = vscode.commands.executeCommand('offsite.compareWithBackup', vscode.Uri.file(big));
      await waitFor('the progress of the read', () => api.ui.progressShown.slice(shown).includes(reading), 60_000);
      assert.deepEqual(api.ui.progressShown.slice(shown), ['Offsite: reading the versions of big.bin…', reading]);
      assert.ok(api.ui.cancelProgress() >= 1, 'a read to cancel');
      assert.equal(await running, undefined, 'cancelled: no version');
      assert.deepEqual(api.ui.notices.slice(mark), [], 'a cancel is said by nothing');
      assert.equal(activeDiff(), undefined, 'no diff opened');
      // "Cancel Running Backup, Restore or Verify" reaches it too, as it reaches a backup or a restore
      // (and the palette offers it while only such a read runs).
      const shownAgain = api.ui.progressShown.length;
      api.ui.script(formatTime(b.time));
      const again = vscode.commands.executeCommand('offsite.compareWithBackup', vscode.Uri.file(big));
      await waitFor('the progress of the read', () => api.ui.progressShown.slice(shownAgain).includes(reading), 60_000);
      assert.equal(await vscode.commands.executeCommand('offsite.cancel'), 1, 'the command cancels the read');
      assert.equal(await again, undefined, 'cancelled by the command: no version');
      assert.deepEqual(api.ui.notices.slice(mark), [], 'a cancel is said by nothing');
      assert.equal(activeDiff(), undefined, 'no diff opened');
      const pkg = JSON.parse(fs.readFileSync(path.join(vscode.extensions.getExtension('offsite.offsite')!.extensionPath, 'package.json'), 'utf8'));
      assert.equal(pkg.contributes.commands.find((c: { command: string }) => c.command === 'offsite.cancel')?.enablement, 'offsite.cancellable');
      assert.equal(pkg.contributes.menus.commandPalette.find((c: { command: string }) => c.command === 'offsite.cancel')?.when, 'offsite.cancellable');
      // Not kept as a failure: the next read reads it.
      api.ui.script(formatTime(b.time));
      const uri = (await vscode.commands.executeCommand('offsite.compareWithBackup', vscode.Uri.file(big))) as vscode.Uri | undefined;
      assert.ok(uri, JSON.stringify(api.ui.notices.slice(mark)));
      assert.equal((await vscode.workspace.fs.stat(uri)).size, fs.statSync(big).size);
    } finally {
      fs.rmSync(big, { force: true });
    }
  });

  it('a version too large for a diff (diffEditor.maxFileSize) is said to be so, with Restore To…, never read into the host\'s memory; Restore To… writes it', async function () {
    this.timeout(120_000);
    const diffConfig = vscode.workspace.getConfiguration('diffEditor');
    await diffConfig.update('maxFileSize', 1, vscode.ConfigurationTarget.Workspace);
    const big = write(ws, 'large.bin', Buffer.from(Array.from({ length: 1_500_000 }, (_, i) => (i * 7919 + (i >> 9)) % 251)));
    const dest = path.join(fx.scratch, 'large-restored.bin');
    try {
      const b = await backUp();
      // The temporary file of a Restore To… whose window was killed (a process gone), beside the destination.
      const dead = path.join(fx.scratch, `${restoreTempPrefix().replace(/-\d+-([0-9a-f]{12})$/, '-999999999-$1')}-1`);
      fs.writeFileSync(dead, 'plain text of a version', { mode: 0o600 });
      api.ui.click('Restore To…');
      api.ui.script(formatTime(b.time), dest);
      const downloads = countReads(api, 'readFile');
      const { result, notices } = await said('offsite.compareWithBackup', vscode.Uri.file(big));
      assert.equal(result, undefined, 'no comparison opened');
      assert.equal(activeDiff(), undefined, 'no diff opened');
      assert.equal(notices[0]?.severity, 'warning', JSON.stringify(notices));
      assert.match(notices[0].message, new RegExp(`^large\\.bin as of ${formatTime(b.time)} is 1\\.4 MB: too large for VS Code to compare \\(diffEditor\\.maxFileSize\\)\\. Restore To… writes it where you choose\\.$`));
      assert.deepEqual(notices[0].actions, ['Restore To…']);
      await waitFor('the restored file', () => api.ui.notices.some((n) => n.message === `Restored large.bin as of ${formatTime(b.time)} to ${dest}.`));
      downloads.stop();
      assert.ok(fs.readFileSync(dest).equals(fs.readFileSync(big)), 'the version, byte for byte');
      // The version read to learn its size is the one written: it is not downloaded again.
      assert.equal(downloads.count(), 1, 'one download of the version');
      assert.equal(fs.statSync(dest).mode & 0o777, fs.statSync(big).mode & 0o777, 'the backup\'s permissions');
      assert.ok(!fs.existsSync(dead), 'the killed window\'s temporary is removed');
      assert.deepEqual(fs.readdirSync(fx.scratch).filter((n) => n.startsWith('.offsite-restore-')), [], 'no temporary of its own left');
      // An editor that asks for it anyway (one reopened after a reload) gets an error, not 1.4 MB in memory.
      const uri = vscode.Uri.file(big).with({ scheme: 'offsite', query: JSON.stringify({ folder: vscode.workspace.workspaceFolders![0].uri.toString(), path: 'large.bin', time: b.time }) });
      assert.equal((await vscode.workspace.fs.stat(uri)).size, 1_500_000);
      await assert.rejects(Promise.resolve(vscode.workspace.fs.readFile(uri)), /too large to open here/);
    } finally {
      await diffConfig.update('maxFileSize', undefined, vscode.ConfigurationTarget.Workspace);
      fs.rmSync(big, { force: true });
      fs.rmSync(dest, { force: true });
    }
  });

  it('a damaged incremental set, and the set built on it, are "not restorable" in the tree; the status bar counts the last restorable backup', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    const root = path.join(fx.scratch, 'remote-damaged');
    await config.update('remote', `file://${root}`, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the new remote', () => api.model.folders[0].config.url === `file://${root}/workspace`);
      const full = await backUp();
      fs.appendFileSync(path.join(ws, 'README.md'), 'one\n');
      const inc1 = await backUp();
      fs.appendFileSync(path.join(ws, 'README.md'), 'two\n');
      const inc2 = await backUp();
      assert.deepEqual([full.type, inc1.type, inc2.type], ['full', 'inc', 'inc']);
      // The first incremental's volume is lost on the remote.
      const dir = path.join(root, 'workspace');
      const vol = fs.readdirSync(dir).find((n) => n.startsWith('duplicity-inc.') && n.includes(`.to.${timeToString(inc1.time)}.vol1.`));
      assert.ok(vol, fs.readdirSync(dir).join(' '));
      fs.rmSync(path.join(dir, vol));
      await vscode.commands.executeCommand('offsite.refresh');
      const chains = (await api.tree.getChildren()) as BackupNode[];
      assert.equal(chains[0]?.kind, 'chain', JSON.stringify(chains.map((c) => c.kind)));
      const sets = (await api.tree.getChildren(chains[0])) as SetNode[];
      assert.deepEqual(sets.map((s) => s.set.time), [inc2.time, inc1.time, full.time]);
      const item = (n: SetNode) => api.tree.getTreeItem(n);
      const tip = (n: SetNode) => (item(n).tooltip as vscode.MarkdownString).value;
      assert.match(String(item(sets[1]).description), /^not restorable · incremental/);
      assert.match(tip(sets[1]), /Not restorable: damaged: /);
      assert.match(String(item(sets[0]).description), /^not restorable · incremental/);
      assert.match(tip(sets[0]), new RegExp(`Not restorable: it builds on the damaged incremental set of ${formatTime(inc1.time)}`));
      assert.match(String(item(sets[2]).description), /^full/);
      assert.doesNotMatch(tip(sets[2]), /Not restorable/);
      assert.equal((item(sets[1]).iconPath as vscode.ThemeIcon).id, 'warning');
      assert.equal(api.model.record(api.model.folders[0]).lastSuccess, full.time, 'the last backup that can be restored');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      fs.writeFileSync(path.join(ws, 'README.md'), '# Demo\n\nfirst version\n');
    }
    await waitFor('the remote again', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace`);
  });

  it('Show Backup Status says the last failure only while no backup succeeded since (cron\'s counts), as the status bar does', async () => {
    const f = api.model.folders[0];
    await api.model.updateRecord(f, { lastFailure: { time: Date.now() / 1000, message: 'the remote was unplugged' } });
    const failed = (await vscode.commands.executeCommand('offsite.showStatus')) as string;
    assert.match(failed, /Last failure \(.*\): the remote was unplugged/);
    assert.equal(api.statusBar.view?.text, '$(warning) Backup failed');
    const byCron = await cronBackup(api);
    const report = (await vscode.commands.executeCommand('offsite.showStatus')) as string;
    assert.equal(api.model.record(f).lastSuccess, byCron.time, 'the report read the remote');
    assert.doesNotMatch(report, /Last failure|unplugged/);
    assert.doesNotMatch(api.statusBar.view?.tooltip ?? '', /failed|unplugged/);
    assert.equal(api.statusBar.view?.warning, false);
  });

  it('before it says "stale" or "Backup failed", the scheduler reads the remote: a backup cron made since counts', async () => {
    const f = api.model.folders[0];
    const staleNotices = () => api.ui.notices.filter((n) => /No successful backup of workspace/.test(n.message));
    /** A backup as cron makes it: the same engine and remote, not through this window's model. */
    const cron = async () => {
      await nextSecond();
      const cfg = f.config;
      return api.model.gateway.client.request({ op: 'backup', remote: cfg.remote, keys: cfg.keys, source: ws, ...cfg.selection });
    };
    const byCron = await cron();
    // What this window last saw: two days ago (and it has not read the remote since).
    const now = Date.now() / 1000;
    await api.model.updateRecord(f, { lastSuccess: now - 48 * 3600 });
    api.model.statusReadAt.set(f.config.url, (now - 48 * 3600) * 1000);
    const before = staleNotices().length;
    await api.scheduler.tick(now);
    assert.equal(staleNotices().length, before, 'no stale warning');
    assert.equal(api.model.record(f).lastSuccess, byCron.time, 'the remote\'s newest set is the last success');
    assert.equal(api.statusBar.view?.warning, false);
    // A failed run here, then a backup by cron: not "Backup failed" once the remote has been read.
    await api.model.updateRecord(f, { lastFailure: { time: Date.now() / 1000, message: 'the remote was unplugged' } });
    assert.equal(api.statusBar.view?.text, '$(warning) Backup failed');
    const second = await cron();
    await api.scheduler.tick(Date.now() / 1000 + 700);
    assert.equal(api.model.record(f).lastSuccess, second.time);
    assert.doesNotMatch(api.statusBar.view?.text ?? '', /Backup failed/);
    assert.equal(api.statusBar.view?.warning, false);
  });

  it('the scheduler and the Backups view share when the remote was last read: neither reads it again within minutes of the other', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    // A remote of its own, so no earlier test's reads count.
    const root = path.join(fx.scratch, 'remote-reads');
    await config.update('remote', `file://${root}`, vscode.ConfigurationTarget.Workspace);
    const reads = countReads(api, 'status');
    try {
      await waitFor('the new remote', () => api.model.folders[0].config.url === `file://${root}/workspace`);
      await cronBackup(api);
      const g = api.model.folders[0];
      // The view reads the remote; a moment later the record looks stale (or failed): the scheduler
      // does not read the remote again.
      await vscode.commands.executeCommand('offsite.refresh');
      const read = reads.count();
      assert.ok(read >= 1);
      const now = Date.now() / 1000;
      await api.model.updateRecord(g, { lastSuccess: now - 48 * 3600, lastFailure: { time: now, message: 'the remote was unplugged' } });
      await api.scheduler.tick(now + 30);
      assert.equal(reads.count(), read, 'the scheduler took the view\'s read as its own');
      // Ten minutes on it reads it; the view shown then does not read it again.
      await api.scheduler.tick(now + 700);
      assert.equal(reads.count(), read + 1, 'read again after ten minutes');
      await api.model.refreshOlderThan(60_000);
      assert.equal(reads.count(), read + 1, 'the view took the scheduler\'s read as its own');
    } finally {
      reads.stop();
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
    }
    await waitFor('the remote again', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace`);
  });

  it('expanding a chain lists its sets at once; their change counts (every set\'s manifest) come after', async () => {
    const f = api.model.folders[0];
    write(ws, 'counts.txt', 'one\n');
    await backUp();
    fs.appendFileSync(path.join(ws, 'counts.txt'), 'two\n');
    await backUp();
    await vscode.commands.executeCommand('offsite.refresh');
    const chains = (await api.tree.getChildren()) as BackupNode[];
    const sets = (await api.tree.getChildren(chains[0])) as SetNode[];
    assert.ok(sets.length >= 2, JSON.stringify(sets.map((n) => n.kind)));
    assert.equal(f.changes, undefined, 'the sets did not wait for the change counts');
    assert.doesNotMatch(String(api.tree.getTreeItem(sets[0]).description), /changed/);
    await waitFor('the change counts', () => f.changes);
    const again = (await api.tree.getChildren(((await api.tree.getChildren()) as BackupNode[])[0])) as SetNode[];
    assert.match(String(api.tree.getTreeItem(again[0]).description), / · \d+ changed$/);
  });

  it('the Backups view shown again after a while reads the remote again: a set cron made since appears', async () => {
    const f = api.model.folders[0];
    const shown = async () => ((await api.tree.getChildren((await api.tree.getChildren())[0])) as SetNode[]).map((n) => n.set.time);
    await vscode.commands.executeCommand('workbench.view.explorer');
    await api.model.refreshStatus(f);
    await nextSecond();
    const cfg = f.config;
    const byCron = await api.model.gateway.client.request({ op: 'backup', remote: cfg.remote, keys: cfg.keys, source: ws, ...cfg.selection });
    assert.ok(!(await shown()).includes(byCron.time), 'not read yet: the view shows what was read');
    // Read six minutes ago; the view is shown again.
    api.model.statusReadAt.set(f.config.url, Date.now() - 6 * 60_000);
    await vscode.commands.executeCommand('offsite.backups.focus');
    await waitFor('the set cron made', async () => (await shown()).includes(byCron.time));
  });

  it('settings with values Offsite cannot use are named: a backup stops on them and Open Settings goes to the setting; a bad schedule is said once', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    const f = () => api.model.folders[0];
    try {
      await config.update('fullIfOlderThan', '30 days', vscode.ConfigurationTarget.Workspace);
      await waitFor('fullIfOlderThan', () => f().config.settings.fullIfOlderThan === '30 days');
      api.ui.click('Open Settings');
      const full = await said('offsite.backupWorkspace');
      assert.equal(full.result, undefined);
      const errors = full.notices.filter((n) => n.severity === 'error');
      assert.equal(errors.length, 1, JSON.stringify(full.notices));
      assert.match(errors[0].message, /^Offsite: offsite\.fullIfOlderThan is "30 days": it must be an age as duplicity writes it, e\.g\. 30D/);
      assert.doesNotMatch(errors[0].message, /--full-if-older-than|Bad time string/);
      assert.deepEqual(errors[0].actions, ['Open Settings', 'Show Log']);
      await waitFor('the Settings editor', () => vscode.window.tabGroups.activeTabGroup.activeTab?.label === 'Settings');
      assert.match(api.statusBar.view?.tooltip ?? '', /Last attempt failed .*offsite\\\.fullIfOlderThan/, 'the status bar says why');
      await config.update('fullIfOlderThan', undefined, vscode.ConfigurationTarget.Workspace);
      await config.update('volumeSize', -5, vscode.ConfigurationTarget.Workspace);
      await waitFor('volumeSize', () => f().config.settings.volumeSize === -5);
      const vol = await said('offsite.backupWorkspace');
      assert.equal(vol.result, undefined, 'not backed up with another volume size than the one set');
      assert.match(vol.notices.find((n) => n.severity === 'error')?.message ?? '', /^Offsite: offsite\.volumeSize is -5: it must be the size of a volume in MB, from 1 to 4096/);
      await config.update('volumeSize', undefined, vscode.ConfigurationTarget.Workspace);
      // A schedule of "60" (a string, as a hand-edited settings.json may have it) is no schedule: said once.
      await config.update('schedule', '60', vscode.ConfigurationTarget.Workspace);
      await waitFor('the schedule problem', () => f().config.problems?.some((p) => p.setting === 'schedule'));
      const mark = api.ui.notices.length;
      await api.scheduler.tick();
      await api.scheduler.tick();
      const told = api.ui.notices.slice(mark).filter((n) => /offsite\.schedule/.test(n.message));
      assert.equal(told.length, 1, JSON.stringify(api.ui.notices.slice(mark)));
      assert.equal(told[0].severity, 'warning');
      assert.match(told[0].message, /^Offsite: offsite\.schedule is "60": it must be a number of minutes between automatic backups \(0 = off\); until it is, none run\.$/);
      assert.deepEqual(told[0].actions, ['Open Settings']);
      const report = (await vscode.commands.executeCommand('offsite.showStatus')) as string;
      assert.match(report, /Setting not used: offsite\.schedule is "60"/);
    } finally {
      for (const k of ['fullIfOlderThan', 'volumeSize', 'schedule']) await config.update(k, undefined, vscode.ConfigurationTarget.Workspace);
    }
    await waitFor('no problems', () => (f().config.problems ?? []).length === 0);
    // Corrected: the next backup runs.
    await backUp();
  });

  it('the settings are read once per folder when they change (each offsite.* value once)', () => {
    const workspace = vscode.workspace as { getConfiguration: typeof vscode.workspace.getConfiguration };
    const real = workspace.getConfiguration;
    const got = new Map<string, number>();
    workspace.getConfiguration = (section?: string, scope?: vscode.ConfigurationScope | null) => {
      const c = real(section, scope);
      if (section !== 'offsite') return c;
      // (VS Code's configuration object is frozen: a copy that counts.)
      return {
        ...c,
        get: (key: string, fallback?: unknown) => {
          got.set(key, (got.get(key) ?? 0) + 1);
          return c.get(key, fallback);
        },
      } as vscode.WorkspaceConfiguration;
    };
    try {
      api.model.reload();
    } finally {
      workspace.getConfiguration = real;
    }
    assert.ok(got.has('remote') && got.has('encryptKeys') && got.has('schedule'), JSON.stringify([...got]));
    assert.deepEqual([...got].filter(([, n]) => n !== api.model.folders.length), [], 'each setting read once per folder');
  });

  it('Cancel (offsite.cancel) reaches the restore of one file shown with progress: the file stays as it was, no temporary file is left, nothing is said', async function () {
    this.timeout(300_000);
    const dir = path.join(ws, 'cancel-restore');
    // Incompressible: its restore takes long enough to be cancelled in the middle.
    await writeRandomBlobs(dir, 1, 64);
    const file = path.join(dir, 'blob0.bin');
    const rel = 'cancel-restore/blob0.bin';
    try {
      const b = await backUp();
      const before = fs.statSync(file);
      const restoring = `Offsite: restoring ${rel} as of ${formatTime(b.time)}…`;
      api.ui.progressDelayMs = 0;
      api.ui.script('Restore'); // the question: replace the current file (never read for a diff: the engine streams it)
      const shown = api.ui.progressShown.length;
      const mark = api.ui.notices.length;
      const version = toBackupUri(vscode.Uri.file(file), { folder: api.model.folders[0].folder.uri.toString(), path: rel, time: b.time });
      const running = vscode.commands.executeCommand('offsite.restoreThisVersion', version);
      await waitFor('the progress of the restore', () => api.ui.progressShown.slice(shown).includes(restoring), 60_000);
      assert.equal(await vscode.commands.executeCommand('offsite.cancel'), 1, 'the command cancels the restore');
      assert.equal(await running, undefined, 'cancelled: nothing restored');
      assert.deepEqual(api.ui.notices.slice(mark).filter((n) => !n.modal), [], 'a cancel is said by nothing');
      const after = fs.statSync(file);
      assert.deepEqual([after.ino, after.mtimeMs, after.size], [before.ino, before.mtimeMs, before.size], 'the file is the one it was');
      await waitFor('no temporary file beside it', () => fs.readdirSync(dir).join() === 'blob0.bin', 5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('when keepFull cannot remove the old backups (one dated in the future), the backup made is said done, with a warning beside it: not "Backup failed"', async function () {
    this.timeout(120_000);
    const config = vscode.workspace.getConfiguration('offsite');
    const f = () => api.model.folders[0];
    // A full set again under a name of 2099, as a machine with a wrong clock would have made it (without
    // its signatures: the next backup starts a new chain rather than continue that one).
    const stamp = /\d{8}T\d{6}Z/;
    const manifest = remoteFiles(fx.remoteDir).find((n) => /^duplicity-full\.\d{8}T\d{6}Z\.manifest/.test(n));
    assert.ok(manifest, remoteFiles(fx.remoteDir).join(', '));
    const time = manifest.match(stamp)![0];
    const copies = remoteFiles(fx.remoteDir).filter((n) => n.startsWith(`duplicity-full.${time}.`));
    for (const n of copies) fs.copyFileSync(path.join(fx.remoteDir, n), path.join(fx.remoteDir, n.replace(time, '20991231T000000Z')));
    const before = remoteFiles(fx.remoteDir);
    try {
      await config.update('keepFull', 1, vscode.ConfigurationTarget.Workspace);
      await waitFor('keepFull', () => f().config.settings.keepFull === 1);
      await nextSecond();
      const { result, notices } = await said('offsite.backupWorkspace');
      assert.equal((result as { type: string }[] | undefined)?.[0]?.type, 'full', JSON.stringify(notices));
      assert.deepEqual(notices.filter((n) => n.severity === 'error'), [], 'no "Backup failed"');
      assert.match(notices.find((n) => n.severity === 'info')?.message ?? '', new RegExp(`^Backup of ${f().name} done \\(full\\)`));
      const warnings = notices.filter((n) => n.severity === 'warning');
      assert.equal(warnings.length, 1, JSON.stringify(notices));
      assert.match(warnings[0].message, new RegExp(`^Backup of ${f().name} done, but old backups were not removed \\(offsite\\.keepFull\\): The backup of .* is dated in the future .*so none is deleted\\. Check this machine's clock`));
      assert.deepEqual(warnings[0].actions, ['Show Log']);
      assert.deepEqual(before.filter((n) => !remoteFiles(fx.remoteDir).includes(n)), [], 'nothing deleted');
      assert.equal(api.model.record(f()).lastFailure, undefined, 'the backup counts as made');
      assert.doesNotMatch(api.statusBar.view?.text ?? '', /failed/i);
    } finally {
      for (const n of copies) fs.rmSync(path.join(fx.remoteDir, n.replace(time, '20991231T000000Z')), { force: true });
      await config.update('keepFull', undefined, vscode.ConfigurationTarget.Workspace);
      await api.model.refreshStatus(f()).catch(() => undefined);
    }
  });
});
