/**
 * The AgentGateway against test agents on an in-process hub, on a VirtualClock: Hello registers
 * (or is refused and counted), heartbeats drive liveness (SUSPECT, DOWN), stale and duplicate beats
 * are ignored, commands carry the epoch and retry with the same idempotency key, STALE_EPOCH
 * deposes the broker, events become reports, and garbage on any subject is counted and dropped.
 */
import { afterEach, describe, expect, it } from "vitest";
import { hostSubject, type InProcessBus, InProcessHub } from "../../bus/index.js";
import { silentLogger, UnavailableError, VirtualClock } from "../../core/index.js";
import { ClusterIndex, DEFAULT_PLACEMENT_POLICY, type HostState } from "../../placement/index.js";
import {
  agentCodecs,
  type Command,
  type CommandReplyInput,
  type HelloInput,
  type HelloReply,
  timestampFromMs,
} from "../../proto/index.js";
import { resourcesToProto } from "../api/convert.js";
import { MemoryStore } from "../store/index.js";
import {
  AgentGateway,
  CommandRejectedError,
  encodeStartCommand,
  type HostInventory,
} from "./agent-gateway.js";
import type { WorkloadReport } from "./gateway.js";
import { HostRegistry } from "./registry.js";

const T0 = 1_800_000_000_000;
const EPOCH = 9;
const HOST = "host-a";

function hello(overrides: Partial<HelloInput> = {}): HelloInput {
  return {
    hostId: HOST,
    bootId: "boot-1",
    capacity: { cpuMillis: 8000, memoryMib: 16_384, diskGib: 100 },
    ratios: { cpu: 4 },
    labels: { zone: "a" },
    driver: "sim",
    agentVersion: "1.2.3",
    workloads: [{ leaseId: "l-1", state: "WORKLOAD_STATE_RUNNING" }],
    ...overrides,
  };
}

interface Setup {
  clock: VirtualClock;
  hub: InProcessHub;
  brokerBus: InProcessBus;
  agentBus: InProcessBus;
  registry: HostRegistry;
  gateway: AgentGateway;
  inventories: HostInventory[];
  reports: WorkloadReport[];
  states: Array<[string, HostState, HostState]>;
}

const gateways: AgentGateway[] = [];
afterEach(() => {
  for (const g of gateways.splice(0)) g.close();
});

function setup(
  options: { commandTimeoutMs?: number; commandAttempts?: number; coalesceCommands?: boolean } = {},
): Setup {
  const clock = new VirtualClock(T0);
  const hub = new InProcessHub({ clock });
  const logger = silentLogger();
  const index = new ClusterIndex({ resourceWeights: DEFAULT_PLACEMENT_POLICY.resourceWeights });
  const registry = new HostRegistry({ store: new MemoryStore(), index, clock, logger });
  const brokerBus = hub.connect("broker");
  const gateway = new AgentGateway({
    bus: brokerBus,
    registry,
    clock,
    logger,
    epoch: EPOCH,
    heartbeatIntervalMs: 1000,
    hostTtlMs: 10_000,
    random: () => 0.5,
    ...options,
  });
  gateways.push(gateway);
  gateway.open();
  const inventories: HostInventory[] = [];
  const reports: WorkloadReport[] = [];
  const states: Array<[string, HostState, HostState]> = [];
  gateway.onInventory((i) => inventories.push(i));
  gateway.onReport((r) => reports.push(r));
  registry.onStateChanged((id, state, previous) => states.push([id, state, previous]));
  registry.startLiveness({ suspectAfterMs: 3000, downAfterMs: 10_000, checkEveryMs: 500 });
  return {
    clock,
    hub,
    brokerBus,
    agentBus: hub.connect("agent"),
    registry,
    gateway,
    inventories,
    reports,
    states,
  };
}

async function sayHello(s: Setup, input: HelloInput, subjectHost = input.hostId ?? HOST) {
  const reply = s.agentBus.request(
    hostSubject(subjectHost, "hello"),
    agentCodecs.hello.encode(input),
    { timeoutMs: 1000 },
  );
  await s.clock.advance(0);
  return agentCodecs.helloReply.decode(await reply);
}

