// Integration tests inside a real VS Code extension host (code-server's VS Code 1.100, driven by
// headless Chromium): the extension, its child-process engine, a file:// remote, real keys. The tests
// run in order and build on each other (backup, change, backup, compare, restore, …).
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { archiveDirFor } from '../../../src/engine/cache/archiveDir';
import type { OffsiteApi } from '../../../src/extension/extension';
import { formatTime } from '../../../src/extension/format';
import { DrillReminder } from '../../../src/extension/drillReminder';
import { FOLDER_PAGE } from '../../../src/extension/fileTree';
import { EngineGateway } from '../../../src/extension/gateway';
import type { Secrets } from '../../../src/extension/secrets';
import type { BackupNode, EntryNode, MoreNode, SetNode } from '../../../src/extension/snapshotTree';
import { countReads, fixture, logFrom, logText, manifests, nextSecond, offsite, remoteFiles, waitFor, write, writeRandomBlobs } from './fixture';

const fx = fixture();
const README_V1 = '# Demo\n\nfirst version\n';
const README_V2 = '# Demo\n\nsecond version, edited\n';
const OLD_TXT = 'this file is deleted later\n';

async function children(api: OffsiteApi, n?: BackupNode): Promise<BackupNode[]> {
  return (await api.tree.getChildren(n)) ?? [];
}

function label(api: OffsiteApi, n: BackupNode): string {
  const l = api.tree.getTreeItem(n).label;
  return typeof l === 'string' ? l : (l?.label ?? '');
}

async function setNodes(api: OffsiteApi): Promise<SetNode[]> {
  const chains = await children(api);
  assert.equal(chains[0]?.kind, 'chain', `the tree's root lists chains: ${JSON.stringify(chains.map((c) => c.kind === 'message' ? c.text : c.kind))}`);
  return (await children(api, chains[0])) as SetNode[];
}

async function entry(api: OffsiteApi, set: SetNode, name: string): Promise<EntryNode> {
  const files = (await children(api, set)) as EntryNode[];
  const e = files.find((f) => f.kind === 'entry' && f.node.name === name);
  assert.ok(e, `${name} in the set's tree: ${files.map((f) => f.kind === 'entry' ? f.node.name : f.kind).join(', ')}`);
  return e;
}

function activeDiff(): vscode.TabInputTextDiff | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  return input instanceof vscode.TabInputTextDiff ? input : undefined;
}

