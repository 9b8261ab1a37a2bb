// Shared set-up of the sftp tests: one real sshd per test file, a private "home" (known_hosts, keys,
// ssh config) so nothing reads or writes the real ~/.ssh, and fresh remote folders.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../../../../src/engine/backend/backend';
import { type BackendContext } from '../../../../src/engine/backend/registry';
import { createSftpBackend, type SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { startSshd, type Sshd, type SshdOptions } from '../../../helpers/sshd';
import { tempDir } from '../../../helpers/tmp';

export interface SftpFixture {
  readonly sshd: Sshd;
  /** A private home folder: .ssh/known_hosts has the server's key. */
  readonly home: string;
  readonly knownHosts: string;
  /** A fresh, not yet existing remote folder (absolute path on the server) and its URL. */
  freshRemote(): { dir: string; url: string };
  /** Options for key auth against this server, with overrides. */
  options(extra?: Record<string, unknown>): Record<string, unknown>;
  open(url?: string, ctx?: BackendContext): SftpBackend;
}

let counter = 0;

export async function startFixture(sshdOptions: SshdOptions = {}): Promise<SftpFixture> {
  const sshd = await startSshd(sshdOptions);
  const home = tempDir('offsite-home-');
  fs.mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
  const knownHosts = path.join(home, '.ssh', 'known_hosts');
  fs.writeFileSync(knownHosts, sshd.knownHostsLines().join('\n') + '\n', { mode: 0o600 });
  const remoteRoot = path.join(sshd.dir, 'remote');
  fs.mkdirSync(remoteRoot, { mode: 0o700 });
  const fixture: SftpFixture = {
    sshd,
    home,
    knownHosts,
    freshRemote() {
      const dir = path.join(remoteRoot, `r${++counter}`);
      return { dir, url: `sftp://${sshd.user}@127.0.0.1:${sshd.port}/${dir}` };
    },
    options(extra = {}) {
      // No system-wide ssh config: what it says (Debian's HashKnownHosts yes) would vary by machine.
      return { home, env: {}, sshKey: sshd.userKey.file, knownHosts, sshSystemConfig: path.join(home, 'no-system-ssh-config'), timeoutMs: 5000, ...extra };
    },
    open(url, ctx = {}) {
      const u = url ?? fixture.freshRemote().url;
      return createSftpBackend(new URL(u), { ...ctx, options: { ...fixture.options(), ...(ctx.options ?? {}) } });
    },
  };
  return fixture;
}

/** Every file in a server folder, temporaries included (what a reader on the server would see). */
export function serverFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

export async function closeAll(backends: Backend[]): Promise<void> {
  for (const b of backends.splice(0)) await b.close();
}

/**
 * The hooks most sftp suites share: one sshd started before the suite and stopped after it, and the
 * backends a test opened (pushed on `open`) closed after each test. `fx` is there once the suite runs.
 */
export function sftpSuite(sshdOptions: SshdOptions = {}): { readonly fx: SftpFixture; readonly open: SftpBackend[] } {
  let fx: SftpFixture | undefined;
  const open: SftpBackend[] = [];
  before(async () => {
    fx = await startFixture(sshdOptions);
  });
  after(async () => {
    await closeAll(open);
    await fx?.sshd.stop();
  });
  afterEach(async () => {
    await closeAll(open);
  });
  return {
    get fx(): SftpFixture {
      if (!fx) throw new Error('sftpSuite: the fixture starts in the suite\'s before hook');
      return fx;
    },
    open,
  };
}
