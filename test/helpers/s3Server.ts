// A real S3 API server for tests: OpenStack Swift (Debian's packages) with its s3api middleware, on
// 127.0.0.1 only, one replica in a private temp folder (after ../shared/s3-server/setup.sh). The
// processes (memcached and four Swift servers) are started here, by pid, and stopped by stop() or,
// for the shared server, when the test process exits. Nothing is installed at test time: the
// packages come from scripts/setup.sh.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/engine/backend/s3/s3Client';
import { freePort } from './sshd';

const execFileP = promisify(execFile);
/** Debian's python, which has python3-swift (a python3 earlier on PATH may be another one). */
const PYTHON = '/usr/bin/python3';
const SERVERS = ['account', 'container', 'object', 'proxy'] as const;

export interface S3Server {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: 'us-east-1';
  readonly dir: string;
  /** AWS_* variables for a client process (duplicity, offsite). */
  env(): Record<string, string>;
  /** A client of this server (the caller destroys it). */
  client(): Promise<S3Client>;
  /** Creates a bucket with a fresh random name (or `name`) and returns its name. */
  createBucket(name?: string): Promise<string>;
  /** SIGKILLs every process at once, as a crash would (the data stays). */
  kill(): void;
  /** Starts the processes that are not running (after kill() or stop()), same ports and data. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The last lines of the servers' logs, for failure messages. */
  logs(): string;
}

/** Whether the Swift packages are installed (scripts/setup.sh installs them). */
export function swiftInstalled(): boolean {
  return fs.existsSync('/usr/bin/swift-ring-builder') && fs.existsSync('/usr/bin/memcached');
}

let shared: Promise<S3Server> | undefined;

/** One server for the whole test run (started on first use, stopped when the process exits). */
export function sharedS3Server(): Promise<S3Server> {
  shared ??= startS3Server();
  return shared;
}

