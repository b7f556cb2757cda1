/**
 * Rebalance, in the spirit of VMware DRS. Imbalance is the weighted mean over resources of the
 * standard deviation of host utilisation (usage at `now` / allocatable, READY hosts). A round is
 * greedy: from the most loaded hosts, the running leases whose move would reduce imbalance most
 * for what it costs; each goes to the least loaded host that passes placement's filters for it
 * (checked directly on the few least loaded hosts, else placement's spread search over all; the
 * source excluded), seeing the moves decided before it.
 *
 * A move is proposed when its benefit is at least `ratio(level)` × its cost:
 * - benefit = the drop in Σ over hosts of squared deviations from the mean utilisation (summed over
 *   resources, weighted) × the hours the lease has left: a move that evens the cluster out for long
 *   is worth more. Summed rather than averaged over hosts, so one move counts the same in a
 *   cluster of 10 hosts or 10,000.
 * - cost = predicted migration time (s, from the pre-copy model) × memory moved (GiB) ×
 *   `costPerGiBSecond`.
 * Levels 1–5 go from conservative to aggressive as DRS's migration threshold does: level 1
 * proposes nothing (DRS then only makes mandatory moves: drains are `planDrain`); higher levels
 * accept smaller gains and act on smaller imbalance.
 */

import {
  CORE_RESOURCES,
  eligibilityCheck,
  fits,
  get,
  type HoldView,
  place,
  type ResourceWeights,
} from "../placement/index.js";
import {
  candidateFor,
  type MoveCandidate,
  type MoveDetail,
  moveDetail,
  type PlannerInput,
  policyOf,
  WhatIf,
} from "./planner-input.js";
import { GIB, MIB, predictForMemory } from "./precopy.js";

export type RebalanceLevel = 1 | 2 | 3 | 4 | 5;

/** Per level: the imbalance at or under which nothing moves, and the benefit/cost ratio a move needs. */
export const REBALANCE_LEVELS: Readonly<
  Record<RebalanceLevel, { readonly tolerance: number; readonly ratio: number }>
> = Object.freeze({
  1: { tolerance: Number.POSITIVE_INFINITY, ratio: Number.POSITIVE_INFINITY },
  2: { tolerance: 0.2, ratio: 8 },
  3: { tolerance: 0.1, ratio: 4 },
  4: { tolerance: 0.05, ratio: 2 },
  5: { tolerance: 0.02, ratio: 1 },
});

export interface RebalanceOptions {
  /** Default 3 (DRS's default threshold). */
  readonly level?: RebalanceLevel;
  /** Moves per round. Default 8 (the default cluster-wide migration limit). */
  readonly maxMoves?: number;
  /** Moves out of, and into, one host per round. Default 2 (the default per-host limits). */
  readonly maxMovesPerHost?: number;
  /** Leases with less than this left are never moved. Default 30 minutes. */
  readonly minRemainingMs?: number;
  /** Default: the placement policy's resource weights. */
  readonly weights?: ResourceWeights;
  /** Default 1e-4 (a 4 GiB VM migrating for 35 s costs 0.014). */
  readonly costPerGiBSecond?: number;
  /** Most loaded hosts looked at per move. Default 4. */
  readonly sourcesPerMove?: number;
  /** Leases per source host tried for a destination. Default 4. */
  readonly leasesPerSource?: number;
  /**
   * Least loaded hosts checked directly as destinations before asking placement to search every
   * host. Default 16.
   */
  readonly destinationsPerMove?: number;
}

export interface RebalanceMove extends MoveDetail {
  readonly benefit: number;
  readonly cost: number;
  /** Imbalance after this move (and the ones before it). */
  readonly imbalanceAfter: number;
}

export interface RebalancePlan {
  readonly level: RebalanceLevel;
  readonly moves: readonly RebalanceMove[];
  readonly imbalanceBefore: number;
  readonly imbalanceAfter: number;
  /** Per resource: standard deviation of host utilisation before and after. */
  readonly perResource: Readonly<
    Record<string, { readonly before: number; readonly after: number }>
  >;
  /** Why the round stopped. */
  readonly stop: "balanced" | "no-worthwhile-move" | "max-moves";
}

