// Joined paths ('a/b', as the stat-ahead ring and the folder listings hold them) compare in the order of
// their indexes (compareIndex), from any offsets, although '/' sorts above '-' and '.' as a byte.
import { strict as assert } from 'node:assert';
import { compareIndex, compareJoinedPaths } from '../../src/engine/pathIndex';

describe('pathIndex: joined paths', () => {
  it('compare as their indexes do, component by component, at any offsets', () => {
    const paths = ['a', 'a/b', 'a/b/c', 'a-b', 'a.b', 'a/x', 'a0', 'ab', 'b', 'b/a-b', 'b/a/b', 'é', 'a/b-c', 'a/b/c-d'];
    const index = (p: string) => p.split('/').map((c) => Buffer.from(c));
    for (const x of paths) {
      for (const y of paths) {
        const a = Buffer.from(`${x}//trailing`);
        const b = Buffer.concat([Buffer.from('/root/'), Buffer.from(y)]);
        const got = Math.sign(compareJoinedPaths(a, 0, Buffer.byteLength(x), b, 6, b.length));
        assert.equal(got, Math.sign(compareIndex(index(x), index(y))), `${x} vs ${y}`);
      }
    }
  });
});
