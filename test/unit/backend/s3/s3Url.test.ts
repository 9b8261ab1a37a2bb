// Reading s3:// URLs as duplicity does, endpoints, and the classification of S3 errors (pure).
import * as assert from 'node:assert/strict';
import { BackendError } from '../../../../src/engine/backend/backend';
import { checkEndpoint } from '../../../../src/engine/backend/s3/s3Client';
import { classifyS3Error } from '../../../../src/engine/backend/s3/s3Errors';
import { parseS3Url, s3DisplayUrl } from '../../../../src/engine/backend/s3/s3Url';
import { OffsiteError } from '../../../../src/engine/errors';

describe('s3:// URLs', () => {
  it('reads bucket and prefix like duplicity (first segment, empty segments dropped, path decoded)', () => {
    assert.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Url('s3://my-bucket/'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Url('s3://my-bucket/backups/laptop'), { bucket: 'my-bucket', prefix: 'backups/laptop/' });
    assert.deepEqual(parseS3Url('boto3+s3://my-bucket//a//b/'), { bucket: 'my-bucket', prefix: 'a/b/' });
    assert.deepEqual(parseS3Url('S3://Old_Bucket/my%20folder'), { bucket: 'Old_Bucket', prefix: 'my folder/' });
    assert.deepEqual(parseS3Url('s3://b12/x?region=eu#frag'), { bucket: 'b12', prefix: 'x/' });
    assert.equal(s3DisplayUrl({ bucket: 'b12', prefix: 'x/' }, 'http://127.0.0.1:9000'), 's3://b12/x/ (at http://127.0.0.1:9000)');
  });

  it('refuses URLs without a bucket, with a bad bucket, a bad escape or credentials (never echoed)', () => {
    for (const u of ['s3://', 's3:///prefix', 's3://a/x', 's3://-bad/x', 's3://b12/%zz', 'http://b12/x']) {
      assert.throws(() => parseS3Url(u), (e) => OffsiteError.is(e, 'usage'), u);
    }
    assert.throws(() => parseS3Url('s3://AKIA:SECRET123@bucket/x'), (e: unknown) => OffsiteError.is(e, 'usage') && !(e as Error).message.includes('SECRET123'));
  });

  it('refuses duplicity\'s boto (s3://HOST/bucket) form, saying to give the host with --s3-endpoint-url', () => {
    for (const u of ['s3://127.0.0.1:9000/bucket/p', 's3://s3.amazonaws.com/bucket/p', 's3://s3.eu-west-1.amazonaws.com/bucket', 's3://10.0.0.5/bucket/p', 's3://minio.example.com:9000/b12']) {
      assert.throws(() => parseS3Url(u), (e: unknown) => OffsiteError.is(e, 'usage') && /host/.test(e.message) && /s3:\/\/bucket\/folder.*--s3-endpoint-url/.test(e.hint ?? ''), u);
    }
    // A bucket named like a host (dots) is still a bucket.
    assert.deepEqual(parseS3Url('s3://backups.example.com/p'), { bucket: 'backups.example.com', prefix: 'p/' });
  });

  it('checks endpoints: http(s) URLs only, no credentials, trailing slash dropped', () => {
    assert.equal(checkEndpoint('http://127.0.0.1:9000/', 'x'), 'http://127.0.0.1:9000');
    assert.equal(checkEndpoint('https://s3.example.com/base/', 'x'), 'https://s3.example.com/base');
    for (const bad of ['127.0.0.1:9000', 'ftp://h', 'http://u:SECRET@h']) {
      assert.throws(() => checkEndpoint(bad, '--s3-endpoint-url'), (e: unknown) => OffsiteError.is(e, 'usage') && !(e as Error).message.includes('SECRET'), bad);
    }
  });
});