/** A heartbeat; resolves with the broker's HelloReply when it answered (a refusal), else undefined. */
async function beat(
  s: Setup,
  sequence: number,
  extra: { bootId?: string; hostId?: string; leaseIds?: string[] } = {},
): Promise<HelloReply | undefined> {
  const replies: HelloReply[] = [];
  const inbox = s.agentBus.createInbox();
  const sub = s.agentBus.subscribe(inbox, (m) => {
    replies.push(agentCodecs.helloReply.decode(m.data));
  });
  const hostId = extra.hostId ?? HOST;
  s.agentBus.publish(
    hostSubject(hostId, "beat"),
    agentCodecs.heartbeat.encode({
      hostId,
      bootId: extra.bootId ?? "boot-1",
      sequence,
      time: timestampFromMs(s.clock.now()),
      leaseIds: extra.leaseIds ?? ["l-1"],
      seenEpoch: EPOCH,
    }),
    { reply: inbox },
  );
  await s.clock.advance(0);
  sub.unsubscribe();
  return replies[0];
}

function stateOf(s: Setup, hostId = HOST): HostState {
  return s.registry.view(hostId).state;
}

describe("AgentGateway: registration", () => {
  it("registers a host on Hello, with its capacity, ratios (0 meaning 1.0) and workloads", async () => {
    const s = setup();
    const reply = await sayHello(s, hello());
    expect(reply).toMatchObject({ accepted: true, brokerEpoch: EPOCH });
    expect(reply.heartbeatInterval).toMatchObject({ seconds: 1 });
    expect(reply.hostTtl).toMatchObject({ seconds: 10 });
    const view = s.registry.view(HOST);
    expect(view).toMatchObject({
      state: "READY",
      capacity: { cpuMillis: 8000, memoryMib: 16_384, diskGib: 100, gpus: 0 },
      ratios: { cpuMillis: 4, memoryMib: 1, diskGib: 1, gpus: 1 },
      labels: { zone: "a" },
      driver: "sim",
      agentVersion: "1.2.3",
    });
    expect(s.registry.bootIdOf(HOST)).toBe("boot-1");
    expect(s.inventories).toEqual([
      { hostId: HOST, leaseIds: ["l-1"], fromHello: true, running: ["l-1"] },
    ]);
    expect(s.gateway.drops.total).toBe(0);
  });

  it.each([
    ["a host id that is not the subject's", hello({ hostId: "host-b" }), HOST],
    ["a bad host id", hello({ hostId: "Bad_Host" }), "Bad_Host"],
    ["no boot id", hello({ bootId: "" }), HOST],
    ["zero capacity", hello({ capacity: { cpuMillis: 0, memoryMib: 0 } }), HOST],
    ["no capacity", hello({ capacity: null }), HOST],
  ])(
    "refuses a Hello with %s: accepted false, counted invalid, nothing registered",
    async (_, input, subjectHost) => {
      const s = setup();
      const reply = await sayHello(s, input, subjectHost);
      expect(reply.accepted).toBe(false);
      expect(reply.message).not.toBe("");
      expect(s.gateway.drops.get("hello", "invalid")).toBe(1);
      expect(s.registry.ids()).toEqual([]);
      expect(s.inventories).toEqual([]);
    },
  );
});

