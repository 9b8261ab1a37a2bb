// One SSH connection with its SFTP channel: host key check, authentication, keepalives and a watchdog
// that kills a connection whose requests go unanswered (a stalled link must fail, not hang).
import { setTimeout as delay } from 'node:timers/promises';
import SftpClient from 'ssh2-sftp-client';
import type { Client, ConnectConfig, SFTPWrapper } from 'ssh2';
import { BackendError } from '../backend';
import { OffsiteError, cancelled, isCancellation } from '../../errors';
import { KnownHosts, fingerprint, hostKeyAlgorithmsFor, hostKeyName, keyTypeOf, recordHostKey, type HostKey } from './knownHosts';
import { makeAuthHandler, type AuthAttempts, type AuthPlan } from './sshAuth';
import { classifySftpError, isTransientNetworkError } from './sftpErrors';

export type Log = (level: 'debug' | 'info' | 'warn', message: string) => void;

export interface ConnectParams {
  readonly hostName: string;
  readonly port: number;
  /**
   * HostKeyAlias from the ssh config: the name the host key is looked up and recorded under in
   * known_hosts instead of hostName and port, as OpenSSH does.
   */
  readonly hostKeyAlias?: string;
  /** The remote as the user named it (URL), for messages. */
  readonly where: string;
  /** known_hosts files to read. */
  readonly knownHostsFiles: readonly string[];
  /** Where an accepted key is recorded. */
  readonly knownHostsRecordFile: string;
  /** Record it with the host name hashed (HashKnownHosts yes). */
  readonly hashKnownHosts?: boolean;
  /** `SHA256:…` of a key the user accepts for an unknown host. */
  readonly acceptHostKey?: string;
  readonly auth: AuthPlan;
  /** No answer for this long (handshake, keepalives, any request) ends the connection. */
  readonly timeoutMs: number;
  readonly log?: Log;
}

/**
 * ssh2's algorithm list edits: 'prepend' skips names already listed, so remove them first; it puts the
 * names at the front in the order given.
 */
function preferHostKeyAlgorithms(algos: string[]): ConnectConfig['algorithms'] {
  if (algos.length === 0) return undefined;
  return { serverHostKey: { remove: algos, prepend: algos } as never };
}

/** The ssh2 Client under ssh2-sftp-client (its type declarations omit the field). */
function sshClientOf(c: SftpClient): Client {
  return (c as unknown as { client: Client }).client;
}

export function normalizeFingerprint(fp: string): string {
  const b64 = fp.trim().replace(/^SHA256:/i, '').replace(/=+$/, '');
  return `SHA256:${b64}`;
}

export class SftpConnection {
  /** Operations currently using this connection (for load balancing in the pool). */
  active = 0;
  /** How to fail each request not answered yet (see send). */
  private readonly waiting = new Set<(e: Error) => void>();
  private lastAnswer = Date.now();
  private deathError?: Error;
  private readonly watchdog: NodeJS.Timeout;

  private constructor(
    private readonly client: SftpClient,
    readonly sftp: SFTPWrapper,
    private readonly params: ConnectParams,
  ) {
    this.watchdog = setInterval(() => this.checkStall(), Math.max(100, Math.min(1000, params.timeoutMs / 4)));
    this.watchdog.unref();
  }

  get alive(): boolean {
    return this.deathError === undefined;
  }

  /** Whether the server has an OpenSSH extension (posix-rename, fsync, statvfs, …). */
  has(extension: string): boolean {
    return (this.sftp as unknown as { _extensions?: Record<string, string> })._extensions?.[extension] !== undefined;
  }

