// The engine service's readFile (the extension's "restore this version" and "open this version"): the
// version is written beside the output under a new private temporary name and renamed over it, so a
// file of the user's next to it is never touched, and no temporary is left when the read fails.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noPassword } from '../../src/engine/crypto/decrypt';
import type { OffsiteError } from '../../src/engine/errors';
import { MemoryLogger } from '../../src/engine/log';
import { handle, toServiceError, type BackupSummary, type ServiceRequest } from '../../src/engine/service';
import { RSA_PUB, RSA_SEC, SAMPLES } from '../helpers/gpg';
import { makeTree, snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

describe('engine service: readFile', function () {
  this.timeout(60_000);
  let box: string;
  let remote: { url: string; archiveDir: string };
  let time: number;
  const log = new MemoryLogger();
  const read = (p: string, output: string) => handle({ op: 'readFile', remote, keys: { restoreKey: RSA_SEC }, path: p, time, output } as ServiceRequest, { log }) as Promise<{ found: boolean; size?: number }>;

  before(async () => {
    box = tempDir('offsite-service-');
    const src = path.join(box, 'src');
    makeTree(src, { 'a.txt': 'version one\n', d: { 'b.txt': 'b\n' } });
    remote = { url: `file://${path.join(box, 'remote')}`, archiveDir: path.join(box, 'cache') };
    const r = (await handle({ op: 'backup', remote, keys: { encryptKeys: [RSA_PUB] }, source: src }, { log })) as { time: number };
    time = r.time;
  });

  it("leaves a file of the user's named OUTPUT.part alone, and writes the output private", async () => {
    const out = path.join(box, 'out1');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'a.txt'), 'the current file\n');
    fs.writeFileSync(path.join(out, 'a.txt.part'), 'a file of the user that happens to be named so\n');
    const r = await read('a.txt', path.join(out, 'a.txt'));
    assert.equal(r.found, true);
    assert.equal(fs.readFileSync(path.join(out, 'a.txt'), 'utf8'), 'version one\n');
    assert.equal(fs.statSync(path.join(out, 'a.txt')).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(path.join(out, 'a.txt.part'), 'utf8'), 'a file of the user that happens to be named so\n');
    assert.deepEqual(fs.readdirSync(out).sort(), ['a.txt', 'a.txt.part']);
  });

  it('leaves no temporary when the path is not found, is a folder, or the output cannot be replaced', async () => {
    const out = path.join(box, 'out2');
    fs.mkdirSync(out);
    assert.deepEqual(await read('nope.txt', path.join(out, 'x')), { found: false });
    await assert.rejects(read('d', path.join(out, 'x')), /d is not a file in that backup/);
    fs.mkdirSync(path.join(out, 'a-folder'));
    await assert.rejects(read('a.txt', path.join(out, 'a-folder')));
    assert.deepEqual(fs.readdirSync(out), ['a-folder']);
    assert.deepEqual(fs.readdirSync(path.join(out, 'a-folder')), []);
  });

  it("removes the temporary of a killed engine (its process gone) from the output's folder, not a running one's", async () => {
    const out = path.join(box, 'out3');
    fs.mkdirSync(out);
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    const live = spawn('sleep', ['30']);
    try {
      const host = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
      const deadTemp = `.offsite-restore-${host}-${dead.pid}-0123456789ab-1`;
      const liveTemp = `.offsite-restore-${host}-${live.pid}-0123456789ab-1`;
      fs.writeFileSync(path.join(out, deadTemp), 'half', { mode: 0o600 });
      fs.writeFileSync(path.join(out, liveTemp), 'half', { mode: 0o600 });
      await read('d/b.txt', path.join(out, 'b.txt'));
      assert.deepEqual(fs.readdirSync(out).sort(), [liveTemp, 'b.txt']);
      assert.ok(log.lines.some((l) => l.startsWith('warn: Removed') && l.includes(deadTemp)), log.lines.join('\n'));
    } finally {
      live.kill();
    }
  });
});

