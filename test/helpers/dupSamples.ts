// The duplicity fixtures of shared/duplicity/samples, decrypted on demand with a private GNUPGHOME,
// and a runner for small Python checks against the Python (and duplicity) the fixtures were made with.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './tmp';

import { SAMPLES } from './samples';
export { SAMPLES };

/** The Python duplicity runs on (its tarfile writes the headers we must equal); falls back to PATH. */
export const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Runs a Python script with JSON on stdin and parses JSON from its stdout. */
export function runPython<T = unknown>(script: string, input: unknown, env: NodeJS.ProcessEnv = {}): T {
  const out = execFileSync(PYTHON, ['-c', script], {
    input: JSON.stringify(input),
    env: { ...process.env, ...env },
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(out.toString('utf8')) as T;
}

export function vaultDir(sample: string): string {
  return path.join(SAMPLES, sample, 'vault');
}

let decrypted01: string | undefined;

/**
 * Fixture 01 decrypted: a folder with every vault file under its name without '.gpg'. The throwaway
 * key is imported into a private GNUPGHOME (never the user's ~/.gnupg).
 */
export function decryptedSample01(): string {
  if (decrypted01) return decrypted01;
  const home = tempDir('offsite-gpg-');
  const out = tempDir('offsite-dec01-');
  const env = { ...process.env, GNUPGHOME: home };
  execFileSync('gpg', ['--batch', '--quiet', '--import', path.join(SAMPLES, 'keys', 'rsa-sec.asc')], { env, stdio: 'pipe' });
  const vault = vaultDir('01-dup-enc-chain');
  for (const name of fs.readdirSync(vault)) {
    if (!name.endsWith('.gpg')) continue;
    const target = path.join(out, name.slice(0, -4));
    execFileSync('gpg', ['--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', '--output', target, '--decrypt', path.join(vault, name)], {
      env,
      stdio: 'pipe',
    });
    fs.chmodSync(target, 0o600);
  }
  // gpg-agent was started for this home; stop it so it does not outlive the tests.
  try {
    execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env, stdio: 'pipe' });
  } catch {
    // no agent running: nothing to stop
  }
  decrypted01 = out;
  return out;
}
