// From the raw `offsite.*` settings of one workspace folder to what the engine needs: the folder's
// own remote URL (<offsite.remote>/<folder name>), its keys and its selection. Pure (no 'vscode'), so
// the rules are unit-tested under plain Node and the CLI line for cron is built from the same result.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { redactSecretValues, withoutPassword } from '../engine/backend/backendUtil';
import type { KeySpec, RemoteConfig, Selection } from '../engine/service';
import { BACKGROUND_NICE } from '../launch/priority';
import { parseTimeSpec } from '../engine/chain/time';

export type NotificationLevel = 'all' | 'failures' | 'off';

/** The settings as VS Code returns them (see package.json contributes.configuration). */
export interface RawSettings {
  readonly remote: string;
  readonly encryptKeys: readonly string[];
  readonly restoreKey: string;
  readonly signKey: string;
  readonly schedule: number;
  readonly staleAfter: number;
  readonly drillEvery: number;
  readonly exclude: readonly string[];
  readonly useGitignore: boolean;
  readonly volumeSize: number;
  readonly fullIfOlderThan: string;
  readonly keepFull: number;
  readonly notifications: NotificationLevel;
  readonly sshKey: string;
  readonly s3EndpointUrl: string;
  readonly s3Profile: string;
}

export const DEFAULT_SETTINGS: RawSettings = {
  remote: '',
  encryptKeys: [],
  restoreKey: '',
  signKey: '',
  schedule: 0,
  staleAfter: 24,
  drillEvery: 30,
  exclude: [],
  useGitignore: true,
  volumeSize: 32,
  fullIfOlderThan: '',
  keepFull: 0,
  notifications: 'failures',
  sshKey: '',
  s3EndpointUrl: '',
  s3Profile: '',
};

/** The offsite.* values as VS Code returns them (any type: settings.json is edited by hand; undefined: not set). */
export type SettingValues = Readonly<Partial<Record<keyof RawSettings, unknown>>>;

