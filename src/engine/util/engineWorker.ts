// Worker threads of the engine: where their code is, and how an error crosses back. A worker's entry
// is bundled beside the bundle that starts it (dist/restoreWriter.js next to dist/cli.js and
// dist/engineHost.js); run from the sources (tests under tsx), the TypeScript entry is loaded through
// tsx's require hook. Only strings, numbers and whole ArrayBuffers should cross: a
// Buffer from Node's pool drags its whole 8 KiB slab through structured cloning.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { debuglog } from 'node:util';
import { Worker, type MessagePort, type WorkerOptions } from 'node:worker_threads';
import { OffsiteError, type ErrorCode } from '../errors';

const debug = debuglog('offsite'); // NODE_DEBUG=offsite

/** `bundled`: the .js entry next to the running bundle; `source`: its TypeScript entry. */
export function startEngineWorker(bundled: string, source: string, options: WorkerOptions): Worker {
  if (fs.existsSync(bundled)) return new Worker(bundled, options);
  const code = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(source)});`;
  return new Worker(code, { ...options, eval: true });
}

/** The workerData of a worker started ahead of its job (prestartWorker): the job comes as a message. */
interface Prestarted {
  readonly offsitePrestarted: true;
  /** How long it waits for its job before it ends itself. */
  readonly unclaimedMs: number;
}

/**
 * Workers started before the bundle that uses them was loaded, by bundled entry (a process-wide
 * registry: bin/offsite's launcher and the CLI bundle each have their own copy of this module).
 */
function prestarted(): Map<string, Worker> {
  const g = globalThis as { [k: symbol]: Map<string, Worker> | undefined };
  return (g[Symbol.for('offsite.prestartedWorkers')] ??= new Map());
}

/**
 * Starts the worker `bundled` now, its job to come (takePrestarted): a worker takes 20–80 ms to
 * start, which then overlaps the loading of the bundle. Unreferenced: it never keeps the process
 * alive; one nobody takes within `unclaimedMs` ends itself.
 */
export function prestartWorker(bundled: string, options: WorkerOptions, unclaimedMs = 30_000): void {
  const key = path.resolve(bundled);
  if (prestarted().has(key) || !fs.existsSync(key)) return;
  const data: Prestarted = { offsitePrestarted: true, unclaimedMs };
  const w = new Worker(key, { ...options, workerData: data });
  w.unref();
  w.once('exit', () => {
    if (prestarted().get(key) === w) prestarted().delete(key);
  });
  w.on('error', () => undefined); // its 'exit' follows; whoever takes it listens for itself
  prestarted().set(key, w);
  debug('worker %s: started ahead', key);
}

/** The worker prestartWorker started for `bundled`, sent its job; or undefined. */
export function takePrestarted(bundled: string, job: unknown): Worker | undefined {
  const key = path.resolve(bundled);
  const w = prestarted().get(key);
  if (w === undefined) return undefined;
  prestarted().delete(key);
  w.postMessage(job);
  debug('worker %s: taken', key);
  return w;
}

/** Ends the worker prestartWorker started for `bundled`, if nobody took it. */
export function discardPrestarted(bundled: string): void {
  const key = path.resolve(bundled);
  const w = prestarted().get(key);
  if (w === undefined) return;
  prestarted().delete(key);
  void w.terminate();
  debug('worker %s: not needed, ended', key);
}

/** In a worker: its job, from workerData or, when it was started ahead, its first message. */
export function workerJob<T>(data: unknown, port: MessagePort | null): Promise<T> {
  if ((data as Partial<Prestarted> | undefined)?.offsitePrestarted !== true) return Promise.resolve(data as T);
  return new Promise<T>((resolve) => {
    const unclaimed = setTimeout(() => process.exit(0), (data as Prestarted).unclaimedMs);
    port!.once('message', (m: T) => {
      clearTimeout(unclaimed);
      resolve(m);
    });
  });
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
