// Member names and metadata of duplicity's difftar volumes and sigtars (FORMAT.md §6.2, §6.3, §8):
// the writer side mirrors diffdir.py (DeltaTarBlockIter / SigTarBlockIter, path.py get_tarinfo()),
// the reader side patchdir.py get_index_from_tarinfo() and path.py ROPath.init_from_tarinfo().
import type { EntryMeta, EntryType, PathIndex } from '../types';
import { OffsiteError } from '../errors';
import { indexToBytes } from '../pathIndex';
import type { TarHeader, TarType } from './tar';

export type MemberKind = 'snapshot' | 'diff' | 'deleted' | 'signature';

export interface MemberName {
  kind: MemberKind;
  index: PathIndex;
  /** Chunk k ≥ 1 of a `multivol_snapshot/…/k` or `multivol_diff/…/k` member. */
  multivol?: number;
}

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * 'snapshot/a/b', 'diff/…', 'deleted/…', 'signature/…', 'multivol_snapshot/a/b/3'; directory names end
 * with '/'; the root is 'snapshot/./' in volumes and 'snapshot/' in sigtars (FORMAT §6.3, §8).
 */
export function formatMemberName(m: MemberName, isDir: boolean, where: 'volume' | 'sigtar'): Buffer {
  if (m.multivol !== undefined) {
    if (m.kind !== 'snapshot' && m.kind !== 'diff') {
      throw new OffsiteError('internal', `Only snapshot and diff members can be split into chunks, not ${m.kind}`);
    }
    if (m.index.length === 0) throw new OffsiteError('internal', 'The root cannot be a multivol member');
    return Buffer.concat([Buffer.from(`multivol_${m.kind}/`), indexToBytes(m.index), Buffer.from(`/${m.multivol}`)]);
  }
  if (m.index.length === 0) {
    // Volumes: get_tarinfo() names the root './' (a directory) or '.', and add_prefix() turns '.' into
    // '<kind>/' but './' into '<kind>/./'. Sigtars join the empty index: '<kind>/'.
    return Buffer.from(where === 'volume' && isDir ? `${m.kind}/./` : `${m.kind}/`);
  }
  const parts = [Buffer.from(`${m.kind}/`), indexToBytes(m.index)];
  if (isDir) parts.push(Buffer.from('/'));
  return Buffer.concat(parts);
}

const PREFIXES: { text: Buffer; kind: MemberKind; multivol: boolean }[] = [
  { text: Buffer.from('snapshot/'), kind: 'snapshot', multivol: false },
  { text: Buffer.from('diff/'), kind: 'diff', multivol: false },
  { text: Buffer.from('deleted/'), kind: 'deleted', multivol: false },
  { text: Buffer.from('signature/'), kind: 'signature', multivol: false },
  { text: Buffer.from('multivol_diff/'), kind: 'diff', multivol: true },
  { text: Buffer.from('multivol_snapshot/'), kind: 'snapshot', multivol: true },
];

/**
 * Inverse of formatMemberName; maps all root spellings ('snapshot/./', 'snapshot/.', 'snapshot/',
 * a bare 'snapshot' directory) to []; throws OffsiteError('unsafePath') for '..' components, a path
 * starting with '/' or a NUL byte, OffsiteError('format') for an unknown prefix or an empty or '.'
 * component inside the path.
 */
export function parseMemberName(name: Buffer): MemberName {
  // Python's tarfile strips a directory's trailing '/', and duplicity adds it back; so a directory
  // named just 'snapshot' is the root too.
  if (name.equals(SNAPSHOT_WORD)) return { kind: 'snapshot', index: [] };
  const p = PREFIXES.find((x) => name.length >= x.text.length && name.subarray(0, x.text.length).equals(x.text));
  if (!p) throw new OffsiteError('format', `Unrecognized member in a duplicity archive: ${show(name)}`);
  let rest = name.subarray(p.text.length);
  let multivol: number | undefined;
  if (p.multivol) {
    const slash = rest.lastIndexOf(SLASH);
    const num = slash < 0 ? '' : rest.toString('latin1', slash + 1);
    if (slash <= 0 || !/^[0-9]+$/.test(num)) {
      throw new OffsiteError('format', `Unrecognized multivol member in a duplicity archive: ${show(name)}`);
    }
    multivol = Number(num);
    rest = rest.subarray(0, slash);
  } else if (rest.length && rest[rest.length - 1] === SLASH) {
    rest = rest.subarray(0, rest.length - 1);
  }
  const index = rest.length === 0 || (rest.length === 1 && rest[0] === DOT) ? [] : splitIndex(rest, name);
  return multivol === undefined ? { kind: p.kind, index } : { kind: p.kind, index, multivol };
}

