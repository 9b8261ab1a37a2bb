// The main job for a newcomer: back up a demo folder with a throwaway key to a local file:// remote,
// change it, back up again (an incremental), then restore and verify, printing the statistics.
// Everything lives in .offsite-demo/ (removed and recreated on each run).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve('.offsite-demo');
const offsite = path.resolve('bin/offsite');
const src = path.join(root, 'my-project');
const remote = `file://${path.join(root, 'remote')}`;
const cache = path.join(root, 'cache');

function sh(args, opts = {}) {
  console.log(`\n$ offsite ${args.join(' ')}`);
  const out = execFileSync(process.execPath, [offsite, '--archive-dir', cache, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
  process.stdout.write(out);
  return out;
}

fs.rmSync(root, { recursive: true, force: true });
fs.mkdirSync(path.join(src, 'src', 'lib'), { recursive: true });
fs.mkdirSync(path.join(src, 'assets'), { recursive: true });
fs.writeFileSync(path.join(src, 'README.md'), '# My project\n\nBacked up by Offsite.\n');
fs.writeFileSync(path.join(src, 'src', 'main.ts'), Array.from({ length: 400 }, (_, i) => `export const value${i} = ${i};`).join('\n') + '\n');
fs.writeFileSync(path.join(src, 'src', 'lib', 'util.ts'), 'export function add(a: number, b: number) { return a + b; }\n');
fs.writeFileSync(path.join(src, 'assets', 'logo.bin'), Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)));
fs.writeFileSync(path.join(src, '.gitignore'), 'build/\n');
fs.mkdirSync(path.join(src, 'build'));
fs.writeFileSync(path.join(src, 'build', 'out.js'), 'generated, ignored by --gitignore\n');

console.log('Offsite demo: a throwaway key, a demo folder, a local file:// remote, all under .offsite-demo/');
process.env.OFFSITE_PASSPHRASE = 'demo passphrase (throwaway)';
execFileSync(process.execPath, [offsite, 'keygen', '--public', path.join(root, 'demo-public.asc'), '--secret', path.join(root, 'demo-secret.asc'), 'Offsite Demo', 'demo@example.invalid'], { stdio: 'inherit' });

const key = ['--encrypt-key', path.join(root, 'demo-public.asc')];
sh(['backup', '--gitignore', ...key, src, remote]);

// A day's work: edit, add, delete. (Wait a second: set times are whole seconds.)
execFileSync('sleep', ['1.1']);
fs.appendFileSync(path.join(src, 'src', 'main.ts'), 'export const added = true;\n');
fs.writeFileSync(path.join(src, 'src', 'lib', 'new.ts'), 'export const fresh = 1;\n');
fs.rmSync(path.join(src, 'src', 'lib', 'util.ts'));
sh(['backup', '--gitignore', ...key, src, remote]);

sh(['status', remote]);
const restored = path.join(root, 'restored');
sh(['restore', '--key', path.join(root, 'demo-secret.asc'), remote, restored]);
sh(['verify', '--compare-data', '--gitignore', '--key', path.join(root, 'demo-secret.asc'), remote, src]);
const first = JSON.parse(execFileSync(process.execPath, [offsite, '--archive-dir', cache, 'status', '--json', remote], { encoding: 'utf8' })).chains[0].sets[0].time;
const old = path.join(root, 'restored-as-of-first-backup');
sh(['restore', '--key', path.join(root, 'demo-secret.asc'), '--time', String(first), '--path', 'src/lib/util.ts', remote, old]);
console.log(`\nThe deleted file src/lib/util.ts, as of the first backup: ${fs.readFileSync(path.join(old, 'src', 'lib', 'util.ts'), 'utf8').trim()}`);
console.log(`\nDone. Look around in ${root}: remote/ holds only encrypted duplicity-format files.`);
