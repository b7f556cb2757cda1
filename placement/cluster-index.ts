/**
 * The cluster index: every host with its capacity timeline, every hold, and the aggregates that let
 * the placer find the best host without visiting every host.
 *
 * Two structures serve the search (see docs/benchmarks.md, "How the index finds the best host"):
 *
 * - Hosts with the same allocatable vector form a class. READY hosts of a class sit in bins by
 *   κ = weighted utilisation at their all-time peak (a window-independent upper bound on the
 *   binpack score) × free capacity in the present bucket, so binpack visits hosts from the fullest
 *   bins down and stops when a bin's bound cannot beat the best exact score found.
 * - Time is cut into buckets (default 1 h) in a ring covering a horizon (default 256 buckets).
 *   Each host keeps, per bucket, the minimum and the maximum usage in the bucket; each chunk of 32
 *   hosts in a cell keeps the min of the minima and the max of the maxima (maintained
 *   incrementally, recomputed lazily where a host moved off the chunk's extreme). Peak over a
 *   window ≥ min usage in any bucket it touches (a chunk too full there holds no feasible host)
 *   and ≤ the max over the buckets it touches (a time-aware bound on the binpack score).
 * - Each host caches its usage on the timeline piece containing the present, each chunk the min
 *   over its hosts: an immediate window's peak is at least that.
 * - Fine cells, block cells and rung cells (see FINE_KAPPA, BLOCK_BUCKETS, BLOCK_REACH,
 *   RUNG_BUCKETS) file READY hosts by a free level that bounds the window's peak from below × κ
 *   of an upper bound, per start (the present, a block of the ring) and reach, so binpack skips
 *   whole columns too full for the demand and stops at the first κ bin that cannot win.
 */

import { MinHeap } from "../core/min-heap.js";
import {
  CapacityExceededError,
  DuplicateHoldError,
  DuplicateHostError,
  InvalidPlacementArgumentError,
  UnknownHoldError,
  UnknownHostError,
} from "./errors.js";
import { LabelMatches } from "./label-matches.js";
import { DEFAULT_RESOURCE_WEIGHTS, type ResourceWeights } from "./policy.js";
import {
  allocatable,
  CORE_DIMS,
  CORE_RESOURCES,
  extendedNames,
  get,
  type Resources,
  validateResources,
  ZERO_RESOURCES,
} from "./resources.js";
import { matches, parseSelectors, type Requirement, validateLabels } from "./selector.js";
import { CapacityTimeline, validateWindow } from "./timeline.js";
import {
  HOST_STATES,
  type HoldMeta,
  type HostSpec,
  type HostState,
  type TimeWindow,
} from "./types.js";
import { UsageSummary } from "./usage-summary.js";

export const CHUNK_SIZE = 32;
/** Hosts that may leave a chunk (or column) before its bounds are recomputed from scratch. */
const LOOSE_LIMIT = 4;
/** A chunk slot's bounds: not bounds at all (recompute before use). */
export const BOUNDS_STALE = 0;
/** A chunk slot's bounds: the exact minimum and maximum over the chunk's hosts. */
export const BOUNDS_EXACT = 1;
const COLUMN_LOOSE_LIMIT = 16;
export const KAPPA_BINS = 32;
/**
 * Fine cells: every READY host of a class also sits in one cell by (free cpu level, free memory
 * level) in the present bucket × κ in FINE_KAPPA bins, so binpack can skip the columns too full
 * for the demand and visit the rest in (nearly) decreasing κ, screening each host from its own
 * cached bounds (see search.ts). Block and rung cells use the same κ bins. Eight, not 64: a
 * commit moves a host's cells across fewer κ edges, and a walk follows fewer, fuller cells, each
 * host still screened from its exact bounds (with octave levels: 5–9% more placements/s,
 * bench:placement-ab).
 */
export const FINE_KAPPA = 8;
/**
 * Edges of the free levels, as fractions of allocatable: octaves from 1/512 to 1/2, so a demand
 * never shares a level with hosts that have less than half of it free, then 3/4, 13/16, 7/8, 15/16
 * and 31/32, so that spread, which bounds a column's score by the usage its levels imply, can tell
 * a host a sixteenth or an eighth used from an idle one. With the cpu allocation ratio at 4, nearly
 * half the hosts of a settled spread run have 3/4 to 9/10 of their cpu free, and a spread walk
 * visits every host of a column whose bound beats the best. (3/4 and 7/8: 1.525× spread
 * placements/s, 0.976× binpack; 13/16, 15/16 and 31/32 on top: 1.215× spread, p99 1.08 → 0.58
 * ms, 0.991× binpack; 5/8 added nothing. Half octaves until the ninth session: twice the column
 * moves per commit and more, emptier cells to walk, for fewer hosts screened out one by one;
 * octaves measured 5–8% more placements/s, in-process A/B.)
 */
export const FINE_FREE_EDGES: readonly number[] = [
  ...Array.from({ length: 9 }, (_, i) => 2 ** (-9 + i)),
  0.75,
  0.8125,
  0.875,
  0.9375,
  0.96875,
];
export const FINE_LEVELS = FINE_FREE_EDGES.length + 1;
/** Columns: free cpu level × free memory level. */
export const FINE_COLUMNS = FINE_LEVELS * FINE_LEVELS;
export const FINE_MASK_WORDS = Math.ceil(FINE_COLUMNS / 32);
/**
 * Blocks: the ring's hourly buckets grouped by BLOCK_BUCKETS (absolute bucket index / BLOCK_BUCKETS,
 * so a block may be cut at the ring's ends). Per host and block: the exact minimum and maximum
 * usage over the block's buckets in the ring, and the suffix maximum (componentwise maximum from
 * the block to the ring's end). READY hosts are also filed per block in block cells: free cpu ×
 * free memory level at the block minimum × fine κ bin of the suffix maximum, which serve windows
 * starting in that block as the fine cells serve windows starting at the present.
 */
export const BLOCK_BUCKETS = 6;
/**
 * Block cell variants: variant v files a host of block b by free level at the larger of the
 * block's minimum and the maxima of the BLOCK_REACH[v] buckets after the block (a lower bound of
 * the peak of any window starting in b that ends after them, since it covers them whole), κ as
 * variant 0.
 */
export const BLOCK_REACH: readonly number[] = [0, 2, 6, 24];
export const BLOCK_VARIANTS = BLOCK_REACH.length;
/** Blocks after b whose buckets the variants of b read. */
const MAX_REACH = Math.ceil(Math.max(...BLOCK_REACH) / BLOCK_BUCKETS);
/**
 * Rungs: for windows starting at the present (in the ring's first bucket, base) and ending in a
 * later bucket, READY hosts are also filed per rung r by free level at a lower bound of the
 * window's peak (the usage at the present and the maxima of buckets base+1 … base+RUNG_BUCKETS[r],
 * which such a window covers whole when it ends after them) × κ of an upper bound (the maxima of
 * buckets base … base+RUNG_BUCKETS[r+1], or to the ring's end for the last rung). A window whose
 * last bucket is base+n uses the last rung with RUNG_BUCKETS[r] ≤ n − 1. Rung cells sit in the
 * slots after the block variants' slots (see `ClusterIndex.rungSlot`).
 */
export const RUNG_BUCKETS: readonly number[] = [0, 1, 2, 4, 8, 16, 32, 64, 128];
export const RUNGS = RUNG_BUCKETS.length;
/**
 * What the search reads of most hosts it does not settle by number sits in pools of
 * 2^HOT_POOL_SHIFT hosts by number (see `ClusterIndex.hotPools`), HOT_WORDS doubles each: the usage
 * at the present (`HostRecord.now`, `[from, to, u0..u3]`), then the all-time peak's core dims
 * (HOT_PEAK on; `HostRecord.peakAll` mirrored). One or two cache lines, where the record and its
 * two arrays are three misses.
 */
export const HOT_POOL_SHIFT = 8;
export const HOT_WORDS = 2 + 2 * CORE_DIMS;
export const HOT_PEAK = 2 + CORE_DIMS;
/** Rungs whose windows lie within this many buckets after the present are shifted exactly. */
const SHIFT_EXACT = 8;
/**
 * Within a κ bin, hosts are split by how much they have free at the ring's first bucket (the
 * present): chunks of like hosts make the chunk bounds tight for windows starting now.
 */
const FREE_EDGES: number[] = [1 / 32, 1 / 8];
const FREE_LEVELS = FREE_EDGES.length + 1;
/** Free bins: (level of free cpu) × (level of free memory), the dimensions VMs exhaust. */
export const FREE_BINS = FREE_LEVELS * FREE_LEVELS;

export interface ClusterIndexOptions {
  /** Must equal the policy's `resourceWeights` for the indexed search; other weights fall back to a scan. */
  readonly resourceWeights?: ResourceWeights;
  /** Width of a time bucket of the feasibility bounds. Default 1 hour. */
  readonly bucketMs?: number;
  /** Buckets kept ahead of `advanceTo(now)`. Default 256 (10.7 days at 1 h). */
  readonly horizonBuckets?: number;
}

/** A host as the broker sees it. */
export interface HostView {
  readonly id: string;
  readonly state: HostState;
  readonly labels: Readonly<Record<string, string>>;
  readonly capacity: Resources;
  readonly allocatable: Resources;
  readonly holdCount: number;
  readonly spec: HostSpec;
}

/** A hold: capacity charged on a host for a window. */
export interface HoldView {
  readonly id: string;
  readonly leaseId: string;
  readonly hostId: string;
  readonly start: number;
  readonly end: number;
  readonly resources: Resources;
  readonly priority: number;
  readonly preemptible: boolean;
  readonly group?: string;
}

export interface ForecastBucket {
  readonly start: number;
  readonly end: number;
  /** Sum of allocatable over READY hosts. */
  readonly allocatable: Resources;
  /** Sum over hosts of the peak usage within the bucket. */
  readonly allocated: Resources;
  /** Sum over READY hosts of allocatable − peak usage in the bucket (never below 0). */
  readonly free: Resources;
  readonly hosts: number;
}

/** @internal Hosts of one allocatable vector. */
export class HostClass {
  readonly alloc: Float64Array;
  /** resource weight / Σ weights over dimensions the class has, 0 elsewhere. */
  readonly wn: Float64Array;
  /** Cells by κ bin × free bin (index kbin·FREE_BINS + fbin). */
  readonly bins: (Bin | undefined)[] = new Array(KAPPA_BINS * FREE_BINS).fill(undefined);
  /** READY hosts per κ bin. */
  readonly kCount = new Int32Array(KAPPA_BINS);
  /**
   * Per free bin (a column across all κ bins), per ring slot, per core dim: a lower bound of the
   * bucket minimum of every host in the column. One check rules out e.g. every full host at once.
   */
  colMin: Float64Array = new Float64Array(0);
  colValid: Uint8Array = new Uint8Array(0);
  /** Per column: hosts that left since its minima were last recomputed. */
  readonly colLoose = new Int32Array(FREE_BINS);
  /** READY hosts by fine cell, column·FINE_KAPPA + κ bin (see `FINE_KAPPA`); unordered within. */
  readonly fine: (HostRecord[] | undefined)[] = new Array(FINE_COLUMNS * FINE_KAPPA).fill(
    undefined,
  );
  /** READY hosts per fine column. */
  readonly fineColumnCount = new Int32Array(FINE_COLUMNS);
  /** Per fine κ bin, a bit per column (FINE_MASK_WORDS words): whether that cell has hosts. */
  readonly fineMask = new Uint32Array(FINE_KAPPA * FINE_MASK_WORDS);
  /**
   * Per cell slot (block variants, then rungs), per cell (column·FINE_KAPPA + κ bin, as fine
   * cells): host numbers (`HostRecord.num`), so the search screens a host from the index's arrays
   * by number before it reads the record (see `Search.visit`). A slot's cells are made on its
   * first use, a cell's list on its first host.
   */
  readonly blockCells: ((number[] | undefined)[] | undefined)[];
  /** Per block slot, per fine κ bin, a bit per column: whether that block cell has hosts. */
  readonly blockMask: Uint32Array;
  /** Per block slot, per column: READY hosts filed there. */
  readonly blockColumnCount: Int32Array;
  ready = 0;
  /**
   * Empty READY hosts of the class by id, a min-heap with stale entries (see
   * `ClusterIndex.firstEmpty`): a host is pushed when it becomes one and not taken out when it
   * stops being one (`HostRecord.emptyQueued` says it is in the heap).
   */
  readonly empties = new MinHeap<HostRecord>((a, b) => a.id < b.id);
  constructor(
    readonly key: string,
    alloc: Float64Array,
    weights: ResourceWeights,
    blockSlots: number,
  ) {
    this.alloc = alloc;
    this.blockCells = new Array(blockSlots).fill(undefined);
    this.blockMask = new Uint32Array(blockSlots * FINE_KAPPA * FINE_MASK_WORDS);
    this.blockColumnCount = new Int32Array(blockSlots * FINE_COLUMNS);
    this.wn = new Float64Array(CORE_DIMS);
    let total = 0;
    CORE_RESOURCES.forEach((name, k) => {
      if ((alloc[k] as number) > 0) total += weights[name];
    });
    CORE_RESOURCES.forEach((name, k) => {
      if ((alloc[k] as number) > 0 && total > 0) this.wn[k] = weights[name] / total;
    });
  }
}

