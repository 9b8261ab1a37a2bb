// Reading backup sets back: the members of a set's volumes as one stream (multivol chunks continue
// across volumes), grouped into one record per path, and the records of several sets of a chain
// collated by path and patched (FORMAT §9: duplicity's patchdir.py — difftar2path_iter,
// collate_iters, normalize_ps, patch_seq2ropath).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffsiteError, throwIfAborted } from '../errors';
import type { Logger } from '../log';
import type { BackupSet } from '../chain/collection';
import { patchThroughDeltas } from '../delta/compose';
import { volumeMayContain, type Manifest, type VolumeInfo } from '../manifest/manifest';
import { parseName, volumeName } from '../manifest/naming';
import { compareIndex, indexToString, isPrefixOf } from '../pathIndex';
import type { EntryMeta, PathIndex } from '../types';
import { parseMemberName, tarHeaderToMeta, type MemberKind } from '../volume/difftar';
import { readTar } from '../volume/tar';
import { fetchRemote, openDecoded, wrappingOf } from './remoteFiles';
import type { Repository } from './repository';

export interface SetRecord {
  readonly index: PathIndex;
  readonly kind: Exclude<MemberKind, 'signature'>;
  readonly meta: EntryMeta;
  /** File data or delta; must be consumed (or it is skipped) before the next record is asked for. */
  readonly body: AsyncIterable<Buffer>;
}

/**
 * Why a member was left out, which decides what the user is told: 'archive', the backup holds
 * something no backup tool writes (an unsafe name, a hard link, a path twice, a member under a
 * symlink: it may have been tampered with); 'target', the target's own files are in the way (left as
 * they are); 'system', this system or user cannot make it (a name too long for the file system, a
 * device file without root).
 */
export type RefusalCause = 'archive' | 'target' | 'system';

/** Something the reader or writer refused to restore, and why. */
export interface Refusal {
  readonly member: string;
  readonly reason: string;
  readonly cause: RefusalCause;
}

interface RawMember {
  readonly name: ReturnType<typeof parseMemberName>;
  readonly meta: EntryMeta;
  readonly body: AsyncIterable<Buffer>;
}

/** A body that can be iterated once: a second for-await (a drain after a consumer) sees it ended. */
function once(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  return (async function* () {
    yield* body;
  })();
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body) {
    /* skip */
  }
}

export interface ReadContext {
  readonly repo: Repository;
  readonly log: Logger;
  readonly signal?: AbortSignal;
  readonly refusals: Refusal[];
}

/** The volumes of a set that may hold paths under `prefix` (all of them for the root). */
export function volumesFor(manifest: Manifest, prefix: PathIndex): VolumeInfo[] {
  const sorted = [...manifest.volumes].sort((a, b) => a.volumeNumber - b.volumeNumber);
  return prefix.length === 0 ? sorted : sorted.filter((v) => volumeMayContain(v, prefix));
}

