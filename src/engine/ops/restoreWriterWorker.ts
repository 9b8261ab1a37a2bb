// The worker thread of a tree restore (bundled as dist/restoreWriter.js): runs the TreeWriter on the
// batches of operations restoreOutput.ts posts, in order, and answers each batch with an ack that gives
// its data buffer back for reuse, the counts, and what was refused or warned about. After the first
// error it only acks: nothing more is written.
import { parentPort, workerData } from 'node:worker_threads';
import type { Refusal } from './setReader';
import { TreeWriter } from './treeWriter';
import { encodeError } from '../util/engineWorker';
import { decodeMeta, type WriterAck, type WriterBatch, type WriterInit } from './writerProtocol';

const port = parentPort!;
const init = workerData as WriterInit;
let refusals: Refusal[] = [];
let warnings: string[] = [];
let writer: TreeWriter | undefined;
let failed = false;
/** begin() of a regular file returned false (refused): its data, end or abort are skipped. */
let skipping = false;

port.on('message', (batch: WriterBatch) => {
  let error: WriterAck['error'];
  if (!failed) {
    try {
      writer ??= new TreeWriter({
        ...init,
        onRefuse: (member, reason, cause) => refusals.push({ member, reason, cause }),
        onWarn: (message) => warnings.push(message),
      });
      run(writer, batch);
    } catch (e) {
      failed = true;
      writer?.abort();
      error = encodeError(e);
    }
  }
  const ack: WriterAck = { buf: batch.buf, files: writer?.files ?? 0, bytes: writer?.bytes ?? 0, refusals, warnings, error };
  refusals = [];
  warnings = [];
  port.postMessage(ack, batch.buf ? [batch.buf] : []);
});

function run(w: TreeWriter, batch: WriterBatch): void {
  const data = batch.buf ? new Uint8Array(batch.buf) : undefined;
  for (const op of batch.ops) {
    switch (op.t) {
      case 'begin':
        skipping = !w.begin(op.index.map((c) => Buffer.from(c, 'latin1')), decodeMeta(op.meta));
        break;
      case 'data':
        if (!skipping) w.write(data!.subarray(op.off, op.off + op.len));
        break;
      case 'end':
        if (!skipping) w.end();
        break;
      case 'abort':
        if (!skipping) w.abort();
        break;
      case 'finish':
        w.finish();
        break;
    }
  }
}
