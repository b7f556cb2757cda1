/**
 * Brute-force oracles for the property tests (not part of the public API). Written from the
 * definitions, independently of the timeline, the index's aggregates and the filter plugins: usage
 * at an instant is the sum of the holds covering it, and only instants where a hold starts (or the
 * window starts) need checking.
 */

import type { ClusterIndex, HoldView, HostView } from "./cluster-index.js";
import { get, type Resources, resourceNames } from "./resources.js";
import type { Requirement } from "./selector.js";
import type { PlacementRequest, TimeWindow } from "./types.js";

export interface Shortfall {
  readonly host: string;
  readonly resource: string;
  readonly at: number;
  readonly used: number;
  readonly allocatable: number;
}

/** Usage of one resource at instant t. */
export function usageAt(holds: readonly HoldView[], t: number, name: string): number {
  let sum = 0;
  for (const h of holds) if (h.start <= t && t < h.end) sum += get(h.resources, name);
  return sum;
}

/** The instants where usage over `[start, end)` can peak: start and every hold start inside. */
export function instants(holds: readonly HoldView[], start: number, end: number): number[] {
  const set = new Set<number>([start]);
  for (const h of holds) if (h.start > start && h.start < end) set.add(h.start);
  return [...set].sort((a, b) => a - b);
}

/** Every (host, resource, instant) where committed usage exceeds allocatable. */
export function oversubscriptions(index: ClusterIndex): Shortfall[] {
  const out: Shortfall[] = [];
  for (const host of index.hosts()) {
    const holds = index.holdsOn(host.id);
    const names = resourceNames(host.allocatable, ...holds.map((h) => h.resources));
    for (const h of holds) {
      for (const name of names) {
        const used = usageAt(holds, h.start, name);
        const alloc = get(host.allocatable, name);
        if (used > alloc)
          out.push({ host: host.id, resource: name, at: h.start, used, allocatable: alloc });
      }
    }
  }
  return out;
}

/**
 * Per resource, the worst of usage + demand − allocatable over the window (≤ 0: fits), with the
 * first instant it is short and the end of the last short stretch.
 */
export function shortfalls(
  alloc: Resources,
  holds: readonly HoldView[],
  window: TimeWindow,
  demand: Resources,
): Map<string, { worst: number; from: number; to: number }> {
  const out = new Map<string, { worst: number; from: number; to: number }>();
  const ts = instants(holds, window.start, window.end);
  const cuts = new Set<number>([window.start, window.end]);
  for (const h of holds) {
    if (h.start > window.start && h.start < window.end) cuts.add(h.start);
    if (h.end > window.start && h.end < window.end) cuts.add(h.end);
  }
  const bounds = [...cuts].sort((a, b) => a - b);
  for (const name of resourceNames(alloc, demand, ...holds.map((h) => h.resources))) {
    let worst = Number.NEGATIVE_INFINITY;
    for (const t of ts) {
      worst = Math.max(worst, usageAt(holds, t, name) + get(demand, name) - get(alloc, name));
    }
    let from = Number.NaN;
    let to = Number.NaN;
    for (let i = 0; i + 1 < bounds.length; i++) {
      const s = bounds[i] as number;
      if (usageAt(holds, s, name) + get(demand, name) - get(alloc, name) > 0) {
        if (Number.isNaN(from)) from = s;
        to = bounds[i + 1] as number;
      }
    }
    out.set(name, { worst, from, to });
  }
  return out;
}

/** Whether `demand` fits on a host with these holds over the whole window. */
export function fitsBrute(
  alloc: Resources,
  holds: readonly HoldView[],
  window: TimeWindow,
  demand: Resources,
): boolean {
  for (const s of shortfalls(alloc, holds, window, demand).values()) if (s.worst > 0) return false;
  return true;
}

