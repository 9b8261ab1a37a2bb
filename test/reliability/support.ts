// Shared pieces of the reliability suites: the fixture keys as an in-process CryptoContext, whole-file
// decryption (to prove a remote file is complete), in-process restores into fresh folders with no
// local cache, listings of folders (to prove nothing appeared around a target), and a seeded PRNG.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Backend } from '../../src/engine/backend/backend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { createDecryptStream } from '../../src/engine/crypto/decrypt';
import { MemoryLogger } from '../../src/engine/log';
import { restore } from '../../src/engine/ops/restore';
import { rsaCrypto } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { snapshotTree, type TreeEntry } from '../helpers/tree';
import { mulberry32 } from '../../src/engine/util/seededRandom';

export { rsaCrypto };

/** Seeded random numbers in [0, 1), to pick test cases reproducibly. */
export const rng = mulberry32;


/** Decrypts a whole stored file (checking its MDC): resolves with the plaintext size, or rejects. */
export async function decryptWhole(file: string): Promise<number> {
  const c = await rsaCrypto();
  let n = 0;
  await pipeline(
    fs.createReadStream(file),
    createDecryptStream(await c.decryptOptions()),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        n += chunk.length;
        cb();
      },
    }),
  );
  return n;
}

/** Restores (all of it, as of `time`) with a fresh, empty cache into a new folder; returns its snapshot. */
export async function restoredTree(backend: Backend, time?: number): Promise<TreeEntry[]> {
  const box = tempDir('offsite-rel-restore-');
  const out = path.join(box, 'out');
  await restore({ backend, archive: ArchiveDir.open(path.join(box, 'cache')), crypto: await rsaCrypto(), log: new MemoryLogger(), target: out, time });
  const snap = snapshotTree(out);
  fs.rmSync(box, { recursive: true, force: true });
  return snap;
}

/** Every path under `dir` (relative, sorted), to compare the surroundings of a target before and after. */
export function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      const st = fs.lstatSync(path.join(d, n));
      if (st.isDirectory()) walk(path.join(d, n), r);
    }
  };
  walk(dir, '');
  return out;
}


/** An integer in [lo, hi]. */
export function between(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** The error lines of a CLI run (warnings left out): exactly one, starting with "offsite: ". */
export function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => l && !l.startsWith('Warning: ') && !l.startsWith('  '));
  if (lines.length !== 1 || !lines[0].startsWith('offsite: ')) throw new Error(`one "offsite: …" error line expected, got:\n${stderr}`);
  return lines[0];
}

/** Local files a run may leave in an archive dir only while it is alive (temporaries, checkpoints). */
export function archiveLeftovers(archiveDir: string): string[] {
  const out: string[] = [];
  for (const n of fs.existsSync(archiveDir) ? fs.readdirSync(archiveDir) : []) {
    if (n === 'tmp') {
      for (const t of fs.readdirSync(path.join(archiveDir, n))) out.push(`tmp/${t}`);
      continue;
    }
    if (/\.tmp-\d+$|\.tmp$|\.part$|^offsite-checkpoint|^offsite-partial|^lockfile/.test(n)) out.push(n);
  }
  return out;
}
