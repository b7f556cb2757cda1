/**
 * The indexed search (branch and bound). Exact: it returns the same host as the exhaustive scan
 * (highest total score, ties to the smallest host id), but proves most hosts infeasible or worse
 * from the index's bounds instead of evaluating them.
 *
 * - Resource feasibility: a chunk of hosts whose smallest bucket-minimum usage, at a bucket the
 *   window touches, or whose smallest usage at the window's start, leaves less than the demand
 *   holds no feasible host.
 * - Score bound, binpack: per κ bin, κ + Σ w_k·d_k/a_k (κ the all-time peak utilisation); bins are
 *   visited from the top and the search stops at the first bin whose bound is below the best exact
 *   score. Per chunk, the time-aware bound from its bucket maxima over the window only, with the
 *   fragmentation term folded in exactly when no host of the chunk can keep a common size free
 *   (see `chunkUb`). Spread: a chunk's score ≤ 1 − Σ w_k·(lower bound of its peak + d_k)/a_k.
 * - Affinity scores are bounded by 1 (by 0 for hosts outside the group, whose own hosts are
 *   evaluated first).
 * - No-fit explanations (`explainNoFit`) count every filter on every host from the same bounds.
 */

import {
  type Bin,
  BLOCK_BUCKETS,
  BLOCK_REACH,
  BLOCK_VARIANTS,
  binUpper,
  CHUNK_SIZE,
  FINE_COLUMNS,
  FINE_FREE_EDGES,
  FINE_KAPPA,
  FINE_LEVELS,
  FINE_MASK_WORDS,
  FREE_BINS,
  fineUpper,
  HOT_PEAK,
  HOT_POOL_SHIFT,
  type HostClass,
  type HostRecord,
  hotAt,
  KAPPA_BINS,
  RUNG_BUCKETS,
  RUNGS,
  usageBelowLevel,
} from "./cluster-index.js";
import { violationOf } from "./exhaustive.js";
import { MATCH_NO, MATCH_UNKNOWN, MATCH_YES } from "./label-matches.js";
import {
  affinityFilter,
  affinityScorer,
  antiAffinityFilter,
  classUtilisationAfter,
  type FilterPlugin,
  fitsExactly,
  hostStateFilter,
  labelsFilter,
  type RequestContext,
  resourcesFilter,
  topologySpreadFilter,
  totalScore,
} from "./request-context.js";
import { CORE_DIMS, CORE_RESOURCES } from "./resources.js";
import type { BindingResource } from "./types.js";
import { SUMMARY_STEPS } from "./usage-summary.js";

const EPS = 1e-9;
/** Chunks smaller than this skip the every-bucket score bound (see `chunkUb`). */
const MIN_BOUND_CHUNK = 8;
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

/**
 * Every ring slot the window touches, in order, and whether the ring covers the whole window (only
 * then do the bucket maxima bound the window's peak).
 */
