// Authentication as OpenSSH users expect it: the agent's keys, then identity files (an explicit key or
// the config's IdentityFile, else the default ~/.ssh/id_*), then the password. Secrets come from
// callbacks or the environment, and are asked for only when the server gets that far.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { OpenSSHAgent, utils, type AnyAuthMethod, type AuthenticationType, type AuthHandlerMiddleware, type IdentityCallback, type ParsedKey } from 'ssh2';
import { OffsiteError } from '../../errors';

export type Prompt = (question: string, opts: { secret: boolean }) => Promise<string | undefined>;

export interface AuthPlan {
  readonly user: string;
  /** Where the agent listens (SSH_AUTH_SOCK), if anywhere. */
  readonly agentSocket?: string;
  /**
   * IdentitiesOnly: offer only these of the agent's keys (the public keys of the named key files), as
   * OpenSSH does; undefined offers them all.
   */
  readonly agentKeysOnly?: readonly Buffer[];
  /** Key files given explicitly (--ssh-key, IdentityFile): a missing one is an error, but see below. */
  readonly explicitKeys: readonly string[];
  /**
   * The explicit keys come from the ssh config's IdentityFile: a missing one is skipped (and named if
   * the login fails), as OpenSSH does, rather than an error.
   */
  readonly explicitFromConfig?: boolean;
  /** Default key files (~/.ssh/id_*): used only when no key is explicit; missing ones are skipped. */
  readonly defaultKeys: readonly string[];
  /** Passphrase for encrypted keys (OFFSITE_SSH_PASSPHRASE). */
  readonly passphrase?: string;
  /** Password (OFFSITE_SSH_PASSWORD or the URL). */
  readonly password?: string;
  readonly prompt?: Prompt;
  /** What to call the remote in prompts: user@host. */
  readonly label: string;
}

/** What the handler tried, to explain an authentication failure. */
export interface AuthAttempts {
  readonly tried: string[];
  /**
   * Why the login could not go on, reported instead of a plain "denied": a key or passphrase problem
   * (OffsiteError), or the prompt's own failure (a cancellation).
   */
  problem?: unknown;
  /** A key the user named (--ssh-key, IdentityFile) was skipped: it is encrypted and no passphrase was given. */
  namedKeyLocked?: boolean;
  /** IdentityFile keys of the ssh config that were skipped because they do not exist. */
  missingKeys?: string[];
}

export function defaultKeyFiles(home: string): string[] {
  // OpenSSH's order; ssh2 cannot use the *_sk (security key) or xmss kinds, and DSA is obsolete.
  return ['id_rsa', 'id_ecdsa', 'id_ed25519'].map((n) => path.join(home, '.ssh', n));
}

/**
 * An ssh2 authHandler that walks the plan. Keys are parsed lazily, so a passphrase or a password is
 * asked for only when the server still accepts that method.
 */
