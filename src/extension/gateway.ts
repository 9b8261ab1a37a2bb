// The engine as the rest of the extension sees it: a request for a folder's configuration, with the
// secrets it needs filled in from SecretStorage, and the errors a person can fix on the spot fixed by
// asking and retrying the request (not the whole command): a missing or wrong passphrase (of the
// private key, or of a backup made with a passphrase and no key, which the engine asks for only when a
// file needs it), an SSH password, an unknown SSH host key (shown with its fingerprint; saved only if
// accepted), S3 keys for an s3:// remote that has none configured the AWS way (or whose remembered keys
// were refused). Every other error goes up, typed, to the command wrapper, which turns it into a
// notification.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KeySpec, RemoteConfig } from '../engine/service';
import { redactUrl } from '../engine/backend/backendUtil';
import { awsCredentialsConfigured, decodeS3Keys, encodeS3Keys, isS3Url, s3KeysIdFor } from './awsCredentials';
import { EngineError, type EngineClient, type EngineOp, type EngineRequest, type EngineResults, type RequestOptions } from './engineClient';
import { isSshUrl, passphraseIdFor, sshTargetOf, type FolderConfig } from './folderConfig';
import type { SecretKind, Secrets } from './secrets';
import type { Ui } from './ui';

export interface CallOptions extends RequestOptions {
  /** May ask the user (passphrase, password, host key). Background runs may not. */
  readonly interactive: boolean;
}

/** Build the request from the remote and keys, with secrets filled in. */
export type RequestBuilder<Op extends EngineOp> = (remote: RemoteConfig, keys: KeySpec) => EngineRequest<Op>;

const MAX_ATTEMPTS = 5;

export class EngineGateway {
  constructor(
    readonly client: EngineClient,
    private readonly secrets: Secrets,
    private readonly ui: Ui,
    /** The engine's environment (AWS_* variables, HOME): the engine process inherits this one. */
    private readonly env: Readonly<Record<string, string | undefined>> = process.env,
  ) {}

  async call<Op extends EngineOp>(cfg: FolderConfig, op: Op, build: RequestBuilder<Op>, opts: CallOptions): Promise<EngineResults[Op]> {
    const pgpId = passphraseIdFor(cfg, op);
    // A symmetric backup's passphrase belongs to the remote (whatever keys are configured).
    const backupId = redactUrl(cfg.url);
    const sshTarget = sshTargetOf(cfg.url);
    const s3Id = isS3Url(cfg.url) ? s3KeysIdFor(cfg) : undefined;
    let acceptHostKey: string | undefined;
    for (let attempt = 1; ; attempt++) {
      const passphrase = await this.secrets.get('pgpPassphrase', pgpId);
      const backupPassphrase = await this.secrets.get('backupPassphrase', backupId);
      const sshPassword = sshTarget ? await this.secrets.get('sshPassword', sshTarget) : undefined;
      const sshKeyFile = cfg.remote.sshKey;
      const sshPassphrase = sshKeyFile ? await this.secrets.get('sshPassphrase', sshKeyFile) : undefined;
      const s3Keys = s3Id ? decodeS3Keys(await this.secrets.get('s3Keys', s3Id)) : undefined;
      const remote: RemoteConfig = {
        ...cfg.remote,
        sshPassword,
        sshPassphrase,
        acceptHostKey,
        ...(s3Keys ? { s3AccessKeyId: s3Keys.accessKeyId, s3SecretAccessKey: s3Keys.secretAccessKey, s3SessionToken: s3Keys.sessionToken } : {}),
      };
      const keys: KeySpec = { ...cfg.keys, passphrase, backupPassphrase };
      try {
        return await this.client.request<Op>(build(remote, keys), opts);
      } catch (e) {
        if (!EngineError.is(e) || !opts.interactive || attempt >= MAX_ATTEMPTS || opts.signal?.aborted) throw e;
        if (e.code === 'passphrase' && e.needs?.input === 'sshPassphrase' && e.file) {
          // An SSH key's passphrase (the error names the key file; other passphrase errors may name a
          // remote file, which is no SSH key).
          await this.ask('sshPassphrase', e.file, sshPassphrase !== undefined, vscode.l10n.t('Passphrase of the SSH key {0}', e.file), e);
        } else if (e.code === 'passphrase' && e.needs?.input === 'passphrase' && e.needs.symmetric) {
          await this.ask('backupPassphrase', backupId, backupPassphrase !== undefined, vscode.l10n.t('Passphrase of the backup at {0} (it was made with a passphrase, no key)', backupId), e);
        } else if (e.code === 'passphrase') {
          await this.ask('pgpPassphrase', pgpId, passphrase !== undefined, vscode.l10n.t('Passphrase of your private key ({0})', describeKey(pgpId)), e);
        } else if (e.code === 'auth' && sshTarget && isSshUrl(cfg.url)) {
          await this.ask('sshPassword', sshTarget, sshPassword !== undefined, vscode.l10n.t('SSH password for {0}', sshTarget), e);
        } else if (e.code === 'auth' && s3Id && (s3Keys !== undefined || !awsCredentialsConfigured(cfg.remote.s3Profile, this.env, this.env.HOME || undefined))) {
          // Keys of ours that were refused, or none anywhere: ask. Keys configured the AWS way are the user's to fix there.
          await this.askS3Keys(s3Id, s3Keys !== undefined, e);
        } else if (e.code === 'hostKey' && e.needs?.input === 'hostKey' && acceptHostKey === undefined) {
          // An unknown host key (a changed or revoked one has no `needs`: accepting it is not the way).
          const fp = e.needs.fingerprint;
          const accept = vscode.l10n.t('Accept and Save');
          const answer = await this.ui.notify(
            'warning',
            vscode.l10n.t('Unknown SSH host key'),
            {
              modal: true,
              detail: vscode.l10n.t(
                '{0}\n\nAccept it only if this is the server\'s real key (ask its administrator, or run ssh-keygen -lf on the server). It is then saved in your known_hosts file.',
                e.message,
              ),
            },
            accept,
          );
          if (answer !== accept) throw new EngineError({ code: 'cancelled', message: 'Cancelled' });
          acceptHostKey = fp;
        } else throw e;
      }
    }
  }

