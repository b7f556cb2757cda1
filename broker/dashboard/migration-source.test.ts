import { describe, expect, it } from "vitest";
import type { Migration } from "../migrations/model.js";
import { type BrokerSchema, MemoryStore } from "../store/index.js";
import { orchestratorMigrationSource } from "./migration-source.js";
import type { MigrationView } from "./sources.js";

const base: Migration = {
  id: "m-1",
  leaseId: "l-1",
  fromHostId: "h-a",
  toHostId: "h-b",
  state: "TRANSFERRING",
  reason: "MAKE_ROOM",
  createdAt: 1_000,
  startedAt: 2_000,
  endedAt: 0,
  progress: {
    bytesTransferred: 300,
    bytesRemaining: 100,
    rounds: 1,
    dirtyRateBytesPerS: 0,
    bandwidthBytesPerS: 100,
    expectedDowntimeMs: 1,
    time: 2_500,
  },
  abortReason: "",
  bandwidthLimitBytesPerS: 0,
  maxDowntimeMs: 300,
  autoConverge: false,
  postCopy: false,
  resources: { cpuMillis: 1000, memoryMib: 1024, diskGib: 0, gpus: 0 },
};

describe("orchestratorMigrationSource", () => {
  it("lists the orchestrator's unfinished migrations and reports every stored step", async () => {
    const store = new MemoryStore<BrokerSchema>();
    const source = orchestratorMigrationSource({ unfinished: () => [base] }, store);
    expect(source.migrations()).toEqual([
      expect.objectContaining({
        id: "m-1",
        state: "TRANSFERRING",
        progress: 0.75,
        reason: "make-room",
      }),
    ]);
    const seen: MigrationView[] = [];
    const off = source.subscribe((m) => seen.push(m));
    await store.commit([{ type: "put", collection: "migrations", id: "m-1", value: base }]);
    const done: Migration = { ...base, state: "COMPLETED", endedAt: 9_000, downtimeMs: 40 };
    await store.commit([{ type: "put", collection: "migrations", id: "m-1", value: done }]);
    off();
    await store.commit([{ type: "put", collection: "migrations", id: "m-1", value: done }]);
    expect(seen.map((m) => [m.state, m.progress, m.durationMs, m.downtimeMs])).toEqual([
      ["TRANSFERRING", 0.75, undefined, undefined],
      ["COMPLETED", 1, 7_000, 40],
    ]);
  });
});
