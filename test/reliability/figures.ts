// The figures of the reliability suites (cases tried, cases passed, seeds), collected while they run
// and printed as one table when the whole mocha run ends (a root `after` hook, registered by the
// first suite that imports this file), so CI logs show what was exercised, and with which seeds.
// OFFSITE_RELIABILITY_SEED=<n> replays a run: every suite derives its seeds from it.

export interface SuiteFigures {
  readonly suite: string;
  tried: number;
  passed: number;
  readonly seeds: Set<string>;
  /** Other figures worth printing (e.g. round-trip cycles). */
  readonly notes: string[];
}

const table = new Map<string, SuiteFigures>();

/** The run's master seed: from the environment (to replay a failure), else the clock. */
export const MASTER_SEED: number = (() => {
  const env = process.env.OFFSITE_RELIABILITY_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isSafeInteger(n)) throw new Error(`OFFSITE_RELIABILITY_SEED must be an integer (got ${env})`);
    return n;
  }
  return Date.now() % 2_147_483_647;
})();

/** A suite's own seed, derived from the master seed and its name (stable across runs of one seed). */
export function suiteSeed(suite: string): number {
  let h = MASTER_SEED ^ 0x9e3779b9;
  for (let i = 0; i < suite.length; i++) h = Math.imul(h ^ suite.charCodeAt(i), 0x01000193) >>> 0;
  return h % 2_147_483_647;
}

export function figuresOf(suite: string): SuiteFigures {
  let f = table.get(suite);
  if (!f) {
    f = { suite, tried: 0, passed: 0, seeds: new Set(), notes: [] };
    table.set(suite, f);
  }
  return f;
}

/**
 * Runs one case of a suite and counts it: tried always, passed when `body` resolves. The seed (if any)
 * goes into the table and into the error of a failing case, so the failure can be replayed.
 */
export async function runCase<T>(suite: string, label: string, seed: number | string | undefined, body: () => Promise<T>): Promise<T> {
  const f = figuresOf(suite);
  f.tried++;
  if (seed !== undefined) f.seeds.add(String(seed));
  try {
    const r = await body();
    f.passed++;
    return r;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message = `[${suite}: ${label}${seed === undefined ? '' : `, seed ${seed}`}; replay with OFFSITE_RELIABILITY_SEED=${MASTER_SEED}] ${err.message}`;
    throw err;
  }
}

/** The table, as printed at the end of the run. */
export function formatFigures(): string {
  const rows = [...table.values()].sort((a, b) => a.suite.localeCompare(b.suite));
  const seedText = (f: SuiteFigures) => {
    const s = [...f.seeds];
    return s.length <= 3 ? s.join(', ') : `${s.slice(0, 3).join(', ')} … (${s.length} seeds)`;
  };
  const head = ['suite', 'cases tried', 'cases passed', 'seeds', 'notes'];
  const body = rows.map((f) => [f.suite, String(f.tried), String(f.passed), seedText(f) || '-', f.notes.join('; ')]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) => `  ${r.map((c, i) => (i === 1 || i === 2 ? c.padStart(width[i]) : c.padEnd(width[i]))).join('  ')}`;
  return [
    '',
    `  Reliability and security suites (master seed ${MASTER_SEED}; replay with OFFSITE_RELIABILITY_SEED=${MASTER_SEED})`,
    line(head),
    line(width.map((w) => '-'.repeat(w))),
    ...body.map(line),
    '',
  ].join('\n');
}

// Root hook: mocha adds an `after` called at a file's top level (outside any describe) to the root
// suite, which ends after every test file has run.
after(function () {
  if (table.size) process.stdout.write(`${formatFigures()}\n`);
});
