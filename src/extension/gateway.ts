// The engine as the rest of the extension sees it: a request for a folder's configuration, with the
// secrets it needs filled in from SecretStorage, and the errors a person can fix on the spot fixed by
// asking and retrying the request (not the whole command): a missing or wrong passphrase, an SSH
// password, an unknown SSH host key (shown with its fingerprint; saved only if accepted). Every other
// error goes up, typed, to the command wrapper, which turns it into a notification.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KeySpec, RemoteConfig } from '../engine/service';
import { EngineError, unknownHostKeyFingerprint, type EngineClient, type EngineOp, type EngineRequest, type EngineResults, type RequestOptions } from './engineClient';
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
  ) {}

  async call<Op extends EngineOp>(cfg: FolderConfig, op: Op, build: RequestBuilder<Op>, opts: CallOptions): Promise<EngineResults[Op]> {
    const pgpId = passphraseIdFor(cfg, op);
    const sshTarget = sshTargetOf(cfg.url);
    let acceptHostKey: string | undefined;
    for (let attempt = 1; ; attempt++) {
      const passphrase = await this.secrets.get('pgpPassphrase', pgpId);
      const sshPassword = sshTarget ? await this.secrets.get('sshPassword', sshTarget) : undefined;
      const sshKeyFile = cfg.remote.sshKey;
      const sshPassphrase = sshKeyFile ? await this.secrets.get('sshPassphrase', sshKeyFile) : undefined;
      const remote: RemoteConfig = { ...cfg.remote, sshPassword, sshPassphrase, acceptHostKey };
      const keys: KeySpec = { ...cfg.keys, passphrase };
      try {
        return await this.client.request<Op>(build(remote, keys), opts);
      } catch (e) {
        if (!EngineError.is(e) || !opts.interactive || attempt >= MAX_ATTEMPTS || opts.signal?.aborted) throw e;
        if (e.code === 'passphrase' && e.file) {
          // An SSH key's passphrase (the error names the key file).
          await this.ask('sshPassphrase', e.file, sshPassphrase !== undefined, vscode.l10n.t('Passphrase of the SSH key {0}', e.file), e);
        } else if (e.code === 'passphrase') {
          await this.ask('pgpPassphrase', pgpId, passphrase !== undefined, vscode.l10n.t('Passphrase of your private key ({0})', describeKey(pgpId)), e);
        } else if (e.code === 'auth' && sshTarget && isSshUrl(cfg.url)) {
          await this.ask('sshPassword', sshTarget, sshPassword !== undefined, vscode.l10n.t('SSH password for {0}', sshTarget), e);
        } else if (e.code === 'hostKey' && acceptHostKey === undefined) {
          const fp = unknownHostKeyFingerprint(e.message);
          if (!fp) throw e;
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
    const remember = vscode.l10n.t('Remember');
    const session = vscode.l10n.t('Only This Session');
    const choice = await this.ui.notify(
      'info',
      vscode.l10n.t('Remember it in VS Code\'s secret storage?'),
      { modal: true, detail: vscode.l10n.t('Otherwise Offsite keeps it in memory until this window closes. It is never written to settings or logs.') },
      remember,
      session,
    );
    await this.secrets.set(kind, id, value, choice === remember);
  }
}

function describeKey(id: string): string {
  return id.includes('/') || id.includes(path.sep) ? path.basename(id) : id;
}
