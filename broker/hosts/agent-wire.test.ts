/**
 * The hand-written readers of heartbeats and workload events against the generic codec: they
 * read what the codec would decode, and whenever they answer on a damaged or foreign message, the
 * codec decodes it too, to the same values. Seeded: the same messages every run.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../core/index.js";
import { type AgentEventInput, agentCodecs, type HeartbeatInput } from "../../proto/index.js";
import { readHeartbeat, readWorkloadEvent } from "./agent-wire.js";

const MAX = agentCodecs.heartbeat.maxBytes;
const random = seededRandom(5);
const int = (n: number): number => Math.floor(random() * n);
const text = (): string =>
  ["", "host-7", "l-0000abcd", "ünïcödé ✓", "x".repeat(int(300))][int(5)] as string;

function randomBeat(): HeartbeatInput {
  return {
    hostId: text(),
    sequence: int(2) === 0 ? int(1000) : 2 ** 40 + int(1000),
    ...(int(3) === 0 ? {} : { time: { seconds: 1_800_000_000 + int(1000), nanos: int(1e9) } }),
    ...(int(3) === 0
      ? {}
      : { usage: { cpuMillis: int(64_000), memoryMib: int(1 << 20), diskGib: int(100), gpus: 0 } }),
    leaseIds: Array.from({ length: int(12) }, text),
    bootId: text(),
    seenEpoch: int(5),
  };
}

function randomEvent(): AgentEventInput {
  return {
    hostId: text(),
    sequence: int(1000),
    time: { seconds: 1_800_000_000 + int(1000), nanos: int(1e9) },
    bootId: text(),
    workload: {
      leaseId: text(),
      state: (
        ["WORKLOAD_STATE_RUNNING", "WORKLOAD_STATE_STOPPED", "WORKLOAD_STATE_FAILED"] as const
      )[int(3)],
      message: text(),
      migrationId: int(4) === 0 ? "m-1" : "",
    },
  };
}

/** Truncated, with a byte changed, with garbage appended, or random bytes. */
function damaged(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes);
  switch (int(4)) {
    case 0:
      return copy.subarray(0, int(copy.length));
    case 1:
      if (copy.length > 0) copy[int(copy.length)] = int(256);
      return copy;
    case 2:
      return Uint8Array.from([...copy, ...Array.from({ length: 1 + int(6) }, () => int(256))]);
    default:
      return Uint8Array.from({ length: int(40) }, () => int(256));
  }
}

/** The codec's decode, or undefined where it refuses the bytes. */
function generic<T>(decode: (b: Uint8Array) => T, bytes: Uint8Array): T | undefined {
  try {
    return decode(bytes);
  } catch {
    return undefined;
  }
}

const beatFields = (b: Uint8Array) => {
  const d = generic((x) => agentCodecs.heartbeat.decode(x), b);
  return d && { hostId: d.hostId, bootId: d.bootId, sequence: d.sequence, leaseIds: d.leaseIds };
};

const eventFields = (b: Uint8Array) => {
  const d = generic((x) => agentCodecs.agentEvent.decode(x), b);
  const w = d?.workload;
  return d?.kind === "workload" && w
    ? {
        hostId: d.hostId,
        kind: "workload",
        workload: {
          leaseId: w.leaseId,
          state: w.state,
          message: w.message,
          migrationId: w.migrationId,
        },
      }
    : undefined;
};

describe("agent wire readers", () => {
  it("read every heartbeat and workload event the codec encodes as the codec decodes it", () => {
    for (let i = 0; i < 300; i++) {
      const beat = agentCodecs.heartbeat.encode(randomBeat());
      const event = agentCodecs.agentEvent.encode(randomEvent());
      for (const [read, decoded] of [
        [readHeartbeat(beat, MAX), beatFields(beat)],
        [readWorkloadEvent(event, MAX), eventFields(event)],
      ]) {
        expect(read).toBeDefined();
        expect(read).toEqual(decoded);
      }
    }
  });

  it("answer on damaged bytes only where the codec decodes them to the same values", () => {
    let answered = 0;
    let refused = 0;
    for (let i = 0; i < 4000; i++) {
      const beat = damaged(agentCodecs.heartbeat.encode(randomBeat()));
      const readBeat = readHeartbeat(beat, MAX);
      if (readBeat !== undefined) expect(readBeat).toEqual(beatFields(beat));
      const event = damaged(agentCodecs.agentEvent.encode(randomEvent()));
      const readEvent = readWorkloadEvent(event, MAX);
      if (readEvent !== undefined) expect(readEvent).toEqual(eventFields(event));
      for (const r of [readBeat, readEvent]) {
        if (r === undefined) refused++;
        else answered++;
      }
    }
    // Both kinds of outcome occur (the test would prove nothing otherwise).
    expect(answered).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });

  it("leave to the codec what they do not read: progress, exit details, oversized, unknown fields", () => {
    const progress = agentCodecs.agentEvent.encode({
      hostId: "h",
      migrationProgress: { migrationId: "m", leaseId: "l", phase: "MIGRATION_STATE_COMPLETED" },
    });
    expect(readWorkloadEvent(progress, MAX)).toBeUndefined();
    const exited = agentCodecs.agentEvent.encode({
      hostId: "h",
      workload: { leaseId: "l", state: "WORKLOAD_STATE_FAILED", exit: { exitCode: 3 } },
    });
    expect(readWorkloadEvent(exited, MAX)).toBeUndefined();
    const beat = agentCodecs.heartbeat.encode({ hostId: "h", bootId: "b", sequence: 1 });
    expect(readHeartbeat(beat, MAX)).toEqual({
      hostId: "h",
      bootId: "b",
      sequence: 1,
      leaseIds: [],
    });
    expect(readHeartbeat(beat, beat.length - 1)).toBeUndefined();
    // Field 9, a varint: unknown to Heartbeat.
    expect(readHeartbeat(Uint8Array.from([...beat, 9 << 3, 1]), MAX)).toBeUndefined();
  });
});
