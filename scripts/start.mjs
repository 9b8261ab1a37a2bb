// `npm start`: the extension in a real VS Code in your browser, ready to click "Backup Workspace".
// Builds (npm does, before this), then makes a demo workspace, a throwaway key pair (through the
// engine's createKey request) and a local file:// remote under .offsite-start/ (recreated each run),
// starts code-server on 127.0.0.1 with the extension loaded from this folder, and prints the URL.
// Ctrl+C stops it.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { startCodeServer, workbenchUrl, checkInstalled } = require('./codeHeadless.js');

const root = path.join(REPO, '.offsite-start');
const ws = path.join(root, 'demo-project');
const keys = path.join(root, 'keys');
const remote = path.join(root, 'remote');
const PASSPHRASE = 'offsite-demo';

try {
  checkInstalled();
} catch (e) {
  console.error(`npm start: ${e.message}\n(scripts/setup.sh installs everything; it needs apt, so run it as root or with sudo.)`);
  process.exit(1);
}

/** One request to the engine process, as the extension sends it. */
function engineRequest(request) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(REPO, 'dist', 'engineHost.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m) => {
      if (m.result !== undefined) resolve(m.result);
      else if (m.error) reject(new Error(`${m.error.message}${m.error.hint ? `. ${m.error.hint}` : ''}`));
      else return;
      child.disconnect();
    });
    child.on('error', reject);
    child.send({ id: 1, request });
  });
}

function put(rel, data) {
  fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
  fs.writeFileSync(path.join(ws, rel), data);
}

async function freePort(preferred) {
  const tryPort = (p) => new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(undefined));
    s.listen(p, '127.0.0.1', () => s.close(() => resolve(s.address()?.port ?? p)));
  });
  return (await tryPort(preferred)) ?? (await tryPort(0));
}

fs.rmSync(root, { recursive: true, force: true });
fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
fs.mkdirSync(remote, { recursive: true });

put('README.md', '# Demo project\n\nBacked up by Offsite. Edit me, back up again, then compare with the backup.\n');
put('src/main.ts', `${Array.from({ length: 60 }, (_, i) => `export const value${i} = ${i};`).join('\n')}\n`);
put('src/lib/util.ts', 'export function add(a: number, b: number): number {\n  return a + b;\n}\n');
put('notes.txt', 'Things to try:\n- Offsite: Backup Workspace\n- edit this file, back up again\n- Offsite: Compare With Backup…\n');
put('assets/logo.bin', Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 251)));
put('.gitignore', 'build/\n');
put('build/out.js', '// ignored by .gitignore, so not backed up\n');

console.log('Offsite: making a throwaway key pair for the demo…');
const key = await engineRequest({ op: 'createKey', name: 'Offsite Demo', email: 'demo@example.invalid', passphrase: PASSPHRASE });
const pub = path.join(keys, 'demo-public.asc');
const sec = path.join(keys, 'demo-private.asc');
fs.writeFileSync(pub, key.publicArmored, { mode: 0o644 });
fs.writeFileSync(sec, key.privateArmored, { mode: 0o600 });

// What a user puts in .vscode/settings.json (or in their user settings, for every workspace).
put('.vscode/settings.json', `${JSON.stringify({ 'offsite.remote': `file://${remote}`, 'offsite.encryptKeys': [pub], 'offsite.restoreKey': sec }, null, 2)}\n`);

const port = await freePort(Number(process.env.PORT) || 8080);
const cs = await startCodeServer({
  dataDir: path.join(root, 'code-server'),
  port,
  // The engine's cache stays in the demo folder too.
  env: { XDG_CACHE_HOME: path.join(root, 'cache') },
});
const url = workbenchUrl(cs.authority, { folder: ws, extensionDevelopmentPath: [REPO] });

console.log(`
Offsite is running in VS Code (code-server ${require(path.join(REPO, '.vscode-test/code-server/node_modules/code-server/package.json')).version}) on 127.0.0.1.

  Open:  ${url}

  Demo workspace: ${ws}
  Remote:         file://${remote}  (each folder backs up to <remote>/<folder name>)
  Keys:           ${pub}
                  ${sec}  (passphrase: ${PASSPHRASE}; throwaway)

Try: the Offsite view (cloud icon) or F1 → "Offsite: Backup Workspace"; edit a file, back up again,
then F1 → "Offsite: Compare With Backup…". Restoring asks for the passphrase above.
Ctrl+C stops code-server; everything lives in .offsite-start/ (recreated on each npm start).
`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log('\nStopping code-server…');
  await cs.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
cs.server.on('exit', (code) => {
  if (!stopping) {
    console.error(`code-server stopped (${code}).\n${cs.log().slice(-2000)}`);
    process.exit(1);
  }
});
