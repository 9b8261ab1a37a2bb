// One folder of a backup as of a time, for front ends that show a tree and ask per folder as the user
// expands it (a whole listing of a big set would be one huge message). Answered from the signature
// chain like listFiles, streaming: the signature files are read member header by member header (the
// librsync signatures are skipped, not read into memory), and reading stops as soon as the merged
// order has passed the folder, since a folder's paths are contiguous in index order. Optionally the
// paths the listed set deleted are merged in (from its manifest), as a tree shows them.
import * as fs from 'node:fs';
import { throwIfAborted } from '../errors';
import { compareIndex, isPrefixOf, ROOT } from '../pathIndex';
import type { EntryMeta, PathIndex } from '../types';
import { signatureFilesAt } from './inspect';
import { openForRead, type ReadOptions } from './restore';
import { mergeSignatureChain, readCachedSigtarHeaders } from './sigtar';

export interface ListFolderOptions extends ReadOptions {
  /** The folder (default the root). A path that is not a folder of the backup has no entries. */
  readonly path?: PathIndex;
  /** How deep below the folder: 1 = its direct children (default: everything below it). */
  readonly depth?: number;
  /** Merge in the paths the listed set deleted (FolderEntry.deleted). */
  readonly deleted?: boolean;
  /** Only entries after this path (index order): the cursor of a paged listing. */
  readonly after?: PathIndex;
  /** At most this many entries. */
  readonly limit?: number;
}

export interface FolderEntry {
  readonly index: PathIndex;
  /**
   * A deleted path has no metadata (the manifest records none): it is 'dir' when deleted paths lie
   * below it, else 'reg'; its mode and mtime are 0.
   */
  readonly meta: Pick<EntryMeta, 'type' | 'mode' | 'mtime'>;
  /** In the set before the listed one, gone in it. */
  readonly deleted: boolean;
}

/**
 * The deleted paths of a set as entries under `folder` within `depth`: each deleted path, and each of
 * its ancestors below the folder as a deleted folder (it may be gone too; a listed one wins later).
 * Sorted in index order.
 */
function deletedEntries(deleted: readonly PathIndex[], folder: PathIndex, depth: number): FolderEntry[] {
  const byKey = new Map<string, FolderEntry>();
  for (const d of deleted) {
    if (d.length <= folder.length || !isPrefixOf(folder, d)) continue;
    const deepest = Math.min(d.length, folder.length + depth);
    for (let n = folder.length + 1; n <= deepest; n++) {
      const index = d.slice(0, n);
      const key = index.map((c) => c.toString('hex')).join('/');
      const isDir = n < d.length;
      const had = byKey.get(key);
      if (!had || (isDir && had.meta.type !== 'dir')) byKey.set(key, { index, meta: { type: isDir ? 'dir' : 'reg', mode: 0, mtime: 0 }, deleted: true });
    }
  }
  return [...byKey.values()].sort((a, b) => compareIndex(a.index, b.index));
}

export async function* listFolder(opts: ListFolderOptions): AsyncGenerator<FolderEntry> {
  const folder = opts.path ?? ROOT;
  const depth = opts.depth === undefined || !(opts.depth >= 1) ? Infinity : Math.floor(opts.depth);
  const limit = opts.limit === undefined ? Infinity : Math.max(0, Math.floor(opts.limit));
  if (limit === 0) return;
  const { repo, tempDir } = await openForRead(opts);
  try {
    const at = await signatureFilesAt(repo, opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000), opts);
    if (!at) return;
    const { last } = at;
    let gone: FolderEntry[] = [];
    // A full set deletes nothing (its manifest lists every file as new: skip parsing it).
    if (opts.deleted && last.type !== 'full') {
      const files = (await repo.manifest(last, opts.signal)).filelist ?? [];
      gone = deletedEntries(files.filter((f) => f.action === 'deleted').map((f) => f.index), folder, depth);
    }
    // Each file is opened when the merge first reads it, and closed by the merge when it stops early.
    const streams = at.files.map((file) => readCachedSigtarHeaders(file));

    const after = opts.after;
    const wanted = (index: PathIndex) => index.length - folder.length <= depth && (after === undefined || compareIndex(index, after) > 0);
    let g = 0;
    let yielded = 0;
    let seen = 0;
    for await (const e of mergeSignatureChain(streams)) {
      if ((++seen & 1023) === 0) throwIfAborted(opts.signal);
      const cmp = compareIndex(e.index, folder);
      if (cmp <= 0) continue; // before the folder, or the folder itself
      if (!isPrefixOf(folder, e.index)) break; // past the folder: its paths are contiguous
      if (!wanted(e.index)) continue;
      // Deleted paths that sort before this one; one equal to it is not deleted (it is listed).
      for (; g < gone.length && compareIndex(gone[g].index, e.index) <= 0; g++) {
        if (compareIndex(gone[g].index, e.index) === 0 || !wanted(gone[g].index)) continue;
        yield gone[g];
        if (++yielded >= limit) return;
      }
      yield { index: e.index, meta: { type: e.meta.type, mode: e.meta.mode, mtime: e.meta.mtime }, deleted: false };
      if (++yielded >= limit) return;
    }
    for (; g < gone.length; g++) {
      if (!wanted(gone[g].index)) continue;
      yield gone[g];
      if (++yielded >= limit) return;
    }
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}
