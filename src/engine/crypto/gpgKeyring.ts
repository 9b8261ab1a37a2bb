// Reading keys out of the user's GnuPG keyring with the gpg binary (`gpg --export`,
// `--export-secret-keys`), honouring GNUPGHOME or an explicit home folder.
import { spawn } from 'node:child_process';
import { OffsiteError } from '../errors';

export interface GpgOptions {
  /** GnuPG home folder; default: $GNUPGHOME, else ~/.gnupg (gpg's own default). */
  readonly gnupgHome?: string;
}

interface GpgResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

function runGpg(args: string[], opts: GpgOptions, stdin?: string): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    if (opts.gnupgHome) env.GNUPGHOME = opts.gnupgHome;
    const child = spawn('gpg', ['--batch', '--no-tty', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(
          new OffsiteError('key', 'gpg is not installed, so keys cannot be taken from a GnuPG keyring', {
            hint: 'Install GnuPG, or give the path of a key file (armored or binary) instead of a key id',
            cause: e,
          }),
        );
      } else reject(e);
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.on('error', () => {
      /* gpg may exit before reading its input; its exit status tells what happened */
    });
    child.stdin.end(stdin ?? '');
  });
}

function keyringName(opts: GpgOptions): string {
  return opts.gnupgHome ?? process.env.GNUPGHOME ?? '~/.gnupg';
}

/** The public key(s) matching `spec` (key id, fingerprint, email or user id), binary. */
export async function gpgExportPublic(spec: string, opts: GpgOptions = {}): Promise<Buffer> {
  const r = await runGpg(['--export', '--', spec], opts);
  if (r.stdout.length === 0) {
    throw new OffsiteError('key', `No key matches "${spec}" in the GnuPG keyring ${keyringName(opts)}`, {
      hint: 'Check the key id, fingerprint or email with `gpg --list-keys`, or give the path of a key file',
    });
  }
  return r.stdout;
}

export type SecretExport =
  | { readonly ok: true; readonly data: Buffer }
  | { readonly ok: false; readonly reason: 'needPassphrase' | 'badPassphrase' | 'noSecretKey'; readonly detail: string };

/**
 * The secret key(s) matching `spec`, binary, protected as in the keyring. gpg asks its agent to unlock
 * a protected key for export: the passphrase goes in by loopback pinentry on stdin.
 */
export async function gpgExportSecret(spec: string, passphrase: string | undefined, opts: GpgOptions = {}): Promise<SecretExport> {
  const r = await runGpg(
    ['--pinentry-mode', 'loopback', '--passphrase-fd', '0', '--export-secret-keys', '--', spec],
    opts,
    passphrase === undefined ? '' : `${passphrase}\n`,
  );
  if (r.stdout.length > 0 && r.code === 0) return { ok: true, data: r.stdout };
  const detail = r.stderr.trim().split('\n').pop() ?? '';
  if (/Bad passphrase/i.test(r.stderr)) return { ok: false, reason: 'badPassphrase', detail };
  if (/No passphrase given|Operation cancelled|passphrase/i.test(r.stderr)) return { ok: false, reason: 'needPassphrase', detail };
  return { ok: false, reason: 'noSecretKey', detail };
}
