// The librsync layer against what duplicity 0.8.22 itself wrote (samples 02 and 03, unencrypted): our
// signatures equal the sigtar entries, duplicity's delta applies, and our delta equals duplicity's.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { DeltaEncoder } from '../../../src/engine/delta/delta';
import { applyDelta, bufferSource } from '../../../src/engine/delta/patch';
import { blockLengthFor, parseSignature, SignatureBuilder } from '../../../src/engine/delta/signature';
import { SAMPLES } from './rdiffTool';


/** Regular-file members of a plain ustar archive (enough for these fixtures: short names, no pax). */
function untar(file: string): Map<string, Buffer> {
  let data = fs.readFileSync(file);
  if (file.endsWith('.gz')) data = zlib.gunzipSync(data);
  const members = new Map<string, Buffer>();
  for (let p = 0; p + 512 <= data.length; ) {
    const header = data.subarray(p, p + 512);
    if (header.every((b) => b === 0)) break;
    const field = (o: number, n: number) => header.subarray(o, o + n).toString('latin1').replace(/\0.*$/s, '');
    const name = (field(345, 155) ? `${field(345, 155)}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = header[156];
    if (type === 0x30 || type === 0) members.set(name, data.subarray(p + 512, p + 512 + size));
    p += 512 + Math.ceil(size / 512) * 512;
  }
  return members;
}

/** Regular files of a full backup volume, multivol chunks joined. */
function snapshotFiles(volume: Map<string, Buffer>): Map<string, Buffer> {
  const files = new Map<string, Buffer[]>();
  for (const [name, body] of volume) {
    const whole = /^snapshot\/(.+)$/.exec(name);
    if (whole) files.set(whole[1], [body]);
    const part = /^multivol_snapshot\/(.+)\/(\d+)$/.exec(name);
    if (part) {
      const chunks = files.get(part[1]) ?? [];
      chunks[Number(part[2]) - 1] = body;
      files.set(part[1], chunks);
    }
  }
  return new Map([...files].map(([k, v]) => [k, Buffer.concat(v)]));
}

function sign(data: Buffer): Buffer {
  const b = new SignatureBuilder(blockLengthFor(data.length));
  b.update(data);
  return b.finish();
}

function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

describe('delta/duplicity fixtures', () => {
  for (const [dir, ext] of [['03-dup-nocomp', ''], ['02-dup-plain-gz', '.gz']]) {
    it(`${dir}: our signatures equal every signature in duplicity's full sigtar`, () => {
      const vault = path.join(SAMPLES, dir, 'vault');
      const volume = untar(path.join(vault, `duplicity-full.20240101T000000Z.vol1.difftar${ext}`));
      const sigtar = untar(path.join(vault, `duplicity-full-signatures.20240101T000000Z.sigtar${ext}`));
      const files = snapshotFiles(volume);
      const regular = [...sigtar.keys()].filter((k) => k.startsWith('signature/'));
      assert.deepEqual(regular.sort(), ['signature/a.txt', 'signature/d/b.txt', 'signature/r.bin']);
      for (const name of regular) {
        const content = files.get(name.slice('signature/'.length));
        assert.ok(content, `${name} has content in the volume`);
        assert.ok(sign(content).equals(sigtar.get(name)!), name);
      }
      assert.equal(files.get('r.bin')!.length, 70_000);
    });
  }

  it("02-dup-plain-gz: duplicity's incremental delta applies, and ours is byte-identical to it", async () => {
    const vault = path.join(SAMPLES, '02-dup-plain-gz', 'vault');
    const full = snapshotFiles(untar(path.join(vault, 'duplicity-full.20240101T000000Z.vol1.difftar.gz')));
    const inc = untar(path.join(vault, 'duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol1.difftar.gz'));
    const newSigs = untar(path.join(vault, 'duplicity-new-signatures.20240101T000000Z.to.20240102T000000Z.sigtar.gz'));
    const oldSigs = untar(path.join(vault, 'duplicity-full-signatures.20240101T000000Z.sigtar.gz'));
    const expected = JSON.parse(fs.readFileSync(path.join(SAMPLES, '02-dup-plain-gz', 'expected', '20240102T000000Z.json'), 'utf8')) as { path: string; sha256?: string }[];

    const dupDelta = inc.get('diff/a.txt')!;
    const parts: Buffer[] = [];
    await applyDelta(bufferSource(full.get('a.txt')!), (async function* () { yield dupDelta; })(), (c) => { parts.push(Buffer.from(c)); });
    const restored = Buffer.concat(parts);
    assert.equal(sha256(restored), expected.find((e) => e.path === 'a.txt')!.sha256);
    assert.ok(sign(restored).equals(newSigs.get('signature/a.txt')!), 'new signature equals duplicity’s');

    const e = new DeltaEncoder(parseSignature(oldSigs.get('signature/a.txt')!));
    const ours = Buffer.concat([e.update(restored), e.finish()]);
    assert.ok(ours.equals(dupDelta), `ours ${ours.toString('hex')} vs duplicity ${dupDelta.toString('hex')}`);
  });
});
