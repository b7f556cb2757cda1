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
  // Segments of the window: boundaries wherever a hold on the host starts or ends inside it. Not the
  // timeline's breakpoints: the timeline merges level stretches, so one hold ending where another
  // starts (same usage on both sides) leaves no breakpoint, yet removing either frees only its part.
  const inside = new Set<number>();
  for (const h of host.holds) {
    if (h.start > start && h.start < end) inside.add(h.start);
    if (h.end > start && h.end < end) inside.add(h.end);
  }
  const cuts = [start, ...[...inside].sort((a, b) => a - b), end];
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

/**
 * Nodes a host's search may visit before it settles for the best plan found so far (then the plan
 * is valid but possibly not the cheapest). Small cases never come near it.
 */
const SEARCH_BUDGET = 2_000_000;

/**
 * The cheapest victim set on one host: by increasing size, a depth-first branch and bound over the
 * candidates sorted by (priority, remaining time), pruning a branch when the picks left cannot
 * cover some residual excess (largest covers in the rest) or cannot beat the best cost found.
 */
function solve(p: HostProblem, limit: number, from: number): PreemptionPlan | undefined {
  const { cands, excess } = p;
  if (p.minVictims === 0) {
    return {
      hostId: p.host.id,
      victims: [],
      holds: [],
      cost: { count: 0, maxPriority: 0, prioritySum: 0, remainingMs: 0 },
    };
  }
  const C = cands.length;
  const pr = cands.map((c) => Math.max(...c.holds.map((h) => h.priority)));
  const rem = cands.map((c) => c.holds.reduce((s, h) => s + h.end - Math.max(from, h.start), 0));
  const order = cands
    .map((_, i) => i)
    .sort(
      (a, b) =>
        (pr[a] as number) - (pr[b] as number) || (rem[a] as number) - (rem[b] as number) || a - b,
    );
  // the (segment, dim) cells with excess, and each candidate's cover of them (in search order)
  const cells: number[] = [];
  for (let c = 0; c < excess.length; c++) if ((excess[c] as number) > 0) cells.push(c);
  const N = cells.length;
  const cover = new Float64Array(C * N);
  order.forEach((ci, pos) => {
    const cv = (cands[ci] as (typeof cands)[number]).cover;
    for (let n = 0; n < N; n++) cover[pos * N + n] = cv[cells[n] as number] as number;
  });
  const prAt = order.map((ci) => pr[ci] as number);
  const remAt = order.map((ci) => rem[ci] as number);
  // suffix bounds: the largest r covers among positions ≥ pos, for each cell, is ≤ r · suffix max
  const sufMax = new Float64Array((C + 1) * N);
  const sufMinRem = new Float64Array(C + 1).fill(Number.POSITIVE_INFINITY);
  for (let pos = C - 1; pos >= 0; pos--) {
    for (let n = 0; n < N; n++) {
      sufMax[pos * N + n] = Math.max(
        sufMax[(pos + 1) * N + n] as number,
        cover[pos * N + n] as number,
      );
    }
    sufMinRem[pos] = Math.min(sufMinRem[pos + 1] as number, remAt[pos] as number);
  }
  const residual = new Float64Array(N);
  for (let n = 0; n < N; n++) residual[n] = excess[cells[n] as number] as number;
  let nodes = 0;
  for (let size = p.minVictims; size <= Math.min(limit, C); size++) {
    let best: { picks: number[]; cost: PreemptionCost } | undefined;
    const picks: number[] = [];
    const rec = (pos: number, maxPr: number, sumPr: number, remMs: number): void => {
      if (++nodes > SEARCH_BUDGET) return;
      const left = size - picks.length;
      if (left === 0) {
        for (let n = 0; n < N; n++) if ((residual[n] as number) > 0) return;
        const cost = { count: size, maxPriority: maxPr, prioritySum: sumPr, remainingMs: remMs };
        if (best === undefined || compareCost(cost, best.cost) < 0)
          best = { picks: [...picks], cost };
        return;
      }
      if (C - pos < left) return;
      for (let n = 0; n < N; n++) {
        if ((residual[n] as number) > left * (sufMax[pos * N + n] as number)) return;
      }
      if (best !== undefined) {
        // candidates are sorted by priority: every pick from here on has priority ≥ prAt[pos]
        const lower = {
          count: size,
          maxPriority: Math.max(maxPr, prAt[pos] as number),
          prioritySum: sumPr + left * (prAt[pos] as number),
          remainingMs: remMs + left * (sufMinRem[pos] as number),
        };
        if (compareCost(lower, best.cost) >= 0) return;
      }
      for (let i = pos; i <= C - left; i++) {
        for (let n = 0; n < N; n++)
          residual[n] = (residual[n] as number) - (cover[i * N + n] as number);
        picks.push(i);
        rec(
          i + 1,
          Math.max(maxPr, prAt[i] as number),
          sumPr + (prAt[i] as number),
          remMs + (remAt[i] as number),
        );
        picks.pop();
        for (let n = 0; n < N; n++)
          residual[n] = (residual[n] as number) + (cover[i * N + n] as number);
      }
    };
    rec(0, Number.NEGATIVE_INFINITY, 0, 0);
    const found = best as { picks: number[]; cost: PreemptionCost } | undefined;
    if (found !== undefined) {
      const chosen = found.picks
        .map((pos) => cands[order[pos] as number])
        .filter((c) => c !== undefined)
        .sort((a, b) => (a.leaseId < b.leaseId ? -1 : 1));
      return {
        hostId: p.host.id,
        victims: chosen.map((c) => c.leaseId),
        holds: chosen.flatMap((c) => c.holds.map((h) => h.id)).sort(),
        cost: found.cost,
      };
    }
    if (nodes > SEARCH_BUDGET) return undefined;
  }
  return undefined;
}
