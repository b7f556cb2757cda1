/**
 * The indexed search (branch and bound). Exact: it returns the same host as the exhaustive scan
 * (highest total score, ties to the smallest host id), but proves most hosts infeasible or worse
 * from the index's bounds instead of evaluating them.
 *
 * - Resource feasibility: a chunk of hosts whose smallest bucket-minimum usage, at a bucket the
 *   window touches, leaves less than the demand holds no feasible host.
 * - Score bound, binpack: a host's binpack score ≤ κ + Σ w_k·d_k/a_k, κ its all-time peak
 *   utilisation; bins are visited from the top and the search stops at the first bin whose bound
 *   is below the best exact score. Spread: a chunk's score ≤ 1 − Σ w_k·(lower bound of its peak + d_k)/a_k.
 * - Fragmentation and affinity scores are bounded by 1 (affinity by 0 for hosts outside the group,
 *   whose own hosts are evaluated first).
 */

import {
  type Bin,
  binUpper,
  CHUNK_SIZE,
  FREE_BINS,
  type HostClass,
  type HostRecord,
  KAPPA_BINS,
} from "./cluster-index.js";
import {
  affinityFilter,
  type FilterPlugin,
  fitsExactly,
  hostStateFilter,
  labelsFilter,
  type RequestContext,
  resourcesFilter,
  topologySpreadFilter,
  totalScore,
} from "./request-context.js";
import { CORE_DIMS } from "./resources.js";

const EPS = 1e-9;
/** Below this many candidates from a selective constraint, evaluate the candidates directly. */
export const CANDIDATE_LIMIT = 512;

export interface SearchResult {
  readonly host: HostRecord | undefined;
  readonly score: number;
  /** The best host's peak usage over the window. */
  readonly peak: Float64Array;
  readonly evaluated: number;
  /** Hosts attributed to each filter (the first that rejected them, or a proof for a chunk). */
  readonly removed: ReadonlyMap<string, number>;
}

/** Most buckets tested per chunk: all the window touches in the ring, evenly thinned beyond this. */
const MAX_CHUNK_SLOTS = 8;

/** Ring slots to test for a window: every bucket it touches inside the ring (thinned evenly). */
export function sampleSlots(ctx: RequestContext): number[] {
  const index = ctx.index;
  if (Number.isNaN(index.ringBase)) return [];
  const ms = index.bucketMs;
  const a = Math.max(Math.floor(ctx.start / ms), index.ringBase);
  const b = Math.min(Math.ceil(ctx.end / ms) - 1, index.ringBase + index.ringSize - 1);
  if (a > b) return [];
  const n = b - a + 1;
  const out: number[] = [];
  if (n <= MAX_CHUNK_SLOTS) {
    for (let ab = a; ab <= b; ab++) out.push(index.slotOf(ab));
  } else {
    for (let i = 0; i < MAX_CHUNK_SLOTS; i++) {
      out.push(index.slotOf(a + Math.round((i * (n - 1)) / (MAX_CHUNK_SLOTS - 1))));
    }
  }
  return out;
}

interface Candidates {
  readonly hosts: Iterable<HostRecord>;
  readonly size: number;
  readonly filter: string;
}

function postingsUnion(
  ctx: RequestContext,
  key: string,
  values: Iterable<string>,
): Set<HostRecord> {
  const out = new Set<HostRecord>();
  const byValue = ctx.index.labelIndex.get(key);
  if (byValue === undefined) return out;
  for (const v of values) for (const h of byValue.get(v) ?? []) out.add(h);
  return out;
}

function postingsSize(ctx: RequestContext, key: string, values: Iterable<string>): number {
  const byValue = ctx.index.labelIndex.get(key);
  if (byValue === undefined) return 0;
  let n = 0;
  for (const v of values) n += byValue.get(v)?.size ?? 0;
  return n;
}

