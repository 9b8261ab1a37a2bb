// The native RSA session-key path: it must give exactly openpgp.js's session key for RSA PKESKs (made by
// openpgp.js and by gpg), and step aside (undefined) for anything it cannot or must not decide.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import type { PrivateKey, PublicKey } from 'openpgp';
import { loadPrivateKeys, loadPublicKeys } from '../../../src/engine/crypto/keys';
import { nativeRsaSessionKey } from '../../../src/engine/crypto/rsaSessionKey';
import { ECC_PUB, ECC_SEC, GpgHome, pkeskBodies, RSA_PUB, RSA_SEC, RSA_SUBKEY } from './gpgEnv';

describe('crypto: native RSA session keys', function () {
  this.timeout(60_000);
  let rsaSec: PrivateKey[];
  let eccSec: PrivateKey[];
  let rsaPub: PublicKey[];
  let eccPub: PublicKey[];

  before(async () => {
    rsaSec = await loadPrivateKeys([RSA_SEC], async () => undefined);
    eccSec = await loadPrivateKeys([ECC_SEC], async () => undefined);
    rsaPub = await loadPublicKeys([RSA_PUB]);
    eccPub = await loadPublicKeys([ECC_PUB]);
  });

  it('decrypts openpgp.js PKESKs to the same session key and algorithm, for several key sizes', async () => {
    for (const [algorithm, len] of [['aes256', 32], ['aes128', 16], ['aes192', 24]] as const) {
      const data = randomBytes(len);
      const msg = await openpgp.encryptSessionKey({ data, algorithm, encryptionKeys: rsaPub, format: 'binary' });
      const got = nativeRsaSessionKey(await pkeskBodies(msg), rsaSec);
      assert.ok(got, algorithm);
      assert.equal(got.algorithm, algorithm);
      assert.deepEqual(Buffer.from(got.data), data);
    }
  });

  it("decrypts gpg's PKESK to the key openpgp.js finds", async () => {
    const home = new GpgHome([RSA_SEC]);
    try {
      const enc = home.ok(['-r', RSA_SUBKEY, '-e'], undefined, Buffer.from('hello'));
      const got = nativeRsaSessionKey(await pkeskBodies(enc), rsaSec);
      const message = await openpgp.readMessage({ binaryMessage: enc });
      const [want] = await openpgp.decryptSessionKeys({ message, decryptionKeys: rsaSec });
      assert.ok(got);
      assert.equal(got.algorithm, want.algorithm);
      assert.deepEqual(Buffer.from(got.data), Buffer.from(want.data));
    } finally {
      GpgHome.killAll();
    }
  });

  it('steps aside for another key, an ECC PKESK, and a damaged MPI', async () => {
    const data = randomBytes(32);
    const rsaMsg = await pkeskBodies(await openpgp.encryptSessionKey({ data, algorithm: 'aes256', encryptionKeys: rsaPub, format: 'binary' }));
    assert.equal(nativeRsaSessionKey(rsaMsg, eccSec), undefined, 'no RSA key among the given keys');
    const eccMsg = await pkeskBodies(await openpgp.encryptSessionKey({ data, algorithm: 'aes256', encryptionKeys: eccPub, format: 'binary' }));
    assert.equal(nativeRsaSessionKey(eccMsg, [...rsaSec, ...eccSec]), undefined, 'ECDH is left to openpgp.js');
    const damaged = Buffer.from(rsaMsg[0]);
    damaged[damaged.length - 5] ^= 0x40;
    assert.equal(nativeRsaSessionKey([damaged], rsaSec), undefined);
    const otherId = Buffer.from(rsaMsg[0]);
    otherId[1] ^= 0xff;
    assert.equal(nativeRsaSessionKey([otherId], rsaSec), undefined, 'a PKESK for another key id');
  });

  it('tries every RSA key for a hidden recipient (wildcard key id)', async () => {
    const data = randomBytes(32);
    const [body] = await pkeskBodies(await openpgp.encryptSessionKey({ data, algorithm: 'aes256', encryptionKeys: rsaPub, format: 'binary' }));
    const wildcard = Buffer.from(body);
    wildcard.fill(0, 1, 9);
    assert.deepEqual(Buffer.from(nativeRsaSessionKey([wildcard], rsaSec)!.data), data);
  });
});
