import * as assert from 'node:assert/strict';
import { OffsiteError } from '../../../src/engine/errors';
import { formatInterval, intervalToSeconds, parseTimeSpec, stringToTime, timeToString } from '../../../src/engine/chain/time';
import { runPython } from '../../helpers/dupSamples';

const NOW = 1800000000; // 2027-01-15T08:00:00Z

// duplicity's dup_time.genstrtotime() with a fixed current time, in a given TZ.
const PY_GEN = `
import gettext, json, sys
gettext.install('duplicity')
from duplicity import dup_time, log
log.setup(); log.setverbosity(log.ERROR)
a = json.load(sys.stdin)
out = []
for s in a['specs']:
    try:
        out.append(dup_time.genstrtotime(s, override_curtime=a['now']))
    except dup_time.TimeException:
        out.append(None)
print(json.dumps(out))
`;

function withTz<T>(tz: string, f: () => T): T {
  const old = process.env.TZ;
  process.env.TZ = tz;
  try {
    return f();
  } finally {
    if (old === undefined) delete process.env.TZ;
    else process.env.TZ = old;
  }
}

function ours(spec: string): number | null {
  try {
    return parseTimeSpec(spec, NOW);
  } catch (e) {
    assert.ok(OffsiteError.is(e, 'usage'), `${spec}: ${String(e)}`);
    return null;
  }
}

