// Types shared by every stage of the engine. Paths are bytes, as in duplicity: a file name on Linux is
// any byte string without '/' and NUL, and need not be valid UTF-8.

/**
 * A path inside a backup, as duplicity's "index": the tuple of its byte-string components, relative to
 * the backup root. The root itself is the empty tuple. Order is tuple order (see pathIndex.ts).
 */
export type PathIndex = readonly Buffer[];

/** File types duplicity stores (sockets are skipped by the scanner and never stored). */
export type EntryType = 'reg' | 'dir' | 'sym' | 'fifo' | 'chr' | 'blk';

/** What a tar header (volume, sigtar) says about a path: duplicity's ROPath metadata. */
export interface EntryMeta {
  readonly type: EntryType;
  /** Permission bits including setuid/setgid/sticky (stat.S_IMODE). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Owner and group names; '' when the id has no name. */
  readonly uname: string;
  readonly gname: string;
  /** Modification time in whole seconds (duplicity stores integers; negative times become 0). */
  readonly mtime: number;
  /** Symlink target, as bytes. */
  readonly linkname?: Buffer;
  readonly devmajor?: number;
  readonly devminor?: number;
}

/** Times in the engine are whole seconds since the epoch, UTC, as in duplicity's file names. */
export type EpochSeconds = number;
