// The checkpoint of a backup in progress, kept in the archive dir: which set it writes, every remote
// file it has uploaded, and the last point it can be resumed from (the end of the last uploaded
// volume that ends on a file boundary, with the lengths of the partial signature archive and file
// list at that point). The next run resumes from there, or, when it cannot (another source, other
// keys, the chain moved on), removes what the interrupted run left. cleanup keeps what a resumable
// backup can still use, and status says which it is (resumeBlocker decides for all three).
import type { ArchiveDir } from '../cache/archiveDir';
import type { Collection } from '../chain/collection';
import type { VolumeInfo } from '../manifest/manifest';
import { parseName, volumeName } from '../manifest/naming';
import type { PathIndex } from '../types';
import type { BackupStats } from './stats';
import * as fs from 'node:fs';

export const CHECKPOINT = 'offsite-checkpoint.json';
export const PARTIAL_SIGTAR = 'offsite-partial.sigtar';
export const PARTIAL_FILELIST = 'offsite-partial.filelist';

export interface ResumePoint {
  readonly volumes: VolumeInfo[];
  /** Remote sizes of those volumes, to check they are still there and whole. */
  readonly sizes: number[];
  readonly index: PathIndex;
  readonly sigtarBytes: number;
  readonly filelistBytes: number;
  readonly stats: BackupStats;
}

export interface Checkpoint {
  readonly type: 'full' | 'inc';
  readonly time: number;
  readonly startTime?: number;
  readonly source: string;
  /** Fingerprints of the recipients: a resumed set must be encrypted to the same keys. */
  readonly recipients: string[];
  readonly uploaded: string[];
  readonly resume?: ResumePoint;
}

// PathIndex components are bytes: stored as base64 in JSON.
const b64 = (i: PathIndex) => i.map((c) => c.toString('base64'));
const unb64 = (a: string[]): PathIndex => a.map((c) => Buffer.from(c, 'base64'));

function encodeVolume(v: VolumeInfo) {
  return { ...v, startIndex: b64(v.startIndex), endIndex: b64(v.endIndex) };
}

function decodeVolume(v: ReturnType<typeof encodeVolume>): VolumeInfo {
  return { ...v, startIndex: unb64(v.startIndex), endIndex: unb64(v.endIndex) };
}

export function readCheckpoint(archive: ArchiveDir): Checkpoint | undefined {
  try {
    const raw = JSON.parse(fs.readFileSync(archive.file(CHECKPOINT), 'utf8'));
    if (raw.version !== 1) return undefined;
    const resume = raw.resume ? { ...raw.resume, index: unb64(raw.resume.index), volumes: raw.resume.volumes.map(decodeVolume) } : undefined;
    return { type: raw.type, time: raw.time, startTime: raw.startTime, source: raw.source, recipients: raw.recipients, uploaded: raw.uploaded, resume };
  } catch {
    return undefined;
  }
}

export function writeCheckpoint(archive: ArchiveDir, c: Checkpoint): void {
  const resume = c.resume ? { ...c.resume, index: b64(c.resume.index), volumes: c.resume.volumes.map(encodeVolume) } : undefined;
  archive.writeAtomic(CHECKPOINT, JSON.stringify({ version: 1, ...c, resume }));
}

export function clearCheckpoint(archive: ArchiveDir): void {
  archive.remove(CHECKPOINT);
  archive.remove(PARTIAL_SIGTAR);
  archive.remove(PARTIAL_FILELIST);
}

/**
 * Why the interrupted backup of `c` cannot be resumed, whatever folder and keys the next backup has;
 * undefined when it can be (by a backup of the same folder to the same keys). `remote`: the remote's
 * names and sizes now.
 */
export function resumeBlocker(c: Checkpoint, collection: Collection, remote: ReadonlyMap<string, number>, archive: ArchiveDir): string | undefined {
  const chain = collection.chains.at(-1);
  if (c.type === 'inc' && chain?.endTime !== c.startTime) return 'the backup chain changed since';
  if (c.type === 'full' && chain && chain.endTime > c.time) return 'newer backups exist';
  const r = c.resume;
  if (!r) return noResumePoint(c, remote);
  const sigtar = fs.statSync(archive.file(PARTIAL_SIGTAR), { throwIfNoEntry: false });
  if (!sigtar || sigtar.size < r.sigtarBytes) return 'its local state is missing';
  if (r.volumes.some((v, i) => remote.get(volumeName(c.type, c.time, c.startTime, v.volumeNumber, 'gpg')) !== r.sizes[i])) return 'some of its volumes are missing on the remote';
  return undefined;
}

/**
 * Why a checkpoint has no resume point: a backup resumes only after a volume that ends between two
 * files, and only after volumes uploaded without a gap from volume 1.
 */
function noResumePoint(c: Checkpoint, remote: ReadonlyMap<string, number>): string {
  const uploaded = (n: number) => remote.has(volumeName(c.type, c.time, c.startTime, n, 'gpg'));
  let run = 0;
  while (uploaded(run + 1)) run++;
  const volumes = c.uploaded.filter((n) => remote.has(n) && parseName(n)?.kind === 'volume').length;
  if (volumes === 0) return 'it had not uploaded a whole volume';
  if (run === 0) return `its volume 1 was not uploaded whole (${volumes} later volume(s) were)`;
  return `${run === 1 ? 'its volume 1 ends' : `each of its volumes 1–${run} ends`} inside a file, and a backup resumes only after a volume that ends between two files`;
}
