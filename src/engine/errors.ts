// Typed errors. Classification happens once, where the error is born (backend, crypto, format code);
// presentation happens once, at the edge (CLI: one line on stderr; extension: a notification).

export type ErrorCode =
  | 'usage' // bad arguments or options
  | 'config' // something the user must configure first (no key, no remote)
  | 'notFound' // a remote file, chain, set or path that does not exist
  | 'unreachable' // the remote cannot be reached (network, server down)
  | 'auth' // the remote refused our credentials
  | 'permission' // permission denied (remote or local)
  | 'noSpace' // remote or local disk full, quota exceeded
  | 'hostKey' // SSH host key unknown or changed
  | 'key' // a key is missing, unreadable or unusable (wrong kind, expired, revoked, unsupported)
  | 'passphrase' // wrong or missing passphrase
  | 'decrypt' // cannot decrypt: no matching secret key, corrupt ciphertext
  | 'signature' // not signed, or not signed by the expected key
  | 'integrity' // hash mismatch, truncated or corrupt file, tampering
  | 'format' // unparsable manifest, tar or signature
  | 'unsafePath' // an archive path that would escape the restore target
  | 'exists' // refusing to overwrite an existing file or a non-empty target
  | 'locked' // another backup of the same target is running
  | 'cancelled'
  | 'sourceChanged'
  | 'internal';

/**
 * The input an error is about, for front ends that say where that input comes from (the CLI: a
 * variable or an option; the extension: a prompt whose answer it keeps, a setting, a date to pick)
 * without reading the message or the hint, whose words are the CLI's.
 * - input 'passphrase': the OpenPGP passphrase (of the secret key, or of a symmetrically encrypted
 *   file); 'sshPassphrase': the passphrase of the SSH key named by the error's `file`; 'secretKey': the
 *   OpenPGP secret key to decrypt with; 'laterTime': a time to read the backup as of that is not before
 *   its oldest backup (the CLI's --time); 'hostKey': the acceptance of the SSH server's host key, unknown
 *   so far, whose SHA256 fingerprint is `fingerprint` (the CLI's --accept-host-key); 'signKey': the key
 *   whose signature a file must carry (the CLI's --sign-key, the extension's offsite.signKey), when
 *   the file has none by it (always `wrong`: only a key given asks for a signature).
 * - wrong: one was given and refused (false: none was given).
 * - symmetric: input 'passphrase' only: the password of a backup made with a passphrase and no key
 *   (symmetric OpenPGP, duplicity without a key), not a secret key's passphrase.
 */
export type NeededInput =
  | { readonly input: 'passphrase'; readonly wrong: boolean; readonly symmetric?: true }
  | { readonly input: 'sshPassphrase' | 'secretKey' | 'laterTime' | 'signKey'; readonly wrong: boolean }
  | { readonly input: 'hostKey'; readonly wrong: boolean; readonly fingerprint: string };

export interface OffsiteErrorOptions {
  /** What the user can do about it, in one short sentence. */
  readonly hint?: string;
  readonly cause?: unknown;
  /** The file (local or remote) the error is about, when there is one. */
  readonly file?: string;
  /** The input to give (again) to get past the error, when that is what it takes. */
  readonly needs?: NeededInput;
}

export class OffsiteError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly file?: string;
  readonly needs?: NeededInput;

  constructor(code: ErrorCode, message: string, options: OffsiteErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OffsiteError';
    this.code = code;
    this.hint = options.hint;
    this.file = options.file;
    this.needs = options.needs;
  }

  static is(e: unknown, code?: ErrorCode): e is OffsiteError {
    return e instanceof OffsiteError && (code === undefined || e.code === code);
  }

  /** The one line a user sees: what is wrong, then what to do. */
  get userMessage(): string {
    return this.hint ? `${this.message}. ${this.hint}` : this.message;
  }
}

/** True for our 'cancelled' errors and for the AbortError of an AbortSignal. */
export function isCancellation(e: unknown): boolean {
  if (OffsiteError.is(e, 'cancelled')) return true;
  return e instanceof Error && (e.name === 'AbortError' || (e as NodeJS.ErrnoException).code === 'ABORT_ERR');
}

export function cancelled(): OffsiteError {
  return new OffsiteError('cancelled', 'Cancelled');
}

/** Throws a 'cancelled' OffsiteError when the signal is aborted. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw cancelled();
}
