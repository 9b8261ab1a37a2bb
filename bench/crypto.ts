// Benchmark of src/engine/crypto against gpg 2.2 on mixed data (stage C of the plan).
//   npx tsx bench/crypto.ts [workdir] [--runs N]
// Makes (once) mixed.bin: 200 MiB of alternating 64 KiB–1 MiB runs of source-like text and random
// bytes, and app.sqlite: 100 MiB of 4 KiB pages like bench/corpus.js's database file (every other page
// random). For each: encrypt with createEncryptStream (median of N runs), check that gpg decrypts it
// byte-exact, time `gpg -e` the way duplicity calls it, then decrypt our output and gpg's with
// createDecryptStream. Uses a private GNUPGHOME with the throwaway RSA fixture key.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { createDecryptStream } from '../src/engine/crypto/decrypt';
import { createEncryptStream } from '../src/engine/crypto/encrypt';
import { loadPrivateKeys, loadPublicKeys } from '../src/engine/crypto/keys';
import { mulberry32 as rng } from '../src/engine/util/seededRandom';

const KEYS = path.resolve(__dirname, 'keys');
const RSA_SUBKEY = 'E58B2D7FA184113F';
const MiB = 1024 * 1024;


const WORDS = 'const let function return import export interface async await value result error config options backup restore volume manifest signature delta chunk encrypt decrypt archive remote local sync status buffer stream file path index item list map key data user request response handler context state'.split(' ');

function text(r: () => number, n: number): Buffer {
  const pick = () => WORDS[Math.floor(r() * WORDS.length)];
  const lines: string[] = [];
  let len = 0;
  while (len < n) {
    const indent = '  '.repeat(Math.floor(r() * 4));
    const k = Math.floor(r() * 5);
    const l =
      k === 0 ? `${indent}const ${pick()}${Math.floor(r() * 99)} = ${pick()}.${pick()}(${pick()}, ${Math.floor(r() * 9999)});`
      : k === 1 ? `${indent}if (${pick()} !== ${Math.floor(r() * 500)}) {`
      : k === 2 ? `${indent}// ${Array.from({ length: 3 + Math.floor(r() * 9) }, pick).join(' ')}`
      : k === 3 ? `${indent}return ${pick()}(${pick()}, "${pick()}-${Math.floor(r() * 1e6).toString(36)}");`
      : `${indent}}`;
    lines.push(l);
    len += l.length + 1;
  }
  return Buffer.from(lines.join('\n')).subarray(0, n);
}

function random(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE((r() * 4294967296) >>> 0, i);
  return b;
}

function makeMixed(file: string): void {
  const r = rng(42);
  const fd = fs.openSync(file, 'w');
  let total = 0;
  while (total < 200 * MiB) {
    const n = Math.min(64 * 1024 + Math.floor(r() * (MiB - 64 * 1024)), 200 * MiB - total);
    fs.writeSync(fd, text(r, n));
    fs.writeSync(fd, random(r, n));
    total += 2 * n;
  }
  fs.closeSync(fd);
}

function makeSqlite(file: string): void {
  const r = rng(7);
  const fd = fs.openSync(file, 'w');
  const page = 4096;
  for (let off = 0; off < 100 * MiB; off += 256 * page) {
    const buf = random(r, 256 * page);
    for (let pg = 0; pg < 256; pg += 2) {
      const s = pg * page;
      buf.fill(0, s + 1024, s + page);
      text(r, 1000).copy(buf, s + 16);
    }
    fs.writeSync(fd, buf);
  }
  fs.closeSync(fd);
}

function sha256File(file: string): string {
  return execFileSync('sha256sum', [file]).toString().split(' ')[0];
}

interface Timing {
  readonly wall: number;
  /** CPU seconds of all threads (main, zlib/fs threadpool). */
  readonly cpu: number;
  /** CPU seconds of the main (JavaScript) thread alone, when known. */
  readonly main?: number;
}

