// End to end, like a person: a real VS Code (code-server) in headless Chromium, driven with the
// keyboard and mouse through playwright-core. Backs up from the command palette, opens the Backups
// view, opens a restore-as-of-date diff and restores from its title bar. Screenshots go to
// test-artifacts/e2e/.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { REPO } from '../helpers/cli';
import { KEYS } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { README_V1, assertVsCodeHostInstalled, makeWorkspace } from './hostRun';

// The launcher is plain JavaScript shared with `npm start`.
const { startCodeServer, workbenchUrl, launchChromium } = require(path.join(REPO, 'scripts', 'codeHeadless.js')) as {
  startCodeServer(o: { env?: NodeJS.ProcessEnv }): Promise<{ authority: string; dataDir: string; log(): string; stop(): Promise<void> }>;
  workbenchUrl(authority: string, o: { folder?: string; extensionDevelopmentPath?: string[] }): string;
  launchChromium(dir: string, extra?: object): Promise<BrowserContext>;
};

const ARTIFACTS = path.join(REPO, 'test-artifacts', 'e2e');
const README_V2 = '# Demo\n\nsecond version, edited in the e2e test\n';

async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
}

async function notification(page: Page, text: RegExp, timeout = 60_000): Promise<void> {
  await page.locator('.notification-toast', { hasText: text }).first().waitFor({ state: 'visible', timeout });
}

async function shot(page: Page, name: string): Promise<void> {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file });
  assert.ok(fs.statSync(file).size > 1000, `${name} was saved`);
}

describe('the VS Code extension, end to end in a browser', function () {
  this.timeout(300_000);
  let cs: Awaited<ReturnType<typeof startCodeServer>> | undefined;
  let context: BrowserContext | undefined;

  before(() => {
    assertVsCodeHostInstalled();
    fs.rmSync(ARTIFACTS, { recursive: true, force: true });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await cs?.stop();
  });

  it('backs up from the palette, shows the tree, opens a restore-as-of-date diff and restores', async () => {
    const root = tempDir('offsite-e2e-');
    const ws = makeWorkspace(root);
    const remoteRoot = `file://${path.join(root, 'remote')}`;
    fs.mkdirSync(path.join(ws, '.vscode'));
    fs.writeFileSync(
      path.join(ws, '.vscode', 'settings.json'),
      JSON.stringify({ 'offsite.remote': remoteRoot, 'offsite.encryptKeys': [path.join(KEYS, 'rsa-pub.asc')], 'offsite.restoreKey': path.join(KEYS, 'rsa-sec.asc') }),
    );
    for (const d of ['home', 'gnupg']) fs.mkdirSync(path.join(root, d), { mode: 0o700 });
    fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o700 });
    // HOME, GnuPG, the engine's cache and temp files: private to the test, removed with it.
    cs = await startCodeServer({ env: { HOME: path.join(root, 'home'), GNUPGHOME: path.join(root, 'gnupg'), XDG_CACHE_HOME: path.join(root, 'cache'), TMPDIR: path.join(root, 'tmp') } });
    context = await launchChromium(path.join(root, 'chromium'), { viewport: { width: 1400, height: 860 } });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(workbenchUrl(cs.authority, { folder: ws, extensionDevelopmentPath: [REPO] }));
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 120_000 });
    // The status bar item appears once the extension is active and sees the configuration.
    const status = page.locator('.statusbar-item', { hasText: 'No backup yet' });
    await status.waitFor({ state: 'visible', timeout: 120_000 });

    // 1. Backup Workspace from the command palette.
    await runCommand(page, 'Offsite: Backup Workspace');
    await notification(page, /Backup of workspace done \(full\)/);
    await page.locator('.statusbar-item', { hasText: 'just now' }).waitFor({ state: 'visible' });
    await shot(page, '01-backup-done.png');
    assert.ok(fs.readdirSync(path.join(root, 'remote', 'workspace')).some((f) => /^duplicity-full\..*\.manifest\.gpg$/.test(f)));

    // A change, and a second (incremental) backup.
    await new Promise((r) => setTimeout(r, 1100));
    fs.writeFileSync(path.join(ws, 'README.md'), README_V2);
    await runCommand(page, 'Offsite: Backup Workspace');
    await notification(page, /Backup of workspace done \(incremental\)/);

    // 2. The Backups view: chains → sets → files.
    await page.locator('.activitybar a[aria-label^="Offsite"], .activitybar .action-label[aria-label^="Offsite"]').first().click();
    const tree = page.locator('.sidebar .monaco-list');
    const chain = tree.locator('.monaco-list-row', { hasText: 'Chain since' }).first();
    await chain.waitFor({ state: 'visible', timeout: 60_000 });
    const newest = tree.locator('.monaco-list-row', { hasText: /incremental · .* · 1 changed/ }).first();
    await newest.waitFor({ state: 'visible' });
    await newest.click();
    await tree.locator('.monaco-list-row', { hasText: 'README.md' }).first().waitFor({ state: 'visible', timeout: 60_000 });
    await tree.locator('.monaco-list-row', { hasText: 'logo.bin' }).first().waitFor({ state: 'visible' });
    await shot(page, '02-backups-view.png');

    // 3. Open README.md and compare it with the backup as of the first backup (the older version in the pick).
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill('README.md');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'README.md' }).first().waitFor({ state: 'visible' });
    await page.keyboard.press('Enter');
    await page.locator('.tab', { hasText: 'README.md' }).first().waitFor({ state: 'visible' });
    await runCommand(page, 'Offsite: Compare with Backup…');
    const versions = page.locator('.quick-input-list .monaco-list-row');
    await versions.nth(2).waitFor({ state: 'visible', timeout: 60_000 });
    assert.match((await versions.nth(1).textContent()) ?? '', /added/, 'the second version is the one the first backup added');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    const diff = page.locator('.monaco-diff-editor');
    await diff.waitFor({ state: 'visible', timeout: 60_000 });
    await page.locator('.monaco-diff-editor .editor.original', { hasText: 'first version' }).waitFor({ state: 'visible' });
    await page.locator('.monaco-diff-editor .editor.modified', { hasText: 'second version' }).waitFor({ state: 'visible' });
    await page.locator('.tab', { hasText: '(backup of' }).first().waitFor({ state: 'visible' });
    await shot(page, '03-restore-as-of-diff.png');

    // 4. "Restore This Version" in the diff's title bar asks, then writes the old content.
    await page.locator('.editor-actions .action-label[aria-label="Restore This Version"]').first().click();
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible' });
    await shot(page, '04-restore-question.png');
    await dialog.locator('.monaco-button', { hasText: /^Restore$/ }).click();
    await notification(page, /Restored README\.md as of/);
    assert.equal(fs.readFileSync(path.join(ws, 'README.md'), 'utf8'), README_V1);
    await shot(page, '05-restored.png');
  });
});
