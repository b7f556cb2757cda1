import { afterEach, describe, expect, it, vi } from "vitest";
import { hostSubject, InProcessHub } from "../bus/index.js";
import { VirtualClock } from "../core/index.js";
import { agentCodecs, durationFromMs, timestampFromMs } from "../proto/index.js";
import { FakeBroker } from "../test/agent/fake-broker.js";
import { Agent, type AgentOptions } from "./agent.js";
import { SimDriver } from "./drivers/sim-driver.js";
import { TimerWheel } from "./timer-wheel.js";

const HOST = "host-1";
const T0 = 1_700_000_000_000;

interface Setup {
  clock: VirtualClock;
  hub: InProcessHub;
  broker: FakeBroker;
  driver: SimDriver;
  agent: Agent;
  agentBus: ReturnType<InProcessHub["connect"]>;
}

const running: Agent[] = [];

afterEach(async () => {
  for (const agent of running.splice(0)) await agent.stop();
});

function setup(
  options: Partial<AgentOptions> & { clock?: VirtualClock } = {},
  brokerEpoch = 5,
): Setup {
  const clock = options.clock ?? new VirtualClock(T0);
  const hub = new InProcessHub({ clock });
  const broker = new FakeBroker({ bus: hub.connect("broker"), epoch: brokerEpoch }).start();
  const agentBus = hub.connect("agent");
  const driver = new SimDriver({ clock, seed: 7, bootMs: 500, shutdownMs: 200 });
  const agent = new Agent({
    hostId: HOST,
    bus: agentBus,
    driver,
    clock,
    capacity: { cpuMillis: 8000, memoryMib: 16_384, diskGib: 100, gpus: 0 },
    labels: { zone: "a" },
    bootId: "boot-1",
    ...options,
  });
  running.push(agent);
  return { clock, hub, broker, driver, agent, agentBus };
}

/** Lets the bus and promise chains run, and fires timers due now. */
const settle = (clock: VirtualClock): Promise<void> => clock.advance(0);

function startCommand(leaseId: string, clock: VirtualClock, extra: Record<string, string> = {}) {
  return {
    start: {
      leaseId,
      resources: { cpuMillis: 1000, memoryMib: 1024, diskGib: 10 },
      driver: { image: "", params: { boot_ms: "500", ...extra } },
      endTime: timestampFromMs(clock.now() + 3_600_000),
    },
  };
}

