import { createServer, type Server } from "node:net";

/** Loopback only: the harness never listens on another address. */
export const LOOPBACK = "127.0.0.1";

/**
 * Ports this process has already handed out. The kernel may give a port back soon after it was
 * closed; remembering them keeps two servers of one test run from being told the same port.
 */
const handedOut = new Set<number>();

const MAX_ATTEMPTS = 20;

function listenOnEphemeral(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error(`unexpected server address ${JSON.stringify(address)}`);
  }
  return address.port;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * `count` distinct free TCP ports on 127.0.0.1. All of them are held open at the same time before
 * any is released, so they differ from each other, and none was handed out before by this process.
 * (Another process could still take one before it is used: the usual, small, race.)
 */
export async function freePorts(count: number): Promise<number[]> {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`freePorts: count must be a non-negative integer, got ${count}`);
  }
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    let attempts = 0;
    while (ports.length < count) {
      if (attempts++ >= count * MAX_ATTEMPTS) {
        throw new Error(`freePorts: could not find ${count} unused loopback ports`);
      }
      const server = await listenOnEphemeral();
      held.push(server);
      const port = portOf(server);
      if (!handedOut.has(port) && !ports.includes(port)) {
        ports.push(port);
      }
    }
  } finally {
    await Promise.all(held.map(close));
  }
  for (const port of ports) handedOut.add(port);
  return ports;
}

/** One free TCP port on 127.0.0.1 (see `freePorts`). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error("freePort: no port");
  return port;
}
