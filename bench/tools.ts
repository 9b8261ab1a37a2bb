// The three backup programs as the benchmark drives them: the command line of each operation, with
// every program's defaults (duplicity's 200 MB volumes, restic's default compression, Offsite's
// defaults). Each program gets private state: its own cache folder per remote, a private GNUPGHOME
// (duplicity), a private HOME (so nothing reads or writes the real ~/.ssh, ~/.cache or ~/.gnupg).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, type Cmd } from './measure';

export type ToolName = 'offsite' | 'duplicity' | 'restic';
export const TOOLS: readonly ToolName[] = ['offsite', 'duplicity', 'restic'];

const KEYS = path.join(__dirname, 'keys');
export const PUBLIC_KEY = path.join(KEYS, 'rsa-pub.asc');
export const SECRET_KEY = path.join(KEYS, 'rsa-sec.asc');
/** The encryption subkey of the throwaway RSA key (duplicity's --encrypt-key). */
const KEY_ID = 'E58B2D7FA184113F';
const RESTIC_PASSWORD = 'offsite-bench (throwaway)';

export interface SshTarget {
  readonly port: number;
  readonly user: string;
  readonly keyFile: string;
  readonly knownHosts: string;
}

/** One remote of one tool: a local folder, reached by file:// or through the loopback sshd. */
export interface Remote {
  readonly tool: ToolName;
  /** The stored files live here (also for sftp://: the sshd serves this folder). */
  readonly dir: string;
  /** The tool's local cache for this remote. */
  readonly cache: string;
  readonly ssh?: SshTarget;
}

/** Which backup set to read: the latest, or the one covering a time / a restic snapshot id. */
export type SetRef = { readonly kind: 'latest' } | { readonly kind: 'at'; readonly time: number; readonly resticId: string };

export interface Env {
  readonly repoRoot: string;
  readonly home: string;
  readonly gnupgHome: string;
  /** Offsite's --volsize (the volume-size sweep); default: Offsite's own default. */
  readonly volsizeMB?: number;
}

export interface Tool {
  readonly name: ToolName;
  /** Creates the (empty) remote; not measured. */
  init(r: Remote): Promise<void>;
  backup(r: Remote, src: string, full: boolean): Cmd;
  /** Restores one file; returns where it lands. */
  restoreFile(r: Remote, src: string, rel: string, at: SetRef, target: string): { cmd: Cmd; output: string };
  /** Restores everything (latest); returns the folder that then mirrors `src`. */
  restoreAll(r: Remote, src: string, target: string): { cmd: Cmd; output: string };
  /** Reads back and checks all data of the latest backup. */
  verify(r: Remote, src: string): Cmd;
  /** After a backup: the id of the set it made (restic), parsed from its stdout. */
  setId(stdout: string): string;
}

function baseEnv(e: Env): Record<string, string> {
  // SSH_AUTH_SOCK: no agent, only the key we pass. TZ: duplicity's time strings.
  return { HOME: e.home, GNUPGHOME: e.gnupgHome, SSH_AUTH_SOCK: '', TZ: 'UTC', LC_ALL: 'C.UTF-8' };
}

export function offsite(e: Env): Tool {
  const bin = path.join(e.repoRoot, 'bin', 'offsite');
  const env = baseEnv(e);
  const url = (r: Remote) => (r.ssh ? `sftp://${r.ssh.user}@127.0.0.1:${r.ssh.port}/${r.dir}` : `file://${r.dir}`);
  const globals = (r: Remote) => ['--archive-dir', r.cache, ...(r.ssh ? ['--ssh-key', r.ssh.keyFile, '--known-hosts', r.ssh.knownHosts] : [])];
  // Run as users run it (its shebang sets Node's memory flags), not as `node bin/offsite`.
  const node = (r: Remote, args: string[]): Cmd => ({ argv: [bin, ...globals(r), ...args], env });
  return {
    name: 'offsite',
    async init() {},
    backup: (r, src, full) => node(r, ['backup', ...(full ? ['--full'] : []), ...(e.volsizeMB ? ['--volsize', String(e.volsizeMB)] : []), '--encrypt-key', PUBLIC_KEY, src, url(r)]),
    restoreFile: (r, _src, rel, at, target) => ({
      cmd: node(r, ['restore', '--key', SECRET_KEY, '--path', rel, ...(at.kind === 'at' ? ['--time', String(at.time)] : []), url(r), target]),
      output: path.join(target, rel),
    }),
    restoreAll: (r, _src, target) => ({ cmd: node(r, ['restore', '--key', SECRET_KEY, url(r), target]), output: target }),
    verify: (r, src) => node(r, ['verify', '--compare-data', '--key', SECRET_KEY, url(r), src]),
    setId: () => '',
  };
}

