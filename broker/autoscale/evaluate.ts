/**
 * One evaluation of the cluster for autoscaling, from the timelines: the waiting demand that fits
 * nowhere (and the new hosts it needs, by bin packing), utilisation against the watermarks, the
 * hosts that could be removed. Deterministic, time is an argument, and it leaves the index as it
 * found it (probe holds are released before it returns); hysteresis lives in the signaller.
 */
import type { PlannedMove } from "../../migration/index.js";
import {
  add,
  type ClusterIndex,
  findEarliestSlot,
  type PlacementDecision,
  type PlacementPolicy,
  type PlacementRequest,
  parseSelector,
  place,
  type Resources,
  scale,
  sub,
  ZERO_RESOURCES,
} from "../../placement/index.js";
import { placementRequest } from "../leases/lease-manager.js";
import type { Lease } from "../leases/model.js";
import { type PackingResult, packOntoNewHosts } from "./packing.js";
import type { ConsolidationPlan } from "./ports.js";
import { type HostShape, shapeAllocatable } from "./shapes.js";

/** The resources watermarks apply to. */
export const WATERMARK_RESOURCES = ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const;
export type WatermarkResource = (typeof WATERMARK_RESOURCES)[number];
export type Utilisation = Readonly<Record<WatermarkResource, number>>;

export interface HostShapeCount {
  readonly shape: HostShape;
  readonly count: number;
}

export type Recommendation =
  | {
      readonly kind: "scale-out";
      readonly hosts: readonly HostShapeCount[];
      readonly reason: string;
      readonly demand: Resources;
      /** When the first lease that does not fit must start; undefined = now (a watermark). */
      readonly deadline: number | undefined;
      readonly leaseIds: readonly string[];
    }
  | {
      readonly kind: "scale-in";
      readonly candidateHostIds: readonly string[];
      readonly moves: readonly PlannedMove[];
      readonly reason: string;
      readonly surplus: Resources;
    }
  | { readonly kind: "steady"; readonly reason: string };

export interface EvaluationInput {
  readonly index: ClusterIndex;
  readonly now: number;
  /** The PENDING leases (queued, or reserved/flexible without room yet). */
  readonly waiting: readonly Lease[];
  /** Shapes of new hosts, preferred first (at least one for a ScaleOut). */
  readonly shapes: readonly HostShape[];
  /** Waiting leases starting later than now + horizon do not count yet. */
  readonly horizonMs: number;
  /** Utilisation is the peak over [now, now + window). */
  readonly utilisationWindowMs: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  /** Never recommend fewer READY hosts than this. */
  readonly minHosts: number;
  readonly policy: PlacementPolicy;
  /** Hosts removable by order of preference (e.g. longest idle first); others are not. */
  readonly removableOrder: (hostIds: readonly string[]) => readonly string[];
  /** What consolidation could empty (absent: only hosts that are already empty). */
  readonly consolidation?: ConsolidationPlan;
}

export interface Evaluation {
  readonly now: number;
  readonly readyHosts: number;
  readonly allocatable: Resources;
  readonly allocated: Resources;
  readonly utilisation: Utilisation;
  /** Waiting leases that fit no current host and start within the horizon, sorted. */
  readonly unmetLeaseIds: readonly string[];
  readonly unmetDemand: Resources;
  /** The earliest start among them; undefined when one is needed now. */
  readonly deadline: number | undefined;
  /** Waiting leases starting beyond the horizon (not counted yet), sorted. */
  readonly laterLeaseIds: readonly string[];
  readonly packing: PackingResult;
  /** READY hosts holding nothing from now on, sorted. */
  readonly emptyHostIds: readonly string[];
  readonly recommendation: Recommendation;
}

const MAX_LEASE_IDS = 100;

/** The window a waiting lease would get on a host that has room: its earliest start from now. */
function waitingRequest(lease: Lease, now: number): PlacementRequest {
  const w = lease.spec.window;
  const start =
    w.kind === "immediate" ? now : Math.max(now, w.kind === "reserved" ? w.start : w.earliestStart);
  return placementRequest(
    lease.id,
    lease.spec,
    { start, end: start + w.durationMs },
    lease.spec.constraints.map((c) => parseSelector(c)),
  );
}

/** Where a waiting lease fits a current host in its allowed window, or why it does not. */
function placeNow(
  input: EvaluationInput,
  lease: Lease,
  request: PlacementRequest,
): PlacementDecision {
  const w = lease.spec.window;
  if (w.kind === "flexible" && w.latestStart > request.window.start) {
    return findEarliestSlot(
      input.index,
      {
        ...request,
        earliest: request.window.start,
        latest: w.latestStart,
        duration: w.durationMs,
      },
      input.policy,
    );
  }
  return place(input.index, request, input.policy);
}

