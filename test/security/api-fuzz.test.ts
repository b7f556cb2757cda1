/**
 * Hostile input against every RPC of a real in-process broker over gRPC (virtual clock, simulated
 * hosts): property-based requests with fast-check — random, boundary, huge, malformed labels,
 * deep selectors, absurd times, unknown enum values — plus corrupted bytes and oversized
 * messages. Every call must end with a clean status (INVALID_ARGUMENT and the other deliberate
 * codes) or a valid answer, never INTERNAL/UNKNOWN; the broker keeps serving; afterwards no host
 * is oversubscribed at any instant and no lease is in an impossible state. Bounded: fixed seeds,
 * a few hundred runs.
 */
import { Client, credentials, type ServiceError, status } from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "../../broker/leases/model.js";
import { HOLDING_STATES, isTerminal } from "../../broker/leases/transitions.js";
import { LEASE_BROKER_SERVICE_NAME, loadLeaseBrokerPackageDefinition } from "../../proto/index.js";
import { serviceDefinition } from "../broker/dynamic-grpc.js";
import { startBroker, T0, type TestBroker } from "../broker/harness.js";

/** Deliberate answers to a bad or impossible request. INTERNAL or UNKNOWN would be a bug. */
const CLEAN = new Set<number>([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.UNIMPLEMENTED,
]);

const service = serviceDefinition(loadLeaseBrokerPackageDefinition(), LEASE_BROKER_SERVICE_NAME);
let broker: TestBroker;
let client: Client;
const knownIds: string[] = [];
const outcomes = new Map<string, number>();

function method(name: string): MethodDefinition<object, object> {
  const m = service[name];
  if (m === undefined) throw new Error(`no method ${name}`);
  return m;
}

const identity = (b: Buffer): Buffer => b;

/** Sends `bytes` to `name` as they are; resolves with the status code (OK = 0) and details. */
function sendBytes(
  name: string,
  bytes: Buffer,
): Promise<{ code: number; details: string; response?: object }> {
  const m = method(name);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      m.path,
      identity,
      m.responseDeserialize,
      bytes,
      { deadline: Date.now() + 30_000 },
      (error: ServiceError | null, response?: object) => {
        if (error === null)
          resolve({
            code: status.OK,
            details: "",
            ...(response === undefined ? {} : { response }),
          });
        else resolve({ code: error.code, details: error.details });
      },
    );
  });
}

/** Serializes `request` as the contract says, or undefined if the client itself cannot. */
function encode(name: string, request: object): Buffer | undefined {
  try {
    return method(name).requestSerialize(request);
  } catch {
    return undefined;
  }
}

async function call(name: string, request: object): Promise<number> {
  const bytes = encode(name, request);
  if (bytes === undefined) return -1;
  const result = await sendBytes(name, bytes);
  outcomes.set(
    `${name} ${status[result.code]}`,
    (outcomes.get(`${name} ${status[result.code]}`) ?? 0) + 1,
  );
  if (!CLEAN.has(result.code)) {
    throw new Error(
      `${name} answered ${status[result.code]}: ${result.details}\nrequest: ${JSON.stringify(request).slice(0, 2000)}`,
    );
  }
  if (name === "SubmitLease" && result.response !== undefined) {
    const id = (result.response as { lease?: { id?: string } }).lease?.id;
    if (typeof id === "string" && id !== "") knownIds.push(id);
  }
  return result.code;
}

// ── arbitraries ──────────────────────────────────────────────────────────────────────────────

const NOW_S = Math.floor(T0 / 1000);
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const text = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom("", "acme", "team-a", "sim-01", "zone", "zone-a", "vm-1"),
  },
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 100 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 300_000 }).map((n) => "x".repeat(n)) },
);

const int64 = fc.oneof(
  fc.integer({ min: -2, max: 5000 }).map(String),
  fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map(String),
  fc.constantFrom("0", "-1", String(INT64_MAX), String(INT64_MIN), "9007199254740993"),
);

const int32 = fc.oneof(
  fc.integer({ min: -5, max: 1100 }),
  fc.constantFrom(0, -1, 2 ** 31 - 1, -(2 ** 31)),
);

const timestamp = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      seconds: fc.integer({ min: NOW_S - 3600, max: NOW_S + 7 * 86_400 }).map(String),
      nanos: fc.constant(0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ seconds: int64, nanos: fc.integer() }) },
  { weight: 1, arbitrary: fc.constant(null) },
);

const duration = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      seconds: fc.integer({ min: 1, max: 86_400 }).map(String),
      nanos: fc.constant(0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ seconds: int64, nanos: fc.integer() }) },
  { weight: 1, arbitrary: fc.constant(null) },
);

