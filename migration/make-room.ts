/**
 * Make-room: a lease fits on no single host, yet the cluster has room over its window. Plan the
 * fewest moves that open one host for it: leases moved off that host (live migrations for those
 * running at `now`, re-placements for later reservations), each to a host where it fits for its
 * own remaining window, after which the lease fits on the opened host and every one of its own
 * filters (labels, groups) holds there.
 *
 * The search: hosts that pass the lease's filters are ordered by how much they must free (one
 * timeline query each), then examined lazily. Per host, its window is cut into segments where its
 * holds start or end; per segment and resource, the excess is usage + demand − allocatable. A set
 * of holds opens the host if removing them covers every excess. A lower bound on the moves (per
 * segment and resource, the fewest of the largest holds that cover its excess) skips hosts that
 * cannot beat the best plan; sets of holds go by increasing size, pruned when the holds left cannot
 * cover what remains; a covering set is kept if its leases can all be placed elsewhere together
 * (what-if holds, with a bounded number of alternative destinations per lease when the first
 * choices do not fit together). Every host needs at least one move, so a one-move plan ends the
 * search (after a few tie-break hosts); otherwise every eligible host is examined, up to a budget
 * (`proven` says whether the plan was proven fewest). The tests check the count against brute
 * force. Moves are only off the opened host: no chains.
 */

import {
  CORE_RESOURCES,
  eligibilityCheck,
  extendedNames,
  get,
  type HoldView,
  type HostView,
  type PlacementRequest,
  place,
} from "../placement/index.js";
import {
  byMoveOrder,
  candidateFor,
  type MoveCandidate,
  type MoveDetail,
  moveDetail,
  type PlannerInput,
  policyOf,
  WhatIf,
} from "./planner-input.js";

export interface MakeRoomOptions {
  /** The most moves a plan may take. Default 4. */
  readonly maxMoves?: number;
  /** Destinations tried per moved lease when the first choices do not fit together. Default 3. */
  readonly destinationsPerLease?: number;
  /** Leases with less than this left (ms) are not moved. Default 0. */
  readonly minRemainingMs?: number;
  /** Covering sets tried (for destinations) per host and size. Default 64. */
  readonly setsPerHost?: number;
  /**
   * Hosts searched after the first plan for a cheaper one with as few moves (fewer live
   * migrations, then less memory). Default 8.
   */
  readonly tieBreakHosts?: number;
  /**
   * Hosts whose holds are examined, in order of how little they have to free (a time budget for
   * very large clusters; past it the plan is the best found, `proven: false`). Default 256.
   */
  readonly maxHostsExamined?: number;
}

export type MakeRoomPlan =
  | {
      readonly ok: true;
      /** The host the lease goes to once the moves are done. */
      readonly hostId: string;
      /** Empty when the lease already fits (then `hostId` is where placement puts it). */
      readonly moves: readonly MoveDetail[];
      readonly liveMigrations: number;
      readonly memoryMovedMib: number;
      /** Hosts whose holds were looked at. */
      readonly hostsExamined: number;
      /**
       * The plan has the fewest moves: every eligible host was examined or ruled out by its bound
       * (false when the `maxHostsExamined` budget ran out first).
       */
      readonly proven: boolean;
    }
  | {
      readonly ok: false;
      readonly reason: "no-eligible-host" | "no-plan";
      readonly message: string;
      readonly hostsExamined: number;
      readonly proven: boolean;
    };

interface HostProblem {
  readonly host: HostView;
  readonly cands: readonly MoveCandidate[];
  /** Per candidate, per segment × dim: what removing it frees. */
  readonly cover: readonly Float64Array[];
  /** Per segment × dim: the excess (≤ 0 where there is none). */
  readonly excess: Float64Array;
  readonly cells: number;
  readonly lowerBound: number;
}

/**
 * Plan the fewest moves that open a host for `request` (its window `[start, end)`; immediate
 * leases start at `now`). Pure: the index is left as it was.
 */