describe("AgentGateway: heartbeats and liveness", () => {
  it("keeps a beating host READY; silence makes it SUSPECT at 3 s and DOWN at 10 s", async () => {
    const s = setup();
    await sayHello(s, hello());
    for (let seq = 1; seq <= 12; seq++) {
      await s.clock.advance(1000);
      expect(await beat(s, seq)).toBeUndefined();
      expect(stateOf(s)).toBe("READY");
    }
    const lastBeat = s.clock.now();
    await s.clock.advanceTo(lastBeat + 2999);
    expect(stateOf(s)).toBe("READY");
    await s.clock.advanceTo(lastBeat + 3000);
    expect(stateOf(s)).toBe("SUSPECT");
    await s.clock.advanceTo(lastBeat + 9999);
    expect(stateOf(s)).toBe("SUSPECT");
    await s.clock.advanceTo(lastBeat + 10_000);
    expect(stateOf(s)).toBe("DOWN");
    expect(s.states).toEqual([
      [HOST, "SUSPECT", "READY"],
      [HOST, "DOWN", "SUSPECT"],
    ]);
  });

  it("a beat brings a SUSPECT host back to READY", async () => {
    const s = setup();
    await sayHello(s, hello());
    await s.clock.advance(4000);
    expect(stateOf(s)).toBe("SUSPECT");
    await beat(s, 1);
    expect(stateOf(s)).toBe("READY");
    expect(s.states.at(-1)).toEqual([HOST, "READY", "SUSPECT"]);
  });

  it("drops a beat whose host id is not its subject's: another host cannot keep it alive", async () => {
    const s = setup();
    await sayHello(s, hello());
    await s.clock.advance(4000);
    expect(stateOf(s)).toBe("SUSPECT");
    s.agentBus.publish(
      hostSubject("host-b", "beat"),
      agentCodecs.heartbeat.encode({
        hostId: HOST,
        bootId: "boot-1",
        sequence: 1,
        time: timestampFromMs(s.clock.now()),
        seenEpoch: EPOCH,
      }),
    );
    await s.clock.advance(0);
    expect(stateOf(s)).toBe("SUSPECT");
    expect(s.gateway.drops.get("beat", "invalid")).toBe(1);
  });

  it("answers a beat from an unknown boot id, an unknown host or a DOWN host with accepted false", async () => {
    const s = setup();
    await sayHello(s, hello());
    expect(await beat(s, 1, { bootId: "boot-0" })).toMatchObject({ accepted: false });
    expect(await beat(s, 1, { hostId: "host-z", bootId: "boot-1" })).toMatchObject({
      accepted: false,
    });
    expect(s.inventories.filter((i) => !i.fromHello)).toEqual([]);
    await s.clock.advance(10_000);
    expect(stateOf(s)).toBe("DOWN");
    expect(await beat(s, 2)).toMatchObject({ accepted: false, brokerEpoch: EPOCH });
    expect(stateOf(s)).toBe("DOWN");
    // A new Hello brings it back.
    await sayHello(s, hello({ bootId: "boot-2" }));
    expect(stateOf(s)).toBe("READY");
  });

  it("ignores duplicate and reordered beats", async () => {
    const s = setup();
    await sayHello(s, hello());
    await beat(s, 1, { leaseIds: ["a"] });
    await beat(s, 3, { leaseIds: ["c"] });
    const heard = s.registry.view(HOST).lastHeartbeat;
    await s.clock.advance(2000);
    await beat(s, 3, { leaseIds: ["dup"] });
    await beat(s, 2, { leaseIds: ["old"] });
    expect(s.inventories.filter((i) => !i.fromHello).map((i) => i.leaseIds)).toEqual([
      ["a"],
      ["c"],
    ]);
    expect(s.registry.view(HOST).lastHeartbeat).toBe(heard);
    await s.clock.advance(1000);
    expect(stateOf(s)).toBe("SUSPECT");
  });

  it("holds liveness while the broker's own bus is disconnected, and gives every host a fresh TTL after", async () => {
    const s = setup();
    await sayHello(s, hello());
    s.brokerBus.simulateDisconnect();
    await s.clock.advance(30_000);
    expect(stateOf(s)).toBe("READY");
    expect(s.states).toEqual([]);
    s.brokerBus.simulateReconnect();
    await s.clock.advance(0);
    const back = s.clock.now();
    await s.clock.advanceTo(back + 2999);
    expect(stateOf(s)).toBe("READY");
    await s.clock.advanceTo(back + 10_000);
    expect(stateOf(s)).toBe("DOWN");
  });
});

