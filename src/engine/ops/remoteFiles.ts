// Reading and writing the remote's files by their wrapping: OpenPGP (.gpg), gzip (.gz) or plain
// (FORMAT §4). Reading checks the SHA1 a manifest recorded before anything is decrypted (§9 step 4),
// and decrypts in a streaming way (a volume is never held in memory).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { PrivateKey } from 'openpgp';
import { BackendError, type Backend } from '../backend/backend';
import { abortableDelay } from '../backend/backendUtil';
import { OffsiteError, throwIfAborted } from '../errors';
import { createDecryptStream, PIECE, type DecryptOptions } from '../crypto/decrypt';
import type { ParallelDeflateOptions } from '../crypto/deflate';
import { createEncryptStream } from '../crypto/encrypt';
import type { EncryptionKey } from '../crypto/recipient';
import { parseName, type ParsedName } from '../manifest/naming';

export interface CryptoContext {
  /** Recipients of everything written. */
  readonly recipients: readonly EncryptionKey[];
  readonly signingKey?: PrivateKey;
  /** Keys, passwords and required signers for reading; loaded only when something must be decrypted. */
  readonly decryptOptions: () => Promise<DecryptOptions>;
}

export type Wrapping = 'gpg' | 'gz' | 'plain';

export function wrappingOf(p: Pick<ParsedName, 'encrypted' | 'gzipped'>): Wrapping {
  return p.encrypted ? 'gpg' : p.gzipped ? 'gz' : 'plain';
}

/**
 * A plaintext → stored-bytes encoder for files Offsite writes (always OpenPGP). `deflate`: the
 * compressor's options (default: the encrypter's, zlib level 1, the fastest; stretches that look
 * incompressible stored).
 */
export function encoder(crypto: CryptoContext, deflate?: ParallelDeflateOptions): Transform {
  if (crypto.recipients.length === 0) throw new OffsiteError('config', 'No encryption key given', { hint: 'Pass --encrypt-key KEY (a public key file, key id, fingerprint or email)' });
  return createEncryptStream({ recipients: crypto.recipients, signingKey: crypto.signingKey, ...(deflate === undefined ? {} : { deflate }) });
}

/** Encodes `data` into a private file, returning its size and SHA1. */
export async function encodeToFile(data: Buffer | Readable, file: string, crypto: CryptoContext, deflate?: ParallelDeflateOptions): Promise<{ size: number; sha1: string }> {
  const sha1 = createHash('sha1');
  let size = 0;
  const out = fs.createWriteStream(file, { mode: 0o600 });
  await pipeline(
    Buffer.isBuffer(data) ? Readable.from([data]) : data,
    encoder(crypto, deflate),
    async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) {
        sha1.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    out,
  );
  return { size, sha1: sha1.digest('hex') };
}

async function decoder(w: Wrapping, crypto: CryptoContext, remoteName: string): Promise<Transform> {
  if (w === 'gpg') {
    // A signed file is signed after its set's time began (the set's name time): see signedNotBefore.
    const opts = await crypto.decryptOptions();
    return createDecryptStream(opts.verificationKeys?.length ? { ...opts, signedNotBefore: parseName(remoteName)?.endTime } : opts);
  }
  if (w === 'gz') return zlib.createGunzip();
  return new PassThrough();
}

/** Downloads whose stream breaks midway with a transient error are started again, this many times in all. */
const DOWNLOAD_ATTEMPTS = 5;
const DOWNLOAD_RETRY_MS = 500;

export interface FetchedFile {
  readonly path: string;
  readonly size: number;
  /** Removes the copy when it was downloaded (not for file:// remotes read in place). */
  dispose(): void;
}

/**
 * Makes a remote file available as a local file: in place for file:// remotes, else downloaded into
 * tempDir. When expectedSha1 is given, the stored bytes must match it, else OffsiteError('integrity')
 * naming the file (and nothing of it is decrypted).
 */