export function windowSlots(ctx: RequestContext): { slots: Int32Array; covered: boolean } {
  const index = ctx.index;
  if (Number.isNaN(index.ringBase)) return { slots: new Int32Array(0), covered: false };
  const ms = index.bucketMs;
  const first = Math.floor(ctx.start / ms);
  const last = Math.ceil(ctx.end / ms) - 1;
  const a = Math.max(first, index.ringBase);
  const b = Math.min(last, index.ringBase + index.ringSize - 1);
  if (a > b) return { slots: new Int32Array(0), covered: false };
  const out = new Int32Array(b - a + 1);
  for (let ab = a; ab <= b; ab++) out[ab - a] = index.slotOf(ab);
  return { slots: out, covered: a === first && b === last };
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

interface FilterPlan {
  readonly resourcesAt: number;
  /** Filters other than host state (hosts in cells are READY) and resources, with their positions. */
  readonly checks: readonly { readonly f: FilterPlugin; readonly at: number }[];
}

/** Filter plans by filter list: a request's list is one of a few shapes, made per decision. */
const filterPlans = new WeakMap<readonly FilterPlugin[], FilterPlan>();

function filterPlan(filters: readonly FilterPlugin[]): FilterPlan {
  let plan = filterPlans.get(filters);
  if (plan === undefined) {
    plan = {
      resourcesAt: filters.indexOf(resourcesFilter),
      checks: filters
        .map((f, at) => ({ f, at }))
        .filter((c) => c.f !== resourcesFilter && c.f !== hostStateFilter),
    };
    filterPlans.set(filters, plan);
  }
  return plan;
}

/**
 * Scratch of the search (one runs at a time; nothing in it calls back into another): typed arrays
 * of more than 64 bytes are allocated outside V8's heap, which costs more than a small decision.
 */
const SCRATCH_PEAK = new Float64Array(64);
const SCRATCH_LB = new Float64Array(CORE_DIMS);
const SCRATCH_UB = new Float64Array(CORE_DIMS);
const SCRATCH_WLB = new Float64Array(CORE_DIMS);
const SCRATCH_WUB = new Float64Array(CORE_DIMS);

/** A filter tested by host number, without the host's record (see `Search.visit`). */
interface NumberCheck {
  /** The filter's position in the request's filters. */
  readonly at: number;
  passes(num: number): boolean;
}

/** Label constraints, from the index's bytes for the selector (tested on the record once). */
class LabelCheck implements NumberCheck {
  private readonly bytes: Uint8Array;
  constructor(
    private readonly ctx: RequestContext,
    readonly at: number,
  ) {
    this.bytes = ctx.index.labelMatches.bytesFor(ctx.constraints, ctx.index.hostAt.length);
  }

  passes(num: number): boolean {
    const m = this.bytes[num] as number;
    if (m !== MATCH_UNKNOWN) return m === MATCH_YES;
    const host = this.ctx.index.hostAt[num] as HostRecord;
    const ok = labelsFilter.test(this.ctx, host, SCRATCH_PEAK);
    this.bytes[num] = ok ? MATCH_YES : MATCH_NO;
    return ok;
  }
}

/** Hard anti-affinity to hosts (no topology key): `!g.hosts.has(host)`, by number. */
class MemberCheck implements NumberCheck {
  private readonly nums: ReadonlySet<number>;
  constructor(
    hosts: ReadonlySet<HostRecord>,
    readonly at: number,
  ) {
    this.nums = hostNumbers(hosts);
  }

  passes(num: number): boolean {
    return !this.nums.has(num);
  }
}

function hostNumbers(hosts: ReadonlySet<HostRecord>): ReadonlySet<number> {
  return new Set([...hosts].map((h) => h.num));
}

/** The filter as a NumberCheck, or undefined if it needs the host's record. */
function numberCheck(ctx: RequestContext, f: FilterPlugin, at: number): NumberCheck | undefined {
  if (f === labelsFilter) return new LabelCheck(ctx, at);
  const g = ctx.group;
  if (f === antiAffinityFilter && g !== undefined && g.spec.topologyKey === undefined) {
    return new MemberCheck(g.hosts, at);
  }
  return undefined;
}

class Search {
  readonly peak = SCRATCH_PEAK;
  /** The best host's peak over the window (its dims; grown for hosts with extended resources). */
  bestPeak = new Float64Array(CORE_DIMS);
  readonly lb = SCRATCH_LB;
  best: HostRecord | undefined;
  bestScore = Number.NEGATIVE_INFINITY;
  evaluated = 0;
  /** Per filter (same order as ctx.filters): hosts attributed to it. */
  readonly counts: Float64Array;
  readonly resourcesAt: number;
  readonly checks: FilterPlan["checks"];
  /** Host numbers already evaluated (the members of a soft host affinity group, first). */
  readonly seen: Set<number> | undefined;
  /** The chunk path's slots, made on first use (the cell walks do not read them). */
  private sampled: number[] | undefined;
  private touched: { slots: Int32Array; covered: boolean } | undefined;
  /** Scratch: per core dim, an upper bound of a chunk's peak over the window. */
  readonly ub = SCRATCH_UB;
  /**
   * Where a host's bounds of the window's peak are read (see `windowBounds`), when the bucket
   * ring covers the window: ring slots of the buckets at its ends (with whether the window covers
   * the whole bucket) and block slots of the blocks it covers whole in between.
   */
  readonly plan: WindowPlan;
  readonly planned: boolean;
  readonly hourSlots: Int32Array;
  readonly hourFull: Uint8Array;
  /** How many of `hourSlots` are at the window's start (the rest are at its end). */
  readonly headHours: number;
  readonly blockSlots: Int32Array;
  /** The window's absolute start block (when planned). */
  readonly startBlock: number;
  /** Whether `evaluate` may skip hosts on their κ alone (binpack under the index's weights). */
  readonly kappaPrune: boolean;
  /** Whether `visit` screens by the usage at the start first (spread, windows from the present). */
  private readonly spreadAtStart: boolean;
  /** The demand's share of a host of class `shareOf` (a one-entry cache). */
  private shareOf: HostClass | undefined;
  private share = 0;
  /** The score of an empty host of class `emptyOf` (a one-entry cache; see `offerEmpty`). */
  private emptyOf: HostClass | undefined;
  private emptyScore = 0;
  /** Scratch: lower and upper bounds of a host's peak over the window (core dims). */
  readonly wlb = SCRATCH_WLB;
  readonly wub = SCRATCH_WUB;
  /**
   * Whether `evaluate` screens hosts from the usage summary first: windows inside the ring
   * without extended resources. Windows from the present too: the hosts their rung cells offer
   * have room at the start (the column says so) and most of those a walk rules out are full later
   * in the window (reservations), which the summary's one region shows for less than the host's
   * bucket arrays.
   */
  readonly screened: boolean;
  /**
   * Whether `visit` may settle a host from arrays kept by number before reading its record:
   * nothing `evaluate` does before its screens needs the record (no filter to count first but
   * hard anti-affinity to hosts, no affinity, no extended resource).
   */
  readonly byNumber: boolean;
  /**
   * The filters `visit` applies by host number, in the filters' order (empty unless `byNumber`):
   * label constraints and hard anti-affinity to hosts (no topology key).
   */
  private readonly numberChecks: readonly NumberCheck[];
  /** Whether every empty READY host of a class passes the filters (see `visit`). */
  private readonly emptiesAlike: boolean;
  /**
   * Soft affinity to hosts: the numbers of the hosts holding members, and whether the lease is
   * drawn to them (affinity) or away (anti-affinity). See `affinityAt`.
   */
  private readonly affinityNums: ReadonlySet<number> | undefined;
  private readonly towardMembers: boolean = false;
  /**
   * Spread without affinity: the class whose most a host can score the best host scores (an
   * empty host, or one with no usage over the window), and that host's id rank. No host of the
   * class can beat it, only tie, and a tie goes to the smaller id: `visit` drops the class's
   * hosts of a larger rank without their records (see `noteBest`).
   */
  private tieCls: HostClass | undefined;
  private tieRank = 0;
  private ranks: Int32Array | undefined;
  /** Classes whose empty hosts `visit` has offered (by the one with the smallest id). */
  private readonly emptiesOffered: HostClass[] = [];
  /** The largest summary byte per core dim with room for the demand, for class `roomOf`. */
  private roomOf: HostClass | undefined;
  private readonly room = new Int32Array(CORE_DIMS);

  constructor(
    readonly ctx: RequestContext,
    trackSeen: boolean,
  ) {
    this.seen = trackSeen ? new Set() : undefined;
    this.kappaPrune = ctx.fit === "binpack" && ctx.boundsValid;
    // (a start within the present bucket: the hot words hold the piece containing the present)
    this.spreadAtStart =
      ctx.fit === "spread" && Math.abs(ctx.start - ctx.index.now) <= ctx.index.bucketMs;
    const plan = planWindow(ctx);
    this.plan = plan;
    this.planned = plan.planned;
    this.startBlock = plan.startBlock;
    this.hourSlots = plan.hourSlots;
    this.hourFull = plan.hourFull;
    this.headHours = plan.headHours;
    this.blockSlots = plan.blockSlots;
    this.screened = this.planned && ctx.extNames.length === 0;
    this.counts = new Float64Array(ctx.filters.length);
    const filters = filterPlan(ctx.filters);
    this.resourcesAt = filters.resourcesAt;
    this.checks = filters.checks;
    const numberChecks = this.checks.map((c) => numberCheck(ctx, c.f, c.at));
    // soft affinity or anti-affinity to hosts (no topology key) scores by number too
    const g = ctx.group;
    if (ctx.wAff > 0 && g !== undefined && g.spec.topologyKey === undefined) {
      this.affinityNums = hostNumbers(g.hosts);
      this.towardMembers = g.spec.kind === "affinity";
    }
    this.byNumber =
      numberChecks.every((c) => c !== undefined) &&
      (ctx.wAff === 0 || this.affinityNums !== undefined) &&
      ctx.extNames.length === 0;
    this.numberChecks = this.byNumber ? (numberChecks as NumberCheck[]) : [];
    // (hosts holding members are not empty; labels differ from host to host)
    this.emptiesAlike = this.numberChecks.every((c) => c instanceof MemberCheck);
  }

  /** Sampled ring slots of the window (see `sampleSlots`). */
  get slots(): number[] {
    this.sampled ??= sampleSlots(this.ctx);
    return this.sampled;
  }

  /** Every slot the window touches (see `windowSlots`). */
  get allSlots(): Int32Array {
    this.touched ??= windowSlots(this.ctx);
    return this.touched.slots;
  }

  /** Whether the ring covers the whole window. */
  get covered(): boolean {
    this.touched ??= windowSlots(this.ctx);
    return this.touched.covered;
  }

  countResources(n: number): void {
    this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + n;
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
      if (this.seen.has(host.num)) return;
      this.seen.add(host.num);
    }
    if (this.prunedOnKappa(host.cls, host.kappa)) return;
    this.screen(host, host.kappa);
  }

  /**
   * Whether a host of class `cls` with κ `kappa` (utilisation at its all-time peak) cannot beat
   * the best: κ + the demand's share bounds the fit score, and every other scorer is taken at its
   * maximum.
   */
  private prunedOnKappa(cls: HostClass, kappa: number): boolean {
    if (!this.kappaPrune || this.best === undefined) return false;
    const ctx = this.ctx;
    if (cls !== this.shareOf) {
      this.shareOf = cls;
      this.share = demandShare(ctx, cls);
    }
    const ub = ctx.wFit * Math.min(1, kappa + this.share) + ctx.wFrag + ctx.wAff;
    return ub + EPS < this.bestScore;
  }

  /** `evaluate` after the κ prune (`kappa`: the host's). */
  private screen(host: HostRecord, kappa: number): void {
    const ctx = this.ctx;
    this.evaluated++;
    if (this.byNumber) {
      if (this.failsByNumber(host.num)) return;
    } else {
      const peak = this.peakFor(host);
      const checks = this.checks;
      for (let i = 0; i < checks.length; i++) {
        const c = checks[i] as (typeof checks)[number];
        if (!c.f.test(ctx, host, peak)) {
          this.counts[c.at] = (this.counts[c.at] as number) + 1;
          return;
        }
      }
    }
    this.screenPassed(host, kappa);
  }

  /** Whether a `numberChecks` filter rules the host out (counted on the first that does). */
  private failsByNumber(num: number): boolean {
    const checks = this.numberChecks;
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i] as NumberCheck;
      if (!c.passes(num)) {
        this.counts[c.at] = (this.counts[c.at] as number) + 1;
        return true;
      }
    }
    return false;
  }

  /** `screen` after the filters other than resources (the host passed them). */
  private screenPassed(host: HostRecord, kappa: number): void {
    const ctx = this.ctx;
    const peak = this.peakFor(host);
    // κ first: it is on the host's record, read above; the timeline is another object (a cache
    // miss on most hosts a search visits)
    if (
      kappa === 0 &&
      host.timeline.isEmpty() &&
      host.dims === CORE_DIMS &&
      ctx.extNames.length === 0
    ) {
      this.offerEmpty(host);
      return;
    }
    // Screen the host from its own cached bounds before reading its timeline: its all-time peak
    // bounds the window's peak (and so the binpack score) from above, its usage at the window's
    // start bounds it from below (and so rules out hosts too full at the start).
    const affinity = ctx.wAff > 0 ? ctx.wAff * affinityScorer.score(ctx, host, peak) : 0;
    if (this.screened && this.settledBySummary(host.cls, host.num, affinity)) return;
    this.afterScreen(host.num, host.cls, affinity);
  }

  /**
   * A host of a block or rung cell, by number (see `HostClass.blockCells`), decided as `evaluate`
   * decides it, but from the index's arrays kept by number for as long as they settle it: κ
   * (`kappaAt`), the summary words (windows `screened`), the usage at the start and the all-time
   * peak (`hotPools`). Only a host they leave open is read: most hosts a walk visits are settled
   * so, and a record and its arrays are cache misses each.
   */
  visit(num: number, cls: HostClass): void {
    const ctx = this.ctx;
    const index = ctx.index;
    // (a walk meets a host once: only the hosts evaluated before it can have been seen)
    if (this.seen?.has(num) === true) return;
    const kappa = index.kappaAt[num] as number;
    if (this.prunedOnKappa(cls, kappa)) return;
    if (cls === this.tieCls && ((this.ranks as Int32Array)[num] as number) > this.tieRank) return;
    if (kappa === 0 && this.byNumber && index.emptyAt[num] === 1 && this.emptiesAlike) {
      // Every empty READY host of the class is filed in this slot, free everywhere (so in a
      // feasible column), in cells the walk reaches whenever an empty host can win (κ 0, or a
      // κ left high by the clock), and scores the same: the first one met stands for all of
      // them, as the one with the smallest id (the tie-break), and the others are not visited
      // (thousands, for a lease only an empty host can take).
      if (this.emptiesOffered.includes(cls)) return;
      this.emptiesOffered.push(cls);
      this.screen(index.firstEmpty(cls) ?? (index.hostAt[num] as HostRecord), 0);
      return;
    }
    if (!this.byNumber) {
      this.screen(index.hostAt[num] as HostRecord, kappa);
      return;
    }
    this.evaluated++;
    if (this.failsByNumber(num)) return;
    if (kappa === 0) {
      // maybe an empty host, which `screenPassed` offers from its class
      this.screenPassed(index.hostAt[num] as HostRecord, kappa);
      return;
    }
    const affinity = this.affinityAt(num);
    if (this.spreadAtStart && this.worseAtStart(num, cls, affinity)) return;
    if (this.screened && this.settledBySummary(cls, num, affinity)) return;
    this.afterScreen(num, cls, affinity);
  }

  /**
   * Spread: whether the usage at the window's start, when the host's hot words hold it (its piece
   * contains the start), leaves no score that can beat the best. One cache line, where the summary
   * is several: most hosts a spread walk meets are in use now, and the summary ruled them out
   * after all.
   */
  private worseAtStart(num: number, cls: HostClass, affinity: number): boolean {
    if (this.best === undefined) return false;
    const hot = this.ctx.index.hotPools[num >>> HOT_POOL_SHIFT] as Float64Array;
    const at = hotAt(num);
    const t = this.ctx.start;
    if (!(t >= (hot[at] as number) && t < (hot[at + 1] as number))) return false;
    return spreadUb(this.ctx, cls, hot, at + 2) + affinity + EPS < this.bestScore;
  }

  /** The weighted soft-affinity score of host number `num` (`affinityScorer`'s, by number). */
  private affinityAt(num: number): number {
    const nums = this.affinityNums;
    if (nums === undefined) return 0;
    return nums.has(num) === this.towardMembers ? this.ctx.wAff : 0;
  }

  private peakFor(host: HostRecord): Float64Array {
    return host.dims <= this.peak.length ? this.peak : new Float64Array(host.dims);
  }

  /**
   * `evaluate` after the filters and the summary's screen, from the host's hot words (see
   * HOT_WORDS) for as long as they settle it; the record is read for a host they leave open.
   */
  private afterScreen(num: number, cls: HostClass, affinity: number): void {
    const ctx = this.ctx;
    const binpack = ctx.fit === "binpack";
    const index = ctx.index;
    const hot = index.hotPools[num >>> HOT_POOL_SHIFT] as Float64Array;
    const at = hotAt(num);
    const pa = at + HOT_PEAK;
    const t = ctx.start;
    const inPiece = t >= (hot[at] as number) && t < (hot[at + 1] as number);
    if (!inPiece && Math.abs(t - index.now) > index.bucketMs) {
      // a start away from the present: looking it up costs about what the exact check costs
      if (binpack && this.best !== undefined) {
        const ub = hostUb(ctx, cls, hot, pa, ZERO_PIECE, 2) + affinity;
        if (ub + EPS < this.bestScore) return;
      }
      const host = index.hostAt[num] as HostRecord;
      if (this.planned) this.byBounds(host, affinity, ZERO_PIECE, 2, hot, pa);
      else this.scoreExactly(host, this.peakFor(host));
      return;
    }
    // the usage on the piece containing the start (the host's cache, refreshed if stale)
    if (!inPiece) {
      const host = index.hostAt[num] as HostRecord;
      host.timeline.pieceAt(t, host.now);
    }
    const o = at + 2;
    // the class's allocatable is the host's core limits (the class is keyed on them)
    const lim = cls.alloc;
    const d = ctx.demandCore;
    if (
      (hot[o] as number) + (d[0] as number) > (lim[0] as number) ||
      (hot[o + 1] as number) + (d[1] as number) > (lim[1] as number) ||
      (hot[o + 2] as number) + (d[2] as number) > (lim[2] as number) ||
      (hot[o + 3] as number) + (d[3] as number) > (lim[3] as number)
    ) {
      this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
      return;
    }
    if (
      (hot[pa] as number) === (hot[o] as number) &&
      (hot[pa + 1] as number) === (hot[o + 1] as number) &&
      (hot[pa + 2] as number) === (hot[o + 2] as number) &&
      (hot[pa + 3] as number) === (hot[o + 3] as number) &&
      ctx.extNames.length === 0
    ) {
      const host = index.hostAt[num] as HostRecord;
      if (host.dims === CORE_DIMS) {
        // usage at the start ≤ peak over the window ≤ all-time peak: equal, so the peak is known
        // exactly (the same values the timeline holds) and fits (checked above); its exact
        // score costs what a bound of it would.
        const peak = this.peak;
        for (let k = 0; k < CORE_DIMS; k++) peak[k] = hot[o + k] as number;
        this.offer(host, peak);
        return;
      }
    }
    if (this.best !== undefined) {
      // (spread: the usage at the start bounds the window's peak from below)
      const ub =
        (binpack ? hostUb(ctx, cls, hot, pa, hot, o) : spreadUb(ctx, cls, hot, o)) + affinity;
      if (ub + EPS < this.bestScore) return;
    }
    const host = index.hostAt[num] as HostRecord;
    if (this.planned) this.byBounds(host, affinity, hot, o, hot, pa);
    else this.scoreExactly(host, this.peakFor(host));
  }

  /** Whether `bySummary` settles the host (counted out if too full). */
  settledBySummary(cls: HostClass, num: number, affinity: number): boolean {
    const r = this.bySummary(cls, num, affinity);
    if (r === SUMMARY_FULL) {
      this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
      return true;
    }
    return r === SUMMARY_WORSE;
  }

  /**
   * Screen host number `num` from its summary words (see usage-summary.ts: one or two cache lines of one
   * shared array, where the exact bounds are several arrays per host): SUMMARY_FULL if a bucket
   * or block the window covers whole leaves no room for the demand, SUMMARY_WORSE if the upper
   * bound of its peak (the maxima of everything the window touches) cannot beat the best,
   * SUMMARY_OPEN if neither (the exact bounds decide).
   */
  bySummary(cls: HostClass, num: number, affinity: number): number {
    if (cls !== this.roomOf) this.setRoom(cls);
    const q = SCRATCH_Q;
    const summary = this.ctx.index.usageSummary;
    if (!summaryBytes(this.plan, summary.words, summary.regionOf(num), this.room, q)) {
      return SUMMARY_FULL;
    }
    const ctx = this.ctx;
    if (this.best === undefined) return SUMMARY_OPEN;
    const hi = this.wub;
    const lo = this.wlb;
    summaryBounds(q, cls.alloc, lo, hi);
    const ub = ctx.fit === "binpack" ? hostUb(ctx, cls, hi, 0, lo, 0) : spreadUb(ctx, cls, lo, 0);
    if (ub + affinity + EPS < this.bestScore) return SUMMARY_WORSE;
    return SUMMARY_OPEN;
  }

  /**
   * Per core dim, the largest summary byte (usage step) at which a host of the class may still
   * have room for the demand: a byte q proves usage ≥ q/255 of allocatable, so q above
   * 255·(1 − d/a) (with a margin far above the rounding of either side) proves it too full, as
   * the exact check (usage + d > a) would find.
   */
  private setRoom(cls: HostClass): void {
    const d = this.ctx.demandCore;
    const a = cls.alloc;
    const room = (k: number): number => {
      const ak = a[k] as number;
      const dk = d[k] as number;
      if (!(ak > 0)) return dk > 0 ? -1 : SUMMARY_STEPS;
      return Math.floor(SUMMARY_STEPS * (1 - dk / ak) + 1e-6);
    };
    this.roomOf = cls;
    for (let k = 0; k < CORE_DIMS; k++) this.room[k] = room(k);
  }

  /**
   * Bounds of the host's peak over the window, into `wlb` / `wub` (core dims), from its bucket
   * and block bounds (`planned` only): the maximum of every bucket or block the window touches
   * bounds it from above; that of a bucket or block the window covers whole, or of a bucket where
   * the usage is constant (minimum = maximum), from below; so does `lo[loAt .. loAt + 4)`, the
   * usage at the window's start (zeros when unknown). Both start at 0, as the timeline's peak.
   * Returns false as soon as the lower bound leaves no room for the demand (the bounds are then
   * incomplete): most hosts a future window visits and rules out are too full in the first hours
   * it covers, so they are settled without reading the rest.
   */
  windowBounds(host: HostRecord, lo: Float64Array, loAt: number): boolean {
    const d = this.ctx.demandCore;
    const lim = host.cls.alloc; // the host's core limits (see `evaluate`)
    // compared as the exact check does (peak + d > limit), so the rounding is the same
    const d0 = d[0] as number;
    const d1 = d[1] as number;
    const d2 = d[2] as number;
    const d3 = d[3] as number;
    const a0 = lim[0] as number;
    const a1 = lim[1] as number;
    const a2 = lim[2] as number;
    const a3 = lim[3] as number;
    let l0 = lo[loAt] as number;
    let l1 = lo[loAt + 1] as number;
    let l2 = lo[loAt + 2] as number;
    let l3 = lo[loAt + 3] as number;
    let u0 = 0;
    let u1 = 0;
    let u2 = 0;
    let u3 = 0;
    const hs = this.hourSlots;
    const full = this.hourFull;
    const rmin = host.ring;
    const rmax = host.ringMax;
    // the hours at the start, the blocks in between, the hours at the end: checked after each
    for (let phase = 0; phase < 3; phase++) {
      if (phase === 1) {
        const bs = this.blockSlots;
        const bx = host.blockMax;
        for (let i = 0; i < bs.length; i++) {
          const o = (bs[i] as number) * CORE_DIMS;
          const x0 = bx[o] as number;
          const x1 = bx[o + 1] as number;
          const x2 = bx[o + 2] as number;
          const x3 = bx[o + 3] as number;
          if (x0 > u0) u0 = x0;
          if (x1 > u1) u1 = x1;
          if (x2 > u2) u2 = x2;
          if (x3 > u3) u3 = x3;
          if (x0 > l0) l0 = x0;
          if (x1 > l1) l1 = x1;
          if (x2 > l2) l2 = x2;
          if (x3 > l3) l3 = x3;
        }
      } else {
        const from = phase === 0 ? 0 : this.headHours;
        const to = phase === 0 ? this.headHours : hs.length;
        for (let i = from; i < to; i++) {
          const o = (hs[i] as number) * CORE_DIMS;
          const x0 = rmax[o] as number;
          const x1 = rmax[o + 1] as number;
          const x2 = rmax[o + 2] as number;
          const x3 = rmax[o + 3] as number;
          if (x0 > u0) u0 = x0;
          if (x1 > u1) u1 = x1;
          if (x2 > u2) u2 = x2;
          if (x3 > u3) u3 = x3;
          const whole = full[i] === 1;
          if (x0 > l0 && (whole || rmin[o] === x0)) l0 = x0;
          if (x1 > l1 && (whole || rmin[o + 1] === x1)) l1 = x1;
          if (x2 > l2 && (whole || rmin[o + 2] === x2)) l2 = x2;
          if (x3 > l3 && (whole || rmin[o + 3] === x3)) l3 = x3;
        }
      }
      if (l0 + d0 > a0 || l1 + d1 > a1 || l2 + d2 > a2 || l3 + d3 > a3) return false;
    }
    const lb = this.wlb;
    lb[0] = l0;
    lb[1] = l1;
    lb[2] = l2;
    lb[3] = l3;
    const ub = this.wub;
    ub[0] = u0;
    ub[1] = u1;
    ub[2] = u2;
    ub[3] = u3;
    return true;
  }

  /**
   * Decide a host from its window bounds (tightened by `lo[loAt .. loAt + 4)`, its usage at the
   * start, and `hot[pa .. pa + 4)`, its all-time peak): counted out if the lower bound leaves no
   * room, skipped if the upper bound cannot beat the best, scored from the bounds when they meet
   * (the peak is then exactly that, the same values the timeline holds), else its timeline is
   * read. (The block's suffix maximum, a bound the host's hot words and summary words both
   * tighten, is not read: two cache misses that almost never prune.)
   */
  byBounds(
    host: HostRecord,
    affinity: number,
    lo: Float64Array,
    loAt: number,
    hot: Float64Array,
    pa: number,
  ): void {
    const ctx = this.ctx;
    if (!this.windowBounds(host, lo, loAt)) {
      this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
      return;
    }
    const lb = this.wlb;
    const ub = this.wub;
    let exact = ctx.extNames.length === 0 && host.dims === CORE_DIMS;
    for (let k = 0; k < CORE_DIMS; k++) {
      if ((hot[pa + k] as number) < (ub[k] as number)) ub[k] = hot[pa + k] as number;
      if (lb[k] !== ub[k]) exact = false;
    }
    if (this.best !== undefined) {
      const bound =
        ctx.fit === "binpack"
          ? hostUb(ctx, host.cls, ub, 0, lb, 0)
          : spreadUb(ctx, host.cls, lb, 0);
      if (bound + affinity + EPS < this.bestScore) return;
    }
    const peak = this.peakFor(host);
    if (!exact) {
      this.scoreExactly(host, peak);
      return;
    }
    for (let k = 0; k < CORE_DIMS; k++) peak[k] = ub[k] as number;
    this.offer(host, peak);
  }

  /**
   * A host with nothing on its timeline: its peak over any window is 0, so its score is its
   * class's (the same for every empty host of the class, bar affinity) and nothing of the host
   * but its id needs reading. A big lease's best host is often an empty one, and then every
   * empty host of the class ties with it and is visited for the tie-break to the smallest id.
   */
  offerEmpty(host: HostRecord): void {
    const ctx = this.ctx;
    const cls = host.cls;
    let s: number;
    if (ctx.wAff === 0 && this.emptyOf === cls) s = this.emptyScore;
    else {
      // the class is keyed on the core limits, so the fit is the class's too
      s = classFeasible(ctx, cls) ? totalScore(ctx, host, ZERO_PEAK) : Number.NaN;
      if (ctx.wAff === 0) {
        this.emptyOf = cls;
        this.emptyScore = s;
      }
    }
    if (Number.isNaN(s)) {
      this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
      return;
    }
    if (
      s > this.bestScore ||
      (s === this.bestScore && this.best !== undefined && host.id < this.best.id)
    ) {
      this.best = host;
      this.bestScore = s;
      this.bestPeak.fill(0);
      this.noteBest(host, s);
    }
  }

  /** After a new best: whether it scores the most a host of its class can (see `tieCls`). */
  private noteBest(host: HostRecord, s: number): void {
    const ctx = this.ctx;
    this.tieCls = undefined;
    if (ctx.fit !== "spread" || ctx.wAff > 0) return;
    // (every host of the class scores at most this: `totalScore` takes its utilisation from the
    // same function, with usage ≥ 0)
    if (s !== spreadUb(ctx, host.cls, ZERO_PEAK, 0)) return;
    this.ranks ??= ctx.index.idRanks();
    this.tieCls = host.cls;
    this.tieRank = this.ranks[host.num] as number;
  }

  /** Read the host's timeline: count it out if the lease does not fit, else offer its score. */
  scoreExactly(host: HostRecord, peak: Float64Array): void {
    if (!fitsExactly(this.ctx, host, peak)) {
      this.counts[this.resourcesAt] = (this.counts[this.resourcesAt] as number) + 1;
      return;
    }
    this.offer(host, peak);
  }

  offer(host: HostRecord, peak: Float64Array): void {
    const s = totalScore(this.ctx, host, peak);
    if (
      s > this.bestScore ||
      (s === this.bestScore && this.best !== undefined && host.id < this.best.id)
    ) {
      this.best = host;
      this.bestScore = s;
      const dims = host.dims;
      if (this.bestPeak.length < dims) this.bestPeak = new Float64Array(dims);
      const best = this.bestPeak;
      for (let k = 0; k < dims; k++) best[k] = peak[k] as number;
      this.noteBest(host, s);
    }
  }

  /** Resource feasibility of a chunk at the sampled buckets; fills `lb` with a lower bound of the peak. */
  chunkFeasible(bin: Bin, chunk: number, alloc: Float64Array): boolean {
    const lb = this.lb;
    lb.fill(0);
    const d = this.ctx.demandCore;
    const index = this.ctx.index;
    // Usage at the window's start (exact per host, min over the chunk) bounds the peak from below.
    const no = index.chunkNowAt(bin, chunk, this.ctx.start);
    if (no >= 0) {
      const nm = bin.nowMin;
      for (let k = 0; k < CORE_DIMS; k++) {
        const m = nm[no + k] as number;
        if (m + (d[k] as number) > (alloc[k] as number)) return false;
        lb[k] = m;
      }
    }
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
   * An upper bound of the binpack + fragmentation score of the chunk's feasible hosts for this
   * window (affinity excluded). The fit part comes from the chunk's bucket maxima over every
   * bucket the window touches: Σ w_k·min(1, (min(M_k, a_k − d_k) + d_k)/a_k) (a feasible host's
   * peak is also ≤ a_k − d_k). −1 if the bucket minima prove every host of the chunk infeasible;
   * +∞ if the ring does not cover the window (no time-aware bound) or nothing is found yet.
   */
  chunkUb(bin: Bin, chunk: number, cls: HostClass): number {
    if (!this.chunkFeasible(bin, chunk, cls.alloc)) return -1;
    // Before a first feasible host there is nothing to prune against; a small chunk is cheaper
    // to evaluate host by host than to bound over every bucket of the window.
    if (!this.covered || this.best === undefined || this.chunkSize(bin, chunk) < MIN_BOUND_CHUNK) {
      return Number.POSITIVE_INFINITY;
    }
    const slots = this.allSlots;
    const index = this.ctx.index;
    const d = this.ctx.demandCore;
    const a = cls.alloc;
    const d0 = d[0] as number;
    const d1 = d[1] as number;
    const d2 = d[2] as number;
    const d3 = d[3] as number;
    const a0 = a[0] as number;
    const a1 = a[1] as number;
    const a2 = a[2] as number;
    const a3 = a[3] as number;
    let x0 = 0;
    let x1 = 0;
    let x2 = 0;
    let x3 = 0;
    const lb = this.lb;
    let l0 = lb[0] as number;
    let l1 = lb[1] as number;
    let l2 = lb[2] as number;
    let l3 = lb[3] as number;
    for (let i = 0; i < slots.length; i++) {
      const off = index.chunkMinAt(bin, chunk, slots[i] as number);
      const cm = bin.chunkMin;
      const m0 = cm[off] as number;
      const m1 = cm[off + 1] as number;
      const m2 = cm[off + 2] as number;
      const m3 = cm[off + 3] as number;
      if (m0 + d0 > a0 || m1 + d1 > a1 || m2 + d2 > a2 || m3 + d3 > a3) return -1;
      if (m0 > l0) l0 = m0;
      if (m1 > l1) l1 = m1;
      if (m2 > l2) l2 = m2;
      if (m3 > l3) l3 = m3;
      const cx = bin.chunkMax;
      if ((cx[off] as number) > x0) x0 = cx[off] as number;
      if ((cx[off + 1] as number) > x1) x1 = cx[off + 1] as number;
      if ((cx[off + 2] as number) > x2) x2 = cx[off + 2] as number;
      if ((cx[off + 3] as number) > x3) x3 = cx[off + 3] as number;
    }
    const wn = this.ctx.weightsFor(cls);
    let util = 0;
    const term = (w: number, x: number, dk: number, ak: number) =>
      w === 0 ? 0 : w * Math.min(1, (Math.min(x, ak - dk) + dk) / ak);
    util += term(wn[0] as number, x0, d0, a0);
    util += term(wn[1] as number, x1, d1, a1);
    util += term(wn[2] as number, x2, d2, a2);
    util += term(wn[3] as number, x3, d3, a3);
    const ctx = this.ctx;
    if (ctx.wFrag === 0) return ctx.wFit * util;
    const wsum = (wn[0] as number) + (wn[1] as number) + (wn[2] as number) + (wn[3] as number);
    if (Math.abs(wsum - 1) > 1e-9) return ctx.wFit * Math.min(util, 1) + ctx.wFrag;
    // Fragmentation is 1 only if a common size fits the remainder a − peak − d ≤ a − lo − d.
    // Otherwise, on a feasible host (no dim clipped at 1, Σ w = 1) the stranded fraction is
    // exactly 1 − util, so the total is (wFit + wFrag)·util.
    return fitPlusFragmentationUb(
      ctx,
      Math.min(util, 1),
      a0 - l0 - d0,
      a1 - l1 - d1,
      a2 - l2 - d2,
      a3 - l3 - d3,
    );
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

const ZERO_PIECE = new Float64Array(2 + CORE_DIMS);

/**
 * Where the bounds of a host's peak over the window are read, when the bucket ring covers the
 * window (`planned`): ring slots of the buckets at its ends (all of them if it spans at most two
 * blocks), with whether the window covers the bucket whole, and block slots of the blocks it
 * covers whole in between.
 */
interface WindowPlan {
  readonly planned: boolean;
  readonly hourSlots: Int32Array;
  readonly hourFull: Uint8Array;
  /** How many of `hourSlots` are at the window's start (the rest are at its end). */
  readonly headHours: number;
  readonly blockSlots: Int32Array;
  /** The window's absolute start block. */
  readonly startBlock: number;
  readonly ringSize: number;
}

function planWindow(ctx: RequestContext): WindowPlan {
  const index = ctx.index;
  const ms = index.bucketMs;
  const ha = Math.floor(ctx.start / ms);
  const hb = Math.ceil(ctx.end / ms) - 1;
  const planned =
    !Number.isNaN(index.ringBase) && ha >= index.ringBase && hb < index.ringBase + index.ringSize;
  const ba = Math.floor(ha / BLOCK_BUCKETS);
  const bb = Math.floor(hb / BLOCK_BUCKETS);
  let headEnd = hb;
  let tailStart = hb + 1;
  let blockCount = 0;
  if (!planned) headEnd = ha - 1;
  else if (bb - ba > 1) {
    headEnd = (ba + 1) * BLOCK_BUCKETS - 1;
    tailStart = bb * BLOCK_BUCKETS;
    blockCount = bb - ba - 1;
  }
  const hourCount = headEnd - ha + 1 + (hb - tailStart + 1);
  const hourSlots = new Int32Array(hourCount);
  const hourFull = new Uint8Array(hourCount);
  let i = 0;
  const hour = (ab: number): void => {
    hourSlots[i] = index.slotOf(ab);
    hourFull[i] = ab * ms >= ctx.start && (ab + 1) * ms <= ctx.end ? 1 : 0;
    i++;
  };
  for (let ab = ha; ab <= headEnd; ab++) hour(ab);
  for (let ab = tailStart; ab <= hb; ab++) hour(ab);
  const blockSlots = new Int32Array(blockCount);
  for (let j = 0; j < blockCount; j++) blockSlots[j] = index.blockSlotOf(ba + 1 + j);
  return {
    planned,
    hourSlots,
    hourFull,
    headHours: headEnd - ha + 1,
    blockSlots,
    startBlock: ba,
    ringSize: index.ringSize,
  };
}

/** Scratch of `summaryBytes`: lower bytes per core dim, then upper bytes. */
const SCRATCH_Q = new Int32Array(2 * CORE_DIMS);

/**
 * A host's summary bytes over a planned window (see usage-summary.ts), into `out`: per core dim
 * the largest byte of what the window covers whole (a lower bound of its peak), then the largest
 * of everything it touches (an upper bound). Returns false as soon as a lower byte exceeds `room`
 * (`out` is then incomplete): the start's hours first, as most hosts a future window visits and
 * rules out are too full in its first hours.
 */
function summaryBytes(
  plan: WindowPlan,
  words: Uint32Array,
  at: number,
  room: Int32Array,
  out: Int32Array,
): boolean {
  const m0 = room[0] as number;
  const m1 = room[1] as number;
  const m2 = room[2] as number;
  const m3 = room[3] as number;
  const hs = plan.hourSlots;
  const full = plan.hourFull;
  let l0 = 0;
  let l1 = 0;
  let l2 = 0;
  let l3 = 0;
  let u0 = 0;
  let u1 = 0;
  let u2 = 0;
  let u3 = 0;
  // the hours at the start, the blocks in between, the hours at the end: checked after each
  for (let phase = 0; phase < 3; phase++) {
    if (phase === 1) {
      const bs = plan.blockSlots;
      const base = at + plan.ringSize;
      for (let i = 0; i < bs.length; i++) {
        const v = words[base + (bs[i] as number)] as number;
        const q0 = v & 255;
        const q1 = (v >>> 8) & 255;
        const q2 = (v >>> 16) & 255;
        const q3 = v >>> 24;
        if (q0 > l0) l0 = q0;
        if (q1 > l1) l1 = q1;
        if (q2 > l2) l2 = q2;
        if (q3 > l3) l3 = q3;
      }
      // a block covered whole: its maximum bounds the peak from both sides
      if (l0 > u0) u0 = l0;
      if (l1 > u1) u1 = l1;
      if (l2 > u2) u2 = l2;
      if (l3 > u3) u3 = l3;
    } else {
      const from = phase === 0 ? 0 : plan.headHours;
      const to = phase === 0 ? plan.headHours : hs.length;
      for (let i = from; i < to; i++) {
        const v = words[at + (hs[i] as number)] as number;
        const q0 = v & 255;
        const q1 = (v >>> 8) & 255;
        const q2 = (v >>> 16) & 255;
        const q3 = v >>> 24;
        if (q0 > u0) u0 = q0;
        if (q1 > u1) u1 = q1;
        if (q2 > u2) u2 = q2;
        if (q3 > u3) u3 = q3;
        if (full[i] === 1) {
          if (q0 > l0) l0 = q0;
          if (q1 > l1) l1 = q1;
          if (q2 > l2) l2 = q2;
          if (q3 > l3) l3 = q3;
        }
      }
    }
    if (l0 > m0 || l1 > m1 || l2 > m2 || l3 > m3) return false;
  }
  out[0] = l0;
  out[1] = l1;
  out[2] = l2;
  out[3] = l3;
  out[4] = u0;
  out[5] = u1;
  out[6] = u2;
  out[7] = u3;
  return true;
}

/** Bounds of usage per core dim from `summaryBytes`' output, for allocatable `a`. */
function summaryBounds(q: Int32Array, a: Float64Array, lo: Float64Array, hi: Float64Array): void {
  for (let k = 0; k < CORE_DIMS; k++) {
    lo[k] = summaryLower(q[k] as number, a[k] as number);
    hi[k] = summaryUpper(q[CORE_DIMS + k] as number, a[k] as number);
  }
}

/** `bySummary`'s answers. */
const SUMMARY_OPEN = 0;
const SUMMARY_FULL = 1;
const SUMMARY_WORSE = 2;

/** An upper bound of usage from its summary byte q (none at the top step, see usage-summary.ts). */
function summaryUpper(q: number, a: number): number {
  return q >= SUMMARY_STEPS ? Number.POSITIVE_INFINITY : ((q + 1) * a * (1 + 1e-9)) / SUMMARY_STEPS;
}

/** A lower bound of usage from its summary byte q. */
function summaryLower(q: number, a: number): number {
  return ((q * a) / SUMMARY_STEPS) * (1 - 1e-9);
}
/** The peak of an empty host over any window (never written). */
const ZERO_PEAK = new Float64Array(CORE_DIMS);

/**
 * wFit·util + the fragmentation bound, for resource weights summing to 1 and `r` an upper bound
 * of the remainder a − peak − d: the fragmentation score is 1 only if a common size fits the
 * remainder; otherwise, on a feasible host (no dim clipped at 1), the stranded fraction is exactly
 * 1 − util, so the total is (wFit + wFrag)·util.
 */
function fitPlusFragmentationUb(
  ctx: RequestContext,
  util: number,
  r0: number,
  r1: number,
  r2: number,
  r3: number,
): number {
  for (const c of ctx.commonSizes) {
    if (
      (c[0] as number) <= r0 &&
      (c[1] as number) <= r1 &&
      (c[2] as number) <= r2 &&
      (c[3] as number) <= r3
    ) {
      return ctx.wFit * util + ctx.wFrag;
    }
  }
  return (ctx.wFit + ctx.wFrag) * util;
}

/**
 * An upper bound of the binpack + fragmentation score (affinity excluded) of the host if the
 * lease fits it, given that the peak over the window is at most `hi[hiAt .. hiAt + 4)` and at
 * least `lo[off .. off + 4)`: Σ w_k·min(1, (min(hi_k, a_k − d_k) + d_k)/a_k) for the fit part (a
 * feasible host's peak is also ≤ a_k − d_k); fragmentation see `fitPlusFragmentationUb`.
 */
function hostUb(
  ctx: RequestContext,
  cls: HostClass,
  hi: Float64Array,
  hiAt: number,
  lo: Float64Array,
  off: number,
): number {
  const wn = ctx.weightsFor(cls);
  const a = cls.alloc; // the host's core limits (see `evaluate`)
  const d = ctx.demandCore;
  let util = 0;
  let wsum = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const w = wn[k] as number;
    if (w === 0) continue;
    wsum += w;
    const ak = a[k] as number;
    const dk = d[k] as number;
    util += w * Math.min(1, (Math.min(hi[hiAt + k] as number, ak - dk) + dk) / ak);
  }
  if (ctx.wFrag === 0) return ctx.wFit * util;
  if (util > 1) util = 1;
  if (Math.abs(wsum - 1) > 1e-9) return ctx.wFit * util + ctx.wFrag;
  return fitPlusFragmentationUb(
    ctx,
    util,
    (a[0] as number) - (lo[off] as number) - (d[0] as number),
    (a[1] as number) - (lo[off + 1] as number) - (d[1] as number),
    (a[2] as number) - (lo[off + 2] as number) - (d[2] as number),
    (a[3] as number) - (lo[off + 3] as number) - (d[3] as number),
  );
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

/** The widest block variant whose reach (buckets after the start block) the window covers whole. */
function blockVariantOf(ctx: RequestContext, s: Search): number {
  const covered = Math.ceil(ctx.end / ctx.index.bucketMs) - 1 - (s.startBlock + 1) * BLOCK_BUCKETS;
  let v = 0;
  while (v + 1 < BLOCK_VARIANTS && (BLOCK_REACH[v + 1] as number) <= covered) v++;
  return v;
}

/** Whether the window starts where the fine cells' free levels are exact (see `fineCellOf`). */
function startsInPresent(ctx: RequestContext): boolean {
  const index = ctx.index;
  return ctx.start >= index.now && ctx.start < index.fineValidUntil();
}

/**
 * The lowest free level (see FINE_FREE_EDGES) of dimension k whose hosts may have `d[k]` free at
 * the window's start: a host in level l has less than FINE_FREE_EDGES[l]·a free then (the top
 * level is open); the levels below it cannot hold the demand.
 */
function lowestFeasibleLevel(cls: HostClass, d: Float64Array, k: number): number {
  const a = cls.alloc[k] as number;
  const dk = d[k] as number;
  let l = 0;
  // margin: the level was computed as a rounded fraction
  while (l < FINE_FREE_EDGES.length && (FINE_FREE_EDGES[l] as number) * a * (1 + 1e-9) < dk) l++;
  return l;
}

/**
 * Binpack for windows starting in the present: per class, the fine columns that may hold
 * the demand, visited in decreasing κ bins until κ's bound (κ + the demand's share, plus the
 * fragmentation and affinity bounds) cannot beat the best exact score; each host is screened
 * from its own bounds before its timeline is read (`Search.evaluate`).
 */
function searchFineCells(ctx: RequestContext, s: Search, restUb: number): void {
  const classes: CellClass[] = [];
  for (const cls of ctx.index.classList) {
    const columns = feasibleColumns(ctx, s, cls, cls.fineColumnCount, 0);
    if (columns !== undefined) {
      classes.push({
        cells: cls.fine,
        mask: cls.fineMask,
        share: demandShare(ctx, cls),
        columns,
        cls,
      });
    }
  }
  walkCells(ctx, s, restUb, classes);
}

/**
 * A bit per column of the class that may hold the demand (see `fineColumnFeasible`), or undefined
 * if none does; hosts of the other columns (`counts` from `base`) and of an infeasible class are
 * counted out.
 */
function feasibleColumns(
  ctx: RequestContext,
  s: Search,
  cls: HostClass,
  counts: Int32Array,
  base: number,
): Uint32Array | undefined {
  if (cls.ready === 0) return undefined;
  if (!classFeasible(ctx, cls)) {
    s.countResources(cls.ready);
    return undefined;
  }
  const columns = new Uint32Array(FINE_MASK_WORDS);
  const lowCpu = lowestFeasibleLevel(cls, ctx.demandCore, 0);
  const lowMemory = lowestFeasibleLevel(cls, ctx.demandCore, 1);
  let any = false;
  let out = 0;
  for (let c = 0; c < FINE_COLUMNS; c++) {
    const n = counts[base + c] as number;
    if (n === 0) continue;
    const cpuLevel = Math.floor(c / FINE_LEVELS);
    if (cpuLevel >= lowCpu && c - cpuLevel * FINE_LEVELS >= lowMemory) {
      columns[c >>> 5] = (columns[c >>> 5] as number) | (1 << (c & 31));
      any = true;
    } else out += n;
  }
  if (out > 0) s.countResources(out);
  return any ? columns : undefined;
}

/** A class's cells (fine or block) as the cell walk sees them. */
interface CellClass {
  /** By column·FINE_KAPPA + κ bin: hosts (fine cells), or host numbers (block and rung cells). */
  readonly cells?: (HostRecord[] | undefined)[];
  readonly byNumber?: (number[] | undefined)[];
  readonly cls: HostClass;
  /** Per κ bin, a bit per column: whether that cell has hosts. */
  readonly mask: Uint32Array;
  /** The demand's share of a host of the class (see `demandShare`). */
  readonly share: number;
  /** A bit per column that may hold a feasible host. */
  readonly columns: Uint32Array;
}

/**
 * Visit the cells of feasible columns in decreasing κ bins, until no class's bin bound (κ's upper
 * edge + the demand's share, plus the fragmentation and affinity bounds) can beat the best.
 */
function walkCells(
  ctx: RequestContext,
  s: Search,
  restUb: number,
  classes: readonly CellClass[],
): void {
  for (let b = FINE_KAPPA - 1; b >= 0; b--) {
    const upper = fineUpper(b);
    let any = false;
    for (const c of classes) {
      if (ctx.wFit * Math.min(1, upper + c.share) + restUb + EPS < s.bestScore) continue;
      any = true;
      // only the cells of this κ bin that have hosts, in feasible columns
      const base = b * FINE_MASK_WORDS;
      for (let w = 0; w < FINE_MASK_WORDS; w++) {
        let m = ((c.mask[base + w] as number) & (c.columns[w] as number)) >>> 0;
        while (m !== 0) {
          const bit = 31 - Math.clz32(m);
          m = (m & ~(1 << bit)) >>> 0;
          const col = w * 32 + bit;
          if (c.cells !== undefined) {
            const hosts = c.cells[col * FINE_KAPPA + b];
            if (hosts === undefined) continue;
            for (let i = 0; i < hosts.length; i++) s.evaluate(hosts[i] as HostRecord);
          } else {
            const nums = c.byNumber?.[col * FINE_KAPPA + b];
            if (nums === undefined) continue;
            for (let i = 0; i < nums.length; i++) s.visit(nums[i] as number, c.cls);
          }
        }
      }
    }
    if (!any) return;
  }
}

/**
 * The rung (see RUNG_BUCKETS) for a window inside the ring that starts at the present in the
 * ring's first bucket and ends in a later one; -1 if it is not such a window.
 */
function rungOf(ctx: RequestContext): number {
  const index = ctx.index;
  const ms = index.bucketMs;
  if (!(ctx.start < (index.ringBase + 1) * ms)) return -1;
  const n = Math.ceil(ctx.end / ms) - 1 - index.ringBase;
  let r = -1;
  while (r + 1 < RUNGS && (RUNG_BUCKETS[r + 1] as number) <= n - 1) r++;
  return r;
}

/**
 * Binpack from the cells of one slot (windows inside the bucket ring): the block cells of the
 * window's start block (free level at the block's minimum × κ of the suffix maximum), or the cells
 * of the window's rung (windows from the present). Feasible columns are visited in decreasing κ
 * bins until κ's bound cannot beat the best exact score; each host is decided from its own bounds.
 */
function searchSlotCells(ctx: RequestContext, s: Search, restUb: number, slot: number): void {
  const index = ctx.index;
  const classes: CellClass[] = [];
  for (const cls of index.classList) {
    const byNumber = cls.blockCells[slot];
    const columns = feasibleColumns(ctx, s, cls, cls.blockColumnCount, slot * FINE_COLUMNS);
    if (byNumber !== undefined && columns !== undefined) {
      classes.push({
        byNumber,
        mask: cls.blockMask.subarray(
          slot * FINE_KAPPA * FINE_MASK_WORDS,
          (slot + 1) * FINE_KAPPA * FINE_MASK_WORDS,
        ),
        share: demandShare(ctx, cls),
        columns,
        cls,
      });
    }
  }
  walkCells(ctx, s, restUb, classes);
}

/**
 * An upper bound of the spread + fragmentation score (affinity excluded) of a host of class `cls`
 * whose peak over the window is at least `lo[off .. off + 4)`: the fit part falls as usage rises,
 * fragmentation is at most 1.
 */
function spreadUb(ctx: RequestContext, cls: HostClass, lo: Float64Array, off: number): number {
  return ctx.wFit * (1 - classUtilisationAfter(ctx, cls, lo, off)) + ctx.wFrag;
}

/**
 * Spread over the block or rung cells of `slot`: a column's free levels bound its hosts' usage over
 * the window from below (a host filed at free level l < top has less than FINE_FREE_EDGES[l] of
 * it free there), so the columns are visited by that bound of the score, best first, until the
 * bound cannot beat the best; in a column, lower κ (less used) first. Empty hosts, the best a
 * class can offer, are met in the top column, the class's smallest id standing for all. `affUb`:
 * the most soft affinity can add.
 */
function spreadSlotCells(ctx: RequestContext, s: Search, affUb: number, slot: number): void {
  const index = ctx.index;
  const lo = new Float64Array(CORE_DIMS);
  const order: { cls: HostClass; cells: (number[] | undefined)[]; col: number; ub: number }[] = [];
  for (const cls of index.classList) {
    const cells = cls.blockCells[slot];
    const columns = feasibleColumns(ctx, s, cls, cls.blockColumnCount, slot * FINE_COLUMNS);
    if (cells === undefined || columns === undefined) continue;
    // (the feasible columns that hold hosts)
    for (let col = 0; col < FINE_COLUMNS; col++) {
      if (((columns[col >>> 5] as number) & (1 << (col & 31))) === 0) continue;
      const g0 = (col / FINE_LEVELS) | 0;
      lo[0] = usageBelowLevel(cls.alloc[0] as number, g0);
      lo[1] = usageBelowLevel(cls.alloc[1] as number, col - g0 * FINE_LEVELS);
      // (spreadUb takes fragmentation at its most already)
      order.push({ cls, cells, col, ub: spreadUb(ctx, cls, lo, 0) + affUb });
    }
  }
  order.sort((x, y) => y.ub - x.ub);
  for (const o of order) {
    if (o.ub + EPS < s.bestScore) break;
    for (let b = 0; b < FINE_KAPPA; b++) {
      const nums = o.cells[o.col * FINE_KAPPA + b];
      if (nums === undefined) continue;
      for (let i = 0; i < nums.length; i++) s.visit(nums[i] as number, o.cls);
    }
  }
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
  const finish = (): SearchResult => {
    let removed: Map<string, number> | undefined;
    return {
      host: s.best,
      score: s.bestScore,
      peak: s.bestPeak,
      evaluated: s.evaluated,
      // built on first read: a committed decision's explanation is mostly never read
      get removed(): ReadonlyMap<string, number> {
        removed ??= s.removed();
        return removed;
      },
    };
  };

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

  if (ctx.fit === "binpack" && ctx.boundsValid && startsInPresent(ctx)) {
    const rung = s.planned ? rungOf(ctx) : -1;
    if (rung >= 0) searchSlotCells(ctx, s, restUb, index.rungSlot(rung));
    else searchFineCells(ctx, s, restUb);
    return finish();
  }
  if (ctx.fit === "binpack" && ctx.boundsValid && s.planned) {
    searchSlotCells(ctx, s, restUb, index.cellSlot(blockVariantOf(ctx, s), s.startBlock));
    return finish();
  }

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
          const ub = s.chunkUb(bin, c, pick.cls);
          if (ub < 0) s.count(resourcesFilter.name, s.chunkSize(bin, c));
          else if (ub + affUb + EPS >= s.bestScore) s.visitChunk(bin, c);
        }
      }
      pick.b--;
    }
    return finish();
  }

  if (ctx.fit === "spread" && ctx.boundsValid && s.planned) {
    // the cells binpack would walk (see above), if the window has them
    const present = startsInPresent(ctx);
    const rung = present ? rungOf(ctx) : -1;
    const slot = !present
      ? index.cellSlot(blockVariantOf(ctx, s), s.startBlock)
      : rung >= 0
        ? index.rungSlot(rung)
        : -1;
    if (slot >= 0) {
      spreadSlotCells(ctx, s, affUb, slot);
      return finish();
    }
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

// ---- no-fit explanations ------------------------------------------------------------------

export interface NoFitExplanation {
  /** Every filter counted on every host, as the exhaustive scan counts them. */
  readonly removed: ReadonlyMap<string, number>;
  readonly binding: BindingResource | undefined;
  /** Hosts whose filters were evaluated one by one (the rest were settled by chunk bounds). */
  readonly evaluated: number;
}

/** `shortfallVerdict`'s answers other than a dim. */
const SURELY_FITS = -2;
const UNSETTLED = -1;

/**
 * What bounds `[lo, hi]` of a peak (core dims) say of the demand `d` on allocatable `a`, as
 * `violationOf` ranks shortfalls: SURELY_FITS if no dim can be short; the dim that is surely short
 * relatively more than any other can be (its least relative shortfall into `rel[0]`); else
 * UNSETTLED.
 */
function shortfallVerdict(
  lo: Float64Array,
  hi: Float64Array,
  d: Float64Array,
  a: Float64Array,
  rel: Float64Array,
): number {
  let sure = UNSETTLED;
  let sureRel = 0;
  let possible = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const dk = d[k] as number;
    const ak = a[k] as number;
    if (!((hi[k] as number) + dk - ak > 0)) continue;
    possible++;
    const lbShort = (lo[k] as number) + dk - ak;
    if (lbShort > 0) {
      const r = lbShort / ak;
      if (sure < 0 || r > sureRel) {
        sure = k;
        sureRel = r;
      }
    }
  }
  if (possible === 0) return SURELY_FITS;
  if (sure < 0) return UNSETTLED;
  for (let k = 0; k < CORE_DIMS; k++) {
    if (k === sure) continue;
    const ak = a[k] as number;
    const ubShort = (hi[k] as number) + (d[k] as number) - ak;
    if (ubShort > 0 && !(ubShort / ak < sureRel)) return UNSETTLED;
  }
  rel[0] = sureRel;
  return sure;
}

