// A TCP proxy on 127.0.0.1 in front of a real server (PostgreSQL in the tests): cut() plays an outage (open
// connections reset, new ones refused), stall() a server that stops answering (bytes are held, nothing is closed),
// restore() brings either back.
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Resets every open connection and refuses new ones, as a database that went away. */
  cut(): Promise<void>;
  /** Holds every byte either way, on open and new connections alike, without closing anything. */
  stall(): void;
  /** Listens again on the same port after a cut; lets the held bytes through after a stall. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  /** Bytes held while stalled, with where each was going, in order. */
  let held: Array<{ to: net.Socket; chunk: Buffer }> = [];
  let stalled = false;
  const forward = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (stalled) held.push({ to, chunk });
      else to.write(chunk);
    });
    from.on('close', () => to.destroy());
  };
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const createServer = () =>
    net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      track(client);
      track(upstream);
      forward(client, upstream);
      forward(upstream, client);
    });
  let server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  const stop = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.resetAndDestroy();
    held = [];
    await closed;
  };

  return {
    port,
    cut: stop,
    stall() {
      stalled = true;
    },
    async restore() {
      if (stalled) {
        stalled = false;
        for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
        return;
      }
      server = createServer();
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    close: stop,
  };
}
