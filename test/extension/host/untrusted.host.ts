// Workspace trust on, folder untrusted: the workspace's own settings (which name a remote and a key)
// must not make Offsite send its files anywhere, and no backup runs at all, not even to the remote the
// user's own settings name.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { OffsiteApi } from '../../../src/extension/extension';
import { fixture, offsite, remoteFiles } from './fixture';

const fx = fixture();
const userRemoteDir = () => path.join(new URL(fx.userRemoteRoot!).pathname, 'workspace');

describe('Offsite in an untrusted workspace', () => {
  let api: OffsiteApi;

  before(async () => {
    api = await offsite();
    api.ui.script();
  });

  it('the folder really is untrusted; its settings name another remote, which VS Code withholds', () => {
    assert.equal(vscode.workspace.isTrusted, false);
    const own = JSON.parse(fs.readFileSync(path.join(fx.workspace, '.vscode', 'settings.json'), 'utf8'));
    assert.equal(own['offsite.remote'], fx.remoteRoot, 'the workspace asks for its own remote');
    const inspect = vscode.workspace.getConfiguration('offsite').inspect<string>('remote');
    assert.equal(inspect?.workspaceValue, undefined, 'restrictedConfigurations: not read from an untrusted workspace');
    assert.equal(inspect?.globalValue, fx.userRemoteRoot);
  });

  it('uses the user\'s offsite.remote and offsite.encryptKeys, never the untrusted workspace\'s', () => {
    const f = api.model.folders[0];
    assert.equal(f.config.url, `${fx.userRemoteRoot}/workspace`);
    assert.deepEqual(f.config.keys.encryptKeys, [fx.keys.rsaPub]);
    assert.equal(f.config.settings.schedule, 1, 'the user\'s schedule');
    assert.equal(f.config.configured, true);
  });

  it('ignores the untrusted workspace\'s keys, SSH key, S3 endpoint and profile, and retention: the user\'s own apply', () => {
    const own = JSON.parse(fs.readFileSync(path.join(fx.workspace, '.vscode', 'settings.json'), 'utf8'));
    const config = vscode.workspace.getConfiguration('offsite', api.model.folders[0].folder.uri);
    for (const key of ['restoreKey', 'signKey', 'sshKey', 's3EndpointUrl', 's3Profile', 'keepFull']) {
      assert.notEqual(own[`offsite.${key}`], undefined, `the workspace sets offsite.${key}`);
      assert.equal(config.inspect(key)?.workspaceValue, undefined, `offsite.${key} is not read from an untrusted workspace`);
    }
    const f = api.model.folders[0];
    assert.equal(f.config.remote.s3EndpointUrl, undefined, 'no S3 endpoint of the workspace\'s');
    assert.equal(f.config.remote.s3Profile, undefined);
    assert.equal(f.config.remote.sshKey, config.inspect<string>('sshKey')?.globalValue, 'the user\'s SSH key');
    assert.ok(f.config.remote.sshKey?.endsWith('id_user'));
    assert.equal(f.config.keys.restoreKey, undefined);
    assert.equal(f.config.keys.signKey, undefined);
    assert.equal(f.config.keepFull, undefined, 'no retention of the workspace\'s');
  });

  it('Backup Workspace refuses, says why, and never starts the engine', async () => {
    const r = await vscode.commands.executeCommand('offsite.backupWorkspace');
    assert.equal(r, undefined);
    const n = api.ui.notices.at(-1);
    assert.equal(n?.severity, 'error');
    assert.match(n?.message ?? '', /does not back up untrusted workspaces/);
    assert.ok(n?.actions.includes('Manage Workspace Trust'));
    assert.equal(api.enginePid(), undefined, 'no engine process was started');
    assert.deepEqual(remoteFiles(fx.remoteDir), [], 'nothing at the workspace\'s remote');
    assert.deepEqual(remoteFiles(userRemoteDir()), [], 'nothing at the user\'s remote');
  });

  it('the schedule (due for a year) runs no backup either', async () => {
    await api.scheduler.tick(Date.now() / 1000 + 365 * 86400);
    assert.equal(api.enginePid(), undefined);
    assert.deepEqual(remoteFiles(fx.remoteDir), []);
    assert.deepEqual(remoteFiles(userRemoteDir()), []);
  });

  it('the status bar says backups are off', () => {
    assert.match(api.statusBar.view?.text ?? '', /Backups off/);
  });
});
