// `npm run bench:extension`: activation time and extension-host event-loop stalls while Backup
// Workspace backs up a ~400 MB workspace, measured in the real extension host (code-server's VS Code
// with headless Chromium). Prints the numbers and writes them to bench/results/extension-host.json.
// The targets: activation under 50 ms, no stall over 100 ms.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';
import { assertVsCodeHostInstalled, bundleHostSuites, runHostSuite } from './hostRun';

const MB = 1024 * 1024;

/** ~400 MB: 36 incompressible 10 MB files, and 4,000 small source-like files (~10 KB each). */
function populate(ws: string): void {
  fs.mkdirSync(path.join(ws, 'data'), { recursive: true });
  for (let i = 0; i < 36; i++) fs.writeFileSync(path.join(ws, 'data', `blob${i}.bin`), crypto.randomBytes(10 * MB));
  const line = 'export function f(a: number, b: number): number { return a * b + 42; } // some code\n';
  for (let d = 0; d < 40; d++) {
    const dir = path.join(ws, 'src', `module${d}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(dir, `file${f}.ts`), `// ${d}/${f}\n${line.repeat(120)}`);
  }
}

async function main(): Promise<void> {
  assertVsCodeHostInstalled();
  await bundleHostSuites();
  const out = path.join(tempDir('offsite-bench-ext-'), 'result.json');
  await runHostSuite({ suite: 'bench', populate, env: { OFFSITE_BENCH_OUT: out } });
  const r = JSON.parse(fs.readFileSync(out, 'utf8'));
  const dest = path.join(REPO, 'bench', 'results', 'extension-host.json');
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, JSON.stringify({ date: new Date().toISOString(), ...r }, null, 2));
  process.stdout.write(
    [
      '',
      `activation: ${r.activationMs.toFixed(1)} ms (activate(); target < 50 ms)`,
      `idle extension host (baseline, 10 s): event-loop delay p99 ${r.idleEventLoopDelayP99Ms.toFixed(1)} ms, max ${r.idleEventLoopDelayMaxMs.toFixed(1)} ms`,
      `backup of ${(r.sourceBytes / MB).toFixed(0)} MB, ${r.sourceFiles} files: ${r.backupSeconds.toFixed(1)} s, in engine process ${r.enginePid} (extension host ${r.extensionHostPid})`,
      `extension-host event-loop delay: p50 ${r.eventLoopDelayP50Ms.toFixed(1)} ms, p99 ${r.eventLoopDelayP99Ms.toFixed(1)} ms, max ${r.eventLoopDelayMaxMs.toFixed(1)} ms; longest 5 ms-timer gap ${r.maxTimerGapMs.toFixed(1)} ms (target: no stall > 100 ms)`,
      `written to ${path.relative(REPO, dest)}`,
      '',
    ].join('\n'),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
