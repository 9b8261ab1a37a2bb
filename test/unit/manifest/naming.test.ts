import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { manifestName, parseName, signatureName, volumeName, type ParsedName } from '../../../src/engine/manifest/naming';
import { runPython, SAMPLES, vaultDir } from '../../helpers/dupSamples';

const T0 = 1704067200; // 20240101T000000Z
const T1 = T0 + 86400;
const TR = 1795699837; // 20261126T133037Z = tp42v1 in base 36

// duplicity's file_naming.parse() on the same names (with the given prefixes).
const PY_PARSE = `
import gettext, json, sys
gettext.install('duplicity')
from duplicity import config, dup_time, file_naming, log
log.setup(); log.setverbosity(log.ERROR)
dup_time.setcurtime(1800000000)
a = json.load(sys.stdin)
for k in ('file_prefix', 'file_prefix_manifest', 'file_prefix_archive', 'file_prefix_signature'):
    setattr(config, k, a['prefix'].get(k, '').encode())
file_naming.prepare_regex(force=True)
out = []
for n in a['names']:
    pr = file_naming.parse(n.encode())
    if not pr:
        out.append(None); continue
    kind = 'signature' if pr.type.endswith('sig') else ('manifest' if pr.manifest else 'volume')
    out.append({'kind': kind, 'setType': 'full' if pr.type in ('full', 'full-sig') else 'inc',
                'startTime': pr.start_time, 'endTime': pr.time or pr.end_time, 'volumeNumber': pr.volume_number,
                'encrypted': bool(pr.encrypted), 'gzipped': bool(pr.compressed), 'partial': bool(pr.partial)})
print(json.dumps(out))
`;

type PyParsed = Omit<ParsedName, 'short' | 'startTime' | 'volumeNumber'> & { startTime: number | null; volumeNumber: number | null };

function compareWithDuplicity(names: string[], prefix: Record<string, string> = {}): void {
  const py = runPython<(PyParsed | null)[]>(PY_PARSE, { names, prefix });
  names.forEach((n, i) => {
    const ours = parseName(n, { file: prefix.file_prefix, manifest: prefix.file_prefix_manifest, archive: prefix.file_prefix_archive, signature: prefix.file_prefix_signature });
    const p = py[i];
    if (p === null) {
      assert.equal(ours, undefined, `duplicity ignores ${n}`);
      return;
    }
    assert.ok(ours, `duplicity parses ${n}`);
    const { short: _short, ...rest } = ours;
    // duplicity sets partial only for manifests and signatures
    const want = { ...p, startTime: p.startTime ?? undefined, volumeNumber: p.volumeNumber ?? undefined, partial: ours.kind === 'volume' ? rest.partial : p.partial };
    assert.deepEqual(
      Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      Object.fromEntries(Object.entries(want).filter(([, v]) => v !== undefined)),
      n,
    );
  });
}

