import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import fc from 'fast-check';
import { OffsiteError } from '../../../src/engine/errors';
import {
  buildCollection,
  chainAtTime,
  setsAtTime,
  signatureChainAtTime,
  signatureChainFor,
  signatureNamesAtTime,
  type BackupSet,
  type Collection,
} from '../../../src/engine/chain/collection';
import { manifestName, signatureName, volumeName, type Suffix } from '../../../src/engine/manifest/naming';
import { runPython, vaultDir } from '../../helpers/dupSamples';

const BASE = 1704067200; // 20240101T000000Z
const D = 86400;
const t = (k: number): number => BASE + k * D;

/** All files of a set: `vols` volumes, a manifest unless `noManifest`, a signature file unless `noSig`. */
function setFiles(type: 'full' | 'inc', end: number, start: number | undefined, o: { vols?: number; noManifest?: boolean; noSig?: boolean; sfx?: Suffix } = {}): string[] {
  const sfx = o.sfx ?? 'gpg';
  const names: string[] = [];
  for (let v = 1; v <= (o.vols ?? 1); v++) names.push(volumeName(type, end, start, v, sfx));
  if (!o.noManifest) names.push(manifestName(type, end, start, sfx === 'gpg'));
  if (!o.noSig) names.push(signatureName(type, end, start, sfx));
  return names;
}

const full = (k: number, o = {}) => setFiles('full', t(k), undefined, o);
const inc = (from: number, to: number, o = {}) => setFiles('inc', t(to), t(from), o);

/** A compact view of a collection, the same one the Python side produces. */
function summary(c: Collection, times: number[]) {
  const setView = (s: BackupSet) => [s.type, s.startTime ?? null, s.endTime, s.volumes.size, s.complete];
  return {
    chains: c.chains.map((ch) => ({ full: ch.fullSet.endTime, incs: ch.incSets.map((s) => [s.startTime, s.endTime]), start: ch.startTime, end: ch.endTime })),
    orphaned: c.orphanedIncs.map(setView),
    incomplete: c.incompleteSets.map(setView),
    sigChains: c.signatureChains.map((s) => ({ full: s.full, incs: s.incs.map((i) => i.name), start: s.startTime, end: s.endTime })),
    orphanSigs: c.orphanedSignatures,
    matched: c.matchedChain ? [c.signatureChains.indexOf(c.matchedSignatureChain!), c.chains.indexOf(c.matchedChain)] : null,
    atTime: times.map((time) => {
      try {
        const ch = chainAtTime(c, time);
        if (!ch) return null;
        return [c.chains.indexOf(ch), setsAtTime(ch, time).map((s) => s.endTime)];
      } catch (e) {
        assert.ok(OffsiteError.is(e, 'format'));
        return 'error';
      }
    }),
    sigAtTime: times.map((time) => {
      const s = signatureChainAtTime(c, time);
      return s ? signatureNamesAtTime(s, time) : null;
    }),
  };
}

// duplicity's own CollectionsStatus on the same listing.
const PY_COLLECTIONS = `
import gettext, json, sys
gettext.install('duplicity')
from duplicity import dup_collections, log
log.setup(); log.setverbosity(log.ERROR)
class Backend: pass
out = []
for sc in json.load(sys.stdin):
    names = [n.encode() for n in sc['names']]
    try:
        cs = dup_collections.CollectionsStatus(Backend(), None, 'replicate')
        chains, orphaned, incomplete = cs.get_backup_chains(names)
        try:
            chains = cs.get_sorted_chains(chains)
        except AssertionError:
            out.append('skip'); continue
        cs.all_backup_chains = chains
        cs.orphaned_backup_sets, cs.incomplete_backup_sets = orphaned, incomplete
        sig_chains, orphan_sigs = cs.get_signature_chains(False, filelist=names)
        try:
            cs.set_matched_chain_pair(sig_chains, chains)
        except AssertionError:
            out.append('skip'); continue
        sv = lambda s: [s.type, s.start_time, s.time or s.end_time, len(s), bool(s.is_complete())]
        res = {
            'chains': [{'full': c.fullset.time, 'incs': [[s.start_time, s.end_time] for s in c.incset_list], 'start': c.start_time, 'end': c.end_time} for c in cs.all_backup_chains],
            'orphaned': [sv(s) for s in cs.orphaned_backup_sets],
            'incomplete': [sv(s) for s in cs.incomplete_backup_sets],
            'sigChains': [{'full': s.fullsig.decode(), 'incs': [n.decode() for n in s.inclist], 'start': s.start_time, 'end': s.end_time} for s in (cs.all_sig_chains or [])],
            'orphanSigs': [n.decode() for n in orphan_sigs],
            'matched': [cs.all_sig_chains.index(cs.matched_chain_pair[0]), cs.all_backup_chains.index(cs.matched_chain_pair[1])] if cs.matched_chain_pair else None,
            'atTime': [], 'sigAtTime': [],
        }
        for time in sc['times']:
            try:
                ch = cs.get_backup_chain_at_time(time)
                res['atTime'].append([cs.all_backup_chains.index(ch), [s.time or s.end_time for s in ch.get_sets_at_time(time)]])
            except dup_collections.CollectionsError as e:
                res['atTime'].append(None if 'No backup chains' in str(e) else 'error')
            try:
                sc_ = cs.get_signature_chain_at_time(time)
                res['sigAtTime'].append([n.decode() for n in sc_.get_filenames(time)])
            except dup_collections.CollectionsError:
                res['sigAtTime'].append(None)
        out.append(res)
    except AssertionError:
        out.append('assert')
print(json.dumps(out))
`;

