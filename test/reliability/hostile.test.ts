// Suite 4, hostile archives: sets forged by someone holding only the public key (right hashes, valid
// encryption) whose members try to escape the restore target: `..` components, absolute paths,
// symlink-then-file escapes (in one set and across a full and an incremental set), hard links, device
// files, lying sizes, NUL bytes, over-long names. Nothing may be written outside the target (the test
// compares the whole folder around it before and after), and the user is told what was skipped. A
// property test then throws random mixes of these members at restore.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { FileBackend } from '../../src/engine/backend/fileBackend';
import { ArchiveDir } from '../../src/engine/cache/archiveDir';
import { OffsiteError } from '../../src/engine/errors';
import { MemoryLogger } from '../../src/engine/log';
import { restore } from '../../src/engine/ops/restore';
import { OFFSITE, offsite, run } from '../helpers/cli';
import { forgeFullSet, forgeManifest, forgeSet, type ForgedMember } from '../helpers/forge';
import { RSA_SEC } from '../helpers/gpg';
import { tempDir } from '../helpers/tmp';
import { runCase, suiteSeed } from './figures';
import { errorLine, listing, rsaCrypto } from './support';

const SUITE = '4 hostile archives';
const PROPERTY_RUNS = 40;
const T_FULL = 1_700_000_000;
const T_INC = T_FULL + 3600;

/** An incremental set continuing the forged full set of T_FULL. */
function forgeIncSet(vault: string, members: ForgedMember[]): Promise<void> {
  return forgeSet(vault, T_INC, members, T_FULL);
}

interface Box {
  readonly box: string;
  readonly vault: string;
  readonly target: string;
  readonly outside: string;
  /** An absolute path outside the box that hostile members name: it must never appear. */
  readonly abs: string;
}

function makeBox(): Box {
  const box = tempDir('offsite-hostile-');
  const outside = path.join(box, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(box, 'neighbour.txt'), 'do not touch');
  const abs = path.join(os.tmpdir(), `offsite-hostile-abs-${process.pid}-${Math.random().toString(36).slice(2)}`);
  return { box, vault: path.join(box, 'vault'), target: path.join(box, 'target'), outside, abs };
}

/** The box outside the target is as it was, the absolute victim path never appeared. */
function assertNothingOutside(b: Box, before: string[]): void {
  const after = listing(b.box).filter((p) => p !== 'target' && !p.startsWith('target/'));
  assert.deepEqual(after, before.filter((p) => p !== 'target' && !p.startsWith('target/')), 'nothing new around the target');
  assert.deepEqual(fs.readdirSync(b.outside), [], 'nothing written through a symlink');
  assert.equal(fs.readFileSync(path.join(b.box, 'neighbour.txt'), 'utf8'), 'do not touch');
  assert.ok(!fs.existsSync(b.abs), `${b.abs} was created`);
}

