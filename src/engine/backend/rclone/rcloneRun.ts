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

/** A remote split as rclone reads a connection string (fspath.Parse): name, parameters, then ":path". */
interface RemoteParts {
  /** ":s3" (a backend made on the fly) or "myremote" (a section of rclone.conf). */
  readonly name: string;
  /** The parameters as written: "key=value" (the value maybe quoted) or "key". */
  readonly params: string[];
  /** From the ":" that ends the parameters (or the name) to the end. */
  readonly path: string;
}

/**
 * The name, the parameters and the path of a remote; undefined for a local path (no "name:" first)
 * and for parameters that no ":" ends (rclone says what is wrong). A value is quoted when it starts
 * with ' or ", to the same quote not doubled; elsewhere a quote is a plain character.
 */
function splitRemote(remote: string): RemoteParts | undefined {
  const m = /^:?[^:,/\\]+(?=[,:])/.exec(remote);
  if (!m) return undefined;
  const params: string[] = [];
  let i = m[0].length;
  while (remote[i] === ',') {
    const start = ++i;
    while (i < remote.length && !',:='.includes(remote[i])) i++;
    if (remote[i] === '=') {
      const q = remote[++i];
      if (q === '"' || q === "'") {
        for (i++; i < remote.length; i++) {
          if (remote[i] !== q) continue;
          if (remote[i + 1] !== q) break;
          i++; // a doubled quote
        }
        if (i >= remote.length) return undefined;
        i++;
      }
      while (i < remote.length && !',:'.includes(remote[i])) i++;
    }
    params.push(remote.slice(start, i));
  }
  if (remote[i] !== ':') return undefined;
  return { name: m[0], params, path: remote.slice(i) };
}

/** A remote's "name[,parameters]:" and its path from that ":" on; undefined for a local path. */
export function remoteParts(remote: string): { name: string; remote: string; path: string } | undefined {
  const parts = splitRemote(remote);
  return parts && { name: parts.name, remote: remote.slice(0, remote.length - parts.path.length + 1), path: parts.path };
}

/** A connection string's value as rclone reads it: quoted in "…" or '…', a quote doubled inside. */
function unquote(v: string): string {
  const q = v[0];
  if ((q === '"' || q === "'") && v.length >= 2 && v.endsWith(q)) return v.slice(1, -1).split(q + q).join(q);
  return v;
}

