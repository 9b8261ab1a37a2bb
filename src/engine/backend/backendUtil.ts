// Small pieces every backend needs: name and range checks, the "source lied about its size" error,
// abort plumbing. Shared so that all backends classify these cases the same way.
import { BackendError, type CleanupPartialOptions } from './backend';
import { OffsiteError, cancelled, isCancellation } from '../errors';

/** Whether cleanupPartial(options) may report and remove the leftover `name` (options.only, when given, names them). */
export function inCleanupScope(options: CleanupPartialOptions, name: string): boolean {
  return !options.only || options.only.has(name);
}

/**
 * Remote names are flat file names (duplicity's remote is one folder). Anything else is a bug in the
 * caller, never something to retry.
 */
export function checkName(op: string, name: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new BackendError('permanent', op, String(name), `"${String(name)}" is not a valid remote file name`, {
      hint: 'Remote names are plain file names: no "/", "\\" or NUL, not "." or ".."',
    });
  }
}

/** Validates a get range against the object's size; returns [start, end) in bytes. */
export function checkRange(op: string, name: string, size: number, offset = 0, length?: number): { start: number; end: number } {
  const valid = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
  if (!valid(offset) || (length !== undefined && !valid(length))) {
    throw new BackendError('permanent', op, name, `Invalid byte range (offset ${offset}, length ${length}) for ${name}`, {
      hint: 'Offsets and lengths are whole, non-negative numbers of bytes',
    });
  }
  const end = length === undefined ? size : offset + length;
  if (offset > size || end > size) {
    throw new BackendError('permanent', op, name, `Byte range ${offset}..${end} passes the end of ${name} (${size} bytes)`, {
      hint: 'The remote file is shorter than expected: it may be truncated; verify the backup',
    });
  }
  return { start: offset, end };
}

/**
 * The source produced more or fewer bytes than it announced: the local file changed while it was
 * sent, or a bug upstream. Not a remote problem and not worth retrying as is.
 */
export function sizeMismatch(name: string, expected: number, got: number, more: boolean): OffsiteError {
  const what = more ? `more than the ${expected} bytes announced` : `${got} bytes, not the ${expected} announced`;
  return new OffsiteError('sourceChanged', `The data uploaded as ${name} was ${what}`, {
    file: name,
    hint: 'A local file changed while it was uploaded; run the backup again',
  });
}

/** AbortError (from streams, timers) becomes our 'cancelled' error; anything else is returned as is. */
export function normalizeAbort(e: unknown, signal?: AbortSignal): unknown {
  if (isCancellation(e) || signal?.aborted) return OffsiteError.is(e, 'cancelled') ? e : cancelled();
  return e;
}

/** Sleeps `ms`, rejecting with 'cancelled' when the signal fires. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(cancelled());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelled());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The password of a URL's user:password@, found as the URL parser finds it (up to the last "@" before
 * the path: a password may hold "@"). Not in rclone://remote:path, which has no user part and whose
 * path may hold "@".
 */
