/**
 * Fuzzing the broker process's agent handlers over real NATS: random bytes, truncated and
 * byte-flipped Hello / Heartbeat / AgentEvent messages go onto `lb.v1.host.<id>.{hello,beat,event}`
 * (of a real agent's id and of unknown ones). Afterwards the broker still serves: health
 * SERVING, the real agent READY, a submitted lease ACTIVE on it; it counted and logged the drops.
 * Bounded: a fixed seed and run count.
 */
import { createRequire } from "node:module";
import { loadSync } from "@grpc/proto-loader";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostSubject } from "../../bus/index.js";
import { agentCodecs, timestampFromMs } from "../../proto/index.js";
import { buildAgent } from "../agent/agent-process.js";
import { DynamicClient, pick, serviceDefinition } from "../broker/dynamic-grpc.js";
import { immediate } from "../broker/harness.js";
import { type NatsHandle, startNats, waitFor } from "../helpers/index.js";
import {
  BeatObserver,
  type BrokerProcess,
  type ClusterAgent,
  startBrokerProcess,
  startClusterAgent,
} from "./cluster-processes.js";

const REAL = "fz-agent";
const GHOSTS = ["ghost-1", "ghost-2"];
const require = createRequire(import.meta.url);

/** Valid messages of each kind for `hostId`, to truncate and corrupt. */
function validPayloads(hostId: string): Record<"hello" | "beat" | "event", Uint8Array> {
  const now = Date.now();
  return {
    hello: agentCodecs.hello.encode({
      hostId,
      bootId: `boot-${hostId}`,
      capacity: { cpuMillis: 2000, memoryMib: 2048, diskGib: 10 },
      labels: { zone: "fuzz" },
      driver: "sim",
      agentVersion: "0.0.0",
      workloads: [{ leaseId: "l-fuzz", state: "WORKLOAD_STATE_RUNNING" }],
    }),
    beat: agentCodecs.heartbeat.encode({
      hostId,
      bootId: `boot-${hostId}`,
      sequence: 7,
      time: timestampFromMs(now),
      leaseIds: ["l-fuzz", "l-other"],
    }),
    event: agentCodecs.agentEvent.encode({
      hostId,
      time: timestampFromMs(now),
      workload: { leaseId: "l-fuzz", state: "WORKLOAD_STATE_FAILED", message: "fuzz" },
    }),
  };
}

const kindArb = fc.constantFrom("hello" as const, "beat" as const, "event" as const);

/** One message to publish: subject host, kind, and bytes (random, truncated or byte-flipped). */
const caseArb = fc.oneof(
  fc.record({
    host: fc.constantFrom(REAL, ...GHOSTS),
    kind: kindArb,
    bytes: fc.uint8Array({ maxLength: 300 }),
  }),
  fc
    .record({ host: fc.constantFrom(...GHOSTS), kind: kindArb, cut: fc.nat() })
    .map(({ host, kind, cut }) => {
      const full = validPayloads(host)[kind];
      return { host, kind, bytes: full.slice(0, cut % full.length) };
    }),
  fc
    .record({
      host: fc.constantFrom(...GHOSTS),
      kind: kindArb,
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    })
    .map(({ host, kind, at, value }) => {
      const bytes = validPayloads(host)[kind].slice();
      bytes[at % bytes.length] = value;
      return { host, kind, bytes };
    }),
);

describe("the broker process under random and truncated agent messages", () => {
  let nats: NatsHandle;
  let broker: BrokerProcess;
  let agent: ClusterAgent;
  let observer: BeatObserver;

  beforeAll(async () => {
    buildAgent();
    nats = await startNats();
    observer = await BeatObserver.open(nats.url);
    broker = await startBrokerProcess(nats.url);
    agent = await startClusterAgent(REAL, nats.url);
  });

  afterAll(async () => {
    await agent?.dispose();
    await broker?.dispose();
    await observer?.close();
    await nats?.stop();
  });

  it("counts and drops them, and keeps serving", async () => {
    const bus = observer.bus;
    let published = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ host, kind, bytes }) => {
        // Some with a reply subject, as a Hello or a beat would have.
        const reply = published % 2 === 0 ? bus.createInbox() : undefined;
        bus.publish(hostSubject(host, kind), bytes, reply === undefined ? {} : { reply });
        published += 1;
        if (published % 50 === 0) await bus.flush();
        expect(broker.proc.running).toBe(true);
      }),
      { seed: 20_261_123, numRuns: 400 },
    );
    await bus.flush();
    expect(published).toBe(400);

    // Still up, and said why it dropped messages.
    await waitFor(
      () =>
        /dropped a (malformed|truncated|invalid) (hello|beat|event) message/.test(
          broker.proc.output(),
        ),
      {
        what: "the broker logs dropped messages",
        detail: () => broker.proc.outputTail(20),
      },
    );
    expect(broker.proc.running).toBe(true);
    const definition = loadSync(require("grpc-health-check").protoPath as string, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const health = new DynamicClient(
      broker.address,
      serviceDefinition(definition, "grpc.health.v1.Health"),
    );
    try {
      expect(pick(await health.unary("Check", { service: "" }), "status")).toBe("SERVING");
    } finally {
      health.close();
    }

    // The real agent is READY and runs what is submitted.
    await waitFor(
      async () => (await broker.api.getHost({ id: REAL })).state === "HOST_STATE_READY",
      {
        what: `${REAL} READY`,
        detail: () => broker.proc.outputTail(20),
      },
    );
    const lease = await broker.api.submitLease(
      immediate({ memoryGib: 1 }, 600_000, { constraints: ["zone!=fuzz"] }),
    );
    await waitFor(
      async () => (await broker.api.get({ id: lease.id })).state === "LEASE_STATE_ACTIVE",
      {
        what: "a lease ACTIVE after the fuzzing",
        detail: () => broker.proc.outputTail(20),
      },
    );
    expect((await broker.api.get({ id: lease.id })).hostId).toBe(REAL);
    await waitFor(() => observer.latest.get(REAL)?.leaseIds.includes(lease.id) === true, {
      what: `${REAL} runs the lease`,
    });
    expect(broker.proc.running).toBe(true);
  });
});
