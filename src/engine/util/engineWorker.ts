// Worker threads of the engine: where their code is, and how an error crosses back. A worker's entry
// is bundled beside the bundle that starts it (dist/restoreWriter.js next to dist/cli.js and
// dist/engineHost.js); run from the sources (tests under tsx), the TypeScript entry is loaded through
// tsx's require hook. Only strings, numbers and whole ArrayBuffers should cross: a
// Buffer from Node's pool drags its whole 8 KiB slab through structured cloning.
import * as fs from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { OffsiteError, type ErrorCode } from '../errors';

/** `bundled`: the .js entry next to the running bundle; `source`: its TypeScript entry. */
export function startEngineWorker(bundled: string, source: string, options: WorkerOptions): Worker {
  if (fs.existsSync(bundled)) return new Worker(bundled, options);
  const code = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(source)});`;
  return new Worker(code, { ...options, eval: true });
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

/** The error as the worker caught it: an OffsiteError again, or a system error with its code. */
export function decodeError(w: WireError): Error {
  if (w.name === 'OffsiteError') return new OffsiteError(w.code as ErrorCode, w.message, { hint: w.hint, file: w.file });
  const e = new Error(w.message) as NodeJS.ErrnoException;
  if (w.code !== undefined) e.code = w.code;
  if (w.errno !== undefined) e.errno = w.errno;
  if (w.syscall !== undefined) e.syscall = w.syscall;
  if (w.path !== undefined) e.path = w.path;
  return e;
}
