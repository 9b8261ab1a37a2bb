// The profiles of the AWS shared files (~/.aws/credentials and ~/.aws/config, or the files
// AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name), found and read by the SDK's rules, for the
// checks made before the SDK runs: the s3 backend names a profile that is in neither file
// (s3Client.ts), and the extension asks for keys only when none are configured the AWS way
// (extension/awsCredentials.ts). Node built-ins only: the extension host imports it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface AwsSharedFile {
  /** As messages show it: the variable's value, or ~/.aws/NAME. */
  readonly shown: string;
  readonly path: string;
}

/**
 * Where the SDK reads the shared files: AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE (a leading
 * ~/ is the home folder), else credentials and config in ~/.aws.
 */
export function awsSharedFiles(env: Readonly<Record<string, string | undefined>>, home = os.homedir()): { credentials: AwsSharedFile; config: AwsSharedFile } {
  const file = (v: string | undefined, name: string): AwsSharedFile => {
    if (!v) return { shown: `~/.aws/${name}`, path: path.join(home, '.aws', name) };
    return { shown: v, path: v.startsWith('~/') ? path.join(home, v.slice(2)) : v };
  };
  return { credentials: file(env.AWS_SHARED_CREDENTIALS_FILE, 'credentials'), config: file(env.AWS_CONFIG_FILE, 'config') };
}

export interface AwsProfile {
  /** The profile's name ("default" for both [default] and [profile default] in config). */
  readonly name: string;
  readonly file: 'credentials' | 'config';
  /** The section's text after its [header] line, up to the next section. */
  readonly body: string;
}

function readOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The [name] sections of an INI text, in order, each with its text up to the next one. */
function sections(text: string): Array<{ name: string; body: string }> {
  const headers = [...text.matchAll(/^\s*\[([^\]\r\n]+)\]/gm)];
  return headers.map((m, i) => ({ name: m[1].trim(), body: text.slice(m.index + m[0].length, headers[i + 1]?.index ?? text.length) }));
}

/**
 * The profiles of the shared files, credentials first, in file order: every section of the
 * credentials file, and the [default] and [profile NAME] sections of the config file (its other
 * sections, such as [sso-session NAME] and [services NAME], are no profiles). A file that cannot be
 * read has none. `read` returns a file's text, or undefined (tests give their own).
 */
export function readAwsProfiles(env: Readonly<Record<string, string | undefined>>, home = os.homedir(), read: (file: string) => string | undefined = readOrUndefined): AwsProfile[] {
  const files = awsSharedFiles(env, home);
  const out: AwsProfile[] = [];
  for (const s of sections(read(files.credentials.path) ?? '')) out.push({ name: s.name, file: 'credentials', body: s.body });
  for (const s of sections(read(files.config.path) ?? '')) {
    const name = s.name === 'default' ? s.name : s.name.startsWith('profile ') ? s.name.slice(8).trim() : undefined;
    if (name !== undefined) out.push({ name, file: 'config', body: s.body });
  }
  return out;
}
