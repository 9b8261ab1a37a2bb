// A child process killed at a chosen moment: the script (TypeScript through tsx, run from the
// repository's root, so `require('./src/…')` works) arranges its own SIGKILL there, typically by
// replacing the fs call that would come next.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { REPO } from './cli';

/** Runs `script` in a child process and checks it ended by SIGKILL (else its stderr says why not). */
export function runUntilKilled(script: string): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
}
