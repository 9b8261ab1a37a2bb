// A TCP server that accepts connections and never answers: a hung server, or a link that died after
// the connection was made (for tests of timeouts).
import * as net from 'node:net';

/** A TCP server that accepts connections, reads what is sent and never answers; counts the requests. */
export async function silentListener(): Promise<{ port: number; requests: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let requests = 0;
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => {
      // One request line per request (bodies are not HTTP verbs at a line start, for these tests).
      requests += (d.toString('latin1').match(/^(GET|HEAD|PUT|POST|DELETE) \S+ HTTP\/1\.1\r$/gm) ?? []).length;
    });
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests: () => requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
