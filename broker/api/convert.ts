/**
 * Between the v1 contract (proto output/input shapes) and the broker's domain model. Only shape
 * and units change here; the rules are checked by the admission validator.
 */
import { InvalidArgumentError } from "../../core/index.js";
import {
  DEFAULT_PLACEMENT_POLICY,
  type PlacementExplanation as DomainExplanation,
  type ForecastBucket,
  type PlacementPolicy,
  type Resources,
} from "../../placement/index.js";
import {
  type CapacityForecastInput,
  durationFromMs,
  type HostInput,
  type LeaseEventInput,
  type LeaseInput,
  type LeaseSpecInput,
  type MigrationInput,
  type MigrationPredictionInput,
  msFromDuration,
  msFromTimestamp,
  type PlacementExplanationInput,
  type PlacementReason,
  type HostState as ProtoHostState,
  type LeaseSpec as ProtoLeaseSpec,
  type LeaseState as ProtoLeaseState,
  type MigrationState as ProtoMigrationState,
  type Resources as ProtoResources,
  type ResourcesInput,
  timestampFromMs,
} from "../../proto/index.js";
import type { HostView } from "../hosts/registry.js";
import type { LeaseWatchEvent } from "../leases/lease-manager.js";
import type { Lease, LeaseSpec, WindowSpec } from "../leases/model.js";
import type { LeaseState } from "../leases/transitions.js";
import type { Migration, MigrationPrediction, MigrationState } from "../migrations/model.js";

export function resourcesFromProto(r: ProtoResources | null): Resources {
  if (r === null) return { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };
  const extended = Object.entries<number | string>(r.extended ?? {});
  return {
    cpuMillis: Number(r.cpuMillis),
    memoryMib: Number(r.memoryMib),
    diskGib: Number(r.diskGib),
    gpus: Number(r.gpus),
    ...(extended.length === 0
      ? {}
      : { extended: Object.fromEntries(extended.map(([k, v]) => [k, Number(v)])) }),
  };
}

export function resourcesToProto(r: Resources): ResourcesInput {
  return {
    cpuMillis: Math.round(r.cpuMillis),
    memoryMib: Math.round(r.memoryMib),
    diskGib: Math.round(r.diskGib),
    gpus: Math.round(r.gpus),
    extended: Object.fromEntries(
      Object.entries(r.extended ?? {}).map(([k, v]) => [k, Math.round(v)]),
    ),
  };
}

/**
 * Runs a Timestamp/Duration conversion of request field `field`: a value no millisecond time can
 * hold (seconds past 2^53 ms, nanos out of range) is the client's INVALID_ARGUMENT, not a bug.
 */
export function requestTime<T>(field: string, convert: () => T): T {
  try {
    return convert();
  } catch (error) {
    if (error instanceof RangeError) {
      throw new InvalidArgumentError(field, error.message, { cause: error });
    }
    throw error;
  }
}

/** `now` fills the optional earliest start of a flexible window. */
export function specFromProto(spec: ProtoLeaseSpec | null, now: number): LeaseSpec {
  return requestTime("spec", () => specFromProtoTimes(spec, now));
}

