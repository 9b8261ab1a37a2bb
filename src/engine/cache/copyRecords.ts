// Records of the cache's copies of remote metadata (plaintext manifests, gzip'd signature archives).
// A copy is trusted only as far as it can be checked cheaply: when Offsite writes one (a backup, after
// making the remote file; any command, after fetching it) it records the copy's size, for a manifest
// its SHA-256, and the remote file's size. Before a copy is used it must still match: a crash or a
// full disk while it was written, a damaged disk or an edit, and a remote file replaced since, all show
// as a mismatch, and the copy is fetched again instead of being believed (Repository).
//
// Why this and not more: comparing each copy with its remote file (duplicity's "Remote manifest does
// not match local one") costs a download and a decryption per set on every restore. A manifest is
// read whole anyway, so hashing it is free; a signature archive can be tens of MB and is read only in
// part by a backup, so its record holds the size (a stat), and damage inside it is caught while it is
// read by gzip's CRC-32 and the tar headers' checksums (sigtar.ts).
//
// The records live in a folder of their own (duplicity, sharing a cache folder, never sees them), one
// small JSON file per copy, written by rename: readers take no lock, and two of them recording
// different copies at once must not lose one another's records. A record lost in a crash only means
// the copy is checked the slow way once (Repository); a copy lost while its record was kept shows as a
// mismatch and is fetched again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ArchiveDir } from './archiveDir';

export const COPY_RECORDS = 'offsite-copies';

export interface CopyRecord {
  /** Bytes of the local copy. */
  readonly size: number;
  /** SHA-256 of the local copy (manifests). */
  readonly sha256?: string;
  /** Bytes of the remote file the copy was made from. */
  readonly remoteSize: number;
}

export class CopyRecords {
  private readonly dir: string;

  constructor(archive: ArchiveDir) {
    this.dir = archive.file(COPY_RECORDS);
  }

  private file(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  /** The record of the copy `name` (a cache file name); undefined when there is none or it is unreadable. */
  get(name: string): CopyRecord | undefined {
    try {
      const r = JSON.parse(fs.readFileSync(this.file(name), 'utf8')) as CopyRecord;
      if (!Number.isSafeInteger(r.size) || !Number.isSafeInteger(r.remoteSize) || (r.sha256 !== undefined && typeof r.sha256 !== 'string')) return undefined;
      return r;
    } catch {
      return undefined;
    }
  }

  set(name: string, record: CopyRecord): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file(name)}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
    fs.renameSync(tmp, this.file(name));
  }

  remove(name: string): void {
    fs.rmSync(this.file(name), { force: true });
  }

  /** The copies that have a record. */
  names(): string[] {
    try {
      return fs
        .readdirSync(this.dir)
        .filter((n) => n.endsWith('.json'))
        .map((n) => n.slice(0, -'.json'.length));
    } catch {
      return [];
    }
  }
}
