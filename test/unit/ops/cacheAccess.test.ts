// A run as another user (sudo) leaves its private files in a cache folder that is the user's own: the
// engine's readers of the cache say so themselves (cacheAccessError), naming the cache folder, for
// every front end (the CLI and the extension's engine carry no mapping of their own). Run as the user
// nobody (through setpriv), as root reads every file.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileBackend } from '../../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../../src/engine/cache/archiveDir';
import { COPY_RECORDS } from '../../../src/engine/cache/copyRecords';
import { MemoryLogger } from '../../../src/engine/log';
import { backup } from '../../../src/engine/ops/backup';
import { PARTIAL_SIGTAR } from '../../../src/engine/ops/checkpoint';
import { rsaCrypto } from '../../helpers/gpg';
import { tempDir } from '../../helpers/tmp';
import { makeTree } from '../../helpers/tree';

const NOBODY = 65534;
const REPO = path.resolve(__dirname, '../../..');
const src = (p: string) => JSON.stringify(path.join(REPO, 'src/engine', p));

/** Runs each engine operation (or those of `only`) as nobody on `cache`; returns, by operation, 'ok' or its error's code and message. */
function asNobody(work: string, cache: string, vault: string, source: string, only?: readonly string[]): Record<string, string | [string, string]> {
  const script = path.join(work, 'run.ts');
  fs.writeFileSync(
    script,
    `import { FileBackend } from ${src('backend/fileBackend')};\n` +
      `import { ArchiveDir } from ${src('cache/archiveDir')};\n` +
      `import { MemoryLogger } from ${src('log')};\n` +
      `import { backup } from ${src('ops/backup')};\n` +
      `import { listFiles } from ${src('ops/inspect')};\n` +
      `import { restore } from ${src('ops/restore')};\n` +
      `import { verify } from ${src('ops/verify')};\n` +
      `import { rsaCrypto } from ${JSON.stringify(path.join(REPO, 'test/helpers/gpg'))};\n` +
      `(async () => {\n` +
      `  const base = async () => ({ backend: new FileBackend(${JSON.stringify(vault)}), archive: ArchiveDir.open(${JSON.stringify(cache)}), crypto: await rsaCrypto(), log: new MemoryLogger() });\n` +
      `  const out: Record<string, unknown> = {};\n` +
      `  const attempt = async (name: string, f: () => Promise<unknown>) => {\n` +
      `    if (${JSON.stringify(only ?? null)}?.includes(name) === false) return;\n` +
      `    try { await f(); out[name] = 'ok'; } catch (e) { out[name] = [(e as { code?: string }).code, (e as Error).message]; }\n` +
      `  };\n` +
      `  await attempt('restore', async () => restore({ ...(await base()), target: ${JSON.stringify(path.join(work, 'out'))} }));\n` +
      `  await attempt('list', async () => { for await (const f of listFiles(await base())) void f; });\n` +
      `  await attempt('verify', async () => verify({ ...(await base()), source: ${JSON.stringify(source)} }));\n` +
      `  await attempt('backup', async () => backup({ ...(await base()), source: ${JSON.stringify(source)}, volumeSize: 1 << 20 }));\n` +
      `  console.log(JSON.stringify(out));\n` +
      `})();\n`,
  );
  fs.chmodSync(script, 0o644);
  // tsx's compile cache goes to TMPDIR: keep it inside this test's folder.
  const tmp = path.join(work, 'tmp');
  fs.mkdirSync(tmp, { mode: 0o700, recursive: true });
  fs.chownSync(tmp, NOBODY, NOBODY);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', script], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, HOME: work, TMPDIR: tmp },
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** The files of `dir` (not its folders), sorted. */
const files = (dir: string) => fs.readdirSync(dir).filter((n) => fs.statSync(path.join(dir, n)).isFile()).sort();

describe("the local cache holding another user's files (a run with sudo)", function () {
  this.timeout(120_000);

  /** A folder backed up by root; everything but the cache's files (root's, 0600) readable, the cache's folders nobody's. */
  async function backedUpByRoot() {
    const work = tempDir('offsite-cache-access-');
    fs.chmodSync(work, 0o755);
    const source = path.join(work, 'src');
    const vault = path.join(work, 'vault');
    makeTree(source, { 'a.txt': 'one' });
    const cache = path.join(work, 'cache');
    const archive = ArchiveDir.open(cache);
    await backup({ source, backend: new FileBackend(vault), archive, crypto: await rsaCrypto(), log: new MemoryLogger(), volumeSize: 1 << 20 });
    for (const d of [source, vault]) {
      fs.chmodSync(d, 0o755);
      for (const n of fs.readdirSync(d)) fs.chmodSync(path.join(d, n), 0o644);
    }
    const folders = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [path.join(dir, e.name), ...folders(path.join(dir, e.name))] : []));
    for (const d of [cache, ...folders(cache)]) fs.chownSync(d, NOBODY, NOBODY);
    return { work, source, vault, cache };
  }

  it('each operation fails with the one error naming the cache folder and what to do; nothing is removed as damaged', async () => {
    const { work, source, vault, cache } = await backedUpByRoot();
    const before = files(cache);
    assert.ok(before.some((n) => n.endsWith('.manifest')) && before.some((n) => n.endsWith('.sigtar.gz')), before.join(' '));
    const expectCacheError = (out: ReturnType<typeof asNobody>, what: string) => {
      for (const op of ['restore', 'list', 'verify', 'backup']) {
        const [code, message] = out[op] as [string, string];
        assert.equal(code, 'permission', `${op}, ${what}: ${out[op]}`);
        assert.match(message, new RegExp(`^Cannot use duplicity-\\S+ in the local cache folder ${cache}: permission denied \\(open\\)$`), `${op}, ${what}`);
      }
      assert.deepEqual(files(cache), before, `nothing removed as if damaged, ${what}`);
    };
    // The copies' records are root's too: each copy is read through to be checked (Repository).
    expectCacheError(asNobody(work, cache, vault, source), 'records unreadable');
    // With records this user reads, the signature archives are opened only when their members are read.
    const records = path.join(cache, COPY_RECORDS);
    for (const n of fs.readdirSync(records)) fs.chownSync(path.join(records, n), NOBODY, NOBODY);
    expectCacheError(asNobody(work, cache, vault, source), 'records readable');
  });

  it("a backup after another user's interrupted run: its partial signature archive named as the cache's", async () => {
    const { work, source, vault, cache } = await backedUpByRoot();
    // Root's interrupted run left its partial signature archive (and a checkpoint nobody may read);
    // the set's metadata is nobody's own.
    fs.writeFileSync(path.join(cache, PARTIAL_SIGTAR), 'partial', { mode: 0o600 });
    for (const n of files(cache)) if (n.startsWith('duplicity-')) fs.chownSync(path.join(cache, n), NOBODY, NOBODY);
    const out = asNobody(work, cache, vault, source);
    assert.deepEqual(out.backup, ['permission', `Cannot use ${PARTIAL_SIGTAR} in the local cache folder ${cache}: permission denied (open)`]);
  });

  it("the copies' records folder another user's: recording a fetched copy names the cache folder", async () => {
    const { work, source, vault, cache } = await backedUpByRoot();
    // The metadata is nobody's own, its manifest's copy lost (fetched again), the records' folder root's.
    for (const n of files(cache)) if (n.startsWith('duplicity-')) fs.chownSync(path.join(cache, n), NOBODY, NOBODY);
    fs.rmSync(path.join(cache, files(cache).find((n) => n.endsWith('.manifest'))!));
    fs.chownSync(path.join(cache, COPY_RECORDS), 0, 0);
    const [code, message] = asNobody(work, cache, vault, source).restore as [string, string];
    assert.equal(code, 'permission', message);
    assert.match(message, new RegExp(`^Cannot use ${COPY_RECORDS}/duplicity-\\S+\\.manifest\\.json\\.tmp-\\d+ in the local cache folder ${cache}: permission denied \\(open\\)$`));
  });

  /** Backed up by root; the metadata and its records nobody's own, the records' folder root's (readable). */
  async function recordsFolderRoots() {
    const b = await backedUpByRoot();
    for (const n of files(b.cache)) if (n.startsWith('duplicity-')) fs.chownSync(path.join(b.cache, n), NOBODY, NOBODY);
    const records = path.join(b.cache, COPY_RECORDS);
    for (const n of fs.readdirSync(records)) fs.chownSync(path.join(records, n), NOBODY, NOBODY);
    fs.chownSync(records, 0, 0);
    fs.chmodSync(records, 0o755); // its records read, none written or removed
    return { ...b, sigtar: files(b.cache).find((n) => n.endsWith('.sigtar.gz'))! };
  }

  it("the records' folder another user's: recording a fetched signature file's copy names the cache folder, not the remote file", async () => {
    const { work, source, vault, cache, sigtar } = await recordsFolderRoots();
    fs.rmSync(path.join(cache, sigtar)); // the manifest cached, its signature file fetched again
    const [code, message] = asNobody(work, cache, vault, source, ['list']).list as [string, string];
    assert.equal(code, 'permission', message);
    assert.match(message, new RegExp(`^Cannot use ${COPY_RECORDS}/${sigtar.replace(/\./g, '\\.')}\\.json\\.tmp-\\d+ in the local cache folder ${cache}: permission denied \\(open\\)$`));
  });

  it("the records' folder another user's: removing a damaged copy's record names the cache folder", async () => {
    const { work, source, vault, cache, sigtar } = await recordsFolderRoots();
    fs.appendFileSync(path.join(cache, sigtar), 'x'); // its size no longer its record's: damaged
    const [code, message] = asNobody(work, cache, vault, source, ['list']).list as [string, string];
    assert.equal(code, 'permission', message);
    assert.equal(message, `Cannot use ${COPY_RECORDS}/${sigtar}.json in the local cache folder ${cache}: permission denied (unlink)`);
  });
});
