// Workers started ahead of their job (bin/offsite starts the no-change probe's while the CLI bundle
// loads): taken with a job, ended when not needed, ending themselves when nobody comes.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { discardPrestarted, prestartWorker, takePrestarted } from '../../../src/engine/util/engineWorker';
import { tempDir } from '../../helpers/tmp';

const registry = () => (globalThis as { [k: symbol]: Map<string, Worker> | undefined })[Symbol.for('offsite.prestartedWorkers')] ?? new Map<string, Worker>();

describe('engine workers started ahead', function () {
  let entry: string;

  before(() => {
    // A worker entry as the bundled ones: its job from workerJob(), echoed back with its thread's view.
    entry = path.join(tempDir(), 'echo.js');
    fs.writeFileSync(
      entry,
      [
        `require(${JSON.stringify(require.resolve('tsx/cjs'))});`,
        `const { workerJob } = require(${JSON.stringify(path.resolve(__dirname, '../../../src/engine/util/engineWorker.ts'))});`,
        "const { parentPort, workerData } = require('node:worker_threads');",
        'workerJob(workerData, parentPort).then((job) => parentPort.postMessage({ job, started: workerData }));',
      ].join('\n'),
    );
  });

  afterEach(() => discardPrestarted(entry));

  it('gives the worker its job when it is taken, once', async () => {
    prestartWorker(entry, {});
    prestartWorker(entry, {}); // one per entry
    assert.equal(registry().size, 1);
    const w = takePrestarted(entry, { sab: new SharedArrayBuffer(8), n: 7 });
    assert.ok(w);
    const [m] = (await once(w, 'message')) as [{ job: { sab: SharedArrayBuffer; n: number }; started: { offsitePrestarted: boolean } }];
    assert.equal(m.job.n, 7);
    assert.ok(m.job.sab instanceof SharedArrayBuffer);
    assert.equal(m.started.offsitePrestarted, true);
    assert.equal(takePrestarted(entry, {}), undefined, 'taken already');
    await once(w, 'exit');
  });

  it('ends a worker nobody needs', async () => {
    prestartWorker(entry, {});
    const w = registry().get(path.resolve(entry))!;
    const exited = once(w, 'exit');
    discardPrestarted(entry);
    await exited;
    assert.equal(takePrestarted(entry, {}), undefined);
  });

  it('ends itself when nobody takes it, and leaves the registry', async () => {
    prestartWorker(entry, {}, 200);
    const w = registry().get(path.resolve(entry))!;
    const [code] = (await once(w, 'exit')) as [number];
    assert.equal(code, 0);
    assert.equal(registry().has(path.resolve(entry)), false);
    assert.equal(takePrestarted(entry, {}), undefined);
  });

  it('starts nothing for an entry that is not there (run from the sources)', () => {
    prestartWorker(path.join(path.dirname(entry), 'missing.js'), {});
    assert.equal(registry().size, 0);
  });
});