/** A value written back into a connection string, quoted when rclone would otherwise split it. */
function quote(v: string): string {
  return /[,:'"]/.test(v) ? `'${v.split("'").join("''")}'` : v;
}

/**
 * rclone's variables for an option of a remote (fs.ConfigToEnv): RCLONE_CONFIG_ + NAME_OPTION in
 * capitals. The option's "-" is "_"; the name's is "_" in older rclones and kept in newer ones (1.60
 * reads RCLONE_CONFIG_MY-BOX_PASS, not RCLONE_CONFIG_MY_BOX_PASS): a name with "-" gets both.
 */
function setConfigEnv(env: Record<string, string>, remoteName: string, option: string, value: string): void {
  const name = remoteName.toUpperCase();
  const opt = option.toUpperCase().replace(/-/g, '_');
  env[`RCLONE_CONFIG_${name}_${opt}`] = value;
  env[`RCLONE_CONFIG_${name.replace(/-/g, '_')}_${opt}`] = value;
}

/** The parameters whose values are remotes themselves: alias, crypt, chunker, compress, hasher, cache (remote); union, combine (upstreams). */
const NESTED_REMOTE = 'remote';
const NESTED_UPSTREAMS = 'upstreams';

export interface HiddenSecrets {
  /** The remote to put on rclone's command line: no secret in it. */
  readonly remote: string;
  /** rclone's environment additions that carry the secrets. */
  readonly env: Record<string, string>;
  /** Why the secrets cannot be kept off the command line (the URL is refused); undefined when they can. */
  readonly problem?: string;
  /** The names given to backends made on the fly, with what the user wrote ("offsite_s3_1" → ":s3"), for messages. */
  readonly renamed: ReadonlyArray<readonly [given: string, written: string]>;
}

/**
 * A remote without its secret parameters, at any depth, which go into rclone's environment instead:
 * a command line is readable by every user of the machine (/proc/PID/cmdline, ps), a process's
 * environment only by its owner. rclone reads a remote's options there as RCLONE_CONFIG_NAME_OPTION,
 * above the config file (its "remote specific" variables). For a section of rclone.conf ("name,pass=P:
 * dir") that is its own name; a backend made on the fly (":s3,secret_access_key=S:bucket") becomes a
 * remote defined by those variables alone (RCLONE_CONFIG_OFFSITE_S3_1_TYPE=s3, its secrets beside it),
 * so that no other remote of the same type sees them (rclone's RCLONE_S3_… variables would reach every
 * s3 remote of the command, also one of rclone.conf that an alias or union names). Nested remotes (the
 * value of crypt's or alias's `remote`, the remotes of union's `upstreams`) are handled alike. Unlike
 * a backend made on the fly, such a remote can save what its backend changes (a refreshed OAuth token)
 * to rclone.conf under its name. Refused
 * (`problem`): a secret that rclone would read as a path (a value with an unquoted ":" ended the
 * parameters early), one in a parameter whose value is not a remote, and a remote of rclone.conf given
 * different secrets in two places (one variable cannot hold both).
 */
export function secretsToEnv(remote: string): HiddenSecrets {
  const env: Record<string, string> = {};
  const renamed: Array<[string, string]> = [];
  /** For each remote of rclone.conf seen: its secret parameters, to find one given different ones. */
  const sections = new Map<string, string>();
  let problem: string | undefined;
  const refuse = (why: string): void => {
    problem ??= why;
  };
  const rewriteUpstreams = (value: string): string =>
    value
      .split(' ')
      .map((u) => {
        // combine's "dir=remote:path", union's "remote:path:ro" (:nc, :writeback).
        const dir = /^[^:,=]+=/.exec(u)?.[0] ?? '';
        const mode = /:(?:ro|nc|writeback)$/.exec(u.slice(dir.length))?.[0] ?? '';
        return dir + rewrite(u.slice(dir.length, u.length - mode.length)) + mode;
      })
      .join(' ');
  const rewrite = (r: string): string => {
    const parts = splitRemote(r);
    if (!parts) return r;
    const { name, params, path } = parts;
    if (path.split(',').some(isSecretParam)) refuse(`a parameter's value holding ":" must be quoted (name='a:b'), or rclone reads the parameters after it, secrets too, as the path`);
    const secrets: Array<[string, string]> = [];
    const kept = params.flatMap((p) => {
      const eq = p.indexOf('=');
      if (eq < 0) return [p];
      const key = p.slice(0, eq);
      const value = unquote(p.slice(eq + 1));
      if (isSecretParam(p)) {
        secrets.push([key, value]);
        return [];
      }
      const nested = key === NESTED_REMOTE ? rewrite(value) : key === NESTED_UPSTREAMS ? rewriteUpstreams(value) : value;
      if (nested === value) {
        if (redactSecretAssignments(value) !== value) refuse(`the parameter ${key} holds a secret that cannot be kept off rclone's command line`);
        return [p];
      }
      return [`${key}=${quote(nested)}`];
    });
    let section = name;
    if (secrets.length > 0 && name.startsWith(':')) {
      section = `offsite_${name.slice(1).replace(/[^A-Za-z0-9]/g, '')}_${renamed.length + 1}`;
      renamed.push([section, name]);
      setConfigEnv(env, section, 'type', name.slice(1));
    } else if (secrets.length > 0) {
      const given = JSON.stringify(secrets);
      if ((sections.get(name) ?? given) !== given) refuse(`the remote "${name}" is given different secrets in two places`);
      sections.set(name, given);
    }
    for (const [key, value] of secrets) setConfigEnv(env, section, key, value);
    return `${section}${kept.map((p) => `,${p}`).join('')}${path}`;
  };
  const hidden = rewrite(remote);
  if (problem) {
    problem += ': write it as a remote of rclone.conf (`rclone config`) and name that remote in the URL';
  }
  return { remote: hidden, env, problem, renamed };
}

/** Whether a parameter ("key=value") names a secret by its key. */
function isSecretParam(p: string): boolean {
  const eq = p.indexOf('=');
  return eq > 0 && SECRET_PARAM.test(p.slice(0, eq));
}

/**
 * Secrets in a connection string (key=value pairs between ':backend,' and ':') and in URLs; the remote
 * as written or as given to rclone (secretsToEnv) is shown as displayRemote, a backend made on the fly
 * by the name the user wrote (":s3", not "offsite_s3_1").
 */
export function makeRedactor(remote: string, hidden: HiddenSecrets = secretsToEnv(remote)): (text: string) => string {
  const shown = displayRemote(remote);
  // The longest given name first: offsite_s3_1 is the start of offsite_s3_10.
  const renamed = [...hidden.renamed].sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    let t = text.split(remote).join(shown).split(hidden.remote).join(shown);
    for (const [given, written] of renamed) t = t.split(given).join(written);
    return maskPasswordsIn(redactSecretAssignments(t));
  };
}

/**
 * remote:path for messages: a connection string loses its parameters (":s3,k=v:bucket" → ":s3:bucket").
 * What rclone reads as the path may hold secrets too, when a value's ":" was left unquoted
 * (":s3,access_key_id=acct:user,secret_access_key=S:bucket"): their values are shown as ***.
 */
export function displayRemote(remote: string): string {
  const parts = splitRemote(remote);
  if (parts) return parts.params.length > 0 ? `${parts.name}${redactSecretValues(parts.path)}` : remote;
  // Parameters that no ":" ends: the name alone.
  const m = /^(:?[^:,]*),/.exec(remote);
  return m ? `${m[1]}:` : remote;
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
