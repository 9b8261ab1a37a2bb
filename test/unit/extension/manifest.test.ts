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
});
