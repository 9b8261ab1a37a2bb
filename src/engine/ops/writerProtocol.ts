// Messages between restoreOutput.ts (main thread) and restoreWriterWorker.ts (worker thread). Only
// strings, numbers and whole ArrayBuffers cross: a Buffer from Node's pool would drag its whole 8 KiB
// slab through structured cloning, so path components and link targets travel as latin1 strings.
import { OffsiteError, type ErrorCode } from '../errors';
import type { EntryMeta } from '../types';

export interface WriterInit {
  readonly target: string;
  readonly force: boolean;
  readonly restoreOwners: boolean;
}

export type WireMeta = Omit<EntryMeta, 'linkname'> & { readonly linkname?: string };

export type WriterOp =
  | { readonly t: 'begin'; readonly index: string[]; readonly meta: WireMeta }
  /** Bytes [off, off + len) of the batch's buffer, appended to the open file. */
  | { readonly t: 'data'; readonly off: number; readonly len: number }
  | { readonly t: 'end' }
  | { readonly t: 'abort' }
  | { readonly t: 'finish' };

export interface WriterBatch {
  readonly ops: WriterOp[];
  /** Transferred; given back in the ack. */
  readonly buf: ArrayBuffer | null;
}

export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly hint?: string;
  readonly file?: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;
}

export interface WriterAck {
  readonly buf: ArrayBuffer | null;
  /** Totals so far. */
  readonly files: number;
  readonly bytes: number;
  /** Since the last ack. */
  readonly refusals: { member: string; reason: string }[];
  readonly warnings: string[];
  /** The first error; nothing after it was written. */
  readonly error?: WireError;
}

export function encodeMeta(m: EntryMeta): WireMeta {
  const { linkname, ...rest } = m;
  return linkname === undefined ? rest : { ...rest, linkname: linkname.toString('latin1') };
}

export function decodeMeta(m: WireMeta): EntryMeta {
  return m.linkname === undefined ? (m as EntryMeta) : { ...m, linkname: Buffer.from(m.linkname, 'latin1') };
}

export function encodeError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const x = e as Error & { code?: unknown; hint?: string; file?: string; errno?: number; syscall?: string; path?: unknown };
  return {
    name: x.name,
    message: x.message,
    code: typeof x.code === 'string' ? x.code : undefined,
    hint: x.hint,
    file: x.file,
    errno: x.errno,
    syscall: x.syscall,
    path: typeof x.path === 'string' ? x.path : Buffer.isBuffer(x.path) ? x.path.toString() : undefined,
  };
}

/** The error as the writer threw it: an OffsiteError again, or a system error with its code. */
export function decodeError(w: WireError): Error {
  if (w.name === 'OffsiteError') return new OffsiteError(w.code as ErrorCode, w.message, { hint: w.hint, file: w.file });
  const e = new Error(w.message) as NodeJS.ErrnoException;
  if (w.code !== undefined) e.code = w.code;
  if (w.errno !== undefined) e.errno = w.errno;
  if (w.syscall !== undefined) e.syscall = w.syscall;
  if (w.path !== undefined) e.path = w.path;
  return e;
}
