// Sets, chains and signature chains from a remote listing, with duplicity's own rules and quirks
// (dup_collections.py, FORMAT.md §3): complete = has a manifest; incrementals link by exact time
// equality; the later of two incrementals with the same start wins; the last incremental is dropped
// when only the one before it has signatures; the restore time picks the chain and its sets.
import { OffsiteError } from '../errors';
import { parseName, type NamePrefixes, type ParsedName, type SetType } from '../manifest/naming';
import { timeToString } from './time';

export interface BackupSet {
  type: SetType;
  /** inc sets only: the end time of the set it continues. */
  startTime?: number;
  /** The set's time (for a full set, its only time). */
  endTime: number;
  /** Volume number → remote file name. */
  volumes: Map<number, string>;
  manifestName?: string;
  /** Has a manifest (duplicity's is_complete()); incomplete sets are never restored. */
  complete: boolean;
  /** As duplicity decides it: from the name of the set's first file in the listing. */
  encrypted: boolean;
  /** Some volume name ends in .gz / .z. */
  gzipped: boolean;
}

export interface BackupChain {
  fullSet: BackupSet;
  incSets: BackupSet[];
  startTime: number;
  /**
   * The end time of the last set added. Like duplicity, it is not lowered when the discard rule
   * (Collection.discardedLastInc) drops the last incremental: chainAtTime() keeps choosing as
   * duplicity does.
   */
  endTime: number;
}

export interface SignatureChain {
  full?: string;
  incs: { name: string; startTime: number; endTime: number }[];
  startTime: number;
  endTime: number;
}

export interface Collection {
  /** Complete chains, sorted by end time (oldest first). */
  chains: BackupChain[];
  /** Complete incrementals that continue no chain. */
  orphanedIncs: BackupSet[];
  /** Sets without a manifest, plus the incremental dropped by the discard rule. */
  incompleteSets: BackupSet[];
  /** Sorted by end time. */
  signatureChains: SignatureChain[];
  /** new-signatures files that continue no signature chain. */
  orphanedSignatures: string[];
  /** Incrementals replaced by a later one with the same start time (duplicity forgets them). */
  supersededIncs: BackupSet[];
  /**
   * duplicity's "matched chain pair": the newest chain and the signature chain that ends with it. An
   * incremental continues this chain; without a pair duplicity switches to a full backup.
   */
  matchedChain?: BackupChain;
  matchedSignatureChain?: SignatureChain;
  /**
   * "Warning, discarding last backup set, because of missing signature file": the newest chain's last
   * incremental, dropped (for every command, restore included) because its new-signatures file is
   * missing while the set before it has one. Also listed in incompleteSets.
   */
  discardedLastInc?: BackupSet;
}

interface Named {
  name: string;
  pr: ParsedName;
}

/**
 * duplicity's CollectionsStatus.set_values() on a remote listing. Foreign names are ignored, and so
 * are '.part' names (duplicity only ever has those in its local cache).
 */
