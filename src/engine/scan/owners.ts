// Owner and group names for tar headers. Duplicity asks pwd/grp (NSS); we read /etc/passwd and
// /etc/group once and cache them, which gives the same answer for local accounts and costs no call per
// file. An id with no name gets '' (as duplicity writes it).
import * as fs from 'node:fs';

export class OwnerNames {
  private readonly users: ReadonlyMap<number, string>;
  private readonly groups: ReadonlyMap<number, string>;
  private readonly userIds: ReadonlyMap<string, number>;
  private readonly groupIds: ReadonlyMap<string, number>;

  /** From the text of a passwd and a group file (name:password:id:...). */
  constructor(passwdText: string, groupText: string) {
    [this.users, this.userIds] = parseIdFile(passwdText);
    [this.groups, this.groupIds] = parseIdFile(groupText);
  }

  /** The id of a user name (restore: duplicity lets the name win over the number). */
  uid(name: string): number | undefined {
    return this.userIds.get(name);
  }

  gid(name: string): number | undefined {
    return this.groupIds.get(name);
  }

  uname(uid: number): string {
    return this.users.get(uid) ?? '';
  }

  gname(gid: number): string {
    return this.groups.get(gid) ?? '';
  }

  /** The machine's names, read on first use; a missing or unreadable file means no names. */
  static system(): OwnerNames {
    systemNames ??= new OwnerNames(readOrEmpty('/etc/passwd'), readOrEmpty('/etc/group'));
    return systemNames;
  }
}

let systemNames: OwnerNames | undefined;

/** Name of a user id on this machine, '' when it has none. */
export function unameOf(uid: number): string {
  return OwnerNames.system().uname(uid);
}

/** Name of a group id on this machine, '' when it has none. */
export function gnameOf(gid: number): string {
  return OwnerNames.system().gname(gid);
}

/** Id of a user name on this machine, undefined when there is no such user. */
export function lookupUid(name: string): number | undefined {
  return OwnerNames.system().uid(name);
}

/** Id of a group name on this machine, undefined when there is no such group. */
export function lookupGid(name: string): number | undefined {
  return OwnerNames.system().gid(name);
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function parseIdFile(text: string): [Map<number, string>, Map<string, number>] {
  const out = new Map<number, string>();
  const ids = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    if (fields.length < 3 || fields[0] === '' || !/^\d+$/.test(fields[2])) continue;
    const id = Number(fields[2]);
    // getpwuid() with the "files" backend returns the first line with that id.
    if (!out.has(id)) out.set(id, fields[0]);
    if (!ids.has(fields[0])) ids.set(fields[0], id);
  }
  return [out, ids];
}
