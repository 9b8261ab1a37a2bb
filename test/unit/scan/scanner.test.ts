import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scanTree, scanTreeSync, type ScanEntry, type ScanOptions } from '../../../src/engine/scan/scanner';
import { compareIndex, indexToString } from '../../../src/engine/pathIndex';
import { OffsiteError } from '../../../src/engine/errors';
import type { PathIndex } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';
import { duplicityBackup, duplicityBackupIndexes } from './realTools';

interface Collected {
  entries: ScanEntry[];
  errors: { index: PathIndex; error: Error }[];
}

async function collect(root: string, options: Partial<ScanOptions> = {}): Promise<Collected> {
  const errors: Collected['errors'] = [];
  const entries: ScanEntry[] = [];
  for await (const e of scanTree(root, { ...options, onError: (index, error) => errors.push({ index, error }) })) {
    entries.push(e);
  }
  return { entries, errors };
}

/** Index as readable text; non-UTF-8 bytes as \xHH. */
function show(index: PathIndex): string {
  return index.map((c) => (c.toString('utf8').includes('\ufffd') ? c.toString('hex').replace(/../g, '\\x$&') : c.toString('utf8'))).join('/');
}

function write(root: string, rel: string | Buffer, content = 'x'): void {
  const p = Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel)]);
  fs.mkdirSync(p.subarray(0, p.lastIndexOf(0x2f)), { recursive: true });
  fs.writeFileSync(p, content);
}

/** A tree whose order is easy to get wrong: '-' and '.' sort before '/', bytes not text, etc. */
function trickyTree(): string {
  const root = tempDir('offsite-scan-');
  write(root, 'a/z.txt');
  write(root, 'a/b/c');
  write(root, 'a-b/f');
  write(root, 'a.b');
  write(root, 'a b');
  write(root, 'A');
  write(root, 'Z/é.txt');
  write(root, 'é');
  write(root, 'e\u0301'); // same text as 'é' once normalized, different bytes
  write(root, Buffer.from([0x62, 0xff]));
  write(root, Buffer.concat([Buffer.from([0xfe, 0x41]), Buffer.from('/inside')]));
  write(root, 'd/e/f/g/h.txt');
  write(root, '.hidden/x');
  write(root, 'new\nline');
  write(root, 'x'.repeat(150));
  write(root, '日本語/ファイル.txt');
  fs.mkdirSync(path.join(root, 'empty'));
  fs.symlinkSync('a', path.join(root, 'sym-to-dir'));
  fs.symlinkSync(Buffer.from([0x2f, 0x74, 0x6d, 0x70, 0x2f, 0xff]), Buffer.from(path.join(root, 'sym-bad-target')));
  spawnSync('mkfifo', [path.join(root, 'fifo')]);
  return root;
}

