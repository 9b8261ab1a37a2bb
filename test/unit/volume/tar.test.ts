import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { OffsiteError } from '../../../src/engine/errors';
import {
  encodeTarHeader,
  readTar,
  tarArchiveEnd,
  tarFooter,
  tarPadding,
  type TarEntry,
  type TarHeader,
  type TarType,
} from '../../../src/engine/volume/tar';
import { decryptedSample01, runPython, vaultDir } from '../../helpers/dupSamples';
import { tempDir } from '../../helpers/tmp';

// Python side: TarInfo.tobuf() exactly as duplicity calls it (diffdir.py tarinfo2tarblock()).
const PY_ENCODE = `
import json, os, sys, tarfile
out = []
for m in json.load(sys.stdin):
    ti = tarinfo = tarfile.TarInfo()
    ti.name = os.fsdecode(bytes.fromhex(m['name']))
    ti.type = m['flag'].encode('latin1')
    ti.mode = m['mode']; ti.uid = m['uid']; ti.gid = m['gid']; ti.size = m['size']; ti.mtime = m['mtime']
    ti.linkname = os.fsdecode(bytes.fromhex(m['linkname']))
    ti.uname = m['uname']; ti.gname = m['gname']
    ti.devmajor = m['devmajor']; ti.devminor = m['devminor']
    out.append(ti.tobuf(format=tarfile.PAX_FORMAT, errors='replace', encoding='utf-8').hex())
print(json.dumps(out))
`;

// Python side: what tarfile reads from a tar file (names as the raw bytes duplicity would see).
const PY_LIST = `
import hashlib, json, os, sys, tarfile
args = json.load(sys.stdin)
res = []
with tarfile.open(args['path'], 'r:') as tf:
    for ti in tf:
        data = tf.extractfile(ti).read() if ti.isreg() else b''
        res.append({'name': os.fsencode(ti.name).hex(), 'type': ti.type.decode('latin1'), 'size': ti.size,
                    'mode': ti.mode, 'uid': ti.uid, 'gid': ti.gid, 'mtime': ti.mtime,
                    'linkname': os.fsencode(ti.linkname).hex(), 'uname': ti.uname, 'gname': ti.gname,
                    'sha1': hashlib.sha1(data).hexdigest()})
print(json.dumps(res))
`;

const FLAG: Record<Exclude<TarType, 'other'>, string> = { file: '0', hardlink: '1', symlink: '2', chr: '3', blk: '4', dir: '5', fifo: '6' };

function pyEncode(headers: TarHeader[]): Buffer[] {
  const input = headers.map((h) => ({
    name: h.name.toString('hex'),
    flag: h.type === 'other' ? String.fromCharCode(h.typeflag!) : FLAG[h.type],
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size: h.size,
    mtime: h.mtime,
    linkname: h.linkname.toString('hex'),
    uname: h.uname,
    gname: h.gname,
    devmajor: h.devmajor,
    devminor: h.devminor,
  }));
  return runPython<string[]>(PY_ENCODE, input).map((x) => Buffer.from(x, 'hex'));
}

interface PyMember {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  sha1: string;
}

function pyList(file: string): PyMember[] {
  return runPython<PyMember[]>(PY_LIST, { path: file });
}

function hdr(over: Partial<TarHeader>): TarHeader {
  return {
    name: Buffer.from('snapshot/file'),
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 1704024000,
    linkname: Buffer.alloc(0),
    uname: 'root',
    gname: 'root',
    devmajor: 0,
    devminor: 0,
    ...over,
  };
}

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(buf.length, i + size));
}

interface ReadMember {
  header: TarHeader;
  data: Buffer;
}

async function readAll(source: AsyncIterable<Buffer>): Promise<ReadMember[]> {
  const out: ReadMember[] = [];
  for await (const e of readTar(source)) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ header: e.header, data: Buffer.concat(parts) });
  }
  return out;
}

