// sftp:// URLs, ~/.ssh/config resolution and known_hosts matching, without a server.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fingerprint, hashHostName, hostKeyName, KnownHosts, keyTypeOf, recordHostKey } from '../../../../src/engine/backend/sftp/knownHosts';
import { normalizeFingerprint } from '../../../../src/engine/backend/sftp/sftpConnection';
import { parseSftpUrl, resolveSshTarget, sftpDisplayUrl } from '../../../../src/engine/backend/sftp/sftpTarget';
import { OffsiteError } from '../../../../src/engine/errors';
import { tempDir } from '../../../helpers/tmp';

describe('sftp URLs', () => {
  it('reads relative and absolute paths as duplicity does', () => {
    assert.deepEqual(parseSftpUrl(new URL('sftp://bob@host.example/backups/ws')), {
      host: 'host.example',
      user: 'bob',
      password: undefined,
      port: undefined,
      path: 'backups/ws',
    });
    assert.equal(parseSftpUrl(new URL('sftp://host//srv/backups/')).path, '/srv/backups');
    assert.equal(parseSftpUrl(new URL('sftp://host/')).path, '.');
    assert.equal(parseSftpUrl(new URL('sftp://host')).path, '.');
    assert.equal(parseSftpUrl(new URL('sftp://host:2222/a%20b')).path, 'a b');
    assert.equal(parseSftpUrl(new URL('sftp://host:2222/a')).port, 2222);
    assert.equal(parseSftpUrl(new URL('sftp://[::1]:22/x')).host, '::1');
    const withPw = parseSftpUrl(new URL('sftp://bob:s%40cret@host/x'));
    assert.equal(withPw.password, 's@cret');
    assert.ok(!sftpDisplayUrl(withPw).includes('cret'));
  });

  it('shows URLs without secrets, keeping // for absolute paths', () => {
    for (const u of ['sftp://bob@host/rel/path', 'sftp://host:2222//abs/path', 'sftp://host/', 'sftp://[::1]:2200//x']) {
      assert.equal(sftpDisplayUrl(parseSftpUrl(new URL(u))), u);
    }
    assert.equal(sftpDisplayUrl(parseSftpUrl(new URL('sftp://bob:pw@host/x'))), 'sftp://bob@host/x');
  });

  it("reads duplicity's other names of its SSH remote (paramiko+sftp, pexpect+sftp, scp, …) as sftp://", () => {
    for (const scheme of ['paramiko+sftp', 'pexpect+sftp', 'scp', 'paramiko+scp', 'pexpect+scp']) {
      const u = parseSftpUrl(new URL(`${scheme}://bob@host:2222//srv/b`));
      assert.deepEqual([u.user, u.host, u.port, u.path], ['bob', 'host', 2222, '/srv/b'], scheme);
      assert.equal(sftpDisplayUrl(u), 'sftp://bob@host:2222//srv/b');
    }
  });

  it('refuses query strings and other schemes as usage errors', () => {
    assert.throws(() => parseSftpUrl(new URL('sftp://host/x?y=1')), (e) => OffsiteError.is(e, 'usage'));
    assert.throws(() => parseSftpUrl(new URL('ftp://host/x')), (e) => OffsiteError.is(e, 'usage'));
  });

  it('refuses a bad %-escape and port 0 as usage errors about the URL (not an internal error, not the ssh config)', () => {
    for (const [u, what] of [
      ['sftp://host/a%zzb', /%-escape/],
      ['sftp://b%zzob@host/x', /%-escape/],
      ['sftp://bob:pw%zz@host/x', /%-escape/],
      ['sftp://host:0/x', /port 0/],
    ] as const) {
      assert.throws(
        () => parseSftpUrl(new URL(u)),
        (e) => OffsiteError.is(e, 'usage') && what.test(e.message) && !e.message.includes('pw'),
        u,
      );
    }
  });
});