export function buildCollection(remoteNames: Iterable<string>, prefix?: string | NamePrefixes): Collection {
  const files: Named[] = [];
  for (const name of remoteNames) {
    const pr = parseName(name, prefix);
    if (pr && !pr.partial) files.push({ name, pr });
  }

  // Sets: BackupSet.add_filename(), first fitting set in creation order.
  const sets: BackupSet[] = [];
  for (const f of files) {
    if (f.pr.kind === 'signature') continue;
    let set = sets.find((s) => s.type === f.pr.setType && s.endTime === f.pr.endTime && s.startTime === f.pr.startTime);
    if (!set) {
      set = {
        type: f.pr.setType,
        endTime: f.pr.endTime,
        volumes: new Map(),
        complete: false,
        encrypted: f.pr.encrypted,
        gzipped: false,
      };
      if (f.pr.startTime !== undefined) set.startTime = f.pr.startTime;
      sets.push(set);
    }
    addToSet(set, f);
  }

  // get_sorted_sets(): complete ones by end time (stable), incomplete ones aside.
  const complete = sets.filter((s) => s.complete).sort((a, b) => a.endTime - b.endTime);
  const incompleteSets = sets.filter((s) => !s.complete);

  const chains: BackupChain[] = [];
  const orphanedIncs: BackupSet[] = [];
  const supersededIncs: BackupSet[] = [];
  for (const s of complete) {
    if (s.type === 'full') {
      chains.push({ fullSet: s, incSets: [], startTime: s.endTime, endTime: s.endTime });
      continue;
    }
    if (!chains.some((c) => addInc(c, s, supersededIncs))) orphanedIncs.push(s);
  }
  chains.sort((a, b) => a.endTime - b.endTime);

  const { chains: signatureChains, orphaned: orphanedSignatures } = signatureChainsOf(files);
  const c: Collection = { chains, orphanedIncs, incompleteSets, signatureChains, orphanedSignatures, supersededIncs };
  matchPair(c);
  return c;
}

function addToSet(set: BackupSet, f: Named): void {
  if (f.pr.kind === 'manifest') {
    if (set.manifestName !== undefined) {
      throw new OffsiteError('format', `Two manifests for one backup set: ${set.manifestName} and ${f.name}`, {
        hint: 'Remove the one that does not belong to the backup (duplicity refuses this remote too)',
        file: f.name,
      });
    }
    set.manifestName = f.name;
    set.complete = true;
    return;
  }
  const n = f.pr.volumeNumber!;
  const other = set.volumes.get(n);
  if (other !== undefined) {
    throw new OffsiteError('format', `Two files for volume ${n} of one backup set: ${other} and ${f.name}`, {
      hint: 'Remove the one that does not belong to the backup (duplicity refuses this remote too)',
      file: f.name,
    });
  }
  set.volumes.set(n, f.name);
  if (f.pr.gzipped) set.gzipped = true;
}

// BackupChain.add_inc().
function addInc(chain: BackupChain, inc: BackupSet, superseded: BackupSet[]): boolean {
  if (chain.endTime === inc.startTime) {
    chain.incSets.push(inc);
  } else {
    const last = chain.incSets[chain.incSets.length - 1];
    if (!last || inc.startTime !== last.startTime || inc.endTime <= last.endTime) return false;
    superseded.push(last);
    chain.incSets[chain.incSets.length - 1] = inc;
  }
  chain.endTime = inc.endTime;
  return true;
}

// get_signature_chains(): one chain per full-signatures file; new-signatures sorted by start time,
// each joining the first chain that ends where it starts.
function signatureChainsOf(files: Named[]): { chains: SignatureChain[]; orphaned: string[] } {
  const chains: SignatureChain[] = [];
  const news: Named[] = [];
  for (const f of files) {
    if (f.pr.kind !== 'signature') continue;
    if (f.pr.setType === 'full') chains.push({ full: f.name, incs: [], startTime: f.pr.endTime, endTime: f.pr.endTime });
    else news.push(f);
  }
  news.sort((a, b) => a.pr.startTime! - b.pr.startTime!);
  const orphaned: string[] = [];
  for (const f of news) {
    const chain = chains.find((c) => c.endTime === f.pr.startTime);
    if (!chain) {
      orphaned.push(f.name);
      continue;
    }
    chain.incs.push({ name: f.name, startTime: f.pr.startTime!, endTime: f.pr.endTime });
    chain.endTime = f.pr.endTime;
  }
  chains.sort((a, b) => a.endTime - b.endTime);
  return { chains, orphaned };
}

