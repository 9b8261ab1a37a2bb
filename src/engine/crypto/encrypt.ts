// Streaming OpenPGP encryption in the shape gpg 2.2 writes for duplicity (FORMAT.md §4.2): one PKESK v3
// per recipient, then SEIPD v1 (AES-256-CFB + SHA-1 MDC) around a ZIP compressed packet around the
// literal packet ('b', empty name), with a one-pass signature around the literal when signing.
// The PKESKs come from the recipients (recipient.ts: openpgp.js, or node:crypto for an RSA key checked
// before), the signature's public-key step from openpgp.js; the data path is node:crypto plus the
// parallel deflater, which is what makes it several times faster than gpg's single-thread zlib.
import { createCipheriv, createHash, randomBytes, type Cipher, type Hash } from 'node:crypto';
import type { Transform } from 'node:stream';
import type { PrivateKey } from 'openpgp';
import { OffsiteError } from '../errors';
import { asyncTransform } from './asyncTransform';
import { ParallelDeflater, type ParallelDeflateOptions } from './deflate';
import { PartialBodyWriter, Tag } from './packets';
import { asRecipient, type EncryptionKey } from './recipient';
import { createStreamSigner } from './signature';

export interface EncryptOptions {
  recipients: readonly EncryptionKey[];
  signingKey?: PrivateKey;
  /** ZIP-compress the content (default true). Incompressible stretches are stored, not deflated. */
  compress?: boolean;
  /** Tuning for the parallel compressor (benchmarks, tests). */
  deflate?: ParallelDeflateOptions;
}

/** Partial body chunks of 64 KiB (2^16) for the packets we stream. */
const PARTIAL_EXP = 16;
/** Output is handed downstream in pieces of at least this size. */
const OUTPUT_CHUNK = 256 * 1024;

/** Collects output pieces and pushes them in large chunks. */
class Output {
  private pieces: Buffer[] = [];
  private length = 0;

  constructor(private readonly push: (b: Buffer) => Promise<void>) {}

  add(piece: Buffer): void {
    this.pieces.push(piece);
    this.length += piece.length;
  }

  async flush(all: boolean): Promise<void> {
    if (this.length === 0 || (!all && this.length < OUTPUT_CHUNK)) return;
    const b = this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces, this.length);
    this.pieces = [];
    this.length = 0;
    await this.push(b);
  }
}

/**
 * The SEIPD v1 packet: AES-256-CFB with a zero IV over random prefix (16 bytes + its last 2 again),
 * the plaintext, and the MDC packet (0xD3 0x14 + SHA-1 of everything before it). RFC 4880 §5.13.
 */
class SeipdWriter {
  private readonly cipher: Cipher;
  private readonly mdc: Hash = createHash('sha1');
  private readonly body: PartialBodyWriter;

  constructor(sessionKey: Buffer, emit: (piece: Buffer) => void) {
    this.cipher = createCipheriv('aes-256-cfb', sessionKey, Buffer.alloc(16));
    this.body = new PartialBodyWriter(Tag.SEIPD, PARTIAL_EXP, emit);
    this.body.write(Buffer.from([1])); // version 1
    const prefix = randomBytes(18);
    prefix.copy(prefix, 16, 14, 16);
    this.write(prefix);
  }

  write(plain: Buffer): void {
    if (plain.length === 0) return;
    this.mdc.update(plain);
    this.body.write(this.cipher.update(plain));
  }

  end(): void {
    const mdcHeader = Buffer.from([0xd3, 0x14]);
    this.mdc.update(mdcHeader);
    this.body.write(this.cipher.update(Buffer.concat([mdcHeader, this.mdc.digest()])));
    const rest = this.cipher.final();
    if (rest.length > 0) this.body.write(rest);
    this.body.end();
  }
}

/** Literal packet body header: binary mode, empty file name, creation time. */
function literalHeader(): Buffer {
  const h = Buffer.alloc(6);
  h[0] = 0x62; // 'b': binary
  h[1] = 0;
  h.writeUInt32BE(Math.floor(Date.now() / 1000), 2);
  return h;
}

/**
 * plaintext → binary OpenPGP message (see the file comment). Streaming with bounded memory: the
 * compressor keeps a few blocks in flight, everything else passes through in 64 KiB pieces.
 * Errors: OffsiteError('key') for recipients or a signing key gpg 2.2 could not use.
 */
export function createEncryptStream(opts: EncryptOptions): Transform {
  return asyncTransform(async ({ input, push }) => {
    if (opts.recipients.length === 0) {
      throw new OffsiteError('key', 'No recipient key to encrypt to', { hint: 'Configure at least one encryption key' });
    }
    const signer = opts.signingKey ? await createStreamSigner(opts.signingKey) : undefined;

    const sessionKey = randomBytes(32);
    const out = new Output(push);
    // One PKESK per recipient; each checks its key first (expired or revoked keys are refused).
    for (const r of opts.recipients) out.add(await asRecipient(r).sessionKeyPacket(sessionKey));
    const seipd = new SeipdWriter(sessionKey, (p) => out.add(p));

    // The inner packet stream (one-pass signature, literal, signature) goes either through the
    // compressor or straight into the SEIPD packet.
    let inner: (b: Buffer) => void;
    let settle: () => Promise<void>;
    let finishInner: () => Promise<void>;
    if (opts.compress ?? true) {
      seipd.write(Buffer.from([0xa3, 0x01])); // compressed packet, old format, indeterminate length; ZIP
      const deflater = new ParallelDeflater(async (pieces) => {
        for (const p of pieces) seipd.write(p);
        await out.flush(false);
      }, opts.deflate);
      inner = (b) => deflater.write(b);
      settle = () => deflater.drain();
      finishInner = () => deflater.end();
    } else {
      inner = (b) => seipd.write(b);
      settle = () => out.flush(false);
      finishInner = async () => {};
    }

    if (signer) inner(signer.onePassPacket);
    const literal = new PartialBodyWriter(Tag.Literal, PARTIAL_EXP, inner);
    literal.write(literalHeader());
    for await (const chunk of input) {
      signer?.update(chunk);
      literal.write(chunk);
      await settle();
    }
    literal.end();
    if (signer) inner(await signer.finish());
    await finishInner();
    seipd.end();
    await out.flush(true);
  });
}
