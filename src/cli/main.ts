// The `offsite` command: the same engine as the extension, for cron and for machines without VS Code.
// Output contract (scripts depend on it): results on stdout, one clear line per error on stderr;
// exit 0 on success, 1 on failure, 3 when a backup completed but some files could not be read.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import '../engine/backend/all';
import { openBackend } from '../engine/backend/registry';
import { RetryBackend } from '../engine/backend/retryBackend';
import type { Backend } from '../engine/backend/backend';
import { ArchiveDir, archiveDirFor, defaultCacheRoot, keyCacheDir } from '../engine/cache/archiveDir';
import { parseTimeSpec, timeToString } from '../engine/chain/time';
import { codeRoute } from '../engine/codeRoute';
import { cryptoForBackup, cryptoForRead, type KeyConfig } from '../engine/cryptoConfig';
import { generateKeyPair } from '../engine/crypto/keys';
import { OffsiteError, isCancellation } from '../engine/errors';
import type { Logger } from '../engine/log';
import { indexFromBytes, indexToString } from '../engine/pathIndex';
import { backup } from '../engine/ops/backup';
import { cleanup } from '../engine/ops/cleanup';
import { KEEP_RECENT_SECONDS } from '../engine/ops/audit';
import { damageAdvice, describeInProgress, describeSet, fileHistory, formatListLine, formatStatus, listFiles, status, TYPE_WORDS } from '../engine/ops/inspect';
import { describeNotRestored } from '../engine/ops/notRestored';
import { restore, type RestoreResult } from '../engine/ops/restore';
import { removeAllButNFull, removeOlderThan, type RemovalPlan } from '../engine/ops/retention';
import { formatStats } from '../engine/ops/stats';
import { verify } from '../engine/ops/verify';
import { DEFAULT_DRILL_SAMPLE, drill, recordDrill } from '../engine/ops/drill';
import type { SelectionRule } from '../engine/scan/scanner';
import { literalRulePath } from '../engine/scan/selection';
import { promptSecret } from './prompt';

const MiB = 1024 * 1024;
/** Default volume size, chosen by measurement (README, "Volume size"): small enough that restoring one file reads little. */
export const DEFAULT_VOLSIZE_MB = 32;

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface Globals {
  archiveDir?: string;
  verbose?: boolean;
  quiet?: boolean;
  sshKey?: string;
  knownHosts?: string;
  acceptHostKey?: string;
  concurrency?: string;
  s3EndpointUrl?: string;
  s3Profile?: string;
  s3StorageClass?: string;
}

