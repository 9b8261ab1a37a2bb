// s3://bucket/prefix (and duplicity's boto3+s3://bucket/prefix), read the way duplicity reads it
// (s3_boto3_backend.py): the first path segment is the bucket, the other non-empty segments are the
// key prefix, which then ends with "/". The path is percent-decoded, the bucket is not.
import { OffsiteError } from '../../errors';
import { schemeOfUrl } from '../schemes';

export interface S3Location {
  readonly bucket: string;
  /** '' (the bucket's root) or segments ending with '/', e.g. 'backups/laptop/'. */
  readonly prefix: string;
}

export function parseS3Url(rawUrl: string): S3Location {
  const m = /^[^:/?#]+:\/\//.exec(rawUrl);
  if (!m || schemeOfUrl(rawUrl) !== 's3') throw bad(rawUrl, 'it must start with s3:// or boto3+s3://');
  if (/^[^/?#]*@/.test(rawUrl.slice(m[0].length))) {
    throw bad(rawUrl, 'credentials do not belong in the URL', 'Give the keys through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (--s3-profile)');
  }
  const rest = rawUrl.slice(m[0].length).replace(/[?#].*$/s, '');
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  let path = slash < 0 ? '' : rest.slice(slash);
  try {
    path = decodeURIComponent(path);
  } catch {
    throw bad(rawUrl, 'it has an invalid %-escape');
  }
  if (bucket === '') throw bad(rawUrl, 'the bucket name is missing');
  // duplicity's older boto backend reads s3://HOST[:PORT]/bucket/prefix: a host is no bucket name.
  if (/:\d*$|^\d{1,3}(\.\d{1,3}){3}$|(^|\.)amazonaws\.com$/i.test(bucket)) {
    throw bad(rawUrl, `"${bucket}" is a host, not a bucket (duplicity's s3://HOST/bucket form)`, 'Write it as s3://bucket/folder, and give the host with --s3-endpoint-url (or AWS_ENDPOINT_URL) unless it is AWS');
  }
  // AWS's rules, loosely: stores like Ceph also allow upper case and '_', so only refuse what no store accepts.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$/.test(bucket)) {
    throw bad(rawUrl, `"${bucket}" is not a valid bucket name`, 'Bucket names have 3 to 63 lower-case letters, digits, dots and hyphens');
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.some((s) => s.includes('\0'))) throw bad(rawUrl, 'it contains a NUL character');
  return { bucket, prefix: segments.length ? `${segments.join('/')}/` : '' };
}

/** The URL for messages: scheme, bucket and prefix, nothing secret (there is nothing secret in it). */
export function s3DisplayUrl(loc: S3Location, endpoint?: string): string {
  const url = `s3://${loc.bucket}/${loc.prefix}`;
  return endpoint ? `${url} (at ${endpoint})` : url;
}

function bad(url: string, why: string, hint = 'Write it as s3://bucket/folder (the folder is optional)'): OffsiteError {
  // The URL is shown as typed only up to the host part's '@', which never carries a secret once refused.
  const shown = url.replace(/\/\/[^/@]*@/, '//***@');
  return new OffsiteError('usage', `Bad S3 URL "${shown}": ${why}`, { hint });
}
