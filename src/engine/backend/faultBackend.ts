// Fault injection around any backend, for tests of everything above the backend (retries, resume,
// cleanup, error messages), after kopia's FaultyStorage and duplicity's _testbackend. Faults are
// deterministic: chosen by call number, name, byte count or a seeded random generator.
import { Readable } from 'node:stream';
import type {
  Backend,
  BackendErrorKind,
  BackendFileInfo,
  BackendProperties,
  BlobSource,
  CleanupPartialOptions,
  GetOptions,
  ListOptions,
  OpOptions,
  PutOptions,
} from './backend';
import { BackendError } from './backend';
import { abortableDelay } from './backendUtil';
import { mulberry32 } from '../util/seededRandom';

export type FaultOp = 'put' | 'get' | 'stat' | 'list' | 'remove';

/**
 * What an injected fault does:
 * - 'fail': the call fails before it reaches the inner backend;
 * - 'lostReply': the inner operation runs (a put lands, a remove happens), then the call fails, as when
 *   a connection drops before the answer arrives;
 * - 'shortWrite' (put): the inner backend receives `bytes` bytes, then the upload fails;
 * - 'cutStream' (get: after `bytes` bytes; list: after `items` entries): the stream fails midway;
 * - 'delay': the call waits `delayMs`, then proceeds normally.
 */
export type FaultAction = 'fail' | 'lostReply' | 'shortWrite' | 'cutStream' | 'delay';

export interface FaultRule {
  /** Operations the rule applies to (default: all five). */
  readonly op?: FaultOp | readonly FaultOp[];
  /** 1-based call numbers, counted per operation since construction or reset(). Default: any call. */
  readonly calls?: readonly number[];
  /** Only calls on matching names (exact string or RegExp). A list call has no name: it never matches. */
  readonly name?: string | RegExp;
  /** Fires at most this many times (default: no limit). */
  readonly times?: number;
  /** Default 'fail'. */
  readonly action?: FaultAction;
  /** The kind of the injected BackendError (default 'transient'). */
  readonly kind?: BackendErrorKind;
  /** For 'shortWrite' and 'cutStream' on get (default 0). */
  readonly bytes?: number;
  /** For 'cutStream' on list (default 0). */
  readonly items?: number;
  /** For 'delay'; with another action, a wait before it. */
  readonly delayMs?: number;
}

export interface FaultPlan {
  readonly rules?: readonly FaultRule[];
  /**
   * The remote is full after this many bytes (puts that landed plus the one in progress; a remove
   * frees what this wrapper saw put): the put that passes it fails with 'noSpace' at that byte.
   */
  readonly noSpaceAfterBytes?: number;
  /** Random faults before the call, reproducible from the seed. */
  readonly random?: {
    readonly seed: number;
    /** Chance per call, 0..1. */
    readonly probability: number;
    /** Kinds to pick from (default ['transient']). */
    readonly kinds?: readonly BackendErrorKind[];
    /** Operations concerned (default: all). */
    readonly ops?: readonly FaultOp[];
  };
  /** Added before every call. */
  readonly delayMs?: number;
}

export interface FaultCall {
  readonly op: FaultOp;
  readonly name?: string;
  /** The call's number among calls of this operation (1-based). */
  readonly n: number;
  /** Description of the fault injected into this call, if any. */
  fault?: string;
}

const ALL_OPS: readonly FaultOp[] = ['put', 'get', 'stat', 'list', 'remove'];

export class FaultBackend implements Backend {
  readonly displayUrl: string;
  readonly properties: BackendProperties;
  /** Every call, in order, with the fault it got. */
  readonly calls: FaultCall[] = [];
  private plan: FaultPlan;
  private counts = new Map<FaultOp, number>();
  private fired = new Map<FaultRule, number>();
  private rng: () => number;
  private used = 0;
  private readonly sizes = new Map<string, number>();

  constructor(
    private readonly inner: Backend,
    plan: FaultPlan = {},
  ) {
    this.displayUrl = inner.displayUrl;
    this.properties = inner.properties;
    this.plan = plan;
    this.rng = mulberry32(plan.random?.seed ?? 0);
  }

  /** Replaces the plan (rule firing counts and the random generator restart; call numbers go on). */
  setPlan(plan: FaultPlan): void {
    this.plan = plan;
    this.fired = new Map();
    this.rng = mulberry32(plan.random?.seed ?? 0);
  }

