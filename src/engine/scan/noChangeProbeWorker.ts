// The worker thread of noChangeProbe.ts (bundled as dist/noChangeProbe.js): takes its share of the
// stat cache's chunks and reports what it found, or nothing when the main thread no longer waits for it.
import { parentPort, workerData } from 'node:worker_threads';
import { workerPart } from './noChangeProbe';

const { sab, root, file } = workerData as { sab: SharedArrayBuffer; root: string; file: string };
const report = workerPart(root, file, sab);
if (report !== undefined) parentPort!.postMessage(report);
