// createEncryptStream: real gpg 2.2 must decrypt what we write, byte-exact, and accept our signatures.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createEncryptStream } from '../../../src/engine/crypto/encrypt';
import { loadPrivateKeys, loadPublicKeys } from '../../../src/engine/crypto/keys';
import { OffsiteError } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import {
  ECC_FPR,
  ECC_PUB,
  ECC_SEC,
  GpgHome,
  mixedData,
  noise,
  PROTECTED_PASSPHRASE,
  PROTECTED_SEC,
  repeatedSource,
  RSA_FPR,
  RSA_PUB,
  RSA_SEC,
  sourceText,
  through,
} from './gpgEnv';

describe('crypto: createEncryptStream → gpg 2.2', function () {
  this.timeout(120_000);
  let dir: string;
  let rsaOnly: GpgHome;
  let eccOnly: GpgHome;
  let both: GpgHome;

  before(() => {
    dir = tempDir();
    rsaOnly = new GpgHome([RSA_SEC]);
    eccOnly = new GpgHome([ECC_SEC]);
    both = new GpgHome([RSA_SEC, ECC_SEC]);
  });
  after(() => GpgHome.killAll());

  async function encryptToFile(name: string, data: Buffer, opts: Parameters<typeof createEncryptStream>[0], chunks?: number[]): Promise<string> {
    const f = path.join(dir, name);
    fs.writeFileSync(f, await through(createEncryptStream(opts), data, chunks));
    return f;
  }

  /** The packet tags and versions gpg reports, in order. */
  function packets(home: GpgHome, file: string): string {
    return home.run(['--list-packets', file], '').stdout.toString();
  }

  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.from('x')],
    ['compressible', sourceText(300_000)],
    ['incompressible', noise(300_000, 9)],
    ['mixed > 10 MiB', mixedData(11 * 1024 * 1024, 3)],
  ];
  for (const [label, data] of cases) {
    it(`RSA recipient, ${label}: gpg decrypts byte-exact`, async () => {
      const recipients = await loadPublicKeys([RSA_PUB]);
      const f = await encryptToFile(`rsa-${label}.gpg`, data, { recipients }, [1, 100, 65536, 3000, 1 << 20]);
      const r = rsaOnly.decrypt(f);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.plain.equals(data), 'plaintext differs');
      assert.ok(r.status.some((l) => l.startsWith('[GNUPG:] DECRYPTION_OKAY')), 'gpg reports a good MDC');
    });
  }

  it('writes the packet shape of FORMAT §4.2: PKESK v3, SEIPD v1 with MDC, ZIP, literal b with empty name', async () => {
    const recipients = await loadPublicKeys([RSA_PUB]);
    const f = await encryptToFile('shape.gpg', sourceText(100_000), { recipients });
    const list = packets(rsaOnly, f);
    assert.match(list, /:pubkey enc packet: version 3, algo 1, keyid E58B2D7FA184113F/);
    assert.match(list, /:encrypted data packet:\n\s+length: \d+\n\s+mdc_method: 2/);
    assert.match(list, /:compressed packet: algo=1/);
    assert.match(list, /:literal data packet:\n\s+mode b \(62\), created \d+, name=""/);
    // Compression happened: much smaller than the input.
    assert.ok(fs.statSync(f).size < 60_000);
  });

  it('stores incompressible data instead of deflating it (size stays ~ input)', async () => {
    const recipients = await loadPublicKeys([RSA_PUB]);
    const data = noise(2_000_000, 4);
    const f = await encryptToFile('stored.gpg', data, { recipients });
    const size = fs.statSync(f).size;
    assert.ok(size > data.length && size < data.length * 1.002, `size ${size}`);
  });

  it('cv25519 (ECDH) recipient: gpg decrypts byte-exact', async () => {
    const recipients = await loadPublicKeys([ECC_PUB]);
    const data = mixedData(700_000, 5);
    const f = await encryptToFile('ecc.gpg', data, { recipients });
    assert.match(packets(eccOnly, f), /:pubkey enc packet: version 3, algo 18/);
    const r = eccOnly.decrypt(f);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.plain.equals(data));
  });

  it('two recipients: each key alone decrypts', async () => {
    const recipients = await loadPublicKeys([RSA_PUB, ECC_PUB]);
    const data = sourceText(50_000, 2);
    const f = await encryptToFile('two.gpg', data, { recipients });
    assert.equal((packets(both, f).match(/:pubkey enc packet/g) ?? []).length, 2);
    for (const home of [rsaOnly, eccOnly]) {
      const r = home.decrypt(f);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.plain.equals(data));
    }
  });

  it('compress: false writes the literal straight into SEIPD', async () => {
    const recipients = await loadPublicKeys([RSA_PUB]);
    const data = sourceText(200_000, 3);
    const f = await encryptToFile('nocomp.gpg', data, { recipients, compress: false });
    assert.doesNotMatch(packets(rsaOnly, f), /compressed packet/);
    assert.ok(fs.statSync(f).size > data.length);
    assert.ok(rsaOnly.decrypt(f).plain.equals(data));
  });

  for (const [label, pub, sec, fpr] of [
    ['ed25519', ECC_PUB, ECC_SEC, ECC_FPR],
    ['RSA', RSA_PUB, RSA_SEC, RSA_FPR],
  ] as const) {
    it(`signed with the ${label} key: gpg says GOODSIG (duplicity's --sign-key check) and VALIDSIG`, async () => {
      const recipients = await loadPublicKeys([pub]);
      const [signingKey] = await loadPrivateKeys([sec], async () => assert.fail('no passphrase needed'));
      for (const compress of [true, false]) {
        const data = mixedData(400_000, 7);
        const f = await encryptToFile(`signed-${label}-${compress}.gpg`, data, { recipients, signingKey, compress });
        const r = both.decrypt(f);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.plain.equals(data));
        const good = r.status.find((l) => l.startsWith('[GNUPG:] GOODSIG '));
        assert.ok(good, `no GOODSIG in ${r.status.join('\n')}`);
        // duplicity compares the key id's tail with the configured key id.
        assert.ok(fpr.endsWith(good.split(' ')[2]));
        assert.ok(r.status.some((l) => l.startsWith(`[GNUPG:] VALIDSIG ${fpr}`)));
        assert.match(packets(both, f), /:onepass_sig packet: keyid [0-9A-F]{16}\n\s+version 3, sigclass 0x00, digest 10/);
      }
    });
  }

  it('signs with a passphrase-protected key once it is unlocked', async () => {
    const recipients = await loadPublicKeys([RSA_PUB]);
    const [signingKey] = await loadPrivateKeys([PROTECTED_SEC], async () => PROTECTED_PASSPHRASE);
    const home = new GpgHome([RSA_SEC, PROTECTED_SEC]);
    const f = await encryptToFile('signed-protected.gpg', Buffer.from('hello'), { recipients, signingKey });
    const r = home.decrypt(f);
    assert.equal(r.plain.toString(), 'hello');
    assert.ok(r.status.some((l) => l.startsWith('[GNUPG:] GOODSIG ')));
  });

  it('refuses an empty recipient list with OffsiteError(key)', async () => {
    await assert.rejects(through(createEncryptStream({ recipients: [] }), Buffer.from('x')), (e: unknown) => OffsiteError.is(e, 'key'));
  });

  it('keeps memory bounded: 64 MiB streamed through encrypt into a slow consumer', async () => {
    const recipients = await loadPublicKeys([RSA_PUB]);
    const { Writable } = await import('node:stream');
    const { pipeline } = await import('node:stream/promises');
    const total = 64 * 1024 * 1024;
    const src = repeatedSource(noise(1 << 20, 11), total); // stored, so output bytes ≈ input bytes
    let lag = 0;
    let outBytes = 0;
    const sink = new Writable({
      highWaterMark: 1 << 16,
      write(c: Buffer, _e, cb) {
        outBytes += c.length;
        lag = Math.max(lag, src.produced() - outBytes);
        setImmediate(cb);
      },
    });
    await pipeline(src.stream, createEncryptStream({ recipients }), sink);
    assert.ok(outBytes > total);
    // Bytes read but not yet written out: the compressor's blocks in flight plus stream buffers.
    assert.ok(lag < 16 * 1024 * 1024, `${(lag / 1048576).toFixed(1)} MiB in flight`);
  });
});
