// The extension's only way into the engine: a child process (dist/engineHost.js, entry
// src/engine/serviceMain.ts, started through dist/engineLauncher.js and its code cache, so the first
// request after the engine was stopped does not compile it again) that handles plain-data
// ServiceRequests, so crypto, compression and I/O never run on the extension host's thread. Pure Node (no 'vscode'), so it is tested under plain Node
// against the real engine host.
//
// The child is started on the first request (activation stays cheap), stopped after a while without
// work, and started again on the next request if it died. Protocol: see serviceMain.ts's header.
import { fork, type ChildProcess } from 'node:child_process';
import type { NeededInput } from '../engine/errors';
import type { Progress } from '../engine/progress';
import type { BackupSummary, ListEntry, ServiceError, ServiceRequest, SetChanges } from '../engine/service';
import type { CleanupResult } from '../engine/ops/cleanup';
import type { CollectionStatus, FileVersion } from '../engine/ops/inspect';
import type { RestoreResult } from '../engine/ops/restore';
import type { VerifyResult } from '../engine/ops/verify';
import type { DrillRecord, DrillResult } from '../engine/ops/drill';

export type ReadFileResult = { found: false } | { found: true; mode: number; mtime: number; size: number };

/** What each request resolves to (the plain-data results of service.ts's handle()). */
export interface EngineResults {
  backup: BackupSummary;
  restore: Pick<RestoreResult, 'time' | 'files' | 'bytes' | 'refusals'>;
  readFile: ReadFileResult;
  status: CollectionStatus;
  list: ListEntry[];
  history: FileVersion[];
  verify: VerifyResult;
  cleanup: CleanupResult;
  createKey: { publicArmored: string; privateArmored: string; fingerprint: string };
  changes: SetChanges[];
  parseTime: number;
  drill: DrillResult;
  lastDrill: DrillRecord | null;
}

export type EngineOp = ServiceRequest['op'];
export type EngineRequest<Op extends EngineOp> = Extract<ServiceRequest, { op: Op }>;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** An engine error, typed by the engine's code ('passphrase', 'unreachable', …, see engine/errors.ts). */
export class EngineError extends Error {
  readonly code: string;
  readonly hint?: string;
  readonly file?: string;
  /** The input at fault (the engine's OffsiteError.needs): which secret to ask for again, what else to give. */
  readonly needs?: NeededInput;

  constructor(e: ServiceError) {
    super(e.message);
    this.name = 'EngineError';
    this.code = e.code;
    this.hint = e.hint;
    this.file = e.file;
    this.needs = e.needs;
  }

  static is(e: unknown, code?: string): e is EngineError {
    return e instanceof EngineError && (code === undefined || e.code === code);
  }
}

/** A setting whose value the extension cannot use: the message names it, and Open Settings goes to it. */
export class SettingError extends EngineError {
  constructor(
    /** The full key, e.g. offsite.volumeSize. */
    readonly setting: string,
    message: string,
    hint?: string,
  ) {
    super({ code: 'setting', message, hint });
  }
}

export function isCancelled(e: unknown): boolean {
  return EngineError.is(e, 'cancelled');
}

/**
 * Not started because another run has the folder (a backup already running here) or the remote's lock
 * (another window, cron): no failure of this one.
 */
export function isHeldElsewhere(e: unknown): e is EngineError {
  return EngineError.is(e, 'busy') || EngineError.is(e, 'locked');
}

/**
 * A missing private key (the error's `needs`, not its words): the extension's way to give one is the
 * offsite.restoreKey setting.
 */
export function needsRestoreKey(e: EngineError): boolean {
  return e.needs?.input === 'secretKey' && !e.needs.wrong;
}

/**
 * A file without a signature by the key it must be signed by (the error's `needs`): the extension's
 * way to name that key is the offsite.signKey setting.
 */
export function needsSignKey(e: EngineError): boolean {
  return e.needs?.input === 'signKey';
}

/**
 * The engine's hint as the extension gives it. The engine's hints speak the CLI's options; where the
 * error says (needs) the input is one the extension takes its own way, the hint says that way: a later
 * date or time to pick (the CLI's --time), the offsite.restoreKey setting (the CLI's --key), the
 * offsite.signKey setting (the CLI's --sign-key).
 */
export function hintOf(e: EngineError): string | undefined {
  if (e.needs?.input === 'laterTime') return 'Pick a later date or time';
  if (needsRestoreKey(e)) return 'Set offsite.restoreKey to your private key file (or its gpg key id)';
  if (needsSignKey(e)) return 'Do not trust it: someone other than the signer you set may have written it. Check the offsite.signKey setting';
  return e.hint;
}

/** An error's message, followed by its hint (hintOf) when it has one: what a notification says. */
export function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const hint = e instanceof EngineError ? hintOf(e) : undefined;
  return hint ? `${e.message}. ${hint}` : e.message;
}

export interface EngineClientOptions {
  /** dist/engineLauncher.js (dist/engineHost.js through the code cache), or dist/engineHost.js itself */
  readonly hostScript: string;
  /** The Node to run it with (default process.execPath, with ELECTRON_RUN_AS_NODE=1 for Electron). */
  readonly execPath?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Engine log lines and the client's own (never secrets: requests are not logged). */
  readonly log?: (level: LogLevel, message: string) => void;
  /** Stop the idle child after this long (default 5 minutes). */
  readonly idleTimeoutMs?: number;
  /** After a cancel, kill the child if the request has not ended within this time (default 15 s). */
  readonly cancelGraceMs?: number;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: Progress) => void;
}

interface Pending {
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly onProgress?: (p: Progress) => void;
  readonly child: ChildProcess;
  cancelRequested: boolean;
}

