/**
 * Every validation error over gRPC: INVALID_ARGUMENT, the field path (as the contract spells it)
 * in the message and in the `lb-field` trailing metadata, and nothing admitted.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  durationFromMs,
  type LeaseSpecInput,
  type SubmitLeaseRequestInput,
  timestampFromMs,
} from "../../proto/index.js";
import {
  codeName,
  DAY,
  flexible,
  HOUR,
  immediate,
  MINUTE,
  metadataString,
  QUARTER,
  type RpcError,
  reserved,
  rpcError,
  SECOND,
  startBroker,
  T0,
  type TestBroker,
} from "./harness.js";

const ok = immediate(QUARTER, HOUR);
const withSpec = (extra: Partial<LeaseSpecInput>): SubmitLeaseRequestInput => ({
  spec: { ...ok, ...extra },
});
const resources = (r: { cpuMillis?: number; memoryMib?: number; diskGib?: number }) => ({
  cpuMillis: 1000,
  memoryMib: 1024,
  diskGib: 0,
  gpus: 0,
  ...r,
});
/** The immediate window replaced by another branch of the oneof. */
const window = (w: Partial<LeaseSpecInput>): SubmitLeaseRequestInput => {
  const { immediate: _dropped, ...rest } = ok;
  return { spec: { ...rest, ...w } };
};

const CASES: readonly { what: string; request: SubmitLeaseRequestInput; field: string }[] = [
  { what: "missing spec", request: {}, field: "spec" },
  { what: "missing resources", request: withSpec({ resources: null }), field: "spec.resources" },
  {
    what: "cpu 0",
    request: withSpec({ resources: resources({ cpuMillis: 0 }) }),
    field: "spec.resources.cpu_millis",
  },
  {
    what: "memory 0",
    request: withSpec({ resources: resources({ memoryMib: 0 }) }),
    field: "spec.resources.memory_mib",
  },
  {
    what: "negative disk",
    request: withSpec({ resources: resources({ diskGib: -1 }) }),
    field: "spec.resources.disk_gib",
  },
  {
    // 4 CPUs overcommitted 4:1: no host can ever give 16.001 cores.
    what: "cpu above the largest host",
    request: withSpec({ resources: resources({ cpuMillis: 16_001 }) }),
    field: "spec.resources.cpu_millis",
  },
  {
    what: "memory above the largest host",
    request: withSpec({ resources: resources({ memoryMib: 16 * 1024 + 1 }) }),
    field: "spec.resources.memory_mib",
  },
  { what: "missing window", request: window({}), field: "spec.window" },
  {
    what: "zero duration",
    request: withSpec({ immediate: { duration: durationFromMs(0) } }),
    field: "spec.immediate.duration",
  },
  {
    what: "unset duration",
    request: withSpec({ immediate: {} }),
    field: "spec.immediate.duration",
  },
  {
    what: "duration above 90 days",
    request: withSpec({ immediate: { duration: durationFromMs(90 * DAY + SECOND) } }),
    field: "spec.immediate.duration",
  },
  {
    what: "reserved start in the past",
    request: { spec: reserved(QUARTER, T0 - MINUTE, HOUR) },
    field: "spec.reserved.start",
  },
  {
    what: "reserved start beyond the horizon",
    request: { spec: reserved(QUARTER, T0 + 366 * DAY, HOUR) },
    field: "spec.reserved.start",
  },
  {
    what: "reserved without a start",
    request: window({ reserved: { duration: durationFromMs(HOUR) } }),
    field: "spec.reserved.start",
  },
  {
    what: "reserved zero duration",
    request: { spec: reserved(QUARTER, T0 + HOUR, 0) },
    field: "spec.reserved.duration",
  },
  {
    what: "flexible earliest after latest",
    request: {
      spec: flexible(QUARTER, {
        earliestMs: T0 + 2 * HOUR,
        latestMs: T0 + HOUR,
        durationMs: HOUR,
      }),
    },
    field: "spec.flexible.earliest_start",
  },
  {
    what: "flexible latest in the past",
    request: { spec: flexible(QUARTER, { latestMs: T0 - MINUTE, durationMs: HOUR }) },
    field: "spec.flexible.latest_start",
  },
  {
    what: "flexible without a latest start",
    request: window({ flexible: { duration: durationFromMs(HOUR) } }),
    field: "spec.flexible.latest_start",
  },
  {
    what: "flexible zero duration",
    request: { spec: flexible(QUARTER, { latestMs: T0 + HOUR, durationMs: 0 }) },
    field: "spec.flexible.duration",
  },
  { what: "priority 1001", request: withSpec({ priority: 1001 }), field: "spec.priority" },
  { what: "negative priority", request: withSpec({ priority: -1 }), field: "spec.priority" },
  { what: "bad tenant", request: withSpec({ tenant: "Acme Corp" }), field: "spec.tenant" },
  { what: "missing tenant", request: withSpec({ tenant: "" }), field: "spec.tenant" },
  { what: "bad name", request: withSpec({ name: "My VM!" }), field: "spec.name" },
  {
    what: "bad label key",
    request: withSpec({ labels: { "bad key": "x" } }),
    field: 'spec.labels["bad key"]',
  },
  {
    what: "bad label value",
    request: withSpec({ labels: { team: "no spaces allowed" } }),
    field: 'spec.labels["team"]',
  },
  {
    what: "33 constraints",
    request: withSpec({ constraints: Array.from({ length: 33 }, (_, i) => `k${i}`) }),
    field: "spec.constraints",
  },
  {
    what: "a malformed constraint",
    request: withSpec({ constraints: ["zone=zone-a", "rack in (rack-1"] }),
    field: "spec.constraints[1]",
  },
  {
    what: "bad affinity group",
    request: withSpec({
      affinity: { group: "Bad Group!", kind: "AFFINITY_KIND_ANTI_AFFINITY" },
    }),
    field: "spec.affinity.group",
  },
  {
    what: "affinity group without a kind",
    request: withSpec({ affinity: { group: "web" } }),
    field: "spec.affinity.kind",
  },
  {
    what: "bad topology key",
    request: withSpec({
      affinity: { group: "web", kind: "AFFINITY_KIND_AFFINITY", topologyKey: "not a key" },
    }),
    field: "spec.affinity.topology_key",
  },
  {
    what: "max_skew above 1000",
    request: withSpec({
      affinity: { group: "web", kind: "AFFINITY_KIND_AFFINITY", maxSkew: 1001 },
    }),
    field: "spec.affinity.max_skew",
  },
  {
    what: "max_downtime above 60 s",
    request: withSpec({ migration: { maxDowntime: durationFromMs(61 * SECOND) } }),
    field: "spec.migration.max_downtime",
  },
  {
    what: "driver image above 1024 characters",
    request: withSpec({ driver: { image: "x".repeat(1025) } }),
    field: "spec.driver.image",
  },
  {
    what: "more than 64 driver params",
    request: withSpec({
      driver: { params: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`p${i}`, ""])) },
    }),
    field: "spec.driver.params",
  },
];

