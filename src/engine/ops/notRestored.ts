// What a restore that left members out says, for the CLI (its error line) and the extension (its
// warning): what was left out, then what it means by cause (setReader.ts RefusalCause). Only members
// no backup tool writes make the backup suspect; the target's own files in the way, or what this
// system cannot make, do not. No imports but types: the extension's bundle takes it.
import type { Refusal } from './setReader';

export function describeNotRestored(r: { readonly files: number; readonly refusals: readonly Refusal[] }): { message: string; hint: string } {
  const list = `${r.refusals.slice(0, 3).map((x) => `${x.member} (${x.reason})`).join('; ')}${r.refusals.length > 3 ? '; …' : ''}`;
  const causes = new Set(r.refusals.map((x) => x.cause));
  const hints = [r.files > 0 ? 'Everything else was restored' : 'No other file was restored'];
  if (causes.has('target')) hints.push('files in the target were in the way and were left as they are: move them away, or restore into an empty folder');
  if (causes.has('system')) hints.push('some could not be made on this system (see the warnings)');
  if (causes.has('archive')) hints.push('the backup holds entries no backup tool writes: it may have been tampered with');
  return { message: `${r.refusals.length} archive member(s) were not restored: ${list}`, hint: hints.join('; ') };
}
