// Path indexes: duplicity orders paths as tuples of byte strings (depth-first walk, names sorted
// bytewise). 'a/z.txt' sorts before 'a-b' although '/' (0x2f) > '-' (0x2d), so never compare the
// joined strings. FORMAT.md §6.4.
import type { PathIndex } from './types';
import { OffsiteError } from './errors';

const SLASH = 0x2f;

export const ROOT: PathIndex = [];

/** Tuple order of two indexes: <0, 0, >0. */
export function compareIndex(a: PathIndex, b: PathIndex): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = Buffer.compare(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/**
 * compareIndex order of two paths held as their components joined by '/' (a[aFrom, aEnd) and
 * b[bFrom, bEnd)), without splitting them: components compare bytewise and a shorter one first, which
 * is bytewise order with '/' below every other byte (names hold neither '/' nor NUL).
 */
export function compareJoinedPaths(a: Uint8Array, aFrom: number, aEnd: number, b: Uint8Array, bFrom: number, bEnd: number): number {
  const aLen = aEnd - aFrom;
  const bLen = bEnd - bFrom;
  const n = aLen < bLen ? aLen : bLen;
  for (let i = 0; i < n; i++) {
    const x = a[aFrom + i];
    const y = b[bFrom + i];
    if (x !== y) return (x === SLASH ? -1 : x) - (y === SLASH ? -1 : y);
  }
  return aLen - bLen;
}

export function indexEquals(a: PathIndex, b: PathIndex): boolean {
  return compareIndex(a, b) === 0;
}

/** True when `prefix` is `index` or one of its ancestors. */
export function isPrefixOf(prefix: PathIndex, index: PathIndex): boolean {
  if (prefix.length > index.length) return false;
  for (let i = 0; i < prefix.length; i++) if (!prefix[i].equals(index[i])) return false;
  return true;
}

/** Components joined by '/', as bytes; the root is the empty buffer. */
export function indexToBytes(index: PathIndex): Buffer {
  if (index.length === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  index.forEach((c, i) => {
    if (i > 0) parts.push(Buffer.from([SLASH]));
    parts.push(c);
  });
  return Buffer.concat(parts);
}

/**
 * Splits a relative path (bytes or string) into an index. Empty and '.' components are dropped, so
 * '', '.', './' and '/' all give the root. '..' components are refused: they are never valid inside a
 * backup, and a reader that met one must not write outside its target.
 */
export function indexFromBytes(path: Buffer | string): PathIndex {
  const buf = typeof path === 'string' ? Buffer.from(path, 'utf8') : path;
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === SLASH) {
      const c = buf.subarray(start, i);
      start = i + 1;
      if (c.length === 0 || (c.length === 1 && c[0] === 0x2e)) continue;
      if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) {
        throw new OffsiteError('unsafePath', `Refusing path with a '..' component: ${JSON.stringify(buf.toString('utf8'))}`);
      }
      if (c.includes(0)) throw new OffsiteError('unsafePath', 'Refusing path with a NUL byte');
      out.push(Buffer.from(c));
    }
  }
  return out;
}

/** For messages and manifests of humans: components joined by '/', invalid UTF-8 replaced; root is '.'. */
export function indexToString(index: PathIndex): string {
  return index.length === 0 ? '.' : indexToBytes(index).toString('utf8');
}

export function parentIndex(index: PathIndex): PathIndex {
  return index.slice(0, -1);
}
