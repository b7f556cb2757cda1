/**
 * One replay: the real broker (`Broker`: store, placement index, host registry, lease manager)
 * on a `VirtualClock`, with its in-process simulated fleet as the hosts (no gRPC, no bus), fed
 * a trace. Each request is submitted at its time; between requests the clock fires the broker's
 * own timers (boots, starts of reservations, expiry, stops, the queue) in order, and each timer's
 * reactions settle before the next one fires. What happened is read from the broker's lease
 * events (`LeaseManager.watch`), the same events WatchLeases serves.
 */
import {
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  type SettleMode,
  seededRandom,
  silentLogger,
  VirtualClock,
} from "../../core/index.js";
import { DEFAULT_PLACEMENT_POLICY } from "../../placement/index.js";
import { Broker, type BrokerOptions } from "../broker.js";
import type { HostAnnouncement } from "../hosts/registry.js";
import type { LeaseTimings } from "../leases/lease-manager.js";
import type { Lease, LeaseEventType, LeaseSpec, WindowSpec } from "../leases/model.js";
import type { LeaseState } from "../leases/transitions.js";
import { MemoryStore } from "../store/index.js";
import type { TraceEntry } from "./trace.js";

/** Monday 2026-01-05 00:00 UTC: trace time 0 (fixed, so that runs repeat exactly). */
export const SIM_EPOCH_MS = Date.UTC(2026, 0, 5);

/**
 * Rebalancing: off, or the migration planner's level 1–5 (conservative to aggressive, as DRS's
 * migration threshold; level 1 proposes nothing, so it only differs from off in name).
 */
export type RebalanceSetting = "off" | 1 | 2 | 3 | 4 | 5;
export const REBALANCE_SETTINGS: readonly RebalanceSetting[] = ["off", 1, 2, 3, 4, 5];

export interface SimPolicy {
  readonly fit: "binpack" | "spread";
  /** How eagerly running leases are live-migrated to even out hosts (the broker's periodic rebalance). */
  readonly rebalance: RebalanceSetting;
  /** Live-migrate running leases to make room for one that does not fit (the broker's make-room). */
  readonly makeRoom: boolean;
  readonly preemption: boolean;
}

export const DEFAULT_SIM_POLICY: SimPolicy = {
  fit: "binpack",
  rebalance: "off",
  makeRoom: false,
  preemption: true,
};

/**
 * The one place a simulation policy becomes broker options: placement fit, preemption, make-room
 * and the periodic rebalance (the broker's planners).
 */
export function brokerOptionsFor(
  policy: SimPolicy,
  clock: VirtualClock,
  seed: number,
  timings: Partial<LeaseTimings>,
): BrokerOptions {
  return {
    clock,
    logger: silentLogger(),
    grpcAddress: "127.0.0.1:0",
    serveApi: false,
    // Nothing resumes a watch here: a short history keeps old lease versions collectable.
    store: new MemoryStore({ copy: false, historyLimit: 1024 }),
    random: seededRandom(seed),
    policy: { ...DEFAULT_PLACEMENT_POLICY, fit: policy.fit },
    preemption: policy.preemption,
    timings,
    planners: { makeRoom: policy.makeRoom, rebalance: policy.rebalance },
  };
}

/** Why a request was not admitted. */
export type RejectReason =
  | "no_fit"
  /** Larger than any host of this cluster: the broker refuses it as invalid (a bigger shape helps). */
  | "too_large"
  /** Refused as invalid whatever the cluster (e.g. longer than the broker's maximum duration). */
  | "invalid"
  | "queue_timeout"
  | "latest_start_passed"
  | "reservation_start_passed";

/** One lease event as the simulator saw it (the request's trace id instead of the lease id). */
export interface SimEvent {
  readonly at: number;
  readonly traceId: string;
  readonly type: LeaseEventType;
  readonly state: LeaseState;
  readonly hostId: string;
  readonly start: number;
  readonly end: number;
}

/** What became of one request. */
export interface EntryOutcome {
  /** The lease's final state, or "REFUSED" when submit failed (see `reason`). */
  state: LeaseState | "REFUSED";
  reason?: RejectReason;
  message: string;
  /** The lease was placed on a host at some point (started or reserved). */
  placed: boolean;
  /** When it was first placed: the start of its window then (ms). */
  placedStart: number;
  /** It waited in the queue (PENDING) at some point. */
  queued: boolean;
}