describe("Agent", () => {
  it("says hello, then heartbeats every interval with increasing sequence numbers", async () => {
    const { clock, broker, agent } = setup();
    await agent.start();
    await settle(clock);
    expect(agent.state).toBe("registered");
    expect(broker.hellos).toHaveLength(1);
    const hello = broker.hellos[0];
    expect(hello).toMatchObject({
      hostId: HOST,
      capacity: { cpuMillis: 8000, memoryMib: 16_384, diskGib: 100 },
      labels: { zone: "a" },
      driver: "sim",
      bootId: "boot-1",
      workloads: [],
      seenEpoch: 0,
    });
    expect(hello?.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
    await clock.advance(3000);
    expect(broker.beats.map((b) => b.sequence)).toEqual([1, 2, 3, 4]);
    expect(broker.beats.map((b) => Number(b.time?.seconds) * 1000 - T0)).toEqual([
      0, 1000, 2000, 3000,
    ]);
    expect(broker.beats.every((b) => b.bootId === "boot-1" && b.seenEpoch === 5)).toBe(true);
    expect(agent.seenEpoch).toBe(5);
  });

  it("keeps its own heartbeat schedule on a shared timer wheel, late by less than a slot", async () => {
    const clock = new VirtualClock(T0 + 3);
    const wheel = new TimerWheel(clock, 10);
    const { broker, agent } = setup({ clock, heartbeatTimers: wheel });
    await agent.start();
    await settle(clock);
    await clock.advanceTo(T0 + 2010);
    // Registered at T0 + 3: beats due then, at + 1003 and + 2003 go out at their slots' ends.
    const sentAt = broker.beats.map(
      (b) => Number(b.time?.seconds) * 1000 + Number(b.time?.nanos) / 1e6 - T0,
    );
    expect(sentAt).toEqual([10, 1010, 2010]);
    expect(broker.beats.map((b) => b.sequence)).toEqual([1, 2, 3]);
    expect(wheel.pending).toBe(1);
  });

  it("uses the heartbeat interval and TTL of the HelloReply", async () => {
    const { clock, broker, agent } = setup({ heartbeatIntervalMs: 1000 });
    broker.heartbeatIntervalMs = 250;
    broker.hostTtlMs = 2000;
    await agent.start();
    await clock.advance(1000);
    expect(agent.heartbeatIntervalMs).toBe(250);
    expect(agent.hostTtlMs).toBe(2000);
    expect(broker.beats).toHaveLength(5);
  });

  it("retries hello with backoff until a broker accepts it", async () => {
    const { clock, broker, agent } = setup({ helloRetryBaseMs: 100, helloRetryMaxMs: 400 });
    broker.accept = false;
    await agent.start();
    await clock.advance(2000);
    expect(agent.state).toBe("registering");
    expect(broker.beats).toHaveLength(0);
    const attempts = broker.hellos.length;
    expect(attempts).toBeGreaterThan(3);
    expect(attempts).toBeLessThan(15);
    broker.accept = true;
    const registered = agent.registered();
    await clock.advance(400);
    await registered;
    expect(agent.state).toBe("registered");
    expect(broker.beats.length).toBeGreaterThan(0);
  });

  it("retries hello while no broker is listening at all", async () => {
    const { clock, hub, broker, agent } = setup({ helloRetryBaseMs: 100, helloRetryMaxMs: 100 });
    broker.stop();
    await agent.start();
    await clock.advance(1000);
    expect(agent.state).toBe("registering");
    const late = new FakeBroker({ bus: hub.connect("late-broker"), epoch: 9 }).start();
    await clock.advance(200);
    expect(agent.state).toBe("registered");
    expect(late.hellos).toHaveLength(1);
    expect(agent.seenEpoch).toBe(9);
  });

  it("runs start and stop commands through the driver and reports the state changes", async () => {
    const { clock, broker, agent } = setup();
    await agent.start();
    await settle(clock);
    const started = await broker.command(HOST, startCommand("lease-1", clock));
    expect(started).toMatchObject({
      ok: true,
      error: "COMMAND_ERROR_UNSPECIFIED",
      duplicate: false,
    });
    expect(started.seenEpoch).toBe(5);
    await clock.advance(500);
    expect(broker.workloadStates("lease-1")).toEqual(["STARTING", "RUNNING"]);
    await clock.advance(1000);
    expect(broker.beats.at(-1)?.leaseIds).toEqual(["lease-1"]);
    expect(broker.beats.at(-1)?.usage?.memoryMib).toBeGreaterThan(0);

    const stopped = await broker.command(HOST, {
      stop: { leaseId: "lease-1", grace: durationFromMs(10_000), reason: "lease ended" },
    });
    expect(stopped.ok).toBe(true);
    await clock.advance(200);
    expect(broker.workloadStates("lease-1")).toEqual([
      "STARTING",
      "RUNNING",
      "STOPPING",
      "STOPPED",
    ]);
    const last = broker.events.at(-1);
    expect(last?.workload?.exit).toMatchObject({ forced: false, exitCode: 0 });
    expect(broker.events.map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
    expect(broker.events.every((e) => e.hostId === HOST && e.bootId === "boot-1")).toBe(true);
  });

  it("answers a repeated idempotency key with the first reply, calling the driver once", async () => {
    const { clock, broker, driver, agent } = setup();
    const start = vi.spyOn(driver, "start");
    await agent.start();
    await settle(clock);
    const command = { idempotencyKey: "same-key", ...startCommand("lease-1", clock) };
    // The retry arrives while the first attempt is still running, then once more after.
    const [first, concurrent] = await Promise.all([
      broker.command(HOST, command),
      broker.command(HOST, command),
    ]);
    const later = await broker.command(HOST, command);
    expect(first).toMatchObject({ ok: true, duplicate: false, idempotencyKey: "same-key" });
    expect(concurrent).toMatchObject({ ok: true, duplicate: true, idempotencyKey: "same-key" });
    expect(later).toMatchObject({ ok: true, duplicate: true });
    expect(start).toHaveBeenCalledTimes(1);
    expect(agent.stats.duplicateCommands).toBe(2);
  });

  it("replays a failed reply for a repeated key too, but not a transient failure", async () => {
    const { clock, broker, driver, agent } = setup();
    await agent.start();
    await settle(clock);
    const bad = { idempotencyKey: "k-bad", ...startCommand("lease-x", clock, { boot_ms: "-1" }) };
    const first = await broker.command(HOST, bad);
    expect(first).toMatchObject({ ok: false, error: "COMMAND_ERROR_INVALID" });
    expect(await broker.command(HOST, bad)).toMatchObject({ ok: false, duplicate: true });

    const start = vi.spyOn(driver, "start").mockRejectedValueOnce(new Error("hypervisor hiccup"));
    const flaky = { idempotencyKey: "k-flaky", ...startCommand("lease-y", clock) };
    expect(await broker.command(HOST, flaky)).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_INTERNAL",
    });
    expect(await broker.command(HOST, flaky)).toMatchObject({ ok: true, duplicate: false });
    expect(start).toHaveBeenCalledTimes(2);
  });

  it("refuses commands from an epoch older than the highest it has seen", async () => {
    const { clock, broker, driver, agent } = setup();
    const start = vi.spyOn(driver, "start");
    await agent.start();
    await settle(clock);
    expect(agent.seenEpoch).toBe(5);
    const stale = await broker.command(HOST, { epoch: 4, ...startCommand("lease-1", clock) });
    expect(stale).toMatchObject({ ok: false, error: "COMMAND_ERROR_STALE_EPOCH", seenEpoch: 5 });
    expect(start).not.toHaveBeenCalled();

    const newer = await broker.command(HOST, { epoch: 6, ...startCommand("lease-1", clock) });
    expect(newer).toMatchObject({ ok: true, seenEpoch: 6 });
    const deposed = await broker.command(HOST, { epoch: 5, stop: { leaseId: "lease-1" } });
    expect(deposed).toMatchObject({ ok: false, error: "COMMAND_ERROR_STALE_EPOCH", seenEpoch: 6 });
    // Even the deposed broker's repeat of a key the agent already answered is refused.
    const repeat = await broker.command(HOST, {
      epoch: 5,
      idempotencyKey: "key-2",
      ...startCommand("lease-1", clock),
    });
    expect(repeat.error).toBe("COMMAND_ERROR_STALE_EPOCH");
    expect(agent.stats.staleCommands).toBe(3);
    await clock.advance(1000);
    expect(broker.beats.at(-1)?.seenEpoch).toBe(6);
  });

  it("counts and drops garbage on its cmd subject and keeps serving", async () => {
    const { clock, hub, broker, agent } = setup();
    await agent.start();
    await settle(clock);
    const bus = hub.connect("fuzzer");
    const replies: Uint8Array[] = [];
    const inbox = bus.createInbox();
    bus.subscribe(inbox, (m) => {
      replies.push(m.data);
    });
    const subject = hostSubject(HOST, "cmd");
    const valid = agentCodecs.command.encode({
      idempotencyKey: "k",
      epoch: 5,
      hostId: HOST,
      ...startCommand("lease-1", clock),
    });
    bus.publish(subject, valid.slice(0, valid.length - 3), { reply: inbox });
    bus.publish(subject, Uint8Array.of(0x2a, 0x00, 0x32, 0x00), { reply: inbox });
    bus.publish(subject, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff), { reply: inbox });
    bus.publish(subject, valid); // no reply subject: cannot be answered
    // Decodes (protobuf is lenient) but is no valid command: answered INVALID, not acted on.
    bus.publish(subject, new Uint8Array(0), { reply: inbox });
    await settle(clock);
    expect(agent.drops.get("cmd", "truncated")).toBe(2);
    expect(agent.drops.get("cmd", "malformed")).toBe(1);
    expect(agent.drops.get("cmd", "invalid")).toBe(1);
    expect(replies).toHaveLength(1);
    expect(agentCodecs.commandReply.decode(replies[0] ?? new Uint8Array())).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_INVALID",
    });
    expect(await broker.command(HOST, startCommand("lease-2", clock))).toMatchObject({ ok: true });
    await clock.advance(1000);
    expect(agent.state).toBe("registered");
    expect(broker.beats.length).toBeGreaterThan(1);
  });

  it("checks commands: host, fields, resources", async () => {
    const { clock, broker, agent } = setup({
      capacity: { cpuMillis: 2000, memoryMib: 4096, diskGib: 20, gpus: 0 },
      ratios: { cpu: 2 },
    });
    await agent.start();
    await settle(clock);
    expect(
      await broker.command(HOST, { hostId: "other-host", ...startCommand("l", clock) }),
    ).toMatchObject({ ok: false, error: "COMMAND_ERROR_WRONG_HOST" });
    expect(
      await broker.command(HOST, { start: { leaseId: "l", endTime: timestampFromMs(T0 + 1e6) } }),
    ).toMatchObject({ ok: false, error: "COMMAND_ERROR_INVALID" });
    expect(
      await broker.command(HOST, { idempotencyKey: "x".repeat(129), stop: { leaseId: "l" } }),
    ).toMatchObject({ ok: false, error: "COMMAND_ERROR_INVALID" });
    expect(await broker.command(HOST, {})).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_INVALID",
    });
    // cpu 2000 x ratio 2 = 4000 allocatable: four 1-CPU workloads fit, a fifth does not.
    for (const id of ["a", "b", "c", "d"]) {
      const reply = await broker.command(HOST, {
        start: {
          leaseId: id,
          resources: { cpuMillis: 1000, memoryMib: 512 },
          endTime: timestampFromMs(T0 + 1e6),
        },
      });
      expect(reply.ok).toBe(true);
    }
    const full = await broker.command(HOST, {
      start: {
        leaseId: "e",
        resources: { cpuMillis: 1000, memoryMib: 512 },
        endTime: timestampFromMs(T0 + 1e6),
      },
    });
    expect(full).toMatchObject({ ok: false, error: "COMMAND_ERROR_INSUFFICIENT_RESOURCES" });
    expect(full.errorMessage).toMatch(/cpuMillis/);
    expect(
      await broker.command(HOST, {
        deadline: timestampFromMs(T0 - 1),
        stop: { leaseId: "a" },
      }),
    ).toMatchObject({ ok: false, error: "COMMAND_ERROR_INVALID", errorMessage: /deadline/ });
    expect(await broker.command(HOST, { suspend: { leaseId: "nope" } })).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_NOT_FOUND",
    });
  });

  it("checks a resume from another host and an export; the sim driver supports neither", async () => {
    const { clock, broker, agent } = setup();
    await agent.start();
    await settle(clock);
    const from = {
      address: "127.0.0.1",
      port: 40_000,
      token: "a".repeat(64),
      sizeBytes: 1000,
      sha256: "b".repeat(64),
    };
    const workload = startCommand("r", clock).start;
    const resume = (patch: Record<string, unknown>) =>
      broker.command(HOST, { resume: { leaseId: "r", from, workload, ...patch } });
    expect(await resume({ workload: null })).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_INVALID",
      errorMessage: /resume.workload is required/,
    });
    expect(await resume({ workload: { ...workload, leaseId: "other" } })).toMatchObject({
      error: "COMMAND_ERROR_INVALID",
      errorMessage: /must be resume.lease_id/,
    });
    expect(await resume({ from: { ...from, token: "short" } })).toMatchObject({
      error: "COMMAND_ERROR_INVALID",
      errorMessage: /token/,
    });
    expect(await resume({ from: { ...from, port: 0 } })).toMatchObject({
      error: "COMMAND_ERROR_INVALID",
      errorMessage: /port/,
    });
    expect(await resume({ from: { ...from, sizeBytes: 0 } })).toMatchObject({
      error: "COMMAND_ERROR_INVALID",
      errorMessage: /size_bytes/,
    });
    expect(await resume({})).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_DRIVER",
      errorMessage: /does not support resuming from another host/,
    });
    expect(await broker.command(HOST, { exportSuspended: { leaseId: "" } })).toMatchObject({
      error: "COMMAND_ERROR_INVALID",
    });
    expect(await broker.command(HOST, { exportSuspended: { leaseId: "r" } })).toMatchObject({
      ok: false,
      error: "COMMAND_ERROR_DRIVER",
      errorMessage: /does not support exporting/,
    });
  });

  it("answers a stop of an unknown lease with ok and a STOPPED event", async () => {
    const { clock, broker, agent } = setup();
    await agent.start();
    await settle(clock);
    expect(await broker.command(HOST, { stop: { leaseId: "ghost" } })).toMatchObject({ ok: true });
    await settle(clock);
    expect(broker.workloadStates("ghost")).toEqual(["STOPPED"]);
    expect(broker.events.at(-1)?.workload?.message).toMatch(/not running/);
  });

  it("says hello again after a reconnect, with its workloads, and keeps its sequences", async () => {
    const { clock, broker, agent, agentBus } = setup();
    await agent.start();
    await settle(clock);
    await broker.command(HOST, startCommand("lease-1", clock));
    await clock.advance(1000);
    const beatsBefore = broker.beats.length;
    agentBus.simulateReconnect();
    await settle(clock);
    expect(broker.hellos).toHaveLength(2);
    expect(broker.hellos[1]?.bootId).toBe("boot-1");
    expect(broker.hellos[1]?.seenEpoch).toBe(5);
    expect(broker.hellos[1]?.workloads).toMatchObject([
      { leaseId: "lease-1", state: "WORKLOAD_STATE_RUNNING", resources: { cpuMillis: 1000 } },
    ]);
    await clock.advance(2000);
    const seqs = broker.beats.map((b) => b.sequence);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(broker.beats.length).toBeGreaterThan(beatsBefore);
  });

  it("misses commands while disconnected, and serves them again after", async () => {
    const { clock, broker, agent, agentBus } = setup();
    await agent.start();
    await settle(clock);
    agentBus.simulateDisconnect();
    await settle(clock);
    await expect(broker.command(HOST, { stop: { leaseId: "x" } })).rejects.toThrow(/no responders/);
    agentBus.simulateReconnect();
    await settle(clock);
    expect(await broker.command(HOST, { stop: { leaseId: "x" } })).toMatchObject({ ok: true });
  });

  it("says hello again when the broker answers a heartbeat with 'unknown host'", async () => {
    const { clock, broker, agent } = setup();
    await agent.start();
    await clock.advance(1000);
    expect(broker.hellos).toHaveLength(1);
    broker.forgotten.add(HOST);
    await clock.advance(1000);
    expect(broker.hellos).toHaveLength(2);
    expect(agent.state).toBe("registered");
    await clock.advance(1000);
    expect(broker.hellos).toHaveLength(2);
  });

  it("ignores a HelloReply from an older epoch than it has seen", async () => {
    const { clock, broker, agent } = setup({ helloRetryBaseMs: 100, helloRetryMaxMs: 100 });
    await agent.start();
    await settle(clock);
    await broker.command(HOST, { epoch: 8, stop: { leaseId: "x" } });
    expect(agent.seenEpoch).toBe(8);
    broker.epoch = 5; // a deposed broker answers the next hello
    broker.forgotten.add(HOST);
    await clock.advance(1000);
    // Asked for a hello by an epoch-5 broker: ignored, the agent stays registered.
    expect(broker.hellos).toHaveLength(1);
    broker.epoch = 8;
    await clock.advance(1000);
    expect(broker.hellos).toHaveLength(2);
    expect(agent.state).toBe("registered");
  });

  it("stops a workload itself when its lease has ended and no stop came", async () => {
    const { clock, broker, agent } = setup({ endStopDelayMs: 5000 });
    await agent.start();
    await settle(clock);
    await broker.command(HOST, {
      start: {
        leaseId: "short",
        resources: { cpuMillis: 100, memoryMib: 64 },
        driver: { params: { boot_ms: "100" } },
        endTime: timestampFromMs(T0 + 10_000),
      },
    });
    await clock.advance(14_000);
    expect(broker.workloadStates("short")).toEqual(["STARTING", "RUNNING"]);
    await clock.advance(1_200);
    expect(broker.workloadStates("short")).toEqual(["STARTING", "RUNNING", "STOPPING", "STOPPED"]);
  });

  it("a repeated start moves the end instead of starting twice", async () => {
    const { clock, broker, agent } = setup({ endStopDelayMs: 0 });
    await agent.start();
    await settle(clock);
    const start = (end: number) => ({
      start: {
        leaseId: "ext",
        resources: { cpuMillis: 100, memoryMib: 64 },
        driver: { params: { boot_ms: "100" } },
        endTime: timestampFromMs(end),
      },
    });
    await broker.command(HOST, start(T0 + 10_000));
    await broker.command(HOST, start(T0 + 60_000)); // extended
    await clock.advance(30_000);
    expect(broker.workloadStates("ext")).toEqual(["STARTING", "RUNNING"]);
    await clock.advance(31_000);
    expect(broker.workloadStates("ext")).toEqual(["STARTING", "RUNNING", "STOPPING", "STOPPED"]);
  });

  it("stops cleanly: no more heartbeats, no more command handling", async () => {
    const { clock, broker, agent } = setup();
    await agent.start();
    await clock.advance(2000);
    const beats = broker.beats.length;
    await agent.stop();
    await agent.stop();
    expect(agent.state).toBe("stopped");
    await clock.advance(5000);
    expect(broker.beats).toHaveLength(beats);
    await expect(broker.command(HOST, { stop: { leaseId: "x" } })).rejects.toThrow(/no responders/);
    await expect(agent.registered()).rejects.toThrow(/stopping/);
    expect(clock.pendingTimers).toBe(0);
  });

  it("refuses a host id that is not a subject token, and a Hello that cannot be encoded", async () => {
    expect(() => setup({ hostId: "a.b" })).toThrow(/host_id/);
    const { agent } = setup({ labels: { zone: 7 as unknown as string } });
    await expect(agent.start()).rejects.toThrow(/cannot encode leasebroker.v1.Hello/);
    expect(agent.state).toBe("idle");
  });
});