export function makeAuthHandler(plan: AuthPlan, attempts: AuthAttempts): AuthHandlerMiddleware {
  // Each step names the SSH method it needs, so nothing is asked for (a passphrase, a password) when
  // the server no longer accepts that method.
  const steps: Array<{ method: AuthenticationType; make: () => Promise<AnyAuthMethod | undefined> }> = [];
  const keyFiles = plan.explicitKeys.length > 0 ? plan.explicitKeys : plan.defaultKeys;
  if (plan.agentSocket) {
    const socket = plan.agentSocket;
    steps.push({
      method: 'publickey',
      make: async () => {
        // ssh2 reports an unreachable agent as a connection error (ssh2-sftp-client then gives up on
        // the whole login), so only offer an agent that answers.
        if (!(await agentReachable(socket))) return undefined;
        if (plan.agentKeysOnly) {
          attempts.tried.push('the ssh-agent (its copies of the named keys only: IdentitiesOnly)');
          return { type: 'agent', username: plan.user, agent: new OnlyTheseKeysAgent(socket, plan.agentKeysOnly) };
        }
        attempts.tried.push('the ssh-agent');
        return { type: 'agent', username: plan.user, agent: socket };
      },
    });
  }
  for (const file of keyFiles) {
    steps.push({
      method: 'publickey',
      make: async () => {
        const key = await loadKey(file, plan, plan.explicitKeys.includes(file), attempts);
        if (!key) return undefined;
        attempts.tried.push(`key ${file}`);
        return { type: 'publickey', username: plan.user, key };
      },
    });
  }
  let password: string | undefined;
  const getPassword = async (): Promise<string | undefined> => {
    password ??= plan.password ?? (await plan.prompt?.(`Password for ${plan.label}:`, { secret: true }));
    return password;
  };
  steps.push({
    method: 'password',
    make: async () => {
      const pw = await getPassword();
      if (pw === undefined) return undefined;
      attempts.tried.push('a password');
      return { type: 'password', username: plan.user, password: pw };
    },
  });
  // Servers that take passwords only through keyboard-interactive (PAM): answer each prompt with it.
  steps.push({
    method: 'keyboard-interactive',
    make: async () => {
      const pw = await getPassword();
      if (pw === undefined) return undefined;
      attempts.tried.push('a password (keyboard-interactive)');
      return {
        type: 'keyboard-interactive',
        username: plan.user,
        prompt: (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => pw)),
      };
    },
  });
  // Declared types say next() takes a method; ssh2 also takes false, meaning "give up".
  const giveUp = false as unknown as AnyAuthMethod;
  let i = 0;
  return (methodsLeft, _partial, next) => {
    void (async () => {
      while (i < steps.length) {
        const step = steps[i++];
        if (methodsLeft && !methodsLeft.includes(step.method)) continue;
        let method: AnyAuthMethod | undefined;
        try {
          method = await step.make();
        } catch (e) {
          attempts.problem = e;
          next(giveUp);
          return;
        }
        if (!method) continue;
        next(method);
        return;
      }
      next(giveUp);
    })();
  };
}

/** An ssh-agent client that lists only some of the agent's keys (IdentitiesOnly). */
class OnlyTheseKeysAgent extends OpenSSHAgent {
  constructor(
    socket: string,
    private readonly allowed: readonly Buffer[],
  ) {
    super(socket);
  }

  override getIdentities(cb: IdentityCallback<ParsedKey>): void {
    super.getIdentities((err, keys) => {
      if (err || !keys) return cb(err, keys);
      cb(
        undefined,
        keys.filter((k) => {
          const blob = identityBlob(k);
          return blob !== undefined && this.allowed.some((a) => a.equals(blob));
        }),
      );
    });
  }
}

