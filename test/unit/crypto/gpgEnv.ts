// Test support for the crypto stage: private GnuPG homes (never ~/.gnupg) with chosen keys, running the
// real gpg 2.2, plus stream helpers and deterministic test data.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ByteReader } from '../../../src/engine/crypto/byteReader';
import { readPacketHeader, readSmallBody, Tag } from '../../../src/engine/crypto/packets';
import { tempDir } from '../../helpers/tmp';

import { SAMPLES } from '../../helpers/gpg';
export { ECC_PUB, ECC_SEC, KEYS, RSA_PUB, RSA_SEC, RSA_SUBKEY, SAMPLES } from '../../helpers/gpg';
export const PROTECTED_PUB = path.resolve(__dirname, '../../fixtures/keys/protected-pub.asc');
export const PROTECTED_SEC = path.resolve(__dirname, '../../fixtures/keys/protected-sec.asc');
export const PROTECTED_PASSPHRASE = 'offsite-test-passphrase';
export const RSA_FPR = 'A53C2E541694B94C65CCD86BEA5CAF56C3041B62';
export const ECC_FPR = 'A4CB3808A8A5DF42B26B4AB767E6A0ACFFF5C626';
/** The cv25519 (ECDH) encryption subkey of ECC_FPR. */
export const ECC_SUBKEY = '2B0E2B980973BC4A';
export const PROTECTED_FPR = 'BE7001F563A15ABC94DCA79981FAA9BAA6EBA64C';

export interface GpgRun {
  readonly status: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

const homes: GpgHome[] = [];

/** A private GNUPGHOME with the given key files imported. Call GpgHome.killAll() in an after hook. */
export class GpgHome {
  readonly home: string;

  constructor(imports: string[] = []) {
    this.home = path.join(tempDir('offsite-gpg-'), 'g');
    fs.mkdirSync(this.home, { mode: 0o700 });
    fs.writeFileSync(path.join(this.home, 'gpg.conf'), 'trust-model always\n', { mode: 0o600 });
    homes.push(this);
    for (const f of imports) this.ok(['--import', f], PROTECTED_PASSPHRASE);
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, GNUPGHOME: this.home };
  }

  /** Runs gpg in batch mode; `passphrase`, when given, goes in by loopback pinentry. */
  run(args: string[], passphrase?: string, input?: Buffer): GpgRun {
    const pre = ['--batch', '--no-tty'];
    if (passphrase !== undefined) pre.push('--pinentry-mode', 'loopback', '--passphrase', passphrase);
    const r = spawnSync('gpg', [...pre, ...args], { env: this.env, input, maxBuffer: 1 << 30 });
    return { status: r.status ?? -1, stdout: r.stdout ?? Buffer.alloc(0), stderr: (r.stderr ?? Buffer.alloc(0)).toString() };
  }

  /** Like run(), but throws with gpg's messages unless it succeeds. */
  ok(args: string[], passphrase?: string, input?: Buffer): Buffer {
    const r = this.run(args, passphrase, input);
    if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /**
   * Makes a key as gpg --quick-gen-key does for `primary` (an algorithm or curve), with an encryption
   * subkey on `encryptionCurve`, protected by `passphrase` ('' for none); gives its fingerprint.
   */
  genKey(userId: string, primary: string, encryptionCurve: string, passphrase = ''): string {
    this.ok(['--quick-gen-key', userId, primary, 'default', 'never'], passphrase);
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(this.ok(['--with-colons', '--list-keys', `=${userId}`]).toString())![1];
    this.ok(['--quick-add-key', fpr, encryptionCurve, 'encr', 'never'], passphrase);
    return fpr;
  }

  /** gpg -d of a file: plaintext and the status lines. */
  decrypt(file: string, passphrase?: string): { plain: Buffer; status: string[]; code: number; stderr: string } {
    const statusFile = path.join(path.dirname(this.home), `status-${randomBytes(4).toString('hex')}`);
    const r = this.run(['--status-file', statusFile, '--decrypt', file], passphrase ?? '');
    const status = fs.existsSync(statusFile) ? fs.readFileSync(statusFile, 'utf8').split('\n') : [];
    fs.rmSync(statusFile, { force: true });
    return { plain: r.stdout, status, code: r.status, stderr: r.stderr };
  }

  static killAll(): void {
    for (const h of homes.splice(0)) spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: h.env, stdio: 'ignore' });
  }
}

/** Runs `data` through a transform, fed in chunks of the given sizes (cycled) to exercise framing. */
export async function through(t: Transform, data: Buffer, chunkSizes: number[] = [65536]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let o = 0, i = 0; o < data.length; i++) {
    const n = chunkSizes[i % chunkSizes.length];
    chunks.push(data.subarray(o, o + n));
    o += n;
  }
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    t,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

/** Deterministic pseudo-random bytes (xorshift), cheap to make in any size. */
export function noise(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n + 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b.subarray(0, n);
}

const WORDS = 'const let function return import export interface async await value result error config backup restore volume'.split(' ');

/** Source-like text that deflate compresses well. */
export function sourceText(n: number, seed = 1): Buffer {
  const r = noise(Math.ceil(n / 4) + 16, seed);
  let s = '';
  for (let i = 0; s.length < n; i++) s += WORDS[r[i % r.length] % WORDS.length] + (r[(i + 7) % r.length] % 9 === 0 ? ';\n  ' : ' ');
  return Buffer.from(s.slice(0, n));
}

/** Half text, half random, in runs of 16–300 KiB. */
export function mixedData(n: number, seed = 1): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (let i = 0; total < n; i++) {
    const len = Math.min(16384 + ((seed * 7919 + i * 104729) % 290000), n - total);
    parts.push(i % 2 === 0 ? sourceText(len, seed + i) : noise(len, seed + i));
    total += len;
  }
  return Buffer.concat(parts);
}

/**
 * A stream of `block` repeated until `total` bytes (fresh copies, as a file reader's chunks are), and
 * how many bytes it has handed out so far: for tests of how far a consumer lags behind its source.
 */
export function repeatedSource(block: Buffer, total: number): { readonly stream: Readable; produced(): number } {
  let produced = 0;
  const stream = new Readable({
    read() {
      if (produced >= total) return void this.push(null);
      produced += block.length;
      this.push(Buffer.from(block));
    },
  });
  return { stream, produced: () => produced };
}

/** Fixture vault files of a duplicity sample. */
export function sampleFiles(sample: string): string[] {
  const dir = path.join(SAMPLES, sample, 'vault');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.gpg'))
    .map((f) => path.join(dir, f));
}

/** The bodies of the PKESK packets at the start of a binary message. */
export async function pkeskBodies(message: Uint8Array): Promise<Buffer[]> {
  const r = new ByteReader((async function* () {
    yield Buffer.from(message);
  })());
  const out: Buffer[] = [];
  for (;;) {
    const h = await readPacketHeader(r);
    if (!h || h.tag !== Tag.PKESK) return out;
    out.push(await readSmallBody(r, h));
  }
}
