// Upload and download speed of the sftp:// backend against a local OpenSSH sshd, next to a plain copy
// of the same files. Run: npx tsx bench/sftpUpload.ts [files=8] [MiB=32] [concurrency=4]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createSftpBackend } from '../src/engine/backend/sftpBackend';
import type { BlobSource } from '../src/engine/backend/backend';
import { startSshd } from '../test/helpers/sshd';
import { tempDir } from '../test/helpers/tmp';

async function main(): Promise<void> {
  const [files = 8, mib = 32, concurrency = 4] = process.argv.slice(2).map(Number);
  const size = mib * 1024 * 1024;
  const src = tempDir('offsite-bench-src-');
  const names = Array.from({ length: files }, (_, i) => `duplicity-full.20240101T000000Z.vol${i + 1}.difftar.gpg`);
  for (const n of names) fs.writeFileSync(path.join(src, n), randomBytes(size));
  const sshd = await startSshd();
  const knownHosts = path.join(sshd.dir, 'known_hosts');
  fs.writeFileSync(knownHosts, sshd.knownHostsLines().join('\n') + '\n');
  const total = (files * size) / 1e6;
  const rate = (ms: number): string => `${((total * 1000) / ms).toFixed(0)} MB/s`;

  const time = async (label: string, fn: () => Promise<void>): Promise<number> => {
    const t = performance.now();
    await fn();
    const ms = performance.now() - t;
    console.log(`${label.padEnd(48)} ${(ms / 1000).toFixed(2)} s  ${rate(ms)}`);
    return ms;
  };

  const cpDir = tempDir('offsite-bench-cp-');
  await time(`cp (copyFile) ${files} x ${mib} MiB`, async () => {
    for (const n of names) await fs.promises.copyFile(path.join(src, n), path.join(cpDir, n));
  });
  const cpDir2 = tempDir('offsite-bench-cp2-');
  await time(`cp + fsync ${files} x ${mib} MiB`, async () => {
    for (const n of names) {
      await fs.promises.copyFile(path.join(src, n), path.join(cpDir2, n));
      const fh = await fs.promises.open(path.join(cpDir2, n), 'r+');
      await fh.sync();
      await fh.close();
    }
  });

  // The reference: OpenSSH's own sftp client (C, pipelined) on the same server, same files.
  const refDir = tempDir('offsite-bench-ref-');
  const batch = path.join(sshd.dir, 'batch');
  fs.writeFileSync(batch, names.map((n) => `put ${path.join(src, n)} ${path.join(refDir, n)}`).join('\n') + '\n');
  await time(`OpenSSH sftp client, sequential`, async () => {
    execFileSync('sftp', ['-q', '-i', sshd.userKey.file, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'BatchMode=yes', '-P', String(sshd.port), '-b', batch, `${sshd.user}@127.0.0.1`], {
      stdio: 'ignore',
    });
  });

  for (const fsync of [true, false]) {
    for (const kind of ['stream', 'localPath'] as const) {
      const dest = tempDir('offsite-bench-dst-');
      const b = createSftpBackend(new URL(`sftp://${sshd.user}@127.0.0.1:${sshd.port}/${dest}`), {
        options: { home: sshd.dir, env: {}, sshKey: sshd.userKey.file, knownHosts, concurrency, fsync },
      });
      await b.connect();
      const sources = names.map((n): BlobSource => {
        const p = path.join(src, n);
        return kind === 'localPath' ? { size, localPath: p, open: () => fs.createReadStream(p) } : { size, open: () => fs.createReadStream(p) };
      });
      let next = 0;
      await time(`sftp put, ${concurrency} in flight, ${kind}, fsync ${fsync}`, async () => {
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < names.length) {
              const i = next++;
              await b.put(names[i], sources[i]);
            }
          }),
        );
      });
      if (fsync && kind === 'stream') {
        const out = tempDir('offsite-bench-get-');
        let g = 0;
        await time(`sftp get, ${concurrency} in flight`, async () => {
          await Promise.all(
            Array.from({ length: concurrency }, async () => {
              while (g < names.length) {
                const i = g++;
                await pipeline(await b.get(names[i]), fs.createWriteStream(path.join(out, names[i])));
              }
            }),
          );
        });
      }
      await b.close();
    }
  }
  await sshd.stop();
}

void main();
