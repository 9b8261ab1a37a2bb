// The s3:// backend beyond the conformance suite, against the real S3 API of the test server: local
// files (hashed then streamed, or in parts), Content-MD5 on what is uploaded, multipart uploads that
// are aborted or interrupted, batched deletes, paginated lists, storage classes and archived objects,
// and the errors a user meets (wrong keys, no bucket, no server, a connection cut midway).
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, InvalidObjectState, ListMultipartUploadsCommand, PutObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import type { BlobSource } from '../../../../src/engine/backend/backend';
import { partialNameFor } from '../../../../src/engine/backend/fileBackend';
import { RetryBackend } from '../../../../src/engine/backend/retryBackend';
import { ArchiveDir } from '../../../../src/engine/cache/archiveDir';
import { loadPrivateKeys, loadPublicKeys } from '../../../../src/engine/crypto/keys';
import { MemoryLogger } from '../../../../src/engine/log';
import { backup } from '../../../../src/engine/ops/backup';
import { removeAllButNFull } from '../../../../src/engine/ops/retention';
import { createS3Client } from '../../../../src/engine/backend/s3/s3Client';
import { S3Backend, createS3Backend } from '../../../../src/engine/backend/s3Backend';
import { OffsiteError, isCancellation } from '../../../../src/engine/errors';
import { bufferSource, expectKind, getAll, listNames } from '../conformance';
import { startFaultProxy } from '../../../helpers/faultProxy';
import { freePort } from '../../../helpers/sshd';
import { RSA_PUB, RSA_SEC } from '../../../helpers/gpg';
import { tempDir } from '../../../helpers/tmp';
import type { S3Server } from '../../../helpers/s3Server';
import { freshRemote, leaveMultipart, openS3, s3Options, sharedS3Server, type S3Remote } from './s3Fixture';

const MiB = 1024 * 1024;

interface Seen {
  command: string;
  headers: Record<string, string>;
}

/** Records the commands a client sends, with their final headers. */
function record(client: S3Client): Seen[] {
  const seen: Seen[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const req = args.request as { headers: Record<string, string> };
      seen.push({ command: context.commandName ?? '', headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v])) });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'testRecorder', priority: 'low' },
  );
  return seen;
}