describe('Offsite in a real VS Code extension host', () => {
  let api: OffsiteApi;
  let firstSet = 0;
  const readme = path.join(fx.workspace, 'README.md');

  before(async () => {
    api = await offsite();
    // Questions get scripted answers; a question without one is dismissed (never waits for a person).
    api.ui.script();
  });

  afterEach(async function () {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    const unused = api.ui.takeUnusedAnswers();
    // A failed test may leave answers behind: they must not answer the next test's questions.
    if (this.currentTest?.state === 'passed') assert.deepEqual(unused, [], 'every scripted answer was used');
    if (this.currentTest?.state === 'failed') {
      console.log('notices:', JSON.stringify(api.ui.notices.slice(-5), null, 1));
      console.log('prompts:', JSON.stringify(api.ui.prompts.slice(-8)));
    }
  });

  it('activates lazily: every contributed command is registered, the engine is not started yet', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(vscode.extensions.getExtension('offsite.offsite')!.extensionPath, 'package.json'), 'utf8'));
    const registered = new Set(await vscode.commands.getCommands(true));
    const contributed: string[] = pkg.contributes.commands.map((c: { command: string }) => c.command);
    assert.deepEqual(contributed.filter((c) => !registered.has(c)), []);
    assert.equal(api.enginePid(), undefined, 'no engine process before the first request');
    assert.equal(api.model.folders.length, 1);
    assert.equal(api.model.folders[0].config.url, `${fx.remoteRoot}/workspace`, 'the folder backs up to <offsite.remote>/<folder name>');
    assert.ok(api.model.folders[0].config.configured);
  });

  it('Backup Workspace writes a duplicity set to the file:// remote, in a child process', async () => {
    const notices = api.ui.notices.length;
    const [summary] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string; time: number }[];
    assert.ok(summary, `the backup returned a summary; notices: ${JSON.stringify(api.ui.notices.slice(notices))}`);
    assert.equal(summary.type, 'full');
    firstSet = summary.time;
    const files = remoteFiles(fx.remoteDir);
    assert.ok(files.some((f) => /^duplicity-full\.\d{8}T\d{6}Z\.manifest\.gpg$/.test(f)), files.join(' '));
    assert.ok(files.some((f) => /^duplicity-full\.\d{8}T\d{6}Z\.vol1\.difftar\.gpg$/.test(f)), files.join(' '));
    assert.ok(files.some((f) => /^duplicity-full-signatures\.\d{8}T\d{6}Z\.sigtar\.gpg$/.test(f)), files.join(' '));
    // Stock duplicity reads the collection.
    const archive = fs.mkdtempSync(path.join(fx.scratch, 'dup-'));
    const out = execFileSync('duplicity', ['collection-status', '--archive-dir', archive, `file://${fx.remoteDir}`], { encoding: 'utf8', env: { ...process.env, PASSPHRASE: '' } });
    assert.match(out, /Full\s+.*\s+1\s*$/m);
    // The work ran in the engine's own process, not on the extension host's thread.
    const pid = api.enginePid();
    assert.ok(pid && pid !== process.pid, `engine pid ${pid}, extension host pid ${process.pid}`);
    assert.ok(api.ui.notices.slice(notices).some((n) => n.severity === 'info' && /Backup of workspace done \(full\)/.test(n.message)));
  });

  it('the status bar shows the age of the last backup, without a warning', async () => {
    // The chain length comes from the remote's status, read right after the backup.
    const view = await waitFor('status bar', () => (/Chain length/.test(api.statusBar.view?.tooltip ?? '') ? api.statusBar.view : undefined));
    assert.match(view.text, /^\$\(cloud-upload\) just now$/);
    assert.equal(view.warning, false);
    assert.equal(api.statusBar.warning, false);
    assert.match(view.tooltip, /Chain length: 1 set/);
    assert.match(view.tooltip, /Last verify: never/);
  });

  it('the tree lists the chain, its full set and the files as of that set', async () => {
    const sets = await setNodes(api);
    assert.equal(sets.length, 1);
    assert.equal(label(api, sets[0]), formatTime(firstSet));
    // (The change counts come after the sets: every set's manifest is read for them.)
    await waitFor('the change counts', () => api.model.folders[0].changes);
    assert.match(String(api.tree.getTreeItem(sets[0]).description), /^full · .+ · \d+ changed$/);
    const e = await entry(api, sets[0], 'README.md');
    assert.equal(api.tree.getTreeItem(e).contextValue, 'file');
    await entry(api, sets[0], 'old.txt');
    const src = await entry(api, sets[0], 'src');
    assert.equal(api.tree.getTreeItem(src).contextValue, 'dir');
    const inSrc = (await children(api, src)) as EntryNode[];
    assert.deepEqual(inSrc.map((x) => x.node.name), ['main.ts']);
  });

  it('an incremental backup records a change and a deletion; the tree shows the deleted file', async () => {
    await nextSecond();
    fs.writeFileSync(readme, README_V2);
    fs.rmSync(path.join(fx.workspace, 'old.txt'));
    const [summary] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string; time: number }[];
    assert.equal(summary?.type, 'inc');
    assert.equal(manifests(fx.remoteDir).length, 2);
    const sets = await setNodes(api);
    assert.deepEqual(sets.map((s) => s.set.type), ['inc', 'full'], 'newest first');
    await waitFor('the change counts', () => api.model.folders[0].changes);
    assert.match(String(api.tree.getTreeItem(sets[0]).description), /incremental · .+ · 2 changed/);
    const gone = await entry(api, sets[0], 'old.txt');
    assert.equal(gone.node.deleted, true);
    assert.equal(api.tree.getTreeItem(gone).contextValue, 'file:deleted');
    assert.equal(api.tree.getTreeItem(gone).description, 'deleted');
    const view = await waitFor('chain length 2', () => (/Chain length: 2 set/.test(api.statusBar.view?.tooltip ?? '') ? api.statusBar.view : undefined));
    assert.equal(view.warning, false);
  });

  it('Compare With Backup as of an earlier (typed) time opens a diff whose left side has the old content', async () => {
    const doc = await vscode.workspace.openTextDocument(readme);
    await vscode.window.showTextDocument(doc);
    // Pick "Type a date or time…", then type the first backup's time (epoch seconds: duplicity's syntax takes them).
    api.ui.script('Type a date or time', String(firstSet));
    const backupUri = (await vscode.commands.executeCommand('offsite.compareWithBackup')) as vscode.Uri;
    assert.ok(backupUri, `compare returned the backup URI; last notice: ${JSON.stringify(api.ui.notices.at(-1))}`);
    const diff = await waitFor('a diff editor', () => activeDiff());
    assert.equal(diff.original.scheme, 'offsite');
    assert.equal(diff.modified.fsPath, readme);
    const left = await vscode.workspace.openTextDocument(diff.original);
    assert.equal(left.getText(), README_V1);
    assert.equal(left.languageId, 'markdown', 'the backup version keeps the file\'s language');
    const right = vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme === 'file' && e.document.uri.fsPath === readme);
    assert.equal(right?.document.getText(), README_V2);
  });

  it('the history quick pick lists the dates where the file changed, newest first', async () => {
    let offered: string[] = [];
    const doc = await vscode.workspace.openTextDocument(readme);
    await vscode.window.showTextDocument(doc);
    // Answer with the oldest version's label, and remember what was offered.
    const first = formatTime(firstSet);
    api.ui.script(() => first);
    const before = api.ui.prompts.length;
    await vscode.commands.executeCommand('offsite.compareWithBackup', vscode.Uri.file(readme));
    offered = api.ui.prompts.slice(before).map((p) => p.text);
    assert.ok(offered.some((t) => /Compare README\.md with the backup of/.test(t)), JSON.stringify(offered));
    const diff = await waitFor('a diff editor', () => activeDiff());
    assert.equal(JSON.parse(diff.original.query).time, firstSet);
    assert.equal((await vscode.workspace.openTextDocument(diff.original)).getText(), README_V1);
  });

  it('"Restore this version" asks, then writes the old content over the current file', async () => {
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(readme));
    api.ui.script('Type a date or time', String(firstSet));
    await vscode.commands.executeCommand('offsite.compareWithBackup');
    await waitFor('a diff editor', () => activeDiff());
    fs.chmodSync(readme, 0o640);
    // Declining the question changes nothing.
    api.ui.script(undefined);
    assert.equal(await vscode.commands.executeCommand('offsite.restoreThisVersion'), undefined);
    assert.equal(fs.readFileSync(readme, 'utf8'), README_V2);
    const asked = api.ui.notices.at(-1)!;
    assert.equal(asked.modal, true);
    assert.match(asked.message, /Restore README\.md as of/);
    api.ui.script('Restore');
    const downloads = countReads(api, 'readFile');
    let written: unknown;
    try {
      written = await vscode.commands.executeCommand('offsite.restoreThisVersion');
    } finally {
      downloads.stop();
    }
    assert.equal(written, readme);
    assert.equal(fs.readFileSync(readme, 'utf8'), README_V1);
    assert.equal(downloads.count(), 0, 'the version the diff shows is written, not downloaded again');
    assert.equal(fs.statSync(readme).mode & 0o777, 0o644, 'the backup\'s permissions, not the engine\'s private 0600');
    assert.deepEqual(fs.readdirSync(fx.workspace).filter((n) => n.endsWith('.part')), [], 'no temporary file left');
  });

  it('"Restore This Version" on the notification still asks before it loses unsaved changes of the file', async () => {
    const onDisk = '# Demo\n\nchanged on disk since\n';
    // The edits must stay unsaved for the length of the test.
    const files = vscode.workspace.getConfiguration('files');
    const autoSave = files.inspect('autoSave')?.globalValue;
    await files.update('autoSave', 'off', vscode.ConfigurationTarget.Global);
    fs.writeFileSync(readme, onDisk);
    const doc = await vscode.workspace.openTextDocument(readme);
    try {
      // A document an earlier test opened is reloaded from disk in its own time: edit what is on disk.
      await waitFor('the document to show the file on disk', () => !doc.isDirty && doc.getText() === onDisk);
      const editor = await vscode.window.showTextDocument(doc);
      await waitFor('an unsaved edit', async () => await editor.edit((e) => e.insert(new vscode.Position(0, 0), 'unsaved edit\n')));
      assert.equal(doc.isDirty, true);
      // The button is clicked, then the question about the unsaved changes is declined.
      let notices = api.ui.notices.length;
      api.ui.click('Restore This Version');
      api.ui.script('Type a date or time', String(firstSet), undefined);
      await vscode.commands.executeCommand('offsite.restoreFileAsOf', vscode.Uri.file(readme));
      const asked = await waitFor('the question', () => api.ui.notices.slice(notices).find((n) => n.modal));
      assert.match(asked.message, /Restore README\.md as of/);
      assert.match(asked.detail ?? '', /unsaved changes will be lost/);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fs.readFileSync(readme, 'utf8'), onDisk, 'declined: the file is not replaced');
      assert.equal(doc.isDirty, true, 'declined: the unsaved changes are kept');
      assert.match(doc.getText(), /^unsaved edit\n/);
      // Clicked and confirmed: restored (the user chose to lose the unsaved changes).
      notices = api.ui.notices.length;
      api.ui.click('Restore This Version');
      api.ui.script('Type a date or time', String(firstSet), 'Restore');
      await vscode.commands.executeCommand('offsite.restoreFileAsOf', vscode.Uri.file(readme));
      await waitFor('the restore', () => api.ui.notices.slice(notices).some((n) => /^Restored README\.md as of/.test(n.message)));
      assert.equal(fs.readFileSync(readme, 'utf8'), README_V1);
      await waitFor('the editor reverted', () => !doc.isDirty && doc.getText() === README_V1);
    } finally {
      if (doc.isDirty) {
        await vscode.window.showTextDocument(doc);
        await vscode.commands.executeCommand('workbench.action.files.revert');
      }
      fs.writeFileSync(readme, README_V1);
      await waitFor('the document to show README_V1', () => !doc.isDirty && doc.getText() === README_V1).catch(() => undefined);
      await files.update('autoSave', autoSave, vscode.ConfigurationTarget.Global);
    }
  });

  it('a deleted file is restorable from the tree (as of the set before its deletion)', async () => {
    const sets = await setNodes(api);
    const gone = await entry(api, sets[0], 'old.txt');
    const asked = api.ui.prompts.length;
    await vscode.commands.executeCommand('offsite.restoreVersion', gone);
    assert.equal(fs.readFileSync(path.join(fx.workspace, 'old.txt'), 'utf8'), OLD_TXT);
    assert.equal(api.ui.prompts.length, asked, 'nothing is overwritten, so nothing is asked');
    // And "Compare with Current" of a listed file opens the backup version against it.
    const main = (await children(api, await entry(api, sets[0], 'src')))[0] as EntryNode;
    await vscode.commands.executeCommand('offsite.compareWithCurrent', main);
    const diff = await waitFor('a diff editor', () => activeDiff());
    assert.equal((await vscode.workspace.openTextDocument(diff.original)).getText(), fs.readFileSync(path.join(fx.workspace, 'src', 'main.ts'), 'utf8'));
  });

  it('binary files are served by the offsite: file system byte for byte', async () => {
    const bin = path.join(fx.workspace, 'logo.bin');
    const sets = await setNodes(api);
    const uri = vscode.Uri.file(bin).with({ scheme: 'offsite', query: JSON.stringify({ folder: vscode.Uri.file(fx.workspace).toString(), path: 'logo.bin', time: sets[0].set.time }) });
    const bytes = await vscode.workspace.fs.readFile(uri);
    assert.ok(Buffer.from(bytes).equals(fs.readFileSync(bin)));
    const st = await vscode.workspace.fs.stat(uri);
    assert.equal(st.size, fs.statSync(bin).size);
    assert.equal(st.permissions, vscode.FilePermission.Readonly);
    await assert.rejects(Promise.resolve(vscode.workspace.fs.writeFile(uri, new Uint8Array([1]))));
  });

  it('a bad remote shows an error notification, and the status bar shows the failure', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    const blocker = write(fx.scratch, 'not-a-folder', 'a file where a folder should be');
    await config.update('remote', `file://${blocker}`, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the new remote', () => api.model.folders[0].config.url.startsWith(`file://${blocker}`));
      const notices = api.ui.notices.length;
      const log = await logFrom(api);
      const r = await vscode.commands.executeCommand('offsite.backupWorkspace');
      assert.equal(r, undefined, 'the command fails');
      const errors = api.ui.notices.slice(notices).filter((n) => n.severity === 'error');
      assert.equal(errors.length, 1, JSON.stringify(api.ui.notices.slice(notices)));
      assert.match(errors[0].message, /^Offsite: /);
      assert.ok(errors[0].actions.includes('Show Log'));
      // Logged once, by the backup (as a scheduled one is), with its code and what the notification says; not again by the command.
      assertLoggedOnce(await log.lines(), 'error', `Backup of ${api.model.folders[0].name} failed`, errors[0].message);
      const view = await waitFor('failure in the status bar', () => (api.statusBar.view?.warning ? api.statusBar.view : undefined));
      assert.equal(view.text, '$(warning) Backup failed');
      assert.match(view.tooltip, /Last attempt failed/);
      assert.equal(api.statusBar.warning, true, 'warning background');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
    }
    const view = await waitFor('success in the status bar again', () => (api.statusBar.view && !api.statusBar.view.warning ? api.statusBar.view : undefined));
    assert.match(view.text, /^\$\(cloud-upload\) /);
  });

  it('a cancelled backup leaves no partial set, and the next backup completes the chain cleanly', async function () {
    this.timeout(300_000);
    const sizeBefore = manifests(fx.remoteDir).length;
    const big = path.join(fx.workspace, 'big');
    // Incompressible data, so the backup takes long enough to be cancelled in the middle.
    await writeRandomBlobs(big, 12, 8);
    await nextSecond();
    const notices = api.ui.notices.length;
    const log = await logFrom(api);
    const running = vscode.commands.executeCommand('offsite.backupWorkspace');
    await waitFor('the backup to be under way', () => (api.model.folders[0].running?.files ?? 0) > 0, 60_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await vscode.commands.executeCommand('offsite.cancel'), 1);
    assert.equal(await running, undefined, 'the cancelled command resolves without a result');
    // Logged once, as cancelled (not as a failure): by the backup, not again by the command.
    const cancelLines = (await log.lines()).filter((l) => /cancel|\[error\]/i.test(l));
    assert.deepEqual(cancelLines.map((l) => l.replace(/^.*?\[/, '[')), [`[info] Backup of ${api.model.folders[0].name} cancelled`]);
    assert.equal(manifests(fx.remoteDir).length, sizeBefore, 'no new set on the remote');
    assert.deepEqual(api.ui.notices.slice(notices).filter((n) => n.severity === 'error'), [], 'cancelling is not an error');
    assert.equal(api.model.folders[0].running, undefined);
    const status = await api.model.refreshStatus(api.model.folders[0]);
    assert.equal(status.chains.at(-1)?.sets.length, sizeBefore, 'the chain has no extra set');
    // The next run resumes or removes what the cancelled one left, and ends with one more complete set.
    fs.rmSync(big, { recursive: true, force: true });
    const [summary] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
    assert.equal(summary?.type, 'inc');
    const after = await api.model.refreshStatus(api.model.folders[0]);
    assert.equal(after.chains.at(-1)?.sets.length, sizeBefore + 1);
    assert.deepEqual({ leftovers: after.leftovers, interrupted: after.interrupted, damaged: after.damaged }, { leftovers: [], interrupted: undefined, damaged: [] }, 'nothing incomplete left on the remote');
  });

  it('the engine runs in its own process, and a new one starts when it dies', async () => {
    const pid = api.enginePid();
    assert.ok(pid && pid !== process.pid);
    process.kill(pid, 'SIGKILL');
    await waitFor('the engine to exit', () => api.enginePid() === undefined);
    const status = await api.model.refreshStatus(api.model.folders[0]);
    assert.ok(status.chains.length >= 1);
    const again = api.enginePid();
    assert.ok(again && again !== pid, `a new engine process (${again}) replaced ${pid}`);
  });

  it('Verify Backup restores and compares; the status bar remembers the last verify', async () => {
    const r = (await vscode.commands.executeCommand('offsite.verify')) as { compared: number; differences: unknown[] };
    assert.ok(r && r.compared > 0, JSON.stringify(api.ui.notices.at(-1)));
    assert.deepEqual(r.differences, [], 'the workspace is what the last backup holds');
    assert.match(api.statusBar.view?.tooltip ?? '', /Last verify: .*no differences/);
  });

  it('Run Restore Drill restores a sample with no local cache, compares it, shows and logs the result, and the status bar shows it', async () => {
    const f = api.model.folders[0];
    const notices = api.ui.notices.length;
    const r = (await vscode.commands.executeCommand('offsite.drill')) as { ok: boolean; matched: number; failed: number; files: unknown[]; filesInBackup: number; time: number };
    assert.ok(r, JSON.stringify(api.ui.notices.slice(notices)));
    assert.equal(r.ok, true);
    assert.equal(r.failed, 0);
    assert.ok(r.matched > 0 && r.matched === r.files.length, JSON.stringify(r));
    const shown = api.ui.notices.slice(notices).find((n) => /Restore drill of workspace passed/.test(n.message));
    assert.ok(shown, JSON.stringify(api.ui.notices.slice(notices)));
    assert.match(shown.message, new RegExp(`${r.files.length} of ${r.filesInBackup} file\\(s\\) restored from the backup of .* with an empty cache`));
    const rec = api.model.record(f).lastDrill;
    assert.ok(rec && rec.ok && rec.matched === r.matched && rec.setTime === r.time, JSON.stringify(rec));
    assert.match(api.statusBar.view?.tooltip ?? '', new RegExp(`Last restore drill: .*\\(just now\\): ${r.matched} file\\(s\\) matched`));
    // The engine recorded it in its cache too (what the reminder reads, and what a CLI drill writes).
    const engine = await api.model.gateway.client.request({ op: 'lastDrill', remote: f.config.remote });
    assert.equal(engine?.matched, r.matched);
    const log = logText(api);
    assert.match(log, /Restore drill of workspace: \d+ of \d+ file\(s\) restored/, 'logged');
  });

  it('reminds about a restore drill after startup and after a backup (Run Drill, Later), honouring drillEvery and notifications', async function () {
    this.timeout(120_000);
    const f = api.model.folders[0];
    const config = vscode.workspace.getConfiguration('offsite');
    const reminders = () => api.ui.notices.filter((n) => /^Time for a restore drill of workspace/.test(n.message));
    // The extension's own check 15 s after activation must be behind us: were it to run during the
    // 2 s-drillEvery part below, its reminder would be the day's one and the backup's would not come
    // (a flake seen once, when this test started ~12 s after activation).
    await waitFor("the extension's startup check", () => api.drillReminder.startupChecked);
    try {
      // drillEvery = 0: never.
      assert.equal(await api.drillReminder.check(f, Date.now() / 1000 + 400 * 86400), false);
      // A check after startup (a reminder made as activate() makes it, with a short delay) finds the
      // drill just run: not due.
      await config.update('drillEvery', 30, vscode.ConfigurationTarget.Workspace);
      await waitFor('drillEvery 30', () => api.model.folders[0].config.settings.drillEvery === 30);
      let before = reminders().length;
      const startup = new DrillReminder(api.model, api.ui, { startupDelayMs: 10 });
      try {
        await waitFor('the startup check', () => startup.startupChecked);
        assert.equal(reminders().length, before, 'a drill ran just now');
        // 31 days later it is due: one reminder, with its two actions; not again the same day.
        const later = Date.now() / 1000 + 31 * 86400;
        assert.deepEqual(await startup.checkAll(later), [api.model.folders[0]]);
        const r = reminders().at(-1)!;
        assert.match(r.message, /the last one ran .* \(31d ago\)/);
        assert.deepEqual(r.actions, ['Run Drill', 'Later']);
        assert.equal(r.modal, false);
        assert.deepEqual(await startup.checkAll(later + 3600), [], 'once a day per window');
        // "Later" snoozes it for a day, in every window.
        await startup.answer(api.model.folders[0], 'later', later);
        const fresh = new DrillReminder(api.model, api.ui, { startupDelayMs: 3_600_000 });
        try {
          assert.equal(await fresh.check(api.model.folders[0], later + 3600), false, 'snoozed');
          assert.equal(await fresh.check(api.model.folders[0], later + 86400 + 60), true, 'the snooze is over');
        } finally {
          fresh.dispose();
        }
      } finally {
        startup.dispose();
      }
      // "Run Drill" runs the drill command.
      const at = api.model.record(f).lastDrill!.at;
      await nextSecond();
      await api.drillReminder.answer(api.model.folders[0], 'run');
      assert.ok(api.model.record(api.model.folders[0]).lastDrill!.at > at, 'a new drill ran');
      assert.equal(api.model.record(api.model.folders[0]).drillSnoozedUntil, undefined, 'a drill ends the snooze');
      // After a successful backup the extension's own reminder checks: with drills due every 2 s, it reminds.
      await config.update('drillEvery', 2 / 86400, vscode.ConfigurationTarget.Workspace);
      await waitFor('drillEvery 2 s', () => api.model.folders[0].config.settings.drillEvery < 1);
      await new Promise((r) => setTimeout(r, 2500));
      before = reminders().length;
      fs.appendFileSync(path.join(fx.workspace, 'src', 'main.ts'), '// drill\n');
      const [b] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(b?.type, 'inc');
      await waitFor('the reminder after the backup', () => reminders().length > before);
      // notifications = off: no reminder.
      await config.update('notifications', 'off', vscode.ConfigurationTarget.Workspace);
      await waitFor('notifications off', () => api.model.folders[0].config.settings.notifications === 'off');
      assert.equal(await api.drillReminder.check(api.model.folders[0], Date.now() / 1000 + 2 * 86400), false);
    } finally {
      await config.update('drillEvery', 0, vscode.ConfigurationTarget.Workspace);
      await config.update('notifications', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('Show Backup Status opens the report; Copy Command for Cron gives the same backup as a command line', async () => {
    const text = (await vscode.commands.executeCommand('offsite.showStatus')) as string;
    assert.match(text, /workspace → file:\/\//);
    assert.match(text, /Current chain: .* set\(s\)/);
    const doc = vscode.window.activeTextEditor?.document;
    assert.equal(doc?.uri.scheme, 'offsite-status');
    assert.equal(doc?.getText(), text);
    const line = (await vscode.commands.executeCommand('offsite.copyCronCommand')) as string;
    assert.equal(line, `nice -n 10 offsite backup --encrypt-key ${fx.keys.rsaPub} --gitignore ${fx.workspace} ${fx.remoteRoot}/workspace >/dev/null`);
    // No offsite command on a PATH: the line would find nothing to run under cron, and the notice says so.
    const saved = process.env.PATH;
    process.env.PATH = '/usr/bin:/bin';
    try {
      await vscode.commands.executeCommand('offsite.copyCronCommand');
    } finally {
      process.env.PATH = saved;
    }
    const notice = api.ui.notices.at(-1);
    assert.equal(notice?.severity, 'warning', JSON.stringify(notice));
    assert.match(notice!.message, /No offsite command is on this machine's PATH: install it \(npm install -g \. in a clone of Offsite/);
  });

  it('asks for a protected key\'s passphrase (wrong, then right), remembers it in SecretStorage, then never asks again', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    const root2 = `file://${path.join(fx.scratch, 'remote-protected')}`;
    await config.update('remote', root2, vscode.ConfigurationTarget.Workspace);
    await config.update('encryptKeys', [fx.keys.protectedPub], vscode.ConfigurationTarget.Workspace);
    await config.update('restoreKey', fx.keys.protectedSec, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the new remote', () => api.model.folders[0].config.url.startsWith(root2));
      // Backing up needs only the public key: no question.
      const before = api.ui.prompts.length;
      const [first] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { time: number }[];
      assert.ok(first, JSON.stringify(api.ui.notices.at(-1)));
      assert.deepEqual(api.ui.prompts.slice(before), []);
      // Reading a version needs the private key: wrong passphrase, then the right one, remembered.
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(readme));
      api.ui.script('Type a date or time', String(first.time), 'wrong passphrase', 'Only This Session', fx.keys.passphrase, 'Remember');
      await vscode.commands.executeCommand('offsite.compareWithBackup');
      const diff = await waitFor('a diff editor', () => activeDiff(), 60_000);
      assert.equal((await vscode.workspace.openTextDocument(diff.original)).getText(), README_V1);
      const asked = api.ui.prompts.slice(before).filter((p) => p.kind === 'input' && /Passphrase of your private key/.test(p.text));
      assert.equal(asked.length, 2, JSON.stringify(api.ui.prompts.slice(before)));
      // Remembered: the next read asks nothing beyond the time.
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      const mark = api.ui.prompts.length;
      api.ui.script('Type a date or time', String(first.time));
      await vscode.commands.executeCommand('offsite.restoreFileAsOf', vscode.Uri.file(path.join(fx.workspace, 'src', 'main.ts')));
      await waitFor('a diff editor', () => activeDiff(), 60_000);
      assert.deepEqual(api.ui.prompts.slice(mark).map((p) => p.kind), ['pick', 'input'], 'no passphrase question');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('encryptKeys', [fx.keys.rsaPub], vscode.ConfigurationTarget.Workspace);
      await config.update('restoreKey', fx.keys.rsaSec, vscode.ConfigurationTarget.Workspace);
    }
  });

  /** A remote root (offsite.remote) whose folder `workspace` holds a copy of the passphrase-only duplicity fixture. */
  const symmetricRemote = (name: string): string => {
    const root = path.join(fx.scratch, name);
    fs.mkdirSync(path.join(root, 'workspace'), { recursive: true });
    for (const n of fs.readdirSync(fx.symmetric.vault)) fs.copyFileSync(path.join(fx.symmetric.vault, n), path.join(root, 'workspace', n));
    return root;
  };

  it('a backup duplicity made with a passphrase and no key: asks for its passphrase (wrong, then right), restores a file and the workspace; a backup to a key without one still asks for the key', async () => {
    const sym = fx.symmetric;
    const config = vscode.workspace.getConfiguration('offsite');
    // offsite.remote names the root: the folder's backup is <root>/workspace, here a copy of the fixture.
    const root = symmetricRemote('remote-symmetric');
    const expected = JSON.parse(fs.readFileSync(sym.expected, 'utf8')) as { path: string; type: string; sha256?: string; target?: string }[];
    const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    const asked = () => api.ui.prompts.filter((p) => p.kind === 'input' && /Passphrase of the backup at/.test(p.text));
    await config.update('remote', `file://${root}`, vscode.ConfigurationTarget.Workspace);
    await config.update('restoreKey', undefined, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the symmetric remote, no restore key', () => api.model.folders[0].config.url === `file://${root}/workspace` && !api.model.folders[0].config.keys.restoreKey);
      const before = asked().length;
      // Restore a file as of a date: its history needs the manifest, so the passphrase is asked for
      // there; a wrong one is refused and asked again; the right one is remembered.
      api.ui.script('not-the-passphrase', 'Only This Session', sym.passphrase, 'Remember', formatTime(sym.time));
      const uri = (await vscode.commands.executeCommand('offsite.restoreFileAsOf', vscode.Uri.file(path.join(fx.workspace, 'a.txt')))) as vscode.Uri | undefined;
      assert.ok(uri, JSON.stringify(api.ui.notices.slice(-3)));
      assert.equal(sha256(await vscode.workspace.fs.readFile(uri)), expected.find((e) => e.path === 'a.txt')?.sha256);
      const prompts = asked().slice(before);
      assert.equal(prompts.length, 2, JSON.stringify(api.ui.prompts.slice(-8)));
      assert.match(prompts[0].text, /^Passphrase of the backup at file:\/\/.*remote-symmetric\/workspace \(it was made with a passphrase, no key\)/);
      assert.match(prompts[1].text, /Wrong passphrase.*Try again/);
      assert.ok(!api.ui.prompts.slice(-8).some((p) => /Passphrase of your private key/.test(p.text)), 'no private key asked for');
      // Restore Workspace To…: remembered, nothing asked; the tree duplicity backed up.
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      const parent = fs.mkdtempSync(path.join(fx.scratch, 'restore-sym-'));
      const mark = api.ui.prompts.length;
      api.ui.script(formatTime(sym.time), parent);
      const r = (await vscode.commands.executeCommand('offsite.restoreWorkspaceTo')) as { target: string; files: number } | undefined;
      assert.ok(r, JSON.stringify(api.ui.notices.slice(-3)));
      assert.deepEqual(api.ui.prompts.slice(mark).map((p) => p.kind), ['pick', 'open'], 'no passphrase question');
      for (const e of expected) {
        const p = path.join(r.target, e.path);
        if (e.type === 'reg') assert.equal(sha256(fs.readFileSync(p)), e.sha256, e.path);
        if (e.type === 'sym') assert.equal(fs.readlinkSync(p), e.target, e.path);
        if (e.type === 'dir') assert.ok(fs.statSync(p).isDirectory(), e.path);
      }
      const log = logText(api);
      assert.ok(!log.includes(sym.passphrase) && !log.includes('not-the-passphrase'), 'no passphrase in the log');
      // The workspace's own backup is encrypted to a key: with no restore key it says the private key is
      // needed and where to set it, and asks for no passphrase.
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await waitFor('the file remote', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace`);
      // (Restore Workspace To…: its volumes are read, never a copy the offsite: file system keeps.)
      const mark2 = api.ui.prompts.length;
      const notices = api.ui.notices.length;
      api.ui.script(formatTime(firstSet), fs.mkdtempSync(path.join(fx.scratch, 'restore-keyed-')));
      assert.equal(await vscode.commands.executeCommand('offsite.restoreWorkspaceTo'), undefined);
      assert.deepEqual(api.ui.prompts.slice(mark2).map((p) => p.kind), ['pick', 'open'], 'no passphrase question');
      const error = api.ui.notices.slice(notices).find((n) => n.severity === 'error');
      assert.match(error?.message ?? '', /The private key is needed to read the backup\. Set offsite\.restoreKey/, JSON.stringify(api.ui.notices.slice(notices)));
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('restoreKey', fx.keys.rsaSec, vscode.ConfigurationTarget.Workspace);
      await waitFor('the file remote and its restore key', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace` && api.model.folders[0].config.keys.restoreKey === fx.keys.rsaSec);
    }
  });

  it('a protected restore key configured is not unlocked for a backup made with a passphrase: only the backup\'s passphrase is asked', async () => {
    const sym = fx.symmetric;
    const config = vscode.workspace.getConfiguration('offsite');
    // A copy of its own (nothing of it cached), and no passphrase remembered (the key's was, above).
    const root = symmetricRemote('remote-symmetric-keyed');
    await vscode.commands.executeCommand('offsite.forgetSecrets');
    await config.update('remote', `file://${root}`, vscode.ConfigurationTarget.Workspace);
    await config.update('restoreKey', fx.keys.protectedSec, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the symmetric remote, the protected restore key', () => api.model.folders[0].config.url === `file://${root}/workspace` && api.model.folders[0].config.keys.restoreKey === fx.keys.protectedSec);
      const mark = api.ui.prompts.length;
      api.ui.script(sym.passphrase, 'Only This Session', formatTime(sym.time));
      const uri = (await vscode.commands.executeCommand('offsite.compareWithBackup', vscode.Uri.file(path.join(fx.workspace, 'a.txt')))) as vscode.Uri | undefined;
      assert.ok(uri, JSON.stringify(api.ui.notices.slice(-3)));
      const prompts = api.ui.prompts.slice(mark);
      assert.deepEqual(prompts.filter((p) => p.kind === 'input').map((p) => p.text.replace(/ at .*/, '')), ['Passphrase of the backup'], JSON.stringify(prompts));
      assert.ok(!prompts.some((p) => /Passphrase of your private key/.test(p.text)), 'the key\'s passphrase is not asked');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('restoreKey', fx.keys.rsaSec, vscode.ConfigurationTarget.Workspace);
      await waitFor('the file remote and its restore key', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace` && api.model.folders[0].config.keys.restoreKey === fx.keys.rsaSec);
    }
  });

  it('sftp://: an unknown SSH host key is shown with its fingerprint, and saved only when accepted', async function () {
    this.timeout(180_000);
    const sftp = fx.sftp!;
    const knownHosts = path.join(sftp.home, '.ssh', 'known_hosts');
    // The lines for the server, as ssh finds them: the name is hashed where HashKnownHosts is yes
    // (Debian's /etc/ssh/ssh_config).
    const savedLines = (): string => {
      try {
        return fs.existsSync(knownHosts) ? execFileSync('ssh-keygen', ['-F', sftp.hostPattern, '-f', knownHosts]).toString() : '';
      } catch {
        return ''; // exit status 1: not found
      }
    };
    const config = vscode.workspace.getConfiguration('offsite');
    await config.update('remote', sftp.root, vscode.ConfigurationTarget.Workspace);
    await config.update('sshKey', sftp.sshKey, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the sftp remote', () => api.model.folders[0].config.url.startsWith('sftp://') && api.model.folders[0].config.remote.sshKey === sftp.sshKey);
      // Declined: no backup, nothing saved.
      api.ui.script(undefined);
      assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace'), undefined);
      const asked = api.ui.notices.filter((n) => n.modal && /Unknown SSH host key/.test(n.message)).at(-1);
      assert.ok(asked, JSON.stringify(api.ui.notices.slice(-3)));
      assert.ok(asked.detail?.includes(sftp.fingerprint), `the fingerprint ${sftp.fingerprint} is shown: ${asked.detail}`);
      assert.deepEqual(asked.actions, ['Accept and Save']);
      assert.equal(savedLines(), '', 'not saved');
      // Accepted: saved in known_hosts, and the backup runs.
      api.ui.script('Accept and Save');
      const [r] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(r?.type, 'full', JSON.stringify(api.ui.notices.at(-1)));
      assert.match(savedLines(), / ssh-ed25519 AAAA/);
      // Known now: no question.
      const mark = api.ui.prompts.length;
      const [again] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(again?.type, 'inc');
      assert.deepEqual(api.ui.prompts.slice(mark), []);
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('sshKey', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('sftp://: asks for the SSH password (wrong, then right), keeps it in secret storage, never in settings or logs', async function () {
    this.timeout(180_000);
    const sftp = fx.sftp!;
    assert.ok(sftp.passwordRoot, 'a throwaway account with a password (the tests run as root)');
    const config = vscode.workspace.getConfiguration('offsite');
    await config.update('remote', sftp.passwordRoot, vscode.ConfigurationTarget.Workspace);
    const passwordPrompts = () => api.ui.prompts.filter((p) => p.kind === 'input' && /SSH password for/.test(p.text));
    try {
      await waitFor('the password remote', () => api.model.folders[0].config.url === `${sftp.passwordRoot}/workspace` && !api.model.folders[0].config.remote.sshKey);
      const asked = passwordPrompts().length;
      const notices = api.ui.notices.length;
      // No key, no agent: asked. A wrong password is refused and asked again; the right one is remembered.
      api.ui.script('not-the-password', 'Only This Session', sftp.password, 'Remember');
      const [first] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(first?.type, 'full', JSON.stringify(api.ui.notices.slice(notices)));
      const prompts = passwordPrompts().slice(asked);
      assert.equal(prompts.length, 2, JSON.stringify(api.ui.prompts.slice(-6)));
      assert.match(prompts[1].text, /Try again/);
      // Remembered: the next backup asks nothing.
      const mark = api.ui.prompts.length;
      await nextSecond();
      const [second] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(second?.type, 'inc', JSON.stringify(api.ui.notices.slice(-2)));
      assert.deepEqual(api.ui.prompts.slice(mark), []);
      // Never in settings, notifications or the log.
      for (const secret of [sftp.password, 'not-the-password']) {
        assert.ok(!fs.readFileSync(path.join(fx.workspace, '.vscode', 'settings.json'), 'utf8').includes(secret));
        assert.ok(!JSON.stringify(vscode.workspace.getConfiguration('offsite')).includes(secret));
        assert.ok(!JSON.stringify(api.ui.notices).includes(secret));
        const log = logText(api);
        assert.match(log, /Backing up .* to sftp:\/\//, 'the log is there');
        assert.ok(!log.includes(secret), 'no password in the log');
      }
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('sftp://: asks for the passphrase of a protected SSH key (wrong, then right), remembers it, never shows or logs it', async function () {
    this.timeout(180_000);
    const sftp = fx.sftp!;
    assert.ok(sftp.protectedKey, 'a protected key authorized for the throwaway account');
    const config = vscode.workspace.getConfiguration('offsite');
    const root = sftp.passwordRoot.replace(/\/backups$/, '/backups-key');
    await config.update('remote', root, vscode.ConfigurationTarget.Workspace);
    await config.update('sshKey', sftp.protectedKey, vscode.ConfigurationTarget.Workspace);
    // The account's password is remembered from the test before (and would log in): forget it.
    await vscode.commands.executeCommand('offsite.forgetSecrets');
    const passphrasePrompts = () => api.ui.prompts.filter((p) => p.kind === 'input' && /Passphrase of the SSH key/.test(p.text));
    try {
      await waitFor('the key remote', () => api.model.folders[0].config.url === `${root}/workspace` && api.model.folders[0].config.remote.sshKey === sftp.protectedKey);
      const asked = passphrasePrompts().length;
      const notices = api.ui.notices.length;
      const start = api.ui.prompts.length;
      api.ui.script('not-the-key-passphrase', 'Only This Session', sftp.protectedKeyPassphrase, 'Remember');
      const first = ((await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[] | undefined)?.[0];
      assert.equal(first?.type, 'full', JSON.stringify({ notices: api.ui.notices.slice(notices), prompts: api.ui.prompts.slice(-6) }));
      const prompts = passphrasePrompts().slice(asked);
      assert.equal(prompts.length, 2, JSON.stringify(api.ui.prompts.slice(-6)));
      assert.ok(prompts.every((p) => p.text.includes(sftp.protectedKey)), 'the key file is named');
      assert.deepEqual(api.ui.prompts.slice(start).filter((p) => /SSH password/.test(p.text)), [], 'no password asked: the key is what is locked');
      // Remembered: the next backup asks nothing.
      const mark = api.ui.prompts.length;
      await nextSecond();
      const [second] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(second?.type, 'inc', JSON.stringify(api.ui.notices.slice(-2)));
      assert.deepEqual(api.ui.prompts.slice(mark), []);
      const log = logText(api);
      for (const secret of [sftp.protectedKeyPassphrase, 'not-the-key-passphrase']) {
        assert.ok(!fs.readFileSync(path.join(fx.workspace, '.vscode', 'settings.json'), 'utf8').includes(secret));
        assert.ok(!JSON.stringify(api.ui.notices).includes(secret));
        assert.ok(!log.includes(secret), 'no passphrase in the log');
      }
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('sshKey', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('s3://: asks for the S3 keys when none are configured (wrong, then right), keeps them in secret storage, never in settings or logs', async function () {
    this.timeout(180_000);
    const s3 = fx.s3!;
    const config = vscode.workspace.getConfiguration('offsite');
    const root = `s3://${s3.bucket}/backups`;
    await config.update('remote', root, vscode.ConfigurationTarget.Workspace);
    await config.update('s3EndpointUrl', s3.endpoint, vscode.ConfigurationTarget.Workspace);
    const keyPrompts = () => api.ui.prompts.filter((p) => p.kind === 'input' && /S3 access key id/.test(p.text));
    try {
      await waitFor('the s3 remote', () => api.model.folders[0].config.url === `${root}/workspace` && api.model.folders[0].config.remote.s3EndpointUrl === s3.endpoint);
      const asked = keyPrompts().length;
      const notices = api.ui.notices.length;
      // No credentials anywhere: asked. A wrong secret is refused and asked again; the right one is remembered.
      api.ui.script(s3.accessKeyId, 'not-the-secret', '', 'Only This Session', s3.accessKeyId, s3.secretAccessKey, '', 'Remember');
      const [first] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(first?.type, 'full', JSON.stringify(api.ui.notices.slice(notices)));
      const prompts = keyPrompts().slice(asked);
      assert.equal(prompts.length, 2, JSON.stringify(api.ui.prompts.slice(-10)));
      assert.match(prompts[0].text, /No S3 credentials found .*No credentials are configured for it/);
      assert.match(prompts[1].text, /refused the credentials.*Try again/);
      assert.ok(api.ui.prompts.some((p) => /S3 secret access key for s3:\/\/.* @ http:\/\/127\.0\.0\.1:\d+ \(2\/3\)/.test(p.text)), 'remembered per remote URL and endpoint');
      // Remembered: the next backup asks nothing.
      const mark = api.ui.prompts.length;
      await nextSecond();
      const [second] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string }[];
      assert.equal(second?.type, 'inc');
      assert.deepEqual(api.ui.prompts.slice(mark), []);
      // Never in settings, notifications or the log.
      const secret = s3.secretAccessKey;
      assert.ok(!fs.readFileSync(path.join(fx.workspace, '.vscode', 'settings.json'), 'utf8').includes(secret));
      assert.ok(!JSON.stringify(config.inspect('s3EndpointUrl')).includes(secret) && !JSON.stringify(vscode.workspace.getConfiguration('offsite')).includes(secret));
      assert.ok(!JSON.stringify(api.ui.notices).includes(secret) && !JSON.stringify(api.ui.notices).includes('not-the-secret'));
      const log = logText(api);
      assert.match(log, /Backing up .* to s3:\/\//, 'the log is there');
      assert.ok(!log.includes(secret) && !log.includes('not-the-secret'), 'no key in the log');
      // "Forget Remembered Passphrases, Passwords and S3 Keys" forgets them too: the next backup asks again (declined: cancelled, no error).
      await vscode.commands.executeCommand('offsite.forgetSecrets');
      assert.match(api.ui.notices.at(-1)?.message ?? '', /forgot [1-9]\d* remembered/);
      const again = keyPrompts().length;
      const n2 = api.ui.notices.length;
      api.ui.script(undefined);
      assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace'), undefined);
      assert.equal(keyPrompts().length, again + 1, 'asked again');
      assert.deepEqual(api.ui.notices.slice(n2).filter((n) => n.severity === 'error'), [], 'declining is a cancel, not an error');
      // Credentials configured the AWS way (here: a profile named in the environment) are the user's to
      // fix there: the refusal is reported, nothing is asked.
      const none = { get: async () => undefined, set: async () => undefined, delete: async () => undefined } as unknown as Secrets;
      const withProfile = new EngineGateway(api.model.gateway.client, none, api.ui, { AWS_PROFILE: 'work', HOME: fx.scratch });
      const promptsBefore = api.ui.prompts.length;
      await assert.rejects(
        withProfile.call(api.model.folders[0].config, 'status', (remote) => ({ op: 'status', remote }), { interactive: true }),
        (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'auth',
      );
      assert.equal(api.ui.prompts.length, promptsBefore, 'not asked');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('s3EndpointUrl', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('Configure Backup… (the first-run wizard) accepts s3://bucket/prefix and rclone://remote:path like the other remotes', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    const cases = [
      { kind: 'An S3 bucket', url: 's3://my-bucket/backups' },
      { kind: 'Another URL', url: 'rclone://myremote:backups/laptop' },
    ];
    try {
      for (const c of cases) {
        // Not configured: no remote.
        await config.update('remote', '', vscode.ConfigurationTarget.Workspace);
        await waitFor('no remote', () => !api.model.folders[0].config.configured);
        const notices = api.ui.notices.length;
        api.ui.script(c.kind, c.url, 'Workspace Settings');
        await vscode.commands.executeCommand('offsite.configure');
        assert.equal(config.inspect('remote')?.workspaceValue, c.url);
        await waitFor(`the ${c.url} remote`, () => api.model.folders[0].config.configured);
        assert.equal(api.model.folders[0].config.url, `${c.url}/workspace`);
        const ready = api.ui.notices.slice(notices).find((n) => /Offsite is ready/.test(n.message));
        assert.equal(ready?.message, `Offsite is ready: workspace backs up to ${c.url}/workspace.`);
      }
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await waitFor('the file remote', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace`);
    }
  });

  it('Restore Workspace To… restores a chosen backup into a new folder inside the chosen one', async () => {
    const parent = fs.mkdtempSync(path.join(fx.scratch, 'restore-'));
    // The oldest set (listed last, before "Type a date…"), then the destination.
    api.ui.script(() => formatTime(firstSet), parent);
    const r = (await vscode.commands.executeCommand('offsite.restoreWorkspaceTo')) as { target: string; files: number };
    assert.ok(r, JSON.stringify(api.ui.notices.at(-1)));
    assert.equal(path.dirname(r.target), parent);
    assert.match(path.basename(r.target), /^workspace-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d$/);
    assert.equal(fs.readFileSync(path.join(r.target, 'README.md'), 'utf8'), README_V1);
    assert.equal(fs.readFileSync(path.join(r.target, 'old.txt'), 'utf8'), OLD_TXT);
    assert.equal(fs.existsSync(path.join(r.target, 'build')), false, '.gitignored files were never backed up');
  });

  it('Configure Backup… sets the schedule; the scheduler backs up when due and notifies a failure with Show Log and Retry', async () => {
    api.ui.script('Schedule', 'Every hour');
    await vscode.commands.executeCommand('offsite.configure');
    const config = vscode.workspace.getConfiguration('offsite');
    assert.equal(config.get('schedule'), 60);
    assert.equal(config.inspect('schedule')?.globalValue, 60, 'a setting nobody set yet goes to the user settings');
    await waitFor('the schedule in the model', () => api.model.folders[0].config.settings.schedule === 60);
    const before = manifests(fx.remoteDir).length;
    await nextSecond();
    fs.appendFileSync(path.join(fx.workspace, 'src', 'main.ts'), '// scheduled\n');
    // An hour and a bit later: due.
    const notices = api.ui.notices.length;
    await api.scheduler.tick(Date.now() / 1000 + 3700);
    assert.equal(manifests(fx.remoteDir).length, before + 1, 'the scheduled backup made a set');
    assert.deepEqual(api.ui.notices.slice(notices).filter((n) => /Scheduled/.test(n.message)), [], 'a scheduled success is silent with offsite.notifications = failures');
    // Not due again right after.
    await api.scheduler.tick(Date.now() / 1000 + 60);
    assert.equal(manifests(fx.remoteDir).length, before + 1);
    const blocker = write(fx.scratch, 'blocker-file', 'x');
    await config.update('remote', `file://${blocker}`, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the bad remote', () => api.model.folders[0].config.url.startsWith(`file://${blocker}`));
      await api.scheduler.tick(Date.now() / 1000 + 3 * 3700);
      const failure = api.ui.notices.slice(notices).find((n) => n.severity === 'error');
      assert.match(failure?.message ?? '', /^Scheduled backup of workspace failed: /);
      assert.deepEqual(failure?.actions, ['Show Log', 'Retry']);
      // The same failure at the next run is not notified again (the status bar still says it).
      const again = api.ui.notices.length;
      const attempt = api.model.record(api.model.folders[0]).lastAttempt;
      await api.scheduler.tick(Date.now() / 1000 + 5 * 3700);
      assert.notEqual(api.model.record(api.model.folders[0]).lastAttempt, attempt, 'it ran again');
      assert.deepEqual(api.ui.notices.slice(again).filter((n) => n.severity === 'error'), []);
      assert.equal(api.statusBar.view?.text, '$(warning) Backup failed');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('schedule', undefined, vscode.ConfigurationTarget.Global);
    }
    // A day without a success: the stale warning, once.
    await waitFor('the good remote, no schedule', () => api.model.folders[0].config.url === `${fx.remoteRoot}/workspace` && api.model.folders[0].config.settings.schedule === 0);
    const mark = api.ui.notices.length;
    await api.scheduler.tick(Date.now() / 1000 + 25 * 3600);
    await api.scheduler.tick(Date.now() / 1000 + 26 * 3600);
    const stale = api.ui.notices.slice(mark).filter((n) => /No successful backup of workspace for more than 24 hours/.test(n.message));
    assert.equal(stale.length, 1, JSON.stringify(api.ui.notices.slice(mark)));
    assert.deepEqual(stale[0].actions, ['Back Up Now', 'Show Log']);
  });

  it('Create Key makes a key pair, saves the private key 0600, and puts the public key in offsite.encryptKeys', async () => {
    const dest = path.join(fx.scratch, 'keys', 'me-private.asc');
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    api.ui.script('Test Person', 'test@example.invalid', 'correct horse battery', 'correct horse battery', dest, undefined);
    const publicFile = (await vscode.commands.executeCommand('offsite.createKey')) as string;
    assert.equal(publicFile, path.join(fx.scratch, 'keys', 'me-public.asc'));
    assert.match(fs.readFileSync(dest, 'utf8'), /BEGIN PGP PRIVATE KEY BLOCK/);
    assert.equal(fs.statSync(dest).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(publicFile, 'utf8'), /BEGIN PGP PUBLIC KEY BLOCK/);
    const warning = api.ui.notices.at(-1)!;
    assert.equal(warning.modal, true);
    assert.match(warning.message, /Keep a copy of your private key somewhere else/);
    assert.ok(vscode.workspace.getConfiguration('offsite').get<string[]>('encryptKeys')?.includes(publicFile));
    // gpg 2.2 reads the new key.
    const home = fs.mkdtempSync(path.join(fx.scratch, 'gnupg-'));
    const out = execFileSync('gpg', ['--batch', '--homedir', home, '--import-options', 'show-only', '--import', publicFile], { encoding: 'utf8' });
    assert.match(out, /Test Person <test@example\.invalid>/);
    await vscode.workspace.getConfiguration('offsite').update('encryptKeys', [fx.keys.rsaPub], vscode.ConfigurationTarget.Workspace);
  });
  it('the tree lists a set a folder at a time as folders are expanded, and a big folder a page at a time', async function () {
    this.timeout(180_000);
    const many = path.join(fx.workspace, 'many');
    fs.mkdirSync(many);
    const count = FOLDER_PAGE + 150;
    for (let i = 0; i < count; i++) fs.writeFileSync(path.join(many, `f${String(i).padStart(5, '0')}.txt`), `${i}\n`);
    fs.mkdirSync(path.join(many, 'sub'));
    fs.writeFileSync(path.join(many, 'sub', 'deep.txt'), 'deep\n');
    try {
      await nextSecond();
      const [b] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { type: string; time: number }[];
      assert.ok(b, JSON.stringify(api.ui.notices.at(-1)));
      const f = api.model.folders[0];
      const sets = await setNodes(api);
      assert.equal(sets[0].set.time, b.time);
      const top = (await children(api, sets[0])) as EntryNode[];
      assert.deepEqual([...f.listings.keys()], [`${b.time}:`], 'only the set\'s top folder was listed');
      const dir = top.find((e) => e.node.name === 'many')!;
      assert.ok(dir, top.map((e) => e.node.name).join(' '));
      const first = await children(api, dir);
      assert.deepEqual([...f.listings.keys()].sort(), [`${b.time}:`, `${b.time}:many`], 'then the expanded folder, nothing else');
      assert.equal(first.length, FOLDER_PAGE + 1, 'one page and "Show more…"');
      const more = first.at(-1) as MoreNode;
      assert.equal(more.kind, 'more');
      assert.equal(label(api, more), 'Show more…');
      assert.equal(api.tree.getTreeItem(more).command?.command, 'offsite.showMoreEntries');
      // With the remote gone, the next page fails: logged once, and the item stays for another click.
      const log = await logFrom(api);
      const moved = `${fx.remoteDir}.away`;
      fs.renameSync(fx.remoteDir, moved);
      try {
        await vscode.commands.executeCommand('offsite.showMoreEntries', more);
      } finally {
        fs.renameSync(moved, fx.remoteDir);
      }
      const failed = (await log.lines()).filter((l) => l.includes('Show more of many'));
      assert.equal(failed.length, 1, failed.join('\n'));
      assert.match(failed[0], /\[error\].*Show more of many failed: \[\w+\] /);
      assert.equal(((await children(api, dir)) as BackupNode[]).at(-1)?.kind, 'more');
      await vscode.commands.executeCommand('offsite.showMoreEntries', more);
      const all = (await children(api, dir)) as EntryNode[];
      assert.equal(all.length, count + 1, 'every entry, and no "Show more…" left');
      assert.ok(all.every((e) => e.kind === 'entry'));
      assert.equal(new Set(all.map((e) => e.node.path)).size, all.length, 'no entry twice');
      assert.equal(all[0].node.name, 'sub', 'folders first (among the entries loaded)');
      const sub = all.find((e) => e.node.name === 'sub')!;
      assert.deepEqual(((await children(api, sub)) as EntryNode[]).map((e) => e.node.path), ['many/sub/deep.txt']);
      // A listed file opens against the workspace from the tree as before.
      const file = all.find((e) => e.node.name === 'f00007.txt')!;
      await vscode.commands.executeCommand('offsite.compareWithCurrent', file);
      const diff = await waitFor('a diff editor', () => activeDiff());
      assert.equal((await vscode.workspace.openTextDocument(diff.original)).getText(), '7\n');
    } finally {
      fs.rmSync(many, { recursive: true, force: true });
    }
  });

  it('Restore of a folder that leaves members out says which and why in a warning (and the log), not "Restored"', async () => {
    const nest = path.join(fx.workspace, 'nest');
    const elsewhere = fs.mkdtempSync(path.join(fx.scratch, 'elsewhere-'));
    fs.mkdirSync(path.join(nest, 'inner'), { recursive: true });
    fs.writeFileSync(path.join(nest, 'inner', 'x.txt'), 'x\n');
    try {
      await nextSecond();
      const [b] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { time: number }[];
      assert.ok(b, JSON.stringify(api.ui.notices.at(-1)));
      const inner = (await children(api, await entry(api, (await setNodes(api))[0], 'nest'))).find((e) => e.kind === 'entry' && e.node.name === 'inner') as EntryNode;
      assert.ok(inner);
      // The user's own symlink where the backup has the folder above the one restored: following it
      // could write outside the workspace, so that member is left out.
      fs.rmSync(nest, { recursive: true });
      fs.symlinkSync(elsewhere, nest);
      const notices = api.ui.notices.length;
      api.ui.script('Restore');
      const r = (await vscode.commands.executeCommand('offsite.restoreVersion', inner)) as { refusals: unknown[] };
      assert.equal(r.refusals.length, 2, JSON.stringify(r)); // the folder and its file
      const shown = api.ui.notices.slice(notices).filter((n) => !n.modal);
      assert.equal(shown.length, 1, JSON.stringify(shown));
      assert.equal(shown[0].severity, 'warning');
      assert.match(shown[0].message, /^Restored nest\/inner: 0 file\(s\), .* But 2 archive member\(s\) were not restored: nest\/inner \(nest in the target is not a folder but a symlink .*\); nest\/inner\/x\.txt .*No other file was restored; files in the target were in the way/);
      assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing written through the symlink');
      const log = logText(api);
      assert.match(log, /Not restoring nest\/inner: /);
    } finally {
      fs.rmSync(nest, { recursive: true, force: true });
    }
  });

  it('new keys while a backup runs keep it shown and cancellable; a second Backup Workspace meanwhile is refused without counting as a failure', async function () {
    this.timeout(300_000);
    const big = path.join(fx.workspace, 'big2');
    await writeRandomBlobs(big, 8, 8);
    const config = vscode.workspace.getConfiguration('offsite');
    const failureBefore = api.model.record(api.model.folders[0]).lastFailure;
    await nextSecond();
    try {
      const running = vscode.commands.executeCommand('offsite.backupWorkspace');
      await waitFor('the backup to be under way', () => (api.model.folders[0].running?.files ?? 0) > 0, 60_000);
      // A second encryption key while the backup runs: the folder's state is rebuilt for the new keys.
      await config.update('encryptKeys', [fx.keys.rsaPub, fx.keys.protectedPub], vscode.ConfigurationTarget.Workspace);
      await waitFor('the new keys', () => api.model.folders[0].config.keys.encryptKeys?.length === 2);
      assert.ok(api.model.folders[0].running, 'the running backup is still the folder\'s');
      assert.match(api.statusBar.view?.text ?? '', /Backing up/);
      // One folder has no item of its own in the Backups view: the view's description says it.
      assert.match(api.backupsView.description ?? '', /^backing up… · file:\/\//);
      const notices = api.ui.notices.length;
      const busy = `Offsite is already backing up ${api.model.folders[0].name}`;
      const logLines = (text: string) => logText(api).split('\n').filter((l) => l.includes(text));
      const cancelled = `Backup of ${api.model.folders[0].name} cancelled`;
      const [busyLogged, cancelLogged] = [logLines(busy).length, logLines(cancelled).length];
      // Its Show Progress is chosen: it opens the notification center, where the backup's progress is.
      const commands = vscode.commands as { executeCommand: typeof vscode.commands.executeCommand };
      const execute = commands.executeCommand;
      const executed: { id: string; done: Thenable<unknown> }[] = [];
      commands.executeCommand = ((id: string, ...args: unknown[]) => {
        const done = execute(id, ...args);
        executed.push({ id, done });
        return done;
      }) as typeof execute;
      api.ui.click('Show Progress');
      try {
        assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace'), undefined);
        const shown = await waitFor('Show Progress to open the notification center', () => executed.find((c) => c.id === 'notifications.showList'));
        await shown.done; // (rejects for a command VS Code does not have)
      } finally {
        commands.executeCommand = execute;
      }
      await vscode.commands.executeCommand('notifications.hideList');
      const refused = api.ui.notices.slice(notices);
      assert.equal(refused.length, 1, JSON.stringify(refused));
      // Said, not alarmed: which folder runs what, and the ways to its progress and to cancel it.
      assert.equal(refused[0].severity, 'info');
      assert.equal(refused[0].message, `${busy}. Wait for it to finish, or cancel it.`);
      assert.deepEqual(refused[0].actions, ['Show Progress', 'Cancel It']);
      assert.deepEqual(api.model.record(api.model.folders[0]).lastFailure, failureBefore, 'a backup that never started is not a failed one');
      assert.equal(await vscode.commands.executeCommand('offsite.cancel'), 1, 'the running one can be cancelled');
      assert.equal(await running, undefined);
      // The refusal is logged once. (The log is written in order: with the cancel, which came after, in
      // it, every line of the refusal is too.)
      await waitFor('the cancel in the log', () => logLines(cancelled).length > cancelLogged);
      assert.equal(logLines(busy).length - busyLogged, 1, logLines(busy).join('\n'));
      assert.equal(api.model.folders[0].running, undefined);
      assert.deepEqual(api.model.record(api.model.folders[0]).lastFailure, failureBefore, 'cancelled: no failure recorded');
      assert.doesNotMatch(api.statusBar.view?.text ?? '', /Backing up|Backup failed/);
      assert.match(api.backupsView.description ?? '', /^file:\/\//);
    } finally {
      fs.rmSync(big, { recursive: true, force: true });
      await config.update('encryptKeys', [fx.keys.rsaPub], vscode.ConfigurationTarget.Workspace);
    }
    await waitFor('one key again', () => api.model.folders[0].config.keys.encryptKeys?.length === 1);
  });

  it('a backup that finds the remote locked by another live run (cron, another window) is a warning, not a failed backup', async function () {
    this.timeout(60_000);
    const f = api.model.folders[0];
    // The lock a CLI backup of the same remote holds (the engine's cache root: this host's environment).
    const lock = path.join(archiveDirFor(f.config.url), 'lockfile');
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command: 'backup' }), { mode: 0o600 });
    const failureBefore = api.model.record(f).lastFailure;
    try {
      const notices = api.ui.notices.length;
      const log = await logFrom(api);
      assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace'), undefined, 'not backed up');
      const said = api.ui.notices.slice(notices);
      assert.equal(said.length, 1, JSON.stringify(said));
      assert.equal(said[0].severity, 'warning');
      assert.match(said[0].message, new RegExp(`Another Offsite run is writing to this backup: process ${process.pid}`));
      // Logged once, not as a failure.
      assertLoggedOnce(await log.lines(), 'info', `Backup of ${f.name} not started`, said[0].message);
      assert.deepEqual(api.model.record(f).lastFailure, failureBefore, 'a backup that could not start is not a failed one');
      assert.doesNotMatch(api.statusBar.view?.text ?? '', /Backup failed/);
      assert.ok(fs.existsSync(lock), 'the other run\'s lock is left alone');
    } finally {
      fs.rmSync(lock, { force: true });
    }
  });

  it('an encryption key file that is not there is named with its own hint, not the restore key\'s', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    await config.update('encryptKeys', ['keys/missing-pub.asc'], vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the missing key', () => api.model.folders[0].config.keys.encryptKeys?.[0]?.endsWith('missing-pub.asc'));
      const notices = api.ui.notices.length;
      const log = await logFrom(api);
      assert.equal(await vscode.commands.executeCommand('offsite.backupWorkspace'), undefined);
      const errors = api.ui.notices.slice(notices).filter((n) => n.severity === 'error');
      assert.equal(errors.length, 1, JSON.stringify(api.ui.notices.slice(notices)));
      assert.match(errors[0].message, /The key file .*keys\/missing-pub\.asc does not exist\. Check the path of the key file/);
      assertLoggedOnce(await log.lines(), 'error', `Backup of ${api.model.folders[0].name} failed`, errors[0].message);
      assert.doesNotMatch(errors[0].message, /restoreKey|private key/);
    } finally {
      await config.update('encryptKeys', [fx.keys.rsaPub], vscode.ConfigurationTarget.Workspace);
    }
    await waitFor('the key again', () => api.model.folders[0].config.keys.encryptKeys?.[0] === fx.keys.rsaPub);
  });

  it('files with names that need escaping (#, ?, %, spaces, unicode, a leading ..) are compared through offsite: URIs', async () => {
    // ..data at the top: a name starting with '..' right in the folder.
    const names = ['odd/odd #1?%20 name.txt', 'odd/ünï cødé.md', '..data'];
    for (const n of names) write(fx.workspace, n, `content of ${n}\n`);
    try {
      await nextSecond();
      const [b] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { time: number }[];
      assert.ok(b, JSON.stringify(api.ui.notices.at(-1)));
      for (const n of names) {
        const file = path.join(fx.workspace, n);
        fs.writeFileSync(file, 'changed since\n');
        const notices = api.ui.notices.length;
        api.ui.script(formatTime(b.time));
        const uri = (await vscode.commands.executeCommand('offsite.compareWithBackup', vscode.Uri.file(file))) as vscode.Uri;
        assert.ok(uri, `${n}: ${JSON.stringify(api.ui.notices.slice(notices))}`);
        const diff = await waitFor('a diff editor', () => activeDiff());
        assert.equal(diff.modified.fsPath, file);
        assert.equal((await vscode.workspace.openTextDocument(diff.original)).getText(), `content of ${n}\n`, n);
      }
    } finally {
      fs.rmSync(path.join(fx.workspace, 'odd'), { recursive: true, force: true });
      fs.rmSync(path.join(fx.workspace, '..data'), { force: true });
    }
  });

  it('Compare With Backup as of a time before the first backup says which is the oldest, as a warning; a future time gives the newest', async () => {
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(readme));
    const notices = api.ui.notices.length;
    api.ui.script('Type a date or time', '2001-01-01');
    assert.equal(await vscode.commands.executeCommand('offsite.compareWithBackup'), undefined);
    const shown = api.ui.notices.slice(notices);
    assert.equal(shown.length, 1, JSON.stringify(shown));
    assert.equal(shown[0].severity, 'warning', JSON.stringify(shown[0]));
    assert.match(shown[0].message, /No backup as old as 2001-01-01.*the oldest is from/);
    assert.doesNotMatch(shown[0].message, /--time/);
    assert.match(shown[0].message, /Pick a later date or time/);
    api.ui.script('Type a date or time', '2099-01-01');
    await vscode.commands.executeCommand('offsite.compareWithBackup');
    const diff = await waitFor('a diff editor', () => activeDiff());
    assert.equal((await vscode.workspace.openTextDocument(diff.original)).getText(), fs.readFileSync(readme, 'utf8'));
  });

  it('without a private key, Compare With Backup says to set offsite.restoreKey (not the CLI\'s --key), and Open Settings goes there', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    // A remote of its own: nothing of it is cached, so reading a version needs the private key.
    const root3 = `file://${path.join(fx.scratch, 'remote-no-key')}`;
    await config.update('remote', root3, vscode.ConfigurationTarget.Workspace);
    await config.update('restoreKey', undefined, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the remote without a restore key', () => api.model.folders[0].config.url.startsWith(root3) && !api.model.folders[0].config.keys.restoreKey);
      const [first] = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as { time: number }[];
      assert.ok(first, JSON.stringify(api.ui.notices.at(-1)));
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(readme));
      const notices = api.ui.notices.length;
      const log = await logFrom(api);
      api.ui.script('Type a date or time', String(first.time));
      api.ui.click('Open Settings');
      assert.equal(await vscode.commands.executeCommand('offsite.compareWithBackup'), undefined);
      const shown = api.ui.notices.slice(notices);
      assert.equal(shown.length, 1, JSON.stringify(shown));
      assert.equal(shown[0].severity, 'error');
      assert.match(shown[0].message, /The private key is needed to read the backup\. Set offsite\.restoreKey to your private key file/);
      assert.doesNotMatch(shown[0].message, /--key/);
      assert.deepEqual(shown[0].actions, ['Open Settings', 'Show Log']);
      await waitFor('the Settings editor', () => vscode.window.tabGroups.activeTabGroup.activeTab?.label === 'Settings');
      // Logged once, with the hint the notification gives (offsite.restoreKey, not the CLI's --key).
      assertLoggedOnce(await log.lines(), 'error', 'offsite.compareWithBackup failed', shown[0].message);
      // A verify (an operation of the folder, as a backup) and a restore that need it: the same, each logged once.
      for (const [command, what, answers] of [
        ['offsite.verify', `Verification of ${api.model.folders[0].name} failed`, []],
        ['offsite.restoreWorkspaceTo', `Restore of ${api.model.folders[0].name} failed`, [formatTime(first.time), fx.scratch]],
      ] as const) {
        const before = api.ui.notices.length;
        const logged = await logFrom(api);
        if (answers.length) api.ui.script(...answers);
        assert.equal(await vscode.commands.executeCommand(command), undefined, command);
        const failed = api.ui.notices.slice(before).filter((n) => n.severity === 'error');
        assert.equal(failed.length, 1, JSON.stringify(api.ui.notices.slice(before)));
        assert.match(failed[0].message, /The private key is needed .*Set offsite\.restoreKey/);
        assertLoggedOnce(await logged.lines(), 'error', what, failed[0].message);
      }
      assert.deepEqual(api.ui.takeUnusedAnswers(), []);
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
      await config.update('restoreKey', fx.keys.rsaSec, vscode.ConfigurationTarget.Workspace);
    }
    await waitFor('the remote and key again', () => api.model.folders[0].config.url.startsWith(fx.remoteRoot) && api.model.folders[0].config.keys.restoreKey === fx.keys.rsaSec);
  });

  it('a password in offsite.remote never reaches the log or a notification', async () => {
    const config = vscode.workspace.getConfiguration('offsite');
    const secret = 'hunter2-in-the-url';
    await config.update('remote', `sftp://me:${secret}@127.0.0.1:1/backups`, vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor('the sftp remote', () => api.model.folders[0].config.url.startsWith('sftp://'));
      const running = vscode.commands.executeCommand('offsite.backupWorkspace');
      await waitFor('the log line', () => /Backing up .* to sftp:\/\/me:\*\*\*@127\.0\.0\.1:1\/backups\/workspace/.test(logText(api)));
      await vscode.commands.executeCommand('offsite.cancel');
      await running;
      assert.ok(!logText(api).includes(secret), 'no password in the log');
      assert.ok(!JSON.stringify(api.ui.notices).includes(secret), 'nor in a notification');
      assert.ok(!(api.statusBar.view?.tooltip ?? '').includes(secret), 'nor in the status bar');
    } finally {
      await config.update('remote', fx.remoteRoot, vscode.ConfigurationTarget.Workspace);
    }
    await waitFor('the file remote again', () => api.model.folders[0].config.url.startsWith('file://'));
  });
});

/**
 * A failure (or a refusal) in the log lines of one command: one line of it, at `level`, that says
 * `what` (which operation on which folder, or which command), the error's [code], and the words of the
 * notification (its message and hint).
 */
function assertLoggedOnce(lines: readonly string[], level: 'error' | 'info', what: string, notified: string): void {
  const words = notified.replace(/^Offsite: /, '').replace(/\.$/, '');
  // (The end of the hint, or of a message without one: what the line that starts the backup, naming the remote, does not say.)
  const end = words.slice(-30);
  const about = lines.filter((l) => l.includes(end) || /\[error\]/.test(l));
  assert.equal(about.length, 1, about.join('\n'));
  const [, lineLevel, said] = /\[(\w+)\] (.*)$/.exec(about[0]) ?? [];
  assert.equal(lineLevel, level, about[0]);
  assert.ok(said.startsWith(`${what}: [`), about[0]);
  // "message (hint)" in the log, "message. hint" in the notification (either may have parentheses of its own).
  const logged = said.replace(/^[^\]]*\] /, '');
  const splits = [...logged.matchAll(/ \(/g)].map((m) => `${logged.slice(0, m.index)}. ${logged.slice(m.index + 2, -1)}`);
  assert.ok(logged === words || (logged.endsWith(')') && splits.includes(words)), `${about[0]}\nnot the words of the notification:\n${words}`);
}
