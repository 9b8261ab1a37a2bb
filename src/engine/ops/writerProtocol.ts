// Messages between restoreOutput.ts (main thread) and restoreWriterWorker.ts (worker thread): path
// components and link targets travel as latin1 strings, file data in whole ArrayBuffers.
import type { EntryMeta } from '../types';
import type { Refusal } from './setReader';
import type { WireError } from '../util/engineWorker';

export interface WriterInit {
  readonly target: string;
  readonly force: boolean;
  readonly restoreOwners: boolean;
}

export type WireMeta = Omit<EntryMeta, 'linkname'> & { readonly linkname?: string };

export type WriterOp =
  | { readonly t: 'begin'; readonly index: string[]; readonly meta: WireMeta }
  /** Bytes [off, off + len) of the batch's buffer, appended to the open file. */
  | { readonly t: 'data'; readonly off: number; readonly len: number }
  | { readonly t: 'end' }
  | { readonly t: 'abort' }
  | { readonly t: 'finish' };

export interface WriterBatch {
  readonly ops: WriterOp[];
  /** Transferred; given back in the ack. */
  readonly buf: ArrayBuffer | null;
}

export interface WriterAck {
  readonly buf: ArrayBuffer | null;
  /** Totals so far. */
  readonly files: number;
  readonly bytes: number;
  /** Since the last ack. */
  readonly refusals: Refusal[];
  readonly warnings: string[];
  /** The first error; nothing after it was written. */
  readonly error?: WireError;
}

export function encodeMeta(m: EntryMeta): WireMeta {
  const { linkname, ...rest } = m;
  return linkname === undefined ? rest : { ...rest, linkname: linkname.toString('latin1') };
}

export function decodeMeta(m: WireMeta): EntryMeta {
  return m.linkname === undefined ? (m as EntryMeta) : { ...m, linkname: Buffer.from(m.linkname, 'latin1') };
}