  static async open(p: ConnectParams): Promise<SftpConnection> {
    const known = KnownHosts.load(p.knownHostsFiles);
    let hostKeyError: OffsiteError | undefined;
    const attempts: AuthAttempts = { tried: [] };
    const state: { conn?: SftpConnection } = {};
    const onDead = (e: Error): void => state.conn?.die(e);
    const client = new SftpClient('offsite', {
      error: (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        p.log?.('debug', `sftp ${p.where}: ${err.message}`);
        onDead(err);
      },
      end: () => onDead(new Error('Connection closed by the server')),
      close: () => onDead(new Error('Connection closed')),
    });
    const knownTypes = known.typesFor(knownHostsName(p));
    const config: ConnectConfig = {
      host: p.hostName,
      port: p.port,
      username: p.auth.user,
      readyTimeout: p.timeoutMs,
      keepaliveInterval: Math.max(500, Math.floor(p.timeoutMs / 3)),
      keepaliveCountMax: 2,
      authHandler: makeAuthHandler(p.auth, attempts),
      hostVerifier: (blob: Buffer) => {
        hostKeyError = checkHostKey(known, p, { type: keyTypeOf(blob), blob });
        return hostKeyError === undefined;
      },
      // Ask for a key type we already know for this host, the strongest first, as OpenSSH does, so a
      // server with several keys is not mistaken for one whose key changed.
      algorithms: preferHostKeyAlgorithms(hostKeyAlgorithmsFor(knownTypes)),
    };
    let sftp: SFTPWrapper;
    try {
      sftp = await client.connect(config as SftpClient.ConnectOptions);
    } catch (e) {
      const noSftp = refusedSftp(e, sshClientOf(client));
      // ssh2 may still be logging in after ssh2-sftp-client gave up: make sure nothing stays open.
      await client.end().catch(() => undefined);
      sshClientOf(client).destroy();
      if (noSftp) {
        throw new BackendError('permanent', 'connect', undefined, `${p.auth.label} accepted the SSH login but offers no SFTP (${p.where})`, {
          cause: e,
          hint: "The server's sshd has no 'Subsystem sftp' line (or its sftp-server cannot start): add one, e.g. 'Subsystem sftp internal-sftp', and reload sshd, or use another remote",
        });
      }
      throw connectError(e, p, hostKeyError, attempts);
    }
    // Many small requests are pipelined; Nagle's delay would stall each round trip by ~40 ms.
    sshClientOf(client).setNoDelay(true);
    const conn = new SftpConnection(client, sftp, p);
    state.conn = conn;
    // The SFTP channel can close on its own (sftp-server killed) while the SSH connection lives.
    sftp.on('close', () => onDead(new Error('The SFTP channel was closed')));
    return conn;
  }

  /**
   * Runs one SFTP request (a method of the SFTPWrapper taking a callback) under the watchdog. A dead
   * connection fails at once with the reason it died.
   */
  call<T>(start: (cb: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.send<T>(start, (err, value) => (err ? reject(err) : resolve(value as T)));
    });
  }

  /**
   * Sends one request under the watchdog and calls `done` exactly once: with the server's answer, or
   * with the reason the connection died. ssh2 drops a request made on a channel that has begun to
   * close and never calls it back, so every request is also tracked here, and dying fails those still
   * waiting. Pipelined reads and writes use this directly.
   */
  send<T>(start: (cb: (err: Error | undefined | null, value?: T) => void) => void, done: (err: Error | undefined | null, value?: T) => void): void {
    if (!this.deathError && !this.channelOpen()) this.die(new Error('The SFTP channel was closed'));
    const dead = this.deathError;
    if (dead) {
      process.nextTick(() => done(dead));
      return;
    }
    if (this.waiting.size === 0) this.lastAnswer = Date.now();
    let settled = false;
    const settle = (err: Error | undefined | null, value?: T): void => {
      if (settled) return;
      settled = true;
      this.waiting.delete(fail);
      this.lastAnswer = Date.now();
      done(err && this.deathError && isTransientNetworkError(err) ? this.deathError : err, value);
    };
    const fail = (e: Error): void => settle(e);
    this.waiting.add(fail);
    try {
      start(settle);
    } catch (e) {
      settle(this.deathError ?? (e instanceof Error ? e : new Error(String(e))));
    }
  }

  /** The largest write ssh2 sends as one request (the server's limits@openssh.com, else ssh2's default). */
  get maxWriteLength(): number {
    return (this.sftp as unknown as { _maxWriteLen?: number })._maxWriteLen ?? 0;
  }

  /** Whether ssh2 will still send on the SFTP channel (its state is not part of ssh2's typings). */
  private channelOpen(): boolean {
    const state = (this.sftp as unknown as { outgoing?: { state?: string } }).outgoing?.state;
    return state === undefined || state === 'open';
  }

  /** Why the connection died (a transient BackendError), or undefined while it lives. */
  get failure(): Error | undefined {
    return this.deathError;
  }

  private checkStall(): void {
    if (this.waiting.size > 0 && Date.now() - this.lastAnswer > this.params.timeoutMs) {
      const secs = Math.round(this.params.timeoutMs / 100) / 10;
      this.die(new Error(`the connection stalled: no answer from the server for ${secs} s`));
    }
  }

  private die(e: Error): void {
    if (this.deathError) return;
    this.deathError = classifySftpError(e, { op: 'transfer', where: this.params.where });
    if (!BackendError.isKind(this.deathError, 'transient')) {
      this.deathError = new BackendError('transient', 'transfer', undefined, `Lost the connection to ${this.params.where}: ${e.message}`, {
        cause: e,
        hint: 'Check the network and the server',
      });
    }
    clearInterval(this.watchdog);
    sshClientOf(this.client).destroy();
    this.failWaiting();
  }

  /** Fails every request still waiting with the reason the connection ended: no answer can come now. */
  private failWaiting(): void {
    const reason = this.deathError!;
    for (const fail of [...this.waiting]) process.nextTick(fail, reason);
  }

  async close(): Promise<void> {
    clearInterval(this.watchdog);
    if (this.deathError) return;
    this.deathError = new BackendError('transient', 'close', undefined, `The connection to ${this.params.where} was closed`);
    const ended = this.client.end().catch(() => undefined);
    // A stalled server may never answer the polite close.
    await Promise.race([ended, delay(2000, undefined, { ref: false })]);
    sshClientOf(this.client).destroy();
    this.failWaiting();
  }
}

