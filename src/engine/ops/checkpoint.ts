// The checkpoint of a backup in progress, kept in the archive dir: which set it writes, every remote
// file it has uploaded, and the last point it can be resumed from (the end of the last uploaded
// volume that ends on a file boundary, with the lengths of the partial signature archive and file
// list at that point). The next run resumes from there, or, when it cannot (another source, other
// keys, the chain moved on), removes what the interrupted run left. cleanup keeps what a resumable
// backup can still use.
import type { ArchiveDir } from '../cache/archiveDir';
import type { VolumeInfo } from '../manifest/manifest';
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