export async function fetchRemote(backend: Backend, name: string, tempDir: string, opts: { expectedSha1?: string; manifestName?: string; signal?: AbortSignal } = {}): Promise<FetchedFile> {
  const local = backend.localPath?.(name);
  let fetched: FetchedFile;
  let hash = createHash('sha1');
  if (local) {
    let size = 0;
    try {
      // One reused buffer: a stream's fresh 1 MiB buffer per read made V8 run a full GC every few
      // dozen MB of external memory (profiled: ~30% of restoring a 1 GB file, bench/README.md).
      const fh = await fs.promises.open(local, 'r');
      try {
        const buf = Buffer.allocUnsafe(1 << 20);
        for (;;) {
          throwIfAborted(opts.signal);
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          hash.update(buf.subarray(0, bytesRead));
          size += bytesRead;
        }
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new OffsiteError('integrity', `The remote file ${name} is missing`, { file: name, hint: 'The backup set is damaged; restore from an earlier or later set, or run a new full backup' });
      throw e;
    }
    fetched = { path: local, size, dispose() {} };
  } else {
    const file = path.join(tempDir, `dl-${name}`);
    let size = 0;
    // A retrying backend retries opening a stream, not a stream that breaks midway (bytes already
    // delivered cannot be taken back): that is ours to retry. Each attempt starts over, with a fresh
    // hash, so what is checked is exactly what is on disk.
    for (let attempt = 1; ; attempt++) {
      hash = createHash('sha1');
      size = 0;
      let opened = false;
      try {
        const stream = await backend.get(name, { signal: opts.signal });
        opened = true;
        await pipeline(
          stream,
          async function* (src: AsyncIterable<Buffer>) {
            for await (const chunk of src) {
              hash.update(chunk);
              size += chunk.length;
              yield chunk;
            }
          },
          fs.createWriteStream(file, { mode: 0o600 }),
          { signal: opts.signal },
        );
        break;
      } catch (e) {
        fs.rmSync(file, { force: true });
        if (OffsiteError.is(e, 'notFound')) throw new OffsiteError('integrity', `The remote file ${name} is missing`, { file: name, cause: e, hint: 'The backup set is damaged; restore from an earlier or later set, or run a new full backup' });
        // A get that could not even start was retried by the backend's retry wrapper already.
        if (!opened || !BackendError.isKind(e, 'transient') || attempt >= DOWNLOAD_ATTEMPTS || opts.signal?.aborted) throw e;
        await abortableDelay(DOWNLOAD_RETRY_MS * 2 ** (attempt - 1), opts.signal);
      }
    }
    fetched = { path: file, size, dispose: () => fs.rmSync(file, { force: true }) };
  }
  if (opts.expectedSha1 !== undefined) {
    const actual = hash.digest('hex');
    if (actual !== opts.expectedSha1.toLowerCase()) {
      fetched.dispose();
      throw new OffsiteError('integrity', `Invalid data in ${name}: SHA1 hash mismatch (${opts.manifestName ? `its manifest ${opts.manifestName}` : 'the manifest'} says ${opts.expectedSha1}, the file has ${actual})`, {
        file: name,
        hint: 'The file was changed or damaged on the remote; this set cannot be trusted',
      });
    }
  }
  return fetched;
}

/** Plaintext stream of a local copy of a stored file. */
export async function openDecoded(file: string, w: Wrapping, crypto: CryptoContext, remoteName: string): Promise<Readable> {
  const dec = await decoder(w, crypto, remoteName);
  // Chunks of the decryptor's piece size, under bin/offsite's malloc mmap threshold: each 1 MiB chunk
  // was an mmap, 256 page faults and a munmap.
  const src = fs.createReadStream(file, { highWaterMark: PIECE });
  // Chunks one by one: a byte stream's async iterator returns everything buffered joined into a new
  // Buffer (Readable.read() → fromList), a copy of every restored byte. At most 9 pieces of at most
  // one 256 KiB inflate chunk each.
  const out = new PassThrough({ writableHighWaterMark: 1 << 20, readableObjectMode: true, readableHighWaterMark: 9 });
  // The reader must see errors with the file's name: pipeline(src, dec, out) would destroy `out` with
  // the bare error before a handler could name it. A reader that stops early frees the file.
  pipeline(src, dec).catch((e) => out.destroy(withFile(e, remoteName)));
  dec.pipe(out);
  // Until the reader starts, nobody listens: the error is kept in the stream and thrown to the reader.
  out.on('error', () => undefined);
  out.once('close', () => {
    src.destroy();
    dec.destroy();
  });
  return out;
}

/**
 * Whole plaintext of a small remote file (manifests), at most `maxBytes` of it: past that the
 * decoding stops (memory stays within the cap, whatever the file inflates to) and the error names
 * the file.
 */
export async function readRemoteSmall(
  backend: Backend,
  name: string,
  w: Wrapping,
  crypto: CryptoContext,
  tempDir: string,
  limit: { maxBytes: number; onTooLarge: () => Error },
  signal?: AbortSignal,
): Promise<Buffer> {
  const { maxBytes, onTooLarge } = limit;
  const f = await fetchRemote(backend, name, tempDir, { signal });
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    const plain = await openDecoded(f.path, w, crypto, name);
    try {
      for await (const c of plain) {
        size += (c as Buffer).length;
        if (size > maxBytes) throw onTooLarge();
        chunks.push(c as Buffer);
      }
    } finally {
      plain.destroy();
    }
    return Buffer.concat(chunks, size);
  } finally {
    f.dispose();
  }
}

/** Adds the remote file's name to an error's message when it does not say it yet. */
export function withFile(e: unknown, name: string): Error {
  if (e instanceof OffsiteError) {
    if (e.message.includes(name)) return e;
    return new OffsiteError(e.code, `${name}: ${e.message}`, { hint: e.hint, cause: e.cause, file: name, needs: e.needs });
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return new OffsiteError('format', `${name}: ${err.message}`, { cause: err, file: name });
}
