// Whole-buffer synchronous reads and writes. fs.readSync/writeSync may move fewer bytes than asked;
// these loop until done. The engine uses synchronous I/O where the threadpool is busy with compression
// and an async call would queue behind it (volumes, signature files, cache files, restore spools).
import * as fs from 'node:fs';

/** Writes all of `b` at `position`, or at the file's current offset when it is left out. */
export function writeAllSync(fd: number, b: Buffer, position?: number): void {
  for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off, b.length - off, position === undefined ? null : position + off);
}

/** Reads up to buf.length bytes at `position`; returns how many (fewer only at the end of the file). */
export function readFullySync(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = fs.readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
