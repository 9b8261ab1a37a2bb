// Mocha root hook: bundles the CLI once before any test runs, so CLI tests exercise the current code.
// A failed build does not stop unit tests of other stages; the CLI tests then fail on their own.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export const mochaHooks = {
  beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    try {
      execFileSync(process.execPath, [path.resolve(__dirname, '..', 'esbuild.mjs')], { cwd: path.resolve(__dirname, '..'), stdio: 'pipe' });
    } catch (e) {
      process.stderr.write(`warning: building dist/ failed; CLI tests will fail:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? e}\n`);
    }
  },
};