describe("AgentGateway: commands", () => {
  /** A test agent answering commands on HOST's cmd subject; `answer` decides each reply. */
  function agentAnswering(
    s: Setup,
    answer: (command: Command, attempt: number) => CommandReplyInput | undefined,
  ): Command[] {
    const seen: Command[] = [];
    s.agentBus.subscribe(hostSubject(HOST, "cmd"), (m) => {
      const command = agentCodecs.command.decode(m.data);
      seen.push(command);
      const reply = answer(command, seen.length);
      if (reply !== undefined && m.reply !== undefined)
        s.agentBus.publish(m.reply, agentCodecs.commandReply.encode(reply));
    });
    return seen;
  }

  const workload = (leaseId: string) => ({
    leaseId,
    resources: { cpuMillis: 1000, memoryMib: 1024, diskGib: 1, gpus: 0 },
    end: T0 + 3_600_000,
    image: "img",
    params: { a: "b" },
  });

  it("sends a start with the broker's epoch and resolves when the agent accepts", async () => {
    const s = setup();
    const seen = agentAnswering(s, (c) => ({ idempotencyKey: c.idempotencyKey, ok: true }));
    const done = s.gateway.start(HOST, workload("l-7"));
    await s.clock.advance(0);
    await done;
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      epoch: EPOCH,
      hostId: HOST,
      start: { leaseId: "l-7", driver: { image: "img", params: { a: "b" } } },
    });
    expect(seen[0]?.idempotencyKey).toContain("l-7");
    await s.gateway.stop(HOST, "l-7", { graceMs: 0, force: true }).catch(() => {});
    expect(seen[1]?.idempotencyKey).not.toBe(seen[0]?.idempotencyKey);
  });

  it("coalesced commands leave once the promise work that issued them is done, before the check phase", async () => {
    const s = setup({ coalesceCommands: true });
    const order: string[] = [];
    agentAnswering(s, (c) => {
      order.push(c.start?.leaseId ?? "?");
      return { idempotencyKey: c.idempotencyKey, ok: true };
    });
    // Scheduled before the commands: batching them until the turn's end (setImmediate) would let
    // the rest of the turn's I/O, and this, run first.
    const checkPhase = new Promise<void>((resolve) =>
      setImmediate(() => {
        order.push("check phase");
        resolve();
      }),
    );
    const done = Promise.all([
      s.gateway.start(HOST, workload("l-1")),
      s.gateway.start(HOST, workload("l-2")),
    ]);
    await checkPhase;
    await s.clock.advance(0);
    await done;
    expect(order).toEqual(["l-1", "l-2", "check phase"]);
  });

  it("writes a start command as the generic codec would (its fields decode the same)", () => {
    for (const w of [
      workload("l-9"),
      {
        leaseId: "l-ü",
        resources: {
          cpuMillis: 1500.4,
          memoryMib: 2048,
          diskGib: 0,
          gpus: 2,
          extended: { fpga: 1 },
        },
        end: T0 - 1,
        image: "",
        params: {},
      },
    ]) {
      const generic = agentCodecs.command.encode({
        idempotencyKey: `start:${w.leaseId}:1`,
        epoch: 2 ** 40,
        hostId: HOST,
        start: {
          leaseId: w.leaseId,
          resources: resourcesToProto(w.resources),
          driver: { image: w.image, params: { ...w.params } },
          endTime: timestampFromMs(w.end),
        },
      });
      expect(
        agentCodecs.command.decode(encodeStartCommand(`start:${w.leaseId}:1`, 2 ** 40, HOST, w)),
      ).toEqual(agentCodecs.command.decode(generic));
    }
  });

  it("retries a command that timed out, with the same idempotency key", async () => {
    const s = setup({ commandTimeoutMs: 1000, commandAttempts: 4 });
    const seen = agentAnswering(s, (c, attempt) =>
      attempt < 3 ? undefined : { idempotencyKey: c.idempotencyKey, ok: true },
    );
    let settled = false;
    const done = s.gateway.start(HOST, workload("l-8")).finally(() => {
      settled = true;
    });
    for (let i = 0; i < 40 && !settled; i++) await s.clock.advance(250);
    await done;
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((c) => c.idempotencyKey)).size).toBe(1);
    expect(s.gateway.commandsSent).toBe(1);
  });

  it("fails UNAVAILABLE when every attempt times out", async () => {
    const s = setup({ commandTimeoutMs: 500, commandAttempts: 2 });
    const seen = agentAnswering(s, () => undefined);
    let outcome: unknown;
    const done = s.gateway.stop(HOST, "l-9", { graceMs: 0, force: false }).catch((e: unknown) => {
      outcome = e;
    });
    for (let i = 0; i < 40 && outcome === undefined; i++) await s.clock.advance(250);
    await done;
    expect(outcome).toBeInstanceOf(UnavailableError);
    expect(seen).toHaveLength(2);
  });

  it("STALE_EPOCH deposes the gateway: that command and every later one fail", async () => {
    const s = setup();
    const seen = agentAnswering(s, (c) => ({
      idempotencyKey: c.idempotencyKey,
      ok: false,
      error: "COMMAND_ERROR_STALE_EPOCH",
      errorMessage: "epoch 9 < 12",
      seenEpoch: 12,
    }));
    const first = s.gateway.start(HOST, workload("l-1")).catch((e: unknown) => e);
    await s.clock.advance(0);
    const error = await first;
    expect(error).toBeInstanceOf(CommandRejectedError);
    expect((error as CommandRejectedError).code).toBe("STALE_EPOCH");
    expect(s.gateway.deposed).toBe(true);
    await expect(s.gateway.start(HOST, workload("l-2"))).rejects.toBeInstanceOf(UnavailableError);
    expect(seen).toHaveLength(1);
  });

  it("another refusal is a CommandRejectedError that does not depose", async () => {
    const s = setup();
    agentAnswering(s, (c) => ({
      idempotencyKey: c.idempotencyKey,
      ok: false,
      error: "COMMAND_ERROR_INSUFFICIENT_RESOURCES",
    }));
    const first = s.gateway.start(HOST, workload("l-1")).catch((e: unknown) => e);
    await s.clock.advance(0);
    const error = await first;
    expect(error).toBeInstanceOf(CommandRejectedError);
    expect(s.gateway.deposed).toBe(false);
  });
});

