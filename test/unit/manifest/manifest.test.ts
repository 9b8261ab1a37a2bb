import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffsiteError } from '../../../src/engine/errors';
import { indexFromBytes } from '../../../src/engine/pathIndex';
import {
  formatManifest,
  parseManifest,
  quote,
  unquote,
  volumeMayContain,
  type Manifest,
  type VolumeInfo,
} from '../../../src/engine/manifest/manifest';
import { decryptedSample01, runPython, vaultDir } from '../../helpers/dupSamples';

const idx = (s: string) => indexFromBytes(s);

function fixtureManifests(): { name: string; text: Buffer }[] {
  const out: { name: string; text: Buffer }[] = [];
  for (const n of fs.readdirSync(decryptedSample01()).filter((x) => x.endsWith('.manifest'))) {
    out.push({ name: `01/${n}`, text: fs.readFileSync(path.join(decryptedSample01(), n)) });
  }
  for (const s of ['02-dup-plain-gz', '03-dup-nocomp']) {
    for (const n of fs.readdirSync(vaultDir(s)).filter((x) => x.endsWith('.manifest'))) {
      out.push({ name: `${s}/${n}`, text: fs.readFileSync(path.join(vaultDir(s), n)) });
    }
  }
  return out;
}

// duplicity's own parser, for comparison (its Manifest.from_string / VolumeInfo).
const PY_PARSE = `
import gettext, json, sys
gettext.install('duplicity')
from duplicity import log, config, manifest
log.setup(); log.setverbosity(log.ERROR)
config.file_changed = 'x'
res = []
for t in json.load(sys.stdin):
    try:
        m = manifest.Manifest().from_string(bytes.fromhex(t))
        vols = [{'n': n, 's': [c.hex() for c in v.start_index], 'sb': v.start_block, 'e': [c.hex() for c in v.end_index],
                 'eb': v.end_block, 'h': v.hashes} for n, v in m.volume_info_dict.items()]
        res.append({'ok': True, 'host': m.hostname, 'dir': m.local_dirname.hex() if m.local_dirname is not None else None,
                    'vols': vols, 'files': [[a.decode('latin1'), p.decode('latin1')] for p, a in [(f[1], f[0]) for f in m.files_changed]]})
    except Exception as e:
        res.append({'ok': False, 'err': type(e).__name__})
print(json.dumps(res))
`;

interface PyManifest {
  ok: boolean;
  err?: string;
  host?: string | null;
  dir?: string | null;
  vols?: { n: number; s: string[]; sb: number | null; e: string[]; eb: number | null; h: Record<string, string> }[];
  files?: [string, string][];
}

function compareWithDuplicity(texts: Buffer[]): void {
  const py = runPython<PyManifest[]>(PY_PARSE, texts.map((t) => t.toString('hex')));
  texts.forEach((t, i) => {
    const p = py[i];
    let ours: Manifest | undefined;
    let err: unknown;
    try {
      ours = parseManifest(t);
    } catch (e) {
      err = e;
    }
    const label = JSON.stringify(t.toString('latin1'));
    if (!p.ok) {
      assert.ok(OffsiteError.is(err, 'format'), `duplicity fails (${p.err}) so must we: ${label}`);
      return;
    }
    assert.ok(ours, `duplicity reads it so must we: ${label} (${String(err)})`);
    assert.equal(ours.hostname ?? null, p.host, label);
    assert.equal(ours.localdir?.toString('hex') ?? null, p.dir, label);
    assert.deepEqual(
      ours.volumes.map((v) => ({ n: v.volumeNumber, s: v.startIndex.map((c) => c.toString('hex')), sb: v.startBlock ?? null, e: v.endIndex.map((c) => c.toString('hex')), eb: v.endBlock ?? null, h: v.hashes })),
      p.vols,
      label,
    );
  });
}

