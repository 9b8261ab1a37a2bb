// Runs a bundle (dist/cli.js, dist/engineHost.js) through V8's code cache, the way `bin/offsite` and
// the extension's engine process start (their launchers cli.ts and engineLauncher.ts, bundled as
// dist/launch.js and dist/engineLauncher.js).
//
// The first run saves the compiled code of what it ran (~0.7–1 MB, 0600) in code-cache/ of Offsite's
// cache folder (~/.cache/offsite, defaultCacheRoot()), named by the bundle's name, a SHA-256 of the
// bundle, its path and Node's flags, the Node version and the CPU architecture; later runs of the same bundle
// skip most of the compiling (~20–25 ms of every start, a tenth of a one-file restore). A process that
// went a way the cache has not seen (the bundle's codeRoutes() export, src/engine/codeRoute.ts:
// 'backup:full', 'backup:inc-probe', 'restore:path', …, for the CLI the command it ran, for the engine
// the requests it served; listed in the file's first line) saves it again at exit, with what it compiled added to what it loaded: a cache made by a full backup
// alone left every later no-change backup ~30 ms and one-file restore ~40 ms of compiling
// (bench/README.md). Run with --no-flush-bytecode, or V8 drops the bytecode of functions a long run
// did not call, and the other ways' code with it (a full restore saved 753 KB of a 915 KB cache).
// The vendor bundles a main bundle requires (ssh2, the AWS SDK) are loaded the same way, each with its
// own cache file. V8 checks the cache against its own version and flags and refuses a stale one, which
// is then written again; the 8 newest files of a bundle are kept. Any problem with the cache only
// means a plain start.
import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire, wrap } from 'node:module';
import * as path from 'node:path';
import { debuglog } from 'node:util';
import * as vm from 'node:vm';
import { defaultCacheRoot } from '../engine/cache/archiveDir';

const debug = debuglog('offsite'); // NODE_DEBUG=offsite

/** The cache file's first line: this, then the routes whose code it holds; V8's data follows. */
const HEADER = 'offsite-code-cache 1';
/**
 * Cache files kept per bundle (earlier builds, other installs, other Node versions or flags): one
 * install of the CLI makes four ('cli': bin/offsite's flags for a backup, for a restore, for the other
 * commands, and `node bin/offsite` without them), so eight hold two installs (the extension's and a
 * global one, or two checkouts) without each run of one replacing the other's (0.3–0.5 MB a file).
 */
const KEEP = 8;

interface Cached {
  readonly routes: readonly string[];
  readonly data?: Buffer;
}

/** The routes and V8's data of a cache file; a file without the header is all data (V8 judges it). */
function parseCache(buf: Buffer): Cached {
  const nl = buf.indexOf(0x0a);
  const first = nl < 0 || nl > 4096 ? '' : buf.toString('latin1', 0, nl);
  if (!first.startsWith(`${HEADER} `) && first !== HEADER) return { routes: [], data: buf };
  return { routes: first.slice(HEADER.length).split(' ').filter(Boolean), data: buf.subarray(nl + 1) };
}

/**
 * Loads `file` (a CommonJS bundle) as require() would, compiled with its code cache named `name`
 * ('cli', 'engineHost'); returns its exports. Its routes at exit: what its codeRoutes() export returns.
 */
export function loadBundle(file: string, name: string): Record<string, unknown> {
  return load(file, name);
}

