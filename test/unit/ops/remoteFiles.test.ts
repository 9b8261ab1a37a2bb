// withFile: an error met while reading a remote file gets the file's name, and keeps what it is about.
import * as assert from 'node:assert/strict';
import { OffsiteError } from '../../../src/engine/errors';
import { withFile } from '../../../src/engine/ops/remoteFiles';

describe('withFile (errors of a remote file)', () => {
  it('names the file and keeps the code, hint and the secret input at fault', () => {
    const e = withFile(new OffsiteError('passphrase', 'Wrong passphrase for this encrypted file', { hint: 'Enter it', needs: { input: 'passphrase', wrong: true } }), 'x.manifest.gpg');
    assert.ok(OffsiteError.is(e, 'passphrase'));
    assert.equal(e.message, 'x.manifest.gpg: Wrong passphrase for this encrypted file');
    assert.equal(e.file, 'x.manifest.gpg');
    assert.equal(e.hint, 'Enter it');
    assert.deepEqual(e.needs, { input: 'passphrase', wrong: true });
    const plain = withFile(new Error('bad tar'), 'v.difftar.gpg');
    assert.ok(OffsiteError.is(plain, 'format') && plain.needs === undefined);
  });
});