/** A whole archive as we write it: header, data, padding per member, then Python's end. */
function buildTar(members: { header: TarHeader; data?: Buffer }[], end: 'python' | 'none' = 'python'): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  for (const m of members) {
    const data = m.data ?? Buffer.alloc(0);
    const h = encodeTarHeader({ ...m.header, size: data.length });
    parts.push(h, data, tarPadding(data.length));
    n += h.length + data.length + tarPadding(data.length).length;
  }
  if (end === 'python') parts.push(tarArchiveEnd(n));
  return Buffer.concat(parts);
}

const ODD_NAMES: Buffer[] = [
  Buffer.from('snapshot/plain.txt'),
  Buffer.from('snapshot/name with spaces.txt'),
  Buffer.from('snapshot/ünïcode-ñame.txt'),
  Buffer.from('snapshot/emoji-😀-𝄞.txt'),
  Buffer.concat([Buffer.from('snapshot/bad'), Buffer.from([0xff, 0xfe]), Buffer.from('name.txt')]),
  Buffer.concat([Buffer.from('snapshot/trunc'), Buffer.from([0xe2, 0x82]), Buffer.from('x')]),
  Buffer.concat([Buffer.from('snapshot/surrogate'), Buffer.from([0xed, 0xa0, 0x80])]),
  Buffer.from('snapshot/' + 'L'.repeat(91)), // exactly 100 bytes
  Buffer.from('snapshot/' + 'L'.repeat(92)), // 101 bytes → pax
  Buffer.from('snapshot/notes/' + 'é'.repeat(80) + '.txt'),
  Buffer.concat([Buffer.from('snapshot/'), Buffer.from('ä'.repeat(60)), Buffer.from([0x80]), Buffer.from('z'.repeat(200))]),
];