/** Every tar member of the chosen volumes of one set, in order, hash-checked before decryption. */
async function* members(ctx: ReadContext, set: BackupSet, volumes: VolumeInfo[]): AsyncGenerator<RawMember> {
  // The next volume is fetched and hash-checked (downloaded, for remote backends) while this one is
  // decrypted and read: the two overlap, on two cores.
  const fetchVolume = async (v: VolumeInfo) => {
    throwIfAborted(ctx.signal);
    const remoteName = set.volumes.get(v.volumeNumber);
    if (!remoteName) {
      const expected = volumeName(set.type, set.endTime, set.startTime, v.volumeNumber, set.encrypted ? 'gpg' : set.gzipped ? 'gz' : '');
      throw new OffsiteError('integrity', `Volume ${v.volumeNumber} of the backup set of ${new Date(set.endTime * 1000).toISOString()} is missing on the remote (${expected})`, {
        file: expected,
        hint: 'The set is damaged; restore as of another time',
      });
    }
    const hash = v.hashes.SHA1 ?? v.hashes.sha1;
    const md5 = v.hashes.MD5 ?? v.hashes.md5;
    if (!hash && !md5) throw new OffsiteError('integrity', `The manifest has no hash for ${remoteName}`, { file: remoteName, hint: 'The manifest is damaged or was not written by duplicity/Offsite' });
    const fetched = await fetchRemote(ctx.repo.backend, remoteName, ctx.repo.tempDir, { expectedSha1: hash, manifestName: set.manifestName, signal: ctx.signal });
    try {
      if (!hash && md5) await checkMd5(fetched.path, md5, remoteName);
    } catch (e) {
      fetched.dispose();
      throw e;
    }
    return { remoteName, fetched };
  };
  let next = volumes.length > 0 ? fetchVolume(volumes[0]) : undefined;
  try {
    for (let i = 0; i < volumes.length; i++) {
      const { remoteName, fetched } = await next!;
      next = i + 1 < volumes.length ? fetchVolume(volumes[i + 1]) : undefined;
      // A failure of the prefetch surfaces when it is awaited; until then it must not go unhandled.
      next?.catch(() => undefined);
      try {
        const parsed = parseName(remoteName)!;
        const plain = await openDecoded(fetched.path, wrappingOf(parsed), ctx.repo.crypto, remoteName);
        try {
          for await (const entry of readTar(plain)) {
            let name: RawMember['name'];
            try {
              name = parseMemberName(entry.header.name);
            } catch (e) {
              ctx.refusals.push({ member: entry.header.name.toString('utf8'), reason: (e as Error).message, cause: 'archive' });
              ctx.log.warn(`Skipping archive member ${JSON.stringify(entry.header.name.toString('utf8'))} of ${remoteName}: ${(e as Error).message}`);
              continue;
            }
            if (name.kind === 'signature') continue;
            let meta: EntryMeta;
            try {
              meta = tarHeaderToMeta(entry.header);
            } catch (e) {
              // Hard links and unknown member types: duplicity refuses them too.
              ctx.refusals.push({ member: entry.header.name.toString('utf8'), reason: (e as Error).message, cause: 'archive' });
              ctx.log.warn(`Skipping archive member ${JSON.stringify(entry.header.name.toString('utf8'))} of ${remoteName}: ${(e as Error).message}`);
              continue;
            }
            yield { name, meta, body: once(entry.body) };
          }
        } finally {
          plain.destroy();
        }
      } finally {
        fetched.dispose();
      }
    }
  } finally {
    // Stopped early (a one-file restore past its file) or failed: drop a prefetched volume.
    if (next) await next.then((f) => f.fetched.dispose(), () => undefined);
  }
}

async function checkMd5(file: string, md5: string, name: string): Promise<void> {
  const h = createHash('md5');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  const actual = h.digest('hex');
  if (actual !== md5.toLowerCase()) throw new OffsiteError('integrity', `Invalid data in ${name}: MD5 hash mismatch`, { file: name, hint: 'The file was changed or damaged on the remote' });
}

/** Groups multivol chunks into one record per path; records of paths outside `prefix` are skipped. */
export async function* setRecords(ctx: ReadContext, set: BackupSet, volumes: VolumeInfo[], prefix: PathIndex): AsyncGenerator<SetRecord> {
  const it = members(ctx, set, volumes)[Symbol.asyncIterator]();
  let pending: RawMember | undefined = (await it.next()).value;
  try {
    while (pending) {
      const first: RawMember = pending;
      pending = undefined;
      const kind = first.name.kind as SetRecord['kind'];
      if (!isPrefixOf(prefix, first.name.index)) {
        // Paths under `prefix` are contiguous in index order: past them nothing more can match, so
        // the rest of the set is neither decrypted nor read (a one-file restore stops at its file).
        if (compareIndex(first.name.index, prefix) > 0) return;
        await drain(first.body);
        // skip the rest of a multivol run too
        for (;;) {
          const n: RawMember | undefined = (await it.next()).value;
          if (n && n.name.multivol !== undefined && n.name.multivol > 1 && compareIndex(n.name.index, first.name.index) === 0) {
            await drain(n.body);
            continue;
          }
          pending = n;
          break;
        }
        continue;
      }
      if (first.name.multivol === undefined) {
        const body = first.body;
        yield { index: first.name.index, kind, meta: first.meta, body };
        await drain(body);
        pending = (await it.next()).value;
        continue;
      }
      if (first.name.multivol !== 1) {
        // A run that starts mid-file: the volume holding its start was not selected, or is damaged.
        throw new OffsiteError('integrity', `Chunk ${first.name.multivol} of ${indexToString(first.name.index)} has no preceding chunks`, { hint: 'The backup set is damaged' });
      }
      let cur: RawMember = first;
      let done = false;
      const body = (async function* () {
        for (;;) {
          yield* cur.body;
          const n: RawMember | undefined = (await it.next()).value;
          if (n && n.name.multivol !== undefined && n.name.kind === first.name.kind && compareIndex(n.name.index, first.name.index) === 0) {
            if (n.name.multivol !== (cur.name.multivol ?? 0) + 1) {
              throw new OffsiteError('integrity', `Chunk ${(cur.name.multivol ?? 0) + 1} of ${indexToString(first.name.index)} is missing`, { hint: 'The backup set is damaged' });
            }
            cur = n;
            continue;
          }
          pending = n;
          done = true;
          return;
        }
      })();
      yield { index: first.name.index, kind, meta: first.meta, body };
      if (!done) await drain(body);
    }
  } finally {
    await it.return?.(undefined);
  }
}

