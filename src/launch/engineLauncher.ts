// The engine process the extension forks (bundled as dist/engineLauncher.js): runs dist/engineHost.js
// through the code cache (codeCache.ts), keeping the code of the requests it served. The first request
// after the engine was stopped (idle 5 minutes) then skips compiling the engine: ~30–60 ms to load it.
import * as path from 'node:path';
import { loadBundle } from './codeCache';

loadBundle(path.join(__dirname, 'engineHost.js'), {
  name: 'engineHost',
  routes: (x) => (typeof x.servedRoutes === 'function' ? (x.servedRoutes as () => string[])() : []),
});
