// Where an sftp:// URL points: duplicity's URL convention plus the user's ~/.ssh/config, resolved the
// way OpenSSH would (the URL wins over the config, the config over the defaults).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import SSHConfig from 'ssh-config';
import { OffsiteError } from '../../errors';
import { canonicalScheme } from '../schemes';

export interface SftpUrl {
  /** The host as written in the URL: a Host alias of ~/.ssh/config or a real name/address. */
  readonly host: string;
  readonly user?: string;
  readonly password?: string;
  readonly port?: number;
  /**
   * The remote folder: relative to the login folder (`sftp://host/rel/path`) or absolute
   * (`sftp://host//abs/path`), as in duplicity. '.' for the login folder itself.
   */
  readonly path: string;
}

/** Parses `sftp://[user[:password]@]host[:port]/relative/path` or `…//absolute/path` (or an alias's). */
export function parseSftpUrl(url: URL): SftpUrl {
  const scheme = url.protocol.replace(/:$/, '');
  // duplicity's other names of its SSH remote (scp://, paramiko+sftp://, …: schemes.ts) are sftp:// too.
  if (canonicalScheme(scheme) !== 'sftp') throw usage(url, `not an sftp:// URL`);
  const decode = (s: string, what: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw usage(url, `its ${what} has a bad %-escape (write a % itself as %25)`);
    }
  };
  // WHATWG keeps IPv6 literals in brackets; ssh wants them bare.
  const host = decode(url.hostname, 'host').replace(/^\[(.*)\]$/, '$1');
  if (!host) throw usage(url, 'the URL has no host');
  if (url.search || url.hash) throw usage(url, 'sftp:// URLs take no "?" or "#" part');
  if (url.port === '0') throw usage(url, 'port 0 is no port (use 1 to 65535, or none for 22)');
  let rest = decode(url.pathname, 'path');
  let remotePath: string;
  if (rest.startsWith('//')) {
    remotePath = '/' + rest.replace(/^\/+/, '');
  } else {
    rest = rest.replace(/^\//, '');
    remotePath = rest === '' ? '.' : rest;
  }
  remotePath = remotePath.length > 1 ? remotePath.replace(/\/+$/, '') : remotePath;
  return {
    host,
    user: url.username ? decode(url.username, 'user name') : undefined,
    password: url.password ? decode(url.password, 'password') : undefined,
    port: url.port ? Number(url.port) : undefined,
    path: remotePath || '/',
  };
}

function usage(url: URL, what: string): OffsiteError {
  return new OffsiteError('usage', `Bad remote URL ${url.protocol}//${url.host}${url.pathname}: ${what}`, {
    hint: 'Write it as sftp://user@host/relative/path or sftp://user@host//absolute/path',
  });
}

/** The URL for messages: no password, and the path as the user wrote it. */
export function sftpDisplayUrl(u: SftpUrl): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  const user = u.user ? `${encodeURIComponent(u.user)}@` : '';
  const port = u.port ? `:${u.port}` : '';
  // An absolute path shows as //abs/path, duplicity's way.
  return `sftp://${user}${host}${port}/${u.path === '.' ? '' : u.path}`;
}

export interface SshTarget {
  /** What we connect to (HostName from the config, else the URL's host). */
  readonly hostName: string;
  readonly port: number;
  readonly user: string;
  /** Identity files named by the config (IdentityFile), tilde and %-tokens expanded, in order. */
  readonly identityFiles: readonly string[];
  /** UserKnownHostsFile from the config, expanded; undefined when not set. */
  readonly userKnownHostsFiles?: readonly string[];
  /** `IdentitiesOnly yes`: do not offer the agent's other keys. */
  readonly identitiesOnly: boolean;
  /** `HashKnownHosts yes` (the user's config, else the system-wide one): record accepted keys hashed. */
  readonly hashKnownHosts: boolean;
  /** HostKeyAlias: the name known_hosts has the host's key under (instead of host or [host]:port). */
  readonly hostKeyAlias?: string;
}

export interface ResolveOptions {
  /** The ssh config file to read (default ~/.ssh/config); missing is fine. */
  readonly configFile?: string;
  /**
   * The system-wide ssh config (default /etc/ssh/ssh_config), read for HashKnownHosts only (Debian and
   * Ubuntu set it there); missing is fine.
   */
  readonly systemConfigFile?: string;
  /** The home folder for `~` (default os.homedir()). */
  readonly home: string;
  /** The local user name, default user and %u (default os.userInfo().username). */
  readonly localUser: string;
}

/**
 * Applies ~/.ssh/config to a URL: HostName, Port, User, IdentityFile, IdentitiesOnly,
 * UserKnownHostsFile, HashKnownHosts and HostKeyAlias of the matching Host/Match sections. `Match exec` sections are
 * not evaluated (a backup engine should not run commands from a config file), and Include is followed
 * one level deep. A host reached through ProxyJump or ProxyCommand is refused: connecting to it
 * directly is not what the config asks for.
 */
