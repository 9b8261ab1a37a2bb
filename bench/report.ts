// The benchmark's results file and its Markdown table: medians per operation and tool, the ratios
// Offsite/duplicity and Offsite/restic, and the issue's targets, met or not.
import { median } from './measure';
import type { ToolName } from './tools';

export interface Sample {
  op: string;
  target: 'file' | 'sftp';
  tool: ToolName;
  run: number;
  wall: number;
  cpu: number;
  user: number;
  sys: number;
  rssMiB: number;
  /** Bytes the backup added to the remote. */
  bytesAdded?: number;
}

export interface Results {
  date: string;
  quick: boolean;
  runs: number;
  machine: Record<string, string>;
  loadAverage: { start: number[]; end: number[] };
  samples: Sample[];
  /** Extension-host metrics (see extensionMetrics.ts); empty when not measured. */
  extension: Record<string, number | string>;
  /** Phases that failed (their error), so a partial table says why it is partial. */
  failures?: string[];
  /** Operations measured again later and merged in (bench.ts --merge). */
  remeasured?: { date: string; ops: string[]; loadAverage: { start: number[]; end: number[] } }[];
}

type Metric = 'wall' | 'cpu' | 'rssMiB' | 'bytesAdded';

interface Row {
  readonly label: string;
  readonly op: string;
  readonly target: 'file' | 'sftp';
  readonly metric: Metric;
}

const ROWS: readonly Row[] = [
  { label: 'full backup', op: 'full', target: 'file', metric: 'wall' },
  { label: 'full backup, sftp://', op: 'full', target: 'sftp', metric: 'wall' },
  { label: 'no-change incremental, 20k files', op: 'noChange20k', target: 'file', metric: 'wall' },
  { label: 'no-change incremental, 20k files, sftp://', op: 'noChange20k', target: 'sftp', metric: 'wall' },
  { label: 'no-change incremental, 100k files', op: 'noChange100k', target: 'file', metric: 'wall' },
  { label: 'incremental after an edit day', op: 'mutateInc', target: 'file', metric: 'wall' },
  { label: 'bytes added by an edit day', op: 'mutateInc', target: 'file', metric: 'bytesAdded' },
  { label: 'restore one small file, latest of 10 sets', op: 'restoreSmallLatest', target: 'file', metric: 'wall' },
  { label: 'restore one small file, oldest of 10 sets', op: 'restoreSmallOldest', target: 'file', metric: 'wall' },
  { label: 'restore the 100 MiB file, latest of 10 sets', op: 'restoreBigLatest', target: 'file', metric: 'wall' },
  { label: 'restore the 100 MiB file, oldest of 10 sets', op: 'restoreBigOldest', target: 'file', metric: 'wall' },
  { label: 'restore one small file, sftp://', op: 'restoreSmallLatest', target: 'sftp', metric: 'wall' },
  { label: 'full restore', op: 'restoreAll', target: 'file', metric: 'wall' },
  { label: 'full restore, sftp://', op: 'restoreAll', target: 'sftp', metric: 'wall' },
  { label: 'verify (all data)', op: 'verify', target: 'file', metric: 'wall' },
  { label: 'full backup, 100k files (1 run)', op: 'full100k', target: 'file', metric: 'wall' },
  { label: 'full backup with a 1 GB file (1 run)', op: 'full1G', target: 'file', metric: 'wall' },
  { label: 'restore the 1 GB file (1 run)', op: 'restore1G', target: 'file', metric: 'wall' },
];

const TOOLS: readonly ToolName[] = ['offsite', 'duplicity', 'restic'];

export class Summary {
  constructor(private readonly samples: readonly Sample[]) {}

  values(op: string, target: string, tool: ToolName, metric: Metric): number[] {
    return this.samples.filter((s) => s.op === op && s.target === target && s.tool === tool && s[metric] !== undefined).map((s) => s[metric] as number);
  }

  med(op: string, target: string, tool: ToolName, metric: Metric): number | undefined {
    const v = this.values(op, target, tool, metric);
    return v.length ? median(v) : undefined;
  }

  /** Offsite's highest peak RSS over these operations. */
  peakRss(ops: readonly string[]): number | undefined {
    const v = this.samples.filter((s) => s.tool === 'offsite' && ops.includes(s.op)).map((s) => s.rssMiB);
    return v.length ? Math.max(...v) : undefined;
  }
}