function makeLogger(g: Globals): Logger {
  const out = (level: string) => (m: string) => process.stderr.write(`${level}${m}\n`);
  return {
    debug: g.verbose ? out('') : () => {},
    info: g.verbose ? out('') : () => {},
    warn: g.quiet ? () => {} : out('Warning: '),
    error: out('Error: '),
  };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** --include/--exclude keep their command-line order (duplicity: the first matching rule wins). */
function ruleOption(kind: 'include' | 'exclude') {
  return (v: string) => {
    currentRules.push({ kind, glob: v });
    return v;
  };
}
let currentRules: SelectionRule[] = [];

/**
 * Refuses a rule that names a path from the current folder instead of SOURCE_DIR: a literal relative
 * path (no glob characters) that is not in SOURCE_DIR, but from here is a path inside it
 * (`--exclude ws/node_modules` for `offsite backup ws …` run above ws), which would leave out or take
 * in nothing. Said with the rule meant. Any other rule that matches nothing is the walk's warning.
 */
function checkRulesRelativeToSource(source: string, rules: readonly SelectionRule[]): void {
  const root = path.resolve(source);
  const exists = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
  for (const rule of rules) {
    const literal = literalRulePath(root, rule);
    if (literal === undefined) continue;
    const { path: g, dirOnly } = literal;
    const fromHere = path.resolve(g);
    const meant = path.relative(root, fromHere);
    if (meant === '' || meant.startsWith('..') || path.isAbsolute(meant)) continue;
    if (exists(path.join(root, g)) || !exists(fromHere)) continue;
    throw new OffsiteError('usage', `The --${rule.kind} rule ${JSON.stringify(rule.glob)} names nothing in ${root}, but is ${fromHere} from the current folder`, {
      hint: `Rules are read relative to SOURCE_DIR: write --${rule.kind} ${meant}${dirOnly ? '/' : ''}`,
    });
  }
}

/**
 * The way the last main() went, when it succeeded (codeRoute: 'backup:inc-probe', 'restore:path', …):
 * bin/offsite adds the compiled code of a way its code cache has not seen (src/launch/codeCache.ts).
 */
let route: string | undefined;
/** What the command's action found that decides its route (a backup's result, a restore's path). */
let outcome: Parameters<typeof codeRoute>[1];

export function codeRoutes(): string[] {
  return route === undefined ? [] : [route];
}

async function passphraseFor(what: string): Promise<string | undefined> {
  const env = process.env.OFFSITE_PASSPHRASE;
  if (env !== undefined) return env;
  const answer = await promptSecret(`Passphrase for ${what}: `);
  if (answer === undefined) {
    throw new OffsiteError('passphrase', `A passphrase is needed for ${what}`, { hint: 'Set OFFSITE_PASSPHRASE, or run offsite on a terminal to be asked', needs: { input: 'passphrase', wrong: false } });
  }
  return answer;
}

function keyConfig(o: { encryptKey?: string[]; signKey?: string; key?: string }): KeyConfig {
  return { encryptKeys: o.encryptKey, signKey: o.signKey, restoreKey: o.key, passphrase: passphraseFor };
}

/** --concurrency N: a whole number ≥ 1, checked here for every remote (s3 and rclone ignored a bad one). */
function concurrencyOption(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new OffsiteError('usage', `--concurrency must be a whole number of at least 1, not ${v}`, { hint: 'For example --concurrency 8' });
  }
  return n;
}

function spaced(question: string): string {
  return /\s$/.test(question) ? question : `${question} `;
}

async function openRemote(url: string, g: Globals, log: Logger, signal: AbortSignal): Promise<Backend> {
  const backend = await openBackend(url, {
    signal,
    log: (level, m) => log[level](m),
    // The engine's questions end with a colon; the answer goes after a space.
    prompt: (q) => promptSecret(spaced(q)),
    options: {
      sshKey: g.sshKey,
      knownHosts: g.knownHosts,
      acceptHostKey: g.acceptHostKey,
      concurrency: concurrencyOption(g.concurrency),
      s3EndpointUrl: g.s3EndpointUrl,
      s3Profile: g.s3Profile,
      s3StorageClass: g.s3StorageClass,
    },
  });
  return new RetryBackend(backend, { onRetry: (e, attempt, delay) => log.warn(`${e.message}; retrying (attempt ${attempt}) in ${Math.round(delay / 1000)} s`) });
}

function cacheRoot(g: Globals): string {
  return g.archiveDir ? path.resolve(g.archiveDir) : defaultCacheRoot();
}

function archiveFor(url: string, g: Globals): ArchiveDir {
  // --archive-dir is the root of the cache, like duplicity's; each remote has its own folder in it.
  return ArchiveDir.open(archiveDirFor(url, cacheRoot(g)));
}

function parseTime(spec: string | undefined): number | undefined {
  return spec === undefined ? undefined : parseTimeSpec(spec, Math.floor(Date.now() / 1000));
}

function relPath(p: string | undefined) {
  return p === undefined ? undefined : indexFromBytes(argBytes(p));
}

/**
 * The bytes of a command-line argument as they were given. Node decodes its arguments as UTF-8 and
 * puts U+FFFD for bytes that are not, but a file name need not be UTF-8 (`--path $'bad\xffname'`);
 * Linux keeps the arguments' bytes in /proc/self/cmdline.
 */