describe('~/.ssh/config resolution', () => {
  const home = tempDir('offsite-cfg-');
  const cfg = path.join(home, 'config');
  const base = { home, localUser: 'me', configFile: cfg, systemConfigFile: path.join(home, 'no-system-config') };

  it('applies HostName, Port, User, IdentityFile (all of them, expanded) and the first value wins', () => {
    fs.writeFileSync(
      cfg,
      ['Host nas', '  HostName 10.0.0.5', '  Port 2200', '  User backup', '  IdentityFile ~/.ssh/nas_%r_%h', '  IdentityFile %d/second', '', 'Host *', '  User fallback', '  Port 22'].join('\n'),
    );
    const t = resolveSshTarget(parseSftpUrl(new URL('sftp://nas/x')), base);
    assert.deepEqual(t, {
      hostName: '10.0.0.5',
      port: 2200,
      user: 'backup',
      identityFiles: [`${home}/.ssh/nas_backup_10.0.0.5`, `${home}/second`],
      userKnownHostsFiles: undefined,
      identitiesOnly: false,
      hashKnownHosts: false,
    });
    const other = resolveSshTarget(parseSftpUrl(new URL('sftp://elsewhere/x')), base);
    assert.equal(other.user, 'fallback');
    assert.equal(other.hostName, 'elsewhere');
  });

  it('reads HostKeyAlias as written (the first value wins); none without it', () => {
    fs.writeFileSync(cfg, 'Host nas\n  HostName 10.0.0.5\n  HostKeyAlias nas.backup\n\nHost *\n  HostKeyAlias other\n');
    assert.equal(resolveSshTarget(parseSftpUrl(new URL('sftp://nas/x')), base).hostKeyAlias, 'nas.backup');
    fs.writeFileSync(cfg, 'Host nas\n  HostName 10.0.0.5\n');
    assert.equal(resolveSshTarget(parseSftpUrl(new URL('sftp://nas/x')), base).hostKeyAlias, undefined);
  });

  it('lets the URL win over the config', () => {
    fs.writeFileSync(cfg, 'Host nas\n  Port 2200\n  User backup\n');
    const t = resolveSshTarget(parseSftpUrl(new URL('sftp://alice@nas:2300/x')), base);
    assert.equal(t.user, 'alice');
    assert.equal(t.port, 2300);
  });

  it('defaults as OpenSSH does without a config file', () => {
    const t = resolveSshTarget(parseSftpUrl(new URL('sftp://host/x')), { ...base, configFile: path.join(home, 'missing') });
    assert.deepEqual([t.hostName, t.port, t.user, t.identityFiles], ['host', 22, 'me', []]);
  });

  it('reads UserKnownHostsFile and IdentitiesOnly, and does not run Match exec', () => {
    const marker = path.join(home, 'ran');
    fs.writeFileSync(cfg, `Match exec "touch ${marker}"\n  User viaexec\nHost h\n  UserKnownHostsFile ~/kh1 ~/kh2\n  IdentitiesOnly yes\n`);
    const t = resolveSshTarget(parseSftpUrl(new URL('sftp://h/x')), base);
    assert.deepEqual(t.userKnownHostsFiles, [`${home}/kh1`, `${home}/kh2`]);
    assert.equal(t.identitiesOnly, true);
    assert.equal(t.user, 'me');
    assert.ok(!fs.existsSync(marker), 'a Match exec command ran');
  });

  it('refuses a host the config reaches through ProxyJump or ProxyCommand, rather than connecting directly', () => {
    fs.writeFileSync(cfg, 'Host jumped\n  ProxyJump bastion.example\nHost piped\n  ProxyCommand ssh -W %h:%p bastion.example\nHost direct\n  ProxyJump none\n  ProxyCommand none\n');
    for (const [host, option] of [
      ['jumped', 'ProxyJump'],
      ['piped', 'ProxyCommand'],
    ]) {
      assert.throws(
        () => resolveSshTarget(parseSftpUrl(new URL(`sftp://${host}/x`)), base),
        (e) => OffsiteError.is(e, 'config') && e.message.includes(option) && e.message.includes(cfg) && /directly/.test(e.message),
        host,
      );
    }
    assert.equal(resolveSshTarget(parseSftpUrl(new URL('sftp://direct/x')), base).hostName, 'direct');
  });

  it('reads HashKnownHosts from the user config, else from the system-wide one, as OpenSSH does', () => {
    const system = path.join(home, 'ssh_config');
    fs.writeFileSync(system, 'Host *\n  HashKnownHosts yes\n');
    fs.writeFileSync(cfg, 'Host plain\n  HashKnownHosts no\n');
    const target = (host: string, systemConfigFile: string) => resolveSshTarget(parseSftpUrl(new URL(`sftp://${host}/x`)), { ...base, systemConfigFile });
    assert.equal(target('h', system).hashKnownHosts, true, 'from the system config');
    assert.equal(target('plain', system).hashKnownHosts, false, 'the user config wins');
    assert.equal(target('h', path.join(home, 'missing')).hashKnownHosts, false, 'OpenSSH default: no');
  });

  it('reports a bad Port as a config error', () => {
    fs.writeFileSync(cfg, 'Host h\n  Port nope\n');
    assert.throws(() => resolveSshTarget(parseSftpUrl(new URL('sftp://h/x')), base), (e) => OffsiteError.is(e, 'config'));
  });
});

