// Loading, checking and making OpenPGP keys. A key spec is a key file (armored or binary) or, through
// gpg, a key id / fingerprint / email in a GnuPG keyring. Every key we encrypt to must let us write a
// message gpg 2.2 reads (FORMAT.md §13): a v4 key whose encryption (sub)key is RSA, ElGamal or ECDH on
// a curve gpg 2.2 knows. We always write PKESK v3 + SEIPD v1, whatever features the key advertises.
import { promises as fsp, type Stats } from 'node:fs';
import type { Key, PrivateKey, PublicKey } from 'openpgp';
import { OffsiteError } from '../errors';
import { looksArmored } from './armor';
import { gpgExportPublic, gpgExportSecret, type GpgOptions } from './gpgKeyring';
import { openpgpLib } from './openpgpLib';
import { decryptKeyChecked, unlockNatively } from './unlock';

/** Encryption algorithms gpg 2.2 handles: RSA (1, 2), ElGamal (16), ECDH (18). */
const GPG22_ENCRYPTION_ALGOS = new Set([1, 2, 16, 18]);
/** ECDH: the one of them whose curve gpg 2.2 must know too. */
const ECDH = 18;
/** ECDH curves of libgcrypt 1.8+/gpg 2.2 (openpgp.js names). */
const GPG22_CURVES = new Set(['curve25519Legacy', 'nistP256', 'nistP384', 'nistP521', 'brainpoolP256r1', 'brainpoolP384r1', 'brainpoolP512r1', 'secp256k1']);

const ALGO_NAMES: Record<string, string> = {
  rsaEncryptSign: 'RSA',
  rsaEncrypt: 'RSA',
  rsaSign: 'RSA',
  dsa: 'DSA',
  elgamal: 'ElGamal',
  ecdh: 'ECDH',
  ecdsa: 'ECDSA',
  eddsaLegacy: 'EdDSA',
  ed25519: 'Ed25519',
  ed448: 'Ed448',
  x25519: 'X25519',
  x448: 'X448',
};
const CURVE_NAMES: Record<string, string> = {
  ed25519Legacy: 'ed25519',
  curve25519Legacy: 'cv25519',
};

/** "RSA-3072 A53C…1B62 Dup Test RSA <dup-rsa@example.invalid>" (algorithm, short fingerprint, user id). */
export function describeKey(k: PublicKey | PrivateKey): string {
  const info = k.getAlgorithmInfo();
  const name = ALGO_NAMES[info.algorithm] ?? info.algorithm;
  let algo: string;
  if (info.curve) algo = info.algorithm === 'eddsaLegacy' ? (CURVE_NAMES[info.curve] ?? info.curve) : `${name}-${CURVE_NAMES[info.curve] ?? info.curve}`;
  else algo = info.bits ? `${name}-${info.bits}` : name;
  const fpr = k.getFingerprint().toUpperCase();
  const user = k.getUserIDs()[0];
  return `${algo} ${fpr.slice(0, 4)}…${fpr.slice(-4)}${user ? ` ${user}` : ''}`;
}

/**
 * True when `spec` names a key file; false for a keyring query (a key id, fingerprint or email). A
 * spec with a '/' is a path, which none of those hold, and so is a name ending as key files do
 * (ada.pub.asc, key.gpg) without an '@': when it names no file, that is said, rather than asking a
 * keyring (gpg would create ~/.gnupg and start an agent there to answer "no key").
 */
