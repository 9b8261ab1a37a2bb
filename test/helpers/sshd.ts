// A real OpenSSH server for tests: `/usr/sbin/sshd -D -f <generated config>` on 127.0.0.1 and a free
// port, with host keys, a user key and authorized_keys generated in a private temp folder. Runs as the
// current user (root in CI). Also: throwaway local users (password auth, permission tests) and a
// private ssh-agent. Everything started here is stopped by the returned handles, by pid.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './tmp';

const run = promisify(execFile);

export interface SshdOptions {
  /** Allow password authentication (users need a real password: see createTestUser). */
  readonly passwordAuth?: boolean;
  /** Host key types to generate and serve (default ed25519). */
  readonly hostKeyTypes?: readonly ('ed25519' | 'ecdsa' | 'rsa')[];
  /** Reuse host keys from an earlier server (to restart "the same host"), or a fresh set. */
  readonly hostKeyDir?: string;
  readonly port?: number;
  /** Serve the sftp subsystem (default true); false is a server with SSH logins but no SFTP. */
  readonly sftpSubsystem?: boolean;
}

export interface UserKey {
  /** Private key file (OpenSSH format). */
  readonly file: string;
  /** The `ssh-ed25519 AAAA… comment` line. */
  readonly publicLine: string;
}

export interface Sshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  readonly hostKeyDir: string;
  /** The key authorized for the current user (and every user with keys in `authorizedKeysFile`). */
  readonly userKey: UserKey;
  readonly user: string;
  readonly logFile: string;
  /** `[127.0.0.1]:port type base64` lines, one per host key, for a known_hosts file. */
  knownHostsLines(hostPattern?: string): string[];
  /** SHA256:… fingerprints of the host keys, by type ('ssh-ed25519', …). */
  readonly fingerprints: ReadonlyMap<string, string>;
  /** Kills the session processes sshd forked (every client's connection drops); the listener stays. */
  killSessions(): number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function makeUserKey(dir: string, name = 'id_ed25519', passphrase = ''): Promise<UserKey> {
  const file = path.join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', `offsite-test-${name}`, '-f', file]);
  return { file, publicLine: fs.readFileSync(`${file}.pub`, 'utf8').trim() };
}

async function fingerprintOf(pubFile: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile]);
  return stdout.split(' ')[1];
}

