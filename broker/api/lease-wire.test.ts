import { describe, expect, it } from "vitest";
import { deepFreeze } from "../../core/index.js";
import {
  DEFAULT_PLACEMENT_POLICY,
  type PlacementExplanation,
  type PlacementPolicy,
} from "../../placement/index.js";
import { createCodec, protobufRoot } from "../../proto/index.js";
import type { LeaseWatchEvent } from "../leases/lease-manager.js";
import type { Lease, LeaseSpec } from "../leases/model.js";
import { testLeaseSpec } from "../leases/test-support.js";
import { eventToProto, explanationToProto, leaseToProto } from "./convert.js";
import {
  DecisionExplanation,
  encodeLease,
  LeaseEventAnswer,
  SubmitAnswer,
  serializeLeaseEvent,
  serializeSubmitAnswer,
  serializeSubmitLeasesAnswer,
} from "./lease-wire.js";

const root = protobufRoot();
/** The generic path, as @grpc/proto-loader serializes: fromObject, then encode. */
function generic(typeName: string, object: object): Uint8Array {
  const type = root.lookupType(typeName);
  return type.encode(type.fromObject(object as Record<string, unknown>)).finish();
}
const leaseCodec = createCodec("leasebroker.v1.Lease");
const eventCodec = createCodec("leasebroker.v1.LeaseEvent");
const submitCodec = createCodec("leasebroker.v1.SubmitLeaseResponse");
const submitsCodec = createCodec("leasebroker.v1.SubmitLeasesResponse");

const T0 = Date.UTC(2026, 10, 24, 5, 0, 0);

/** A spec with every field of LeaseSpec set to something other than its default. */
const fullSpec: LeaseSpec = {
  name: "vm-ü",
  tenant: "acme",
  labels: { app: "db", tier: "gold" },
  resources: { cpuMillis: 1500, memoryMib: 4096, diskGib: 20, gpus: 1, extended: { fpga: 2 } },
  window: { kind: "reserved", start: T0 + 60_000, durationMs: 7_200_500 },
  priority: 7,
  preemptible: true,
  constraints: ["zone in (a,b)", "ssd"],
  affinity: { group: "g", kind: "anti-affinity", hard: true, topologyKey: "zone", maxSkew: 2 },
  migration: {
    liveMigratable: true,
    maxDowntimeMs: 300,
    allowSuspend: true,
    allowAutoConverge: true,
    allowPostCopy: true,
  },
  onHostFailure: "restart",
  allowQueue: true,
  policy: "spread",
  driver: { image: "ubuntu", params: { boot_ms: "10", disk: "x" } },
};

/** A lease with every field of Lease set to something other than its default. */
const fullLease: Lease = {
  id: "l-1",
  spec: fullSpec,
  state: "MIGRATING",
  hostId: "h-1",
  start: T0 + 60_000,
  end: T0 + 7_260_500,
  requestId: "req-1",
  createdAt: T0,
  updatedAt: T0 + 1234.5,
  statusMessage: "migrating to h-2",
  history: [
    { hostId: "h-0", at: T0, reason: "placed" },
    { hostId: "h-1", at: T0 + 5, reason: "migrated", migrationId: "m-0" },
    { hostId: "h-1", at: T0 + 6, reason: "something new" },
  ],
  stopReason: "preempt",
  stopDeadline: T0 + 120_000,
  warned: true,
  lastEvent: "STATE_CHANGED",
  migrationId: "m-1",
  migrationTo: "h-2",
};

