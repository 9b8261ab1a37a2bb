// The backend conformance suite on the s3:// backend against a real S3 API (Swift + s3api), once on a
// prefix inside a bucket and once at a bucket's root.
import { describeBackendConformance } from '../conformance';
import type { S3Server } from '../../../helpers/s3Server';
import { freshRemote, leaveMultipart, openS3, sharedS3Server, type S3Remote } from './s3Fixture';

describe('s3:// backend', function () {
  this.timeout(120_000);
  let server: S3Server;
  let bucket: string;
  const remotes = new WeakMap<object, S3Remote>();

  before(async () => {
    server = await sharedS3Server();
    bucket = await server.createBucket();
  });

  // Swift's s3api has no conditional PUT (If-None-Match: *): "do not replace" is HEAD then PUT.
  const opts = { cannot: ['noClobberRace'] as const, timeoutMs: 60_000, secrets: [] as string[] };
  for (const [label, atRoot] of [
    ['s3:// on a prefix', false],
    ['s3:// at a bucket root', true],
  ] as const) {
    describeBackendConformance(
      label,
      async () => {
        const remote = await freshRemote(server, atRoot ? undefined : bucket);
        const b = await openS3(server, remote);
        remotes.set(b, remote);
        return b;
      },
      {
        ...opts,
        get secrets() {
          return server ? [server.secretAccessKey] : [];
        },
        makeLeftover: (b) => leaveMultipart(b, remotes.get(b)!),
      },
    );
  }
});
