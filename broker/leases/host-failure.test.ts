/**
 * Lost hosts and reconciliation, end to end in one process: a Broker on an in-process hub with
 * real agents (Agent + SimDriver, `startSimAgents`) on a VirtualClock. An agent that stops without
 * a word goes DOWN after the TTL and its leases follow on_host_failure (restarted elsewhere, or
 * FAILED); a reservation moves or waits as PENDING; a partitioned agent that comes back has its
 * stale workloads stopped; a restarted agent gets its missing workloads started again.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Agent, SimDriver } from "../../agent/index.js";
import { hostSubject, type InProcessBus, InProcessHub, seededRandom } from "../../bus/index.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import { agentCodecs } from "../../proto/index.js";
import { type SimAgents, startSimAgents } from "../all-in-one.js";
import { Broker } from "../broker.js";
import type { Lease, LeaseSpec, OnHostFailure, WindowSpec } from "./model.js";
import { testLeaseSpec } from "./test-support.js";

const T0 = 1_900_000_000_000;
const GIB = 1024;
const TTL = 10_000;

function spec(
  memoryGib: number,
  onHostFailure: OnHostFailure,
  window: WindowSpec = { kind: "immediate", durationMs: 3_600_000 },
): LeaseSpec {
  return testLeaseSpec(memoryGib, { onHostFailure, window });
}

interface Cluster {
  clock: VirtualClock;
  hub: InProcessHub;
  broker: Broker;
  sim: SimAgents;
  /** Latest heartbeat lease ids per host, as seen on the hub. */
  beats: Map<string, readonly string[]>;
  agent(hostId: string): Agent;
  /** The agent's own connection to the hub (to partition it). */
  connection(hostId: string): InProcessBus;
  lease(id: string): Lease;
  submit(s: LeaseSpec): Promise<Lease>;
}

const running: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of running.splice(0).reverse()) await stop();
});

async function cluster(hosts = 3, memoryGib = 8): Promise<Cluster> {
  const clock = new VirtualClock(T0);
  const logger = silentLogger();
  const hub = new InProcessHub({ clock });
  const broker = new Broker({
    clock,
    logger,
    grpcAddress: "127.0.0.1:0",
    bus: hub.connect("broker"),
    epoch: 5,
    heartbeatIntervalMs: 1000,
    liveness: { suspectAfterMs: 3000, downAfterMs: TTL, checkEveryMs: 500 },
    random: seededRandom(3),
    timings: { stopGraceMs: 500 },
  });
  await broker.start();
  running.push(() => broker.stop(100));
  const connections = new Map<string, InProcessBus>();
  const sim = await startSimAgents({
    count: hosts,
    cpus: 8,
    memoryGib,
    zones: 1,
    bootMs: 100,
    shutdownMs: 100,
    clock,
    logger,
    connect: (id) => {
      const bus = hub.connect(id);
      connections.set(id, bus);
      return bus;
    },
    heartbeatIntervalMs: 1000,
  });
  running.push(() => sim.stop());
  const beats = new Map<string, readonly string[]>();
  const observer = hub.connect("observer");
  observer.subscribe("lb.v1.host.*.beat", (m) => {
    const beat = agentCodecs.heartbeat.decode(m.data);
    beats.set(beat.hostId, beat.leaseIds);
  });
  await clock.advance(1000);
  expect(broker.hosts.views().map((h) => h.state)).toEqual(Array(hosts).fill("READY"));
  return {
    clock,
    hub,
    broker,
    sim,
    beats,
    agent(hostId) {
      const agent = sim.agents.find((a) => a.hostId === hostId);
      if (agent === undefined) throw new Error(`no agent ${hostId}`);
      return agent;
    },
    connection(hostId) {
      const bus = connections.get(hostId);
      if (bus === undefined) throw new Error(`no connection for ${hostId}`);
      return bus;
    },
    lease: (id) => broker.leases.get(id).value,
    async submit(s) {
      const { lease } = await broker.leases.submit(s);
      await clock.advance(1000);
      return broker.leases.get(lease.id).value;
    },
  };
}

