// Typed reads of the offsite.* settings for a workspace folder (folder settings win over workspace and
// user settings). In an untrusted workspace VS Code itself ignores the workspace's values of the
// restricted settings (package.json capabilities.untrustedWorkspaces.restrictedConfigurations).
import * as vscode from 'vscode';
import { DEFAULT_SETTINGS, rawSettings, resolveFolderConfig, settingProblems, type FolderConfig, type RawSettings, type SettingValues } from './folderConfig';

export const SECTION = 'offsite';

/** Every offsite.* value of a scope, each read once. */
function readValues(scope?: vscode.Uri): SettingValues {
  const c = vscode.workspace.getConfiguration(SECTION, scope);
  const values: Partial<Record<keyof RawSettings, unknown>> = {};
  for (const k of Object.keys(DEFAULT_SETTINGS) as (keyof RawSettings)[]) values[k] = c.get<unknown>(k);
  return values;
}

export function readSettings(scope?: vscode.Uri): RawSettings {
  return rawSettings(readValues(scope));
}

/** A folder's configuration, and the values Offsite cannot use among its settings, from one read of them. */
export function folderConfig(folder: vscode.WorkspaceFolder): FolderConfig {
  const values = readValues(folder.uri);
  return { ...resolveFolderConfig(rawSettings(values), { name: folder.name, fsPath: folder.uri.fsPath }), problems: settingProblems(values) };
}

/** Where a setting is defined for this folder, so an update lands where it takes effect (default: user settings). */
export function targetOf(key: string, folder?: vscode.WorkspaceFolder): vscode.ConfigurationTarget {
  const i = vscode.workspace.getConfiguration(SECTION, folder?.uri).inspect(key);
  if (i?.workspaceFolderValue !== undefined && (vscode.workspace.workspaceFolders?.length ?? 0) > 1) return vscode.ConfigurationTarget.WorkspaceFolder;
  if (i?.workspaceValue !== undefined || i?.workspaceFolderValue !== undefined) return vscode.ConfigurationTarget.Workspace;
  return vscode.ConfigurationTarget.Global;
}

export async function updateSetting(key: string, value: unknown, folder?: vscode.WorkspaceFolder, target?: vscode.ConfigurationTarget): Promise<void> {
  await vscode.workspace.getConfiguration(SECTION, folder?.uri).update(key, value, target ?? targetOf(key, folder));
}