interface Dim {
  readonly name: (typeof CORE_RESOURCES)[number];
  readonly w: number;
  /** Per host (position in `hosts`): utilisation, NaN where the host lacks the resource. */
  readonly u: Float64Array;
  readonly alloc: Float64Array;
  n: number;
  s1: number;
  s2: number;
}

function stddev(d: Dim): number {
  if (d.n === 0) return 0;
  const m = d.s1 / d.n;
  return Math.sqrt(Math.max(0, d.s2 / d.n - m * m));
}

function imbalanceOf(dims: readonly Dim[]): number {
  let sum = 0;
  let total = 0;
  for (const d of dims) {
    if (d.n === 0) continue;
    sum += d.w * stddev(d);
    total += d.w;
  }
  return total > 0 ? sum / total : 0;
}

/** The imbalance of the READY hosts at `now` (what `planRebalance` reduces). */
export function clusterImbalance(input: PlannerInput, weights?: ResourceWeights): number {
  return imbalanceOf(buildDims(input, weights ?? policyOf(input).resourceWeights).dims);
}

/** READY hosts' ids and, per weighted core resource, their utilisation at `now` (one pass, no views). */
function buildDims(input: PlannerInput, weights: ResourceWeights): { ids: string[]; dims: Dim[] } {
  const ids: string[] = [];
  const u: number[][] = CORE_RESOURCES.map(() => []);
  const alloc: number[][] = CORE_RESOURCES.map(() => []);
  input.index.scanPeaks({ start: input.now, end: input.now + 1 }, (id, state, limit, peak) => {
    if (state !== "READY") return;
    ids.push(id);
    for (let k = 0; k < CORE_RESOURCES.length; k++) {
      const a = limit[k] as number;
      (alloc[k] as number[]).push(a);
      (u[k] as number[]).push(a > 0 ? (peak[k] as number) / a : Number.NaN);
    }
  });
  const dims: Dim[] = [];
  CORE_RESOURCES.forEach((name, k) => {
    if (!(weights[name] > 0)) return;
    const d: Dim = {
      name,
      w: weights[name],
      u: Float64Array.from(u[k] as number[]),
      alloc: Float64Array.from(alloc[k] as number[]),
      n: 0,
      s1: 0,
      s2: 0,
    };
    for (const x of d.u) {
      if (Number.isNaN(x)) continue;
      d.n++;
      d.s1 += x;
      d.s2 += x * x;
    }
    dims.push(d);
  });
  return { ids, dims };
}

/** Σ squared deviations after moving `r` from host i to host j (per resource, weighted, summed). */
function sqDevAfter(dims: readonly Dim[], i: number, j: number, hold: HoldView): number {
  let out = 0;
  for (const d of dims) {
    if (d.n === 0) continue;
    const v = get(hold.resources, d.name);
    let s1 = d.s1;
    let s2 = d.s2;
    const ui = d.u[i] as number;
    if (!Number.isNaN(ui)) {
      const ni = ui - v / (d.alloc[i] as number);
      s1 += ni - ui;
      s2 += ni * ni - ui * ui;
    }
    const uj = d.u[j] as number;
    if (!Number.isNaN(uj)) {
      const nj = uj + v / (d.alloc[j] as number);
      s1 += nj - uj;
      s2 += nj * nj - uj * uj;
    }
    out += d.w * Math.max(0, s2 - (s1 * s1) / d.n);
  }
  return out;
}

function sqDev(dims: readonly Dim[]): number {
  let out = 0;
  for (const d of dims) if (d.n > 0) out += d.w * Math.max(0, d.s2 - (d.s1 * d.s1) / d.n);
  return out;
}

function applyMove(dims: readonly Dim[], i: number, j: number, hold: HoldView): void {
  for (const d of dims) {
    const v = get(hold.resources, d.name);
    for (const [h, sign] of [
      [i, -1],
      [j, 1],
    ] as const) {
      const u = d.u[h] as number;
      if (Number.isNaN(u)) continue;
      const nu = u + (sign * v) / (d.alloc[h] as number);
      d.u[h] = nu;
      d.s1 += nu - u;
      d.s2 += nu * nu - u * u;
    }
  }
}

