// Suite 3, tampering: a byte flipped in, a truncation of, a swap between sets of, or the deletion of a
// volume, a manifest or a signature archive, read back on a machine without the local cache. restore
// and verify refuse with one error line naming the file, except where restore does not need the file
// (a signature archive): then it restores the exact tree, never wrong data, and verify still refuses.
// With a signing key configured, a set not signed by that key is refused.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite, type RunResult } from '../helpers/cli';
import { forgeFullSet } from '../helpers/forge';
import { ECC_SEC, RSA_PUB, RSA_SEC, duplicity, gnupgHome, gpg } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { makeTree, randomBytesSeeded, snapshotTree, type TreeEntry } from '../helpers/tree';
import { runCase, suiteSeed } from './figures';
import { errorLine } from './support';

const SUITE = '3 tampering';

type Target = 'full volume' | 'inc volume' | 'full manifest' | 'inc manifest' | 'full signatures' | 'inc signatures';
type Mutation = 'flip' | 'truncate' | 'swap' | 'delete';

const PATTERNS: Record<Target, RegExp> = {
  'full volume': /^duplicity-full\.\d{8}T\d{6}Z\.vol2\.difftar\.gpg$/,
  'inc volume': /^duplicity-inc\..*\.vol1\.difftar\.gpg$/,
  'full manifest': /^duplicity-full\.\d{8}T\d{6}Z\.manifest\.gpg$/,
  'inc manifest': /^duplicity-inc\..*\.manifest\.gpg$/,
  'full signatures': /^duplicity-full-signatures\..*\.sigtar\.gpg$/,
  'inc signatures': /^duplicity-new-signatures\..*\.sigtar\.gpg$/,
};
/** What a target is swapped with: the same kind of file of the other set. */
const COUNTERPART: Record<Target, Target> = {
  'full volume': 'inc volume',
  'inc volume': 'full volume',
  'full manifest': 'inc manifest',
  'inc manifest': 'full manifest',
  'full signatures': 'inc signatures',
  'inc signatures': 'full signatures',
};

