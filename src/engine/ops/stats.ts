// duplicity's "Backup Statistics" block: the same fields with the same meanings, so scripts written
// for duplicity's output keep working (statistics.py: StatsObj, StatsDeltaProcess).

export interface BackupStats {
  StartTime: number; // seconds since the epoch, with fractions
  EndTime: number;
  ElapsedTime: number;
  SourceFiles: number; // every selected path, directories included
  SourceFileSize: number; // their sizes (st_size), as read for new and changed files
  NewFiles: number;
  NewFileSize: number;
  DeletedFiles: number;
  ChangedFiles: number;
  ChangedFileSize: number;
  ChangedDeltaSize: number; // kept for compatibility: duplicity 0.8.22 never fills it in either
  DeltaEntries: number; // new + changed + deleted
  RawDeltaSize: number; // bytes of file data and deltas stored in the volumes
  TotalDestinationSizeChange: number; // bytes uploaded to the remote
  Errors: number; // paths that could not be read
}

export function emptyStats(now = Date.now() / 1000): BackupStats {
  return {
    StartTime: now, EndTime: now, ElapsedTime: 0,
    SourceFiles: 0, SourceFileSize: 0, NewFiles: 0, NewFileSize: 0, DeletedFiles: 0,
    ChangedFiles: 0, ChangedFileSize: 0, ChangedDeltaSize: 0, DeltaEntries: 0, RawDeltaSize: 0,
    TotalDestinationSizeChange: 0, Errors: 0,
  };
}

/** duplicity's get_byte_summary_string: "0 bytes", "1 byte", "8.01 KB", "1.23 MB", … (3 significant figures). */
export function byteSummary(n: number): string {
  if (n < 0) return `-${byteSummary(-n)}`;
  const units: [number, string][] = [[1024 ** 4, 'TB'], [1024 ** 3, 'GB'], [1024 ** 2, 'MB'], [1024, 'KB']];
  for (const [size, unit] of units) {
    if (n >= size) {
      const v = n / size;
      return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${unit}`;
    }
  }
  return n === 1 ? '1 byte' : `${Math.round(n)} bytes`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function prettyTime(t: number): string {
  // duplicity: time.asctime(time.localtime(t)), e.g. "Fri Nov 27 08:21:43 2026"
  // Names from tables: toLocaleString loads ICU's locale data, 13 ms of every backup (cpu-prof).
  const d = new Date(t * 1000);
  const day = DAYS[d.getDay()];
  const mon = MONTHS[d.getMonth()];
  const pad = (x: number) => String(x).padStart(2, '0');
  return `${day} ${mon} ${String(d.getDate()).padStart(2, ' ')} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${d.getFullYear()}`;
}

function prettySeconds(s: number): string {
  // duplicity's inttopretty, e.g. "1 minute 5.21 seconds"
  const parts: string[] = [];
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s - hours * 3600) / 60);
  const seconds = s - hours * 3600 - minutes * 60;
  if (hours) parts.push(hours === 1 ? '1 hour' : `${hours} hours`);
  if (minutes) parts.push(minutes === 1 ? '1 minute' : `${minutes} minutes`);
  if (seconds === 1) parts.push('1 second');
  else if (parts.length === 0 || seconds > 1) parts.push(`${seconds.toFixed(2)} seconds`);
  return parts.join(' ');
}

export function formatStats(s: BackupStats): string {
  const bytes = (k: keyof BackupStats) => `${k} ${s[k]} (${byteSummary(s[k])})`;
  return [
    '--------------[ Backup Statistics ]--------------',
    `StartTime ${s.StartTime.toFixed(2)} (${prettyTime(s.StartTime)})`,
    `EndTime ${s.EndTime.toFixed(2)} (${prettyTime(s.EndTime)})`,
    `ElapsedTime ${s.ElapsedTime.toFixed(2)} (${prettySeconds(s.ElapsedTime)})`,
    `SourceFiles ${s.SourceFiles}`,
    bytes('SourceFileSize'),
    `NewFiles ${s.NewFiles}`,
    bytes('NewFileSize'),
    `DeletedFiles ${s.DeletedFiles}`,
    `ChangedFiles ${s.ChangedFiles}`,
    bytes('ChangedFileSize'),
    bytes('ChangedDeltaSize'),
    `DeltaEntries ${s.DeltaEntries}`,
    bytes('RawDeltaSize'),
    bytes('TotalDestinationSizeChange'),
    `Errors ${s.Errors}`,
    '-------------------------------------------------',
    '',
  ].join('\n');
}
