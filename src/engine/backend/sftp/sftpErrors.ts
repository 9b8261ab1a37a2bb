// Turns ssh2/SFTP failures into BackendErrors, once, where they are born. SFTP v3 has few status codes
// (OpenSSH maps ENOSPC, EDQUOT, EEXIST and most others to a bare SSH_FX_FAILURE), so the callers add
// what they know (a statvfs, a stat of the target) before calling classify.
import { BackendError, type BackendErrorKind } from '../backend';
import { OffsiteError } from '../../errors';

/** SSH_FX_* status codes (draft-ietf-secsh-filexfer-02). */
export const FX = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** Network-level errno codes and ssh2 messages that mean "the link broke, try again". */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_NOT_CONNECTED',
]);
const TRANSIENT_MESSAGES =
  /No response from server|Not connected|Keepalive timeout|Timed out|timed out|Connection lost|connection closed|Channel not open|Unable to start subsystem|ECONNRESET|socket hang up|stalled/i;

export function sftpStatus(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function isTransientNetworkError(e: unknown): boolean {
  if (BackendError.isKind(e)) return e.kind === 'transient';
  const err = e as { code?: unknown; message?: unknown; level?: unknown } | undefined;
  if (!err) return false;
  if (typeof err.code === 'string' && TRANSIENT_CODES.has(err.code)) return true;
  if (err.code === FX.NO_CONNECTION || err.code === FX.CONNECTION_LOST) return true;
  if (err.level === 'client-timeout' || err.level === 'client-socket') return true;
  return typeof err.message === 'string' && TRANSIENT_MESSAGES.test(err.message);
}

export interface ClassifyContext {
  readonly op: string;
  /** The remote file name (final name) the operation was about. */
  readonly name?: string;
  /** The remote's URL for messages. */
  readonly where: string;
  /** Set when the caller found the remote file system full (statvfs) after a failure. */
  readonly noSpace?: boolean;
}

/** Classifies any error from an SFTP operation. OffsiteErrors (ours) pass through unchanged. */
export function classifySftpError(e: unknown, c: ClassifyContext): OffsiteError {
  if (e instanceof OffsiteError) return e;
  const what = c.name ? `${c.name} on ${c.where}` : c.where;
  const detail = (e as Error)?.message ?? String(e);
  const make = (kind: BackendErrorKind, message: string, hint?: string): BackendError =>
    new BackendError(kind, c.op, c.name, message, { cause: e, hint });
  if (c.noSpace) {
    return make('noSpace', `The remote disk is full: cannot write ${what}`, 'Free space on the server (or raise the quota), then run the backup again');
  }
  if (isTransientNetworkError(e)) {
    return make('transient', `Lost the connection to ${c.where} during ${c.op}: ${detail}`, 'Check the network and the server');
  }
  switch (sftpStatus(e)) {
    case FX.NO_SUCH_FILE:
      return make('notFound', `${what} does not exist`);
    case FX.PERMISSION_DENIED:
      return make('permission', `Permission denied for ${c.op} of ${what}`, 'Check the owner and permissions of the remote folder and its files');
    case FX.OP_UNSUPPORTED:
      return make('permanent', `The SFTP server does not support ${c.op} (${what})`, 'Use an OpenSSH server or another remote');
    default:
      return make('permanent', `The SFTP server refused ${c.op} of ${what}: ${detail}`, 'See the server log; check the remote folder and its disk');
  }
}
