// A TCP proxy on loopback between a client and a server that injects network faults: cut a
// connection after N bytes in one direction, or stall it (stop forwarding, keep the sockets open).
import * as net from 'node:net';

export type Direction = 'up' | 'down';

export interface Fault {
  readonly kind: 'cut' | 'stall';
  /** 'up' counts client → server bytes, 'down' server → client. */
  readonly direction: Direction;
  /** The fault strikes once more than this many bytes went that way on the connection. */
  readonly afterBytes: number;
}

export interface FaultProxy {
  readonly port: number;
  /** The next `times` connections (default 1) get this fault; later ones are clean. */
  inject(fault: Fault, times?: number): void;
  /** Every connection from now on gets this fault (until clear()). */
  always(fault: Fault): void;
  clear(): void;
  /** Connections accepted so far, and how many a fault struck. */
  readonly accepted: number;
  readonly struck: number;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  const queue: Fault[] = [];
  let permanent: Fault | undefined;
  let accepted = 0;
  let struck = 0;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    accepted++;
    const fault = queue.shift() ?? permanent;
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const counts: Record<Direction, number> = { up: 0, down: 0 };
    let stalled = false;
    const killBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    const forward = (from: net.Socket, to: net.Socket, dir: Direction): void => {
      from.on('data', (chunk: Buffer) => {
        if (stalled) return; // swallowed: the peer never hears of it
        if (fault && fault.direction === dir && counts[dir] + chunk.length > fault.afterBytes) {
          const keep = Math.max(0, fault.afterBytes - counts[dir]);
          counts[dir] += keep;
          if (keep > 0) to.write(chunk.subarray(0, keep));
          struck++;
          if (fault.kind === 'cut') {
            killBoth();
          } else {
            stalled = true;
            client.pause();
            upstream.pause();
          }
          return;
        }
        counts[dir] += chunk.length;
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => {
            if (!stalled) from.resume();
          });
        }
      });
    };
    forward(client, upstream, 'up');
    forward(upstream, client, 'down');
    for (const s of [client, upstream]) {
      s.on('error', killBoth);
      s.on('close', () => {
        sockets.delete(s);
        if (!stalled) killBoth();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    inject(fault, times = 1) {
      for (let i = 0; i < times; i++) queue.push(fault);
    },
    always(fault) {
      permanent = fault;
    },
    clear() {
      queue.length = 0;
      permanent = undefined;
    },
    get accepted() {
      return accepted;
    },
    get struck() {
      return struck;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
