// The code-cache loader (src/launch/codeCache.ts, bundled as dist/launch.js) on small bundles of its
// own, each run in a child process (the cache is saved at exit): a main bundle and the vendor bundle it
// requires each get a cache file, saved with the main bundle's routes, used by the next run, and saved
// again only for a route they do not list.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../../helpers/cli';
import { tempDir } from '../../helpers/tmp';

const LAUNCH = path.join(REPO, 'dist', 'launch.js');

/** Runs main.js of `dir` through loadBundle with the given route: what it printed, and NODE_DEBUG's lines. */
function runWithDebug(dir: string, xdg: string, route: string): { out: string; debug: string } {
  const code = `const x = require(${JSON.stringify(LAUNCH)}).loadBundle(${JSON.stringify(path.join(dir, 'main.js'))}, 'main'); process.stdout.write(String(x.answer));`;
  const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, XDG_CACHE_HOME: xdg, NODE_DEBUG: 'offsite', ROUTE: route }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { out: r.stdout, debug: r.stderr };
}

describe('launch: the code-cache loader', function () {
  this.timeout(30_000);

  it("caches a main bundle and the vendor bundle it requires, each saved with the main bundle's routes", () => {
    const dir = tempDir('offsite-launch-');
    const xdg = tempDir('offsite-xdg-');
    // The route comes through the environment (the -e script is among Node's flags, which name the
    // cache); node:path goes to Node's own require, the vendor bundle to the loader.
    fs.writeFileSync(
      path.join(dir, 'main.js'),
      "const v = require('./vendor-abc.js'); const p = require('node:path'); exports.answer = v.half * 2 + p.sep.length - 1; exports.codeRoutes = () => [process.env.ROUTE];\n",
    );
    fs.writeFileSync(path.join(dir, 'vendor-abc.js'), 'module.exports = { half: 21 };\n');
    const cacheDir = path.join(xdg, 'offsite', 'code-cache');
    const files = () => fs.readdirSync(cacheDir).sort();
    const firstLine = (prefix: string) => {
      const f = files().find((n) => n.startsWith(prefix))!;
      const b = fs.readFileSync(path.join(cacheDir, f));
      return b.toString('latin1', 0, b.indexOf(0x0a));
    };

    let r = runWithDebug(dir, xdg, 'r1');
    assert.equal(r.out, '42', 'the bundles ran, the vendor one through the main one');
    assert.match(r.debug, /code cache .*main-.*: none/);
    assert.match(r.debug, /code cache .*vendor-abc-.*: none/);
    assert.deepEqual(files().map((n) => n.replace(/-[0-9a-f]{32}-v[\d.]+-\w+\.bin$/, '')), ['main', 'vendor-abc']);
    for (const f of files()) assert.equal(fs.statSync(path.join(cacheDir, f)).mode & 0o777, 0o600);
    assert.equal(firstLine('main-'), 'offsite-code-cache 1 r1');
    assert.equal(firstLine('vendor-abc-'), 'offsite-code-cache 1 r1');
    const before = files().map((f) => fs.statSync(path.join(cacheDir, f)).ino);

    r = runWithDebug(dir, xdg, 'r1');
    assert.equal(r.out, '42');
    assert.match(r.debug, /code cache .*main-.*: used/);
    assert.match(r.debug, /code cache .*vendor-abc-.*: used/);
    assert.doesNotMatch(r.debug, /saved/, 'a route they list: nothing written');
    assert.deepEqual(files().map((f) => fs.statSync(path.join(cacheDir, f)).ino), before);

    r = runWithDebug(dir, xdg, 'r2');
    assert.equal(r.out, '42');
    assert.equal(firstLine('main-'), 'offsite-code-cache 1 r1 r2');
    assert.equal(firstLine('vendor-abc-'), 'offsite-code-cache 1 r1 r2');

    // A changed bundle is another cache file; the old one stays (the four newest are kept).
    fs.writeFileSync(path.join(dir, 'vendor-abc.js'), 'module.exports = { half: 20 };\n');
    r = runWithDebug(dir, xdg, 'r1');
    assert.equal(r.out, '40');
    assert.match(r.debug, /code cache .*vendor-abc-.*: none/);
    assert.equal(files().filter((n) => n.startsWith('vendor-abc-')).length, 2);
  });

  it('gives each install of the same bundle its own cache file: V8 keeps the file name of the code it cached, and stack traces would name the other install', () => {
    const xdg = tempDir('offsite-xdg-');
    const installs = [tempDir('offsite-launch-a-'), tempDir('offsite-launch-b-')];
    for (const dir of installs) fs.writeFileSync(path.join(dir, 'main.js'), "exports.where = () => new Error('here').stack.split('\\n')[1].trim(); exports.codeRoutes = () => ['r1'];\n");
    // One launcher for both, as bin/offsite is one file per install: the same Node flags (-e would put
    // the bundle's path among them, and so in the cache's name anyway).
    const launcher = path.join(tempDir('offsite-launcher-'), 'run.js');
    fs.writeFileSync(launcher, `const x = require(${JSON.stringify(LAUNCH)}).loadBundle(process.env.BUNDLE, 'main'); process.stdout.write(x.where());\n`);
    const where = (dir: string) => {
      const r = spawnSync(process.execPath, [launcher], { env: { ...process.env, XDG_CACHE_HOME: xdg, NODE_DEBUG: 'offsite', BUNDLE: path.join(dir, 'main.js') }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return { frame: r.stdout, debug: r.stderr };
    };
    for (const dir of installs) {
      const first = where(dir);
      assert.match(first.debug, /code cache .*main-.*: none/, 'the other install\'s cache is not this one\'s');
      assert.ok(first.frame.includes(path.join(dir, 'main.js')), first.frame);
      const again = where(dir);
      assert.match(again.debug, /code cache .*main-.*: used/);
      assert.ok(again.frame.includes(path.join(dir, 'main.js')), again.frame);
    }
    assert.equal(fs.readdirSync(path.join(xdg, 'offsite', 'code-cache')).length, 2);
  });
});