function argBytes(value: string): Buffer {
  const decoded = Buffer.from(value);
  if (!value.includes('\uFFFD')) return decoded;
  let cmdline: Buffer;
  try {
    cmdline = fs.readFileSync('/proc/self/cmdline');
  } catch {
    return decoded;
  }
  for (let at = 0; at < cmdline.length; ) {
    const end = cmdline.indexOf(0, at) < 0 ? cmdline.length : cmdline.indexOf(0, at);
    const arg = cmdline.subarray(at, end);
    at = end + 1;
    if (arg.toString() === value) return arg;
    const eq = arg.indexOf(0x3d); // --path=VALUE
    if (eq > 2 && arg[0] === 0x2d && arg[1] === 0x2d && arg.subarray(eq + 1).toString() === value) return arg.subarray(eq + 1);
  }
  return decoded;
}

function volsize(mb: string | undefined): number {
  const n = mb === undefined ? DEFAULT_VOLSIZE_MB : Number(mb);
  if (!Number.isFinite(n) || n < 1 || n > 4096) throw new OffsiteError('usage', `--volsize must be a number of MB between 1 and 4096 (got ${mb})`);
  return Math.round(n * MiB);
}

function keepRecentSeconds(hours: string | undefined): number | undefined {
  if (hours === undefined) return undefined;
  const n = Number(hours);
  if (hours.trim() === '' || !Number.isFinite(n) || n < 0) throw new OffsiteError('usage', `--keep-recent must be a number of hours, 0 or more (got ${hours})`);
  return Math.round(n * 3600);
}

function printRemoval(plan: RemovalPlan): void {
  if (plan.files.length === 0) process.stdout.write('No old backup sets found, nothing deleted.\n');
  else {
    process.stdout.write(`${plan.deleted ? 'Deleted' : 'Would delete'} ${plan.chains.length} backup chain(s) ending at: ${plan.chains.map(timeToString).join(', ')}\n`);
    for (const f of plan.files) process.stdout.write(`${f}\n`);
  }
  if (plan.kept.length) {
    process.stdout.write(`${plan.deleted || plan.files.length === 0 ? 'Kept' : 'Would keep'} ${plan.kept.length} backup chain(s):\n`);
    for (const k of plan.kept) {
      const span = k.startTime === k.endTime ? timeToString(k.endTime) : `${timeToString(k.startTime)} to ${timeToString(k.endTime)}`;
      process.stdout.write(`  ${span}: ${k.damage === undefined ? '' : `damaged (its full set: ${k.damage}), `}${k.reason}\n`);
    }
  }
  if (plan.files.length && !plan.deleted) process.stdout.write('Run again with --force to delete them.\n');
}

async function runDrill(url: string, source: string, o: { sample?: string; time?: string; json?: boolean; key?: string; signKey?: string }, g: Globals, log: Logger, signal: AbortSignal): Promise<void> {
  const sample = o.sample === undefined ? undefined : Number(o.sample);
  if (sample !== undefined && (!Number.isInteger(sample) || sample < 1)) throw new OffsiteError('usage', `--sample must be a whole number ≥ 1 (got ${o.sample})`);
  const backend = await openRemote(url, g, log, signal);
  try {
    const r = await drill({ backend, crypto: cryptoForRead(keyConfig(o)), log, source, sample, time: parseTime(o.time), signal });
    recordDrill(archiveFor(url, g), r);
    if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      for (const f of r.files) if (f.outcome === 'mismatch' || f.outcome === 'error') process.stdout.write(`Difference found: ${f.path}: ${f.detail}\n`);
      for (const f of r.files) if (f.outcome === 'changed') process.stdout.write(`Not compared: ${f.path}: ${f.detail}\n`);
      process.stdout.write(
        `Restore drill as of ${timeToString(r.time)}, with no local cache: ${r.files.length} of ${r.filesInBackup} file(s) restored, ${r.matched} identical to the source, ` +
          `${r.failed} damaged, ${r.changed} changed since the backup (${(r.bytes / MiB).toFixed(1)} MB in ${r.seconds.toFixed(1)} s).\n`,
      );
    }
    if (!r.ok) throw new Exit(1);
  } finally {
    await backend.close();
  }
}

