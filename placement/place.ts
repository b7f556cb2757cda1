/**
 * The placer: `place` (one lease, one window), `placeGroup` (all members or none),
 * `findEarliestSlot` (flexible leases) and the naive first-fit baseline. All are pure with respect
 * to the index: they never leave a hold behind.
 */

import type { ClusterIndex, HostRecord } from "./cluster-index.js";
import { InvalidPlacementArgumentError } from "./errors.js";
import { scanAll } from "./exhaustive.js";
import { summarize } from "./explain.js";
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from "./policy.js";
import {
  compileRequest,
  passesNonResourceFilters,
  type RequestContext,
  scoreBreakdown,
} from "./request-context.js";
import { searchIndexed } from "./search.js";
import type {
  FilterCount,
  PlacementDecision,
  PlacementExplanation,
  PlacementRequest,
  SlotRequest,
} from "./types.js";

export interface PlaceOptions {
  /**
   * `search` (default): the indexed search; a no-fit is always explained exhaustively.
   * `exhaustive`: scan every host and count every filter on every host, also on success.
   */
  readonly explain?: "search" | "exhaustive";
}

function filterCounts(ctx: RequestContext, removed: ReadonlyMap<string, number>): FilterCount[] {
  return ctx.filters.map((f) => ({ name: f.name, removed: removed.get(f.name) ?? 0 }));
}

function finish(e: Omit<PlacementExplanation, "summary">): PlacementExplanation {
  return { ...e, summary: summarize(e) };
}

function exhaustiveDecision(ctx: RequestContext): PlacementDecision {
  const r = scanAll(ctx);
  const base = {
    mode: "exhaustive" as const,
    hostsConsidered: ctx.index.size,
    hostsEvaluated: ctx.index.size,
    filters: filterCounts(ctx, r.removed),
    feasibleHosts: r.feasible,
    window: { start: ctx.start, end: ctx.end },
  };
  if (r.host === undefined) {
    return {
      ok: false,
      explanation: finish(r.binding === undefined ? base : { ...base, binding: r.binding }),
    };
  }
  return {
    ok: true,
    hostId: r.host.id,
    start: ctx.start,
    end: ctx.end,
    score: r.score,
    explanation: finish({ ...base, chosenHostId: r.host.id, bestScore: r.score, top: r.top }),
  };
}

/** Decide with an already compiled request. */
export function placeCompiled(ctx: RequestContext, options: PlaceOptions = {}): PlacementDecision {
  if (options.explain === "exhaustive") return exhaustiveDecision(ctx);
  const r = searchIndexed(ctx);
  if (r.host === undefined) return exhaustiveDecision(ctx);
  return {
    ok: true,
    hostId: r.host.id,
    start: ctx.start,
    end: ctx.end,
    score: r.score,
    explanation: finish({
      mode: "search",
      hostsConsidered: ctx.index.size,
      hostsEvaluated: r.evaluated,
      filters: filterCounts(ctx, r.removed),
      chosenHostId: r.host.id,
      bestScore: r.score,
      top: [{ hostId: r.host.id, score: r.score, breakdown: scoreBreakdown(ctx, r.host, r.peak) }],
      window: { start: ctx.start, end: ctx.end },
    }),
  };
}

/**
 * Where does the lease go for its whole window? The best host under the policy over all feasible
 * hosts (ties to the smallest host id), or why nothing fits. Does not commit.
 */
export function place(
  index: ClusterIndex,
  request: PlacementRequest,
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
  options: PlaceOptions = {},
): PlacementDecision {
  return placeCompiled(compileRequest(index, request, policy), options);
}

export type GroupDecision =
  | { readonly ok: true; readonly placements: readonly Extract<PlacementDecision, { ok: true }>[] }
  | {
      readonly ok: false;
      /** The member that could not be placed after the ones before it. */
      readonly failedIndex: number;
      readonly explanation: PlacementExplanation;
    };

let gangSeq = 0;

/**
 * Gang placement: all members or none. Members are placed in order, each seeing the earlier ones
 * (their capacity and their group membership) through temporary holds that are always released.
 */