/** The smallest candidate set a constraint implies, if it is small enough to scan. */
function candidateSet(ctx: RequestContext): Candidates | undefined {
  let best: { size: number; make: () => Candidates } | undefined;
  const offer = (size: number, make: () => Candidates) => {
    if (best === undefined || size < best.size) best = { size, make };
  };
  const g = ctx.group;
  if (g?.spec.hard && g.spec.kind === "affinity") {
    const key = g.spec.topologyKey;
    if (key === undefined && g.hosts.size > 0) {
      offer(g.hosts.size, () => ({
        hosts: g.hosts,
        size: g.hosts.size,
        filter: affinityFilter.name,
      }));
    } else if (key !== undefined && g.domains.size > 0) {
      offer(postingsSize(ctx, key, g.domains.keys()), () => {
        const hosts = postingsUnion(ctx, key, g.domains.keys());
        return { hosts, size: hosts.size, filter: affinityFilter.name };
      });
    }
  }
  const spreadKey = g?.spec.topologyKey;
  const allowed = ctx.spreadAllowed;
  if (allowed !== undefined && spreadKey !== undefined) {
    offer(postingsSize(ctx, spreadKey, allowed), () => {
      const hosts = postingsUnion(ctx, spreadKey, allowed);
      return { hosts, size: hosts.size, filter: topologySpreadFilter.name };
    });
  }
  for (const req of ctx.constraints) {
    let values: readonly string[];
    if (req.op === "=") values = [req.value];
    else if (req.op === "in") values = req.values;
    else continue;
    offer(postingsSize(ctx, req.key, values), () => {
      const hosts = postingsUnion(ctx, req.key, values);
      return { hosts, size: hosts.size, filter: labelsFilter.name };
    });
  }
  const chosen = best as { size: number; make: () => Candidates } | undefined;
  if (chosen === undefined || chosen.size > CANDIDATE_LIMIT) return undefined;
  return chosen.make();
}

class Search {
  readonly peak = new Float64Array(64);
  readonly bestPeak = new Float64Array(64);
  readonly lb = new Float64Array(CORE_DIMS);
  best: HostRecord | undefined;
  bestScore = Number.NEGATIVE_INFINITY;
  evaluated = 0;
  /** Per filter (same order as ctx.filters): hosts attributed to it. */
  readonly counts: Float64Array;
  readonly resourcesAt: number;
  /** Filters other than host state (hosts in bins are READY) and resources, with their positions. */
  readonly checks: { readonly f: FilterPlugin; readonly at: number }[];
  readonly slots: number[];
  /** A few of the slots for the per-host pre-check. */
  readonly hostSlots: number[];
  readonly seen: Set<HostRecord> | undefined;

  constructor(
    readonly ctx: RequestContext,
    trackSeen: boolean,
  ) {
    this.slots = sampleSlots(ctx);
    const n = this.slots.length;
    this.hostSlots =
      n <= 4
        ? this.slots
        : [...new Set([0, n - 1, n >> 1, n >> 2].map((i) => this.slots[i] as number))];
    this.seen = trackSeen ? new Set() : undefined;
    this.counts = new Float64Array(ctx.filters.length);
    this.resourcesAt = ctx.filters.indexOf(resourcesFilter);
    this.checks = ctx.filters
      .map((f, at) => ({ f, at }))
      .filter((c) => c.f !== resourcesFilter && c.f !== hostStateFilter);
  }

  count(name: string, n: number): void {
    const at = this.ctx.filters.findIndex((f) => f.name === name);
    if (at >= 0) this.counts[at] = (this.counts[at] as number) + n;
  }

  removed(): Map<string, number> {
    const m = new Map<string, number>();
    this.ctx.filters.forEach((f, i) => {
      m.set(f.name, this.counts[i] as number);
    });
    return m;
  }