/** Weighted utilisation of host i (for picking sources). */
function loadOf(dims: readonly Dim[], i: number): number {
  let sum = 0;
  let total = 0;
  for (const d of dims) {
    const u = d.u[i] as number;
    if (Number.isNaN(u)) continue;
    sum += d.w * u;
    total += d.w;
  }
  return total > 0 ? sum / total : 0;
}

/** Propose one round of rebalancing moves. Pure: the index is left as it was. */
export function planRebalance(input: PlannerInput, options: RebalanceOptions = {}): RebalancePlan {
  const level = options.level ?? 3;
  const { tolerance, ratio } = REBALANCE_LEVELS[level];
  const maxMoves = options.maxMoves ?? 8;
  const perHost = options.maxMovesPerHost ?? 2;
  const minLeft = options.minRemainingMs ?? 30 * 60_000;
  const price = options.costPerGiBSecond ?? 1e-4;
  const sourcesPerMove = options.sourcesPerMove ?? 4;
  const leasesPerSource = options.leasesPerSource ?? 4;
  const destinationsPerMove = options.destinationsPerMove ?? 16;
  const policy = policyOf(input);
  const { index, now } = input;
  const { ids: hosts, dims } = buildDims(input, options.weights ?? policy.resourceWeights);
  const pos = new Map(hosts.map((id, i) => [id, i]));
  const before = Object.fromEntries(dims.map((d) => [d.name, stddev(d)]));
  const imbalanceBefore = imbalanceOf(dims);
  const out = new Int32Array(hosts.length);
  const into = new Int32Array(hosts.length);
  const moved = new Set<string>();
  /** Hosts no lease may go to: sources of this round, and hosts at their incoming limit. */
  const closed = new Set<string>();
  const costCache = new Map<string, number>();
  const costOf = (c: MoveCandidate): number => {
    const info = input.leaseInfo?.(c.hold.leaseId);
    const mem = c.hold.resources.memoryMib;
    const key = info?.profile === undefined ? `${mem}` : "";
    const hit = key === "" ? undefined : costCache.get(key);
    if (hit !== undefined) return hit;
    const m = predictForMemory(mem, info?.profile);
    const cost = m.completes ? (m.totalTimeMs / 1000) * ((mem * MIB) / GIB) * price : Infinity;
    if (key !== "") costCache.set(key, cost);
    return cost;
  };
  /**
   * The destination: the least loaded of `lowest` that passes the lease's filters and has room
   * over its remaining window (placement's own filters, checked directly); else placement's
   * spread choice over every host. Both exclude the source and the closed hosts.
   */
  const destinationOf = (
    c: MoveCandidate,
    i: number,
    lowest: readonly number[],
    src: string,
  ): number | undefined => {
    const ok = eligibilityCheck(index, c.request, policy);
    for (const t of lowest) {
      if (t === i) continue;
      const id = hosts[t] as string;
      if (ok(id) && fits(c.hold.resources, index.freeOver(id, c.request.window))) return t;
    }
    const exclude = new Set(closed);
    exclude.add(src);
    const d = place(index, { ...c.request, policy: "spread" }, policy, {
      excludeHosts: exclude,
      explain: "none",
    });
    return d.ok ? pos.get(d.hostId) : undefined;
  };
  const moves: RebalanceMove[] = [];
  let stop: RebalancePlan["stop"] = "max-moves";
  const whatIf = new WhatIf(index);
  try {
    while (moves.length < maxMoves) {
      const imbalance = imbalanceOf(dims);
      if (imbalance <= tolerance) {
        stop = "balanced";
        break;
      }
      // a host that received a lease this round is not also a source
      const sources = topSources(
        dims,
        hosts.length,
        sourcesPerMove,
        (i) => (out[i] as number) < perHost && into[i] === 0,
      );
      // the least loaded open hosts, least first: where spread placement would look first
      const lowest = bottomHosts(dims, hosts.length, destinationsPerMove, (j) => {
        return !closed.has(hosts[j] as string);
      });
      const leastLoaded = lowest[0] ?? 0;
      const current = sqDev(dims);
      let best:
        | { c: MoveCandidate; i: number; j: number; benefit: number; cost: number }
        | undefined;
      for (const i of sources) {
        const src = hosts[i] as string;
        const cands: { c: MoveCandidate; est: number; cost: number }[] = [];
        for (const h of index.holdsOn(src)) {
          if (moved.has(h.leaseId) || h.start > now || h.end - now < minLeft) continue;
          const c = candidateFor(input, h);
          if (c === undefined || typeof c === "string") continue;
          const cost = costOf(c);
          if (!Number.isFinite(cost)) continue;
          // optimistic estimate: as if it went to the least loaded host
          const gain =
            (current - sqDevAfter(dims, i, leastLoaded, h)) * ((h.end - now) / 3_600_000);
          if (gain < ratio * cost) continue;
          cands.push({ c, est: gain - cost, cost });
        }
        cands.sort((a, b) => b.est - a.est || (a.c.hold.leaseId < b.c.hold.leaseId ? -1 : 1));
        for (const { c, cost } of cands.slice(0, leasesPerSource)) {
          const j = destinationOf(c, i, lowest, src);
          if (j === undefined) continue;
          const benefit =
            (current - sqDevAfter(dims, i, j, c.hold)) * ((c.hold.end - now) / 3_600_000);
          if (benefit <= 0 || benefit < ratio * cost) continue;
          if (best === undefined || benefit - cost > best.benefit - best.cost) {
            best = { c, i, j, benefit, cost };
          }
        }
      }
      if (best === undefined) {
        stop = "no-worthwhile-move";
        break;
      }
      const to = hosts[best.j] as string;
      whatIf.charge(best.c, to);
      applyMove(dims, best.i, best.j, best.c.hold);
      moved.add(best.c.hold.leaseId);
      out[best.i] = (out[best.i] as number) + 1;
      into[best.j] = (into[best.j] as number) + 1;
      closed.add(hosts[best.i] as string);
      if ((into[best.j] as number) >= perHost) closed.add(to);
      moves.push({
        ...moveDetail(best.c, to),
        benefit: best.benefit,
        cost: best.cost,
        imbalanceAfter: imbalanceOf(dims),
      });
    }
  } finally {
    whatIf.undo();
  }
  return {
    level,
    moves,
    imbalanceBefore,
    imbalanceAfter: imbalanceOf(dims),
    perResource: Object.fromEntries(
      dims.map((d) => [d.name, { before: before[d.name] ?? 0, after: stddev(d) }]),
    ),
    stop,
  };
}

