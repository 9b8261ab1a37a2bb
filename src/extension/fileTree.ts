// The entries of one folder of a backup set, as the tree shows them: the engine lists a folder at a
// time (list op with a path, depth 1, the set's deleted paths merged in, paged), so a set of any size
// crosses the process boundary and the extension host's thread in small pieces, as folders are
// expanded. Pure, unit-tested under plain Node.
import type { ListEntry } from '../engine/service';

export type FileKind = 'dir' | 'file' | 'link' | 'other';

export interface FileNode {
  readonly name: string;
  /** Relative to the backed-up folder, '/'-separated. */
  readonly path: string;
  readonly kind: FileKind;
  /** Deleted in this set: present in the set before, absent in this one. */
  readonly deleted: boolean;
}

/** Entries asked of the engine per request; a bigger folder shows "Show more…". */
export const FOLDER_PAGE = 1000;

function kindOf(type: string): FileKind {
  if (type === 'dir') return 'dir';
  if (type === 'reg') return 'file';
  if (type === 'sym') return 'link';
  return 'other';
}

export function nodeOf(e: ListEntry): FileNode {
  const slash = e.path.lastIndexOf('/');
  return { name: slash < 0 ? e.path : e.path.slice(slash + 1), path: e.path, kind: kindOf(e.type), deleted: e.deleted === true };
}

/** Folders first, then by name (code unit order, stable across pages). */
export function sortNodes(nodes: FileNode[]): FileNode[] {
  return nodes.sort((a, b) => ((a.kind === 'dir') !== (b.kind === 'dir') ? (a.kind === 'dir' ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export interface FolderPage {
  readonly nodes: FileNode[];
  /** The cursor (`after`) of the next page, when the folder has more entries. */
  readonly next?: string;
}

/** One answer of the engine, asked with limit = pageSize + 1 (the extra entry says there is more). */
export function toPage(entries: readonly ListEntry[], pageSize = FOLDER_PAGE): FolderPage {
  const shown = entries.slice(0, pageSize);
  return { nodes: shown.map(nodeOf), next: entries.length > pageSize && shown.length ? shown[shown.length - 1].path : undefined };
}