describe('scan/scanner', () => {
  it('walks in exactly the order of a real duplicity backup of the same tree', async () => {
    const root = trickyTree();
    const { entries, errors } = await collect(root);
    assert.deepEqual(errors, []);
    const ours = entries.map((e) => show(e.index));
    const theirs = duplicityBackupIndexes(root, []).map(show);
    assert.deepEqual(ours, theirs);
    assert.ok(ours.length > 25, `tree too small: ${ours.length}`);
    for (let i = 1; i < entries.length; i++) {
      assert.ok(compareIndex(entries[i - 1].index, entries[i].index) < 0, `${ours[i - 1]} !< ${ours[i]}`);
    }
    // The sample order facts of FORMAT.md §6.4.
    assert.ok(ours.indexOf('a/z.txt') < ours.indexOf('a-b'));
    assert.deepEqual(entries[0].index, []);
  });

  it('reports duplicity metadata and raw stat fields for each type', async () => {
    const root = tempDir('offsite-scan-');
    write(root, 'file', 'hello');
    fs.chmodSync(path.join(root, 'file'), 0o4751);
    fs.utimesSync(path.join(root, 'file'), 1_700_000_000.9, 1_700_000_000.9);
    write(root, 'old', '');
    assert.equal(spawnSync('touch', ['-d', '@-10.5', path.join(root, 'old')]).status, 0);
    assert.ok(fs.lstatSync(path.join(root, 'old')).mtimeMs < 0);
    fs.linkSync(path.join(root, 'file'), path.join(root, 'hardlink'));
    fs.mkdirSync(path.join(root, 'dir'));
    fs.chmodSync(path.join(root, 'dir'), 0o1777);
    fs.symlinkSync('dir', path.join(root, 'link'));
    spawnSync('mkfifo', ['-m', '0640', path.join(root, 'fifo')]);
    const isRoot = process.getuid?.() === 0;
    if (isRoot) assert.equal(spawnSync('mknod', [path.join(root, 'null'), 'c', '1', '3']).status, 0);
    // A socket is left out, as duplicity leaves it out.
    const sock = spawnSync('/usr/bin/python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path.join(root, 'sock'))})`]);
    assert.equal(sock.status, 0);
    assert.ok(fs.lstatSync(path.join(root, 'sock')).isSocket());

    const { entries, errors } = await collect(root);
    assert.deepEqual(errors, []);
    const by = new Map(entries.map((e) => [indexToString(e.index), e]));
    assert.deepEqual([...by.keys()], ['.', 'dir', 'fifo', 'file', 'hardlink', 'link', ...(isRoot ? ['null'] : []), 'old']);

    const file = by.get('file')!;
    const st = fs.lstatSync(path.join(root, 'file'), { bigint: true });
    assert.equal(file.meta.type, 'reg');
    assert.equal(file.meta.mode, 0o4751);
    assert.equal(file.meta.uid, Number(st.uid));
    assert.equal(file.meta.gid, Number(st.gid));
    assert.equal(file.meta.uname, Number(st.uid) === 0 ? 'root' : file.meta.uname);
    assert.equal(file.meta.mtime, 1_700_000_000);
    assert.equal(file.size, 5);
    assert.equal(file.mtimeNs, st.mtimeNs);
    assert.equal(file.ctimeNs, st.ctimeNs);
    assert.equal(file.ino, st.ino);
    assert.equal(file.dev, st.dev);
    assert.equal(file.nlink, 2);
    assert.ok(file.path.equals(Buffer.from(path.join(root, 'file'))));
    assert.equal(by.get('hardlink')!.ino, file.ino);

    assert.equal(by.get('old')!.meta.mtime, 0, 'negative mtime becomes 0');
    assert.equal(by.get('dir')!.meta.type, 'dir');
    assert.equal(by.get('dir')!.meta.mode, 0o1777);
    assert.equal(by.get('dir')!.size, 0);
    const link = by.get('link')!;
    assert.equal(link.meta.type, 'sym');
    assert.equal(link.size, 0);
    assert.ok(link.meta.linkname?.equals(Buffer.from('dir')));
    assert.equal(by.get('fifo')!.meta.type, 'fifo');
    assert.equal(by.get('fifo')!.meta.mode, 0o640);
    if (isRoot) {
      const dev = by.get('null')!;
      assert.equal(dev.meta.type, 'chr');
      assert.equal(dev.meta.devmajor, 1);
      assert.equal(dev.meta.devminor, 3);
    }
    assert.equal(by.get('.')!.meta.type, 'dir');
  });

  it('gives each path the metadata duplicity writes in its tar header', async () => {
    const root = tempDir('offsite-scan-');
    const isRoot = process.getuid?.() === 0;
    const touch = (name: string, when: string): void => {
      write(root, name);
      assert.equal(spawnSync('touch', ['-h', '-d', when, path.join(root, name)]).status, 0);
    };
    touch('t-round-up', '@1700000000.999999999'); // Python's float st_mtime rounds this up
    touch('t-last-ms', '@1700000000.999000001');
    touch('t-plain', '@1700000000.5');
    touch('t-negative', '@-3.25');
    write(root, 'setuid');
    fs.chmodSync(path.join(root, 'setuid'), 0o4755);
    write(root, 'private');
    fs.chmodSync(path.join(root, 'private'), 0o600);
    fs.mkdirSync(path.join(root, 'sticky'));
    fs.chmodSync(path.join(root, 'sticky'), 0o1777);
    fs.symlinkSync(Buffer.from('target-\xff', 'latin1'), path.join(root, 'link'));
    spawnSync('mkfifo', ['-m', '0600', path.join(root, 'fifo')]);
    if (isRoot) {
      write(root, 'nobody-ids');
      fs.chownSync(path.join(root, 'nobody-ids'), 1234, 5678); // ids without names
      assert.equal(spawnSync('mknod', [path.join(root, 'blk'), 'b', '7', '200']).status, 0);
      assert.equal(spawnSync('mknod', [path.join(root, 'chr'), 'c', '4', '64']).status, 0);
    }
    const { entries, errors } = await collect(root);
    assert.deepEqual(errors, []);
    const theirs = duplicityBackup(root, []);
    const tarType: Record<string, string> = { reg: '0', dir: '5', sym: '2', fifo: '6', chr: '3', blk: '4' };
    assert.deepEqual(
      entries.map((e) => ({
        path: show(e.index),
        type: tarType[e.meta.type],
        mode: e.meta.mode,
        uid: e.meta.uid,
        gid: e.meta.gid,
        uname: e.meta.uname,
        gname: e.meta.gname,
        mtime: e.meta.mtime,
        linkname: (e.meta.linkname ?? Buffer.alloc(0)).toString('hex'),
        dev: e.meta.type === 'chr' || e.meta.type === 'blk' ? `${e.meta.devmajor},${e.meta.devminor}` : '',
      })),
      theirs.map((m) => ({
        path: show(m.index),
        type: m.type,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        uname: m.uname,
        gname: m.gname,
        mtime: m.mtime,
        linkname: m.linkname.toString('hex'),
        dev: m.type === '3' || m.type === '4' ? `${m.devmajor},${m.devminor}` : '',
      })),
    );
    const mtimeOf = (name: string): number => entries.find((e) => show(e.index) === name)!.meta.mtime;
    assert.equal(mtimeOf('t-round-up'), 1_700_000_001);
    assert.equal(mtimeOf('t-last-ms'), 1_700_000_000);
    assert.equal(mtimeOf('t-negative'), 0);
  });

  it('does not follow symlinks, and keeps non-UTF-8 link targets as bytes', async () => {
    const root = trickyTree();
    const { entries } = await collect(root);
    const names = entries.map((e) => show(e.index));
    assert.ok(names.includes('sym-to-dir'));
    assert.ok(!names.some((n) => n.startsWith('sym-to-dir/')));
    const bad = entries.find((e) => show(e.index) === 'sym-bad-target')!;
    assert.ok(bad.meta.linkname?.equals(Buffer.from([0x2f, 0x74, 0x6d, 0x70, 0x2f, 0xff])));
  });

  it('reports a file or folder that vanishes during the scan and goes on', async () => {
    const root = tempDir('offsite-scan-');
    write(root, 'a');
    write(root, 'b');
    write(root, 'c/d');
    write(root, 'e');
    const errors: { index: PathIndex; error: Error }[] = [];
    const seen: string[] = [];
    for await (const e of scanTree(root, { onError: (index, error) => errors.push({ index, error }) })) {
      seen.push(indexToString(e.index));
      if (e.index.length === 0) {
        // The root has been listed; these go before the scan reaches them.
        fs.rmSync(path.join(root, 'b'));
        fs.rmSync(path.join(root, 'c'), { recursive: true });
      }
    }
    assert.deepEqual(seen, ['.', 'a', 'e']);
    assert.deepEqual(
      errors.map((x) => [indexToString(x.index), (x.error as NodeJS.ErrnoException).code]),
      [
        ['b', 'ENOENT'],
        ['c', 'ENOENT'],
      ],
    );
  });

  it('leaves out unreadable folders and files (reported), as an unprivileged user', function () {
    const work = tempDir('offsite-scan-');
    fs.chmodSync(work, 0o755);
    const root = path.join(work, 'tree');
    write(root, 'a/ok');
    write(root, 'locked/secret');
    write(root, 'private.txt');
    write(root, 'z');
    fs.chmodSync(path.join(root, 'locked'), 0o000);
    fs.chmodSync(path.join(root, 'private.txt'), 0o600);
    fs.chmodSync(path.join(root, 'a'), 0o755);
    fs.chmodSync(path.join(root, 'a/ok'), 0o644);
    fs.chmodSync(path.join(root, 'z'), 0o644);
    fs.chmodSync(root, 0o755);
    const scanner = path.resolve(__dirname, '../../../src/engine/scan/scanner.ts');
    const script = path.join(work, 'run.ts');
    fs.writeFileSync(
      script,
      `import { scanTreeSync } from ${JSON.stringify(scanner)};\n` +
        `const out: string[] = [];\n` +
        `for (const e of scanTreeSync(${JSON.stringify(root)}, { onError: (i, err) => out.push('error ' + i.join('/') + ' ' + (err as NodeJS.ErrnoException).code) })) out.push(e.index.join('/') || '.');\n` +
        `console.log(JSON.stringify(out));\n`,
    );
    fs.chmodSync(script, 0o644);
    // tsx's compile cache goes to TMPDIR: keep it inside this test's folder.
    const tmp = path.join(work, 'tmp');
    fs.mkdirSync(tmp, { mode: 0o700 });
    fs.chownSync(tmp, 65534, 65534);
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', script],
      { cwd: path.resolve(__dirname, '../../..'), encoding: 'utf8', env: { ...process.env, HOME: work, TMPDIR: tmp } },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), [
      '.',
      'a',
      'a/ok',
      'error locked EACCES',
      'error private.txt EACCES',
      'z',
    ]);
  });

  it('returns, once done, the rules that decided no path (sync and async walks alike)', async () => {
    const root = tempDir('offsite-scan-');
    write(root, 'a.txt');
    write(root, 'node_modules/x.js');
    const rules = [{ kind: 'exclude', glob: 'node_modules' }, { kind: 'exclude', glob: 'ws/node_modules' }, { kind: 'include', glob: '**/*.log' }] as const;
    const want = [rules[1], rules[2]];
    const sync = scanTreeSync(root, { rules, onError: () => {} });
    let step = sync.next();
    while (!step.done) step = sync.next();
    assert.deepEqual(step.value.unmatchedRules, want);
    const walk = scanTree(root, { rules, onError: () => {} });
    let a = await walk.next();
    while (!a.done) a = await walk.next();
    assert.deepEqual(a.value.unmatchedRules, want);
  });

  it('fails clearly when the root is missing or not a folder: the one source-folder check (backup and the drill make it too)', async () => {
    const root = tempDir('offsite-scan-');
    write(root, 'file');
    for (const p of [path.join(root, 'nope'), path.join(root, 'file'), path.join(root, 'file', 'below')]) {
      await assert.rejects(collect(p), (e: unknown) => OffsiteError.is(e, 'notFound') && e.message === `The source folder ${p} does not exist or is not a folder` && e.file === p, p);
    }
  });

  it('follows a symlinked root but nothing below it', async () => {
    const root = trickyTree();
    const link = path.join(tempDir('offsite-scan-'), 'link');
    fs.symlinkSync(root, link);
    const direct = (await collect(root)).entries.map((e) => show(e.index));
    const viaLink = (await collect(link)).entries.map((e) => show(e.index));
    assert.deepEqual(viaLink, direct);
  });

  it('stops with a cancelled error when the signal fires', async () => {
    const root = tempDir('offsite-scan-');
    for (let i = 0; i < 3000; i++) write(root, `d${i % 30}/f${i}`);
    const ac = new AbortController();
    let n = 0;
    setTimeout(() => ac.abort(), 0);
    await assert.rejects(
      (async () => {
        for await (const _e of scanTree(root, { signal: ac.signal, onError: () => undefined })) n++;
      })(),
      (e: unknown) => OffsiteError.is(e, 'cancelled'),
    );
    assert.ok(n > 0 && n < 3031, `stopped after ${n}`);
  });

  it('gives the same entries from the sync and async forms', async () => {
    const root = trickyTree();
    const a = (await collect(root)).entries.map((e) => show(e.index));
    const b = [...scanTreeSync(root, { onError: () => undefined })].map((e) => show(e.index));
    assert.deepEqual(a, b);
  });
});
