// The one redaction of remote URLs (engine messages, the extension's tree, status bar and log): a
// password, with "@" in it or not, parsed or not, and the secret values of rclone connection strings
// and queries; and the masking of URLs quoted in a tool's message.
import * as assert from 'node:assert/strict';
import { maskPasswordsIn, redactUrl } from '../../../src/engine/backend/backendUtil';

describe('backendUtil: redactUrl', () => {
  it('shows a password as ***, and keeps the rest as written', () => {
    assert.equal(redactUrl('sftp://me:s3cret@nas/b'), 'sftp://me:***@nas/b');
    assert.equal(redactUrl('sftp://me@nas/b'), 'sftp://me@nas/b');
    assert.equal(redactUrl('sftp://me:pw@nas:2222/my%20b/x'), 'sftp://me:***@nas:2222/my%20b/x');
    assert.equal(redactUrl(new URL('sftp://me:s3cret@nas/b')), 'sftp://me:***@nas/b');
    assert.equal(redactUrl('file:///a:b@c'), 'file:///a:b@c');
  });

  it('hides all of a password that holds "@" or ":", whether the URL parses or not', () => {
    assert.equal(redactUrl('sftp://me:p@ss@nas/b'), 'sftp://me:***@nas/b');
    assert.equal(redactUrl('sftp://me:a:b@c@nas/b@x'), 'sftp://me:***@nas/b@x', 'the path\'s "@" is no password');
    // Unparseable (a port that is no number; a blank): the same.
    assert.throws(() => new URL('sftp://me:p@ss@nas:port/b'));
    assert.equal(redactUrl('sftp://me:p@ss@nas:port/b'), 'sftp://me:***@nas:port/b');
    assert.equal(redactUrl('sftp://me:my secret@nas b/x'), 'sftp://me:***@nas b/x');
  });

  it('hides the secret values of an rclone connection string, quoted or not', () => {
    assert.equal(
      redactUrl('rclone://:s3,provider=AWS,access_key_id=AKIA1,secret_access_key=wJalr/XY:bucket/p/proj'),
      'rclone://:s3,provider=AWS,access_key_id=***,secret_access_key=***:bucket/p/proj',
    );
    assert.equal(redactUrl('rclone://:webdav,url=https,pass="a:b,c":dav/p'), 'rclone://:webdav,url=https,pass=***:dav/p');
    assert.equal(redactUrl("rclone://:sftp,host=h,pass='x''y:z':p"), 'rclone://:sftp,host=h,pass=***:p', 'a doubled quote is in the value');
    assert.equal(redactUrl('rclone://:sftp,host=h,pass="x""y,z":p'), 'rclone://:sftp,host=h,pass=***:p');
    assert.equal(redactUrl('rclone://:sftp,pass=a&b#c,host=h:p'), 'rclone://:sftp,pass=***,host=h:p');
    assert.equal(redactUrl('rclone://gdrive,token=abc:backups'), 'rclone://gdrive,token=***:backups', 'a named remote\'s override');
  });

  it('hides the secrets of a nested remote (crypt\'s or alias\'s remote=, union\'s upstreams), whose quotes are doubled', () => {
    const nested = "rclone://:crypt,remote=':s3,secret_access_key=''S3:C,RET'',access_key_id=AK,region=eu:bucket',password=PW:x";
    assert.equal(redactUrl(nested), "rclone://:crypt,remote=':s3,secret_access_key=***,access_key_id=***,region=eu:bucket',password=***:x");
    assert.equal(
      redactUrl("rclone://:union,upstreams='a:x :azureblob,account=ac,sas_url=https?sig=S1G:c :ro',client_secret=CS:"),
      "rclone://:union,upstreams='a:x :azureblob,account=ac,sas_url=***:c :ro',client_secret=***:",
    );
    assert.equal(redactUrl('rclone://:drive,service_account_credentials="{""k"":""PRIV""}":b'), 'rclone://:drive,service_account_credentials=***:b');
  });

  it('hides secret query values, to the next "&" or "#", whatever the name\'s case or dashes', () => {
    assert.equal(redactUrl('s3://bucket/p/proj?token=abc&region=eu'), 's3://bucket/p/proj?token=***&region=eu');
    assert.equal(redactUrl('s3://bucket/p?region=eu&X-Amz-Security-Token=a:b/c=d&x=1#f'), 's3://bucket/p?region=eu&X-Amz-Security-Token=***&x=1#f');
    assert.equal(redactUrl('webdavs://h/p?Password=x,y:z'), 'webdavs://h/p?Password=***');
    assert.equal(redactUrl('s3://bucket/p?region=eu'), 's3://bucket/p?region=eu');
  });

  it('leaves an rclone remote:path alone, "@" and all', () => {
    for (const u of ['rclone://remote:path@x', 'rclone://remote:a:b@c/d', 'rclone://gdrive:backups/my%20project', 'rclone://local://srv/backup']) {
      assert.equal(redactUrl(u), u);
    }
  });
});

describe('backendUtil: maskPasswordsIn', () => {
  it('masks every URL\'s password in a text, "@" in it or not', () => {
    assert.equal(maskPasswordsIn('failed: sftp://me:p@ss@host/x: refused'), 'failed: sftp://me:***@host/x: refused');
    assert.equal(maskPasswordsIn('a https://u:pw@h/x and ftp://v:q@r@s/y'), 'a https://u:***@h/x and ftp://v:***@s/y');
    assert.equal(maskPasswordsIn('no password: https://h:443/x, mail me@example.org'), 'no password: https://h:443/x, mail me@example.org');
  });
});