/** The settings Offsite uses, from the values as read: a value of the wrong type is the default (settingProblems names it). */
export function rawSettings(values: SettingValues): RawSettings {
  const str = (k: keyof RawSettings) => {
    const v = values[k];
    return typeof v === 'string' ? v : (DEFAULT_SETTINGS[k] as string);
  };
  const num = (k: keyof RawSettings) => {
    const v = values[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : (DEFAULT_SETTINGS[k] as number);
  };
  const list = (k: keyof RawSettings) => {
    const v = values[k];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : (DEFAULT_SETTINGS[k] as string[]);
  };
  const n = values.notifications;
  return {
    remote: str('remote'),
    encryptKeys: list('encryptKeys'),
    restoreKey: str('restoreKey'),
    signKey: str('signKey'),
    schedule: num('schedule'),
    staleAfter: num('staleAfter'),
    drillEvery: num('drillEvery'),
    exclude: list('exclude'),
    useGitignore: typeof values.useGitignore === 'boolean' ? values.useGitignore : DEFAULT_SETTINGS.useGitignore,
    volumeSize: num('volumeSize'),
    fullIfOlderThan: str('fullIfOlderThan'),
    keepFull: num('keepFull'),
    notifications: n === 'all' || n === 'failures' || n === 'off' ? n : DEFAULT_SETTINGS.notifications,
    sshKey: str('sshKey'),
    s3EndpointUrl: str('s3EndpointUrl'),
    s3Profile: str('s3Profile'),
  };
}

/** A setting whose value Offsite cannot use, in words that name it and say what it takes. */
export interface SettingProblem {
  /** The key without "offsite." (as in RawSettings). */
  readonly setting: keyof RawSettings;
  readonly message: string;
  /** A backup cannot honour it (it would otherwise go on with another value than the one set). */
  readonly blocksBackup: boolean;
}

/**
 * What is wrong with the offsite.* values as VS Code returns them, of any type (settings.json is edited
 * by hand, and VS Code only underlines a value its schema refuses): each problem names the setting,
 * the value and what it takes. A value left out (undefined) is the default, never a problem.
 */
export function settingProblems(values: SettingValues, now = Date.now() / 1000): SettingProblem[] {
  const out: SettingProblem[] = [];
  const bad = (setting: keyof RawSettings, takes: string, blocksBackup: boolean) =>
    out.push({ setting, message: `offsite.${setting} is ${JSON.stringify(values[setting])}: it must be ${takes}`, blocksBackup });
  const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const number = (setting: keyof RawSettings, ok: (n: number) => boolean, takes: string, blocksBackup: boolean) => {
    const v = values[setting];
    if (v !== undefined && !(isNumber(v) && ok(v))) bad(setting, takes, blocksBackup);
  };
  const remote = values.remote;
  if (remote !== undefined && (typeof remote !== 'string' || (remote.trim() !== '' && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(remote.trim())))) {
    bad('remote', 'a URL such as file:///mnt/backup, sftp://user@host/backups, s3://bucket/prefix or rclone://remote:path', true);
  }
  number('schedule', (n) => n >= 0, 'a number of minutes between automatic backups (0 = off); until it is, none run', false);
  number('staleAfter', (n) => n >= 0, 'a number of hours (0 = never warn)', false);
  number('drillEvery', (n) => n >= 0, 'a number of days (0 = never remind)', false);
  number('volumeSize', (n) => n >= 1 && n <= 4096, 'the size of a volume in MB, from 1 to 4096', true);
  number('keepFull', (n) => n >= 0 && Number.isInteger(n), 'a whole number of full backups to keep (0 = keep all)', true);
  const full = values.fullIfOlderThan;
  if (full !== undefined) {
    let ok = typeof full === 'string';
    if (ok && (full as string).trim()) {
      try {
        ok = parseTimeSpec((full as string).trim(), Math.floor(now)) <= now;
      } catch {
        ok = false;
      }
    }
    if (!ok) bad('fullIfOlderThan', 'an age as duplicity writes it, e.g. 30D (days), 2W (weeks), 6M (months) or 1Y, or empty', true);
  }
  const notifications = values.notifications;
  if (notifications !== undefined && !['all', 'failures', 'off'].includes(notifications as string)) bad('notifications', '"all", "failures" or "off"', false);
  return out;
}

export interface FolderRef {
  readonly name: string;
  readonly fsPath: string;
}

export interface FolderConfig {
  readonly folder: FolderRef;
  /** The folder's own remote: <offsite.remote>/<folder name>; '' when offsite.remote is not set. */
  readonly url: string;
  readonly remote: RemoteConfig;
  /** Keys without the passphrase (that comes from SecretStorage when the engine asks). */
  readonly keys: KeySpec;
  readonly selection: Selection;
  readonly volumeSizeMB: number;
  readonly fullIfOlderThan?: string;
  readonly keepFull?: number;
  readonly settings: RawSettings;
  /** Values of settings Offsite cannot use (settingProblems); the settings above have their defaults instead. */
  readonly problems?: readonly SettingProblem[];
  /** Remote and at least one encryption key: enough to back up. */
  readonly configured: boolean;
}

/**
 * `<root>/<folder name>`: one user-level root serves every workspace, each folder in its own chain.
 * The name is percent-encoded (a URL path segment); a query (?…) stays at the end.
 */
export function folderRemoteUrl(root: string, folderName: string): string {
  const r = root.trim();
  if (!r) return '';
  const q = r.search(/[?#]/);
  const base = q < 0 ? r : r.slice(0, q);
  const rest = q < 0 ? '' : r.slice(q);
  // Only one trailing '/' goes: in sftp://host// the second '/' means "absolute path".
  const trimmed = base.endsWith('/') ? base.slice(0, -1) : base;
  return `${trimmed}/${encodeURIComponent(folderName)}${rest}`;
}

/**
 * The remote URL as a command line for cron may carry it (a crontab is a plain file, often shown and
 * copied around): the password of user:password@ left out, as the CLI takes it from
 * OFFSITE_SSH_PASSWORD; the other secret values (an rclone connection string's, a query's) as ***, to
 * be given another way. Says which were taken out.
 */
export function cronUrl(url: string): { url: string; password: boolean; secrets: boolean } {
  const noPassword = withoutPassword(url);
  const clean = redactSecretValues(noPassword);
  return { url: clean, password: noPassword !== url, secrets: clean !== noPassword };
}

export function isSshUrl(url: string): boolean {
  return /^(sftp|ssh|scp):\/\//i.test(url);
}

/** `user@host:port` of an sftp:// URL (the key under which its password is remembered). */
export function sshTargetOf(url: string): string | undefined {
  if (!isSshUrl(url)) return undefined;
  try {
    const u = new URL(url.replace(/^[a-z]+:/i, 'ssh:'));
    return `${decodeURIComponent(u.username) || os.userInfo().username}@${u.hostname}${u.port ? `:${u.port}` : ''}`;
  } catch {
    return undefined;
  }
}

/** A key file given relative to the folder (or with ~ or ${workspaceFolder}) as an absolute path; key ids, fingerprints and emails unchanged. */
export function resolveKeySpec(spec: string, folderPath: string, home = os.homedir()): string {
  const s = spec.trim().replace(/\$\{workspaceFolder\}/g, folderPath);
  if (s.startsWith('~/') || s === '~') return path.join(home, s.slice(1));
  if (path.isAbsolute(s)) return s;
  const looksLikeFile = s.includes('/') || s.includes(path.sep) || /\.(asc|gpg|pgp|key|pub)$/i.test(s);
  return looksLikeFile ? path.resolve(folderPath, s) : s;
}

function resolvePath(p: string, folderPath: string, home: string): string | undefined {
  return p.trim() ? resolveKeySpec(p, folderPath, home) : undefined;
}

export function resolveFolderConfig(raw: RawSettings, folder: FolderRef, home = os.homedir()): FolderConfig {
  const url = folderRemoteUrl(raw.remote, folder.name);
  const encryptKeys = raw.encryptKeys.map((k) => k.trim()).filter(Boolean).map((k) => resolveKeySpec(k, folder.fsPath, home));
  const remote: RemoteConfig = {
    url,
    sshKey: resolvePath(raw.sshKey, folder.fsPath, home),
    s3EndpointUrl: raw.s3EndpointUrl.trim() || undefined,
    s3Profile: raw.s3Profile.trim() || undefined,
  };
  const keys: KeySpec = {
    encryptKeys,
    restoreKey: resolvePath(raw.restoreKey, folder.fsPath, home),
    signKey: resolvePath(raw.signKey, folder.fsPath, home),
  };
  return {
    folder,
    url,
    remote,
    keys,
    selection: { excludes: raw.exclude.filter((g) => g.trim()), gitignore: raw.useGitignore },
    volumeSizeMB: raw.volumeSize > 0 ? raw.volumeSize : DEFAULT_SETTINGS.volumeSize,
    fullIfOlderThan: raw.fullIfOlderThan.trim() || undefined,
    keepFull: raw.keepFull > 0 ? Math.floor(raw.keepFull) : undefined,
    settings: raw,
    configured: url !== '' && encryptKeys.length > 0,
  };
}

/**
 * A file's path relative to its workspace folder, '/'-separated as the engine names paths; undefined
 * for the folder itself and for a path outside it (a name that merely starts with "..", as "..data",
 * is inside).
 */
export function workspaceRelative(folderPath: string, filePath: string): string | undefined {
  const rel = path.relative(folderPath, filePath);
  if (!rel || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return undefined;
  return rel.split(path.sep).join('/');
}

/** Which private key a request may need the passphrase of (the id its passphrase is remembered under). */
export function passphraseIdFor(cfg: FolderConfig, op: string): string {
  const k = cfg.keys;
  if (op === 'backup' && k.signKey) return k.signKey;
  return k.restoreKey || k.signKey || (k.encryptKeys ?? []).join(',');
}

/** Quotes one word for a POSIX shell (sh, bash, cron). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** How cron runs offsite: at the priority the extension's engine runs at. */
const CRON_PREFIX = ['nice', '-n', String(BACKGROUND_NICE)];

/**
 * The offsite command for cron, whose PATH is /usr/bin:/bin: the full path of the one on this PATH
 * when it is elsewhere (/usr/local/bin with Debian's npm, nvm's folder; its Node is then found beside
 * it), else the name. `file`: the offsite found on the PATH (offsiteOnPath).
 */
export function offsiteForCron(file: string | undefined): string {
  return file === undefined || file === '/usr/bin/offsite' || file === '/bin/offsite' ? 'offsite' : file;
}

/** The first executable `offsite` in the absolute folders of `searchPath`, or undefined (not installed here). */
export function offsiteOnPath(searchPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const file = path.join(dir, 'offsite');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      continue;
    }
  }
  return undefined;
}

/**
 * The `offsite backup` command line that writes the same chain the same way as the extension: same
 * folder, URL, keys, selection, volume size and full-backup policy, as background work (nice 10).
 * Secrets are never in it: the CLI asks for passphrases or reads OFFSITE_PASSPHRASE, and a password
 * or secret in offsite.remote is taken out of the URL (cronUrl). With keepFull, a retention command
 * follows. Quiet when all is well: cron mails any output, so the results (stdout: the statistics, what
 * retention kept) go to /dev/null and only warnings and errors (stderr) reach the user.
 */
export function cronCommand(c: FolderConfig, command = 'offsite'): string {
  const url = cronUrl(c.url).url;
  // The command and its global options (before the subcommand), the same for both commands.
  const offsite = [...CRON_PREFIX, command];
  if (c.remote.sshKey) offsite.push('--ssh-key', c.remote.sshKey);
  if (c.remote.s3EndpointUrl) offsite.push('--s3-endpoint-url', c.remote.s3EndpointUrl);
  if (c.remote.s3Profile) offsite.push('--s3-profile', c.remote.s3Profile);
  const args = [...offsite, 'backup'];
  for (const k of c.keys.encryptKeys ?? []) args.push('--encrypt-key', k);
  if (c.keys.signKey) args.push('--sign-key', c.keys.signKey);
  if (c.volumeSizeMB !== DEFAULT_SETTINGS.volumeSize) args.push('--volsize', String(c.volumeSizeMB));
  if (c.fullIfOlderThan) args.push('--full-if-older-than', c.fullIfOlderThan);
  for (const g of c.selection.excludes ?? []) args.push('--exclude', g);
  if (c.selection.gitignore) args.push('--gitignore');
  args.push(c.folder.fsPath, url);
  let line = `${args.map(shellQuote).join(' ')} >/dev/null`;
  if (c.keepFull) {
    line += ` && ${[...offsite, 'remove-all-but-n-full', String(c.keepFull), '--force', url].map(shellQuote).join(' ')} >/dev/null`;
  }
  return line;
}

/**
 * A crontab line for the schedule (every N minutes, N ≥ 1), or the plain command when it is off (for
 * a crontab too: the user adds the times). Cron ends the command at a `%` and turns the rest into
 * its input, so each `%` (a folder name's, a URL's %20) is written `\%`, which cron reads as `%`.
 */
export function crontabLine(c: FolderConfig, command = 'offsite'): string {
  const m = Math.floor(c.settings.schedule);
  const cmd = cronCommand(c, command).replace(/%/g, '\\%');
  if (m <= 0) return cmd;
  let when: string;
  if (m < 60 && 60 % m === 0) when = `*/${m} * * * *`;
  else if (m % 60 === 0 && m < 1440 && 24 % (m / 60) === 0) when = `0 */${m / 60} * * *`;
  else if (m >= 1440) when = '0 3 * * *';
  else when = '0 * * * *';
  return `${when} ${cmd}`;
}
