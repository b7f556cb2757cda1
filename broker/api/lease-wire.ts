/**
 * Leases written straight from the domain model to protobuf bytes, for the answers that carry
 * them at the broker's rate: SubmitLease, each item of SubmitLeases, and WatchLeases events.
 *
 * The generic path (leaseToProto, then protobufjs `fromObject` and `encode`) built two object
 * trees per lease and answer and was ~12% of the broker's CPU under bench:e2e. Here the bytes are
 * written from the domain objects into one reused buffer (proto/wire-writer.ts), nested messages
 * in place, and the watchers of one event share its bytes. They decode exactly as the object of
 * `leaseToProto` would (lease-wire.test.ts checks it field by field); sub-messages that are rare
 * on this path (a dry run's preview, migrations, item errors) still go through protobufjs.
 */
import type protobuf from "protobufjs";
import type {
  PlacementExplanation as DomainExplanation,
  PlacementPolicy,
  Resources,
} from "../../placement/index.js";
import {
  durationFromMs,
  encodeWith,
  type MigrationInput,
  type PlacementExplanationInput,
  type LeaseEventType as ProtoLeaseEventType,
  protobufRoot,
  type SubmitLeaseErrorInput,
  type WireWriter,
  writeTimestamp,
} from "../../proto/index.js";
import type { Lease, LeaseEventType, LeaseSpec } from "../leases/model.js";
import type { LeaseState } from "../leases/transitions.js";
import {
  affinityKindToProto,
  componentWeights,
  fitToProto,
  onHostFailureToProto,
  PLACEMENT_REASON,
  RESOURCE_FIELD,
  stateToProto,
} from "./convert.js";

/** Placement's explanation of a decision, as explanationToProto would give it (no preemption). */
export class DecisionExplanation {
  constructor(
    readonly explanation: DomainExplanation,
    readonly policy: PlacementPolicy,
  ) {}
}

/** One submission's answer (SubmitLeaseResponse), its lease still in the domain's shape. */
export class SubmitAnswer {
  constructor(
    readonly lease: Lease,
    readonly revision: number,
    /**
     * A dry run's preview is in the contract's shape: the auth guard may narrow its preemption
     * plan for a tenant. A decision's explanation names no other lease and is written directly.
     */
    public explanation: PlacementExplanationInput | DecisionExplanation | null,
    readonly duplicate: boolean,
  ) {}
}

/** One SubmitLeases item: an answer, or the item's error. */
export type SubmitItem = { readonly response: SubmitAnswer } | { error: SubmitLeaseErrorInput };

/** SubmitLeasesResponse. */
export interface SubmitLeasesAnswer {
  results: SubmitItem[];
}

/** One WatchLeases event (LeaseEvent), its lease still in the domain's shape. */
export class LeaseEventAnswer {
  constructor(
    readonly revision: number,
    readonly type: LeaseEventType,
    readonly lease: Lease,
    readonly previousState: LeaseState | undefined,
    readonly migration: MigrationInput | null,
  ) {}
}

let contractCache:
  | {
      readonly leaseState: Readonly<Record<string, number>>;
      readonly eventType: Readonly<Record<string, number>>;
      readonly placementReason: Readonly<Record<string, number>>;
      readonly affinityKind: Readonly<Record<string, number>>;
      readonly onHostFailure: Readonly<Record<string, number>>;
      readonly policy: Readonly<Record<string, number>>;
      readonly explanation: protobuf.Type;
      readonly migration: protobuf.Type;
      readonly itemError: protobuf.Type;
    }
  | undefined;

/** Enum numbers and the generic types, from the contract's .proto files (once). */
function contract() {
  if (contractCache === undefined) {
    const root = protobufRoot();
    const values = (name: string) => root.lookupEnum(`leasebroker.v1.${name}`).values;
    contractCache = {
      leaseState: values("LeaseState"),
      eventType: values("LeaseEventType"),
      placementReason: values("PlacementReason"),
      affinityKind: values("AffinityKind"),
      onHostFailure: values("OnHostFailure"),
      policy: values("PlacementPolicy"),
      explanation: root.lookupType("leasebroker.v1.PlacementExplanation"),
      migration: root.lookupType("leasebroker.v1.Migration"),
      itemError: root.lookupType("leasebroker.v1.SubmitLeaseError"),
    };
  }
  return contractCache;
}

