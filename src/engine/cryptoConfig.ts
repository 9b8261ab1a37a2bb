// From what the user configured (key files, keyring ids, a passphrase source) to the CryptoContext the
// operations use. Backing up needs only public keys; private keys are loaded only when something must
// be decrypted (a restore, or rebuilding a lost cache): both the private key (with its passphrase) and
// the password of a backup made with a passphrase and no key (symmetric) are asked for only when a
// file turns out to need them (crypto/decrypt.ts), once a run.
import type { PrivateKey } from 'openpgp';
import { OffsiteError } from './errors';
import { loadPrivateKeys, loadVerificationKeys } from './crypto/keys';
import { loadRecipients } from './crypto/recipient';
import type { DecryptOptions } from './crypto/decrypt';
import type { CryptoContext } from './ops/remoteFiles';

export interface KeyConfig {
  /** Recipients: key files, key ids, fingerprints or emails. */
  readonly encryptKeys?: readonly string[];
  /** Backup: the key that signs. Restore: the key whose signature is required. */
  readonly signKey?: string;
  /** The private key for decryption (a key file or a keyring id). */
  readonly restoreKey?: string;
  /**
   * Asked for a passphrase: `kind` 'key', of the protected private key `what` describes; 'symmetric',
   * the password of a backup made with a passphrase and no key (asked only when a file needs it).
   */
  readonly passphrase?: (what: string, kind: PassphraseKind) => Promise<string | undefined>;
  readonly gnupgHome?: string;
  /**
   * Where the checks of encryption keys are remembered (crypto/recipient.ts), so that later backups to
   * the same keys need not load openpgp.js; none: every backup checks them with openpgp.js.
   */
  readonly keyCacheDir?: string;
}

export type PassphraseKind = 'key' | 'symmetric';

/** What the backup's own passphrase is asked for as (`Passphrase for …` on the command line). */
const SYMMETRIC_WHAT = 'the backup (it was made with a passphrase, no key)';

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

export async function cryptoForBackup(k: KeyConfig): Promise<CryptoContext> {
  if (!k.encryptKeys?.length) {
    throw new OffsiteError('config', 'No encryption key given', { hint: 'Pass --encrypt-key KEY: a public key file, or a key id, fingerprint or email in your gpg keyring' });
  }
  const recipients = await loadRecipients(k.encryptKeys, { gnupgHome: k.gnupgHome, verdictDir: k.keyCacheDir });
  const ask = keyPassphrase(k);
  let signingKey: PrivateKey | undefined;
  if (k.signKey) [signingKey] = await loadPrivateKeys([k.signKey], ask, { gnupgHome: k.gnupgHome });
  return { recipients, signingKey, decryptOptions: decryptOptionsFor(k, 'rebuild the local cache from the remote') };
}

export function cryptoForRead(k: KeyConfig): CryptoContext {
  return { recipients: [], decryptOptions: decryptOptionsFor(k, 'read the backup') };
}

function keyPassphrase(k: KeyConfig): (what: string) => Promise<string | undefined> {
  return async (what) => k.passphrase?.(what, 'key');
}

function decryptOptionsFor(k: KeyConfig, why: string): () => Promise<DecryptOptions> {
  // Asked for by the first file that needs it (crypto/decrypt.ts), kept for the rest of the run: one
  // question, and a resolved promise for every later volume.
  const password = once(async () => k.passphrase?.(SYMMETRIC_WHAT, 'symmetric'));
  // Likewise the private key (and its passphrase): loaded by the first file encrypted to a key, so a
  // backup made with a passphrase never unlocks the restore key configured beside it.
  const ask = keyPassphrase(k);
  const loadDecryptionKeys = once(async (): Promise<PrivateKey[] | undefined> => {
    if (k.restoreKey) return loadPrivateKeys([k.restoreKey], ask, { gnupgHome: k.gnupgHome });
    // A backup configured with a key file that also holds the secret part, or a keyring id whose
    // secret key is in the keyring, can decrypt with it.
    if (k.encryptKeys?.length) return loadPrivateKeys([...k.encryptKeys], ask, { gnupgHome: k.gnupgHome }).catch(() => undefined);
    return undefined;
  });
  return once(async () => {
    const opts: DecryptOptions = {
      password,
      loadDecryptionKeys,
      // Only a file encrypted to keys needs one: a symmetric backup asks for its passphrase instead.
      noKey: () => new OffsiteError('key', `The private key is needed to ${why}`, { hint: 'Pass --key KEY (your private key file, or its id in your gpg keyring)', needs: { input: 'secretKey', wrong: false } }),
    };
    // Sign-only, expired or revoked keys must still verify the backups they signed.
    if (k.signKey) opts.verificationKeys = await loadVerificationKeys([k.signKey], { gnupgHome: k.gnupgHome });
    return opts;
  });
}