const SNAPSHOT_WORD = Buffer.from('snapshot');

function splitIndex(path: Buffer, whole: Buffer): Buffer[] {
  if (path[0] === SLASH) throw new OffsiteError('unsafePath', `Refusing archive member with an absolute path: ${show(whole)}`);
  if (path.includes(0)) throw new OffsiteError('unsafePath', `Refusing archive member with a NUL byte: ${show(whole)}`);
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] !== SLASH) continue;
    const c = path.subarray(start, i);
    start = i + 1;
    if (c.length === 2 && c[0] === DOT && c[1] === DOT) {
      throw new OffsiteError('unsafePath', `Refusing archive member with a '..' component: ${show(whole)}`, {
        hint: 'The archive may have been tampered with; nothing outside the restore target was written',
      });
    }
    if (c.length === 0 || (c.length === 1 && c[0] === DOT)) {
      throw new OffsiteError('format', `Archive member with an empty or '.' path component: ${show(whole)}`);
    }
    out.push(Buffer.from(c));
  }
  return out;
}

function show(name: Buffer): string {
  return JSON.stringify(name.toString('utf8'));
}

const TAR_TYPE_OF: Record<EntryType, TarType> = {
  reg: 'file',
  dir: 'dir',
  sym: 'symlink',
  fifo: 'fifo',
  chr: 'chr',
  blk: 'blk',
};

const EMPTY = Buffer.alloc(0);

/**
 * The header duplicity writes for a path (path.py get_tarinfo()): permission bits, owner ids and
 * names, integer mtime (negative → 0), symlink target, device numbers. `size` is the member's data
 * size (file data, chunk, delta or signature; 0 for members without data).
 */
export function metaToTarHeader(name: Buffer, meta: EntryMeta, size: number): TarHeader {
  const type = TAR_TYPE_OF[meta.type];
  const isDev = meta.type === 'chr' || meta.type === 'blk';
  return {
    name,
    type,
    mode: meta.mode & 0o7777,
    uid: meta.uid,
    gid: meta.gid,
    size,
    mtime: meta.mtime < 0 ? 0 : Math.trunc(meta.mtime),
    linkname: meta.type === 'sym' ? (meta.linkname ?? EMPTY) : EMPTY,
    uname: meta.uname,
    gname: meta.gname,
    devmajor: isDev ? (meta.devmajor ?? 0) : 0,
    devminor: isDev ? (meta.devminor ?? 0) : 0,
  };
}

/**
 * duplicity's ROPath.init_from_tarinfo() view of a header. Owner names are kept as they are: looking
 * them up (name wins over number unless --numeric-owner) is the restorer's job. Hard links and
 * unknown types are refused with OffsiteError('format'), as duplicity refuses them.
 */
export function tarHeaderToMeta(h: TarHeader): EntryMeta {
  let type: EntryType;
  switch (h.type) {
    case 'file':
      type = 'reg';
      break;
    case 'dir':
      type = 'dir';
      break;
    case 'symlink':
      type = 'sym';
      break;
    case 'fifo':
      type = 'fifo';
      break;
    case 'chr':
      type = 'chr';
      break;
    case 'blk':
      type = 'blk';
      break;
    case 'hardlink':
      throw new OffsiteError('format', `Hard links are not supported in duplicity archives: ${show(h.name)}`);
    default:
      throw new OffsiteError('format', `Unknown tar member type ${JSON.stringify(String.fromCharCode(h.typeflag ?? 0x3f))}: ${show(h.name)}`);
  }
  const mtime = Math.trunc(h.mtime);
  const meta: {
    -readonly [K in keyof EntryMeta]: EntryMeta[K];
  } = {
    type,
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    mtime: mtime < 0 ? 0 : mtime,
  };
  if (type === 'sym') meta.linkname = h.linkname;
  if (type === 'chr' || type === 'blk') {
    meta.devmajor = h.devmajor;
    meta.devminor = h.devminor;
  }
  return meta;
}

/** A `deleted/` marker's header: type 0, size 0, mode 0, ids 0, mtime 0, empty names (FORMAT §6.3). */
export function deletedHeader(name: Buffer): TarHeader {
  return {
    name,
    type: 'file',
    mode: 0,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    linkname: EMPTY,
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  };
}
