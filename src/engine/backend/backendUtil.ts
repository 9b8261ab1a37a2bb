// Small pieces every backend needs: name and range checks, the "source lied about its size" error,
// abort plumbing. Shared so that all backends classify these cases the same way.
import { BackendError } from './backend';
import { OffsiteError, cancelled, isCancellation } from '../errors';

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

/** Every URL's password in a text (a tool's message quoting one) shown as ***. */
export function maskPasswordsIn(text: string): string {
  return text.replace(/\/\/([^/@\s:]*):[^/@\s]*@/g, '//$1:***@');
}

/** The URL string with the password of its user:password@ shown as ***, nothing else changed. */
export function maskPassword(url: string): string {
  return url.replace(USERINFO_PASSWORD, '$1:***@');
}

/** Removes the password (and any secret query value we know of) from a URL, for messages and logs. */
export function redactUrl(url: URL | string): string {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : new URL(url.href);
  } catch {
    // Not parseable: cut anything between "//" and "@" that looks like user:password.
    return String(url).replace(/\/\/([^/@:]*):[^/@]*@/, '//$1@');
  }
  if (u.password) u.password = '';
  for (const key of [...u.searchParams.keys()]) {
    if (/secret|password|passwd|token/i.test(key)) u.searchParams.set(key, '***');
  }
  return u.href;
}
