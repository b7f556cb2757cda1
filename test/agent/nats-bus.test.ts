/**
 * The NatsBus against a real nats-server on loopback: the Bus port's semantics (the same ones the
 * InProcessBus unit tests check) hold over the wire, errors map to the typed ones, and the bus
 * reports a lost connection and recovers its subscriptions when the server comes back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  BusClosedError,
  type BusStatus,
  BusTimeoutError,
  NatsBus,
  NoRespondersError,
  PayloadTooLargeError,
} from "../../bus/index.js";
import { type NatsHandle, startNats, waitFor, withTimeout } from "../helpers/index.js";

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe("NatsBus", () => {
  let nats: NatsHandle;
  const buses: NatsBus[] = [];

  beforeAll(async () => {
    nats = await startNats();
  });

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((bus) => bus.close()));
  });

  afterAll(async () => {
    await nats?.stop();
  });

  async function connect(name: string, coalescePublishes = false): Promise<NatsBus> {
    const bus = await NatsBus.connect({
      servers: nats.url,
      name,
      reconnectTimeWaitMs: 100,
      coalescePublishes,
    });
    buses.push(bus);
    return bus;
  }

  it("delivers published messages to wildcard subscriptions, in order", async () => {
    const a = await connect("a");
    const b = await connect("b");
    const seen: string[] = [];
    const tail: string[] = [];
    b.subscribe("lb.v1.host.*.beat", (m) => {
      seen.push(`${m.subject}=${dec(m.data)}`);
    });
    b.subscribe("lb.>", (m) => {
      tail.push(m.subject);
    });
    await b.flush();
    for (let i = 1; i <= 5; i++) a.publish(`lb.v1.host.h${i % 2}.beat`, enc(String(i)));
    a.publish("lb.v1.host.h1.event", enc("e"));
    await a.flush();
    await waitFor(() => tail.length === 6, { what: "six messages" });
    expect(seen).toEqual([
      "lb.v1.host.h1.beat=1",
      "lb.v1.host.h0.beat=2",
      "lb.v1.host.h1.beat=3",
      "lb.v1.host.h0.beat=4",
      "lb.v1.host.h1.beat=5",
    ]);
  });

  it("coalescing publishes keeps their order, also ahead of a later request, and answers requests", async () => {
    const a = await connect("coalescing", true);
    const b = await connect("b");
    const seen: string[] = [];
    b.subscribe("lb.>", (m) => {
      seen.push(dec(m.data));
      if (m.reply !== undefined) b.publish(m.reply, enc(`ok:${seen.length}`));
    });
    await b.flush();
    // From timers of their own, as agents publish: each turn's publishes leave together.
    await Promise.all(
      [1, 2, 3].map(
        (i) =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              a.publish(`lb.t${i}`, enc(String(i)));
              a.publish(`lb.t${i}`, enc(`${i}b`));
              resolve();
            }, i),
          ),
      ),
    );
    a.publish("lb.last", enc("4"));
    // The request goes after everything published before it, and is answered through the queue.
    expect(dec(await a.request("lb.req", enc("req"), { timeoutMs: 5000 }))).toBe("ok:8");
    expect(seen).toEqual(["1", "1b", "2", "2b", "3", "3b", "4", "req"]);
    await a.close();
    expect(() => a.publish("lb.t", enc("late"))).toThrow(BusClosedError);
  });

  it("answers requests, and maps no responders and timeouts to typed errors", async () => {
    const server = await connect("server");
    const client = await connect("client");
    server.subscribe("svc.echo", (m) => {
      if (m.reply !== undefined) server.publish(m.reply, enc(`echo:${dec(m.data)}`));
    });
    server.subscribe("svc.silent", () => {});
    await server.flush();
    expect(dec(await client.request("svc.echo", enc("hi"), { timeoutMs: 5000 }))).toBe("echo:hi");
    const none = await client.request("svc.nobody", enc(""), { timeoutMs: 5000 }).catch((e) => e);
    expect(none).toBeInstanceOf(NoRespondersError);
    expect((none as NoRespondersError).cause).toBeDefined();
    const slow = await client.request("svc.silent", enc(""), { timeoutMs: 200 }).catch((e) => e);
    expect(slow).toBeInstanceOf(BusTimeoutError);
    expect((slow as BusTimeoutError).timeoutMs).toBe(200);
  });

  it("survives handlers that throw, and refuses oversized payloads", async () => {
    const bus = await connect("handlers");
    const seen: string[] = [];
    bus.subscribe("x", () => {
      throw new Error("boom");
    });
    bus.subscribe("x", async () => {
      throw new Error("async boom");
    });
    bus.subscribe("x", (m) => {
      seen.push(dec(m.data));
    });
    await bus.flush();
    bus.publish("x", enc("1"));
    bus.publish("x", enc("2"));
    await bus.flush();
    await waitFor(() => seen.length === 2 && bus.handlerErrors === 4, { what: "two deliveries" });
    expect(bus.maxPayload).toBeGreaterThan(0);
    expect(() => bus.publish("x", new Uint8Array(bus.maxPayload + 1))).toThrow(
      PayloadTooLargeError,
    );
  });

  it("reports a lost server, reconnects when it returns, and keeps its subscriptions", async () => {
    const agent = await connect("agent");
    const broker = await connect("broker");
    const statuses: BusStatus[] = [];
    agent.onStatus((e) => statuses.push(e.status));
    agent.subscribe("svc.agent", (m) => {
      if (m.reply !== undefined) agent.publish(m.reply, enc("here"));
    });
    await agent.flush();
    expect(dec(await broker.request("svc.agent", enc(""), { timeoutMs: 5000 }))).toBe("here");

    await nats.restart();
    await waitFor(() => statuses.includes("reconnected"), {
      what: "the agent's bus to reconnect",
      timeoutMs: 20_000,
    });
    expect(statuses.slice(0, 2)).toEqual(["disconnected", "reconnected"]);
    await waitFor(() => broker.status === "connected", { what: "the broker's bus to reconnect" });
    // After a reconnect the client resubscribes: requests reach the agent again.
    await waitFor(
      async () => dec(await broker.request("svc.agent", enc(""), { timeoutMs: 1000 })) === "here",
      { what: "a request after the restart", timeoutMs: 20_000 },
    );
  });

  it("drains and closes: closed errors afterwards, a closed status event", async () => {
    const bus = await connect("closing");
    const closed = new Promise<void>((resolve) =>
      bus.onStatus((e) => {
        if (e.status === "closed") resolve();
      }),
    );
    await bus.drain();
    await withTimeout(closed, 10_000, "the closed event");
    expect(bus.status).toBe("closed");
    expect(() => bus.publish("x", enc(""))).toThrow(BusClosedError);
    await expect(bus.request("x", enc(""), { timeoutMs: 100 })).rejects.toBeInstanceOf(
      BusClosedError,
    );
    await bus.close();
  });

  it("fails to connect to a server that is not there", async () => {
    await expect(
      NatsBus.connect({ servers: "nats://127.0.0.1:1", name: "nowhere" }),
    ).rejects.toThrow(/cannot connect to NATS/);
  });
});
