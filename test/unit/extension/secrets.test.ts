// Secrets (secrets.ts) under plain Node, with an in-memory SecretStorage that can be made to fail as
// VS Code's does without an OS keyring: the secret is still used for this window, and the failure is
// logged without the secret's value.
import * as assert from 'node:assert/strict';
import type * as vscode from 'vscode';
import { Secrets } from '../../../src/extension/secrets';

class MemoryStorage {
  readonly values = new Map<string, string>();
  failing = false;

  private check(): void {
    if (this.failing) throw new Error('Cannot create an item in a locked collection');
  }

  async get(k: string): Promise<string | undefined> {
    this.check();
    return this.values.get(k);
  }

  async store(k: string, v: string): Promise<void> {
    this.check();
    this.values.set(k, v);
  }

  async delete(k: string): Promise<void> {
    this.check();
    this.values.delete(k);
  }
}

class MemoryMemento {
  private readonly values = new Map<string, unknown>();

  get<T>(k: string, fallback?: T): T {
    return (this.values.has(k) ? this.values.get(k) : fallback) as T;
  }

  async update(k: string, v: unknown): Promise<void> {
    this.values.set(k, v);
  }
}

function make(): { secrets: Secrets; storage: MemoryStorage; warnings: string[] } {
  const storage = new MemoryStorage();
  const warnings: string[] = [];
  const secrets = new Secrets(storage as unknown as vscode.SecretStorage, new MemoryMemento() as unknown as vscode.Memento, (m) => warnings.push(m));
  return { secrets, storage, warnings };
}

describe('extension: secrets', () => {
  it('remembers in secret storage when asked to, else only for this window; Forget removes them all', async () => {
    const { secrets, storage } = make();
    assert.equal(await secrets.set('pgpPassphrase', '/k/sec.asc', 'pw1', true), true);
    assert.equal(await secrets.set('sshPassword', 'me@nas', 'pw2', false), false);
    assert.deepEqual([...storage.values.values()], ['pw1']);
    assert.equal(await secrets.get('sshPassword', 'me@nas'), 'pw2');
    assert.deepEqual(await secrets.clear(), { forgotten: 2, kept: 0 });
    assert.equal(storage.values.size, 0);
    assert.equal(await secrets.get('pgpPassphrase', '/k/sec.asc'), undefined);
  });

  it('a failing secret storage keeps the secret for this window and logs the failure, never the secret', async () => {
    const { secrets, storage, warnings } = make();
    storage.failing = true;
    assert.equal(await secrets.set('pgpPassphrase', '/k/sec.asc', 'hunter2-pass', true), false, 'not remembered');
    assert.equal(await secrets.get('pgpPassphrase', '/k/sec.asc'), 'hunter2-pass', 'still used in this window');
    assert.equal(await secrets.get('sshPassword', 'me@nas'), undefined, 'a failed read is "none remembered"');
    await secrets.delete('pgpPassphrase', '/k/sec.asc');
    assert.equal(await secrets.get('pgpPassphrase', '/k/sec.asc'), undefined);
    assert.deepEqual(await secrets.clear(), { forgotten: 0, kept: 0 });
    assert.equal(warnings.length, 4, warnings.join('\n'));
    assert.ok(warnings.every((w) => /secret storage could not .* offsite\.\w+:.*locked collection/.test(w)), warnings.join('\n'));
    assert.ok(!warnings.some((w) => w.includes('hunter2')));
  });

  it('Forget says which secrets the storage refused to delete, and tries them again next time', async () => {
    const { secrets, storage } = make();
    await secrets.set('pgpPassphrase', 'K', 'pw1', true);
    await secrets.set('sshPassword', 'me@nas', 'pw2', true);
    storage.failing = true;
    assert.deepEqual(await secrets.clear(), { forgotten: 0, kept: 2 }, 'still in the keyring: not forgotten');
    assert.equal(storage.values.size, 2);
    storage.failing = false;
    assert.deepEqual(await secrets.clear(), { forgotten: 2, kept: 0 });
    assert.equal(storage.values.size, 0);
  });

  it('a secret remembered before the storage failed is still forgotten for this window when refused', async () => {
    const { secrets, storage } = make();
    await secrets.set('pgpPassphrase', 'K', 'wrong', true);
    storage.failing = true;
    await secrets.delete('pgpPassphrase', 'K');
    await secrets.set('pgpPassphrase', 'K', 'right', true);
    assert.equal(await secrets.get('pgpPassphrase', 'K'), 'right');
  });
});
