// Authentication as OpenSSH users expect it: the agent's keys, then identity files (an explicit key or
// the config's IdentityFile, else the default ~/.ssh/id_*), then the password. Secrets come from
// callbacks or the environment, and are asked for only when the server gets that far.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { utils, type AnyAuthMethod, type AuthenticationType, type AuthHandlerMiddleware, type ParsedKey } from 'ssh2';
import { OffsiteError } from '../../errors';

export type Prompt = (question: string, opts: { secret: boolean }) => Promise<string | undefined>;

export interface AuthPlan {
  readonly user: string;
  /** Where the agent listens (SSH_AUTH_SOCK), if anywhere. */
  readonly agentSocket?: string;
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
  try {
    data = fs.readFileSync(file);
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
