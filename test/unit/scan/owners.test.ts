import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { OwnerNames, gnameOf, lookupGid, lookupUid, unameOf } from '../../../src/engine/scan/owners';

describe('scan/owners', () => {
  it('maps ids to names and back from passwd/group text, first entry winning', () => {
    const names = new OwnerNames(
      'root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\nbroken line\n',
      'root:x:0:\nstaff:x:50:alice\n',
    );
    assert.equal(names.uname(0), 'root');
    assert.equal(names.uname(1000), 'alice');
    assert.equal(names.uname(1234), '', 'an id without a name gives an empty name');
    assert.equal(names.gname(50), 'staff');
    assert.equal(names.gname(5678), '');
    assert.equal(names.uid('alias'), 1000);
    assert.equal(names.uid('nobody-here'), undefined);
    assert.equal(names.gid('staff'), 50);
  });

  it('reads this machine’s accounts, as getent does', () => {
    for (const [db, id] of [
      ['passwd', 0],
      ['group', 0],
      ['passwd', 65534],
    ] as const) {
      const r = spawnSync('getent', [db, String(id)], { encoding: 'utf8' });
      const expected = r.status === 0 ? r.stdout.split(':')[0] : '';
      assert.equal(db === 'passwd' ? unameOf(id) : gnameOf(id), expected, `${db} ${id}`);
      if (expected !== '') assert.equal(db === 'passwd' ? lookupUid(expected) : lookupGid(expected), id);
    }
    assert.equal(unameOf(2 ** 31 - 7), '');
  });
});