  evaluate(host: HostRecord): void {
    if (this.seen !== undefined) {
      if (this.seen.has(host)) return;
      this.seen.add(host);
    }
    this.evaluated++;
    const ctx = this.ctx;
    const peak = host.dims <= this.peak.length ? this.peak : new Float64Array(host.dims);
    const checks = this.checks;
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i] as (typeof checks)[number];
      if (!c.f.test(ctx, host, peak)) {
        this.counts[c.at] = (this.counts[c.at] as number) + 1;
        return;
      }
    }
    // Quick resource check on the host's own bucket minima, then the exact timeline.
    const d = ctx.demandCore;
    const ring = host.ring;
    const lim = host.limit;
    const slots = this.hostSlots;
    for (let i = 0; i < slots.length; i++) {
      const o = (slots[i] as number) * CORE_DIMS;
      if (
        (ring[o] as number) + (d[0] as number) > (lim[0] as number) ||
        (ring[o + 1] as number) + (d[1] as number) > (lim[1] as number) ||
        (ring[o + 2] as number) + (d[2] as number) > (lim[2] as number) ||
        (ring[o + 3] as number) + (d[3] as number) > (lim[3] as number)
      ) {
        this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
        return;
      }
    }
    if (!fitsExactly(ctx, host, peak)) {
      this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
      return;
    }
    const s = totalScore(ctx, host, peak);
    if (
      s > this.bestScore ||
      (s === this.bestScore && this.best !== undefined && host.id < this.best.id)
    ) {
      this.best = host;
      this.bestScore = s;
      this.bestPeak.set(peak.subarray(0, Math.min(peak.length, this.bestPeak.length)));
    }
  }

  /** Resource feasibility of a chunk at the sampled buckets; fills `lb` with a lower bound of the peak. */
  chunkFeasible(bin: Bin, chunk: number, alloc: Float64Array): boolean {
    const lb = this.lb;
    lb.fill(0);
    const d = this.ctx.demandCore;
    const index = this.ctx.index;
    for (const slot of this.slots) {
      const off = index.chunkMinAt(bin, chunk, slot);
      const cm = bin.chunkMin;
      for (let k = 0; k < CORE_DIMS; k++) {
        const m = cm[off + k] as number;
        if (m + (d[k] as number) > (alloc[k] as number)) return false;
        if (m > (lb[k] as number)) lb[k] = m;
      }
    }
    return true;
  }

  /**
   * Which free-bin columns of the class may hold a feasible host. Columns group hosts by what
   * they have free in the present bucket, so they are only tested for windows starting in it.
   */
  columnsFeasible(cls: HostClass): boolean[] {
    const out: boolean[] = new Array(FREE_BINS).fill(true);
    const index = this.ctx.index;
    const first = this.slots[0];
    if (first === undefined || first !== index.slotOf(index.ringBase)) return out;
    if (Math.floor(this.ctx.start / index.bucketMs) !== index.ringBase) return out;
    const d = this.ctx.demandCore;
    const a = cls.alloc;
    for (let f = 0; f < FREE_BINS; f++) {
      const off = index.columnMinAt(cls, f, first);
      const cm = cls.colMin;
      for (let k = 0; k < CORE_DIMS; k++) {
        if ((cm[off + k] as number) + (d[k] as number) > (a[k] as number)) out[f] = false;
      }
    }
    return out;
  }

  visitChunk(bin: Bin, chunk: number): void {
    const hosts = bin.hosts;
    const end = Math.min(hosts.length, (chunk + 1) * CHUNK_SIZE);
    for (let p = chunk * CHUNK_SIZE; p < end; p++) this.evaluate(hosts[p] as HostRecord);
  }

  chunkSize(bin: Bin, chunk: number): number {
    return Math.min(bin.hosts.length, (chunk + 1) * CHUNK_SIZE) - chunk * CHUNK_SIZE;
  }
}

function classFeasible(ctx: RequestContext, cls: HostClass): boolean {
  const d = ctx.demandCore;
  for (let k = 0; k < CORE_DIMS; k++) if ((d[k] as number) > (cls.alloc[k] as number)) return false;
  return true;
}

/** Σ w_k·d_k/a_k for the class: the demand's share of a host of this class. */
function demandShare(ctx: RequestContext, cls: HostClass): number {
  const wn = ctx.weightsFor(cls);
  const d = ctx.demandCore;
  let s = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const w = wn[k] as number;
    if (w > 0) s += (w * (d[k] as number)) / (cls.alloc[k] as number);
  }
  return s;
}

/** The affinity scorer's best value for a host the search has not yet evaluated. */
function affinityBound(ctx: RequestContext): number {
  const g = ctx.group;
  if (ctx.wAff === 0 || g === undefined) return 0;
  if (g.spec.topologyKey !== undefined) return 1;
  return g.spec.kind === "affinity" ? 0 : 1;
}

