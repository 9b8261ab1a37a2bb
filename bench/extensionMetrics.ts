// What the editor feels during a backup: the extension talks to the engine through EngineClient (a
// forked dist/engineLauncher.js, which lowers its priority and runs dist/engineHost.js through the code
// cache), so this process plays the extension host: it runs a full backup of the
// workspace through EngineClient while perf_hooks.monitorEventLoopDelay records its event-loop delay.
// Activation time needs VS Code itself (dist/extension.js imports 'vscode'); it is approximated here by
// loading the bundle and running activate() against a stub 'vscode' module whose calls do nothing
// (the extension's own work, not VS Code's).
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { EngineClient } from '../src/extension/engineClient';
import { readInPieces, regularFiles } from './measure';

export interface ExtensionMetricsOptions {
  readonly repoRoot: string;
  readonly scratch: string;
  readonly corpus: string;
  readonly publicKey: string;
  readonly log: (m: string) => void;
}

/**
 * A do-nothing 'vscode' module: every property is a callable, constructible stub; the module lists the
 * API's top-level names (from @types/vscode), so a bundle's namespace import sees them.
 */
function stubVscode(repoRoot: string): unknown {
  const dts = fs.readFileSync(path.join(repoRoot, 'node_modules', '@types', 'vscode', 'index.d.ts'), 'utf8');
  const names = [...dts.matchAll(/^\t(?:export )?(?:class|enum|namespace|function|const|let|var) (\w+)/gm)].map((m) => m[1]);
  const handler: ProxyHandler<() => void> = {
    get: (t, p) => (p === Symbol.toPrimitive ? () => '' : p === 'then' ? undefined : p === Symbol.iterator ? function* () {} : p === 'prototype' ? Reflect.get(t, p) : stub),
    apply: () => stub,
    construct: () => stub as object,
    set: () => true,
    defineProperty: () => true,
    ownKeys: () => [...names, 'prototype'],
    getOwnPropertyDescriptor: (t, p) => (p === 'prototype' ? Reflect.getOwnPropertyDescriptor(t, p) : { configurable: true, enumerable: true, value: stub }),
  };
  const stub: unknown = new Proxy(function () {}, handler);
  return stub;
}

/** Milliseconds to load the bundle and to run its activate() against the stub, or why not. */
export async function activationTime(repoRoot: string, bundle: string): Promise<{ load: number | string; activate: number | string }> {
  if (!fs.existsSync(bundle)) return { load: 'not measured: dist/extension.js is not built', activate: 'not measured' };
  type Loader = { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
  const loader = Module as unknown as Loader;
  const original = loader._load;
  const vscode = stubVscode(repoRoot);
  loader._load = (request, parent, isMain) => (request === 'vscode' ? vscode : original(request, parent, isMain));
  try {
    const t0 = performance.now();
    const ext = require(bundle) as { activate?: (ctx: unknown) => unknown; deactivate?: () => unknown };
    const load = performance.now() - t0;
    const ctx = { subscriptions: [] as { dispose?: () => void }[], globalState: vscode, workspaceState: vscode, secrets: vscode, extensionUri: vscode, extensionPath: repoRoot, asAbsolutePath: (p: string) => path.join(repoRoot, p), globalStorageUri: vscode, storageUri: vscode, logUri: vscode, extension: vscode, extensionMode: 1 };
    let activate: number | string;
    try {
      const t1 = performance.now();
      await ext.activate?.(ctx);
      activate = performance.now() - t1;
    } catch (e) {
      activate = `not measured: activate() needs more of VS Code than a stub (${(e as Error).message.slice(0, 80)})`;
    }
    try {
      await ext.deactivate?.();
      for (const d of ctx.subscriptions) d?.dispose?.();
    } catch {
      // the stub's objects: nothing to release
    }
    return { load, activate };
  } catch (e) {
    return { load: `not measured: ${(e as Error).message.slice(0, 80)}`, activate: 'not measured' };
  } finally {
    loader._load = original;
  }
}

export async function extensionMetrics(o: ExtensionMetricsOptions): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  // What the extension forks (src/extension/extension.ts).
  const host = path.join(o.repoRoot, 'dist', 'engineLauncher.js');
  const remote = path.join(o.scratch, 'ext-remote');
  const cache = path.join(o.scratch, 'ext-cache');
  fs.mkdirSync(remote, { recursive: true, mode: 0o700 });
  const client = new EngineClient({ hostScript: host });
  const h = monitorEventLoopDelay({ resolution: 10 });
  // This phase runs last, after the 100k-file and 1 GB phases, and backs up the pristine workspace,
  // which no other phase read lately: measured cold, its backup took 42-44 s instead of 5-9 s.
  const warm = readAll(o.corpus);
  o.log(`extension host: read the workspace into the page cache first (${warm.files} files, ${(warm.ms / 1000).toFixed(1)} s)`);
  try {
    h.enable();
    const t0 = performance.now();
    await client.request({ op: 'backup', remote: { url: `file://${remote}`, archiveDir: cache }, keys: { encryptKeys: [o.publicKey] }, source: o.corpus, full: true });
    const wall = (performance.now() - t0) / 1000;
    h.disable();
    out['full backup through EngineClient, s'] = wall;
    out['extension-host event-loop delay during it, p50 ms'] = h.percentile(50) / 1e6;
    out['extension-host event-loop delay during it, p99 ms'] = h.percentile(99) / 1e6;
    out['extension-host event-loop delay during it, max ms'] = h.max / 1e6;
    o.log(`extension host: backup ${wall.toFixed(2)} s, event-loop delay p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms`);
  } finally {
    client.dispose();
    fs.rmSync(remote, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
  }
  const t = await activationTime(o.repoRoot, path.join(o.repoRoot, 'dist', 'extension.js'));
  out['extension bundle load time (stub vscode), ms'] = t.load;
  out['extension activate() time (stub vscode), ms'] = t.activate;
  return out;
}

/** Reads every regular file under `dir` once, so that it is in the page cache. */
function readAll(dir: string): { files: number; ms: number } {
  const t0 = performance.now();
  let files = 0;
  for (const r of regularFiles(dir)) {
    readInPieces(path.join(dir, r));
    files++;
  }
  return { files, ms: performance.now() - t0 };
}
