// Runs the real tools the scanner must agree with: duplicity (what it backs up, in which order) and
// git (what it ignores). Private HOME/GNUPGHOME/git config so nothing touches the user's own.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PathIndex } from '../../../src/engine/types';
import { tempDir } from '../../helpers/tmp';

/** What one member header of a duplicity volume says. */
export interface DuplicityMember {
  readonly index: PathIndex;
  readonly type: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  readonly mtime: number;
  readonly linkname: Buffer;
  readonly devmajor: number;
  readonly devminor: number;
}

/**
 * Makes a real `duplicity full --no-encryption --no-compression` backup of `src` with the given
 * selection arguments and returns the members of its volumes, in volume order.
 */
export function duplicityBackup(src: string, selectionArgs: readonly string[]): DuplicityMember[] {
  const work = tempDir('offsite-dup-');
  const home = path.join(work, 'home');
  fs.mkdirSync(home, { mode: 0o700 });
  const target = path.join(work, 'target');
  const r = spawnSync(
    'duplicity',
    [
      'full',
      '--no-encryption',
      '--no-compression',
      '--archive-dir',
      path.join(work, 'archive'),
      '--name',
      'test',
      '--volsize',
      '1000',
      ...selectionArgs,
      src,
      `file://${target}`,
    ],
    { env: { ...process.env, HOME: home, GNUPGHOME: home, LANG: 'C.UTF-8' }, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`duplicity failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  const volumes = fs
    .readdirSync(target)
    .filter((n) => n.endsWith('.difftar'))
    .sort((a, b) => volNumber(a) - volNumber(b));
  const out: DuplicityMember[] = [];
  for (const v of volumes) {
    for (const m of tarMembers(path.join(target, v))) {
      const name = Buffer.from(m.name, 'hex');
      const s = name.toString('latin1');
      if (!s.startsWith('snapshot/')) throw new Error(`unexpected member ${s}`);
      out.push({
        index: splitIndex(name.subarray('snapshot/'.length)),
        type: m.type,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        uname: m.uname,
        gname: m.gname,
        mtime: m.mtime,
        linkname: Buffer.from(m.linkname, 'hex'),
        devmajor: m.devmajor,
        devminor: m.devminor,
      });
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
  return out;
}

/** The paths of `duplicityBackup`, in volume order. */
export function duplicityBackupIndexes(src: string, selectionArgs: readonly string[]): PathIndex[] {
  return duplicityBackup(src, selectionArgs).map((m) => m.index);
}

function volNumber(name: string): number {
  return Number(/\.vol(\d+)\./.exec(name)?.[1] ?? 0);
}

interface RawMember {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

/** Member headers of a tar file, names as hex bytes (Python's tarfile reads pax hdrcharset=BINARY). */
function tarMembers(file: string): RawMember[] {
  const script = [
    'import sys, tarfile, json',
    "b = lambda s: s.encode('utf-8', 'surrogateescape').hex()",
    "for m in tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape'):",
    '    print(json.dumps(dict(name=b(m.name), type=m.type.decode(), mode=m.mode, uid=m.uid, gid=m.gid,',
    '        uname=m.uname, gname=m.gname, mtime=m.mtime, linkname=b(m.linkname),',
    '        devmajor=m.devmajor, devminor=m.devminor)))',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 tar listing failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as RawMember);
}

function splitIndex(rel: Buffer): PathIndex {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= rel.length; i++) {
    if (i === rel.length || rel[i] === 0x2f) {
      const c = rel.subarray(start, i);
      if (c.length > 0 && !(c.length === 1 && c[0] === 0x2e)) parts.push(Buffer.from(c));
      start = i + 1;
    }
  }
  return parts;
}

const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.invalid',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.invalid',
};

let gitHome: string | undefined;

export function git(cwd: string, args: readonly string[]): Buffer {
  gitHome ??= tempDir('offsite-git-home-');
  const home = gitHome;
  const r = spawnSync('git', args, {
    cwd,
    env: { ...process.env, ...GIT_ENV, HOME: home, XDG_CONFIG_HOME: home },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** Untracked files git does not ignore in the repository at `repo` ('/'-joined paths, latin1). */
export function gitUntrackedNotIgnored(repo: string): string[] {
  return git(repo, ['ls-files', '--others', '--exclude-standard', '-z'])
    .toString('latin1')
    .split('\0')
    .filter((s) => s !== '')
    .sort();
}
