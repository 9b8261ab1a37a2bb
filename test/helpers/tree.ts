// Declarative trees for tests, and snapshots of real trees in the shape of the fixtures'
// expected/*.json (the same fields as shared/duplicity/samples/tools/snapshot_tree.py).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TreeEntry {
  path: string | { hex: string };
  type: 'reg' | 'dir' | 'sym' | 'fifo' | 'other';
  mode: string;
  uid: number;
  gid: number;
  mtime?: number;
  size?: number;
  sha256?: string;
  target?: string;
}

export function snapshotTree(root: string, opts: { owners?: boolean } = {}): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (abs: Buffer, rel: Buffer) => {
    const st = fs.lstatSync(abs);
    const t = st.isFile() ? 'reg' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'sym' : st.isFIFO() ? 'fifo' : 'other';
    const text = rel.toString('utf8');
    const name: TreeEntry['path'] = rel.length === 0 ? '.' : Buffer.from(text, 'utf8').equals(rel) ? text : { hex: rel.toString('hex') };
    const e: TreeEntry = { path: name, type: t, mode: (st.mode & 0o7777).toString(8).padStart(4, '0'), uid: st.uid, gid: st.gid };
    if (opts.owners === false) {
      delete (e as Partial<TreeEntry>).uid;
      delete (e as Partial<TreeEntry>).gid;
    }
    if (t !== 'sym') e.mtime = Math.floor(st.mtimeMs / 1000);
    if (t === 'reg') {
      e.size = st.size;
      e.sha256 = createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
    }
    if (t === 'sym') e.target = fs.readlinkSync(abs, { encoding: 'buffer' }).toString('utf8');
    out.push(e);
    if (t === 'dir') {
      const names = (fs.readdirSync(abs, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
      for (const n of names) walk(Buffer.concat([abs, Buffer.from('/'), n]), rel.length ? Buffer.concat([rel, Buffer.from('/'), n]) : n);
    }
  };
  walk(Buffer.from(root), Buffer.alloc(0));
  return out;
}

export type Spec = { [name: string]: string | Buffer | Spec | { symlink: string } | { fifo: true } | { content: string | Buffer; mode?: number; mtime?: number } };

/** Creates files, folders, symlinks and fifos under `root` from a nested object. */
export function makeTree(root: string, spec: Spec): void {
  fs.mkdirSync(root, { recursive: true });
  for (const [name, v] of Object.entries(spec)) {
    const p = path.join(root, name);
    if (typeof v === 'string' || Buffer.isBuffer(v)) fs.writeFileSync(p, v);
    else if ('symlink' in v && typeof v.symlink === 'string') fs.symlinkSync(v.symlink, p);
    else if ('fifo' in v && v.fifo === true) execFileSync('mkfifo', [p]);
    else if ('content' in v && (typeof v.content === 'string' || Buffer.isBuffer(v.content))) {
      fs.writeFileSync(p, v.content);
      if (typeof v.mode === 'number') fs.chmodSync(p, v.mode);
      if (typeof v.mtime === 'number') fs.utimesSync(p, v.mtime, v.mtime);
    } else makeTree(p, v as Spec);
  }
}

/** Deterministic pseudo-random bytes (xorshift), so failures replay. */
export function randomBytesSeeded(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
