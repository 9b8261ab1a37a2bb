// Asserting Offsite's own errors: the code a caller (the CLI, the extension) decides on, and the words
// a user reads.
import * as assert from 'node:assert/strict';
import { OffsiteError } from '../../src/engine/errors';

/**
 * Awaits `p`, which must reject with an OffsiteError of `code` whose message matches `message`
 * (and, with `hint`, that says what to do); returns the error.
 */
export async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp, opts: { hint?: boolean } = {}): Promise<OffsiteError> {
  try {
    await p;
  } catch (e) {
    assert.ok(OffsiteError.is(e), `expected an OffsiteError, got ${String(e)}`);
    assert.equal(e.code, code, `expected code ${code}, got ${e.code}: ${e.message}`);
    if (message) assert.match(e.message, message);
    if (opts.hint) assert.ok(e.hint, `no hint: ${e.message}`);
    return e;
  }
  assert.fail(`expected an OffsiteError '${code}', but it succeeded`);
}
