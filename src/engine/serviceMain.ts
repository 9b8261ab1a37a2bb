// Entry of the engine process the extension forks (bundled as dist/engineHost.js). Protocol over the
// Node IPC channel, one JSON message each way per event:
//   parent → child  { id, request }       start a request
//                   { id, cancel: true }  abort it
//   child → parent  { id, progress }      throttled progress
//                   { id, log: { level, message } }
//                   { id, result } | { id, error: { code, message, hint } }
import { codeRoute } from './codeRoute';
import { handle, toServiceError, type ServiceRequest } from './service';
import type { Logger } from './log';

type Incoming = { id: number; request?: ServiceRequest; cancel?: boolean };

const running = new Map<number, AbortController>();
/** The ways the requests served went (codeRoute: 'backup:inc-probe', 'restore:path', 'list', …). */
const served = new Set<string>();

/** For the launcher's code cache (src/launch/codeCache.ts): what this process ran, to keep its code. */
export function codeRoutes(): string[] {
  return [...served];
}

function send(msg: unknown): void {
  process.send?.(msg);
}

process.on('message', (msg: Incoming) => {
  if (msg.cancel) {
    running.get(msg.id)?.abort();
    return;
  }
  if (!msg.request) return;
  const ac = new AbortController();
  running.set(msg.id, ac);
  const log: Logger = {
    debug: (message) => send({ id: msg.id, log: { level: 'debug', message } }),
    info: (message) => send({ id: msg.id, log: { level: 'info', message } }),
    warn: (message) => send({ id: msg.id, log: { level: 'warn', message } }),
    error: (message) => send({ id: msg.id, log: { level: 'error', message } }),
  };
  const request = msg.request;
  handle(request, { signal: ac.signal, log, onProgress: (progress) => send({ id: msg.id, progress }) })
    .then((result) => {
      const r = result as { type?: string; probed?: boolean } | undefined;
      served.add(codeRoute(request.op, { type: r?.type, probed: r?.probed, path: 'path' in request ? request.path : undefined }));
      send({ id: msg.id, result });
    })
    .catch((e) => send({ id: msg.id, error: toServiceError(e) }))
    .finally(() => running.delete(msg.id));
});

// The extension host going away must not leave an orphan engine writing to a remote.
process.on('disconnect', () => {
  for (const ac of running.values()) ac.abort();
  setTimeout(() => process.exit(0), 5000).unref();
});
