// cryptoForRead through the engine's API: the passphrase of a backup made with a passphrase and no key
// is asked for (kind 'symmetric') only when a file needs it, once for the whole run however many
// files are decrypted; a backup encrypted to a key never asks for it, and without the key says the
// private key is needed.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { cryptoForRead, type PassphraseKind } from '../../src/engine/cryptoConfig';
import { OffsiteError } from '../../src/engine/errors';
import { MemoryLogger } from '../../src/engine/log';
import { listFiles } from '../../src/engine/ops/inspect';
import { restore } from '../../src/engine/ops/restore';
import { RSA_SEC, SAMPLES } from '../helpers/gpg';
import { snapshotTree } from '../helpers/tree';
import { tempDir } from '../helpers/tmp';

describe('cryptoForRead: the passphrase of a symmetric backup', function () {
  this.timeout(60_000);
  const vault = (sample: string) => new FileBackend(path.join(SAMPLES, sample, 'vault'));

  function asking(answer: string | undefined) {
    const asked: { what: string; kind: PassphraseKind }[] = [];
    return {
      asked,
      passphrase: async (what: string, kind: PassphraseKind) => {
        asked.push({ what, kind });
        return answer;
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
});