export function searchIndexed(ctx: RequestContext): SearchResult {
  const g = ctx.group;
  const softHostAffinity =
    g !== undefined &&
    ctx.wAff > 0 &&
    g.spec.kind === "affinity" &&
    g.spec.topologyKey === undefined;
  const s = new Search(ctx, softHostAffinity);
  const index = ctx.index;
  s.count(hostStateFilter.name, index.size - index.readyCount);
  const finish = (): SearchResult => ({
    host: s.best,
    score: s.bestScore,
    peak: s.bestPeak,
    evaluated: s.evaluated,
    removed: s.removed(),
  });

  const cands = candidateSet(ctx);
  if (cands !== undefined) {
    let ready = 0;
    for (const h of cands.hosts) {
      if (h.state !== "READY") continue;
      ready++;
      s.evaluate(h);
    }
    s.count(cands.filter, index.readyCount - ready);
    return finish();
  }

  // Hosts holding members are the only ones with a soft-affinity bonus: settle them first.
  if (softHostAffinity && g !== undefined) {
    for (const h of g.hosts) if (h.state === "READY") s.evaluate(h);
  }
  const affUb = ctx.wAff * affinityBound(ctx);
  const restUb = ctx.wFrag + affUb;

  if (ctx.fit === "binpack" && ctx.boundsValid) {
    interface Cursor {
      readonly cls: HostClass;
      b: number;
      readonly share: number;
      readonly columns: boolean[];
    }
    const cursors: Cursor[] = [];
    for (const cls of index.classList) {
      if (cls.ready === 0) continue;
      if (!classFeasible(ctx, cls)) {
        s.count(resourcesFilter.name, cls.ready);
        continue;
      }
      cursors.push({
        cls,
        b: KAPPA_BINS - 1,
        share: demandShare(ctx, cls),
        columns: s.columnsFeasible(cls),
      });
    }
    const skipEmpty = (c: Cursor) => {
      const kCount = c.cls.kCount;
      while (c.b >= 0 && kCount[c.b] === 0) c.b--;
    };
    for (;;) {
      let pick: Cursor | undefined;
      let pickUb = Number.NEGATIVE_INFINITY;
      for (const c of cursors) {
        skipEmpty(c);
        if (c.b < 0) continue;
        const fit = Math.min(1, binUpper(c.b) + c.share);
        const ub = ctx.wFit * fit + restUb;
        if (ub > pickUb) {
          pickUb = ub;
          pick = c;
        }
      }
      if (pick === undefined || pickUb + EPS < s.bestScore) break;
      const bins = pick.cls.bins;
      for (let f = FREE_BINS - 1; f >= 0; f--) {
        const bin = bins[pick.b * FREE_BINS + f];
        if (bin === undefined || bin.hosts.length === 0) continue;
        if (pick.columns[f] !== true) {
          s.count(resourcesFilter.name, bin.hosts.length);
          continue;
        }
        const chunks = Math.ceil(bin.hosts.length / CHUNK_SIZE);
        for (let c = 0; c < chunks; c++) {
          if (s.chunkFeasible(bin, c, pick.cls.alloc)) s.visitChunk(bin, c);
          else s.count(resourcesFilter.name, s.chunkSize(bin, c));
        }
      }
      pick.b--;
    }
    return finish();
  }

  if (ctx.fit === "spread") {
    // Bound every chunk from its time buckets, then visit the best bounds first.
    const queue: { bin: Bin; chunk: number; ub: number }[] = [];
    for (const cls of index.classList) {
      if (cls.ready === 0) continue;
      if (!classFeasible(ctx, cls)) {
        s.count(resourcesFilter.name, cls.ready);
        continue;
      }
      const wn = ctx.weightsFor(cls);
      const a = cls.alloc;
      const d = ctx.demandCore;
      const columns = s.columnsFeasible(cls);
      for (const bin of cls.bins) {
        if (bin === undefined || bin.hosts.length === 0) continue;
        if (columns[bin.index % FREE_BINS] !== true) {
          s.count(resourcesFilter.name, bin.hosts.length);
          continue;
        }
        const chunks = Math.ceil(bin.hosts.length / CHUNK_SIZE);
        for (let c = 0; c < chunks; c++) {
          if (!s.chunkFeasible(bin, c, a)) {
            s.count(resourcesFilter.name, s.chunkSize(bin, c));
            continue;
          }
          let util = 0;
          for (let k = 0; k < CORE_DIMS; k++) {
            const w = wn[k] as number;
            if (w === 0) continue;
            const u = ((s.lb[k] as number) + (d[k] as number)) / (a[k] as number);
            util += w * Math.min(u, 1);
          }
          queue.push({ bin, chunk: c, ub: ctx.wFit * (1 - util) + restUb });
        }
      }
    }
    queue.sort((x, y) => y.ub - x.ub);
    for (const q of queue) {
      if (q.ub + EPS < s.bestScore) break;
      s.visitChunk(q.bin, q.chunk);
    }
    return finish();
  }

  // Binpack under resource weights the bins were not built with: no score bound, visit all
  // chunks that may hold a feasible host.
  for (const cls of index.classList) {
    if (cls.ready === 0) continue;
    for (const bin of cls.bins) {
      if (bin === undefined) continue;
      const chunks = Math.ceil(bin.hosts.length / CHUNK_SIZE);
      for (let c = 0; c < chunks; c++) {
        if (s.chunkFeasible(bin, c, cls.alloc)) s.visitChunk(bin, c);
        else s.count(resourcesFilter.name, s.chunkSize(bin, c));
      }
    }
  }
  return finish();
}