const immediate = testLeaseSpec(2);
const flexible = testLeaseSpec(1, {
  window: { kind: "flexible", earliestStart: T0, latestStart: T0 + 3_600_000, durationMs: 60_000 },
});
const {
  stopDeadline: _deadline,
  stopReason: _reason,
  migrationId: _migration,
  migrationTo: _to,
  ...unstopped
} = fullLease;
const leases: [string, Lease, number][] = [
  ["every field set", fullLease, 123_456_789_012],
  [
    "a new lease (dry run: no id, state NEW, revision 0)",
    { ...fullLease, id: "", state: "NEW", hostId: "", start: 0, end: 0, history: [] },
    0,
  ],
  [
    "an immediate lease, defaults elsewhere",
    {
      id: "l-2",
      spec: immediate,
      state: "STARTING",
      hostId: "h-9",
      start: T0,
      end: T0 + 3_600_000,
      requestId: "",
      createdAt: T0,
      updatedAt: T0,
      statusMessage: "",
      history: [{ hostId: "h-9", at: T0, reason: "placed" }],
      warned: false,
      lastEvent: "CREATED",
    },
    1,
  ],
  [
    "a flexible, binpack lease with an affinity group",
    {
      ...unstopped,
      spec: {
        ...flexible,
        policy: "binpack",
        affinity: { group: "g", kind: "affinity", hard: false, topologyKey: "", maxSkew: 0 },
      },
      state: "PENDING",
    },
    42,
  ],
  [
    "times before 1970 and a negative priority",
    {
      ...fullLease,
      spec: { ...fullSpec, priority: -3, window: { kind: "immediate", durationMs: 1 } },
      createdAt: -1500,
      updatedAt: 0,
    },
    2 ** 40,
  ],
];