/** @internal READY hosts of one class with κ in one bin, in chunks of CHUNK_SIZE. */
export class Bin {
  readonly hosts: HostRecord[] = [];
  /** Per chunk, per ring slot, per core dim: min over the chunk's hosts of their bucket minimum. */
  chunkMin: Float64Array;
  /** Same layout: max over the chunk's hosts of their bucket maximum (an upper bound, may be stale-high). */
  chunkMax: Float64Array;
  /** Per chunk, per ring slot: BOUNDS_STALE or BOUNDS_EXACT. */
  valid: Uint8Array;
  /**
   * Per chunk: min over its hosts of their usage at one instant (per core dim), valid for any
   * instant in `[nowFrom, nowTo)` (the intersection of the hosts' constant pieces); empty = stale.
   */
  nowMin: Float64Array;
  nowFrom: Float64Array;
  nowTo: Float64Array;
  /** Per chunk: hosts that left since its bounds were last recomputed. */
  loose: Uint8Array;
  constructor(
    readonly index: number,
    readonly kbin: number,
    readonly ring: number,
  ) {
    this.chunkMin = new Float64Array(ring * CORE_DIMS);
    this.chunkMax = new Float64Array(ring * CORE_DIMS);
    this.valid = new Uint8Array(ring);
    this.loose = new Uint8Array(1);
    this.nowMin = new Float64Array(CORE_DIMS);
    this.nowFrom = new Float64Array(1);
    this.nowTo = new Float64Array(1);
  }
  ensureChunks(chunks: number): void {
    const have = this.valid.length / this.ring;
    if (chunks <= have) return;
    const next = Math.max(chunks, have * 2);
    const cm = new Float64Array(next * this.ring * CORE_DIMS);
    cm.set(this.chunkMin);
    const cx = new Float64Array(next * this.ring * CORE_DIMS);
    cx.set(this.chunkMax);
    const v = new Uint8Array(next * this.ring);
    v.set(this.valid);
    this.chunkMin = cm;
    this.chunkMax = cx;
    const l = new Uint8Array(next);
    l.set(this.loose);
    this.loose = l;
    const nm = new Float64Array(next * CORE_DIMS);
    nm.set(this.nowMin);
    this.nowMin = nm;
    const nf = new Float64Array(next);
    nf.set(this.nowFrom);
    this.nowFrom = nf;
    const nt = new Float64Array(next);
    nt.set(this.nowTo);
    this.nowTo = nt;
    this.valid = v;
  }
}

/** @internal */
export interface HostRecord {
  readonly id: string;
  /**
   * The host's number: its place in `ClusterIndex.hostAt`, `kappaAt` and `cellPos`, and in the
   * usage summary (`UsageSummary.regionOf`). Numbers of removed hosts are reused.
   */
  readonly num: number;
  readonly spec: HostSpec;
  state: HostState;
  labels: Map<string, string>;
  labelsRecord: Readonly<Record<string, string>>;
  readonly allocatable: Resources;
  /** 4 core dims + the host's extended resources. */
  readonly dims: number;
  readonly extNames: readonly string[];
  /** Allocatable per dim. */
  readonly limit: Float64Array;
  readonly timeline: CapacityTimeline;
  readonly peakAll: Float64Array;
  kappa: number;
  readonly cls: HostClass;
  bin: Bin | undefined;
  pos: number;
  /** Fine κ bin and position in it (-1 when not READY). */
  fineBin: number;
  finePos: number;
  /** Until when its fine column is exact, and which computation of it is current. */
  colUntil: number;
  colStamp: number;
  /** Whether the host is in its class's `empties` heap (maybe no longer empty or READY). */
  emptyQueued: boolean;
  /** Per ring slot, per core dim: minimum usage in the bucket. */
  readonly ring: Float64Array;
  /** Per ring slot, per core dim: maximum usage in the bucket. */
  readonly ringMax: Float64Array;
  /**
   * `[from, to, u0, u1, u2, u3]`: usage (core dims) on the timeline piece `[from, to)`; an empty
   * piece is stale. One small array so a check touches one cache line; a view of the host's
   * place in `ClusterIndex.hotPools`.
   */
  readonly now: Float64Array;
  readonly holds: Set<HoldRecord>;
  /** Per block slot, per core dim: minimum / maximum usage over the block's buckets in the ring. */
  readonly blockMin: Float64Array;
  readonly blockMax: Float64Array;
  /** Per block slot, per core dim: maximum of `blockMax` from the block to the ring's end. */
  readonly blockSuf: Float64Array;
  /**
   * Per rung, per core dim: a lower bound of the maxima of the buckets the rung's windows cover
   * whole, and an upper bound of the peak of its windows (exact after a change of the host, see
   * `ClusterIndex.shiftRungs`).
   */
  readonly rungLb: Float64Array;
  readonly rungUb: Float64Array;
  /** The ring's base bucket `rungLb` / `rungUb` refer to (NaN: none). */
  rungBase: number;
  /**
   * Per block slot, then per rung: cell (-1: not filed). The position in it is in
   * `ClusterIndex.cellPos`.
   */
  readonly blockCell: Int32Array;
}

/** @internal */
export interface HoldRecord {
  readonly id: string;
  readonly leaseId: string;
  host: HostRecord;
  start: number;
  end: number;
  resources: Resources;
  demand: Float64Array;
  readonly priority: number;
  readonly preemptible: boolean;
  readonly group: string | undefined;
}

function holdView(h: HoldRecord): HoldView {
  const base = {
    id: h.id,
    leaseId: h.leaseId,
    hostId: h.host.id,
    start: h.start,
    end: h.end,
    resources: h.resources,
    priority: h.priority,
    preemptible: h.preemptible,
  };
  return Object.freeze(h.group === undefined ? base : { ...base, group: h.group });
}

function hostView(h: HostRecord): HostView {
  return Object.freeze({
    id: h.id,
    state: h.state,
    labels: h.labelsRecord,
    capacity: h.spec.capacity,
    allocatable: h.allocatable,
    holdCount: h.holds.size,
    spec: h.spec,
  });
}

/** The demand of `r` in a host's dimensions, or the name of an extended resource the host lacks. */
export function demandFor(host: HostRecord, r: Resources): Float64Array | string {
  const d = new Float64Array(host.dims);
  d[0] = r.cpuMillis;
  d[1] = r.memoryMib;
  d[2] = r.diskGib;
  d[3] = r.gpus;
  if (r.extended !== undefined) {
    for (const name of extendedNames(r)) {
      const i = host.extNames.indexOf(name);
      if (i < 0) return name;
      d[CORE_DIMS + i] = get(r, name);
    }
  }
  return d;
}

export function dimName(host: HostRecord, dim: number): string {
  return dim < CORE_DIMS
    ? (CORE_RESOURCES[dim] as string)
    : (host.extNames[dim - CORE_DIMS] as string);
}

export class ClusterIndex {
  readonly resourceWeights: ResourceWeights;
  readonly bucketMs: number;
  readonly ringSize: number;
  /** Absolute bucket index of the ring's first bucket; NaN until `advanceTo` or the first commit. */
  ringBase = Number.NaN;
  /** The latest `advanceTo` time (NaN before). */
  now = Number.NaN;

  /** @internal */ readonly hostMap = new Map<string, HostRecord>();
  /** @internal */ readonly holdMap = new Map<string, HoldRecord>();
  /** @internal */ readonly leaseHolds = new Map<string, Set<HoldRecord>>();
  /** @internal */ readonly groups = new Map<string, Set<HoldRecord>>();
  /** @internal label key → value → hosts */
  readonly labelIndex = new Map<string, Map<string, Set<HostRecord>>>();
  /** @internal Per label selector, the hosts it matches by number, as searches learn them. */
  readonly labelMatches = new LabelMatches();
  /** @internal */ readonly classes = new Map<string, HostClass>();
  /** @internal Hosts not READY (explanations test them one by one; READY hosts sit in bins). */
  readonly notReady = new Set<HostRecord>();
  /** @internal Classes as a list, for iteration in a fixed order. */
  readonly classList: HostClass[] = [];
  private readyHosts = 0;
  /** Scratch for `afterChange`: a host's bucket bounds before the change. */
  private scratchMin: Float64Array;
  private scratchMax: Float64Array;
  /** Scratch for `fineCellOf`. */
  private readonly scratchPiece = new Float64Array(2 + CORE_DIMS);
  private fineStamps = 0;
  /** Scratch for `foldRungs`, `refileBlock`, `firstBlockMoved`. */
  private readonly scratchRun = new Float64Array(CORE_DIMS);
  /** Scratch for `shiftRungs`: prefix maxima of the buckets after the present. */
  private readonly scratchPrefix = new Float64Array((SHIFT_EXACT + 1) * CORE_DIMS);
  private readonly scratchWasMax = new Float64Array(CORE_DIMS);
  /** Block slots in the ring of blocks (enough for every block the bucket ring touches). */
  readonly blockSlots: number;
  /** Cell slots: BLOCK_VARIANTS × blockSlots block cells, then RUNGS rung cells. */
  readonly cellSlots: number;
  /** @internal Hosts by number (`HostRecord.num`); undefined where a removed host's is free. */
  readonly hostAt: (HostRecord | undefined)[] = [];
  /**
   * @internal κ by host number (`HostRecord.kappa`): a cell walk prunes on it without reading the
   * record (8 bytes a host, 80 KB at 10,000 hosts, where the record's κ is a boxed double).
   */
  kappaAt = new Float64Array(0);
  /**
   * Per host number, per cell slot: the host's position in its cell (-1: not filed). One array,
   * so a swap-remove writes the moved host's position without reading its record.
   */
  private cellPos = new Int32Array(0);
  /**
   * @internal By host number: 1 if the host's timeline is empty and it has core dims only (the
   * search's empty-host shortcut, see `Search.visit`).
   */
  emptyAt = new Uint8Array(0);
  private readonly freeNums: number[] = [];
  /**
   * @internal Per host number (see HOT_WORDS): pool num >> HOT_POOL_SHIFT, at
   * `hotAt(num)`. Pools, not one growing array, so the records' `now` views stay valid as hosts
   * are added.
   */
  readonly hotPools: Float64Array[] = [];
  /** Hosts to re-file in the fine cells when `now` reaches a time (see `fineCellOf`). */
  private readonly refileT: number[] = [];
  private readonly refileHost: HostRecord[] = [];
  private readonly refileStamp: number[] = [];
  /** Bumped on every change; lets callers cache derived data. */
  version = 0;
  /** Counts host additions and removals (for `idRanks`). */
  private hostsChanged = 0;
  private ranks = new Int32Array(0);
  private rankedAt = -1;
  /** @internal Hosts' bucket and block maxima in bytes, for the search's screen (see its file). */
  readonly usageSummary: UsageSummary;

  constructor(options: ClusterIndexOptions = {}) {
    this.resourceWeights = options.resourceWeights ?? DEFAULT_RESOURCE_WEIGHTS;
    this.bucketMs = options.bucketMs ?? 3_600_000;
    this.ringSize = options.horizonBuckets ?? 256;
    if (!(this.bucketMs > 0) || !Number.isInteger(this.ringSize) || this.ringSize < 1) {
      throw new InvalidPlacementArgumentError(
        "options",
        "bucketMs must be > 0 and horizonBuckets an integer ≥ 1",
      );
    }
    this.blockSlots = Math.ceil(this.ringSize / BLOCK_BUCKETS) + 1;
    this.cellSlots = BLOCK_VARIANTS * this.blockSlots + RUNGS;
    this.usageSummary = new UsageSummary(this.ringSize, this.blockSlots, BLOCK_BUCKETS);
    this.scratchMin = new Float64Array(this.ringSize * CORE_DIMS);
    this.scratchMax = new Float64Array(this.ringSize * CORE_DIMS);
  }

  get size(): number {
    return this.hostMap.size;
  }

  get readyCount(): number {
    return this.readyHosts;
  }

  get holdCount(): number {
    return this.holdMap.size;
  }

  // ---- hosts ------------------------------------------------------------------------------

