// Runs the real `offsite` command (the bundle esbuild makes; test/setup.ts builds it once per run).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');
export const OFFSITE = path.join(REPO, 'bin', 'offsite');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // A child that exits without reading its input (a failing command) must not fail the test with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs `offsite ARGS` with a private cache folder unless the args give one. */
export function offsite(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [OFFSITE, ...args], opts);
}

/** What a prompt on a terminal is answered with: `type` (and Enter) once the output shows `after`. */
export interface TerminalAnswer {
  readonly after: string;
  readonly type: string;
}

/** The pseudo-terminal: Python's pty module forks the command on one and answers its prompts. */
const PTY_SCRIPT = String.raw`
import json, os, pty, select, sys
req = json.load(sys.stdin)
answers = req['answers']
pid, fd = pty.fork()
if pid == 0:
    os.execve(req['argv'][0], req['argv'], req['env'])
out = b''
seen = 0
while True:
    ready, _, _ = select.select([fd], [], [], req['timeoutS'])
    if not ready:
        os.kill(pid, 9)
        break
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
    if answers and out.find(answers[0]['after'].encode(), seen) >= 0:
        seen = len(out)
        os.write(fd, (answers.pop(0)['type'] + '\r').encode())
_, status = os.waitpid(pid, 0)
print(json.dumps({'code': os.waitstatus_to_exitcode(status), 'output': out.decode('utf8', 'replace'), 'unanswered': len(answers)}))
`;

/**
 * Runs `offsite ARGS` on a terminal (stdin, stdout and stderr a pseudo-terminal, as a person runs it),
 * typing each answer once its prompt shows. `output` is everything the terminal showed; `unanswered`,
 * the answers whose prompt never came.
 */
export async function offsiteOnTerminal(args: string[], answers: TerminalAnswer[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number; output: string; unanswered: number }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = await run(python, ['-c', PTY_SCRIPT], { input: JSON.stringify({ argv: [process.execPath, OFFSITE, ...args], env, answers, timeoutS: (opts.timeoutMs ?? 120_000) / 1000 }) });
  if (r.code !== 0) throw new Error(`the terminal runner failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { code: number; output: string; unanswered: number };
}
