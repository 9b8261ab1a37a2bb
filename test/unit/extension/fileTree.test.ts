import * as assert from 'node:assert/strict';
import { nodeOf, sortNodes, toPage } from '../../../src/extension/fileTree';

describe('extension: a folder of the snapshot tree', () => {
  it('turns the engine\'s entries into nodes: name, kind, deleted', () => {
    assert.deepEqual(nodeOf({ path: 'src/lib/u.ts', type: 'reg', mode: 0o644, mtime: 1 }), { name: 'u.ts', path: 'src/lib/u.ts', kind: 'file', deleted: false });
    assert.deepEqual(nodeOf({ path: 'old', type: 'dir', mode: 0, mtime: 0, deleted: true }), { name: 'old', path: 'old', kind: 'dir', deleted: true });
    assert.equal(nodeOf({ path: 'l', type: 'sym', mode: 0o777, mtime: 1 }).kind, 'link');
    assert.equal(nodeOf({ path: 'p', type: 'fifo', mode: 0o644, mtime: 1 }).kind, 'other');
  });

  it('sorts folders first, then names', () => {
    const nodes = ['b.txt', 'a.txt', 'src/', 'lib/', 'Z'].map((n) => nodeOf({ path: n.replace('/', ''), type: n.endsWith('/') ? 'dir' : 'reg', mode: 0, mtime: 0 }));
    assert.deepEqual(sortNodes(nodes).map((n) => n.name), ['lib', 'src', 'Z', 'a.txt', 'b.txt']);
  });

  it('a page: at most pageSize nodes, and the cursor of the next page only when the engine had more', () => {
    const entries = Array.from({ length: 5 }, (_, i) => ({ path: `d/f${i}`, type: 'reg', mode: 0, mtime: 0 }));
    assert.deepEqual(toPage(entries, 5), { nodes: entries.map(nodeOf), next: undefined });
    const p = toPage(entries, 4);
    assert.equal(p.nodes.length, 4);
    assert.equal(p.next, 'd/f3');
    assert.deepEqual(toPage([], 4), { nodes: [], next: undefined });
  });
});