describe('tar codec', () => {
  describe('encodeTarHeader', () => {
    it('writes the fixture 01 header of snapshot/README.txt byte for byte', () => {
      const vol1 = fs.readFileSync(path.join(decryptedSample01(), 'duplicity-full.20240101T000000Z.vol1.difftar'));
      const ours = encodeTarHeader(hdr({ name: Buffer.from('snapshot/README.txt'), size: 47 }));
      assert.equal(ours.length, 512);
      assert.deepEqual(ours, vol1.subarray(512, 1024));
      // and the root directory header at offset 0, written from a name without the trailing '/'
      const root = encodeTarHeader(hdr({ name: Buffer.from('snapshot/.'), type: 'dir', mode: 0o755 }));
      assert.deepEqual(root, vol1.subarray(0, 512));
    });

    it('equals Python tarfile (PAX_FORMAT) for odd names, links, owners, devices and big numbers', () => {
      const headers: TarHeader[] = [
        ...ODD_NAMES.map((name) => hdr({ name, size: 12345 })),
        ...ODD_NAMES.map((name) => hdr({ name, type: 'dir', mode: 0o2755 })),
        hdr({ name: Buffer.from('snapshot/link'), type: 'symlink', mode: 0o777, linkname: Buffer.from('t'.repeat(150)) }),
        hdr({ name: Buffer.from('snapshot/link2'), type: 'symlink', mode: 0o777, linkname: Buffer.from([0x61, 0xff, 0x62]) }),
        hdr({ name: Buffer.from('snapshot/link3'), type: 'symlink', mode: 0o777, linkname: Buffer.from('zielé') }),
        hdr({ name: Buffer.from('snapshot/dev'), type: 'chr', devmajor: 4, devminor: 64 }),
        hdr({ name: Buffer.from('snapshot/disk'), type: 'blk', devmajor: 8, devminor: 1, mode: 0o660 }),
        hdr({ name: Buffer.from('snapshot/fifo'), type: 'fifo' }),
        hdr({ name: Buffer.from('snapshot/hl'), type: 'hardlink', linkname: Buffer.from('snapshot/plain.txt') }),
        hdr({ name: Buffer.from('snapshot/o'), type: 'other', typeflag: 0x37 }),
        hdr({ uid: 2 ** 21, gid: 2 ** 21 - 1, uname: '', gname: '' }),
        hdr({ uid: 4242, gid: 5678, uname: 'ünïcode', gname: 'g'.repeat(33) }),
        hdr({ size: 8 * 1024 ** 3 }),
        hdr({ size: 8 * 1024 ** 3 - 1 }),
        hdr({ mtime: 8 ** 11 }),
        hdr({ mtime: -5 }),
        hdr({ mtime: 1704024000.5 }),
        hdr({ mtime: 1704024001.5 }),
        hdr({ mode: 0o104755 }),
        hdr({ name: Buffer.from('deleted/gone'), mode: 0, mtime: 0, uname: '', gname: '' }),
      ];
      const py = pyEncode(headers);
      headers.forEach((h, i) => assert.deepEqual(encodeTarHeader(h), py[i], `header ${i}: ${h.name.toString('hex')}`));
    });

    it('equals Python tarfile for random headers (property test)', () => {
      const byte = fc.oneof(
        fc.constantFrom(...Buffer.from('abcXYZ09._-/ /')),
        fc.integer({ min: 0x80, max: 0xff }),
        fc.constantFrom(...Buffer.from('é€𝄞')),
      );
      const name = fc.array(byte, { minLength: 1, maxLength: 260 }).map((a) => Buffer.from(a));
      const header = fc.record({
        name,
        type: fc.constantFrom<TarType>('file', 'dir', 'symlink', 'chr', 'blk', 'fifo', 'hardlink'),
        mode: fc.integer({ min: 0, max: 0o7777 }),
        uid: fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 2 ** 21 - 2, max: 2 ** 32 })),
        gid: fc.integer({ min: 0, max: 2 ** 22 }),
        size: fc.oneof(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 8 ** 11 - 2, max: 8 ** 11 + 2 })),
        mtime: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 + 5 }), fc.integer({ min: -100, max: -1 })),
        linkname: fc.oneof(fc.constant(Buffer.alloc(0)), name),
        uname: fc.oneof(fc.constantFrom('', 'root', 'ünï', 'x'.repeat(32), 'y'.repeat(33)), fc.string({ maxLength: 40 })),
        gname: fc.constantFrom('', 'root', 'wheel', 'grüppe'),
        devmajor: fc.integer({ min: 0, max: 4095 }),
        devminor: fc.integer({ min: 0, max: 2 ** 20 }),
      });
      const samples = fc.sample(header, { numRuns: 400, seed: 4242 }) as TarHeader[];
      const py = pyEncode(samples);
      samples.forEach((h, i) => assert.deepEqual(encodeTarHeader(h), py[i], `sample ${i}`));
    });

    it('stores undecodable names raw under hdrcharset=BINARY, UTF-8 names as path records', () => {
      const raw = Buffer.concat([Buffer.from('snapshot/bad'), Buffer.from([0xff, 0xfe]), Buffer.from('name.txt')]);
      const h = encodeTarHeader(hdr({ name: raw }));
      assert.equal(h.length, 1536);
      assert.equal(h.toString('latin1', 0, 14), '././@PaxHeader');
      assert.equal(h[156], 0x78);
      const records = h.subarray(512, 1024);
      assert.ok(records.subarray(0, 21).equals(Buffer.from('21 hdrcharset=BINARY\n')));
      assert.ok(records.includes(Buffer.concat([Buffer.from(`${raw.length + 9} path=`), raw, Buffer.from('\n')])));
      assert.equal(h.toString('latin1', 1024, 1024 + 22), 'snapshot/bad??name.txt');
      const utf = encodeTarHeader(hdr({ name: Buffer.from('snapshot/ünï.txt') }));
      assert.ok(!utf.includes(Buffer.from('hdrcharset')));
      assert.ok(utf.includes(Buffer.from('path=snapshot/ünï.txt\n')));
      assert.equal(utf.toString('latin1', 1024, 1024 + 17), 'snapshot/?n?.txt\0');
    });

    it('pads, and ends archives like duplicity (footer) and Python (close)', () => {
      assert.equal(tarPadding(0).length, 0);
      assert.equal(tarPadding(1).length, 511);
      assert.equal(tarPadding(512).length, 0);
      assert.equal(tarFooter(76800).length, 5120);
      assert.equal(tarFooter(10240).length, 10240);
      assert.equal(tarFooter(10240 - 512).length, 512);
      assert.ok(tarFooter(1234567 - (1234567 % 512)).every((b) => b === 0));
      assert.equal(tarArchiveEnd(0).length, 10240);
      assert.equal(tarArchiveEnd(9216).length, 1024);
      assert.equal(tarArchiveEnd(9728).length, 1024 + 9728);
    });
  });

  describe('readTar', () => {
    it('reads every gzip volume and sigtar of fixture 02 (no footer) as Python does', async () => {
      for (const name of fs.readdirSync(vaultDir('02-dup-plain-gz')).filter((n) => n.endsWith('.gz'))) {
        const plain = zlib.gunzipSync(fs.readFileSync(path.join(vaultDir('02-dup-plain-gz'), name)));
        const tmp = path.join(tempDir(), 'v.tar');
        fs.writeFileSync(tmp, plain, { mode: 0o600 });
        await compareWithPython(tmp, fs.createReadStream(path.join(vaultDir('02-dup-plain-gz'), name)).pipe(zlib.createGunzip()));
      }
    });

    it('reads the raw volume and sigtar of fixture 03', async () => {
      for (const name of fs.readdirSync(vaultDir('03-dup-nocomp')).filter((n) => n.endsWith('difftar') || n.endsWith('sigtar'))) {
        const file = path.join(vaultDir('03-dup-nocomp'), name);
        await compareWithPython(file, fs.createReadStream(file, { highWaterMark: 1000 }));
      }
    });

    it('reads the decrypted volumes of fixture 01, stopping at the footer and draining the junk after it', async () => {
      const dir = decryptedSample01();
      let members = 0;
      for (const name of fs.readdirSync(dir).filter((n) => n.includes('difftar') || n.includes('sigtar'))) {
        const file = path.join(dir, name);
        const size = fs.statSync(file).size;
        let consumed = 0;
        let finished = false;
        async function* tracked(): AsyncGenerator<Buffer> {
          for await (const c of fs.createReadStream(file, { highWaterMark: 7777 })) {
            consumed += (c as Buffer).length;
            yield c as Buffer;
          }
          finished = true;
        }
        members += await compareWithPython(file, tracked());
        assert.equal(consumed, size, `${name}: the whole file was read`);
        assert.ok(finished, `${name}: the source reached its end`);
      }
      assert.ok(members > 40);
      // vol1 really has junk after the end-of-archive (FORMAT §4.3)
      const vol1 = fs.readFileSync(path.join(dir, 'duplicity-full.20240101T000000Z.vol1.difftar'));
      assert.equal(vol1.length, 1095280);
      const footerStart = 1061376; // first zero block
      const junkStart = footerStart + tarFooter(footerStart).length;
      assert.ok(vol1.subarray(footerStart, junkStart).every((b) => b === 0));
      assert.deepEqual(vol1.subarray(junkStart, junkStart + 4), Buffer.from([0x85, 0x01, 0x8c, 0x03]));
    });

    it('reads GNU long names and long link names (Python-2-era duplicity)', async () => {
      const names = [Buffer.from('snapshot/' + 'g'.repeat(180)), Buffer.concat([Buffer.from('snapshot/'), Buffer.from([0xff]), Buffer.from('x'.repeat(120))])];
      const file = path.join(tempDir(), 'gnu.tar');
      runPython(
        `
import json, os, sys, tarfile, io
a = json.load(sys.stdin)
with tarfile.open(a['path'], 'w', format=tarfile.GNU_FORMAT) as tf:
    for i, n in enumerate(a['names']):
        ti = tarfile.TarInfo(os.fsdecode(bytes.fromhex(n))); data = b'data%d' % i; ti.size = len(data); ti.mtime = 1704024000
        tf.addfile(ti, io.BytesIO(data))
    ti = tarfile.TarInfo('snapshot/link'); ti.type = tarfile.SYMTYPE; ti.linkname = 'T' * 140
    tf.addfile(ti)
    ti = tarfile.TarInfo('snapshot/' + 'd' * 120); ti.type = tarfile.DIRTYPE
    tf.addfile(ti)
print('[]')
`,
        { path: file, names: names.map((n) => n.toString('hex')) },
      );
      const got = await readAll(fs.createReadStream(file, { highWaterMark: 300 }));
      assert.equal(got.length, 4);
      assert.deepEqual(got[0].header.name, names[0]);
      assert.equal(got[0].data.toString(), 'data0');
      assert.deepEqual(got[1].header.name, names[1]);
      assert.equal(got[1].data.toString(), 'data1');
      assert.equal(got[2].header.type, 'symlink');
      assert.equal(got[2].header.linkname.toString(), 'T'.repeat(140));
      assert.equal(got[3].header.type, 'dir');
      assert.equal(got[3].header.name.toString(), 'snapshot/' + 'd'.repeat(120) + '/');
      await compareWithPython(file, fs.createReadStream(file));
    });

    it('round-trips odd names, big numbers and pax records, and Python reads what we wrote', async () => {
      const members: { header: TarHeader; data?: Buffer }[] = [
        ...ODD_NAMES.map((name, i) => ({ header: hdr({ name, uid: i * 100000, uname: i % 2 ? 'ünï' : 'u' }), data: randomBytes(i * 97) })),
        { header: hdr({ name: Buffer.from('snapshot/big-ids'), uid: 2 ** 31, gid: 2 ** 22, mtime: 2 ** 34 }), data: Buffer.from('x') },
        { header: hdr({ name: Buffer.concat([Buffer.from('snapshot/l'), Buffer.from([0xfe])]), type: 'symlink' as const, linkname: Buffer.from([0xff, 0x2f, 0x61]) }) },
        { header: hdr({ name: Buffer.from('snapshot/dir'), type: 'dir' as const, mode: 0o1777 }) },
        { header: hdr({ name: Buffer.from('snapshot/dev'), type: 'blk' as const, devmajor: 259, devminor: 3 }) },
      ];
      const tar = buildTar(members);
      const file = path.join(tempDir(), 'odd.tar');
      fs.writeFileSync(file, tar, { mode: 0o600 });
      const got = await readAll(chunked(tar, 333));
      assert.equal(got.length, members.length);
      got.forEach((g, i) => {
        const want = members[i];
        const wantName = want.header.type === 'dir' ? Buffer.concat([want.header.name, Buffer.from('/')]) : want.header.name;
        assert.deepEqual(g.header.name, wantName);
        assert.equal(g.header.type, want.header.type);
        assert.equal(g.header.uid, want.header.uid);
        assert.equal(g.header.gid, want.header.gid);
        assert.equal(g.header.mtime, want.header.mtime);
        assert.equal(g.header.uname, want.header.uname);
        assert.deepEqual(g.header.linkname, want.header.linkname);
        assert.deepEqual(g.data, want.data ?? Buffer.alloc(0));
        if (want.header.type === 'blk') assert.deepEqual([g.header.devmajor, g.header.devminor], [259, 3]);
      });
      const py = pyList(file);
      assert.equal(py.length, members.length);
      py.forEach((p, i) => {
        const want = members[i];
        assert.equal(p.name, want.header.name.toString('hex'), `python name ${i}`);
        assert.equal(p.uid, want.header.uid);
        assert.equal(p.mtime, want.header.mtime);
        assert.equal(p.sha1, createHash('sha1').update(want.data ?? Buffer.alloc(0)).digest('hex'));
      });
    });

    it('skips bodies that are not read, or read only in part', async () => {
      const members = [0, 1, 511, 512, 513, 70000, 3].map((n, i) => ({ header: hdr({ name: Buffer.from(`snapshot/f${i}`) }), data: randomBytes(n) }));
      const tar = buildTar(members);
      const names: string[] = [];
      let i = 0;
      for await (const e of readTar(chunked(tar, 1000))) {
        names.push(e.header.name.toString());
        if (i % 3 === 1) {
          for await (const c of e.body) {
            assert.ok(c.length > 0);
            break; // read a little, then move on
          }
        } else if (i % 3 === 2) {
          const parts: Buffer[] = [];
          for await (const c of e.body) parts.push(c);
          assert.deepEqual(Buffer.concat(parts), members[i].data);
        }
        i++;
      }
      assert.deepEqual(names, members.map((m) => m.header.name.toString()));
    });

    it('hands out bodies as slices of the source chunks, not copies', async () => {
      const tar = buildTar([{ header: hdr({}), data: randomBytes(100000) }]);
      const chunks = [tar.subarray(0, 512), tar.subarray(512, 40000), tar.subarray(40000)];
      async function* src(): AsyncGenerator<Buffer> {
        yield* chunks;
      }
      for await (const e of readTar(src())) {
        let n = 0;
        for await (const c of e.body) {
          assert.equal(c.buffer, tar.buffer, 'same memory as the source');
          n += c.length;
        }
        assert.equal(n, 100000);
      }
    });

    it('refuses to read a body after the next entry was requested', async () => {
      const tar = buildTar([{ header: hdr({}), data: randomBytes(2000) }, { header: hdr({ name: Buffer.from('snapshot/b') }), data: Buffer.from('b') }]);
      const it = readTar(chunked(tar, 512));
      const first = (await it.next()).value as TarEntry;
      await it.next();
      await assert.rejects(async () => {
        for await (const _ of first.body) void _;
      }, (e: unknown) => OffsiteError.is(e, 'internal'));
      await it.return(undefined);
    });

    it('accepts a stream without footer, and an empty stream', async () => {
      const tar = buildTar([{ header: hdr({}), data: Buffer.from('abc') }], 'none');
      assert.equal(tar.length, 1024);
      const got = await readAll(chunked(tar, 100));
      assert.equal(got.length, 1);
      assert.equal(got[0].data.toString(), 'abc');
      assert.deepEqual(await readAll(chunked(Buffer.alloc(0), 1)), []);
    });

    it('stops at a single zero block even when junk follows', async () => {
      const tar = Buffer.concat([buildTar([{ header: hdr({}), data: Buffer.from('abc') }], 'none'), Buffer.alloc(512), randomBytes(3000)]);
      const got = await readAll(chunked(tar, 4096));
      assert.equal(got.length, 1);
    });

    it('reports truncated data as integrity errors', async () => {
      const tar = buildTar([{ header: hdr({}), data: randomBytes(5000) }], 'none');
      for (const cut of [100, 512 + 10, 512 + 4999, tar.length - 1]) {
        await assert.rejects(readAll(chunked(tar.subarray(0, cut), 700)), (e: unknown) => OffsiteError.is(e, 'integrity'), `cut at ${cut}`);
      }
      // a pax header and then nothing
      const pax = encodeTarHeader(hdr({ name: Buffer.from('snapshot/' + 'p'.repeat(200)) }));
      assert.equal(pax.length, 1536);
      await assert.rejects(readAll(chunked(pax.subarray(0, 1024), 512)), (e: unknown) => OffsiteError.is(e, 'integrity'));
    });

    it('reports a header with a bad checksum as a format error', async () => {
      const tar = buildTar([{ header: hdr({}), data: Buffer.from('abc') }, { header: hdr({ name: Buffer.from('snapshot/z') }) }]);
      const bad = Buffer.from(tar);
      bad[1024 + 20] ^= 0x01; // the second header's name
      await assert.rejects(readAll(chunked(bad, 512)), (e: unknown) => OffsiteError.is(e, 'format'));
      await assert.rejects(readAll(chunked(randomBytes(2048), 512)), (e: unknown) => OffsiteError.is(e, 'format'));
    });

    it('reads base-256 numbers and ustar prefix names', async () => {
      const h = encodeTarHeader(hdr({ name: Buffer.from('x') }));
      // uid as GNU base-256 (0x80 + big-endian), size 3, name split into prefix + name
      h.fill(0, 108, 116);
      h[108] = 0x80;
      h.writeUInt32BE(3000000000, 112);
      h.write('snapshot/deep/dir', 345, 'latin1');
      h.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(sum.toString(8).padStart(6, '0') + '\0', 148, 'latin1');
      const got = await readAll(chunked(Buffer.concat([h, Buffer.alloc(1024)]), 512));
      assert.equal(got[0].header.uid, 3000000000);
      assert.equal(got[0].header.name.toString(), 'snapshot/deep/dir/x');
    });

    it('reads a volume of many members fast (measured)', async function () {
      // 2,000 members of 64 KiB (a 125 MiB volume) in 64 KiB source chunks
      const data = randomBytes(65536);
      const one = Buffer.concat([encodeTarHeader(hdr({ size: 65536 })), data]);
      const count = 2000;
      async function* src(): AsyncGenerator<Buffer> {
        for (let i = 0; i < count; i++) {
          yield one.subarray(0, 512);
          yield one.subarray(512);
        }
        yield Buffer.alloc(1024);
      }
      const t0 = process.hrtime.bigint();
      let bytes = 0;
      let n = 0;
      for await (const e of readTar(src())) {
        for await (const c of e.body) bytes += c.length;
        n++;
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const mbps = bytes / 1048576 / (ms / 1000);
      console.log(`      readTar: ${n} members, ${(bytes / 1048576).toFixed(0)} MiB in ${ms.toFixed(0)} ms = ${mbps.toFixed(0)} MiB/s`);
      assert.equal(n, count);
      assert.equal(bytes, count * 65536);
      assert.ok(mbps > 150, `readTar is too slow: ${mbps.toFixed(0)} MiB/s`);

      // small members: headers per second
      const small = buildTar(Array.from({ length: 20000 }, (_, i) => ({ header: hdr({ name: Buffer.from(`snapshot/dir/file-${i}`) }), data: Buffer.from('hello') })));
      const t1 = process.hrtime.bigint();
      let m = 0;
      for await (const e of readTar(chunked(small, 65536))) {
        for await (const c of e.body) void c;
        m++;
      }
      const ms1 = Number(process.hrtime.bigint() - t1) / 1e6;
      console.log(`      readTar: ${m} small members in ${ms1.toFixed(0)} ms = ${Math.round(m / (ms1 / 1000))} members/s`);
      assert.equal(m, 20000);

      const t2 = process.hrtime.bigint();
      for (let i = 0; i < 20000; i++) encodeTarHeader(hdr({ name: Buffer.from(`snapshot/dir/file-${i}`), size: i }));
      const ms2 = Number(process.hrtime.bigint() - t2) / 1e6;
      console.log(`      encodeTarHeader: 20000 headers in ${ms2.toFixed(0)} ms = ${Math.round(20000 / (ms2 / 1000))} headers/s`);
    });
  });
});

