// s3://bucket/prefix remotes (and duplicity's boto3+s3://) on AWS S3 or any S3-compatible store.
// An S3 object appears only once its PUT (or CompleteMultipartUpload) has succeeded, so puts need no
// temporary names. Every upload carries Content-MD5, so the server checks what it stores: a local file
// is hashed first, then streamed (no copy in memory); a big one goes in parts, each hashed and sent
// from its range of the file, a few at once. "Do not replace" uses a conditional PUT where the store
// has one (probed once), else HEAD then PUT (racy, but the backup lock allows one writer).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Backend, BackendFileInfo, CleanupPartialOptions, BackendProperties, BlobSource, GetOptions, ListOptions, OpOptions, PutOptions } from './backend';
import { BackendError } from './backend';
import { checkName, checkRange, inCleanupScope, envNumber, normalizeAbort, sizeMismatch } from './backendUtil';
import { isPartialName, partialNameFor, partialTarget } from './fileBackend';
import { registerBackend, type BackendContext } from './registry';
import { checkEndpoint, createS3Client } from './s3/s3Client';
import { classifyS3Error, isArchiveClass, s3ErrorCode, s3HttpStatus } from './s3/s3Errors';
import { parseS3Url, s3DisplayUrl, type S3Location } from './s3/s3Url';
import { OffsiteError, cancelled, isCancellation, throwIfAborted } from '../errors';

const MiB = 1024 * 1024;
/** S3's limits: parts are 5 MiB to 5 GiB (the last may be smaller), at most 10 000 of them. */
const MIN_PART = 5 * MiB;
const MAX_PARTS = 10_000;
const DELETE_BATCH = 1000;
const READ_CHUNK = MiB;
/** fileBackend's prefix of temporary names (isPartialName): only the probe of conditional PUTs makes one here. */
const TEMP_PREFIX = '.offsite-part-';

/** The options the CLI and the extension may set (BackendContext.options), all optional. */
export interface S3Options {
  /** An S3-compatible store (path-style); default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS. */
  readonly s3EndpointUrl?: string;
  /** Profile of ~/.aws/credentials and ~/.aws/config (default AWS_PROFILE, else "default"). */
  readonly s3Profile?: string;
  /** Default: the AWS chain (AWS_REGION, the profile), else us-east-1. */
  readonly s3Region?: string;
  /** STANDARD, STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE, …; manifests stay STANDARD in archive classes. */
  readonly s3StorageClass?: string;
  /** Keys from the extension's SecretStorage (both, or neither: then the AWS chain). */
  readonly s3AccessKeyId?: string;
  readonly s3SecretAccessKey?: string;
  readonly s3SessionToken?: string;
  /** Operations in flight at once (BackendProperties.connections). Default 4. */
  readonly concurrency?: number;
  /**
   * Environment (default process.env) for AWS_ENDPOINT_URL(_S3), and for tuning: OFFSITE_S3_PART_MB
   * (multipart part size, default 16), OFFSITE_S3_MULTIPART_MB (larger files go in parts, default 64)
   * and OFFSITE_S3_TIMEOUT (seconds a request may go without a byte moving, default 30: S3_IDLE_TIMEOUT_MS);
   * a value that is no such number is refused (backendUtil envNumber).
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface S3BackendParams extends S3Location {
  readonly client: S3Client;
  readonly endpoint?: string;
  readonly storageClass?: string;
  /** Default 4. */
  readonly concurrency?: number;
  /** Size of a multipart upload's parts (default 16 MiB; raised when a file would need more than 10 000). */
  readonly partSize?: number;
  /** Files above this size go in parts (default 64 MiB). */
  readonly multipartThreshold?: number;
  /** Parts of one upload in flight at once (default 4). */
  readonly partConcurrency?: number;
  /** Whether the store has conditional PUTs (If-None-Match: *); default: probe on the first put. */
  readonly conditionalWrites?: boolean;
  /** Keys per list request (default 1000, S3's maximum) and per DeleteObjects (default 1000). */
  readonly listPageSize?: number;
  readonly deleteBatch?: number;
  /** Where a list({ partial: true }) says that the store would not list its unfinished multipart uploads. */
  readonly log?: (level: 'debug' | 'info' | 'warn', message: string) => void;
}

