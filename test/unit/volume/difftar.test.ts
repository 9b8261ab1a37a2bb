import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { OffsiteError } from '../../../src/engine/errors';
import type { EntryMeta } from '../../../src/engine/types';
import { indexFromBytes } from '../../../src/engine/pathIndex';
import {
  deletedHeader,
  formatMemberName,
  metaToTarHeader,
  parseMemberName,
  tarHeaderToMeta,
  type MemberName,
} from '../../../src/engine/volume/difftar';
import { encodeTarHeader, readTar, type TarHeader } from '../../../src/engine/volume/tar';
import { decryptedSample01, vaultDir } from '../../helpers/dupSamples';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const idx = (s: string) => indexFromBytes(s);

async function headersOf(file: string): Promise<{ header: TarHeader; size: number }[]> {
  const src = file.endsWith('.gz') ? fs.createReadStream(file).pipe(zlib.createGunzip()) : fs.createReadStream(file);
  const out: { header: TarHeader; size: number }[] = [];
  for await (const e of readTar(src)) {
    let size = 0;
    for await (const c of e.body) size += c.length;
    out.push({ header: e.header, size });
  }
  return out;
}

describe('difftar members', () => {
  describe('formatMemberName', () => {
    const cases: [MemberName, boolean, 'volume' | 'sigtar', string][] = [
      [{ kind: 'snapshot', index: [] }, true, 'volume', 'snapshot/./'],
      [{ kind: 'snapshot', index: [] }, true, 'sigtar', 'snapshot/'],
      [{ kind: 'snapshot', index: idx('README.txt') }, false, 'volume', 'snapshot/README.txt'],
      [{ kind: 'snapshot', index: idx('notes') }, true, 'volume', 'snapshot/notes/'],
      [{ kind: 'snapshot', index: idx('notes') }, true, 'sigtar', 'snapshot/notes/'],
      [{ kind: 'diff', index: idx('bin/blob.bin') }, false, 'volume', 'diff/bin/blob.bin'],
      [{ kind: 'deleted', index: idx('notes/deleted-later.txt') }, false, 'volume', 'deleted/notes/deleted-later.txt'],
      [{ kind: 'signature', index: idx('a/z.txt') }, false, 'sigtar', 'signature/a/z.txt'],
      [{ kind: 'snapshot', index: idx('big/random-1100000.bin'), multivol: 17 }, false, 'volume', 'multivol_snapshot/big/random-1100000.bin/17'],
      [{ kind: 'diff', index: idx('text-100k.txt'), multivol: 1 }, false, 'volume', 'multivol_diff/text-100k.txt/1'],
    ];
    for (const [m, isDir, where, want] of cases) {
      it(`${want} (${where})`, () => {
        assert.equal(formatMemberName(m, isDir, where).toString(), want);
        const back = parseMemberName(b(want));
        assert.equal(back.kind, m.kind);
        assert.deepEqual(back.index, m.index);
        assert.equal(back.multivol, m.multivol);
      });
    }

    it('keeps raw bytes', () => {
      const name = Buffer.from([0x61, 0xff, 0xfe, 0x20, 0x62]);
      const f = formatMemberName({ kind: 'snapshot', index: [b('d'), name] }, false, 'volume');
      assert.deepEqual(f, Buffer.concat([b('snapshot/d/'), name]));
      assert.deepEqual(parseMemberName(f).index, [b('d'), name]);
    });

    it('refuses to chunk deleted and signature members or the root', () => {
      assert.throws(() => formatMemberName({ kind: 'deleted', index: idx('a'), multivol: 1 }, false, 'volume'), (e: unknown) => OffsiteError.is(e, 'internal'));
      assert.throws(() => formatMemberName({ kind: 'snapshot', index: [], multivol: 1 }, false, 'volume'), (e: unknown) => OffsiteError.is(e, 'internal'));
    });
  });

  describe('parseMemberName', () => {
    it('maps every root spelling to the root', () => {
      for (const n of ['snapshot/./', 'snapshot/.', 'snapshot/', 'snapshot']) {
        assert.deepEqual(parseMemberName(b(n)), { kind: 'snapshot', index: [] }, n);
      }
    });

    it('refuses unsafe names', () => {
      for (const n of ['snapshot/../etc/passwd', 'snapshot/a/../../x', 'diff/..', 'multivol_snapshot/../x/1', 'deleted/a/..', 'snapshot//etc/passwd', 'snapshot/a\0b']) {
        assert.throws(() => parseMemberName(b(n)), (e: unknown) => OffsiteError.is(e, 'unsafePath'), n);
      }
    });

    it('refuses unknown prefixes and malformed names', () => {
      for (const n of ['file.txt', 'snapshots/a', 'multivol_snapshot/a', 'multivol_snapshot/a/x', 'multivol_diff/3', 'snapshot/a//b', 'snapshot/a/./b', '']) {
        assert.throws(() => parseMemberName(b(n)), (e: unknown) => OffsiteError.is(e, 'format'), JSON.stringify(n));
      }
    });

    it('parses every member of the fixtures (volumes and sigtars of 01, 02, 03)', async () => {
      const files = [
        ...fs.readdirSync(decryptedSample01()).filter((n) => !n.endsWith('manifest')).map((n) => path.join(decryptedSample01(), n)),
        ...['02-dup-plain-gz', '03-dup-nocomp'].flatMap((s) => fs.readdirSync(vaultDir(s)).filter((n) => !n.endsWith('manifest')).map((n) => path.join(vaultDir(s), n))),
      ];
      const kinds = new Set<string>();
      let count = 0;
      for (const f of files) {
        for (const { header } of await headersOf(f)) {
          const m = parseMemberName(header.name);
          kinds.add(m.multivol ? `multivol_${m.kind}` : m.kind);
          // our formatter writes the same name back
          const where = f.includes('sigtar') ? 'sigtar' : 'volume';
          assert.deepEqual(formatMemberName(m, header.type === 'dir', where), header.name, header.name.toString());
          count++;
        }
      }
      assert.deepEqual([...kinds].sort(), ['deleted', 'diff', 'multivol_diff', 'multivol_snapshot', 'signature', 'snapshot']);
      assert.ok(count > 80);
    });
  });

  describe('metadata', () => {
    const meta = (over: Partial<EntryMeta>): EntryMeta => ({ type: 'reg', mode: 0o644, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: 1704024000, ...over });

    it('writes the fixture 01 headers byte for byte from metadata', async () => {
      const vol2 = await headersOf(path.join(decryptedSample01(), 'duplicity-full.20240101T000000Z.vol2.difftar'));
      const vol2raw = fs.readFileSync(path.join(decryptedSample01(), 'duplicity-full.20240101T000000Z.vol2.difftar'));
      let offset = 0;
      for (const { header, size } of vol2) {
        const m = tarHeaderToMeta(header);
        const ours = encodeTarHeader(metaToTarHeader(header.name, m, size));
        // the bytes at the member's position in the decrypted volume
        assert.deepEqual(ours, vol2raw.subarray(offset, offset + ours.length), header.name.toString());
        offset += ours.length + Math.ceil(size / 512) * 512;
      }
      assert.ok(vol2.some((x) => x.header.type === 'symlink') && vol2.some((x) => x.header.type === 'fifo'));
      assert.ok(vol2.some((x) => x.header.uid === 1234 && x.header.uname === ''));
    });

    it('converts every type both ways', () => {
      const metas: EntryMeta[] = [
        meta({}),
        meta({ type: 'dir', mode: 0o2775 }),
        meta({ type: 'sym', mode: 0o777, linkname: Buffer.from([0x74, 0xff]) }),
        meta({ type: 'fifo', mode: 0o600 }),
        meta({ type: 'chr', devmajor: 1, devminor: 3 }),
        meta({ type: 'blk', devmajor: 8, devminor: 16, uid: 4242, gid: 7, uname: '', gname: '' }),
      ];
      for (const m of metas) {
        const h = metaToTarHeader(b('snapshot/x'), m, 0);
        assert.deepEqual(tarHeaderToMeta(h), m, m.type);
      }
      assert.equal(metaToTarHeader(b('x'), meta({ type: 'dir' }), 0).type, 'dir');
      assert.equal(metaToTarHeader(b('x'), meta({ mtime: -10 }), 0).mtime, 0);
      assert.equal(metaToTarHeader(b('x'), meta({ mode: 0o100644 }), 5).mode, 0o644);
      assert.equal(metaToTarHeader(b('x'), meta({}), 5).size, 5);
    });

    it('reads times and modes as duplicity does', () => {
      const h = metaToTarHeader(b('snapshot/x'), meta({}), 0);
      assert.equal(tarHeaderToMeta({ ...h, mtime: 1704024000.9 }).mtime, 1704024000);
      assert.equal(tarHeaderToMeta({ ...h, mtime: -3 }).mtime, 0);
      assert.equal(tarHeaderToMeta({ ...h, mode: 0o100755 }).mode, 0o755);
    });

    it('refuses hard links and unknown types', () => {
      const h = metaToTarHeader(b('snapshot/x'), meta({}), 0);
      assert.throws(() => tarHeaderToMeta({ ...h, type: 'hardlink' }), (e: unknown) => OffsiteError.is(e, 'format') && /Hard links/.test((e as Error).message));
      assert.throws(() => tarHeaderToMeta({ ...h, type: 'other', typeflag: 0x37 }), (e: unknown) => OffsiteError.is(e, 'format'));
    });

    it('writes deleted markers as in fixture 01 inc1', () => {
      const raw = fs.readFileSync(path.join(decryptedSample01(), 'duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol1.difftar'));
      const ours = encodeTarHeader(deletedHeader(b('deleted/notes/deleted-later.txt')));
      assert.deepEqual(ours, raw.subarray(4608, 5120));
    });
  });
});
