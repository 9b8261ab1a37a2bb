// The help a user reads before anything else: every option the README's command table gives a
// command is in that command's --help (the global ones included), and the help says the time forms,
// the environment variables that carry secrets, and the exit statuses.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { offsite, REPO } from '../helpers/cli';

/** The README's command table: `| `backup [--full] … URL` | what it does |` → ['backup', ['--full', …]]. */
function readmeCommands(): [string, string[]][] {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8').replaceAll('\\|', '/'); // `--time T \| --history REL`
  const rows = [...readme.matchAll(/^\| `([a-z-]+)((?: [^`|]*)?)`(?:, `([a-z-]+)([^`|]*)`)? \|/gm)];
  const out: [string, string[]][] = [];
  for (const r of rows) {
    out.push([r[1], r[2].match(/--[a-z0-9-]+/g) ?? []]);
    if (r[3]) out.push([r[3], r[4].match(/--[a-z0-9-]+/g) ?? []]);
  }
  return out;
}

describe('offsite --help', function () {
  this.timeout(60_000);

  it('the README table names every command, and each command\'s --help has the options the table gives it', async () => {
    const commands = readmeCommands();
    assert.deepEqual([...new Set(commands.map(([c]) => c))].sort(), ['backup', 'cleanup', 'keygen', 'list', 'remove-all-but-n-full', 'remove-older-than', 'restore', 'status', 'verify']);
    for (const [command, options] of commands) {
      const r = await offsite([command, '--help']);
      assert.equal(r.code, 0, r.stderr);
      for (const o of options) assert.match(r.stdout, new RegExp(`^ +${o}\\b`, 'm'), `${command} --help lacks ${o}`);
    }
  });

  it('a command\'s help shows the global options and the time forms', async () => {
    for (const command of ['backup', 'restore', 'verify', 'list', 'remove-older-than']) {
      const r = await offsite([command, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^ +--archive-dir <dir>/m, command);
      assert.match(r.stdout, /^ +--ssh-key <file>/m, command);
      assert.match(r.stdout, /^Times: now, an interval before now \(3D, 2W, 1h30m/m, command);
    }
  });

  it('offsite --help says the environment variables and the exit statuses', async () => {
    const r = await offsite(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const v of ['OFFSITE_PASSPHRASE', 'OFFSITE_SSH_PASSWORD', 'OFFSITE_SSH_PASSPHRASE', 'AWS_ACCESS_KEY_ID', 'RCLONE_CONFIG']) assert.match(r.stdout, new RegExp(`^ +${v}\\b`, 'm'), v);
    assert.match(r.stdout, /^Exit status: 0 success; 1 failure[^]*; 3 a backup completed but some files could not be read/m);
  });

  it('a usage error is one line on stderr that says what is wrong and what to do, as every other error', async () => {
    const cases: [string[], RegExp][] = [
      [['backup', 'src'], /^offsite: missing required argument 'url'\. Run offsite backup --help for the usage\n$/],
      [['restore', '--forc', 'file:///x', 't'], /^offsite: unknown option '--forc' \(Did you mean --force\?\)\. Run offsite restore --help for the usage\n$/],
      [['bogus'], /^offsite: unknown command 'bogus'\. Run offsite --help for the usage\n$/],
      [['--archive-dir'], /^offsite: option '--archive-dir <dir>' argument missing\. Run offsite --help for the usage\n$/],
    ];
    for (const [args, expected] of cases) {
      const r = await offsite(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
      assert.match(r.stderr, expected);
    }
  });
});
