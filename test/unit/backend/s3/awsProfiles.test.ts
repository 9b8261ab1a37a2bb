// The AWS shared files as both the s3 backend (a misspelled profile) and the extension (are keys
// configured?) read them: where they are, and which profiles they hold.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { awsSharedFiles, readAwsProfiles } from '../../../../src/engine/backend/s3/awsProfiles';
import { tempDir } from '../../../helpers/tmp';

describe('AWS shared files (awsProfiles)', () => {
  it('finds them in ~/.aws, or where AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE say (~/ is the home folder)', () => {
    assert.deepEqual(awsSharedFiles({}, '/home/me'), {
      credentials: { shown: '~/.aws/credentials', path: '/home/me/.aws/credentials' },
      config: { shown: '~/.aws/config', path: '/home/me/.aws/config' },
    });
    assert.deepEqual(awsSharedFiles({ AWS_SHARED_CREDENTIALS_FILE: '~/keys/creds', AWS_CONFIG_FILE: '/etc/aws.conf' }, '/home/me'), {
      credentials: { shown: '~/keys/creds', path: '/home/me/keys/creds' },
      config: { shown: '/etc/aws.conf', path: '/etc/aws.conf' },
    });
    assert.equal(awsSharedFiles({ AWS_CONFIG_FILE: '' }, '/home/me').config.path, '/home/me/.aws/config', 'an empty variable is unset');
  });

  it('lists every section of credentials and the [default] and [profile NAME] sections of config, with their text', () => {
    const files: Record<string, string> = {
      '/home/me/.aws/credentials': '[default]\naws_access_key_id = a\n\n  [ work ]\naws_access_key_id = w\n',
      '/home/me/.aws/config': '# comment\n[default]\nregion = eu-west-1\n[profile viaconfig]\nrole_arn = r\n[sso-session s]\nsso_region = x\n[profile default]\ncredential_process = /bin/c\n[services x]\n',
    };
    const profiles = readAwsProfiles({}, '/home/me', (f) => files[f]);
    assert.deepEqual(
      profiles.map((p) => [p.name, p.file]),
      [
        ['default', 'credentials'],
        ['work', 'credentials'],
        ['default', 'config'],
        ['viaconfig', 'config'],
        ['default', 'config'],
      ],
    );
    assert.equal(profiles[0].body, '\naws_access_key_id = a\n');
    assert.equal(profiles[3].body, '\nrole_arn = r\n');
    assert.equal(profiles[4].body, '\ncredential_process = /bin/c\n');
    assert.deepEqual(readAwsProfiles({}, '/home/me', () => undefined), [], 'files that cannot be read hold no profiles');
  });

  it('reads the files from disk by default', () => {
    const home = tempDir('offsite-aws-');
    fs.mkdirSync(path.join(home, '.aws'));
    fs.writeFileSync(path.join(home, '.aws', 'credentials'), '[disk]\naws_access_key_id = d\n');
    assert.deepEqual(readAwsProfiles({}, home).map((p) => p.name), ['disk']);
    assert.deepEqual(readAwsProfiles({ AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none') }, home), []);
  });
});