const labels = fc.oneof(
  fc.dictionary(text, text, { maxKeys: 5 }),
  fc.constant({ zone: "zone-a" }),
  fc
    .integer({ min: 100, max: 2000 })
    .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]))),
);

const selector = fc.oneof(
  fc.constantFrom(
    "zone in (zone-a,zone-b)",
    "rack=rack-1",
    "!gpu",
    "zone notin (zone-c)",
    "driver",
    "a in ()",
    "=",
    "in (",
    ")",
  ),
  fc.string({ maxLength: 40 }),
  fc.integer({ min: 1, max: 20_000 }).map((n) => `${"(".repeat(n)}zone${")".repeat(n)}`),
  fc
    .integer({ min: 1, max: 20_000 })
    .map((n) => `zone in (${Array.from({ length: n }, (_, i) => `z${i}`).join(",")})`),
);

const enumOf = (...names: string[]) =>
  fc.oneof(fc.constantFrom(...names), fc.integer({ min: -3, max: 40 }), fc.constant(2 ** 31 - 1));

const resources = fc.record({
  cpuMillis: fc.oneof(fc.integer({ min: 0, max: 8000 }).map(String), int64),
  memoryMib: fc.oneof(fc.integer({ min: 0, max: 20_000 }).map(String), int64),
  diskGib: fc.oneof(fc.constant("0"), int64),
  gpus: fc.oneof(fc.constant("0"), int64),
  extended: fc.oneof(fc.constant({}), fc.dictionary(text, int64, { maxKeys: 3 })),
});

const window = fc.oneof(
  fc.record({ immediate: fc.record({ duration }) }),
  fc.record({ reserved: fc.record({ start: timestamp, duration }) }),
  fc.record({
    flexible: fc.record({ earliestStart: timestamp, latestStart: timestamp, duration }),
  }),
  fc.constant({}),
);

/** A spec the broker should admit (or queue): the state the hostile calls then act on. */
const plausibleSpec = fc.record({
  name: fc.constant("vm"),
  tenant: fc.constantFrom("acme", "team-a"),
  labels: fc.constant({ app: "web" }),
  resources: fc.record({
    cpuMillis: fc.integer({ min: 100, max: 4000 }).map(String),
    memoryMib: fc.integer({ min: 128, max: 12_000 }).map(String),
  }),
  priority: fc.integer({ min: 0, max: 1000 }),
  preemptible: fc.boolean(),
  constraints: fc.constantFrom([], ["zone in (zone-a,zone-b)"], ["rack=rack-1"]),
  allowQueue: fc.boolean(),
  immediate: fc.record({
    duration: fc.record({ seconds: fc.integer({ min: 60, max: 86_400 }).map(String) }),
  }),
});

const hostileSpec = fc
  .record({
    name: text,
    tenant: fc.oneof(fc.constant("acme"), text),
    labels,
    resources,
    priority: int32,
    preemptible: fc.boolean(),
    constraints: fc.array(selector, { maxLength: 4 }),
    affinity: fc.oneof(
      fc.constant(null),
      fc.record({
        group: text,
        kind: enumOf("AFFINITY_KIND_AFFINITY", "AFFINITY_KIND_ANTI_AFFINITY"),
        hard: fc.boolean(),
        topologyKey: text,
        maxSkew: int32,
      }),
    ),
    migration: fc.oneof(
      fc.constant(null),
      fc.record({ liveMigratable: fc.boolean(), maxDowntime: duration }),
    ),
    onHostFailure: enumOf("ON_HOST_FAILURE_RESTART", "ON_HOST_FAILURE_FAIL"),
    allowQueue: fc.boolean(),
    policy: fc.oneof(
      fc.constant(null),
      fc.record({ fit: enumOf("PLACEMENT_FIT_BINPACK", "PLACEMENT_FIT_SPREAD") }),
    ),
    driver: fc.oneof(
      fc.constant(null),
      fc.record({ image: text, params: fc.dictionary(text, text, { maxKeys: 3 }) }),
    ),
  })
  .chain((s) => window.map((w) => ({ ...s, ...w })));

const spec = fc.oneof(
  { weight: 2, arbitrary: plausibleSpec },
  { weight: 3, arbitrary: hostileSpec },
);

const leaseId = fc.oneof(
  fc.nat().map((i) => knownIds[i % Math.max(1, knownIds.length)] ?? ""),
  text,
);

const leaseStates = fc.array(
  enumOf("LEASE_STATE_PENDING", "LEASE_STATE_ACTIVE", "LEASE_STATE_ENDED"),
  { maxLength: 4 },
);

