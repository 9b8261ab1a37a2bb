// Authentication and host key checking against a real sshd: agent, key files (default, explicit,
// encrypted), ~/.ssh/config aliases, unknown / accepted / changed / hashed / revoked host keys.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackendError } from '../../../../src/engine/backend/backend';
import { openBackend } from '../../../../src/engine/backend/registry';
import type { SftpBackend } from '../../../../src/engine/backend/sftpBackend';
import { hashHostName } from '../../../../src/engine/backend/sftp/knownHosts';
import { rejectsWith } from '../../../helpers/errors';
import { makeUserKey, startAgent, startSshd, type Sshd } from '../../../helpers/sshd';
import { tempDir } from '../../../helpers/tmp';
import { bufferSource, getAll, listNames } from '../conformance';
import { closeAll, sftpSuite, startFixture, type SftpFixture } from './sftpFixture';

describe('sftp backend: authentication', function () {
  this.timeout(60_000);
  const suite = sftpSuite();

  function backend(options: Record<string, unknown>, prompt?: (q: string) => Promise<string | undefined>, url?: string): SftpBackend {
    const b = suite.fx.open(url, { options, prompt: prompt ? (q) => prompt(q) : undefined });
    suite.open.push(b);
    return b;
  }

  async function works(b: SftpBackend): Promise<void> {
    await b.put('probe', bufferSource(Buffer.from('ok')));
    assert.equal((await getAll(b, 'probe')).toString(), 'ok');
  }

  it('opens through the registry (sftp:// is registered)', async () => {
    const { url } = suite.fx.freshRemote();
    const b = (await openBackend(url, { options: suite.fx.options() })) as SftpBackend;
    suite.open.push(b);
    await works(b);
    assert.equal(b.displayUrl, url);
  });

  it("opens duplicity's pexpect+sftp:// and scp:// URLs of the same folder as sftp:// (the front ends' registry)", async () => {
    await import('../../../../src/engine/backend/all');
    const { url } = suite.fx.freshRemote();
    const b = (await openBackend(url, { options: suite.fx.options() })) as SftpBackend;
    suite.open.push(b);
    await works(b);
    for (const scheme of ['pexpect+sftp', 'paramiko+sftp', 'scp']) {
      const alias = (await openBackend(url.replace(/^sftp:/, `${scheme}:`), { options: suite.fx.options() })) as SftpBackend;
      suite.open.push(alias);
      assert.deepEqual(await listNames(alias), ['probe'], scheme);
    }
  });

  it('logs in with a key from ssh-agent (SSH_AUTH_SOCK), no key file', async () => {
    const agent = await startAgent();
    try {
      await agent.add(suite.fx.sshd.userKey.file);
      await works(backend({ sshKey: undefined, env: { SSH_AUTH_SOCK: agent.socket } }));
    } finally {
      await agent.stop();
    }
  });

  it('with IdentitiesOnly, signs with the agent\'s copy of the named IdentityFile (an encrypted key needs no passphrase then), and only with it, as OpenSSH does', async () => {
    const dir = tempDir('offsite-io-');
    const agent = await startAgent();
    try {
      // The authorized key, encrypted on disk; the agent holds it unlocked (ssh-add asked once).
      const enc = path.join(dir, 'id_enc');
      fs.copyFileSync(suite.fx.sshd.userKey.file, enc);
      fs.copyFileSync(`${suite.fx.sshd.userKey.file}.pub`, `${enc}.pub`);
      execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'agent only', '-f', enc]);
      await agent.add(suite.fx.sshd.userKey.file);
      const other = await makeUserKey(dir, 'id_other');
      const config = path.join(dir, 'config');
      const host = `  HostName 127.0.0.1\n  Port ${suite.fx.sshd.port}\n  User ${suite.fx.sshd.user}\n  IdentitiesOnly yes\n`;
      fs.writeFileSync(config, `Host enc\n${host}  IdentityFile ${enc}\n\nHost other\n${host}  IdentityFile ${other.file}\n`);
      const remote = (): string => suite.fx.freshRemote().dir;
      const options = { sshKey: undefined, sshConfig: config, env: { SSH_AUTH_SOCK: agent.socket } };
      await works(backend(options, undefined, `sftp://enc/${remote()}`));
      // Without its .pub file: the public key is read from the (encrypted) private key file.
      fs.rmSync(`${enc}.pub`, { force: true });
      await works(backend(options, undefined, `sftp://enc/${remote()}`));
      // The agent's key is not offered for a host whose IdentityFile is another key.
      await rejectsWith(backend(options, undefined, `sftp://other/${remote()}`).stat('x'), 'auth', /refused the login/);
    } finally {
      await agent.stop();
    }
  });

  it('falls back to the key file when SSH_AUTH_SOCK points nowhere', async () => {
    await works(backend({ env: { SSH_AUTH_SOCK: path.join(tempDir(), 'gone.sock') } }));
  });

  it('refuses with an auth error naming what it tried when nothing works', async () => {
    const other = await makeUserKey(tempDir(), 'id_other');
    const asked: string[] = [];
    const prompt = async (q: string): Promise<string> => {
      asked.push(q);
      return 'anything';
    };
    const e = await rejectsWith(backend({ sshKey: other.file }, prompt).stat('x'), 'auth', /refused the login/);
    assert.deepEqual(asked, [], 'no password asked for: this server takes keys only');
    assert.ok(BackendError.isKind(e, 'auth'));
    assert.ok(e.message.includes(other.file), e.message);
    assert.ok(e.hint);
    const none = await rejectsWith(backend({ sshKey: undefined }).stat('x'), 'auth');
    assert.match(none.message, /tried nothing/);
  });

  it('uses the default ~/.ssh/id_ed25519 of the (private) home', async () => {
    const home = tempDir('offsite-home-');
    fs.mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    fs.copyFileSync(suite.fx.sshd.userKey.file, path.join(home, '.ssh', 'id_ed25519'));
    fs.copyFileSync(suite.fx.knownHosts, path.join(home, '.ssh', 'known_hosts'));
    await works(backend({ home, sshKey: undefined, knownHosts: undefined }));
  });

  it('ignores a key file that others may read, as OpenSSH does: a named one is an error, a default one is skipped and named', async () => {
    const open = path.join(tempDir(), 'id_open');
    fs.copyFileSync(suite.fx.sshd.userKey.file, open);
    fs.chmodSync(open, 0o644);
    await rejectsWith(backend({ sshKey: open }).stat('x'), 'key', /Permissions 0644 for the SSH key .*id_open are too open/);
    const home = tempDir('offsite-home-');
    fs.mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    fs.copyFileSync(suite.fx.sshd.userKey.file, path.join(home, '.ssh', 'id_ed25519'));
    fs.chmodSync(path.join(home, '.ssh', 'id_ed25519'), 0o640);
    fs.copyFileSync(suite.fx.knownHosts, path.join(home, '.ssh', 'known_hosts'));
    const e = await rejectsWith(backend({ home, sshKey: undefined, knownHosts: undefined }).stat('x'), 'key', /Permissions 0640 .*id_ed25519 are too open/);
    assert.match(e.hint ?? '', /chmod 600/);
  });

  it('reports a missing --ssh-key file as a key error', async () => {
    await rejectsWith(backend({ sshKey: path.join(suite.fx.home, 'nope') }).stat('x'), 'key', /Cannot read the SSH key/);
  });

  describe('encrypted key', () => {
    let enc: { file: string; publicLine: string };
    before(async () => {
      enc = await makeUserKey(tempDir(), 'id_enc', 'correct horse');
      fs.appendFileSync(path.join(suite.fx.sshd.dir, 'authorized_keys'), `${enc.publicLine}\n`);
    });

    it('takes the passphrase from OFFSITE_SSH_PASSPHRASE', async () => {
      await works(backend({ sshKey: enc.file, env: { OFFSITE_SSH_PASSPHRASE: 'correct horse' } }));
    });

    it('asks for the passphrase through the prompt callback', async () => {
      const asked: string[] = [];
      await works(
        backend({ sshKey: enc.file }, async (q) => {
          asked.push(q);
          return 'correct horse';
        }),
      );
      assert.equal(asked.length, 1);
      assert.ok(asked[0].includes(enc.file) && /passphrase/i.test(asked[0]));
    });

    it('says the passphrase is wrong, from the environment or typed, with a hint that names no variable (the extension passes its own)', async () => {
      for (const b of [backend({ sshKey: enc.file, env: { OFFSITE_SSH_PASSPHRASE: 'wrong' } }), backend({ sshKey: enc.file }, async () => 'wrong')]) {
        const e = await rejectsWith(b.stat('x'), 'passphrase', /Wrong passphrase/);
        assert.equal(e.hint, 'Enter the right passphrase');
      }
    });

    it('says the default key needs a passphrase when it was all there was to try (not "tried nothing, no key file")', async () => {
      const home = tempDir('offsite-home-');
      fs.mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
      fs.copyFileSync(enc.file, path.join(home, '.ssh', 'id_ed25519'));
      const e = await rejectsWith(backend({ home, sshKey: undefined }).stat('x'), 'passphrase', /id_ed25519 is encrypted and no passphrase/);
      assert.doesNotMatch(e.message, /no key file/);
    });

    it('says a passphrase is needed when there is none and no prompt (a passphrase error naming the key: that is what to ask for)', async () => {
      await rejectsWith(backend({ sshKey: enc.file }).stat('x'), 'passphrase', new RegExp(`SSH key ${enc.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is encrypted and no passphrase`));
    });
  });

  it('follows a ~/.ssh/config alias: HostName, Port, User, IdentityFile (via Include)', async () => {
    const home = tempDir('offsite-home-');
    fs.mkdirSync(path.join(home, '.ssh', 'conf.d'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(home, 'keys'));
    fs.copyFileSync(suite.fx.sshd.userKey.file, path.join(home, 'keys', 'backup_key'));
    fs.copyFileSync(suite.fx.knownHosts, path.join(home, '.ssh', 'known_hosts'));
    fs.writeFileSync(path.join(home, '.ssh', 'config'), 'Include conf.d/*\n\nHost *\n  User nobody-by-default\n');
    fs.writeFileSync(
      path.join(home, '.ssh', 'conf.d', 'backup'),
      `Host backupbox\n  HostName 127.0.0.1\n  Port ${suite.fx.sshd.port}\n  User ${suite.fx.sshd.user}\n  IdentityFile ~/keys/backup_key\n`,
    );
    const { dir } = suite.fx.freshRemote();
    const b = backend({ home, sshKey: undefined, knownHosts: undefined }, undefined, `sftp://backupbox/${dir}`);
    await works(b);
    assert.equal(b.displayUrl, `sftp://backupbox/${dir}`);
    assert.ok(fs.existsSync(path.join(dir, 'probe')));
  });

  it('skips an IdentityFile of the ssh config that does not exist, as OpenSSH does, and names it if the login fails', async () => {
    const home = tempDir('offsite-home-');
    fs.mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(home, 'keys'));
    fs.copyFileSync(suite.fx.sshd.userKey.file, path.join(home, 'keys', 'backup_key'));
    fs.copyFileSync(suite.fx.knownHosts, path.join(home, '.ssh', 'known_hosts'));
    const host = `  HostName 127.0.0.1\n  Port ${suite.fx.sshd.port}\n  User ${suite.fx.sshd.user}\n  IdentityFile ~/.ssh/id_gone\n`;
    fs.writeFileSync(path.join(home, '.ssh', 'config'), `Host box\n${host}  IdentityFile ~/keys/backup_key\n\nHost nokey\n${host}`);
    const { dir } = suite.fx.freshRemote();
    await works(backend({ home, sshKey: undefined, knownHosts: undefined }, undefined, `sftp://box/${dir}`));
    const e = await rejectsWith(backend({ home, sshKey: undefined, knownHosts: undefined }, undefined, `sftp://nokey/${dir}`).stat('x'), 'auth', /refused the login/);
    assert.ok(e.message.includes(`${path.join(home, '.ssh', 'id_gone')} does not exist`), e.message);
    // A key given with --ssh-key is another matter: a missing one is an error at once.
    await rejectsWith(backend({ home, sshKey: path.join(home, 'nope'), knownHosts: undefined }, undefined, `sftp://box/${dir}`).stat('x'), 'key', /Cannot read the SSH key/);
  });

  it('reads a relative path from the login folder and // as absolute', async () => {
    // The login folder is the account's home (from passwd): use a folder there that we remove after.
    const home = os.userInfo().homedir;
    const rel = `.offsite-test-${process.pid}-${Date.now()}`;
    try {
      const b = backend({}, undefined, `sftp://${suite.fx.sshd.user}@127.0.0.1:${suite.fx.sshd.port}/${rel}/sub`);
      await works(b);
      assert.ok(fs.existsSync(path.join(home, rel, 'sub', 'probe')), 'relative to the login folder');
    } finally {
      fs.rmSync(path.join(home, rel), { recursive: true, force: true });
    }
  });
});

