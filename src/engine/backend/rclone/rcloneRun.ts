// Running the rclone program: its environment, its errors (rclone's exit codes say little, so its
// last error line is read and classified), and the redaction of secrets that a connection-string
// remote (":s3,secret_access_key=…:bucket") would otherwise print back in its messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { BackendError, type BackendErrorKind } from '../backend';
import { maskPasswordsIn, redactSecretAssignments, redactSecretValues, SECRET_PARAM } from '../backendUtil';

export interface RcloneEnv {
  /** The rclone program (default "rclone" on PATH). */
  readonly binary: string;
  /** Arguments before the command: --config FILE, retry settings. */
  readonly globalArgs: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Removes secrets from a text that may quote the remote. */
  readonly redact: (text: string) => string;
  /** The remote as shown to the user. */
  readonly where: string;
}

export interface RcloneResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Keeps this much of the end of stderr: rclone prints its final error last. */
const STDERR_TAIL = 64 * 1024;

/**
 * The environment for rclone. Debian's rclone 1.60 cannot use AWS_CA_BUNDLE (every S3 remote then
 * fails with "LoadCustomCABundleError … unsupported transport", even over http), so that variable is
 * handed over as rclone's own RCLONE_CA_CERT instead.
 */
export function rcloneEnv(base: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  if (env.AWS_CA_BUNDLE !== undefined) {
    env.RCLONE_CA_CERT ??= env.AWS_CA_BUNDLE;
    delete env.AWS_CA_BUNDLE;
  }
  return env;
}

/**
 * A connection-string remote (":s3,access_key_id=A,secret_access_key=S:bucket", "name,pass=P:path")
 * without its secret parameters, which go into rclone's environment instead: a command line is
 * readable by every user of the machine (/proc/PID/cmdline, ps), a process's environment only by its
 * owner. rclone reads them there with the same priority (its "remote specific" variables,
 * RCLONE_CONFIG_NAME_OPTION, for a named remote; its backend's, RCLONE_S3_OPTION, for ":s3"), above
 * the config file. Parameters whose names do not say secret, and anything after the remote's ":",
 * stay as they are; `secretInPath`: that rest holds what looks like a secret parameter (a value with
 * an unquoted ":" ended the parameters early: rclone would read the rest, secrets too, as the path).
 */