  addHost(spec: HostSpec): void {
    if (this.hostMap.has(spec.id)) throw new DuplicateHostError(spec.id);
    if (spec.id.length === 0)
      throw new InvalidPlacementArgumentError("host.id", "must not be empty");
    if (!HOST_STATES.includes(spec.state)) {
      throw new InvalidPlacementArgumentError("host.state", `unknown state ${String(spec.state)}`);
    }
    validateResources(spec.capacity, "host.capacity");
    if (spec.reserved !== undefined) validateResources(spec.reserved, "host.reserved");
    validateLabels(spec.labels);
    const alloc = allocatable(spec.capacity, spec.ratios, spec.reserved ?? ZERO_RESOURCES);
    const extNames = extendedNames(alloc);
    const dims = CORE_DIMS + extNames.length;
    const limit = new Float64Array(dims);
    limit[0] = alloc.cpuMillis;
    limit[1] = alloc.memoryMib;
    limit[2] = alloc.diskGib;
    limit[3] = alloc.gpus;
    extNames.forEach((n, i) => {
      limit[CORE_DIMS + i] = get(alloc, n);
    });
    const key = Array.from(limit.subarray(0, CORE_DIMS)).join(",");
    let cls = this.classes.get(key);
    if (cls === undefined) {
      cls = new HostClass(key, limit.slice(0, CORE_DIMS), this.resourceWeights, this.cellSlots);
      cls.colMin = new Float64Array(FREE_BINS * this.ringSize * CORE_DIMS);
      cls.colValid = new Uint8Array(FREE_BINS * this.ringSize);
      this.classes.set(key, cls);
      this.classList.push(cls);
    }
    const num = this.takeNum();
    this.usageSummary.take(num);
    const host: HostRecord = {
      id: spec.id,
      num,
      spec,
      state: spec.state,
      labels: new Map(Object.entries(spec.labels)),
      labelsRecord: Object.freeze({ ...spec.labels }),
      allocatable: alloc,
      dims,
      extNames,
      limit,
      timeline: new CapacityTimeline(dims),
      peakAll: new Float64Array(dims),
      kappa: 0,
      cls,
      bin: undefined,
      pos: -1,
      fineBin: -1,
      finePos: -1,
      colUntil: Number.NEGATIVE_INFINITY,
      colStamp: 0,
      emptyQueued: false,
      ring: new Float64Array(this.ringSize * CORE_DIMS),
      ringMax: new Float64Array(this.ringSize * CORE_DIMS),
      now: this.nowOf(num),
      holds: new Set(),
      blockMin: new Float64Array(this.blockSlots * CORE_DIMS),
      blockMax: new Float64Array(this.blockSlots * CORE_DIMS),
      blockSuf: new Float64Array(this.blockSlots * CORE_DIMS),
      rungLb: new Float64Array(RUNGS * CORE_DIMS),
      rungUb: new Float64Array(RUNGS * CORE_DIMS),
      rungBase: Number.NaN,
      blockCell: new Int32Array(this.cellSlots).fill(-1),
    };
    this.hostMap.set(spec.id, host);
    this.hostAt[num] = host;
    this.kappaAt[num] = 0;
    this.emptyAt[num] = dims === CORE_DIMS ? 1 : 0;
    this.indexLabels(host);
    if (host.state === "READY") {
      this.enterBins(host);
      this.fileBlocks(host);
      this.queueEmpty(host);
    } else this.notReady.add(host);
    this.hostsChanged++;
    this.version++;
  }

  /**
   * @internal Per host number, the rank of the host's id among all hosts' ids (as strings
   * compare): the tie-break by id without the record. Sorted again after hosts come or go.
   */
  idRanks(): Int32Array {
    if (this.rankedAt !== this.hostsChanged) {
      const hosts = [...this.hostMap.values()].sort((x, y) =>
        x.id < y.id ? -1 : x.id > y.id ? 1 : 0,
      );
      const ranks = new Int32Array(this.hostAt.length);
      hosts.forEach((h, i) => {
        ranks[h.num] = i;
      });
      this.ranks = ranks;
      this.rankedAt = this.hostsChanged;
    }
    return this.ranks;
  }

  /**
   * @internal The empty READY host of the class with the smallest id (see `HostClass.empties`),
   * dropping stale entries from the heap's top; undefined if the class has none.
   */
  firstEmpty(cls: HostClass): HostRecord | undefined {
    const heap = cls.empties;
    for (;;) {
      const top = heap.peek();
      if (top === undefined) return undefined;
      if (top.state === "READY" && this.hostAt[top.num] === top && this.emptyAt[top.num] === 1) {
        return top;
      }
      top.emptyQueued = false;
      heap.pop();
    }
  }

  /** Push an empty READY host (dims: core only) on its class's heap, unless it is in it. */
  private queueEmpty(host: HostRecord): void {
    if (host.emptyQueued || this.emptyAt[host.num] !== 1) return;
    host.emptyQueued = true;
    host.cls.empties.push(host);
  }

  /** @internal The host's position in its cell of a slot (-1: not filed there). */
  cellPosOf(host: HostRecord, slot: number): number {
    return this.cellPos[host.num * this.cellSlots + slot] as number;
  }

  /** The host number's `now` view, its hot words zeroed (an empty piece: stale; no peak). */
  private nowOf(num: number): Float64Array {
    const pool = num >>> HOT_POOL_SHIFT;
    while (this.hotPools.length <= pool) {
      this.hotPools.push(new Float64Array(HOT_WORDS << HOT_POOL_SHIFT));
    }
    const words = this.hotPools[pool] as Float64Array;
    const at = hotAt(num);
    words.fill(0, at, at + HOT_WORDS);
    return words.subarray(at, at + HOT_PEAK);
  }

  /**
   * A number for a new host: a removed host's (its cell positions are all -1 again), else the
   * next one, growing the arrays kept by number.
   */
  private takeNum(): number {
    const free = this.freeNums.pop();
    if (free !== undefined) return free;
    const num = this.hostAt.length;
    if (num >= this.kappaAt.length) {
      const cap = Math.max(64, this.kappaAt.length * 2);
      const kappa = new Float64Array(cap);
      kappa.set(this.kappaAt);
      this.kappaAt = kappa;
      const empty = new Uint8Array(cap);
      empty.set(this.emptyAt);
      this.emptyAt = empty;
      const pos = new Int32Array(cap * this.cellSlots).fill(-1);
      pos.set(this.cellPos);
      this.cellPos = pos;
    }
    this.hostAt.push(undefined);
    return num;
  }

  /** Remove a host and release its holds; returns the released hold ids. */
  removeHost(id: string): string[] {
    const host = this.mustHost(id);
    const released = [...host.holds].map((h) => h.id);
    for (const holdId of released) this.release(holdId);
    if (host.bin !== undefined) this.leaveBins(host, true);
    this.unfileBlocks(host);
    this.unindexLabels(host);
    this.notReady.delete(host);
    this.hostMap.delete(id);
    this.hostAt[host.num] = undefined;
    this.kappaAt[host.num] = 0;
    this.emptyAt[host.num] = 0;
    this.freeNums.push(host.num);
    this.hostsChanged++;
    this.version++;
    return released;
  }

  setHostState(id: string, state: HostState): void {
    const host = this.mustHost(id);
    if (!HOST_STATES.includes(state)) {
      throw new InvalidPlacementArgumentError("host.state", `unknown state ${String(state)}`);
    }
    if (host.state === state) return;
    host.state = state;
    if (state === "READY") this.notReady.delete(host);
    else this.notReady.add(host);
    if (state === "READY" && host.bin === undefined) {
      this.enterBins(host);
      this.fileBlocks(host);
    }
    if (state === "READY") this.queueEmpty(host);
    if (state !== "READY" && host.bin !== undefined) {
      this.leaveBins(host, true);
      this.unfileBlocks(host);
    }
    this.version++;
  }

  setHostLabels(id: string, labels: Readonly<Record<string, string>>): void {
    const host = this.mustHost(id);
    validateLabels(labels);
    this.unindexLabels(host);
    host.labels = new Map(Object.entries(labels));
    host.labelsRecord = Object.freeze({ ...labels });
    this.indexLabels(host);
    this.version++;
  }

  host(id: string): HostView | undefined {
    const h = this.hostMap.get(id);
    return h === undefined ? undefined : hostView(h);
  }

  hosts(): HostView[] {
    return [...this.hostMap.values()].map(hostView);
  }

  // ---- holds ------------------------------------------------------------------------------

  /**
   * Charge `resources` on `hostId` over `window` under hold id `holdId`. Throws
   * `CapacityExceededError` (nothing changes) if that would oversubscribe the host at any instant.
   * Commits do not look at host state: placement decides where new leases go, the broker may
   * still need to record holds on CORDONED or DRAINING hosts.
   */
  commit(
    holdId: string,
    hostId: string,
    window: TimeWindow,
    resources: Resources,
    meta: HoldMeta,
  ): void {
    if (this.holdMap.has(holdId)) throw new DuplicateHoldError(holdId);
    const host = this.mustHost(hostId);
    validateWindow(window.start, window.end);
    validateResources(resources);
    const demand = this.checkedDemand(host, window, resources);
    host.timeline.add(window.start, window.end, demand);
    const hold: HoldRecord = {
      id: holdId,
      leaseId: meta.leaseId ?? holdId,
      host,
      start: window.start,
      end: window.end,
      resources,
      demand,
      priority: meta.priority,
      preemptible: meta.preemptible,
      group: meta.group,
    };
    this.holdMap.set(holdId, hold);
    host.holds.add(hold);
    let lease = this.leaseHolds.get(hold.leaseId);
    if (lease === undefined) {
      lease = new Set();
      this.leaseHolds.set(hold.leaseId, lease);
    }
    lease.add(hold);
    if (hold.group !== undefined) {
      let g = this.groups.get(hold.group);
      if (g === undefined) {
        g = new Set();
        this.groups.set(hold.group, g);
      }
      g.add(hold);
    }
    if (Number.isNaN(this.ringBase)) this.initRing(Math.floor(window.start / this.bucketMs));
    this.afterChange(host, window.start, window.end, true);
    this.version++;
  }

  /** Release a hold. Returns false if there was no such hold. */
  release(holdId: string): boolean {
    const hold = this.holdMap.get(holdId);
    if (hold === undefined) return false;
    const host = hold.host;
    host.timeline.remove(hold.start, hold.end, hold.demand);
    this.holdMap.delete(holdId);
    host.holds.delete(hold);
    const lease = this.leaseHolds.get(hold.leaseId);
    lease?.delete(hold);
    if (lease !== undefined && lease.size === 0) this.leaseHolds.delete(hold.leaseId);
    if (hold.group !== undefined) {
      const g = this.groups.get(hold.group);
      g?.delete(hold);
      if (g !== undefined && g.size === 0) this.groups.delete(hold.group);
    }
    this.afterChange(host, hold.start, hold.end, false);
    this.version++;
    return true;
  }

  /** Release every hold of a lease; returns how many. */
  releaseLease(leaseId: string): number {
    const holds = this.leaseHolds.get(leaseId);
    if (holds === undefined) return 0;
    const ids = [...holds].map((h) => h.id);
    for (const id of ids) this.release(id);
    return ids.length;
  }

  /**
   * Change a hold's window and/or resources in place (e.g. extend the end). Throws
   * `CapacityExceededError` and leaves the hold as it was if the new shape does not fit.
   */
  resize(holdId: string, change: { window?: TimeWindow; resources?: Resources }): void {
    const hold = this.mustHold(holdId);
    const window = change.window ?? { start: hold.start, end: hold.end };
    const resources = change.resources ?? hold.resources;
    validateWindow(window.start, window.end);
    validateResources(resources);
    const host = hold.host;
    host.timeline.remove(hold.start, hold.end, hold.demand);
    let demand: Float64Array;
    try {
      demand = this.checkedDemand(host, window, resources);
    } catch (err) {
      host.timeline.add(hold.start, hold.end, hold.demand);
      throw err;
    }
    host.timeline.add(window.start, window.end, demand);
    const [oldStart, oldEnd] = [hold.start, hold.end];
    hold.start = window.start;
    hold.end = window.end;
    hold.resources = resources;
    hold.demand = demand;
    this.afterChange(host, oldStart, oldEnd, false);
    this.afterChange(host, window.start, window.end, true);
    this.version++;
  }

  /** Move a hold to another host (same window and resources). Throws if it does not fit there. */
  move(holdId: string, toHostId: string): void {
    const hold = this.mustHold(holdId);
    const to = this.mustHost(toHostId);
    if (to === hold.host) return;
    const demand = this.checkedDemand(to, hold, hold.resources);
    const from = hold.host;
    from.timeline.remove(hold.start, hold.end, hold.demand);
    from.holds.delete(hold);
    to.timeline.add(hold.start, hold.end, demand);
    to.holds.add(hold);
    hold.host = to;
    hold.demand = demand;
    this.afterChange(from, hold.start, hold.end, false);
    this.afterChange(to, hold.start, hold.end, true);
    this.version++;
  }

  hold(holdId: string): HoldView | undefined {
    const h = this.holdMap.get(holdId);
    return h === undefined ? undefined : holdView(h);
  }

  holdsOn(hostId: string): HoldView[] {
    return [...this.mustHost(hostId).holds].map(holdView);
  }

  holdsOfLease(leaseId: string): HoldView[] {
    return [...(this.leaseHolds.get(leaseId) ?? [])].map(holdView);
  }

  /** Allocatable − peak usage over the window, per resource (never below 0). */
  freeOver(hostId: string, window: TimeWindow): Resources {
    const host = this.mustHost(hostId);
    validateWindow(window.start, window.end);
    const peak = host.timeline.peak(window.start, window.end);
    return this.vectorToResources(host, (k) =>
      Math.max(0, (host.limit[k] as number) - (peak[k] as number)),
    );
  }

  /**
   * Visit every host (in the order they were added) with its allocatable and its peak usage over
   * the window, per dimension (the 4 core resources, then the host's extended ones, named by
   * `extNames`). The arrays are reused between calls: copy what you keep. For planners that
   * look at every host: no view objects are built.
   */
  scanPeaks(
    window: TimeWindow,
    visit: (
      hostId: string,
      state: HostState,
      limit: Float64Array,
      peak: Float64Array,
      extNames: readonly string[],
    ) => void,
  ): void {
    validateWindow(window.start, window.end);
    let scratch = new Float64Array(16);
    for (const host of this.hostMap.values()) {
      if (scratch.length < host.dims) scratch = new Float64Array(host.dims);
      host.timeline.peak(window.start, window.end, scratch);
      visit(host.id, host.state, host.limit, scratch, host.extNames);
    }
  }

