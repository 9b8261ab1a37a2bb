// The records of the cache's copies (offsite-copies/): a record is written to NAME.json.tmp-PID and
// renamed; a process killed between the two leaves that temporary, which the cache's sweep of dead
// runs' temporaries (backup, cleanup, status) must find there too, and only when its process is gone.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { COPY_RECORDS } from '../../../src/engine/cache/copyRecords';
import { cryptoForRead } from '../../../src/engine/cryptoConfig';
import { MemoryLogger } from '../../../src/engine/log';
import { cleanup } from '../../../src/engine/ops/cleanup';
import { runUntilKilled } from '../../helpers/killed';
import { tempDir } from '../../helpers/tmp';

/** Runs CopyRecords.set in a child process that is SIGKILLed between writing the temporary and renaming it. */
function killedWhileRecording(cacheDir: string, name: string): void {
  const script = `
    const fs = require('node:fs');
    const { ArchiveDir } = require('./src/engine/cache/archiveDir');
    const { CopyRecords } = require('./src/engine/cache/copyRecords');
    fs.renameSync = () => process.kill(process.pid, 'SIGKILL');
    new CopyRecords(ArchiveDir.open(${JSON.stringify(cacheDir)})).set(${JSON.stringify(name)}, { size: 10, remoteSize: 20 });`;
  runUntilKilled(script);
}

describe('cache: records of the copies', function () {
  this.timeout(60_000);

  it("a record's temporary left by a killed process is swept as stale (cleanup; status and backup use the same sweep); a live process's is not", async () => {
    const box = tempDir('offsite-records-');
    const archive = ArchiveDir.open(path.join(box, 'cache'));
    killedWhileRecording(archive.dir, 'duplicity-full.20240102T000000Z.manifest');
    const dir = archive.file(COPY_RECORDS);
    const dead = fs.readdirSync(dir).filter((n) => /\.json\.tmp-\d+$/.test(n));
    assert.equal(dead.length, 1, fs.readdirSync(dir).join(' '));
    // A record being written right now by a running process (a child that sleeps).
    const live = spawn('sleep', ['30']);
    try {
      const liveTemp = path.join(dir, `duplicity-full.20240103T000000Z.manifest.json.tmp-${live.pid}`);
      fs.writeFileSync(liveTemp, '{}');
      assert.deepEqual(archive.staleTempFiles(), [path.join(dir, dead[0])]);
      const vault = path.join(box, 'vault');
      fs.mkdirSync(vault);
      const r = await cleanup({ backend: new FileBackend(vault), archive, crypto: cryptoForRead({}), log: new MemoryLogger(), force: true });
      assert.deepEqual(r.local, [path.join(dir, dead[0])]);
      assert.deepEqual(fs.readdirSync(dir), [path.basename(liveTemp)]);
    } finally {
      live.kill();
    }
  });
});