/** A message of the generic path (protobufjs, as @grpc/proto-loader serializes it). */
function generic(type: protobuf.Type, object: object): Uint8Array {
  return type.encode(type.fromObject(object as Record<string, unknown>)).finish();
}

/** A Duration (always present, as durationFromMs makes one). */
function duration(w: WireWriter, field: number, ms: number): void {
  const { seconds, nanos } = durationFromMs(ms);
  w.begin(field).int(1, seconds).int(2, nanos).end();
}

export function writeStringMap(
  w: WireWriter,
  field: number,
  map: Readonly<Record<string, string>>,
): void {
  for (const key in map)
    w.begin(field)
      .string(1, key)
      .string(2, map[key] as string)
      .end();
}

/** Resources as resourcesToProto gives them (rounded). */
export function writeResources(w: WireWriter, field: number, r: Resources): void {
  w.begin(field)
    .int(1, Math.round(r.cpuMillis))
    .int(2, Math.round(r.memoryMib))
    .int(3, Math.round(r.diskGib))
    .int(4, Math.round(r.gpus));
  const extended = r.extended;
  if (extended !== undefined) {
    for (const key in extended) {
      w.begin(5)
        .string(1, key)
        .int(2, Math.round(extended[key] as number))
        .end();
    }
  }
  w.end();
}

/** LeaseSpec, as specToProto gives it. */
function writeSpec(w: WireWriter, spec: LeaseSpec): void {
  const e = contract();
  w.string(1, spec.name).string(2, spec.tenant);
  writeStringMap(w, 3, spec.labels);
  writeResources(w, 4, spec.resources);
  const win = spec.window;
  if (win.kind === "immediate") {
    duration(w.begin(5), 1, win.durationMs);
  } else if (win.kind === "reserved") {
    writeTimestamp(w.begin(6), 1, win.start);
    duration(w, 2, win.durationMs);
  } else {
    writeTimestamp(w.begin(7), 1, win.earliestStart);
    writeTimestamp(w, 2, win.latestStart);
    duration(w, 3, win.durationMs);
  }
  w.end().int(8, spec.priority).bool(9, spec.preemptible);
  for (const c of spec.constraints) w.string(10, c);
  const a = spec.affinity;
  if (a !== undefined) {
    w.begin(11)
      .string(1, a.group)
      .int(2, e.affinityKind[affinityKindToProto(a.kind)] ?? 0)
      .bool(3, a.hard)
      .string(4, a.topologyKey)
      .int(5, a.maxSkew)
      .end();
  }
  const m = spec.migration;
  w.begin(12).bool(1, m.liveMigratable);
  duration(w, 2, m.maxDowntimeMs);
  w.bool(3, m.allowSuspend).bool(4, m.allowAutoConverge).bool(5, m.allowPostCopy).end();
  w.int(13, e.onHostFailure[onHostFailureToProto(spec.onHostFailure)] ?? 0);
  w.bool(14, spec.allowQueue).int(15, e.policy[fitToProto(spec.policy)] ?? 0);
  w.begin(16).string(1, spec.driver.image);
  writeStringMap(w, 2, spec.driver.params);
  w.end();
}

function stateNumber(state: LeaseState): number {
  return contract().leaseState[stateToProto(state)] ?? 0;
}

function writeLease(w: WireWriter, lease: Lease, revision: number): void {
  const e = contract();
  w.string(1, lease.id).begin(2);
  writeSpec(w, lease.spec);
  w.end().int(3, stateNumber(lease.state)).string(4, lease.hostId);
  if (lease.start !== 0) writeTimestamp(w, 5, lease.start);
  if (lease.end !== 0) writeTimestamp(w, 6, lease.end);
  w.int(7, revision);
  for (const h of lease.history) {
    w.begin(8).string(1, h.hostId);
    writeTimestamp(w, 2, h.at);
    w.int(3, e.placementReason[PLACEMENT_REASON[h.reason] ?? ""] ?? 0)
      .string(4, h.migrationId ?? "")
      .string(5, h.reason)
      .end();
  }
  w.string(9, lease.statusMessage);
  writeTimestamp(w, 10, lease.createdAt);
  writeTimestamp(w, 11, lease.updatedAt);
  w.string(12, lease.requestId);
  if (lease.stopDeadline !== undefined) {
    writeTimestamp(w, 13, lease.stopDeadline);
    w.string(14, lease.statusMessage);
  }
  w.string(15, lease.migrationId ?? "");
}

