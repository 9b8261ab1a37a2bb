// A full backup to the S3 test server (OpenStack Swift + s3api on loopback) next to the same backup to
// file://, and duplicity's boto3 backend on the same server, in the same run, interleaved, medians.
// Also the s3:// backend alone: puts of 32 MiB local files, and gets, next to file://.
//
//   npx tsx bench/s3Backup.ts [--runs N] [--small N] [--big-mb M] [--work DIR]
//   (corpus from bench/corpus.js; default --small 17000 --big-mb 100: ~20k files, ~540 MB)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend, BlobSource } from '../src/engine/backend/backend';
import { FileBackend } from '../src/engine/backend/fileBackend';
import { createS3Backend } from '../src/engine/backend/s3Backend';
import { startS3Server } from '../test/helpers/s3Server';
import { measure, median, type Cmd, type Measurement } from './measure';

const repo = path.resolve(__dirname, '..');
const KEYS = path.join(__dirname, 'keys');
const PUB = path.join(KEYS, 'rsa-pub.asc');
const SEC = path.join(KEYS, 'rsa-sec.asc');
const KEY_ID = 'E58B2D7FA184113F';

function args(): { runs: number; small: string; bigMb: string; work: string } {
  const a = { runs: 3, small: '17000', bigMb: '100', work: path.join(os.homedir(), '.cache', 'offsite-bench-s3') };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--runs') a.runs = Number(v[++i]);
    else if (v[i] === '--small') a.small = v[++i];
    else if (v[i] === '--big-mb') a.bigMb = v[++i];
    else if (v[i] === '--work') a.work = path.resolve(v[++i]);
    else throw new Error(`unknown option ${v[i]}`);
  }
  return a;
}

const log = (m: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
};

async function backendBench(endpoint: string, keys: { accessKeyId: string; secretAccessKey: string }, bucket: string, scratch: string): Promise<string[]> {
  const files = 8;
  const size = 32 * 1024 * 1024;
  const src = path.join(scratch, 'blobs');
  fs.mkdirSync(src, { recursive: true });
  const names = Array.from({ length: files }, (_, i) => `duplicity-full.20260101T000000Z.vol${i + 1}.difftar.gpg`);
  for (const n of names) fs.writeFileSync(path.join(src, n), randomBytes(size));
  const source = (n: string): BlobSource => ({ size, localPath: path.join(src, n), open: () => fs.createReadStream(path.join(src, n)) });
  const out: string[] = [];
  const time = async (label: string, fn: () => Promise<void>): Promise<void> => {
    const t = performance.now();
    await fn();
    const s = (performance.now() - t) / 1000;
    out.push(`| ${label} | ${s.toFixed(2)} s | ${((files * size) / 1e6 / s).toFixed(0)} MB/s |`);
  };
  const url = `s3://${bucket}/backend-bench`;
  const opts = { s3EndpointUrl: endpoint, s3AccessKeyId: keys.accessKeyId, s3SecretAccessKey: keys.secretAccessKey, s3Region: 'us-east-1', env: {} };
  const backends: Array<[string, () => Promise<Backend>]> = [
    ['file://', async () => new FileBackend(path.join(scratch, `fb-${randomBytes(3).toString('hex')}`))],
    ['s3:// single PUT (hash, then stream)', () => createS3Backend(new URL(url), { options: opts }, `${url}/${randomBytes(3).toString('hex')}`)],
    ['s3:// multipart (16 MiB parts)', () => createS3Backend(new URL(url), { options: { ...opts, env: { OFFSITE_S3_MULTIPART_MB: '16' } } }, `${url}/${randomBytes(3).toString('hex')}`)],
  ];
  for (const [label, make] of backends) {
    const b = await make();
    // Four puts at once, as a backup runs them (BackendProperties.connections).
    await time(`put ${files} × 32 MiB, 4 at once: ${label}`, async () => {
      for (let i = 0; i < files; i += 4) await Promise.all(names.slice(i, i + 4).map((n) => b.put(n, source(n))));
    });
    await time(`get ${files} × 32 MiB, 4 at once: ${label}`, async () => {
      for (let i = 0; i < files; i += 4) {
        await Promise.all(
          names.slice(i, i + 4).map(async (n) => {
            for await (const chunk of await b.get(n)) void chunk;
          }),
        );
      }
    });
    await b.close();
  }
  return out;
}

