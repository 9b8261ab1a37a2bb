// The backend conformance suite on the rclone:// backend: through an rclone `local` remote, and
// through an rclone S3 remote on the test server (Swift + s3api).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { partialNameFor } from '../../../../src/engine/backend/fileBackend';
import { describeBackendConformance } from '../conformance';
import { sharedS3Server, type S3Server } from '../../../helpers/s3Server';
import { rcloneFixture, type RcloneFixture } from './rcloneFixture';

// rclone has no create-if-absent: "do not replace" is a check, then the move.
const cannot = ['noClobberRace'] as const;

describe('rclone:// backend', function () {
  this.timeout(120_000);

  describe('on a local remote', () => {
    const fx = rcloneFixture();
    const dirs = new WeakMap<object, string>();
    describeBackendConformance(
      'rclone:// local',
      async () => {
        const { url, dir } = fx.freshLocal();
        const b = await fx.open(url);
        dirs.set(b, dir);
        return b;
      },
      {
        cannot,
        timeoutMs: 60_000,
        concurrentPuts: 8,
        makeLeftover: async (b) => {
          const name = partialNameFor('duplicity-full.20261126T131509Z.vol3.difftar.gpg');
          fs.writeFileSync(path.join(dirs.get(b)!, name), 'half a volume');
          return name;
        },
      },
    );
  });

  describe('on an S3 remote (Swift s3api)', () => {
    let server: S3Server;
    let fx: RcloneFixture;
    let bucket: string;
    const prefixes = new WeakMap<object, string>();
    before(async () => {
      server = await sharedS3Server();
      fx = rcloneFixture(server);
      bucket = await server.createBucket();
    });
    describeBackendConformance(
      'rclone:// s3',
      async () => {
        const { url, prefix } = fx.freshS3(bucket);
        const b = await fx.open(url);
        prefixes.set(b, prefix);
        return b;
      },
      {
        cannot,
        timeoutMs: 60_000,
        concurrentPuts: 8,
        get secrets() {
          return server ? [server.secretAccessKey] : [];
        },
        makeLeftover: async (b) => {
          const name = partialNameFor('duplicity-full.20261126T131509Z.vol3.difftar.gpg');
          const client = await server.client();
          await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefixes.get(b)!}/${name}`, Body: Buffer.from('half a volume') }));
          client.destroy();
          return name;
        },
      },
    );
  });
});