describe('remote names', () => {
  it('writes the long names of FORMAT §2.1', () => {
    assert.equal(volumeName('full', T0, undefined, 1, 'gpg'), 'duplicity-full.20240101T000000Z.vol1.difftar.gpg');
    assert.equal(volumeName('full', T0, undefined, 33, 'gz'), 'duplicity-full.20240101T000000Z.vol33.difftar.gz');
    assert.equal(volumeName('inc', T1, T0, 2, ''), 'duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol2.difftar');
    assert.equal(manifestName('full', T0, undefined, true), 'duplicity-full.20240101T000000Z.manifest.gpg');
    assert.equal(manifestName('inc', T1, T0, false), 'duplicity-inc.20240101T000000Z.to.20240102T000000Z.manifest');
    assert.equal(signatureName('full', T0, undefined, 'gpg'), 'duplicity-full-signatures.20240101T000000Z.sigtar.gpg');
    assert.equal(signatureName('inc', T1, T0, 'gz'), 'duplicity-new-signatures.20240101T000000Z.to.20240102T000000Z.sigtar.gz');
    assert.equal(signatureName('full', T0, undefined, ''), 'duplicity-full-signatures.20240101T000000Z.sigtar');
  });

  it('writes short names, prefixes and partial names', () => {
    assert.equal(volumeName('full', TR, undefined, 1, 'gz', { short: true }), 'df.tp42v1.1.dt.z');
    assert.equal(manifestName('full', TR, undefined, false, { short: true }), 'df.tp42v1.m');
    assert.equal(signatureName('full', TR, undefined, 'gz', { short: true }), 'dfs.tp42v1.st.z');
    assert.equal(volumeName('inc', TR, T0, 36, 'gpg', { short: true }), `di.${T0.toString(36)}.tp42v1.10.dt.g`);
    assert.equal(signatureName('inc', TR, T0, '', { short: true }), `dns.${T0.toString(36)}.tp42v1.st`);
    assert.equal(manifestName('full', T0, undefined, false, { prefix: 'p-' }), 'p-duplicity-full.20240101T000000Z.manifest');
    assert.equal(
      volumeName('full', T0, undefined, 1, 'gpg', { prefix: { file: 'a/', archive: 'vol_' } }),
      'a/vol_duplicity-full.20240101T000000Z.vol1.difftar.gpg',
    );
    assert.equal(signatureName('full', T0, undefined, 'gz', { prefix: { signature: 's_' } }), 's_duplicity-full-signatures.20240101T000000Z.sigtar.gz');
    assert.equal(manifestName('full', T0, undefined, false, { partial: true }), 'duplicity-full.20240101T000000Z.manifest.part');
    assert.throws(() => volumeName('inc', T1, undefined, 1, ''));
    assert.throws(() => volumeName('full', T1, undefined, 0, ''));
  });

  it('parses every file of every fixture vault', () => {
    let n = 0;
    for (const s of fs.readdirSync(SAMPLES).filter((d) => /^0[1-6]-/.test(d))) {
      for (const name of fs.readdirSync(vaultDir(s))) {
        const p = parseName(name);
        assert.ok(p, name);
        assert.equal(p.encrypted, name.endsWith('.gpg'), name);
        assert.equal(p.gzipped, name.endsWith('.gz'), name);
        assert.ok(p.endTime === T0 || p.endTime === T1 || p.endTime === T1 + 86400, name);
        n++;
      }
    }
    assert.ok(n >= 30);
    assert.deepEqual(parseName('duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol1.difftar.gpg'), {
      kind: 'volume',
      setType: 'inc',
      startTime: T0,
      endTime: T1,
      volumeNumber: 1,
      encrypted: true,
      gzipped: false,
      partial: false,
      short: false,
    });
  });

  it('parses short names, old time formats and odd suffixes', () => {
    assert.deepEqual(parseName('df.tp42v1.1.dt.z'), { kind: 'volume', setType: 'full', endTime: TR, volumeNumber: 1, encrypted: false, gzipped: true, partial: false, short: true });
    assert.equal(parseName('df.tp42v1.m')?.kind, 'manifest');
    assert.deepEqual(parseName('dfs.tp42v1.st.z'), { kind: 'signature', setType: 'full', endTime: TR, encrypted: false, gzipped: true, partial: false, short: true });
    assert.equal(parseName('di.abc.tp42v1.z.dt.g')?.volumeNumber, 35);
    assert.equal(parseName('di.abc.tp42v1.z.dt.g')?.encrypted, true);
    assert.equal(parseName('dns.abc.tp42v1.st')?.startTime, parseInt('abc', 36));
    // old local-time names with an offset, with ':' or another separator, and 'Z'
    assert.equal(parseName('duplicity-full.2024-01-01T01:00:00+01:00.vol1.difftar.gpg')?.endTime, T0);
    assert.equal(parseName('duplicity-full.2023-12-31T19.00.00-05.00.manifest')?.endTime, T0);
    assert.equal(parseName('duplicity-inc.2024-01-01T00:00:00Z.to.2024-01-02T00:00:00Z.manifest.gpg')?.endTime, T1);
    assert.equal(parseName('duplicity-full.20240101t000000z.manifest')?.endTime, T0); // uppercased first
    assert.equal(parseName('duplicity-full.1704067200.manifest')?.endTime, T0); // epoch seconds
    // prefixes
    assert.equal(parseName('p-duplicity-full.20240101T000000Z.manifest', 'p-')?.kind, 'manifest');
    assert.equal(parseName('duplicity-full.20240101T000000Z.manifest', 'p-'), undefined);
  });

  it('ignores foreign files', () => {
    for (const n of [
      'lockfile',
      'README',
      'duplicity-full.20240101T000000Z.vol1.difftar.gpg.par2',
      'duplicity-full.20240101T000000Z.vol1.difftar.gpg.vol000+01.par2',
      'duplicity-full.notatime.manifest',
      'duplicity-full.20240101T000000Z.volX.difftar',
      'duplicity-full.19700101T000000Z.manifest', // time 0 is "no time" to duplicity
      'duplicity-full.3D.manifest', // intervals are relative to now: refused in names
      'df.TP42V1.m', // short times are lowercase base 36
    ]) {
      assert.equal(parseName(n), undefined, n);
    }
    assert.equal(parseName('duplicity-full.20240101T000000Z.vol1.difftar.part')?.partial, true);
  });

  it('parses a name once per prefix: the same frozen result again, another for another prefix', () => {
    const name = 'p-duplicity-inc.20240101T000000Z.to.20240102T000000Z.vol3.difftar.gpg';
    const a = parseName(name, 'p-');
    assert.equal(a?.volumeNumber, 3);
    assert.equal(a?.startTime, T0);
    assert.equal(parseName(name, 'p-'), a, 'remembered');
    assert.ok(Object.isFrozen(a));
    assert.throws(() => {
      (a as ParsedName).endTime = 0;
    }, TypeError);
    assert.equal(parseName(name), undefined, 'without the prefix: not a name of this vault');
    assert.equal(parseName(name, { file: 'p-' })?.endTime, T1);
    // A foreign name stays foreign when asked again (its null is what is remembered, not undefined).
    assert.equal(parseName('lockfile'), undefined);
    assert.equal(parseName('lockfile'), undefined);
  });

  it('agrees with duplicity file_naming.parse() on a wide set of names', () => {
    const times = ['20240101T000000Z', '20240101t000000z', '2024-01-01T01:00:00+01:00', '2023-12-31T23:00:00-01:00', '1704067200', '2024-13-01T00:00:00Z', '20240230T000000Z', 'bogus'];
    const names: string[] = [];
    for (const t of times) {
      for (const sfx of ['', '.gpg', '.gz', '.g', '.z', '.part', '.part.gpg', '.foo']) {
        names.push(`duplicity-full.${t}.vol1.difftar${sfx}`, `duplicity-full.${t}.manifest${sfx}`, `duplicity-full-signatures.${t}.sigtar${sfx}`);
        names.push(`duplicity-inc.${t}.to.20240105T000000Z.vol12.difftar${sfx}`, `duplicity-inc.20231201T000000Z.to.${t}.manifest${sfx}`);
        names.push(`duplicity-new-signatures.${t}.to.20240105T000000Z.sigtar${sfx}`);
      }
    }
    for (const sfx of ['', '.g', '.z', '.p', '.p.g']) {
      names.push(`df.tp42v1.a.dt${sfx}`, `df.tp42v1.m${sfx}`, `di.tp42v0.tp42v1.1.dt${sfx}`, `di.tp42v0.tp42v1.m${sfx}`, `dfs.tp42v1.st${sfx}`, `dns.tp42v0.tp42v1.st${sfx}`);
    }
    names.push('duplicity-full.20240101T000000Z.vol1.difftargz', 'duplicity-full.20240101T000000Z.manifestx', 'xduplicity-full.20240101T000000Z.manifest', 'dfx.1.m');
    compareWithDuplicity(names);
    const prefixed = ['pre-duplicity-full.20240101T000000Z.manifest', 'pre-arch-duplicity-full.20240101T000000Z.vol1.difftar.gz', 'pre-sig-duplicity-full-signatures.20240101T000000Z.sigtar', 'pre-man-duplicity-full.20240101T000000Z.manifest', 'duplicity-full.20240101T000000Z.manifest', 'pre-sig-dfs.tp42v1.st'];
    compareWithDuplicity(prefixed, { file_prefix: 'pre-' });
    compareWithDuplicity(prefixed, { file_prefix: 'pre-', file_prefix_archive: 'arch-', file_prefix_signature: 'sig-', file_prefix_manifest: 'man-' });
  });

  it('round-trips the names it writes', () => {
    for (const short of [false, true]) {
      for (const sfx of ['gpg', 'gz', ''] as const) {
        const opts = { short, prefix: 'x_' };
        const v = parseName(volumeName('inc', T1, T0, 7, sfx, opts), 'x_');
        assert.deepEqual([v?.kind, v?.setType, v?.startTime, v?.endTime, v?.volumeNumber, v?.encrypted, v?.gzipped, v?.short], ['volume', 'inc', T0, T1, 7, sfx === 'gpg', sfx === 'gz', short]);
        const m = parseName(manifestName('full', T0, undefined, sfx === 'gpg', opts), 'x_');
        assert.deepEqual([m?.kind, m?.setType, m?.endTime, m?.encrypted, m?.gzipped], ['manifest', 'full', T0, sfx === 'gpg', false]);
        const s = parseName(signatureName('inc', T1, T0, sfx, opts), 'x_');
        assert.deepEqual([s?.kind, s?.setType, s?.startTime, s?.endTime, s?.encrypted, s?.gzipped], ['signature', 'inc', T0, T1, sfx === 'gpg', sfx === 'gz']);
      }
    }
  });
});
