/**
 * The exhaustive scan: every filter on every host, every feasible host scored. It is the reference
 * the indexed search is tested against, and it produces the full explanations (per-filter counts,
 * top hosts, and for "no fit" the binding resource and where in the window it binds).
 */

import { demandFor, dimName, type HostRecord } from "./cluster-index.js";
import {
  type RequestContext,
  resourcesFilter,
  scoreBreakdown,
  totalScore,
} from "./request-context.js";
import { get } from "./resources.js";
import type { BindingResource, ScoredHost } from "./types.js";

export interface ScanResult {
  readonly host: HostRecord | undefined;
  readonly score: number;
  readonly feasible: number;
  /** Every filter counted on every host. */
  readonly removed: ReadonlyMap<string, number>;
  readonly top: readonly ScoredHost[];
  readonly binding: BindingResource | undefined;
}

export interface ScanOptions {
  readonly topK?: number;
  readonly binding?: boolean;
}

/** Whether host a ranks before host b: higher score, then smaller id. */
export function ranksBefore(scoreA: number, idA: string, scoreB: number, idB: string): boolean {
  return scoreA > scoreB || (scoreA === scoreB && idA < idB);
}

export function scanAll(ctx: RequestContext, options: ScanOptions = {}): ScanResult {
  const topK = options.topK ?? 5;
  const removed = new Map<string, number>();
  for (const f of ctx.filters) removed.set(f.name, 0);
  const peak = new Float64Array(64);
  let best: HostRecord | undefined;
  let bestScore = Number.NEGATIVE_INFINITY;
  let feasible = 0;
  const top: { host: HostRecord; score: number; breakdown: Record<string, number> }[] = [];
  const shortOn: Record<string, number> = {};
  let closest:
    | {
        host: HostRecord;
        rel: number;
        resource: string;
        shortBy: number;
        start: number;
        end: number;
      }
    | undefined;

  for (const host of ctx.index.hostMap.values()) {
    const p = host.dims <= peak.length ? peak : new Float64Array(host.dims);
    let ok = true;
    let otherFailed = false;
    for (const f of ctx.filters) {
      if (!f.test(ctx, host, p)) {
        removed.set(f.name, (removed.get(f.name) ?? 0) + 1);
        ok = false;
        if (f !== resourcesFilter) otherFailed = true;
      }
    }
    if (ok) {
      feasible++;
      const s = totalScore(ctx, host, p);
      if (best === undefined || ranksBefore(s, host.id, bestScore, best.id)) {
        best = host;
        bestScore = s;
      }
      if (topK > 0) {
        const worst = top[top.length - 1];
        if (
          top.length < topK ||
          (worst !== undefined && ranksBefore(s, host.id, worst.score, worst.host.id))
        ) {
          top.push({ host, score: s, breakdown: scoreBreakdown(ctx, host, p) });
          top.sort((x, y) => (ranksBefore(x.score, x.host.id, y.score, y.host.id) ? -1 : 1));
          if (top.length > topK) top.pop();
        }
      }
    } else if (!otherFailed && options.binding !== false) {
      const v = violationOf(ctx, host);
      if (v !== undefined) {
        shortOn[v.resource] = (shortOn[v.resource] ?? 0) + 1;
        if (
          closest === undefined ||
          v.rel < closest.rel ||
          (v.rel === closest.rel && host.id < closest.host.id)
        ) {
          closest = { host, ...v };
        }
      }
    }
  }
  let binding: BindingResource | undefined;
  if (best === undefined && closest !== undefined) {
    binding = {
      resource: closest.resource,
      start: closest.start,
      end: closest.end,
      shortBy: closest.shortBy,
      hostId: closest.host.id,
      shortOnHosts: shortOn,
    };
  }
  return {
    host: best,
    score: bestScore,
    feasible,
    removed,
    top: top.map((t) => ({ hostId: t.host.id, score: t.score, breakdown: t.breakdown })),
    binding,
  };
}

/** Where the request does not fit on the host: resource, relative shortfall, amount and span. */
export function violationOf(
  ctx: RequestContext,
  host: HostRecord,
): { resource: string; rel: number; shortBy: number; start: number; end: number } | undefined {
  const demand = demandFor(host, ctx.request.resources);
  if (typeof demand === "string") {
    return {
      resource: demand,
      rel: Number.POSITIVE_INFINITY,
      shortBy: get(ctx.request.resources, demand),
      start: ctx.start,
      end: ctx.end,
    };
  }
  const v = host.timeline.violation(ctx.start, ctx.end, demand, host.limit);
  if (v === undefined) return undefined;
  const lim = host.limit[v.dim] as number;
  return {
    resource: dimName(host, v.dim),
    rel: lim > 0 ? v.shortBy / lim : Number.POSITIVE_INFINITY,
    shortBy: v.shortBy,
    start: v.start,
    end: v.end,
  };
}
