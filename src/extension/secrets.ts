// Passphrases, passwords and S3 keys: in VS Code's SecretStorage when the user chose "Remember", else in memory
// for this window only. Never in settings, never in logs. Keys name what the secret unlocks.
import type * as vscode from 'vscode';

/** s3Keys: an s3:// remote's keys as one JSON value (awsCredentials.ts). */
export type SecretKind = 'pgpPassphrase' | 'sshPassphrase' | 'sshPassword' | 's3Keys';

const PREFIX = 'offsite.';
const INDEX = 'offsite.secretKeys';

export class Secrets {
  private readonly session = new Map<string, string>();

  constructor(
    private readonly storage: vscode.SecretStorage,
    private readonly state: vscode.Memento,
  ) {}

  private key(kind: SecretKind, id: string): string {
    return `${PREFIX}${kind}:${id}`;
  }

  async get(kind: SecretKind, id: string): Promise<string | undefined> {
    const k = this.key(kind, id);
    return this.session.get(k) ?? (await this.storage.get(k));
  }

  async set(kind: SecretKind, id: string, value: string, remember: boolean): Promise<void> {
    const k = this.key(kind, id);
    this.session.set(k, value);
    if (!remember) return;
    await this.storage.store(k, value);
    // SecretStorage cannot list its keys: keep their names (not values) so "Forget" can remove them all.
    const known = new Set(this.state.get<string[]>(INDEX, []));
    known.add(k);
    await this.state.update(INDEX, [...known]);
  }

  async delete(kind: SecretKind, id: string): Promise<void> {
    const k = this.key(kind, id);
    this.session.delete(k);
    await this.storage.delete(k);
  }

  /** Forgets every remembered secret; returns how many there were. */
  async clear(): Promise<number> {
    const known = this.state.get<string[]>(INDEX, []);
    for (const k of known) await this.storage.delete(k);
    await this.state.update(INDEX, []);
    const n = new Set([...known, ...this.session.keys()]).size;
    this.session.clear();
    return n;
  }
}