export function planMakeRoom(
  input: PlannerInput,
  request: PlacementRequest,
  options: MakeRoomOptions = {},
): MakeRoomPlan {
  const { index } = input;
  const policy = policyOf(input);
  const maxMoves = options.maxMoves ?? 4;
  const budget = options.maxHostsExamined ?? 256;
  const eligible = eligibilityCheck(index, request, policy);
  // Cheap order first (one timeline query per host, no objects built): least to free first.
  const extReq = extendedNames(request.resources);
  const r = request.resources;
  const demandCore = [r.cpuMillis, r.memoryMib, r.diskGib, r.gpus];
  const order: { id: string; weight: number }[] = [];
  index.scanPeaks(request.window, (id, _state, limit, peak, extNames) => {
    if (!eligible(id)) return;
    let weight = 0;
    const dim = (lim: number, d: number, used: number): boolean => {
      if (d > lim) return false;
      const e = used + d - lim;
      if (e > 0) weight += e / lim;
      return true;
    };
    for (let k = 0; k < 4; k++) {
      if (!dim(limit[k] as number, demandCore[k] as number, peak[k] as number)) return;
    }
    for (const n of extReq) {
      const i = extNames.indexOf(n);
      if (i < 0 || !dim(limit[4 + i] as number, get(r, n), peak[4 + i] as number)) return;
    }
    order.push({ id, weight });
  });
  if (order.length === 0) {
    return {
      ok: false,
      reason: "no-eligible-host",
      message: "no host passes the lease's filters and could hold it even empty",
      hostsExamined: 0,
      proven: true,
    };
  }
  if (order.some((o) => o.weight === 0)) {
    // Some host takes it as it is: no moves, and placement chooses which.
    const direct = place(index, request, policy, { explain: "none" });
    if (direct.ok) {
      return {
        ok: true,
        hostId: direct.hostId,
        moves: [],
        liveMigrations: 0,
        memoryMovedMib: 0,
        hostsExamined: 0,
        proven: true,
      };
    }
  }
  order.sort((a, b) => a.weight - b.weight || (a.id < b.id ? -1 : 1));
  let best: { host: string; moves: MoveDetail[] } | undefined;
  let examined = 0;
  let proven = true;
  let ties = options.tieBreakHosts ?? 8;
  for (const { id } of order) {
    const limit = best === undefined ? maxMoves : best.moves.length - (ties > 0 ? 0 : 1);
    // every host needs at least one move (else the lease would have been placed)
    if (limit < 1) break;
    if (examined >= budget) {
      proven = false;
      break;
    }
    examined++;
    const host = index.host(id) as HostView;
    const p = buildProblem(input, host, request, options.minRemainingMs ?? 0);
    if (p === undefined || p.lowerBound > limit) continue;
    if (best !== undefined) ties--;
    const moves = solveHost(input, p, limit, options);
    if (moves !== undefined && (best === undefined || cheaper(moves, best.moves))) {
      best = { host: host.id, moves };
    }
  }
  if (best === undefined) {
    return {
      ok: false,
      reason: "no-plan",
      message: proven
        ? `no set of at most ${maxMoves} moves opens a host for the lease`
        : `no plan of at most ${maxMoves} moves found on the ${budget} hosts with the least to free`,
      hostsExamined: examined,
      proven,
    };
  }
  return {
    ok: true,
    hostId: best.host,
    moves: best.moves,
    liveMigrations: best.moves.filter((m) => m.kind === "live").length,
    memoryMovedMib: best.moves.reduce((s, m) => s + m.memoryMib, 0),
    hostsExamined: examined,
    proven,
  };
}

function buildProblem(
  input: PlannerInput,
  host: HostView,
  request: PlacementRequest,
  minRemainingMs: number,
): HostProblem | undefined {
  const { start, end } = request.window;
  const names = [...CORE_RESOURCES, ...extendedNames(request.resources)];
  const D = names.length;
  const limit = names.map((n) => get(host.allocatable, n));
  const demand = names.map((n) => get(request.resources, n));
  for (let k = 0; k < D; k++) if ((demand[k] as number) > (limit[k] as number)) return undefined;
  const holds = input.index.holdsOn(host.id).filter((h) => h.start < end && start < h.end);
  // Segments: wherever a hold starts or ends inside the window (usage is constant in between).
  const inside = new Set<number>();
  for (const h of holds) {
    if (h.start > start && h.start < end) inside.add(h.start);
    if (h.end > start && h.end < end) inside.add(h.end);
  }
  const cuts = [start, ...[...inside].sort((a, b) => a - b), end];
  const S = cuts.length - 1;
  const cells = S * D;
  const coverOf = (h: HoldView): Float64Array => {
    const c = new Float64Array(cells);
    for (let j = 0; j < S; j++) {
      if (!(h.start < (cuts[j + 1] as number) && (cuts[j] as number) < h.end)) continue;
      for (let k = 0; k < D; k++) c[j * D + k] = get(h.resources, names[k] as string);
    }
    return c;
  };
  const excess = new Float64Array(cells);
  for (let j = 0; j < S; j++)
    for (let k = 0; k < D; k++) excess[j * D + k] = (demand[k] as number) - (limit[k] as number);
  const cands: MoveCandidate[] = [];
  const cover: Float64Array[] = [];
  for (const h of holds) {
    const c = coverOf(h);
    for (let i = 0; i < cells; i++) excess[i] = (excess[i] as number) + (c[i] as number);
    if (h.leaseId === request.leaseId) continue;
    const cand = candidateFor(input, h);
    if (cand === undefined || typeof cand === "string") continue;
    if (h.end - input.now < minRemainingMs) continue;
    cands.push(cand);
  }
  cands.sort(byMoveOrder);
  for (const c of cands) cover.push(coverOf(c.hold));
  let lowerBound = 0;
  for (let i = 0; i < cells; i++) {
    const e = excess[i] as number;
    if (e <= 0) continue;
    const sizes = cover.map((c) => c[i] as number).sort((a, b) => b - a);
    let freed = 0;
    let n = 0;
    while (freed < e && n < sizes.length) freed += sizes[n++] as number;
    if (freed < e) return undefined;
    if (n > lowerBound) lowerBound = n;
  }
  return { host, cands, cover, excess, cells, lowerBound };
}