/** Cluster usage changes: at `times[i]`, usage changes by the deltas at `i`. */
export interface UsageDeltas {
  readonly times: number[];
  readonly cpuMillis: number[];
  readonly memoryMib: number[];
  readonly diskGib: number[];
  readonly gpus: number[];
}

export interface ReplayResult {
  readonly outcomes: readonly EntryOutcome[];
  readonly usage: UsageDeltas;
  readonly startMs: number;
  /** Virtual time when the last event happened (or the replay stopped). */
  readonly endMs: number;
  /** Live migrations the broker performed (entries into MIGRATING). */
  readonly migrations: number;
  /** Their predicted total time and downtime (the pre-copy model, in each migration's record). */
  readonly migrationPredictedMs: number;
  readonly migrationPredictedDowntimeMs: number;
  /** Lease events seen. */
  readonly events: number;
  /** True when `stopAtFirstProblem` ended the replay early. */
  readonly stoppedEarly: boolean;
  /** The first request that was refused, rejected or preempted, if any. */
  readonly firstProblem?: {
    readonly traceId: string;
    readonly line: number;
    readonly what: string;
    /** Set when the request was refused or rejected (not preempted). */
    readonly reason?: RejectReason;
  };
}

export interface ReplayOptions {
  readonly trace: readonly TraceEntry[];
  readonly hosts: readonly HostAnnouncement[];
  readonly policy?: SimPolicy;
  /** Seeds the broker's id generator. */
  readonly seed?: number;
  readonly timings?: Partial<LeaseTimings>;
  /** Stop at the first request refused, rejected or preempted (the hosts-needed search). */
  readonly stopAtFirstProblem?: boolean;
  /** Every lease event, in order (tests, event logs). */
  readonly onEvent?: (event: SimEvent) => void;
}

/** A lease event as the simulator records it. */
export function simEventOf(at: number, type: LeaseEventType, lease: Lease): SimEvent {
  return {
    at,
    traceId: lease.requestId,
    type,
    state: lease.state,
    hostId: lease.hostId,
    start: lease.start,
    end: lease.end,
  };
}

const RUNNING = new Set<LeaseState>(["STARTING", "ACTIVE", "MIGRATING"]);

/** The broker's spec for a trace entry whose times are offsets from `epoch`. */
export function leaseSpecOf(entry: TraceEntry, epoch: number): LeaseSpec {
  const w = entry.window;
  const window: WindowSpec =
    w.kind === "immediate"
      ? { kind: "immediate", durationMs: w.durationMs }
      : w.kind === "reserved"
        ? { kind: "reserved", start: epoch + w.startMs, durationMs: w.durationMs }
        : {
            kind: "flexible",
            earliestStart: epoch + w.earliestMs,
            latestStart: epoch + w.latestMs,
            durationMs: w.durationMs,
          };
  return {
    name: "",
    tenant: "sim",
    labels: entry.labels,
    resources: entry.resources,
    window,
    priority: entry.priority,
    preemptible: entry.preemptible,
    constraints: entry.constraints,
    ...(entry.group === undefined
      ? {}
      : {
          affinity: {
            group: entry.group.name,
            kind: entry.group.kind,
            hard: entry.group.hard,
            topologyKey: entry.group.topologyKey,
            maxSkew: 0,
          },
        }),
    migration: {
      liveMigratable: true,
      maxDowntimeMs: 0,
      allowSuspend: false,
      allowAutoConverge: true,
      allowPostCopy: false,
    },
    onHostFailure: "restart",
    allowQueue: entry.allowQueue,
    driver: { image: "sim", params: {} },
  };
}

