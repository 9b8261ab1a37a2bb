// Helpers for the delta tests: the real `rdiff` (librsync 2.3.2) run on private temp files, a seeded byte
// generator, and a tiny reference decoder that lists a delta's commands.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../../helpers/tmp';

/** duplicity's sample fixtures (same convention as test/helpers/dupSamples.ts). */
import { SAMPLES } from '../../helpers/samples';
export { SAMPLES };

let dir: string | undefined;
let seq = 0;

function tmp(name: string, data?: Uint8Array): string {
  dir ??= tempDir('offsite-delta-');
  const file = path.join(dir, `${seq++}-${name}`);
  if (data) fs.writeFileSync(file, data, { mode: 0o600 });
  return file;
}

function rdiff(args: string[]): void {
  execFileSync('rdiff', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `rdiff -H md4 -R rollsum -b B -S S signature` (duplicity's signature flavour). */
export function rdiffSignature(data: Uint8Array, blockLen: number, strongLen = 8): Buffer {
  const input = tmp('basis', data);
  const out = tmp('sig');
  rdiff(['-H', 'md4', '-R', 'rollsum', '-b', String(blockLen), '-S', String(strongLen), 'signature', input, out]);
  return fs.readFileSync(out);
}

/** `rdiff signature` with rdiff's own defaults (BLAKE2 + RabinKarp). */
export function rdiffDefaultSignature(data: Uint8Array): Buffer {
  const input = tmp('basis', data);
  const out = tmp('sig');
  rdiff(['signature', input, out]);
  return fs.readFileSync(out);
}

export function rdiffDelta(signature: Uint8Array, data: Uint8Array): Buffer {
  const sig = tmp('sig', signature);
  const input = tmp('new', data);
  const out = tmp('delta');
  rdiff(['delta', sig, input, out]);
  return fs.readFileSync(out);
}

export function rdiffPatch(basis: Uint8Array, delta: Uint8Array): Buffer {
  const b = tmp('basis', basis);
  const d = tmp('delta', delta);
  const out = tmp('out');
  rdiff(['patch', b, d, out]);
  return fs.readFileSync(out);
}

/** A deterministic pseudo-random generator (xorshift32), so failures reproduce. */
export function prng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

export function seededBytes(n: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = next() >>> 24;
  return out;
}

/** Splits data at pseudo-random boundaries, with some empty pieces. */
export function randomChunks(data: Buffer, seed: number, maxLen: number): Buffer[] {
  const next = prng(seed);
  const out: Buffer[] = [];
  for (let p = 0; p < data.length; ) {
    const r = next();
    const n = r % 11 === 0 ? 0 : 1 + (r % maxLen);
    out.push(data.subarray(p, p + n));
    p += n;
  }
  return out;
}

export type DeltaCommand = { op: 'LITERAL'; opcode: number; data: Buffer } | { op: 'COPY'; opcode: number; pos: number; len: number };

function readBE(d: Buffer, p: number, w: number): number {
  if (p + w > d.length) throw new Error('truncated');
  let v = 0n;
  for (let k = 0; k < w; k++) v = (v << 8n) | BigInt(d[p + k]);
  return Number(v);
}

/** Lists a delta's commands (a reference decoder written from FORMAT §7.2, independent of patch.ts). */
export function decodeDelta(d: Buffer): DeltaCommand[] {
  if (d.readUInt32BE(0) !== 0x72730236) throw new Error('bad magic');
  const cmds: DeltaCommand[] = [];
  const widths = [1, 2, 4, 8];
  let i = 4;
  for (;;) {
    const op = d[i++];
    if (op === undefined) throw new Error('no END');
    if (op === 0) break;
    if (op <= 0x44) {
      const w = op <= 0x40 ? 0 : widths[op - 0x41];
      const n = w === 0 ? op : readBE(d, i, w);
      i += w;
      if (i + n > d.length) throw new Error('truncated');
      cmds.push({ op: 'LITERAL', opcode: op, data: d.subarray(i, i + n) });
      i += n;
    } else if (op <= 0x54) {
      const k = op - 0x45;
      const w1 = widths[k >> 2];
      const w2 = widths[k & 3];
      cmds.push({ op: 'COPY', opcode: op, pos: readBE(d, i, w1), len: readBE(d, i + w1, w2) });
      i += w1 + w2;
    } else {
      throw new Error(`reserved opcode ${op}`);
    }
  }
  if (i !== d.length) throw new Error('data after END');
  return cmds;
}

/** Summarises commands as strings, e.g. ['COPY 0 512', 'LIT 3'], for readable assertions. */
export function summarize(cmds: DeltaCommand[]): string[] {
  return cmds.map((c) => (c.op === 'COPY' ? `COPY ${c.pos} ${c.len}` : `LIT ${c.data.length}`));
}
