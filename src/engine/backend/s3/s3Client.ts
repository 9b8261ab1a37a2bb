// The S3 client, configured for AWS and for the S3-compatible stores that lag behind it (Swift's
// s3api, older Ceph and MinIO): checksums only where the API requires them (a streamed body would
// otherwise be sent aws-chunked, which those stores refuse), and Content-MD5 on every request with a
// buffered body (DeleteObjects needs it there; on uploads it makes the server check the data).
import { createHash } from 'node:crypto';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { OffsiteError } from '../../errors';

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
  const base: S3ClientConfig = {
    ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : { followRegionRedirects: true }),
    ...(settings.profile ? { profile: settings.profile } : {}),
    ...(settings.credentials ? { credentials: { ...settings.credentials } } : {}),
    // Not the SDK's NoOpLogger: with that one, some warnings go to the console anyway.
    logger: {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: (...a: unknown[]) => settings.log?.('debug', `S3 SDK: ${a.map(String).join(' ')}`),
      error: (...a: unknown[]) => settings.log?.('debug', `S3 SDK: ${a.map(String).join(' ')}`),
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: 10_000,
      // A server that stops answering mid-request (not one that closes the connection) is detected here.
      socketTimeout: 120_000,
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