  /** Forgets calls and counts (the used space too) and restarts the random generator. */
  reset(): void {
    this.calls.length = 0;
    this.counts = new Map();
    this.fired = new Map();
    this.used = 0;
    this.sizes.clear();
    this.rng = mulberry32(this.plan.random?.seed ?? 0);
  }

  /** Number of calls of `op` so far. */
  count(op: FaultOp): number {
    return this.counts.get(op) ?? 0;
  }

  async put(name: string, source: BlobSource, options: PutOptions = {}): Promise<void> {
    const { call, rule } = await this.begin('put', name, options.signal);
    const action = rule?.action ?? 'fail';
    if (rule && action === 'fail') throw this.inject(call, rule, 'fail');
    let injected: BackendError | undefined;
    const shortAt = rule && action === 'shortWrite' ? (rule.bytes ?? 0) : undefined;
    const limit = this.plan.noSpaceAfterBytes;
    let src = source;
    if (shortAt !== undefined || limit !== undefined) {
      const free = limit === undefined ? Infinity : limit - this.used;
      src = {
        size: source.size,
        // No localPath: the bytes must flow through the counter.
        open: () =>
          countingStream(source.open(), (n) => {
            if (shortAt !== undefined && n > shortAt) return [shortAt, (injected = this.inject(call, rule!, `shortWrite after ${shortAt} bytes`))];
            if (n > free) {
              const noSpace = new BackendError('noSpace', 'put', name, `Injected fault: no space left after ${limit} bytes (put #${call.n} of ${name})`, {
                hint: 'Injected by FaultBackend',
              });
              call.fault = `noSpace after ${limit} bytes`;
              return [Math.max(0, free), (injected = noSpace)];
            }
            return undefined;
          }),
      };
    }
    try {
      await this.inner.put(name, src, options);
    } catch (e) {
      throw injected ?? e;
    }
    if (injected) throw injected; // the inner backend ignored the failing source: still report the fault
    this.used += source.size - (options.overwrite ? (this.sizes.get(name) ?? 0) : 0);
    this.sizes.set(name, source.size);
    if (rule && action === 'lostReply') throw this.inject(call, rule, 'lostReply');
  }

  async get(name: string, options: GetOptions = {}): Promise<Readable> {
    const { call, rule } = await this.begin('get', name, options.signal);
    const action = rule?.action ?? 'fail';
    if (rule && action === 'fail') throw this.inject(call, rule, 'fail');
    const stream = await this.inner.get(name, options);
    if (rule && action === 'lostReply') {
      stream.destroy();
      throw this.inject(call, rule, 'lostReply');
    }
    if (rule && action === 'cutStream') {
      const at = rule.bytes ?? 0;
      return countingStream(stream, (n) => (n > at ? [at, this.inject(call, rule, `cutStream after ${at} bytes`)] : undefined));
    }
    return stream;
  }

  async stat(name: string, options: OpOptions = {}): Promise<BackendFileInfo> {
    const { call, rule } = await this.begin('stat', name, options.signal);
    if (rule && (rule.action ?? 'fail') === 'fail') throw this.inject(call, rule, 'fail');
    const info = await this.inner.stat(name, options);
    if (rule?.action === 'lostReply') throw this.inject(call, rule, 'lostReply');
    return info;
  }

  async *list(options: ListOptions = {}): AsyncIterable<BackendFileInfo> {
    const { call, rule } = await this.begin('list', undefined, options.signal);
    const action = rule?.action ?? 'fail';
    if (rule && action === 'fail') throw this.inject(call, rule, 'fail');
    let items = 0;
    const cutAt = rule && action === 'cutStream' ? (rule.items ?? 0) : undefined;
    for await (const info of this.inner.list(options)) {
      if (cutAt !== undefined && items >= cutAt) throw this.inject(call, rule!, `cutStream after ${cutAt} items`);
      items++;
      yield info;
    }
    if (cutAt !== undefined && items >= cutAt) throw this.inject(call, rule!, `cutStream after ${cutAt} items`);
    if (rule && action === 'lostReply') throw this.inject(call, rule, 'lostReply');
  }

  async remove(name: string, options: OpOptions = {}): Promise<void> {
    const { call, rule } = await this.begin('remove', name, options.signal);
    if (rule && (rule.action ?? 'fail') === 'fail') throw this.inject(call, rule, 'fail');
    await this.inner.remove(name, options);
    this.used -= this.sizes.get(name) ?? 0;
    this.sizes.delete(name);
    if (rule?.action === 'lostReply') throw this.inject(call, rule, 'lostReply');
  }