/** The name cleanupPartial reports for an unfinished multipart upload of `name`. */
export function multipartLeftoverName(name: string, uploadId: string): string {
  return `${name} (unfinished multipart upload ${uploadId.slice(0, 12)})`;
}

export class S3Backend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  /** The SDK client (tests add middleware to it to inject faults). */
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly where: string;
  private readonly customEndpoint: boolean;
  private readonly storageClass?: string;
  private readonly partSize: number;
  private readonly threshold: number;
  private readonly partConcurrency: number;
  private readonly listPageSize?: number;
  private readonly deleteBatch: number;
  private conditional: Promise<boolean> | undefined;
  /** Upload ids and temporary keys of this backend's puts in progress: cleanupPartial leaves them alone. */
  private readonly inflight = new Set<string>();
  /** Failed multipart uploads whose abort did not reach the server (it was down): aborted again later. */
  private readonly orphans = new Map<string, string>();
  /**
   * Keys whose CreateMultipartUpload got no answer (a cut connection, a server killed right then): the
   * server may have started an upload whose id we never learned. Looked up and aborted later, as orphans.
   */
  private readonly unanswered = new Set<string>();
  private readonly log?: S3BackendParams['log'];

  constructor(params: S3BackendParams) {
    this.client = params.client;
    this.bucket = params.bucket;
    this.prefix = params.prefix;
    this.displayUrl = s3DisplayUrl(params);
    this.where = s3DisplayUrl(params, params.endpoint);
    this.customEndpoint = params.endpoint !== undefined;
    this.storageClass = params.storageClass;
    this.properties = { connections: Math.max(1, Math.floor(params.concurrency ?? 4)) };
    this.partSize = Math.max(MIN_PART, params.partSize ?? 16 * MiB);
    this.threshold = Math.max(this.partSize, params.multipartThreshold ?? 64 * MiB);
    this.partConcurrency = Math.max(1, params.partConcurrency ?? 4);
    this.listPageSize = params.listPageSize;
    this.deleteBatch = Math.min(DELETE_BATCH, Math.max(1, params.deleteBatch ?? DELETE_BATCH));
    if (params.conditionalWrites !== undefined) this.conditional = Promise.resolve(params.conditionalWrites);
    this.log = params.log;
  }

  private key(name: string): string {
    return this.prefix + name;
  }

  private classify(e: unknown, op: string, name?: string, signal?: AbortSignal): unknown {
    const n = normalizeAbort(e, signal);
    if (n !== e) return n;
    if (e instanceof SourceError) return e.cause;
    return classifyS3Error(e, { op, name, bucket: this.bucket, where: this.where, customEndpoint: this.customEndpoint });
  }

  /** Manifests stay readable without a thaw, as duplicity keeps them: restores start from them. */
  private classFor(name: string): StorageClass | undefined {
    const sc = this.storageClass;
    if (!sc || sc === 'STANDARD') return undefined; // the default, and the only class some stores accept by name
    if (isArchiveClass(sc) && name.includes('manifest')) return undefined;
    return sc as StorageClass;
  }

  // ----------------------------------------------------------------------------------------- put

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    checkName('put', name);
    if (isPartialName(name)) {
      throw new BackendError('permanent', 'put', name, `"${name}" is reserved for temporary objects`, { hint: 'Use another name' });
    }
    const { signal } = options;
    throwIfAborted(signal);
    const overwrite = options.overwrite === true;
    try {
      const conditional = !overwrite && (await this.conditionalWrites(signal));
      const how = source.localPath !== undefined ? (source.size > this.threshold ? 'fileInParts' : 'single') : source.size <= this.partSize ? 'single' : 'streamInParts';
      // Without conditional PUTs, HEAD is the check. With them, a single PUT needs none, and a big
      // upload gets one anyway: a refused one would send it all for nothing.
      if (!overwrite && (!conditional || how !== 'single') && (await this.exists(name, signal))) throw this.existsError(name);
      if (how === 'fileInParts') await this.putFileInParts(name, source, source.localPath as string, options);
      else if (how === 'single') await this.putSingle(name, source, options, conditional);
      else await this.putStreamInParts(name, source, options);
    } catch (e) {
      throw this.classify(e, 'put', name, signal);
    }
  }

  /** One PutObject: a local file is hashed, then streamed; other sources are read into memory (≤ partSize). */
  private async putSingle(name: string, source: BlobSource, options: PutOptions, conditional: boolean): Promise<void> {
    const { signal, onProgress } = options;
    const size = source.size;
    let body: Readable | Buffer;
    let md5: Buffer;
    if (source.localPath !== undefined) {
      md5 = await md5OfFile(name, source.localPath, 0, size, signal, true);
      body = size === 0 ? Buffer.alloc(0) : fileRange(name, source.localPath, 0, size, onProgress);
    } else {
      body = await readExactly(name, source, signal);
      md5 = createHash('md5').update(body).digest();
    }
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          Body: body,
          ContentLength: size,
          ContentMD5: md5.toString('base64'),
          StorageClass: this.classFor(name),
          IfNoneMatch: conditional ? '*' : undefined,
        }),
        { abortSignal: signal },
      );
    } catch (e) {
      if (body instanceof Readable) body.destroy();
      // A retried request whose first answer was lost finds its own object: that is success.
      if (conditional && s3ErrorCode(e) === 'PreconditionFailed' && (await this.etagIs(name, md5, signal))) return;
      throw unwrapSource(e);
    }
    if (!(body instanceof Readable)) onProgress?.(size);
  }

  /** A big local file: parts hashed and sent from their range of the file, partConcurrency at once. */
  private async putFileInParts(name: string, source: BlobSource, file: string, options: PutOptions): Promise<void> {
    const { signal, onProgress } = options;
    const size = source.size;
    const st = await fs.promises.stat(file).catch((e: unknown) => {
      throw new SourceError(e);
    });
    if (st.size !== size) throw sizeMismatch(name, size, st.size, st.size > size);
    const partSize = Math.max(this.partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(size / partSize);
    const uploadId = await this.createUpload(name, signal);
    const parts: CompletedPart[] = new Array(count);
    let sent = 0;
    let next = 0;
    let failed: unknown;
    const worker = async (): Promise<void> => {
      while (failed === undefined && next < count) {
        const i = next++;
        const start = i * partSize;
        const len = Math.min(partSize, size - start);
        try {
          parts[i] = await this.uploadPart(name, uploadId, i + 1, () => md5OfFile(name, file, start, len, signal, false), () => fileRange(name, file, start, len), len, signal);
        } catch (e) {
          failed ??= e;
          return;
        }
        sent += len;
        onProgress?.(sent);
      }
    };
    await this.finishUpload(name, uploadId, options, async () => {
      await Promise.all(Array.from({ length: Math.min(this.partConcurrency, count) }, worker));
      if (failed !== undefined) throw failed;
      return parts;
    });
  }

  private async createUpload(name: string, signal?: AbortSignal): Promise<string> {
    let created;
    try {
      created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(name), StorageClass: this.classFor(name) }), { abortSignal: signal });
    } catch (e) {
      // No answer (the client makes one attempt per request: s3Client.ts).
      if (s3HttpStatus(e) === undefined) this.unanswered.add(this.key(name));
      throw e;
    }
    if (!created.UploadId) throw new BackendError('permanent', 'put', name, `The S3 store of ${this.where} started a multipart upload without an id`, { hint: 'The store is not S3-compatible enough' });
    this.inflight.add(created.UploadId);
    return created.UploadId;
  }

  /** Sends one part; a transient failure is retried here (a few times), from a fresh read of the range. */
  private async uploadPart(
    name: string,
    uploadId: string,
    partNumber: number,
    hash: () => Promise<Buffer>,
    body: () => Readable | Buffer,
    len: number,
    signal?: AbortSignal,
  ): Promise<CompletedPart> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      const md5 = await hash();
      const b = body();
      try {
        const r = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: this.key(name), UploadId: uploadId, PartNumber: partNumber, Body: b, ContentLength: len, ContentMD5: md5.toString('base64') }),
          { abortSignal: signal },
        );
        if (!r.ETag) throw new BackendError('permanent', 'put', name, `The S3 store of ${this.where} returned no ETag for part ${partNumber} of ${name}`, { hint: 'The store is not S3-compatible enough' });
        return { PartNumber: partNumber, ETag: r.ETag };
      } catch (e) {
        if (b instanceof Readable) b.destroy();
        const err = this.classify(unwrapSource(e), 'put', name, signal);
        if (attempt >= 3 || !BackendError.isKind(err, 'transient')) throw unwrapSource(e);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }

  /** Gathers the parts, then completes the upload; on any failure aborts it (nothing is left to see). */
  private async finishUpload(name: string, uploadId: string, options: PutOptions, sendParts: () => Promise<CompletedPart[]>): Promise<void> {
    const { signal } = options;
    try {
      const parts = await sendParts();
      throwIfAborted(signal);
      // Narrows the window of the HEAD-then-PUT race to the time of this call.
      if (!options.overwrite && (await this.exists(name, signal))) throw this.existsError(name);
      const conditional = !options.overwrite && (await this.conditionalWrites(signal));
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(name), UploadId: uploadId, MultipartUpload: { Parts: parts }, IfNoneMatch: conditional ? '*' : undefined }),
        { abortSignal: signal },
      );
    } catch (e) {
      // Not under the caller's signal: the abort must reach the server even when the put was cancelled.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(name), UploadId: uploadId })).catch((err: unknown) => {
        if (s3ErrorCode(err) !== 'NoSuchUpload') this.orphans.set(uploadId, this.key(name));
      });
      throw e;
    } finally {
      this.inflight.delete(uploadId);
    }
    await this.abortOrphans();
  }

  /** Best effort, after a success (the server is back) and on close: what is left, cleanup removes. */
  private async abortOrphans(): Promise<void> {
    try {
      // The uploads of a key whose start went unanswered, but for the ones this backend is sending now.
      for (const key of [...this.unanswered]) {
        const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }));
        for (const u of page.Uploads ?? []) if (u.Key === key && u.UploadId && !this.inflight.has(u.UploadId)) this.orphans.set(u.UploadId, key);
        this.unanswered.delete(key);
      }
      for (const [uploadId, key] of [...this.orphans]) {
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
        } catch (e) {
          if (s3ErrorCode(e) !== 'NoSuchUpload') throw e;
        }
        this.orphans.delete(uploadId);
      }
    } catch {
      // The server is still out of reach: tried again after the next success, and on close.
    }
  }

  /** A big source that is not a local file: lib-storage reads it into parts (memory: partSize × (partConcurrency + 1)). */
  private async putStreamInParts(name: string, source: BlobSource, options: PutOptions): Promise<void> {
    const { signal, onProgress } = options;
    const input = checkedStream(name, source.open(), source.size);
    // Ending the input (not Upload.abort(), which returns before the upload is aborted) makes
    // lib-storage abort the multipart upload before done() rejects.
    const onAbort = (): void => {
      input.destroy(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.key(name), Body: input, ContentLength: source.size, StorageClass: this.classFor(name) },
      partSize: this.partSize,
      queueSize: this.partConcurrency,
      leavePartsOnError: false,
    });
    upload.on('httpUploadProgress', (p) => {
      if (p.loaded !== undefined) onProgress?.(p.loaded);
    });
    let id: string | undefined;
    const track = setInterval(() => {
      if (upload.uploadId && !id) this.inflight.add((id = upload.uploadId));
    }, 50);
    try {
      await upload.done();
    } catch (e) {
      throw unwrapSource(e);
    } finally {
      clearInterval(track);
      if (id) this.inflight.delete(id);
      signal?.removeEventListener('abort', onAbort);
      input.destroy();
    }
  }

  /** Whether the store refuses a PUT over an existing key when asked to (If-None-Match: *). */
  private conditionalWrites(signal?: AbortSignal): Promise<boolean> {
    if (!this.conditional) {
      this.conditional = this.probeConditional(signal);
      this.conditional.catch(() => {
        this.conditional = undefined; // try again on the next put
      });
    }
    return this.conditional;
  }

  private async probeConditional(signal?: AbortSignal): Promise<boolean> {
    const temp = partialNameFor('probe');
    this.inflight.add(temp);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(temp), Body: Buffer.alloc(0), IfNoneMatch: '*' }), { abortSignal: signal });
    } catch (e) {
      this.inflight.delete(temp);
      if (s3HttpStatus(e) === 501 || s3ErrorCode(e) === 'NotImplemented') return false;
      throw e;
    }
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(temp) }));
    } catch {
      // A key that can write but not delete: cleanupPartial reports the probe object later.
    } finally {
      this.inflight.delete(temp);
    }
    return true;
  }

  private async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }), { abortSignal: signal });
      return true;
    } catch (e) {
      if (s3HttpStatus(e) === 404) return false;
      throw e;
    }
  }

  private async etagIs(name: string, md5: Buffer, signal?: AbortSignal): Promise<boolean> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }), { abortSignal: signal });
      return h.ETag?.replace(/"/g, '') === md5.toString('hex');
    } catch {
      return false;
    }
  }

  private existsError(name: string): BackendError {
    return new BackendError('exists', 'put', name, `${name} already exists in ${this.displayUrl}`, { hint: 'Refusing to replace it; remove it first if it is not needed' });
  }

  // ----------------------------------------------------------------------------------------- get

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    checkName('get', name);
    const { signal } = options;
    const offset = options.offset ?? 0;
    const length = options.length;
    checkRange('get', name, Number.MAX_SAFE_INTEGER, offset, length); // valid numbers
    throwIfAborted(signal);
    try {
      if (length === 0) {
        const info = await this.stat(name, { signal });
        checkRange('get', name, info.size, offset, 0);
        return Readable.from([]);
      }
      const ranged = offset > 0 || length !== undefined;
      let res;
      try {
        res = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name), Range: ranged ? `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` : undefined }),
          { abortSignal: signal },
        );
      } catch (e) {
        if (s3HttpStatus(e) !== 416 && s3ErrorCode(e) !== 'InvalidRange') throw e;
        // The range starts at or past the end: empty when it starts exactly there, else an error.
        const info = await this.stat(name, { signal });
        checkRange('get', name, info.size, offset, length);
        if (offset === info.size) return Readable.from([]);
        throw e;
      }
      const body = res.Body as Readable | undefined;
      if (!body) throw new BackendError('permanent', 'get', name, `The S3 store of ${this.where} sent no data for ${name}`, { hint: 'Try again; the store may be misbehaving' });
      let total = res.ContentLength ?? 0;
      if (ranged) {
        const m = /\/(\d+)\s*$/.exec(res.ContentRange ?? '');
        total = m ? Number(m[1]) : Number.NaN;
        if (!Number.isFinite(total)) {
          body.destroy();
          throw new BackendError('permanent', 'get', name, `The S3 store of ${this.where} ignored the byte range asked for ${name}`, { hint: 'The store does not support ranged reads' });
        }
      }
      let range;
      try {
        range = checkRange('get', name, total, offset, length);
      } catch (e) {
        body.destroy();
        throw e;
      }
      return this.guardBody(name, body, range.end - range.start, signal);
    } catch (e) {
      throw this.classify(e, 'get', name, signal);
    }
  }

  /** The response body, checked for length, with its errors classified and the signal honoured. */
  private guardBody(name: string, body: Readable, expected: number, signal?: AbortSignal): Readable {
    let got = 0;
    const out = new Transform({
      readableHighWaterMark: READ_CHUNK,
      transform(chunk: Buffer, _enc, cb): void {
        got += chunk.length;
        cb(null, chunk);
      },
      flush: (cb): void => {
        cb(got === expected ? null : this.cut(name, got, expected));
      },
    });
    const onAbort = (): void => {
      out.destroy(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    body.on('error', (e) => out.destroy(signal?.aborted ? cancelled() : (this.classify(e, 'get', name) as Error)));
    // A body that ends early without an error (the connection closed): flush reports it.
    body.on('aborted', () => out.destroy(this.cut(name, got, expected)));
    out.on('close', () => {
      signal?.removeEventListener('abort', onAbort);
      body.destroy();
    });
    body.pipe(out);
    return out;
  }

  private cut(name: string, got: number, expected: number): BackendError {
    return new BackendError('transient', 'get', name, `The download of ${name} from ${this.where} stopped after ${got} of ${expected} bytes`, {
      hint: 'The connection was lost; try again',
    });
  }

  // ----------------------------------------------------------------------------------------- the rest

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    checkName('stat', name);
    throwIfAborted(options.signal);
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }), { abortSignal: options.signal });
      return { name, size: h.ContentLength ?? 0, mtime: h.LastModified };
    } catch (e) {
      throw this.classify(e, 'stat', name, options.signal);
    }
  }

  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    const { signal } = options;
    throwIfAborted(signal);
    let token: string | undefined;
    do {
      let page;
      try {
        // The delimiter keeps "subfolders" (not ours) out: the remote is one flat folder.
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, Delimiter: '/', ContinuationToken: token, MaxKeys: this.listPageSize }),
          { abortSignal: signal },
        );
      } catch (e) {
        throw this.classify(e, 'list', undefined, signal);
      }
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(this.prefix.length) ?? '';
        if (name === '' || name.includes('/')) continue;
        if (!isPartialName(name)) yield { name, size: o.Size ?? 0, mtime: o.LastModified };
        else if (options.partial && !this.inflight.has(name)) yield { name, size: o.Size ?? 0, mtime: o.LastModified, partial: true, ...partialTarget(name) };
      }
      // Part of a listing is worse than none: a set whose manifest is not listed looks interrupted,
      // and the next backup or cleanup would delete its volumes.
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw new BackendError('permanent', 'list', undefined, `The S3 store of ${this.where} said its listing goes on, but gave no continuation token for the rest`, {
          hint: 'The store is not S3-compatible enough (ListObjectsV2); tell us which store it is',
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (!options.partial) return;
    // Another API: a key allowed to list objects may not be allowed this (s3:ListBucketMultipartUploads),
    // and some stores lack it. What was listed stands; the log says what could not be.
    let uploads: Array<{ label: string; target: string; initiated?: Date }>;
    try {
      uploads = await this.multipartUploads(signal);
    } catch (e) {
      const err = this.classify(e, 'list', undefined, signal);
      if (!BackendError.isKind(err, 'transient') && !isCancellation(err)) {
        this.log?.('warn', `Could not look for unfinished multipart uploads on ${this.displayUrl}: ${(err as Error).message}`);
        return;
      }
      throw err;
    }
    for (const u of uploads) yield { name: u.label, size: 0, ...(u.initiated ? { mtime: u.initiated } : {}), partial: true, target: u.target };
  }

  /** The unfinished multipart uploads under the prefix, except this backend's own in progress. */
  private async multipartUploads(signal?: AbortSignal): Promise<Array<{ label: string; target: string; key: string; uploadId: string; initiated?: Date }>> {
    const found: Array<{ label: string; target: string; key: string; uploadId: string; initiated?: Date }> = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker, MaxUploads: this.listPageSize }),
        { abortSignal: signal },
      );
      for (const u of page.Uploads ?? []) {
        const rest = u.Key?.slice(this.prefix.length) ?? '';
        if (!u.Key || !u.UploadId || rest === '' || rest.includes('/') || this.inflight.has(u.UploadId)) continue;
        found.push({ label: multipartLeftoverName(rest, u.UploadId), target: rest, key: u.Key, uploadId: u.UploadId, ...(u.Initiated ? { initiated: u.Initiated } : {}) });
      }
      const more = page.IsTruncated && (page.NextKeyMarker || page.NextUploadIdMarker);
      keyMarker = more ? page.NextKeyMarker : undefined;
      idMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    return found;
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    checkName('remove', name);
    throwIfAborted(options.signal);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }), { abortSignal: options.signal });
    } catch (e) {
      if (s3HttpStatus(e) === 404 && s3ErrorCode(e) !== 'NoSuchBucket') return;
      throw this.classify(e, 'remove', name, options.signal);
    }
  }

  /**
   * Removes many names with DeleteObjects (1000 a request): retention over thousands of volumes takes
   * a few requests instead of one per file. Missing names are fine, as with remove().
   */
  async removeMany(names: readonly string[], options: OpOptions = {}): Promise<void> {
    for (const n of names) checkName('remove', n);
    for (let i = 0; i < names.length; i += this.deleteBatch) {
      throwIfAborted(options.signal);
      const batch = names.slice(i, i + this.deleteBatch);
      let r;
      try {
        r = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((n) => ({ Key: this.key(n) })), Quiet: true } }),
          { abortSignal: options.signal },
        );
      } catch (e) {
        throw this.classify(e, 'remove', undefined, options.signal);
      }
      const err = r.Errors?.find((x) => x.Code !== 'NoSuchKey');
      if (err) {
        const name = err.Key?.slice(this.prefix.length);
        throw this.classify(Object.assign(new Error(err.Message ?? err.Code ?? 'DeleteObjects failed'), { Code: err.Code, $metadata: { httpStatusCode: err.Code === 'AccessDenied' ? 403 : 500 } }), 'remove', name);
      }
    }
  }

  async cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    const { signal } = options;
    throwIfAborted(signal);
    try {
      const found: Array<{ label: string; key: string; uploadId?: string }> = await this.multipartUploads(signal);
      let token: string | undefined;
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.key(TEMP_PREFIX), ContinuationToken: token, MaxKeys: this.listPageSize }),
          { abortSignal: signal },
        );
        for (const o of page.Contents ?? []) {
          const rest = o.Key?.slice(this.prefix.length) ?? '';
          if (!o.Key || rest.includes('/') || !isPartialName(rest) || this.inflight.has(rest)) continue;
          found.push({ label: rest, key: o.Key });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      const left = found.filter((f) => inCleanupScope(options, f.label));
      left.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
      if (options.dryRun) return left.map((f) => f.label);
      const done: string[] = [];
      for (const f of left) {
        throwIfAborted(signal);
        try {
          if (f.uploadId) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: f.key, UploadId: f.uploadId }), { abortSignal: signal });
          else await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: f.key }), { abortSignal: signal });
        } catch (e) {
          if (s3ErrorCode(e) === 'NoSuchUpload' || (s3HttpStatus(e) === 404 && s3ErrorCode(e) !== 'NoSuchBucket')) continue; // gone meanwhile
          throw e;
        }
        done.push(f.label);
      }
      return done;
    } catch (e) {
      throw this.classify(e, 'cleanupPartial', undefined, signal);
    }
  }

  async close(): Promise<void> {
    await this.abortOrphans();
    this.client.destroy();
  }
}