async function main(): Promise<void> {
  const a = args();
  fs.mkdirSync(a.work, { recursive: true });
  const corpus = path.join(a.work, `corpus-${a.small}-${a.bigMb}`);
  if (!fs.existsSync(corpus)) {
    log(`generating the corpus in ${corpus}`);
    execFileSync(process.execPath, [path.join(__dirname, 'corpus.js'), 'gen', corpus, '--small', a.small, '--big-mb', a.bigMb], { stdio: 'inherit' });
  }
  const stats = execFileSync(process.execPath, [path.join(__dirname, 'corpus.js'), 'stats', corpus], { encoding: 'utf8' }).trim();
  log(`corpus: ${stats}`);
  log('building the CLI');
  execFileSync(process.execPath, [path.join(repo, 'esbuild.mjs')], { cwd: repo });
  const scratch = fs.mkdtempSync(path.join(a.work, 'run-'));
  const home = path.join(scratch, 'home');
  const gnupg = path.join(scratch, 'gnupg');
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(gnupg, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(gnupg, 'gpg.conf'), 'trust-model always\n');
  execFileSync('gpg', ['--batch', '--quiet', '--import', PUB, SEC], { env: { ...process.env, GNUPGHOME: gnupg }, stdio: 'pipe' });

  log('starting the S3 server');
  const server = await startS3Server();
  try {
    const bucket = await server.createBucket();
    const env: Record<string, string> = {
      HOME: home,
      GNUPGHOME: gnupg,
      TZ: 'UTC',
      LC_ALL: 'C.UTF-8',
      PASSPHRASE: '',
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: path.join(home, 'none'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'),
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const bin = path.join(repo, 'bin', 'offsite');
    let n = 0;
    const fresh = (): { cache: string; id: string } => {
      n++;
      const cache = path.join(scratch, `cache-${n}`);
      return { cache, id: `r${n}` };
    };
    const configs: Record<string, () => Cmd> = {
      'offsite file://': () => {
        const { cache, id } = fresh();
        return { argv: [process.execPath, bin, '--archive-dir', cache, 'backup', '--encrypt-key', PUB, corpus, `file://${path.join(scratch, id)}`], env };
      },
      'offsite s3://': () => {
        const { cache, id } = fresh();
        return { argv: [process.execPath, bin, '--archive-dir', cache, '--s3-endpoint-url', server.endpoint, 'backup', '--encrypt-key', PUB, corpus, `s3://${bucket}/${id}`], env };
      },
      'duplicity boto3+s3://': () => {
        const { cache, id } = fresh();
        return {
          argv: ['duplicity', 'full', '--archive-dir', cache, '--name', 'bench', '--s3-endpoint-url', server.endpoint, '--s3-region-name', 'us-east-1', '--encrypt-key', KEY_ID, corpus, `boto3+s3://${bucket}/${id}`],
          env,
        };
      },
      'duplicity file://': () => {
        const { cache, id } = fresh();
        return { argv: ['duplicity', 'full', '--archive-dir', cache, '--name', 'bench', '--encrypt-key', KEY_ID, corpus, `file://${path.join(scratch, id)}`], env };
      },
    };
    const names = Object.keys(configs);
    const results = new Map<string, Measurement[]>(names.map((k) => [k, []]));
    for (let run = 0; run < a.runs; run++) {
      // Rotate the order each run, so drift of the machine spreads over all of them.
      const order = names.map((_, i) => names[(i + run) % names.length]);
      for (const k of order) {
        const m = await measure(configs[k]());
        results.get(k)!.push(m);
        log(`run ${run + 1}: ${k}: ${m.wall.toFixed(2)} s wall, ${m.cpu.toFixed(2)} s CPU, ${m.rssMiB.toFixed(0)} MiB`);
      }
    }
    const med = (k: string, f: (m: Measurement) => number): number => median(results.get(k)!.map(f));
    const lines = [
      `Full backup of ${stats} (${a.runs} runs, medians; ${os.cpus().length} CPUs)`,
      '',
      '| configuration | wall | CPU | peak RSS |',
      '|---|---|---|---|',
      ...names.map((k) => `| ${k} | ${med(k, (m) => m.wall).toFixed(2)} s | ${med(k, (m) => m.cpu).toFixed(2)} s | ${med(k, (m) => m.rssMiB).toFixed(0)} MiB |`),
      '',
      `offsite s3:// / offsite file://: ${(med('offsite s3://', (m) => m.wall) / med('offsite file://', (m) => m.wall)).toFixed(2)}× (target ≤ 1.3×)`,
      `offsite s3:// / duplicity boto3+s3://: ${(med('offsite s3://', (m) => m.wall) / med('duplicity boto3+s3://', (m) => m.wall)).toFixed(2)}× (target < 1)`,
      '',
      '| backend alone | time | rate |',
      '|---|---|---|',
      ...(await backendBench(server.endpoint, server, bucket, scratch)),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await server.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