export function resolveSshTarget(u: SftpUrl, opts: ResolveOptions): SshTarget {
  const configFile = opts.configFile ?? path.join(opts.home, '.ssh', 'config');
  const computed = computeConfig(configFile, path.join(opts.home, '.ssh'), u.host, opts.home);
  for (const option of ['ProxyJump', 'ProxyCommand']) {
    const v = computed[option.toLowerCase()];
    const value = Array.isArray(v) ? v.join(' ') : v;
    if (value !== undefined && value.toLowerCase() !== 'none') {
      throw new OffsiteError('config', `The ssh config ${configFile} reaches ${u.host} through ${option} ${value}: Offsite cannot go that way, and does not connect directly instead`, {
        file: configFile,
        hint: `Make the server reachable directly (with '${option} none' for this host), or forward a port first (ssh -N -L 2222:HOST:22 JUMPHOST) and use sftp://USER@localhost:2222/...`,
      });
    }
  }
  const one = (k: string): string | undefined => {
    const v = computed[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const many = (k: string): string[] => {
    const v = computed[k];
    if (v === undefined) return [];
    return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(/\s+/)).filter((s) => s && s.toLowerCase() !== 'none');
  };
  const hostName = expandTokens(one('hostname') ?? u.host, { h: u.host }, opts).replace(/^\[(.*)\]$/, '$1');
  const port = u.port ?? (one('port') ? Number(one('port')) : 22);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new OffsiteError('config', `Bad Port ${one('port')} for ${u.host} in ${configFile}`, { hint: 'Use a port number from 1 to 65535' });
  }
  const user = u.user ?? one('user') ?? opts.localUser;
  const tokens = { h: hostName, p: String(port), r: user, n: u.host };
  const identityFiles = many('identityfile').map((f) => expandTokens(f, tokens, opts));
  const known = many('userknownhostsfile').map((f) => expandTokens(f, tokens, opts));
  // OpenSSH takes each option's first value: the user's config, then the system-wide one.
  const hash = one('hashknownhosts') ?? systemOption(opts.systemConfigFile ?? '/etc/ssh/ssh_config', u.host, opts.home, 'hashknownhosts');
  // Taken as written, as OpenSSH does (no %-tokens).
  const alias = one('hostkeyalias');
  return {
    hostName,
    port,
    user,
    identityFiles,
    userKnownHostsFiles: known.length ? known : undefined,
    identitiesOnly: (one('identitiesonly') ?? '').toLowerCase() === 'yes',
    hashKnownHosts: (hash ?? '').toLowerCase() === 'yes',
    ...(alias !== undefined ? { hostKeyAlias: alias } : {}),
  };
}

/** An option of the system-wide config; one it cannot read or parse (ssh would) just sets nothing. */
function systemOption(file: string, host: string, home: string, option: string): string | undefined {
  try {
    const v = computeConfig(file, path.dirname(file), host, home)[option];
    return Array.isArray(v) ? v[0] : v;
  } catch {
    return undefined;
  }
}

/** The options of an ssh config file for a host (lower-case names); {} when the file is missing. */
function computeConfig(configFile: string, includeBase: string, host: string, home: string): Record<string, string | string[]> {
  const text = readConfig(configFile, home, includeBase);
  if (text === undefined) return {};
  try {
    return SSHConfig.parse(text).compute(host, { ignoreCase: true, matchExec: false });
  } catch (e) {
    throw new OffsiteError('config', `Cannot read the ssh config ${configFile}: ${(e as Error).message}`, {
      cause: e,
      file: configFile,
      hint: 'Fix the syntax of that file, or point Offsite at another one',
    });
  }
}

/** A config file's text with its Include lines inlined (relative names are under `includeBase`). */
function readConfig(file: string, home: string, includeBase: string, depth = 0): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OffsiteError('config', `Cannot read the ssh config ${file}: ${(e as Error).message}`, { cause: e, file });
  }
  if (depth > 0) return text;
  // ssh-config does not follow Include: inline the included files (relative names are under ~/.ssh,
  // or /etc/ssh for the system-wide file).
  return text.replace(/^[ \t]*include[ \t]+(.+)$/gim, (_m, spec: string) =>
    spec
      .trim()
      .split(/\s+/)
      .flatMap((pattern) => globFiles(pattern.replace(/^~(?=\/)/, home), includeBase))
      .map((f) => readConfig(f, home, includeBase, depth + 1) ?? '')
      .join('\n'),
  );
}

/** Expands a glob whose wildcards are in the last component only (what people write after Include). */
function globFiles(pattern: string, base: string): string[] {
  const abs = path.isAbsolute(pattern) ? pattern : path.join(base, pattern);
  const dir = path.dirname(abs);
  const leaf = path.basename(abs);
  if (!/[*?]/.test(leaf)) return [abs];
  const re = new RegExp(`^${leaf.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => re.test(n))
      .sort()
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/** `~`, `%d` (home), `%u` (local user), `%h`, `%p`, `%r`, `%n`, `%%` as in ssh_config(5) TOKENS. */
export function expandTokens(s: string, t: Readonly<Record<string, string>>, opts: { home: string; localUser: string }): string {
  const out = s.replace(/^~(?=\/|$)/, opts.home).replace(/%([%dhpruLln])/g, (m, k: string) => {
    switch (k) {
      case '%':
        return '%';
      case 'd':
        return opts.home;
      case 'u':
        return opts.localUser;
      case 'L':
      case 'l':
        return os.hostname().split('.')[0];
      default:
        return t[k] ?? m;
    }
  });
  return out;
}
