// Where the no-change probe's worker thread is and how it is started (noChangeProbe.ts): apart, so that
// bin/offsite's launcher can start it before the CLI bundle loads (prestartProbeWorker) without
// bundling the probe itself.
import * as os from 'node:os';
import * as path from 'node:path';
import type { WorkerOptions } from 'node:worker_threads';
import { prestartWorker } from '../util/engineWorker';

/** The worker's entry bundled next to the bundle that runs the probe (esbuild.mjs), and its source. */
export const PROBE_BUNDLED = 'noChangeProbe.js';
export const PROBE_SOURCE = 'noChangeProbeWorker.ts';

/** It decodes records and makes system calls, as statAhead.ts's worker. */
export const PROBE_WORKER_OPTIONS: WorkerOptions = { resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } };

/** Whether the probe gets a worker thread at all: not on one core. */
export function probeWantsWorker(): boolean {
  return os.availableParallelism() >= 2;
}

/**
 * For a `backup` command: starts the probe's worker thread (in `distDir`) while the CLI bundle loads,
 * ready when the probe begins (~80 ms later) instead of starting then; a backup that does not probe
 * ends it (NoChangeProbe.discardPrestarted).
 */
export function prestartProbeWorker(distDir: string): void {
  if (probeWantsWorker()) prestartWorker(path.join(distDir, PROBE_BUNDLED), PROBE_WORKER_OPTIONS);
}
