// A lower CPU priority for a whole process, the one the extension's engine runs at (engineLauncher.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';

/**
 * The nice value of background work: the extension's engine process (engineLauncher.ts) and the cron
 * line the extension copies (folderConfig.ts). By the kernel's weights a nice-10 thread gets ~1/10 of a
 * core a nice-0 one also wants, and all of an idle one.
 */
export const BACKGROUND_NICE = 10;

/**
 * Raises this process's nice value to `nice` (never lowers it: an unprivileged process could not get
 * it back). On Linux a nice value belongs to a thread: the threads Node and V8 started already (GC,
 * compiler, signal handling) get it one by one, and the ones made later (the libuv threadpool, worker
 * threads) inherit the main thread's. Elsewhere it is the process's (macOS), or its priority class
 * (Windows: 10 is "below normal"). Best effort: a platform that refuses is left as it is.
 */
export function lowerPriority(nice: number): void {
  try {
    if (os.getPriority() >= nice) return;
    os.setPriority(nice);
  } catch {
    return;
  }
  if (process.platform !== 'linux') return;
  let threads: string[];
  try {
    threads = fs.readdirSync('/proc/self/task');
  } catch {
    return;
  }
  for (const tid of threads) {
    try {
      if (os.getPriority(Number(tid)) < nice) os.setPriority(Number(tid), nice);
    } catch {
      // a thread that has ended since
    }
  }
}