/** How many hosts carry one of `values` under label `key`. */
function labelCount(ctx: RequestContext, key: string, values: Iterable<string>): number {
  return postingsSize(ctx, key, values);
}

/** Hosts removed by a non-resource filter, counted over every host without testing each. */
function nonResourceRemoved(ctx: RequestContext, f: FilterPlugin): number | undefined {
  const index = ctx.index;
  const n = index.size;
  const g = ctx.group;
  if (f === hostStateFilter) return n - index.readyCount;
  if (g !== undefined && f === antiAffinityFilter) {
    const key = g.spec.topologyKey;
    return key === undefined ? g.hosts.size : labelCount(ctx, key, g.domains.keys());
  }
  if (g !== undefined && f === affinityFilter) {
    const key = g.spec.topologyKey;
    if (key === undefined) return g.hosts.size === 0 ? 0 : n - g.hosts.size;
    return g.domains.size === 0 ? 0 : n - labelCount(ctx, key, g.domains.keys());
  }
  if (f === topologySpreadFilter) {
    const key = g?.spec.topologyKey;
    const allowed = ctx.spreadAllowed;
    if (key === undefined || allowed === undefined) return 0;
    return n - labelCount(ctx, key, allowed);
  }
  return undefined;
}

/**
 * The explanation of a no-fit, equal to the exhaustive scan's (every filter counted on every host;
 * the binding resource of the closest host; per resource, how many otherwise eligible hosts it
 * binds on) without evaluating every host: a host whose bounds (hot words, then summary words
 * where the ring covers the window) prove it feasible, or short on one resource and not short on
 * any other as much, is settled without its timeline. The closest host is searched from the
 * settled hosts with the smallest lower bound on the shortfall.
 */
