// The route names the CLI and the engine process give the launchers' code cache: the ways that run
// other code are told apart, everything else is the command's name.
import * as assert from 'node:assert/strict';
import { codeRoute } from '../../src/engine/codeRoute';

describe('codeRoute', () => {
  it('tells a full backup, a walked incremental and a probed one apart, and a path restore from a whole one', () => {
    assert.equal(codeRoute('backup', { type: 'full', probed: false }), 'backup:full');
    assert.equal(codeRoute('backup', { type: 'inc', probed: false }), 'backup:inc');
    assert.equal(codeRoute('backup', { type: 'inc', probed: true }), 'backup:inc-probe');
    assert.equal(codeRoute('restore', { path: 'a/b.txt' }), 'restore:path');
    assert.equal(codeRoute('restore', {}), 'restore:all');
  });

  it('names anything else by the command alone', () => {
    assert.equal(codeRoute('verify'), 'verify');
    assert.equal(codeRoute('readFile', { path: 'a.txt' }), 'readFile');
    assert.equal(codeRoute('backup'), 'backup', 'a backup without a result (none came back)');
  });
});
