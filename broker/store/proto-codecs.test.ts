import { describe, expect, it } from "vitest";
import type { HostRecord } from "../hosts/registry.js";
import type { Lease, LeaseSpec } from "../leases/model.js";
import type { Migration } from "../migrations/model.js";
import { storedHostCodec, storedLeaseCodec, storedMigrationCodec } from "./proto-codecs.js";

const T = Date.UTC(2026, 10, 24, 12, 0, 0, 123);

const spec: LeaseSpec = {
  name: "web",
  tenant: "acme",
  labels: { app: "web" },
  resources: { cpuMillis: 1500, memoryMib: 2048, diskGib: 20, gpus: 1, extended: { fpga: 2 } },
  window: { kind: "flexible", earliestStart: T, latestStart: T + 3_600_000, durationMs: 90_000 },
  priority: 7,
  preemptible: true,
  constraints: ["zone in (a,b)"],
  affinity: { group: "g", kind: "anti-affinity", hard: true, topologyKey: "zone", maxSkew: 1 },
  migration: {
    liveMigratable: true,
    maxDowntimeMs: 300,
    allowSuspend: false,
    allowAutoConverge: true,
    allowPostCopy: false,
  },
  onHostFailure: "restart",
  allowQueue: true,
  policy: "spread",
  driver: { image: "debian-12", params: { vga: "none" } },
};

const lease: Lease = {
  id: "l-1",
  spec,
  state: "ENDING",
  hostId: "h-1",
  start: T,
  end: T + 90_000,
  requestId: "req-1",
  createdAt: T - 5,
  updatedAt: T + 7,
  statusMessage: "preempted by l-2",
  history: [
    { hostId: "h-0", at: T - 3, reason: "placed" },
    { hostId: "h-1", at: T, reason: "restarted" },
  ],
  stopReason: "preempt",
  stopDeadline: T + 60_000,
  warned: true,
  lastEvent: "PREEMPTION_NOTICE",
};

describe("the etcd store's protobuf values", () => {
  it("read a lease back exactly as it was written, optional fields set or not", () => {
    expect(storedLeaseCodec.decode(storedLeaseCodec.encode(lease))).toEqual(lease);
    const { affinity: _a, policy: _p, ...bareSpec } = spec;
    const { stopReason: _s, stopDeadline: _d, ...rest } = lease;
    const plain: Lease = {
      ...rest,
      spec: { ...bareSpec, window: { kind: "immediate", durationMs: 60_000 } },
      state: "PENDING",
      hostId: "",
      start: 0,
      end: 0,
      history: [],
      warned: false,
      lastEvent: "CREATED",
    };
    expect(storedLeaseCodec.decode(storedLeaseCodec.encode(plain))).toEqual(plain);
    const reserved: Lease = {
      ...lease,
      spec: { ...spec, window: { kind: "reserved", start: T + 1, durationMs: 5 } },
    };
    expect(storedLeaseCodec.decode(storedLeaseCodec.encode(reserved))).toEqual(reserved);
  });

  it("read hosts and migrations back exactly", () => {
    const host: HostRecord = {
      id: "h-1",
      cordoned: true,
      reason: "disk",
      drainDeadline: T,
      updatedAt: T,
    };
    expect(storedHostCodec.decode(storedHostCodec.encode(host))).toEqual(host);
    const bare: HostRecord = { id: "h-2", cordoned: false, updatedAt: T };
    expect(storedHostCodec.decode(storedHostCodec.encode(bare))).toEqual(bare);
    const migration: Migration = {
      id: "m-1",
      leaseId: "l-1",
      fromHostId: "h-1",
      toHostId: "h-2",
      state: "ABORTED",
      reason: "MAKE_ROOM",
      createdAt: T,
      startedAt: T + 1,
      endedAt: T + 2,
      progress: {
        bytesTransferred: 5 * 2 ** 32,
        bytesRemaining: 7,
        rounds: 3,
        dirtyRateBytesPerS: 11,
        bandwidthBytesPerS: 13,
        expectedDowntimeMs: 17,
        time: T + 1,
      },
      downtimeMs: 0,
      abortReason: "destination down",
      abortedByRequest: true,
      bandwidthLimitBytesPerS: 1e9,
      maxDowntimeMs: 300,
      autoConverge: true,
      postCopy: false,
      resources: { cpuMillis: 2000, memoryMib: 4096, diskGib: 10, gpus: 1 },
    };
    expect(storedMigrationCodec.decode(storedMigrationCodec.encode(migration))).toEqual(migration);
    const planned: Migration = {
      ...migration,
      state: "PLANNED",
      startedAt: 0,
      endedAt: 0,
      abortReason: "",
      resources: { cpuMillis: 1000, memoryMib: 1024, diskGib: 0, gpus: 0 },
    };
    const { progress: _p, downtimeMs: _d, abortedByRequest: _a, ...bareMigration } = planned;
    expect(storedMigrationCodec.decode(storedMigrationCodec.encode(bareMigration))).toEqual(
      bareMigration,
    );
  });

  it("refuse bytes that are not a stored lease", () => {
    expect(() => storedLeaseCodec.decode(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
    expect(() => storedLeaseCodec.decode(new TextEncoder().encode('{"id":"l-1"}'))).toThrow();
  });
});
