// `offsite list --history PATH` on a chain where paths change type: every set in which the path
// changed is listed, with what it was then (file, folder, symlink), folders included; a path that was
// never backed up is an error, not an empty answer.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { offsite } from '../helpers/cli';
import { RSA_PUB, RSA_SEC } from '../helpers/gpg';
import { makeTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

describe('offsite list --history', function () {
  this.timeout(120_000);
  let src: string;
  let url: string;
  let cache: string;
  const times: string[] = [];

  const history = async (p: string, ...extra: string[]) => {
    const r = await offsite(['--archive-dir', cache, 'list', '--history', p, '--json', ...extra, url]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; action: string; type?: string })
      .map((v) => [times.indexOf(v.time), v.action, v.type ?? '-'].join(' '));
  };

  before(async () => {
    const work = tempDir('offsite-history-');
    src = path.join(work, 's');
    url = `file://${path.join(work, 'r')}`;
    cache = path.join(work, 'c');
    const bk = async () => {
      const r = await offsite(['--archive-dir', cache, 'backup', '--json', '--encrypt-key', RSA_PUB, src, url]);
      assert.equal(r.code, 0, r.stderr);
      times.push(JSON.parse(r.stdout).BackupTime);
      await sleep(1100);
    };
    makeTree(src, { l2: '1', f2d: '1', d2f: { in: 'x' }, dir: { z: 'y' }, same: 's' });
    await bk(); // 0
    fs.rmSync(path.join(src, 'l2'));
    fs.symlinkSync('f2d', path.join(src, 'l2'));
    fs.rmSync(path.join(src, 'f2d'));
    fs.mkdirSync(path.join(src, 'f2d'));
    await bk(); // 1
    fs.rmdirSync(path.join(src, 'f2d'));
    fs.writeFileSync(path.join(src, 'f2d'), '2');
    fs.rmSync(path.join(src, 'd2f'), { recursive: true });
    fs.writeFileSync(path.join(src, 'd2f'), 'f');
    fs.writeFileSync(path.join(src, 'dir', 'new'), 'w');
    await bk(); // 2
    await bk(); // 3: nothing changed
  });

  it('a file that became a symlink', async () => {
    assert.deepEqual(await history('l2'), ['0 new reg', '1 changed sym']);
  });

  it('a file that became a folder and a file again', async () => {
    assert.deepEqual(await history('f2d'), ['0 new reg', '1 changed dir', '2 changed reg']);
  });

  it('a folder that became a file, and the file that was in it', async () => {
    assert.deepEqual(await history('d2f'), ['0 new dir', '2 changed reg']);
    assert.deepEqual(await history('d2f/in'), ['0 new reg', '2 deleted -']);
  });

  it('a folder whose entries changed; an unchanged file', async () => {
    assert.deepEqual(await history('dir'), ['0 new dir', '2 changed dir']);
    assert.deepEqual(await history('same'), ['0 new reg']);
  });

  it('the text form names the type', async () => {
    const r = await offsite(['--archive-dir', cache, 'list', '--history', 'l2', url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [`${times[0]} new file`, `${times[1]} changed symlink`]);
  });

  it('a path never backed up: exit 1 and a clear message', async () => {
    const r = await offsite(['--archive-dir', cache, 'list', '--history', 'nope/never', url]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^offsite: nope\/never is in no backup at file:\/\/.*offsite list shows what a backup holds\n$/);
  });

  it("a set whose signature file is gone: its manifest's file list stands in, with a warning", async () => {
    const work = tempDir('offsite-history-nosig-');
    const vault = path.join(work, 'r');
    fs.cpSync(new URL(url).pathname, vault, { recursive: true });
    const sig = fs.readdirSync(vault).find((n) => n.startsWith(`duplicity-new-signatures.${times[0]}.to.${times[1]}.`))!;
    fs.rmSync(path.join(vault, sig));
    const r = await offsite(['--archive-dir', path.join(work, 'c'), 'list', '--history', 'f2d', '--key', RSA_SEC, `file://${vault}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`signature file of the backup set of ${times[1]} is missing on the remote`));
    assert.deepEqual(r.stdout.trim().split('\n'), [`${times[0]} new file`, `${times[2]} changed file`]);
  });

  it('with no local cache, from the remote with the key', async () => {
    const fresh = path.join(tempDir('offsite-history-cache-'), 'c');
    const r = await offsite(['--archive-dir', fresh, 'list', '--history', 'f2d', '--json', '--key', RSA_SEC, url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l).type), ['reg', 'dir', 'reg']);
  });
});
