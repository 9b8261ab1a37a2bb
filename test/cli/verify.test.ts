// `offsite verify` (metadata, --compare-data, --time, --drill) against a folder whose shape changed
// under a backed-up path: a folder that became a file or a symlink loop, a path now too long to name.
// Each is a difference (or, in a drill, a file not compared) for its own paths, never the end of the run.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { makeTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

/** "Difference found: PATH: REASON" lines. */
function differences(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('Difference found: '))
    .map((l) => l.slice('Difference found: '.length))
    .sort();
}

describe('offsite verify when folders changed shape', function () {
  this.timeout(120_000);
  const T = 1_700_000_000; // the root's mtime, before and after the changes
  let work: string;
  let src: string;
  let url: string;
  let cache: string;

  before(async () => {
    work = tempDir('offsite-verify-cli-');
    src = path.join(work, 'vs');
    url = `file://${path.join(work, 'vr')}`;
    cache = path.join(work, 'c');
    makeTree(src, { X: { child: 'c\n' }, L: { inner: 'i\n' }, keep: 'k\n' });
    fs.utimesSync(src, T, T);
    const r = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(r.code, 0, r.stderr);
    fs.rmSync(path.join(src, 'X'), { recursive: true });
    fs.writeFileSync(path.join(src, 'X'), 'now\n');
    fs.rmSync(path.join(src, 'L'), { recursive: true });
    fs.symlinkSync('L', path.join(src, 'L')); // a loop: L/inner is ELOOP
    fs.utimesSync(src, T, T);
  });

  for (const extra of [[], ['--compare-data'], ['--time', 'now']]) {
    it(`a folder now a file or a symlink loop: per-path differences${extra.length ? ` (${extra.join(' ')})` : ''}`, async () => {
      const r = await offsite(['--archive-dir', cache, 'verify', ...extra, '--key', RSA_SEC, url, src]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr, '');
      assert.deepEqual(differences(r.stdout), ['L/inner: missing', 'L: is a symlink, expected a folder', 'X/child: missing', 'X: is a file, expected a folder'].sort());
      assert.match(r.stdout, /Verify complete: \d+ files compared, 4 difference\(s\) found/);
    });
  }

  it('--drill: the file under the folder that became a file is "not compared", not a crash', async () => {
    const r = await offsite(['--archive-dir', cache, 'verify', '--drill', '--sample', '10', '--key', RSA_SEC, url, src]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Not compared: X\/child: no longer in the source/);
    assert.match(r.stdout, /Not compared: L\/inner: no longer in the source/);
    assert.match(r.stdout, /1 identical to the source/);
  });

  it('--drill with a SOURCE_DIR that does not exist: exit 1 as verify, no drill recorded (not 0 with every file "changed")', async () => {
    const fresh = path.join(work, 'c-drill-typo');
    for (const cmd of [['verify'], ['verify', '--drill']]) {
      const r = await offsite(['--archive-dir', fresh, ...cmd, '--key', RSA_SEC, url, path.join(work, 'no-such-folder')]);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^offsite: The source folder \S+\/no-such-folder does not exist/, cmd.join(' '));
    }
    const records = fs.existsSync(fresh) ? fs.readdirSync(fresh).flatMap((d) => fs.readdirSync(path.join(fresh, d))) : [];
    assert.ok(!records.includes('offsite-drill.json'), records.join(' '));
  });

  it('--sample without --drill: refused, not a whole verify instead of the sample asked for', async () => {
    const r = await offsite(['--archive-dir', cache, 'verify', '--sample', '5', '--key', RSA_SEC, url, src]);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^offsite: --sample is the size of a restore drill: give --drill with it\. /);
  });

  it('a path too long to look up (ENAMETOOLONG) is that path\'s difference', async () => {
    // A deep path under the PATH_MAX of 4096 bytes, verified through a folder name long enough to pass it.
    const deep = path.join(work, 'deep');
    const parts = Array.from({ length: 18 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(198)}`);
    fs.mkdirSync(path.join(deep, ...parts), { recursive: true });
    fs.writeFileSync(path.join(deep, ...parts, 'f'), 'f\n');
    const deepUrl = `file://${path.join(work, 'deepvault')}`;
    const b = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, deep, deepUrl]);
    assert.equal(b.code, 0, b.stderr);
    // The same folder under a longer name (through a symlink): its deepest paths pass 4096 bytes.
    const longer = path.join(work, 'l'.repeat(250), 'm'.repeat(250));
    assert.ok(path.join(deep, ...parts, 'f').length < 4000 && path.join(longer, ...parts, 'f').length > 4100);
    fs.mkdirSync(path.dirname(longer));
    fs.symlinkSync(deep, longer);
    const r = await offsite(['--archive-dir', cache, 'verify', '--key', RSA_SEC, deepUrl, longer]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /offsite: /);
    const found = differences(r.stdout);
    assert.ok(found.some((d) => /: cannot be read: ENAMETOOLONG/.test(d)), found.join('\n'));
  });
});

describe('offsite backup and verify with times before 1970', function () {
  this.timeout(120_000);

  it('backup warns once per path; verify and the drill say what is stored instead of a silent match', async () => {
    const work = tempDir('offsite-1970-cli-');
    const src = path.join(work, 's');
    const url = `file://${path.join(work, 'r')}`;
    const cache = path.join(work, 'c');
    makeTree(src, { d: { f: 'x\n' }, ok: 'y\n' });
    const old = new Date('1960-01-01T00:00:00Z'); // a Date: fs.utimes takes negative seconds for "now"
    for (const p of [path.join(src, 'd', 'f'), path.join(src, 'd')]) fs.utimesSync(p, old, old);
    const b = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, url]);
    assert.equal(b.code, 0, b.stderr);
    const warnings = b.stderr.trim().split('\n');
    assert.deepEqual(warnings.map((l) => /^Warning: (\S+) has a modification time before 1970 \(1960-01-01T00:00:00\.000Z\): stored as 1970-01-01/.exec(l)?.[1]), ['d', 'd/f'], b.stderr);

    const v = await offsite(['--archive-dir', cache, 'verify', '--compare-data', '--key', RSA_SEC, url, src]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /0 difference\(s\) found/);
    assert.match(v.stderr, /^Warning: d\/f: its modification time 1960-01-01T00:00:00\.000Z is before 1970; the backup holds 1970-01-01/m);

    const d = await offsite(['--archive-dir', cache, 'verify', '--drill', '--key', RSA_SEC, url, src]);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.match(d.stdout, /2 of 2 file\(s\) restored, 2 identical to the source/);
  });
});
