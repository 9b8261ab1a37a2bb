// S3 API and network errors → BackendError kinds, with a message that names the object and the store
// and a hint that says what to do. Messages are built from error codes and our own words: never from
// request headers, so no key or signature can leak into them.
import { BackendError } from '../backend';
import { OffsiteError } from '../../errors';

export interface S3ErrorContext {
  readonly op: string;
  /** The remote file name, when the operation is about one. */
  readonly name?: string;
  readonly bucket: string;
  /** displayUrl of the backend (bucket, prefix, endpoint). */
  readonly where: string;
  /** Whether an endpoint was given (the hints differ for AWS). */
  readonly customEndpoint: boolean;
}

interface SdkErrorLike {
  name?: string;
  message?: string;
  code?: string;
  Code?: string;
  StorageClass?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; clockSkewCorrected?: boolean };
  $retryable?: unknown;
  cause?: unknown;
}

const AUTH_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired', 'InvalidSecurity', 'MissingSecurityHeader', 'CredentialsProviderError']);
const PERMISSION_CODES = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem', 'InvalidPayer']);
const TRANSIENT_CODES = new Set([
  'InternalError', 'ServiceUnavailable', 'SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeoutException',
  'BadDigest', 'IncompleteBody', 'ConditionalRequestConflict', 'OperationAborted', 'TimeoutError', 'RequestAbortedError',
]);
const NO_SPACE_CODES = new Set(['QuotaExceeded', 'XMinioStorageFull', 'InsufficientStorage', 'StorageFull', 'StorageQuotaExceeded']);
const NETWORK_TRANSIENT = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ENETRESET', 'EAI_AGAIN', 'ENOTCONN', 'EPROTO', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE', 'ECANCELED',
]);

/** Node's codes for a server certificate that no trusted CA signed: the user can add the CA. */
const TLS_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED',
]);
/** Node's codes for a certificate that is not valid (expired, for another name, …): no retry mends it. */
const TLS_INVALID = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** The S3 error code ('NoSuchKey', 'AccessDenied', …) or the network error code, if any. */
export function s3ErrorCode(e: unknown): string | undefined {
  const err = e as SdkErrorLike | undefined;
  if (!err || typeof err !== 'object') return undefined;
  // Network errors carry $metadata too (attempts), but no status: their code is the errno.
  if (err.Code) return err.Code;
  if (err.$metadata?.httpStatusCode !== undefined && err.name) return err.name;
  return err.code ?? (err.cause as SdkErrorLike | undefined)?.code ?? err.name;
}

export function s3HttpStatus(e: unknown): number | undefined {
  return (e as SdkErrorLike | undefined)?.$metadata?.httpStatusCode;
}

const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

/** True for storage classes whose objects must be thawed (restored) before they can be read. */
export function isArchiveClass(storageClass: string | undefined): boolean {
  return storageClass !== undefined && ARCHIVE_CLASSES.has(storageClass.toUpperCase());
}