async function isKeyFile(spec: string): Promise<boolean> {
  const isPath = spec.includes('/') || (!spec.includes('@') && KEY_FILE_NAME.test(spec));
  let st: Stats | undefined;
  try {
    st = await fsp.stat(spec);
  } catch (e) {
    if (!isPath) return false;
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`;
    throw new OffsiteError('key', `The key file ${spec} ${why}`, { hint: 'Check the path of the key file' });
  }
  if (st.isFile()) return true;
  if (isPath) throw new OffsiteError('key', `The key file ${spec} is not a file`, { hint: 'Check the path of the key file' });
  return false;
}

/** The endings of key files (.pub is left out: it is also a domain, as in an email's). */
const KEY_FILE_NAME = /\.(asc|gpg|pgp|key)$/i;

async function parseKeys(data: Buffer, where: string, secret: boolean): Promise<Key[]> {
  try {
    if (secret) {
      return looksArmored(data)
        ? await openpgpLib().readPrivateKeys({ armoredKeys: data.toString('utf8') })
        : await openpgpLib().readPrivateKeys({ binaryKeys: data });
    }
    return looksArmored(data) ? await openpgpLib().readKeys({ armoredKeys: data.toString('utf8') }) : await openpgpLib().readKeys({ binaryKeys: data });
  } catch (e) {
    const msg = (e as Error).message;
    if (secret && /no.*(secret|private) key|not a private key|private key/i.test(msg)) {
      throw new OffsiteError('key', `${where} holds no secret key`, {
        hint: 'Give the secret key (gpg --export-secret-keys), not only the public key',
        cause: e,
      });
    }
    throw new OffsiteError('key', `Cannot read the key in ${where}: ${msg}`, {
      hint: 'Give an OpenPGP key (armored or binary) that gpg 2.2 can import',
      cause: e,
    });
  }
}

/** Throws OffsiteError('key') unless we can encrypt to `key` in a way gpg 2.2 decrypts. */
export async function assertEncryptionKeyUsable(key: PublicKey): Promise<void> {
  const d = describeKey(key);
  if (key.keyPacket.version !== 4) {
    throw new OffsiteError('key', `The key ${d} is a version ${key.keyPacket.version} key, which gpg 2.2 (and duplicity) cannot use`, {
      hint: 'Use a v4 key: one made by gpg 2.2/2.4 or by "Create Key"',
    });
  }
  const now = new Date();
  if (await key.isRevoked(undefined, undefined, now)) {
    throw new OffsiteError('key', `The key ${d} is revoked`, { hint: 'Use another key; a revoked key must not receive new backups' });
  }
  const exp = await key.getExpirationTime();
  if (exp instanceof Date && exp <= now) {
    throw new OffsiteError('key', `The key ${d} expired on ${exp.toISOString().slice(0, 10)}`, {
      hint: 'Extend its expiry (gpg --quick-set-expire) and export it again, or use another key',
    });
  }
  let enc;
  try {
    enc = await key.getEncryptionKey(undefined, now);
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    // ECDSA on brainpool and secp256k1 (gpg's keys made for those curves) needs openpgp.js's optional
    // eckey-utils on Node, and its ECDH on secp256k1 is off: it cannot check such a key's signatures
    // (expiry, revocation). Files encrypted to the key still decrypt (ecdh.ts).
    if (/eckey-utils|curve .* is disabled/.test(why)) {
      throw new OffsiteError('key', `The key ${d} cannot receive backups: openpgp.js, which checks a key (its signatures, expiry, revocation) before a backup goes to it, does not take its curve on Node (${why})`, {
        hint: 'Encrypt new backups to an RSA, cv25519 or NIST-curve key; backups already encrypted to this key restore with its secret key',
        cause: e,
      });
    }
    throw new OffsiteError('key', `The key ${d} has no valid encryption key: ${why}`, {
      hint: 'Use a key with an encryption subkey that is neither expired nor revoked',
      cause: e,
    });
  }
  const kp = enc.keyPacket;
  const info = kp.getAlgorithmInfo();
  const curveOk = kp.algorithm !== ECDH || (info.curve !== undefined && GPG22_CURVES.has(info.curve));
  if (kp.version !== 4 || !GPG22_ENCRYPTION_ALGOS.has(kp.algorithm) || !curveOk) {
    throw new OffsiteError('key', `The encryption key of ${d} uses ${info.algorithm}${info.curve ? ` (${info.curve})` : ''}, which gpg 2.2 cannot decrypt`, {
      hint: 'Use an RSA or cv25519/NIST-curve ECDH encryption key (gpg 2.2 default, or "Create Key")',
    });
  }
}

/** The bytes of one key spec: a key file's, or gpg's export of a keyring entry. */
export interface KeySpecBytes {
  readonly data: Buffer;
  /** For messages: the file's path, or "the keyring entry "…"". */
  readonly where: string;
  readonly fromFile: boolean;
}

export async function keySpecBytes(spec: string, opts: GpgOptions): Promise<KeySpecBytes> {
  if (await isKeyFile(spec)) return { data: await fsp.readFile(spec), where: spec, fromFile: true };
  return { data: await gpgExportPublic(spec, opts), where: `the keyring entry "${spec}"`, fromFile: false };
}

/** The public keys in a spec's bytes (the public part of secret keys). */
export async function publicKeysOf(bytes: KeySpecBytes): Promise<PublicKey[]> {
  const keys = await parseKeys(bytes.data, bytes.where, false);
  return keys.map((k) => (k.isPrivate() ? k.toPublic() : (k as PublicKey)));
}

/**
 * The keys of a spec's bytes we may encrypt to (assertEncryptionKeyUsable). A file's keys must all be
 * usable; a keyring query may also match old keys, which are skipped unless none is usable.
 */
export async function usableEncryptionKeys(bytes: KeySpecBytes): Promise<PublicKey[]> {
  const out: PublicKey[] = [];
  let firstError: unknown;
  for (const k of await publicKeysOf(bytes)) {
    try {
      await assertEncryptionKeyUsable(k);
      out.push(k);
    } catch (e) {
      if (bytes.fromFile) throw e;
      firstError ??= e;
    }
  }
  if (out.length === 0) throw firstError;
  return out;
}

export function assertSomeEncryptionKey(specs: readonly string[]): void {
  if (specs.length === 0) throw new OffsiteError('key', 'No encryption key given', { hint: 'Name a key file or a key id from your GnuPG keyring' });
}

/**
 * Public keys to encrypt to. Each spec is a key file (armored or binary, public or secret: the public
 * part is used) or a key id, fingerprint or email in the GnuPG keyring. Refuses with
 * OffsiteError('key') keys that cannot encrypt, are expired or revoked, or that gpg 2.2 could not use.
 */
export async function loadPublicKeys(specs: string[], opts: { gnupgHome?: string } = {}): Promise<PublicKey[]> {
  assertSomeEncryptionKey(specs);
  const out = new Map<string, PublicKey>();
  for (const spec of specs) {
    for (const k of await usableEncryptionKeys(await keySpecBytes(spec, opts))) out.set(k.getFingerprint(), k);
  }
  return [...out.values()];
}

/**
 * Public keys to check signatures with (DecryptOptions.verificationKeys). Same specs as
 * loadPublicKeys, but no encryption checks: a sign-only key, or one that expired or was revoked after
 * it signed old backups, still verifies them (the signature's own date is checked when verifying).
 */
export async function loadVerificationKeys(specs: string[], opts: { gnupgHome?: string } = {}): Promise<PublicKey[]> {
  if (specs.length === 0) throw new OffsiteError('key', 'No signing key given', { hint: 'Name the key file or key id that signs the backups' });
  const out = new Map<string, PublicKey>();
  for (const spec of specs) {
    for (const k of await publicKeysOf(await keySpecBytes(spec, opts))) out.set(k.getFingerprint(), k);
  }
  return [...out.values()];
}

async function unlock(key: PrivateKey, passphrase: string | undefined, getPassphrase: (d: string) => Promise<string | undefined>): Promise<PrivateKey> {
  if (key.getKeys().every((k) => (k.keyPacket as { isDummy?: () => boolean }).isDummy?.() === true)) {
    throw new OffsiteError('key', `The secret key ${describeKey(key)} has no secret key material (only a stub)`, {
      hint: 'Use the machine or smartcard that holds the secret key, or export it with gpg --export-secret-keys',
    });
  }
  if (key.isDecrypted()) return key;
  const pass = passphrase ?? (await getPassphrase(describeKey(key)));
  if (pass === undefined) {
    throw new OffsiteError('passphrase', `No passphrase given for the key ${describeKey(key)}`, { hint: 'Enter the key\'s passphrase', needs: { input: 'passphrase', wrong: false } });
  }
  try {
    // Natively first: openpgp.js hashes gpg's S2K from one 62 MiB buffer per key packet (unlock.ts).
    const native = await unlockNatively(key, pass, () => describeKey(key));
    if (native) return native;
  } catch (e) {
    if (OffsiteError.is(e, 'passphrase')) throw e;
    // anything unexpected: openpgp.js unlocks it, and reports its own errors
  }
  try {
    return await decryptKeyChecked(key, pass);
  } catch (e) {
    const msg = (e as Error).message;
    if (/incorrect|passphrase/i.test(msg)) {
      throw new OffsiteError('passphrase', `Wrong passphrase for the key ${describeKey(key)}`, { hint: 'Enter the passphrase again', cause: e, needs: { input: 'passphrase', wrong: true } });
    }
    throw new OffsiteError('key', `Cannot unlock the key ${describeKey(key)}: ${msg}`, { cause: e });
  }
}

async function secretKeysFromGpg(spec: string, getPassphrase: (d: string) => Promise<string | undefined>, opts: GpgOptions): Promise<PrivateKey[]> {
  let r = await gpgExportSecret(spec, undefined, opts);
  let passphrase: string | undefined;
  if (!r.ok && r.reason !== 'noSecretKey') {
    const pub = await parseKeys(await gpgExportPublic(spec, opts), `the keyring entry "${spec}"`, false);
    passphrase = await getPassphrase(describeKey(pub[0] as PublicKey));
    if (passphrase === undefined) {
      throw new OffsiteError('passphrase', `No passphrase given for the key ${describeKey(pub[0] as PublicKey)}`, { hint: 'Enter the key\'s passphrase', needs: { input: 'passphrase', wrong: false } });
    }
    r = await gpgExportSecret(spec, passphrase, opts);
    if (!r.ok && r.reason !== 'noSecretKey') {
      throw new OffsiteError('passphrase', `Wrong passphrase for the key ${describeKey(pub[0] as PublicKey)}`, { hint: 'Enter the passphrase again', needs: { input: 'passphrase', wrong: true } });
    }
  }
  if (!r.ok) {
    await gpgExportPublic(spec, opts); // says "no key matches" when there is no key at all
    throw new OffsiteError('key', `The GnuPG keyring has no secret key for "${spec}" (${r.detail})`, {
      hint: 'Import the secret key into the keyring, or give the path of a secret key file',
    });
  }
  const keys = (await parseKeys(r.data, `the keyring entry "${spec}"`, true)) as PrivateKey[];
  const out: PrivateKey[] = [];
  for (const k of keys) out.push(await unlock(k, passphrase, getPassphrase));
  return out;
}

/**
 * Secret keys for decryption or signing, unlocked. getPassphrase is called only for a protected key,
 * with a description of that key. Wrong passphrase: OffsiteError('passphrase').
 */
export async function loadPrivateKeys(
  specs: string[],
  getPassphrase: (keyDescription: string) => Promise<string | undefined>,
  opts: { gnupgHome?: string } = {},
): Promise<PrivateKey[]> {
  const out = new Map<string, PrivateKey>();
  for (const spec of specs) {
    let keys: PrivateKey[];
    if (await isKeyFile(spec)) {
      const parsed = (await parseKeys(await fsp.readFile(spec), spec, true)) as PrivateKey[];
      keys = [];
      for (const k of parsed) keys.push(await unlock(k, undefined, getPassphrase));
    } else {
      keys = await secretKeysFromGpg(spec, getPassphrase, opts);
    }
    for (const k of keys) out.set(k.getFingerprint(), k);
  }
  return [...out.values()];
}

/**
 * A new key pair gpg 2.2 reads: v4, ed25519 (legacy EdDSA) primary with a cv25519 encryption subkey,
 * features without SEIPDv2, secret part protected by `passphrase`. Armored strings.
 */
export async function generateKeyPair(name: string, email: string, passphrase: string): Promise<{ publicArmored: string; privateArmored: string; fingerprint: string }> {
  if (!passphrase) throw new OffsiteError('usage', 'A passphrase is required to protect the new secret key', { hint: 'Choose a passphrase' });
  let generated: { publicKey: string; privateKey: string };
  try {
    generated = await openpgpLib().generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name, email }],
      passphrase,
      format: 'armored',
      config: { v6Keys: false, aeadProtect: false },
    });
  } catch (e) {
    // openpgp.js checks the email of a user id (no spaces, one '@', not ending in punctuation); the
    // name is any string. Its error was an internal error with a stack trace.
    if (/Invalid user ID format/.test((e as Error)?.message)) {
      throw new OffsiteError('usage', `${JSON.stringify(email)} is not an email address OpenPGP accepts`, { hint: 'Give an address such as ada@example.org', cause: e });
    }
    throw e;
  }
  const { publicKey, privateKey } = generated;
  const key = await openpgpLib().readKey({ armoredKey: publicKey });
  return { publicArmored: publicKey, privateArmored: privateKey, fingerprint: key.getFingerprint().toUpperCase() };
}
