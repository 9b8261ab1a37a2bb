// What the outer test (test/extension/extensionHost.test.ts) prepared for a run inside the extension
// host, and small helpers the host suites share.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as vscode from 'vscode';
import type { OffsiteApi } from '../../../src/extension/extension';

export interface HostFixture {
  /** The workspace folder VS Code opened. */
  readonly workspace: string;
  /** The multi-root run: the second folder of the .code-workspace (the first is `workspace`). */
  readonly second?: string;
  /** offsite.remote (the root URL) and the folder's own remote directory under it. */
  readonly remoteRoot: string;
  readonly remoteDir: string;
  /** The untrusted run: offsite.remote in the user's own settings (the workspace names another). */
  readonly userRemoteRoot?: string;
  readonly scratch: string;
  readonly keys: { rsaPub: string; rsaSec: string; protectedPub: string; protectedSec: string; passphrase: string };
  /** The duplicity fixture made with a passphrase and no key: its remote files, and its expected tree. */
  readonly symmetric: { vault: string; expected: string; passphrase: string; time: number };
  /** A real sshd on 127.0.0.1 (main suite): a root URL, the client key, the host key's fingerprint. */
  readonly sftp?: { root: string; sshKey: string; fingerprint: string; hostPattern: string; home: string; passwordRoot: string; password: string; protectedKey: string; protectedKeyPassphrase: string };
  /** A real S3 API server on 127.0.0.1 (main suite) and an empty bucket on it. */
  readonly s3?: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
}

export function fixture(): HostFixture {
  const file = process.env.OFFSITE_TEST_FIXTURE;
  if (!file) throw new Error('OFFSITE_TEST_FIXTURE is not set');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as HostFixture;
}

export async function offsite(): Promise<OffsiteApi> {
  const ext = vscode.extensions.getExtension<OffsiteApi>('offsite.offsite');
  if (!ext) throw new Error('the Offsite extension is not loaded');
  return ext.activate();
}

export async function waitFor<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The remote's file names (sorted). */
export function remoteFiles(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

export function manifests(dir: string): string[] {
  return remoteFiles(dir).filter((n) => /\.manifest(\.gpg)?$/.test(n));
}

export function write(root: string, rel: string, content: string | Buffer): string {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

/**
 * `count` files of `mb` MB of random (incompressible) data in `dir`, blob0.bin, blob1.bin, …: a backup
 * of them takes long enough to be caught running. Written by another process (dd): this thread is the
 * extension host's, and must not stall.
 */
export async function writeRandomBlobs(dir: string, count: number, mb: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) await promisify(execFile)('dd', ['if=/dev/urandom', `of=${path.join(dir, `blob${i}.bin`)}`, 'bs=1M', `count=${mb}`, 'status=none']);
}

/** What the extension has written to its log (the Offsite output channel) so far. */
export function logText(api: OffsiteApi): string {
  return fs.readdirSync(api.logUri.fsPath).map((n) => fs.readFileSync(path.join(api.logUri.fsPath, n), 'utf8')).join('\n');
}

/**
 * The log from now on: `lines()` gives the lines the extension has written to it since, once all it
 * has logged until then is in the file. (The log is written in order: a mark logged now and found in
 * the file says that all before it is there too; no sleep.)
 */
export async function logFrom(api: OffsiteApi): Promise<{ readonly lines: () => Promise<string[]> }> {
  const mark = async () => {
    const text = `(test) log mark ${randomUUID()}`;
    api.log.info(text);
    await waitFor('the log mark', () => logText(api).includes(text));
    return text;
  };
  const start = await mark();
  return {
    lines: async () => {
      const end = await mark();
      const lines = logText(api).split('\n');
      return lines.slice(lines.findIndex((l) => l.includes(start)) + 1, lines.findIndex((l) => l.includes(end)));
    },
  };
}

/** Set times are whole seconds: wait into the next one so two backups never share a time. */
export async function nextSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1100 - (Date.now() % 1000)));
}

/** Counts the engine reads of one kind (status, readFile, …) the model makes until `stop()`. */
export function countReads(api: OffsiteApi, op: string): { readonly count: () => number; readonly stop: () => void } {
  const model = api.model;
  const original = model.read;
  let n = 0;
  model.read = function (this: typeof model, ...args: Parameters<typeof original>) {
    if (args[1] === op) n++;
    return original.apply(this, args);
  } as typeof original;
  return { count: () => n, stop: () => void (model.read = original) };
}