function specFromProtoTimes(spec: ProtoLeaseSpec | null, now: number): LeaseSpec {
  if (spec === null) throw new InvalidArgumentError("spec", "is required");
  if (spec.resources === null) throw new InvalidArgumentError("spec.resources", "is required");
  let window: WindowSpec;
  switch (spec.window) {
    case "immediate":
      window = { kind: "immediate", durationMs: msFromDuration(spec.immediate?.duration) ?? 0 };
      break;
    case "reserved": {
      const start = msFromTimestamp(spec.reserved?.start);
      if (start === undefined) throw new InvalidArgumentError("spec.reserved.start", "is required");
      window = {
        kind: "reserved",
        start,
        durationMs: msFromDuration(spec.reserved?.duration) ?? 0,
      };
      break;
    }
    case "flexible": {
      const latest = msFromTimestamp(spec.flexible?.latestStart);
      if (latest === undefined)
        throw new InvalidArgumentError("spec.flexible.latest_start", "is required");
      window = {
        kind: "flexible",
        earliestStart: msFromTimestamp(spec.flexible?.earliestStart) ?? now,
        latestStart: latest,
        durationMs: msFromDuration(spec.flexible?.duration) ?? 0,
      };
      break;
    }
    default:
      throw new InvalidArgumentError(
        "spec.window",
        "one of immediate, reserved or flexible is required",
      );
  }
  const a = spec.affinity;
  const m = spec.migration;
  if (a !== null && a.group !== "" && a.kind === "AFFINITY_KIND_UNSPECIFIED") {
    throw new InvalidArgumentError(
      "spec.affinity.kind",
      "AFFINITY or ANTI_AFFINITY is required with a group",
    );
  }
  return {
    name: spec.name,
    tenant: spec.tenant,
    labels: Object.assign({}, spec.labels),
    resources: resourcesFromProto(spec.resources),
    window,
    priority: spec.priority,
    preemptible: spec.preemptible,
    constraints: [...spec.constraints],
    ...(a === null || a.group === ""
      ? {}
      : {
          affinity: {
            group: a.group,
            kind: a.kind === "AFFINITY_KIND_ANTI_AFFINITY" ? "anti-affinity" : "affinity",
            hard: a.hard,
            topologyKey: a.topologyKey,
            maxSkew: a.maxSkew,
          },
        }),
    migration: {
      liveMigratable: m?.liveMigratable ?? false,
      maxDowntimeMs: msFromDuration(m?.maxDowntime) ?? 0,
      allowSuspend: m?.allowSuspend ?? false,
      allowAutoConverge: m?.allowAutoConverge ?? false,
      allowPostCopy: m?.allowPostCopy ?? false,
    },
    onHostFailure: spec.onHostFailure === "ON_HOST_FAILURE_RESTART" ? "restart" : "fail",
    allowQueue: spec.allowQueue,
    ...(spec.policy === "PLACEMENT_POLICY_BINPACK"
      ? { policy: "binpack" as const }
      : spec.policy === "PLACEMENT_POLICY_SPREAD"
        ? { policy: "spread" as const }
        : {}),
    // Object.assign, not a spread: see `LeaseManager`'s write (a frozen spread copy of a record
    // gets a hidden class of its own).
    driver: { image: spec.driver?.image ?? "", params: Object.assign({}, spec.driver?.params) },
  };
}

export function specToProto(spec: LeaseSpec): LeaseSpecInput {
  const w = spec.window;
  return {
    name: spec.name,
    tenant: spec.tenant,
    labels: { ...spec.labels },
    resources: resourcesToProto(spec.resources),
    ...(w.kind === "immediate"
      ? { immediate: { duration: durationFromMs(w.durationMs) } }
      : w.kind === "reserved"
        ? { reserved: { start: timestampFromMs(w.start), duration: durationFromMs(w.durationMs) } }
        : {
            flexible: {
              earliestStart: timestampFromMs(w.earliestStart),
              latestStart: timestampFromMs(w.latestStart),
              duration: durationFromMs(w.durationMs),
            },
          }),
    priority: spec.priority,
    preemptible: spec.preemptible,
    constraints: [...spec.constraints],
    affinity:
      spec.affinity === undefined
        ? null
        : {
            group: spec.affinity.group,
            kind: affinityKindToProto(spec.affinity.kind),
            hard: spec.affinity.hard,
            topologyKey: spec.affinity.topologyKey,
            maxSkew: spec.affinity.maxSkew,
          },
    migration: {
      liveMigratable: spec.migration.liveMigratable,
      maxDowntime: durationFromMs(spec.migration.maxDowntimeMs),
      allowSuspend: spec.migration.allowSuspend,
      allowAutoConverge: spec.migration.allowAutoConverge,
      allowPostCopy: spec.migration.allowPostCopy,
    },
    onHostFailure: onHostFailureToProto(spec.onHostFailure),
    allowQueue: spec.allowQueue,
    policy: fitToProto(spec.policy),
    driver: { image: spec.driver.image, params: { ...spec.driver.params } },
  };
}