/** A label matcher written from the selector rules (not the selector module). */
export function labelsMatch(
  reqs: readonly Requirement[],
  labels: Readonly<Record<string, string>>,
): boolean {
  return reqs.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const v = labels[r.key];
    if (r.op === "exists") return has;
    if (r.op === "!exists") return !has;
    if (r.op === "=") return has && v === r.value;
    if (r.op === "!=") return !has || v !== r.value;
    if (r.op === "in") return has && r.values.some((x) => x === v);
    if (r.op === "notin") return !has || r.values.every((x) => x !== v);
    if (!has || v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) return false;
    if (r.op === "<") return Number(v) < r.value;
    return r.op === ">" && Number(v) > r.value;
  });
}

export type FilterName =
  | "host-state"
  | "labels"
  | "affinity"
  | "anti-affinity"
  | "topology-spread"
  | "resources";

/** Which filters reject each host, from the definitions. */
export function bruteFilters(
  index: ClusterIndex,
  req: PlacementRequest,
): { applies: FilterName[]; rejects: Map<string, Set<FilterName>>; hosts: HostView[] } {
  const hosts = index.hosts();
  const holdsOf = new Map(hosts.map((h) => [h.id, index.holdsOn(h.id)]));
  const g = req.group;
  const members: HoldView[] = [];
  if (g !== undefined) {
    for (const holds of holdsOf.values()) {
      for (const h of holds) {
        if (h.group !== g.name) continue;
        if (req.leaseId !== undefined && h.leaseId === req.leaseId) continue;
        if (h.start < req.window.end && req.window.start < h.end) members.push(h);
      }
    }
  }
  const hostById = new Map(hosts.map((h) => [h.id, h]));
  const memberHosts = new Set(members.map((m) => m.hostId));
  const key = g?.topologyKey;
  const domainCount = new Map<string, number>();
  if (key !== undefined) {
    for (const m of members) {
      const v = hostById.get(m.hostId)?.labels[key];
      if (v !== undefined) domainCount.set(v, (domainCount.get(v) ?? 0) + 1);
    }
  }
  let allowed: Set<string> | undefined;
  if (g?.maxSkew !== undefined && key !== undefined) {
    // Spread counts only the domains holding a host the request's constraints allow (Kubernetes'
    // nodeAffinityPolicy: Honor), whatever the host's state (nodeTaintsPolicy: Ignore).
    const domains = new Set<string>();
    for (const h of hosts) {
      const v = h.labels[key];
      if (v !== undefined && labelsMatch(req.constraints ?? [], h.labels)) domains.add(v);
    }
    const min = Math.min(...[...domains].map((d) => domainCount.get(d) ?? 0));
    allowed = new Set(
      [...domains].filter((d) => (domainCount.get(d) ?? 0) + 1 - min <= (g.maxSkew ?? 0)),
    );
  }
  const applies: FilterName[] = ["host-state"];
  if ((req.constraints ?? []).length > 0) applies.push("labels");
  if (g?.hard === true) applies.push(g.kind === "affinity" ? "affinity" : "anti-affinity");
  if (allowed !== undefined) applies.push("topology-spread");
  applies.push("resources");

  const rejects = new Map<string, Set<FilterName>>();
  for (const h of hosts) {
    const r = new Set<FilterName>();
    if (h.state !== "READY") r.add("host-state");
    if (!labelsMatch(req.constraints ?? [], h.labels)) r.add("labels");
    const domain = key === undefined ? undefined : h.labels[key];
    if (g?.hard === true && g.kind === "affinity") {
      const ok =
        key === undefined
          ? memberHosts.size === 0 || memberHosts.has(h.id)
          : domainCount.size === 0 || (domain !== undefined && domainCount.has(domain));
      if (!ok) r.add("affinity");
    }
    if (g?.hard === true && g.kind === "anti-affinity") {
      const ok =
        key === undefined
          ? !memberHosts.has(h.id)
          : domain === undefined || !domainCount.has(domain);
      if (!ok) r.add("anti-affinity");
    }
    if (allowed !== undefined && (domain === undefined || !allowed.has(domain))) {
      r.add("topology-spread");
    }
    if (!fitsBrute(h.allocatable, holdsOf.get(h.id) ?? [], req.window, req.resources)) {
      r.add("resources");
    }
    rejects.set(h.id, r);
  }
  return { applies, rejects, hosts };
}