describe(`reliability ${SUITE}: damaged and replaced remote files`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(SUITE);
  let work: string;
  let src: string;
  let vault: string;
  let tree: TreeEntry[];

  before(async () => {
    work = tempDir('offsite-tamper-');
    src = path.join(work, 'src');
    makeTree(src, { 'a.txt': 'first\n', docs: { 'b.bin': randomBytesSeeded(1_500_000, seed), 'c.txt': 'c\n' }, 'd.bin': randomBytesSeeded(700_000, seed + 1) });
    vault = path.join(work, 'vault');
    const cache = path.join(work, 'cache');
    const full = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, `file://${vault}`]);
    assert.equal(full.code, 0, full.stderr);
    await new Promise((r) => setTimeout(r, 1100));
    fs.writeFileSync(path.join(src, 'a.txt'), 'second\n');
    fs.writeFileSync(path.join(src, 'e.bin'), randomBytesSeeded(300_000, seed + 2));
    const inc = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, '--volsize', '1', src, `file://${vault}`]);
    assert.equal(inc.code, 0, inc.stderr);
    tree = snapshotTree(src);
  });

  const nameOf = (dir: string, t: Target) => {
    const n = fs.readdirSync(dir).find((f) => PATTERNS[t].test(f));
    assert.ok(n, `no ${t} in ${fs.readdirSync(dir).join(' ')}`);
    return n;
  };

  function mutate(dir: string, t: Target, m: Mutation): string[] {
    const name = nameOf(dir, t);
    const file = path.join(dir, name);
    const size = fs.statSync(file).size;
    switch (m) {
      case 'flip': {
        const fd = fs.openSync(file, 'r+');
        const b = Buffer.alloc(1);
        const at = Math.floor(size / 2);
        fs.readSync(fd, b, 0, 1, at);
        b[0] ^= 0x20;
        fs.writeSync(fd, b, 0, 1, at);
        fs.closeSync(fd);
        return [name];
      }
      case 'truncate':
        fs.truncateSync(file, Math.floor(size * 0.6));
        return [name];
      case 'delete':
        fs.rmSync(file);
        return [name];
      case 'swap': {
        const other = nameOf(dir, COUNTERPART[t]);
        const a = fs.readFileSync(file);
        fs.writeFileSync(file, fs.readFileSync(path.join(dir, other)));
        fs.writeFileSync(path.join(dir, other), a);
        return [name, other];
      }
    }
  }

  function run(args: string[]): Promise<RunResult> {
    return offsite(['--archive-dir', tempDir('offsite-tamper-cache-'), ...args]);
  }

  const targets = Object.keys(PATTERNS) as Target[];
  const mutations: Mutation[] = ['flip', 'truncate', 'swap', 'delete'];
  for (const t of targets) {
    for (const m of mutations) {
      // restore needs no signature archive (FORMAT §9): it must then restore the exact tree.
      const restoreRefuses = !t.endsWith('signatures');
      it(`${m} the ${t}: restore ${restoreRefuses ? 'refuses' : 'restores the exact tree'}, verify refuses, naming the file`, async () => {
        await runCase(SUITE, `${m} ${t}`, undefined, async () => {
          const dir = path.join(tempDir('offsite-tamper-vault-'), 'vault');
          fs.cpSync(vault, dir, { recursive: true });
          const names = mutate(dir, t, m);
          const url = `file://${dir}`;
          const out = path.join(tempDir('offsite-tamper-out-'), 'out');
          const r = await run(['restore', '--key', RSA_SEC, url, out]);
          if (restoreRefuses) {
            assert.equal(r.code, 1, `restore should refuse: ${r.stderr}`);
            const line = errorLine(r.stderr);
            assert.ok(names.some((n) => line.includes(n)), `restore's error names ${names.join(' or ')}: ${line}`);
          } else {
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual(snapshotTree(out), tree);
          }
          const v = await run(['verify', '--key', RSA_SEC, '--compare-data', url, src]);
          assert.equal(v.code, 1, `verify should refuse: ${v.stdout}${v.stderr}`);
          const line = errorLine(v.stderr);
          assert.ok(names.some((n) => line.includes(n)), `verify's error names ${names.join(' or ')}: ${line}`);
        });
      });
    }
  }

  it('the last of two incrementals without its signature archive: restore refuses to fall back to the older set silently', async () => {
    await runCase(SUITE, 'rollback by deleting the last signature archive', undefined, async () => {
      // duplicity drops such a set from the chain and restores the one before as "the latest".
      const dir = path.join(tempDir('offsite-tamper-vault-'), 'vault');
      fs.cpSync(vault, dir, { recursive: true });
      const s2 = path.join(path.dirname(dir), 'src');
      fs.cpSync(src, s2, { recursive: true });
      const cache = tempDir('offsite-tamper-cache-');
      const args = ['--archive-dir', cache, 'backup', '--key', RSA_SEC, '--encrypt-key', RSA_PUB, '--allow-source-mismatch', s2, `file://${dir}`];
      fs.writeFileSync(path.join(s2, 'a.txt'), 'third\n');
      const b = await offsite(args);
      assert.equal(b.code, 0, b.stderr);
      const last = fs.readdirSync(dir).filter((n) => /^duplicity-new-signatures\./.test(n)).sort().at(-1)!;
      fs.rmSync(path.join(dir, last));
      const r = await run(['restore', '--key', RSA_SEC, `file://${dir}`, path.join(tempDir(), 'out')]);
      assert.equal(r.code, 1, r.stderr);
      const line = errorLine(r.stderr);
      assert.ok(line.includes(last), line);
      assert.match(line, /--time \d{8}T\d{6}Z/);
    });
  });

  it('an untouched copy: restore and verify --compare-data succeed (the checks above are not false alarms)', async () => {
    await runCase(SUITE, 'untouched', undefined, async () => {
      const out = path.join(tempDir('offsite-tamper-out-'), 'out');
      const r = await run(['restore', '--key', RSA_SEC, `file://${vault}`, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(snapshotTree(out), tree);
      const v = await run(['verify', '--key', RSA_SEC, '--compare-data', `file://${vault}`, src]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /0 difference/);
    });
  });

  it("offsite verify accepts duplicity's own full and incremental sets (signatures included)", async () => {
    await runCase(SUITE, 'duplicity-made sets verify', undefined, async () => {
      const home = gnupgHome();
      const d = path.join(tempDir('offsite-tamper-dup-'), 'src');
      makeTree(d, { 'x.txt': 'x\n', sub: { 'y.bin': randomBytesSeeded(200_000, seed + 5), l: { symlink: '../x.txt' } } });
      const url = `file://${path.join(path.dirname(d), 'vault')}`;
      const args = ['--encrypt-key', 'E58B2D7FA184113F', '--archive-dir', path.join(path.dirname(d), 'dcache'), d, url];
      assert.equal((await duplicity(home, ['full', ...args])).code, 0);
      await new Promise((r) => setTimeout(r, 1100));
      fs.writeFileSync(path.join(d, 'x.txt'), 'changed\n');
      fs.rmSync(path.join(d, 'sub', 'l'));
      assert.equal((await duplicity(home, ['incremental', ...args])).code, 0);
      const v = await run(['verify', '--key', RSA_SEC, '--compare-data', url, d]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    });
  });

  describe('signing', () => {
    let signer: { pub: string; sec: string };

    before(async () => {
      // A sign-only key (no encryption subkey), made for this run in a private GnuPG home.
      const home = gnupgHome();
      const uid = 'Offsite Signer <offsite-signer@example.invalid>';
      const g = await gpg(home, ['--quick-gen-key', uid, 'ed25519', 'sign', 'never']);
      assert.equal(g.code, 0, g.stderr);
      const dir = tempDir('offsite-signer-');
      signer = { pub: path.join(dir, 'signer-pub.asc'), sec: path.join(dir, 'signer-sec.asc') };
      fs.writeFileSync(signer.pub, (await gpg(home, ['--armor', '--export', 'offsite-signer@example.invalid'])).stdout);
      fs.writeFileSync(signer.sec, (await gpg(home, ['--armor', '--export-secret-keys', 'offsite-signer@example.invalid'])).stdout, { mode: 0o600 });
    });

    async function signedVault(signKey: string | undefined): Promise<string> {
      const dir = path.join(tempDir('offsite-signed-'), 'vault');
      const r = await run(['backup', '--encrypt-key', RSA_PUB, ...(signKey ? ['--sign-key', signKey] : []), src, `file://${dir}`]);
      assert.equal(r.code, 0, r.stderr);
      return `file://${dir}`;
    }

    it('a set signed by the configured key restores and verifies; unsigned, or signed by another key, is refused', async () => {
      const signed = await signedVault(RSA_SEC);
      const unsigned = await signedVault(undefined);
      const other = await signedVault(ECC_SEC);
      await runCase(SUITE, 'signed by the configured key', undefined, async () => {
        const out = path.join(tempDir(), 'out');
        const r = await run(['restore', '--key', RSA_SEC, '--sign-key', RSA_PUB, signed, out]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(snapshotTree(out), tree);
        const v = await run(['verify', '--key', RSA_SEC, '--sign-key', RSA_PUB, '--compare-data', signed, src]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
      });
      for (const [label, url] of [['unsigned', unsigned], ['signed by another key', other]] as const) {
        await runCase(SUITE, `${label}, a signature required`, undefined, async () => {
          for (const cmd of [['restore', '--key', RSA_SEC, '--sign-key', RSA_PUB, url, path.join(tempDir(), 'out')], ['verify', '--key', RSA_SEC, '--sign-key', RSA_PUB, url, src]]) {
            const r = await run(cmd);
            assert.equal(r.code, 1, `${cmd[0]} should refuse: ${r.stderr}`);
            const line = errorLine(r.stderr);
            assert.match(line, /sign/i);
            assert.match(line, /duplicity-full\.\d{8}T\d{6}Z\.(manifest|vol1\.difftar)\.gpg/, line);
          }
        });
      }
    });

    it('a set forged with the public key (by anyone) is refused when a signature is required', async () => {
      await runCase(SUITE, 'forged set, a signature required', undefined, async () => {
        const dir = path.join(tempDir('offsite-forged-'), 'vault');
        await forgeFullSet(dir, 1_700_000_000, [{ name: 'snapshot/./', type: 'dir', mode: 0o755 }, { name: 'snapshot/evil.txt', data: 'planted' }]);
        const out = path.join(tempDir(), 'out');
        const r = await run(['restore', '--key', RSA_SEC, '--sign-key', RSA_PUB, `file://${dir}`, out]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(errorLine(r.stderr), /not signed.*duplicity-full\.20231114T221320Z\.manifest\.gpg|duplicity-full\.20231114T221320Z\.manifest\.gpg.*not signed/);
        assert.ok(!fs.existsSync(path.join(out, 'evil.txt')));
      });
    });

    it('an older signed set renamed as a newer one (a replay: last week shown as today) is refused when a signature is required', async () => {
      await runCase(SUITE, 'replayed older signed set', undefined, async () => {
        const dir = new URL(await signedVault(RSA_SEC)).pathname;
        const stamp = /\.(\d{8}T\d{6}Z)\./.exec(fs.readdirSync(dir)[0])![1];
        const d = new Date(`${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13)}`);
        // An hour later (asked for with --time: "now" would not reach a set of the future).
        const at = String(d.getTime() / 1000 + 3600);
        const later = new Date(Number(at) * 1000).toISOString().replace(/[-:]|\.\d{3}/g, '');
        for (const n of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, n), path.join(dir, n.replace(stamp, later)));
        for (const cmd of [['restore', '--key', RSA_SEC, '--sign-key', RSA_PUB, '--time', at, `file://${dir}`, path.join(tempDir(), 'out')], ['verify', '--key', RSA_SEC, '--sign-key', RSA_PUB, '--time', at, `file://${dir}`, src]]) {
          const r = await run(cmd);
          assert.equal(r.code, 1, `${cmd[0]} should refuse: ${r.stdout}${r.stderr}`);
          assert.match(errorLine(r.stderr), new RegExp(`duplicity-full\\.${later}\\.(manifest|vol1\\.difftar)\\.gpg.*signed at .*before the time of its backup set`), r.stderr);
        }
        // As of the real time, the same files restore.
        const ok = await run(['restore', '--key', RSA_SEC, '--sign-key', RSA_PUB, '--time', String(Math.floor(d.getTime() / 1000)), `file://${dir}`, path.join(tempDir(), 'out')]);
        assert.equal(ok.code, 0, ok.stderr);
      });
    });

    it('a sign-only key (no encryption subkey) signs and checks backups', async () => {
      await runCase(SUITE, 'sign-only signing key', undefined, async () => {
        const url = await signedVault(signer.sec);
        const out = path.join(tempDir(), 'out');
        const r = await run(['restore', '--key', RSA_SEC, '--sign-key', signer.pub, url, out]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(snapshotTree(out), tree);
        const bad = await run(['restore', '--key', RSA_SEC, '--sign-key', signer.pub, await signedVault(RSA_SEC), path.join(tempDir(), 'out')]);
        assert.equal(bad.code, 1);
        assert.match(errorLine(bad.stderr), /sign/i);
      });
    });

    it('with the local cache (manifests not downloaded again), volumes not signed by the key are still refused', async () => {
      await runCase(SUITE, 'unsigned volumes, local cache', undefined, async () => {
        const cache = tempDir('offsite-signed-cache-');
        const dir = path.join(tempDir('offsite-signed-'), 'vault');
        const b = await offsite(['--archive-dir', cache, 'backup', '--encrypt-key', RSA_PUB, src, `file://${dir}`]);
        assert.equal(b.code, 0, b.stderr);
        const r = await offsite(['--archive-dir', cache, 'restore', '--key', RSA_SEC, '--sign-key', RSA_PUB, `file://${dir}`, path.join(tempDir(), 'out')]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(errorLine(r.stderr), /not signed.*vol1\.difftar\.gpg|vol1\.difftar\.gpg.*not signed/);
      });
    });
  });
});
