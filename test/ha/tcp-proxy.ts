/**
 * A loopback TCP proxy a test can cut: `pause()` stops forwarding in both directions (bytes wait
 * in the sockets, new connections wait for the upstream), as a network partition would, without
 * closing anything; `resume()` heals it.
 */
import net from "node:net";
import { freePort, LOOPBACK } from "../helpers/index.js";

export class TcpProxy {
  readonly port: number;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  #paused = false;
  readonly #waiting: (() => void)[] = [];

  private constructor(port: number, server: net.Server) {
    this.port = port;
    this.#server = server;
  }

  static async start(upstreamPort: number): Promise<TcpProxy> {
    const port = await freePort();
    const server = net.createServer();
    const proxy = new TcpProxy(port, server);
    server.on("connection", (client) => proxy.#accept(client, upstreamPort));
    await new Promise<void>((resolve) => server.listen(port, LOOPBACK, resolve));
    return proxy;
  }

  get url(): string {
    return `http://${LOOPBACK}:${this.port}`;
  }

  #accept(client: net.Socket, upstreamPort: number): void {
    const connect = (): void => {
      const upstream = net.connect(upstreamPort, LOOPBACK);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.#pairs.add(pair);
      upstream.on("close", () => this.#pairs.delete(pair));
      if (this.#paused) cut(pair);
      else join(pair);
    };
    if (this.#paused) this.#waiting.push(connect);
    else connect();
  }

  pause(): void {
    this.#paused = true;
    for (const pair of this.#pairs) cut(pair);
  }

  resume(): void {
    this.#paused = false;
    for (const pair of this.#pairs) join(pair);
    for (const connect of this.#waiting.splice(0)) connect();
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function join([a, b]: [net.Socket, net.Socket]): void {
  a.pipe(b);
  b.pipe(a);
}

/** Stops forwarding (and reading): bytes stay in the kernel's buffers until `join`. */
function cut([a, b]: [net.Socket, net.Socket]): void {
  a.unpipe(b);
  b.unpipe(a);
  a.pause();
  b.pause();
}