// ------------------------------------------------------------------------------------------- helpers

/** Marks an error of the local source, which the caller must see as is (not an S3 problem). */
class SourceError extends Error {
  constructor(cause: unknown) {
    super('source error', { cause });
  }
}

function unwrapSource(e: unknown): unknown {
  // The SDK may wrap a body stream's error; find ours.
  for (let c: unknown = e, i = 0; c && i < 5; c = (c as Error).cause, i++) {
    if (c instanceof SourceError) return c;
    if (OffsiteError.is(c, 'sourceChanged')) return c;
  }
  return e;
}

/** MD5 of bytes [start, start+len) of a local file; `whole`: the file must be exactly len bytes. */
async function md5OfFile(name: string, file: string, start: number, len: number, signal: AbortSignal | undefined, whole: boolean): Promise<Buffer> {
  const hash = createHash('md5');
  let got = 0;
  if (len > 0 || whole) {
    try {
      const end = whole ? undefined : start + len - 1;
      for await (const chunk of fs.createReadStream(file, { start, end, highWaterMark: READ_CHUNK, signal })) {
        hash.update(chunk as Buffer);
        got += (chunk as Buffer).length;
        if (got > len) break;
      }
    } catch (e) {
      throw signal?.aborted ? cancelled() : new SourceError(e);
    }
  }
  if (got !== len) throw sizeMismatch(name, len, got, got > len);
  return hash.digest();
}