export function evaluate(input: EvaluationInput): Evaluation {
  const { index, now } = input;
  const window = { start: now, end: now + Math.max(1, input.utilisationWindowMs) };
  const ready = index.hosts().filter((h) => h.state === "READY");
  let allocatableSum = ZERO_RESOURCES;
  let allocatedSum = ZERO_RESOURCES;
  const emptyHostIds: string[] = [];
  for (const host of ready) {
    allocatableSum = add(allocatableSum, host.allocatable);
    allocatedSum = add(allocatedSum, index.peakOver(host.id, window));
    if (!index.holdsOn(host.id).some((h) => h.end > now)) emptyHostIds.push(host.id);
  }
  emptyHostIds.sort();
  const utilisation = utilisationOf(allocatedSum, allocatableSum);

  const unmet: PlacementRequest[] = [];
  const laterLeaseIds: string[] = [];
  let unmetDemand = ZERO_RESOURCES;
  let deadline: number | undefined;
  // In the queue's order. A lease that fits now holds its room (a probe hold, released below)
  // while the next ones are checked, so that two leases are not counted into the same room.
  const queue = [...input.waiting].sort(
    (a, b) =>
      b.spec.priority - a.spec.priority || a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1),
  );
  const probes: string[] = [];
  try {
    for (const lease of queue) {
      const request = waitingRequest(lease, now);
      if (request.window.start > now + input.horizonMs) {
        laterLeaseIds.push(lease.id);
        continue;
      }
      const decision = placeNow(input, lease, request);
      if (decision.ok) {
        const probe = `autoscale-probe:${lease.id}`;
        index.commit(probe, decision.hostId, decision, lease.spec.resources, {
          leaseId: lease.id,
          priority: lease.spec.priority,
          preemptible: lease.spec.preemptible,
          ...(lease.spec.affinity === undefined ? {} : { group: lease.spec.affinity.group }),
        });
        probes.push(probe);
        continue;
      }
      unmet.push(request);
      unmetDemand = add(unmetDemand, lease.spec.resources);
      deadline = Math.min(deadline ?? Number.POSITIVE_INFINITY, request.window.start);
    }
  } finally {
    for (const probe of probes) index.release(probe);
  }
  // Needed now: no deadline (the contract's null), so that the signal does not change every time.
  if (deadline !== undefined && deadline <= now) deadline = undefined;
  const unmetLeaseIds = unmet.map((r) => r.leaseId ?? "").sort();
  const packing = packOntoNewHosts(unmet, input.shapes, input.policy);

  const base = {
    now,
    readyHosts: ready.length,
    allocatable: allocatableSum,
    allocated: allocatedSum,
    utilisation,
    unmetLeaseIds,
    unmetDemand,
    deadline,
    laterLeaseIds: laterLeaseIds.sort(),
    packing,
    emptyHostIds,
  };
  return { ...base, recommendation: recommend(input, base) };
}

function recommend(input: EvaluationInput, e: Omit<Evaluation, "recommendation">): Recommendation {
  const byName = new Map(input.shapes.map((s) => [s.name, s]));
  if (e.packing.counts.size > 0) {
    const hosts = [...e.packing.counts].map(([name, count]) => ({
      shape: byName.get(name) as HostShape,
      count,
    }));
    const total = hosts.reduce((n, h) => n + h.count, 0);
    const servable = e.unmetLeaseIds.length - e.packing.unservable.length;
    return {
      kind: "scale-out",
      hosts,
      reason:
        `${servable} waiting lease${servable === 1 ? " needs" : "s need"} ${demandText(e.unmetDemand)}` +
        ` that no current host has; bin packing puts ${servable === 1 ? "it" : "them"} on ${total} new host${total === 1 ? "" : "s"}` +
        (e.packing.unservable.length > 0
          ? `; ${e.packing.unservable.length} fit no host shape`
          : ""),
      demand: e.unmetDemand,
      deadline: e.deadline,
      leaseIds: e.unmetLeaseIds.slice(0, MAX_LEASE_IDS),
    };
  }
  const busiest = busiestResource(e.utilisation);
  const shape = input.shapes[0];
  if (e.utilisation[busiest] > input.highWatermark && shape !== undefined) {
    const count = headroomHosts(e, shapeAllocatable(shape), input.highWatermark);
    if (count > 0) {
      return {
        kind: "scale-out",
        hosts: [{ shape, count }],
        reason: `${busiest} utilisation ${percent(e.utilisation[busiest])} is above the high watermark ${percent(input.highWatermark)}`,
        demand: ZERO_RESOURCES,
        deadline: undefined,
        leaseIds: [],
      };
    }
  }
  if (e.unmetLeaseIds.length > 0) {
    return {
      kind: "steady",
      reason:
        input.shapes.length === 0
          ? `${e.unmetLeaseIds.length} waiting leases, but no host shape is known: configure --autoscale-host-shapes`
          : `${e.unmetLeaseIds.length} waiting leases fit no host shape: adding hosts would not help`,
    };
  }
  if (e.utilisation[busiest] >= input.lowWatermark) {
    return {
      kind: "steady",
      reason: `utilisation within the watermarks (${busiest} ${percent(e.utilisation[busiest])})`,
    };
  }
  return scaleIn(input, e);
}