const requests: Record<string, fc.Arbitrary<object>> = {
  SubmitLease: fc.record({
    spec,
    requestId: fc.oneof(fc.constant(""), text),
    dryRun: fc.boolean(),
  }),
  GetLease: fc.record({ id: leaseId }),
  ListLeases: fc.record({
    tenant: text,
    states: leaseStates,
    hostId: text,
    pageSize: int32,
    pageToken: text,
    windowKinds: fc.array(enumOf("WINDOW_KIND_IMMEDIATE", "WINDOW_KIND_FLEXIBLE"), {
      maxLength: 3,
    }),
    selector: fc.array(selector, { maxLength: 3 }),
  }),
  CancelLease: fc.record({ id: leaseId, reason: text, expectedRevision: int64 }),
  ExtendLease: fc.oneof(
    fc.record({
      id: leaseId,
      newEnd: timestamp,
      expectedRevision: fc.oneof(fc.constant("0"), int64),
    }),
    fc.record({ id: leaseId, extra: duration, expectedRevision: fc.constant("0") }),
    fc.record({ id: leaseId }),
  ),
  SuspendLease: fc.record({ id: leaseId, reason: text, expectedRevision: int64 }),
  ResumeLease: fc.record({ id: leaseId, expectedRevision: int64 }),
  ExplainPlacement: fc.record({ spec }),
  ListHosts: fc.record({
    states: fc.array(enumOf("HOST_STATE_READY", "HOST_STATE_CORDONED"), { maxLength: 3 }),
    selector: fc.array(selector, { maxLength: 3 }),
    pageSize: int32,
    pageToken: text,
  }),
  GetHost: fc.record({ id: text }),
  CordonHost: fc.record({ id: fc.oneof(fc.constantFrom("sim-01", "sim-02"), text), reason: text }),
  UncordonHost: fc.record({ id: fc.oneof(fc.constantFrom("sim-01", "sim-02"), text) }),
  DrainHost: fc.record({ id: text, deadline: timestamp, reason: text, dryRun: fc.boolean() }),
  MigrateLease: fc.record({ leaseId, targetHostId: text, expectedRevision: int64 }),
  GetMigration: fc.record({ id: text }),
  ListMigrations: fc.record({ pageSize: int32, pageToken: text }),
  AbortMigration: fc.record({ id: text, reason: text }),
  GetCapacity: fc.record({
    start: timestamp,
    bucketWidth: duration,
    bucketCount: int32,
    selector: fc.array(selector, { maxLength: 3 }),
  }),
  GetAutoscaleStatus: fc.constant({}),
  Rebalance: fc.record({ dryRun: fc.boolean() }),
};

const unaryNames = Object.keys(service).filter((name) => service[name]?.responseStream === false);

// ── the invariants ───────────────────────────────────────────────────────────────────────────

const KNOWN_STATES = new Set([
  "PENDING",
  "RESERVED",
  "STARTING",
  "ACTIVE",
  "MIGRATING",
  "SUSPENDED",
  "ENDING",
  "ENDED",
  "CANCELLED",
  "REJECTED",
  "FAILED",
  "PREEMPTED",
]);

function checkInvariants(b: TestBroker): void {
  const leases: Lease[] = [];
  let token = "";
  do {
    const page = b.broker.leases.list({ pageSize: 1000, pageToken: token });
    leases.push(...page.leases.map((item) => item.value));
    token = page.nextPageToken;
  } while (token !== "");
  const hosts = new Map(b.broker.hosts.views().map((v) => [v.id, v]));
  for (const lease of leases) {
    const where = `lease ${lease.id} (${lease.state})`;
    expect(KNOWN_STATES.has(lease.state), where).toBe(true);
    if (lease.state === "PENDING") expect(lease.hostId, where).toBe("");
    if (HOLDING_STATES.has(lease.state)) {
      expect(hosts.has(lease.hostId), where).toBe(true);
      expect(Number.isFinite(lease.start) && Number.isFinite(lease.end), where).toBe(true);
      expect(lease.end, where).toBeGreaterThan(lease.start);
    }
    if (isTerminal(lease.state))
      expect(
        b.broker.index.holdsOn(lease.hostId).some((h) => h.leaseId === lease.id),
        where,
      ).toBe(false);
  }
  // No host oversubscribed at any instant: sweep each host's holds, independently of the index.
  for (const [hostId, view] of hosts) {
    const holds = b.broker.index.holdsOn(hostId);
    const times = [...new Set(holds.map((h) => h.start))];
    for (const t of times) {
      const at = holds.filter((h) => h.start <= t && t < h.end);
      for (const dim of ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const) {
        const used = at.reduce((sum, h) => sum + h.resources[dim], 0);
        expect(used, `${hostId} ${dim} at ${t}`).toBeLessThanOrEqual(view.allocatable[dim]);
      }
    }
  }
}