/** Reads `source` with readTar and compares every member with Python's view of `file`. */
async function compareWithPython(file: string, source: AsyncIterable<Buffer>): Promise<number> {
  const py = pyList(file);
  const ours = await readAll(source);
  assert.equal(ours.length, py.length, `${file}: member count`);
  ours.forEach((o, i) => {
    const p = py[i];
    let name = o.header.name;
    // Python drops a directory's trailing '/'
    if (o.header.type === 'dir') while (name.length > 1 && name[name.length - 1] === 0x2f) name = name.subarray(0, -1);
    assert.equal(name.toString('hex'), p.name, `${file} #${i} name`);
    const flag = o.header.type === 'other' ? String.fromCharCode(o.header.typeflag!) : FLAG[o.header.type];
    assert.equal(flag, p.type === '\0' ? '0' : p.type, `#${i} type`);
    assert.equal(o.header.size, p.size);
    assert.equal(o.header.mode, p.mode);
    assert.equal(o.header.uid, p.uid);
    assert.equal(o.header.gid, p.gid);
    assert.equal(o.header.mtime, p.mtime);
    assert.equal(o.header.linkname.toString('hex'), p.linkname);
    assert.equal(o.header.uname, p.uname);
    assert.equal(o.header.gname, p.gname);
    assert.equal(createHash('sha1').update(o.data).digest('hex'), p.sha1, `#${i} data`);
  });
  return ours.length;
}
