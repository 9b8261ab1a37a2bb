// Typed reads of the offsite.* settings for a workspace folder (folder settings win over workspace and
// user settings). In an untrusted workspace VS Code itself ignores the workspace's values of the
// restricted settings (package.json capabilities.untrustedWorkspaces.restrictedConfigurations).
import * as vscode from 'vscode';
import { DEFAULT_SETTINGS, resolveFolderConfig, settingProblems, type FolderConfig, type RawSettings, type SettingProblem } from './folderConfig';

export const SECTION = 'offsite';

export function readSettings(scope?: vscode.Uri): RawSettings {
  const c = vscode.workspace.getConfiguration(SECTION, scope);
  const str = (k: keyof RawSettings) => {
    const v = c.get<unknown>(k);
    return typeof v === 'string' ? v : (DEFAULT_SETTINGS[k] as string);
  };
  const num = (k: keyof RawSettings) => {
    const v = c.get<unknown>(k);
    return typeof v === 'number' && Number.isFinite(v) ? v : (DEFAULT_SETTINGS[k] as number);
  };
  const list = (k: keyof RawSettings) => {
    const v = c.get<unknown>(k);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : (DEFAULT_SETTINGS[k] as string[]);
  };
  const n = c.get<unknown>('notifications');
  return {
    remote: str('remote'),
    encryptKeys: list('encryptKeys'),
    restoreKey: str('restoreKey'),
    signKey: str('signKey'),
    schedule: num('schedule'),
    staleAfter: num('staleAfter'),
    drillEvery: num('drillEvery'),
    exclude: list('exclude'),
    useGitignore: c.get<boolean>('useGitignore', DEFAULT_SETTINGS.useGitignore),
    volumeSize: num('volumeSize'),
    fullIfOlderThan: str('fullIfOlderThan'),
    keepFull: num('keepFull'),
    notifications: n === 'all' || n === 'failures' || n === 'off' ? n : DEFAULT_SETTINGS.notifications,
    sshKey: str('sshKey'),
    s3EndpointUrl: str('s3EndpointUrl'),
    s3Profile: str('s3Profile'),
  };
}

/** The values Offsite cannot use among a folder's offsite.* settings (readSettings gives their defaults instead). */
export function readSettingProblems(scope?: vscode.Uri): SettingProblem[] {
  const c = vscode.workspace.getConfiguration(SECTION, scope);
  const values: Partial<Record<keyof RawSettings, unknown>> = {};
  for (const k of Object.keys(DEFAULT_SETTINGS) as (keyof RawSettings)[]) values[k] = c.get<unknown>(k);
  return settingProblems(values);
}

export function folderConfig(folder: vscode.WorkspaceFolder): FolderConfig {
  return { ...resolveFolderConfig(readSettings(folder.uri), { name: folder.name, fsPath: folder.uri.fsPath }), problems: readSettingProblems(folder.uri) };
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
