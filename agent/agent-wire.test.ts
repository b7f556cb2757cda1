import { describe, expect, it } from "vitest";
import { agentCodecs, timestampFromMs } from "../proto/index.js";
import {
  type CommandReplyFields,
  encodeCommandReply,
  encodeHeartbeat,
  encodeWorkloadEvent,
  type HeartbeatFields,
  type WorkloadEventFields,
} from "./agent-wire.js";

// Each hand-written encoding must decode (with the checked codec) to what the codec's own
// encoding of the same message decodes to.
describe("the agent's hand-written encoders", () => {
  const beats: HeartbeatFields[] = [
    {
      hostId: "sim-0001",
      sequence: 1,
      timeMs: 1_795_000_123_456,
      usage: { cpuMillis: 1500, memoryMib: 2048, diskGib: 10, gpus: 1 },
      leaseIds: ["lease-a", "lease-b"],
      bootId: "8d0f5b7e-boot",
      seenEpoch: 3,
    },
    {
      hostId: "h",
      sequence: 2 ** 40,
      timeMs: 0,
      usage: { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 },
      leaseIds: [],
      bootId: "",
      seenEpoch: 0,
    },
  ];
  it.each(beats)("heartbeat %#", (beat) => {
    const generic = agentCodecs.heartbeat.encode({
      hostId: beat.hostId,
      sequence: beat.sequence,
      time: timestampFromMs(beat.timeMs),
      usage: beat.usage,
      leaseIds: [...beat.leaseIds],
      bootId: beat.bootId,
      seenEpoch: beat.seenEpoch,
    });
    expect(agentCodecs.heartbeat.decode(encodeHeartbeat(beat))).toEqual(
      agentCodecs.heartbeat.decode(generic),
    );
  });

  it("rounds fractional usage, as integers go on the wire", () => {
    const beat = {
      ...(beats[0] as HeartbeatFields),
      usage: { cpuMillis: 1.6, memoryMib: 2, diskGib: 0, gpus: 0 },
    };
    expect(agentCodecs.heartbeat.decode(encodeHeartbeat(beat)).usage?.cpuMillis).toBe(2);
  });

  const events: WorkloadEventFields[] = [
    {
      leaseId: "lease-1",
      state: "WORKLOAD_STATE_RUNNING",
      message: "booted",
      exit: null,
      migrationId: "",
    },
    {
      leaseId: "lease-ü",
      state: "WORKLOAD_STATE_FAILED",
      message: "x".repeat(300),
      exit: { exitCode: -1, signal: "SIGKILL", forced: true, guestInitiated: false },
      migrationId: "mig-1",
    },
  ];
  it.each(events)("workload event %#", (event) => {
    const header = { hostId: "sim-0002", sequence: 7, timeMs: 1_795_000_000_001, bootId: "b" };
    const generic = agentCodecs.agentEvent.encode({
      hostId: header.hostId,
      sequence: header.sequence,
      time: timestampFromMs(header.timeMs),
      bootId: header.bootId,
      workload: event,
    });
    const decoded = agentCodecs.agentEvent.decode(encodeWorkloadEvent(header, event));
    expect(decoded).toEqual(agentCodecs.agentEvent.decode(generic));
    expect(decoded.kind).toBe("workload");
  });

  const replies: CommandReplyFields[] = [
    {
      idempotencyKey: "start:lease-1:1:1",
      ok: true,
      error: "COMMAND_ERROR_UNSPECIFIED",
      errorMessage: "",
      duplicate: false,
      incomingAddress: "",
      incomingPort: 0,
      suspendImage: null,
      seenEpoch: 1,
    },
    {
      idempotencyKey: "k",
      ok: false,
      error: "COMMAND_ERROR_STALE_EPOCH",
      errorMessage: "epoch 1 is older than 2",
      duplicate: true,
      incomingAddress: "10.0.0.1",
      incomingPort: 49152,
      suspendImage: {
        address: "10.0.0.2",
        port: 8000,
        token: "abc",
        sizeBytes: 2 ** 34,
        sha256: "f".repeat(64),
      },
      seenEpoch: 2,
    },
  ];
  it.each(replies)("command reply %#", (reply) => {
    expect(agentCodecs.commandReply.decode(encodeCommandReply(reply))).toEqual(
      agentCodecs.commandReply.decode(agentCodecs.commandReply.encode(reply)),
    );
  });

  it("refuses a state the contract does not know", () => {
    const bad = {
      ...(events[0] as WorkloadEventFields),
      state: "WORKLOAD_STATE_NOPE",
    } as unknown as WorkloadEventFields;
    expect(() =>
      encodeWorkloadEvent({ hostId: "h", sequence: 1, timeMs: 1, bootId: "" }, bad),
    ).toThrow(RangeError);
  });
});
