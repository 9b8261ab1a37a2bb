// The shared backend conformance suite, against a real OpenSSH server (key auth).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { partialNameFor } from '../../../../src/engine/backend/fileBackend';
import { describeBackendConformance } from '../conformance';
import { startFixture, type SftpFixture } from './sftpFixture';

describe('sftp backend', function () {
  let fx: SftpFixture;
  const dirs = new Map<string, string>();

  before(async () => {
    fx = await startFixture();
  });
  after(async () => {
    await fx?.sshd.stop();
  });

  describeBackendConformance(
    'sftp (OpenSSH, key auth)',
    () => {
      const { dir, url } = fx.freshRemote();
      const b = fx.open(url);
      dirs.set(b.displayUrl, dir);
      return b;
    },
    {
      makeLeftover: async (b) => {
        // What a put cut by a crash leaves: a temp file next to the final names, on the server.
        const name = partialNameFor('duplicity-full.20261126T131509Z.vol1.difftar.gpg');
        fs.writeFileSync(path.join(dirs.get(b.displayUrl)!, name), 'half a volume');
        return name;
      },
    },
  );
});
