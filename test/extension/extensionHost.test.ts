// The extension's integration tests, run in a real VS Code extension host (code-server's VS Code 1.100
// with headless Debian Chromium; installed by scripts/setup-vscode.sh, nothing downloaded here). Each
// `it` is one run of VS Code; the suites themselves are test/extension/host/*.host.ts, and their
// output appears above the result.
import { assertVsCodeHostInstalled, bundleHostSuites, runHostSuite } from './hostRun';

describe('the VS Code extension in a real extension host', function () {
  this.timeout(600_000);

  before(async () => {
    assertVsCodeHostInstalled();
    await bundleHostSuites();
  });

  it('passes the integration suite (backup, tree, compare, restore, status bar, errors, cancel, passphrase, keys)', async () => {
    await runHostSuite({ suite: 'main' });
  });

  it('runs no backup in an untrusted workspace', async () => {
    await runHostSuite({ suite: 'untrusted', trust: true });
  });

  it('compares and restores only files (binary, image, symlink, untitled, outside), shows damage and progress (Cancel reaches a read and one file\'s restore), rechecks the remote before "stale", names bad settings, warns beside a backup whose keepFull was refused', async () => {
    await runHostSuite({ suite: 'edges' });
  });

  it('with no folder open, every command says to open one', async () => {
    await runHostSuite({ suite: 'empty' });
  });

  it('backs up every folder of a multi-root workspace, whichever fails, is busy or has its remote locked by another run; one folder\'s running backup holds up no other folder', async () => {
    await runHostSuite({ suite: 'multiroot' });
  });
});