/** The `k` most loaded hosts that `ok` allows, most loaded first (ties to the lower position). */
function topSources(
  dims: readonly Dim[],
  n: number,
  k: number,
  ok: (i: number) => boolean,
): number[] {
  const top: { i: number; load: number }[] = [];
  for (let i = 0; i < n; i++) {
    const load = loadOf(dims, i);
    if (top.length === k && load <= (top[k - 1] as { load: number }).load) continue;
    if (!ok(i)) continue;
    let p = top.length;
    while (p > 0 && (top[p - 1] as { load: number }).load < load) p--;
    top.splice(p, 0, { i, load });
    if (top.length > k) top.pop();
  }
  return top.map((t) => t.i);
}

/** The `k` least loaded hosts that `ok` allows, least loaded first (ties to the lower position). */
function bottomHosts(
  dims: readonly Dim[],
  n: number,
  k: number,
  ok: (i: number) => boolean,
): number[] {
  const out: { i: number; load: number }[] = [];
  for (let i = 0; i < n; i++) {
    const load = loadOf(dims, i);
    if (out.length === k && load >= (out[k - 1] as { load: number }).load) continue;
    if (!ok(i)) continue;
    let p = out.length;
    while (p > 0 && (out[p - 1] as { load: number }).load > load) p--;
    out.splice(p, 0, { i, load });
    if (out.length > k) out.pop();
  }
  return out.map((t) => t.i);
}