/** The name known_hosts has the host under: its HostKeyAlias, else host or [host]:port. */
function knownHostsName(p: ConnectParams): string {
  return p.hostKeyAlias ?? hostKeyName(p.hostName, p.port);
}

function checkHostKey(known: KnownHosts, p: ConnectParams, key: HostKey): OffsiteError | undefined {
  const fp = fingerprint(key.blob);
  const name = knownHostsName(p);
  const verdict = known.check(name, key);
  switch (verdict.kind) {
    case 'known':
      return undefined;
    case 'revoked':
      return new OffsiteError('hostKey', `The host key of ${name} (${key.type} ${fp}) is marked @revoked in ${verdict.file}:${verdict.line}`, {
        hint: 'Do not connect to this server until its administrator replaces the key',
      });
    case 'changed':
      return new OffsiteError(
        'hostKey',
        `The host key of ${name} has CHANGED: the server now shows ${key.type} ${fp}, but ${verdict.file}:${verdict.line} has another key${verdict.knownType === key.type ? '' : ` (${verdict.knownType})`}. Someone may be intercepting the connection`,
        {
          hint: `If the server's key really was replaced, remove the old key (ssh-keygen -R '${name}' -f ${verdict.file}) and connect again to accept the new one`,
        },
      );
    case 'unknown': {
      const accepted = p.acceptHostKey !== undefined && normalizeFingerprint(p.acceptHostKey) === fp;
      if (accepted) {
        try {
          recordHostKey(p.knownHostsRecordFile, name, key, { hash: p.hashKnownHosts });
        } catch (e) {
          return new OffsiteError('config', `Cannot record the host key of ${name} (${key.type} ${fp}) in ${p.knownHostsRecordFile}: ${(e as Error).message}`, {
            cause: e,
            file: p.knownHostsRecordFile,
            hint: 'Give a known_hosts file Offsite can write (--known-hosts), or make that one writable',
          });
        }
        p.log?.('warn', `Recorded the host key of ${name} (${key.type} ${fp}) in ${p.knownHostsRecordFile}`);
        return undefined;
      }
      const given = p.acceptHostKey?.trim();
      const md5 = given !== undefined && /^MD5:/i.test(given);
      const mismatch = given !== undefined ? `, not the ${md5 ? given : normalizeFingerprint(given)} given with --accept-host-key${md5 ? ' (an MD5 fingerprint: give the SHA256 one)' : ''}` : '';
      const ca = verdict.certAuthority ? ` (a @cert-authority line (${verdict.certAuthority.file}:${verdict.certAuthority.line}) covers it, but Offsite cannot check host certificates)` : '';
      const others = `${verdict.knownTypes.length ? ` (known only with other key types: ${verdict.knownTypes.join(', ')})` : ''}${ca}`;
      return new OffsiteError('hostKey', `The host key of ${name} is not known${others}: the server shows ${key.type} ${fp}${mismatch}`, {
        needs: { input: 'hostKey', wrong: p.acceptHostKey !== undefined, fingerprint: fp },
        hint: `If that is the server's key (check with its administrator, or ssh-keygen -lf on the server), run again with --accept-host-key ${fp}; it is then recorded in ${p.knownHostsRecordFile}`,
      });
    }
  }
}