/** A restore that left members out: exit 1, each one was warned about (notRestored.ts says what it means). */
function notAllRestored(r: RestoreResult): OffsiteError {
  const { message, hint } = describeNotRestored(r);
  return new OffsiteError('unsafePath', message, { hint });
}

/** The time forms parseTimeSpec takes (duplicity's, and ISO 8601 as commonly written), for the help of the commands that take a time. */
const TIMES_HELP =
  '\nTimes: now, an interval before now (3D, 2W, 1h30m; units s m h D W M Y), a date (2026-07-27,\n' +
  '2026/07/27, 07/27/2026: local midnight), a date and time (2026-07-27T12:00 or 2026-07-27 12:00:00\n' +
  'local, or with Z or +02:00), a backup time (20260727T120000Z), or seconds since 1970.';

const ENVIRONMENT_HELP = `
Environment:
  OFFSITE_PASSPHRASE      passphrase of a protected private key (else asked on a terminal)
  OFFSITE_SSH_PASSWORD    sftp://: the password (rather than writing it in the URL; else asked)
  OFFSITE_SSH_PASSPHRASE  sftp://: passphrase of an encrypted SSH key (else asked on a terminal)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL
                          s3://: credentials, profile, endpoint (as the AWS CLI reads them)
  OFFSITE_S3_TIMEOUT      s3://: seconds a request may go without a byte moving (default 30)
  OFFSITE_SSH_TIMEOUT     sftp://: seconds a connection with requests in flight may stay silent (default 30)
  NODE_EXTRA_CA_CERTS     s3://: a PEM file of CA certificates to trust too (a store with its own CA)
  RCLONE_CONFIG           rclone://: the rclone config file
  GNUPGHOME               the gpg keyring a key id, fingerprint or email is looked up in
${TIMES_HELP}

Exit status: 0 success; 1 failure (one line on stderr), or verify found differences, or a restore
left members out; 3 a backup completed but some files could not be read (they are listed).`;

