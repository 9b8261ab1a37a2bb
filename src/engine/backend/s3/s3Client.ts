// The S3 client, configured for AWS and for the S3-compatible stores that lag behind it (Swift's
// s3api, older Ceph and MinIO): checksums only where the API requires them (a streamed body would
// otherwise be sent aws-chunked, which those stores refuse), and Content-MD5 on every request with a
// buffered body (DeleteObjects needs it there; on uploads it makes the server check the data).
//
// One attempt per request: RetryBackend retries transient failures (with backoff), and the SDK's own
// retries (3 attempts by default) multiplied them, so a silent server took ~30 minutes to fail. What
// the SDK's retries did beyond ours is clock-skew correction: the SDK still records the server's time
// on a RequestTimeTooSkewed answer, and s3Errors makes that answer transient, so our retry is signed
// with the corrected time.
import { createHash } from 'node:crypto';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { OffsiteError } from '../../errors';
import { maskPasswordsIn } from '../backendUtil';
import { awsSharedFiles, readAwsProfiles } from './awsProfiles';

/** Time to open a TCP connection (and TLS) to the store. */
export const S3_CONNECT_TIMEOUT_MS = 10_000;
/**
 * A request with no byte moving either way for this long has a dead link or a hung server. A live
 * store answers within seconds of a request's last byte, and keeps a long operation's connection busy
 * (AWS and Swift send spaces while completing a multipart upload); botocore (60 s) and the AWS Java
 * SDK (50 s) wait a little longer, but with RetryBackend's 5 attempts 30 s makes a silent server fail
 * in ~2.7 minutes, as a silent sftp server does. OFFSITE_S3_TIMEOUT (seconds) sets another.
 */
export const S3_IDLE_TIMEOUT_MS = 30_000;

export interface S3ClientSettings {
  /** An S3-compatible store's endpoint (path-style addressing); undefined: AWS. */
  readonly endpoint?: string;
  /** undefined: the AWS chain (AWS_REGION, the profile's region), else us-east-1. */
  readonly region?: string;
  /** A profile of ~/.aws/credentials and ~/.aws/config (undefined: AWS_PROFILE or "default"). */
  readonly profile?: string;
  /** Explicit keys (the extension's SecretStorage); undefined: the AWS credential chain. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string };
  /** Sockets per host: at least the operations in flight, times the parts of a multipart upload. */
  readonly maxSockets?: number;
  /** Where the SDK's own warnings go (default: nowhere; its default is the console). */
  readonly log?: (level: 'debug', message: string) => void;
  /** Idle time of a request before it fails (default S3_IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number;
  /** Environment of AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE (default process.env, which the SDK reads). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Commands whose buffered body gets a Content-MD5 header when it has none. */
const MD5_COMMANDS = new Set(['DeleteObjectsCommand', 'PutObjectCommand', 'UploadPartCommand']);

/**
 * Checks an endpoint given by the user (--s3-endpoint-url or AWS_ENDPOINT_URL) and returns it
 * normalised; a mistake here is a usage error, not something to retry.
 */
export function checkEndpoint(endpoint: string, from: string): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new OffsiteError('usage', `The S3 endpoint "${endpoint}" (${from}) is not a URL`, { hint: 'Write it with its scheme, e.g. https://s3.example.com or http://127.0.0.1:9000' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new OffsiteError('usage', `The S3 endpoint "${u.protocol}//${u.host}" (${from}) must be an http:// or https:// URL`, { hint: 'Write it like https://s3.example.com' });
  }
  if (u.username || u.password) {
    throw new OffsiteError('usage', `The S3 endpoint (${from}) must not contain credentials`, { hint: 'Give the keys through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (--s3-profile)' });
  }
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

export async function createS3Client(settings: S3ClientSettings): Promise<{ client: S3Client; region: string }> {
  // The SDK warns (on stderr, once) that its releases from 2027 need Node 22: not the user's business.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const env = settings.env ?? process.env;
  if (!settings.credentials) checkProfile(settings.profile, env);
  const credentials = settings.credentials ?? (settings.profile === undefined ? envKeysOverProfile(env) : undefined);
  const sdkLog = (...a: unknown[]): void => settings.log?.('debug', `S3 SDK: ${formatSdkLog(a)}`);
  const base: S3ClientConfig = {
    ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : { followRegionRedirects: true }),
    ...(settings.profile ? { profile: settings.profile } : {}),
    ...(credentials ? { credentials: { ...credentials } } : {}),
    // Not the SDK's NoOpLogger: with that one, some warnings go to the console anyway.
    logger: {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: sdkLog,
      error: sdkLog,
    },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: S3_CONNECT_TIMEOUT_MS,
      // Idle time of the socket (Node's socket.setTimeout): a server that stops answering mid-request,
      // not one that closes the connection, is detected here.
      socketTimeout: settings.idleTimeoutMs ?? S3_IDLE_TIMEOUT_MS,
      httpAgent: { keepAlive: true, maxSockets: settings.maxSockets ?? 50 },
      httpsAgent: { keepAlive: true, maxSockets: settings.maxSockets ?? 50 },
    },
  };
  let client = new S3Client(settings.region ? { ...base, region: settings.region } : base);
  let region = settings.region;
  if (!region) {
    try {
      region = await client.config.region();
    } catch {
      region = undefined;
    }
    if (!region) {
      // No region anywhere: us-east-1 answers for every bucket (AWS redirects, and we follow), and
      // S3-compatible stores mostly ignore it.
      client.destroy();
      region = 'us-east-1';
      client = new S3Client({ ...base, region });
    }
  }
  addContentMd5(client);
  return { client, region };
}

