// From what the user configured (key files, keyring ids, a passphrase source) to the CryptoContext the
// operations use. Backing up needs only public keys; private keys are loaded only when something must
// be decrypted (a restore, or rebuilding a lost cache) and the passphrase is asked for only then.
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
  /** Asked for a protected private key (and used as the password of symmetric sets). */
  readonly passphrase?: (what: string) => Promise<string | undefined>;
  readonly gnupgHome?: string;
  /**
   * Where the checks of encryption keys are remembered (crypto/recipient.ts), so that later backups to
   * the same keys need not load openpgp.js; none: every backup checks them with openpgp.js.
   */
  readonly keyCacheDir?: string;
}

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

export async function cryptoForBackup(k: KeyConfig): Promise<CryptoContext> {
  if (!k.encryptKeys?.length) {
    throw new OffsiteError('config', 'No encryption key given', { hint: 'Pass --encrypt-key KEY: a public key file, or a key id, fingerprint or email in your gpg keyring' });
  }
  const recipients = await loadRecipients(k.encryptKeys, { gnupgHome: k.gnupgHome, verdictDir: k.keyCacheDir });
  const ask = k.passphrase ?? (async () => undefined);
  let signingKey: PrivateKey | undefined;
  if (k.signKey) [signingKey] = await loadPrivateKeys([k.signKey], ask, { gnupgHome: k.gnupgHome });
  return { recipients, signingKey, decryptOptions: decryptOptionsFor(k, 'rebuild the local cache from the remote') };
}

export function cryptoForRead(k: KeyConfig): CryptoContext {
  return { recipients: [], decryptOptions: decryptOptionsFor(k, 'read the backup') };
}

function decryptOptionsFor(k: KeyConfig, why: string): () => Promise<DecryptOptions> {
  return once(async () => {
    const ask = k.passphrase ?? (async () => undefined);
    const specs = k.restoreKey ? [k.restoreKey] : [];
    const opts: { decryptionKeys?: PrivateKey[]; passwords?: string[]; verificationKeys?: DecryptOptions['verificationKeys'] } = {};
    if (specs.length) opts.decryptionKeys = await loadPrivateKeys(specs, ask, { gnupgHome: k.gnupgHome });
    else if (k.encryptKeys?.length) {
      // A backup configured with a key file that also holds the secret part, or a keyring id whose
      // secret key is in the keyring, can decrypt with it.
      opts.decryptionKeys = await loadPrivateKeys([...k.encryptKeys], ask, { gnupgHome: k.gnupgHome }).catch(() => undefined);
    }
    if (!opts.decryptionKeys?.length) {
      const pw = process.env.OFFSITE_PASSPHRASE;
      if (pw === undefined) {
        throw new OffsiteError('key', `The private key is needed to ${why}`, { hint: 'Pass --key KEY (your private key file, or its id in your gpg keyring)', needs: { input: 'secretKey', wrong: false } });
      }
      opts.passwords = [pw];
    }
    // Sign-only, expired or revoked keys must still verify the backups they signed.
    if (k.signKey) opts.verificationKeys = await loadVerificationKeys([k.signKey], { gnupgHome: k.gnupgHome });
    return opts;
  });
}
