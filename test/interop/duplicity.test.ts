// Interoperability with real duplicity 0.8.22 and gpg 2.2: what Offsite writes, duplicity restores
// and verifies; what duplicity writes, Offsite restores; each continues the other's chain.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultBackend } from '../../src/engine/backend/faultBackend';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { stringToTime, timeToString } from '../../src/engine/chain/time';
import { MemoryLogger } from '../../src/engine/log';
import { backup } from '../../src/engine/ops/backup';
import { readCheckpoint } from '../../src/engine/ops/checkpoint';
import { readFileAt } from '../../src/engine/ops/restore';
import { indexFromBytes, indexToString } from '../../src/engine/pathIndex';
import { offsite } from '../helpers/cli';
import { duplicity, ECC_KEYID, ECC_SEC, gnupgHome, gpg, RSA_PUB, RSA_SEC, RSA_SUBKEY, rsaCrypto } from '../helpers/gpg';
import { makeTree, randomBytesSeeded, snapshotTree, type TreeEntry } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const LONG = `${'long-name-'.repeat(12)}end.txt`; // 126 bytes: needs a pax header

function initialTree(src: string): void {
  makeTree(src, {
    'README.md': '# demo\nhello\n',
    'empty.txt': '',
    'a-b': 'dash sorts before slash in tuple order\n',
    a: { 'z.txt': 'z\n' },
    'emptydir': {},
    'name with spaces.txt': 'spaces\n',
    'ünïcödé-ñame.txt': 'utf-8 name\n',
    [LONG]: 'long name\n',
    bin: { 'run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 } },
    big: { 'blob.bin': randomBytesSeeded(2_500_000, 7) }, // larger than a 1 MB volume
    'exact-65536.bin': randomBytesSeeded(65536, 9),
    src: { 'main.ts': 'export const x = 1;\n'.repeat(2000), 'util.ts': 'export function f() { return 42; }\n' },
    'link-to-readme': { symlink: 'README.md' },
    'dangling': { symlink: 'does/not/exist' },
    'pipe': { fifo: true },
    'to-delete.txt': 'will be deleted\n',
  });
}

function mutate1(src: string): void {
  fs.appendFileSync(path.join(src, 'README.md'), 'more text\n');
  fs.rmSync(path.join(src, 'to-delete.txt'));
  fs.writeFileSync(path.join(src, 'new-file.txt'), 'new in inc 1\n');
  const big = path.join(src, 'big', 'blob.bin');
  const fd = fs.openSync(big, 'r+');
  fs.writeSync(fd, Buffer.from('CHANGED IN PLACE'), 0, 16, 1_000_000);
  fs.closeSync(fd);
  fs.chmodSync(path.join(src, 'src', 'util.ts'), 0o600);
  fs.rmSync(path.join(src, 'link-to-readme'));
  fs.symlinkSync('src/main.ts', path.join(src, 'link-to-readme'));
  fs.writeFileSync(path.join(src, 'emptydir', 'now-full.txt'), 'x');
}

function mutate2(src: string): void {
  fs.writeFileSync(path.join(src, 'src', 'main.ts'), 'export const x = 2;\n'.repeat(1500) + 'tail\n');
  fs.rmSync(path.join(src, 'a'), { recursive: true });
  fs.writeFileSync(path.join(src, 'empty.txt'), 'no longer empty');
  fs.appendFileSync(path.join(src, 'big', 'blob.bin'), randomBytesSeeded(100_000, 11));
}

async function backupJson(args: string[]): Promise<{ time: string; type: string }> {
  const r = await offsite(['backup', '--json', ...args]);
  assert.equal(r.code, 0, `offsite backup failed: ${r.stderr}`);
  const stats = JSON.parse(r.stdout);
  return { time: stats.BackupTime, type: stats.BackupType };
}


async function duplicityRestore(home: string, url: string, time: string, cache: string): Promise<TreeEntry[]> {
  const out = path.join(tempDir('offsite-dr-'), 'out');
  const r = await duplicity(home, ['restore', '--archive-dir', cache, '--time', String(stringToTime(time)), url, out]);
  assert.equal(r.code, 0, `duplicity restore failed: ${r.stdout}\n${r.stderr}`);
  return snapshotTree(out);
}

async function offsiteRestore(url: string, time: string, cache: string): Promise<TreeEntry[]> {
  const out = path.join(tempDir('offsite-or-'), 'out');
  const r = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--time', String(stringToTime(time)), url, out]);
  assert.equal(r.code, 0, `offsite restore failed: ${r.stderr}`);
  return snapshotTree(out);
}

/** A snapshot to compare restores against: the root folder's own entry is compared separately. */
function tree(dir: string): TreeEntry[] {
  return snapshotTree(dir);
}


/**
 * A chain of five trees with the cases the chains above lack: hard links, a sparse file, a fifo that
 * becomes a file, empty files, names of 100..255 bytes, a path at ustar's prefix and name limits and
 * one of more than 255 bytes, names and a symlink target that are not UTF-8, symlink targets of 100
 * and more bytes, a path that is a file, then a symlink, a folder, gone, a file again, a folder that
 * becomes a file and the reverse, a file deleted and recreated, setuid and sticky modes, a read-only
 * folder, mtimes at and before the epoch and past 2242 (ustar's octal limit), a change of mtime or
 * mode only, and (with 1 MB volumes) a file of several volumes changed in its middle, twice (the
 * second delta spans volumes), and one new in an incremental. All restored by duplicity and Offsite
 * as they were: no difference was found (hard links come back as separate files, sparse files
 * filled, by both).
 */
const EDGE_STAGES: ((src: string) => void)[] = [
  (src) => {
    makeTree(src, {
      'empty.txt': '',
      'pipe': { fifo: true },
      [`${'n'.repeat(150)}.txt`]: 'a name of 154 bytes\n',
      ['x'.repeat(255)]: 'a name of 255 bytes\n',
      deep: { ['d'.repeat(120)]: { ['e'.repeat(120)]: { [`${'f'.repeat(100)}.txt`]: 'a path of more than 255 bytes\n' } } },
      'morph': 'a file first\n',
      'phoenix.txt': 'before deletion\n',
      'big.bin': randomBytesSeeded(2_500_000, 41),
      hard: { 'a.txt': 'linked\n' },
      'emptydir': {},
    });
    fs.linkSync(path.join(src, 'hard', 'a.txt'), path.join(src, 'hard', 'b.txt'));
    fs.linkSync(path.join(src, 'hard', 'a.txt'), path.join(src, 'also-a.txt'));
    const sparse = fs.openSync(path.join(src, 'sparse.bin'), 'w');
    fs.writeSync(sparse, Buffer.from('in the middle'), 0, 13, 1_500_000);
    fs.ftruncateSync(sparse, 3_000_000);
    fs.closeSync(sparse);
    fs.writeFileSync(Buffer.from(path.join(src, 'caf\xe9-latin1.txt'), 'latin1'), 'not utf-8\n');
    fs.mkdirSync(Buffer.concat([Buffer.from(`${src}/dir-`), Buffer.from([0xff, 0xfe])]));
    fs.writeFileSync(Buffer.concat([Buffer.from(`${src}/dir-`), Buffer.from([0xff, 0xfe]), Buffer.from('/inner-\x80.txt', 'latin1')]), 'inside\n');
    fs.symlinkSync('t'.repeat(150), path.join(src, 'long-link'));
    fs.symlinkSync(Buffer.from('target-\xe9', 'latin1'), Buffer.from(path.join(src, 'latin1-link'), 'latin1'));
    makeTree(src, {
      'newline\nname.txt': 'newline\n',
      'back\\slash': 'backslash\n',
      '-dash': 'dash\n',
      'setuid.sh': { content: '#!/bin/sh\n', mode: 0o4755 },
      'epoch.txt': { content: 'at the epoch\n', mtime: 0 },
      'before-epoch.txt': { content: '1969\n', mtime: -86400 },
      'far-future.txt': { content: 'year 2300\n', mtime: 10_413_792_000 },
      'ro-empty': {},
      'sticky': {},
      ['y'.repeat(100)]: 'a name of exactly 100 bytes\n',
      ['p'.repeat(154)]: { ['q'.repeat(99)]: 'a path of 254 bytes: ustar prefix and name at their limits\n' },
      'exact-link': { symlink: 'l'.repeat(100) },
      'dir-to-file': { 'child.txt': 'a child\n' },
      'file-to-dir': 'a file\n',
      'touched.txt': { content: 'only its mtime changes\n', mtime: 1_000_000_000 },
      'chmodded.txt': { content: 'only its mode changes\n', mode: 0o644 },
    });
    fs.chmodSync(path.join(src, 'ro-empty'), 0o555);
    fs.chmodSync(path.join(src, 'sticky'), 0o1777);
  },
  (src) => {
    fs.rmSync(path.join(src, 'morph'));
    fs.symlinkSync('empty.txt', path.join(src, 'morph'));
    fs.rmSync(path.join(src, 'phoenix.txt'));
    const big = fs.openSync(path.join(src, 'big.bin'), 'r+');
    fs.writeSync(big, randomBytesSeeded(200_000, 42), 0, 200_000, 1_200_000);
    fs.closeSync(big);
    fs.appendFileSync(path.join(src, 'hard', 'a.txt'), 'changed through one link\n');
    const sparse = fs.openSync(path.join(src, 'sparse.bin'), 'r+');
    fs.writeSync(sparse, Buffer.from('later'), 0, 5, 2_000_000);
    fs.closeSync(sparse);
    fs.writeFileSync(path.join(src, 'empty2.txt'), '');
    fs.writeFileSync(path.join(src, 'big-new.bin'), randomBytesSeeded(2_300_000, 44));
    fs.rmSync(path.join(src, 'long-link'));
    fs.symlinkSync('u'.repeat(200), path.join(src, 'long-link'));
    fs.rmSync(path.join(src, 'dir-to-file'), { recursive: true });
    fs.writeFileSync(path.join(src, 'dir-to-file'), 'a file now\n');
    fs.rmSync(path.join(src, 'file-to-dir'));
    makeTree(path.join(src, 'file-to-dir'), { 'child.txt': 'a child now\n' });
    fs.utimesSync(path.join(src, 'touched.txt'), 1_100_000_000, 1_100_000_000);
    fs.chmodSync(path.join(src, 'chmodded.txt'), 0o600);
  },
  (src) => {
    fs.rmSync(path.join(src, 'morph'));
    makeTree(path.join(src, 'morph'), { 'inner.txt': 'now a folder\n' });
    fs.writeFileSync(path.join(src, 'phoenix.txt'), 'recreated, longer than before\n');
    const big = fs.openSync(path.join(src, 'big.bin'), 'r+');
    fs.writeSync(big, randomBytesSeeded(1_500_000, 43), 0, 1_500_000, 500_000);
    fs.closeSync(big);
    fs.appendFileSync(Buffer.from(path.join(src, 'caf\xe9-latin1.txt'), 'latin1'), 'changed\n');
    fs.writeFileSync(path.join(src, 'empty.txt'), 'not empty any more\n');
  },
  (src) => {
    fs.rmSync(path.join(src, 'morph'), { recursive: true });
    fs.rmSync(path.join(src, 'pipe'));
    fs.writeFileSync(path.join(src, 'pipe'), 'a file now\n');
    fs.appendFileSync(path.join(src, `${'n'.repeat(150)}.txt`), 'changed\n');
    fs.rmSync(path.join(src, 'deep', 'd'.repeat(120)), { recursive: true });
    fs.writeFileSync(path.join(src, 'empty.txt'), '');
  },
  (src) => {
    fs.writeFileSync(path.join(src, 'morph'), 'a file again\n');
    fs.rmSync(path.join(src, 'phoenix.txt'));
    fs.writeFileSync(path.join(src, 'phoenix.txt'), 'recreated again\n');
    fs.rmSync(path.join(src, 'hard', 'b.txt'));
  },
];

/** The time of the newest set in a duplicity vault (a full's or an incremental's end). */
interface EdgeChain {
  readonly work: string;
  readonly src: string;
  readonly vault: string;
  readonly url: string;
}

/**
 * The edge cases' chain: each of EDGE_STAGES applied to one source folder in turn (a second apart,
 * for duplicity's whole-second times) and backed up by `backup`, which returns its set's time; the
 * tree after each, with that time.
 */
async function edgeChain(prefix: string, backup: (stage: number, c: EdgeChain) => Promise<string>): Promise<EdgeChain & { states: { time: string; tree: TreeEntry[] }[] }> {
  const work = tempDir(prefix);
  const vault = path.join(work, 'vault');
  const c: EdgeChain = { work, src: path.join(work, 'src'), vault, url: `file://${vault}` };
  const states: { time: string; tree: TreeEntry[] }[] = [];
  for (const [i, stage] of EDGE_STAGES.entries()) {
    if (i > 0) await sleep(1100);
    stage(c.src);
    states.push({ time: await backup(i, c), tree: tree(c.src) });
  }
  return { ...c, states };
}

function newestSetTime(vault: string): string {
  return fs
    .readdirSync(vault)
    .map((n) => /^duplicity-(?:full\.|inc\.\d{8}T\d{6}Z\.to\.)(\d{8}T\d{6}Z)\.manifest\.gpg$/.exec(n)?.[1])
    .filter((t): t is string => !!t)
    .sort()
    .at(-1)!;
}

describe('interop with duplicity 0.8.22 and gpg 2.2', function () {
  this.timeout(600_000);
  let home: string;
  before(() => {
    home = gnupgHome();
  });

  it('duplicity restores and verifies an Offsite chain, continues it, and Offsite continues duplicity\'s', async () => {
    const work = tempDir('offsite-interop-');
    const src = path.join(work, 'src');
    const vault = path.join(work, 'vault');
    const url = `file://${vault}`;
    const cache = path.join(work, 'cache');
    initialTree(src);
    const states: { time: string; tree: TreeEntry[] }[] = [];
    const common = ['--archive-dir', cache, '--encrypt-key', RSA_PUB, '--volsize', '1'];

    const full = await backupJson([...common, src, url]);
    assert.equal(full.type, 'full');
    states.push({ time: full.time, tree: tree(src) });
    await sleep(1100);
    mutate1(src);
    const inc1 = await backupJson([...common, src, url]);
    assert.equal(inc1.type, 'inc');
    states.push({ time: inc1.time, tree: tree(src) });
    await sleep(1100);
    mutate2(src);
    const inc2 = await backupJson([...common, src, url]);
    states.push({ time: inc2.time, tree: tree(src) });

    const names = fs.readdirSync(vault).sort();
    assert.ok(names.some((n) => /^duplicity-full\.\d{8}T\d{6}Z\.vol2\.difftar\.gpg$/.test(n)), `several volumes: ${names.join(' ')}`);
    assert.ok(names.every((n) => n.endsWith('.gpg')), 'every remote file is encrypted');

    // gpg opens every volume, manifest and signature file Offsite wrote.
    for (const n of names) {
      const r = await gpg(home, ['--decrypt', '--output', '/dev/null', path.join(vault, n)]);
      assert.equal(r.code, 0, `gpg --decrypt ${n}: ${r.stderr}`);
    }

    // duplicity restores every time identically (content, mode, mtime, symlinks, fifo, empty dirs).
    for (const s of states) assert.deepEqual(await duplicityRestore(home, url, s.time, path.join(work, 'dcache')), s.tree, `duplicity restore at ${s.time}`);
    // and so does Offsite.
    for (const s of states) assert.deepEqual(await offsiteRestore(url, s.time, path.join(work, 'ocache')), s.tree, `offsite restore at ${s.time}`);

    // duplicity verify --compare-data finds no difference.
    const v = await duplicity(home, ['verify', '--compare-data', '--archive-dir', path.join(work, 'dcache'), url, src]);
    assert.equal(v.code, 0, `duplicity verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /, 0 differences found/);

    // duplicity continues the Offsite chain…
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'by-duplicity.txt'), 'written before duplicity\'s incremental\n');
    fs.appendFileSync(path.join(src, 'README.md'), 'duplicity edit\n');
    await sleep(1100);
    const d = await duplicity(home, ['incremental', '--archive-dir', path.join(work, 'dcache'), '--encrypt-key', RSA_SUBKEY, src, url]);
    assert.equal(d.code, 0, `duplicity incremental: ${d.stdout}${d.stderr}`);
    const dupInc = fs.readdirSync(vault).map((n) => /^duplicity-inc\.\d{8}T\d{6}Z\.to\.(\d{8}T\d{6}Z)\.manifest\.gpg$/.exec(n)?.[1]).filter((t): t is string => !!t).sort().at(-1)!;
    assert.ok(dupInc > inc2.time);
    states.push({ time: dupInc, tree: tree(src) });
    // …and Offsite continues duplicity's increment in turn.
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'after-duplicity.txt'), 'offsite again\n');
    fs.rmSync(path.join(src, 'new-file.txt'));
    // Offsite's cache lacks duplicity's new signatures: rebuilding it needs the private key, and without
    // it the backup stops with a clear message.
    const noKey = await offsite(['backup', ...common, src, url]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /^offsite: .*private key is needed.*--key/m);
    const inc4 = await backupJson([...common, '--key', RSA_SEC, src, url]);
    assert.equal(inc4.type, 'inc');
    states.push({ time: inc4.time, tree: tree(src) });

    for (const s of states.slice(3)) {
      assert.deepEqual(await duplicityRestore(home, url, s.time, path.join(work, 'dcache2')), s.tree, `duplicity restore at ${s.time}`);
      assert.deepEqual(await offsiteRestore(url, s.time, path.join(work, 'ocache2')), s.tree, `offsite restore at ${s.time}`);
    }
  });

  it('duplicity sets that gpg encrypted with Camellia (cipher-algo): Offsite restores those to an RSA key, an ECC (cv25519) key or a passphrase', async () => {
    const work = tempDir('offsite-interop-camellia-');
    const src = path.join(work, 'src');
    makeTree(src, { 'a.txt': 'camellia\n', 'b.bin': randomBytesSeeded(200_000, 51) });
    const cases = [
      { name: 'rsa', cipher: 'CAMELLIA128', key: ['--encrypt-key', RSA_SUBKEY] },
      { name: 'passphrase', cipher: 'CAMELLIA256', key: [] },
      { name: 'ecc', cipher: 'CAMELLIA256', key: ['--encrypt-key', ECC_KEYID] },
    ];
    for (const c of cases) {
      const vault = path.join(work, c.name);
      const url = `file://${vault}`;
      const d = await duplicity(home, ['full', '--archive-dir', path.join(work, 'dcache'), ...c.key, '--gpg-options', `--cipher-algo=${c.cipher}`, src, url], { PASSPHRASE: 'camellia-pass' });
      assert.equal(d.code, 0, d.stdout + d.stderr);
      const manifest = fs.readdirSync(vault).find((n) => n.endsWith('.manifest.gpg'))!;
      // gpg names the cipher of a key's session key once it decrypts; a passphrase's is in the clear.
      const g = c.key.length ? await gpg(home, ['-v', '--decrypt', '--output', '/dev/null', path.join(vault, manifest)]) : await gpg(home, ['--list-packets', path.join(vault, manifest)]);
      assert.match(c.key.length ? g.stderr : g.stdout, c.key.length ? new RegExp(`${c.cipher} encrypted data`) : /symkey enc packet: version 4, cipher 13,/, `${c.name}: gpg used the cipher asked for`);
      const cache = path.join(work, `ocache-${c.name}`);
      if (c.name.startsWith('rsa')) assert.deepEqual(await offsiteRestore(url, newestSetTime(vault), cache), tree(src), c.name);
      else if (c.name === 'passphrase') {
        const out = path.join(work, 'out-passphrase');
        const r = await offsite(['--archive-dir', cache, 'restore', url, out], { env: { OFFSITE_PASSPHRASE: 'camellia-pass' } });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(snapshotTree(out), tree(src));
        const wrong = await offsite(['--archive-dir', cache, 'restore', url, path.join(work, 'out-wrong')], { env: { OFFSITE_PASSPHRASE: 'not-the-pass' } });
        assert.equal(wrong.code, 1);
        assert.match(wrong.stderr, /^offsite: .*Wrong passphrase/m);
      } else {
        // The ECDH session key is opened by Offsite (ecdh.ts), so the cipher openpgp.js lacks is no obstacle.
        const out = path.join(work, 'out-ecc');
        const r = await offsite(['--archive-dir', cache, 'restore', '--key', ECC_SEC, url, out]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(snapshotTree(out), tree(src));
      }
    }
  });

  it('Offsite continues a chain duplicity started, and both restore every time', async () => {
    const work = tempDir('offsite-interop2-');
    const src = path.join(work, 'src');
    const vault = path.join(work, 'vault');
    const url = `file://${vault}`;
    const cache = path.join(work, 'cache');
    initialTree(src);
    const states: { time: string; tree: TreeEntry[] }[] = [];
    const d = await duplicity(home, ['full', '--archive-dir', path.join(work, 'dcache'), '--encrypt-key', RSA_SUBKEY, '--volsize', '1', src, url]);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const fullTime = fs.readdirSync(vault).map((n) => /^duplicity-full\.(\d{8}T\d{6}Z)\.manifest\.gpg$/.exec(n)?.[1]).find((t) => t)!;
    states.push({ time: fullTime, tree: tree(src) });
    await sleep(1100);
    mutate1(src);
    // Offsite has no cache for this remote yet: it rebuilds it from the remote with the private key.
    const inc1 = await backupJson(['--archive-dir', cache, '--encrypt-key', RSA_PUB, '--key', RSA_SEC, src, url]);
    assert.equal(inc1.type, 'inc');
    states.push({ time: inc1.time, tree: tree(src) });
    await sleep(1100);
    mutate2(src);
    const inc2 = await backupJson(['--archive-dir', cache, '--encrypt-key', RSA_PUB, src, url]);
    states.push({ time: inc2.time, tree: tree(src) });
    for (const s of states) {
      assert.deepEqual(await duplicityRestore(home, url, s.time, path.join(work, 'dc')), s.tree, `duplicity restore at ${s.time}`);
      assert.deepEqual(await offsiteRestore(url, s.time, path.join(work, 'oc')), s.tree, `offsite restore at ${s.time}`);
    }
  });

  it('a backup interrupted inside a file spanning several volumes resumes after the last whole file, and both restore it byte-identical', async () => {
    const work = tempDir('offsite-interop-resume-');
    const src = path.join(work, 'src');
    const vault = path.join(work, 'vault');
    const url = `file://${vault}`;
    // With 256 KiB volumes: vol1 holds the root and a.bin (b.bin's first 64 KiB member would not fit:
    // vol1 ends between two files), b.bin's members fill vol2..vol12 (each ending inside it), c.txt last.
    makeTree(src, { 'a.bin': randomBytesSeeded(200_000, 31), 'b.bin': randomBytesSeeded(2_100_000, 32), 'c.txt': 'after the big file\n' });
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const crypto = await rsaCrypto();
    const files = new FileBackend(vault);
    const volumeSize = 256 * 1024;
    // The 6th put (a volume in the middle of b.bin) is refused: vol2..vol5, inside b.bin, were uploaded.
    const failing = new FaultBackend(files, { rules: [{ op: 'put', calls: [6], kind: 'permanent' }] });
    await assert.rejects(backup({ source: src, backend: failing, archive, crypto, log: new MemoryLogger(), volumeSize }));
    const cp = readCheckpoint(archive);
    assert.deepEqual(cp?.resume?.volumes.map((v) => v.volumeNumber), [1]);
    assert.equal(indexToString(cp.resume.index), 'a.bin');
    const inside = fs.readdirSync(vault).filter((n) => /\.vol([2-9]|\d\d)\.difftar\.gpg$/.test(n));
    assert.ok(inside.length >= 3, `volumes inside b.bin were uploaded: ${inside.join(' ')}`);
    const resumed = new FaultBackend(files, { rules: [] });
    const r = await backup({ source: src, backend: resumed, archive, crypto, log: new MemoryLogger(), volumeSize });
    assert.equal(r.resumed, true);
    assert.ok(r.volumes >= 12, `${r.volumes} volumes`);
    const puts = resumed.calls.filter((c) => c.op === 'put').map((c) => c.name!);
    assert.ok(!puts.some((p) => p.endsWith('.vol1.difftar.gpg')), 'vol1 was not uploaded again');
    assert.ok(puts.some((p) => p.endsWith('.vol2.difftar.gpg')), 'b.bin was stored again from its start');
    assert.equal(r.stats.NewFiles, 4);
    const expected = tree(src);
    assert.deepEqual(await offsiteRestore(url, timeToString(r.time), path.join(work, 'oc')), expected);
    assert.deepEqual(await duplicityRestore(home, url, timeToString(r.time), path.join(work, 'dc')), expected);
  });
  it('edge cases in a chain duplicity wrote (hard links, sparse, long and non-UTF-8 names, type changes, multi-volume deltas): Offsite restores every time as duplicity does, and continues the chain', async () => {
    const { work, src, vault, url, states } = await edgeChain('offsite-interop-edge-', async (i, c) => {
      const d = await duplicity(home, [i === 0 ? 'full' : 'incremental', '--archive-dir', path.join(c.work, 'dcache'), '--encrypt-key', RSA_SUBKEY, '--volsize', '1', c.src, c.url]);
      assert.equal(d.code, 0, d.stdout + d.stderr);
      return newestSetTime(c.vault);
    });
    // Offsite continues the chain from duplicity's signatures of these paths.
    await sleep(1100);
    const big = fs.openSync(path.join(src, 'big.bin'), 'r+');
    fs.writeSync(big, randomBytesSeeded(300_000, 45), 0, 300_000, 1_300_000);
    fs.closeSync(big);
    fs.appendFileSync(Buffer.from(path.join(src, 'caf\xe9-latin1.txt'), 'latin1'), 'by Offsite\n');
    fs.appendFileSync(path.join(src, 'hard', 'a.txt'), 'by Offsite\n');
    fs.rmSync(path.join(src, 'phoenix.txt'));
    fs.symlinkSync('y'.repeat(100), path.join(src, 'phoenix.txt'));
    const inc = await backupJson(['--archive-dir', path.join(work, 'cache'), '--encrypt-key', RSA_PUB, '--key', RSA_SEC, '--volsize', '1', src, url]);
    assert.equal(inc.type, 'inc');
    states.push({ time: inc.time, tree: tree(src) });
    const archive = ArchiveDir.open(path.join(work, 'rcache'));
    const crypto = await rsaCrypto();
    for (const s of states) {
      assert.deepEqual(await duplicityRestore(home, url, s.time, path.join(work, 'dc')), s.tree, `duplicity restore at ${s.time}`);
      assert.deepEqual(await offsiteRestore(url, s.time, path.join(work, 'oc')), s.tree, `offsite restore at ${s.time}`);
      // One file at a time, as the extension reads a version: the multi-volume file and its deltas,
      // and the files of long and non-UTF-8 paths.
      for (const e of s.tree.filter((x) => x.type === 'reg' && (x.size! > 1_000_000 || typeof x.path !== 'string' || Buffer.byteLength(x.path) > 200))) {
        const rel = typeof e.path === 'string' ? Buffer.from(e.path) : Buffer.from(e.path.hex, 'hex');
        const chunks: Buffer[] = [];
        const meta = await readFileAt({ backend: new FileBackend(vault), archive, crypto, log: new MemoryLogger(), time: stringToTime(s.time), path: indexFromBytes(rel) }, async (c) => {
          chunks.push(Buffer.from(c));
        });
        assert.equal(meta?.mtime, e.mtime, `${rel.toString()} at ${s.time}`);
        assert.equal(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), e.sha256, `${rel.toString()} at ${s.time}`);
      }
    }
  });

  it('the same edge cases in a chain Offsite wrote: duplicity restores every time byte-identical, and verifies the last', async () => {
    const { work, src, url, states } = await edgeChain('offsite-interop-edge2-', async (i, c) => {
      const r = await backupJson(['--archive-dir', path.join(c.work, 'cache'), '--encrypt-key', RSA_PUB, '--volsize', '1', c.src, c.url]);
      assert.equal(r.type, i === 0 ? 'full' : 'inc');
      return r.time;
    });
    for (const s of states) {
      assert.deepEqual(await duplicityRestore(home, url, s.time, path.join(work, 'dc')), s.tree, `duplicity restore at ${s.time}`);
      assert.deepEqual(await offsiteRestore(url, s.time, path.join(work, 'oc')), s.tree, `offsite restore at ${s.time}`);
    }
    const v = await duplicity(home, ['verify', '--compare-data', '--archive-dir', path.join(work, 'dc'), url, src]);
    assert.equal(v.code, 0, `duplicity verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /, 0 differences found/);
  });
});