export function classifyS3Error(e: unknown, ctx: S3ErrorContext): BackendError | OffsiteError {
  if (e instanceof OffsiteError) return e;
  const err = (e ?? {}) as SdkErrorLike;
  const status = s3HttpStatus(e);
  const code = s3ErrorCode(e) ?? 'Unknown';
  const { op, name, where } = ctx;
  const about = name === undefined ? where : `${name} in ${where}`;
  const mk = (kind: ConstructorParameters<typeof BackendError>[0], message: string, hint: string): BackendError =>
    new BackendError(kind, op, name, message, { cause: e, hint });
  const endpointHint = ctx.customEndpoint ? 'Check --s3-endpoint-url (or AWS_ENDPOINT_URL) and that the server is running' : 'Check the network connection to AWS';
  const keysHint = 'Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile (--s3-profile, ~/.aws/credentials)';

  if (code === 'CredentialsProviderError' || err.name === 'CredentialsProviderError') {
    return mk('auth', `No S3 credentials found for ${where}`, 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials with --s3-profile');
  }
  if (status === undefined) {
    // No HTTP answer: a network problem, or the SDK refused before sending.
    if (code === 'ENOTFOUND') return mk('permanent', `Cannot find the S3 server of ${where} (unknown host name)`, endpointHint);
    if (TLS_UNTRUSTED.has(code)) {
      return mk('permanent', `The S3 server of ${where} has a TLS certificate this computer does not trust (${err.message ?? code})`,
        `If the store uses its own certificate authority (or a proxy re-signs TLS), give its CA certificate (a PEM file) in NODE_EXTRA_CA_CERTS${ctx.customEndpoint ? '; else check --s3-endpoint-url' : ''}`);
    }
    if (TLS_INVALID.has(code)) {
      return mk('permanent', `The TLS certificate of the S3 server of ${where} is not valid for it (${err.message ?? code})`,
        ctx.customEndpoint ? 'Check the host name in --s3-endpoint-url (or AWS_ENDPOINT_URL), or have the certificate renewed' : 'Check the system clock, and any proxy between this computer and AWS');
    }
    // An https:// endpoint where an http server listens: its answer is no TLS record.
    if (code === 'EPROTO' && /wrong version number/i.test(err.message ?? '')) {
      return mk('permanent', `The S3 server of ${where} does not answer in TLS (https://)`, 'If the server has no TLS, write the endpoint with http:// (--s3-endpoint-url or AWS_ENDPOINT_URL)');
    }
    if (code === 'ERR_INVALID_URL' || code === 'ERR_INVALID_ARG_TYPE') return mk('permanent', `Cannot send the request for ${about}: ${err.message ?? code}`, endpointHint);
    if (NETWORK_TRANSIENT.has(code) || TRANSIENT_CODES.has(code) || err.$retryable !== undefined) {
      const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'TimeoutError' ? 'no answer in time' : code;
      return mk('transient', `Cannot reach the S3 server of ${where} (${what}) during ${op}${name ? ` of ${name}` : ''}`, endpointHint);
    }
    if (/region is missing/i.test(err.message ?? '')) return mk('permanent', `No AWS region configured for ${where}`, 'Set AWS_REGION, or a region in the profile of ~/.aws/config');
    return mk('transient', `S3 ${op} of ${about} failed: ${err.message ?? code}`, endpointHint);
  }

  switch (code) {
    case 'NoSuchBucket':
      return mk('notFound', `The bucket "${ctx.bucket}" does not exist (${where})`, ctx.customEndpoint
        ? 'Create the bucket first, or check the bucket name and --s3-endpoint-url'
        : 'Create the bucket first, or check the bucket name and the region (AWS_REGION)');
    case 'NoSuchKey':
    case 'NotFound':
      return mk('notFound', `${about} does not exist`, 'Check the remote URL, or list the remote to see what it holds');
    case 'NoSuchUpload':
      return mk('notFound', `The multipart upload of ${about} no longer exists`, 'Another client may have aborted it; run the backup again');
    case 'InvalidObjectState':
      return mk('permanent', `${about} is archived${err.StorageClass ? ` in the ${err.StorageClass} storage class` : ''} and must be restored (thawed) before it can be read`,
        'Start a restore of the archived objects (S3 console or `aws s3api restore-object`), wait until they are available, then try again');
    case 'InvalidStorageClass':
      return mk('permanent', `The S3 store of ${where} does not offer the storage class asked for`, 'Choose a storage class the store supports (--s3-storage-class), or leave it out for STANDARD');
    case 'PreconditionFailed':
      return mk('exists', `${about} already exists`, 'Refusing to replace it; remove it first if it is not needed');
    case 'EntityTooLarge':
      return mk('permanent', `${about} is too large for one S3 upload`, 'Use a smaller --volsize');
    case 'RequestTimeTooSkewed':
      // The SDK took the server's time from this answer (the client makes one attempt: s3Client.ts):
      // the next attempt is signed with it. Only a clock that drifts on, or a store that sends no
      // time, fails again.
      if (err.$metadata?.clockSkewCorrected) {
        return mk('transient', `The clock of this computer differs too much from the S3 server's (${where}); corrected for the next attempt`, 'Set the system clock right (enable NTP)');
      }
      return mk('permanent', `The clock of this computer differs too much from the S3 server's (${where})`, 'Set the system clock right (enable NTP), then try again');
    case 'AuthorizationHeaderMalformed':
    case 'PermanentRedirect':
    case 'IllegalLocationConstraintException':
      return mk('permanent', `The bucket "${ctx.bucket}" is in another region than the one used (${where})`, 'Set AWS_REGION to the bucket\'s region');
    default:
  }
  if (AUTH_CODES.has(code)) return mk('auth', `The S3 server refused the credentials (${code}) for ${about}`, keysHint);
  if (PERMISSION_CODES.has(code)) return mk('permission', `Access denied (${op}) to ${about}`, `${keysHint}; the key needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the bucket`);
  if (NO_SPACE_CODES.has(code) || status === 507) return mk('noSpace', `The S3 store of ${where} is full or over quota (${op}${name ? ` of ${name}` : ''})`, 'Free some space there, remove old backups, or raise the quota');
  if (status === 403) {
    // A HEAD request has no body, hence no code: the credentials or the permissions are wrong.
    return mk('auth', `The S3 server refused access (${op}) to ${about} (403 Forbidden)`, `${keysHint}, and the key's permissions on the bucket`);
  }
  if (status === 404) return mk('notFound', `${about} does not exist`, 'Check the remote URL, or list the remote to see what it holds');
  if (status === 501 || code === 'NotImplemented') return mk('permanent', `The S3 store of ${where} does not support ${op} (${code})`, 'This store lacks a feature Offsite needs; tell us which store it is');
  if (TRANSIENT_CODES.has(code) || status >= 500 || status === 408 || status === 429) {
    return mk('transient', `The S3 server failed ${op}${name ? ` of ${name}` : ''} (${code}, HTTP ${status}) at ${where}`, 'This is usually temporary; try again later if it persists');
  }
  return mk('permanent', `S3 ${op} of ${about} failed: ${code} (HTTP ${status})`, 'Check the bucket, its permissions and the remote URL');
}