export function affinityKindToProto(kind: "affinity" | "anti-affinity") {
  return kind === "anti-affinity" ? "AFFINITY_KIND_ANTI_AFFINITY" : "AFFINITY_KIND_AFFINITY";
}

export function onHostFailureToProto(policy: LeaseSpec["onHostFailure"]) {
  return policy === "restart" ? "ON_HOST_FAILURE_RESTART" : "ON_HOST_FAILURE_FAIL";
}

/** A fit policy (a lease's override, or a cluster's), in the contract's spelling. */
export function fitToProto(fit: PlacementPolicy["fit"] | undefined) {
  return fit === "binpack"
    ? "PLACEMENT_POLICY_BINPACK"
    : fit === "spread"
      ? "PLACEMENT_POLICY_SPREAD"
      : "PLACEMENT_POLICY_UNSPECIFIED";
}

export function stateToProto(state: LeaseState): ProtoLeaseState {
  return state === "NEW" ? "LEASE_STATE_UNSPECIFIED" : (`LEASE_STATE_${state}` as ProtoLeaseState);
}

/**
 * An enum value of a request without its prefix (`WINDOW_KIND_FLEXIBLE` → `FLEXIBLE`). A number
 * the contract does not name arrives as a number (proto3 enums are open): INVALID_ARGUMENT.
 */