describe("lease-wire: the bytes decode as leaseToProto's object would", () => {
  it.each(leases)("%s", (_, lease, revision) => {
    const expected = leaseCodec.decode(
      generic("leasebroker.v1.Lease", leaseToProto(lease, revision)),
    );
    expect(leaseCodec.decode(encodeLease(lease, revision))).toEqual(expected);
  });

  it("the full lease sets every field of Lease and LeaseSpec (a new field must be added here)", () => {
    const decoded = leaseCodec.decode(
      generic("leasebroker.v1.Lease", leaseToProto(fullLease, 5)),
    ) as unknown as Record<string, unknown>;
    const isDefault = (v: unknown): boolean =>
      v === null ||
      v === "" ||
      v === 0 ||
      v === false ||
      (Array.isArray(v) && v.length === 0) ||
      (typeof v === "object" && Object.keys(v as object).length === 0) ||
      (typeof v === "string" && v.endsWith("_UNSPECIFIED"));
    for (const field of root.lookupType("leasebroker.v1.Lease").fieldsArray) {
      expect(isDefault(decoded[field.name]), `Lease.${field.name}`).toBe(false);
    }
    const spec = decoded.spec as Record<string, unknown>;
    for (const field of root.lookupType("leasebroker.v1.LeaseSpec").fieldsArray) {
      // One window member is set at a time; the cases above cover the three.
      if (field.partOf?.name === "window") continue;
      expect(isDefault(spec[field.name]), `LeaseSpec.${field.name}`).toBe(false);
    }
  });

  it("one event for several watchers is serialized once; another event or an unfrozen lease again", () => {
    const lease = deepFreeze({ ...leases[2]?.[1] } as Lease);
    const event = (revision: number, of: Lease = lease) =>
      new LeaseEventAnswer(revision, "STATE_CHANGED", of, "STARTING", null);
    const first = serializeLeaseEvent(event(7));
    expect(serializeLeaseEvent(event(7))).toBe(first);
    const other = serializeLeaseEvent(event(8));
    expect(other).not.toBe(first);
    expect(eventCodec.decode(other).lease?.revision).toBe(8);
    const loose = { ...lease };
    expect(serializeLeaseEvent(event(7, loose))).not.toBe(serializeLeaseEvent(event(7, loose)));
  });

  it("SubmitLeaseResponse, with and without an explanation", () => {
    const explanation = {
      hostsConsidered: 3,
      filters: [{ filter: "resources", hostsRemoved: 1, hostsRemaining: 2 }],
      chosenHostId: "h-1",
      bestScore: 50,
      summary: "placed",
      policy: "PLACEMENT_POLICY_BINPACK" as const,
    };
    for (const [answer, object] of [
      [
        new SubmitAnswer(fullLease, 9, explanation, true),
        { lease: leaseToProto(fullLease, 9), explanation, duplicate: true },
      ],
      [
        new SubmitAnswer(fullLease, 9, null, false),
        { lease: leaseToProto(fullLease, 9), explanation: null, duplicate: false },
      ],
    ] as const) {
      expect(submitCodec.decode(serializeSubmitAnswer(answer))).toEqual(
        submitCodec.decode(generic("leasebroker.v1.SubmitLeaseResponse", object)),
      );
    }
  });

  it("a decision's explanation (chosen host, scores; a no-fit's binding) as explanationToProto's", () => {
    const placed: PlacementExplanation = {
      mode: "search",
      hostsConsidered: 1000,
      hostsEvaluated: 257,
      filters: [
        { name: "state", removed: 3 },
        { name: "resources", removed: 990 },
        { name: "affinity", removed: 20 },
      ],
      feasibleHosts: 7,
      chosenHostId: "h-7",
      bestScore: 0.8125,
      top: [
        {
          hostId: "h-7",
          score: 0.8125,
          breakdown: { binpack: 0.9, fragmentation: 0.5, affinity: 1 },
        },
        { hostId: "h-2", score: 0, breakdown: { binpack: 0, fragmentation: 0 } },
      ],
      window: { start: T0, end: T0 + 3_600_000 },
      summary: "placed on h-7 (7 of 1000 hosts fit)",
    };
    const noFit: PlacementExplanation = {
      mode: "exhaustive",
      hostsConsidered: 4,
      hostsEvaluated: 4,
      filters: [{ name: "resources", removed: 4 }],
      binding: { resource: "memoryMib", start: T0 + 5, end: T0 + 10, shortBy: 512, hostId: "h-1" },
      window: { start: T0, end: T0 + 10 },
      summary: "memory binds",
    };
    const spread: PlacementPolicy = { ...DEFAULT_PLACEMENT_POLICY, fit: "spread" };
    for (const [e, policy] of [
      [placed, DEFAULT_PLACEMENT_POLICY],
      [placed, spread],
      [noFit, DEFAULT_PLACEMENT_POLICY],
      [{ ...noFit, binding: { resource: "fpga", start: T0, end: T0 } }, spread],
    ] as const) {
      const answer = new SubmitAnswer(fullLease, 3, new DecisionExplanation(e, policy), false);
      const object = {
        lease: leaseToProto(fullLease, 3),
        explanation: explanationToProto(e, policy),
        duplicate: false,
      };
      expect(submitCodec.decode(serializeSubmitAnswer(answer))).toEqual(
        submitCodec.decode(generic("leasebroker.v1.SubmitLeaseResponse", object)),
      );
    }
  });

  it("SubmitLeasesResponse: answers and item errors in order", () => {
    const [, second, revision] = leases[2] as [string, Lease, number];
    const error = { code: 3, message: "spec.name: bad", field: "spec.name" };
    const bytes = serializeSubmitLeasesAnswer({
      results: [
        { response: new SubmitAnswer(fullLease, 9, null, false) },
        { error },
        { response: new SubmitAnswer(second, revision, null, false) },
      ],
    });
    const expected = generic("leasebroker.v1.SubmitLeasesResponse", {
      results: [
        { response: { lease: leaseToProto(fullLease, 9), duplicate: false } },
        { error },
        { response: { lease: leaseToProto(second, revision), duplicate: false } },
      ],
    });
    expect(submitsCodec.decode(bytes)).toEqual(submitsCodec.decode(expected));
    expect(submitsCodec.decode(serializeSubmitLeasesAnswer({ results: [] }))).toEqual({
      results: [],
    });
  });

  it("LeaseEvent, with a previous state and a migration, and without", () => {
    const migration = {
      id: "m-1",
      leaseId: "l-1",
      fromHostId: "h-1",
      toHostId: "h-2",
      state: "MIGRATION_STATE_TRANSFERRING" as const,
      revision: 4,
    };
    const event: LeaseWatchEvent = {
      revision: 77,
      type: "STATE_CHANGED",
      lease: fullLease,
      previousState: "ACTIVE",
    };
    const withAll = eventToProto(event, "ACTIVE", () => undefined);
    expect(
      eventCodec.decode(
        serializeLeaseEvent(
          new LeaseEventAnswer(77, "STATE_CHANGED", fullLease, "ACTIVE", migration),
        ),
      ),
    ).toEqual(eventCodec.decode(generic("leasebroker.v1.LeaseEvent", { ...withAll, migration })));
    const created = eventToProto({ revision: 1, type: "CREATED", lease: fullLease });
    expect(
      eventCodec.decode(
        serializeLeaseEvent(new LeaseEventAnswer(1, "CREATED", fullLease, undefined, null)),
      ),
    ).toEqual(eventCodec.decode(generic("leasebroker.v1.LeaseEvent", created)));
  });
});
