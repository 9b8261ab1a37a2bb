// Bundles the CLI and (later) the extension into dist/, CommonJS for Node 20 / VS Code 1.100.
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';

const production = process.argv.includes('--production');
const entries = [{ in: 'src/cli/main.ts', out: 'cli' }];
if (fs.existsSync('src/extension/extension.ts')) entries.push({ in: 'src/extension/extension.ts', out: 'extension' });
entries.push({ in: 'src/engine/serviceMain.ts', out: 'engineHost' });

await esbuild.build({
  entryPoints: entries,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // ssh2's optional native addons: their require() is in a try/catch with a pure-JS fallback.
  external: ['vscode', '*.node'],
  sourcemap: !production,
  minify: production,
  legalComments: 'none',
  // ESM dependencies (openpgp) use import.meta.url; give the CommonJS bundle a real one.
  define: { 'import.meta.url': '__importMetaUrl' },
  banner: { js: "const __importMetaUrl = require('url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
