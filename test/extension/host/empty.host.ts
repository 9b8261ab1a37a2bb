// A window with no folder open, as after File > Close Folder: the palette still lists Offsite's
// commands; each says that a folder must be opened, with Open Folder (never an error that offers
// "Configure Backup…", which could only say the same again), and nothing breaks.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { OffsiteApi } from '../../../src/extension/extension';
import { fixture, offsite, write } from './fixture';

const fx = fixture();

describe('Offsite in a window with no folder', () => {
  let api: OffsiteApi;

  before(async () => {
    api = await offsite();
    api.ui.script();
  });

  afterEach(async function () {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    if (this.currentTest?.state === 'failed') console.log('notices:', JSON.stringify(api.ui.notices.slice(-6), null, 1));
  });

  async function said(command: string, ...args: unknown[]): Promise<{ result: unknown; notices: typeof api.ui.notices }> {
    const mark = api.ui.notices.length;
    const result = await vscode.commands.executeCommand(command, ...args);
    return { result, notices: api.ui.notices.slice(mark) };
  }

  it('no folder, no status bar item, and no engine started', () => {
    assert.equal(vscode.workspace.workspaceFolders, undefined);
    assert.equal(api.model.folders.length, 0);
    assert.equal(api.statusBar.view, undefined, 'the status bar item is hidden');
    assert.equal(api.enginePid(), undefined);
  });

  it('the commands that act on a folder say to open one, with Open Folder', async () => {
    for (const command of ['offsite.backupWorkspace', 'offsite.configure', 'offsite.verify', 'offsite.drill', 'offsite.restoreWorkspaceTo', 'offsite.copyCronCommand']) {
      const { result, notices } = await said(command);
      assert.equal(result, undefined, command);
      assert.equal(notices.length, 1, `${command}: ${JSON.stringify(notices)}`);
      assert.equal(notices[0].severity, 'warning', `${command}: ${JSON.stringify(notices[0])}`);
      assert.match(notices[0].message, /^Offsite: No folder is open\. Open a folder to back it up/, command);
      assert.deepEqual(notices[0].actions, ['Open Folder', 'Show Log'], command);
    }
  });

  it('Compare With Backup and Restore File As Of… say what is missing: a file, or its folder', async () => {
    for (const [command, re] of [
      ['offsite.compareWithBackup', /^Offsite: No file to compare\./],
      ['offsite.restoreFileAsOf', /^Offsite: No file to restore\./],
    ] as const) {
      const { notices } = await said(command);
      assert.equal(notices.length, 1, `${command}: ${JSON.stringify(notices)}`);
      assert.equal(notices[0].severity, 'warning');
      assert.match(notices[0].message, re);
    }
    // A file opened on its own (no folder): its folder must be opened to back it up.
    const file = write(fx.scratch, 'loose.txt', 'a file opened without its folder\n');
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(file));
    const { notices } = await said('offsite.compareWithBackup');
    assert.equal(notices.length, 1, JSON.stringify(notices));
    assert.match(notices[0].message, /loose\.txt is not in a folder of the workspace: no folder is open\. Open the folder it is in to back it up/);
    assert.deepEqual(notices[0].actions, ['Open Folder', 'Show Log']);
  });

  it('Show Backup Status, Refresh and Cancel work without a folder, and say nothing alarming', async () => {
    const status = await said('offsite.showStatus');
    assert.match(String(status.result), /No folder is open\./);
    assert.deepEqual(status.notices, []);
    assert.deepEqual((await said('offsite.refresh')).notices, []);
    const cancel = await said('offsite.cancel');
    assert.equal(cancel.result, 0);
    assert.deepEqual(cancel.notices, []);
  });
});
