#!/usr/bin/env node
// A real VS Code for Offsite's extension tests and `npm start`, with nothing downloaded at run time:
// code-server 4.100.3 (VS Code 1.100.3, installed by scripts/setup-vscode.sh) runs the real Node
// extension host, and Debian's headless Chromium (driven by playwright-core) is the workbench that
// makes it start. Adapted from ../shared/vscode-host/code-headless.js.
//
// As a program it stands in for the VS Code executable of @vscode/test-electron's
// runTests({ vscodeExecutablePath }): it takes the same flags (--extensionDevelopmentPath,
// --extensionTestsPath, a folder) and exits with the tests' exit code. OFFSITE_WORKSPACE_TRUST=1 turns
// workspace trust on (the folder then opens untrusted); OFFSITE_USER_SETTINGS (JSON) adds user
// settings. As a module it exports startCodeServer() and workbenchUrl() for the end-to-end test and
// `npm start`.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const util = require('util');

const ROOT = path.resolve(__dirname, '..');
const CODE_SERVER_ENTRY = process.env.CODE_SERVER_ENTRY || path.join(ROOT, '.vscode-test/code-server/node_modules/code-server/out/node/entry.js');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Workbench chatter that codeAutomationLog also receives; shown only with VERBOSE=1.
const NOISE = /^(\[AgentHost|\[AccountPolicyGate\]|\[ChatModelSelection\]|\[reconnection-grace-time\]|Ignoring fetching additional builtin extensions|Resolving connection token|Resolved connection token|Creating a socket|Updating additional builtin extensions cache|\[Service Worker\]|ChatSessionStore:)/;
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

function checkInstalled() {
  if (!fs.existsSync(CODE_SERVER_ENTRY)) throw new Error(`code-server is not installed (${CODE_SERVER_ENTRY}): run scripts/setup-vscode.sh`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup-vscode.sh (it installs Debian's chromium)`);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

/**
 * Starts code-server on 127.0.0.1 with private user data, extensions, XDG folders and no marketplace.
 * Returns { port, authority, dataDir, log(), stop() }.
 */
async function startCodeServer(opts = {}) {
  checkInstalled();
  const dataDir = opts.dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'offsite-code-'));
  const ownsDataDir = !opts.dataDir;
  const userDataDir = path.join(dataDir, 'user-data');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  const settings = path.join(userDataDir, 'User', 'settings.json');
  if (!fs.existsSync(settings)) {
    fs.writeFileSync(
      settings,
      JSON.stringify(
        {
          'workbench.startupEditor': 'none',
          'extensions.autoCheckUpdates': false,
          'extensions.autoUpdate': false,
          'telemetry.telemetryLevel': 'off',
          'update.mode': 'none',
          'workbench.enableExperiments': false,
          'security.workspace.trust.enabled': !!opts.trust,
          'chat.disableAIFeatures': true,
          'workbench.tips.enabled': false,
          'git.openRepositoryInParentFolders': 'never',
          ...(opts.userSettings || {}),
        },
        null,
        2,
      ),
    );
  }
  const configFile = path.join(dataDir, 'config.yaml');
  fs.writeFileSync(configFile, 'auth: none\ncert: false\n');
  const port = opts.port || (await freePort());
  const args = [CODE_SERVER_ENTRY, '--config', configFile, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--user-data-dir', userDataDir,
    '--extensions-dir', path.join(dataDir, 'extensions'), '--disable-telemetry', '--disable-update-check', '--disable-getting-started-override'];
  if (!opts.trust) args.push('--disable-workspace-trust');
  const server = spawn(process.env.CODE_SERVER_NODE || process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    // XDG_*: keep code-server's heartbeat, logs and config out of $HOME (the extension host inherits them).
    env: {
      ...process.env,
      ...(opts.env || {}),
      XDG_DATA_HOME: path.join(dataDir, 'xdg-data'),
      XDG_CONFIG_HOME: path.join(dataDir, 'xdg-config'),
      EXTENSIONS_GALLERY: process.env.EXTENSIONS_GALLERY || '{}',
    },
  });
  let log = '';
  const onData = (d) => {
    log += d;
    if (process.env.VERBOSE) process.stderr.write(`[code-server] ${d}`);
  };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  let exited = false;
  server.on('exit', () => (exited = true));
  for (let i = 0; !/HTTP server listening/.test(log); i++) {
    if (exited || i > 600) {
      try { process.kill(-server.pid, 'SIGKILL'); } catch { /* gone */ }
      throw new Error(`code-server did not start:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const authority = `127.0.0.1:${port}`;
  return {
    port,
    authority,
    dataDir,
    server,
    log: () => log,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => server.once('exit', r));
        try { process.kill(-server.pid, 'SIGTERM'); } catch { /* gone */ }
        const t = setTimeout(() => { try { process.kill(-server.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
        await gone;
        clearTimeout(t);
      }
      if (ownsDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The workbench URL that opens `folder` with the extension(s) in development mode (and tests, if given). */
function workbenchUrl(authority, { folder, extensionDevelopmentPath = [], extensionTestsPath } = {}) {
  const remote = (p) => `vscode-remote://${authority}${p}`;
  const payload = [...extensionDevelopmentPath.map((d) => ['extensionDevelopmentPath', remote(d)]), ['skipWelcome', 'true']];
  if (extensionTestsPath) payload.push(['extensionTestsPath', remote(extensionTestsPath)]);
  const target = folder ? `${folder.endsWith('.code-workspace') ? 'workspace' : 'folder'}=${encodeURIComponent(folder)}` : 'ew=true';
  return `http://${authority}/?${target}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

function launchChromium(userDataDir, extra = {}) {
  const { chromium } = require(require.resolve('playwright-core', { paths: [ROOT] }));
  return chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ...extra });
}

function parseArgs(argv) {
  const o = { dev: [], positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) {
      o.positional.push(a);
      continue;
    }
    const [, k, v] = m;
    const val = () => (v !== undefined ? v : argv[++i]);
    if (k === 'extensionDevelopmentPath') o.dev.push(path.resolve(val()));
    else if (k === 'extensionTestsPath') o.tests = path.resolve(val());
    else if (k === 'user-data-dir' || k === 'extensions-dir' || k === 'folder-uri') val();
    // Other flags test-electron passes to Electron (--no-sandbox, --disable-updates, …) mean nothing here.
  }
  return o;
}

async function main() {
  const t0 = Date.now();
  const args = parseArgs(process.argv.slice(2));
  if (!args.tests || !args.dev.length) {
    console.error('need --extensionTestsPath and --extensionDevelopmentPath');
    process.exit(2);
  }
  const timeoutMs = +(process.env.VSCODE_TEST_TIMEOUT_MS || 300000);
  const cs = await startCodeServer({ trust: process.env.OFFSITE_WORKSPACE_TRUST === '1', userSettings: JSON.parse(process.env.OFFSITE_USER_SETTINGS || '{}') });
  let context;
  let done = false;
  const finish = async (code, why) => {
    if (done) return;
    done = true;
    if (why) console.error(`[codeHeadless] ${why}`);
    if (context) await context.close().catch(() => undefined);
    await cs.stop();
    if (process.env.VERBOSE) console.error(`[codeHeadless] exit ${code} after ${Date.now() - t0} ms`);
    process.exit(code);
  };
  cs.server.on('exit', (c) => void finish(4, `code-server exited early (${c})\n${cs.log()}`));
  setTimeout(() => void finish(3, `timed out after ${timeoutMs} ms`), timeoutMs).unref();
  const folder = args.positional[0] ? path.resolve(args.positional[0]) : undefined;
  context = await launchChromium(path.join(cs.dataDir, 'chromium'));
  const page = context.pages()[0] || (await context.newPage());
  if (process.env.VERBOSE) page.on('console', (m) => console.error('[browser]', m.type(), m.text()));
  await page.exposeFunction('codeAutomationLog', (type, a) => {
    const line = util.format(...(Array.isArray(a) ? a : [a]));
    if (!process.env.VERBOSE && NOISE.test(line)) return;
    (type === 'error' ? console.error : console.log)(line);
  });
  await page.exposeFunction('codeAutomationExit', (code) => void finish(code));
  await page.goto(workbenchUrl(cs.authority, { folder, extensionDevelopmentPath: args.dev, extensionTestsPath: args.tests }));
}

module.exports = { startCodeServer, workbenchUrl, launchChromium, checkInstalled, CODE_SERVER_ENTRY, CHROMIUM };

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(2);
  });
}
