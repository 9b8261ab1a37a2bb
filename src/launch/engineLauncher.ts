// The engine process the extension forks (bundled as dist/engineLauncher.js): runs dist/engineHost.js
// through the code cache (codeCache.ts), keeping the code of the requests it served (its codeRoutes()).
// The first request after the engine was stopped (idle 5 minutes) then skips most of the compiling:
// a first readFile 175 → 150 ms (bench/README.md).
import * as path from 'node:path';
import { loadBundle } from './codeCache';
import { BACKGROUND_NICE, lowerPriority } from './priority';

// Backups are background work: the editor (its extension host, renderer, language servers) and the
// user's own builds come first (npm run bench:extension, bench/README.md: the extension host's
// event-loop delay during Backup Workspace, p99 12.1–15.2 → 8.4–10.9 ms, the backup as fast).
lowerPriority(BACKGROUND_NICE);
loadBundle(path.join(__dirname, 'engineHost.js'), 'engineHost');