/** Bytes [start, start+len) of a local file, failing (sourceChanged) when the file has fewer now. */
function fileRange(name: string, file: string, start: number, len: number, onProgress?: (n: number) => void): Readable {
  const src = fs.createReadStream(file, { start, end: start + len - 1, highWaterMark: READ_CHUNK });
  return checkedStream(name, src, len, onProgress);
}

/** Passes `input` through, failing when it yields more or fewer than `size` bytes. */
function checkedStream(name: string, input: Readable, size: number, onProgress?: (n: number) => void): Readable {
  let got = 0;
  const out = new Transform({
    readableHighWaterMark: READ_CHUNK,
    writableHighWaterMark: READ_CHUNK,
    transform(chunk: Buffer, _enc, cb): void {
      got += chunk.length;
      if (got > size) {
        cb(sizeMismatch(name, size, got, true));
        return;
      }
      onProgress?.(got);
      cb(null, chunk);
    },
    flush(cb): void {
      cb(got === size ? null : sizeMismatch(name, size, got, false));
    },
  });
  input.on('error', (e) => out.destroy(new SourceError(e)));
  out.on('close', () => input.destroy());
  input.pipe(out);
  return out;
}

/** Reads a whole (small) source into memory, exactly source.size bytes. */
async function readExactly(name: string, source: BlobSource, signal?: AbortSignal): Promise<Buffer> {
  const stream = source.open();
  const onAbort = (): void => {
    stream.destroy(cancelled());
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of stream) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
      got += b.length;
      if (got > source.size) throw sizeMismatch(name, source.size, got, true);
      chunks.push(b);
    }
  } catch (e) {
    if (OffsiteError.is(e)) throw e;
    throw signal?.aborted ? cancelled() : new SourceError(e);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.destroy();
  }
  if (got !== source.size) throw sizeMismatch(name, source.size, got, false);
  return Buffer.concat(chunks, got);
}