export function explainNoFit(ctx: RequestContext): NoFitExplanation {
  const index = ctx.index;
  const n = index.size;
  const counts = new Map<string, number>();
  const generic: FilterPlugin[] = [];
  for (const f of ctx.filters) {
    if (f === resourcesFilter) continue;
    const r = nonResourceRemoved(ctx, f);
    if (r === undefined) generic.push(f);
    else counts.set(f.name, r);
  }
  const scratch = new Float64Array(64);
  // READY hosts failing some non-resource filter: not eligible for the binding resource.
  const others = ctx.filters.filter((f) => f !== resourcesFilter && f !== hostStateFilter);
  // by host number (a set of records cost more than the rest of the explanation), with the count
  // per class
  let excluded: Uint8Array | undefined;
  const excludedIn = new Map<HostClass, number>();
  const exclude = (h: HostRecord, marks: Uint8Array): void => {
    marks[h.num] = 1;
    excludedIn.set(h.cls, (excludedIn.get(h.cls) ?? 0) + 1);
  };
  if (generic.length > 0 || others.length > 0) {
    const g = ctx.group;
    const onlyHostAnti =
      generic.length === 0 &&
      others.length === 1 &&
      others[0] === antiAffinityFilter &&
      g !== undefined &&
      g.spec.topologyKey === undefined;
    const marks = new Uint8Array(index.hostAt.length);
    excluded = marks;
    if (onlyHostAnti && g !== undefined) {
      for (const h of g.hosts) if (h.state === "READY") exclude(h, marks);
    } else {
      const genericCounts = new Float64Array(generic.length);
      // label constraints from the index's bytes for the selector (see LabelCheck)
      const labelsAt = ctx.filters.indexOf(labelsFilter);
      const labels = labelsAt >= 0 ? new LabelCheck(ctx, labelsAt) : undefined;
      const test = (f: FilterPlugin, h: HostRecord): boolean =>
        f === labelsFilter && labels !== undefined ? labels.passes(h.num) : f.test(ctx, h, scratch);
      for (const h of index.hostMap.values()) {
        let out = false;
        for (let i = 0; i < generic.length; i++) {
          if (!test(generic[i] as FilterPlugin, h)) {
            genericCounts[i] = (genericCounts[i] as number) + 1;
            out = true;
          }
        }
        if (h.state !== "READY") continue;
        if (!out) {
          for (const f of others) {
            if (generic.includes(f)) continue;
            if (!test(f, h)) {
              out = true;
              break;
            }
          }
        }
        if (out) exclude(h, marks);
      }
      generic.forEach((f, i) => {
        counts.set(f.name, genericCounts[i] as number);
      });
    }
  }

  // Resources: hosts where the demand fits over the window, whatever their other filters say.
  let fit = 0;
  let evaluated = 0;
  const peak = new Float64Array(64);
  for (const h of index.notReady) {
    evaluated++;
    if (fitsExactly(ctx, h, h.dims <= peak.length ? peak : new Float64Array(h.dims))) fit++;
  }

  const coreOnly = ctx.extNames.length === 0;
  const d = ctx.demandCore;
  const shortOn = new Float64Array(CORE_DIMS);
  const shortOnExt = new Map<string, number>();
  let closest: HostRecord | undefined;
  let closestRel = Number.POSITIVE_INFINITY;
  /** Hosts surely short on one resource, by at least `lbRel`, for the closest host's search. */
  const deferred: { lbRel: number; host: HostRecord }[] = [];

  /** Exact, as `violationOf` ranks it: the host's worst relative shortfall and its resource. */
  let hostRel = 0;
  let hostDim = -1;
  let hostResource = "";
  /** Whether the demand fits the host; if not, sets hostRel/hostDim (hostResource if not core). */
  const exact = (h: HostRecord): boolean => {
    evaluated++;
    const p = h.dims <= peak.length ? peak : new Float64Array(h.dims);
    if (fitsExactly(ctx, h, p)) return true;
    hostDim = -1;
    if (coreOnly) {
      // extended dims of the host carry no demand, so only core dims can be short
      for (let k = 0; k < CORE_DIMS; k++) {
        const lim = h.limit[k] as number;
        const short = (p[k] as number) + (d[k] as number) - lim;
        if (!(short > 0)) continue;
        const r = lim > 0 ? short / lim : Number.POSITIVE_INFINITY;
        if (hostDim < 0 || r > hostRel) {
          hostDim = k;
          hostRel = r;
        }
      }
      hostResource = hostDim < 0 ? "" : (CORE_RESOURCES[hostDim] as string);
    } else {
      const v = violationOf(ctx, h);
      hostResource = v === undefined ? "" : v.resource;
      hostRel = v === undefined ? 0 : v.rel;
      hostDim = v === undefined ? -1 : CORE_DIMS;
    }
    return false;
  };
  const offerClosest = (h: HostRecord, rel: number): void => {
    if (closest === undefined || rel < closestRel || (rel === closestRel && h.id < closest.id)) {
      closest = h;
      closestRel = rel;
    }
  };
  const settleHost = (h: HostRecord): void => {
    if (exact(h)) {
      fit++;
      return;
    }
    if (hostDim < 0 || excluded?.[h.num] === 1) return;
    if (hostDim < CORE_DIMS) shortOn[hostDim] = (shortOn[hostDim] as number) + 1;
    else shortOnExt.set(hostResource, (shortOnExt.get(hostResource) ?? 0) + 1);
    offerClosest(h, hostRel);
  };
  /** Classes short on a resource they have none of: every host binds there, at rel +∞. */
  const infClasses: HostClass[] = [];

  const rel = new Float64Array(1);
  const hostLo = new Float64Array(CORE_DIMS);
  const hostHi = new Float64Array(CORE_DIMS);
  const summaryLo = new Float64Array(CORE_DIMS);
  const summaryHi = new Float64Array(CORE_DIMS);
  const plan = planWindow(ctx);
  const anyRoom = new Int32Array(CORE_DIMS).fill(SUMMARY_STEPS);
  const q = new Int32Array(2 * CORE_DIMS);
  /**
   * Settle a host (core demand only) from bounds of its peak over the window, without its
   * timeline: its hot words (see HOT_WORDS), its usage at the start (where its cache holds it)
   * and its all-time peak; if they leave it open and the ring covers the window, tightened by its
   * summary words (the maxima of the buckets and blocks the window covers whole, and of all it
   * touches). False if they do not settle it.
   */
  const settledByBounds = (h: HostRecord): boolean => {
    const hot = index.hotPools[h.num >>> HOT_POOL_SHIFT] as Float64Array;
    const at = hotAt(h.num);
    const t = ctx.start;
    const inPiece = t >= (hot[at] as number) && t < (hot[at + 1] as number);
    for (let k = 0; k < CORE_DIMS; k++) {
      hostLo[k] = inPiece ? (hot[at + 2 + k] as number) : 0;
      hostHi[k] = hot[at + HOT_PEAK + k] as number;
    }
    const a = h.cls.alloc;
    let sure = shortfallVerdict(hostLo, hostHi, d, a, rel);
    if (sure === UNSETTLED && plan.planned) {
      summaryBytes(plan, index.usageSummary.words, index.usageSummary.regionOf(h.num), anyRoom, q);
      summaryBounds(q, a, summaryLo, summaryHi);
      for (let k = 0; k < CORE_DIMS; k++) {
        if ((summaryLo[k] as number) > (hostLo[k] as number)) hostLo[k] = summaryLo[k] as number;
        if ((summaryHi[k] as number) < (hostHi[k] as number)) hostHi[k] = summaryHi[k] as number;
      }
      sure = shortfallVerdict(hostLo, hostHi, d, a, rel);
    }
    if (sure === UNSETTLED) return false;
    if (sure === SURELY_FITS) {
      fit++;
      return true;
    }
    if (excluded?.[h.num] === 1) return true;
    shortOn[sure] = (shortOn[sure] as number) + 1;
    deferred.push({ lbRel: rel[0] as number, host: h });
    return true;
  };

  for (const cls of index.classList) {
    if (cls.ready === 0) continue;
    const a = cls.alloc;
    if (coreOnly) {
      let infDim = -1;
      for (let k = 0; k < CORE_DIMS && infDim < 0; k++) {
        if ((a[k] as number) === 0 && (d[k] as number) > 0) infDim = k;
      }
      if (infDim >= 0) {
        shortOn[infDim] = (shortOn[infDim] as number) + cls.ready - (excludedIn.get(cls) ?? 0);
        infClasses.push(cls);
        continue;
      }
    }
    // (the bins hold the class's READY hosts)
    for (const bin of cls.bins) {
      if (bin === undefined) continue;
      for (const h of bin.hosts) if (!coreOnly || !settledByBounds(h)) settleHost(h);
    }
  }

  // The closest host among settled hosts: visit them by their lower bound on the shortfall.
  if (deferred.length > 0) {
    deferred.sort((x, y) => x.lbRel - y.lbRel);
    for (const { lbRel, host: h } of deferred) {
      if (closest !== undefined && lbRel > closestRel) break;
      // its shortfall is at least the bound: at best a tie, and ties go to the smallest id
      if (closest !== undefined && lbRel >= closestRel && h.id > closest.id) continue;
      if (!exact(h) && hostDim >= 0) offerClosest(h, hostRel);
    }
  }
  // Hosts at rel +∞ only matter when nothing is closer; then the smallest id wins.
  if (closest === undefined || closestRel === Number.POSITIVE_INFINITY) {
    for (const cls of infClasses) {
      for (const bin of cls.bins) {
        if (bin === undefined) continue;
        for (const h of bin.hosts) {
          if (excluded?.[h.num] !== 1) offerClosest(h, Number.POSITIVE_INFINITY);
        }
      }
    }
  }

  counts.set(resourcesFilter.name, n - fit);
  const removed = new Map<string, number>();
  for (const f of ctx.filters) removed.set(f.name, counts.get(f.name) ?? 0);

  let binding: BindingResource | undefined;
  const c = closest as HostRecord | undefined;
  if (c !== undefined) {
    const v = violationOf(ctx, c);
    if (v !== undefined) {
      const shortOnHosts: Record<string, number> = {};
      CORE_RESOURCES.forEach((name, k) => {
        const m = (shortOn[k] as number) + (shortOnExt.get(name) ?? 0);
        if (m > 0) shortOnHosts[name] = m;
      });
      for (const [name, m] of [...shortOnExt].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
        if (!(name in shortOnHosts) && m > 0) shortOnHosts[name] = m;
      }
      binding = {
        resource: v.resource,
        start: v.start,
        end: v.end,
        shortBy: v.shortBy,
        hostId: c.id,
        shortOnHosts,
      };
    }
  }
  return { removed, binding, evaluated };
}
