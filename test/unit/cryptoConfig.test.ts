// cryptoForRead through the engine's API: the passphrase of a backup made with a passphrase and no key
// is asked for (kind 'symmetric') only when a file needs it, once for the whole run however many
// files are decrypted; a backup encrypted to a key never asks for it, and without the key says the
// private key is needed.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { cryptoForBackup, cryptoForRead, type PassphraseKind } from '../../src/engine/cryptoConfig';
import { OffsiteError } from '../../src/engine/errors';
import { MemoryLogger } from '../../src/engine/log';
import { listFiles } from '../../src/engine/ops/inspect';
import { backup } from '../../src/engine/ops/backup';
import { restore } from '../../src/engine/ops/restore';
import { RSA_SEC, SAMPLES } from '../helpers/gpg';
import { REPO } from '../helpers/cli';
import { snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

const PROTECTED_SEC = path.join(REPO, 'test/fixtures/keys/protected-sec.asc');
const PROTECTED_PUB = path.join(REPO, 'test/fixtures/keys/protected-pub.asc');
const PROTECTED_PASSPHRASE = 'offsite-test-passphrase';

describe('cryptoForRead: the passphrase of a symmetric backup', function () {
  this.timeout(60_000);
  const vault = (sample: string) => new FileBackend(path.join(SAMPLES, sample, 'vault'));

  /** Answers `answer` (or, per kind, answers[kind]) and records what was asked. */
  function asking(answer: string | undefined | Partial<Record<PassphraseKind, string>>) {
    const asked: { what: string; kind: PassphraseKind }[] = [];
    return {
      asked,
      passphrase: async (what: string, kind: PassphraseKind) => {
        asked.push({ what, kind });
        return typeof answer === 'object' ? answer[kind] : answer;
      },
    };
  }

  it('is asked for once a run (manifest, signatures, volume), as the symmetric kind', async () => {
    const a = asking('test-passphrase');
    const target = path.join(tempDir(), 'out');
    const crypto = cryptoForRead({ passphrase: a.passphrase });
    const archive = ArchiveDir.open(path.join(tempDir(), 'cache'));
    const r = await restore({ backend: vault('05-dup-symmetric'), archive, crypto, log: new MemoryLogger(), target });
    assert.ok(r.files > 0);
    // Listing reads the signature archive too, with the same context: still the one question.
    let n = 0;
    for await (const _ of listFiles({ backend: vault('05-dup-symmetric'), archive: ArchiveDir.open(path.join(tempDir(), 'cache')), crypto, log: new MemoryLogger() })) n++;
    assert.ok(n > 0);
    assert.deepEqual(a.asked, [{ what: 'the backup (it was made with a passphrase, no key)', kind: 'symmetric' }]);
    assert.equal(snapshotTree(target).length, 6);
  });

  it('a backup encrypted to a key never asks for it: with the key it restores, without it the private key is needed', async () => {
    const a = asking('test-passphrase');
    const r = await restore({ backend: vault('01-dup-enc-chain'), archive: ArchiveDir.open(path.join(tempDir(), 'cache')), crypto: cryptoForRead({ restoreKey: RSA_SEC, passphrase: a.passphrase }), log: new MemoryLogger(), target: path.join(tempDir(), 'out') });
    assert.ok(r.files > 0);
    await assert.rejects(
      restore({ backend: vault('01-dup-enc-chain'), archive: ArchiveDir.open(path.join(tempDir(), 'cache')), crypto: cryptoForRead({ passphrase: a.passphrase }), log: new MemoryLogger(), target: path.join(tempDir(), 'out') }),
      (e: unknown) => OffsiteError.is(e, 'key') && /The private key is needed to read the backup/.test(e.message) && e.needs?.input === 'secretKey',
    );
    assert.deepEqual(a.asked, []);
  });

  it('a restore key configured is not unlocked for a backup made with a passphrase: only the backup\'s passphrase is asked', async () => {
    const a = asking({ key: PROTECTED_PASSPHRASE, symmetric: 'test-passphrase' });
    const target = path.join(tempDir(), 'out');
    const crypto = cryptoForRead({ restoreKey: PROTECTED_SEC, passphrase: a.passphrase });
    const r = await restore({ backend: vault('05-dup-symmetric'), archive: ArchiveDir.open(path.join(tempDir(), 'cache')), crypto, log: new MemoryLogger(), target });
    assert.ok(r.files > 0);
    assert.deepEqual(a.asked.map((x) => x.kind), ['symmetric']);
  });

  it('a protected restore key is unlocked when a file is encrypted to a key, once a run', async () => {
    // A backup of two sets encrypted to the protected key.
    const remote = tempDir();
    const source = tempDir();
    fs.writeFileSync(path.join(source, 'a.txt'), 'one\n');
    const backupCrypto = await cryptoForBackup({ encryptKeys: [PROTECTED_PUB] });
    await backup({ backend: new FileBackend(remote), archive: ArchiveDir.open(path.join(tempDir(), 'cache')), crypto: backupCrypto, log: new MemoryLogger(), source, volumeSize: 1 });
    const a = asking({ key: PROTECTED_PASSPHRASE });
    const target = path.join(tempDir(), 'out');
    const r = await restore({ backend: new FileBackend(remote), archive: ArchiveDir.open(path.join(tempDir(), 'cache')), crypto: cryptoForRead({ restoreKey: PROTECTED_SEC, passphrase: a.passphrase }), log: new MemoryLogger(), target });
    assert.equal(r.files, 1);
    assert.equal(fs.readFileSync(path.join(target, 'a.txt'), 'utf8'), 'one\n');
    assert.deepEqual(a.asked.map((x) => x.kind), ['key']);
  });
});
