// Prepares a workspace, a file:// remote and a private HOME/cache/GnuPG home, bundles the in-host suites
// and runs one of them in a real VS Code extension host through @vscode/test-electron's runTests,
// with scripts/codeHeadless.js standing in for the VS Code executable (code-server + headless
// Chromium, nothing downloaded).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { runTests } from '@vscode/test-electron';
import { REPO } from '../helpers/cli';
import { KEYS, SAMPLES } from '../helpers/gpg';
import { startS3Server, type S3Server } from '../helpers/s3Server';
import { createTestUser, makeUserKey, startSshd, type Sshd, type TestUser, type UserKey } from '../helpers/sshd';
import { tempDir } from '../helpers/tmp';
import type { HostFixture } from './host/fixture';

export const LAUNCHER = path.join(REPO, 'scripts', 'codeHeadless.js');
export const CODE_SERVER_ENTRY = path.join(REPO, '.vscode-test/code-server/node_modules/code-server/out/node/entry.js');
const HOST_BUNDLE = path.join(REPO, 'out/test/extension/host/index.js');

/** Fails with the fix when the tools of scripts/setup-vscode.sh are missing. */
export function assertVsCodeHostInstalled(): void {
  if (!fs.existsSync(CODE_SERVER_ENTRY)) throw new Error(`code-server is not installed at ${CODE_SERVER_ENTRY}: run scripts/setup-vscode.sh`);
  if (!fs.existsSync('/usr/bin/chromium')) throw new Error('/usr/bin/chromium is missing: run scripts/setup-vscode.sh');
  if (!fs.existsSync(path.join(REPO, 'dist', 'extension.js'))) throw new Error('dist/extension.js is missing: the build (node esbuild.mjs) failed');
}

export async function bundleHostSuites(): Promise<void> {
  await esbuild.build({
    entryPoints: [path.join(REPO, 'test/extension/host/index.ts')],
    outfile: HOST_BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['vscode', 'mocha'],
    sourcemap: 'inline',
    logLevel: 'warning',
  });
}

export const README_V1 = '# Demo\n\nfirst version\n';

/** A small workspace: text, a folder, a binary file, a file to delete later, and a .gitignore'd build folder. */
export function makeWorkspace(root: string): string {
  const ws = path.join(root, 'workspace');
  const put = (rel: string, data: string | Buffer) => {
    fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
    fs.writeFileSync(path.join(ws, rel), data, { mode: 0o644 });
  };
  put('README.md', README_V1);
  put('old.txt', 'this file is deleted later\n');
  put('src/main.ts', Array.from({ length: 200 }, (_, i) => `export const v${i} = ${i};`).join('\n') + '\n');
  put('logo.bin', Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919 + (i >> 7)) % 256)));
  put('.gitignore', 'build/\n');
  put('build/out.js', 'generated\n');
  return ws;
}

export interface HostRun {
  readonly suite: 'main' | 'untrusted' | 'bench' | 'multiroot' | 'edges' | 'empty';
  readonly trust?: boolean;
  /** Adds to the workspace before VS Code opens it (the benchmark's large files). */
  readonly populate?: (workspace: string) => void;
  readonly env?: Record<string, string>;
}