describe("a host that goes DOWN", () => {
  it("restarts its on_host_failure=restart leases on another host, for the rest of their window", async () => {
    const c = await cluster();
    const lease = await c.submit(spec(2, "restart"));
    expect(lease.state).toBe("ACTIVE");
    const lost = lease.hostId;
    await c.agent(lost).stop(); // dies without a word: no more heartbeats
    await c.clock.advance(3000);
    expect(c.broker.hosts.view(lost).state).toBe("SUSPECT");
    expect(c.lease(lease.id).hostId).toBe(lost);
    await c.clock.advance(TTL);
    expect(c.broker.hosts.view(lost).state).toBe("DOWN");
    const moved = c.lease(lease.id);
    expect(moved.state).toBe("ACTIVE");
    expect(moved.hostId).not.toBe(lost);
    expect(moved.end).toBe(lease.end);
    expect(moved.history.at(-1)).toMatchObject({ hostId: moved.hostId, reason: "restarted" });
    expect(c.beats.get(moved.hostId)).toContain(lease.id);
    expect(c.broker.leases.corrections.restartedElsewhere).toBe(1);
  });

  it("fails its on_host_failure=fail leases", async () => {
    const c = await cluster();
    const lease = await c.submit(spec(2, "fail"));
    await c.agent(lease.hostId).stop();
    await c.clock.advance(TTL + 1000);
    const failed = c.lease(lease.id);
    expect(failed.state).toBe("FAILED");
    expect(failed.statusMessage).toContain("on_host_failure: fail");
    expect(c.broker.leases.corrections.failedWithHost).toBe(1);
    expect(c.broker.leases.corrections.restartedElsewhere).toBe(0);
  });

  it("fails a restart lease when no other host has room", async () => {
    const c = await cluster(2, 8);
    const a = await c.submit(spec(8, "restart"));
    const b = await c.submit(spec(8, "restart"));
    expect(a.hostId).not.toBe(b.hostId);
    await c.agent(a.hostId).stop();
    await c.clock.advance(TTL + 1000);
    expect(c.lease(a.id).state).toBe("FAILED");
    expect(c.lease(a.id).statusMessage).toContain("no host can take");
    expect(c.lease(b.id)).toMatchObject({ state: "ACTIVE", hostId: b.hostId });
    expect(c.broker.leases.corrections.failedWithHost).toBe(1);
  });

  it("moves a reservation on it to another host, or leaves it PENDING when none has room", async () => {
    const c = await cluster(2, 8);
    const window: WindowSpec = { kind: "reserved", start: T0 + 3_600_000, durationMs: 3_600_000 };
    const small = await c.submit(spec(4, "fail", window));
    expect(small.state).toBe("RESERVED");
    // Fill the other host's window, so that only part of it stays free.
    const other = await c.submit(spec(8, "fail", window));
    expect(other.hostId).not.toBe(small.hostId);
    const big = await c.submit(spec(4, "fail", window));
    expect(big.hostId).toBe(small.hostId);
    await c.agent(small.hostId).stop();
    await c.clock.advance(TTL + 1000);
    // Neither fits on the full survivor: both wait.
    for (const id of [small.id, big.id]) {
      expect(c.lease(id)).toMatchObject({ state: "PENDING", hostId: "" });
      expect(c.lease(id).statusMessage).toContain("is down");
    }
    expect(c.lease(other.id).state).toBe("RESERVED");
  });

  it("moves a reservation to a host with room", async () => {
    const c = await cluster(3, 8);
    const window: WindowSpec = { kind: "reserved", start: T0 + 3_600_000, durationMs: 3_600_000 };
    const r = await c.submit(spec(4, "fail", window));
    await c.agent(r.hostId).stop();
    await c.clock.advance(TTL + 1000);
    const moved = c.lease(r.id);
    expect(moved.state).toBe("RESERVED");
    expect(moved.hostId).not.toBe(r.hostId);
    expect(moved.start).toBe(r.start);
    expect(moved.history.at(-1)).toMatchObject({ reason: "replanned" });
    expect(c.broker.leases.corrections.reservationsMoved).toBe(1);
  });
});