/** A path as of the restore time, with a way to produce its contents (regular files). */
export interface Restorable {
  readonly index: PathIndex;
  readonly meta: EntryMeta;
  /** Writes the file's contents through `write`, in order. Call at most once, before the next item. */
  readonly produce?: (write: (chunk: Buffer) => Promise<void>) => Promise<void>;
}

/**
 * The tree as of the last of `sets` (full first), under `prefix`: the per-set records collated by
 * path, each path's records cut back to the last snapshot or deletion, deltas applied in order.
 */
export async function* restoreRecords(ctx: ReadContext, sets: { set: BackupSet; manifest: Manifest }[], prefix: PathIndex): AsyncGenerator<Restorable> {
  const iters = sets.map(({ set, manifest }) => setRecords(ctx, set, volumesFor(manifest, prefix), prefix)[Symbol.asyncIterator]());
  const heads: (SetRecord | undefined)[] = [];
  for (const it of iters) heads.push((await it.next()).value);
  let tempSeq = 0;
  try {
    for (;;) {
      throwIfAborted(ctx.signal);
      let min: PathIndex | undefined;
      for (const h of heads) if (h && (min === undefined || compareIndex(h.index, min) < 0)) min = h.index;
      if (min === undefined) return;
      const recs: { i: number; rec: SetRecord }[] = [];
      for (let i = 0; i < heads.length; i++) if (heads[i] && compareIndex(heads[i]!.index, min) === 0) recs.push({ i, rec: heads[i]! });

      let base = -1;
      for (let k = recs.length - 1; k >= 0; k--) if (recs[k].rec.kind !== 'diff') { base = k; break; }
      const chain = base >= 0 ? recs.slice(base) : [];
      const skipped = base >= 0 ? recs.slice(0, base) : recs;
      for (const { rec } of skipped) await drain(rec.body);

      let used = false;
      if (base < 0) {
        ctx.log.warn(`Skipping ${indexToString(min)}: the backup has a delta for it but no earlier full copy`);
        ctx.refusals.push({ member: indexToString(min), reason: 'delta without a base version', cause: 'archive' });
      } else if (chain[0].rec.kind !== 'deleted') {
        const last = chain[chain.length - 1].rec;
        const item: Restorable = {
          index: min,
          meta: last.meta,
          produce:
            last.meta.type === 'reg'
              ? async (write) => {
                  used = true;
                  await patchChain(chain.map((c) => c.rec), write, () => path.join(ctx.repo.tempDir, `patch-${++tempSeq}`));
                }
              : undefined,
        };
        yield item;
      }
      if (!used) for (const { rec } of chain) await drain(rec.body);
      for (const { i } of recs) heads[i] = (await iters[i].next()).value;
    }
  } finally {
    await Promise.all(iters.map((it) => it.return?.(undefined)));
  }
}

/**
 * A snapshot and the deltas after it, written out in one pass (delta/compose.ts: the deltas are
 * composed, and the snapshot is read once, as a stream when it can be).
 */
async function patchChain(recs: SetRecord[], write: (chunk: Buffer) => Promise<void>, tempName: () => string): Promise<void> {
  await patchThroughDeltas(
    recs[0].body,
    recs.slice(1).map((r) => r.body),
    write,
    { tempFile: tempName },
  );
}
