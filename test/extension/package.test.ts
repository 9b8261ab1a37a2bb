// `npm run package` builds a small .vsix with @vscode/vsce: the esbuild bundles, the manifest, media,
// nothing from src/ or test/ — and VS Code 1.100 (code-server) installs it.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';
import { CODE_SERVER_ENTRY, assertVsCodeHostInstalled } from './hostRun';

describe('npm run package', function () {
  this.timeout(300_000);

  it('makes a small .vsix of bundles and media only, which VS Code 1.100 installs', () => {
    assertVsCodeHostInstalled();
    const dir = tempDir('offsite-vsix-');
    const vsix = path.join(dir, 'offsite.vsix');
    execFileSync('npm', ['run', 'package', '--', '--out', vsix], { cwd: REPO, stdio: 'pipe' });
    const size = fs.statSync(vsix).size;
    assert.ok(size < 2 * 1024 * 1024, `small: ${size} bytes`);
    const listing = execFileSync('python3', ['-c', 'import sys, zipfile; print("\\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))', vsix], { encoding: 'utf8' }).trim().split('\n');
    const files = listing.filter((f) => f.startsWith('extension/')).map((f) => f.slice('extension/'.length)).sort();
    // The extension forks dist/engineLauncher.js, which runs dist/engineHost.js through its code cache;
    // the engine process starts dist/restoreWriter.js (a worker thread) to restore a folder and
    // dist/statAhead.js and dist/noChangeProbe.js for incrementals, and requires the vendor bundles
    // when an sftp:// or s3:// remote is first opened, or openpgp.js when a key must be read.
    for (const f of ['dist/extension.js', 'dist/engineLauncher.js', 'dist/engineHost.js', 'dist/restoreWriter.js', 'dist/statAhead.js', 'dist/noChangeProbe.js', 'dist/vendor-openpgp.js', 'dist/vendor-sftp.js', 'dist/vendor-s3.js']) {
      assert.ok(files.includes(f), `${f} in ${files.join(' ')}`);
    }
    assert.ok(files.includes('package.json') && files.includes('package.nls.json') && files.includes('media/offsite.svg'));
    assert.deepEqual(files.filter((f) => /^(src|test|node_modules|out|bench|scripts)\//.test(f) || /\.(ts|map)$/.test(f)), []);
    // Everything it runs is bundled: the extension needs nothing but 'vscode' and Node's own modules.
    const ext = fs.readFileSync(path.join(REPO, 'dist', 'extension.js'), 'utf8');
    const required = [...ext.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]).filter((m) => !m.startsWith('node:'));
    const builtin = new Set(require('node:module').builtinModules as string[]);
    assert.deepEqual(required.filter((m) => m !== 'vscode' && !builtin.has(m)), []);
    // What the engine bundle requires beside itself (the vendor bundles) is in the package.
    const engine = fs.readFileSync(path.join(REPO, 'dist', 'engineHost.js'), 'utf8');
    const siblings = [...new Set([...engine.matchAll(/require\("\.\/([^"]+)"\)/g)].map((m) => `dist/${m[1]}`))];
    assert.ok(siblings.length >= 2, `the engine requires its vendor bundles: ${siblings.join(' ')}`);
    for (const f of siblings) assert.ok(files.includes(f), `${f} (required by dist/engineHost.js) in the package`);
    const extDir = path.join(dir, 'extensions');
    const out = execFileSync(process.execPath, [CODE_SERVER_ENTRY, '--extensions-dir', extDir, '--user-data-dir', path.join(dir, 'data'), '--install-extension', vsix], {
      encoding: 'utf8',
      env: { ...process.env, XDG_DATA_HOME: path.join(dir, 'xdg'), XDG_CONFIG_HOME: path.join(dir, 'xdg') },
    });
    assert.match(out, /successfully installed/i);
    assert.ok(fs.readdirSync(extDir).some((d) => /^offsite\.offsite-\d/.test(d)), fs.readdirSync(extDir).join(' '));
  });
});