  /** Peak usage over the window, per resource. */
  peakOver(hostId: string, window: TimeWindow): Resources {
    const host = this.mustHost(hostId);
    validateWindow(window.start, window.end);
    const peak = host.timeline.peak(window.start, window.end);
    return this.vectorToResources(host, (k) => peak[k] as number);
  }

  /**
   * Capacity per bucket `[from + i·bucketMs, from + (i+1)·bucketMs)` for `count` buckets, over hosts
   * matching `selector` (requirements or selector text).
   */
  capacityForecast(
    from: number,
    bucketMs: number,
    count: number,
    selector?: readonly Requirement[] | string,
  ): ForecastBucket[] {
    if (!Number.isFinite(from) || !(bucketMs > 0) || !Number.isInteger(count) || count < 0) {
      throw new InvalidPlacementArgumentError(
        "forecast",
        "from finite, bucketMs > 0, count an integer ≥ 0",
      );
    }
    const reqs = typeof selector === "string" ? parseSelectors(selector) : (selector ?? []);
    const sums = Array.from({ length: count }, () => ({
      alloc: new Map<string, number>(),
      used: new Map<string, number>(),
      free: new Map<string, number>(),
      hosts: 0,
    }));
    const addTo = (m: Map<string, number>, name: string, v: number) =>
      m.set(name, (m.get(name) ?? 0) + v);
    const peak = new Float64Array(64);
    for (const host of this.hostMap.values()) {
      if (!matches(reqs, host.labels)) continue;
      const ready = host.state === "READY";
      for (let b = 0; b < count; b++) {
        const s = from + b * bucketMs;
        const p = host.timeline.peak(s, s + bucketMs, peak.length >= host.dims ? peak : undefined);
        const sum = sums[b];
        if (sum === undefined) continue;
        if (ready) sum.hosts++;
        for (let k = 0; k < host.dims; k++) {
          const name = dimName(host, k);
          const lim = host.limit[k] as number;
          const used = p[k] as number;
          addTo(sum.used, name, used);
          if (ready) {
            addTo(sum.alloc, name, lim);
            addTo(sum.free, name, Math.max(0, lim - used));
          }
        }
      }
    }
    const toRes = (m: Map<string, number>): Resources => {
      const ext: Record<string, number> = {};
      for (const [name, v] of m)
        if (!(CORE_RESOURCES as readonly string[]).includes(name)) ext[name] = v;
      const base = {
        cpuMillis: m.get("cpuMillis") ?? 0,
        memoryMib: m.get("memoryMib") ?? 0,
        diskGib: m.get("diskGib") ?? 0,
        gpus: m.get("gpus") ?? 0,
      };
      return Object.keys(ext).length > 0 ? { ...base, extended: ext } : base;
    };
    return sums.map((s, b) => ({
      start: from + b * bucketMs,
      end: from + (b + 1) * bucketMs,
      allocatable: toRes(s.alloc),
      allocated: toRes(s.used),
      free: toRes(s.free),
      hosts: s.hosts,
    }));
  }

  /**
   * Tell the index what time it is, so its time-bucket bounds cover `[now, now + horizon)`.
   * Placement is exact without it; it only prunes less for windows outside the horizon.
   */
  advanceTo(now: number): void {
    if (!Number.isFinite(now)) throw new InvalidPlacementArgumentError("now", "must be finite");
    if (!(now <= this.now)) this.now = now;
    this.refileDue();
    const target = Math.floor(now / this.bucketMs);
    if (Number.isNaN(this.ringBase)) {
      this.initRing(target);
      return;
    }
    if (target <= this.ringBase) return;
    const R = this.ringSize;
    const oldBase = this.ringBase;
    const oldEnd = oldBase + R;
    const oldFirst = this.firstBlock();
    const oldLast = this.lastBlock();
    this.ringBase = target;
    const from = Math.max(oldEnd, target);
    const to = target + R;
    if (from >= to) return;
    // The new slots are stale before any host takes its new buckets in, so a host that joins a
    // chunk or column while others still hold old values there folds nothing into them. Then
    // one pass per host (its records are read once, not once per step): its new buckets; its
    // free bin, as the present moved (fine cells were re-filed by `refileDue`, κ is unchanged);
    // its blocks: those that left the ring are unfiled (their slots are reused by new ones), the
    // first block lost buckets and the new buckets' blocks gained some; its rungs.
    for (let ab = from; ab < to; ab++) this.invalidateSlotEverywhere(this.slotOf(ab));
    const first = this.firstBlock();
    const last = this.lastBlock();
    const newFrom = Math.floor(from / BLOCK_BUCKETS);
    const quietTail = to - from === 1 && from % BLOCK_BUCKETS !== 0;
    const quietHead = to - from === 1 && from % BLOCK_BUCKETS === 0 && last > oldLast;
    const oneBucket = target === oldBase + 1;
    // a first block that starts at the new base lost no bucket (the one that left was its
    // predecessor's)
    const firstKept = oneBucket && target % BLOCK_BUCKETS === 0;
    for (const host of this.hostMap.values()) {
      if (
        oneBucket &&
        first <= oldLast &&
        this.emptyAt[host.num] === 1 &&
        host.bin !== undefined &&
        host.rungBase === oldBase
      ) {
        this.stepEmpty(host, oldFirst, first, quietHead ? last : Number.NaN);
        continue;
      }
      // read before the new bucket takes the slot of the one that left
      const firstSame = firstKept || (oneBucket && this.firstBlockKeeps(host, oldBase, first));
      this.fillRing(host, from, to);
      this.rebin(host, false);
      if (first > oldLast) {
        this.rebuildBlocks(host);
        continue;
      }
      if (host.bin !== undefined) {
        for (let b = oldFirst; b < first; b++) {
          for (let v = 0; v < BLOCK_VARIANTS; v++) this.leaveBlock(host, this.cellSlot(v, b));
        }
      }
      // A single new bucket inside the last block where the host has no usage changes nothing
      // if the block's minimum is already 0 (its maximum, the variants' lower bounds and the
      // suffix maxima only take a maximum with 0): the common case, 16 days ahead. One that
      // starts a block makes a block of zeros: only that block is filed (the variants of the
      // blocks below reach a bucket of 0, their suffix maxima take a maximum with 0).
      if (quietTail && this.idleAt(host, from, last)) {
        // nothing moved
      } else if (quietHead && this.idleBucket(host, from)) this.zeroBlock(host, last);
      else this.refreshBlocks(host, newFrom, last);
      // The first block lost buckets: re-file only if that changed its bounds (the variants read
      // buckets after it, which did not change).
      if (!firstSame && this.firstBlockMoved(host, first)) this.refreshBlocks(host, first, first);
      // the rungs start at the ring's first bucket, which moved
      if (host.bin === undefined) continue;
      if (oneBucket && host.rungBase === target - 1) {
        if (this.shiftRungs(host)) this.fileRungs(host);
      } else this.refileRungs(host);
    }
  }

  /**
   * `advanceTo`'s one-bucket step for an empty READY host (no hold; core dims only), whose
   * buckets, blocks and rung bounds are all 0 and stay so: the new bucket, its free bin, its
   * first block and its rungs would be recomputed to what they are. Only the blocks change: those
   * that left the ring are unfiled, a new last block (`newLast`, NaN if none) is filed. About a
   * third of the bench's hosts are empty, and this pass runs over every host each hour.
   */
  private stepEmpty(host: HostRecord, oldFirst: number, first: number, newLast: number): void {
    for (let b = oldFirst; b < first; b++) {
      for (let v = 0; v < BLOCK_VARIANTS; v++) this.leaveBlock(host, this.cellSlot(v, b));
    }
    if (!Number.isNaN(newLast)) this.zeroBlock(host, newLast);
    host.rungBase = this.ringBase;
  }

  /** Whether bucket ab holds no usage on the host and the block `last` has a minimum of 0. */
  private idleAt(host: HostRecord, ab: number, last: number): boolean {
    const o = this.slotOf(ab) * CORE_DIMS;
    const b = this.blockSlotOf(last) * CORE_DIMS;
    for (let k = 0; k < CORE_DIMS; k++) {
      if (host.ringMax[o + k] !== 0 || host.ring[o + k] !== 0 || host.blockMin[b + k] !== 0) {
        return false;
      }
    }
    return true;
  }

  /** Whether the host has no usage in bucket ab (its maximum there is 0 in every core dim). */
  private idleBucket(host: HostRecord, ab: number): boolean {
    const o = this.slotOf(ab) * CORE_DIMS;
    const x = host.ringMax;
    return x[o] === 0 && x[o + 1] === 0 && x[o + 2] === 0 && x[o + 3] === 0;
  }

  /** Block b (the ring's last, one idle bucket) is all zeros: set its bounds and file it. */
  private zeroBlock(host: HostRecord, b: number): void {
    const o = this.blockSlotOf(b) * CORE_DIMS;
    host.blockMin.fill(0, o, o + CORE_DIMS);
    host.blockMax.fill(0, o, o + CORE_DIMS);
    host.blockSuf.fill(0, o, o + CORE_DIMS);
    if (host.bin !== undefined) this.refileBlock(host, b);
  }

  /**
   * Whether the first block keeps its minimum and maximum when the ring's first bucket `left`
   * leaves it (the ring moved by one bucket inside the block): in every core dim the bucket was
   * not the block's extreme, or the next bucket reaches that extreme too. Read before the new
   * bucket takes the slot of the one that left.
   */
  private firstBlockKeeps(host: HostRecord, left: number, first: number): boolean {
    const o = this.blockSlotOf(first) * CORE_DIMS;
    const lo = this.slotOf(left) * CORE_DIMS;
    const no = this.slotOf(left + 1) * CORE_DIMS;
    const rm = host.ring;
    const rx = host.ringMax;
    const bm = host.blockMin;
    const bx = host.blockMax;
    for (let k = 0; k < CORE_DIMS; k++) {
      const m = bm[o + k] as number;
      const x = bx[o + k] as number;
      if (!((rm[lo + k] as number) > m || rm[no + k] === m)) return false;
      if (!((rx[lo + k] as number) < x || rx[no + k] === x)) return false;
    }
    return true;
  }

  /** Whether the first block's minimum or maximum over its buckets in the ring changed. */
  private firstBlockMoved(host: HostRecord, first: number): boolean {
    const o = this.blockSlotOf(first) * CORE_DIMS;
    const was = this.scratchRun;
    const wasMax = this.scratchWasMax;
    for (let k = 0; k < CORE_DIMS; k++) {
      was[k] = host.blockMin[o + k] as number;
      wasMax[k] = host.blockMax[o + k] as number;
    }
    this.computeBlock(host, first);
    for (let k = 0; k < CORE_DIMS; k++) {
      if (was[k] !== host.blockMin[o + k] || wasMax[k] !== host.blockMax[o + k]) return true;
    }
    return false;
  }

  // ---- blocks (see BLOCK_BUCKETS) -----------------------------------------------------------

  /** @internal Absolute block of the ring's first bucket. */
  firstBlock(): number {
    return Math.floor(this.ringBase / BLOCK_BUCKETS);
  }

  /** @internal Absolute block of the ring's last bucket. */
  lastBlock(): number {
    return Math.floor((this.ringBase + this.ringSize - 1) / BLOCK_BUCKETS);
  }

  /** @internal Cell slot of variant v (see BLOCK_REACH) of an absolute block. */
  cellSlot(v: number, b: number): number {
    return v * this.blockSlots + this.blockSlotOf(b);
  }

  /** @internal Cell slot of rung r (see RUNG_BUCKETS). */
  rungSlot(r: number): number {
    return BLOCK_VARIANTS * this.blockSlots + r;
  }

  /** @internal Block slot of an absolute block. */
  blockSlotOf(b: number): number {
    const r = b % this.blockSlots;
    return r < 0 ? r + this.blockSlots : r;
  }

  /**
   * Blocks [lo, hi] (inside the ring's): those the ring cuts (its first and last) from the host's
   * bucket bounds, the whole ones in between with one sweep over the timeline's breakpoints.
   */
  private computeBlocks(host: HostRecord, lo: number, hi: number): void {
    const first = this.firstBlock();
    const last = this.lastBlock();
    const wholeFrom = Math.max(lo, first + 1);
    const wholeTo = Math.min(hi, last - 1);
    if (lo === first) this.computeBlock(host, first);
    if (hi === last && last !== first) this.computeBlock(host, last);
    const len = BLOCK_BUCKETS * this.bucketMs;
    let b = wholeFrom;
    while (b <= wholeTo) {
      const slot = this.blockSlotOf(b);
      const run = Math.min(wholeTo - b + 1, this.blockSlots - slot);
      host.timeline.bucketMinMax(
        b * len,
        len,
        run,
        host.blockMin,
        host.blockMax,
        slot * CORE_DIMS,
        CORE_DIMS,
        CORE_DIMS,
      );
      b += run;
    }
  }