function fileSource(file: string): BlobSource {
  const size = fs.statSync(file).size;
  return { size, localPath: file, open: () => fs.createReadStream(file) };
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

describe('s3:// backend against Swift s3api', function () {
  this.timeout(120_000);
  let server: S3Server;
  let bucket: string;
  let dir: string;

  before(async () => {
    server = await sharedS3Server();
    bucket = await server.createBucket();
    dir = tempDir('offsite-s3-files-');
  });

  async function backendWith(params: Partial<ConstructorParameters<typeof S3Backend>[0]>, remote?: S3Remote): Promise<{ b: S3Backend; remote: S3Remote; seen: Seen[] }> {
    const r = remote ?? (await freshRemote(server, bucket));
    const { client } = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1', credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
    const seen = record(client);
    return { b: new S3Backend({ bucket: r.bucket, prefix: r.prefix, client, endpoint: server.endpoint, ...params }), remote: r, seen };
  }

  async function multipartUploads(client: S3Client, remote: S3Remote): Promise<string[]> {
    const r = await client.send(new ListMultipartUploadsCommand({ Bucket: remote.bucket, Prefix: remote.prefix }));
    return (r.Uploads ?? []).map((u) => u.Key!.slice(remote.prefix.length));
  }

  it('sends a local file in one PutObject with its Content-MD5, streaming it', async () => {
    const { b, seen } = await backendWith({});
    const data = randomBytes(3 * MiB + 11);
    const file = path.join(dir, 'one.bin');
    fs.writeFileSync(file, data);
    const progress: number[] = [];
    await b.put('duplicity-full.20261126T131509Z.vol1.difftar.gpg', fileSource(file), { onProgress: (n) => progress.push(n) });
    const puts = seen.filter((s) => s.command === 'PutObjectCommand');
    assert.equal(puts.length, 2, 'the probe of conditional PUTs, then the upload');
    assert.equal(puts[0].headers['if-none-match'], '*', 'the probe asks for a conditional PUT');
    assert.equal(puts[1].headers['if-none-match'], undefined, 'Swift has none: the upload is plain');
    assert.equal(puts[1].headers['content-md5'], md5(data));
    assert.equal(puts[1].headers['content-length'], String(data.length));
    assert.ok(!('x-amz-checksum-crc32' in puts[1].headers) && puts[1].headers['x-amz-content-sha256'] !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'no aws-chunked body');
    assert.equal(progress.at(-1), data.length);
    assert.ok((await getAll(b, 'duplicity-full.20261126T131509Z.vol1.difftar.gpg')).equals(data));
    // The probe ran once: a second put does not repeat it.
    await b.put('second', fileSource(file));
    assert.equal(seen.filter((s) => s.command === 'PutObjectCommand' && s.headers['if-none-match'] === '*').length, 1);
    assert.deepEqual(await b.cleanupPartial(), [], 'the probe object was removed');
    await b.close();
  });

  it('relies on conditional PUTs (If-None-Match: *) where the store has them: no HEAD, refusal, lost replies', async () => {
    const { b, seen } = await backendWith({ conditionalWrites: true });
    const raw = await server.client();
    // Swift has no conditional PUT: this middleware plays the store that has one (AWS, MinIO).
    b.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { IfNoneMatch?: string; Bucket: string; Key: string };
        if (context.commandName === 'PutObjectCommand' && input.IfNoneMatch === '*') {
          delete input.IfNoneMatch;
          const there = await raw.send(new HeadObjectCommand({ Bucket: input.Bucket, Key: input.Key })).then(() => true, () => false);
          if (there) throw new S3ServiceException({ name: 'PreconditionFailed', $fault: 'client', $metadata: { httpStatusCode: 412 }, message: 'At least one of the pre-conditions you specified did not hold' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'testConditional' },
    );
    await b.put('m.manifest.gpg', bufferSource(Buffer.from('first')));
    assert.deepEqual(seen.map((x) => x.command), ['PutObjectCommand'], 'one request, no HEAD');
    await expectKind(b.put('m.manifest.gpg', bufferSource(Buffer.from('other'))), 'exists');
    // The same bytes again: a retry whose first answer was lost finds its own object.
    await b.put('m.manifest.gpg', bufferSource(Buffer.from('first')));
    assert.equal((await getAll(b, 'm.manifest.gpg')).toString(), 'first');
    raw.destroy();
    await b.close();
  });

  it('sends a big local file in parts, each with its Content-MD5, and reads it back whole and in ranges', async () => {
    const { b, seen, remote } = await backendWith({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, partConcurrency: 3 });
    const data = randomBytes(17 * MiB + 5);
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, data);
    const progress: number[] = [];
    await b.put('big.difftar.gpg', fileSource(file), { onProgress: (n) => progress.push(n) });
    const parts = seen.filter((s) => s.command === 'UploadPartCommand');
    assert.equal(parts.length, 4);
    const md5s = new Set(parts.map((p) => p.headers['content-md5']));
    for (let i = 0; i < 4; i++) assert.ok(md5s.has(md5(data.subarray(i * 5 * MiB, Math.min(data.length, (i + 1) * 5 * MiB)))), `part ${i + 1} has its MD5`);
    assert.equal(progress.at(-1), data.length);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1]);
    assert.equal((await b.stat('big.difftar.gpg')).size, data.length);
    assert.ok((await getAll(b, 'big.difftar.gpg')).equals(data));
    assert.ok((await getAll(b, 'big.difftar.gpg', { offset: 5 * MiB - 3, length: 7 })).equals(data.subarray(5 * MiB - 3, 5 * MiB + 4)));
    assert.deepEqual(await multipartUploads(b.client, remote), []);
    await b.close();
  });

  it('sends a big stream (not a local file) in parts with lib-storage, each with its Content-MD5', async () => {
    const { b, seen, remote } = await backendWith({ partSize: 5 * MiB });
    const data = randomBytes(12 * MiB + 1);
    await b.put('stream.bin', bufferSource(data, 256 * 1024));
    const parts = seen.filter((s) => s.command === 'UploadPartCommand');
    assert.equal(parts.length, 3);
    assert.ok(parts.every((p) => p.headers['content-md5']?.length === 24), 'every part has a Content-MD5');
    assert.ok((await getAll(b, 'stream.bin')).equals(data));
    assert.deepEqual(await multipartUploads(b.client, remote), []);
    // A stream that is a byte short: refused, and nothing is left.
    await assert.rejects(b.put('short.bin', bufferSource(data, 256 * 1024, data.length + 1)), (e) => OffsiteError.is(e, 'sourceChanged'));
    assert.deepEqual(await listNames(b), ['stream.bin']);
    assert.deepEqual(await multipartUploads(b.client, remote), []);
    await b.close();
  });

  it('aborts the multipart upload of a cancelled put: nothing visible, nothing left over', async () => {
    const { b, remote } = await backendWith({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, partConcurrency: 1 });
    const file = path.join(dir, 'abort.bin');
    fs.writeFileSync(file, randomBytes(30 * MiB));
    const ac = new AbortController();
    const putting = b.put('vol.difftar.gpg', fileSource(file), {
      signal: ac.signal,
      onProgress: (n) => {
        if (n >= 5 * MiB) ac.abort();
      },
    });
    await assert.rejects(putting, (e) => isCancellation(e));
    await expectKind(b.stat('vol.difftar.gpg'), 'notFound');
    assert.deepEqual(await multipartUploads(b.client, remote), [], 'the upload was aborted on the server');
    assert.deepEqual(await b.cleanupPartial(), []);
    await b.close();
  });

  /**
   * The first CreateMultipartUpload reaches the server, which starts the upload, and its answer is lost:
   * at the start of the SDK's stack ('initialize') or at its end ('finalizeRequest', where the SDK's
   * retries would try again if it made any). Returns whether that happened.
   */
  function loseFirstCreateAnswer(b: S3Backend, inside: boolean): () => boolean {
    let lost = false;
    const afterSend = (command: string | undefined): void => {
      if (command !== 'CreateMultipartUploadCommand' || lost) return;
      lost = true;
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    };
    const stack = b.client.middlewareStack;
    if (inside) stack.add((next, context) => async (args) => next(args).then((out) => (afterSend(context.commandName), out)), { step: 'finalizeRequest', name: 'testLoseAnswer', priority: 'low' });
    else stack.add((next, context) => async (args) => next(args).then((out) => (afterSend(context.commandName), out)), { step: 'initialize', name: 'testLoseAnswer' });
    return () => lost;
  }

  it('aborts a multipart upload whose start was answered but the answer lost, once a put succeeds', async () => {
    const { b, remote } = await backendWith({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, partConcurrency: 1 });
    const file = path.join(dir, 'lost.bin');
    fs.writeFileSync(file, randomBytes(6 * MiB));
    loseFirstCreateAnswer(b, false); // a server killed right then
    await expectKind(b.put('vol1.difftar.gpg', fileSource(file)), 'transient');
    assert.deepEqual(await multipartUploads(b.client, remote), ['vol1.difftar.gpg'], 'started on the server, unknown to the backend');
    await b.put('vol1.difftar.gpg', fileSource(file)); // the retry
    assert.deepEqual(await multipartUploads(b.client, remote), [], 'the lost one was found and aborted');
    assert.deepEqual(await listNames(b), ['vol1.difftar.gpg']);
    await b.close();
  });

  it('leaves retries to the retry wrapper (one attempt in the SDK), whose next attempt aborts the upload the lost answer started', async () => {
    const { b, remote } = await backendWith({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, partConcurrency: 1 });
    const file = path.join(dir, 'retried.bin');
    fs.writeFileSync(file, randomBytes(6 * MiB));
    const lost = loseFirstCreateAnswer(b, true);
    const retries: number[] = [];
    await new RetryBackend(b, { baseDelayMs: 10, onRetry: (_e, n) => retries.push(n) }).put('vol2.difftar.gpg', fileSource(file));
    assert.equal(lost(), true, 'the first attempt was lost');
    assert.deepEqual(retries, [1], 'the SDK did not retry it itself');
    assert.deepEqual(await multipartUploads(b.client, remote), [], "the first attempt's upload was found and aborted");
    assert.deepEqual(await listNames(b), ['vol2.difftar.gpg']);
    await b.close();
  });

  it('refuses a local file that changed size since it was announced', async () => {
    const { b, remote } = await backendWith({ partSize: 5 * MiB, multipartThreshold: 5 * MiB });
    const file = path.join(dir, 'changed.bin');
    fs.writeFileSync(file, randomBytes(1000));
    await assert.rejects(b.put('small', { size: 999, localPath: file, open: () => fs.createReadStream(file) }), (e) => OffsiteError.is(e, 'sourceChanged'));
    fs.writeFileSync(file, randomBytes(6 * MiB));
    await assert.rejects(b.put('big', { size: 6 * MiB + 1, localPath: file, open: () => fs.createReadStream(file) }), (e) => OffsiteError.is(e, 'sourceChanged'));
    await assert.rejects(b.put('gone', { size: 10, localPath: path.join(dir, 'missing'), open: () => fs.createReadStream(path.join(dir, 'missing')) }), (e) => (e as NodeJS.ErrnoException).code === 'ENOENT');
    assert.deepEqual(await listNames(b), []);
    assert.deepEqual(await multipartUploads(b.client, remote), []);
    await b.close();
  });

  it('list({ partial: true }) adds temporary objects and unfinished multipart uploads; a store that will not list the uploads lists the rest and logs why', async () => {
    const warnings: string[] = [];
    const { b, remote } = await backendWith({ log: (level, m) => void (level === 'warn' && warnings.push(m)) });
    await b.put('a', bufferSource(Buffer.from('a')));
    const upload = await leaveMultipart(b, remote);
    const temp = partialNameFor('duplicity-full.20261126T131509Z.manifest.gpg');
    await b.client.send(new PutObjectCommand({ Bucket: remote.bucket, Key: remote.prefix + temp, Body: Buffer.from('half') }));
    const listing = async () => {
      const out: Array<[string, number, boolean]> = [];
      for await (const f of b.list({ partial: true })) out.push([f.name, f.size, f.partial === true]);
      return new Map(out.map(([n, ...rest]) => [n, rest]));
    };
    assert.deepEqual(await listing(), new Map([['a', [1, false]], [temp, [4, true]], [upload, [0, true]]]));
    assert.deepEqual(await b.cleanupPartial({ dryRun: true }), [temp, upload].sort(), 'the names cleanupPartial reports');
    assert.deepEqual(warnings, []);
    const refuse = (name: string, status: number) =>
      b.client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'ListMultipartUploadsCommand') throw new S3ServiceException({ name, $fault: status < 500 ? 'client' : 'server', $metadata: { httpStatusCode: status }, message: name });
          return next(args);
        },
        { step: 'initialize', name: 'testRefuse' },
      );
    refuse('AccessDenied', 403);
    assert.deepEqual(await listing(), new Map([['a', [1, false]], [temp, [4, true]]]));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /^Could not look for unfinished multipart uploads on s3:\/\/.*Access denied/);
    assert.deepEqual(await listNames(b), ['a'], 'a plain list never asks for them');
    assert.equal(warnings.length, 1);
    b.client.middlewareStack.remove('testRefuse');
    refuse('ServiceUnavailable', 503);
    await expectKind(listing(), 'transient'); // retried whole by RetryBackend, not passed over
    b.client.middlewareStack.remove('testRefuse');
    assert.deepEqual((await b.cleanupPartial()).length, 2);
    await b.close();
  });

  it('cleanupPartial aborts unfinished uploads of others, not its own in progress, and skips other prefixes', async () => {
    const { b, remote } = await backendWith({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, partConcurrency: 1 });
    const other = await freshRemote(server, bucket);
    const leftover = await leaveMultipart(b, remote);
    await leaveMultipart(b, other);
    const file = path.join(dir, 'slow.bin');
    fs.writeFileSync(file, randomBytes(15 * MiB));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    // Holds the upload after its first part: it is "in progress" while cleanupPartial runs.
    b.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { PartNumber?: number };
        if (context.commandName === 'UploadPartCommand' && input.PartNumber === 2) {
          reached();
          await gate;
        }
        return next(args);
      },
      { step: 'initialize', name: 'testGate' },
    );
    const putting = b.put('busy.difftar.gpg', fileSource(file));
    await atGate;
    assert.deepEqual(await b.cleanupPartial({ dryRun: true }), [leftover]);
    assert.deepEqual(await b.cleanupPartial(), [leftover]);
    assert.deepEqual(await multipartUploads(b.client, remote), ['busy.difftar.gpg'], 'its own upload goes on');
    release();
    await putting;
    assert.deepEqual(await listNames(b), ['busy.difftar.gpg']);
    assert.deepEqual(await multipartUploads(b.client, remote), []);
    assert.deepEqual(await multipartUploads(b.client, other), ['duplicity-full.20261126T131509Z.vol7.difftar.gpg'], 'another prefix is not touched');
    await b.close();
  });

  it('lists across pages and deletes in batches (DeleteObjects with Content-MD5)', async () => {
    const { b, seen } = await backendWith({ listPageSize: 7, deleteBatch: 10 });
    const names = Array.from({ length: 23 }, (_, i) => `duplicity-inc.20261126T131509Z.to.20261127T131509Z.vol${i + 1}.difftar.gpg`);
    for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map((n) => b.put(n, bufferSource(Buffer.from(n)))));
    await b.put('keep.manifest.gpg', bufferSource(Buffer.from('keep')));
    const listed = await listNames(b);
    assert.deepEqual(listed, [...names, 'keep.manifest.gpg'].sort());
    assert.ok(seen.filter((s) => s.command === 'ListObjectsV2Command').length >= 4, 'several pages');
    await b.removeMany([...names, 'never-there']);
    assert.deepEqual(await listNames(b), ['keep.manifest.gpg']);
    const deletes = seen.filter((s) => s.command === 'DeleteObjectsCommand');
    assert.equal(deletes.length, 3);
    assert.ok(deletes.every((d) => d.headers['content-md5']?.length === 24));
    await b.close();
  });

  it('fails a list the store says goes on but gives no continuation token for, rather than return part of it', async () => {
    // A store that does so would hide the objects after the first page: a set whose manifest is not
    // listed looks interrupted, and the next backup or cleanup deletes its volumes.
    const { b } = await backendWith({ listPageSize: 2 });
    for (const n of ['a', 'b', 'c']) await b.put(n, bufferSource(Buffer.from(n)));
    b.client.middlewareStack.add(
      (next, context) => async (args) => {
        const r = await next(args);
        if (context.commandName === 'ListObjectsV2Command') delete (r.output as { NextContinuationToken?: string }).NextContinuationToken;
        return r;
      },
      { step: 'initialize', name: 'testNoToken' },
    );
    const e = await expectKind(listNames(b), 'permanent');
    assert.match(e.message, /no continuation token/);
    await b.close();
  });

  it('retention deletes through DeleteObjects: each manifest first, one by one, then the rest in a batch', async () => {
    const { b, seen } = await backendWith({});
    const backend = new RetryBackend(b, { baseDelayMs: 1 });
    const recipients = await loadPublicKeys([RSA_PUB]);
    const keys = await loadPrivateKeys([RSA_SEC], async () => undefined);
    const crypto = { recipients, decryptOptions: async () => ({ loadDecryptionKeys: async () => keys }) };
    const work = tempDir('offsite-s3-retention-');
    const src = path.join(work, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'a');
    const archive = ArchiveDir.open(path.join(work, 'cache'));
    const log = new MemoryLogger();
    const run = (full: boolean) => backup({ source: src, backend, archive, crypto, log, volumeSize: 1 << 20, full });
    await run(true);
    await sleep(1100);
    fs.writeFileSync(path.join(src, 'b.txt'), 'b');
    await run(false);
    await sleep(1100);
    await run(true);
    const before = await listNames(b);
    seen.length = 0;
    const plan = await removeAllButNFull({ backend, archive, crypto, log, n: 1, force: true });
    // The first chain: a full and an incremental set (2 manifests, 2 volumes, 2 signature files).
    assert.equal(plan.files.length, 6, plan.files.join(' '));
    const deletes = seen.filter((x) => x.command === 'DeleteObjectCommand' || x.command === 'DeleteObjectsCommand').map((x) => x.command);
    assert.deepEqual(deletes, ['DeleteObjectCommand', 'DeleteObjectCommand', 'DeleteObjectsCommand']);
    assert.deepEqual(await listNames(b), before.filter((n) => !plan.files.includes(n)));
    assert.equal(plan.files.filter((n) => n.includes('manifest')).length, 2);
    assert.ok(!archive.names().some((n) => plan.files.some((f) => f.startsWith(n.replace(/\.gz$/, '')) || n.startsWith(f.replace(/\.gpg$/, '')))), 'their cached copies are gone too');
    await b.close();
  });

  it('keeps objects out of sight that are not plain names under the prefix', async () => {
    const { b, remote } = await backendWith({});
    await b.put('a', bufferSource(Buffer.from('a')));
    // Written by someone else: a "subfolder" and a key that only starts like the prefix.
    const outside = new S3Backend({ bucket: remote.bucket, prefix: remote.prefix + 'sub/', client: b.client });
    await outside.put('deeper', bufferSource(Buffer.from('x')));
    const sibling = new S3Backend({ bucket: remote.bucket, prefix: remote.prefix.replace(/\/$/, 'x/'), client: b.client });
    await sibling.put('b', bufferSource(Buffer.from('b')));
    assert.deepEqual(await listNames(b), ['a']);
    await b.close();
  });

  it('puts volumes in the storage class asked for, manifests in STANDARD for archive classes', async () => {
    const { b, seen } = await backendWith({ storageClass: 'GLACIER' });
    await b.put('duplicity-full.20261126T131509Z.manifest.gpg', bufferSource(Buffer.from('m')));
    assert.equal(seen.filter((s) => s.command === 'PutObjectCommand').at(-1)!.headers['x-amz-storage-class'], undefined);
    // This server only has STANDARD: the volume is refused, with a clear error.
    const e = await expectKind(b.put('duplicity-full.20261126T131509Z.vol1.difftar.gpg', bufferSource(Buffer.from('v'))), 'permanent');
    assert.equal(seen.filter((s) => s.command === 'PutObjectCommand').at(-1)!.headers['x-amz-storage-class'], 'GLACIER');
    assert.match(e.message, /storage class/);
    assert.match(e.hint ?? '', /--s3-storage-class/);
    await b.close();
    const ia = await backendWith({ storageClass: 'STANDARD_IA' });
    await expectKind(ia.b.put('duplicity-full.20261126T131509Z.manifest.gpg', bufferSource(Buffer.from('m'))), 'permanent');
    await ia.b.close();
  });

  it('refuses, without retrying, to read an object archived in GLACIER (needs a thaw)', async () => {
    const { b } = await backendWith({});
    await b.put('duplicity-full.20261126T131509Z.vol1.difftar.gpg', bufferSource(Buffer.from('cold')));
    let gets = 0;
    // What AWS answers for a GLACIER object not restored (the test server has only STANDARD).
    b.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetObjectCommand') {
          gets++;
          throw new InvalidObjectState({ message: 'The operation is not valid for the object\'s storage class', StorageClass: 'GLACIER', $metadata: { httpStatusCode: 403 } });
        }
        return next(args);
      },
      { step: 'initialize', name: 'testGlacier' },
    );
    const retrying = new RetryBackend(b, { baseDelayMs: 1 });
    const e = await expectKind(getAll(retrying, 'duplicity-full.20261126T131509Z.vol1.difftar.gpg'), 'permanent');
    assert.equal(gets, 1, 'not retried');
    assert.match(e.message, /archived in the GLACIER storage class and must be restored \(thawed\)/);
    assert.match(e.hint ?? '', /restore-object/);
    await b.close();
  });

  it('reports a missing bucket clearly (list, put, get, cleanup)', async () => {
    const b = await openS3(server, { bucket: 'no-such-bucket-here', prefix: 'x/', url: 's3://no-such-bucket-here/x' });
    for (const op of [() => listNames(b), () => b.put('a', bufferSource(Buffer.from('a'))), () => getAll(b, 'a'), () => b.cleanupPartial()]) {
      const e = await expectKind(op(), 'notFound');
      assert.match(e.message, /bucket "no-such-bucket-here" does not exist/);
      assert.match(e.hint ?? '', /Create the bucket/);
    }
    await b.close();
  });

  it('reports wrong credentials as auth, without the secret in any message', async () => {
    const secret = `wrong-${randomBytes(8).toString('hex')}`;
    const remote = await freshRemote(server, bucket);
    for (const keys of [
      { s3AccessKeyId: server.accessKeyId, s3SecretAccessKey: secret },
      { s3AccessKeyId: 'nobody:nothing', s3SecretAccessKey: secret },
    ]) {
      const b = await openS3(server, remote, keys);
      for (const op of [() => listNames(b), () => b.put('a', bufferSource(Buffer.from('a'))), () => b.stat('a')]) {
        const e = await expectKind(op(), 'auth');
        assert.ok(!`${e.message} ${e.hint}`.includes(secret), 'the secret is in the message');
        assert.match(e.hint ?? '', /AWS_ACCESS_KEY_ID/);
      }
      await b.close();
    }
  });

  it('reports missing credentials as auth, and half-given keys as a config error', async () => {
    const home = tempDir('offsite-s3-home-');
    const env = { HOME: home, AWS_CONFIG_FILE: path.join(home, 'config'), AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'credentials') };
    const saved = { ...process.env };
    // The SDK's credential chain reads process.env: give it nothing, then put everything back.
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, env, { AWS_EC2_METADATA_DISABLED: 'true' });
    try {
      const url = `s3://${bucket}/x`;
      const b = await createS3Backend(new URL(url), { options: { s3EndpointUrl: server.endpoint, s3Region: 'us-east-1', env: {} } }, url);
      const e = await expectKind(listNames(b), 'auth');
      assert.match(e.message, /No S3 credentials found/);
      assert.match(e.hint ?? '', /AWS_ACCESS_KEY_ID/);
      await b.close();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    const url = `s3://${bucket}/x`;
    await assert.rejects(createS3Backend(new URL(url), { options: { s3EndpointUrl: server.endpoint, s3AccessKeyId: 'a', env: {} } }, url), (e) => OffsiteError.is(e, 'config'));
  });

  it('reports an endpoint where nothing listens (transient), an unknown host (permanent) and a bad endpoint URL', async () => {
    const port = await freePort();
    const remote = { bucket, prefix: '', url: `s3://${bucket}` };
    const down = await openS3(server, remote, { s3EndpointUrl: `http://127.0.0.1:${port}` });
    const e = await expectKind(listNames(down), 'transient');
    assert.match(e.message, /Cannot reach the S3 server .*connection refused/);
    assert.match(e.hint ?? '', /--s3-endpoint-url/);
    await down.close();
    const unknown = await openS3(server, remote, { s3EndpointUrl: 'http://no-such-host.invalid:9000' });
    const e2 = await expectKind(unknown.stat('x'), 'permanent');
    assert.match(e2.message, /unknown host name/);
    await unknown.close();
    await assert.rejects(openS3(server, remote, { s3EndpointUrl: '127.0.0.1:9000' }), (err) => OffsiteError.is(err, 'usage') && /--s3-endpoint-url/.test((err as Error).message));
    await assert.rejects(openS3(server, remote, { s3EndpointUrl: 'ftp://x' }), (err) => OffsiteError.is(err, 'usage'));
  });

  it('takes the endpoint from AWS_ENDPOINT_URL when no option gives one', async () => {
    const remote = await freshRemote(server, bucket);
    const b = await createS3Backend(new URL(remote.url), { options: { ...s3Options(server), s3EndpointUrl: undefined, env: { AWS_ENDPOINT_URL: server.endpoint } } }, remote.url);
    await b.put('via-env', bufferSource(Buffer.from('ok')));
    assert.equal((await getAll(b, 'via-env')).toString(), 'ok');
    await b.close();
  });

  it('fails a get cut midway with a transient error (never a short stream), and a put cut midway leaves nothing', async () => {
    const proxy = await startFaultProxy(Number(new URL(server.endpoint).port));
    const remote = await freshRemote(server, bucket);
    try {
      const direct = await openS3(server, remote);
      const data = randomBytes(2 * MiB);
      await direct.put('v.bin', bufferSource(data));
      const viaProxy = (): Promise<S3Backend> => openS3(server, remote, { s3EndpointUrl: `http://127.0.0.1:${proxy.port}` });
      // The answer is cut after 1 MiB of the body (the first connection of a fresh client).
      proxy.inject({ kind: 'cut', direction: 'down', afterBytes: MiB });
      const b = await viaProxy();
      const e = await expectKind(getAll(b, 'v.bin'), 'transient');
      assert.match(e.message, /stopped after \d+ of 2097152 bytes|Cannot reach/);
      await b.close();
      // The upload (the first request of a fresh client: overwrite needs no HEAD) is cut after 1 MiB:
      // the put fails (transient), and no object appears.
      const file = path.join(dir, 'cut.bin');
      fs.writeFileSync(file, data);
      proxy.inject({ kind: 'cut', direction: 'up', afterBytes: MiB });
      const b3 = await viaProxy();
      await expectKind(b3.put('cut.difftar.gpg', fileSource(file), { overwrite: true }), 'transient');
      assert.deepEqual(await listNames(direct), ['v.bin']);
      await b3.close();
      await direct.close();
    } finally {
      await proxy.close();
    }
  });
});
