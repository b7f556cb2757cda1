/**
 * The placer: `place` (one lease, one window), `placeGroup` (all members or none),
 * `findEarliestSlot` (flexible leases) and the naive first-fit baseline. All are pure with respect
 * to the index: they never leave a hold behind.
 */

import type { ClusterIndex, HoldRecord, HostRecord } from "./cluster-index.js";
import { InvalidPlacementArgumentError } from "./errors.js";
import { scanAll } from "./exhaustive.js";
import { summarize } from "./explain.js";
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from "./policy.js";
import {
  compileRequest,
  type FilterPlugin,
  passesNonResourceFilters,
  type RequestContext,
  resourcesFilter,
  scoreBreakdown,
} from "./request-context.js";
import { explainNoFit, type SearchResult, searchIndexed } from "./search.js";
import type {
  FilterCount,
  PlacementDecision,
  PlacementExplanation,
  PlacementRequest,
  ScoredHost,
  SlotRequest,
} from "./types.js";

export interface PlaceOptions {
  /**
   * `search` (default): the indexed search; a no-fit is explained completely (every filter
   * counted on every host, as the exhaustive scan counts them) from the index's bounds.
   * `exhaustive`: scan every host and count every filter on every host, also on success.
   * `none`: a no-fit is not explained beyond what the search saw (mode `search`, counts over the
   * hosts it evaluated): for planners that try many placements and only need yes or no.
   */
  readonly explain?: "search" | "exhaustive" | "none";
  /**
   * Hosts the lease must not go to (a filter named `excluded`): migration planners exclude the
   * source host, and the hosts they are emptying.
   */
  readonly excludeHosts?: ReadonlySet<string>;
}

function filterCounts(ctx: RequestContext, removed: ReadonlyMap<string, number>): FilterCount[] {
  return ctx.filters.map((f) => ({ name: f.name, removed: removed.get(f.name) ?? 0 }));
}

function finish(e: Omit<PlacementExplanation, "summary">): PlacementExplanation {
  return { ...e, summary: summarize(e) };
}

/** The no-fit decision: complete filter counts and the binding resource, from the index's bounds. */
function noFitDecision(ctx: RequestContext): PlacementDecision {
  const r = explainNoFit(ctx);
  const base = {
    mode: "exhaustive" as const,
    hostsConsidered: ctx.index.size,
    hostsEvaluated: ctx.index.size,
    filters: filterCounts(ctx, r.removed),
    feasibleHosts: 0,
    window: { start: ctx.start, end: ctx.end },
  };
  const e = r.binding === undefined ? base : { ...base, binding: r.binding };
  let summary: string | undefined;
  return {
    ok: false,
    explanation: {
      ...e,
      get summary(): string {
        summary ??= summarize(e);
        return summary;
      },
    },
  };
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
  if (r.host === undefined) {
    if (options.explain !== "none") return noFitDecision(ctx);
    const e = {
      mode: "search" as const,
      hostsConsidered: ctx.index.size,
      hostsEvaluated: r.evaluated,
      filters: filterCounts(ctx, r.removed),
      feasibleHosts: 0,
      window: { start: ctx.start, end: ctx.end },
    };
    return { ok: false, explanation: finish(e) };
  }
  return successDecision(ctx, r);
}

/**
 * A success. The filter counts, the summary and the chosen host's score breakdown are built on
 * first read: most decisions are committed without anyone reading them.
 */
function successDecision(ctx: RequestContext, r: SearchResult): PlacementDecision {
  const host = r.host as HostRecord;
  // the search's own array (not shared scratch): at least the host's dims
  const peak = r.peak;
  const window = { start: ctx.start, end: ctx.end };
  let filters: FilterCount[] | undefined;
  let top: ScoredHost[] | undefined;
  let summary: string | undefined;
  const explanation: PlacementExplanation = {
    mode: "search",
    hostsConsidered: ctx.index.size,
    hostsEvaluated: r.evaluated,
    get filters(): readonly FilterCount[] {
      filters ??= filterCounts(ctx, r.removed);
      return filters;
    },
    chosenHostId: host.id,
    bestScore: r.score,
    get top(): readonly ScoredHost[] {
      top ??= [{ hostId: host.id, score: r.score, breakdown: scoreBreakdown(ctx, host, peak) }];
      return top;
    },
    window,
    get summary(): string {
      summary ??= summarize(this);
      return summary;
    },
  };
  return { ok: true, hostId: host.id, start: ctx.start, end: ctx.end, score: r.score, explanation };
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
  const ctx = compileRequest(index, request, policy);
  return placeCompiled(
    options.excludeHosts === undefined ? ctx : excluding(ctx, options.excludeHosts),
    options,
  );
}

