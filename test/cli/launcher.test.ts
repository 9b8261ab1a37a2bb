// bin/offsite run as users run it (its first line: sh, then Node on the same file): Node's memory
// flags, and NODE_EXTRA_CA_CERTS kept from Node's startup unless an s3:// remote is named (Node 20
// builds its certificate store at startup whenever the variable is set: ~17–37 ms of every run), but
// put back for the programs Offsite runs; and for a backup, the no-change probe's worker thread started
// before the CLI bundle loads, taken by the probe or ended when the backup does not probe.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OFFSITE, REPO, run } from '../helpers/cli';
import { RSA_PUB } from '../helpers/gpg';
import { makeTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

/** Node's own warning when it loads NODE_EXTRA_CA_CERTS at startup and the file is missing. */
const NODE_LOADED = /Ignoring extra certs from/;

describe('cli: bin/offsite as a command', function () {
  let dir: string;
  let fakeRclone: string;
  const missingCa = '/nonexistent/offsite-test-ca.pem';

  before(() => {
    dir = tempDir();
    // Stands in for rclone: writes down the environment it got and its parent's (Node's) command line.
    fakeRclone = path.join(dir, 'rclone');
    fs.writeFileSync(
      fakeRclone,
      [
        '#!/bin/sh',
        '{',
        '  echo "NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS-unset}"',
        '  echo "OFFSITE_EXTRA_CA_CERTS=${OFFSITE_EXTRA_CA_CERTS-unset}"',
        '  echo "MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_-unset}"',
        '  echo "parent: $(tr "\\0" " " < /proc/$PPID/cmdline)"',
        '} >> "$OFFSITE_TEST_DUMP"',
        'exit 1',
        '',
      ].join('\n'),
      { mode: 0o700 },
    );
  });

  it("runs the Node beside it when none is on the PATH (cron's PATH; Node from nodejs.org or nvm), else says so in one line", async () => {
    // npm's global bin folder as nvm makes it: offsite a link to bin/offsite, next to node.
    const bin = path.join(tempDir(), 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(OFFSITE, path.join(bin, 'offsite'));
    const env = { PATH: '/nonexistent' };
    const alone = await run('/bin/sh', ['-c', `'${bin}/offsite' --version`], { env });
    assert.deepEqual([alone.code, alone.stdout], [1, '']);
    assert.match(alone.stderr, /^offsite: node is not on the PATH \(.*\/nonexistent\): put its folder in PATH .*\n$/);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const r = await run('/bin/sh', ['-c', `'${bin}/offsite' --version`], { env });
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '0.1.0\n', '']);
  });

  it('starts Node with its memory flags, without NODE_EXTRA_CA_CERTS, and gives it back to the programs it runs', async () => {
    const dump = path.join(dir, 'env-rclone.txt');
    const env = { NODE_EXTRA_CA_CERTS: missingCa, OFFSITE_RCLONE: fakeRclone, OFFSITE_TEST_DUMP: dump, XDG_CACHE_HOME: path.join(dir, 'xdg') };
    const r = await run(OFFSITE, ['status', 'rclone://remote:backups'], { env });
    assert.equal(r.code, 1, r.stderr); // the stand-in fails
    const seen = fs.readFileSync(dump, 'utf8');
    assert.match(seen, new RegExp(`^NODE_EXTRA_CA_CERTS=${missingCa}$`, 'm'));
    assert.match(seen, /^OFFSITE_EXTRA_CA_CERTS=unset$/m);
    assert.match(seen, /^MALLOC_MMAP_THRESHOLD_=131072$/m);
    assert.match(seen, /^parent: node --max-semi-space-size=2 --no-flush-bytecode \S*bin\/offsite status rclone:\/\/remote:backups $/m);
    // Node did not load the file at its start (it warns when it does and the file is missing).
    assert.doesNotMatch(r.stderr, NODE_LOADED);

    // A backup also gets its larger initial old generation (fewer full GCs); status did not.
    fs.rmSync(dump);
    const src = path.join(dir, 'src');
    fs.mkdirSync(src, { recursive: true });
    const b = await run(OFFSITE, ['backup', '--encrypt-key', RSA_PUB, src, 'rclone://remote:backups'], { env });
    assert.equal(b.code, 1, b.stderr); // the stand-in fails
    assert.match(
      fs.readFileSync(dump, 'utf8'),
      /^parent: node --max-semi-space-size=2 --initial-old-space-size=32 --no-flush-bytecode \S*bin\/offsite backup /m,
    );

    // A restore starts the optimizing compiler later (it lasts seconds, not minutes).
    fs.rmSync(dump);
    const restore = await run(OFFSITE, ['restore', 'rclone://remote:backups', path.join(dir, 'out')], { env });
    assert.equal(restore.code, 1, restore.stderr); // the stand-in fails
    assert.match(fs.readFileSync(dump, 'utf8'), /^parent: node --max-semi-space-size=2 --interrupt-budget=400000 --no-flush-bytecode \S*bin\/offsite restore /m);

    // A file:// run goes through its event loop to the end: still no certificates loaded.
    const status = await run(OFFSITE, ['status', `file://${path.join(dir, 'none')}`], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /No backup chains found/);
    assert.doesNotMatch(status.stderr, NODE_LOADED);
  });

  it('keeps NODE_EXTRA_CA_CERTS for Node when an s3:// remote is named (its TLS needs them)', async () => {
    const env = { NODE_EXTRA_CA_CERTS: missingCa, XDG_CACHE_HOME: path.join(dir, 'xdg') };
    // The control: `node bin/offsite` (no sh) loads them at startup, and Node says so.
    const plain = await run(process.execPath, [OFFSITE, 'status', `file://${path.join(dir, 'none')}`], { env });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, NODE_LOADED);
    for (const url of ['s3://', 'S3://', 'boto3+s3://']) {
      const s3 = await run(OFFSITE, ['status', url], { env }); // a bad URL: fails before any request
      assert.equal(s3.code, 1);
      assert.match(s3.stderr, /the bucket name is missing/);
      assert.match(s3.stderr, NODE_LOADED, url);
    }
  });

  it('starts the no-change probe\'s worker thread ahead for a backup: the probe takes it, a full backup ends it', async () => {
    const work = tempDir();
    const src = path.join(work, 'src');
    makeTree(src, { 'a.txt': 'a\n', d: { 'b.txt': 'b\n' } });
    const url = `file://${path.join(work, 'vault')}`;
    const env = { NODE_DEBUG: 'offsite', XDG_CACHE_HOME: path.join(dir, 'xdg') };
    const backup = (...extra: string[]) => run(OFFSITE, ['-v', '--archive-dir', path.join(work, 'cache'), 'backup', ...extra, '--encrypt-key', RSA_PUB, src, url], { env });
    const ahead = /worker \S*noChangeProbe\.js: started ahead/;
    await sleep(2100); // older than the stat cache's racy window: the probe can vouch for the tree

    let r = await backup();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, ahead);
    assert.match(r.stderr, /worker \S*noChangeProbe\.js: not needed, ended/); // the first backup is full

    await sleep(1100);
    r = await backup();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, ahead);
    assert.match(r.stderr, /worker \S*noChangeProbe\.js: taken/);
    assert.match(r.stderr, /No-change probe: all 4 paths as the previous backup left them/);
    assert.match(r.stdout, /DeltaEntries 0/);

    await sleep(1100);
    r = await backup('--full');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /not needed, ended/);

    // Not for other commands.
    const status = await run(OFFSITE, ['status', '--archive-dir', path.join(work, 'cache'), url], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stderr, ahead);
  });

  it("gives the sftp:// bundle ssh2's native cipher binding (each SSH packet through one OpenSSL context, not a new cipher object per packet)", async () => {
    // ssh2 require()s the binding in a try/catch and falls back without a word: only whether the
    // bundle's require reached a loadable file shows which one an sftp:// remote gets.
    const binding = path.join(REPO, 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    assert.ok(fs.existsSync(binding), `ssh2's install did not build ${binding} (scripts/setup.sh installs make and g++)`);
    const script = [
      "const loaded = [];",
      "process.dlopen = new Proxy(process.dlopen, { apply(t, self, a) { const r = Reflect.apply(t, self, a); loaded.push(a[1]); return r; } });",
      `require(${JSON.stringify(path.join(REPO, 'dist', 'vendor-sftp.js'))});`,
      'console.log(JSON.stringify(loaded));',
    ].join('\n');
    const r = await run(process.execPath, ['-e', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [path.join(REPO, 'dist', 'native', 'sshcrypto.node')]);
  });
});
