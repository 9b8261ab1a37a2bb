// bin/offsite's launcher (bundled as dist/launch.js): the CLI bundle through the code cache
// (codeCache.ts), and, for a backup, the no-change probe's worker thread started before that bundle
// loads (src/engine/scan/probeWorker.ts).
export { loadBundle } from './codeCache';
export { prestartProbeWorker } from '../engine/scan/probeWorker';