describe(`reliability ${SUITE}: forged sets that try to write outside the target`, function () {
  this.timeout(300_000);
  const seed = suiteSeed(SUITE);

  interface Case {
    readonly name: string;
    readonly full: (b: Box) => ForgedMember[];
    readonly inc?: (b: Box) => ForgedMember[];
    /** Member names (substrings) the user must be told about. */
    readonly told: (b: Box) => string[];
    /** Files that must be restored (the rest of the archive is not given up). */
    readonly restored?: Record<string, string>;
    /** The restore stops with this error instead of skipping members. */
    readonly error?: RegExp;
  }
  const root: ForgedMember = { name: 'snapshot/./', type: 'dir', mode: 0o755 };
  const cases: Case[] = [
    {
      name: "'..' components",
      full: () => [root, { name: 'snapshot/../dotdot.txt', data: 'x' }, { name: 'snapshot/a/../../dotdot2.txt', data: 'x' }, { name: 'diff/../dotdot3.txt', data: 'x' }, { name: 'multivol_snapshot/../dotdot4.txt/1', data: 'x' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: () => ['dotdot.txt', 'dotdot2.txt'],
      restored: { 'good.txt': 'fine' },
    },
    {
      name: 'absolute paths',
      full: (b) => [root, { name: `snapshot/${b.abs}`, data: 'x' }, { name: b.abs, data: 'x' }, { name: `snapshot/${b.abs}/inner`, type: 'dir' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: (b) => [path.basename(b.abs)],
      restored: { 'good.txt': 'fine' },
    },
    {
      name: 'a symlink, then a file through it (one set)',
      full: (b) => [root, { name: 'snapshot/l', type: 'symlink', linkname: b.outside }, { name: 'snapshot/l/through.txt', data: 'x' }, { name: 'snapshot/l/sub/', type: 'dir' }, { name: 'snapshot/rel', type: 'symlink', linkname: '../outside' }, { name: 'snapshot/rel/through2.txt', data: 'x' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: () => ['l/through.txt', 'rel/through2.txt'],
      restored: { 'good.txt': 'fine' },
    },
    {
      name: 'a folder in the full set replaced by a symlink in the incremental, with a file under it',
      full: () => [root, { name: 'snapshot/d/', type: 'dir' }, { name: 'snapshot/d/old.txt', data: 'old' }, { name: 'snapshot/good.txt', data: 'fine' }],
      inc: (b) => [root, { name: 'snapshot/d', type: 'symlink', linkname: b.outside }, { name: 'snapshot/d/new.txt', data: 'x' }, { name: 'diff/d/old.txt', data: 'x' }],
      told: () => ['d/'],
      restored: { 'good.txt': 'fine' },
    },
    {
      // A second member for one path is not something a backup holds: the first is kept, the later
      // ones left out (not "refusing to overwrite" the target), the rest restored.
      name: 'the same name as a symlink, then as a folder, then a file inside',
      full: (b) => [root, { name: 'snapshot/s', type: 'symlink', linkname: b.outside }, { name: 'snapshot/s/', type: 'dir' }, { name: 'snapshot/s/x.txt', data: 'x' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: () => ['Not restoring s: the backup holds this path more than once', 's/x.txt', 'it may have been tampered with'],
      restored: { 'good.txt': 'fine' },
    },
    {
      name: 'the same name as a symlink, then as a file (and a file twice)',
      full: (b) => [root, { name: 'snapshot/a.txt', data: 'first' }, { name: 'snapshot/a.txt', data: 'second' }, { name: 'snapshot/l', type: 'symlink', linkname: path.join(b.box, 'neighbour.txt') }, { name: 'snapshot/l', data: 'OVERWRITTEN' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: () => ['Not restoring a.txt: the backup holds this path more than once', 'Not restoring l: the backup holds this path more than once'],
      restored: { 'a.txt': 'first', 'good.txt': 'fine' },
    },
    {
      name: "the archive's top folder as a symlink",
      full: (b) => [{ name: 'snapshot/./', type: 'symlink', linkname: b.outside }, { name: 'snapshot/top.txt', data: 'x' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: () => ["Not restoring .: the backup's top folder is a symlink"],
      restored: { 'top.txt': 'x', 'good.txt': 'fine' },
    },
    {
      // As root, device files are made, as duplicity does (see the device test below); else left out.
      name: 'hard links and device files',
      full: (b) => [root, { name: 'snapshot/hl', type: 'hardlink', linkname: path.join(b.box, 'neighbour.txt') }, { name: 'snapshot/chr', type: 'chr' }, { name: 'snapshot/blk', type: 'blk' }, { name: 'snapshot/good.txt', data: 'fine' }],
      told: () => (process.getuid?.() === 0 ? ['hl'] : ['hl', 'chr', 'blk']),
      restored: { 'good.txt': 'fine' },
    },
  ];

  for (const c of cases) {
    it(`${c.name}: nothing written outside the target; the user is told what was skipped`, async () => {
      await runCase(SUITE, c.name, undefined, async () => {
        const b = makeBox();
        await forgeFullSet(b.vault, T_FULL, c.full(b));
        if (c.inc) await forgeIncSet(b.vault, c.inc(b));
        const before = listing(b.box);
        const r = await offsite(['--archive-dir', tempDir('offsite-hostile-cache-'), 'restore', '--key', RSA_SEC, `file://${b.vault}`, b.target]);
        assertNothingOutside(b, before);
        assert.equal(r.code, 1, `refusals make the exit code 1: ${r.stderr}`);
        const line = errorLine(r.stderr);
        assert.match(line, c.error ?? /not restored/);
        for (const t of c.told(b)) assert.ok(r.stderr.includes(t), `told about ${t}:\n${r.stderr}`);
        for (const [f, content] of Object.entries(c.restored ?? {})) assert.equal(fs.readFileSync(path.join(b.target, f), 'utf8'), content);
      });
    });
  }

  it('lying sizes (a member claiming 1 TB, a multivol chunk claiming 8 GiB): a clear error, nothing written outside', async () => {
    for (const [label, members] of [
      ['1 TB member', [root, { name: 'snapshot/huge.bin', data: 'short', size: 1e12 }]],
      ['8 GiB multivol chunk', [root, { name: 'multivol_snapshot/big.bin/1', data: 'short', size: 8 * 2 ** 30 }]],
    ] as const) {
      await runCase(SUITE, label, undefined, async () => {
        const b = makeBox();
        await forgeFullSet(b.vault, T_FULL, [...members]);
        const before = listing(b.box);
        const r = await offsite(['--archive-dir', tempDir('offsite-hostile-cache-'), 'restore', '--key', RSA_SEC, `file://${b.vault}`, b.target]);
        assertNothingOutside(b, before);
        assert.equal(r.code, 1);
        assert.match(errorLine(r.stderr), /truncat|end of data|integrity|short/i);
        const left = fs.existsSync(b.target) ? listing(b.target) : [];
        assert.ok(!left.some((p) => /huge|big/.test(p) && !p.startsWith('.offsite-restore-')), `no half-written file under its name: ${left.join(' ')}`);
        assert.deepEqual(left.filter((p) => p.includes('.offsite-restore-')), [], 'no temporary file left in the target');
      });
    }
  });

  it('a name longer than the file system allows, a path deeper than the system allows: left out with a warning, the rest restored', async () => {
    await runCase(SUITE, 'over-long name and path', undefined, async () => {
      const b = makeBox();
      const deep = Array.from({ length: 24 }, () => 'd'.repeat(200));
      await forgeFullSet(b.vault, T_FULL, [
        root,
        { name: `snapshot/${'n'.repeat(300)}`, data: 'x' },
        ...deep.map((_, k) => ({ name: `snapshot/${deep.slice(0, k + 1).join('/')}/`, type: 'dir' as const })),
        { name: `snapshot/${deep.join('/')}/f`, data: 'x' },
        { name: 'snapshot/ok.txt', data: 'fine' },
      ]);
      const before = listing(b.box);
      const r = await offsite(['--archive-dir', tempDir('offsite-hostile-cache-'), 'restore', '--key', RSA_SEC, `file://${b.vault}`, b.target]);
      assertNothingOutside(b, before);
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /internal error|ENAMETOOLONG/);
      assert.match(r.stderr, /Warning: Not restoring n{300}: a name in its path is longer than the 255 bytes this file system allows/);
      assert.match(r.stderr, /Warning: Not restoring (d{200}\/){24}f: its path in the target is longer than this system allows/);
      const line = errorLine(r.stderr);
      assert.match(line, /archive member\(s\) were not restored: .*Everything else was restored; some could not be made on this system \(see the warnings\)$/);
      assert.doesNotMatch(line, /tampered/);
      assert.equal(fs.readFileSync(path.join(b.target, 'ok.txt'), 'utf8'), 'fine');
    });
  });

  describe('forged manifests (encrypted to the public key, over a real set)', () => {
    /** A real one-file set whose manifest is then replaced. */
    async function setWithManifest(text: Buffer | AsyncIterable<Buffer>, level?: number): Promise<Box> {
      const b = makeBox();
      await forgeFullSet(b.vault, T_FULL, [root, { name: 'snapshot/good.txt', data: 'fine' }]);
      await forgeManifest(b.vault, T_FULL, text, { level });
      return b;
    }
    const manifest = 'duplicity-full.20231114T221320Z.manifest.gpg';

    for (const [label, text, told] of [
      ['listing no volume', Buffer.from('Hostname vm\nLocaldir src\nFilelist 0\n'), /lists no volume, though the remote holds 1 volume/],
      ['of random bytes', Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 251)), /is not a manifest/],
    ] as const) {
      it(`a manifest ${label}: restore and verify fail naming it (they never succeed having restored nothing)`, async () => {
        await runCase(SUITE, `manifest ${label}`, undefined, async () => {
          const b = await setWithManifest(text);
          const r = await offsite(['--archive-dir', tempDir('offsite-hostile-cache-'), 'restore', '--key', RSA_SEC, `file://${b.vault}`, b.target]);
          assert.equal(r.code, 1, r.stderr);
          const line = errorLine(r.stderr);
          assert.ok(line.includes(manifest), line);
          assert.match(line, told);
          fs.mkdirSync(path.join(b.box, 'src'));
          const v = await offsite(['--archive-dir', tempDir('offsite-hostile-cache-'), 'verify', '--key', RSA_SEC, `file://${b.vault}`, path.join(b.box, 'src')]);
          assert.equal(v.code, 1, v.stderr);
          const vline = errorLine(v.stderr);
          assert.ok(vline.includes(manifest), vline);
          assert.doesNotMatch(vline, /signature files/);
        });
      });
    }

    it('a manifest that inflates past 128 MiB: a clear error naming it, in bounded memory', async () => {
      await runCase(SUITE, 'manifest bomb', undefined, async () => {
        const head = Buffer.from(`Volume 1:\n    StartingPath   .  \n    EndingPath     zzz  \n    Hash SHA1 ${'0'.repeat(40)}\nFilelist 0\n`);
        const spaces = Buffer.alloc(1 << 20, 0x20);
        const b = await setWithManifest(
          (async function* () {
            yield head;
            for (let i = 0; i < 200; i++) yield spaces;
          })(),
          9,
        );
        assert.ok(fs.statSync(path.join(b.vault, manifest)).size < 4 << 20, 'a small file on the remote');
        const r = await run('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, OFFSITE, '--archive-dir', tempDir('offsite-hostile-cache-'), 'restore', '--key', RSA_SEC, `file://${b.vault}`, b.target]);
        const rss = Number(/maxrss=(\d+)/.exec(r.stderr)?.[1]);
        const stderr = r.stderr.replace(/^(Command exited.*|maxrss=.*)$/gm, '');
        assert.equal(r.code, 1, r.stderr);
        const line = errorLine(stderr);
        assert.ok(line.includes(manifest), line);
        assert.match(line, /more than any manifest holds: the limit is 128 MiB/);
        assert.ok(rss > 0 && rss < 320 * 1024, `peak RSS ${rss} KiB`);
        assert.ok(!fs.existsSync(b.target), 'nothing restored');
      });
    });
  });

  it(`property: ${PROPERTY_RUNS} random mixes of hostile members never write outside the target, and fail only with typed errors`, async () => {
    const component = fc.constantFrom('..', '.', '', 'a', 'b', 'l', 'd', 'x\ny', 'ü', 'n'.repeat(200));
    const relPath = fc.array(component, { minLength: 1, maxLength: 4 }).map((cs) => cs.join('/'));
    const member = fc.record({
      prefix: fc.constantFrom('snapshot/', 'diff/', 'deleted/', 'multivol_snapshot/', '', '/', 'snapshot//'),
      path: relPath,
      suffix: fc.constantFrom('', '/', '/1', '/2'),
      type: fc.constantFrom('file', 'dir', 'symlink', 'hardlink', 'chr', 'blk', 'fifo'),
      link: fc.constantFrom('OUTSIDE', '../outside', '/', 'ABS', 'a', '../../..'),
      data: fc.uint8Array({ maxLength: 700 }),
      lie: fc.option(fc.integer({ min: 0, max: 5000 }), { nil: undefined }),
      mode: fc.constantFrom(0o644, 0o755, 0o000, 0o4755, 0o1777),
    });
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(member, { minLength: 1, maxLength: 8 }), fc.option(fc.array(member, { minLength: 1, maxLength: 5 }), { nil: undefined }), async (fullMembers, incMembers) => {
        runs++;
        return runCase(SUITE, `property run ${runs}`, seed, async () => {
          const b = makeBox();
          const forged = (ms: typeof fullMembers): ForgedMember[] => [
            root,
            ...ms.map((m) => ({
              name: `${m.prefix}${m.path}${m.suffix}`,
              type: m.type as ForgedMember['type'],
              linkname: m.link === 'OUTSIDE' ? b.outside : m.link === 'ABS' ? b.abs : m.link,
              data: m.type === 'file' ? Buffer.from(m.data) : undefined,
              size: m.lie,
              mode: m.mode,
            })),
          ];
          await forgeFullSet(b.vault, T_FULL, forged(fullMembers));
          if (incMembers) await forgeIncSet(b.vault, forged(incMembers));
          const before = listing(b.box);
          const log = new MemoryLogger();
          try {
            const r = await restore({ backend: new FileBackend(b.vault), archive: ArchiveDir.open(path.join(b.box, 'cache')), crypto: await rsaCrypto(), log, target: b.target });
            const told = log.lines.filter((l) => /^warn: (Skipping|Not restoring)/.test(l));
            assert.ok(told.length >= r.refusals.length, `told about every refusal: ${JSON.stringify(r.refusals)} / ${JSON.stringify(told)}`);
          } catch (e) {
            if (!(e instanceof OffsiteError) && !(typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((e as NodeJS.ErrnoException).code!))) throw e;
          }
          const around = listing(b.box).filter((p) => !p.startsWith('cache'));
          const expected = before.filter((p) => !p.startsWith('cache'));
          assert.deepEqual(around.filter((p) => p !== 'target' && !p.startsWith('target/')), expected.filter((p) => p !== 'target' && !p.startsWith('target/')));
          assert.deepEqual(fs.readdirSync(b.outside), []);
          assert.ok(!fs.existsSync(b.abs));
          fs.rmSync(b.box, { recursive: true, force: true });
          return true;
        });
      }),
      { numRuns: PROPERTY_RUNS, seed },
    );
  });
});