export function enumName(value: unknown, prefix: string, field: string): string {
  if (typeof value !== "string" || !value.startsWith(prefix)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not a ${prefix}* value`);
  }
  return value.slice(prefix.length);
}

export function stateFromProto(state: ProtoLeaseState, field: string): LeaseState {
  if (state === "LEASE_STATE_UNSPECIFIED")
    throw new InvalidArgumentError(field, "LEASE_STATE_UNSPECIFIED is not a state");
  return enumName(state, "LEASE_STATE_", field) as LeaseState;
}

export const PLACEMENT_REASON: Readonly<Record<string, PlacementReason>> = {
  placed: "PLACEMENT_REASON_INITIAL",
  reserved: "PLACEMENT_REASON_INITIAL",
  restarted: "PLACEMENT_REASON_RESTART",
  replanned: "PLACEMENT_REASON_REPLAN",
  migrated: "PLACEMENT_REASON_MIGRATION",
  // Resumed on another host: the saved state was copied there (a cold migration).
  resumed: "PLACEMENT_REASON_MIGRATION",
};

export function leaseToProto(lease: Lease, revision: number): LeaseInput {
  return {
    id: lease.id,
    spec: specToProto(lease.spec),
    state: stateToProto(lease.state),
    hostId: lease.hostId,
    start: lease.start === 0 ? null : timestampFromMs(lease.start),
    end: lease.end === 0 ? null : timestampFromMs(lease.end),
    revision,
    placementHistory: lease.history.map((h) => ({
      hostId: h.hostId,
      at: timestampFromMs(h.at),
      reason: PLACEMENT_REASON[h.reason] ?? "PLACEMENT_REASON_UNSPECIFIED",
      migrationId: h.migrationId ?? "",
      message: h.reason,
    })),
    statusMessage: lease.statusMessage,
    createTime: timestampFromMs(lease.createdAt),
    updateTime: timestampFromMs(lease.updatedAt),
    requestId: lease.requestId,
    stopDeadline: lease.stopDeadline === undefined ? null : timestampFromMs(lease.stopDeadline),
    // Why stop_deadline is set (the notice's message names the preempting lease); "" otherwise.
    stopReason: lease.stopDeadline === undefined ? "" : lease.statusMessage,
    migrationId: lease.migrationId ?? "",
  };
}

/**
 * A lease event; `migration` looks up the migration named by the lease (or, for the write that
 * ends one, by the lease before it).
 */
/** The migration a lease event names: the lease's, or for the write that ends one, the one before. */
export function eventMigrationId(event: LeaseWatchEvent): string | undefined {
  return event.lease.migrationId ?? event.previous?.migrationId;
}

export function eventToProto(
  event: LeaseWatchEvent,
  previousState?: LeaseState,
  migration?: (id: string) => { value: Migration; revision: number } | undefined,
): LeaseEventInput {
  const migrationId = eventMigrationId(event);
  const m =
    migrationId === undefined || migration === undefined ? undefined : migration(migrationId);
  return {
    migration: m === undefined ? null : migrationToProto(m.value, m.revision),
    revision: event.revision,
    type: `LEASE_EVENT_TYPE_${event.type}`,
    lease: leaseToProto(event.lease, event.revision),
    time: timestampFromMs(event.lease.updatedAt),
    message: event.lease.statusMessage,
    previousState:
      previousState === undefined ? "LEASE_STATE_UNSPECIFIED" : stateToProto(previousState),
  };
}

export function hostStateToProto(state: HostView["state"]): ProtoHostState {
  return `HOST_STATE_${state}`;
}

export function hostToProto(view: HostView, allocated: Resources, leaseCount: number): HostInput {
  return {
    id: view.id,
    state: hostStateToProto(view.state),
    capacity: resourcesToProto(view.capacity),
    ratios: {
      cpu: view.ratios.cpuMillis,
      memory: view.ratios.memoryMib,
      disk: view.ratios.diskGib,
      gpu: view.ratios.gpus,
      extended: { ...(view.ratios.extended ?? {}) },
    },
    reserved: resourcesToProto(view.reserved),
    allocatable: resourcesToProto(view.allocatable),
    allocated: resourcesToProto(allocated),
    labels: { ...view.labels },
    driver: view.driver,
    agentVersion: view.agentVersion,
    lastHeartbeat: timestampFromMs(view.lastHeartbeat),
    revision: view.revision,
    leaseCount,
    drainDeadline: view.drainDeadline === undefined ? null : timestampFromMs(view.drainDeadline),
    cordoned: view.cordoned,
    stateReason: view.stateReason,
    registerTime: timestampFromMs(view.joinedAt),
  };
}

/** The binding-resource names of placement, in the contract's spelling. */
export const RESOURCE_FIELD: Readonly<Record<string, string>> = {
  cpuMillis: "cpu_millis",
  memoryMib: "memory_mib",
  diskGib: "disk_gib",
  gpus: "gpus",
};

/**
 * The contract scores each component in [0, 100] and a host's total as Σ score × weight; placement
 * scores in [0, 1] with weights normalised over the scorers that ran (affinity only for a soft
 * group). Same order, scaled.
 */
export function componentWeights(
  policy: PlacementPolicy,
  scorers: readonly string[],
): Record<string, number> {
  const w = policy.weights;
  const norm = w.fit + w.fragmentation + (scorers.includes("affinity") ? w.affinity : 0);
  return {
    binpack: w.fit / norm,
    spread: w.fit / norm,
    fragmentation: w.fragmentation / norm,
    affinity: w.affinity / norm,
  };
}

export function explanationToProto(
  e: DomainExplanation,
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
): PlacementExplanationInput {
  // Filters run in order over the hosts considered: what each leaves is what the one before left,
  // less what it removed.
  let remaining = e.hostsConsidered;
  const filters = e.filters.map((f) => {
    remaining = Math.max(0, remaining - f.removed);
    return { filter: f.name, hostsRemoved: f.removed, hostsRemaining: remaining };
  });
  const chosen = e.chosenHostId !== undefined;
  return {
    hostsConsidered: e.hostsConsidered,
    filters,
    chosenHostId: e.chosenHostId ?? "",
    bestScore: chosen ? (e.bestScore ?? 0) * 100 : 0,
    top: (e.top ?? []).map((h) => {
      const weights = componentWeights(policy, Object.keys(h.breakdown));
      return {
        hostId: h.hostId,
        score: h.score * 100,
        components: Object.entries(h.breakdown).map(([scorer, score]) => ({
          scorer,
          score: score * 100,
          weight: weights[scorer] ?? 0,
        })),
      };
    }),
    bindingResource:
      e.binding === undefined ? "" : (RESOURCE_FIELD[e.binding.resource] ?? e.binding.resource),
    bindingWindow:
      e.binding === undefined
        ? null
        : { start: timestampFromMs(e.binding.start), end: timestampFromMs(e.binding.end) },
    summary: e.summary,
    policy: fitToProto(policy.fit),
    // The window's start only when a host was chosen: the contract leaves it unset on a no-fit.
    ...(chosen && e.window !== undefined ? { start: timestampFromMs(e.window.start) } : {}),
  };
}

/** `maxHostFree[i]`: the largest free amount on one host within bucket i. */
export function forecastToProto(
  buckets: readonly ForecastBucket[],
  selector: readonly string[],
  now: number,
  maxHostFree: readonly Resources[] = [],
): CapacityForecastInput {
  return {
    buckets: buckets.map((b, i) => {
      const most = maxHostFree[i];
      return {
        start: timestampFromMs(b.start),
        end: timestampFromMs(b.end),
        allocatable: resourcesToProto(b.allocatable),
        allocated: resourcesToProto(b.allocated),
        free: resourcesToProto(b.free),
        ...(most === undefined ? {} : { maxHostFree: resourcesToProto(most) }),
      };
    }),
    selector: [...selector],
    hostCount: buckets[0]?.hosts ?? 0,
    generatedTime: timestampFromMs(now),
  };
}

export function migrationStateToProto(state: MigrationState): ProtoMigrationState {
  return `MIGRATION_STATE_${state}`;
}

export function migrationStateFromProto(state: ProtoMigrationState, field: string): MigrationState {
  if (state === "MIGRATION_STATE_UNSPECIFIED")
    throw new InvalidArgumentError(field, "MIGRATION_STATE_UNSPECIFIED is not a state");
  return state.replace(/^MIGRATION_STATE_/, "") as MigrationState;
}

export function predictionToProto(p: MigrationPrediction): MigrationPredictionInput {
  return {
    totalTime: durationFromMs(p.totalTimeMs),
    downtime: durationFromMs(p.downtimeMs),
    converges: p.converges,
    rounds: p.rounds,
    bytesTotal: p.bytesTotal,
  };
}

export function migrationToProto(m: Migration, revision: number): MigrationInput {
  const p = m.progress;
  return {
    id: m.id,
    leaseId: m.leaseId,
    fromHostId: m.fromHostId,
    toHostId: m.toHostId,
    state: migrationStateToProto(m.state),
    reason: `MIGRATION_REASON_${m.reason}`,
    progress:
      p === undefined
        ? null
        : {
            bytesTransferred: p.bytesTransferred,
            bytesRemaining: p.bytesRemaining,
            rounds: p.rounds,
            dirtyRateBytesPerS: p.dirtyRateBytesPerS,
            bandwidthBytesPerS: p.bandwidthBytesPerS,
            expectedDowntime: durationFromMs(p.expectedDowntimeMs),
            time: timestampFromMs(p.time),
          },
    predicted: m.predicted === undefined ? null : predictionToProto(m.predicted),
    downtime: m.downtimeMs === undefined ? null : durationFromMs(m.downtimeMs),
    // The source's own measure when it reported one, else the broker's view.
    totalTime:
      m.totalTimeMs !== undefined
        ? durationFromMs(m.totalTimeMs)
        : m.endedAt === 0 || m.startedAt === 0
          ? null
          : durationFromMs(m.endedAt - m.startedAt),
    startTime: m.startedAt === 0 ? null : timestampFromMs(m.startedAt),
    endTime: m.endedAt === 0 ? null : timestampFromMs(m.endedAt),
    abortReason: m.abortReason,
    revision,
    createTime: timestampFromMs(m.createdAt),
    bandwidthLimitBytesPerS: m.bandwidthLimitBytesPerS,
    maxDowntime: durationFromMs(m.maxDowntimeMs),
    autoConverge: m.autoConverge,
    postCopy: m.postCopy,
    resources: resourcesToProto(m.resources),
  };
}
