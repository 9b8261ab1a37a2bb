// OpenSSH known_hosts checking, done by us (ssh2 only hands us the server's key): plain and hashed
// (`|1|salt|hash`) host fields, `[host]:port` for non-default ports, wildcard and negated patterns,
// and the @revoked marker. @cert-authority lines trust no key (ssh2 does not verify host certificates):
// an unknown host one covers is only said to be covered.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffsiteError } from '../../errors';

/**
 * The host key algorithms we can ask a server for, strongest first (OpenSSH's order), each with the
 * type of the key it gives as known_hosts writes it.
 */
const HOST_KEY_ALGORITHMS: ReadonlyArray<readonly [algorithm: string, type: string]> = [
  ['ssh-ed25519', 'ssh-ed25519'],
  ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp256'],
  ['ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp384'],
  ['ecdsa-sha2-nistp521', 'ecdsa-sha2-nistp521'],
  ['rsa-sha2-512', 'ssh-rsa'],
  ['rsa-sha2-256', 'ssh-rsa'],
  ['ssh-rsa', 'ssh-rsa'],
];
const NEGOTIABLE_TYPES = new Set(HOST_KEY_ALGORITHMS.map(([, t]) => t));

/**
 * The algorithms that give a key of one of these known_hosts types, strongest first whatever the
 * order of the types: what to ask a server for first, as OpenSSH does for a host it knows.
 */
export function hostKeyAlgorithmsFor(types: readonly string[]): string[] {
  return HOST_KEY_ALGORITHMS.filter(([, t]) => types.includes(t)).map(([a]) => a);
}

export interface HostKey {
  /** The key's type as known_hosts writes it: 'ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', … */
  readonly type: string;
  /** The key blob (SSH wire format). */
  readonly blob: Buffer;
}

/** `SHA256:` + unpadded base64 of the blob's SHA-256, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The type string at the start of an SSH public key blob. */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  return n > 0 && n < 64 && blob.length >= 4 + n ? blob.subarray(4, 4 + n).toString('latin1') : 'unknown';
}

interface Entry {
  readonly marker?: 'revoked' | 'cert-authority';
  readonly hosts: string;
  readonly type: string;
  readonly blob: Buffer;
  readonly file: string;
  readonly line: number;
}

export type HostKeyVerdict =
  /** A line for this host has this very key. */
  | { readonly kind: 'known'; readonly file: string; readonly line: number }
  /** The host is not in any file, or only with keys of types we cannot ask for (`knownTypes`: ssh-dss, sk-…). */
  | {
      readonly kind: 'unknown';
      readonly knownTypes: readonly string[];
      /** A @cert-authority line for the host: ssh trusts keys it signed, which we cannot check. */
      readonly certAuthority?: { readonly file: string; readonly line: number };
    }
  /**
   * The host is known with other keys, none of them this one: possibly an attack. As OpenSSH, whatever
   * their type: a server that still had the known key would have shown it (we ask for the known types
   * first), and a man in the middle shows a key of any type he has.
   */
  | { readonly kind: 'changed'; readonly file: string; readonly line: number; readonly knownType: string }
  /** The key is marked @revoked. */
  | { readonly kind: 'revoked'; readonly file: string; readonly line: number };

/** The name known_hosts files use for a host: `host` on port 22, else `[host]:port`. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export class KnownHosts {
  private constructor(private readonly entries: readonly Entry[]) {}

  /** Reads the files that exist (missing ones are simply empty). */
  static load(files: readonly string[]): KnownHosts {
    const entries: Entry[] = [];
    for (const file of files) {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new OffsiteError('config', `Cannot read the known_hosts file ${file}: ${(e as Error).message}`, {
          cause: e,
          file,
          hint: 'Give a known_hosts file (--known-hosts, UserKnownHostsFile) that is a readable file',
        });
      }
      text.split('\n').forEach((raw, i) => {
        const fields = raw.trim().split(/\s+/);
        if (!fields[0] || fields[0].startsWith('#')) return;
        let marker: Entry['marker'];
        if (fields[0].startsWith('@')) {
          const m = fields.shift()!.slice(1);
          if (m !== 'revoked' && m !== 'cert-authority') return;
          marker = m;
        }
        const [hosts, type, b64] = fields;
        if (!hosts || !type || !b64) return;
        entries.push({ marker, hosts, type, blob: Buffer.from(b64, 'base64'), file, line: i + 1 });
      });
    }
    return new KnownHosts(entries);
  }

  /** The key types the host known_hosts names `name` (hostKeyName, or a HostKeyAlias) is known with (to ask the server for one of those first). */
  typesFor(name: string): string[] {
    return [...new Set(this.entries.filter((e) => !e.marker && hostsMatch(e.hosts, name)).map((e) => e.type))];
  }

  /** What known_hosts says of `key` shown by the host it names `name` (hostKeyName, or a HostKeyAlias). */
  check(name: string, key: HostKey): HostKeyVerdict {
    // A revoked key is refused whatever host it is presented for.
    const revoked = this.entries.find((e) => e.marker === 'revoked' && e.blob.equals(key.blob));
    if (revoked) return { kind: 'revoked', file: revoked.file, line: revoked.line };
    const forHost = this.entries.filter((e) => !e.marker && hostsMatch(e.hosts, name));
    const same = forHost.find((e) => e.blob.equals(key.blob));
    if (same) return { kind: 'known', file: same.file, line: same.line };
    const changed = forHost.find((e) => e.type === key.type) ?? forHost.find((e) => NEGOTIABLE_TYPES.has(e.type));
    if (changed) return { kind: 'changed', file: changed.file, line: changed.line, knownType: changed.type };
    const ca = this.entries.find((e) => e.marker === 'cert-authority' && hostsMatch(e.hosts, name));
    return { kind: 'unknown', knownTypes: [...new Set(forHost.map((e) => e.type))], ...(ca ? { certAuthority: { file: ca.file, line: ca.line } } : {}) };
  }
}

/**
 * Appends a host's key to a known_hosts file (creating it, and its folder, private) under `name`
 * (hostKeyName, or a HostKeyAlias); with `hash`, the name hashed as OpenSSH writes it under HashKnownHosts yes.
 */
export function recordHostKey(file: string, name: string, key: HostKey, opts: { hash?: boolean } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) prefix = '\n';
  } catch {
    // a new file
  }
  const field = opts.hash ? hashHostName(name) : name;
  fs.appendFileSync(file, `${prefix}${field} ${key.type} ${key.blob.toString('base64')}\n`, { mode: 0o600 });
}

/** A hashed host field as `ssh-keygen -H` writes it (for tests and for users who want hashing). */
export function hashHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const hash = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${hash.toString('base64')}`;
}

function hostsMatch(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt64, hash64] = field.split('|');
    if (!salt64 || !hash64) return false;
    const want = Buffer.from(hash64, 'base64');
    const got = createHmac('sha1', Buffer.from(salt64, 'base64')).update(name).digest();
    return want.length === got.length && want.equals(got);
  }
  // Comma-separated patterns; a matching negated pattern wins over any positive one.
  let matched = false;
  for (const pattern of field.split(',')) {
    const negated = pattern.startsWith('!');
    if (globMatch(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatch(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern.toLowerCase() === name.toLowerCase();
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(name);
}