/** The public key blob of an agent identity (a parsed key, or an entry wrapping one). */
function identityBlob(k: unknown): Buffer | undefined {
  if (k && typeof (k as ParsedKey).getPublicSSH === 'function') return (k as ParsedKey).getPublicSSH();
  if (k && typeof k === 'object' && 'pubKey' in k) return identityBlob((k as { pubKey: unknown }).pubKey);
  if (typeof k === 'string' || Buffer.isBuffer(k)) {
    const parsed = utils.parseKey(k);
    if (!(parsed instanceof Error)) return (Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH();
  }
  return undefined;
}

/**
 * The public key blob of a private key file, without its passphrase, as OpenSSH finds it: FILE.pub,
 * else the unencrypted public part of an OpenSSH-format key, else the key itself if unencrypted.
 * Undefined when none can be read.
 */
export function publicKeyBlobOf(file: string): Buffer | undefined {
  try {
    const [, b64] = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
    if (b64) return Buffer.from(b64, 'base64');
  } catch {
    // no .pub next to it
  }
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(data.toString('latin1'));
  if (m) {
    // openssh-key-v1: magic, cipher, kdf, kdf options, the number of keys, then the first public key.
    const b = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
    const magic = Buffer.from('openssh-key-v1\0', 'latin1');
    if (b.length > magic.length && b.subarray(0, magic.length).equals(magic)) {
      let at = magic.length;
      const str = (): Buffer | undefined => {
        if (at + 4 > b.length) return undefined;
        const n = b.readUInt32BE(at);
        if (at + 4 + n > b.length) return undefined;
        const s = b.subarray(at + 4, at + 4 + n);
        at += 4 + n;
        return s;
      };
      if (str() && str() && str() && at + 4 <= b.length) {
        at += 4;
        const blob = str();
        if (blob && blob.length > 0) return Buffer.from(blob);
      }
    }
  }
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) return undefined;
  return (Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH();
}

function agentReachable(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function loadKey(file: string, plan: AuthPlan, explicit: boolean, attempts: AuthAttempts): Promise<ParsedKey | undefined> {
  let data: Buffer;
  let st: fs.Stats;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      st = fs.fstatSync(fd);
      data = fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!explicit) return undefined;
      if (plan.explicitFromConfig) {
        (attempts.missingKeys ??= []).push(file);
        return undefined;
      }
    }
    throw new OffsiteError('key', `Cannot read the SSH key ${file}: ${(e as Error).message}`, {
      cause: e,
      file,
      hint: 'Check the path given with --ssh-key or IdentityFile',
    });
  }
  // As OpenSSH (sshkey_perm_ok): a key file of this user that others may read or write is ignored. A
  // key the user named: said as an error, at once; a default key: skipped, and said if the login fails.
  if (process.platform !== 'win32' && st.uid === process.getuid?.() && (st.mode & 0o077) !== 0) {
    const perms = (st.mode & 0o777).toString(8).padStart(4, '0');
    const e = new OffsiteError('key', `Permissions ${perms} for the SSH key ${file} are too open: a private key must not be accessible by others, and OpenSSH ignores it (so does Offsite)`, {
      file,
      hint: `Run chmod 600 ${file}`,
    });
    if (explicit) throw e;
    attempts.problem ??= e;
    return undefined;
  }
  let parsed = utils.parseKey(data);
  if (parsed instanceof Error && /passphrase/i.test(parsed.message)) {
    const passphrase = plan.passphrase ?? (await plan.prompt?.(`Passphrase for the SSH key ${file}:`, { secret: true }));
    if (passphrase === undefined) {
      // No way to unlock it: try the other methods, but say why if they all fail.
      if (explicit) attempts.namedKeyLocked = true;
      attempts.problem ??= new OffsiteError('passphrase', `The SSH key ${file} is encrypted and no passphrase was given`, {
        file,
        needs: { input: 'sshPassphrase', wrong: false },
        hint: 'Set OFFSITE_SSH_PASSPHRASE or run Offsite where it can ask for the passphrase',
      });
      return undefined;
    }
    parsed = utils.parseKey(data, passphrase);
    if (parsed instanceof Error) {
      throw new OffsiteError('passphrase', `Wrong passphrase for the SSH key ${file}`, {
        cause: parsed,
        file,
        needs: { input: 'sshPassphrase', wrong: true },
        // Neutral: the extension passes its stored passphrase through OFFSITE_SSH_PASSPHRASE and asks
        // again; the CLI says which variable (cli/main.ts cliMessage).
        hint: 'Enter the right passphrase',
      });
    }
  }
  if (parsed instanceof Error) {
    if (!explicit) return undefined;
    throw new OffsiteError('key', `Cannot use the SSH key ${file}: ${parsed.message}`, {
      cause: parsed,
      file,
      hint: 'Use an OpenSSH private key (ed25519, ecdsa or rsa)',
    });
  }
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
  if (!key.isPrivateKey()) {
    if (!explicit) return undefined;
    throw new OffsiteError('key', `${file} is a public key, not a private key`, { file, hint: 'Give the private key file (without .pub)' });
  }
  return key;
}
