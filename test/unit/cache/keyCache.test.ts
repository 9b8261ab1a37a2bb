// The remembered key checks (keys/ of the cache root, crypto/recipient.ts): a verdict is written to
// SHA256.json.PID.tmp and renamed; a process killed between the two leaves that temporary, which the
// cache's sweep of dead runs' temporaries (backup, cleanup, status) must find, and only when its
// process is gone and the name is of that exact form.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { ArchiveDir, archiveDirFor, keyCacheDir } from '../../../src/engine/cache/archiveDir';
import { cryptoForRead } from '../../../src/engine/cryptoConfig';
import { MemoryLogger } from '../../../src/engine/log';
import { cleanup } from '../../../src/engine/ops/cleanup';
import { RSA_PUB } from '../../helpers/gpg';
import { runUntilKilled } from '../../helpers/killed';
import { tempDir } from '../../helpers/tmp';

/** Loads the RSA fixture key with a verdict folder in a child process SIGKILLed between writing the verdict's temporary and renaming it. */
function killedWhileRemembering(verdictDir: string): void {
  const script = `
    require('node:fs').promises.rename = async () => process.kill(process.pid, 'SIGKILL');
    const { loadRecipients } = require('./src/engine/crypto/recipient');
    loadRecipients([${JSON.stringify(RSA_PUB)}], { verdictDir: ${JSON.stringify(verdictDir)} });`;
  runUntilKilled(script);
}

describe('cache: remembered key checks', function () {
  this.timeout(60_000);

  it("a verdict's temporary left by a killed process is swept as stale (cleanup; status and backup use the same sweep); a live process's and other names are not", async () => {
    const box = tempDir('offsite-keycache-');
    const root = path.join(box, 'cache');
    const vault = path.join(box, 'vault');
    fs.mkdirSync(vault);
    const archive = ArchiveDir.open(archiveDirFor(`file://${vault}`, root));
    const keys = keyCacheDir(root);
    killedWhileRemembering(keys);
    const dead = fs.readdirSync(keys).filter((n) => /^[0-9a-f]{64}\.json\.\d+\.tmp$/.test(n));
    assert.equal(dead.length, 1, fs.readdirSync(keys).join(' '));
    const live = spawn('sleep', ['30']);
    try {
      const liveTemp = `${'b'.repeat(64)}.json.${live.pid}.tmp`;
      fs.writeFileSync(path.join(keys, liveTemp), '{}');
      const notOurs = `notes.json.${dead[0].split('.')[2]}.tmp`; // a dead pid, but not a verdict's name
      fs.writeFileSync(path.join(keys, notOurs), 'x');
      assert.deepEqual(archive.staleTempFiles(), [path.join(keys, dead[0])]);
      const r = await cleanup({ backend: new FileBackend(vault), archive, crypto: cryptoForRead({}), log: new MemoryLogger(), force: true });
      assert.deepEqual(r.local, [path.join(keys, dead[0])]);
      assert.deepEqual(fs.readdirSync(keys).sort(), [liveTemp, notOurs].sort());
    } finally {
      live.kill();
    }
  });
});