describe('S3 error classification', () => {
  const ctx = { op: 'get', name: 'v.gpg', bucket: 'b12', where: 's3://b12/', customEndpoint: true };
  const sdk = (name: string, status: number | undefined, extra: Record<string, unknown> = {}): Error =>
    Object.assign(new Error(`${name} happened`), { name, $fault: 'client', $metadata: { httpStatusCode: status, attempts: 1 }, ...extra });
  const kind = (e: unknown): string => (classifyS3Error(e, ctx) as BackendError).kind;

  it('maps S3 codes and statuses to kinds', () => {
    const cases: Array<[Error, string]> = [
      [sdk('NoSuchKey', 404), 'notFound'],
      [sdk('NotFound', 404), 'notFound'],
      [sdk('NoSuchBucket', 404), 'notFound'],
      [sdk('InvalidAccessKeyId', 403), 'auth'],
      [sdk('SignatureDoesNotMatch', 403), 'auth'],
      [sdk('ExpiredToken', 400), 'auth'],
      [sdk('AccessDenied', 403), 'permission'],
      [sdk('Forbidden', 403), 'auth'],
      [sdk('InvalidObjectState', 403, { StorageClass: 'DEEP_ARCHIVE' }), 'permanent'],
      [sdk('InvalidStorageClass', 400), 'permanent'],
      [sdk('PreconditionFailed', 412), 'exists'],
      [sdk('SlowDown', 503), 'transient'],
      [sdk('InternalError', 500), 'transient'],
      [sdk('BadDigest', 400), 'transient'],
      [sdk('QuotaExceeded', 403), 'noSpace'],
      [sdk('Unknown', 507), 'noSpace'],
      [sdk('RequestTimeTooSkewed', 403), 'permanent'],
      [sdk('NotImplemented', 501), 'permanent'],
      [sdk('MalformedXML', 400), 'permanent'],
      [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', $metadata: { attempts: 3 } }), 'transient'],
      [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'transient'],
      [Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' }), 'permanent'],
      [Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }), 'auth'],
    ];
    for (const [e, k] of cases) assert.equal(kind(e), k, `${e.name} ${(e as { code?: string }).code ?? ''}`);
  });

  it('says what to do about TLS: a certificate not trusted (self-signed, own CA), or an https:// endpoint that is an http server; no retry', () => {
    // The errors as the SDK's HTTP handler rejects with them (Node 20).
    const net = (code: string, message: string): Error => Object.assign(new Error(message), { code, $metadata: { attempts: 1, totalRetryDelay: 0 } });
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']) {
      const e = classifyS3Error(net(code, 'self-signed certificate'), ctx) as BackendError;
      assert.equal(e.kind, 'permanent', code);
      assert.match(e.message, /TLS certificate .*not trust.*\(self-signed certificate\)/);
      assert.match(e.hint ?? '', /NODE_EXTRA_CA_CERTS/);
    }
    for (const code of ['CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      const e = classifyS3Error(net(code, 'certificate has expired'), ctx) as BackendError;
      assert.equal(e.kind, 'permanent', code);
      assert.match(e.message, /TLS certificate .*certificate has expired/);
    }
    const plain = classifyS3Error(net('EPROTO', 'write EPROTO 805C21D6767F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n'), ctx) as BackendError;
    assert.equal(plain.kind, 'permanent');
    assert.match(plain.message, /does not answer in TLS/);
    assert.match(plain.hint ?? '', /http:\/\//);
  });

  it('names the bucket, the storage class, the object; passes OffsiteErrors through', () => {
    const b = classifyS3Error(sdk('NoSuchBucket', 404), ctx);
    assert.match(b.message, /bucket "b12" does not exist/);
    const g = classifyS3Error(sdk('InvalidObjectState', 403, { StorageClass: 'GLACIER' }), ctx);
    assert.match(g.message, /v\.gpg in s3:\/\/b12\/ is archived in the GLACIER storage class/);
    const own = new OffsiteError('sourceChanged', 'x');
    assert.equal(classifyS3Error(own, ctx), own);
  });
});
