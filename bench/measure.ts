// Runs one command and measures it: wall time (Node's clock around the whole run), CPU time (user +
// system of the command and every descendant it waited for, from GNU time's wait4() rusage), and peak
// RSS of the whole process tree (the sum over the tree, sampled from /proc, because GNU time's %M is
// only the largest single process: duplicity's gpg children and restic's or Offsite's threads must count).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Cmd {
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

export interface Measurement {
  /** Seconds. */
  readonly wall: number;
  readonly user: number;
  readonly sys: number;
  /** user + sys, seconds. */
  readonly cpu: number;
  /** Peak of the summed RSS of the process tree, MiB. */
  readonly rssMiB: number;
  readonly stdout: string;
}

const PAGE = 4096;
const SAMPLE_MS = 20;
const MiB = 1024 * 1024;

/** Pids of `root` and all its descendants (via /proc/<pid>/task/<tid>/children). */
function tree(root: number): number[] {
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop()!;
    out.push(pid);
    let tasks: string[];
    try {
      tasks = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const t of tasks) {
      try {
        for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'latin1').split(' ')) if (c) todo.push(Number(c));
      } catch {
        // the task ended meanwhile
      }
    }
  }
  return out;
}

function treeRss(root: number): number {
  let pages = 0;
  for (const pid of tree(root)) {
    try {
      pages += Number(fs.readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]);
    } catch {
      // exited meanwhile
    }
  }
  return pages * PAGE;
}

export class CommandError extends Error {}

/** Runs `cmd` under /usr/bin/time; rejects with its stderr when it exits non-zero (unless allowed). */
export async function measure(cmd: Cmd, opts: { allowExit?: readonly number[] } = {}): Promise<Measurement> {
  const timeFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'offsite-bench-')), 'time');
  try {
    const start = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, ...cmd.argv], {
      env: { ...process.env, ...cmd.env },
      cwd: cmd.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-1_000_000)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
    let peak = 0;
    const sample = () => {
      if (child.pid !== undefined) peak = Math.max(peak, treeRss(child.pid));
    };
    const timer = setInterval(sample, SAMPLE_MS);
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
    });
    clearInterval(timer);
    const wall = Number(process.hrtime.bigint() - start) / 1e9;
    if (code !== 0 && !(opts.allowExit ?? []).includes(code)) {
      throw new CommandError(`${cmd.argv.join(' ')} exited with ${code}:\n${stderr.slice(-4000)}`);
    }
    const [, user, sys, maxKb] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
    return { wall, user, sys, cpu: user + sys, rssMiB: Math.max(peak, maxKb * 1024) / MiB, stdout };
  } finally {
    fs.rmSync(path.dirname(timeFile), { recursive: true, force: true });
  }
}

/** Runs a helper command (not measured); returns stdout, throws on failure. */
export async function run(cmd: Cmd): Promise<string> {
  const child = spawn(cmd.argv[0], cmd.argv.slice(1), { env: { ...process.env, ...cmd.env }, cwd: cmd.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new CommandError(`${cmd.argv.join(' ')} exited with ${code}:\n${stderr.slice(-4000)}`);
  return stdout;
}

/** The regular files under `dir`, as paths relative to it (none when it is missing). */
export function* regularFiles(dir: string): Generator<string> {
  if (fs.existsSync(dir)) yield* filesBelow(dir, '');
}

function* filesBelow(dir: string, rel: string): Generator<string> {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) yield* filesBelow(dir, r);
    else if (e.isFile()) yield r;
  }
}

/** The one buffer readInPieces reads through: it is synchronous, and onPiece must not call it again. */
const pieceBuffer = Buffer.allocUnsafe(1 << 20);

/** Reads `file` in pieces of up to 1 MiB, handing each to `onPiece` (valid until it returns). */
export function readInPieces(file: string, onPiece: (piece: Buffer) => void = () => {}): void {
  const fd = fs.openSync(file, 'r');
  try {
    for (let n; (n = fs.readSync(fd, pieceBuffer, 0, pieceBuffer.length, null)) > 0; ) onPiece(pieceBuffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
}

/** Total bytes of the regular files under `dir`. */
export function duBytes(dir: string): number {
  let total = 0;
  for (const r of regularFiles(dir)) total += fs.statSync(path.join(dir, r)).size;
  return total;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
