// A private GnuPG home for tests (never the user's ~/.gnupg), with the throwaway fixture keys, and
// runners for gpg and duplicity that use it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, type RunResult } from './cli';
import { tempDir } from './tmp';

import { SAMPLES } from './samples';
import { loadPrivateKeys, loadPublicKeys } from '../../src/engine/crypto/keys';
import type { CryptoContext } from '../../src/engine/ops/remoteFiles';
export { SAMPLES };
export const KEYS = path.join(SAMPLES, 'keys');
export const RSA_PUB = path.join(KEYS, 'rsa-pub.asc');
export const RSA_SEC = path.join(KEYS, 'rsa-sec.asc');
export const ECC_PUB = path.join(KEYS, 'ecc-pub.asc');
export const ECC_SEC = path.join(KEYS, 'ecc-sec.asc');
export const RSA_SUBKEY = 'E58B2D7FA184113F';
export const ECC_KEYID = '67E6A0ACFFF5C626';

/** A fresh GNUPGHOME holding the fixtures' secret keys. */
export function gnupgHome(): string {
  const home = tempDir('offsite-gnupg-');
  fs.chmodSync(home, 0o700);
  // The fixture keys are imported, not signed: trust them so gpg (and duplicity) will encrypt to them.
  fs.writeFileSync(path.join(home, 'gpg.conf'), 'trust-model always\n');
  execFileSync('gpg', ['--batch', '--quiet', '--import', RSA_SEC, ECC_SEC], { env: { ...process.env, GNUPGHOME: home }, stdio: 'pipe' });
  return home;
}

export function duplicity(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run('duplicity', args, { env: { GNUPGHOME: home, PASSPHRASE: '', TZ: 'UTC', ...env }, timeoutMs: 600_000 });
}

export function gpg(home: string, args: string[]): Promise<RunResult> {
  return run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { env: { GNUPGHOME: home } });
}

let cryptoP: Promise<CryptoContext> | undefined;

/** Encrypts to the RSA fixture key and decrypts with its secret key (no passphrase). */
export function rsaCrypto(): Promise<CryptoContext> {
  cryptoP ??= (async () => {
    const recipients = await loadPublicKeys([RSA_PUB]);
    const keys = await loadPrivateKeys([RSA_SEC], async () => undefined);
    return { recipients, decryptOptions: async () => ({ loadDecryptionKeys: async () => keys }) };
  })();
  return cryptoP;
}