export function secretsToEnv(remote: string): { remote: string; env: Record<string, string>; secretInPath: boolean } {
  const m = /^(:?)([^:,]*),/.exec(remote);
  if (!m) return { remote, env: {}, secretInPath: false };
  const params: string[] = [];
  let quote: string | undefined;
  let start = m[0].length;
  let end = -1;
  for (let i = start; i < remote.length && end < 0; i++) {
    const c = remote[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ',' || c === ':') {
      params.push(remote.slice(start, i));
      start = i + 1;
      if (c === ':') end = i;
    }
  }
  if (end < 0) return { remote, env: {}, secretInPath: false }; // no ":" after the parameters: rclone says what is wrong
  const env: Record<string, string> = {};
  const prefix = m[1] === ':' ? `RCLONE_${m[2]}` : `RCLONE_CONFIG_${m[2]}`;
  const isSecret = (p: string) => p.includes('=') && SECRET_PARAM.test(p.slice(0, p.indexOf('=')));
  const kept = params.filter((p) => {
    if (!isSecret(p)) return true;
    const eq = p.indexOf('=');
    env[`${prefix}_${p.slice(0, eq)}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_')] = unquote(p.slice(eq + 1));
    return false;
  });
  const path = remote.slice(end);
  return { remote: `${m[1]}${m[2]}${kept.map((p) => `,${p}`).join('')}${path}`, env, secretInPath: path.split(',').some(isSecret) };
}

/** A connection string's value as rclone reads it: quoted in "…" or '…', a quote doubled inside. */
function unquote(v: string): string {
  const q = v[0];
  if ((q === '"' || q === "'") && v.length >= 2 && v.endsWith(q)) return v.slice(1, -1).split(q + q).join(q);
  return v;
}

/** Secrets in a connection string (key=value pairs between ':backend,' and ':') and in URLs. */
export function makeRedactor(remote: string): (text: string) => string {
  const shown = displayRemote(remote);
  return (text) => maskPasswordsIn(redactSecretAssignments(text.split(remote).join(shown)));
}

/**
 * remote:path for messages: a connection string loses its parameters (":s3,k=v:bucket" → ":s3:bucket").
 * What rclone reads as the path may hold secrets too, when a value's ":" was left unquoted
 * (":s3,access_key_id=acct:user,secret_access_key=S:bucket"): their values are shown as ***.
 */
export function displayRemote(remote: string): string {
  // The name ends at the first ',' or ':'; parameters run to the first ':' outside quotes.
  const m = /^(:?[^:,]*),/.exec(remote);
  if (!m) return remote;
  let quote: string | undefined;
  for (let i = m[0].length; i < remote.length; i++) {
    const c = remote[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ':') return redactSecretValues(`${m[1]}${remote.slice(i)}`);
  }
  return `${m[1]}:`;
}

/** Starts rclone; the caller handles stdin and stdout. stderr's tail is gathered in `stderr()`. */
export function spawnRclone(r: RcloneEnv, args: readonly string[], stdin: 'pipe' | 'ignore' = 'ignore'): { child: ChildProcess; stderr: () => string; exited: Promise<number> } {
  const child = spawn(r.binary, [...r.globalArgs, ...args], { env: r.env, stdio: [stdin, 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    err += d;
    if (err.length > 2 * STDERR_TAIL) err = err.slice(-STDERR_TAIL);
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  exited.catch(() => undefined);
  return { child, stderr: () => r.redact(err), exited };
}

/** Runs rclone to the end; stdout is gathered (small outputs only: lsjson, listremotes). */
export async function runRclone(r: RcloneEnv, args: readonly string[], signal?: AbortSignal): Promise<RcloneResult> {
  const { child, stderr, exited } = spawnRclone(r, args);
  const out: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  const onAbort = (): void => {
    stopChild(child);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const code = await exited;
    return { code, stdout: Buffer.concat(out), stderr: stderr() };
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** SIGTERM, then SIGKILL if it lingers. */
export function stopChild(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, 2000);
  t.unref();
  child.once('close', () => clearTimeout(t));
}

/** The line that says what went wrong, without rclone's timestamp. */
export function lastError(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\s+/, '').trim())
    .filter((l) => l !== '');
  const failed = [...lines].reverse().find((l) => /^Failed to /.test(l));
  const picked = failed ?? [...lines].reverse().find((l) => /^(ERROR|CRITICAL)\b/.test(l)) ?? lines.at(-1) ?? '';
  // Go errors continue on "caused by:" lines: keep the cause, it names the real problem.
  const idx = lines.lastIndexOf(picked);
  const cause = lines.slice(idx + 1).find((l) => /^caused by:/.test(l));
  const text = cause ? `${picked} (${cause})` : picked;
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

const PATTERNS: ReadonlyArray<[BackendErrorKind | 'config' | 'ca', RegExp]> = [
  ['config', /didn't find section in config file|couldn't find type field|config file ".*" not found|unknown backend type|NOTICE: Config file .* not found/i],
  ['ca', /LoadCustomCABundleError/i],
  ['transient', /connection refused|no such host|i\/o timeout|timed out|timeout awaiting|Client\.Timeout|deadline exceeded|connection reset|broken pipe|unexpected EOF|network is unreachable|tls handshake|temporar|try again|(status code|HTTP)[: ]+(500|502|503|504|429)\b|too many requests|rate ?limit|SlowDown|ServiceUnavailable|InternalError/i],
  ['auth', /SignatureDoesNotMatch|InvalidAccessKeyId|invalid_grant|unauthori[sz]ed|(status code|HTTP)[: ]+401\b|authentication failed|invalid credentials|token (has )?expired|ExpiredToken|InvalidToken|permission denied \(publickey/i],
  ['noSpace', /no space left|quota|insufficient storage|(status code|HTTP)[: ]+507\b|storage full/i],
  ['permission', /AccessDenied|permission denied|forbidden|(status code|HTTP)[: ]+403\b|read-only file system/i],
  ['notFound', /directory not found|object not found|doesn't exist|does not exist|not found|no such file|NoSuchKey|NoSuchBucket|(status code|HTTP)[: ]+404\b/i],
];

/** A failed rclone run → BackendError with a message from rclone's own last error line. */
export function classifyRclone(r: RcloneEnv, res: { code: number; stderr: string }, op: string, name: string | undefined): BackendError {
  const line = lastError(res.stderr) || `rclone exited with code ${res.code}`;
  const what = `${op}${name ? ` of ${name}` : ''} on ${r.where}`;
  // The final error line decides; earlier lines may be retries of another problem.
  const kind = (PATTERNS.find(([, re]) => re.test(line)) ?? PATTERNS.find(([, re]) => re.test(res.stderr)))?.[0] ?? (res.code === 5 ? 'transient' : 'permanent');
  switch (kind) {
    case 'config':
      return new BackendError('permanent', op, name, `rclone does not know the remote of ${r.where}: ${line}`, {
        hint: 'Add it with `rclone config` (or check its name with `rclone listremotes`); RCLONE_CONFIG names another config file',
      });
    case 'ca':
      return new BackendError('permanent', op, name, `rclone cannot load the CA bundle for ${r.where}: ${line}`, {
        hint: 'Unset AWS_CA_BUNDLE for rclone, and give a custom CA with RCLONE_CA_CERT instead',
      });
    case 'transient':
      return new BackendError('transient', op, name, `rclone could not reach the remote (${what}): ${line}`, {
        hint: 'Check the network and the remote\'s settings (rclone config show); this may be temporary',
      });
    case 'auth':
      return new BackendError('auth', op, name, `The remote refused rclone's credentials (${what}): ${line}`, {
        hint: 'Check the keys or log in again with `rclone config reconnect REMOTE:`',
      });
    case 'noSpace':
      return new BackendError('noSpace', op, name, `The remote is full or over quota (${what}): ${line}`, { hint: 'Free some space there, or remove old backups' });
    case 'permission':
      return new BackendError('permission', op, name, `Permission denied (${what}): ${line}`, { hint: 'Give the account of this rclone remote read and write access there' });
    case 'notFound':
      return new BackendError('notFound', op, name, `${name ? `${name} does not exist on ${r.where}` : `${r.where} does not exist`}: ${line}`, {
        hint: 'Check the remote URL, or list the remote to see what it holds',
      });
    default:
      return new BackendError(kind, op, name, `rclone failed (${what}): ${line}`, { hint: 'Run the same rclone command by hand with -vv to see more' });
  }
}