/** The encoded Lease message of `lease` at `revision`. */
export function encodeLease(lease: Lease, revision: number): Uint8Array {
  return encodeWith((w) => writeLease(w, lease, revision));
}

/** PlacementExplanation, as explanationToProto gives it. */
function writeExplanation(
  w: WireWriter,
  field: number,
  { explanation: e, policy }: DecisionExplanation,
): void {
  w.begin(field).int(1, e.hostsConsidered);
  // Filters run in order over the hosts considered: what each leaves is what the one before left,
  // less what it removed.
  let remaining = e.hostsConsidered;
  for (const f of e.filters) {
    remaining = Math.max(0, remaining - f.removed);
    w.begin(2).string(1, f.name).int(2, f.removed).int(3, remaining).end();
  }
  const chosen = e.chosenHostId !== undefined;
  w.string(3, e.chosenHostId ?? "").double(4, chosen ? (e.bestScore ?? 0) * 100 : 0);
  for (const h of e.top ?? []) {
    w.begin(5)
      .string(1, h.hostId)
      .double(2, h.score * 100);
    const weights = componentWeights(policy, Object.keys(h.breakdown));
    for (const scorer in h.breakdown) {
      w.begin(3)
        .string(1, scorer)
        .double(2, (h.breakdown[scorer] as number) * 100)
        .double(3, weights[scorer] ?? 0)
        .end();
    }
    w.end();
  }
  const binding = e.binding;
  if (binding !== undefined) {
    w.string(6, RESOURCE_FIELD[binding.resource] ?? binding.resource).begin(7);
    writeTimestamp(w, 1, binding.start);
    writeTimestamp(w, 2, binding.end);
    w.end();
  }
  w.string(8, e.summary);
  if (chosen && e.window !== undefined) writeTimestamp(w, 11, e.window.start);
  w.int(12, contract().policy[fitToProto(policy.fit)] ?? 0).end();
}

function writeAnswer(w: WireWriter, answer: SubmitAnswer): void {
  writeLease(w.begin(1), answer.lease, answer.revision);
  w.end();
  const explanation = answer.explanation;
  if (explanation instanceof DecisionExplanation) writeExplanation(w, 2, explanation);
  else if (explanation !== null) w.bytes(2, generic(contract().explanation, explanation));
  w.bool(3, answer.duplicate);
}

/** SubmitLeaseResponse. */
export function serializeSubmitAnswer(answer: SubmitAnswer): Buffer {
  return encodeWith((w) => writeAnswer(w, answer));
}

/** SubmitLeasesResponse. */
export function serializeSubmitLeasesAnswer(answer: SubmitLeasesAnswer): Buffer {
  return encodeWith((w) => {
    for (const item of answer.results) {
      w.begin(1);
      if ("response" in item) {
        writeAnswer(w.begin(1), item.response);
        w.end();
      } else {
        w.bytes(2, generic(contract().itemError, item.error));
      }
      w.end();
    }
  });
}

/**
 * The event serialized last: every watcher's stream serializes the same event in turn (the same
 * frozen lease version at the same revision, the same migration looked up).
 */
let lastEvent: { lease: Lease; revision: number; type: LeaseEventType; bytes: Buffer } | undefined;

/** LeaseEvent, as eventToProto gives it. */
export function serializeLeaseEvent(event: LeaseEventAnswer): Buffer {
  const last = lastEvent;
  if (
    last !== undefined &&
    last.lease === event.lease &&
    last.revision === event.revision &&
    last.type === event.type
  ) {
    return last.bytes;
  }
  const e = contract();
  const bytes = encodeWith((w) => {
    w.int(1, event.revision)
      .int(2, e.eventType[`LEASE_EVENT_TYPE_${event.type}` satisfies ProtoLeaseEventType] ?? 0)
      .begin(3);
    writeLease(w, event.lease, event.revision);
    w.end();
    writeTimestamp(w, 4, event.lease.updatedAt);
    if (event.migration !== null) w.bytes(5, generic(e.migration, event.migration));
    w.string(6, event.lease.statusMessage);
    if (event.previousState !== undefined) w.int(7, stateNumber(event.previousState));
  });
  // A stored (frozen) version never changes, and neither do its bytes.
  lastEvent = Object.isFrozen(event.lease)
    ? { lease: event.lease, revision: event.revision, type: event.type, bytes }
    : undefined;
  return bytes;
}
