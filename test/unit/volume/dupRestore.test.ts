// End to end for the format code: a full set written only with our tar, member-name, manifest and
// naming code (no compression, no encryption) must be restored by real duplicity 0.8.22.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryMeta, PathIndex } from '../../../src/engine/types';
import { compareIndex, indexToBytes } from '../../../src/engine/pathIndex';
import { formatMemberName, metaToTarHeader } from '../../../src/engine/volume/difftar';
import { encodeTarHeader, tarPadding } from '../../../src/engine/volume/tar';
import { formatManifest, type VolumeInfo } from '../../../src/engine/manifest/manifest';
import { manifestName, volumeName } from '../../../src/engine/manifest/naming';
import { tempDir } from '../../helpers/tmp';

const T = 1704067200;
const MTIME = 1700000000;
const CHUNK = 65536;

interface Entry {
  index: PathIndex;
  meta: EntryMeta;
  data?: Buffer;
}

const b = (s: string): Buffer => Buffer.from(s);
const meta = (type: EntryMeta['type'], mode: number, over: Partial<EntryMeta> = {}): EntryMeta => ({ type, mode, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: MTIME, ...over });

describe('duplicity restores a set written with our format code', () => {
  it('restores names, modes, mtimes, symlinks and a file split across two volumes', () => {
    const big = randomBytes(200000);
    const entries: Entry[] = [
      { index: [], meta: meta('dir', 0o755) },
      { index: [b('a.txt')], meta: meta('reg', 0o644), data: b('hello\n') },
      { index: [b('a-b')], meta: meta('reg', 0o600, { mtime: MTIME + 5 }), data: b('dash') },
      { index: [b('a')], meta: meta('dir', 0o750) },
      { index: [b('a'), b('z.txt')], meta: meta('reg', 0o640), data: b('in a') },
      { index: [b('big.bin')], meta: meta('reg', 0o644), data: big },
      { index: [b('empty')], meta: meta('reg', 0o644), data: Buffer.alloc(0) },
      { index: [b('name with spaces.txt')], meta: meta('reg', 0o644), data: b('spaces') },
      { index: [b('ünïcode-ñame.txt')], meta: meta('reg', 0o644), data: b('utf8') },
      { index: [Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe])], meta: meta('reg', 0o644), data: b('raw bytes') },
      { index: [b('L'.repeat(150))], meta: meta('reg', 0o644), data: b('long') },
      { index: [b('link')], meta: meta('sym', 0o777, { linkname: b('a.txt') }) },
      { index: [b('exec.sh')], meta: meta('reg', 0o4755), data: b('#!/bin/sh\n') },
    ].sort((x, y) => compareIndex(x.index, y.index));

    // Members in index order; big.bin in 64 KiB multivol chunks; volume 2 starts at its 3rd chunk.
    const vault = tempDir('offsite-dupvault-');
    const volumes: Buffer[][] = [[], []];
    const starts: { index: PathIndex; block?: number }[] = [];
    const ends: { index: PathIndex; block?: number }[] = [];
    let vol = 0;
    const add = (index: PathIndex, block: number | undefined, parts: Buffer[]) => {
      if (!starts[vol]) starts[vol] = { index, block };
      ends[vol] = { index, block };
      volumes[vol].push(...parts);
    };
    for (const e of entries) {
      const isDir = e.meta.type === 'dir';
      if (e.data && e.data.length >= CHUNK) {
        const n = Math.floor(e.data.length / CHUNK) + 1;
        for (let k = 1; k <= n; k++) {
          if (k === 3) vol = 1;
          const chunk = e.data.subarray((k - 1) * CHUNK, k * CHUNK);
          const name = formatMemberName({ kind: 'snapshot', index: e.index, multivol: k }, false, 'volume');
          add(e.index, k < n ? k : undefined, [encodeTarHeader(metaToTarHeader(name, e.meta, chunk.length)), chunk, tarPadding(chunk.length)]);
        }
        continue;
      }
      const data = e.data ?? Buffer.alloc(0);
      const name = formatMemberName({ kind: 'snapshot', index: e.index }, isDir, 'volume');
      add(e.index, undefined, [encodeTarHeader(metaToTarHeader(name, e.meta, data.length)), data, tarPadding(data.length)]);
    }
    const infos: VolumeInfo[] = volumes.map((parts, i) => {
      const bytes = Buffer.concat(parts); // raw volumes: no footer, like duplicity's --no-compression
      fs.writeFileSync(path.join(vault, volumeName('full', T, undefined, i + 1, '')), bytes, { mode: 0o600 });
      const v: VolumeInfo = { volumeNumber: i + 1, startIndex: starts[i].index, endIndex: ends[i].index, hashes: { SHA1: createHash('sha1').update(bytes).digest('hex') } };
      if (starts[i].block !== undefined) v.startBlock = starts[i].block;
      if (ends[i].block !== undefined) v.endBlock = ends[i].block;
      return v;
    });
    assert.equal(infos[0].endBlock, 2);
    assert.equal(infos[1].startBlock, 3);
    const filelist = entries.filter((e) => e.meta.type === 'reg').map((e) => ({ action: 'new' as const, index: e.index }));
    fs.writeFileSync(path.join(vault, manifestName('full', T, undefined, false)), formatManifest({ hostname: 'offsite-test', volumes: infos, filelist }), { mode: 0o600 });

    const home = tempDir('offsite-duphome-');
    const out = path.join(tempDir('offsite-dupout-'), 'restored');
    execFileSync(
      'duplicity',
      ['restore', '--no-encryption', '--archive-dir', path.join(home, 'cache'), '--name', 't', '--do-not-restore-ownership', `file://${vault}`, out],
      { env: { ...process.env, HOME: home, PASSPHRASE: '' }, stdio: 'pipe' },
    );

    for (const e of entries) {
      const p = path.join(out, ...e.index.map((c) => c.toString('latin1')));
      const full = Buffer.from(e.index.length ? Buffer.concat([Buffer.from(out + '/'), indexToBytes(e.index)]) : Buffer.from(out));
      const st = fs.lstatSync(full);
      const label = p;
      if (e.meta.type === 'sym') {
        assert.ok(st.isSymbolicLink(), label);
        assert.equal(fs.readlinkSync(full).toString(), 'a.txt');
        continue;
      }
      assert.equal(st.mode & 0o7777, e.meta.mode, `${label} mode`);
      assert.equal(Math.floor(st.mtimeMs / 1000), e.meta.mtime, `${label} mtime`);
      if (e.meta.type === 'reg') assert.deepEqual(fs.readFileSync(full), e.data, `${label} data`);
      else assert.ok(st.isDirectory(), label);
    }
    const top = fs.readdirSync(out, { encoding: 'buffer' });
    assert.equal(top.length, entries.filter((e) => e.index.length === 1).length);

    // A single path: duplicity picks volumes with our StartingPath/EndingPath (both for big.bin).
    const one = path.join(tempDir('offsite-dupout-'), 'big');
    execFileSync(
      'duplicity',
      ['restore', '--no-encryption', '--archive-dir', path.join(home, 'cache'), '--name', 't', '--do-not-restore-ownership', '--file-to-restore', 'big.bin', `file://${vault}`, one],
      { env: { ...process.env, HOME: home, PASSPHRASE: '' }, stdio: 'pipe' },
    );
    assert.deepEqual(fs.readFileSync(one), big);
  });
});
