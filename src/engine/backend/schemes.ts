// duplicity's other names of a remote's scheme, each read as the scheme it names: one table for the
// registry (which opens them with that scheme's factory), the URL parsers and the cache folder's name
// (cache/archiveDir.ts), so two spellings of one remote are one remote everywhere. No imports: the
// registry and the cache load it at every start.

/** Alias → scheme (lower case). scp:// copies with scp on the server, which changes nothing there. */
const SCHEME_ALIASES: Readonly<Record<string, string>> = {
  'boto3+s3': 's3',
  'paramiko+sftp': 'sftp',
  'pexpect+sftp': 'sftp',
  scp: 'sftp',
  'paramiko+scp': 'sftp',
  'pexpect+scp': 'sftp',
};

/** The scheme a URL scheme names (lower case; an alias gives its scheme): 'BOTO3+S3' → 's3'. */
export function canonicalScheme(scheme: string): string {
  const s = scheme.toLowerCase();
  return SCHEME_ALIASES[s] ?? s;
}

/** The scheme of a URL as canonicalScheme reads it ('boto3+s3://b' → 's3'), undefined without one. */
export function schemeOfUrl(url: string): string | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  return m ? canonicalScheme(m[1]) : undefined;
}

/** The aliases of a scheme, for messages that list what can be opened. */
export function aliasesOf(scheme: string): string[] {
  return Object.keys(SCHEME_ALIASES).filter((a) => SCHEME_ALIASES[a] === scheme);
}
