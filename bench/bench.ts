// `npm run bench`: Offsite against duplicity 0.8.22 and restic 0.14 on the same generated workspace,
// in the same run, interleaved (A B C, then B C A, …) so machine drift cancels out; medians of the
// runs; wall, CPU and peak RSS of the whole process tree; file:// and sftp:// (a loopback OpenSSH).
// Writes bench/results/<date>.json and bench/results/latest.md (the table, ratios and targets).
//
//   npm run bench                 the full benchmark (3 runs; ~20k, ~100k files and a 1 GB file)
//   npm run bench -- --quick      a small corpus and one run (smoke test; results in bench/results/tmp/)
//   options: --runs N  --work DIR (corpus cache and scratch; default ~/.cache/offsite-bench)
//            --only a,b (phases: file, sftp, 100k, 1g, ext; and volsize, the --volsize sweep, only
//            when named; again: verify and full restore once more, after a change; edits: the edit
//            days once more)  --keep (leave the scratch folder)
//            --merge FILE: put the new samples into an earlier results FILE (replacing its samples of
//            the same operations) and rewrite it and latest.md
//   npx tsx bench/bench.ts --render FILE     rewrite latest.md (beside FILE) from a results file
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSshd } from '../test/helpers/sshd';
import { duBytes, measure, readInPieces, regularFiles, run, type Cmd, type Measurement } from './measure';
import { renderMarkdown, type Results, type Sample } from './report';
import { extensionMetrics } from './extensionMetrics';
import { duplicity, offsite, restic, type Env, type Remote, type SetRef, type Tool, type ToolName } from './tools';

const repoRoot = path.resolve(__dirname, '..');
const CORPUS_JS = path.join(__dirname, 'corpus.js');
const SMALL_FILE = 'projects/proj3/package-lock.json';
const BIG_FILE = 'data/app.sqlite';

interface Args {
  quick: boolean;
  runs: number;
  work: string;
  only?: Set<string>;
  keep: boolean;
  /** A results file whose samples of the operations measured now are replaced by the new ones. */
  merge?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, runs: 3, work: path.join(os.homedir(), '.cache', 'offsite-bench'), keep: false };
  let runsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--quick') a.quick = true;
    else if (v === '--keep') a.keep = true;
    else if (v === '--runs') {
      a.runs = Number(argv[++i]);
      runsGiven = true;
    } else if (v === '--work') a.work = path.resolve(argv[++i]);
    else if (v === '--only') a.only = new Set(argv[++i].split(','));
    else if (v === '--merge') a.merge = path.resolve(argv[++i]);
    else throw new Error(`unknown option ${v} (see the header of bench/bench.ts)`);
  }
  if (a.quick && !runsGiven) a.runs = 1;
  if (!Number.isInteger(a.runs) || a.runs < 1) throw new Error('--runs must be a whole number ≥ 1');
  return a;
}

/** The generated workspaces: the issue's sizes, or small ones for --quick. */
function variants(quick: boolean) {
  return quick
    ? { w20k: ['--small', '1500', '--big-mb', '8'], w100k: ['--small', '5000', '--big-mb', '1'], w1g: ['--small', '0', '--big-mb', '64'] }
    : { w20k: [] as string[], w100k: ['--small', '96000'], w1g: ['--small', '0', '--big-mb', '1024'] };
}

const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);

function sha1File(file: string): string {
  const h = crypto.createHash('sha1');
  readInPieces(file, (piece) => h.update(piece));
  return h.digest('hex');
}

/** Same regular files (names, sizes, contents) under both folders; throws naming the first difference. */
function sameTree(expected: string, actual: string): number {
  let n = 0;
  for (const r of regularFiles(expected)) {
    const b = path.join(actual, r);
    if (!fs.existsSync(b) || fs.statSync(b).size !== fs.statSync(path.join(expected, r)).size || sha1File(b) !== sha1File(path.join(expected, r))) {
      throw new Error(`restored tree differs at ${r}`);
    }
    n++;
  }
  return n;
}

class Bench {
  readonly samples: Sample[] = [];
  private readonly lastBackup = new Map<string, number>();
  readonly tools: Tool[];
  readonly env: Env;
  private remoteCount = 0;