const USERINFO_PASSWORD = /^((?!rclone:)[a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/]*@/i;

/** The URL string with the password of its user:password@ left out, nothing else changed. */
export function withoutPassword(url: string): string {
  return url.replace(USERINFO_PASSWORD, '$1@');
}

/**
 * Every URL's password in a text (a tool's message quoting one) shown as ***: up to the last "@"
 * before the path or a blank, as a password may hold "@".
 */
export function maskPasswordsIn(text: string): string {
  return text.replace(/\/\/([^/@\s:]*):[^/\s]*@/g, '//$1:***@');
}

/** The URL string with the password of its user:password@ shown as ***, nothing else changed. */
export function maskPassword(url: string): string {
  return url.replace(USERINFO_PASSWORD, '$1:***@');
}

/**
 * A parameter name that says its value is a secret (rclone's secret_access_key, pass, token; a query's
 * token, X-Amz-Security-Token): the one list for URLs (redactSecretValues) and for a tool's messages
 * (redactSecretAssignments). From rclone's own options (`rclone config providers`): every one it marks
 * IsPassword (pass, password, password2, secret, library_key, …; a unit test holds the list to
 * rclone's), and those its help calls a key, token or credential without that mark: key and
 * account_key, client_secret, token, access_token, secret_access_key, session_token, sse_customer_key,
 * service_account_credentials (a JSON key), sas_url (a URL with its signature), sugarsync's
 * authorization, and the headers of http and webdav (rclone's example is an Authorization header).
 */
const SECRET_NAME = '(?:secret|password|passwd|pass|token|key|credentials|sas_url|authorization|headers)';
/** A whole parameter name that says secret (rclone's connection-string parameters: moved to its environment). */
export const SECRET_PARAM = new RegExp(`^[a-z0-9_-]*${SECRET_NAME}[a-z0-9_-]*$`, 'i');
/**
 * A secret's value in a connection string: quoted ('…', a quote doubled inside), or one level further
 * in (a remote in the quoted value of crypt's remote=, where its quotes are doubled: ''…''), or up to
 * the next "," or ":" (or whatever `unquoted` allows).
 */
const secretValue = (unquoted: string): string => `(?:''[^]*?''(?=[,:'"\\s]|$)|""[^]*?""(?=[,:'"\\s]|$)|"(?:[^"]|"")*"|'(?:[^']|'')*'|${unquoted})`;
const SECRET_ASSIGNMENT = new RegExp(`\\b([a-z0-9_]*${SECRET_NAME}[a-z0-9_]*)=${secretValue(`[^,:\\s"']+`)}`, 'gi');

/** In free text (a tool's message quoting a connection string): the value of every secret name=value shown as ***. */
export function redactSecretAssignments(text: string): string {
  return text.replace(SECRET_ASSIGNMENT, '$1=***');
}

/**
 * The values of a URL's secret parameters shown as ***, nothing else changed: those of an rclone
 * connection string (rclone://:s3,secret_access_key=…:bucket; a value runs to the next "," or ":"
 * unless quoted, and a quote is doubled inside quotes) and of a query (?token=…, to the next "&" or "#").
 */
export function redactSecretValues(url: string): string {
  return url
    .replace(new RegExp(`(,[a-z0-9_]*${SECRET_NAME}[a-z0-9_]*)=${secretValue('[^,:]*')}`, 'gi'), '$1=***')
    .replace(new RegExp(`([?&][^=&#]*${SECRET_NAME}[^=&#]*)=([^&#]*)`, 'gi'), '$1=***');
}

/**
 * A remote URL without its secrets, for messages, logs and the UI: the password of user:password@
 * as *** (maskPassword), and the values of secret parameters as *** (redactSecretValues). Works on the
 * text, so a URL that does not parse (the case of a "Bad remote URL" message) loses them alike.
 */
export function redactUrl(url: URL | string): string {
  return redactSecretValues(maskPassword(typeof url === 'string' ? url : url.href));
}

/** The units a tuning variable is given in: the scale to the unit used inside, and the least value. */
const ENV_UNITS = {
  seconds: { scale: 1000, min: 0.1 }, // → milliseconds
  MiB: { scale: 1024 * 1024, min: 1 }, // → bytes
  milliseconds: { scale: 1, min: 100 }, // OFFSITE_SSH_TIMEOUT_MS (tests)
} as const;

/**
 * A tuning variable from the environment (OFFSITE_S3_TIMEOUT, OFFSITE_SSH_TIMEOUT in seconds,
 * OFFSITE_S3_PART_MB in MiB; decimals allowed), scaled (milliseconds, bytes); undefined when unset or
 * empty. Anything else than a number of at least the unit's least value is a usage error naming the
 * variable: a typo does not silently leave the default in place.
 */
export function envNumber(env: Readonly<Record<string, string | undefined>>, key: string, unit: keyof typeof ENV_UNITS): number | undefined {
  const v = env[key];
  if (v === undefined || v.trim() === '') return undefined;
  const { scale, min } = ENV_UNITS[unit];
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) {
    throw new OffsiteError('usage', `${key} must be a number of ${unit} of at least ${min}, not ${JSON.stringify(v)}`, { hint: `Unset ${key} for the default` });
  }
  return Math.round(n * scale);
}
