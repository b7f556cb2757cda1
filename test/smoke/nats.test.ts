import { connect, Events, type NatsConnection, StringCodec } from "nats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type NatsHandle, startNats, withTimeout } from "../helpers/index.js";

const sc = StringCodec();

/** Resolves on the connection's next status event of `type`. */
function nextStatus(nc: NatsConnection, type: Events): Promise<void> {
  return (async () => {
    for await (const status of nc.status()) {
      if (status.type === type) return;
    }
    throw new Error(`connection closed before a ${type} event`);
  })();
}

function connectTo(server: NatsHandle, name: string): Promise<NatsConnection> {
  return connect({
    servers: server.url,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
    reconnectJitter: 0,
  });
}

function serveEcho(nc: NatsConnection, subject: string): void {
  nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error === null) msg.respond(sc.encode(`echo:${sc.decode(msg.data)}`));
    },
  });
}

describe("a real nats-server", () => {
  let nats: NatsHandle;
  const connections: NatsConnection[] = [];

  beforeAll(async () => {
    nats = await startNats({ monitoring: true });
  });

  afterEach(async () => {
    await Promise.all(connections.splice(0).map((nc) => nc.close()));
  });

  afterAll(async () => {
    await nats?.stop();
  });

  async function client(name: string): Promise<NatsConnection> {
    const nc = await connectTo(nats, name);
    connections.push(nc);
    return nc;
  }

  it("listens on loopback and reports healthy on its monitoring port", async () => {
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.port}`);
    const response = await fetch(`${nats.monitorUrl}/healthz`);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("delivers published messages to a subscriber, in order", async () => {
    const publisher = await client("publisher");
    const subscriber = await client("subscriber");
    const sub = subscriber.subscribe("smoke.pubsub", { max: 3 });
    await subscriber.flush();

    for (const text of ["one", "two", "three"]) publisher.publish("smoke.pubsub", sc.encode(text));
    await publisher.flush();

    const received: string[] = [];
    await withTimeout(
      (async () => {
        for await (const msg of sub) received.push(sc.decode(msg.data));
      })(),
      10_000,
      "three messages",
    );
    expect(received).toEqual(["one", "two", "three"]);
  });

  it("answers a request through a responder", async () => {
    const responder = await client("responder");
    const requester = await client("requester");
    serveEcho(responder, "smoke.echo");
    await responder.flush();

    const reply = await requester.request("smoke.echo", sc.encode("hi"), { timeout: 5_000 });
    expect(sc.decode(reply.data)).toBe("echo:hi");
    // Nobody listens here: the server says so instead of letting the request time out.
    await expect(
      requester.request("smoke.nobody", sc.encode("?"), { timeout: 5_000 }),
    ).rejects.toThrow(/503|no responders/i);
  });

  it.each([
    ["a graceful restart", async (server: NatsHandle) => server.restart()],
    [
      "a crash and restart",
      async (server: NatsHandle) => {
        await server.kill();
        await server.restart();
      },
    ],
  ])("clients reconnect after %s on the same port", async (_label, restart) => {
    const responder = await client("responder");
    const requester = await client("requester");
    serveEcho(responder, "smoke.echo.restart");
    await responder.flush();
    expect(
      sc.decode((await requester.request("smoke.echo.restart", sc.encode("before"))).data),
    ).toBe("echo:before");

    const { pid, port } = nats;
    const reconnected = Promise.all([
      nextStatus(responder, Events.Reconnect),
      nextStatus(requester, Events.Reconnect),
    ]);
    await restart(nats);
    expect(nats.pid).not.toBe(pid);
    expect(nats.port).toBe(port);

    await withTimeout(reconnected, 20_000, "both clients to reconnect");
    // The responder's subscription was re-sent on reconnect; the flush makes sure the server has it.
    await responder.flush();
    const reply = await requester.request("smoke.echo.restart", sc.encode("after"), {
      timeout: 5_000,
    });
    expect(sc.decode(reply.data)).toBe("echo:after");
  });
});

describe("nats-server with a config file", () => {
  it("enforces the config's authorization", async () => {
    const nats = await startNats({
      config: 'authorization { users = [ { user: "agent", password: "s3cret" } ] }\n',
    });
    try {
      await expect(
        connect({ servers: nats.url, reconnect: false, user: "agent", pass: "wrong" }),
      ).rejects.toThrow(/authorization/i);
      const nc = await connect({ servers: nats.url, user: "agent", pass: "s3cret" });
      await nc.flush();
      await nc.close();
    } finally {
      await nats.stop();
    }
  });
});
