// Where each folder's backups go, how key specs resolve, and the command line for cron (checked by a
// real shell, and by running it: it must write the same chain the extension writes).
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  DEFAULT_SETTINGS,
  cronCommand,
  crontabLine,
  offsiteForCron,
  offsiteOnPath,
  cronUrl,
  folderRemoteUrl,
  passphraseIdFor,
  rawSettings,
  resolveFolderConfig,
  resolveKeySpec,
  settingProblems,
  shellQuote,
  sshTargetOf,
  workspaceRelative,
  type RawSettings,
} from '../../../src/extension/folderConfig';
import { OFFSITE } from '../../helpers/cli';
import { RSA_PUB } from '../../helpers/gpg';
import { tempDir } from '../../helpers/tmp';

const raw = (s: Partial<RawSettings>): RawSettings => ({ ...DEFAULT_SETTINGS, ...s });

describe('extension: folder configuration', () => {
  it('each folder backs up to <offsite.remote>/<folder name>', () => {
    assert.equal(folderRemoteUrl('file:///mnt/backup', 'proj'), 'file:///mnt/backup/proj');
    assert.equal(folderRemoteUrl('file:///mnt/backup/', 'proj'), 'file:///mnt/backup/proj');
    assert.equal(folderRemoteUrl('file:///', 'proj'), 'file:///proj');
    assert.equal(folderRemoteUrl('sftp://me@nas/backups', 'my project'), 'sftp://me@nas/backups/my%20project');
    // sftp://host//abs: the double slash means an absolute path and must survive.
    assert.equal(folderRemoteUrl('sftp://nas//srv/backup/', 'p'), 'sftp://nas//srv/backup/p');
    assert.equal(folderRemoteUrl('s3://bucket/prefix?region=eu-west-1', 'p'), 's3://bucket/prefix/p?region=eu-west-1');
    assert.equal(folderRemoteUrl('  ', 'p'), '');
    assert.equal(folderRemoteUrl('file:///b', 'a/b#c'), 'file:///b/a%2Fb%23c');
  });

  it('a folder URL is what the file:// backend opens', () => {
    const url = folderRemoteUrl(`file://${tempDir()}`, 'with space');
    assert.match(new URL(url).pathname, /\/with%20space$/);
    assert.match(decodeURIComponent(new URL(url).pathname), /\/with space$/);
  });

  it('key files resolve against the folder; key ids, fingerprints and emails stay as they are', () => {
    assert.equal(resolveKeySpec('keys/pub.asc', '/ws'), '/ws/keys/pub.asc');
    assert.equal(resolveKeySpec('pub.asc', '/ws'), '/ws/pub.asc');
    assert.equal(resolveKeySpec('${workspaceFolder}/k.asc', '/ws'), '/ws/k.asc');
    assert.equal(resolveKeySpec('~/k.asc', '/ws', '/home/me'), '/home/me/k.asc');
    assert.equal(resolveKeySpec('/abs/k.gpg', '/ws'), '/abs/k.gpg');
    assert.equal(resolveKeySpec('me@example.com', '/ws'), 'me@example.com');
    assert.equal(resolveKeySpec('E58B2D7FA184113F', '/ws'), 'E58B2D7FA184113F');
  });

  it('configured means a remote and at least one encryption key', () => {
    const folder = { name: 'proj', fsPath: '/ws/proj' };
    assert.equal(resolveFolderConfig(raw({}), folder).configured, false);
    assert.equal(resolveFolderConfig(raw({ remote: 'file:///b' }), folder).configured, false);
    assert.equal(resolveFolderConfig(raw({ encryptKeys: ['k.asc'] }), folder).configured, false);
    const c = resolveFolderConfig(raw({ remote: 'file:///b', encryptKeys: [' k.asc ', ''], exclude: ['node_modules', ' '], keepFull: 2.7, volumeSize: 0, fullIfOlderThan: ' 30D ', sshKey: '~/.ssh/id', restoreKey: 'sec.asc' }), folder, '/home/me');
    assert.equal(c.configured, true);
    assert.equal(c.url, 'file:///b/proj');
    assert.deepEqual(c.keys.encryptKeys, ['/ws/proj/k.asc']);
    assert.equal(c.keys.restoreKey, '/ws/proj/sec.asc');
    assert.deepEqual(c.selection, { excludes: ['node_modules'], gitignore: true });
    assert.equal(c.keepFull, 2);
    assert.equal(c.volumeSizeMB, DEFAULT_SETTINGS.volumeSize);
    assert.equal(c.fullIfOlderThan, '30D');
    assert.equal(c.remote.sshKey, '/home/me/.ssh/id');
  });

  it('values Offsite cannot use are named with the setting, the value and what it takes; the defaults and good values are not', () => {
    const now = 1_800_000_000;
    const problems = (v: Parameters<typeof settingProblems>[0]) => settingProblems(v, now).map((p) => `${p.message}${p.blocksBackup ? ' [blocks backup]' : ''}`);
    assert.deepEqual(problems({ ...DEFAULT_SETTINGS }), [], 'the defaults');
    assert.deepEqual(problems({ remote: 'file:///mnt/b', schedule: 30, staleAfter: 0, volumeSize: 200, keepFull: 2, fullIfOlderThan: '30D', notifications: 'off' }), []);
    for (const good of ['2W', '6M', '1Y', '1h30m', ' 30D ', '2024-01-31', '']) assert.deepEqual(problems({ fullIfOlderThan: good }), [], good);
    assert.deepEqual(problems({ fullIfOlderThan: '30 days' }), ['offsite.fullIfOlderThan is "30 days": it must be an age as duplicity writes it, e.g. 30D (days), 2W (weeks), 6M (months) or 1Y, or empty [blocks backup]']);
    assert.equal(problems({ fullIfOlderThan: '30d' }).length, 1, "duplicity's units: D is days, d is nothing");
    assert.equal(problems({ fullIfOlderThan: '2099-01-01' }).length, 1, 'a time to come is no age');
    assert.deepEqual(problems({ volumeSize: -5 }), ['offsite.volumeSize is -5: it must be the size of a volume in MB, from 1 to 4096 [blocks backup]']);
    assert.equal(problems({ volumeSize: 100_000 }).length, 1);
    assert.equal(problems({ volumeSize: '32' }).length, 1, 'a string is no number');
    assert.deepEqual(problems({ schedule: '60' }), ['offsite.schedule is "60": it must be a number of minutes between automatic backups (0 = off); until it is, none run']);
    assert.equal(problems({ schedule: -5 }).length, 1);
    assert.equal(problems({ keepFull: 1.5 }).length, 1, 'a whole number of chains');
    assert.equal(problems({ keepFull: -1 }).length, 1);
    assert.equal(problems({ staleAfter: -1 }).length, 1);
    assert.equal(problems({ drillEvery: 'monthly' }).length, 1);
    assert.equal(problems({ notifications: 'none' }).length, 1);
    assert.deepEqual(problems({ remote: '/mnt/backup' }), ['offsite.remote is "/mnt/backup": it must be a URL such as file:///mnt/backup, sftp://user@host/backups, s3://bucket/prefix or rclone://remote:path [blocks backup]']);
  });

  it('the settings used are the values read, with the default where a value is not set or of the wrong type', () => {
    assert.deepEqual(rawSettings({}), DEFAULT_SETTINGS);
    const good = { remote: 'file:///b', encryptKeys: ['a.asc'], schedule: 30, useGitignore: false, notifications: 'off' as const, exclude: ['*.log'] };
    assert.deepEqual(rawSettings(good), { ...DEFAULT_SETTINGS, ...good });
    const bad = rawSettings({ remote: 5, encryptKeys: 'a.asc', schedule: '60', volumeSize: Number.NaN, useGitignore: 'yes', notifications: 'none', exclude: ['*.log', 3] });
    assert.deepEqual(bad, { ...DEFAULT_SETTINGS, exclude: ['*.log'] });
  });

  it('the passphrase is remembered per private key', () => {
    const folder = { name: 'p', fsPath: '/ws' };
    const c = resolveFolderConfig(raw({ remote: 'file:///b', encryptKeys: ['pub.asc'], restoreKey: '/k/sec.asc', signKey: 'SIGNER' }), folder);
    assert.equal(passphraseIdFor(c, 'backup'), 'SIGNER', 'a backup signs');
    assert.equal(passphraseIdFor(c, 'readFile'), '/k/sec.asc', 'a read decrypts');
    assert.equal(passphraseIdFor(resolveFolderConfig(raw({ encryptKeys: ['both.asc'] }), folder), 'restore'), '/ws/both.asc');
  });

  it('the SSH target of a URL (the key of its remembered password) has no password', () => {
    // The redaction of URLs for the UI is the engine's redactUrl (test/unit/backend/backendUtil.test.ts).
    assert.equal(sshTargetOf('sftp://me:pw@nas.local:2222/b'), 'me@nas.local:2222');
    assert.equal(sshTargetOf('file:///x'), undefined);
  });

  it('a file\'s path in its folder: names starting with ".." are inside, the folder itself and paths outside are not', () => {
    assert.equal(workspaceRelative('/ws', '/ws/src/a b#c.ts'), 'src/a b#c.ts');
    assert.equal(workspaceRelative('/ws', '/ws/..data'), '..data', 'a Kubernetes-style ..data file');
    assert.equal(workspaceRelative('/ws', '/ws/...'), '...');
    assert.equal(workspaceRelative('/ws', '/ws/..a/..b'), '..a/..b');
    assert.equal(workspaceRelative('/ws', '/ws'), undefined);
    assert.equal(workspaceRelative('/ws', '/'), undefined);
    assert.equal(workspaceRelative('/ws', '/other/x'), undefined);
    assert.equal(workspaceRelative('/ws', '/ws-other/x'), undefined);
  });

  it('quotes words for a POSIX shell', () => {
    for (const w of ['plain', 'with space', "it's", '$HOME', 'a"b', '*', 'back\\slash', '']) {
      const out = execFileSync('sh', ['-c', `printf '%s' ${shellQuote(w)}`], { encoding: 'utf8' });
      assert.equal(out, w);
    }
  });

  it('the cron command has the same folder, remote, keys, selection and policy', () => {
    const c = resolveFolderConfig(
      raw({ remote: 'sftp://me@nas/b', encryptKeys: ['/k/a.asc', 'me@example.com'], signKey: '/k/s.asc', exclude: ['**/*.log', 'tmp dir'], useGitignore: true, volumeSize: 64, fullIfOlderThan: '30D', keepFull: 2, sshKey: '/k/id', schedule: 30 }),
      { name: 'my proj', fsPath: '/home/me/my proj' },
    );
    const cmd = cronCommand(c);
    assert.equal(
      cmd,
      "nice -n 10 offsite --ssh-key /k/id backup --encrypt-key /k/a.asc --encrypt-key me@example.com --sign-key /k/s.asc --volsize 64 --full-if-older-than 30D --exclude '**/*.log' --exclude 'tmp dir' --gitignore '/home/me/my proj' sftp://me@nas/b/my%20proj >/dev/null" +
        ' && nice -n 10 offsite --ssh-key /k/id remove-all-but-n-full 2 --force sftp://me@nas/b/my%20proj >/dev/null',
    );
    assert.equal(crontabLine(c), `*/30 * * * * ${cmd.replace(/%/g, '\\%')}`, 'cron reads \\% as %, a lone % as the end of the command');
    assert.match(crontabLine({ ...c, settings: { ...c.settings, schedule: 120 } }), /^0 \*\/2 \* \* \* nice -n 10 offsite /);
    assert.match(crontabLine({ ...c, settings: { ...c.settings, schedule: 1440 } }), /^0 3 \* \* \* nice -n 10 offsite /);
    assert.equal(crontabLine({ ...c, settings: { ...c.settings, schedule: 0 } }), cmd.replace(/%/g, '\\%'));
  });

  it('the cron command carries no password or secret of offsite.remote', () => {
    const folder = { name: 'proj', fsPath: '/home/me/proj' };
    const c = resolveFolderConfig(raw({ remote: 'sftp://me:hunter2@nas:2222/b', encryptKeys: ['/k/a.asc'], keepFull: 2, schedule: 60 }), folder);
    const line = crontabLine(c);
    assert.ok(!line.includes('hunter2'), line);
    assert.equal(line, '0 */1 * * * nice -n 10 offsite backup --encrypt-key /k/a.asc --gitignore /home/me/proj sftp://me@nas:2222/b/proj >/dev/null && nice -n 10 offsite remove-all-but-n-full 2 --force sftp://me@nas:2222/b/proj >/dev/null');
    assert.deepEqual(cronUrl(c.url), { url: 'sftp://me@nas:2222/b/proj', password: true, secrets: false });
    // Secrets the CLI cannot take from elsewhere are shown as *** (the user gives them another way).
    const rclone = resolveFolderConfig(raw({ remote: 'rclone://:s3,access_key_id=AKIA1,secret_access_key=wJalr/XY:bucket', encryptKeys: ['/k/a.asc'] }), folder);
    assert.ok(!cronCommand(rclone).includes('wJalr'), cronCommand(rclone));
    assert.deepEqual(cronUrl(rclone.url), { url: 'rclone://:s3,access_key_id=***,secret_access_key=***:bucket/proj', password: false, secrets: true });
    assert.deepEqual(cronUrl('sftp://me@nas/b/proj'), { url: 'sftp://me@nas/b/proj', password: false, secrets: false });
  });

  it('the crontab line, as cron runs it, backs up a folder whose name has a space, a % and quotes, and says nothing when all is well', function () {
    this.timeout(60_000);
    const root = tempDir();
    const name = `it's "50%" off`;
    const src = path.join(root, name);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'a\n');
    const c = resolveFolderConfig(raw({ remote: `file://${path.join(root, 'remote')}`, encryptKeys: [RSA_PUB], keepFull: 2, schedule: 60 }), { name, fsPath: src });
    const entry = crontabLine(c);
    assert.match(entry, /^0 \*\/1 \* \* \* /);
    const { command, input } = asCronReads(entry.replace(/^(\S+ ){5}/, ''));
    const bin = path.join(root, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(OFFSITE, path.join(bin, 'offsite'));
    const home = path.join(root, 'home');
    fs.mkdirSync(home);
    // cron's environment: no TTY, no agent, a minimal PATH (here with `offsite` and node on it).
    const env = { HOME: home, LOGNAME: 'me', SHELL: '/bin/sh', PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin` };
    for (const run of ['full', 'incremental and retention']) {
      const r = spawnSync('/bin/sh', ['-c', command], { env, input, encoding: 'utf8' });
      // Cron mails any output: a successful run makes none.
      assert.deepEqual({ status: r.status, stdout: r.stdout, stderr: r.stderr }, { status: 0, stdout: '', stderr: '' }, `${run}: ${command}`);
    }
    const files = fs.readdirSync(path.join(root, 'remote', name));
    assert.ok(files.some((f) => /^duplicity-full\..*\.manifest\.gpg$/.test(f)), files.join(' '));
    assert.ok(files.some((f) => /^duplicity-inc\..*\.manifest\.gpg$/.test(f)), files.join(' '));
  });

  it("the crontab line runs the offsite on this PATH by its full path when cron's PATH (/usr/bin:/bin) lacks it", () => {
    const root = tempDir();
    const npmBin = path.join(root, 'nvm node', 'bin');
    fs.mkdirSync(npmBin, { recursive: true });
    fs.writeFileSync(path.join(root, 'offsite'), 'not executable\n', { mode: 0o644 });
    fs.symlinkSync(OFFSITE, path.join(npmBin, 'offsite'));
    assert.equal(offsiteForCron(offsiteOnPath(`relative:${root}:${npmBin}:/usr/bin`)), path.join(npmBin, 'offsite'));
    assert.equal(offsiteForCron(offsiteOnPath(`${root}:/nonexistent`)), 'offsite', 'none here: the name, for the PATH the user gives cron');
    assert.equal(offsiteForCron('/usr/bin/offsite'), 'offsite', "in cron's PATH: the name");
    assert.equal(offsiteForCron('/bin/offsite'), 'offsite');
    assert.equal(offsiteOnPath(`relative:${root}:${npmBin}:/usr/bin`), path.join(npmBin, 'offsite'));
    assert.equal(offsiteOnPath(`${root}:/nonexistent`), undefined, 'not installed: Copy Command for Cron says so');
    const c = resolveFolderConfig(raw({ remote: 'file:///b', encryptKeys: ['/k/a.asc'], keepFull: 1, schedule: 60 }), { name: 'p', fsPath: '/w/p' });
    assert.equal(
      crontabLine(c, offsiteForCron(offsiteOnPath(npmBin))),
      `0 */1 * * * nice -n 10 '${npmBin}/offsite' backup --encrypt-key /k/a.asc --gitignore /w/p file:///b/p >/dev/null && nice -n 10 '${npmBin}/offsite' remove-all-but-n-full 1 --force file:///b/p >/dev/null`,
    );
  });

  it('the cron command, run by a shell, backs up the folder to the folder\'s remote', function () {
    this.timeout(60_000);
    const root = tempDir();
    const src = path.join(root, 'the project');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'a\n');
    fs.writeFileSync(path.join(src, 'skip.log'), 'no\n');
    const c = resolveFolderConfig(raw({ remote: `file://${path.join(root, 'remote')}`, encryptKeys: [RSA_PUB], exclude: ['*.log'] }), { name: 'the project', fsPath: src });
    // `offsite` as the README installs it: on the PATH.
    const bin = path.join(root, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(OFFSITE, path.join(bin, 'offsite'));
    execFileSync('sh', ['-c', cronCommand(c)], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, XDG_CACHE_HOME: path.join(root, 'cache') }, stdio: 'pipe' });
    const files = fs.readdirSync(path.join(root, 'remote', 'the project'));
    assert.ok(files.some((f) => /^duplicity-full\..*\.manifest\.gpg$/.test(f)), files.join(' '));
  });
});

/**
 * What cron (cronie, Vixie cron) makes of an entry's command: `\%` is `%`, and the first other `%`
 * ends the command, the rest (each `%` a newline) being its input.
 */
function asCronReads(cmd: string): { command: string; input: string } {
  let command = '';
  let escaped = false;
  for (let i = 0; i < cmd.length; i++) {
    const ch = cmd[i];
    if (escaped) {
      if (ch === '%') command = command.slice(0, -1);
      command += ch;
      escaped = false;
      continue;
    }
    if (ch === '%') return { command, input: cmd.slice(i + 1).replace(/%/g, '\n') };
    escaped = ch === '\\';
    command += ch;
  }
  return { command, input: '' };
}
