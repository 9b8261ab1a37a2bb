// The one small interface every remote implements (file://, sftp://, s3://, rclone://, and the test
// backends). Names are flat file names (duplicity's remote is one folder of files); the backend knows
// nothing of sets or chains. Retry, concurrency limits and fault injection are wrappers around it.
//
// Contract (checked by test/unit/backend/conformance.ts for every backend):
// - put is atomic: a reader (get, list, stat) never sees a partial file under its final name. An
//   interrupted put leaves at most a temporary object that cleanupPartial() can find and remove, and
//   that list({ partial: true }) reports, marked partial, under the name cleanupPartial() gives it.
// - put refuses to replace an existing name (BackendError kind 'exists') unless overwrite is set.
// - get streams bytes [offset, offset+length); reading past the end is an error, not a short stream.
// - errors are BackendErrors classified by the backend itself: 'notFound', 'exists', 'auth',
//   'permission', 'noSpace' and 'permanent' are not retried; 'transient' is.
import type { Readable } from 'node:stream';
import { OffsiteError, type ErrorCode } from '../errors';

/** Re-openable content: each open() gives a fresh stream of exactly `size` bytes, so retries can replay it. */
export interface BlobSource {
  readonly size: number;
  open(): Readable;
  /** When the content is a whole local file, its path: a backend may copy it directly (copy_file_range). */
  readonly localPath?: string;
}

export interface BackendFileInfo {
  readonly name: string;
  readonly size: number;
  readonly mtime?: Date;
  /**
   * A leftover of an unfinished upload (a temporary file, an unfinished S3 multipart upload), listed
   * only with ListOptions.partial. Its name is the one cleanupPartial() reports: never a final name,
   * nothing to get or stat. Its size is 0 when the remote does not tell (a multipart upload).
   */
  readonly partial?: true;
  /** A leftover's final name, the file it was an upload of, when the leftover tells it. */
  readonly target?: string;
}

export interface BackendProperties {
  /** How many operations are worth running at once against this remote. */
  readonly connections: number;
}

export interface OpOptions {
  readonly signal?: AbortSignal;
}

export interface ListOptions extends OpOptions {
  /**
   * Also list the leftovers of unfinished uploads that cleanupPartial({ dryRun: true }) would report,
   * marked partial, from the same listing: a status needs one listing, not two. S3 asks a second API
   * for multipart uploads; a store that refuses that one lists the rest and logs why.
   */
  readonly partial?: boolean;
}

export interface CleanupPartialOptions extends OpOptions {
  /** Only report what would be removed. */
  readonly dryRun?: boolean;
  /**
   * Only these leftovers (by the names list({ partial: true }) gave them), the others are left alone,
   * neither removed nor returned: a newer one may be an upload running on another machine.
   */
  readonly only?: ReadonlySet<string>;
}

export interface PutOptions extends OpOptions {
  readonly overwrite?: boolean;
  /** Called with the number of bytes sent so far (for progress); may be throttled by the caller. */
  readonly onProgress?: (bytesSent: number) => void;
}

export interface GetOptions extends OpOptions {
  readonly offset?: number;
  readonly length?: number;
}

export interface Backend {
  /** The remote's URL for messages and logs: never contains a password or secret. */
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  put(name: string, source: BlobSource, options?: PutOptions): Promise<void>;
  get(name: string, options?: GetOptions): Promise<Readable>;
  stat(name: string, options?: OpOptions): Promise<BackendFileInfo>;
  /** Final names only, unless options.partial: temporary objects of uploads are then listed too, marked partial. */
  list(options?: ListOptions): AsyncIterable<BackendFileInfo>;
  /** Removing a name that does not exist is not an error. */
  remove(name: string, options?: OpOptions): Promise<void>;
  /**
   * Optional: removes many names in few requests (S3: DeleteObjects, 1000 a request), for retention.
   * remove()'s contract for each name; not atomic (a failure may leave some removed), in no particular
   * order. Wrappers pass it through (or fall back to remove() one name at a time).
   */
  removeMany?(names: readonly string[], options?: OpOptions): Promise<void>;
  /**
   * Finds leftovers of interrupted uploads (temporary files, incomplete multipart uploads) and, unless
   * dryRun, removes them (only those in `only` when given). Returns their names, sorted. Never touches final
   * names. (To only see them, list({ partial: true }) does it with the listing of the final names.)
   */
  cleanupPartial(options?: CleanupPartialOptions): Promise<string[]>;
  close(): Promise<void>;
  /**
   * Optional: when the remote's files are plain local files (file://), the path of `name`, so readers
   * can hash and decrypt it in place instead of copying it first. Wrappers pass it through.
   */
  localPath?(name: string): string | undefined;
}

export type BackendErrorKind = 'notFound' | 'exists' | 'auth' | 'permission' | 'noSpace' | 'permanent' | 'transient';

const CODE_OF_KIND: Record<BackendErrorKind, ErrorCode> = {
  notFound: 'notFound',
  exists: 'exists',
  auth: 'auth',
  permission: 'permission',
  noSpace: 'noSpace',
  permanent: 'unreachable',
  transient: 'unreachable',
};

export class BackendError extends OffsiteError {
  readonly kind: BackendErrorKind;
  readonly op: string;

  constructor(kind: BackendErrorKind, op: string, name: string | undefined, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(CODE_OF_KIND[kind], message, { ...options, file: name });
    this.name = 'BackendError';
    this.kind = kind;
    this.op = op;
  }

  static isKind(e: unknown, kind?: BackendErrorKind): e is BackendError {
    return e instanceof BackendError && (kind === undefined || e.kind === kind);
  }

  get retryable(): boolean {
    return this.kind === 'transient';
  }
}