describe('time strings', () => {
  it('timeToString / stringToTime (new format, UTC)', () => {
    assert.equal(timeToString(1704067200), '20240101T000000Z');
    assert.equal(timeToString(1795699837), '20261126T133037Z');
    assert.equal(timeToString(0), '19700101T000000Z');
    assert.equal(stringToTime('20240101T000000Z'), 1704067200);
    assert.equal(stringToTime('20261126T133037Z'), 1795699837);
    for (let t = 946684800; t < 4102444800; t += 86400 * 37 + 3661) assert.equal(stringToTime(timeToString(t)), t);
  });

  it('stringToTime reads the old formats and refuses junk', () => {
    assert.equal(stringToTime('2024-01-01T01:00:00+01:00'), 1704067200);
    assert.equal(stringToTime('2023-12-31T16:00:00-08:00'), 1704067200);
    assert.equal(stringToTime('2024-01-01T00:00:00Z'), 1704067200);
    assert.equal(stringToTime('2024-01-01T05.30.00+05.30'), 1704067200); // --time-separator .
    for (const s of ['', 'now', '2024-01-01', '20240101T000000', '2024-01-01T00:00:00+01.00', '1899-01-01T00:00:00Z', '20241301T000000Z', '20240101T240000Z', 'x0240101T000000Z']) {
      assert.equal(stringToTime(s), undefined, s);
    }
  });

  it('intervals', () => {
    assert.equal(intervalToSeconds('3D'), 3 * 86400);
    assert.equal(intervalToSeconds('1h78m'), 3600 + 78 * 60);
    assert.equal(intervalToSeconds('2W'), 14 * 86400);
    assert.equal(intervalToSeconds('1Y2M3D4h5m6s'), 365 * 86400 + 60 * 86400 + 3 * 86400 + 4 * 3600 + 5 * 60 + 6);
    for (const s of ['3', 'D', '3d', '3D4', '-3D', '3 D', '']) assert.equal(intervalToSeconds(s), undefined, s);
  });

  it('parseTimeSpec agrees with duplicity genstrtotime (several time zones, winter dates)', () => {
    // MM / M: a month of standard time in the zone (duplicity always uses the standard offset)
    const specs = [
      'now', '1704067200', '0', '2024MM01T000000Z', '2024-MM-01T01:00:00+01:00', '2024-MM-01T00:00:00Z', '2024-MM-15T12:30:00',
      '3D', '1h78m', '2W', '10s', '1Y', '5M', '2024-MM-31', '2024/M/31', 'M/31/2024', 'MM-31-2024', '2024MM31Z',
      'ROLL', '2024-13-01', 'yesterday', '3d', '', '1899-01-01', 'Now', 'M/30/1999',
    ];
    for (const tz of ['UTC', 'Asia/Kolkata', 'America/New_York', 'Australia/Adelaide']) {
      const month = tz === 'Australia/Adelaide' ? 7 : 1;
      const list = specs.map((x) => x.replace('MM', String(month).padStart(2, '0')).replace(/\bM\b/g, String(month)).replace('ROLL', month === 1 ? '2024-02-30' : '2024-06-31'));
      const py = runPython<(number | null)[]>(PY_GEN, { specs: list, now: NOW }, { TZ: tz });
      withTz(tz, () => list.forEach((s, i) => assert.equal(ours(s), py[i], `${tz}: ${JSON.stringify(s)}`)));
    }
  });

  it('converts local dates with the offset of that date (duplicity ignores daylight saving time)', () => {
    withTz('Europe/Berlin', () => {
      assert.equal(parseTimeSpec('2024-07-01', NOW), Date.UTC(2024, 5, 30, 22) / 1000); // CEST, +02:00
      assert.equal(parseTimeSpec('2024-01-01', NOW), Date.UTC(2023, 11, 31, 23) / 1000); // CET, +01:00
      assert.equal(parseTimeSpec('2024-07-01T12:00:00', NOW), Date.UTC(2024, 6, 1, 10) / 1000);
    });
    const py = runPython<(number | null)[]>(PY_GEN, { specs: ['2024-07-01'], now: NOW }, { TZ: 'Europe/Berlin' });
    assert.equal(py[0], Date.UTC(2024, 5, 30, 23) / 1000); // duplicity: standard offset in summer too
  });

  it('reads ISO 8601 as commonly written, which duplicity refuses: no seconds, a fraction, a blank, +hhmm and +hh zones', () => {
    withTz('Europe/Berlin', () => {
      const noon = Date.UTC(2024, 6, 1, 10) / 1000; // 12:00 CEST
      for (const s of ['2024-07-01T12:00', '2024-07-01 12:00', '2024-07-01T12:00:00.750', '2024-07-01 12:00:00,5']) assert.equal(parseTimeSpec(s, NOW), noon, s);
      for (const s of ['2024-07-01T10:00Z', '2024-07-01T12:00+02:00', '2024-07-01T12:00:00+0200', '2024-07-01T12:00+02', '2024-07-01T07:30-02:30', '2024-07-01T10:00:00.123Z']) {
        assert.equal(parseTimeSpec(s, NOW), noon, s);
      }
    });
    for (const s of ['2024-07-01T12', '2024-07-01T25:00', '2024-07-01T12:60', '2024-07-01T12:00+2', '2024-07-01T12:00 Z', '2024-07-01T12:00:00.Z']) {
      assert.equal(ours(s), null, s);
    }
    const py = runPython<(number | null)[]>(PY_GEN, { specs: ['2024-07-01T12:00', '2024-07-01 12:00:00'], now: NOW }, { TZ: 'UTC' });
    assert.deepEqual(py, [null, null], 'duplicity refuses them (the difference is deliberate)');
  });

  it('explains the accepted forms on bad input', () => {
    try {
      parseTimeSpec('last tuesday', NOW);
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(OffsiteError.is(e, 'usage'));
      assert.match(e.message, /last tuesday/);
      assert.match(e.hint ?? '', /3D/);
      assert.match(e.hint ?? '', /2024-01-31/);
    }
  });

  it('formatInterval mirrors inttopretty', () => {
    assert.equal(formatInterval(0), '0 seconds');
    assert.equal(formatInterval(1), '1 second');
    assert.equal(formatInterval(3725), '1 hour 2 minutes 5 seconds');
    assert.equal(formatInterval(7200), '2 hours');
    assert.equal(formatInterval(61), '1 minute 1 second');
    assert.equal(formatInterval(2.5), '2.50 seconds');
  });
});
