/**
 * Hostile requests for every RPC of the LeaseBroker service (fast-check arbitraries: random,
 * boundary, huge, malformed labels, deep selectors, absurd times, unknown enum numbers) and a raw
 * client that sends exactly the bytes it is given. Shared by the fuzz test (no authentication)
 * and the security test (as a tenant, through the guard).
 */
import {
  type CallOptions,
  type ChannelCredentials,
  Client,
  type ClientReadableStream,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import fc from "fast-check";
import { LEASE_BROKER_SERVICE_NAME, loadLeaseBrokerPackageDefinition } from "../../proto/index.js";
import { serviceDefinition } from "../broker/dynamic-grpc.js";
import { T0 } from "../broker/harness.js";

/** Deliberate answers to a bad or impossible request. INTERNAL or UNKNOWN would be a bug. */
export const CLEAN = new Set<number>([
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

function method(name: string): MethodDefinition<object, object> {
  const m = service[name];
  if (m === undefined) throw new Error(`no method ${name}`);
  return m;
}

const identity = (b: Buffer): Buffer => b;

export interface RawResult {
  readonly code: number;
  readonly details: string;
  readonly response?: object;
}

/** A client of the LeaseBroker service that sends bytes as they are. */
export class RawClient {
  readonly #client: Client;

  constructor(address: string, channel: ChannelCredentials) {
    this.#client = new Client(address, channel);
  }

  /** Sends `bytes` to `name`; resolves with the status code (OK = 0), details and response. */
  send(name: string, bytes: Buffer): Promise<RawResult> {
    const m = method(name);
    return new Promise((resolve) => {
      this.#client.makeUnaryRequest(
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

  stream(name: string, bytes: Buffer, options: CallOptions = {}): ClientReadableStream<object> {
    const m = method(name);
    return this.#client.makeServerStreamRequest(
      m.path,
      identity,
      m.responseDeserialize,
      bytes,
      new Metadata(),
      options,
    );
  }

  close(): void {
    this.#client.close();
  }
}

/** Serializes `request` as the contract says, or undefined if the client itself cannot. */
export function encode(name: string, request: object): Buffer | undefined {
  try {
    return method(name).requestSerialize(request);
  } catch {
    return undefined;
  }
}

/**
 * Arbitraries of every RPC's request, with lease ids drawn from `knownIds` (the leases created so
 * far) or made up.
 */
export function hostileRequests(knownIds: readonly string[]) {
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

  const submitLease = fc.record({
    spec,
    requestId: fc.oneof(fc.constant(""), text),
    dryRun: fc.boolean(),
  });

  const requests: Record<string, fc.Arbitrary<object>> = {
    SubmitLease: submitLease,
    SubmitLeases: fc.record({ requests: fc.array(submitLease, { maxLength: 4 }) }),
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
    CordonHost: fc.record({
      id: fc.oneof(fc.constantFrom("sim-01", "sim-02"), text),
      reason: text,
    }),
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
  return { requests, unaryNames, int64, text, leaseId, enumOf };
}
