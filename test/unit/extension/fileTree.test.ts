import * as assert from 'node:assert/strict';
import { buildFileTree, findNode, type FileNode } from '../../../src/extension/fileTree';

function shape(n: FileNode): unknown {
  return n.children.map((c) => (c.children.length ? { [`${c.name}${c.deleted ? ' (deleted)' : ''}`]: shape(c) } : `${c.name}:${c.kind}${c.deleted ? ' (deleted)' : ''}`));
}

describe('extension: file tree of a backup set', () => {
  it('nests the flat listing, folders first, names in byte order', () => {
    const root = buildFileTree([
      { path: '.', type: 'dir' },
      { path: 'b.txt', type: 'reg' },
      { path: 'A.txt', type: 'reg' },
      { path: 'src', type: 'dir' },
      { path: 'src/z.ts', type: 'reg' },
      { path: 'src/lib', type: 'dir' },
      { path: 'src/lib/u.ts', type: 'reg' },
      { path: 'link', type: 'sym' },
      { path: 'fifo', type: 'fifo' },
    ]);
    assert.deepEqual(shape(root), [{ src: [{ lib: ['u.ts:file'] }, 'z.ts:file'] }, 'A.txt:file', 'b.txt:file', 'fifo:other', 'link:link']);
    assert.equal(findNode(root, 'src/lib/u.ts')?.path, 'src/lib/u.ts');
    assert.equal(findNode(root, 'src/nope'), undefined);
    assert.equal(findNode(root, ''), root);
  });

  it('shows deleted files in their folders, making deleted folders as needed', () => {
    const root = buildFileTree(
      [
        { path: 'keep', type: 'dir' },
        { path: 'keep/a.txt', type: 'reg' },
      ],
      ['keep/gone.txt', 'old', 'old/x.txt', 'old/sub/y.txt', 'keep/a.txt'],
    );
    assert.deepEqual(shape(root), [{ keep: ['a.txt:file', 'gone.txt:file (deleted)'] }, { 'old (deleted)': [{ 'sub (deleted)': ['y.txt:file (deleted)'] }, 'x.txt:file (deleted)'] }]);
    assert.equal(findNode(root, 'old')?.kind, 'dir', 'a deleted path with deleted children is a folder');
    assert.equal(findNode(root, 'keep/a.txt')?.deleted, false, 'a listed file is never shown as deleted');
  });

  it('a listed folder stays a folder that is not deleted even when a child was deleted first', () => {
    const root = buildFileTree([{ path: 'd/new.txt', type: 'reg' }], ['d/old.txt']);
    assert.equal(findNode(root, 'd')?.deleted, false);
    assert.equal(findNode(root, 'd')?.kind, 'dir');
  });
});
