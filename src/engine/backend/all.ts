// Importing this module registers every remote kind with the registry (file:// registers itself).
// Front ends (CLI, engine service) import it once; the engine's operations only use openBackend().
//
// Each kind's code (ssh2, the AWS SDK, …) is loaded only when a URL of that kind is opened: loading
// all of them on every start cost ~0.2 s of CPU and MBs of memory (profiled with node --cpu-prof,
// see bench/README.md), which a file:// restore of one file should not pay. Once loaded, a module
// registers its own factory, replacing the stub here.
import { registerBackend } from './registry';

// duplicity's other names of these schemes (boto3+s3://, scp://, …) open them too (schemes.ts).
registerBackend('sftp', async (url, ctx) => (await import('./sftpBackend')).createSftpBackend(url, ctx));
// s3:// and boto3+s3:// are the only remotes whose TLS Node makes itself: bin/offsite keeps
// NODE_EXTRA_CA_CERTS for Node only when an argument names one (its first line; Node would otherwise
// load the certificates at every start). A new kind of remote that does the same must be named there.
registerBackend('s3', async (url, ctx, raw) => (await import('./s3Backend')).createS3Backend(url, ctx, raw));
registerBackend('rclone', async (url, ctx, raw) => (await import('./rcloneBackend')).createRcloneBackend(url, ctx, raw), { opaque: true });