describe("reconciliation", () => {
  it("a partitioned agent that comes back after its leases moved has its stale copies stopped, once", async () => {
    const c = await cluster();
    const lease = await c.submit(spec(2, "restart"));
    const cut = lease.hostId;
    // Cut the agent's connection: it keeps its workload, hears nothing, and its beats are held.
    c.connection(cut).simulateDisconnect();
    await c.clock.advance(TTL + 1000);
    const moved = c.lease(lease.id);
    expect(moved.hostId).not.toBe(cut);
    expect(moved.state).toBe("ACTIVE");
    expect(c.beats.get(cut)).toContain(lease.id); // its last beat before the cut
    c.connection(cut).simulateReconnect();
    await c.clock.advance(3000);
    expect(c.broker.hosts.view(cut).state).toBe("READY");
    expect(c.beats.get(cut)).not.toContain(lease.id);
    expect(c.beats.get(moved.hostId)).toContain(lease.id);
    expect(c.broker.leases.corrections.staleStopped).toBe(1);
    await c.clock.advance(5000);
    expect(c.broker.leases.corrections.staleStopped).toBe(1);
  });

  it("stops a workload reported by a host the broker did not place it on, once per grace", async () => {
    const c = await cluster();
    const host = c.broker.hosts.ids()[0] ?? "";
    const stops: string[] = [];
    const spy = c.hub.connect("spy");
    spy.subscribe(hostSubject(host, "cmd"), (m) => {
      const command = agentCodecs.command.decode(m.data);
      if (command.stop) stops.push(command.stop.leaseId);
    });
    await c.broker.leases.reconcile({ hostId: host, leaseIds: ["l-stranger"], fromHello: false });
    await c.broker.leases.reconcile({ hostId: host, leaseIds: ["l-stranger"], fromHello: false });
    await c.clock.advance(100);
    expect(stops).toEqual(["l-stranger"]);
    expect(c.broker.leases.corrections.staleStopped).toBe(1);
  });

  it("checks a heartbeat that agrees at once; one that disagrees waits its turn behind mutations", async () => {
    const c = await cluster();
    const lease = await c.submit(spec(2, "fail"));
    expect(lease.state).toBe("ACTIVE");
    const order: string[] = [];
    const beat = (leaseIds: string[], name: string) =>
      c.broker.leases
        .reconcile({ hostId: lease.hostId, leaseIds, fromHello: false })
        .then(() => order.push(name));
    await Promise.all([
      c.broker.leases.submit(spec(1, "fail")).then(() => order.push("submit")),
      beat([lease.id], "agreeing beat"),
      beat([lease.id, "l-stranger"], "stranger listed"),
      beat([], "active lease missing"),
    ]);
    expect(order).toEqual(["agreeing beat", "submit", "stranger listed", "active lease missing"]);
    expect(c.broker.leases.corrections).toMatchObject({ staleStopped: 1, missingRestarted: 1 });
  });

  it("starts an ACTIVE lease again when its host comes back without it (an agent restart)", async () => {
    const c = await cluster();
    const lease = await c.submit(spec(2, "fail"));
    const host = lease.hostId;
    await c.agent(host).stop(); // its sim workloads end with it
    const driver = new SimDriver({ clock: c.clock, seed: 99, bootMs: 100, shutdownMs: 100 });
    const reborn = new Agent({
      hostId: host,
      bus: c.hub.connect(`${host}-2`),
      driver,
      clock: c.clock,
      capacity: { cpuMillis: 8000, memoryMib: 8 * GIB, diskGib: 500, gpus: 0 },
      labels: { zone: "zone-a" },
      bootId: "second-boot",
      heartbeatIntervalMs: 1000,
    });
    running.push(async () => {
      await reborn.stop();
      await driver.close();
    });
    await reborn.start();
    await c.clock.advance(2000);
    expect(c.broker.leases.corrections.missingRestarted).toBe(1);
    expect(c.lease(lease.id)).toMatchObject({ state: "ACTIVE", hostId: host });
    expect(c.beats.get(host)).toContain(lease.id);
    await c.clock.advance(TTL);
    expect(c.broker.hosts.view(host).state).toBe("READY");
    expect(c.broker.leases.corrections.missingRestarted).toBe(1);
  });
});