describe('manifest', () => {
  it('parses every fixture manifest and writes it back byte for byte', () => {
    const all = fixtureManifests();
    assert.ok(all.length >= 6);
    for (const { name, text } of all) {
      const m = parseManifest(text);
      assert.ok(m.volumes.length >= 1, name);
      assert.ok(m.volumes.every((v) => /^[0-9a-f]{40}$/.test(v.hashes.SHA1)), name);
      assert.deepEqual(formatManifest(m), text, name);
    }
    compareWithDuplicity(all.map((x) => x.text));
  });

  it('reads fixture 01 full manifest fields', () => {
    const text = fs.readFileSync(path.join(decryptedSample01(), 'duplicity-full.20240101T000000Z.manifest'));
    const m = parseManifest(text);
    assert.equal(m.hostname, 'vm');
    assert.equal(m.localdir?.toString(), '/tmp/dup-research/fixture-work/src01');
    assert.deepEqual(m.volumes[0], {
      volumeNumber: 1,
      startIndex: [],
      endIndex: idx('big/random-1100000.bin'),
      endBlock: 16,
      hashes: { SHA1: '13ad3fd5a1492219159e3ccc85029a8cecf37486' },
    });
    assert.deepEqual(m.volumes[1].startIndex, idx('big/random-1100000.bin'));
    assert.equal(m.volumes[1].startBlock, undefined);
    assert.deepEqual(m.volumes[1].endIndex, idx('ünïcode-ñame.txt'));
    assert.equal(m.filelist?.length, 13);
    assert.deepEqual(m.filelist?.find((f) => f.index[0].toString().startsWith('name'))?.index, idx('name with spaces.txt'));
    const inc = parseManifest(fs.readFileSync(path.join(decryptedSample01(), 'duplicity-inc.20240101T000000Z.to.20240102T000000Z.manifest')));
    assert.deepEqual(
      inc.filelist?.map((f) => `${f.action} ${f.index.join('/')}`),
      ['changed README.txt', 'new added.txt', 'changed bin/blob.bin', 'deleted notes/deleted-later.txt', 'changed text-100k.txt'],
    );
  });

  it('writes the exact layout: quoting, two trailing spaces without a block, raw bytes', () => {
    const m: Manifest = {
      hostname: 'host',
      localdir: Buffer.from('/home/u/my dir'),
      volumes: [
        { volumeNumber: 1, startIndex: [], endIndex: idx('a b/c'), endBlock: 3, hashes: { SHA1: 'ab'.repeat(20) } },
        { volumeNumber: 2, startIndex: idx('a b/c'), endIndex: [Buffer.from([0x62, 0xff, 0x27])], hashes: { SHA1: 'cd'.repeat(20), MD5: 'ef'.repeat(16) } },
      ],
      filelist: [
        { action: 'new', index: idx("with space's.txt") },
        { action: 'changed', index: [Buffer.from('x\\y')] },
        { action: 'deleted', index: idx('gone') },
      ],
    };
    const want = Buffer.concat([
      Buffer.from(
        'Hostname host\nLocaldir "/home/u/my\\x20dir"\nVolume 1:\n    StartingPath   .  \n    EndingPath     "a\\x20b/c" 3\n' +
          `    Hash SHA1 ${'ab'.repeat(20)}\nVolume 2:\n    StartingPath   "a\\x20b/c"  \n    EndingPath     "b`,
        'latin1',
      ),
      Buffer.from([0xff]),
      Buffer.from(
        `\\x27"  \n    Hash SHA1 ${'cd'.repeat(20)}\n    Hash MD5 ${'ef'.repeat(16)}\nFilelist 3\n` +
          '    new      "with\\x20space\\x27s.txt"\n    changed  "x\\x5cy"\n    deleted  gone\n',
        'latin1',
      ),
    ]);
    const text = formatManifest(m);
    assert.deepEqual(text, want);
    assert.deepEqual(parseManifest(text), m);
    compareWithDuplicity([text]);
    assert.equal(formatManifest({ volumes: [], filelist: [] }).toString(), 'Filelist 0\n');
    assert.equal(formatManifest({ volumes: [] }).length, 0);
  });

  it('quotes and unquotes like manifest.py', () => {
    const cases: [Buffer, string][] = [
      [Buffer.from('plain'), 'plain'],
      [Buffer.from('name with spaces.txt'), '"name\\x20with\\x20spaces.txt"'],
      [Buffer.from("with space's.txt"), '"with\\x20space\\x27s.txt"'],
      [Buffer.from('tab\there"q\\'), '"tab\\x09here\\x22q\\x5c"'],
      [Buffer.from([0xff, 0xfe]), '\xff\xfe'],
      [Buffer.from('a\u00a0b'), 'a\u00c2\u00a0b'], // NBSP bytes are not whitespace to Python's bytes regex
    ];
    for (const [raw, q] of cases) {
      assert.equal(quote(raw).toString('latin1'), q);
      assert.deepEqual(unquote(Buffer.from(q, 'latin1')), raw);
    }
    assert.throws(() => unquote(Buffer.from('"abc')), (e: unknown) => OffsiteError.is(e, 'format'));
    assert.throws(() => unquote(Buffer.from('"a\\y20"')), (e: unknown) => OffsiteError.is(e, 'format'));
  });

  it('is exactly as tolerant as duplicity (compared with its parser)', () => {
    const vol = (n: number, extra = ''): string => `Volume ${n}:\n    StartingPath   .  \n    EndingPath     a  \n    Hash SHA1 ${'0'.repeat(40)}\n${extra}`;
    const texts = [
      // E4: extra lines at the top, inside a volume and at the end
      `X-Writer offsite\n${vol(1, '    Comment whatever\n')}Trailer foo\n`,
      // E5: only volume blocks, StartingPath without trailing spaces
      'Volume 1:\n    StartingPath .\n    EndingPath z\n    Hash SHA1 abc\n',
      // E6: EndingPath missing
      'Volume 1:\n    StartingPath   .  \n    Hash SHA1 abc\n',
      // case-insensitive keywords, CRLF line ends
      'hostname h\r\nVOLUME 1:\r\n    startingpath a\r\n    ENDINGPATH b 7\r\n    hash md5 ff\r\n',
      // volume numbers going down after a restart: higher ones are dropped
      vol(1) + vol(2) + vol(3) + vol(2),
      // ... and a gap makes duplicity fail
      vol(1) + vol(5) + vol(2),
      // repeated volume keeps its first place
      vol(2) + vol(1) + vol(2),
      // a blank-only line inside a volume crashes duplicity
      `${vol(1)}   \n`,
      // empty Hostname value
      'Hostname \nVolume 1:\n    StartingPath a\n    EndingPath b\n',
      // bad block number, bad quoting, bad escape
      'Volume 1:\n    StartingPath a x\n    EndingPath b\n',
      'Volume 1:\n    StartingPath "a\n    EndingPath b\n',
      'Volume 1:\n    StartingPath "a\\q00"\n    EndingPath b\n',
      // no volumes at all, and Volumes without a number
      'Hostname h\nFilelist 0\n',
      'Volume x:\n    StartingPath a\n    EndingPath b\n',
      // the to_string() layout: Filelist before the volumes
      `Hostname h\nFilelist 1\n    new      a\n${vol(1)}`,
      // a field named "Volumes" is not a volume
      `Volumes are here\n${vol(1)}`,
      // Hostname whose value is on the next line (\\s matches the newline)
      'Hostname\nmyhost\nVolume 1:\n    StartingPath a\n    EndingPath b\n',
      // Hash line without value
      'Volume 1:\n    StartingPath a\n    EndingPath b\n    Hash SHA1\n',
      // no final newline
      'Volume 1:\n    StartingPath a\n    EndingPath b',
    ].map((s) => Buffer.from(s, 'latin1'));
    compareWithDuplicity(texts);
    const down = parseManifest(texts[4]);
    assert.deepEqual(down.volumes.map((v) => v.volumeNumber), [1, 2]);
    assert.deepEqual(parseManifest(texts[6]).volumes.map((v) => v.volumeNumber), [2, 1]);
    assert.equal(parseManifest(texts[3]).volumes[0].endBlock, 7);
    assert.deepEqual(parseManifest(texts[3]).volumes[0].hashes, { md5: 'ff' });
    assert.deepEqual(parseManifest(texts[14]).filelist, [{ action: 'new', index: [Buffer.from('a')] }]);
  });

  it('throws format errors with a hint', () => {
    try {
      parseManifest(Buffer.from('Volume 1:\n    StartingPath a\n'));
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(OffsiteError.is(e, 'format'));
      assert.match(e.message, /EndingPath/);
      assert.ok(e.hint);
    }
  });

  it('parses a big manifest quickly', () => {
    const files = Array.from({ length: 100000 }, (_, i) => ({ action: 'new' as const, index: idx(`dir${i % 100}/file ${i}.txt`) }));
    const volumes: VolumeInfo[] = Array.from({ length: 500 }, (_, i) => ({ volumeNumber: i + 1, startIndex: idx(`a/${i}`), endIndex: idx(`a/${i + 1}`), hashes: { SHA1: 'a'.repeat(40) } }));
    const text = formatManifest({ hostname: 'h', volumes, filelist: files });
    const t0 = Date.now();
    const m = parseManifest(text);
    const ms = Date.now() - t0;
    console.log(`      parseManifest: ${(text.length / 1048576).toFixed(1)} MiB, 500 volumes + 100,000 files in ${ms} ms`);
    assert.equal(m.volumes.length, 500);
    assert.equal(m.filelist?.length, 100000);
    assert.deepEqual(formatManifest(m), text);
    assert.ok(ms < 5000);
  });

  describe('volumeMayContain (VolumeInfo.contains)', () => {
    const v: VolumeInfo = { volumeNumber: 2, startIndex: idx('big/random.bin'), endIndex: idx('notes/todo.md'), hashes: {} };
    const cases: [string, boolean][] = [
      ['', true],
      ['big', true],
      ['big/random.bin', true],
      ['big/a', false],
      ['a-b', false],
      ['bin/blob.bin', true],
      ['notes', true],
      ['notes/todo.md', true],
      ['notes/zzz', false],
      ['zzz', false],
    ];
    for (const [p, want] of cases) {
      it(`${p || '(root)'} → ${want}`, () => assert.equal(volumeMayContain(v, p ? idx(p) : []), want));
    }
  });
});
