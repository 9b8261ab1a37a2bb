// Throughput of the librsync layer (src/engine/delta) on in-memory data, best of several runs.
// Run: npx tsx bench/deltaThroughput.ts [MiB=256] [runs=3]
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeltaEncoder } from '../src/engine/delta/delta';
import { applyDelta, fileHandleSource } from '../src/engine/delta/patch';
import { setSimdEnabled } from '../src/engine/delta/sigSimd';
import { blockLengthFor, parseSignature, SignatureBuilder } from '../src/engine/delta/signature';

const MiB = 1 << 20;
const CHUNK = MiB; // what the backup reads at a time
const size = Number(process.argv[2] ?? 256) * MiB;
const runs = Number(process.argv[3] ?? 3);

function chunks(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length; o += CHUNK) out.push(buf.subarray(o, o + CHUNK));
  return out;
}

function signature(buf: Buffer, blockLen = blockLengthFor(buf.length)): Buffer {
  const b = new SignatureBuilder(blockLen);
  for (const c of chunks(buf)) b.update(c);
  return b.finish();
}

function delta(sig: Buffer, buf: Buffer): Buffer {
  const e = new DeltaEncoder(parseSignature(sig));
  const parts = chunks(buf).map((c) => e.update(c));
  parts.push(e.finish());
  return Buffer.concat(parts);
}

async function best(label: string, bytes: number, f: () => unknown): Promise<void> {
  let min = Infinity;
  let note = '';
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const r = await f();
    min = Math.min(min, Number(process.hrtime.bigint() - t) / 1e9);
    if (Buffer.isBuffer(r)) note = `output ${r.length} bytes`;
  }
  console.log(`${label.padEnd(34)} ${(bytes / MiB / min).toFixed(0).padStart(6)} MiB/s  ${note}`);
}

function textLike(n: number, seed: number): Buffer {
  const words = ['const', 'return', 'function', 'value', 'import', 'export', 'if', 'else', '{', '}', '=', ';', '\n', '  ', 'offsite', 'backup'];
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0;
  for (let p = 0; p < n; ) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const w = words[x >>> 28];
    p += out.write(w + ' ', p, 'latin1');
  }
  return out;
}

async function main(): Promise<void> {
  console.log(`${size / MiB} MiB, block length ${blockLengthFor(size)}, best of ${runs}, node ${process.version}, ${os.cpus()[0]?.model}`);
  const old = crypto.randomBytes(size);
  const sig = signature(old);
  const edited = Buffer.from(old);
  for (let i = 0; i < 100; i++) edited.fill(i, Math.floor((i / 100) * (size - 64)), Math.floor((i / 100) * (size - 64)) + 50);
  const third = Math.floor(size / 3);
  const shifted = Buffer.concat([old.subarray(0, third), Buffer.from('inserted!'), old.subarray(third, 2 * third), old.subarray(2 * third + 777)]);
  const fresh = crypto.randomBytes(size);
  const text = textLike(size, 1);
  const textSig = signature(text);
  const otherText = textLike(size, 2);

  await best('signature', size, () => signature(old));
  await best('signature, 512-byte blocks', size, () => signature(old, 512));
  // The whole blocks' sums in WebAssembly SIMD (delta/sigSimd.ts) against the scalar code.
  setSimdEnabled(false);
  await best('signature, scalar', size, () => signature(old));
  await best('signature, 512-byte blocks, scalar', size, () => signature(old, 512));
  setSimdEnabled(true);
  await best('delta: unchanged', size, () => delta(sig, old));
  await best('delta: 100 in-place edits', size, () => delta(sig, edited));
  await best('delta: insertion + deletion', size, () => delta(sig, shifted));
  await best('delta: random new data', size, () => delta(sig, fresh));
  await best('delta: unrelated text', size, () => delta(textSig, otherText));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offsite-bench-'));
  try {
    const basisFile = path.join(dir, 'basis');
    fs.writeFileSync(basisFile, old, { mode: 0o600 });
    for (const [label, d] of [['patch: 100 edits (file basis)', delta(sig, edited)], ['patch: random (all literal)', delta(sig, fresh)]] as const) {
      await best(label, size, async () => {
        const fh = await fs.promises.open(basisFile, 'r');
        try {
          let n = 0;
          await applyDelta(fileHandleSource(fh), (async function* () { yield* chunks(d); })(), (c) => { n += c.length; });
          return n;
        } finally {
          await fh.close();
        }
      });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