  /** Asks for a secret after `e`; forgets a remembered one that was just refused. Throws 'cancelled' when the user declines. */
  private async ask(kind: SecretKind, id: string, hadOne: boolean, prompt: string, e: EngineError): Promise<void> {
    if (hadOne) await this.secrets.delete(kind, id);
    const value = await this.ui.input({
      title: prompt,
      prompt: hadOne ? vscode.l10n.t('{0}. Try again.', e.message) : prompt,
      password: true,
      ignoreFocusOut: true,
    });
    if (value === undefined) throw new EngineError({ code: 'cancelled', message: 'Cancelled' });
    await this.secrets.set(kind, id, value, await this.remember());
  }

  /** Asks for an S3 access key id, secret access key and optional session token; forgets refused ones. */
  private async askS3Keys(id: string, hadSome: boolean, e: EngineError): Promise<void> {
    if (hadSome) await this.secrets.delete('s3Keys', id);
    const cancelled = () => new EngineError({ code: 'cancelled', message: 'Cancelled' });
    const why = hadSome ? vscode.l10n.t('{0}. Try again.', e.message) : vscode.l10n.t('{0}. No credentials are configured for it (no AWS_* variables, no profile).', e.message);
    const accessKeyId = (
      await this.ui.input({
        title: vscode.l10n.t('S3 access key id for {0} (1/3)', id),
        prompt: why,
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() ? undefined : vscode.l10n.t('The access key id is needed')),
      })
    )?.trim();
    if (!accessKeyId) throw cancelled();
    const secretAccessKey = await this.ui.input({
      title: vscode.l10n.t('S3 secret access key for {0} (2/3)', id),
      prompt: vscode.l10n.t('The secret key of {0}', accessKeyId),
      password: true,
      ignoreFocusOut: true,
      validateInput: (v) => (v ? undefined : vscode.l10n.t('The secret access key is needed')),
    });
    if (!secretAccessKey) throw cancelled();
    const sessionToken = await this.ui.input({
      title: vscode.l10n.t('S3 session token (3/3, optional)'),
      prompt: vscode.l10n.t('Only for temporary credentials (STS); leave it empty otherwise.'),
      password: true,
      ignoreFocusOut: true,
    });
    if (sessionToken === undefined) throw cancelled();
    const keys = encodeS3Keys({ accessKeyId, secretAccessKey, sessionToken: sessionToken.trim() || undefined });
    await this.secrets.set('s3Keys', id, keys, await this.remember());
  }

  /** "Remember" keeps a secret in SecretStorage; otherwise it stays in memory for this window. */
  private async remember(): Promise<boolean> {
    const remember = vscode.l10n.t('Remember');
    const session = vscode.l10n.t('Only This Session');
    const choice = await this.ui.notify(
      'info',
      vscode.l10n.t('Remember it in VS Code\'s secret storage?'),
      { modal: true, detail: vscode.l10n.t('Otherwise Offsite keeps it in memory until this window closes. It is never written to settings or logs.') },
      remember,
      session,
    );
    return choice === remember;
  }
}

function describeKey(id: string): string {
  return id.includes('/') || id.includes(path.sep) ? path.basename(id) : id;
}
