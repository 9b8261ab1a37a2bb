// Progress as plain data, reported through one throttled callback (restic's progress.Counter idea):
// stages call report() as often as they like; the consumer sees at most one event per interval, plus
// the last one.

export interface Progress {
  readonly operation: 'backup' | 'restore' | 'verify' | 'list';
  /** 'scan', 'upload', 'download', 'write', 'done' … */
  readonly phase: string;
  readonly files: number;
  /** Bytes read (backup) or written (restore) so far. */
  readonly bytes: number;
  readonly uploadedBytes?: number;
  readonly path?: string;
}

export type ProgressSink = (p: Progress) => void;

export function throttled(sink: ProgressSink | undefined, intervalMs = 100): (p: Progress, force?: boolean) => void {
  if (!sink) return () => {};
  let last = 0;
  return (p, force = false) => {
    const now = Date.now();
    if (force || now - last >= intervalMs) {
      last = now;
      sink(p);
    }
  };
}