type Incoming = { id: number; progress?: Progress; log?: { level: LogLevel; message: string }; result?: unknown; error?: ServiceError };

export class EngineClient {
  private child?: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private idleTimer?: NodeJS.Timeout;
  private disposed = false;
  private starts = 0;

  constructor(private readonly opts: EngineClientOptions) {}

  /** The engine process's pid, while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** How many engine processes were started so far (a restart after a crash counts). */
  get startCount(): number {
    return this.starts;
  }

  request<Op extends EngineOp>(req: EngineRequest<Op>, options: RequestOptions = {}): Promise<EngineResults[Op]> {
    if (this.disposed) return Promise.reject(new EngineError({ code: 'cancelled', message: 'Offsite is shutting down' }));
    if (options.signal?.aborted) return Promise.reject(new EngineError({ code: 'cancelled', message: 'Cancelled' }));
    const child = this.ensureChild();
    const id = this.nextId++;
    clearTimeout(this.idleTimer);
    return new Promise<EngineResults[Op]>((resolve, reject) => {
      let cancelTimer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        const p = this.pending.get(id);
        if (p) p.cancelRequested = true;
        this.send(child, { id, cancel: true });
        // A request stuck where it cannot see its signal must not keep the user waiting forever.
        cancelTimer = setTimeout(() => {
          this.log('warn', `The engine did not stop within ${this.opts.cancelGraceMs ?? 15000} ms of a cancel; stopping it`);
          child.kill('SIGKILL');
        }, this.opts.cancelGraceMs ?? 15000);
        cancelTimer.unref();
      };
      const done = () => {
        options.signal?.removeEventListener('abort', onAbort);
        clearTimeout(cancelTimer);
        this.pending.delete(id);
        this.armIdleTimer();
      };
      this.pending.set(id, {
        child,
        cancelRequested: false,
        onProgress: options.onProgress,
        resolve: (v) => {
          done();
          resolve(v as EngineResults[Op]);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.log('debug', `engine request #${id}: ${req.op}`);
      if (!this.send(child, { id, request: req })) {
        this.pending.get(id)?.reject(new EngineError({ code: 'internal', message: 'Could not send the request to the Offsite engine process' }));
      }
    });
  }

  /** Stops the engine: running requests are cancelled (the child aborts them on disconnect). */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.idleTimer);
    this.stopChild();
    for (const p of this.pending.values()) p.reject(new EngineError({ code: 'cancelled', message: 'Offsite is shutting down' }));
    this.pending.clear();
  }

  private ensureChild(): ChildProcess {
    if (this.child && this.child.connected) return this.child;
    const child = fork(this.opts.hostScript, [], {
      execPath: this.opts.execPath ?? process.execPath,
      // Memory caps, as bin/offsite's shebang (measured by npm run bench): a 2 MB young generation
      // and a fixed malloc mmap threshold keep a backup's peak RSS ~50 MB lower at the same speed;
      // and, for the launcher's code cache, V8 keeps the bytecode of what the process ran until it
      // is saved at exit (src/launch/codeCache.ts). The engine's work is mostly backups: the 32 MB
      // initial old generation bin/offsite gives a backup (fewer full GCs) it gets for everything.
      execArgv: ['--max-semi-space-size=2', '--initial-old-space-size=32', '--no-flush-bytecode'],
      // The extension host may be Electron: run its binary as plain Node.
      env: { MALLOC_MMAP_THRESHOLD_: '131072', ...(this.opts.env ?? process.env), ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.starts++;
    this.child = child;
    this.log('debug', `started the engine process (pid ${child.pid})`);
    child.on('message', (m: Incoming) => this.onMessage(child, m));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      for (const line of d.split('\n')) if (line.trim()) this.log('warn', `engine: ${line}`);
    });
    child.stdout?.resume();
    child.on('error', (e) => this.log('error', `engine process: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const mine = [...this.pending.entries()].filter(([, p]) => p.child === child);
      if (mine.length) this.log('error', `The engine process stopped (${signal ?? `exit code ${code}`}) with ${mine.length} request(s) running`);
      for (const [, p] of mine) {
        p.reject(
          p.cancelRequested
            ? new EngineError({ code: 'cancelled', message: 'Cancelled' })
            : new EngineError({
                code: 'internal',
                message: `The Offsite engine process stopped unexpectedly (${signal ?? `exit code ${code}`})`,
                hint: 'Try again; Show Log has the details',
              }),
        );
      }
    });
    return child;
  }

  private onMessage(child: ChildProcess, m: Incoming): void {
    const p = this.pending.get(m.id);
    if (m.log) {
      this.log(m.log.level, m.log.message);
      return;
    }
    if (!p || p.child !== child) return;
    if (m.progress) p.onProgress?.(m.progress);
    else if (m.error) p.reject(new EngineError(m.error));
    else if ('result' in m) p.resolve(m.result);
  }

  private send(child: ChildProcess, msg: unknown): boolean {
    if (!child.connected) return false;
    try {
      child.send(msg as object);
      return true;
    } catch {
      return false;
    }
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if (this.pending.size > 0 || this.disposed) return;
    this.idleTimer = setTimeout(() => {
      if (this.pending.size === 0) this.stopChild();
    }, this.opts.idleTimeoutMs ?? 300_000);
    this.idleTimer.unref();
  }

  private stopChild(): void {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    this.log('debug', `stopping the engine process (pid ${child.pid})`);
    // Disconnecting lets the child abort its work and exit on its own; kill it if it lingers.
    if (child.connected) child.disconnect();
    const t = setTimeout(() => child.kill('SIGKILL'), 8000);
    t.unref();
    child.once('exit', () => clearTimeout(t));
  }

  private log(level: LogLevel, message: string): void {
    this.opts.log?.(level, message);
  }
}