export function buildProgram(signal: AbortSignal): Command {
  const program = new Command('offsite')
    .description('Encrypted, incremental, duplicity-compatible backups (the CLI of the Offsite VS Code extension)')
    .version('0.1.0')
    .option('--archive-dir <dir>', 'local cache folder (default: ~/.cache/offsite)')
    .option('-v, --verbose', 'say what is being done')
    .option('-q, --quiet', 'print no warnings')
    .option('--ssh-key <file>', 'sftp://: private key file for SSH')
    .option('--known-hosts <file>', 'sftp://: known_hosts file to check host keys against (default ~/.ssh/known_hosts)')
    .option('--accept-host-key <fingerprint>', 'sftp://: accept and record an unknown host key with this SHA256 fingerprint')
    .option('--concurrency <n>', 'uploads in flight at once')
    .option('--s3-endpoint-url <url>', 's3://: the S3 API endpoint of a non-AWS store')
    .option('--s3-profile <name>', 's3://: the AWS profile to use')
    .option('--s3-storage-class <class>', 's3://: storage class of new volumes (STANDARD, STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE, …)')
    .configureOutput({ outputError: usageError(undefined) })
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', ENVIRONMENT_HELP)
    .exitOverride();

  const globals = () => program.opts<Globals>();

  program
    .command('backup')
    .addHelpText('after', TIMES_HELP)
    .description('back up SOURCE_DIR to URL: a full backup the first time, then incrementals')
    .argument('<source_dir>')
    .argument('<url>')
    .option('--full', 'make a full backup (start a new chain)')
    .option('--full-if-older-than <time>', 'make a full backup when the last full one is older than this (e.g. 30D)')
    .option('--encrypt-key <key>', 'public key to encrypt to (file, key id, fingerprint or email); repeat for several recipients', collect)
    .option('--sign-key <key>', 'sign the backup with this private key')
    .option('--key <key>', 'private key, only needed to rebuild a lost local cache')
    .option('--volsize <mb>', `volume size in MB (default ${DEFAULT_VOLSIZE_MB})`)
    .option('--exclude <glob>', 'exclude paths matching the glob (repeatable; order matters)', ruleOption('exclude'))
    .option('--include <glob>', 'include paths matching the glob (repeatable; order matters)', ruleOption('include'))
    .option('--gitignore', 'also skip what .gitignore files ignore (.git itself is still backed up)')
    .option('--allow-source-mismatch', 'continue a chain made from another folder')
    .option('--json', 'print the statistics as one JSON object')
    .action(async (source: string, url: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      checkRulesRelativeToSource(source, currentRules);
      const crypto = await cryptoForBackup({ ...keyConfig(o), keyCacheDir: keyCacheDir(cacheRoot(g)) });
      const backend = await openRemote(url, g, log, signal);
      try {
        const result = await backup({
          source,
          backend,
          archive: archiveFor(url, g),
          crypto,
          log,
          volumeSize: volsize(o.volsize),
          full: !!o.full,
          fullIfOlderThan: o.fullIfOlderThan ? Math.floor(Date.now() / 1000) - parseTimeSpec(o.fullIfOlderThan, Math.floor(Date.now() / 1000)) : undefined,
          rules: currentRules,
          gitignore: !!o.gitignore,
          allowSourceMismatch: !!o.allowSourceMismatch,
          signal,
        });
        outcome = result;
        if (o.json) process.stdout.write(`${JSON.stringify({ ...result.stats, BackupType: result.type, BackupTime: timeToString(result.time) })}\n`);
        else process.stdout.write(formatStats(result.stats));
        if (result.errors.length) {
          process.stderr.write(`offsite: the backup completed, but ${result.errors.length} path(s) could not be read:\n`);
          for (const e of result.errors) process.stderr.write(`  ${e.path}: ${e.message}\n`);
          throw new Exit(3);
        }
      } finally {
        await backend.close();
      }
    });

  program
    .command('restore')
    .addHelpText('after', TIMES_HELP)
    .description('restore the backup at URL (or one path of it) into TARGET')
    .argument('<url>')
    .argument('<target>')
    .option('--time <time>', 'restore as of this time (now, 3D, 2W, 2026-07-27, ISO 8601, …)')
    .option('--path <rel>', 'restore only this file or folder (relative to the backed-up folder), written at TARGET/REL')
    .option('--force', 'write into a non-empty TARGET, replacing files with the same names')
    .option('--key <key>', 'private key to decrypt with (file, or key id in your gpg keyring)')
    .option('--sign-key <key>', 'refuse a backup not signed by this key')
    .action(async (url: string, target: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      const backend = await openRemote(url, g, log, signal);
      try {
        const r = await restore({
          backend,
          archive: archiveFor(url, g),
          crypto: cryptoForRead(keyConfig(o)),
          log,
          time: parseTime(o.time),
          target,
          path: relPath(o.path),
          force: !!o.force,
          signal,
        });
        outcome = { path: o.path };
        if (g.verbose) process.stderr.write(`Restored ${r.files} file(s), ${r.bytes} bytes, as of ${timeToString(r.time)}\n`);
        if (r.refusals.length) throw notAllRestored(r);
      } finally {
        await backend.close();
      }
    });

  program
    .command('verify')
    .addHelpText('after', TIMES_HELP)
    .description('compare the backup at URL with SOURCE_DIR')
    .argument('<url>')
    .argument('<source_dir>')
    .option('--compare-data', 'compare file contents too, not only metadata')
    .option('--time <time>', 'verify the backup as of this time')
    .option('--key <key>', 'private key to decrypt with')
    .option('--sign-key <key>', 'refuse a backup not signed by this key')
    .option('--exclude <glob>', 'the backup\'s excludes, so excluded files are not reported as new', ruleOption('exclude'))
    .option('--include <glob>', 'the backup\'s includes', ruleOption('include'))
    .option('--gitignore', 'the backup used --gitignore')
    .option('--json', 'print the result as JSON')
    .option('--drill', 'restore drill: restore a random sample of files with no local cache (as on a new machine; needs --key) and compare them with SOURCE_DIR')
    .option('--sample <n>', `--drill: how many files to restore (default ${DEFAULT_DRILL_SAMPLE})`)
    .action(async (url: string, source: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      if (o.drill) return runDrill(url, source, o, g, log, signal);
      if (o.sample !== undefined) throw new OffsiteError('usage', '--sample is the size of a restore drill: give --drill with it', { hint: 'offsite verify --drill --sample N --key KEY URL SOURCE_DIR' });
      checkRulesRelativeToSource(source, currentRules);
      const backend = await openRemote(url, g, log, signal);
      try {
        const r = await verify({
          backend,
          archive: archiveFor(url, g),
          crypto: cryptoForRead(keyConfig(o)),
          log,
          time: parseTime(o.time),
          source,
          compareData: !!o.compareData,
          rules: currentRules,
          gitignore: !!o.gitignore,
          signal,
        });
        if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
        else {
          for (const d of r.differences) process.stdout.write(`Difference found: ${d.path}: ${d.reason}\n`);
          process.stdout.write(`Verify complete: ${r.compared} files compared, ${r.differences.length} difference(s) found.\n`);
        }
        if (r.differences.length) throw new Exit(1);
      } finally {
        await backend.close();
      }
    });

  program
    .command('status')
    .description('collection status: chains, sets, volumes and dates at URL')
    .argument('<url>')
    .option('--json', 'print JSON')
    .action(async (url: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      const backend = await openRemote(url, g, log, signal);
      try {
        const s = await status({ backend, archive: archiveFor(url, g), crypto: cryptoForRead({}), log, signal });
        process.stdout.write(o.json ? `${JSON.stringify(s)}\n` : formatStatus(s));
      } finally {
        await backend.close();
      }
    });

  program
    .command('list')
    .addHelpText('after', TIMES_HELP)
    .description('list the files of the backup at URL as of a time')
    .argument('<url>')
    .option('--time <time>', 'as of this time')
    .option('--key <key>', 'private key (needed when the local cache lacks the signature files)')
    .option('--history <rel>', 'instead, list the backups in which this path (a file, a folder, …) changed, and what it was')
    .option('--json', 'print JSON lines')
    .action(async (url: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      if (o.history !== undefined && o.time !== undefined) {
        throw new OffsiteError('usage', '--history lists every backup in which the path changed; --time does not apply to it', { hint: 'Leave out --time, or list the files as of a time without --history' });
      }
      const backend = await openRemote(url, g, log, signal);
      try {
        const common = { backend, archive: archiveFor(url, g), crypto: cryptoForRead(keyConfig(o)), log, time: parseTime(o.time), signal };
        if (o.history) {
          const versions = await fileHistory({ ...common, path: relPath(o.history)! });
          if (versions.length === 0) {
            throw new OffsiteError('notFound', `${o.history} is in no backup at ${backend.displayUrl}`, { hint: 'Give the path relative to the backed-up folder; offsite list shows what a backup holds' });
          }
          for (const v of versions) {
            const type = v.type === undefined ? '' : ` ${TYPE_WORDS[v.type]}`;
            process.stdout.write(o.json ? `${JSON.stringify({ time: timeToString(v.time), action: v.action, type: v.type })}\n` : `${timeToString(v.time)} ${v.action}${type}\n`);
          }
          return;
        }
        for await (const f of listFiles(common)) {
          process.stdout.write(o.json ? `${JSON.stringify({ path: indexToString(f.index), type: f.meta.type, mode: f.meta.mode, mtime: f.meta.mtime })}\n` : formatListLine(f));
        }
      } finally {
        await backend.close();
      }
    });

  program
    .command('remove-older-than')
    .addHelpText('after', TIMES_HELP)
    .description('delete backup chains older than TIME (lists them unless --force)')
    .argument('<time>')
    .argument('<url>')
    .option('--force', 'really delete')
    .action(async (time: string, url: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      const backend = await openRemote(url, g, log, signal);
      try {
        printRemoval(await removeOlderThan({ backend, archive: archiveFor(url, g), crypto: cryptoForRead({}), log, time: parseTime(time)!, force: !!o.force, signal }));
      } finally {
        await backend.close();
      }
    });

  program
    .command('remove-all-but-n-full')
    .description('delete all backup chains but the newest N (lists them unless --force)')
    .argument('<n>')
    .argument('<url>')
    .option('--force', 'really delete')
    .action(async (n: string, url: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      const count = Number(n);
      if (!Number.isInteger(count) || count < 1) throw new OffsiteError('usage', `N must be a whole number ≥ 1 (got ${n})`);
      const backend = await openRemote(url, g, log, signal);
      try {
        printRemoval(await removeAllButNFull({ backend, archive: archiveFor(url, g), crypto: cryptoForRead({}), log, n: count, force: !!o.force, signal }));
      } finally {
        await backend.close();
      }
    });

  program
    .command('cleanup')
    .description('delete what interrupted runs left behind (lists it unless --force)')
    .argument('<url>')
    .option('--force', 'really delete')
    .option('--keep-recent <hours>', `keep sets without a manifest and temporary uploads written in the last HOURS (default ${KEEP_RECENT_SECONDS / 3600}), or of unknown age: a backup running on another machine may be writing them; 0 deletes them too`)
    .action(async (url: string, o) => {
      const g = globals();
      const log = makeLogger(g);
      const keepRecent = keepRecentSeconds(o.keepRecent);
      const backend = await openRemote(url, g, log, signal);
      try {
        const r = await cleanup({ backend, archive: archiveFor(url, g), crypto: cryptoForRead({}), log, force: !!o.force, keepRecent, signal });
        const all = [...r.remote, ...r.temporary, ...r.local];
        if (all.length === 0) process.stdout.write('Nothing to clean up.\n');
        else for (const f of all) process.stdout.write(`${r.deleted ? 'Deleted' : 'Would delete'} ${f}\n`);
        for (const p of r.inProgress) process.stdout.write(`${describeInProgress(p)}\n`);
        if (r.resumable) process.stdout.write(`Kept ${r.resumable.files.length} file(s) of the interrupted ${describeSet(r.resumable)}: the next backup (of the same folder, to the same keys) resumes it.\n`);
        for (const d of r.damaged) {
          process.stdout.write(`Kept ${d.files.length} file(s) of the damaged ${describeSet(d)}: ${d.reason}. ${damageAdvice(d)}\n`);
          for (const f of d.files) process.stdout.write(`  ${f}\n`);
        }
        if (all.length && !r.deleted) process.stdout.write('Run again with --force to delete them.\n');
      } finally {
        await backend.close();
      }
    });

  program
    .command('keygen')
    .description('make a new OpenPGP key pair (for people without GnuPG): the public key encrypts backups, the secret key restores them')
    .argument('<name>')
    .argument('<email>')
    .requiredOption('--public <file>', 'where to write the public key (armored)')
    .requiredOption('--secret <file>', 'where to write the secret key (armored, protected by the passphrase)')
    .action(async (name: string, email: string, o) => {
      if (path.resolve(o.public) === path.resolve(o.secret)) {
        throw new OffsiteError('usage', `--public and --secret name the same file (${o.public})`, { hint: 'Give two file names, such as ada.pub.asc and ada.sec.asc' });
      }
      for (const f of [o.public, o.secret]) {
        if (fs.existsSync(f)) throw new OffsiteError('exists', `${f} exists already`, { hint: 'Choose another file name; keys are never overwritten' });
      }
      let passphrase = process.env.OFFSITE_PASSPHRASE;
      if (passphrase === undefined) {
        passphrase = await promptSecret('Passphrase for the new secret key: ');
        const again = passphrase === undefined ? undefined : await promptSecret('Repeat the passphrase: ');
        if (passphrase === undefined) throw new OffsiteError('passphrase', 'A passphrase is needed to protect the new secret key', { hint: 'Set OFFSITE_PASSPHRASE, or run offsite on a terminal to be asked', needs: { input: 'passphrase', wrong: false } });
        if (again !== passphrase) throw new OffsiteError('passphrase', 'The two passphrases differ');
      }
      const k = await generateKeyPair(name, email, passphrase);
      // Both files or neither: a public key without its secret key would encrypt backups nobody can
      // restore. The secret key first; it is removed again when the public key cannot be written.
      fs.writeFileSync(o.secret, k.privateArmored, { mode: 0o600, flag: 'wx' });
      try {
        fs.writeFileSync(o.public, k.publicArmored, { mode: 0o644, flag: 'wx' });
      } catch (e) {
        fs.rmSync(o.secret, { force: true });
        throw e;
      }
      process.stdout.write(`Created key ${k.fingerprint}\n  public: ${o.public}\n  secret: ${o.secret}\nKeep a copy of the secret key and its passphrase somewhere other than this machine: without them no backup can be restored.\n`);
    });

  // Each command's usage error names its own --help.
  for (const c of program.commands) c.configureOutput({ outputError: usageError(c.name()) });
  return program;
}

