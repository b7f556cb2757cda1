/**
 * A placement request compiled against the index: demand vectors, label requirements, the group's
 * members in the window, and the filter and scorer plugins that apply. Filters and scorers are
 * small named plugins (Kubernetes scheduling framework style) shared by the indexed search and the
 * exhaustive scan, so both compute bit-identical answers.
 */

import { type ClusterIndex, demandFor, type HostClass, type HostRecord } from "./cluster-index.js";
import { InvalidPlacementArgumentError } from "./errors.js";
import { type PlacementPolicy, sameResourceWeights, validatePolicy } from "./policy.js";
import {
  CORE_DIMS,
  CORE_RESOURCES,
  extendedNames,
  type Resources,
  validateResources,
} from "./resources.js";
import { matches, type Requirement } from "./selector.js";
import { validateWindow } from "./timeline.js";
import type { FitPolicy, GroupSpec, PlacementRequest } from "./types.js";

/** A feasibility check on one host. Stateless: everything it needs is in the context. */
export interface FilterPlugin {
  readonly name: string;
  /** Whether the host passes. `peak` is scratch space of at least `host.dims` entries. */
  test(ctx: RequestContext, host: HostRecord, peak: Float64Array): boolean;
}

/** A preference in [0, 1] on one feasible host; `peak` holds its usage peak over the window. */
export interface ScorerPlugin {
  readonly name: string;
  score(ctx: RequestContext, host: HostRecord, peak: Float64Array): number;
}

export interface GroupMembers {
  readonly spec: GroupSpec;
  /** Hosts holding a member whose window overlaps the request's. */
  readonly hosts: ReadonlySet<HostRecord>;
  /** With a topologyKey: the domains (label values) of those hosts, with member counts. */
  readonly domains: ReadonlyMap<string, number>;
}

export interface RequestContext {
  readonly index: ClusterIndex;
  readonly request: PlacementRequest;
  readonly start: number;
  readonly end: number;
  readonly demandCore: Float64Array;
  readonly extNames: readonly string[];
  readonly constraints: readonly Requirement[];
  readonly group: GroupMembers | undefined;
  /** Topology spread: domains a new member may go to. */
  readonly spreadAllowed: ReadonlySet<string> | undefined;
  readonly fit: FitPolicy;
  readonly policy: PlacementPolicy;
  /** Normalised scorer weights (sum 1 over active scorers). */
  readonly wFit: number;
  readonly wFrag: number;
  readonly wAff: number;
  readonly commonSizes: readonly Float64Array[];
  /** Whether the index's κ bins use this policy's resource weights (else the search scans). */
  readonly boundsValid: boolean;
  readonly filters: readonly FilterPlugin[];
  readonly scorers: readonly ScorerPlugin[];
  /** Per-class normalised resource weights under this policy. */
  readonly weightsFor: (cls: HostClass) => Float64Array;
}

// ---- filters ------------------------------------------------------------------------------

export const hostStateFilter: FilterPlugin = {
  name: "host-state",
  test: (_ctx, host) => host.state === "READY",
};

export const labelsFilter: FilterPlugin = {
  name: "labels",
  test: (ctx, host) => matches(ctx.constraints, host.labels),
};

function domainOf(ctx: RequestContext, host: HostRecord): string | undefined {
  const key = ctx.group?.spec.topologyKey;
  return key === undefined ? undefined : host.labels.get(key);
}

export const affinityFilter: FilterPlugin = {
  name: "affinity",
  test: (ctx, host) => {
    const g = ctx.group;
    if (g === undefined) return true;
    if (g.spec.topologyKey === undefined) return g.hosts.size === 0 || g.hosts.has(host);
    if (g.domains.size === 0) return true;
    const v = domainOf(ctx, host);
    return v !== undefined && g.domains.has(v);
  },
};

export const antiAffinityFilter: FilterPlugin = {
  name: "anti-affinity",
  test: (ctx, host) => {
    const g = ctx.group;
    if (g === undefined) return true;
    if (g.spec.topologyKey === undefined) return !g.hosts.has(host);
    const v = domainOf(ctx, host);
    return v === undefined || !g.domains.has(v);
  },
};

export const topologySpreadFilter: FilterPlugin = {
  name: "topology-spread",
  test: (ctx, host) => {
    const allowed = ctx.spreadAllowed;
    if (allowed === undefined) return true;
    const v = domainOf(ctx, host);
    return v !== undefined && allowed.has(v);
  },
};

/** Exact fit over the whole window; leaves the host's peak over the window in `peak`. */
export const resourcesFilter: FilterPlugin = {
  name: "resources",
  test: (ctx, host, peak) => fitsExactly(ctx, host, peak),
};

