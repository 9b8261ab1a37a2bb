// ASCII armor (RFC 4880 §6.2) → binary, streaming. duplicity never armors, but `--gpg-options --armor`
// makes armored files still named .gpg (FORMAT.md §13), so readers sniff for the header line.
import { OffsiteError } from '../errors';


/** True when `head` (the first bytes of a file) starts, after blank space, with an armor header line. */
export function looksArmored(head: Buffer): boolean {
  const s = head.subarray(0, 256).toString('latin1').trimStart();
  return s.startsWith('-----BEGIN PGP');
}

/**
 * Decodes an armored OpenPGP block whose label is one of `labels` (by default a message); the checksum
 * line is skipped (a message's MDC protects its content, a key's own checks its packets).
 */
export async function* dearmor(source: AsyncIterable<Buffer>, labels: readonly string[] = ['MESSAGE']): AsyncGenerator<Buffer> {
  let state: 'pre' | 'headers' | 'body' | 'done' = 'pre';
  let partialLine = '';
  let b64 = '';
  const decodeReady = (final: boolean): Buffer | undefined => {
    const n = final ? b64.length : b64.length - (b64.length % 4);
    if (n === 0) return undefined;
    const out = Buffer.from(b64.slice(0, n), 'base64');
    b64 = b64.slice(n);
    return out;
  };
  const onLine = (raw: string): void => {
    const line = raw.replace(/\r$/, '');
    switch (state) {
      case 'pre':
        if (line.trim().startsWith('-----BEGIN PGP')) {
          if (!labels.some((l) => line.trim() === `-----BEGIN PGP ${l}-----`)) {
            throw new OffsiteError('decrypt', `Not an OpenPGP message (armor says "${line.trim()}")`, {
              hint: 'Give an encrypted file (a .gpg volume or manifest), not a key or signature',
            });
          }
          state = 'headers';
        }
        return;
      case 'headers':
        if (line.trim() === '') state = 'body';
        else if (!/^[A-Za-z][\w-]*: /.test(line)) {
          state = 'body'; // tolerate a missing blank line
          onLine(line);
        }
        return;
      case 'body': {
        const t = line.trim();
        if (t.startsWith('-----END PGP') || (t.startsWith('=') && t.length === 5)) {
          state = 'done';
          return;
        }
        b64 += t.replace(/[^A-Za-z0-9+/=]/g, '');
        return;
      }
      case 'done':
        return;
    }
  };
  for await (const chunk of source) {
    const text = partialLine + chunk.toString('latin1');
    const lines = text.split('\n');
    partialLine = lines.pop() ?? '';
    for (const l of lines) onLine(l);
    const out = decodeReady(false);
    if (out) yield out;
    if ((state as string) === 'done') break;
  }
  if (partialLine) onLine(partialLine);
  const out = decodeReady(true);
  if (out) yield out;
  if ((state as string) === 'pre') {
    throw new OffsiteError('decrypt', 'Not an OpenPGP message (no armor header line)', { hint: 'Give an encrypted file (a .gpg volume or manifest)' });
  }
}