// A backup duplicity made with a passphrase and no key, read through the service as the extension
// does: without a passphrase the error names the input it needs (the extension then asks, and sends
// the answer as keys.backupPassphrase); a wrong one says so; a backup encrypted to a key still needs
// that key, not a passphrase.
describe('engine service: a passphrase-only (symmetric) duplicity backup', function () {
  this.timeout(60_000);
  const log = new MemoryLogger();
  const expected = JSON.parse(fs.readFileSync(path.join(SAMPLES, '05-dup-symmetric', 'expected', '20240101T000000Z.json'), 'utf8'));
  const aTxt = expected.find((e: { path: string }) => e.path === 'a.txt') as { sha256: string };
  const fresh = () => {
    const box = tempDir('offsite-service-sym-');
    return { box, remote: { url: `file://${path.join(SAMPLES, '05-dup-symmetric', 'vault')}`, archiveDir: path.join(box, 'cache') } };
  };
  const needsOf = (e: unknown) => ({ code: (e as OffsiteError).code, needs: toServiceError(e).needs });

  it('restore without a passphrase: code passphrase, needs {passphrase, not wrong, symmetric}; nothing written', async () => {
    const { box, remote } = fresh();
    const target = path.join(box, 'out');
    const e = await handle({ op: 'restore', remote, keys: {}, target }, { log }).then(() => undefined, (x: unknown) => x);
    assert.deepEqual(needsOf(e), { code: 'passphrase', needs: { input: 'passphrase', wrong: false, symmetric: true } });
    // The one error for it, crypto/decrypt.ts's (the service makes none of its own).
    const { message, hint, needs } = toServiceError(noPassword());
    assert.ok((e as Error).message.endsWith(message), (e as Error).message);
    assert.deepEqual([toServiceError(e).hint, toServiceError(e).needs], [hint, needs]);
    assert.ok(!fs.existsSync(target) || fs.readdirSync(target).length === 0);
  });

  it('restore and readFile with the passphrase: the backup as duplicity made it', async () => {
    const { box, remote } = fresh();
    const target = path.join(box, 'out');
    const r = (await handle({ op: 'restore', remote, keys: { backupPassphrase: 'test-passphrase' }, target }, { log })) as { files: number };
    assert.ok(r.files > 0);
    assert.deepEqual(snapshotTree(target), expected);
    const out = path.join(box, 'a.txt');
    const f = (await handle({ op: 'readFile', remote, keys: { backupPassphrase: 'test-passphrase' }, path: 'a.txt', output: out }, { log })) as { found: boolean };
    assert.equal(f.found, true);
    assert.equal(createHash('sha256').update(fs.readFileSync(out)).digest('hex'), aTxt.sha256);
  });

  it('a wrong passphrase: code passphrase, needs {passphrase, wrong, symmetric}; nothing written', async () => {
    const { box, remote } = fresh();
    const target = path.join(box, 'out');
    const e = await handle({ op: 'restore', remote, keys: { backupPassphrase: 'not-the-passphrase' }, target }, { log }).then(() => undefined, (x: unknown) => x);
    assert.deepEqual(needsOf(e), { code: 'passphrase', needs: { input: 'passphrase', wrong: true, symmetric: true } });
    assert.ok(!fs.existsSync(target) || fs.readdirSync(target).length === 0);
  });

  it('the passphrase of a private key is not taken for the backup\'s', async () => {
    const { remote } = fresh();
    const e = await handle({ op: 'list', remote, keys: { passphrase: 'test-passphrase' } }, { log }).then(() => undefined, (x: unknown) => x);
    assert.deepEqual(needsOf(e), { code: 'passphrase', needs: { input: 'passphrase', wrong: false, symmetric: true } });
  });

  it('a backup encrypted to a key, with no key configured: the private key is needed (code key, needs secretKey), no passphrase', async () => {
    const box = tempDir('offsite-service-keyed-');
    const remote = { url: `file://${path.join(SAMPLES, '01-dup-enc-chain', 'vault')}`, archiveDir: path.join(box, 'cache') };
    const e = await handle({ op: 'restore', remote, keys: { backupPassphrase: 'test-passphrase' }, target: path.join(box, 'out') }, { log }).then(() => undefined, (x: unknown) => x);
    assert.deepEqual(needsOf(e), { code: 'key', needs: { input: 'secretKey', wrong: false } });
    assert.match((e as Error).message, /The private key is needed to read the backup/);
  });
});

describe('engine service: a backup with keepFull whose removal is refused', function () {
  this.timeout(60_000);

  it('returns the backup it made, with the refusal beside it (a chain dated in the future: nothing deleted), not a failed backup', async () => {
    const box = tempDir('offsite-service-keep-');
    const src = path.join(box, 'src');
    makeTree(src, { 'a.txt': 'one\n' });
    const vault = path.join(box, 'remote');
    const remote = { url: `file://${vault}`, archiveDir: path.join(box, 'cache') };
    const log = new MemoryLogger();
    const backup = (extra: Partial<ServiceRequest>) => handle({ op: 'backup', remote, keys: { encryptKeys: [RSA_PUB] }, source: src, ...extra } as ServiceRequest, { log }) as Promise<BackupSummary>;
    const first = await backup({});
    // The same set again under a name of 2099: as a machine with a wrong clock would have made it.
    const stamp = /\d{8}T\d{6}Z/;
    for (const n of fs.readdirSync(vault)) fs.copyFileSync(path.join(vault, n), path.join(vault, n.replace(stamp, '20991231T000000Z')));
    const before = fs.readdirSync(vault).sort();
    await new Promise((r) => setTimeout(r, 1100)); // a set a second later: its own name

    const r = await backup({ full: true, keepFull: 1 });
    assert.equal(r.type, 'full');
    assert.ok(r.time > first.time);
    assert.deepEqual(r.removedChains, []);
    assert.match(r.retentionFailure?.message ?? '', /dated in the future.*none is deleted/);
    const after = fs.readdirSync(vault).sort();
    assert.deepEqual(after.filter((n) => !before.includes(n)).map((n) => n.replace(stamp, 'T')).sort(), [
      'duplicity-full-signatures.T.sigtar.gpg',
      'duplicity-full.T.manifest.gpg',
      'duplicity-full.T.vol1.difftar.gpg',
    ]);
    assert.deepEqual(after.filter((n) => before.includes(n)), before, 'nothing deleted');
    assert.ok(log.lines.some((l) => /Old backups not removed: .*dated in the future/.test(l)), log.lines.join('\n'));
  });
});
