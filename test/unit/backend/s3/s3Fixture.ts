// Shared set-up of the S3 backend tests: the test server, and backends on fresh prefixes or buckets.
import { randomBytes } from 'node:crypto';
import { CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import type { Backend } from '../../../../src/engine/backend/backend';
import { createS3Backend, multipartLeftoverName, type S3Backend } from '../../../../src/engine/backend/s3Backend';
import { sharedS3Server, type S3Server } from '../../../helpers/s3Server';

export interface S3Remote {
  readonly bucket: string;
  /** '' or 'a/b/' */
  readonly prefix: string;
  readonly url: string;
}

/** A fresh remote: a new prefix in `bucket`, or a new bucket when none is given. */
export async function freshRemote(server: S3Server, bucket?: string): Promise<S3Remote> {
  if (bucket === undefined) {
    const b = await server.createBucket();
    return { bucket: b, prefix: '', url: `s3://${b}` };
  }
  const prefix = `backups/${randomBytes(5).toString('hex')}/`;
  return { bucket, prefix, url: `s3://${bucket}/${prefix}` };
}

/** Options as the CLI passes them, with the server's keys, and no environment of the host. */
export function s3Options(server: S3Server, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { s3EndpointUrl: server.endpoint, s3AccessKeyId: server.accessKeyId, s3SecretAccessKey: server.secretAccessKey, s3Region: server.region, env: {}, ...extra };
}

export async function openS3(server: S3Server, remote: S3Remote, extra: Record<string, unknown> = {}): Promise<S3Backend> {
  return createS3Backend(new URL(remote.url), { options: s3Options(server, extra) }, remote.url);
}

/** Leaves an unfinished multipart upload of `name` (one part sent), as a crashed put would. */
export async function leaveMultipart(backend: Backend, remote: S3Remote, name = 'duplicity-full.20261126T131509Z.vol7.difftar.gpg'): Promise<string> {
  const client = (backend as S3Backend).client;
  const key = remote.prefix + name;
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: remote.bucket, Key: key }));
  await client.send(new UploadPartCommand({ Bucket: remote.bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(5 * 1024 * 1024) }));
  return multipartLeftoverName(name, UploadId!);
}

export { sharedS3Server };