function addContentMd5(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const req = args.request as { headers?: Record<string, string>; body?: unknown } | undefined;
      if (req?.headers && MD5_COMMANDS.has(context.commandName ?? '') && !hasHeader(req.headers, 'content-md5')) {
        const body = req.body;
        const bytes = typeof body === 'string' ? Buffer.from(body) : body instanceof Uint8Array ? body : undefined;
        if (bytes) req.headers['content-md5'] = createHash('md5').update(bytes).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'offsiteContentMd5', priority: 'low' },
  );
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((h) => h.toLowerCase() === name);
}

/**
 * The SDK logs strings (the HTTP handler's warnings) and, for each failed request, an object with the
 * command, its input and the error. Shown: the command, bucket and key, the error's name, code, HTTP
 * status, message and request id (one attempt per request: Offsite retries); never the input's other fields (a body, SSE keys) nor the request.
 */
function formatSdkLog(args: readonly unknown[]): string {
  return args.map((a) => (typeof a === 'string' ? redactSdkText(a) : formatSdkObject(a))).join(' ');
}

interface SdkLogEntry {
  commandName?: unknown;
  input?: { Bucket?: unknown; Key?: unknown; Prefix?: unknown };
  error?: unknown;
  metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

function formatSdkObject(a: unknown): string {
  if (a === null || typeof a !== 'object') return String(a);
  const o = a as SdkLogEntry;
  if (typeof o.commandName !== 'string') return a instanceof Error ? describeError(a, undefined) : '(an object the SDK logged)';
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const bucket = str(o.input?.Bucket);
  const key = str(o.input?.Key) ?? (str(o.input?.Prefix) !== undefined ? `${str(o.input?.Prefix)}*` : undefined);
  const target = bucket ? ` s3://${bucket}${key !== undefined ? `/${key}` : ''}` : '';
  if (o.error === undefined) return `${o.commandName}${target}`;
  return `${o.commandName}${target} failed: ${describeError(o.error, o.metadata)}`;
}

function describeError(e: unknown, metadata: SdkLogEntry['metadata']): string {
  const err = (e ?? {}) as { name?: unknown; code?: unknown; message?: unknown; $metadata?: SdkLogEntry['metadata'] };
  const md = metadata ?? err.$metadata;
  const name = typeof err.name === 'string' ? err.name : 'Error';
  const code = typeof err.code === 'string' && err.code !== name ? ` ${err.code}` : '';
  const details = [
    typeof md?.httpStatusCode === 'number' ? `HTTP ${md.httpStatusCode}` : undefined,
    typeof md?.requestId === 'string' ? `request id ${md.requestId}` : undefined,
  ].filter((d) => d !== undefined);
  const raw = typeof err.message === 'string' ? err.message.replace(/\s+/g, ' ').trim() : '';
  // An HTTP error without a body (HEAD) has the message "UnknownError" or its own name.
  const message = raw === '' || raw === name || raw === 'UnknownError' ? '' : `: ${redactSdkText(raw.length > 300 ? `${raw.slice(0, 300)}…` : raw)}`;
  return `${name}${code}${message}${details.length ? ` (${details.join(', ')})` : ''}`;
}

/** Signatures, credentials and tokens that a message could quote (a presigned URL, an auth header). */
function redactSdkText(text: string): string {
  return maskPasswordsIn(text.replace(/\b(X-Amz-(?:Signature|Credential|Security-Token)|Signature|Credential|AWSAccessKeyId|Authorization)(=|: ?)[^\s&,;"']+/gi, '$1$2***'));
}

/**
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when AWS_PROFILE is set too. The AWS CLI and boto3
 * (so duplicity) take such keys before AWS_PROFILE (a --profile option before both); the SDK's chain
 * takes the profile (it says so in a warning, and that a later release may change it). Undefined
 * otherwise: without AWS_PROFILE the SDK's chain reads the keys itself.
 */
function envKeysOverProfile(env: Readonly<Record<string, string | undefined>>): S3ClientSettings['credentials'] {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!env.AWS_PROFILE || !accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
}

/**
 * A profile named with --s3-profile (or AWS_PROFILE) must be a section of the credentials or the
 * config file, as the SDK reads them (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, else ~/.aws/…):
 * otherwise the SDK only says that it found no credentials.
 */
function checkProfile(given: string | undefined, env: Readonly<Record<string, string | undefined>>): void {
  const profile = given ?? (env.AWS_PROFILE || undefined);
  if (profile === undefined) return;
  const from = given !== undefined ? '--s3-profile' : 'AWS_PROFILE';
  const { credentials, config } = awsSharedFiles(env);
  const names = new Set(readAwsProfiles(env).map((p) => p.name));
  if (names.has(profile)) return;
  const known = [...names].sort();
  throw new OffsiteError('config', `The AWS profile '${profile}' (${from}) is not in ${credentials.shown} or ${config.shown}`, {
    hint: known.length ? `Profiles there: ${known.join(', ')}` : `Add it there (e.g. \`aws configure --profile ${profile}\`), or drop ${from} and give the keys through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
  });
}