/** The context with an `excluded` filter before the resource check. */
function excluding(ctx: RequestContext, hosts: ReadonlySet<string>): RequestContext {
  const excluded: FilterPlugin = { name: "excluded", test: (_ctx, host) => !hosts.has(host.id) };
  const filters = ctx.filters.filter((f) => f !== resourcesFilter);
  return { ...ctx, filters: [...filters, excluded, resourcesFilter] };
}

/**
 * Whether the request's non-resource filters (host state, labels, affinity, anti-affinity, spread)
 * pass on a host, for the request's window: the check a planner needs for a host it means to make
 * room on.
 */
export function eligibilityCheck(
  index: ClusterIndex,
  request: PlacementRequest,
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
): (hostId: string) => boolean {
  const ctx = compileRequest(index, request, policy);
  const scratch = new Float64Array(64);
  return (hostId) => passesNonResourceFilters(ctx, index.mustHost(hostId), scratch);
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
 * The starts considered are `earliest` and every instant in `(earliest, latest]` where a hold starts
 * or ends. Hard affinity and anti-affinity are evaluated per host and per start while scanning;
 * a spread (maxSkew) against members overlapping `[earliest, latest + duration)` (conservative),
 * and every filter exactly at the chosen start.
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
  const firstCtx = compileRequest(index, at(earliest), policy);
  if (options.explain === "exhaustive") {
    const d = exhaustiveDecision(firstCtx);
    if (d.ok) return d;
  } else {
    const r = searchIndexed(firstCtx);
    if (r.host !== undefined) return successDecision(firstCtx, r);
  }

  // Hard affinity and anti-affinity (without a spread) are applied per host and per candidate
  // start, exactly as `place` applies them to that start's window: a host is blocked only while
  // the members overlapping the window say so. Over the whole span they are wrong both ways: an
  // anti-affinity member that leaves early would block its host for good, and affinity members
  // anywhere in the span would confine the lease to their hosts even at starts where none of them
  // overlaps (where `place` allows every host). Spread (maxSkew) is applied over the whole span
  // (conservative) and exactly at the chosen start.
  const g = shape.group;
  const perStart = g?.hard === true && g.maxSkew === undefined;
  const { group: _g, ...groupless } = shape;
  const span = compileRequest(
    index,
    { ...(perStart ? groupless : shape), window: { start: earliest, end: latest + duration } },
    policy,
  );
  const scratch = new Float64Array(64);
  const eligible = [...index.hostMap.values()].filter((h) =>
    passesNonResourceFilters(span, h, scratch),
  );
  const key = g?.topologyKey;
  const members =
    perStart && g !== undefined
      ? [...(index.groups.get(g.name) ?? [])].filter(
          (m) =>
            (shape.leaseId === undefined || m.leaseId !== shape.leaseId) &&
            // affinity per domain ignores members on hosts without the key (see affinityFilter)
            (g.kind === "anti-affinity" || key === undefined || m.host.labels.has(key)),
        )
      : [];
  const groupWait =
    g === undefined || members.length === 0
      ? undefined
      : g.kind === "anti-affinity"
        ? antiAffinityWait(members, key, duration)
        : affinityWait(members, key, duration, holdBoundaries(index, earliest, latest));
  let from = earliest;
  for (let round = 0; round < SLOT_ROUNDS; round++) {
    let t = Number.NaN;
    for (const h of eligible) {
      const d = demandOrUndefined(span, h);
      if (d === undefined) continue;
      let f = from;
      for (;;) {
        const ht = h.timeline.earliestFit(d, h.limit, duration, f, Number.isNaN(t) ? latest : t);
        if (Number.isNaN(ht)) break;
        const until = groupWait === undefined ? Number.NaN : groupWait(h, ht);
        if (Number.isNaN(until)) {
          if (Number.isNaN(t) || ht < t) t = ht;
          break;
        }
        // no start in (ht, until) passes the group filter on h
        f = until;
      }
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
  // Only now is the earliest start's no-fit worth explaining.
  const first =
    options.explain === "exhaustive" ? exhaustiveDecision(firstCtx) : noFitDecision(firstCtx);
  const explanation = first.explanation;
  return {
    ok: false,
    explanation: {
      ...explanation,
      summary: `no start in [${earliest}, ${latest}] fits for ${duration} ms; at the earliest start: ${explanation.summary}`,
    },
  };
}

/**
 * Per-start hard anti-affinity: for host `h` and start `t`, NaN if no member on `h` (or in its
 * topology domain) overlaps `[t, t + duration)`, else the latest end of those that do (every start
 * before it still overlaps that member).
 */
function antiAffinityWait(
  members: readonly HoldRecord[],
  key: string | undefined,
  duration: number,
): (h: HostRecord, t: number) => number {
  return (h, t) => {
    let until = Number.NaN;
    const dom = key === undefined ? undefined : h.labels.get(key);
    if (key !== undefined && dom === undefined) return until;
    for (const m of members) {
      if (!(m.start < t + duration && t < m.end)) continue;
      const same = key === undefined ? m.host === h : m.host.labels.get(key) === dom;
      if (same && !(m.end <= until)) until = m.end;
    }
    return until;
  };
}

/**
 * Per-start hard affinity, as `affinityFilter` decides it for the window `[t, t + duration)`: `h`
 * passes if no member overlaps the window, or one on `h` (or in its domain) does. Else the next
 * start worth trying on `h`: the earlier of the latest end of the overlapping members (from then
 * on none of them overlaps), and the first candidate start after `m.start − duration` for a later
 * member `m` on `h`'s host or domain (from then on the window reaches it). Starts are strictly
 * after `m.start − duration` there, an open bound with no earliest instant, so the candidate is the
 * next instant a hold starts or ends (`boundaries`, sorted), as for every other start considered.
 */
function affinityWait(
  members: readonly HoldRecord[],
  key: string | undefined,
  duration: number,
  boundaries: () => Float64Array,
): (h: HostRecord, t: number) => number {
  return (h, t) => {
    const dom = key === undefined ? undefined : h.labels.get(key);
    let overlapEnd = Number.NaN;
    let reach = Number.POSITIVE_INFINITY;
    for (const m of members) {
      const mine =
        key === undefined ? m.host === h : dom !== undefined && m.host.labels.get(key) === dom;
      if (m.start < t + duration && t < m.end) {
        if (mine) return Number.NaN;
        if (!(m.end <= overlapEnd)) overlapEnd = m.end;
      } else if (mine && m.start >= t + duration && m.start - duration < reach) {
        reach = m.start - duration;
      }
    }
    if (Number.isNaN(overlapEnd)) return Number.NaN;
    if (reach >= overlapEnd) return overlapEnd;
    const b = boundaries();
    // first boundary > reach (binary search)
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((b[mid] as number) <= reach) lo = mid + 1;
      else hi = mid;
    }
    return lo < b.length ? Math.min(b[lo] as number, overlapEnd) : overlapEnd;
  };
}

/**
 * Every instant in `(earliest, latest]` where some hold starts or ends, sorted: with `earliest`,
 * the candidate starts of the earliest-slot search. Built on first use only (it walks every hold).
 */
function holdBoundaries(index: ClusterIndex, earliest: number, latest: number): () => Float64Array {
  let out: Float64Array | undefined;
  return () => {
    if (out === undefined) {
      const set = new Set<number>();
      for (const h of index.holdMap.values()) {
        if (h.start > earliest && h.start <= latest) set.add(h.start);
        if (h.end > earliest && h.end <= latest) set.add(h.end);
      }
      out = Float64Array.from(set).sort();
    }
    return out;
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