function fmt(v: number | undefined, metric: Metric): string {
  if (v === undefined) return '—';
  if (metric === 'bytesAdded') return `${(v / 1e6).toFixed(2)} MB`;
  if (metric === 'rssMiB') return `${v.toFixed(0)} MiB`;
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} s`;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

const fr = (r: number | undefined) => (r === undefined ? '—' : `${r.toFixed(2)}×`);

export interface TargetCheck {
  readonly what: string;
  readonly target: string;
  readonly value: string;
  readonly met: boolean | undefined;
}

export function checkTargets(s: Summary): TargetCheck[] {
  const out: TargetCheck[] = [];
  const vsDup = (what: string, op: string, metric: Metric, max: number, target: 'file' | 'sftp' = 'file') => {
    const r = ratio(s.med(op, target, 'offsite', metric), s.med(op, target, 'duplicity', metric));
    out.push({ what, target: `≤ ${max}× duplicity`, value: fr(r), met: r === undefined ? undefined : r <= max });
  };
  vsDup('full backup, file://', 'full', 'wall', 0.33);
  const rr = ratio(s.med('full', 'file', 'offsite', 'wall'), s.med('full', 'file', 'restic', 'wall'));
  out.push({ what: 'full backup, file://', target: '≤ 1.0× restic', value: fr(rr), met: rr === undefined ? undefined : rr <= 1.0 });
  vsDup('no-change incremental, 20k files', 'noChange20k', 'wall', 0.15);
  vsDup('no-change incremental, 100k files', 'noChange100k', 'wall', 0.15);
  vsDup('bytes added by an edit day', 'mutateInc', 'bytesAdded', 1.0);
  vsDup('restore one small file, latest', 'restoreSmallLatest', 'wall', 0.2);
  vsDup('restore one small file, oldest of 10 sets', 'restoreSmallOldest', 'wall', 0.2);
  vsDup('restore the 100 MiB file, latest', 'restoreBigLatest', 'wall', 0.2);
  vsDup('restore the 100 MiB file, oldest of 10 sets', 'restoreBigOldest', 'wall', 0.2);
  vsDup('full restore', 'restoreAll', 'wall', 0.75);
  const rss = (what: string, ops: string[]) => {
    const v = s.peakRss(ops);
    out.push({ what: `peak RSS, ${what}`, target: '≤ 160 MiB', value: fmt(v, 'rssMiB'), met: v === undefined ? undefined : v <= 160 });
  };
  rss('20k files (every operation)', ['full', 'noChange20k', 'verify', 'restoreAll', 'mutateInc', 'restoreSmallLatest', 'restoreSmallOldest', 'restoreBigLatest', 'restoreBigOldest']);
  rss('100k files', ['full100k', 'noChange100k']);
  rss('a 1 GB file', ['full1G', 'restore1G']);
  const sf = ratio(s.med('full', 'sftp', 'offsite', 'wall'), s.med('full', 'file', 'offsite', 'wall'));
  out.push({ what: 'full backup, sftp:// vs file://', target: '≤ 1.3×', value: fr(sf), met: sf === undefined ? undefined : sf <= 1.3 });
  return out;
}

export function renderMarkdown(r: Results): string {
  const s = new Summary(r.samples);
  const has = (row: Row) => TOOLS.some((t) => s.values(row.op, row.target, t, row.metric).length > 0);
  const lines: string[] = [];
  lines.push(`# Offsite vs duplicity vs restic${r.quick ? ' (quick smoke run: small corpus, not representative)' : ''}`, '');
  lines.push(`${r.date.slice(0, 10)}, medians of ${r.runs} interleaved run(s) unless noted; wall time (bytes for the edit day). ${Object.entries(r.machine).map(([k, v]) => `${k}: ${v}`).join('; ')}. Load average ${r.loadAverage.start.map((x) => x.toFixed(1)).join('/')} at the start, ${r.loadAverage.end.map((x) => x.toFixed(1)).join('/')} at the end.`, '');
  lines.push('| operation | Offsite | duplicity | restic | Offsite/duplicity | Offsite/restic |', '|---|---|---|---|---|---|');
  for (const row of ROWS.filter(has)) {
    const v = TOOLS.map((t) => s.med(row.op, row.target, t, row.metric));
    lines.push(`| ${row.label} | ${v.map((x) => fmt(x, row.metric)).join(' | ')} | ${fr(ratio(v[0], v[1]))} | ${fr(ratio(v[0], v[2]))} |`);
  }
  lines.push('', 'CPU time (user + system, whole process tree) and peak RSS (summed over the process tree), medians:', '');
  lines.push('| operation | Offsite | duplicity | restic |', '|---|---|---|---|');
  for (const row of ROWS.filter((x) => x.metric === 'wall' && has(x))) {
    lines.push(`| ${row.label} | ${TOOLS.map((t) => `${fmt(s.med(row.op, row.target, t, 'cpu'), 'cpu')} CPU, ${fmt(s.med(row.op, row.target, t, 'rssMiB'), 'rssMiB')}`).join(' | ')} |`);
  }
  lines.push('', '## Targets (issue #5)', '', '| what | target | Offsite | met |', '|---|---|---|---|');
  for (const c of checkTargets(s)) lines.push(`| ${c.what} | ${c.target} | ${c.value} | ${c.met === undefined ? 'not measured' : c.met ? 'yes' : '**no**'} |`);
  const vol = [...new Set(r.samples.filter((x) => x.op.startsWith('volsize')).map((x) => Number(x.op.slice(7, x.op.indexOf(':')))))].sort((a, b) => a - b);
  if (vol.length) {
    lines.push('', '## Volume size (Offsite --volsize, medians)', '', '| volume size | full backup | CPU | peak RSS | restore small file | restore 100 MiB file |', '|---|---|---|---|---|---|');
    for (const mb of vol) {
      const m = (op: string, metric: Metric) => fmt(s.med(`volsize${mb}:${op}`, 'file', 'offsite', metric), metric);
      lines.push(`| ${mb} MB | ${m('full', 'wall')} | ${m('full', 'cpu')} | ${m('full', 'rssMiB')} | ${m('restoreSmall', 'wall')} | ${m('restoreBig', 'wall')} |`);
    }
  }
  if (Object.keys(r.extension).length) {
    lines.push('', '## Extension host', '', '| metric | value |', '|---|---|');
    for (const [k, v] of Object.entries(r.extension)) lines.push(`| ${k} | ${typeof v === 'number' ? v.toFixed(1) : v} |`);
  }
  for (const m of r.remeasured ?? []) lines.push('', `Measured again on ${m.date.slice(0, 16).replace('T', ' ')} and merged in: ${m.ops.filter((o) => !o.endsWith('Setup')).join(', ')}.`);
  if (r.failures?.length) lines.push('', '**Failed phases**:', '', ...r.failures.map((f) => `- ${f}`));
  lines.push('', 'Reproduce: `npm run bench` (see bench/README.md). Raw samples: the JSON file of the same date in bench/results/.', '');
  return lines.join('\n');
}