/** loadBundle; a vendor bundle's routes are those of the bundle that requires it (`inherited`). */
function load(file: string, name: string, inherited?: () => readonly string[]): Record<string, unknown> {
  // esbuild.mjs writes the bundles in ASCII: read as Latin-1, a one-byte string made in one copy (a
  // UTF-8 read of the 1.5 MB CLI bundle, and hashing that string, took ~7 ms more of every start).
  const bytes = fs.readFileSync(file);
  const source = bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
  let cacheFile: string | undefined;
  let cached: Cached = { routes: [] };
  try {
    // Node's flags are part of the name: V8 refuses code compiled under other flags, and runs with and
    // without bin/offsite's first line (node bin/offsite) would otherwise replace each other's cache.
    const flags = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS || ''}`;
    // And the bundle's path: V8 keeps the script name of the code it cached, so two installs of the
    // same build sharing one file had stack traces name the install that saved it first.
    const digest = createHash('sha256').update(bytes).update('\0').update(flags).update('\0').update(path.resolve(file)).digest('hex').slice(0, 32);
    cacheFile = path.join(defaultCacheRoot(), 'code-cache', `${name}-${digest}-${process.version}-${process.arch}.bin`);
    cached = parseCache(fs.readFileSync(cacheFile));
  } catch {
    // none yet, or no cache folder: compiled as usual
  }
  const script = new vm.Script(wrap(source), { filename: file, cachedData: cached.data });
  const fresh = cached.data === undefined || script.cachedDataRejected === true;
  debug('code cache %s: %s', cacheFile, cached.data === undefined ? 'none' : fresh ? 'refused' : 'used');
  const mod = { exports: {} as Record<string, unknown>, filename: file };
  const routes =
    inherited ??
    (() => {
      const f = mod.exports.codeRoutes;
      return typeof f === 'function' ? (f as () => readonly string[])() : [];
    });
  if (cacheFile !== undefined) {
    const target = cacheFile;
    process.once('exit', () => {
      let went: readonly string[] = [];
      try {
        went = routes();
      } catch {
        // a bundle that failed to load: no route
      }
      const added = went.filter((r) => !cached.routes.includes(r));
      if (!fresh && added.length === 0) return;
      // What this process compiled, and what it loaded from the cache (kept until saved, see above).
      save(target, name, fresh ? [...new Set(went)] : [...cached.routes, ...new Set(added)], script.createCachedData());
    });
  }
  (script.runInThisContext() as (...a: unknown[]) => void)(mod.exports, vendorAware(file, routes), mod, file, path.dirname(file));
  return mod.exports;
}

/** A vendor bundle beside a main one (esbuild.mjs: ssh2, the AWS SDK), as the main bundle requires it. */
const VENDOR = /^\.\/vendor-[a-z0-9]+\.js$/;
const vendors = new Map<string, Record<string, unknown>>();

/**
 * The main bundle's require(): its vendor bundles (loaded when such a remote is first opened) go
 * through the code cache too, saved with the main bundle's routes (compiling ssh2 took ~34 ms of
 * every sftp:// run, the AWS SDK ~57 ms of every s3:// one); anything else is Node's require.
 */
function vendorAware(file: string, routes: () => readonly string[]): NodeJS.Require {
  const base = createRequire(file);
  const req = (id: string): unknown => {
    if (!VENDOR.test(id)) return base(id);
    const at = path.join(path.dirname(file), id);
    let v = vendors.get(at);
    if (v === undefined) vendors.set(at, (v = load(at, path.basename(id, '.js'), routes)));
    return v;
  };
  return Object.assign(req, base);
}

function save(cacheFile: string, name: string, routes: readonly string[], data: Buffer): void {
  const temp = `${cacheFile}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(cacheFile), { recursive: true, mode: 0o700 });
    fs.writeFileSync(temp, Buffer.concat([Buffer.from(`${[HEADER, ...routes].join(' ')}\n`, 'latin1'), data]), { mode: 0o600 });
    fs.renameSync(temp, cacheFile);
    pruneOthers(cacheFile, name);
    debug('code cache %s: saved for %s', cacheFile, routes.join(' ') || '(no route)');
  } catch {
    // A read-only or full disk: the next run compiles as usual.
    try {
      fs.rmSync(temp, { force: true });
    } catch {
      // nothing was written
    }
  }
}

/** Keeps the KEEP newest cache files of the bundle `name`. */
function pruneOthers(cacheFile: string, name: string): void {
  const dir = path.dirname(cacheFile);
  const others = fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(`${name}-`) && n.endsWith('.bin') && n !== path.basename(cacheFile))
    .map((n) => ({ n, t: fs.statSync(path.join(dir, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const o of others.slice(KEEP - 1)) fs.rmSync(path.join(dir, o.n), { force: true });
}
