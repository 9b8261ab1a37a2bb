// Hand-made backup sets for hostile-input tests: arbitrary tar members (unsafe names, symlink escapes,
// device files, lying sizes) packed, encrypted and described by a manifest whose hashes are right,
// exactly as an attacker holding the public key could make them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createEncryptStream } from '../../src/engine/crypto/encrypt';
import { loadPublicKeys } from '../../src/engine/crypto/keys';
import { formatManifest } from '../../src/engine/manifest/manifest';
import { manifestName, signatureName, volumeName } from '../../src/engine/manifest/naming';
import { encodeTarHeader, tarArchiveEnd, tarPadding, type TarHeader } from '../../src/engine/volume/tar';
import { RSA_PUB } from './gpg';

export interface ForgedMember {
  name: string | Buffer;
  type?: TarHeader['type'];
  data?: Buffer | string;
  linkname?: string;
  mode?: number;
  /** Size to claim in the header when it should lie. */
  size?: number;
}

async function encryptTo(file: string, data: Buffer | AsyncIterable<Buffer>, level?: number): Promise<string> {
  const [key] = await loadPublicKeys([RSA_PUB]);
  const source = Buffer.isBuffer(data) ? Readable.from([data]) : Readable.from(data);
  await pipeline(source, createEncryptStream({ recipients: [key], ...(level === undefined ? {} : { deflate: { level } }) }), fs.createWriteStream(file));
  return createHash('sha1').update(fs.readFileSync(file)).digest('hex');
}

/** One-volume set of hand-made members (encrypted to the RSA fixture key): a full set, or an
 *  incremental one when `startTime` (the end of the set it continues) is given. */
export async function forgeSet(vault: string, time: number, members: ForgedMember[], startTime?: number): Promise<void> {
  fs.mkdirSync(vault, { recursive: true });
  const type = startTime === undefined ? 'full' : 'inc';
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    const h: TarHeader = {
      name: Buffer.from(m.name),
      type: m.type ?? 'file',
      mode: m.mode ?? 0o644,
      uid: 0,
      gid: 0,
      size: m.size ?? data.length,
      mtime: time,
      linkname: Buffer.from(m.linkname ?? ''),
      uname: 'root',
      gname: 'root',
      devmajor: 0,
      devminor: 0,
    };
    parts.push(encodeTarHeader(h), data);
    if (data.length % 512) parts.push(tarPadding(data.length));
  }
  const body = Buffer.concat(parts);
  const tar = Buffer.concat([body, tarArchiveEnd(body.length)]);
  const sha1 = await encryptTo(path.join(vault, volumeName(type, time, startTime, 1, 'gpg')), tar);
  const manifest = formatManifest({ volumes: [{ volumeNumber: 1, startIndex: [], endIndex: [Buffer.from('zzz')], hashes: { SHA1: sha1 } }], filelist: [] });
  await encryptTo(path.join(vault, manifestName(type, time, startTime, true)), manifest);
  await encryptTo(path.join(vault, signatureName(type, time, startTime, 'gpg')), tarArchiveEnd(0));
}

export function forgeFullSet(vault: string, time: number, members: ForgedMember[]): Promise<void> {
  return forgeSet(vault, time, members);
}

/**
 * Replaces the manifest of the set of `time` with `text`, encrypted to the public key (all an attacker
 * needs for an unsigned backup). `level`: zlib level of the encryption's compression (9 makes a small
 * file of a huge, repetitive text).
 */
export async function forgeManifest(vault: string, time: number, text: Buffer | AsyncIterable<Buffer>, opts: { startTime?: number; level?: number } = {}): Promise<void> {
  const type = opts.startTime === undefined ? 'full' : 'inc';
  await encryptTo(path.join(vault, manifestName(type, time, opts.startTime, true)), text, opts.level);
}