  constructor(
    readonly args: Args,
    readonly scratch: string,
  ) {
    const home = path.join(scratch, 'home');
    const gnupgHome = path.join(scratch, 'gnupg');
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
    fs.mkdirSync(gnupgHome, { recursive: true, mode: 0o700 });
    this.env = { repoRoot, home, gnupgHome };
    this.tools = [offsite(this.env), duplicity(this.env), restic(this.env)];
  }

  async setupGpg(): Promise<void> {
    // duplicity encrypts with gpg: the throwaway key, imported and trusted (not signed) in a private home.
    fs.writeFileSync(path.join(this.env.gnupgHome, 'gpg.conf'), 'trust-model always\n', { mode: 0o600 });
    await run({ argv: ['gpg', '--batch', '--quiet', '--import', path.join(__dirname, 'keys', 'rsa-sec.asc')], env: { GNUPGHOME: this.env.gnupgHome } });
  }

  async stopGpgAgent(): Promise<void> {
    await run({ argv: ['gpgconf', '--kill', 'gpg-agent'], env: { GNUPGHOME: this.env.gnupgHome } }).catch(() => undefined);
  }

  /** Tools in a different order each run (A B C, B C A, C A B) so none always runs first. */
  order(runNo: number): Tool[] {
    const k = runNo % this.tools.length;
    return [...this.tools.slice(k), ...this.tools.slice(0, k)];
  }

