// s3:// remotes in the extension: whether the user configured S3 credentials the AWS way (variables,
// a profile, the shared files), in which case a refusal is theirs to fix there; else the extension
// asks for keys and keeps them in SecretStorage. Pure (no 'vscode'): unit-tested under plain Node.
import * as os from 'node:os';
import { readAwsProfiles } from '../engine/backend/s3/awsProfiles';
import { schemeOfUrl } from '../engine/backend/schemes';
import type { FolderConfig } from './folderConfig';

export function isS3Url(url: string): boolean {
  return schemeOfUrl(url) === 's3';
}

/** What is remembered per remote: the keys the engine's s3 backend takes (RemoteConfig.s3*). */
export interface S3Keys {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export function encodeS3Keys(k: S3Keys): string {
  return JSON.stringify(k.sessionToken ? k : { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey });
}

/** The stored value, or undefined when there is none or it is not one of ours. */
export function decodeS3Keys(v: string | undefined): S3Keys | undefined {
  if (!v) return undefined;
  try {
    const o = JSON.parse(v) as Partial<S3Keys>;
    if (typeof o.accessKeyId !== 'string' || typeof o.secretAccessKey !== 'string' || !o.accessKeyId || !o.secretAccessKey) return undefined;
    return { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey, ...(typeof o.sessionToken === 'string' && o.sessionToken ? { sessionToken: o.sessionToken } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * The id the keys are remembered under: the remote URL the user set (offsite.remote, so every folder
 * backed up there shares them), with the endpoint when there is one (the same bucket name on another
 * store is another remote).
 */
export function s3KeysIdFor(cfg: FolderConfig): string {
  const root = cfg.settings.remote.trim() || cfg.url;
  return cfg.remote.s3EndpointUrl ? `${root} @ ${cfg.remote.s3EndpointUrl}` : root;
}

/** A line of a config profile that gives credentials (in the credentials file, any [default] does). */
const CREDENTIAL_LINE = /^\s*(aws_access_key_id|credential_process|sso_session|sso_start_url|role_arn|web_identity_token_file)\s*=/m;

/**
 * Whether S3 credentials are configured outside Offsite: AWS_ACCESS_KEY_ID, a container or web
 * identity, a profile named by offsite.s3Profile or AWS_PROFILE, or a default profile with keys in
 * ~/.aws/credentials or ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE; the files and
 * their profiles are read as the s3 backend reads them: engine/backend/s3/awsProfiles.ts).
 */
export function awsCredentialsConfigured(
  s3Profile: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
  home = os.homedir(),
  /** A file's text, or undefined (default: read from disk). */
  read?: (file: string) => string | undefined,
): boolean {
  if (env.AWS_ACCESS_KEY_ID || env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) return true;
  if (s3Profile || env.AWS_PROFILE) return true;
  return readAwsProfiles(env, home, read).some((p) => p.name === 'default' && (p.file === 'credentials' || CREDENTIAL_LINE.test(p.body)));
}
