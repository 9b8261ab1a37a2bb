// duplicity's time strings (dup_time.py, FORMAT.md §2.3): the UTC names of sets, the old local-time
// names with an offset, and the --time / --restore-time specs users type (genstrtotime()).
import { OffsiteError } from '../errors';

/** 20240101T000000Z (UTC), duplicity's timetostring() with --old-filenames off. */
export function timeToString(t: number): string {
  const d = new Date(t * 1000);
  return (
    String(d.getUTCFullYear()).padStart(4, '0') +
    pad2(d.getUTCMonth() + 1) +
    pad2(d.getUTCDate()) +
    'T' +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds()) +
    'Z'
  );
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

// New format: 16 characters, one 'T' (dup_time.stringtotime() does not look at the last character).
const NEW_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})[^T]$/;
// Old format: local time with its offset; the separator (':' by default, '--time-separator') is the
// same in the time and in the offset. 'Z' means UTC.
const OLD_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})([^0-9A-Za-z])(\d{2})\5(\d{2})(?:(Z)|([+-])(\d{2})\5(\d{2}))$/;
// ISO 8601 as people and tools write it, beyond duplicity's forms: minutes without seconds, a
// fraction of a second (dropped), a blank for the 'T', and a zone as Z, +hh:mm, +hhmm or +hh; no zone
// is local time.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)?$/;

/**
 * duplicity's stringtotime(): '20240101T000000Z' and old names like '2024-01-01T01:00:00+01:00'
 * (any one-character time separator, e.g. '2024-01-01T01.00.00+01.00'); undefined if not a time.
 */
export function stringToTime(s: string): number | undefined {
  let m = NEW_RE.exec(s);
  if (m) return utc(+m[1], +m[2], +m[3], +m[4], +m[5], +m[6]);
  m = OLD_RE.exec(s);
  if (!m) return undefined;
  const t = utc(+m[1], +m[2], +m[3], +m[4], +m[6], +m[7]);
  if (t === undefined || m[8] === 'Z') return t;
  const offset = (+m[10] * 60 + +m[11]) * 60;
  return m[9] === '+' ? t - offset : t + offset;
}

// The range checks of stringtotime(); out-of-range days roll over as calendar.timegm() does.
function utc(y: number, mo: number, d: number, h: number, mi: number, s: number): number | undefined {
  if (!valid(y, mo, d, h, mi, s)) return undefined;
  return Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
}

function valid(y: number, mo: number, d: number, h: number, mi: number, s: number): boolean {
  return y > 1900 && y < 2100 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && s <= 61;
}

function local(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number | undefined {
  if (!valid(y, mo, d, h, mi, s)) return undefined;
  const date = new Date(y, mo - 1, d, h, mi, s);
  return Math.floor(date.getTime() / 1000);
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, D: 86400, W: 7 * 86400, M: 30 * 86400, Y: 365 * 86400 };

/** dup_time.intstringtoseconds(): '3D', '1h78m', '2W'; undefined if not an interval. */
export function intervalToSeconds(s: string): number | undefined {
  if (s.length < 2) return undefined;
  let total = 0;
  const re = /(\d+)([smhDWMY])/y;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
  }
  return total;
}

const DATE_RES = [
  /^(?<year>\d{4})[-/](?<month>\d{1,2})[-/](?<day>\d{1,2})$/,
  /^(?<month>\d{1,2})[-/](?<day>\d{1,2})[-/](?<year>\d{4})$/,
  /^(?<year>\d{4})(?<month>\d{2})(?<day>\d{2})Z$/,
];

const TIME_FORMS_HINT =
  'Use "now", an interval before now like 3D, 2W or 1h30m (units s m h D W M Y), a date like 2024-01-31, ' +
  '2024/01/31 or 01/31/2024 (local midnight), a date and time like 2024-01-31T12:00 (local), ' +
  '2024-01-31T12:00:00Z or 2024-01-31T12:00+01:00, a backup time like 20240131T120000Z, or seconds since 1970';

/**
 * duplicity's genstrtotime: 'now', epoch seconds, ISO 8601 datetimes (with/without zone), YYYY-MM-DD,
 * YYYY/MM/DD, MM/DD/YYYY (dates in local time as duplicity does), intervals with units s m h D W M Y and
 * combinations ('3D', '1h78m', '2W') meaning now minus that. Bad input → OffsiteError('usage') with
 * the accepted forms in the hint.
 *
 * Two deliberate differences: a local date or time is converted with the zone's offset *at that date*
 * (daylight saving time included), where duplicity always uses the standard-time offset; and ISO 8601
 * as commonly written is read too (2024-01-31T12:00, 2024-01-31 12:00:00.5, +0100), which duplicity
 * refuses.
 */
export function parseTimeSpec(spec: string, now: number): number {
  if (spec === 'now') return now;
  if (/^\d+$/.test(spec)) return Number(spec);
  const t = stringToTime(spec) ?? isoDateTime(spec);
  if (t) return t; // duplicity treats 0 as "not parsed" here too
  const interval = intervalToSeconds(spec);
  if (interval !== undefined) return now - interval;
  for (const re of DATE_RES) {
    const g = re.exec(spec)?.groups;
    if (!g) continue;
    const d = local(+g.year, +g.month, +g.day);
    if (d !== undefined) return d;
    break;
  }
  throw new OffsiteError('usage', `Bad time string ${JSON.stringify(spec)}`, { hint: TIME_FORMS_HINT });
}

function isoDateTime(spec: string): number | undefined {
  const m = ISO_RE.exec(spec);
  if (!m) return undefined;
  const [y, mo, d, h, mi, sec] = [+m[1], +m[2], +m[3], +m[4], +m[5], +(m[6] ?? 0)];
  if (m[7] === undefined && m[8] === undefined) return local(y, mo, d, h, mi, sec);
  const t = utc(y, mo, d, h, mi, sec);
  if (t === undefined || m[7] === 'Z') return t;
  const offset = (+m[9] * 60 + +(m[10] ?? 0)) * 60;
  return m[8] === '+' ? t - offset : t + offset;
}

/** dup_time.inttopretty(): 3725 → '1 hour 2 minutes 5 seconds'. */
export function formatInterval(seconds: number): string {
  const parts: string[] = [];
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  if (hours > 1) parts.push(`${hours} hours`);
  else if (hours === 1) parts.push('1 hour');
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  if (minutes > 1) parts.push(`${minutes} minutes`);
  else if (minutes === 1) parts.push('1 minute');
  if (seconds === 1) parts.push('1 second');
  else if (parts.length === 0 || seconds > 1) parts.push(Number.isInteger(seconds) ? `${seconds} seconds` : `${seconds.toFixed(2)} seconds`);
  return parts.join(' ');
}