describe('known_hosts', () => {
  const dir = tempDir('offsite-kh-');
  let key: { type: string; blob: Buffer };
  let otherKey: { type: string; blob: Buffer };

  before(() => {
    for (const n of ['k1', 'k2']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, n)]);
    const read = (n: string) => {
      const [type, b64] = fs.readFileSync(path.join(dir, `${n}.pub`), 'utf8').split(' ');
      return { type, blob: Buffer.from(b64, 'base64') };
    };
    key = read('k1');
    otherKey = read('k2');
  });

  function kh(lines: string[]): KnownHosts {
    const f = path.join(dir, `kh-${Math.random()}`);
    fs.writeFileSync(f, lines.join('\n') + '\n');
    return KnownHosts.load([f]);
  }
  const line = (host: string, k = key): string => `${host} ${k.type} ${k.blob.toString('base64')}`;

  it('computes the fingerprint ssh-keygen prints and reads the key type from the blob', () => {
    const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, 'k1.pub')]).toString().split(' ')[1];
    assert.equal(fingerprint(key.blob), printed);
    assert.equal(keyTypeOf(key.blob), 'ssh-ed25519');
    assert.equal(normalizeFingerprint(`${printed.slice(7)}=`), printed);
  });

  it('names hosts as OpenSSH does', () => {
    assert.equal(hostKeyName('h', 22), 'h');
    assert.equal(hostKeyName('h', 2222), '[h]:2222');
  });

  it('tells known, unknown, changed and revoked keys apart', () => {
    const k = kh(['# comment', '', line('a.example,10.0.0.1'), line('[b.example]:2222', otherKey), `@revoked * ${otherKey.type} ${otherKey.blob.toString('base64')}`]);
    assert.equal(k.check(hostKeyName('a.example', 22), key).kind, 'known');
    assert.equal(k.check(hostKeyName('10.0.0.1', 22), key).kind, 'known');
    assert.equal(k.check(hostKeyName('A.EXAMPLE', 22), key).kind, 'known', 'host names are case-insensitive');
    assert.equal(k.check(hostKeyName('a.example', 2222), key).kind, 'unknown', 'another port is another host');
    assert.equal(k.check(hostKeyName('b.example', 2222), key).kind, 'changed');
    assert.equal(k.check(hostKeyName('c.example', 22), otherKey).kind, 'revoked');
  });

  it('calls a host known only with another key type "changed", as OpenSSH does, unless no SSH library here can ask for that type', () => {
    const ecdsa = `ecdsa-sha2-nistp256 ${Buffer.from('stale ecdsa key').toString('base64')}`;
    const dss = `ssh-dss ${Buffer.from('old dss key').toString('base64')}`;
    const k = kh([`a.example ${ecdsa}`, `b.example ${dss}`]);
    const a = k.check(hostKeyName('a.example', 22), key);
    assert.equal(a.kind, 'changed');
    assert.equal(a.kind === 'changed' && a.line, 1);
    assert.deepEqual(k.check(hostKeyName('b.example', 22), key), { kind: 'unknown', knownTypes: ['ssh-dss'] });
  });

  it('matches hashed names and ignores @cert-authority lines', () => {
    const k = kh([line(hashHostName('[h.example]:2222')), `@cert-authority *.example ${otherKey.type} ${otherKey.blob.toString('base64')}`]);
    assert.equal(k.check(hostKeyName('h.example', 2222), key).kind, 'known');
    assert.equal(k.check(hostKeyName('h.example', 22), key).kind, 'unknown');
    assert.equal(k.check(hostKeyName('x.example', 22), otherKey).kind, 'unknown');
    assert.deepEqual(k.typesFor(hostKeyName('h.example', 2222)), ['ssh-ed25519']);
  });

  it('records a hashed name that OpenSSH then finds, when asked to hash (HashKnownHosts yes)', () => {
    const f = path.join(dir, 'hashed', 'known_hosts');
    recordHostKey(f, hostKeyName('127.0.0.1', 2222), key, { hash: true });
    const text = fs.readFileSync(f, 'utf8');
    assert.match(text, /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 AAAA/);
    assert.ok(!text.includes('127.0.0.1'), text);
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', f]).toString();
    assert.ok(found.includes(key.blob.toString('base64')));
    assert.equal(KnownHosts.load([f]).check(hostKeyName('127.0.0.1', 2222), key).kind, 'known');
  });

  it('reports a known_hosts file it cannot read as a config error naming the file', () => {
    assert.throws(() => KnownHosts.load([dir]), (e) => OffsiteError.is(e, 'config') && e.message.includes(`known_hosts file ${dir}`));
  });

  it('records a key that OpenSSH then finds (private file, folder created)', () => {
    const f = path.join(dir, 'new', '.ssh', 'known_hosts');
    recordHostKey(f, hostKeyName('127.0.0.1', 2222), key);
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(f)).mode & 0o777, 0o700);
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', f]).toString();
    assert.ok(found.includes(key.blob.toString('base64')));
    assert.equal(KnownHosts.load([f]).check(hostKeyName('127.0.0.1', 2222), key).kind, 'known');
  });
});