export async function replay(options: ReplayOptions): Promise<ReplayResult> {
  const { trace } = options;
  // One macrotask turn after each timer: with no I/O in the loop it drains every promise chain a
  // timer started, so the order of decisions is that of any run of the broker on a VirtualClock.
  const settle: SettleMode = "macrotask";
  const epoch = SIM_EPOCH_MS;
  const clock = new VirtualClock(epoch);
  const broker = new Broker(
    brokerOptionsFor(
      options.policy ?? DEFAULT_SIM_POLICY,
      clock,
      options.seed ?? 1,
      options.timings ?? {},
    ),
  );
  await broker.start();
  const fleet = broker.fleet;
  if (fleet === undefined)
    throw new InternalError("the simulator needs the broker's simulated fleet");
  for (const host of options.hosts) {
    fleet.addHost(host.id);
    broker.hosts.register(host);
  }

  const byTraceId = new Map<string, number>();
  trace.forEach((e, i) => {
    byTraceId.set(e.id, i);
  });
  const outcomes: EntryOutcome[] = trace.map(() => ({
    state: "NEW",
    message: "",
    placed: false,
    placedStart: 0,
    queued: false,
  }));
  const running = new Uint8Array(trace.length);
  const usage: UsageDeltas = { times: [], cpuMillis: [], memoryMib: [], diskGib: [], gpus: [] };
  const change = (at: number, lease: Lease, sign: number): void => {
    const r = lease.spec.resources;
    usage.times.push(at);
    usage.cpuMillis.push(sign * r.cpuMillis);
    usage.memoryMib.push(sign * r.memoryMib);
    usage.diskGib.push(sign * r.diskGib);
    usage.gpus.push(sign * r.gpus);
  };
  let migrations = 0;
  let predictedMs = 0;
  let predictedDowntimeMs = 0;
  // Every migration the broker ran, with what the model predicted for it when it was planned.
  const offEnd = broker.migrations.onEnd((m) => {
    predictedMs += m.predicted?.totalTimeMs ?? 0;
    predictedDowntimeMs += m.predicted?.downtimeMs ?? 0;
  });
  let events = 0;
  let firstProblem: ReplayResult["firstProblem"];
  const problem = (i: number, what: string, reason?: RejectReason): void => {
    if (firstProblem !== undefined) return;
    const e = trace[i] as TraceEntry;
    firstProblem = {
      traceId: e.id,
      line: e.line,
      what,
      ...(reason === undefined ? {} : { reason }),
    };
  };

  const watch = broker.leases.watch({ fromRevision: 0 }, ({ type, lease }) => {
    const i = byTraceId.get(lease.requestId);
    if (i === undefined) return;
    events++;
    const out = outcomes[i] as EntryOutcome;
    const previous = out.state;
    out.state = lease.state;
    const at = clock.now();
    options.onEvent?.(simEventOf(at, type, lease));
    if (lease.state === "PENDING") out.queued = true;
    if (
      !out.placed &&
      lease.hostId !== "" &&
      (lease.state === "RESERVED" || RUNNING.has(lease.state))
    ) {
      out.placed = true;
      out.placedStart = lease.start;
    }
    if (lease.state === "MIGRATING" && previous !== "MIGRATING") migrations++;
    const isRunning = RUNNING.has(lease.state);
    if (isRunning && running[i] === 0) {
      running[i] = 1;
      change(at, lease, 1);
    } else if (!isRunning && running[i] === 1) {
      running[i] = 0;
      change(at, lease, -1);
    }
    if (lease.state === "REJECTED") {
      const kind = lease.spec.window.kind;
      out.reason =
        kind === "flexible"
          ? "latest_start_passed"
          : kind === "reserved"
            ? "reservation_start_passed"
            : "queue_timeout";
      out.message = lease.statusMessage;
      problem(i, `rejected: ${lease.statusMessage}`, out.reason);
    } else if (type === "PREEMPTION_NOTICE" || lease.state === "PREEMPTED") {
      out.message = lease.statusMessage;
      problem(i, `preempted: ${lease.statusMessage}`);
    }
  });

  const stopEarly = options.stopAtFirstProblem ?? false;
  try {
    for (let i = 0; i < trace.length; i++) {
      const entry = trace[i] as TraceEntry;
      await clock.advanceTo(epoch + entry.submitMs, { settle });
      if (stopEarly && firstProblem !== undefined) break;
      try {
        await broker.leases.submit(leaseSpecOf(entry, epoch), entry.id);
      } catch (error) {
        const out = outcomes[i] as EntryOutcome;
        out.state = "REFUSED";
        if (error instanceof ResourceExhaustedError) out.reason = "no_fit";
        else if (error instanceof InvalidArgumentError)
          out.reason = error.field.startsWith("spec.resources") ? "too_large" : "invalid";
        else throw error;
        out.message = error.message;
        problem(i, `refused: ${error.message}`, out.reason);
      }
    }
    // The rest of the story: reservations start, leases run out, queues drain.
    while (!(stopEarly && firstProblem !== undefined)) {
      if (!(await clock.runNext({ settle }))) break;
    }
  } finally {
    watch.close();
    offEnd();
    await broker.stop(0);
  }
  return {
    outcomes,
    usage,
    startMs: epoch,
    endMs: clock.now(),
    migrations,
    migrationPredictedMs: predictedMs,
    migrationPredictedDowntimeMs: predictedDowntimeMs,
    events,
    stoppedEarly: stopEarly && firstProblem !== undefined,
    ...(firstProblem === undefined ? {} : { firstProblem }),
  };
}
