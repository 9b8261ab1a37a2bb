// `offsite backup` through the command line: statistics, exit codes, recipients, selection, chains,
// the source check and the one-writer lock.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { archiveDirFor } from '../../src/engine/cache/archiveDir';
import { OFFSITE, offsite, run } from '../helpers/cli';
import { ECC_PUB, ECC_SEC, RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { makeTree, snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const STAT_FIELDS = ['StartTime', 'EndTime', 'ElapsedTime', 'SourceFiles', 'SourceFileSize', 'NewFiles', 'NewFileSize', 'DeletedFiles', 'ChangedFiles', 'ChangedFileSize', 'ChangedDeltaSize', 'DeltaEntries', 'RawDeltaSize', 'TotalDestinationSizeChange', 'Errors'];

function setup(spec: Parameters<typeof makeTree>[1] = { 'a.txt': 'a\n', d: { 'b.txt': 'b\n' } }) {
  const work = tempDir('offsite-backup-');
  const src = path.join(work, 'src');
  makeTree(src, spec);
  return { work, src, url: `file://${path.join(work, 'vault')}`, cache: path.join(work, 'cache') };
}

async function backupStats(args: string[], opts: Parameters<typeof offsite>[1] = {}) {
  const r = await offsite(['backup', '--json', ...args], opts);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('offsite backup', function () {
  this.timeout(120_000);

  it("prints duplicity's statistics block, or the same fields as JSON", async () => {
    const { src, url, cache } = setup();
    const r = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^-+\[ Backup Statistics \]-+$/m);
    for (const f of STAT_FIELDS) assert.match(r.stdout, new RegExp(`^${f} `, 'm'));
    assert.match(r.stdout, /^SourceFiles 4$/m); // the root, a.txt, d, d/b.txt
    assert.match(r.stdout, /^NewFiles 4$/m);
    await sleep(1100);
    const s = await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    for (const f of STAT_FIELDS) assert.equal(typeof s[f], 'number', f);
    assert.equal(s.BackupType, 'inc');
    assert.equal(s.DeltaEntries, 0, 'nothing changed');
    assert.equal(s.RawDeltaSize, 0);
  });

  it('a backup to keys checked before does not load openpgp.js, and restores as before', async () => {
    const { work, src, url, cache } = setup();
    // NODE_DEBUG=offsite names every bundle the process loads (src/launch/codeCache.ts).
    const env = { NODE_DEBUG: 'offsite' };
    const first = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /code cache \S*vendor-openpgp/, 'the first backup checks the key with openpgp.js');
    assert.equal(fs.readdirSync(path.join(cache, 'keys')).filter((f) => f.endsWith('.json')).length, 1);
    fs.writeFileSync(path.join(src, 'a.txt'), 'changed\n');
    await sleep(1100);
    const second = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /code cache \S*\/cli-/, 'the debug output names the bundles loaded');
    assert.doesNotMatch(second.stderr, /vendor-openpgp/);
    const out = path.join(work, 'out');
    const r = await offsite(['--archive-dir', path.join(work, 'c2'), 'restore', '--key', RSA_SEC, url, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(snapshotTree(out), snapshotTree(src));
  });

  it('encrypts to every --encrypt-key: each secret key restores', async () => {
    const { work, src, url, cache } = setup();
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, '--encrypt-key', ECC_PUB, src, url]);
    for (const key of [RSA_SEC, ECC_SEC]) {
      const out = path.join(work, `out-${path.basename(key)}`);
      const r = await offsite(['--archive-dir', path.join(work, `c-${path.basename(key)}`), 'restore', '--key', key, url, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(snapshotTree(out), snapshotTree(src));
    }
  });

  it('options that take a value take exactly one; a missing key is a clear error', async () => {
    const { src, url } = setup();
    const r = await offsite(['backup', '--encrypt-key', src, url]);
    assert.equal(r.code, 1);
    const noKey = await offsite(['backup', src, url]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /^offsite: No encryption key given.*--encrypt-key/m);
    const badKey = await offsite(['backup', '--encrypt-key', '/nonexistent/key.asc', src, url]);
    assert.equal(badKey.code, 1);
    assert.match(badKey.stderr, /^offsite: .*key/m);
  });

  it('detects an edit that keeps the size and the mtime (only ctime changes), which duplicity misses', async () => {
    const { work, src, url, cache } = setup({ 'same.txt': 'AAAA\n' });
    const f = path.join(src, 'same.txt');
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    const st = fs.statSync(f, { bigint: true });
    await sleep(1100);
    fs.writeFileSync(f, 'BBBB\n');
    fs.utimesSync(f, new Date(Number(st.atimeMs)), new Date(Number(st.mtimeNs / 1_000_000n)));
    const s = await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(s.ChangedFiles, 1);
    const out = path.join(work, 'out');
    assert.equal((await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, url, out])).code, 0);
    assert.equal(fs.readFileSync(path.join(out, 'same.txt'), 'utf8'), 'BBBB\n');
  });

  it('applies --exclude/--include in order and --gitignore, keeping .git', async () => {
    const { src, url, cache } = setup({
      '.gitignore': 'build/\n*.log\n',
      build: { 'out.js': 'x' },
      'debug.log': 'x',
      '.git': { HEAD: 'ref: refs/heads/main\n', objects: { 'ab': 'obj' } },
      node_modules: { lib: { 'index.js': 'x' } },
      keep: { 'important.log': 'x', 'other.txt': 'x' },
      'main.ts': 'x',
    });
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, '--gitignore', '--include', 'keep/important.log', '--exclude', 'node_modules', src, url]);
    const r = await offsite(['--archive-dir', cache, 'list', '--json', url]);
    assert.equal(r.code, 0, r.stderr);
    const paths = r.stdout.trim().split('\n').map((l) => JSON.parse(l).path);
    assert.deepEqual(paths, ['.', '.git', '.git/HEAD', '.git/objects', '.git/objects/ab', '.gitignore', 'keep', 'keep/important.log', 'keep/other.txt', 'main.ts']);
  });

  it('rules are read relative to SOURCE_DIR: one naming a path from the current folder is refused, one that matched no path is a warning', async () => {
    const work = tempDir('offsite-backup-rules-');
    makeTree(path.join(work, 'ws'), { node_modules: { 'x.js': 'x' }, 'a.txt': 'a', src: { 'm.ts': 'x' } });
    const cache = path.join(work, 'cache');
    const vault = path.join(work, 'vault');
    const url = `file://${vault}`;
    const at = (args: string[]) => offsite(['--archive-dir', cache, ...args], { cwd: work });

    // ws/node_modules from the folder above ws: what was meant is node_modules; nothing is backed up.
    for (const [kind, glob, meant] of [['exclude', 'ws/node_modules', 'node_modules'], ['include', './ws/src/', 'src/']]) {
      const r = await at(['backup', '--encrypt-key', RSA_PUB, `--${kind}`, glob, 'ws', url]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(
        r.stderr,
        `offsite: The --${kind} rule "${glob}" names nothing in ${path.join(work, 'ws')}, but is ${path.join(work, glob.replace(/\/$/, ''))} from the current folder. Rules are read relative to SOURCE_DIR: write --${kind} ${meant}\n`,
      );
      assert.equal(fs.existsSync(vault), false);
    }

    // Rules that match nothing now (files that come and go) only warn, once each, after the walk: a
    // glob with no match, a rule after one that decides its paths, an include of nothing.
    const rules = ['--exclude', 'node_modules', '--exclude', 'node_modules/x.js', '--exclude', '**/*.log', '--include', 'src/*.js'];
    const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('Warning: '));
    const expected = [
      ['exclude', 'node_modules/x.js'],
      ['exclude', '**/*.log'],
      ['include', 'src/*.js'],
    ].map(([kind, glob]) => `Warning: The ${kind} rule "${glob}" matched no path in ${path.join(work, 'ws')} (rules are read relative to that folder; the first rule that matches a path decides it)`);
    const b = await at(['backup', '--json', '--encrypt-key', RSA_PUB, ...rules, 'ws', url]);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(warnings(b.stderr), expected);
    // verify takes the same rules, and says the same of them.
    const v = await at(['verify', '--key', RSA_SEC, ...rules, url, 'ws']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.deepEqual(warnings(v.stderr), expected);
    // -q drops these warnings, and only them: the backup still runs and reports.
    const hushed = await at(['-q', 'backup', '--json', '--encrypt-key', RSA_PUB, ...rules, 'ws', url]);
    assert.equal(hushed.code, 0, hushed.stderr);
    assert.deepEqual(warnings(hushed.stderr), []);
    assert.equal(JSON.parse(hushed.stdout).BackupType, 'inc');
    // Rules that each matched something: no warning.
    const quiet = await at(['backup', '--json', '--encrypt-key', RSA_PUB, '--exclude', 'node_modules', '--include', 'src/*.ts', 'ws', url]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual(warnings(quiet.stderr), []);
  });

  it('after the local cache is lost, asks for --key to rebuild it, then continues the chain with it', async () => {
    const { src, url, cache } = setup();
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    fs.rmSync(cache, { recursive: true });
    fs.writeFileSync(path.join(src, 'a.txt'), 'changed\n');
    for (const env of [{}, { OFFSITE_PASSPHRASE: '' }]) {
      const r = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url], { env });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /^offsite: .*Pass --key KEY/m, JSON.stringify(env));
    }
    const ok = await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, '--key', RSA_SEC, src, url]);
    assert.equal(ok.BackupType, 'inc');
    assert.equal(ok.ChangedFiles, 1);
  });

  it('names a file that is not UTF-8 as it is: list prints its bytes, --path and --history take them', async () => {
    const { work, src, url, cache } = setup();
    const name = Buffer.from([0x62, 0x61, 0x64, 0xff, 0x6e, 0x61, 0x6d, 0x65]); // "bad\xffname"
    fs.writeFileSync(Buffer.concat([Buffer.from(`${src}/`), name]), 'not utf-8\n');
    fs.writeFileSync(path.join(src, 'bad\ufffdname'), 'a decoy: the name the bytes decode to\n');
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    const list = execFileSync(process.execPath, [OFFSITE, '--archive-dir', cache, 'list', url]);
    assert.ok(list.includes(Buffer.concat([Buffer.from(' '), name, Buffer.from('\n')])), 'the raw name in the listing');
    // The shell passes the bytes; Node alone would see "bad\ufffdname", the decoy.
    const out = path.join(work, 'out');
    const sh = `exec "$0" ${OFFSITE} --archive-dir "$1" restore --key "$2" --path "$(printf 'bad\\377name')" "$3" "$4"`;
    const r = await run('sh', ['-c', sh, process.execPath, cache, RSA_SEC, url, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(out, { encoding: 'buffer' }), [name]);
    assert.equal(fs.readFileSync(Buffer.concat([Buffer.from(`${out}/`), name]), 'utf8'), 'not utf-8\n');
    const eq = await run('sh', ['-c', `exec "$0" ${OFFSITE} --archive-dir "$1" list --history="$(printf 'bad\\377name')" "$2"`, process.execPath, cache, url]);
    assert.equal(eq.code, 0, eq.stderr);
    assert.match(eq.stdout, /^\d{8}T\d{6}Z new file$/m);
  });

  it('stops quietly when its reader closes the pipe early (offsite list | head -1)', async () => {
    const spec: Record<string, string> = {};
    for (let i = 0; i < 3000; i++) spec[`f${i}`] = `${i}`;
    const { work, src, url, cache } = setup(spec);
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    const err = path.join(work, 'stderr');
    const rc = path.join(work, 'rc');
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    const cmd = [process.execPath, OFFSITE, '--archive-dir', cache, 'list', url].map(q).join(' ');
    const r = await run('sh', ['-c', `{ ${cmd}; echo $? > ${q(rc)}; } 2> ${q(err)} | head -1`]);
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1);
    assert.equal(fs.readFileSync(err, 'utf8'), '', 'nothing on stderr');
    assert.equal(fs.readFileSync(rc, 'utf8').trim(), '0');
  });

  it('--full starts a new chain, and --full-if-older-than does when the chain is old enough', async () => {
    const { src, url, cache } = setup();
    const common = ['--archive-dir', cache, '--encrypt-key', RSA_PUB];
    assert.equal((await backupStats([...common, src, url])).BackupType, 'full');
    await sleep(1100);
    assert.equal((await backupStats([...common, '--full-if-older-than', '1h', src, url])).BackupType, 'inc');
    await sleep(1100);
    assert.equal((await backupStats([...common, '--full-if-older-than', '1s', src, url])).BackupType, 'full');
    await sleep(1100);
    assert.equal((await backupStats([...common, '--full', src, url])).BackupType, 'full');
    const st = JSON.parse((await offsite(['--archive-dir', cache, 'status', '--json', url])).stdout);
    assert.deepEqual(st.chains.map((c: { sets: unknown[] }) => c.sets.length), [2, 1, 1]);
  });

  it('refuses to continue a chain made from another folder', async () => {
    const { work, src, url, cache } = setup();
    await backupStats(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    const other = path.join(work, 'other');
    makeTree(other, { 'x.txt': 'x' });
    const r = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, other, url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^offsite: This backup chain was made from .*--allow-source-mismatch/m);
  });

  it('compares a folder named relatively as duplicity does: by the name given, or the end of its path', async () => {
    const work = tempDir('offsite-backup-rel-');
    makeTree(path.join(work, 'projA'), { 'a.txt': 'a' });
    makeTree(path.join(work, 'projB'), { 'b.txt': 'b' });
    const cache = path.join(work, 'cache');
    const url = `file://${path.join(work, 'vault')}`;
    const at = (args: string[]) => offsite(['--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, ...args, url], { cwd: work });
    assert.equal((await at(['projA'])).code, 0);
    const other = await at(['projB']);
    assert.equal(other.code, 1, other.stdout);
    assert.match(other.stderr, /^offsite: This backup chain was made from projA, not from .*projB/m);
    // The same folder, named again relatively, with ./, or by its full path: continued.
    for (const name of ['projA', './projA/', path.join(work, 'projA')]) {
      const r = await at([name]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).BackupType, 'inc');
    }
    assert.equal((await at(['--allow-source-mismatch', 'projB'])).code, 0);
  });

  it('exits 3 and lists the files it could not read, backing up the rest (-q does not hide them)', async function () {
    // As root every file is readable: run the backup as 'nobody' with one file only root can read.
    const { work, src, url } = setup({ 'ok.txt': 'fine\n', 'secret.txt': 'root only\n', closed: { 'inside.txt': 'x' } });
    fs.chmodSync(path.join(src, 'secret.txt'), 0o600);
    fs.chmodSync(path.join(src, 'closed'), 0o700);
    fs.chmodSync(work, 0o777);
    fs.chmodSync(src, 0o755);
    const cache = path.join(work, 'cache-nobody');
    fs.mkdirSync(cache);
    fs.chmodSync(cache, 0o777);
    const r = await run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, OFFSITE, '-q', '--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, src, url], { env: { HOME: work } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /secret\.txt/);
    assert.match(r.stderr, /closed/);
    assert.equal(JSON.parse(r.stdout).Errors, 2);
    const out = path.join(work, 'out');
    assert.equal((await offsite(['--archive-dir', path.join(work, 'c2'), 'restore', '--key', RSA_SEC, url, out])).code, 0);
    assert.equal(fs.readFileSync(path.join(out, 'ok.txt'), 'utf8'), 'fine\n');
    assert.equal(fs.existsSync(path.join(out, 'secret.txt')), false);
  });

  it('one writer at a time: waits for a live lock, then fails clearly; takes over a dead one', async () => {
    const { src, url, cache } = setup();
    const dir = archiveDirFor(url, cache);
    fs.mkdirSync(dir, { recursive: true });
    const lock = path.join(dir, 'lockfile');
    // A live owner: a process that sleeps while we try.
    const sleeper = execFileSync('bash', ['-c', 'sleep 30 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim();
    try {
      fs.writeFileSync(lock, JSON.stringify({ pid: Number(sleeper), host: require('node:os').hostname(), since: new Date().toISOString(), command: 'backup' }));
      const started = Date.now();
      const r = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^offsite: Another Offsite run is writing to this backup: process \d+/m);
      assert.ok(Date.now() - started >= 4000, 'it waited before giving up');
    } finally {
      process.kill(Number(sleeper), 'SIGKILL');
    }
    await sleep(200);
    // The owner died: its lock is taken over.
    const r2 = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(fs.existsSync(lock), false, 'released after the run');
  });
});