  /** Minimum and maximum over the block's buckets in the ring, from the host's bucket bounds. */
  private computeBlock(host: HostRecord, b: number): void {
    const lo = Math.max(b * BLOCK_BUCKETS, this.ringBase);
    const hi = Math.min((b + 1) * BLOCK_BUCKETS, this.ringBase + this.ringSize);
    const o = this.blockSlotOf(b) * CORE_DIMS;
    const bm = host.blockMin;
    const bx = host.blockMax;
    bm.fill(Number.POSITIVE_INFINITY, o, o + CORE_DIMS);
    bx.fill(Number.NEGATIVE_INFINITY, o, o + CORE_DIMS);
    for (let ab = lo; ab < hi; ab++) {
      const ro = this.slotOf(ab) * CORE_DIMS;
      for (let k = 0; k < CORE_DIMS; k++) {
        const m = host.ring[ro + k] as number;
        if (m < (bm[o + k] as number)) bm[o + k] = m;
        const x = host.ringMax[ro + k] as number;
        if (x > (bx[o + k] as number)) bx[o + k] = x;
      }
    }
  }

  /**
   * Recompute the host's blocks [fromB, toB] (absolute, clipped to the ring's) from its bucket
   * bounds, then the suffix maxima from toB down (stopping once one is unchanged below the blocks
   * whose variants reach the changed ones: every block under it is then unchanged too),
   * re-filing READY hosts whose block cells moved.
   */
  private refreshBlocks(host: HostRecord, fromB: number, toB: number): void {
    if (Number.isNaN(this.ringBase)) return;
    const first = this.firstBlock();
    const last = this.lastBlock();
    const lo = Math.max(fromB, first);
    const hi = Math.min(toB, last);
    if (lo > hi) return;
    this.computeBlocks(host, lo, hi);
    const bx = host.blockMax;
    const suf = host.blockSuf;
    let c0 = 0;
    let c1 = 0;
    let c2 = 0;
    let c3 = 0;
    if (hi < last) {
      const o = this.blockSlotOf(hi + 1) * CORE_DIMS;
      c0 = suf[o] as number;
      c1 = suf[o + 1] as number;
      c2 = suf[o + 2] as number;
      c3 = suf[o + 3] as number;
    }
    const filed = host.bin !== undefined;
    for (let b = hi; b >= first; b--) {
      const o = this.blockSlotOf(b) * CORE_DIMS;
      const v0 = Math.max(bx[o] as number, c0);
      const v1 = Math.max(bx[o + 1] as number, c1);
      const v2 = Math.max(bx[o + 2] as number, c2);
      const v3 = Math.max(bx[o + 3] as number, c3);
      const changed = v0 !== suf[o] || v1 !== suf[o + 1] || v2 !== suf[o + 2] || v3 !== suf[o + 3];
      if (!changed && b < lo - MAX_REACH) break;
      suf[o] = v0;
      suf[o + 1] = v1;
      suf[o + 2] = v2;
      suf[o + 3] = v3;
      c0 = v0;
      c1 = v1;
      c2 = v2;
      c3 = v3;
      // below the blocks whose variants reach the changed ones only the suffix (κ) moved
      if (filed) {
        if (b < lo - MAX_REACH) this.rekappaBlock(host, b);
        else this.refileBlock(host, b);
      }
    }
  }

  /** Recompute every block of the host from its bucket bounds and re-file it (ring moved far). */
  private rebuildBlocks(host: HostRecord): void {
    this.unfileBlocks(host);
    if (Number.isNaN(this.ringBase)) return;
    const first = this.firstBlock();
    const last = this.lastBlock();
    this.computeBlocks(host, first, last);
    const bx = host.blockMax;
    const suf = host.blockSuf;
    for (let b = last; b >= first; b--) {
      const o = this.blockSlotOf(b) * CORE_DIMS;
      const n = b < last ? this.blockSlotOf(b + 1) * CORE_DIMS : -1;
      for (let k = 0; k < CORE_DIMS; k++) {
        const x = bx[o + k] as number;
        suf[o + k] = n < 0 ? x : Math.max(x, suf[n + k] as number);
      }
    }
    if (host.bin !== undefined) this.fileBlocks(host);
  }

  /**
   * File a READY host of absolute block b in the cell each variant calls for: free level at the
   * variant's lower bound (see BLOCK_REACH) × κ of the suffix maximum.
   */
  private refileBlock(host: HostRecord, b: number): void {
    const cls = host.cls;
    const slot = this.blockSlotOf(b);
    const o = slot * CORE_DIMS;
    const fk = suffixKappaBin(host, o);
    const a0 = cls.alloc[0] as number;
    const a1 = cls.alloc[1] as number;
    const ringMax = host.ringMax;
    const bx = host.blockMax;
    // the columns read cpu and memory only
    let m0 = host.blockMin[o] as number;
    let m1 = host.blockMin[o + 1] as number;
    // the variants' lower bounds only grow: each level is searched from the one before it (the
    // first from where the host is filed)
    const filed = host.blockCell[slot] as number;
    let g0 = FINE_LEVELS - 1;
    let g1 = FINE_LEVELS - 1;
    if (filed >= 0) {
      const c = (filed / FINE_KAPPA) | 0;
      g0 = (c / FINE_LEVELS) | 0;
      g1 = c - g0 * FINE_LEVELS;
    }
    const after = (b + 1) * BLOCK_BUCKETS;
    const end = this.ringBase + this.ringSize - 1;
    let t = after;
    for (let v = 0; v < BLOCK_VARIANTS; v++) {
      const last = Math.min(after + (BLOCK_REACH[v] as number), end + 1) - 1;
      // buckets [after, t) are folded in: a block the range reaches the end of is folded from
      // its maximum (its buckets before t are among those), others bucket by bucket
      while (t <= last) {
        const tb = Math.floor(t / BLOCK_BUCKETS);
        const blockEnd = Math.min((tb + 1) * BLOCK_BUCKETS - 1, end);
        let x0: number;
        let x1: number;
        if (blockEnd <= last) {
          const bo = this.blockSlotOf(tb) * CORE_DIMS;
          x0 = bx[bo] as number;
          x1 = bx[bo + 1] as number;
          t = blockEnd + 1;
        } else {
          const ro = this.slotOf(t) * CORE_DIMS;
          x0 = ringMax[ro] as number;
          x1 = ringMax[ro + 1] as number;
          t++;
        }
        if (x0 > m0) m0 = x0;
        if (x1 > m1) m1 = x1;
      }
      g0 = freeLevelNear(a0, m0, g0);
      g1 = freeLevelNear(a1, m1, g1);
      const cell = (g0 * FINE_LEVELS + g1) * FINE_KAPPA + fk;
      const at = v * this.blockSlots + slot;
      if (host.blockCell[at] === cell) continue;
      this.moveCell(host, at, cell);
    }
  }

  /**
   * Re-file a READY host of absolute block b whose suffix maximum changed but whose variants'
   * lower bounds did not: each variant keeps its column and takes the new κ bin.
   */
  private rekappaBlock(host: HostRecord, b: number): void {
    const slot = this.blockSlotOf(b);
    const fk = suffixKappaBin(host, slot * CORE_DIMS);
    for (let v = 0; v < BLOCK_VARIANTS; v++) {
      const at = v * this.blockSlots + slot;
      const filed = host.blockCell[at] as number;
      if (filed < 0) {
        this.refileBlock(host, b);
        return;
      }
      const kb = filed % FINE_KAPPA;
      // the variants share the κ bin: none moves if the first does not
      if (kb === fk) return;
      this.moveCell(host, at, filed - kb + fk);
    }
  }

  /** File a READY host in the block cells of every block of the ring, and in its rung cells. */
  private fileBlocks(host: HostRecord): void {
    if (Number.isNaN(this.ringBase)) return;
    const last = this.lastBlock();
    for (let b = this.firstBlock(); b <= last; b++) this.refileBlock(host, b);
    this.refileRungs(host);
  }

  /**
   * The host's rung bounds from its bucket maxima, exactly, into `host.rungLb` (per rung, the
   * maxima of the buckets base+1 … base+RUNG_BUCKETS[r] its windows cover whole; the usage at the
   * present is taken with it when filing) and `host.rungUb` (the maxima of buckets
   * base … base+RUNG_BUCKETS[r+1], or to the ring's end).
   */
  private foldRungs(host: HostRecord): void {
    const base = this.ringBase;
    const end = base + this.ringSize - 1;
    const f = this.blockSlotOf(this.firstBlock()) * CORE_DIMS;
    const suf = host.blockSuf;
    const lb = host.rungLb;
    const ub = host.rungUb;
    // running maximum of buckets base+1 … base+x
    const run = this.scratchRun;
    run.fill(0);
    let x = 0;
    const first = host.ringMax;
    const o0 = this.slotOf(base) * CORE_DIMS;
    for (let r = 0; r < RUNGS; r++) {
      const lbTo = Math.min(RUNG_BUCKETS[r] as number, end - base);
      if (lbTo > x) {
        this.foldBuckets(host, base + x + 1, base + lbTo, run);
        x = lbTo;
      }
      const o = r * CORE_DIMS;
      for (let k = 0; k < CORE_DIMS; k++) lb[o + k] = run[k] as number;
      // (no read past the array's end: V8 takes a slow path for it)
      const next = r + 1 < RUNGS ? (RUNG_BUCKETS[r + 1] as number) : end;
      if (base + next >= end) {
        for (let k = 0; k < CORE_DIMS; k++) ub[o + k] = suf[f + k] as number;
        continue;
      }
      // the upper bound runs ahead to base+next (the next rung's lower bound folds it in anyway)
      this.foldBuckets(host, base + x + 1, base + next, run);
      x = next;
      for (let k = 0; k < CORE_DIMS; k++) {
        ub[o + k] = Math.max(first[o0 + k] as number, run[k] as number);
      }
    }
  }

