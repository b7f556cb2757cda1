/**
 * The preemption planner: for a lease of priority p that fits nowhere, the cheapest set of
 * preemptible holds of priority < p on one host whose removal makes it fit. Cheapest is, in order:
 * fewest victims, then the lowest highest-priority among them, then the lowest priority sum, then
 * the least remaining time (from the window start), then the smallest host id. It returns a plan;
 * it does not act.
 */

import { type ClusterIndex, demandFor, type HoldRecord, type HostRecord } from "./cluster-index.js";
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from "./policy.js";
import { compileRequest, passesNonResourceFilters } from "./request-context.js";
import type { PlacementRequest } from "./types.js";

export interface PreemptionPlan {
  readonly hostId: string;
  /** Lease ids of the victims (a lease with several holds on the host appears once). */
  readonly victims: readonly string[];
  /** Hold ids to release. */
  readonly holds: readonly string[];
  readonly cost: PreemptionCost;
}

export interface PreemptionCost {
  readonly count: number;
  readonly maxPriority: number;
  readonly prioritySum: number;
  readonly remainingMs: number;
}

export function compareCost(a: PreemptionCost, b: PreemptionCost): number {
  return (
    a.count - b.count ||
    a.maxPriority - b.maxPriority ||
    a.prioritySum - b.prioritySum ||
    a.remainingMs - b.remainingMs
  );
}

/** Upper limit on victims per plan; beyond it the planner gives up on a host. */
const MAX_VICTIMS = 8;

interface HostProblem {
  readonly host: HostRecord;
  /** Victim candidates (one entry per lease: its holds on this host together). */
  readonly cands: readonly { leaseId: string; holds: HoldRecord[]; cover: Float64Array }[];
  /** Per segment of the window, per dim: usage + demand − limit (only segments with excess). */
  readonly excess: Float64Array;
  readonly segments: number;
  readonly dims: number;
  /** Lower bound on the number of victims. */
  readonly minVictims: number;
}

export function planPreemption(
  index: ClusterIndex,
  request: PlacementRequest,
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
): PreemptionPlan | null {
  const ctx = compileRequest(index, request, policy);
  const priority = request.priority ?? 0;
  const { start, end } = ctx;
  const scratch = new Float64Array(64);
  const problems: HostProblem[] = [];
  for (const host of index.hostMap.values()) {
    if (!passesNonResourceFilters(ctx, host, scratch)) continue;
    const demand = demandFor(host, request.resources);
    if (typeof demand === "string") continue;
    const p = buildProblem(host, demand, start, end, priority, request.leaseId);
    if (p !== undefined) problems.push(p);
  }
  problems.sort((a, b) => a.minVictims - b.minVictims || (a.host.id < b.host.id ? -1 : 1));
  let best: PreemptionPlan | null = null;
  for (const p of problems) {
    if (best !== null && p.minVictims > best.cost.count) break;
    const limit = Math.min(MAX_VICTIMS, best === null ? MAX_VICTIMS : best.cost.count);
    const found = solve(p, limit, start);
    if (found === undefined) continue;
    if (
      best === null ||
      compareCost(found.cost, best.cost) < 0 ||
      (compareCost(found.cost, best.cost) === 0 && found.hostId < best.hostId)
    ) {
      best = found;
    }
  }
  return best;
}