export function fitsExactly(ctx: RequestContext, host: HostRecord, peak: Float64Array): boolean {
  const lim = host.limit;
  const d = ctx.demandCore;
  if (ctx.extNames.length === 0) {
    host.timeline.peak(ctx.start, ctx.end, peak);
    for (let k = 0; k < CORE_DIMS; k++) {
      if ((peak[k] as number) + (d[k] as number) > (lim[k] as number)) return false;
    }
    return true;
  }
  const demand = demandFor(host, ctx.request.resources);
  if (typeof demand === "string") {
    host.timeline.peak(ctx.start, ctx.end, peak);
    return false;
  }
  host.timeline.peak(ctx.start, ctx.end, peak);
  for (let k = 0; k < host.dims; k++) {
    if ((peak[k] as number) + (demand[k] as number) > (lim[k] as number)) return false;
  }
  return true;
}

// ---- scorers ------------------------------------------------------------------------------

/** Weighted utilisation after placement, over the window's peak: Σ w_k·min(1, (peak_k + d_k)/a_k). */
export function utilisationAfter(
  ctx: RequestContext,
  host: HostRecord,
  peak: Float64Array,
): number {
  // (the class is keyed on the host's core limits)
  return classUtilisationAfter(ctx, host.cls, peak, 0);
}

/**
 * `utilisationAfter` for a host of class `cls` whose peak is `peak[off .. off + 4)`: the search's
 * bounds call it with bounds of the peak, so a bound and a score come from the same operations
 * (equal inputs give bit-identical results; larger usage never a larger score).
 */
export function classUtilisationAfter(
  ctx: RequestContext,
  cls: HostClass,
  peak: Float64Array,
  off: number,
): number {
  const wn = ctx.weightsFor(cls);
  const a = cls.alloc;
  const d = ctx.demandCore;
  let util = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const w = wn[k] as number;
    if (w === 0) continue;
    const u = ((peak[off + k] as number) + (d[k] as number)) / (a[k] as number);
    util += w * Math.min(u, 1);
  }
  return util;
}

/** Best fit: prefer the host left fullest (in every weighted dimension) after placement. */
export const binpackScorer: ScorerPlugin = {
  name: "binpack",
  score: (ctx, host, peak) => utilisationAfter(ctx, host, peak),
};

/** Least loaded: prefer the host left emptiest after placement. */
export const spreadScorer: ScorerPlugin = {
  name: "spread",
  score: (ctx, host, peak) => 1 - utilisationAfter(ctx, host, peak),
};

/**
 * 1 unless the remainder after placement is non-empty and no common VM size fits in it; then
 * 1 − (weighted fraction of the host stranded).
 */
export const fragmentationScorer: ScorerPlugin = {
  name: "fragmentation",
  score: (ctx, host, peak) => {
    const a = host.limit;
    const d = ctx.demandCore;
    const r0 = (a[0] as number) - (peak[0] as number) - (d[0] as number);
    const r1 = (a[1] as number) - (peak[1] as number) - (d[1] as number);
    const r2 = (a[2] as number) - (peak[2] as number) - (d[2] as number);
    const r3 = (a[3] as number) - (peak[3] as number) - (d[3] as number);
    for (const c of ctx.commonSizes) {
      if (
        (c[0] as number) <= r0 &&
        (c[1] as number) <= r1 &&
        (c[2] as number) <= r2 &&
        (c[3] as number) <= r3
      ) {
        return 1;
      }
    }
    const wn = ctx.weightsFor(host.cls);
    // summed first, in dimension order, then subtracted: the same rounding as ever
    const sum =
      stranded(wn, a, 0, r0) +
      stranded(wn, a, 1, r1) +
      stranded(wn, a, 2, r2) +
      stranded(wn, a, 3, r3);
    return 1 - sum;
  },
};

/** The weighted fraction of dimension k left over (0 if the remainder r is not positive). */
function stranded(wn: Float64Array, a: Float64Array, k: number, r: number): number {
  const w = wn[k] as number;
  return w > 0 && r > 0 ? (w * r) / (a[k] as number) : 0;
}

/** Soft affinity: 1 on a host (or domain) with members; soft anti-affinity: 1 on one without. */
export const affinityScorer: ScorerPlugin = {
  name: "affinity",
  score: (ctx, host) => {
    const g = ctx.group;
    if (g === undefined) return 0;
    let withMembers: boolean;
    if (g.spec.topologyKey === undefined) withMembers = g.hosts.has(host);
    else {
      const v = host.labels.get(g.spec.topologyKey);
      withMembers = v !== undefined && g.domains.has(v);
    }
    return g.spec.kind === "affinity" ? (withMembers ? 1 : 0) : withMembers ? 0 : 1;
  },
};