describe("AgentGateway: events and garbage", () => {
  function event(s: Setup, hostId: string, leaseId: string, state: string, subjectHost = hostId) {
    s.agentBus.publish(
      hostSubject(subjectHost, "event"),
      agentCodecs.agentEvent.encode({
        hostId,
        time: timestampFromMs(s.clock.now()),
        workload: {
          leaseId,
          state: state as "WORKLOAD_STATE_RUNNING",
          message: `m-${leaseId}`,
        },
      }),
    );
  }

  it("maps workload events to reports; an event for another host's subject is dropped", async () => {
    const s = setup();
    event(s, HOST, "l-1", "WORKLOAD_STATE_RUNNING");
    event(s, HOST, "l-2", "WORKLOAD_STATE_STOPPED");
    event(s, HOST, "l-3", "WORKLOAD_STATE_FAILED");
    event(s, HOST, "l-4", "WORKLOAD_STATE_STARTING");
    event(s, "host-b", "l-5", "WORKLOAD_STATE_RUNNING", HOST);
    await s.clock.advance(0);
    expect(s.reports).toEqual([
      { hostId: HOST, leaseId: "l-1", state: "RUNNING", message: "m-l-1" },
      { hostId: HOST, leaseId: "l-2", state: "STOPPED", message: "m-l-2" },
      { hostId: HOST, leaseId: "l-3", state: "FAILED", message: "m-l-3" },
    ]);
    expect(s.gateway.drops.get("event", "invalid")).toBe(1);
  });

  it("counts and drops garbage on hello, beat and event subjects, and keeps working", async () => {
    const s = setup();
    await sayHello(s, hello());
    const valid = {
      hello: agentCodecs.hello.encode(hello()),
      beat: agentCodecs.heartbeat.encode({ hostId: HOST, bootId: "boot-1", sequence: 1 }),
      event: agentCodecs.agentEvent.encode({
        hostId: HOST,
        workload: { leaseId: "l-1", state: "WORKLOAD_STATE_RUNNING" },
      }),
    };
    let seed = 7;
    const byte = (): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed >>> 24;
    };
    for (const kind of ["hello", "beat", "event"] as const) {
      for (let i = 0; i < 20; i++) {
        s.agentBus.publish(
          hostSubject(HOST, kind),
          Uint8Array.from({ length: 1 + (i % 9) * 7 }, byte),
        );
      }
      // Truncated inside the first field: not a message.
      s.agentBus.publish(hostSubject(HOST, kind), valid[kind].slice(0, 3));
    }
    await s.clock.advance(0);
    for (const kind of ["hello", "beat", "event"])
      expect(s.gateway.drops.get(kind)).toBeGreaterThan(0);
    expect(s.registry.ids()).toEqual([HOST]);
    // Still working: beats keep the host READY, an event becomes a report.
    const before = s.reports.length;
    await s.clock.advance(2000);
    await beat(s, 100);
    await s.clock.advance(2000);
    expect(stateOf(s)).toBe("READY");
    event(s, HOST, "l-9", "WORKLOAD_STATE_RUNNING");
    await s.clock.advance(0);
    expect(s.reports.slice(before).map((r) => r.leaseId)).toContain("l-9");
  });
});