function buildProblem(
  host: HostRecord,
  demand: Float64Array,
  start: number,
  end: number,
  priority: number,
  leaseId: string | undefined,
): HostProblem | undefined {
  const D = host.dims;
  for (let k = 0; k < D; k++)
    if ((demand[k] as number) > (host.limit[k] as number)) return undefined;
  // Segments of the window: boundaries at every breakpoint inside it.
  const cuts = [start, ...host.timeline.breakpointsBetween(start, end).filter((t) => t < end), end];
  const S = cuts.length - 1;
  const excess = new Float64Array(S * D);
  const use = new Float64Array(D);
  let any = false;
  for (let j = 0; j < S; j++) {
    host.timeline.usageAt(cuts[j] as number, use);
    for (let k = 0; k < D; k++) {
      const e = (use[k] as number) + (demand[k] as number) - (host.limit[k] as number);
      excess[j * D + k] = Math.max(e, 0);
      if (e > 0) any = true;
    }
  }
  const byLease = new Map<string, HoldRecord[]>();
  for (const h of host.holds) {
    if (!h.preemptible || h.priority >= priority) continue;
    if (leaseId !== undefined && h.leaseId === leaseId) continue;
    if (!(h.start < end && start < h.end)) continue;
    let list = byLease.get(h.leaseId);
    if (list === undefined) {
      list = [];
      byLease.set(h.leaseId, list);
    }
    list.push(h);
  }
  const cands = [...byLease.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([id, holds]) => {
      // What removing this lease frees in each segment.
      const cover = new Float64Array(S * D);
      for (const h of holds) {
        for (let j = 0; j < S; j++) {
          if (h.start < (cuts[j + 1] as number) && (cuts[j] as number) < h.end) {
            for (let k = 0; k < D; k++)
              cover[j * D + k] = (cover[j * D + k] as number) + (h.demand[k] as number);
          }
        }
      }
      return { leaseId: id, holds, cover };
    });
  if (!any) {
    return { host, cands, excess, segments: S, dims: D, minVictims: 0 };
  }
  // Every victim set must cover the excess at each segment; a lower bound on its size is the
  // fewest largest covers that reach the worst single (segment, dim) excess.
  let minVictims = 0;
  for (let j = 0; j < S; j++) {
    for (let k = 0; k < D; k++) {
      const need = excess[j * D + k] as number;
      if (need <= 0) continue;
      const gains = cands.map((c) => c.cover[j * D + k] as number).sort((a, b) => b - a);
      let sum = 0;
      let n = 0;
      while (sum < need && n < gains.length) sum += gains[n++] as number;
      if (sum < need) return undefined; // even removing every candidate does not make room
      minVictims = Math.max(minVictims, n);
    }
  }
  return { host, cands, excess, segments: S, dims: D, minVictims };
}

function solve(p: HostProblem, limit: number, from: number): PreemptionPlan | undefined {
  const { cands, excess, segments: S, dims: D } = p;
  if (p.minVictims === 0) {
    return {
      hostId: p.host.id,
      victims: [],
      holds: [],
      cost: { count: 0, maxPriority: 0, prioritySum: 0, remainingMs: 0 },
    };
  }
  const costOf = (idx: readonly number[]): PreemptionCost => {
    let maxPriority = Number.NEGATIVE_INFINITY;
    let prioritySum = 0;
    let remainingMs = 0;
    for (const i of idx) {
      const c = cands[i];
      if (c === undefined) continue;
      let pr = Number.NEGATIVE_INFINITY;
      for (const h of c.holds) {
        pr = Math.max(pr, h.priority);
        remainingMs += h.end - Math.max(from, h.start);
      }
      maxPriority = Math.max(maxPriority, pr);
      prioritySum += pr;
    }
    return { count: idx.length, maxPriority, prioritySum, remainingMs };
  };
  const covers = (idx: readonly number[]): boolean => {
    for (let j = 0; j < S; j++) {
      for (let k = 0; k < D; k++) {
        const need = excess[j * D + k] as number;
        if (need <= 0) continue;
        let sum = 0;
        for (const i of idx) sum += cands[i]?.cover[j * D + k] ?? 0;
        if (sum < need) return false;
      }
    }
    return true;
  };
  for (let size = p.minVictims; size <= Math.min(limit, cands.length); size++) {
    let best: { idx: number[]; cost: PreemptionCost } | undefined;
    const idx: number[] = [];
    const rec = (startAt: number) => {
      if (idx.length === size) {
        if (!covers(idx)) return;
        const cost = costOf(idx);
        if (best === undefined || compareCost(cost, best.cost) < 0) best = { idx: [...idx], cost };
        return;
      }
      for (let i = startAt; i <= cands.length - (size - idx.length); i++) {
        idx.push(i);
        rec(i + 1);
        idx.pop();
      }
    };
    rec(0);
    const found = best as { idx: number[]; cost: PreemptionCost } | undefined;
    if (found !== undefined) {
      const chosen = found.idx.map((i) => cands[i]).filter((c) => c !== undefined);
      return {
        hostId: p.host.id,
        victims: chosen.map((c) => c.leaseId),
        holds: chosen.flatMap((c) => c.holds.map((h) => h.id)).sort(),
        cost: found.cost,
      };
    }
  }
  return undefined;
}