  cleanupPartial(options: CleanupPartialOptions = {}): Promise<string[]> {
    return this.inner.cleanupPartial(options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Passed through only while the plan cannot touch a get: a reader using the file in place would
   * otherwise bypass the injected get faults.
   */
  localPath(name: string): string | undefined {
    const touchesGet = (ops: FaultOp | readonly FaultOp[] | undefined): boolean =>
      ops === undefined || (typeof ops === 'string' ? ops === 'get' : ops.includes('get'));
    const plan = this.plan;
    if (plan.rules?.some((r) => touchesGet(r.op)) || (plan.random && touchesGet(plan.random.ops)) || plan.delayMs) return undefined;
    return this.inner.localPath?.(name);
  }

  /** Records the call, applies delays, decides on a fault. A random fault is thrown right here. */
  private async begin(op: FaultOp, name: string | undefined, signal?: AbortSignal): Promise<{ call: FaultCall; rule?: FaultRule }> {
    const n = (this.counts.get(op) ?? 0) + 1;
    this.counts.set(op, n);
    const call: FaultCall = { op, name, n };
    this.calls.push(call);
    const rule = this.plan.rules?.find((r) => this.matches(r, call));
    if (rule) this.fired.set(rule, (this.fired.get(rule) ?? 0) + 1);
    const delay = (this.plan.delayMs ?? 0) + (rule?.delayMs ?? 0);
    if (delay > 0) await abortableDelay(delay, signal);
    const random = this.plan.random;
    if (random && (random.ops ?? ALL_OPS).includes(op) && this.rng() < random.probability) {
      const kinds = random.kinds?.length ? random.kinds : (['transient'] as const);
      const kind = kinds[Math.floor(this.rng() * kinds.length)];
      call.fault = `random ${kind}`;
      throw new BackendError(kind, op, name, `Injected random fault: ${kind} (${op} #${n}${name ? ` of ${name}` : ''})`, {
        hint: 'Injected by FaultBackend',
      });
    }
    return { call, rule: rule?.action === 'delay' ? undefined : rule };
  }

  private matches(rule: FaultRule, call: FaultCall): boolean {
    const ops = rule.op === undefined ? ALL_OPS : typeof rule.op === 'string' ? [rule.op] : rule.op;
    if (!ops.includes(call.op)) return false;
    if (rule.calls && !rule.calls.includes(call.n)) return false;
    if (rule.name !== undefined) {
      if (call.name === undefined) return false;
      if (typeof rule.name === 'string' ? rule.name !== call.name : !new RegExp(rule.name.source, rule.name.flags.replace('g', '')).test(call.name)) {
        return false;
      }
    }
    return rule.times === undefined || (this.fired.get(rule) ?? 0) < rule.times;
  }

  private inject(call: FaultCall, rule: FaultRule, what: string): BackendError {
    const kind = rule.kind ?? 'transient';
    call.fault = `${what} (${kind})`;
    return new BackendError(kind, call.op, call.name, `Injected fault: ${what}, ${kind} (${call.op} #${call.n}${call.name ? ` of ${call.name}` : ''})`, {
      hint: 'Injected by FaultBackend',
    });
  }
}

/**
 * Passes `input` through, asking `check(total)` after each chunk whether to stop: it answers with how
 * many bytes in all may pass and the error to fail with. The reader gets exactly those bytes, then the
 * error (a Transform would drop the buffered bytes when it fails).
 */
function countingStream(input: Readable, check: (total: number) => [number, Error] | undefined): Readable {
  const it = input[Symbol.asyncIterator]();
  let total = 0;
  let failWith: Error | undefined;
  // highWaterMark 0: read() is called only once the reader took what was pushed, so the error comes
  // after the last allowed byte was delivered.
  return new Readable({
    highWaterMark: 0,
    read(): void {
      if (failWith) {
        this.destroy(failWith);
        return;
      }
      it.next().then(
        (r: IteratorResult<Buffer>) => {
          if (r.done) {
            this.push(null);
            return;
          }
          const before = total;
          total += r.value.length;
          const stop = check(total);
          if (!stop) {
            this.push(r.value);
            return;
          }
          const [allowed, err] = stop;
          failWith = err;
          if (allowed > before) this.push(r.value.subarray(0, allowed - before));
          else this.destroy(err);
        },
        (e: unknown) => this.destroy(e as Error),
      );
    },
    destroy(err, cb): void {
      input.destroy();
      cb(err);
    },
  });
}

