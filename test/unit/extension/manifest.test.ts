// package.json's contributions as a user meets them: every title and description is in
// package.nls.json, menus name contributed commands, and what greys a command out fits what it does.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../../helpers/cli';

interface Command {
  command: string;
  title: string;
  enablement?: string;
}

const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { contributes: { commands: Command[]; menus: Record<string, { command: string }[]> } };
const nls = JSON.parse(fs.readFileSync(path.join(REPO, 'package.nls.json'), 'utf8')) as Record<string, string>;

describe('extension: package.json contributions', () => {
  it('every %key% is in package.nls.json, and every key there is used', () => {
    const used = new Set([...JSON.stringify(pkg).matchAll(/%([A-Za-z0-9_.-]+)%/g)].map((m) => m[1]));
    assert.deepEqual([...used].filter((k) => !(k in nls)), []);
    assert.deepEqual(Object.keys(nls).filter((k) => !used.has(k)), []);
  });

  it('command titles are in VS Code\'s title case ("Compare with Saved"): short joining words lower-case inside a title, every other word capitalised', () => {
    const minor = new Set(['a', 'an', 'and', 'or', 'the', 'with', 'for', 'in', 'on']);
    const offending = pkg.contributes.commands.flatMap((c) => {
      const title = nls[c.title.replace(/^%|%$/g, '')] ?? c.title;
      const words = title.replace(/…$/, '').split(/[\s,]+/).filter(Boolean);
      const bad = words.filter((w, i) => (i > 0 && i < words.length - 1 && minor.has(w.toLowerCase()) ? w !== w.toLowerCase() : !/^[A-Z0-9]/.test(w)));
      return bad.length > 0 ? [`${c.command}: "${title}" (${bad.join(', ')})`] : [];
    });
    assert.deepEqual(offending, []);
  });

  it('titles say what the command does: Forget names passwords and keys as well as passphrases, Cancel names Verify too', () => {
    const title = (id: string) => nls[(pkg.contributes.commands.find((c) => c.command === id)?.title ?? '').replace(/^%|%$/g, '')];
    assert.match(title('offsite.forgetSecrets'), /Passphrases/);
    assert.match(title('offsite.forgetSecrets'), /Passwords/);
    assert.match(title('offsite.forgetSecrets'), /S3 Keys/);
    assert.match(title('offsite.cancel'), /Backup/);
    assert.match(title('offsite.cancel'), /Restore/);
    assert.match(title('offsite.cancel'), /Verify/);
  });

  it('menus name contributed commands', () => {
    const commands = new Set(pkg.contributes.commands.map((c) => c.command));
    const unknown = Object.entries(pkg.contributes.menus).flatMap(([menu, items]) => items.filter((i) => !commands.has(i.command)).map((i) => `${menu}: ${i.command}`));
    assert.deepEqual(unknown, []);
  });

  it('a running operation (a scheduled backup, say) greys out no way to compare or restore one version: the Backups view\'s Restore This Version as little as Restore To… or the diff\'s', () => {
    // A file is read, not restored under the folder's lock; a folder restore that would collide is
    // refused for that folder, with a message, as Restore To… is.
    const enablement = new Map(pkg.contributes.commands.map((c) => [c.command, c.enablement]));
    for (const id of ['offsite.restoreVersion', 'offsite.restoreTo', 'offsite.restoreThisVersion', 'offsite.restoreFileAsOf', 'offsite.compareWithBackup', 'offsite.compareWithCurrent']) {
      assert.equal(enablement.get(id), undefined, id);
    }
  });

  it('one folder\'s running operation greys out no other folder\'s: Backup, Verify, Drill and Restore Workspace stay enabled (a busy folder says so when asked), and a busy folder\'s item offers Cancel instead of Backup', () => {
    const enablement = new Map(pkg.contributes.commands.map((c) => [c.command, c.enablement]));
    for (const id of ['offsite.backupWorkspace', 'offsite.verify', 'offsite.drill', 'offsite.restoreWorkspaceTo']) assert.equal(enablement.get(id), undefined, id);
    assert.doesNotMatch(JSON.stringify(pkg), /operationInProgress/, 'no window-wide "something runs" key left to grey commands out');
    const items = pkg.contributes.menus['view/item/context'] as { command: string; when: string; group?: string }[];
    const inline = (viewItem: string) => items.filter((i) => i.group?.startsWith('inline') && new RegExp(`viewItem == ${viewItem}(\\s|$)`).test(i.when)).map((i) => i.command);
    assert.deepEqual(inline('folder'), ['offsite.backupWorkspace']);
    assert.deepEqual(inline('folder-busy'), ['offsite.cancel']);
  });
});