  /**
   * The rung bounds after the ring moved by one bucket, from those before it, reading only the
   * buckets that enter the rungs' windows: exact for the rungs within SHIFT_EXACT buckets of the
   * present (read whole), valid for the others — the upper bound takes the entering bucket's
   * maximum (its old window and that bucket cover the new window), the lower bound keeps its value
   * when the bucket that left was below it (the maximum it stood for is still in the window), else
   * falls back to the exact near part. So a host moves only when its bounds cross a level or κ
   * bin edge, and every change of the host makes its bounds exact again (`foldRungs`). Returns
   * whether any bound changed (if none did, nor did the host's cells: its usage at the present is
   * taken in when its present piece ends, by `refileDue`).
   */
  private shiftRungs(host: HostRecord): boolean {
    const base = this.ringBase;
    host.rungBase = base;
    const R = this.ringSize;
    const span = R - 1;
    const rmax = host.ringMax;
    const lb = host.rungLb;
    const ub = host.rungUb;
    const f = this.blockSlotOf(this.firstBlock()) * CORE_DIMS;
    const suf = host.blockSuf;
    const near = Math.min(SHIFT_EXACT, span);
    const s0 = this.slotOf(base);
    const o0 = s0 * CORE_DIMS;
    // the present bucket (the one that left the lower bounds' windows)
    const x0 = rmax[o0] as number;
    const x1 = rmax[o0 + 1] as number;
    const x2 = rmax[o0 + 2] as number;
    const x3 = rmax[o0 + 3] as number;
    // prefix maxima of buckets base+1 … base+n for n ≤ near (dims unrolled: this runs for every
    // READY host on every hour the clock moves)
    const pre = this.scratchPrefix;
    let m0 = 0;
    let m1 = 0;
    let m2 = 0;
    let m3 = 0;
    for (let n = 1; n <= near; n++) {
      let s = s0 + n;
      if (s >= R) s -= R;
      const o = s * CORE_DIMS;
      const v0 = rmax[o] as number;
      const v1 = rmax[o + 1] as number;
      const v2 = rmax[o + 2] as number;
      const v3 = rmax[o + 3] as number;
      if (v0 > m0) m0 = v0;
      if (v1 > m1) m1 = v1;
      if (v2 > m2) m2 = v2;
      if (v3 > m3) m3 = v3;
      const p = n * CORE_DIMS;
      pre[p] = m0;
      pre[p + 1] = m1;
      pre[p + 2] = m2;
      pre[p + 3] = m3;
    }
    let changed = false;
    for (let r = 0; r < RUNGS; r++) {
      const o = r * CORE_DIMS;
      const lbTo = Math.min(RUNG_BUCKETS[r] as number, span);
      if (lbTo > 0) {
        let v0: number;
        let v1: number;
        let v2: number;
        let v3: number;
        if (lbTo <= near) {
          const p = lbTo * CORE_DIMS;
          v0 = pre[p] as number;
          v1 = pre[p + 1] as number;
          v2 = pre[p + 2] as number;
          v3 = pre[p + 3] as number;
        } else {
          // `base` is the bucket that left (it was base+1 before), base+lbTo the one that
          // entered: a bound the leaving bucket was below still stands, else the exact near part
          let s = s0 + lbTo;
          if (s >= R) s -= R;
          const e = s * CORE_DIMS;
          const w0 = lb[o] as number;
          const w1 = lb[o + 1] as number;
          const w2 = lb[o + 2] as number;
          const w3 = lb[o + 3] as number;
          v0 = Math.max(rmax[e] as number, x0 < w0 ? w0 : m0);
          v1 = Math.max(rmax[e + 1] as number, x1 < w1 ? w1 : m1);
          v2 = Math.max(rmax[e + 2] as number, x2 < w2 ? w2 : m2);
          v3 = Math.max(rmax[e + 3] as number, x3 < w3 ? w3 : m3);
        }
        if (v0 !== lb[o] || v1 !== lb[o + 1] || v2 !== lb[o + 2] || v3 !== lb[o + 3]) {
          lb[o] = v0;
          lb[o + 1] = v1;
          lb[o + 2] = v2;
          lb[o + 3] = v3;
          changed = true;
        }
      }
      const next = r + 1 < RUNGS ? (RUNG_BUCKETS[r + 1] as number) : span;
      let u0: number;
      let u1: number;
      let u2: number;
      let u3: number;
      if (next >= span) {
        u0 = suf[f] as number;
        u1 = suf[f + 1] as number;
        u2 = suf[f + 2] as number;
        u3 = suf[f + 3] as number;
      } else if (next <= near) {
        const p = next * CORE_DIMS;
        u0 = Math.max(x0, pre[p] as number);
        u1 = Math.max(x1, pre[p + 1] as number);
        u2 = Math.max(x2, pre[p + 2] as number);
        u3 = Math.max(x3, pre[p + 3] as number);
      } else {
        let s = s0 + next;
        if (s >= R) s -= R;
        const e = s * CORE_DIMS;
        u0 = Math.max(ub[o] as number, rmax[e] as number);
        u1 = Math.max(ub[o + 1] as number, rmax[e + 1] as number);
        u2 = Math.max(ub[o + 2] as number, rmax[e + 2] as number);
        u3 = Math.max(ub[o + 3] as number, rmax[e + 3] as number);
      }
      if (u0 !== ub[o] || u1 !== ub[o + 1] || u2 !== ub[o + 2] || u3 !== ub[o + 3]) {
        ub[o] = u0;
        ub[o + 1] = u1;
        ub[o + 2] = u2;
        ub[o + 3] = u3;
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Fold the host's bucket maxima of absolute buckets [a, b] (inside the ring) into `acc`, whole
   * blocks from their block maxima.
   */
  private foldBuckets(host: HostRecord, a: number, b: number, acc: Float64Array): void {
    const ringMax = host.ringMax;
    const bx = host.blockMax;
    let t = a;
    while (t <= b) {
      let o: number;
      const src = t % BLOCK_BUCKETS === 0 && t + BLOCK_BUCKETS - 1 <= b ? bx : ringMax;
      if (src === bx) {
        o = this.blockSlotOf(t / BLOCK_BUCKETS) * CORE_DIMS;
        t += BLOCK_BUCKETS;
      } else {
        o = this.slotOf(t) * CORE_DIMS;
        t++;
      }
      for (let k = 0; k < CORE_DIMS; k++) {
        const v = src[o + k] as number;
        if (v > (acc[k] as number)) acc[k] = v;
      }
    }
  }

  /** Re-file a READY host in its rung cells from exact bounds (after a change or a new ring). */
  private refileRungs(host: HostRecord): void {
    if (host.bin === undefined || Number.isNaN(this.now) || Number.isNaN(this.ringBase)) return;
    this.foldRungs(host);
    host.rungBase = this.ringBase;
    this.fileRungs(host);
  }

  /**
   * File a READY host in the rung cells its stored rung bounds and its usage at the present call
   * for: free level at the larger of the two × κ of the upper bound.
   */
  private fileRungs(host: HostRecord): void {
    const u = host.now;
    const now = this.now;
    if (!(now >= (u[0] as number) && now < (u[1] as number))) host.timeline.pieceAt(now, u);
    const lb = host.rungLb;
    const ub = host.rungUb;
    const cls = host.cls;
    const a0 = cls.alloc[0] as number;
    const a1 = cls.alloc[1] as number;
    const p0 = u[2] as number;
    const p1 = u[3] as number;
    // the lower bounds grow with the rung: each rung's levels are found from the previous ones
    let g0 = freeLevel(a0, Math.max(lb[0] as number, p0));
    let g1 = freeLevel(a1, Math.max(lb[1] as number, p1));
    for (let r = 0; r < RUNGS; r++) {
      const o = r * CORE_DIMS;
      let kappa = 0;
      for (let k = 0; k < CORE_DIMS; k++) {
        const w = cls.wn[k] as number;
        if (w > 0) kappa += (w * (ub[o + k] as number)) / (cls.alloc[k] as number);
      }
      g0 = freeLevelNear(a0, Math.max(lb[o] as number, p0), g0);
      g1 = freeLevelNear(a1, Math.max(lb[o + 1] as number, p1), g1);
      const column = g0 * FINE_LEVELS + g1;
      const cell = column * FINE_KAPPA + fineKappaOf(kappa);
      const slot = this.rungSlot(r);
      if (host.blockCell[slot] === cell) continue;
      this.moveCell(host, slot, cell);
    }
  }

  private unfileBlocks(host: HostRecord): void {
    for (let slot = 0; slot < this.cellSlots; slot++) {
      if ((host.blockCell[slot] as number) >= 0) this.leaveBlock(host, slot);
    }
  }

  /**
   * Move a host to another cell of a slot (or file it there if it was in none), the column counts
   * left alone when only the κ bin changes (most moves: a commit raises the suffix maxima of every
   * block before its end).
   */
  private moveCell(host: HostRecord, slot: number, cell: number): void {
    const filed = host.blockCell[slot] as number;
    if (filed < 0) {
      this.enterBlock(host, slot, cell);
      return;
    }
    const cls = host.cls;
    const cells = cls.blockCells[slot] as (number[] | undefined)[];
    this.takeOutOfCell(cls, cells, slot, filed, host.num);
    const oldCol = (filed / FINE_KAPPA) | 0;
    const col = (cell / FINE_KAPPA) | 0;
    if (col !== oldCol) {
      const counts = cls.blockColumnCount;
      const cc = slot * FINE_COLUMNS;
      counts[cc + oldCol] = (counts[cc + oldCol] as number) - 1;
      counts[cc + col] = (counts[cc + col] as number) + 1;
    }
    this.putInCell(cls, cells, slot, cell, host.num);
    host.blockCell[slot] = cell;
  }

  private enterBlock(host: HostRecord, slot: number, cell: number): void {
    const cls = host.cls;
    let cells = cls.blockCells[slot];
    if (cells === undefined) {
      cells = new Array(FINE_COLUMNS * FINE_KAPPA).fill(undefined);
      cls.blockCells[slot] = cells;
    }
    this.putInCell(cls, cells, slot, cell, host.num);
    const cc = slot * FINE_COLUMNS + ((cell / FINE_KAPPA) | 0);
    cls.blockColumnCount[cc] = (cls.blockColumnCount[cc] as number) + 1;
    host.blockCell[slot] = cell;
  }

  private leaveBlock(host: HostRecord, slot: number): void {
    const cell = host.blockCell[slot] as number;
    if (cell < 0) return;
    const cls = host.cls;
    this.takeOutOfCell(cls, cls.blockCells[slot] as (number[] | undefined)[], slot, cell, host.num);
    const cc = slot * FINE_COLUMNS + ((cell / FINE_KAPPA) | 0);
    cls.blockColumnCount[cc] = (cls.blockColumnCount[cc] as number) - 1;
    host.blockCell[slot] = -1;
    this.cellPos[host.num * this.cellSlots + slot] = -1;
  }

  /**
   * Swap-remove host number `num` from block or rung cell `cell` of a slot (`cells`: the slot's):
   * the last host takes its place (and its position), and the cell's mask bit goes if it empties.
   * The column counts and the host's own record are the caller's.
   */
  private takeOutOfCell(
    cls: HostClass,
    cells: (number[] | undefined)[],
    slot: number,
    cell: number,
    num: number,
  ): void {
    const list = cells[cell] as number[];
    const cellPos = this.cellPos;
    const slots = this.cellSlots;
    const last = list.pop() as number;
    if (last !== num) {
      const pos = cellPos[num * slots + slot] as number;
      list[pos] = last;
      cellPos[last * slots + slot] = pos;
    } else if (list.length === 0) {
      const col = (cell / FINE_KAPPA) | 0;
      const w = (slot * FINE_KAPPA + (cell - col * FINE_KAPPA)) * FINE_MASK_WORDS + (col >>> 5);
      cls.blockMask[w] = (cls.blockMask[w] as number) & ~(1 << (col & 31));
    }
  }

  /** Append host number `num` to cell `cell` of a slot (made on its first host), with its mask bit. */
  private putInCell(
    cls: HostClass,
    cells: (number[] | undefined)[],
    slot: number,
    cell: number,
    num: number,
  ): void {
    let list = cells[cell];
    if (list === undefined) {
      list = [];
      cells[cell] = list;
    }
    this.cellPos[num * this.cellSlots + slot] = list.length;
    list.push(num);
    if (list.length === 1) {
      const col = (cell / FINE_KAPPA) | 0;
      const w = (slot * FINE_KAPPA + (cell - col * FINE_KAPPA)) * FINE_MASK_WORDS + (col >>> 5);
      cls.blockMask[w] = (cls.blockMask[w] as number) | (1 << (col & 31));
    }
  }

  // ---- internals used by the placer ---------------------------------------------------------

  /** @internal Ring slot of an absolute bucket. */
  slotOf(ab: number): number {
    const r = ab % this.ringSize;
    return r < 0 ? r + this.ringSize : r;
  }

  /** @internal Whether an absolute bucket is inside the ring. */
  inRing(ab: number): boolean {
    return ab >= this.ringBase && ab < this.ringBase + this.ringSize;
  }

  /** @internal The chunk minimum for (bin, chunk, slot), recomputed if stale; returns its offset. */
  chunkMinAt(bin: Bin, chunk: number, slot: number): number {
    const R = this.ringSize;
    const vi = chunk * R + slot;
    const off = vi * CORE_DIMS;
    if (bin.valid[vi] === BOUNDS_EXACT) return off;
    const cm = bin.chunkMin;
    const cx = bin.chunkMax;
    let m0 = Number.POSITIVE_INFINITY;
    let m1 = m0;
    let m2 = m0;
    let m3 = m0;
    let x0 = Number.NEGATIVE_INFINITY;
    let x1 = x0;
    let x2 = x0;
    let x3 = x0;
    const hosts = bin.hosts;
    const end = Math.min(hosts.length, (chunk + 1) * CHUNK_SIZE);
    const ro = slot * CORE_DIMS;
    for (let p = chunk * CHUNK_SIZE; p < end; p++) {
      const h = hosts[p] as HostRecord;
      const ring = h.ring;
      const a = ring[ro] as number;
      const b = ring[ro + 1] as number;
      const c = ring[ro + 2] as number;
      const d = ring[ro + 3] as number;
      if (a < m0) m0 = a;
      if (b < m1) m1 = b;
      if (c < m2) m2 = c;
      if (d < m3) m3 = d;
      const rx = h.ringMax;
      const e = rx[ro] as number;
      const f = rx[ro + 1] as number;
      const g = rx[ro + 2] as number;
      const k = rx[ro + 3] as number;
      if (e > x0) x0 = e;
      if (f > x1) x1 = f;
      if (g > x2) x2 = g;
      if (k > x3) x3 = k;
    }
    cm[off] = m0;
    cm[off + 1] = m1;
    cm[off + 2] = m2;
    cm[off + 3] = m3;
    cx[off] = x0;
    cx[off + 1] = x1;
    cx[off + 2] = x2;
    cx[off + 3] = x3;
    bin.valid[vi] = BOUNDS_EXACT;
    return off;
  }

  /**
   * @internal The chunk's minimum usage at instant t (offset into `bin.nowMin`), or -1 if unknown.
   * Recomputed only for instants near the present (`now`), so other requests cannot thrash it.
   */
  chunkNowAt(bin: Bin, chunk: number, t: number): number {
    const off = chunk * CORE_DIMS;
    if (t >= (bin.nowFrom[chunk] as number) && t < (bin.nowTo[chunk] as number)) return off;
    if (!(Math.abs(t - this.now) <= this.bucketMs)) return -1;
    let from = Number.NEGATIVE_INFINITY;
    let to = Number.POSITIVE_INFINITY;
    let m0 = Number.POSITIVE_INFINITY;
    let m1 = m0;
    let m2 = m0;
    let m3 = m0;
    const hosts = bin.hosts;
    const end = Math.min(hosts.length, (chunk + 1) * CHUNK_SIZE);
    for (let p = chunk * CHUNK_SIZE; p < end; p++) {
      const h = hosts[p] as HostRecord;
      const u = h.now;
      if (!(t >= (u[0] as number) && t < (u[1] as number))) h.timeline.pieceAt(t, u);
      if ((u[0] as number) > from) from = u[0] as number;
      if ((u[1] as number) < to) to = u[1] as number;
      if ((u[2] as number) < m0) m0 = u[2] as number;
      if ((u[3] as number) < m1) m1 = u[3] as number;
      if ((u[4] as number) < m2) m2 = u[4] as number;
      if ((u[5] as number) < m3) m3 = u[5] as number;
    }
    const nm = bin.nowMin;
    nm[off] = m0;
    nm[off + 1] = m1;
    nm[off + 2] = m2;
    nm[off + 3] = m3;
    bin.nowFrom[chunk] = from;
    bin.nowTo[chunk] = to;
    return off;
  }

  /** @internal The column minimum for (class, free bin, slot), recomputed if stale; returns its offset. */
  columnMinAt(cls: HostClass, fbin: number, slot: number): number {
    const vi = fbin * this.ringSize + slot;
    const off = vi * CORE_DIMS;
    if (cls.colValid[vi] === 1) return off;
    let m0 = Number.POSITIVE_INFINITY;
    let m1 = m0;
    let m2 = m0;
    let m3 = m0;
    const bins = cls.bins;
    for (let kb = 0; kb < KAPPA_BINS; kb++) {
      if (cls.kCount[kb] === 0) continue;
      const bin = bins[kb * FREE_BINS + fbin];
      if (bin === undefined) continue;
      const chunks = Math.ceil(bin.hosts.length / CHUNK_SIZE);
      for (let c = 0; c < chunks; c++) {
        const o = this.chunkMinAt(bin, c, slot);
        const cm = bin.chunkMin;
        if ((cm[o] as number) < m0) m0 = cm[o] as number;
        if ((cm[o + 1] as number) < m1) m1 = cm[o + 1] as number;
        if ((cm[o + 2] as number) < m2) m2 = cm[o + 2] as number;
        if ((cm[o + 3] as number) < m3) m3 = cm[o + 3] as number;
      }
    }
    const col = cls.colMin;
    col[off] = m0;
    col[off + 1] = m1;
    col[off + 2] = m2;
    col[off + 3] = m3;
    cls.colValid[vi] = 1;
    return off;
  }

  /** @internal */
  mustHost(id: string): HostRecord {
    const h = this.hostMap.get(id);
    if (h === undefined) throw new UnknownHostError(id);
    return h;
  }

  /** @internal */
  mustHold(id: string): HoldRecord {
    const h = this.holdMap.get(id);
    if (h === undefined) throw new UnknownHoldError(id);
    return h;
  }

  /** @internal Demand vector for the host, or throw CapacityExceededError with where it binds. */
  private checkedDemand(host: HostRecord, window: TimeWindow, resources: Resources): Float64Array {
    const demand = demandFor(host, resources);
    if (typeof demand === "string") {
      throw new CapacityExceededError(
        host.id,
        demand,
        get(resources, demand),
        window.start,
        window.end,
      );
    }
    // the common case (it fits) without building the violation's report
    if (host.timeline.fits(window.start, window.end, demand, host.limit)) return demand;
    const v = host.timeline.violation(window.start, window.end, demand, host.limit);
    if (v !== undefined) {
      throw new CapacityExceededError(host.id, dimName(host, v.dim), v.shortBy, v.start, v.end);
    }
    return demand;
  }

  private vectorToResources(host: HostRecord, f: (k: number) => number): Resources {
    const base = { cpuMillis: f(0), memoryMib: f(1), diskGib: f(2), gpus: f(3) };
    if (host.extNames.length === 0) return base;
    const extended: Record<string, number> = {};
    host.extNames.forEach((n, i) => {
      extended[n] = f(CORE_DIMS + i);
    });
    return { ...base, extended };
  }

  private indexLabels(host: HostRecord): void {
    this.labelMatches.forget(host.num);
    for (const [k, v] of host.labels) {
      let byValue = this.labelIndex.get(k);
      if (byValue === undefined) {
        byValue = new Map();
        this.labelIndex.set(k, byValue);
      }
      let set = byValue.get(v);
      if (set === undefined) {
        set = new Set();
        byValue.set(v, set);
      }
      set.add(host);
    }
  }

  private unindexLabels(host: HostRecord): void {
    for (const [k, v] of host.labels) {
      const byValue = this.labelIndex.get(k);
      const set = byValue?.get(v);
      set?.delete(host);
      if (set !== undefined && set.size === 0) byValue?.delete(v);
      if (byValue !== undefined && byValue.size === 0) this.labelIndex.delete(k);
    }
  }

  private initRing(base: number): void {
    this.ringBase = base;
    for (const host of this.hostMap.values()) this.fillRing(host, base, base + this.ringSize);
    for (let r = 0; r < this.ringSize; r++) this.invalidateSlotEverywhere(r);
    for (const host of this.hostMap.values()) this.rebin(host);
    for (const host of this.hostMap.values()) this.rebuildBlocks(host);
  }

  /** Recompute the host's bucket minima for absolute buckets [from, to) ∩ ring. */
  private fillRing(host: HostRecord, from: number, to: number): void {
    if (Number.isNaN(this.ringBase)) return;
    const lo = Math.max(from, this.ringBase);
    const hi = Math.min(to, this.ringBase + this.ringSize);
    let ab = lo;
    while (ab < hi) {
      const slot = this.slotOf(ab);
      const run = Math.min(hi - ab, this.ringSize - slot);
      host.timeline.bucketMinMax(
        ab * this.bucketMs,
        this.bucketMs,
        run,
        host.ring,
        host.ringMax,
        slot * CORE_DIMS,
        CORE_DIMS,
        CORE_DIMS,
      );
      ab += run;
    }
    if (lo < hi) this.usageSummary.refresh(this, host, lo, hi);
  }

  private invalidateSlotEverywhere(slot: number): void {
    const R = this.ringSize;
    for (const cls of this.classList) {
      for (const bin of cls.bins) {
        if (bin === undefined) continue;
        const chunks = Math.ceil(bin.hosts.length / CHUNK_SIZE);
        for (let c = 0; c < chunks; c++) bin.valid[c * R + slot] = BOUNDS_STALE;
      }
      for (let f = 0; f < FREE_BINS; f++) cls.colValid[f * R + slot] = 0;
    }
  }

  /**
   * Keep bounds and bins in step after the host's usage changed over [start, end). Chunk bounds
   * are maintained exactly where that is cheap: a bucket minimum that fell (or maximum that rose)
   * is folded in; one that rose from the chunk's minimum (or fell from its maximum) makes that
   * slot stale, recomputed lazily.
   */
  private afterChange(host: HostRecord, start: number, end: number, grew: boolean): void {
    host.now[1] = Number.NEGATIVE_INFINITY;
    const empty = host.dims === CORE_DIMS && host.timeline.isEmpty();
    this.emptyAt[host.num] = empty ? 1 : 0;
    if (empty && host.state === "READY") this.queueEmpty(host);
    if (host.bin !== undefined)
      host.bin.nowTo[Math.floor(host.pos / CHUNK_SIZE)] = Number.NEGATIVE_INFINITY;
    const ms = this.bucketMs;
    const fromAb = Math.floor(start / ms);
    const toAb = Math.ceil(end / ms);
    const hasRing = !Number.isNaN(this.ringBase);
    const R = this.ringSize;
    const lo = hasRing ? Math.max(fromAb, this.ringBase) : 0;
    const hi = hasRing ? Math.min(toAb, this.ringBase + R) : 0;
    const oldMin = this.scratchMin;
    const oldMax = this.scratchMax;
    for (let ab = lo; ab < hi; ab++) {
      const ro = this.slotOf(ab) * CORE_DIMS;
      const so = (ab - lo) * CORE_DIMS;
      for (let k = 0; k < CORE_DIMS; k++) {
        oldMin[so + k] = host.ring[ro + k] as number;
        oldMax[so + k] = host.ringMax[ro + k] as number;
      }
    }
    if (hasRing) {
      this.fillRing(host, fromAb, toAb);
      this.refreshBlocks(
        host,
        Math.floor(Math.max(fromAb, lo) / BLOCK_BUCKETS),
        Math.floor((Math.min(toAb, this.ringBase + R) - 1) / BLOCK_BUCKETS),
      );
    }
    // the exact all-time peak (a release may lower it, a commit raise it)
    host.timeline.peakAll(host.peakAll);
    const hot = this.hotPools[host.num >>> HOT_POOL_SHIFT] as Float64Array;
    const peakAt = hotAt(host.num) + HOT_PEAK;
    for (let k = 0; k < CORE_DIMS; k++) hot[peakAt + k] = host.peakAll[k] as number;
    const binBefore = host.bin;
    const posBefore = host.pos;
    // A release that ended by the present (the common one) changes no usage from the present on:
    // the fine column and the present piece's end stand (only κ may fall), the rungs' lower
    // bounds stand and their upper bounds may only be too high, which is valid.
    const ended = !grew && end <= this.now;
    this.rekappa(host, ended);
    const past = ended && toAb <= this.ringBase + 1;
    if (!(past && host.rungBase === this.ringBase)) this.refileRungs(host);
    const bin = host.bin;
    if (!hasRing || bin === undefined || bin !== binBefore || host.pos !== posBefore) return;
    // the host stayed in its chunk (a move already folded its new bounds in)
    const chunk = Math.floor(host.pos / CHUNK_SIZE);
    const cls = host.cls;
    const colBase = (bin.index % FREE_BINS) * R;
    const cm = bin.chunkMin;
    const cx = bin.chunkMax;
    for (let ab = lo; ab < hi; ab++) {
      const slot = this.slotOf(ab);
      const ro = slot * CORE_DIMS;
      const so = (ab - lo) * CORE_DIMS;
      const vi = chunk * R + slot;
      if (bin.valid[vi] !== BOUNDS_STALE) {
        // a slot stays exact unless the host held an extreme and moved away from it: then its
        // bounds are recomputed when read (`chunkMinAt`)
        const off = vi * CORE_DIMS;
        let loose = false;
        for (let k = 0; k < CORE_DIMS; k++) {
          const nm = host.ring[ro + k] as number;
          const om = oldMin[so + k] as number;
          const c = cm[off + k] as number;
          if (nm < c) cm[off + k] = nm;
          else if (nm > om && om <= c) loose = true;
          const nx = host.ringMax[ro + k] as number;
          const ox = oldMax[so + k] as number;
          const d = cx[off + k] as number;
          if (nx > d) cx[off + k] = nx;
          else if (nx < ox && ox >= d) loose = true;
        }
        if (loose) bin.valid[vi] = BOUNDS_STALE;
      }
      if (cls.colValid[colBase + slot] === 1) {
        // a column minimum that only stays low is still a valid bound
        const off = (colBase + slot) * CORE_DIMS;
        for (let k = 0; k < CORE_DIMS; k++) {
          const v = host.ring[ro + k] as number;
          if (v < (cls.colMin[off + k] as number)) cls.colMin[off + k] = v;
        }
      }
    }
  }

  /** Fold a host's bucket bounds into a chunk's valid slots (the host joined the chunk). */
  private foldInto(bin: Bin, chunk: number, host: HostRecord): void {
    const R = this.ringSize;
    const cm = bin.chunkMin;
    const cx = bin.chunkMax;
    const ring = host.ring;
    const ringMax = host.ringMax;
    for (let r = 0; r < R; r++) {
      const vi = chunk * R + r;
      if (bin.valid[vi] === BOUNDS_STALE) continue;
      const off = vi * CORE_DIMS;
      const ro = r * CORE_DIMS;
      for (let k = 0; k < CORE_DIMS; k++) {
        const v = ring[ro + k] as number;
        if (v < (cm[off + k] as number)) cm[off + k] = v;
        const x = ringMax[ro + k] as number;
        if (x > (cx[off + k] as number)) cx[off + k] = x;
      }
    }
  }

  /** A chunk lost a host: its bounds stay valid (over a superset) but loosen; refresh now and then. */
  private loosen(bin: Bin, chunk: number): void {
    const n = (bin.loose[chunk] as number) + 1;
    if (n >= LOOSE_LIMIT) {
      bin.loose[chunk] = 0;
      bin.valid.fill(BOUNDS_STALE, chunk * this.ringSize, (chunk + 1) * this.ringSize);
    } else bin.loose[chunk] = n;
  }

  /** `ended`: the change removed usage that ended by the present (see `rebin`). */
  private rekappa(host: HostRecord, ended = false): void {
    const cls = host.cls;
    let kappa = 0;
    for (let k = 0; k < CORE_DIMS; k++) {
      const w = cls.wn[k] as number;
      if (w > 0) kappa += (w * (host.peakAll[k] as number)) / (cls.alloc[k] as number);
    }
    host.kappa = kappa;
    this.kappaAt[host.num] = kappa;
    this.rebin(host, true, ended);
  }

  /**
   * The host's fine cell: its free cpu and memory levels at the present (`now`) × fine κ bin.
   * The usage is constant on the timeline piece containing `now`, until `host.colUntil`; the
   * host is queued to be re-filed when `advanceTo` passes that instant (and any change re-files
   * it), so for every start in `[now, fineValidUntil())` each host's level is exact.
   */
  private fineCellOf(host: HostRecord): number {
    let column = FINE_COLUMNS - 1;
    const now = this.now;
    const stamp = ++this.fineStamps;
    host.colStamp = stamp;
    if (Number.isNaN(now)) {
      // no present yet: file at the top, to be re-filed on the first `advanceTo`
      host.colUntil = Number.NEGATIVE_INFINITY;
    } else {
      const piece = this.scratchPiece;
      host.timeline.pieceAt(now, piece);
      host.colUntil = piece[1] as number;
      const alloc = host.cls.alloc;
      column =
        freeLevel(alloc[0] as number, piece[2] as number) * FINE_LEVELS +
        freeLevel(alloc[1] as number, piece[3] as number);
    }
    if (host.colUntil !== Number.POSITIVE_INFINITY) this.refileAt(host.colUntil, host, stamp);
    return column * FINE_KAPPA + fineKappaOf(host.kappa);
  }

  /**
   * Queue a host to be re-filed at time t (a binary min-heap; stale entries are skipped). Three
   * parallel arrays, not a `MinHeap` of entries: the heap holds every stale entry until it reaches
   * the top, and sifting entry objects (a closure call and a cache miss per comparison) made the
   * clock's advance ~30% slower (in-process A/B 0.945 and 0.90, eleventh session).
   */
  private refileAt(t: number, host: HostRecord, stamp: number): void {
    const ts = this.refileT;
    const hs = this.refileHost;
    const ss = this.refileStamp;
    let i = ts.length;
    ts.push(t);
    hs.push(host);
    ss.push(stamp);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((ts[p] as number) <= t) break;
      ts[i] = ts[p] as number;
      hs[i] = hs[p] as HostRecord;
      ss[i] = ss[p] as number;
      i = p;
    }
    ts[i] = t;
    hs[i] = host;
    ss[i] = stamp;
  }

  private popRefile(): void {
    const ts = this.refileT;
    const hs = this.refileHost;
    const ss = this.refileStamp;
    const t = ts.pop() as number;
    const h = hs.pop() as HostRecord;
    const st = ss.pop() as number;
    const n = ts.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (ts[r] as number) < (ts[l] as number) ? r : l;
      if ((ts[c] as number) >= t) break;
      ts[i] = ts[c] as number;
      hs[i] = hs[c] as HostRecord;
      ss[i] = ss[c] as number;
      i = c;
    }
    ts[i] = t;
    hs[i] = h;
    ss[i] = st;
  }

  private isCurrentRefile(): boolean {
    const h = this.refileHost[0] as HostRecord;
    return h.colStamp === this.refileStamp[0] && h.fineBin >= 0;
  }

  /** Re-file the hosts whose present piece ended at or before `now`. */
  private refileDue(): void {
    while (this.refileT.length > 0 && (this.refileT[0] as number) <= this.now) {
      const h = this.refileHost[0] as HostRecord;
      const current = this.isCurrentRefile();
      this.popRefile();
      if (current) {
        const cell = this.fineCellOf(h);
        if (cell !== h.fineBin) {
          this.leaveFine(h);
          this.enterFine(h, cell);
        }
        // only the usage at the present changed: the rungs' bucket bounds stand
        if (h.rungBase === this.ringBase) this.fileRungs(h);
        else this.refileRungs(h);
      }
    }
  }

  /**
   * @internal The end of the span from `now` in which every READY host's fine column is exact
   * (NaN before the first `advanceTo`).
   */
  fineValidUntil(): number {
    if (Number.isNaN(this.now)) return Number.NaN;
    while (this.refileT.length > 0 && !this.isCurrentRefile()) this.popRefile();
    return this.refileT.length > 0 ? (this.refileT[0] as number) : Number.POSITIVE_INFINITY;
  }

  /** File the host in its fine cell (`fineCellOf`, computed by the caller). */
  private enterFine(host: HostRecord, cell: number): void {
    const cls = host.cls;
    let list = cls.fine[cell];
    if (list === undefined) {
      // cells are made on first use: most of the FINE_COLUMNS × FINE_KAPPA stay empty
      list = [];
      cls.fine[cell] = list;
    }
    host.fineBin = cell;
    host.finePos = list.length;
    list.push(host);
    const col = Math.floor(cell / FINE_KAPPA);
    cls.fineColumnCount[col] = (cls.fineColumnCount[col] as number) + 1;
    if (list.length === 1) {
      const w = (cell % FINE_KAPPA) * FINE_MASK_WORDS + (col >>> 5);
      cls.fineMask[w] = (cls.fineMask[w] as number) | (1 << (col & 31));
    }
  }

  private leaveFine(host: HostRecord): void {
    const cls = host.cls;
    const list = cls.fine[host.fineBin] as HostRecord[];
    const last = list.pop() as HostRecord;
    if (last !== host) {
      list[host.finePos] = last;
      last.finePos = host.finePos;
    }
    const col = Math.floor(host.fineBin / FINE_KAPPA);
    cls.fineColumnCount[col] = (cls.fineColumnCount[col] as number) - 1;
    if (list.length === 0) {
      const w = (host.fineBin % FINE_KAPPA) * FINE_MASK_WORDS + (col >>> 5);
      cls.fineMask[w] = (cls.fineMask[w] as number) & ~(1 << (col & 31));
    }
    host.fineBin = -1;
    host.finePos = -1;
  }

  /**
   * Move the host to the cell its κ and present free capacity call for (`fine`: and its fine
   * cell; `ended`: the change removed usage that ended by the present, so while the present is in
   * the piece the fine cell was computed for, only its κ bin may move).
   */
  private rebin(host: HostRecord, fine = true, ended = false): void {
    const bin = host.bin;
    if (bin === undefined) return;
    if (fine) {
      const filed = host.fineBin;
      const fineCell =
        ended && filed >= 0 && this.now < host.colUntil
          ? filed - (filed % FINE_KAPPA) + fineKappaOf(host.kappa)
          : this.fineCellOf(host);
      if (host.fineBin !== fineCell) {
        this.leaveFine(host);
        this.enterFine(host, fineCell);
      }
    }
    const cell = this.cellOf(host);
    if (bin.index === cell) return;
    // the fine cell is current (just computed, or the present is still in the piece it was
    // computed for): the host re-enters it without looking the piece up again
    const fineCell = fine || this.now < host.colUntil ? host.fineBin : -1;
    this.leaveBins(host, bin.index % FREE_BINS !== cell % FREE_BINS);
    this.enterBins(host, fineCell);
  }

  private cellOf(host: HostRecord): number {
    let fbin = 0;
    if (!Number.isNaN(this.ringBase)) {
      const o = this.slotOf(this.ringBase) * CORE_DIMS;
      const level = (k: number) => {
        const a = host.cls.alloc[k] as number;
        if (!(a > 0)) return 0;
        const f = (a - (host.ring[o + k] as number)) / a;
        let l = 0;
        while (l < FREE_EDGES.length && f >= (FREE_EDGES[l] as number)) l++;
        return l;
      };
      fbin = level(0) * FREE_LEVELS + level(1);
    }
    return binOf(host.kappa) * FREE_BINS + fbin;
  }

  /** `fineCell`: the host's fine cell if known to be current, else -1. */
  private enterBins(host: HostRecord, fineCell = -1): void {
    const cls = host.cls;
    const cell = this.cellOf(host);
    let bin = cls.bins[cell];
    if (bin === undefined) {
      bin = new Bin(cell, Math.floor(cell / FREE_BINS), this.ringSize);
      cls.bins[cell] = bin;
    }
    cls.kCount[bin.kbin] = (cls.kCount[bin.kbin] as number) + 1;
    const pos = bin.hosts.length;
    bin.hosts.push(host);
    host.bin = bin;
    host.pos = pos;
    this.enterFine(host, fineCell >= 0 ? fineCell : this.fineCellOf(host));
    const chunk = Math.floor(pos / CHUNK_SIZE);
    bin.ensureChunks(chunk + 1);
    bin.nowTo[chunk] = Number.NEGATIVE_INFINITY;
    if (pos % CHUNK_SIZE === 0) {
      bin.valid.fill(BOUNDS_STALE, chunk * this.ringSize, (chunk + 1) * this.ringSize);
      bin.loose[chunk] = 0;
    } else this.foldInto(bin, chunk, host);
    // the column's minima must now cover this host too
    const R = this.ringSize;
    const colBase = (cell % FREE_BINS) * R;
    const ring = host.ring;
    for (let r = 0; r < R; r++) {
      if (cls.colValid[colBase + r] !== 1) continue;
      const off = (colBase + r) * CORE_DIMS;
      const ro = r * CORE_DIMS;
      for (let k = 0; k < CORE_DIMS; k++) {
        const v = ring[ro + k] as number;
        if (v < (cls.colMin[off + k] as number)) cls.colMin[off + k] = v;
      }
    }
    if (host.state === "READY") {
      cls.ready++;
      this.readyHosts++;
    }
  }

  /**
   * Take the host out of its cell. Minima of the chunks it leaves stay valid lower bounds but go
   * stale-low; they are invalidated so bounds stay tight (and the column's too, if it leaves it).
   */
  private leaveBins(host: HostRecord, leavesColumn = true): void {
    const bin = host.bin;
    if (bin === undefined) return;
    const p = host.pos;
    const last = bin.hosts.length - 1;
    const R = this.ringSize;
    const lastChunk = Math.floor(last / CHUNK_SIZE);
    if (leavesColumn) {
      const f = bin.index % FREE_BINS;
      const n = (host.cls.colLoose[f] as number) + 1;
      if (n >= COLUMN_LOOSE_LIMIT) {
        host.cls.colLoose[f] = 0;
        host.cls.colValid.fill(0, f * R, (f + 1) * R);
      } else host.cls.colLoose[f] = n;
    }
    if (p !== last) {
      const moved = bin.hosts[last] as HostRecord;
      bin.hosts[p] = moved;
      moved.pos = p;
      const chunk = Math.floor(p / CHUNK_SIZE);
      // `moved` joined this chunk (whose bounds still cover the leaving host: a superset)
      this.foldInto(bin, chunk, moved);
      bin.nowTo[chunk] = Number.NEGATIVE_INFINITY;
      this.loosen(bin, chunk);
    }
    if (lastChunk !== Math.floor(p / CHUNK_SIZE) || p === last) this.loosen(bin, lastChunk);
    // the chunk that lost a host keeps minima over a superset: still valid lower bounds
    bin.hosts.pop();
    host.cls.kCount[bin.kbin] = (host.cls.kCount[bin.kbin] as number) - 1;
    host.bin = undefined;
    host.pos = -1;
    this.leaveFine(host);
    host.cls.ready--;
    this.readyHosts--;
  }
}

/** @internal Where host number `num`'s words start in its hot pool (see HOT_WORDS). */
export function hotAt(num: number): number {
  return (num & ((1 << HOT_POOL_SHIFT) - 1)) * HOT_WORDS;
}

export function binOf(kappa: number): number {
  const b = Math.floor(kappa * KAPPA_BINS);
  return b < 0 ? 0 : b >= KAPPA_BINS ? KAPPA_BINS - 1 : b;
}

/** Fine κ bin of the host's suffix maximum at block offset `o` (block cells' κ). */
function suffixKappaBin(host: HostRecord, o: number): number {
  const cls = host.cls;
  const suf = host.blockSuf;
  let kappa = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const w = cls.wn[k] as number;
    if (w > 0) kappa += (w * (suf[o + k] as number)) / (cls.alloc[k] as number);
  }
  return fineKappaOf(kappa);
}

