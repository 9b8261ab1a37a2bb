// Framing, parallel deflate and armor: the building blocks, checked against zlib and gpg's encodings.
import * as assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { dearmor, looksArmored } from '../../../src/engine/crypto/armor';
import { ByteReader } from '../../../src/engine/crypto/byteReader';
import { createCfbDecipher } from '../../../src/engine/crypto/cfb';
import { ParallelDeflater, sampleEntropy } from '../../../src/engine/crypto/deflate';
import { encodeLength, packetBody, PartialBodyWriter, readPacketHeader, Tag, TruncatedError } from '../../../src/engine/crypto/packets';
import { OffsiteError } from '../../../src/engine/errors';
import { mixedData, noise, sourceText } from './gpgEnv';

async function* chunked(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

describe('crypto: packet framing', () => {
  it('encodes definite lengths as RFC 4880 §4.2.2 (1, 2 and 5 octets)', () => {
    assert.deepEqual([...encodeLength(0)], [0]);
    assert.deepEqual([...encodeLength(191)], [191]);
    assert.deepEqual([...encodeLength(192)], [192, 0]);
    assert.deepEqual([...encodeLength(8383)], [223, 255]);
    assert.deepEqual([...encodeLength(8384)], [255, 0, 0, 0x20, 0xc0]);
  });

  for (const size of [0, 1, 191, 192, 8383, 8384, 511, 512, 65535, 65536, 65537, 200_000]) {
    it(`PartialBodyWriter round-trips a ${size}-byte body through the reader (any chunking)`, async () => {
      const body = noise(size, size + 1);
      const pieces: Buffer[] = [];
      const w = new PartialBodyWriter(Tag.Literal, 16, (p) => pieces.push(Buffer.from(p)));
      for (let o = 0; o < size; o += 7000) w.write(body.subarray(o, o + 7000));
      w.end();
      const framed = Buffer.concat(pieces);
      assert.equal(framed[0], 0xc0 | Tag.Literal);
      if (size >= 65536) assert.equal(framed[1], 0xe0 | 16, 'partial length of 2^16 first');
      for (const cs of [1, 3, 65536]) {
        const r = new ByteReader(chunked(framed, cs));
        const h = await readPacketHeader(r);
        assert.ok(h);
        assert.equal(h.tag, Tag.Literal);
        assert.ok((await collect(packetBody(r, h))).equals(body));
        assert.equal(await r.atEnd(), true);
      }
    });
  }

  it('reads old-format headers (1-, 2-, 4-octet and indeterminate lengths)', async () => {
    const body = Buffer.from('abc');
    for (const [hdr, kind] of [
      [Buffer.from([0x84, 3]), 'definite'],
      [Buffer.from([0x85, 0, 3]), 'definite'],
      [Buffer.from([0x86, 0, 0, 0, 3]), 'definite'],
      [Buffer.from([0xa3]), 'indeterminate'],
    ] as const) {
      const r = new ByteReader(chunked(Buffer.concat([hdr, body]), 1));
      const h = await readPacketHeader(r);
      assert.equal(h?.kind, kind);
      assert.equal((await collect(packetBody(r, h!))).toString(), 'abc');
    }
  });

  it('a body cut short is a TruncatedError', async () => {
    const r = new ByteReader(chunked(Buffer.from([0xcb, 10, 1, 2, 3]), 2));
    const h = await readPacketHeader(r);
    await assert.rejects(collect(packetBody(r, h!)), TruncatedError);
  });
});

describe('crypto: parallel deflate', () => {
  async function deflate(data: Buffer, opts: ConstructorParameters<typeof ParallelDeflater>[1], chunk = 65536): Promise<Buffer> {
    const out: Buffer[] = [];
    // Pieces may be slices of a block that is reused once emit settles: keep copies.
    const d = new ParallelDeflater(async (p) => void out.push(...p.map((b) => Buffer.from(b))), opts);
    for (let o = 0; o < data.length; o += chunk) {
      d.write(data.subarray(o, o + chunk));
      await d.drain();
    }
    await d.end();
    return Buffer.concat(out);
  }

  const inputs: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from('z')],
    ['text', sourceText(1_500_000, 3)],
    ['random', noise(1_500_000, 4)],
    ['mixed', mixedData(3_000_000, 5)],
  ];
  for (const [label, data] of inputs) {
    for (const opts of [{ blockSize: 32768, maxInFlight: 1 }, { blockSize: 200_000, maxInFlight: 3 }, {}]) {
      it(`${label}, blocks ${opts.blockSize ?? 'default'}: one valid raw-deflate stream equal to the input`, async () => {
        const z = await deflate(data, opts, 10_007);
        assert.ok(zlib.inflateRawSync(z).equals(data));
        if (label === 'text') assert.ok(z.length < data.length / 2.5, `text compresses (${z.length})`);
        if (label === 'random') assert.ok(z.length < data.length * 1.001, `random is stored, not expanded (${z.length})`);
      });
    }
  }

  it('back-references reach into the previous block (preset dictionary)', async () => {
    // The same 20 KiB of random data repeated: only matches across blocks can compress it.
    const unit = noise(20_000, 6);
    const data = Buffer.concat(Array.from({ length: 40 }, () => unit));
    const z = await deflate(data, { blockSize: 32768, storeAboveEntropy: 9 });
    assert.ok(zlib.inflateRawSync(z).equals(data));
    assert.ok(z.length < data.length / 5, `cross-block matches found (${z.length})`);
  });

  it('several deflaters at once, at different levels, share the reused zlib streams correctly', async () => {
    const datas = [mixedData(2_000_000, 11), sourceText(1_200_000, 12), mixedData(1_500_000, 13), sourceText(900_000, 14)];
    const levels = [1, 6, 1, 9];
    for (let round = 0; round < 2; round++) {
      const zs = await Promise.all(datas.map((d, i) => deflate(d, { blockSize: 100_000 + i * 37_000, level: levels[i], maxInFlight: 3 }, 30_011)));
      zs.forEach((z, i) => assert.ok(zlib.inflateRawSync(z).equals(datas[i]), `stream ${i}, round ${round}`));
      // Level 6 or 9 compresses text smaller than level 1 would: each job ran at its own level.
      const l1 = await deflate(datas[1], { blockSize: 137_000, level: 1 });
      assert.ok(zs[1].length < l1.length, `level 6 (${zs[1].length}) < level 1 (${l1.length})`);
    }
  });

  it('reuses block buffers once their pieces were emitted, in the next deflater too', async () => {
    // Random data is stored: its pieces are slices of the blocks themselves.
    const a = noise(1_000_000, 15);
    const kept: Buffer[] = [];
    const copies: Buffer[] = [];
    const d = new ParallelDeflater(
      async (pieces) => {
        kept.push(...pieces);
        copies.push(...pieces.map((b) => Buffer.from(b)));
      },
      { blockSize: 65536, maxInFlight: 2 },
    );
    for (let o = 0; o < a.length; o += 50_000) {
      d.write(a.subarray(o, o + 50_000));
      await d.drain();
    }
    await d.end();
    assert.ok(zlib.inflateRawSync(Buffer.concat(copies)).equals(a), 'what emit copied in time is the stream');
    // The first deflater's buffers went on to later blocks and to the next deflater: what was kept
    // without copying changed, and the next stream is still right.
    const b = mixedData(1_000_000, 16);
    assert.ok(zlib.inflateRawSync(await deflate(b, { blockSize: 65536, maxInFlight: 2 })).equals(b));
    assert.ok(kept.some((k, i) => !k.equals(copies[i])), 'pieces kept past emit were overwritten: the blocks are reused');
  });

  it('refuses a write after end(): its block went back to the spares another deflater takes', async () => {
    const d = new ParallelDeflater(async () => {}, { blockSize: 65536 });
    d.write(noise(1000, 20));
    await d.end();
    assert.throws(() => d.write(Buffer.from('late')), (e: unknown) => OffsiteError.is(e, 'internal'));
  });

  it('keeps a block whose pieces were emitted while the next block still needs its last 32 KiB', async () => {
    // A's first block is emitted before its second is full. B, started meanwhile, takes spare
    // buffers and ends its block with the first 16 KiB of A's second block: were A's first block
    // among them, A's second block would be deflated against B's bytes (matches at distance 16 KiB)
    // and decode wrongly after A's real first block. Deflated, not stored: only matches tell.
    const opts = { blockSize: 65536, maxInFlight: 1, storeAboveEntropy: 9 };
    const first = noise(65536, 17);
    const second = noise(65536, 19);
    const copies: Buffer[] = [];
    const a = new ParallelDeflater(async (p) => void copies.push(...p.map((b) => Buffer.from(b))), opts);
    a.write(first);
    await a.drain();
    const other = Buffer.concat([noise(49152, 18), second.subarray(0, 16384)]);
    assert.ok(zlib.inflateRawSync(await deflate(other, opts)).equals(other));
    a.write(second);
    await a.end();
    assert.ok(zlib.inflateRawSync(Buffer.concat(copies)).equals(Buffer.concat([first, second])));
  });

  it('sampleEntropy tells text from random', () => {
    assert.ok(sampleEntropy(sourceText(65536)) < 5.5);
    assert.ok(sampleEntropy(noise(65536)) > 7.9);
    assert.equal(sampleEntropy(Buffer.alloc(65536)), 0);
  });
});