// ── the tests ────────────────────────────────────────────────────────────────────────────────

beforeAll(async () => {
  broker = await startBroker({ hosts: { count: 3 } });
  client = new Client(broker.address, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await broker?.stop();
});

describe("hostile requests to every RPC", () => {
  it("covers every unary RPC of the service", () => {
    expect(unaryNames.filter((n) => requests[n] === undefined)).toEqual([]);
  });

  it("answers every generated request cleanly; the state stays consistent", async () => {
    const anyCall = fc.oneof(
      ...unaryNames.map((name) =>
        fc.record({ name: fc.constant(name), request: requests[name] as fc.Arbitrary<object> }),
      ),
      // Submits are what build state: more of them.
      fc.record({
        name: fc.constant("SubmitLease"),
        request: requests.SubmitLease as fc.Arbitrary<object>,
      }),
      fc.record({
        name: fc.constant("SubmitLease"),
        request: requests.SubmitLease as fc.Arbitrary<object>,
      }),
    );
    await fc.assert(
      fc.asyncProperty(anyCall, fc.nat({ max: 120_000 }), async ({ name, request }, advanceMs) => {
        await call(name, request);
        await broker.advance(advanceMs);
      }),
      { numRuns: 300, seed: 11, endOnFailure: true },
    );
    checkInvariants(broker);
    // Still serving, and still admitting a plain lease where there is room.
    expect(await call("ListHosts", {})).toBe(status.OK);
    expect(outcomes.get("SubmitLease OK") ?? 0).toBeGreaterThan(0);
    expect(outcomes.get("SubmitLease INVALID_ARGUMENT") ?? 0).toBeGreaterThan(0);
  });

  it("answers corrupted and random bytes with a clean status", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...unaryNames),
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc
            .uint8Array({ minLength: 1, maxLength: 8 })
            .map((b) => new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x7f, ...b])),
        ),
        async (name, bytes) => {
          const result = await sendBytes(name, Buffer.from(bytes));
          // grpc-js answers bytes that do not decode as the request message with INTERNAL
          // "Error deserializing request" before any handler runs: that is clean, too.
          const undecodable = result.code === status.INTERNAL && /deserializ/i.test(result.details);
          expect(
            CLEAN.has(result.code) || undecodable,
            `${name}: ${status[result.code]} ${result.details}`,
          ).toBe(true);
        },
      ),
      { numRuns: 150, seed: 12 },
    );
    checkInvariants(broker);
  });

  it("refuses a request larger than the receive limit (1 MiB) without reading it", async () => {
    const result = await sendBytes(
      "SubmitLease",
      encode("SubmitLease", { spec: { name: "x".repeat(2 * 1024 * 1024) } }) ?? Buffer.alloc(0),
    );
    expect(result.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await call("ListHosts", {})).toBe(status.OK);
  });

  it("answers hostile watches with events or a clean status", async () => {
    const m = method("WatchLeases");
    const samples = fc.sample(
      fc.record({
        fromRevision: int64,
        tenant: text,
        leaseId,
        types: fc.array(enumOf("LEASE_EVENT_TYPE_CREATED"), { maxLength: 3 }),
      }),
      { numRuns: 30, seed: 13 },
    );
    const results = await Promise.all(
      samples.map(
        (request) =>
          new Promise<number>((resolve) => {
            const bytes = encode("WatchLeases", request);
            if (bytes === undefined) return resolve(status.OK);
            const stream = client.makeServerStreamRequest(
              m.path,
              identity,
              m.responseDeserialize,
              bytes,
            );
            let settled = false;
            const done = (code: number): void => {
              if (settled) return;
              settled = true;
              resolve(code);
              stream.cancel();
            };
            stream.on("data", () => done(status.OK));
            stream.on("error", (error: ServiceError) => done(error.code));
            stream.on("end", () => done(status.OK));
            // A watch with nothing to say yet stays open: a write it may see, then a list.
            void call("SubmitLease", {
              spec: {
                name: "w",
                tenant: "acme",
                resources: { cpuMillis: "100", memoryMib: "64" },
                immediate: { duration: { seconds: "60" } },
              },
            })
              .then(() => call("ListHosts", {}))
              .then(
                () => setTimeout(() => done(status.OK), 200),
                () => done(status.UNKNOWN),
              );
          }),
      ),
    );
    for (const code of results) expect(CLEAN.has(code), status[code]).toBe(true);
    checkInvariants(broker);
  });
});