/** `freeLevel(a, used)`, searched from the level `guess` (cheaper when it is close). */
function freeLevelNear(a: number, used: number, guess: number): number {
  if (!(a > 0)) return FINE_LEVELS - 1;
  const f = (a - used) / a;
  if (!(f >= (FINE_FREE_EDGES[0] as number))) return 0;
  return settleLevel(f, guess);
}

/**
 * The count of free-level edges ≤ `f` (at least the first edge), searched from level `l` with
 * the same comparisons as a linear scan.
 */
function settleLevel(f: number, l: number): number {
  const n = FINE_FREE_EDGES.length;
  while (l < n && f >= (FINE_FREE_EDGES[l] as number)) l++;
  while (l > 0 && f < (FINE_FREE_EDGES[l - 1] as number)) l--;
  return l;
}

/**
 * A lower bound of the usage of a dimension with allocatable `a` at free level `level` (see
 * `freeLevel`): below the top level, less than FINE_FREE_EDGES[level] of it is free.
 */
export function usageBelowLevel(a: number, level: number): number {
  if (!(a > 0) || level >= FINE_FREE_EDGES.length) return 0;
  return a * (1 - (FINE_FREE_EDGES[level] as number));
}

/** Free level (see FINE_FREE_EDGES) of a dimension with allocatable `a` and usage `used`. */
export function freeLevel(a: number, used: number): number {
  if (!(a > 0)) return FINE_LEVELS - 1;
  const f = (a - used) / a;
  if (!(f >= (FINE_FREE_EDGES[0] as number))) return 0;
  // the edges up to 1/2 are 2^(−9 + i): start from the logarithm's estimate
  return settleLevel(f, Math.min(FINE_FREE_EDGES.length, Math.floor(Math.log2(f) + 9) + 1));
}

