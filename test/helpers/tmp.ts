// Private temporary folders for tests, removed after the test file's run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

/** Creates a 0700 folder under the OS temp dir; it is removed when the mocha run ends. */
export function tempDir(prefix = 'offsite-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

process.on('exit', () => {
  if (process.env.OFFSITE_KEEP_TEST_DIRS) return;
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});
