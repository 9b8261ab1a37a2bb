// URL → Backend. Each scheme registers a factory here (file is built in; sftp, s3 and rclone register
// themselves), so the engine and the CLI open any remote the same way.
import { getMaxListeners, setMaxListeners } from 'node:events';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Backend } from './backend';
import { redactUrl } from './backendUtil';
import { FileBackend, fileUrlPath } from './fileBackend';
import { aliasesOf, canonicalScheme } from './schemes';
import { OffsiteError, throwIfAborted } from '../errors';

/** Everything a backend may need from the front end (CLI or extension). */
export interface BackendContext {
  readonly signal?: AbortSignal;
  readonly log?: (level: 'debug' | 'info' | 'warn', message: string) => void;
  readonly prompt?: (question: string, opts: { secret: boolean }) => Promise<string | undefined>;
  /** Scheme-specific options (e.g. sshKey, knownHosts, s3EndpointUrl; file: cwd for relative paths). */
  readonly options?: Readonly<Record<string, unknown>>;
}

/**
 * Opens a remote. `rawUrl` is the URL exactly as the user wrote it: WHATWG URL parsing normalises
 * some parts (it lowercases hosts, for one), and duplicity's own reading of a URL may differ.
 */
export type BackendFactory = (url: URL, ctx: BackendContext, rawUrl: string) => Promise<Backend>;

const factories = new Map<string, BackendFactory>();
const opaque = new Set<string>();

export interface RegisterOptions {
  /**
   * The scheme's URLs are not WHATWG URLs (rclone://remote:path has a "port" that is not a number):
   * the factory reads rawUrl itself and gets `scheme:` as its URL.
   */
  readonly opaque?: boolean;
}

/** Registers (or replaces) the factory of a scheme, e.g. 'sftp'. Schemes are case-insensitive; an alias (scp) registers its scheme's (sftp). */
export function registerBackend(scheme: string, factory: BackendFactory, options: RegisterOptions = {}): void {
  const named = scheme.toLowerCase().replace(/:$/, '');
  if (!/^[a-z][a-z0-9+.-]*$/.test(named)) throw new OffsiteError('internal', `Invalid URL scheme "${scheme}"`);
  // Under the scheme an alias names (schemes.ts), the key openBackend looks up.
  const s = canonicalScheme(named);
  factories.set(s, factory);
  if (options.opaque) opaque.add(s);
  else opaque.delete(s);
}

/** The schemes that can be opened (duplicity's other names of them too: schemes.ts), sorted. */
export function registeredSchemes(): string[] {
  return [...factories.keys()].flatMap((s) => [s, ...aliasesOf(s)]).sort();
}

/**
 * Opens the remote at `url` with the factory of its scheme.
 * Throws OffsiteError('usage') for a URL without a known scheme or that cannot be parsed.
 */
export async function openBackend(url: string, ctx: BackendContext = {}): Promise<Backend> {
  throwIfAborted(ctx.signal);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  const known = registeredSchemes()
    .map((s) => `${s}://`)
    .join(', ');
  if (!m || (m[1].length === 1 && /^[A-Za-z]:[\\/]/.test(url))) {
    throw new OffsiteError('usage', `"${redactUrl(url)}" is not a remote URL`, {
      hint: `Write it as a URL (${known}); a local folder is file:///absolute/path`,
    });
  }
  const scheme = canonicalScheme(m[1]);
  const factory = factories.get(scheme);
  if (!factory) {
    throw new OffsiteError('usage', `Unknown kind of remote "${scheme}://" in ${redactUrl(url)}`, {
      hint: `Supported remotes: ${known}`,
    });
  }
  let parsed: URL;
  if (opaque.has(scheme)) {
    parsed = new URL(`${scheme}:`);
  } else if (scheme === 'file') {
    // WHATWG URL would read file://relative/path as host "relative"; duplicity reads a path.
    const cwd = typeof ctx.options?.cwd === 'string' ? ctx.options.cwd : process.cwd();
    parsed = pathToFileURL(path.resolve(cwd, fileUrlPath(url)));
  } else {
    try {
      parsed = new URL(url);
    } catch (e) {
      throw new OffsiteError('usage', `Bad remote URL "${redactUrl(url)}"`, {
        cause: e,
        hint: `Check its spelling: ${scheme}://[user@]host[:port]/path`,
      });
    }
  }
  const backend = await factory(parsed, ctx, url);
  if (ctx.signal) allowListenersFor(ctx.signal, backend.properties.connections);
  return backend;
}

/** Abort listeners one operation in flight may hold on the run's signal at once (wait, transfer, pipeline). */
const LISTENERS_PER_OPERATION = 4;

/**
 * Every operation in flight listens to the run's signal while it runs, so a remote with more than a
 * few connections goes past Node's default of 10 listeners without any leak, and Node warns of one
 * (MaxListenersExceededWarning). The limit grows with the operations the remote runs at once: a real
 * leak still passes it, and is still reported.
 */
function allowListenersFor(signal: AbortSignal, connections: number): void {
  const needed = 10 + LISTENERS_PER_OPERATION * connections;
  const now = getMaxListeners(signal);
  if (now !== 0 && now < needed) setMaxListeners(needed, signal); // 0: no limit
}

registerBackend('file', async (url) => new FileBackend(fileURLToPath(url)));
