// Verify: the backup as of a time against the local folder (duplicity's verify and compare_verbose):
// type, permissions and whole-second mtime of every path, symlink targets, and with compareData the
// contents of every regular file. Local paths the backup does not have are reported as new, when the
// same selection as the backup's is given.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareIndex, indexToString } from '../pathIndex';
import { scanTree, type SelectionRule } from '../scan/scanner';
import type { EntryMeta, PathIndex } from '../types';
import { openForRead, setsForTime, type ReadOptions } from './restore';
import { restoreRecords, type ReadContext, type Restorable } from './setReader';

export interface VerifyOptions extends ReadOptions {
  readonly source: string;
  readonly compareData?: boolean;
  /** The backup's selection, so local paths it excludes are not reported as new. */
  readonly rules?: readonly SelectionRule[];
  readonly gitignore?: boolean;
}

export interface Difference {
  readonly path: string;
  readonly reason: string;
}

export interface VerifyResult {
  readonly time: number;
  readonly compared: number;
  readonly differences: readonly Difference[];
}

function typeOf(st: fs.Stats): EntryMeta['type'] | 'sock' {
  if (st.isFile()) return 'reg';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'sym';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chr';
  if (st.isBlockDevice()) return 'blk';
  return 'sock';
}

async function sameContent(file: Buffer, item: Restorable): Promise<boolean> {
  const fh = await fs.promises.open(file, 'r');
  let pos = 0;
  let same = true;
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    await item.produce?.(async (chunk) => {
      if (!same) return;
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(buf.length, chunk.length - off);
        const { bytesRead } = await fh.read(buf, 0, n, pos);
        if (bytesRead !== n || !buf.subarray(0, n).equals(chunk.subarray(off, off + n))) {
          same = false;
          return;
        }
        pos += n;
        off += n;
      }
    });
    if (same) {
      const { bytesRead } = await fh.read(buf, 0, 1, pos);
      if (bytesRead !== 0) same = false;
    }
  } finally {
    await fh.close();
  }
  return same;
}

export async function verify(opts: VerifyOptions): Promise<VerifyResult> {
  const { repo, tempDir } = await openForRead(opts);
  try {
    const time = opts.time ?? Math.floor((opts.now ?? Date.now)() / 1000);
    const sets = await setsForTime(repo, time, opts.signal);
    const ctx: ReadContext = { repo, log: opts.log, signal: opts.signal, refusals: [] };
    const root = Buffer.from(path.resolve(opts.source));
    const differences: Difference[] = [];
    let compared = 0;
    const diff = (index: PathIndex, reason: string) => {
      differences.push({ path: indexToString(index), reason });
      opts.log.info(`Difference found: ${indexToString(index)}: ${reason}`);
    };

    // Local paths, in the same order, to find the ones the backup lacks.
    const local = scanTree(root.toString(), { rules: opts.rules, gitignore: opts.gitignore, signal: opts.signal, onError: () => {} })[Symbol.asyncIterator]();
    let localHead: { index: PathIndex } | undefined = (await local.next()).value ?? undefined;
    const passLocal = async (upTo: PathIndex | undefined) => {
      while (localHead && (upTo === undefined || compareIndex(localHead.index, upTo) < 0)) {
        diff(localHead.index, 'new file, not in the backup');
        localHead = (await local.next()).value ?? undefined;
      }
      if (localHead && upTo && compareIndex(localHead.index, upTo) === 0) localHead = (await local.next()).value ?? undefined;
    };

    for await (const item of restoreRecords(ctx, sets, [])) {
      await passLocal(item.index);
      compared++;
      const p = Buffer.concat([root, ...item.index.flatMap((c) => [Buffer.from('/'), c])]);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      const m = item.meta;
      if (!st) {
        diff(item.index, 'missing');
        continue;
      }
      const t = typeOf(st);
      if (t !== m.type) {
        diff(item.index, `is a ${t}, expected a ${m.type}`);
        continue;
      }
      if (t === 'sym') {
        const target = fs.readlinkSync(p, { encoding: 'buffer' });
        if (!m.linkname || !target.equals(m.linkname)) diff(item.index, `points to ${target.toString()}, expected ${m.linkname?.toString()}`);
        continue;
      }
      if ((st.mode & 0o7777) !== (m.mode & 0o7777)) {
        diff(item.index, `has permissions ${(st.mode & 0o7777).toString(8)}, expected ${(m.mode & 0o7777).toString(8)}`);
        continue;
      }
      if ((t === 'reg' || t === 'dir' || t === 'fifo') && Math.floor(st.mtimeMs / 1000) !== m.mtime && (m.mtime > 0 || st.mtimeMs > 0)) {
        diff(item.index, `has mtime ${new Date(st.mtimeMs).toISOString()}, expected ${new Date(m.mtime * 1000).toISOString()}`);
        continue;
      }
      if (t === 'reg' && opts.compareData && !(await sameContent(p, item))) diff(item.index, 'data differs');
    }
    await passLocal(undefined);
    await local.return?.(undefined);
    return { time: sets.at(-1)!.set.endTime, compared, differences };
  } finally {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
}
