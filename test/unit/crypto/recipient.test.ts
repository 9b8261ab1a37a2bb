// Recipients (crypto/recipient.ts): an RSA or ECDH key checked once by openpgp.js is remembered by its
// bytes, and later PKESKs are written by node:crypto; gpg 2.2 must decrypt those, and anything that does not
// fit the remembered check (other bytes, a verdict altered, past its time, a key expiring) goes back
// to openpgp.js.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as openpgp from 'openpgp';
import { createEncryptStream } from '../../../src/engine/crypto/encrypt';
import { loadPublicKeys } from '../../../src/engine/crypto/keys';
import { loadRecipients, nativeKeyPackets, type Recipient } from '../../../src/engine/crypto/recipient';
import { OffsiteError } from '../../../src/engine/errors';
import { tempDir } from '../../helpers/tmp';
import { ECC_PUB, ECC_SEC, ECC_SUBKEY, GpgHome, RSA_FPR, RSA_PUB, RSA_SEC, RSA_SUBKEY, sourceText, through } from './gpgEnv';

/** The one verdict file in `dir`, parsed, and its path. */
function verdictIn(dir: string): { file: string; v: { checked: number; until: number; keys: { fingerprint: string; encryptionKey: string; description: string }[] } } {
  const names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
  assert.equal(names.length, 1, `verdict files: ${names.join(', ')}`);
  const file = path.join(dir, names[0]);
  return { file, v: JSON.parse(fs.readFileSync(file, 'utf8')) };
}

/** Marks the remembered description, so a test can tell which way a recipient was made. */
function mark(dir: string, edit: (v: ReturnType<typeof verdictIn>['v']) => void = () => undefined): void {
  const { file, v } = verdictIn(dir);
  v.keys[0].description = 'remembered';
  edit(v);
  fs.writeFileSync(file, JSON.stringify(v));
}