/**
 * A usage error (a missing argument, an unknown option) as every other error is said: one line on
 * stderr, what is wrong and what to do (commander's error and the whole help were ~50 lines).
 */
function usageError(command: string | undefined): (message: string, write: (s: string) => void) => void {
  return (message, write) => write(`offsite: ${message.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')}. Run offsite ${command ? `${command} ` : ''}--help for the usage\n`);
}

/**
 * An error as the command line says it, from the input the error says is at fault (OffsiteError.needs).
 * The engine's hint for a wrong passphrase fits the extension, which asks again; here the passphrase
 * came from a variable or a prompt, and the line says which. A missing secret key is given with an
 * option here. The other inputs (a later --time, --accept-host-key) keep the engine's hint: its words are the CLI's.
 */
function cliMessage(e: OffsiteError): string {
  const needs = e.needs;
  if (needs?.wrong && (needs.input === 'passphrase' || needs.input === 'sshPassphrase')) {
    // The SSH key's passphrase comes from OFFSITE_SSH_PASSPHRASE, the OpenPGP key's from OFFSITE_PASSPHRASE.
    const variable = needs.input === 'sshPassphrase' ? 'OFFSITE_SSH_PASSPHRASE' : 'OFFSITE_PASSPHRASE';
    const what = process.env[variable] !== undefined ? `Check ${variable}, or unset it to be asked on a terminal` : 'Run the command again and enter the right one';
    return `${e.message}. ${what}`;
  }
  if (needs?.input === 'secretKey' && !needs.wrong) return `${e.message}. Pass --key KEY (your private key file, or its id in your gpg keyring)`;
  return e.userMessage;
}