interface Scenario {
  names: string[];
  times: number[];
}

function compareWithDuplicity(scenarios: Scenario[]): { compared: number; skipped: number } {
  const py = runPython<unknown[]>(PY_COLLECTIONS, scenarios);
  let compared = 0;
  let skipped = 0;
  scenarios.forEach((sc, i) => {
    const p = py[i];
    if (p === 'skip') {
      skipped++;
      return;
    }
    if (p === 'assert') {
      assert.throws(() => buildCollection(sc.names), (e: unknown) => OffsiteError.is(e, 'format'), `duplicity asserts on ${JSON.stringify(sc.names)}`);
      compared++;
      return;
    }
    assert.deepEqual(summary(buildCollection(sc.names), sc.times), p, `scenario ${i}: ${JSON.stringify(sc.names)}`);
    compared++;
  });
  return { compared, skipped };
}

const TIMES = [t(-1), t(0), t(1), t(1) + 5, t(2), t(3), t(4), t(5), t(9)];

describe('collections (dup_collections rules)', () => {
  it('builds the chain of fixture 01 (full of 2 volumes + 2 incrementals, with signatures)', () => {
    const c = buildCollection(fs.readdirSync(vaultDir('01-dup-enc-chain')));
    assert.equal(c.chains.length, 1);
    const ch = c.chains[0];
    assert.equal(ch.fullSet.volumes.size, 2);
    assert.equal(ch.fullSet.encrypted, true);
    assert.equal(ch.fullSet.manifestName, 'duplicity-full.20240101T000000Z.manifest.gpg');
    assert.deepEqual(ch.incSets.map((s) => [s.startTime, s.endTime]), [[t(0), t(1)], [t(1), t(2)]]);
    assert.equal(c.matchedChain, ch);
    assert.equal(signatureChainFor(c, ch)?.incs.length, 2);
    assert.deepEqual(setsAtTime(ch, t(1)).map((s) => s.endTime), [t(0), t(1)]);
    const gz = buildCollection(fs.readdirSync(vaultDir('02-dup-plain-gz')));
    assert.equal(gz.chains[0].fullSet.gzipped, true);
    assert.equal(gz.chains[0].fullSet.encrypted, false);
    assert.equal(gz.chains[0].incSets.length, 1);
  });

  it('ignores foreign and partial files', () => {
    const c = buildCollection([...full(0), 'lockfile', 'notes.txt', 'duplicity-full.20240101T000000Z.vol1.difftar.gpg.par2', 'duplicity-full.20240102T000000Z.manifest.part']);
    assert.equal(c.chains.length, 1);
    assert.equal(c.incompleteSets.length, 0);
  });

  it('separates chains, orphans and incomplete sets', () => {
    const names = [...full(0), ...inc(0, 1), ...inc(1, 2, { noManifest: true }), ...inc(5, 6), ...full(3, { vols: 3 }), ...inc(3, 4)];
    const c = buildCollection(names);
    assert.deepEqual(c.chains.map((ch) => [ch.startTime, ch.endTime, ch.incSets.length]), [[t(0), t(1), 1], [t(3), t(4), 1]]);
    assert.deepEqual(c.orphanedIncs.map((s) => [s.startTime, s.endTime]), [[t(5), t(6)]]);
    assert.deepEqual(c.incompleteSets.map((s) => [s.startTime, s.endTime, s.complete]), [[t(1), t(2), false]]);
    assert.equal(c.chains[1].fullSet.volumes.size, 3);
    assert.equal(c.matchedChain, c.chains[1]);
    compareWithDuplicity([{ names, times: TIMES }]);
  });

  it('prefers the later of two incrementals with the same start', () => {
    const names = [...full(0), ...inc(0, 1), ...inc(0, 2)];
    const c = buildCollection(names);
    assert.deepEqual(c.chains[0].incSets.map((s) => s.endTime), [t(2)]);
    assert.deepEqual(c.supersededIncs.map((s) => s.endTime), [t(1)]);
    assert.equal(c.orphanedIncs.length, 0);
    compareWithDuplicity([{ names, times: TIMES }]);
  });

  it('discards the last incremental when only the previous one has signatures (E12)', () => {
    const names = [...full(0), ...inc(0, 1), ...inc(1, 2, { noSig: true })];
    const c = buildCollection(names);
    assert.equal(c.discardedLastInc?.endTime, t(2));
    assert.ok(c.incompleteSets.includes(c.discardedLastInc!));
    assert.deepEqual(c.chains[0].incSets.map((s) => s.endTime), [t(1)]);
    // restore "now" gets the previous state, as duplicity's restore does
    assert.deepEqual(setsAtTime(chainAtTime(c, t(9))!, t(9)).map((s) => s.endTime), [t(0), t(1)]);
    assert.equal(c.matchedSignatureChain?.endTime, t(1));
    compareWithDuplicity([{ names, times: TIMES }]);
  });

  it('keeps the last incremental when the previous set is the full one, or when nothing has signatures', () => {
    const a = buildCollection([...full(0), ...inc(0, 1, { noSig: true })]);
    assert.equal(a.discardedLastInc, undefined);
    assert.equal(a.matchedChain, undefined);
    assert.equal(a.chains[0].incSets.length, 1);
    const b = buildCollection([...full(0, { noSig: true }), ...inc(0, 1, { noSig: true }), ...inc(1, 2, { noSig: true })]);
    assert.equal(b.discardedLastInc, undefined);
    assert.equal(b.chains[0].incSets.length, 2);
    assert.equal(b.signatureChains.length, 0);
  });

  it('ignores sets in the future for a restore "now" but finds them with an explicit time', () => {
    const names = [...full(0), ...inc(0, 1), ...inc(1, 5)];
    const c = buildCollection(names);
    const now = t(2);
    assert.deepEqual(setsAtTime(chainAtTime(c, now)!, now).map((s) => s.endTime), [t(0), t(1)]);
    assert.deepEqual(setsAtTime(chainAtTime(c, t(5))!, t(5)).map((s) => s.endTime), [t(0), t(1), t(5)]);
    // before the first full: the oldest chain, with just its full set
    assert.deepEqual(setsAtTime(chainAtTime(c, t(-3))!, t(-3)).map((s) => s.endTime), [t(0)]);
    assert.equal(chainAtTime(buildCollection([]), now), undefined);
  });

  it('picks chains by time and refuses a time covered by two chains', () => {
    // Two machines into one remote: one chain from day 0 to day 4, the other from day 2 to day 3.
    const names = [...full(0), ...inc(0, 4), ...full(2), ...inc(2, 3)];
    const c = buildCollection(names);
    assert.equal(c.chains.length, 2);
    assert.equal(chainAtTime(c, t(1)), c.chains.find((ch) => ch.startTime === t(0)));
    assert.throws(() => chainAtTime(c, t(3)), (e: unknown) => OffsiteError.is(e, 'format'));
    // After both: the chain with the newest backup (day 4), not the one with the newest full backup
    // (day 2, whose newest is day 3): chains ordered by end time, as duplicity's all_backup_chains.
    assert.deepEqual(setsAtTime(chainAtTime(c, t(9))!, t(9)).map((s) => s.endTime), [t(0), t(4)]);
    assert.deepEqual(c.chains.map((ch) => ch.endTime), [t(3), t(4)]);
    compareWithDuplicity([{ names, times: TIMES }]);
  });

  it('builds signature chains and their orphans', () => {
    const names = [...full(0), ...inc(0, 1), ...inc(1, 2), signatureName('inc', t(7), t(6), 'gpg')];
    const c = buildCollection(names);
    assert.equal(c.signatureChains.length, 1);
    assert.deepEqual(c.orphanedSignatures, [signatureName('inc', t(7), t(6), 'gpg')]);
    assert.deepEqual(signatureNamesAtTime(c.signatureChains[0], t(1)), [signatureName('full', t(0), undefined, 'gpg'), signatureName('inc', t(1), t(0), 'gpg')]);
    assert.equal(signatureChainFor(c, c.chains[0]), c.signatureChains[0]);
    compareWithDuplicity([{ names, times: TIMES }]);
  });

  it('refuses two files for one volume or two manifests, as duplicity does', () => {
    assert.throws(
      () => buildCollection([...full(0), volumeName('full', t(0), undefined, 1, 'gz')]),
      (e: unknown) => OffsiteError.is(e, 'format') && /volume 1/.test((e as Error).message) && !!(e as OffsiteError).hint,
    );
    assert.throws(() => buildCollection([...full(0), manifestName('full', t(0), undefined, false)]), (e: unknown) => OffsiteError.is(e, 'format'));
  });

  it('agrees with duplicity CollectionsStatus on random listings (property test)', () => {
    // (a) chain-like listings: sets at increasing times, each a full or an incremental from an
    // earlier time (mostly the previous one), with manifests, signatures and volumes sometimes missing
    const chainLike = fc
      .array(
        fc.record({
          gap: fc.integer({ min: 1, max: 2 }),
          full: fc.integer({ min: 0, max: 99 }),
          back: fc.oneof(fc.constant(1), fc.constant(1), fc.constant(1), fc.integer({ min: 1, max: 3 })),
          vols: fc.integer({ min: 0, max: 2 }),
          man: fc.integer({ min: 0, max: 99 }),
          sig: fc.integer({ min: 0, max: 99 }),
        }),
        { minLength: 1, maxLength: 7 },
      )
      .chain((steps) => fc.record({ steps: fc.constant(steps), gpg: fc.boolean(), shuffle: fc.boolean() }))
      .map(({ steps, gpg, shuffle }) => {
        const names: string[] = [];
        const times: number[] = [];
        let k = 0;
        steps.forEach((st, i) => {
          k += st.gap;
          const isFull = i === 0 || st.full < 20;
          const start = isFull ? undefined : t(times[Math.max(0, times.length - st.back)]);
          times.push(k);
          const type = isFull ? 'full' : 'inc';
          const sfx: Suffix = gpg ? 'gpg' : 'gz';
          for (let v = 1; v <= st.vols; v++) names.push(volumeName(type, t(k), start, v, sfx));
          if (st.man < 85) names.push(manifestName(type, t(k), start, gpg));
          if (st.sig < 70) names.push(signatureName(type, t(k), start, sfx));
        });
        if (shuffle) names.reverse();
        return { names, times: [t(0), t(1), t(2), t(3) + 1, t(5), t(8), t(20)] };
      });
    // (b) anything goes
    const k = fc.integer({ min: 0, max: 6 });
    const setArb = fc.oneof(
      fc.record({ type: fc.constant('full' as const), end: k, start: fc.constant(0), vols: fc.integer({ min: 0, max: 2 }), man: fc.boolean(), sig: fc.boolean(), gpg: fc.boolean() }),
      fc.record({ type: fc.constant('inc' as const), end: k, start: k, vols: fc.integer({ min: 0, max: 2 }), man: fc.boolean(), sig: fc.boolean(), gpg: fc.boolean() }),
    );
    const anything = fc.array(setArb, { minLength: 0, maxLength: 9 }).map((sets) => {
      const names: string[] = [];
      for (const s of sets) {
        if (s.type === 'inc' && s.start >= s.end) continue;
        const start = s.type === 'inc' ? t(s.start) : undefined;
        const sfx: Suffix = s.gpg ? 'gpg' : 'gz';
        for (let v = 1; v <= s.vols; v++) names.push(volumeName(s.type, t(s.end), start, v, sfx));
        if (s.man) names.push(manifestName(s.type, t(s.end), start, s.gpg));
        if (s.sig) names.push(signatureName(s.type, t(s.end), start, sfx));
      }
      return { names, times: [t(-1), t(0), t(1), t(2) + 1, t(3), t(5), t(9)] };
    });
    const scenarios = [...fc.sample(chainLike, { numRuns: 600, seed: 99 }), ...fc.sample(anything, { numRuns: 300, seed: 1234 })];
    const { compared, skipped } = compareWithDuplicity(scenarios);
    assert.ok(compared > 800, `compared ${compared}, skipped ${skipped}`);
    // the interesting rules were exercised
    const built = scenarios.flatMap((sc) => {
      try {
        return [buildCollection(sc.names)];
      } catch {
        return [];
      }
    });
    const seen = (f: (c: Collection) => boolean) => built.filter(f).length;
    assert.ok(seen((c) => c.discardedLastInc !== undefined) >= 10, 'discard rule');
    assert.ok(seen((c) => c.supersededIncs.length > 0) >= 10, 'same-start rule');
    assert.ok(seen((c) => c.orphanedIncs.length > 0) >= 10, 'orphans');
    assert.ok(seen((c) => c.chains.some((ch) => ch.incSets.length >= 2)) >= 10, 'long chains');
    assert.ok(seen((c) => c.matchedChain !== undefined) >= 50, 'matched pairs');
  });
});