/** utime + stime of the main thread, in seconds (Linux /proc; clock ticks of 1/100 s). */
function mainThreadCpu(): number {
  const f = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function timed(fn: () => Promise<void>): Promise<Timing> {
  const t = process.hrtime.bigint();
  const c = process.cpuUsage();
  const m = mainThreadCpu();
  await fn();
  const u = process.cpuUsage(c);
  return { wall: Number(process.hrtime.bigint() - t) / 1e9, cpu: (u.user + u.system) / 1e6, main: mainThreadCpu() - m };
}

/** Runs a shell command under /usr/bin/time: wall and CPU seconds of the child. */
function timedCommand(cmd: string, env: NodeJS.ProcessEnv): Timing {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', 'sh', '-c', cmd], { env });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr.toString()}`);
  const [e, u, sy] = r.stderr.toString().trim().split('\n').pop()!.split(' ').map(Number);
  return { wall: e, cpu: u + sy };
}

function median(xs: Timing[]): Timing {
  const s = [...xs].sort((a, b) => a.wall - b.wall);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 3;
  const dir = args[0] && !args[0].startsWith('--') ? args[0] : path.join(os.tmpdir(), 'offsite-crypto-bench');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const gnupg = fs.mkdtempSync(path.join(os.tmpdir(), 'offsite-bench-gnupg-'));
  const env = { ...process.env, GNUPGHOME: gnupg };
  execFileSync('gpg', ['--batch', '-q', '--import', `${KEYS}/rsa-sec.asc`], { env, stdio: 'ignore' });
  const recipients = await loadPublicKeys([`${KEYS}/rsa-pub.asc`]);
  const decryptionKeys = await loadPrivateKeys([`${KEYS}/rsa-sec.asc`], async () => undefined);
  const inputs = [
    ['mixed.bin', makeMixed],
    ['app.sqlite', makeSqlite],
  ] as const;
  try {
    for (const [name, make] of inputs) {
      const src = path.join(dir, name);
      if (!fs.existsSync(src)) make(src);
      const size = fs.statSync(src).size;
      const want = sha256File(src);
      const ours = path.join(dir, `${name}.offsite.gpg`);
      const times: Timing[] = [];
      for (let i = 0; i < runs; i++) {
        times.push(await timed(() => pipeline(fs.createReadStream(src), createEncryptStream({ recipients }), fs.createWriteStream(ours))));
      }
      const enc = median(times);
      const dec = spawnSync('sh', ['-c', `gpg --batch -q -d '${ours}' | sha256sum`], { env });
      const gpgOk = dec.stdout.toString().split(' ')[0] === want;
      const gpgEncFile = path.join(dir, `${name}.gpg-made.gpg`);
      // As duplicity calls it (FORMAT.md §4.1); default compression (ZLIB level 6 for this key).
      const gpgEnc = timedCommand(`rm -f '${gpgEncFile}'; gpg --batch --no-tty -q --trust-model always --recipient ${RSA_SUBKEY} -o '${gpgEncFile}' --encrypt < '${src}'`, env);
      const decTimes: Record<string, Timing[]> = { ours: [], gpgMade: [] };
      let decOk = true;
      for (let i = 0; i < runs; i++) {
        for (const [label, f] of [['ours', ours], ['gpgMade', gpgEncFile]] as const) {
          const h = createHash('sha256');
          const sink = new Writable({ write: (c: Buffer, _e, cb) => (h.update(c), cb()) });
          decTimes[label].push(await timed(() => pipeline(fs.createReadStream(f), createDecryptStream({ loadDecryptionKeys: async () => decryptionKeys }), sink)));
          decOk &&= h.digest('hex') === want;
        }
      }
      const gpgDec = timedCommand(`gpg --batch -q -d '${ours}' > /dev/null`, env);
      // On a busy machine wall time says little; "2-core" projects it for an idle 2-core machine:
      // the work needs max(main-thread CPU, all CPU / 2) seconds.
      const fmt = (t: Timing) => {
        const projected = t.main === undefined ? '' : `, 2-core ${(size / 1e6 / Math.max(t.main, t.cpu / 2)).toFixed(0)} MB/s`;
        return `${(size / 1e6 / t.wall).toFixed(0)} MB/s (${t.wall.toFixed(2)} s, cpu ${t.cpu.toFixed(2)} s${t.main === undefined ? '' : `, main ${t.main.toFixed(2)} s`}${projected})`;
      };
      console.log(`${name} ${(size / MiB).toFixed(0)} MiB:`);
      console.log(`  encrypt  offsite ${fmt(enc)}, out ${(fs.statSync(ours).size / size).toFixed(3)} of input; gpg -e ${fmt(gpgEnc)}, out ${(fs.statSync(gpgEncFile).size / size).toFixed(3)}; gpg decrypts ours byte-exact: ${gpgOk}`);
      console.log(`  decrypt  offsite: ours ${fmt(median(decTimes.ours))}, gpg-made ${fmt(median(decTimes.gpgMade))}; gpg -d ours ${fmt(gpgDec)}; byte-exact: ${decOk}`);
    }
    console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  } finally {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env });
    fs.rmSync(gnupg, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
