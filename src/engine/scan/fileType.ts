// A path's entry type from its lstat mode, as the scan (scanner.ts) and the no-change probe
// (noChangeProbe.ts) both read it.
import type { EntryType } from '../types';

const S_IFMT = 0o170000;

/** undefined for a socket (duplicity skips them too) or an unknown type. */
export function typeOf(mode: number): EntryType | undefined {
  switch (mode & S_IFMT) {
    case 0o100000:
      return 'reg';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'sym';
    case 0o010000:
      return 'fifo';
    case 0o020000:
      return 'chr';
    case 0o060000:
      return 'blk';
    default:
      return undefined;
  }
}
