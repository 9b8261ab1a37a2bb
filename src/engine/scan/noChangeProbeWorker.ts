// The worker thread of noChangeProbe.ts (bundled as dist/noChangeProbe.js): takes its share of the
// stat cache's chunks and reports what it found, or nothing when the main thread no longer waits for it.
// Started ahead by bin/offsite (probeWorker.ts), it waits for its job.
import { parentPort, workerData } from 'node:worker_threads';
import { workerJob } from '../util/engineWorker';
import { workerPart, type ProbeJob } from './noChangeProbe';

void workerJob<ProbeJob>(workerData, parentPort).then(({ sab, root, file }) => {
  const report = workerPart(root, file, sab);
  if (report !== undefined) parentPort!.postMessage(report);
});