export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const dir = tempDir('offsite-sshd-');
  // sshd running as root insists on its privilege separation folder.
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeyDir = options.hostKeyDir ?? path.join(dir, 'hostkeys');
  const types = options.hostKeyTypes ?? ['ed25519'];
  fs.mkdirSync(hostKeyDir, { recursive: true, mode: 0o700 });
  for (const t of types) {
    const f = path.join(hostKeyDir, `ssh_host_${t}_key`);
    if (!fs.existsSync(f)) await run('ssh-keygen', ['-q', '-t', t, '-N', '', '-f', f]);
  }
  const userKey = await makeUserKey(dir);
  const authorizedKeys = path.join(dir, 'authorized_keys');
  fs.writeFileSync(authorizedKeys, `${userKey.publicLine}\n`, { mode: 0o600 });
  const logFile = path.join(dir, 'sshd.log');
  const config = path.join(dir, 'sshd_config');
  const hostKeyLines = types.map((t) => `HostKey ${path.join(hostKeyDir, `ssh_host_${t}_key`)}`);

  const fingerprints = new Map<string, string>();
  const pubLines: string[] = [];
  for (const t of types) {
    const pub = path.join(hostKeyDir, `ssh_host_${t}_key.pub`);
    const [type, b64] = fs.readFileSync(pub, 'utf8').trim().split(/\s+/);
    pubLines.push(`${type} ${b64}`);
    fingerprints.set(type, await fingerprintOf(pub));
  }

  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort());
    fs.writeFileSync(
      config,
      [
        `ListenAddress 127.0.0.1:${port}`,
        ...hostKeyLines,
        'PidFile none',
        'StrictModes no',
        'UsePAM no',
        'PermitRootLogin yes',
        'PubkeyAuthentication yes',
        `PasswordAuthentication ${options.passwordAuth ? 'yes' : 'no'}`,
        'KbdInteractiveAuthentication no',
        // The generated file for the current user, the usual one for throwaway users.
        `AuthorizedKeysFile ${authorizedKeys} .ssh/authorized_keys`,
        ...(options.sftpSubsystem === false ? [] : ['Subsystem sftp /usr/lib/openssh/sftp-server']),
        'LogLevel VERBOSE',
        'MaxStartups 100',
        'MaxSessions 100',
        'UseDNS no',
        // Sessions whose client vanished (a stalled proxy) end by themselves.
        'ClientAliveInterval 5',
        'ClientAliveCountMax 2',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', fs.openSync(logFile, 'a', 0o600)] });
    const ready = await waitListening(port, proc);
    if (!ready) {
      if (attempt < 5 && options.port === undefined) continue; // the free port was taken meanwhile
      throw new Error(`sshd did not start: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    const user = (await run('id', ['-un'])).stdout.trim();
    return {
      host: '127.0.0.1',
      port,
      dir,
      hostKeyDir,
      userKey,
      user,
      logFile,
      fingerprints,
      knownHostsLines: (hostPattern = `[127.0.0.1]:${port}`) => pubLines.map((l) => `${hostPattern} ${l}`),
      killSessions: () => {
        const pids = proc.pid === undefined ? [] : childrenOf(proc.pid);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        return pids.length;
      },
      stop: () => stopProcess(proc),
    };
  }
}

async function waitListening(port: number, proc: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString('latin1').startsWith('SSH-'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stopProcess(proc);
  return false;
}

/** The pids of a process's children (sshd's per-connection sessions), read from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command name: state, ppid, …
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Stops a process we started, and for sshd also the sessions it forked: a listener's SIGTERM leaves
 * them running (as with the real service) while a client still holds its connection.
 */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const sessions = childrenOf(proc.pid);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  for (const pid of sessions) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export interface TestUser {
  readonly name: string;
  readonly password: string;
  readonly home: string;
  readonly uid: number;
  readonly gid: number;
  /** Authorizes a public key line for this user (~/.ssh/authorized_keys, owned by the user). */
  authorize(publicLine: string): void;
  remove(): Promise<void>;
}

/** A throwaway local account with a random password (needs root). Remove it with remove(). */
export async function createTestUser(): Promise<TestUser> {
  if (process.getuid?.() !== 0) throw new Error('creating a throwaway user needs root (CI runs the tests as root)');
  const name = `offsite-t${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('base64url');
  await run('useradd', ['-m', '-s', '/bin/sh', name]);
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('chpasswd', [], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`chpasswd failed: ${err}`))));
      p.stdin.end(`${name}:${password}\n`);
    });
  } catch (e) {
    await run('userdel', ['-r', name]).catch(() => undefined);
    throw e;
  }
  const uid = Number((await run('id', ['-u', name])).stdout.trim());
  const gid = Number((await run('id', ['-g', name])).stdout.trim());
  const home = (await run('getent', ['passwd', name])).stdout.split(':')[5];
  return {
    name,
    password,
    home,
    uid,
    gid,
    authorize(publicLine: string) {
      const sshDir = path.join(home, '.ssh');
      fs.mkdirSync(sshDir, { recursive: true, mode: 0o700 });
      const f = path.join(sshDir, 'authorized_keys');
      fs.appendFileSync(f, `${publicLine}\n`, { mode: 0o600 });
      fs.chownSync(sshDir, uid, gid);
      fs.chownSync(f, uid, gid);
    },
    async remove() {
      // userdel refuses while the user has processes (an sftp-server still exiting): retry briefly.
      for (let i = 0; ; i++) {
        try {
          await run('userdel', ['-r', name]);
          return;
        } catch (e) {
          if (i >= 20) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

export interface Agent {
  readonly socket: string;
  add(keyFile: string): Promise<void>;
  stop(): Promise<void>;
}

/** A private ssh-agent on a socket in a temp folder, stopped by pid. */
export async function startAgent(): Promise<Agent> {
  const dir = tempDir('offsite-agent-');
  const socket = path.join(dir, 'agent.sock');
  const proc = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  const deadline = Date.now() + 5000;
  while (!fs.existsSync(socket)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('ssh-agent did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    socket,
    async add(keyFile: string) {
      await run('ssh-add', ['-q', keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    },
    stop: () => stopProcess(proc),
  };
}
