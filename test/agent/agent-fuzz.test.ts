/**
 * Fuzzing a real agent process over real NATS: random bytes, truncated commands and commands with
 * a byte changed go onto its cmd subject; after each, it must still answer a valid command, and at
 * the end it must still run workloads and heartbeat. Bounded: a fixed seed and run count.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostSubject, NatsBus } from "../../bus/index.js";
import { agentCodecs, type CommandInput, timestampFromMs } from "../../proto/index.js";
import { type NatsHandle, startNats } from "../helpers/index.js";
import { type AgentProcess, buildAgent, startAgent } from "./agent-process.js";
import { FakeBroker } from "./fake-broker.js";

const HOST = "fuzz-host";
const EPOCH = 2;

/** Commands of every kind, for this host and epoch, with arbitrary ids. */
const commandArb: fc.Arbitrary<CommandInput> = fc
  .record({
    key: fc.string({ minLength: 1, maxLength: 40 }),
    leaseId: fc.string({ minLength: 1, maxLength: 40 }),
    kind: fc.constantFrom("start", "stop", "migrateOut", "abortMigration", "suspend", "resume"),
    cpu: fc.integer({ min: 1, max: 4000 }),
    mem: fc.integer({ min: 1, max: 4096 }),
  })
  .map(({ key, leaseId, kind, cpu, mem }): CommandInput => {
    const base = { idempotencyKey: key, epoch: EPOCH, hostId: HOST };
    switch (kind) {
      case "start":
        return {
          ...base,
          start: {
            leaseId,
            resources: { cpuMillis: cpu, memoryMib: mem },
            driver: { params: { boot_ms: "10" } },
            endTime: timestampFromMs(Date.now() + 3_600_000),
          },
        };
      case "stop":
        return { ...base, stop: { leaseId, force: true } };
      case "migrateOut":
        return {
          ...base,
          migrateOut: {
            migrationId: key,
            leaseId,
            destinationHostId: "elsewhere",
            destinationAddress: "127.0.0.1",
            destinationPort: 4444,
            downtimeLimit: { seconds: 1 },
          },
        };
      case "abortMigration":
        return { ...base, abortMigration: { migrationId: key, leaseId } };
      case "suspend":
        return { ...base, suspend: { leaseId } };
      default:
        return { ...base, resume: { leaseId } };
    }
  });

const encoded = commandArb.map((c) => agentCodecs.command.encode(c));

const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .tuple(encoded, fc.nat())
    .map(([bytes, cut]) => bytes.slice(0, cut % Math.max(bytes.length, 1))),
  fc.tuple(encoded, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([bytes, at, value]) => {
    const copy = bytes.slice();
    copy[at % copy.length] = value;
    return copy;
  }),
);

describe("fuzzing the agent's cmd subject", () => {
  let nats: NatsHandle;
  let bus: NatsBus;
  let broker: FakeBroker;
  let agent: AgentProcess;

  beforeAll(async () => {
    buildAgent();
    nats = await startNats();
    bus = await NatsBus.connect({ servers: nats.url, name: "fuzzer" });
    broker = new FakeBroker({ bus, epoch: EPOCH, heartbeatIntervalMs: 200 }).start();
    await bus.flush();
    // Room for every workload the fuzzed start commands may create.
    agent = await startAgent(HOST, nats.url, ["--cpus", "1000", "--memory-gib", "10000"]);
    await broker.until(() => broker.hellos.length >= 1, "a hello");
  });

  afterAll(async () => {
    broker?.stop();
    await bus?.close();
    await agent?.dispose();
    await nats?.stop();
  });

  it("keeps answering valid commands whatever arrives before them", async () => {
    const subject = hostSubject(HOST, "cmd");
    const inbox = bus.createInbox();
    let answered = 0;
    bus.subscribe(inbox, () => {
      answered += 1;
    });
    let probes = 0;
    await fc.assert(
      fc.asyncProperty(payloadArb, fc.boolean(), async (payload, withReply) => {
        bus.publish(subject, payload, withReply ? { reply: inbox } : undefined);
        probes += 1;
        // A changed byte may raise the epoch the agent has seen; a real broker would then step
        // down, this one just follows, as the probe is about the agent still answering.
        // Keys of their own: a fuzzed key must not make a probe a "duplicate".
        const probe = () =>
          broker.command(HOST, {
            idempotencyKey: `probe:${probes}:${broker.epoch}`,
            stop: { leaseId: `probe-${probes}` },
          });
        let reply = await probe();
        if (reply.error === "COMMAND_ERROR_STALE_EPOCH") {
          broker.epoch = reply.seenEpoch;
          reply = await probe();
        }
        expect(reply.ok).toBe(true);
      }),
      { numRuns: 300, seed: 20_251_123, endOnFailure: true },
    );
    expect(agent.proc.running).toBe(true);
    // Payloads that decode but are no valid command for this host are answered, not acted on.
    expect(answered).toBeGreaterThan(0);
    expect(agent.proc.output()).toMatch(/dropped a truncated cmd message/);

    const started = await broker.command(HOST, {
      start: {
        leaseId: "after-fuzz",
        resources: { cpuMillis: 100, memoryMib: 64 },
        driver: { params: { boot_ms: "10" } },
        endTime: timestampFromMs(Date.now() + 3_600_000),
      },
    });
    expect(started.ok).toBe(true);
    await broker.until(
      () => broker.workloadStates("after-fuzz").includes("RUNNING"),
      "the workload started after fuzzing to run",
    );
    const beats = broker.beats.length;
    await broker.until(() => broker.beats.length > beats + 1, "heartbeats after fuzzing");
    expect(broker.hellos).toHaveLength(1);
  });
});