describe('crypto: recipients remembered by their key bytes', function () {
  this.timeout(120_000);
  let rsaOnly: GpgHome;
  let work: string;

  before(() => {
    rsaOnly = new GpgHome([RSA_SEC]);
    work = tempDir('offsite-recipient-');
  });
  after(() => GpgHome.killAll());

  let n = 0;
  const freshDir = () => path.join(work, `keys-${n++}`);

  async function decryptsWithGpg(recipients: Recipient[]): Promise<void> {
    const data = sourceText(200_000, 7);
    const f = path.join(work, `m-${n++}.gpg`);
    fs.writeFileSync(f, await through(createEncryptStream({ recipients }), data));
    const list = rsaOnly.run(['--list-packets', f], '').stdout.toString();
    assert.match(list, new RegExp(`:pubkey enc packet: version 3, algo 1, keyid ${RSA_SUBKEY}`));
    const r = rsaOnly.decrypt(f);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.plain.equals(data), 'plaintext differs');
    assert.ok(r.status.some((l) => l.startsWith('[GNUPG:] DECRYPTION_OKAY')));
  }

  it('finds the RSA key packets of armored public and secret key files, with their v4 fingerprints', async () => {
    for (const file of [RSA_PUB, RSA_SEC]) {
      const fprs = (await nativeKeyPackets(fs.readFileSync(file))).map((p) => p.fingerprint.toUpperCase());
      const key = (await loadPublicKeys([RSA_PUB]))[0];
      assert.deepEqual(fprs, key.getKeys().map((k) => k.getFingerprint().toUpperCase()));
      assert.equal(fprs[0], RSA_FPR);
      assert.ok(fprs[1].endsWith(RSA_SUBKEY));
    }
    const binary = (await loadPublicKeys([RSA_PUB]))[0].write();
    assert.equal((await nativeKeyPackets(Buffer.from(binary))).length, 2);
    // The cv25519 key: its ECDH subkey, not its EdDSA primary.
    const ecc = await nativeKeyPackets(fs.readFileSync(ECC_PUB));
    assert.deepEqual(ecc.map((p) => [p.fingerprint.slice(-16).toUpperCase(), p.algorithm, p.ecdh?.curve.node]), [[ECC_SUBKEY, 18, 'X25519']]);
    // Cut anywhere, the bytes give the key packets wholly before the cut, in order, and no exception.
    const whole = (await nativeKeyPackets(Buffer.from(binary))).map((p) => p.fingerprint);
    const seen = new Set<number>();
    for (let cut = 0; cut < binary.length; cut += 7) {
      const got = (await nativeKeyPackets(Buffer.from(binary.subarray(0, cut)))).map((p) => p.fingerprint);
      assert.deepEqual(got, whole.slice(0, got.length), `cut at ${cut}`);
      seen.add(got.length);
    }
    assert.deepEqual([...seen].sort(), [0, 1, 2], 'cuts before, between and after the key packets');
  });

  it('remembers an RSA key checked by openpgp.js; the next load writes PKESKs natively, which gpg decrypts', async () => {
    const dir = freshDir();
    const first = await loadRecipients([RSA_PUB], { verdictDir: dir });
    assert.equal(first.length, 1);
    assert.equal(first[0].fingerprint.toUpperCase(), RSA_FPR);
    const { v } = verdictIn(dir);
    assert.equal(v.keys[0].encryptionKey.slice(-16).toUpperCase(), RSA_SUBKEY);
    assert.ok(v.until > Date.now() && v.until <= v.checked + 24 * 3600 * 1000);
    assert.equal((fs.statSync(verdictIn(dir).file).mode & 0o777).toString(8), '600');
    await decryptsWithGpg(first);

    mark(dir);
    const second = await loadRecipients([RSA_PUB], { verdictDir: dir });
    assert.equal(second[0].description, 'remembered', 'made from the remembered verdict');
    assert.equal(second[0].fingerprint.toUpperCase(), RSA_FPR);
    await decryptsWithGpg(second);
    // The same for the secret key file (its public part).
    await loadRecipients([RSA_SEC], { verdictDir: dir });
    const fromSecret = await loadRecipients([RSA_SEC], { verdictDir: dir });
    await decryptsWithGpg(fromSecret);
  });

  it("remembers a keyring entry by gpg's export of it", async () => {
    const dir = freshDir();
    await loadRecipients([RSA_FPR], { gnupgHome: rsaOnly.home, verdictDir: dir });
    mark(dir);
    const r = await loadRecipients([RSA_FPR], { gnupgHome: rsaOnly.home, verdictDir: dir });
    assert.equal(r[0].description, 'remembered');
    await decryptsWithGpg(r);
    // The same bytes as a key file are another verdict: a file's keys must all be usable.
    const exported = path.join(work, 'exported.gpg');
    fs.writeFileSync(exported, rsaOnly.ok(['--export', RSA_FPR]));
    const fromFile = await loadRecipients([exported], { verdictDir: dir });
    assert.notEqual(fromFile[0].description, 'remembered');
  });

  it('goes back to openpgp.js when the verdict does not fit: altered, out of its time, or other bytes', async () => {
    const cases: [string, (v: ReturnType<typeof verdictIn>['v']) => void][] = [
      ['a subkey not in the key', (v) => (v.keys[0].encryptionKey = '0'.repeat(40))],
      ['past its time', (v) => (v.until = Date.now() - 1000)],
      ['checked in the future (the clock went back)', (v) => (v.checked = Date.now() + 3600_000)],
      ['not a verdict', (v) => ((v as { format?: number }).format = 2)],
    ];
    for (const [label, edit] of cases) {
      const dir = freshDir();
      await loadRecipients([RSA_PUB], { verdictDir: dir });
      mark(dir, edit);
      const r = await loadRecipients([RSA_PUB], { verdictDir: dir });
      assert.notEqual(r[0].description, 'remembered', label);
      assert.match(r[0].description, /^RSA-3072 A53C…1B62/, label);
      assert.notEqual(verdictIn(dir).v.keys[0].description, 'remembered', `${label}: checked again and remembered anew`);
      await decryptsWithGpg(r);
    }
    // Other bytes (the same key re-armored by openpgp.js) are another verdict.
    const dir = freshDir();
    await loadRecipients([RSA_PUB], { verdictDir: dir });
    const other = path.join(work, 'rsa-rearmored.asc');
    fs.writeFileSync(other, (await loadPublicKeys([RSA_PUB]))[0].armor());
    await loadRecipients([other], { verdictDir: dir });
    assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length, 2);
  });

  it('a verdict folder that cannot be written or read only means openpgp.js checks the key each time', async () => {
    const blocked = path.join(work, 'not-a-folder');
    fs.writeFileSync(blocked, 'a file where the folder would be');
    for (let i = 0; i < 2; i++) {
      const r = await loadRecipients([RSA_PUB], { verdictDir: blocked });
      assert.match(r[0].description, /^RSA-3072 A53C…1B62/);
      await decryptsWithGpg(r);
    }
    assert.equal(fs.readFileSync(blocked, 'utf8'), 'a file where the folder would be');
    const dir = freshDir();
    await loadRecipients([RSA_PUB], { verdictDir: dir });
    fs.writeFileSync(verdictIn(dir).file, '{ not json');
    const r = await loadRecipients([RSA_PUB], { verdictDir: dir });
    assert.match(r[0].description, /^RSA-3072 A53C…1B62/);
    assert.doesNotThrow(() => JSON.parse(fs.readFileSync(verdictIn(dir).file, 'utf8')), 'written anew');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
  });

  it('remembers ECDH keys too: the next load writes their PKESKs natively, which gpg decrypts', async () => {
    const dir = freshDir();
    await loadRecipients([ECC_PUB], { verdictDir: dir });
    mark(dir);
    const r = await loadRecipients([ECC_PUB], { verdictDir: dir });
    assert.equal(r[0].description, 'remembered');
    const eccOnly = new GpgHome([ECC_SEC]);
    const data = sourceText(100_000, 9);
    const f = path.join(work, `ecc-${n++}.gpg`);
    fs.writeFileSync(f, await through(createEncryptStream({ recipients: r }), data));
    assert.match(eccOnly.run(['--list-packets', f], '').stdout.toString(), new RegExp(`:pubkey enc packet: version 3, algo 18, keyid ${ECC_SUBKEY}`));
    const g = eccOnly.decrypt(f);
    assert.equal(g.code, 0, g.stderr);
    assert.ok(g.plain.equals(data));
  });

  it('remembers each key file, RSA and ECDH alike; without a folder, keys still load; no key at all is refused', async () => {
    const dir = freshDir();
    const r = await loadRecipients([ECC_PUB, RSA_PUB], { verdictDir: dir });
    assert.equal(r.length, 2);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length, 2, 'both key files');
    const none = await loadRecipients([RSA_PUB]);
    assert.equal(none.length, 1);
    await assert.rejects(loadRecipients([], { verdictDir: dir }), (e: unknown) => OffsiteError.is(e, 'key'));
  });

  it('a remembered key that expires is refused once it has expired, also within a running backup', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'rsa',
      rsaBits: 2048,
      userIDs: [{ name: 'Expiring', email: 'expiring@example.invalid' }],
      keyExpirationTime: 4,
      format: 'armored',
      config: { v6Keys: false },
    });
    const file = path.join(work, 'expiring.asc');
    fs.writeFileSync(file, publicKey);
    const dir = freshDir();
    await loadRecipients([file], { verdictDir: dir });
    const { v } = verdictIn(dir);
    assert.ok(v.until <= Date.now() + 4000, 'the verdict ends when the key expires');
    mark(dir);
    const [r] = await loadRecipients([file], { verdictDir: dir });
    assert.equal(r.description, 'remembered');
    assert.ok((await r.sessionKeyPacket(Buffer.alloc(32, 1))).length > 256, 'a PKESK while the key is valid');
    await sleep(Math.max(0, v.until - Date.now()) + 50);
    await assert.rejects(r.sessionKeyPacket(Buffer.alloc(32, 1)), (e: unknown) => OffsiteError.is(e, 'key') && /expired/.test((e as Error).message));
    await assert.rejects(loadRecipients([file], { verdictDir: dir }), (e: unknown) => OffsiteError.is(e, 'key') && /expired/.test((e as Error).message));
  });
});