/** The weighted total; one function for the search and the scan so scores are bit-identical. */
export function totalScore(ctx: RequestContext, host: HostRecord, peak: Float64Array): number {
  const util = utilisationAfter(ctx, host, peak);
  let total = ctx.wFit * (ctx.fit === "binpack" ? util : 1 - util);
  if (ctx.wFrag > 0) total += ctx.wFrag * fragmentationScorer.score(ctx, host, peak);
  if (ctx.wAff > 0) total += ctx.wAff * affinityScorer.score(ctx, host, peak);
  return total;
}

export function scoreBreakdown(
  ctx: RequestContext,
  host: HostRecord,
  peak: Float64Array,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of ctx.scorers) out[s.name] = s.score(ctx, host, peak);
  return out;
}

// ---- compile ------------------------------------------------------------------------------

function validateGroup(g: GroupSpec): void {
  if (g.name.length === 0)
    throw new InvalidPlacementArgumentError("group.name", "must not be empty");
  if (g.kind !== "affinity" && g.kind !== "anti-affinity") {
    throw new InvalidPlacementArgumentError("group.kind", "must be affinity or anti-affinity");
  }
  if (g.maxSkew !== undefined) {
    if (g.topologyKey === undefined) {
      throw new InvalidPlacementArgumentError("group.maxSkew", "needs a topologyKey");
    }
    if (!Number.isInteger(g.maxSkew) || g.maxSkew < 1) {
      throw new InvalidPlacementArgumentError("group.maxSkew", "must be an integer ≥ 1");
    }
  }
}

function coreVector(r: Resources): Float64Array {
  return Float64Array.of(r.cpuMillis, r.memoryMib, r.diskGib, r.gpus);
}

/** Policies already validated, with their common sizes as vectors (policies are immutable data). */
const compiledPolicies = new WeakMap<PlacementPolicy, readonly Float64Array[]>();

function policySizes(policy: PlacementPolicy): readonly Float64Array[] {
  let sizes = compiledPolicies.get(policy);
  if (sizes === undefined) {
    validatePolicy(policy);
    sizes = policy.commonSizes.map(coreVector);
    if (Object.isFrozen(policy) && Object.isFrozen(policy.commonSizes)) {
      compiledPolicies.set(policy, sizes);
    }
  }
  return sizes;
}

/**
 * Topology spread: the domains (values of `key`) that count toward the skew minimum and may take
 * the new member. As Kubernetes' `nodeAffinityPolicy: Honor`: only domains with at least one host
 * the request's label constraints allow; a domain the lease can never go to would otherwise pin the
 * minimum at 0 and cap every other domain at `maxSkew` members. Host state is not looked at (as
 * `nodeTaintsPolicy: Ignore`, the Kubernetes default): a zone whose hosts are all cordoned or down
 * still counts, so members don't pile into the other zones while it is out, and the allowed set
 * doesn't change with host state. Members are counted per domain whatever their own host's labels.
 */
function spreadDomains(
  index: ClusterIndex,
  key: string,
  constraints: readonly Requirement[],
): string[] {
  const byValue = index.labelIndex.get(key);
  if (byValue === undefined) return [];
  if (constraints.length === 0) return [...byValue.keys()];
  // Requirements on the topology key itself depend only on the domain's value: decide them once
  // per domain; only the others need a host of the domain that matches them.
  const onKey = constraints.filter((r) => r.key === key);
  const rest = constraints.filter((r) => r.key !== key);
  const out: string[] = [];
  for (const [v, hosts] of byValue) {
    if (onKey.length > 0 && !matches(onKey, new Map([[key, v]]))) continue;
    if (rest.length === 0) {
      out.push(v);
      continue;
    }
    for (const h of hosts) {
      if (matches(rest, h.labels)) {
        out.push(v);
        break;
      }
    }
  }
  return out;
}

/**
 * The filter and scorer lists, one frozen array per shape (a request's lists are one of a few
 * shapes): a decision allocates none, and the search keeps its plan per list (see search.ts).
 */
const filterLists: (readonly FilterPlugin[] | undefined)[] = [];
const scorerLists: (readonly ScorerPlugin[] | undefined)[] = [];

function filterList(
  labels: boolean,
  hardGroup: GroupSpec["kind"] | undefined,
  spread: boolean,
): readonly FilterPlugin[] {
  const key =
    (labels ? 1 : 0) |
    (hardGroup === "affinity" ? 2 : hardGroup === undefined ? 0 : 4) |
    (spread ? 8 : 0);
  let list = filterLists[key];
  if (list === undefined) {
    const filters: FilterPlugin[] = [hostStateFilter];
    if (labels) filters.push(labelsFilter);
    if (hardGroup !== undefined)
      filters.push(hardGroup === "affinity" ? affinityFilter : antiAffinityFilter);
    if (spread) filters.push(topologySpreadFilter);
    filters.push(resourcesFilter);
    list = Object.freeze(filters);
    filterLists[key] = list;
  }
  return list;
}

