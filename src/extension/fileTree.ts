// The folder/file tree of one backup set, built from the engine's flat listing of the set (list op)
// plus the paths the set recorded as deleted (changes op), so deleted files are shown and can be
// restored from the set before. Pure, unit-tested under plain Node.

export type FileKind = 'dir' | 'file' | 'link' | 'other';

export interface FileNode {
  readonly name: string;
  /** Relative to the backed-up folder, '/'-separated; '' for the root. */
  readonly path: string;
  kind: FileKind;
  /** Deleted in this set: present in the set before, absent in this one. */
  deleted: boolean;
  readonly children: FileNode[];
}

function kindOf(type: string): FileKind {
  if (type === 'dir') return 'dir';
  if (type === 'reg') return 'file';
  if (type === 'sym') return 'link';
  return 'other';
}

export function buildFileTree(entries: readonly { path: string; type: string }[], deleted: readonly string[] = []): FileNode {
  const root: FileNode = { name: '', path: '', kind: 'dir', deleted: false, children: [] };
  const byPath = new Map<string, FileNode>([['', root]]);
  const nodeFor = (p: string, kind: FileKind, isDeleted: boolean): FileNode => {
    const existing = byPath.get(p);
    if (existing) {
      if (!isDeleted) {
        existing.kind = kind;
        existing.deleted = false;
      }
      return existing;
    }
    const slash = p.lastIndexOf('/');
    // Parents missing from the listing (or only deleted ones) are made as folders.
    const parent = nodeFor(slash < 0 ? '' : p.slice(0, slash), 'dir', isDeleted);
    const node: FileNode = { name: slash < 0 ? p : p.slice(slash + 1), path: p, kind, deleted: isDeleted, children: [] };
    parent.children.push(node);
    if (parent.kind !== 'dir') parent.kind = 'dir';
    byPath.set(p, node);
    return node;
  };
  for (const e of entries) {
    if (e.path === '.' || e.path === '') continue;
    nodeFor(e.path, kindOf(e.type), false);
  }
  for (const d of deleted) {
    if (d === '.' || d === '' || byPath.has(d)) continue;
    nodeFor(d, 'file', true);
  }
  sortTree(root);
  return root;
}

function sortTree(n: FileNode): void {
  n.children.sort((a, b) => (a.kind === 'dir') !== (b.kind === 'dir') ? (a.kind === 'dir' ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const c of n.children) sortTree(c);
}

/** The node at a relative path, if the tree has it. */
export function findNode(root: FileNode, p: string): FileNode | undefined {
  if (p === '' || p === '.') return root;
  let n: FileNode | undefined = root;
  for (const part of p.split('/')) {
    n = n?.children.find((c) => c.name === part);
    if (!n) return undefined;
  }
  return n;
}