// set_matched_chain_pair(), including the discard of the newest incremental without signatures.
function matchPair(c: Collection): void {
  const latest = c.chains[c.chains.length - 1];
  if (!latest) return;
  for (let i = c.signatureChains.length - 1; i >= 0; i--) {
    const sig = c.signatureChains[i];
    if (sig.endTime !== latest.endTime) {
      const all = [latest.fullSet, ...latest.incSets];
      const secondLast = all[all.length - 2];
      // duplicity compares with the set's end_time, which a full set does not have.
      if (!secondLast || secondLast.type !== 'inc' || sig.endTime !== secondLast.endTime) continue;
      const dropped = latest.incSets.pop()!;
      c.incompleteSets.push(dropped);
      c.discardedLastInc = dropped;
    }
    c.matchedChain = latest;
    c.matchedSignatureChain = sig;
    return;
  }
}

/** Seconds a set may be dated after this machine's clock before it counts as dated in the future: clocks differ a little. */
export const CLOCK_SKEW_SECONDS = 60;

/**
 * The end time of the newest of `chains` when it is dated more than CLOCK_SKEW_SECONDS after `now`
 * (seconds): a clock was wrong, this machine's or the one that made it, and which backups are the
 * newest cannot be told from their times. undefined when none is.
 */
export function futureChainTime(chains: readonly BackupChain[], now: number): number | undefined {
  const newest = Math.max(...chains.map((ch) => ch.endTime));
  return newest > now + CLOCK_SKEW_SECONDS ? newest : undefined;
}

/**
 * duplicity's get_backup_chain_at_time(): the chain covering `time`, else the newest chain ending
 * before it, else the oldest chain; undefined when there are no chains. Two chains covering the time
 * is an error in duplicity too (OffsiteError('format')).
 */
export function chainAtTime(c: Collection, time: number): BackupChain | undefined {
  if (c.chains.length === 0) return undefined;
  const covering = c.chains.filter((ch) => ch.startTime <= time && time <= ch.endTime);
  if (covering.length > 1) {
    throw new OffsiteError('format', `Two backup chains cover the time ${timeToString(time)}`, {
      hint: 'Pick a time outside the overlap, or remove one of the overlapping chains',
    });
  }
  if (covering.length === 1) return covering[0];
  const older = c.chains.filter((ch) => ch.endTime < time);
  return older.length ? older[older.length - 1] : c.chains[0];
}

/** BackupChain.get_sets_at_time(): the full set (always) and the incrementals with endTime ≤ time. */
export function setsAtTime(chain: BackupChain, time: number): BackupSet[] {
  return [chain.fullSet, ...chain.incSets.filter((s) => s.endTime <= time)];
}

/**
 * The signature chain that describes `chain`: the matched pair's for the newest chain, else one that
 * starts with the chain's full set and ends with its last set.
 */
export function signatureChainFor(c: Collection, chain: BackupChain): SignatureChain | undefined {
  if (chain === c.matchedChain) return c.matchedSignatureChain;
  const last = chain.incSets.length ? chain.incSets[chain.incSets.length - 1] : chain.fullSet;
  return c.signatureChains.find((s) => s.startTime === chain.startTime && s.endTime === last.endTime);
}

/**
 * duplicity's get_signature_chain_at_time() (list-current-files): the newest chain covering `time`,
 * else the newest ending before it, else the oldest; undefined when there are none.
 */
export function signatureChainAtTime(c: Collection, time: number): SignatureChain | undefined {
  const all = c.signatureChains;
  if (all.length === 0) return undefined;
  const covering = all.filter((s) => s.startTime <= time && time <= s.endTime);
  if (covering.length) return covering[covering.length - 1];
  const older = all.filter((s) => s.endTime < time);
  return older.length ? older[older.length - 1] : all[0];
}

/** The names of a signature chain's files up to `time` (all when omitted), full first. */
export function signatureNamesAtTime(s: SignatureChain, time?: number): string[] {
  const incs = time === undefined ? s.incs : s.incs.filter((i) => i.endTime <= time);
  return [...(s.full ? [s.full] : []), ...incs.map((i) => i.name)];
}