export function placeGroup(
  index: ClusterIndex,
  requests: readonly PlacementRequest[],
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
  options: PlaceOptions = {},
): GroupDecision {
  const temp: string[] = [];
  const placements: Extract<PlacementDecision, { ok: true }>[] = [];
  const run = gangSeq++;
  try {
    for (let i = 0; i < requests.length; i++) {
      const req = requests[i] as PlacementRequest;
      const d = place(index, req, policy, options);
      if (!d.ok) return { ok: false, failedIndex: i, explanation: d.explanation };
      placements.push(d);
      const holdId = `\u0000gang:${run}:${i}`;
      const meta = {
        leaseId: req.leaseId ?? holdId,
        priority: req.priority ?? 0,
        preemptible: req.preemptible ?? false,
        ...(req.group === undefined ? {} : { group: req.group.name }),
      };
      index.commit(holdId, d.hostId, req.window, req.resources, meta);
      temp.push(holdId);
    }
    return { ok: true, placements };
  } finally {
    for (const id of temp) index.release(id);
  }
}

/** How many times earliest-slot search re-plans when group filters reject the resource-earliest start. */
const SLOT_ROUNDS = 64;

/**
 * The first start in `[earliest, latest]` at which the lease fits on some host for `duration`,
 * placed on the best host at that start. Tries `earliest` with the indexed search first; otherwise
 * every eligible host's own earliest fit is computed from its timeline and the minimum taken.
 * Group filters are evaluated against members overlapping `[earliest, latest + duration)` while
 * scanning (conservative), and exactly at the chosen start.
 */
export function findEarliestSlot(
  index: ClusterIndex,
  request: SlotRequest,
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
  options: PlaceOptions = {},
): PlacementDecision {
  const { earliest, latest, duration } = request;
  if (
    ![earliest, latest, duration].every(Number.isFinite) ||
    latest < earliest ||
    !(duration > 0)
  ) {
    throw new InvalidPlacementArgumentError(
      "slot",
      `need finite earliest ≤ latest and duration > 0, got [${earliest}, ${latest}] for ${duration}`,
    );
  }
  const { earliest: _e, latest: _l, duration: _d, ...shape } = request;
  const at = (t: number): PlacementRequest => ({
    ...shape,
    window: { start: t, end: t + duration },
  });
  const first = place(index, at(earliest), policy, options);
  if (first.ok) return first;

  const span = compileRequest(
    index,
    { ...shape, window: { start: earliest, end: latest + duration } },
    policy,
  );
  const scratch = new Float64Array(64);
  const eligible = [...index.hostMap.values()].filter((h) =>
    passesNonResourceFilters(span, h, scratch),
  );
  let from = earliest;
  for (let round = 0; round < SLOT_ROUNDS; round++) {
    let t = Number.NaN;
    for (const h of eligible) {
      const d = demandOrUndefined(span, h);
      if (d === undefined) continue;
      const ht = h.timeline.earliestFit(d, h.limit, duration, from, Number.isNaN(t) ? latest : t);
      if (!Number.isNaN(ht) && (Number.isNaN(t) || ht < t)) t = ht;
    }
    if (Number.isNaN(t)) break;
    const d = place(index, at(t), policy, options);
    if (d.ok) return d;
    // Group filters at exactly t rejected every host that fits: try after the next breakpoint.
    let next = Number.NaN;
    for (const h of eligible) {
      const bp = h.timeline.breakpointsBetween(t, latest)[0];
      if (bp !== undefined && (Number.isNaN(next) || bp < next)) next = bp;
    }
    if (Number.isNaN(next)) break;
    from = next;
  }
  const explanation = first.explanation;
  return {
    ok: false,
    explanation: {
      ...explanation,
      summary: `no start in [${earliest}, ${latest}] fits for ${duration} ms; at the earliest start: ${explanation.summary}`,
    },
  };
}

function demandOrUndefined(ctx: RequestContext, h: HostRecord): Float64Array | undefined {
  if (ctx.extNames.length === 0 && h.dims === 4) return ctx.demandCore;
  const d = new Float64Array(h.dims);
  d.set(ctx.demandCore);
  const r = ctx.request.resources;
  for (const name of ctx.extNames) {
    const i = h.extNames.indexOf(name);
    if (i < 0) return undefined;
    d[4 + i] = r.extended?.[name] ?? 0;
  }
  return d;
}

/**
 * The naive baseline: linear scan in host insertion order, first host that passes every filter.
 * Returns the host id or undefined. No scoring, no explanation.
 */
export function placeFirstFit(
  index: ClusterIndex,
  request: PlacementRequest,
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
): string | undefined {
  const ctx = compileRequest(index, request, policy);
  const scratch = new Float64Array(64);
  outer: for (const host of index.hostMap.values()) {
    for (const f of ctx.filters) if (!f.test(ctx, host, scratch)) continue outer;
    return host.id;
  }
  return undefined;
}