/** Fewer moves, then fewer live migrations, then less memory moved. */
function cheaper(a: readonly MoveDetail[], b: readonly MoveDetail[]): boolean {
  if (a.length !== b.length) return a.length < b.length;
  const live = (m: readonly MoveDetail[]) => m.filter((x) => x.kind === "live").length;
  const mem = (m: readonly MoveDetail[]) => m.reduce((s, x) => s + x.memoryMib, 0);
  return live(a) - live(b) < 0 || (live(a) === live(b) && mem(a) < mem(b));
}

/** The cheapest plan of at most `limit` moves that opens the host, or undefined. */
function solveHost(
  input: PlannerInput,
  p: HostProblem,
  limit: number,
  options: MakeRoomOptions,
): MoveDetail[] | undefined {
  const n = p.cands.length;
  const cells = p.cells;
  // suffix maxima of cover per cell: what the candidates from i on can free at most, one each
  const sufMax = new Float64Array((n + 1) * cells);
  for (let i = n - 1; i >= 0; i--) {
    const c = p.cover[i] as Float64Array;
    for (let x = 0; x < cells; x++) {
      sufMax[i * cells + x] = Math.max(sufMax[(i + 1) * cells + x] as number, c[x] as number);
    }
  }
  const setsPerHost = options.setsPerHost ?? 64;
  for (let size = Math.max(p.lowerBound, 1); size <= Math.min(limit, n); size++) {
    const sets: number[][] = [];
    const residual = Float64Array.from(p.excess);
    const chosen: number[] = [];
    const walk = (from: number): void => {
      if (sets.length >= setsPerHost) return;
      const left = size - chosen.length;
      if (left === 0) {
        for (let x = 0; x < cells; x++) if ((residual[x] as number) > 0) return;
        sets.push([...chosen]);
        return;
      }
      for (let x = 0; x < cells; x++) {
        const r = residual[x] as number;
        if (r > 0 && (sufMax[from * cells + x] as number) * left < r) return;
      }
      for (let i = from; i <= n - left; i++) {
        const c = p.cover[i] as Float64Array;
        for (let x = 0; x < cells; x++) residual[x] = (residual[x] as number) - (c[x] as number);
        chosen.push(i);
        walk(i + 1);
        chosen.pop();
        for (let x = 0; x < cells; x++) residual[x] = (residual[x] as number) + (c[x] as number);
        if (sets.length >= setsPerHost) return;
      }
    };
    walk(0);
    const cost = (set: readonly number[]) => {
      let live = 0;
      let mem = 0;
      for (const i of set) {
        const c = p.cands[i] as MoveCandidate;
        if (c.kind === "live") live++;
        mem += c.hold.resources.memoryMib;
      }
      return { live, mem };
    };
    const ranked = sets
      .map((set) => ({ set, ...cost(set) }))
      .sort((a, b) => a.live - b.live || a.mem - b.mem);
    for (const r of ranked) {
      const moved = r.set.map((i) => p.cands[i] as MoveCandidate);
      const dests = assignDestinations(input, moved, p.host.id, options.destinationsPerLease ?? 3);
      if (dests !== undefined) return moved.map((c, i) => moveDetail(c, dests[i] as string));
    }
  }
  return undefined;
}

/**
 * Destinations for all of `moved` together (none on `opened`), or undefined. Depth first: each
 * lease takes its best destination given the ones before it; on a dead end, its next best (up to
 * `perLease` tried).
 */
export function assignDestinations(
  input: PlannerInput,
  moved: readonly MoveCandidate[],
  opened: string,
  perLease: number,
): string[] | undefined {
  const whatIf = new WhatIf(input.index);
  const policy = policyOf(input);
  const out: string[] = [];
  const go = (i: number): boolean => {
    if (i === moved.length) return true;
    const c = moved[i] as MoveCandidate;
    const tried = new Set([opened, c.hold.hostId]);
    for (let a = 0; a < perLease; a++) {
      const d = place(input.index, c.request, policy, { excludeHosts: tried, explain: "none" });
      if (!d.ok) return false;
      tried.add(d.hostId);
      whatIf.charge(c, d.hostId);
      out.push(d.hostId);
      if (go(i + 1)) return true;
      out.pop();
      whatIf.undoLast(1);
    }
    return false;
  };
  try {
    return go(0) ? out : undefined;
  } finally {
    whatIf.undo();
  }
}