let outputWatched = false;

/**
 * A reader that stops early (`offsite list URL | head -1`) closes the pipe: the rest of the output has
 * nowhere to go, which is no error of ours (Node would throw EPIPE from the stream, a stack trace).
 * Any other failure to write the results (a full disk under a redirect) is said once, exit status 1.
 */
function watchOutput(): void {
  if (outputWatched) return;
  outputWatched = true;
  let closed = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (closed) return;
    closed = true;
    if (e.code === 'EPIPE') return;
    process.stderr.write(`offsite: the results could not be written: ${e.message}\n`);
    process.exitCode = 1;
  });
}

export async function main(argv: string[]): Promise<number> {
  watchOutput();
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  currentRules = [];
  route = outcome = undefined;
  let command: string | undefined;
  const program = buildProgram(ac.signal).hook('preAction', (_program, action) => {
    command = action.name();
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    if (command !== undefined) route = codeRoute(command, outcome);
    return 0;
  } catch (e) {
    if (e instanceof Exit) return e.code;
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 1;
    if (isCancellation(e)) {
      process.stderr.write('offsite: cancelled\n');
      return 1;
    }
    // System errors (a full disk, a permission) carry their own clear message; anything else is a bug.
    const errno = typeof (e as NodeJS.ErrnoException)?.code === 'string' && /^E[A-Z]+$/.test((e as NodeJS.ErrnoException).code!);
    const msg = e instanceof OffsiteError ? cliMessage(e) : errno ? (e as Error).message : `internal error: ${(e as Error)?.stack ?? String(e)}`;
    process.stderr.write(`offsite: ${msg.replace(/\n/g, ' ')}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode ||= code;
  });
}