describe('sftp backend: host keys', function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let other: Sshd;
  let fx: SftpFixture;
  const open: SftpBackend[] = [];

  before(async () => {
    fx = await startFixture();
    sshd = fx.sshd;
    // Another server's key, to fake a changed host key.
    other = await startSshd();
    await other.stop();
  });
  after(async () => {
    await sshd?.stop();
  });
  afterEach(async () => {
    await closeAll(open);
  });

  function withKnownHosts(lines: string[], extra: Record<string, unknown> = {}): { b: SftpBackend; file: string } {
    const file = path.join(tempDir(), 'known_hosts');
    fs.writeFileSync(file, lines.length ? lines.join('\n') + '\n' : '');
    const b = fx.open(undefined, { options: { knownHosts: file, ...extra } });
    open.push(b);
    return { b, file };
  }

  const fp = (): string => sshd.fingerprints.get('ssh-ed25519')!;

  it('refuses an unknown host with its key type, SHA256 fingerprint and how to accept it', async () => {
    const { b, file } = withKnownHosts([]);
    const e = await rejectsWith(b.stat('x'), 'hostKey', /not known/);
    assert.ok(e.message.includes('ssh-ed25519'), e.message);
    assert.ok(e.message.includes(fp()), `${e.message} lacks ${fp()}`);
    assert.ok(e.hint?.includes(`--accept-host-key ${fp()}`), e.hint);
    // What the extension offers to accept, without reading the message.
    assert.deepEqual(e.needs, { input: 'hostKey', wrong: false, fingerprint: fp() });
    assert.equal(fs.readFileSync(file, 'utf8'), '', 'nothing recorded');
  });

  it('accepts an unknown host with --accept-host-key and records it in known_hosts', async () => {
    const { b, file } = withKnownHosts([], { acceptHostKey: fp() });
    await b.put('a', bufferSource(Buffer.from('a')));
    const recorded = fs.readFileSync(file, 'utf8');
    assert.match(recorded, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 AAAA`));
    // The next connection needs no flag; ssh-keygen agrees with what we wrote.
    const b2 = fx.open(undefined, { options: { knownHosts: file } });
    open.push(b2);
    assert.deepEqual(await listNames(b2), []);
    const found = execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', file]).toString();
    assert.match(found, /ssh-ed25519/);
  });

  it('refuses when --accept-host-key names another fingerprint', async () => {
    const { b, file } = withKnownHosts([], { acceptHostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    const e = await rejectsWith(b.stat('x'), 'hostKey', /not the SHA256:AAAA/);
    assert.ok(e.message.includes(fp()));
    assert.deepEqual(e.needs, { input: 'hostKey', wrong: true, fingerprint: fp() });
    assert.equal(fs.readFileSync(file, 'utf8'), '');
    // An MD5 fingerprint (ssh -o FingerprintHash=md5) is named as given, and the SHA256 one asked for.
    const md5 = 'MD5:12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0';
    const { b: b2 } = withKnownHosts([], { acceptHostKey: md5 });
    const e2 = await rejectsWith(b2.stat('x'), 'hostKey', new RegExp(`not the ${md5} given with --accept-host-key \\(an MD5 fingerprint: give the SHA256 one\\)`));
    assert.doesNotMatch(e2.message, /SHA256:MD5/);
  });

  it('refuses a changed host key loudly, even with --accept-host-key of the new key', async () => {
    const stale = other.knownHostsLines(`[127.0.0.1]:${sshd.port}`);
    const { b, file } = withKnownHosts(stale, { acceptHostKey: fp() });
    const before = fs.readFileSync(file, 'utf8');
    const e = await rejectsWith(b.stat('x'), 'hostKey', /CHANGED/);
    assert.ok(e.message.includes(fp()) && e.message.includes(`${file}:1`), e.message);
    assert.ok(e.hint?.includes('ssh-keygen -R'), e.hint);
    assert.equal(e.needs, undefined, 'accepting it is not the way');
    assert.equal(fs.readFileSync(file, 'utf8'), before, 'known_hosts must not change');
  });

  it('matches hashed known_hosts entries (ssh-keygen -H)', async () => {
    const { b, file } = withKnownHosts(sshd.knownHostsLines());
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    fs.rmSync(`${file}.old`, { force: true });
    assert.match(fs.readFileSync(file, 'utf8'), /^\|1\|/m);
    assert.deepEqual(await listNames(b), []);
    // A hashed entry with another key is a changed key, not an unknown host.
    const line = other.knownHostsLines(hashHostName(`[127.0.0.1]:${sshd.port}`));
    const { b: b2 } = withKnownHosts(line);
    await rejectsWith(b2.stat('x'), 'hostKey', /CHANGED/);
  });

  it('matches wildcard patterns and honours negation', async () => {
    const [type, key] = sshd.knownHostsLines()[0].split(' ').slice(1);
    const { b } = withKnownHosts([`[127.0.0.?]:${sshd.port},other.example ${type} ${key}`]);
    assert.deepEqual(await listNames(b), []);
    const { b: b2 } = withKnownHosts([`[127.0.0.*]:*,![127.0.0.1]:${sshd.port} ${type} ${key}`]);
    await rejectsWith(b2.stat('x'), 'hostKey', /not known/);
  });

  it('says a @cert-authority line covers an unknown host but cannot be used (ssh trusts it, Offsite cannot check certificates)', async () => {
    const [, type, key] = other.knownHostsLines()[0].split(' ');
    const { b, file } = withKnownHosts(['# the site CA', `@cert-authority [127.0.0.1]:*,*.example ${type} ${key}`]);
    const e = await rejectsWith(b.stat('x'), 'hostKey', /not known/);
    assert.ok(e.message.includes(`@cert-authority line (${file}:2)`) && /cannot check host certificates/.test(e.message), e.message);
    assert.deepEqual(e.needs, { input: 'hostKey', wrong: false, fingerprint: fp() });
  });

  it('refuses a key marked @revoked', async () => {
    const [, type, key] = sshd.knownHostsLines()[0].split(' ');
    const { b } = withKnownHosts([...sshd.knownHostsLines(), `@revoked * ${type} ${key}`]);
    await rejectsWith(b.stat('x'), 'hostKey', /@revoked/);
  });

  /** A `type base64` public key of a throwaway key pair: a stale entry for known_hosts. */
  function staleKey(type: 'ecdsa' | 'rsa'): string {
    const f = path.join(tempDir(), `stale_${type}`);
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', f]);
    return fs.readFileSync(`${f}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  }

  it('refuses a host known only with another key type as CHANGED, as OpenSSH does, even with --accept-host-key', async () => {
    // This server has only an ed25519 key; known_hosts knows the host by an ecdsa key: whoever answers
    // cannot show that key, which is what an interception looks like.
    const { b, file } = withKnownHosts([`[127.0.0.1]:${sshd.port} ${staleKey('ecdsa')}`], { acceptHostKey: fp() });
    const before = fs.readFileSync(file, 'utf8');
    const e = await rejectsWith(b.stat('x'), 'hostKey', /CHANGED/);
    assert.ok(e.message.includes(fp()) && e.message.includes(`${file}:1`), e.message);
    assert.equal(e.needs, undefined, 'accepting it is not the way');
    assert.equal(fs.readFileSync(file, 'utf8'), before, 'known_hosts must not change');
  });

  it('asks a server for the strongest key type known_hosts has for it, as OpenSSH does (stale entries of weaker types raise no false "changed")', async () => {
    const multi = await startSshd({ hostKeyTypes: ['ed25519', 'rsa', 'ecdsa'] });
    try {
      const name = `[127.0.0.1]:${multi.port}`;
      const ed25519 = multi.knownHostsLines().filter((l) => l.includes(' ssh-ed25519 '));
      const file = path.join(tempDir(), 'known_hosts');
      fs.appendFileSync(path.join(multi.dir, 'authorized_keys'), `${sshd.userKey.publicLine}\n`);
      const url = `sftp://${multi.user}@127.0.0.1:${multi.port}/${path.join(multi.dir, 'r')}`;
      // The order of the lines does not matter: OpenSSH asks for ed25519 before ecdsa and rsa.
      for (const lines of [[...ed25519, `${name} ${staleKey('ecdsa')}`, `${name} ${staleKey('rsa')}`], [`${name} ${staleKey('rsa')}`, `${name} ${staleKey('ecdsa')}`, ...ed25519]]) {
        fs.writeFileSync(file, lines.join('\n') + '\n');
        const b = fx.open(url, { options: { knownHosts: file } });
        open.push(b);
        assert.deepEqual(await listNames(b), []);
      }
    } finally {
      await multi.stop();
    }
  });

  it('records an accepted key hashed when the ssh config says HashKnownHosts yes (as Debian\'s /etc/ssh/ssh_config does)', async () => {
    const dir = tempDir();
    const system = path.join(dir, 'ssh_config');
    fs.writeFileSync(system, 'Host *\n  HashKnownHosts yes\n');
    const file = path.join(dir, 'known_hosts');
    const options = { knownHosts: file, sshConfig: path.join(dir, 'none'), sshSystemConfig: system };
    const b = fx.open(undefined, { options: { ...options, acceptHostKey: fp() } });
    open.push(b);
    assert.deepEqual(await listNames(b), []);
    const recorded = fs.readFileSync(file, 'utf8');
    assert.match(recorded, /^\|1\|[^ ]+ ssh-ed25519 AAAA/);
    assert.ok(!recorded.includes('127.0.0.1'), `the host name is in the clear: ${recorded}`);
    assert.match(execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', file]).toString(), /ssh-ed25519/);
    const b2 = fx.open(undefined, { options });
    open.push(b2);
    assert.deepEqual(await listNames(b2), []);
  });

  it('looks up and records the host key under HostKeyAlias, as OpenSSH does (ssh reads what Offsite records, and the other way round)', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'config');
    const file = path.join(dir, 'known_hosts');
    fs.writeFileSync(config, `Host backupbox\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User ${sshd.user}\n  HostKeyAlias box.alias\n`);
    const url = `sftp://backupbox/${path.join(sshd.dir, 'remote', 'alias')}`;
    const options = { knownHosts: file, sshConfig: config };
    // OpenSSH's sftp, with the same config: what it records for an accepted key, and whether it knows the host.
    const openssh = (strict: 'accept-new' | 'yes') =>
      spawnSync('sftp', ['-b', '-', '-F', config, '-i', sshd.userKey.file, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${file}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', `StrictHostKeyChecking=${strict}`, 'backupbox'], { input: 'bye\n' });
    fs.writeFileSync(file, '');
    assert.equal(openssh('accept-new').status, 0);
    const byOpenssh = fs.readFileSync(file, 'utf8');
    assert.match(byOpenssh, /^box\.alias ssh-ed25519 AAAA/);
    // Offsite finds the key OpenSSH recorded under the alias.
    const b = fx.open(url, { options });
    open.push(b);
    assert.deepEqual(await listNames(b), []);
    // With an unknown host, Offsite names the alias and records the accepted key under it; OpenSSH then knows the host.
    fs.writeFileSync(file, '');
    const unknown = fx.open(url, { options });
    open.push(unknown);
    const e = await rejectsWith(unknown.stat('x'), 'hostKey', /The host key of box\.alias is not known/);
    assert.ok(e.hint?.includes(fp()), e.hint);
    const b2 = fx.open(url, { options: { ...options, acceptHostKey: fp() } });
    open.push(b2);
    assert.deepEqual(await listNames(b2), []);
    assert.equal(fs.readFileSync(file, 'utf8'), byOpenssh);
    const strict = openssh('yes');
    assert.equal(strict.status, 0, strict.stderr.toString());
    // Keys under the real name are not the alias's (OpenSSH does not look there either).
    fs.writeFileSync(file, sshd.knownHostsLines().join('\n') + '\n');
    const underRealName = fx.open(url, { options });
    open.push(underRealName);
    await rejectsWith(underRealName.stat('x'), 'hostKey', /box\.alias is not known/);
    assert.notEqual(openssh('yes').status, 0);
  });

  it('says which known_hosts file it cannot read or record a key in, not that the SFTP server refused', async () => {
    const dir = tempDir();
    const unreadable = fx.open(undefined, { options: { knownHosts: dir } });
    open.push(unreadable);
    const e = await rejectsWith(unreadable.stat('x'), 'config', new RegExp(`Cannot read the known_hosts file ${dir}`));
    assert.doesNotMatch(e.message, /SFTP server/);
    // A known_hosts link to a folder that does not exist: nothing to read, and nowhere to record.
    const link = path.join(dir, 'known_hosts');
    fs.symlinkSync(path.join(dir, 'gone', 'known_hosts'), link);
    const unwritable = fx.open(undefined, { options: { knownHosts: link, acceptHostKey: fp() } });
    open.push(unwritable);
    const w = await rejectsWith(unwritable.stat('x'), 'config', new RegExp(`Cannot record the host key .* in ${link}`));
    assert.doesNotMatch(w.message, /SFTP server/);
  });

  it('asks a server with several keys for the type already known (no false "changed")', async () => {
    const multi = await startSshd({ hostKeyTypes: ['ed25519', 'rsa', 'ecdsa'] });
    try {
      const rsaOnly = multi.knownHostsLines().filter((l) => l.includes(' ssh-rsa '));
      assert.equal(rsaOnly.length, 1);
      const file = path.join(tempDir(), 'known_hosts');
      fs.writeFileSync(file, rsaOnly.join('\n') + '\n');
      fs.appendFileSync(path.join(multi.dir, 'authorized_keys'), `${sshd.userKey.publicLine}\n`);
      const b = fx.open(`sftp://${multi.user}@127.0.0.1:${multi.port}/${path.join(multi.dir, 'r')}`, { options: { knownHosts: file } });
      open.push(b);
      assert.deepEqual(await listNames(b), []);
    } finally {
      await multi.stop();
    }
  });
});