  async newRemote(tool: Tool, label: string, ssh?: Remote['ssh']): Promise<Remote> {
    const base = path.join(this.scratch, 'remotes', `${tool.name}-${label}-${++this.remoteCount}`);
    const r: Remote = { tool: tool.name, dir: path.join(base, 'remote'), cache: path.join(base, 'cache'), ssh };
    fs.mkdirSync(r.dir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(r.cache, { recursive: true, mode: 0o700 });
    if (tool.name === 'restic') fs.rmSync(r.dir, { recursive: true }); // restic init wants to create it
    await tool.init(r);
    return r;
  }

  dropRemote(r: Remote): void {
    fs.rmSync(path.dirname(r.dir), { recursive: true, force: true });
  }

  /** duplicity's set times and mtimes are whole seconds: keep backups of one remote a second apart. */
  async gap(r: Remote): Promise<void> {
    const last = this.lastBackup.get(r.dir);
    if (last !== undefined) {
      const wait = last + 1100 - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }

  async time(op: string, target: 'file' | 'sftp', tool: ToolName, runNo: number, cmd: Cmd, extra: Partial<Sample> = {}): Promise<Measurement> {
    const m = await measure(cmd);
    const s: Sample = { op, target, tool, run: runNo, wall: m.wall, cpu: m.cpu, user: m.user, sys: m.sys, rssMiB: m.rssMiB, ...extra };
    this.samples.push(s);
    log(`${op.padEnd(20)} ${target.padEnd(4)} ${tool.padEnd(9)} run ${runNo}: ${m.wall.toFixed(2)} s wall, ${m.cpu.toFixed(2)} s CPU, ${m.rssMiB.toFixed(0)} MiB${extra.bytesAdded !== undefined ? `, +${(extra.bytesAdded / 1e6).toFixed(2)} MB` : ''}`);
    return m;
  }

  async backup(op: string, target: 'file' | 'sftp', tool: Tool, r: Remote, src: string, full: boolean, runNo: number, withBytes = false): Promise<Measurement> {
    await this.gap(r);
    const before = withBytes ? duBytes(r.dir) : 0;
    const cmd = tool.backup(r, src, full);
    const m = await measure(cmd);
    this.lastBackup.set(r.dir, Date.now());
    const s: Sample = { op, target, tool: tool.name, run: runNo, wall: m.wall, cpu: m.cpu, user: m.user, sys: m.sys, rssMiB: m.rssMiB };
    if (withBytes) s.bytesAdded = duBytes(r.dir) - before;
    this.samples.push(s);
    log(`${op.padEnd(20)} ${target.padEnd(4)} ${tool.name.padEnd(9)} run ${runNo}: ${m.wall.toFixed(2)} s wall, ${m.cpu.toFixed(2)} s CPU, ${m.rssMiB.toFixed(0)} MiB${s.bytesAdded !== undefined ? `, +${(s.bytesAdded / 1e6).toFixed(2)} MB` : ''}`);
    return m;
  }

  /** Restores one file and checks it against `expected`. */
  async restoreFile(op: string, target: 'file' | 'sftp', tool: Tool, r: Remote, src: string, rel: string, at: SetRef, expected: string, runNo: number): Promise<void> {
    const dest = path.join(this.scratch, 'restore');
    fs.rmSync(dest, { recursive: true, force: true });
    const { cmd, output } = tool.restoreFile(r, src, rel, at, dest);
    await this.time(op, target, tool.name, runNo, cmd);
    if (!fs.existsSync(output) || sha1File(output) !== sha1File(expected)) throw new Error(`${tool.name} restored a wrong ${rel} (${op})`);
    fs.rmSync(dest, { recursive: true, force: true });
  }

  /**
   * The full restores: every run of every tool into a new folder of its own, all removed after the
   * last run. Restoring into the place of the previous restore, just deleted, measured the file
   * system more than the tool: ext4 passes over inodes freed in the last ~30 s when it allocates
   * (recently_deleted() in perf), and `cp -a` of the workspace took 3 s on a quiet disk but 9–15 s
   * right after the deletion of another copy; whichever tool ran next paid for the one before.
   */
  async restoreAllRuns(target: 'file' | 'sftp', remotes: Map<ToolName, Remote>, src: string): Promise<void> {
    const dests: string[] = [];
    for (let i = 1; i <= this.args.runs; i++) {
      for (const t of this.order(i)) {
        const dest = path.join(this.scratch, `restore-all-${target}-${t.name}-${i}`);
        dests.push(dest);
        const { cmd, output } = t.restoreAll(remotes.get(t.name)!, src, dest);
        await this.time('restoreAll', target, t.name, i, cmd);
        if (i === 1) sameTree(src, output);
      }
    }
    for (const d of dests) fs.rmSync(d, { recursive: true, force: true });
  }
}

/** A generated workspace, cached under work/corpus (regenerated when its arguments or corpus.js change). */
async function corpus(work: string, name: string, genArgs: string[]): Promise<string> {
  const dir = path.join(work, 'corpus', name);
  const stamp = `${dir}.json`;
  const key = JSON.stringify({ genArgs, corpus: sha1File(CORPUS_JS) });
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === key && fs.existsSync(dir)) return dir;
  log(`generating the ${name} workspace (${genArgs.join(' ') || 'defaults'}), once`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(stamp, { force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  await run({ argv: [process.execPath, CORPUS_JS, 'gen', dir, ...genArgs] });
  fs.writeFileSync(stamp, key);
  return dir;
}

async function copyTree(from: string, to: string): Promise<void> {
  fs.rmSync(to, { recursive: true, force: true });
  await run({ argv: ['cp', '-a', from, to] });
}

/** file:// at ~20k files: full, no-change incremental, verify, full restore, a week of edits, one-file restores. */
async function phaseFile(b: Bench, pristine: string): Promise<void> {
  const R = b.args.runs;
  const src = path.join(b.scratch, 'src20k');
  await copyTree(pristine, src);
  const chain = new Map<ToolName, Remote>();
  const oldest = new Map<ToolName, SetRef>();
  for (let i = 1; i <= R; i++) {
    for (const t of b.order(i)) {
      const r = await b.newRemote(t, 'full');
      const m = await b.backup('full', 'file', t, r, src, true, i);
      if (i === 1) {
        chain.set(t.name, r);
        oldest.set(t.name, { kind: 'at', time: Math.floor(Date.now() / 1000), resticId: t.setId(m.stdout) });
      } else b.dropRemote(r);
    }
  }
  for (let i = 1; i <= R; i++) for (const t of b.order(i)) await b.backup('noChange20k', 'file', t, chain.get(t.name)!, src, false, i);
  for (let i = 1; i <= R; i++) for (const t of b.order(i)) await b.time('verify', 'file', t.name, i, t.verify(chain.get(t.name)!, src));
  await b.restoreAllRuns('file', chain, src);

  // A chain of 10 sets: the full one, R no-change ones, and the rest edit days.
  const days = b.args.quick ? 2 : Math.max(3, 9 - R);
  for (let d = 1; d <= days; d++) {
    await sleep(1100); // duplicity compares whole-second mtimes
    await run({ argv: [process.execPath, CORPUS_JS, 'mutate', src, '--day', String(d)] });
    for (const t of b.order(d)) await b.backup('mutateInc', 'file', t, chain.get(t.name)!, src, false, d, true);
  }
  for (const [rel, label] of [[SMALL_FILE, 'Small'], [BIG_FILE, 'Big']] as const) {
    for (const when of ['Latest', 'Oldest'] as const) {
      for (let i = 1; i <= R; i++) {
        for (const t of b.order(i)) {
          const at: SetRef = when === 'Latest' ? { kind: 'latest' } : oldest.get(t.name)!;
          const expected = path.join(when === 'Latest' ? src : pristine, rel);
          await b.restoreFile(`restore${label}${when}`, 'file', t, chain.get(t.name)!, src, rel, at, expected, i);
        }
      }
    }
  }
  for (const r of chain.values()) b.dropRemote(r);
  fs.rmSync(src, { recursive: true, force: true });
}

/** sftp:// through a loopback OpenSSH: full, no-change incremental, one small file, full restore. */
async function phaseSftp(b: Bench, pristine: string): Promise<void> {
  const R = b.args.runs;
  await withSshd(b, async (ssh) => {
    const chain = new Map<ToolName, Remote>();
    for (let i = 1; i <= R; i++) {
      for (const t of b.order(i)) {
        const r = await b.newRemote(t, 'sftp', ssh);
        await b.backup('full', 'sftp', t, r, pristine, true, i);
        if (i === 1) chain.set(t.name, r);
        else b.dropRemote(r);
      }
    }
    for (let i = 1; i <= R; i++) for (const t of b.order(i)) await b.backup('noChange20k', 'sftp', t, chain.get(t.name)!, pristine, false, i);
    for (let i = 1; i <= R; i++) {
      for (const t of b.order(i)) await b.restoreFile('restoreSmallLatest', 'sftp', t, chain.get(t.name)!, pristine, SMALL_FILE, { kind: 'latest' }, path.join(pristine, SMALL_FILE), i);
    }
    await b.restoreAllRuns('sftp', chain, pristine);
    for (const r of chain.values()) b.dropRemote(r);
  });
}

/** Runs `fn` with a loopback OpenSSH server and the `ssh` settings of a Remote for it; stops the server. */
async function withSshd(b: Bench, fn: (ssh: NonNullable<Remote['ssh']>) => Promise<void>): Promise<void> {
  const sshd = await startSshd();
  try {
    const knownHosts = path.join(b.scratch, 'known_hosts');
    fs.writeFileSync(knownHosts, `${sshd.knownHostsLines().join('\n')}\n`, { mode: 0o600 });
    await fn({ port: sshd.port, user: sshd.user, keyFile: sshd.userKey.file, knownHosts });
  } finally {
    await sshd.stop();
  }
}

/**
 * Offsite alone at several volume sizes (--volsize): full backup, and one-file restores (the small
 * file and the 100 MiB one), to choose the default: small volumes make one-file restores read less.
 */
async function phaseVolsize(b: Bench, pristine: string): Promise<void> {
  const sizes = b.args.quick ? [8, 32] : [8, 16, 32, 64, 200];
  for (let i = 1; i <= b.args.runs; i++) {
    for (const mb of i % 2 ? sizes : [...sizes].reverse()) {
      const t = offsite({ ...b.env, volsizeMB: mb });
      const r = await b.newRemote(t, `vol${mb}`);
      await b.backup(`volsize${mb}:full`, 'file', t, r, pristine, true, i);
      await b.restoreFile(`volsize${mb}:restoreSmall`, 'file', t, r, pristine, SMALL_FILE, { kind: 'latest' }, path.join(pristine, SMALL_FILE), i);
      await b.restoreFile(`volsize${mb}:restoreBig`, 'file', t, r, pristine, BIG_FILE, { kind: 'latest' }, path.join(pristine, BIG_FILE), i);
      b.dropRemote(r);
    }
  }
}

/**
 * Verify and full restore again, on file:// and sftp:// (to measure them after a change, with --merge):
 * a full backup per tool and target (not part of the table), then the runs as in phaseFile/phaseSftp.
 */
async function phaseAgain(b: Bench, pristine: string): Promise<void> {
  const R = b.args.runs;
  const remotes = new Map<ToolName, Remote>();
  for (const t of b.order(1)) {
    const r = await b.newRemote(t, 'again');
    await b.backup('againSetup', 'file', t, r, pristine, true, 1);
    remotes.set(t.name, r);
  }
  for (let i = 1; i <= R; i++) for (const t of b.order(i)) await b.time('verify', 'file', t.name, i, t.verify(remotes.get(t.name)!, pristine));
  await b.restoreAllRuns('file', remotes, pristine);
  for (const r of remotes.values()) b.dropRemote(r);
  await withSshd(b, async (ssh) => {
    const sftp = new Map<ToolName, Remote>();
    for (const t of b.order(1)) {
      const r = await b.newRemote(t, 'again-sftp', ssh);
      await b.backup('againSetup', 'sftp', t, r, pristine, true, 1);
      sftp.set(t.name, r);
    }
    await b.restoreAllRuns('sftp', sftp, pristine);
    for (const r of sftp.values()) b.dropRemote(r);
  });
}

/** Edit days again (wall time and bytes added), after a change, with --merge: as in phaseFile. */
async function phaseEdits(b: Bench, pristine: string): Promise<void> {
  const src = path.join(b.scratch, 'src-edits');
  await copyTree(pristine, src);
  const remotes = new Map<ToolName, Remote>();
  for (const t of b.order(1)) {
    const r = await b.newRemote(t, 'edits');
    await b.backup('editsSetup', 'file', t, r, src, true, 1);
    remotes.set(t.name, r);
  }
  for (let d = 1; d <= Math.max(3, b.args.runs); d++) {
    await sleep(1100); // duplicity compares whole-second mtimes
    await run({ argv: [process.execPath, CORPUS_JS, 'mutate', src, '--day', String(d)] });
    for (const t of b.order(d)) await b.backup('mutateInc', 'file', t, remotes.get(t.name)!, src, false, d, true);
  }
  for (const r of remotes.values()) b.dropRemote(r);
  fs.rmSync(src, { recursive: true, force: true });
}

/** ~100k files: one full backup each (peak RSS), then the no-change incremental. */
async function phase100k(b: Bench, pristine: string): Promise<void> {
  const chain = new Map<ToolName, Remote>();
  for (const t of b.order(1)) {
    const r = await b.newRemote(t, '100k');
    await b.backup('full100k', 'file', t, r, pristine, true, 1);
    chain.set(t.name, r);
  }
  for (let i = 1; i <= b.args.runs; i++) for (const t of b.order(i)) await b.backup('noChange100k', 'file', t, chain.get(t.name)!, pristine, false, i);
  for (const r of chain.values()) b.dropRemote(r);
}

/** A 1 GB file: one full backup and one restore of that file each (peak RSS). */
async function phase1g(b: Bench, pristine: string): Promise<void> {
  for (const t of b.order(1)) {
    const r = await b.newRemote(t, '1g');
    await b.backup('full1G', 'file', t, r, pristine, true, 1);
    await b.restoreFile('restore1G', 'file', t, r, pristine, BIG_FILE, { kind: 'latest' }, path.join(pristine, BIG_FILE), 1);
    b.dropRemote(r);
  }
}

/** `base` with its samples of every (operation, target) that `update` measured replaced by update's. */
function merge(base: Results, update: Results): Results {
  const key = (x: Sample) => `${x.op}\u0000${x.target}`;
  const redone = new Set(update.samples.map(key));
  return {
    ...base,
    samples: [...base.samples.filter((x) => !redone.has(key(x))), ...update.samples],
    extension: { ...base.extension, ...update.extension },
    failures: [...(base.failures ?? []), ...(update.failures ?? [])],
    remeasured: [
      ...(base.remeasured ?? []),
      { date: update.date, ops: update.samples.length ? [...new Set(update.samples.map((x) => x.op))] : ['extension-host metrics'], loadAverage: update.loadAverage },
    ],
  };
}

async function versions(): Promise<Record<string, string>> {
  const v = async (argv: string[]) => (await run({ argv }).catch((e: Error) => e.message)).split('\n')[0].trim();
  return {
    node: process.version,
    duplicity: await v(['duplicity', '--version']),
    restic: await v(['restic', 'version']),
    gpg: await v(['gpg', '--version']),
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: os.release(),
  };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--render') {
    // Rewrites latest.md from a results file (after editing it by hand, or a change of report.ts).
    const file = path.resolve(process.argv[3]);
    const md = renderMarkdown(JSON.parse(fs.readFileSync(file, 'utf8')) as Results);
    fs.writeFileSync(path.join(path.dirname(file), 'latest.md'), md);
    process.stdout.write(md);
    return;
  }
  const args = parseArgs(process.argv.slice(2));
  const want = (p: string) => !args.only || args.only.has(p);
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first (npm run bench does)');
  fs.mkdirSync(args.work, { recursive: true, mode: 0o700 });
  const scratch = fs.mkdtempSync(path.join(args.work, 'run-'));
  const b = new Bench(args, scratch);
  const started = new Date();
  const load0 = os.loadavg();
  const v = variants(args.quick);
  const extension: Results['extension'] = {};
  const failures: string[] = [];
  // A phase that fails is reported and the others still run (an hour's run is not lost to one error).
  const phase = async (name: string, fn: () => Promise<void>) => {
    if (['volsize', 'again', 'edits'].includes(name) ? !args.only?.has(name) : !want(name)) return;
    try {
      await fn();
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message.split('\n').slice(0, 6).join(' ')}`);
      log(`phase ${name} FAILED: ${(e as Error).stack ?? String(e)}`);
    }
  };
  try {
    await b.setupGpg();
    const w20k = await corpus(args.work, args.quick ? 'quick-20k' : 'w20k', v.w20k);
    await phase('file', () => phaseFile(b, w20k));
    await phase('sftp', () => phaseSftp(b, w20k));
    await phase('100k', async () => phase100k(b, await corpus(args.work, args.quick ? 'quick-100k' : 'w100k', v.w100k)));
    await phase('1g', async () => phase1g(b, await corpus(args.work, args.quick ? 'quick-1g' : 'w1g', v.w1g)));
    await phase('volsize', () => phaseVolsize(b, w20k));
    await phase('again', () => phaseAgain(b, w20k));
    await phase('edits', () => phaseEdits(b, w20k));
    await phase('ext', async () => {
      Object.assign(extension, await extensionMetrics({ repoRoot, scratch, corpus: w20k, publicKey: path.join(__dirname, 'keys', 'rsa-pub.asc'), log }));
      // The real extension host's numbers come from `npm run bench:extension` (code-server's VS Code):
      // the latest of them, with their date.
      const real = path.join(__dirname, 'results', 'extension-host.json');
      if (fs.existsSync(real)) {
        const r = JSON.parse(fs.readFileSync(real, 'utf8')) as Record<string, number | string>;
        const from = `npm run bench:extension, ${String(r.date ?? '').slice(0, 10)}`;
        extension[`activation in the real extension host (${from}), ms`] = r.activationMs;
        extension[`event-loop delay of the real extension host during Backup Workspace, p99 / max ms (${from})`] = `${Number(r.eventLoopDelayP99Ms).toFixed(1)} / ${Number(r.eventLoopDelayMaxMs).toFixed(1)}`;
      }
    });
  } finally {
    await b.stopGpgAgent();
    if (!args.keep) fs.rmSync(scratch, { recursive: true, force: true });
  }

  let results: Results = {
    date: started.toISOString(),
    quick: args.quick,
    runs: args.runs,
    machine: await versions(),
    loadAverage: { start: load0, end: os.loadavg() },
    samples: b.samples,
    extension,
    failures,
  };
  if (args.merge) results = merge(JSON.parse(fs.readFileSync(args.merge, 'utf8')) as Results, results);
  const outDir = path.join(__dirname, 'results', ...(args.quick ? ['tmp'] : []));
  fs.mkdirSync(outDir, { recursive: true });
  // A partial run (--only) never replaces latest.md: it gets its own files, unless merged into a full one.
  const name = args.merge ? path.basename(args.merge, '.json') : `${started.toISOString().slice(0, 16).replace(':', '-')}${args.only ? `-${[...args.only].join('-')}` : ''}`;
  const mdName = args.only && !args.merge ? `${name}.md` : 'latest.md';
  fs.writeFileSync(path.join(outDir, `${name}.json`), `${JSON.stringify(results, null, 1)}\n`);
  const md = renderMarkdown(results);
  fs.writeFileSync(path.join(outDir, mdName), md);
  process.stdout.write(md);
  log(`results: ${path.join(outDir, `${name}.json`)} and ${mdName}`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