// ------------------------------------------------------------------------------------------- factory

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** Builds an S3 backend from the URL and the front end's options (see S3Options). */
export async function createS3Backend(_url: URL, ctx: BackendContext, rawUrl: string): Promise<S3Backend> {
  const o = (ctx.options ?? {}) as Record<string, unknown>;
  const env = (o.env as S3Options['env']) ?? process.env;
  const loc = parseS3Url(rawUrl);
  const given = str(o.s3EndpointUrl);
  const fromEnv = str(env.AWS_ENDPOINT_URL_S3) ?? str(env.AWS_ENDPOINT_URL);
  const endpoint = given ? checkEndpoint(given, '--s3-endpoint-url') : fromEnv ? checkEndpoint(fromEnv, 'AWS_ENDPOINT_URL') : undefined;
  const storageClass = str(o.s3StorageClass)?.toUpperCase();
  if (storageClass !== undefined && !/^[A-Z][A-Z0-9_]*$/.test(storageClass)) {
    throw new OffsiteError('usage', `"${storageClass}" is not an S3 storage class`, { hint: 'Use a name like STANDARD, STANDARD_IA, GLACIER_IR, GLACIER or DEEP_ARCHIVE' });
  }
  const accessKeyId = str(o.s3AccessKeyId);
  const secretAccessKey = str(o.s3SecretAccessKey);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new OffsiteError('config', 'Only one of the S3 access key id and secret access key is set', { hint: 'Set both, or neither to use the AWS credential chain' });
  }
  const concurrency = typeof o.concurrency === 'number' && o.concurrency >= 1 ? Math.floor(o.concurrency) : 4;
  const idleTimeoutMs = envNumber(env, 'OFFSITE_S3_TIMEOUT', 'seconds');
  const partSize = envNumber(env, 'OFFSITE_S3_PART_MB', 'MiB');
  const multipartThreshold = envNumber(env, 'OFFSITE_S3_MULTIPART_MB', 'MiB');
  const { client } = await createS3Client({
    endpoint,
    region: str(o.s3Region),
    profile: str(o.s3Profile),
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey, sessionToken: str(o.s3SessionToken) } : undefined,
    maxSockets: Math.max(16, concurrency * 5),
    log: ctx.log,
    idleTimeoutMs,
  });
  if (storageClass && isArchiveClass(storageClass)) {
    ctx.log?.('info', `Volumes go to the ${storageClass} storage class: they must be thawed before a restore; manifests stay STANDARD`);
  }
  return new S3Backend({ ...loc, client, endpoint, storageClass, concurrency, log: ctx.log, partSize, multipartThreshold });
}

registerBackend('s3', createS3Backend);