/**
 * Whether a host filed in block or rung cell `filed` is filed validly for bounds that call for
 * `cell`: its κ bin is not below (a stale-high κ still bounds the score from above, so the walk's
 * stop rule holds) and neither free level is below (a column filed with more free than the host
 * has is only visited, never skipped, wrongly).
 */
export function coversCell(filed: number, cell: number): boolean {
  if (filed < 0) return false;
  if (filed === cell) return true;
  if (filed % FINE_KAPPA < cell % FINE_KAPPA) return false;
  const fc = (filed / FINE_KAPPA) | 0;
  const c = (cell / FINE_KAPPA) | 0;
  return ((fc / FINE_LEVELS) | 0) >= ((c / FINE_LEVELS) | 0) && fc % FINE_LEVELS >= c % FINE_LEVELS;
}

export function fineKappaOf(kappa: number): number {
  const b = Math.floor(kappa * FINE_KAPPA);
  return b < 0 ? 0 : b >= FINE_KAPPA ? FINE_KAPPA - 1 : b;
}

/** Upper edge of a fine κ bin (the last bin is open above). */
export function fineUpper(b: number): number {
  return b >= FINE_KAPPA - 1 ? Number.POSITIVE_INFINITY : (b + 1) / FINE_KAPPA;
}

/** Upper edge of a bin's κ range (the last bin is open above, up to the real maximum of 1). */
export function binUpper(b: number): number {
  return b >= KAPPA_BINS - 1 ? 1 : (b + 1) / KAPPA_BINS;
}