function cancelledOr(e: unknown): OffsiteError {
  if (isCancellation(e)) return cancelled();
  return new OffsiteError('auth', `Could not ask for the SSH credentials: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/**
 * ssh2 says "Unable to start subsystem" both when the server refuses the sftp subsystem (no
 * 'Subsystem sftp' in its sshd_config: a permanent answer, the connection lives on) and when the
 * connection drops while the request waits (its pending callbacks are failed: worth a retry). The
 * state of the SSH connection's socket tells them apart.
 */
function refusedSftp(e: unknown, ssh: Client): boolean {
  if (!/Unable to start subsystem/i.test((e as Error)?.message ?? '')) return false;
  const sock = (ssh as unknown as { _sock?: { writable?: boolean; destroyed?: boolean } })._sock;
  return sock?.writable === true && sock.destroyed !== true;
}

function connectError(e: unknown, p: ConnectParams, hostKeyError: OffsiteError | undefined, attempts: AuthAttempts): OffsiteError {
  if (hostKeyError) return hostKeyError;
  const err = e as { level?: string; message?: string; code?: unknown };
  const msg = err?.message ?? String(e);
  if (err?.level === 'client-authentication' || /authentication methods failed/i.test(msg)) {
    const problem = attempts.problem;
    // A key that cannot be read or unlocked, or a cancelled prompt, is the real story; a missing
    // passphrase only explains why one key was skipped.
    if (problem !== undefined && !(OffsiteError.is(problem, 'passphrase') && !problem.needs?.wrong)) {
      return problem instanceof OffsiteError ? problem : cancelledOr(problem);
    }
    // The key the user named is locked and no password was tried, or a locked (default) key was all
    // there was: its passphrase is what is missing (asking for a password instead would send the user
    // after the wrong secret).
    if ((attempts.namedKeyLocked || attempts.tried.length === 0) && OffsiteError.is(problem, 'passphrase') && !attempts.tried.some((t) => t.startsWith('a password'))) return problem;
    const tried = attempts.tried.length ? attempts.tried.join(', ') : 'nothing (no agent, no key file, no password)';
    const missing = (attempts.missingKeys ?? []).map((f) => `; IdentityFile ${f} does not exist`).join('');
    const extra = `${missing}${OffsiteError.is(problem) ? `; ${problem.message}` : ''}`;
    return new BackendError('auth', 'connect', undefined, `${p.auth.label} refused the login (tried ${tried})${extra}`, {
      cause: e,
      hint: 'Check the user name, load the key into ssh-agent or give it with --ssh-key, or set OFFSITE_SSH_PASSWORD',
    });
  }
  if (err?.code === 'ENOTFOUND') {
    return new BackendError('permanent', 'connect', undefined, `Unknown host ${p.hostName} (${p.where})`, {
      cause: e,
      hint: 'Check the host name in the URL or in ~/.ssh/config',
    });
  }
  const c = classifySftpError(e, { op: 'connect', where: p.where });
  if (BackendError.isKind(c, 'transient')) {
    return new BackendError('transient', 'connect', undefined, `Cannot connect to ${p.hostName} port ${p.port} (${p.where}): ${msg}`, {
      cause: e,
      hint: 'Check that the server is up and reachable',
    });
  }
  return c;
}
