/** Figures of the packing benchmark: hosts in use over time and the lower bound. */

import { CORE_RESOURCES, get, type Resources } from "../placement/index.js";

export type PackingPolicy = "binpack" | "spread" | "firstfit";

/** A lease as it really ran: on a host, over `[start, end)`. */
export interface Interval {
  readonly hostId: string;
  readonly start: number;
  readonly end: number;
  readonly resources: Resources;
}

/**
 * The peak over time of the number of hosts with at least one running lease. Per host the union of
 * its intervals, then a sweep (ends before starts at the same instant: windows are half-open).
 */
export function peakNonEmptyHosts(intervals: readonly Interval[]): number {
  const byHost = new Map<string, [number, number][]>();
  for (const iv of intervals) {
    let list = byHost.get(iv.hostId);
    if (list === undefined) {
      list = [];
      byHost.set(iv.hostId, list);
    }
    list.push([iv.start, iv.end]);
  }
  const events: [number, number][] = [];
  for (const list of byHost.values()) {
    list.sort((a, b) => a[0] - b[0]);
    let cur: [number, number] | undefined;
    for (const [s, e] of list) {
      if (cur !== undefined && s <= cur[1]) cur[1] = Math.max(cur[1], e);
      else {
        if (cur !== undefined) events.push([cur[0], 1], [cur[1], -1]);
        cur = [s, e];
      }
    }
    if (cur !== undefined) events.push([cur[0], 1], [cur[1], -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let n = 0;
  let peak = 0;
  for (const [, d] of events) {
    n += d;
    if (n > peak) peak = n;
  }
  return peak;
}

export interface LowerBound {
  /** max over time and resources of ⌈total demand / host allocatable⌉. */
  readonly hosts: number;
  /** The resource that sets it. */
  readonly binding: string;
  /** Per resource: max over time of ⌈total demand / host allocatable⌉. */
  readonly perResource: Readonly<Record<string, number>>;
  /** An instant where the bound is attained. */
  readonly at: number;
}

/** The lower bound on hosts of one shape (`alloc`) for the given running leases. */
export function lowerBound(intervals: readonly Interval[], alloc: Resources): LowerBound {
  const events: { t: number; sign: number; r: Resources }[] = [];
  for (const iv of intervals) {
    events.push({ t: iv.start, sign: 1, r: iv.resources });
    events.push({ t: iv.end, sign: -1, r: iv.resources });
  }
  events.sort((a, b) => a.t - b.t || a.sign - b.sign);
  const dims = CORE_RESOURCES.filter((k) => get(alloc, k) > 0);
  const total = new Map<string, number>(dims.map((k) => [k, 0]));
  const perResource: Record<string, number> = Object.fromEntries(dims.map((k) => [k, 0]));
  let hosts = 0;
  let binding = dims[0] ?? "cpuMillis";
  let at = Number.NaN;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as (typeof events)[number];
    for (const k of dims) total.set(k, (total.get(k) ?? 0) + e.sign * get(e.r, k));
    // evaluate once all events at this instant are applied
    const next = events[i + 1];
    if (next !== undefined && next.t === e.t) continue;
    for (const k of dims) {
      // integer demands: round away float noise before the ceiling
      const need = Math.ceil(Math.round(((total.get(k) ?? 0) / get(alloc, k)) * 1e9) / 1e9);
      if (need > (perResource[k] ?? 0)) perResource[k] = need;
      if (need > hosts) {
        hosts = need;
        binding = k;
        at = e.t;
      }
    }
  }
  return { hosts, binding, perResource, at };
}