export async function startS3Server(): Promise<S3Server> {
  if (!swiftInstalled()) throw new Error('OpenStack Swift is not installed: run scripts/setup.sh (it installs swift, memcached, rclone, python3-boto3)');
  // Not tempDir(): the folder must outlive the processes writing into it (see the exit handler).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offsite-s3-'));
  const etc = path.join(dir, 'etc');
  const log = path.join(dir, 'log');
  const devices = path.join(dir, 'srv', 'node');
  for (const d of [etc, log, path.join(devices, 'd1')]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  const ports = { account: await freePort(), container: await freePort(), object: await freePort(), proxy: await freePort(), memcached: await freePort() };
  const accessKeyId = 's3test:backup'; // tempauth's "account:user" is the S3 access key id
  const secretAccessKey = randomBytes(20).toString('hex');
  writeConfigs(etc, devices, ports, secretAccessKey);
  await execFileP(PYTHON, [path.join(etc, 'launcher.py'), 'rings', etc, String(ports.account), String(ports.container), String(ports.object)], {
    env: { ...process.env, SWIFT_DIR: etc },
  });

  const pids = new Map<string, number>();
  const zombies = new Set<number>();
  const endpoint = `http://127.0.0.1:${ports.proxy}`;
  const alive = (pid: number | undefined): boolean => {
    if (pid === undefined) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const spawnDetached = (name: string, cmd: string, args: string[]): void => {
    const out = fs.openSync(path.join(log, `${name}.log`), 'a', 0o600);
    // Detached (own session, like setsid) and unref'd: the test process may exit without waiting.
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', out, out], env: { ...process.env, SWIFT_DIR: etc } });
    fs.closeSync(out);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    pids.set(name, child.pid);
  };
  const logs = (): string =>
    fs
      .readdirSync(log)
      .map((f) => `--- ${f}\n${fs.readFileSync(path.join(log, f), 'utf8').split('\n').slice(-15).join('\n')}`)
      .join('\n');

  const start = async (): Promise<void> => {
    if (!alive(pids.get('memcached'))) spawnDetached('memcached', '/usr/bin/memcached', ['-l', '127.0.0.1', '-p', String(ports.memcached), '-U', '0', '-m', '64', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])]);
    for (const s of SERVERS) {
      if (!alive(pids.get(s))) spawnDetached(s, PYTHON, [path.join(etc, 'launcher.py'), 'run', `${s}-server`, path.join(etc, `${s}-server.conf`)]);
    }
    const deadline = Date.now() + 30_000;
    for (const s of SERVERS) {
      while (!(await healthy(ports[s]))) {
        if (Date.now() > deadline || !alive(pids.get(s))) throw new Error(`the Swift ${s} server did not start:\n${logs()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const signalAll = (sig: NodeJS.Signals): number[] => {
    const sent: number[] = [];
    for (const pid of pids.values()) {
      try {
        process.kill(pid, sig);
        sent.push(pid);
      } catch {
        // already gone
      }
    }
    return sent;
  };
  const waitGone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while ([...pids.values()].some(alive)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  };
  const stop = async (): Promise<void> => {
    signalAll('SIGTERM');
    if (!(await waitGone(5000))) {
      signalAll('SIGKILL');
      await waitGone(5000);
    }
    pids.clear();
  };
  // A run that ends without stop() (the shared server, or a failed test) still ends what it started.
  process.once('exit', () => {
    signalAll('SIGKILL');
    const deadline = Date.now() + 3000;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    while ([...pids.values()].some(alive) && Date.now() < deadline) Atomics.wait(nap, 0, 0, 20);
    if (!process.env.OFFSITE_KEEP_TEST_DIRS) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });

  const makeClient = async (): Promise<S3Client> =>
    (await createS3Client({ endpoint, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey } })).client;

  const server: S3Server = {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region: 'us-east-1',
    dir,
    env: () => ({ AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1' }),
    client: makeClient,
    async createBucket(name?: string): Promise<string> {
      const bucket = name ?? `offsite-${randomBytes(6).toString('hex')}`;
      const c = await makeClient();
      try {
        await c.send(new CreateBucketCommand({ Bucket: bucket }));
      } finally {
        c.destroy();
      }
      return bucket;
    },
    kill: () => {
      // Forget them: a killed process stays a zombie (alive to kill(pid, 0)) until Node reaps it.
      signalAll('SIGKILL');
      for (const [name, pid] of pids) {
        pids.delete(name);
        zombies.add(pid);
      }
    },
    start,
    stop,
    logs,
  };
  try {
    await start();
  } catch (e) {
    await stop();
    throw e;
  }
  return server;
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthcheck', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

function writeConfigs(etc: string, devices: string, ports: Record<string, number>, secret: string): void {
  const w = (name: string, text: string): void => fs.writeFileSync(path.join(etc, name), text, { mode: 0o600 });
  w(
    'swift.conf',
    `[swift-hash]
swift_hash_path_suffix = ${randomBytes(8).toString('hex')}
swift_hash_path_prefix = offsite

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
# SigV4 requests carry long headers (Swift's default is 8192)
max_header_size = 16384
max_file_size = 5368709122
`,
  );
  const common = (port: number, name: string): string => `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = ${os.userInfo().username}
swift_dir = ${etc}
devices = ${devices}
mount_check = false
log_name = ${name}
log_level = WARNING
# no syslog socket here: logs go to the console, which is the log file
log_address = /dev/null-nonexistent
`;
  for (const s of ['account', 'container', 'object'] as const) {
    w(
      `${s}-server.conf`,
      `${common(ports[s], `${s}-server`)}
[pipeline:main]
pipeline = healthcheck ${s}-server
[app:${s}-server]
use = egg:swift#${s}
[filter:healthcheck]
use = egg:swift#healthcheck
`,
    );
  }
  w(
    'proxy-server.conf',
    `${common(ports.proxy, 'proxy-server')}
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# one storage node: one 507 would otherwise "error-limit" it for 60 s
error_suppression_interval = 1

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
dns_compliant_bucket_names = true
max_bucket_listing = 1000
min_segment_size = 5242880
allowable_clock_skew = 900

[filter:tempauth]
use = egg:swift#tempauth
user_s3test_backup = ${secret} .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${ports.memcached}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true
[filter:symlink]
use = egg:swift#symlink
`,
  );
  // Makes Swift read our swift.conf instead of /etc/swift's; builds the three rings in one process
  // (swift-ring-builder would take nine Python start-ups).
  w(
    'launcher.py',
    `import os, sys
from swift.common import utils
utils.set_swift_dir(os.environ['SWIFT_DIR'])
from swift.common import storage_policy, constraints
storage_policy.reload_storage_policies()
constraints.reload_constraints()
if sys.argv[1] == 'rings':
    from swift.common.ring import RingBuilder
    etc = sys.argv[2]
    for name, port in zip(('account', 'container', 'object'), sys.argv[3:6]):
        b = RingBuilder(10, 1, 1)
        b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 100})
        b.rebalance()
        b.save(os.path.join(etc, name + '.builder'))
        b.get_ring().save(os.path.join(etc, name + '.ring.gz'))
    sys.exit(0)
from swift.common.wsgi import run_wsgi
server, conf = sys.argv[2], sys.argv[3]
kw = {}
if server == 'object-server':
    from swift.obj import server as objserver
    kw['global_conf_callback'] = objserver.global_conf_callback
sys.exit(run_wsgi(conf, server, verbose=True, **kw))
`,
  );
}