function expectInvalid(error: RpcError, field: string): void {
  expect(codeName(error.code)).toBe("INVALID_ARGUMENT");
  expect(error.details).toContain(field);
  expect(metadataString(error.metadata, "lb-field")).toBe(field);
}

describe("validation", () => {
  let tb: TestBroker;
  beforeAll(async () => {
    tb = await startBroker();
  });
  afterAll(async () => {
    await tb.stop();
  });

  it("accepts the base spec the cases start from (dry run)", async () => {
    const response = await tb.api.submit({ ...withSpec({}), dryRun: true });
    expect(response.lease?.state).toBe("LEASE_STATE_STARTING");
  });

  it.each(CASES)("SubmitLease: $what → INVALID_ARGUMENT on $field", async ({ request, field }) => {
    expectInvalid(await rpcError(tb.api.submit(request)), field);
    // ExplainPlacement applies the same rules (where it gets a spec at all).
    if (request.spec !== undefined && request.spec !== null) {
      expectInvalid(await rpcError(tb.api.explain({ spec: request.spec })), field);
    }
  });

  it("admitted nothing for any of the bad specs", async () => {
    expect(await tb.api.listAll({})).toEqual([]);
  });

  it("ListLeases: page_size 5000, a negative page_size, an unspecified state, a bad selector", async () => {
    expectInvalid(await rpcError(tb.api.list({ pageSize: 5000 })), "page_size");
    expectInvalid(await rpcError(tb.api.list({ pageSize: -1 })), "page_size");
    expectInvalid(
      await rpcError(tb.api.list({ states: ["LEASE_STATE_UNSPECIFIED"] })),
      "states[0]",
    );
    expectInvalid(await rpcError(tb.api.list({ selector: ["zone in ("] })), "selector[0]");
    expect((await tb.api.list({ pageSize: 1000 })).leases).toEqual([]);
  });

  it("ListHosts: page_size 5000", async () => {
    expectInvalid(await rpcError(tb.api.listHosts({ pageSize: 5000 })), "page_size");
  });

  it("GetLease: an empty id is INVALID_ARGUMENT, an unknown one NOT_FOUND", async () => {
    expectInvalid(await rpcError(tb.api.get({ id: "" })), "id");
    const missing = await rpcError(tb.api.get({ id: "l-does-not-exist" }));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain("l-does-not-exist");
  });

  it("GetHost: an empty id is INVALID_ARGUMENT, an unknown one NOT_FOUND", async () => {
    expectInvalid(await rpcError(tb.api.getHost({ id: "" })), "id");
    expect((await rpcError(tb.api.getHost({ id: "sim-99" }))).code).toBe(status.NOT_FOUND);
  });

  it("ExtendLease: neither new_end nor extra, a zero extra, an empty id", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    expectInvalid(await rpcError(tb.api.extend({ id: lease.id })), "extension");
    expectInvalid(
      await rpcError(tb.api.extend({ id: lease.id, extra: durationFromMs(0) })),
      "extra",
    );
    expectInvalid(
      await rpcError(tb.api.extend({ id: "", newEnd: timestampFromMs(T0 + 2 * HOUR) })),
      "id",
    );
    await tb.api.cancel({ id: lease.id });
  });

  it("CancelLease and CordonHost: a reason above 256 characters", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    expectInvalid(
      await rpcError(tb.api.cancel({ id: lease.id, reason: "x".repeat(257) })),
      "reason",
    );
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_STARTING");
    expectInvalid(
      await rpcError(tb.api.cordon({ id: "sim-01", reason: "x".repeat(257) })),
      "reason",
    );
    expect((await tb.api.getHost({ id: "sim-01" })).state).toBe("HOST_STATE_READY");
    await tb.api.cancel({ id: lease.id });
  });

  it("GetCapacity: too many buckets, a bucket narrower than 1 s or wider than 30 days", async () => {
    expectInvalid(await rpcError(tb.api.capacity({ bucketCount: 1001 })), "bucket_count");
    expectInvalid(
      await rpcError(tb.api.capacity({ bucketWidth: durationFromMs(500) })),
      "bucket_width",
    );
    expectInvalid(
      await rpcError(tb.api.capacity({ bucketWidth: durationFromMs(31 * DAY) })),
      "bucket_width",
    );
  });
});