export function duplicity(e: Env): Tool {
  const env = { ...baseEnv(e), PASSPHRASE: '' };
  const url = (r: Remote) => (r.ssh ? `sftp://${r.ssh.user}@127.0.0.1:${r.ssh.port}/${r.dir}` : `file://${r.dir}`);
  const common = (r: Remote) => [
    '--archive-dir', r.cache, '--name', 'bench',
    ...(r.ssh ? [`--ssh-options=-oIdentityFile=${r.ssh.keyFile} -oUserKnownHostsFile=${r.ssh.knownHosts}`] : []),
  ];
  const dup = (r: Remote, args: string[]): Cmd => ({ argv: ['duplicity', ...args.slice(0, 1), ...common(r), ...args.slice(1)], env });
  return {
    name: 'duplicity',
    async init() {},
    backup: (r, src, full) => dup(r, [full ? 'full' : 'incremental', '--encrypt-key', KEY_ID, src, url(r)]),
    restoreFile: (r, _src, rel, at, target) => {
      const out = path.join(target, rel);
      fs.mkdirSync(path.dirname(out), { recursive: true });
      return { cmd: dup(r, ['restore', '--file-to-restore', rel, ...(at.kind === 'at' ? ['--time', String(at.time)] : []), url(r), out]), output: out };
    },
    restoreAll: (r, _src, target) => ({ cmd: dup(r, ['restore', url(r), target]), output: target }),
    verify: (r, src) => dup(r, ['verify', '--compare-data', url(r), src]),
    setId: () => '',
  };
}

export function restic(e: Env): Tool {
  const env = { ...baseEnv(e), RESTIC_PASSWORD };
  const repo = (r: Remote) => (r.ssh ? ['-r', `sftp:${r.ssh.user}@127.0.0.1:${r.dir}`, '-o', `sftp.command=ssh -i ${r.ssh.keyFile} -p ${r.ssh.port} -o UserKnownHostsFile=${r.ssh.knownHosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes ${r.ssh.user}@127.0.0.1 -s sftp`] : ['-r', r.dir]);
  const cmd = (r: Remote, args: string[]): Cmd => ({ argv: ['restic', ...repo(r), '--cache-dir', r.cache, '--no-lock', ...args], env });
  const locked = (r: Remote, args: string[]): Cmd => ({ argv: ['restic', ...repo(r), '--cache-dir', r.cache, ...args], env });
  return {
    name: 'restic',
    async init(r) {
      const c = locked(r, ['init']);
      await run(c);
    },
    backup: (r, src) => locked(r, ['backup', src]),
    // restic stores absolute paths: the file lands at target/<abs src>/<rel>.
    restoreFile: (r, src, rel, at, target) => ({
      cmd: cmd(r, ['restore', at.kind === 'at' ? at.resticId : 'latest', '--target', target, '--include', path.join(src, rel)]),
      output: path.join(target, src, rel),
    }),
    restoreAll: (r, src, target) => ({ cmd: cmd(r, ['restore', 'latest', '--target', target]), output: path.join(target, src) }),
    verify: (r) => locked(r, ['check', '--read-data']),
    setId: (stdout) => /snapshot ([0-9a-f]{8,}) saved/.exec(stdout)?.[1] ?? '',
  };
}
