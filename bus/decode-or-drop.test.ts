import { describe, expect, it } from "vitest";
import { silentLogger } from "../core/index.js";
import { agentCodecs, createCodec } from "../proto/index.js";
import { DropCounters, decodeOrDrop } from "./decode-or-drop.js";

const log = silentLogger();
const command = agentCodecs.command.encode({
  idempotencyKey: "k-1",
  epoch: 3,
  hostId: "h1",
  start: { leaseId: "lease-1", resources: { cpuMillis: 1000, memoryMib: 512 } },
});

describe("decodeOrDrop", () => {
  it("returns the message for valid bytes and counts nothing", () => {
    const counters = new DropCounters();
    const decoded = decodeOrDrop(agentCodecs.command, command, counters, log, { kind: "cmd" });
    expect(decoded?.idempotencyKey).toBe("k-1");
    expect(decoded?.kind).toBe("start");
    expect(counters.total).toBe(0);
  });

  it("counts truncated, malformed and oversized payloads by kind and reason", () => {
    const counters = new DropCounters();
    const events: string[] = [];
    counters.onDrop((e) => events.push(`${e.kind}/${e.reason}#${e.count}`));
    const src = { kind: "cmd", subject: "lb.v1.host.h1.cmd" };
    expect(decodeOrDrop(agentCodecs.command, command.slice(0, 9), counters, log, src)).toBe(
      undefined,
    );
    // Both `start` (field 5) and `stop` (field 6) of the oneof: complete, but not a valid Command.
    const twoKinds = Uint8Array.of(0x2a, 0x00, 0x32, 0x00);
    expect(decodeOrDrop(agentCodecs.command, twoKinds, counters, log, src)).toBeUndefined();
    const small = createCodec("leasebroker.v1.Command", { maxBytes: 8 });
    expect(decodeOrDrop(small, command, counters, log, src)).toBeUndefined();
    expect(
      decodeOrDrop(agentCodecs.heartbeat, Uint8Array.of(0x22, 0x05), counters, log, {
        kind: "beat",
      }),
    ).toBeUndefined();
    expect(counters.get("cmd", "truncated")).toBe(1);
    expect(counters.get("cmd", "oversized")).toBe(1);
    expect(counters.get("cmd", "malformed")).toBe(1);
    expect(counters.get("cmd")).toBe(3);
    expect(counters.get("beat", "truncated")).toBe(1);
    expect(counters.total).toBe(4);
    expect(counters.snapshot()).toMatchObject({ "cmd/oversized": 1, "beat/truncated": 1 });
    expect(events).toContain("cmd/oversized#1");
  });

  it("never throws, whatever the bytes", () => {
    const counters = new DropCounters();
    let state = 7;
    for (let i = 0; i < 500; i++) {
      const bytes = new Uint8Array(i % 40);
      for (let j = 0; j < bytes.length; j++) {
        state = (state * 1103515245 + 12345) >>> 0;
        bytes[j] = state >>> 24;
      }
      expect(() =>
        decodeOrDrop(agentCodecs.command, bytes, counters, log, { kind: "cmd" }),
      ).not.toThrow();
    }
  });
});
