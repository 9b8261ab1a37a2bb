// Passphrases, passwords and S3 keys: in VS Code's SecretStorage when the user chose "Remember", else in memory
// for this window only. Never in settings, never in logs. Keys name what the secret unlocks. A secret
// storage that fails (no OS keyring on Linux, a locked one) costs only the remembering: the secret is
// kept for this window and the failure logged, so the operation the secret was asked for goes on.
import type * as vscode from 'vscode';

/**
 * pgpPassphrase: a private key's, by key; backupPassphrase: a backup's made with a passphrase and no
 * key (symmetric), by remote URL; s3Keys: an s3:// remote's keys as one JSON value (awsCredentials.ts).
 */
export type SecretKind = 'pgpPassphrase' | 'backupPassphrase' | 'sshPassphrase' | 'sshPassword' | 's3Keys';

const PREFIX = 'offsite.';
const INDEX = 'offsite.secretKeys';

export class Secrets {
  private readonly session = new Map<string, string>();

  constructor(
    private readonly storage: vscode.SecretStorage,
    private readonly state: vscode.Memento,
    /** Where a failure of the secret storage is reported (the key's name and the error, never a value). */
    private readonly warn: (message: string) => void = () => undefined,
  ) {}

  private key(kind: SecretKind, id: string): string {
    return `${PREFIX}${kind}:${id}`;
  }

  /** The storage's answer, or `fallback` when it fails. */
  private async tryStorage<T>(what: string, k: string, f: () => Thenable<T>, fallback: T): Promise<T> {
    try {
      return await f();
    } catch (e) {
      this.warn(`VS Code's secret storage could not ${what} ${k}: ${e instanceof Error ? e.message : String(e)}`);
      return fallback;
    }
  }

  async get(kind: SecretKind, id: string): Promise<string | undefined> {
    const k = this.key(kind, id);
    return this.session.get(k) ?? (await this.tryStorage('read', k, () => this.storage.get(k), undefined));
  }

  /** Keeps a secret for this window, and in SecretStorage when `remember`; true when it was stored there. */
  async set(kind: SecretKind, id: string, value: string, remember: boolean): Promise<boolean> {
    const k = this.key(kind, id);
    this.session.set(k, value);
    if (!remember) return false;
    if (!(await this.tryStorage('store', k, async () => (await this.storage.store(k, value), true), false))) return false;
    // SecretStorage cannot list its keys: keep their names (not values) so "Forget" can remove them all.
    const known = new Set(this.state.get<string[]>(INDEX, []));
    known.add(k);
    await this.state.update(INDEX, [...known]);
    return true;
  }

  async delete(kind: SecretKind, id: string): Promise<void> {
    const k = this.key(kind, id);
    this.session.delete(k);
    await this.tryStorage('delete', k, () => this.storage.delete(k), undefined);
  }

  /**
   * Forgets every remembered secret: `forgotten`, how many there were; `kept`, how many the secret
   * storage refused to delete (still in the OS keyring: their names stay known, for another try).
   */
  async clear(): Promise<{ forgotten: number; kept: number }> {
    const known = this.state.get<string[]>(INDEX, []);
    const kept: string[] = [];
    for (const k of known) if (!(await this.tryStorage('delete', k, async () => (await this.storage.delete(k), true), false))) kept.push(k);
    await this.state.update(INDEX, kept);
    const n = new Set([...known, ...this.session.keys()]).size;
    this.session.clear();
    return { forgotten: n - kept.length, kept: kept.length };
  }
}
