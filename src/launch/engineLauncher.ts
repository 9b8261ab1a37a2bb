// The engine process the extension forks (bundled as dist/engineLauncher.js): runs dist/engineHost.js
// through the code cache (codeCache.ts), keeping the code of the requests it served (its codeRoutes()).
// The first request after the engine was stopped (idle 5 minutes) then skips most of the compiling:
// a first readFile 175 → 150 ms (bench/README.md).
import * as path from 'node:path';
import { loadBundle } from './codeCache';

loadBundle(path.join(__dirname, 'engineHost.js'), 'engineHost');