/** Runs one in-host suite; rejects when a test fails (the suite's own output is on stdout). */
export async function runHostSuite(run: HostRun): Promise<void> {
  const root = tempDir('offsite-ext-');
  const ws = makeWorkspace(root);
  run.populate?.(ws);
  const home = path.join(root, 'home');
  const gnupg = path.join(root, 'gnupg');
  const scratch = path.join(root, 'scratch');
  for (const d of [home, gnupg, scratch]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  const remoteRoot = `file://${path.join(root, 'remote')}`;
  // Password logins too: the extension asks for an SSH password (a throwaway account, as root in CI).
  const sshd: Sshd | undefined = run.suite === 'main' ? await startSshd({ passwordAuth: true }) : undefined;
  let s3: S3Server | undefined;
  let passwordUser: TestUser | undefined;
  let protectedKey: UserKey | undefined;
  const sshKeyPassphrase = 'ssh-key-passphrase-for-tests';
  try {
    passwordUser = sshd ? await createTestUser() : undefined;
    // And an SSH key protected by a passphrase, authorized for that account.
    if (passwordUser) {
      protectedKey = await makeUserKey(root, 'id_protected', sshKeyPassphrase);
      passwordUser.authorize(protectedKey.publicLine);
    }
    // A real S3 API server on loopback (OpenStack Swift's s3api) for the s3:// tests of the main suite.
    s3 = run.suite === 'main' ? await startS3Server() : undefined;
  } catch (e) {
    await passwordUser?.remove();
    await sshd?.stop();
    throw e;
  }
  let fx: HostFixture = {
    s3: s3 ? { endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: await s3.createBucket() } : undefined,
    sftp: sshd
      ? {
          root: `sftp://${sshd.user}@127.0.0.1:${sshd.port}/${path.join(root, 'sftp-remote')}`,
          sshKey: sshd.userKey.file,
          fingerprint: sshd.fingerprints.get('ssh-ed25519')!,
          hostPattern: `[127.0.0.1]:${sshd.port}`,
          home,
          // A relative path: in the account's home folder.
          passwordRoot: passwordUser ? `sftp://${passwordUser.name}@127.0.0.1:${sshd.port}/backups` : '',
          password: passwordUser?.password ?? '',
          protectedKey: protectedKey?.file ?? '',
          protectedKeyPassphrase: sshKeyPassphrase,
        }
      : undefined,
    workspace: ws,
    remoteRoot,
    remoteDir: path.join(root, 'remote', 'workspace'),
    userRemoteRoot: run.trust ? `file://${path.join(root, 'user-remote')}` : undefined,
    scratch,
    keys: {
      rsaPub: path.join(KEYS, 'rsa-pub.asc'),
      rsaSec: path.join(KEYS, 'rsa-sec.asc'),
      protectedPub: path.join(REPO, 'test/fixtures/keys/protected-pub.asc'),
      protectedSec: path.join(REPO, 'test/fixtures/keys/protected-sec.asc'),
      passphrase: 'offsite-test-passphrase',
    },
    symmetric: {
      vault: path.join(SAMPLES, '05-dup-symmetric', 'vault'),
      expected: path.join(SAMPLES, '05-dup-symmetric', 'expected', '20240101T000000Z.json'),
      passphrase: 'test-passphrase',
      time: 1704067200,
    },
  };
  // What a user writes in .vscode/settings.json to back the workspace up.
  const settings = run.trust
    ? {
        'offsite.remote': remoteRoot,
        'offsite.encryptKeys': [fx.keys.protectedPub],
        'offsite.schedule': 1,
        // What else a hostile repository could set: keys, an SSH key, an S3 endpoint and profile that
        // would be used with the user's remote and identity, and a retention that deletes backups.
        'offsite.restoreKey': path.join(ws, 'evil-restore.asc'),
        'offsite.signKey': path.join(ws, 'evil-sign.asc'),
        'offsite.sshKey': path.join(ws, 'evil_id'),
        'offsite.s3EndpointUrl': 'https://attacker.example',
        'offsite.s3Profile': 'attacker',
        'offsite.keepFull': 1,
      }
    : // No drill reminder while the other tests run (the drill test turns it on).
      { 'offsite.remote': remoteRoot, 'offsite.encryptKeys': [fx.keys.rsaPub], 'offsite.restoreKey': fx.keys.rsaSec, 'offsite.drillEvery': 0 };
  fs.mkdirSync(path.join(ws, '.vscode'));
  fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify(settings, null, 2));
  // Multi-root: a .code-workspace with the settings and a second folder; the first folder's own
  // settings name an encryption key file that is not there (its backups fail, the second's do not).
  let open = ws;
  if (run.suite === 'multiroot') {
    const second = path.join(root, 'second');
    fs.mkdirSync(second);
    fs.writeFileSync(path.join(second, 'notes.txt'), 'the second folder\n');
    fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'offsite.encryptKeys': ['keys/missing-pub.asc'] }, null, 2));
    open = path.join(root, 'multi.code-workspace');
    fs.writeFileSync(open, JSON.stringify({ folders: [{ path: ws }, { path: second }], settings }, null, 2));
    fx = { ...fx, second };
  }
  const fixtureFile = path.join(root, 'fixture.json');
  fs.writeFileSync(fixtureFile, JSON.stringify(fx));
  try {
    await runTests({
      vscodeExecutablePath: LAUNCHER,
      extensionDevelopmentPath: REPO,
      extensionTestsPath: HOST_BUNDLE,
      // The 'empty' suite: a window with no folder.
      launchArgs: run.suite === 'empty' ? [] : [open],
      extensionTestsEnv: {
        OFFSITE_TEST_FIXTURE: fixtureFile,
        OFFSITE_HOST_SUITE: run.suite,
        OFFSITE_WORKSPACE_TRUST: run.trust ? '1' : '0',
        OFFSITE_USER_SETTINGS: run.trust
          ? JSON.stringify({ 'offsite.remote': fx.userRemoteRoot, 'offsite.encryptKeys': [fx.keys.rsaPub], 'offsite.schedule': 1, 'offsite.sshKey': path.join(home, '.ssh', 'id_user') })
          : '{}',
        // Nothing of the user's: HOME (~/.ssh, ~/.gnupg), the engine's cache and GnuPG are private to the run.
        HOME: home,
        XDG_CACHE_HOME: path.join(root, 'cache'),
        GNUPGHOME: gnupg,
        TMPDIR: scratch,
        // No ssh-agent of the user's: the tests' SSH key is given explicitly.
        SSH_AUTH_SOCK: '',
        // No AWS credentials of the user's (the s3:// test gives its keys when asked), and no
        // instance-metadata lookup (non-loopback) when there are none.
        AWS_ACCESS_KEY_ID: '',
        AWS_SECRET_ACCESS_KEY: '',
        AWS_SESSION_TOKEN: '',
        AWS_ENDPOINT_URL: '',
        AWS_EC2_METADATA_DISABLED: 'true',
        ...(process.env.OFFSITE_HOST_GREP ? { OFFSITE_HOST_GREP: process.env.OFFSITE_HOST_GREP } : {}),
        ...run.env,
      },
    });
  } finally {
    await passwordUser?.remove();
    await sshd?.stop();
    await s3?.stop();
  }
}
