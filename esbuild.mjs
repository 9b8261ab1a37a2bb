// Bundles the CLI and (later) the extension into dist/, CommonJS for Node 20 / VS Code 1.100.
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';

const production = process.argv.includes('--production');
const entries = [{ in: 'src/cli/main.ts', out: 'cli' }];
if (fs.existsSync('src/extension/extension.ts')) entries.push({ in: 'src/extension/extension.ts', out: 'extension' });
entries.push({ in: 'src/engine/serviceMain.ts', out: 'engineHost' });
// bin/offsite's launcher (dist/launch.js: the code-cache loader, the probe's worker started ahead), and
// the engine process the extension forks, which loads dist/engineHost.js through the loader (src/launch/).
entries.push({ in: 'src/launch/cli.ts', out: 'launch' });
entries.push({ in: 'src/launch/engineLauncher.ts', out: 'engineLauncher' });
// The worker thread of a tree restore, beside the bundles that start it (src/engine/util/engineWorker.ts).
entries.push({ in: 'src/engine/ops/restoreWriterWorker.ts', out: 'restoreWriter' });
// The worker thread that makes a backup's lstats ahead of its walk (src/engine/scan/statAhead.ts).
entries.push({ in: 'src/engine/scan/statAheadWorker.ts', out: 'statAhead' });
// The worker thread of the no-change probe (src/engine/scan/noChangeProbe.ts).
entries.push({ in: 'src/engine/scan/noChangeProbeWorker.ts', out: 'noChangeProbe' });

// The libraries of the remote kinds (ssh2, the AWS SDK: 2.2 of the 3.7 MB a single CLI bundle had)
// live in vendor bundles beside the others, which a main bundle require()s when a remote of that kind
// is first opened (src/engine/backend/all.ts loads the backends lazily). V8 parses every byte of a
// bundle at start, used or not: a one-file restore from file:// took 0.31 s and 79 MiB with them
// inside, 0.26 s and 72 MiB without (alternating runs).
// openpgp.js (~0.9 MB) likewise: evaluating it took ~30 ms of every start, and a backup to known
// keys, the CLI's status and list, need none of it (src/engine/crypto/openpgpLib.ts).
const VENDORS = {
  'vendor-openpgp': ['openpgp'],
  'vendor-sftp': ['ssh2', 'ssh2-sftp-client'],
  'vendor-s3': ['@aws-sdk/client-s3', '@aws-sdk/lib-storage'],
};
const vendorOf = new Map(Object.entries(VENDORS).flatMap(([bundle, specs]) => specs.map((s) => [s, bundle])));
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const vendorPlugin = {
  name: 'vendor',
  setup(build) {
    // Our imports of those packages become a lookup in their vendor bundle (same module instances for
    // every importer); the bundles' own imports of each other never reach here (they are not built
    // with this plugin).
    build.onResolve({ filter: new RegExp(`^(${[...vendorOf.keys()].map(escape).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'vendor' }));
    build.onLoad({ filter: /.*/, namespace: 'vendor' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`./${vendorOf.get(args.path)}.js`)})[${JSON.stringify(args.path)}];`,
      loader: 'js',
    }));
    // Resolved at run time, next to the requiring bundle in dist/.
    build.onResolve({ filter: /^\.\/vendor-[a-z0-9]+\.js$/, namespace: 'vendor' }, (args) => ({ path: args.path, external: true }));
  },
};

// ssh2's native AES-GCM/ChaCha20 binding (built by its install script when a compiler is there): its
// require() in the bundle is relative to dist/, where nothing was, so every sftp:// packet went through
// ssh2's fallback, a new node:crypto cipher object per packet. The binding is copied to dist/native/
// and the require pointed there. Without it (no compiler, or another Node ABI such as VS Code's
// Electron), ssh2's try/catch keeps the fallback. cpu-features only moves ChaCha20 first on CPUs
// without AES instructions: left out (its require fails the same way, caught by ssh2).
const SSH2_BINDING = 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node';
const nativePlugin = {
  name: 'native',
  setup(build) {
    build.onResolve({ filter: /\/sshcrypto\.node$/ }, () => ({ path: './native/sshcrypto.node', external: true }));
  },
};

const common = {
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
};

await Promise.all([
  esbuild.build({ ...common, entryPoints: entries, outdir: 'dist', plugins: [vendorPlugin] }),
  ...Object.entries(VENDORS).map(([bundle, specs]) =>
    esbuild.build({
      ...common,
      stdin: { contents: `module.exports = {${specs.map((s) => `${JSON.stringify(s)}: require(${JSON.stringify(s)})`).join(', ')}};`, resolveDir: process.cwd(), sourcefile: `${bundle}.js`, loader: 'js' },
      outfile: `dist/${bundle}.js`,
      plugins: [nativePlugin],
    }),
  ),
]);

fs.rmSync('dist/native', { recursive: true, force: true });
if (fs.existsSync(SSH2_BINDING)) {
  fs.mkdirSync('dist/native');
  fs.copyFileSync(SSH2_BINDING, 'dist/native/sshcrypto.node');
}

// esbuild escapes non-ASCII characters in code (its default charset), not in the comments it keeps
// (a few JSDoc comments): escaped too, the bundles are ASCII, which bin/offsite's loader reads as a
// one-byte string in one copy (src/launch/codeCache.ts).
for (const f of fs.readdirSync('dist')) {
  if (!f.endsWith('.js')) continue;
  const file = `dist/${f}`;
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n').filter((l) => /[^\x00-\x7f]/.test(l));
  if (lines.length === 0) continue;
  // Only comment lines: in a string or a regular expression the escape would change what it means.
  const code = lines.find((l) => !/^\s*(\/\/|\/\*|\*)/.test(l));
  if (code) throw new Error(`${file}: a non-ASCII character outside a comment: ${code.trim().slice(0, 120)}`);
  fs.writeFileSync(file, text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`));
}
