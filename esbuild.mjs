// Bundles the CLI and (later) the extension into dist/, CommonJS for Node 20 / VS Code 1.100.
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';

const production = process.argv.includes('--production');
const entries = [{ in: 'src/cli/main.ts', out: 'cli' }];
if (fs.existsSync('src/extension/extension.ts')) entries.push({ in: 'src/extension/extension.ts', out: 'extension' });
entries.push({ in: 'src/engine/serviceMain.ts', out: 'engineHost' });
// The worker thread of a tree restore, beside the bundles that start it (src/engine/util/engineWorker.ts).
entries.push({ in: 'src/engine/ops/restoreWriterWorker.ts', out: 'restoreWriter' });

await esbuild.build({
  entryPoints: entries,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // ssh2's optional native addons: their require() is in a try/catch with a pure-JS fallback.
  // tsx: only named (require.resolve) where the engine runs from its sources, in tests.
  external: ['vscode', '*.node', 'tsx'],
  sourcemap: !production,
  minify: production,
  legalComments: 'none',
  // ESM dependencies (openpgp) use import.meta.url; give the CommonJS bundle a real one.
  define: { 'import.meta.url': '__importMetaUrl' },
  banner: { js: "const __importMetaUrl = require('url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