function scaleIn(input: EvaluationInput, e: Omit<Evaluation, "recommendation">): Recommendation {
  const plan = input.consolidation ?? { hostIds: [], moves: [] };
  const offered = [...new Set([...e.emptyHostIds, ...plan.hostIds])];
  const chosen: string[] = [];
  let allocatable = e.allocatable;
  let surplus = ZERO_RESOURCES;
  for (const hostId of input.removableOrder(offered)) {
    const host = input.index.host(hostId);
    if (host === undefined || host.state !== "READY") continue;
    if (e.readyHosts - chosen.length - 1 < input.minHosts) break;
    // Moves must not land on a host that is itself going away.
    const movesInto = plan.moves.some((m) => m.toHostId === hostId);
    if (movesInto) continue;
    const after = sub(allocatable, host.allocatable);
    const busiest = busiestResource(utilisationOf(e.allocated, after));
    if (utilisationOf(e.allocated, after)[busiest] > input.highWatermark) continue;
    allocatable = after;
    surplus = add(surplus, host.allocatable);
    chosen.push(hostId);
  }
  if (chosen.length === 0) {
    return { kind: "steady", reason: "utilisation is low but no host can be removed" };
  }
  const removing = new Set(chosen);
  const moves = plan.moves.filter((m) => removing.has(m.fromHostId));
  const busiest = busiestResource(e.utilisation);
  return {
    kind: "scale-in",
    candidateHostIds: chosen,
    moves,
    reason: `${busiest} utilisation ${percent(e.utilisation[busiest])} is below the low watermark ${percent(input.lowWatermark)}; ${chosen.length} host${chosen.length === 1 ? "" : "s"} can be emptied${moves.length > 0 ? ` by ${moves.length} migration${moves.length === 1 ? "" : "s"}` : ""}`,
    surplus,
  };
}

/** Smallest k such that every resource stays at or under `high` with k more hosts of `shape`. */
function headroomHosts(
  e: Omit<Evaluation, "recommendation">,
  shape: Resources,
  high: number,
): number {
  for (let k = 1; k <= 1000; k++) {
    const u = utilisationOf(e.allocated, add(e.allocatable, scale(shape, k)));
    if (u[busiestResource(u)] <= high) return k;
  }
  return 1000;
}

export function utilisationOf(allocated: Resources, allocatable: Resources): Utilisation {
  const ratio = (used: number, have: number): number =>
    have > 0 ? used / have : used > 0 ? Number.POSITIVE_INFINITY : 0;
  return {
    cpuMillis: ratio(allocated.cpuMillis, allocatable.cpuMillis),
    memoryMib: ratio(allocated.memoryMib, allocatable.memoryMib),
    diskGib: ratio(allocated.diskGib, allocatable.diskGib),
    gpus: ratio(allocated.gpus, allocatable.gpus),
  };
}

function busiestResource(u: Utilisation): WatermarkResource {
  let best: WatermarkResource = "cpuMillis";
  for (const r of WATERMARK_RESOURCES) if (u[r] > u[best]) best = r;
  return best;
}

const percent = (x: number): string => `${Math.round(x * 100)}%`;

/** "12 cores, 96 GiB memory, 10 GiB disk, 1 gpu": what people read in a reason. */
function demandText(r: Resources): string {
  const n = (x: number): string => String(Math.round(x * 100) / 100);
  const cores = r.cpuMillis / 1000;
  const parts = [
    `${n(cores)} core${cores === 1 ? "" : "s"}`,
    `${n(r.memoryMib / 1024)} GiB memory`,
  ];
  if (r.diskGib > 0) parts.push(`${n(r.diskGib)} GiB disk`);
  if (r.gpus > 0) parts.push(`${n(r.gpus)} gpu${r.gpus === 1 ? "" : "s"}`);
  return parts.join(", ");
}