function scorerList(
  fit: FitPolicy,
  withFit: boolean,
  withFragmentation: boolean,
  withAffinity: boolean,
): readonly ScorerPlugin[] {
  const key =
    (fit === "binpack" ? 1 : 0) |
    (withFit ? 2 : 0) |
    (withFragmentation ? 4 : 0) |
    (withAffinity ? 8 : 0);
  let list = scorerLists[key];
  if (list === undefined) {
    const scorers: ScorerPlugin[] = [];
    if (withFit) scorers.push(fit === "binpack" ? binpackScorer : spreadScorer);
    if (withFragmentation) scorers.push(fragmentationScorer);
    if (withAffinity) scorers.push(affinityScorer);
    list = Object.freeze(scorers);
    scorerLists[key] = list;
  }
  return list;
}

export function compileRequest(
  index: ClusterIndex,
  request: PlacementRequest,
  policy: PlacementPolicy,
): RequestContext {
  const commonSizes = policySizes(policy);
  validateWindow(request.window.start, request.window.end, "window");
  validateResources(request.resources);
  const { start, end } = request.window;
  const group = request.group;
  let members: GroupMembers | undefined;
  let spreadAllowed: Set<string> | undefined;
  if (group !== undefined) {
    validateGroup(group);
    const hosts = new Set<HostRecord>();
    const domains = new Map<string, number>();
    for (const h of index.groups.get(group.name) ?? []) {
      if (request.leaseId !== undefined && h.leaseId === request.leaseId) continue;
      if (!(h.start < end && start < h.end)) continue;
      hosts.add(h.host);
      if (group.topologyKey !== undefined) {
        const v = h.host.labels.get(group.topologyKey);
        if (v !== undefined) domains.set(v, (domains.get(v) ?? 0) + 1);
      }
    }
    members = { spec: group, hosts, domains };
    if (group.maxSkew !== undefined && group.topologyKey !== undefined) {
      const eligible = spreadDomains(index, group.topologyKey, request.constraints ?? []);
      let min = Number.POSITIVE_INFINITY;
      for (const v of eligible) min = Math.min(min, domains.get(v) ?? 0);
      spreadAllowed = new Set(
        eligible.filter((v) => (domains.get(v) ?? 0) + 1 - min <= (group.maxSkew ?? 0)),
      );
    }
  }
  const fit = request.policy ?? policy.fit;
  const soft = group !== undefined && !group.hard;
  const wTotal =
    policy.weights.fit + policy.weights.fragmentation + (soft ? policy.weights.affinity : 0);
  const norm = wTotal > 0 ? wTotal : 1;
  const wFit = wTotal > 0 ? policy.weights.fit / norm : 1;
  const wFrag = policy.weights.fragmentation / norm;
  const wAff = soft ? policy.weights.affinity / norm : 0;

  const constraints = request.constraints ?? [];
  const filters = filterList(
    constraints.length > 0,
    group?.hard === true ? group.kind : undefined,
    spreadAllowed !== undefined,
  );
  const scorers = scorerList(fit, wFit > 0, wFrag > 0, wAff > 0);

  const boundsValid = sameResourceWeights(policy.resourceWeights, index.resourceWeights);
  const cache = new Map<HostClass, Float64Array>();
  const weightsFor = boundsValid
    ? (cls: HostClass) => cls.wn
    : (cls: HostClass) => {
        let w = cache.get(cls);
        if (w === undefined) {
          w = new Float64Array(CORE_DIMS);
          let total = 0;
          CORE_RESOURCES.forEach((name, k) => {
            if ((cls.alloc[k] as number) > 0) total += policy.resourceWeights[name];
          });
          CORE_RESOURCES.forEach((name, k) => {
            if ((cls.alloc[k] as number) > 0 && total > 0)
              (w as Float64Array)[k] = policy.resourceWeights[name] / total;
          });
          cache.set(cls, w);
        }
        return w;
      };

  return {
    index,
    request,
    start,
    end,
    demandCore: coreVector(request.resources),
    extNames: extendedNames(request.resources),
    constraints,
    group: members,
    spreadAllowed,
    fit,
    policy,
    wFit,
    wFrag,
    wAff,
    commonSizes,
    boundsValid,
    filters,
    scorers,
    weightsFor,
  };
}

/** Whether the host passes every filter but resources (used by explanations and preemption). */
export function passesNonResourceFilters(
  ctx: RequestContext,
  host: HostRecord,
  scratch: Float64Array,
): boolean {
  for (const f of ctx.filters) {
    if (f === resourcesFilter) continue;
    if (!f.test(ctx, host, scratch)) return false;
  }
  return true;
}
