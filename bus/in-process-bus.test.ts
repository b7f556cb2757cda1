import { describe, expect, it } from "vitest";
import { VirtualClock } from "../core/index.js";
import type { BusMessage, BusStatusEvent } from "./bus.js";
import {
  BusClosedError,
  BusTimeoutError,
  InvalidSubjectError,
  NoRespondersError,
  PayloadTooLargeError,
} from "./errors.js";
import { InProcessBus, InProcessHub } from "./in-process-bus.js";

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function collect(bus: InProcessBus, pattern: string): string[] {
  const seen: string[] = [];
  bus.subscribe(pattern, (m) => {
    seen.push(`${m.subject}:${dec(m.data)}`);
  });
  return seen;
}

describe("InProcessBus", () => {
  it("delivers asynchronously, in publish order, to every matching subscription", async () => {
    const bus = new InProcessBus();
    const all = collect(bus, "lb.>");
    const beats = collect(bus, "lb.v1.host.*.beat");
    bus.publish("lb.v1.host.h1.beat", enc("1"));
    bus.publish("lb.v1.host.h2.beat", enc("2"));
    bus.publish("lb.v1.host.h1.event", enc("3"));
    expect(all).toEqual([]); // nothing inside publish
    await bus.flush();
    expect(all).toEqual(["lb.v1.host.h1.beat:1", "lb.v1.host.h2.beat:2", "lb.v1.host.h1.event:3"]);
    expect(beats).toEqual(["lb.v1.host.h1.beat:1", "lb.v1.host.h2.beat:2"]);
  });

  it("matches wildcards like NATS", async () => {
    const bus = new InProcessBus();
    const star = collect(bus, "a.*.c");
    const tail = collect(bus, "a.>");
    const exact = collect(bus, "a");
    for (const s of ["a", "a.b", "a.b.c", "a.x.c", "a.b.c.d", "b.b.c"]) bus.publish(s, enc(""));
    await bus.flush();
    expect(star.map((x) => x.split(":")[0])).toEqual(["a.b.c", "a.x.c"]);
    expect(tail.map((x) => x.split(":")[0])).toEqual(["a.b", "a.b.c", "a.x.c", "a.b.c.d"]);
    expect(exact.map((x) => x.split(":")[0])).toEqual(["a"]);
  });

  it("rejects bad subjects and oversized payloads", () => {
    const bus = new InProcessBus({ maxPayload: 8 });
    expect(() => bus.publish("a.*", enc(""))).toThrow(InvalidSubjectError);
    expect(() => bus.publish("a..b", enc(""))).toThrow(InvalidSubjectError);
    expect(() => bus.publish("", enc(""))).toThrow(InvalidSubjectError);
    expect(() => bus.publish("a b", enc(""))).toThrow(InvalidSubjectError);
    expect(() => bus.subscribe("a.>.b", () => {})).toThrow(InvalidSubjectError);
    expect(() => bus.subscribe("a.b*", () => {})).toThrow(InvalidSubjectError);
    expect(() => bus.publish("a", new Uint8Array(9))).toThrow(PayloadTooLargeError);
    bus.publish("a", new Uint8Array(8));
  });

  it("stops delivering after unsubscribe, even messages already queued", async () => {
    const bus = new InProcessBus();
    const seen: string[] = [];
    const sub = bus.subscribe("x", (m) => {
      seen.push(dec(m.data));
    });
    bus.publish("x", enc("queued"));
    sub.unsubscribe();
    sub.unsubscribe();
    await bus.flush();
    expect(seen).toEqual([]);
  });

  it("gives each subscriber its own bytes", async () => {
    const bus = new InProcessBus();
    const got: Uint8Array[] = [];
    bus.subscribe("x", (m) => {
      m.data[0] = 99;
    });
    bus.subscribe("x", (m) => {
      got.push(m.data);
    });
    const payload = enc("a");
    bus.publish("x", payload);
    payload[0] = 0;
    await bus.flush();
    expect(dec(got[0] ?? new Uint8Array())).toBe("a");
  });

  it("delivers to one member of a queue group, in turn", async () => {
    const bus = new InProcessBus();
    const a = collect(bus, "q");
    const members: string[] = [];
    bus.subscribe("q", () => void members.push("m1"), { queue: "g" });
    bus.subscribe("q", () => void members.push("m2"), { queue: "g" });
    for (let i = 0; i < 4; i++) bus.publish("q", enc(String(i)));
    await bus.flush();
    expect(a).toHaveLength(4);
    expect(members).toEqual(["m1", "m2", "m1", "m2"]);
  });

  it("answers requests through the reply subject", async () => {
    const hub = new InProcessHub();
    const server = hub.connect("server");
    const client = hub.connect("client");
    server.subscribe("svc.echo", (m: BusMessage) => {
      if (m.reply !== undefined) server.publish(m.reply, enc(`echo:${dec(m.data)}`));
    });
    expect(dec(await client.request("svc.echo", enc("hi"), { timeoutMs: 1000 }))).toBe("echo:hi");
  });

  it("rejects a request nobody listens to with NoRespondersError", async () => {
    const bus = new InProcessBus();
    await expect(bus.request("nobody.home", enc(""), { timeoutMs: 10 })).rejects.toBeInstanceOf(
      NoRespondersError,
    );
  });

  it("times out requests through the Clock", async () => {
    const clock = new VirtualClock(0);
    const bus = new InProcessBus({ clock });
    bus.subscribe("svc.silent", () => {});
    let error: unknown;
    const pending = bus.request("svc.silent", enc(""), { timeoutMs: 500 }).catch((e: unknown) => {
      error = e;
    });
    await clock.advance(499);
    expect(error).toBeUndefined();
    await clock.advance(1);
    await pending;
    expect(error).toBeInstanceOf(BusTimeoutError);
    expect((error as BusTimeoutError).timeoutMs).toBe(500);
    expect(clock.pendingTimers).toBe(0);
  });

  it("keeps delivering when a handler throws or rejects, and counts the failures", async () => {
    const bus = new InProcessBus();
    const seen = collect(bus, "x");
    bus.subscribe("x", () => {
      throw new Error("boom");
    });
    bus.subscribe("x", async () => {
      throw new Error("async boom");
    });
    bus.publish("x", enc("1"));
    bus.publish("x", enc("2"));
    await bus.flush();
    await new Promise((r) => setImmediate(r));
    expect(seen).toHaveLength(2);
    expect(bus.handlerErrors).toBe(4);
  });

  it("reports a simulated outage, loses messages meanwhile and sends held publishes after", async () => {
    const hub = new InProcessHub();
    const agent = hub.connect("agent");
    const broker = hub.connect("broker");
    const events: string[] = [];
    agent.onStatus((e: BusStatusEvent) => events.push(e.status));
    const atAgent = collect(agent, "to.agent");
    const atBroker = collect(broker, "to.broker");
    agent.simulateDisconnect();
    expect(agent.status).toBe("disconnected");
    broker.publish("to.agent", enc("lost"));
    agent.publish("to.broker", enc("held"));
    await hub.settled();
    expect(atAgent).toEqual([]);
    expect(atBroker).toEqual([]);
    agent.simulateReconnect();
    await hub.settled();
    expect(events).toEqual(["disconnected", "reconnected"]);
    expect(atBroker).toEqual(["to.broker:held"]);
    broker.publish("to.agent", enc("after"));
    await hub.settled();
    expect(atAgent).toEqual(["to.agent:after"]);
  });

  it("closes one connection without affecting others, failing its pending requests", async () => {
    const clock = new VirtualClock(0);
    const hub = new InProcessHub({ clock });
    const a = hub.connect();
    const b = hub.connect();
    b.subscribe("svc", () => {});
    const seenByB = collect(b, "ping");
    const statuses: string[] = [];
    a.onStatus((e) => statuses.push(e.status));
    const pending = a.request("svc", enc(""), { timeoutMs: 1000 });
    await a.close();
    await expect(pending).rejects.toBeInstanceOf(BusClosedError);
    expect(() => a.publish("ping", enc(""))).toThrow(BusClosedError);
    await expect(a.request("svc", enc(""), { timeoutMs: 1 })).rejects.toBeInstanceOf(
      BusClosedError,
    );
    expect(statuses).toEqual(["closed"]);
    expect(a.status).toBe("closed");
    b.publish("ping", enc("still"));
    await hub.settled();
    expect(seenByB).toEqual(["ping:still"]);
  });

  it("drains: running handlers finish and may still reply, then the connection closes", async () => {
    const hub = new InProcessHub();
    const agent = hub.connect("agent");
    const broker = hub.connect("broker");
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    agent.subscribe("cmd", async (m) => {
      await gate;
      if (m.reply !== undefined) agent.publish(m.reply, enc("done"));
    });
    const answer = broker.request("cmd", enc(""), { timeoutMs: 10_000 });
    await hub.settled();
    const drained = agent.drain();
    expect(() => agent.subscribe("other", () => {})).toThrow(BusClosedError);
    release();
    await drained;
    expect(dec(await answer)).toBe("done");
    expect(agent.status).toBe("closed");
  });
});
