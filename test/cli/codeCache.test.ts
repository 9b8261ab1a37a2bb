// bin/offsite compiles the bundle with V8's code cache: saved by the first run (private, named by the
// bundle's content), used as it is by later runs (NODE_DEBUG=offsite says so), written again when V8 refuses it
// or when a command goes a way it has not seen (with that code added), and never in the way of the command
// when it cannot be read or written.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultCacheRoot } from '../../src/engine/cache/archiveDir';
import { setTimeout as sleep } from 'node:timers/promises';
import { OFFSITE, offsite, REPO, run, type RunResult } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { makeTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

/** The cache file of `node bin/offsite` (no Node flags: the helper does not run the shebang's). */
function expectedName(): string {
  const flags = ` ${process.env.NODE_OPTIONS || ''}`; // as the launcher: its execArgv (none), NODE_OPTIONS
  const bundle = path.join(REPO, 'dist', 'cli.js');
  const digest = createHash('sha256').update(fs.readFileSync(bundle)).update('\0').update(flags).update('\0').update(bundle).digest('hex').slice(0, 32);
  return `cli-${digest}-${process.version}-${process.arch}.bin`;
}

/** The code-cache folder for this XDG_CACHE_HOME: in the engine's cache root (src/launch/codeCache.ts). */
function cacheDir(xdg: string): string {
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = xdg;
  try {
    return path.join(defaultCacheRoot(), 'code-cache');
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
}

/** Runs `offsite --version`; what the launcher says of the code cache (NODE_DEBUG=offsite). */
async function version(xdg: string): Promise<string> {
  const r = await offsite(['--version'], { env: { XDG_CACHE_HOME: xdg, NODE_DEBUG: 'offsite' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
  return /code cache .*: (\w+)/.exec(r.stderr)?.[1] ?? r.stderr;
}

describe('cli: the code cache of bin/offsite', function () {
  this.timeout(60_000);

  it('is saved by the first run, private and named by the bundle, and used as it is by the next', async () => {
    const xdg = tempDir('offsite-xdg-');
    assert.equal(await version(xdg), 'none');
    const dir = cacheDir(xdg);
    assert.deepEqual(fs.readdirSync(dir), [expectedName()], 'one file, no temp file left');
    const file = path.join(dir, expectedName());
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(fs.statSync(file).size > 10_000, 'compiled code, not an empty file');
    const before = fs.statSync(file);
    assert.equal(await version(xdg), 'used');
    const after = fs.statSync(file);
    assert.equal(after.ino, before.ino, 'accepted: not written again');
    assert.equal(after.mtimeMs, before.mtimeMs);
  });

  it('is written again when V8 refuses it', async () => {
    const xdg = tempDir('offsite-xdg-');
    const dir = cacheDir(xdg);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, expectedName());
    const garbage = Buffer.alloc(4096, 0x5a);
    fs.writeFileSync(file, garbage);
    assert.equal(await version(xdg), 'refused');
    assert.ok(!fs.readFileSync(file).equals(garbage), 'replaced');
    assert.ok(fs.statSync(file).size > 10_000);
    assert.deepEqual(fs.readdirSync(dir), [expectedName()]);
    assert.equal(await version(xdg), 'used');
  });

  it("adds the code of each new way a command goes, naming the ways in the file's first line", async () => {
    const xdg = tempDir('offsite-xdg-');
    const work = tempDir('offsite-cc-');
    const src = path.join(work, 'src');
    makeTree(src, { 'a.txt': 'a\n', d: { 'b.txt': 'b\n' } });
    const url = `file://${path.join(work, 'vault')}`;
    const cache = path.join(work, 'cache');
    const file = path.join(cacheDir(xdg), expectedName());
    const cc = (args: string[]) => offsite(['--archive-dir', cache, ...args], { env: { XDG_CACHE_HOME: xdg, NODE_DEBUG: 'offsite' } });
    const firstLine = () => {
      const b = fs.readFileSync(file);
      return b.toString('latin1', 0, b.indexOf(0x0a));
    };
    const backup = () => cc(['backup', '--encrypt-key', RSA_PUB, src, url]);
    await sleep(2100); // older than the stat cache's racy window: the no-change probe can vouch for the tree

    let r = await backup();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(firstLine(), 'offsite-code-cache 1 backup:full');
    const afterFull = fs.statSync(file);
    await sleep(1100);
    r = await backup(); // nothing changed: the no-change probe stands for the walk
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /code cache .*: used/);
    assert.equal(firstLine(), 'offsite-code-cache 1 backup:full backup:inc-probe');
    const afterInc = fs.statSync(file);
    assert.ok(afterInc.size > afterFull.size, `the probe's code added: ${afterFull.size} → ${afterInc.size} bytes`);
    assert.equal(afterInc.mode & 0o777, 0o600);
    await sleep(1100);
    r = await backup();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.statSync(file).ino, afterInc.ino, 'a way it has seen: not written again');

    const out = path.join(work, 'out');
    r = await cc(['restore', '--key', RSA_PUB, '--path', 'a.txt', url, out]); // a public key cannot decrypt
    assert.equal(r.code, 1);
    assert.equal(fs.statSync(file).ino, afterInc.ino, 'a failed command adds nothing');
    r = await cc(['restore', '--key', RSA_SEC, '--path', 'a.txt', url, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(out, 'a.txt'), 'utf8'), 'a\n');
    assert.equal(firstLine(), 'offsite-code-cache 1 backup:full backup:inc-probe restore:path');
    // Beside it, the cache of openpgp.js's bundle (loaded to check the key, and to decrypt); no temp file.
    const names = fs.readdirSync(cacheDir(xdg)).sort();
    assert.equal(names.length, 2, names.join(', '));
    assert.equal(names[0], expectedName());
    assert.match(names[1], /^vendor-openpgp-[0-9a-f]{32}-v[\d.]+-\w+\.bin$/);
    assert.equal(await version(xdg), 'used');
  });

  it('has one file per set of Node flags, so runs with and without them do not replace each other', async () => {
    const xdg = tempDir('offsite-xdg-');
    const env = { ...process.env, XDG_CACHE_HOME: xdg, NODE_DEBUG: 'offsite' };
    const said = (r: RunResult) => /code cache .*: (\w+)/.exec(r.stderr)?.[1];
    const flagged = () => run(process.execPath, ['--max-semi-space-size=2', OFFSITE, '--version'], { env });
    assert.equal(await version(xdg), 'none');
    assert.equal(said(await flagged()), 'none');
    assert.equal(await version(xdg), 'used');
    assert.equal(said(await flagged()), 'used');
    assert.equal(fs.readdirSync(cacheDir(xdg)).length, 2);
  });

  it('keeps the eight newest files when it writes one (two installs, each run with four sets of flags)', async () => {
    const xdg = tempDir('offsite-xdg-');
    const dir = cacheDir(xdg);
    fs.mkdirSync(dir, { recursive: true });
    const old = 'abcdefghi'.split('').map((c) => `cli-${c}.bin`);
    old.forEach((n, i) => {
      fs.writeFileSync(path.join(dir, n), 'an earlier build');
      const t = new Date(Date.now() - (i + 1) * 86_400_000); // a newest, i oldest
      fs.utimesSync(path.join(dir, n), t, t);
    });
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a cache file');
    assert.equal(await version(xdg), 'none');
    assert.deepEqual(fs.readdirSync(dir).sort(), [...old.slice(0, 7), expectedName(), 'notes.txt'].sort());
  });

  it('does not stand in the way when it cannot be written', async () => {
    const xdg = tempDir('offsite-xdg-');
    const blocked = path.join(xdg, 'offsite');
    fs.writeFileSync(blocked, 'a file where the cache folder would be');
    assert.equal(await version(xdg), 'none');
    assert.equal(fs.readFileSync(blocked, 'utf8'), 'a file where the cache folder would be');
  });
});