describe('crypto: armor', () => {
  it('decodes armored data in any chunking, ignoring headers and checksum', async () => {
    const bin = noise(10_000, 7);
    const b64 = bin.toString('base64').replace(/.{64}/g, '$&\n');
    const armored = Buffer.from(`\n-----BEGIN PGP MESSAGE-----\nComment: test\n\n${b64}\n=abcd\n-----END PGP MESSAGE-----\n`);
    assert.ok(looksArmored(armored));
    for (const cs of [1, 5, 100, 1 << 20]) assert.ok((await collect(dearmor(chunked(armored, cs)))).equals(bin));
  });

  it('refuses armor that is not a message', async () => {
    await assert.rejects(collect(dearmor(chunked(Buffer.from('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n'), 4))), /Not an OpenPGP message/);
  });
});

describe('crypto: CFB decryption through ECB', () => {
  for (const bits of [128, 192, 256]) {
    it(`AES-${bits}: equals node's CFB for any chunking, including a final partial block`, () => {
      const key = randomBytes(bits / 8);
      const plain = noise(100_003, bits);
      const c = createCipheriv(`aes-${bits}-cfb`, key, Buffer.alloc(16));
      const ct = Buffer.concat([c.update(plain), c.final()]);
      for (const sizes of [[1], [15, 17, 3], [65536], [100_003]]) {
        const d = createCfbDecipher(`aes-${bits}-cfb`, key, 16);
        const out: Buffer[] = [];
        for (let o = 0, i = 0; o < ct.length; i++) {
          const n = sizes[i % sizes.length];
          out.push(Buffer.from(d.update([ct.subarray(o, o + n), ct.subarray(o + n, o + 2 * n)])));
          o += 2 * n;
        }
        out.push(d.final());
        assert.ok(Buffer.concat(out).equals(plain), `chunks ${sizes.join(',')}`);
      }
    });
  }
});
