// A multi-root workspace (a .code-workspace with two folders): Backup Workspace backs up every folder,
// and one that fails or is busy is reported once for all, never stopping the others.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { OffsiteApi } from '../../../src/extension/extension';
import { fixture, manifests, nextSecond, offsite } from './fixture';

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
      assert.match(warned[0].message, /1 of 2 folders not backed up: workspace: .*already running a backup/);
    } finally {
      folder.running = undefined;
    }
    // And with nothing in the way, both are backed up.
    await nextSecond();
    const both = (await vscode.commands.executeCommand('offsite.backupWorkspace')) as unknown[] | undefined;
    assert.equal(both?.length, 2, JSON.stringify(api.ui.notices.slice(-3)));
    assert.equal(manifests(fx.remoteDir).length, 1);
  });
});

async function waitForKeys(api: OffsiteApi): Promise<void> {
  const end = Date.now() + 10_000;
  while (!api.model.folders[0].config.keys.encryptKeys?.[0]?.endsWith('rsa-pub.asc')) {
    if (Date.now() > end) throw new Error(`the first folder's keys: ${JSON.stringify(api.model.folders[0].config.keys)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
