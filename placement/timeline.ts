/**
 * A host's capacity timeline: the step function of committed usage over time, in `dims`
 * dimensions. Stored as sorted breakpoints in typed arrays (compact at 100k holds): usage on
 * `[times[i], times[i+1])` is `use[i*dims .. i*dims+dims)`; before the first breakpoint usage is 0,
 * and since every hold has a finite end the last segment is 0 again. Windows are half-open:
 * a hold ending at t and one starting at t do not overlap.
 */

import { InvalidPlacementArgumentError } from "./errors.js";

/** Values this close to zero after a removal are snapped to 0 so breakpoints coalesce. */
const SNAP = 1e-7;

export interface TimelineSegment {
  readonly start: number;
  /** Infinity for the last segment. */
  readonly end: number;
  readonly usage: readonly number[];
}

/** A window violation: `dim` is short by `shortBy` (the worst amount) over `[start, end)`. */
export interface TimelineViolation {
  readonly dim: number;
  readonly shortBy: number;
  readonly start: number;
  readonly end: number;
}

export function validateWindow(start: number, end: number, field = "window"): void {
  if (!Number.isFinite(start) || !Number.isFinite(end)) {
    throw new InvalidPlacementArgumentError(
      field,
      `start and end must be finite, got [${start}, ${end})`,
    );
  }
  if (!(end > start)) {
    throw new InvalidPlacementArgumentError(
      field,
      `end must be after start, got [${start}, ${end})`,
    );
  }
}

export class CapacityTimeline {
  readonly dims: number;
  private times: Float64Array;
  private use: Float64Array;
  private n = 0;

  constructor(dims: number, initialBreakpoints = 4) {
    this.dims = dims;
    this.times = new Float64Array(initialBreakpoints);
    this.use = new Float64Array(initialBreakpoints * dims);
  }

  /** Number of breakpoints. */
  get size(): number {
    return this.n;
  }

  isEmpty(): boolean {
    return this.n === 0;
  }

  /** Index of the last breakpoint ≤ t, or -1. */
  private segmentAt(t: number): number {
    const times = this.times;
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((times[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  private grow(): void {
    const cap = this.times.length * 2 || 4;
    const t = new Float64Array(cap);
    t.set(this.times.subarray(0, this.n));
    const u = new Float64Array(cap * this.dims);
    u.set(this.use.subarray(0, this.n * this.dims));
    this.times = t;
    this.use = u;
  }

  /** Ensure a breakpoint at t and return its index. */
  private breakAt(t: number): number {
    const i = this.segmentAt(t);
    if (i >= 0 && this.times[i] === t) return i;
    if (this.n === this.times.length) this.grow();
    const pos = i + 1;
    const D = this.dims;
    this.times.copyWithin(pos + 1, pos, this.n);
    this.use.copyWithin((pos + 1) * D, pos * D, this.n * D);
    this.times[pos] = t;
    if (pos === 0) this.use.fill(0, 0, D);
    else this.use.copyWithin(pos * D, (pos - 1) * D, pos * D);
    this.n++;
    return pos;
  }

  /** Drop breakpoint i if its segment equals the one before it (or zero, for the first). */
  private coalesce(i: number): void {
    if (i < 0 || i >= this.n) return;
    const D = this.dims;
    const u = this.use;
    const base = i * D;
    if (i === 0) {
      for (let k = 0; k < D; k++) if (u[base + k] !== 0) return;
    } else {
      const prev = base - D;
      for (let k = 0; k < D; k++) if (u[base + k] !== u[prev + k]) return;
    }
    this.times.copyWithin(i, i + 1, this.n);
    u.copyWithin(base, base + D, this.n * D);
    this.n--;
  }

  private apply(start: number, end: number, demand: ArrayLike<number>, sign: 1 | -1): void {
    validateWindow(start, end);
    const i = this.breakAt(start);
    const j = this.breakAt(end);
    const D = this.dims;
    const u = this.use;
    for (let x = i; x < j; x++) {
      const base = x * D;
      for (let k = 0; k < D; k++) {
        let v = (u[base + k] as number) + sign * (demand[k] ?? 0);
        if (sign < 0 && v < SNAP && v > -SNAP) v = 0;
        u[base + k] = v;
      }
    }
    // j first: coalescing i shifts j down by one.
    this.coalesce(j);
    this.coalesce(i);
  }

  /** Charge `demand` over `[start, end)`. Does not check capacity (see `violation`). */
  add(start: number, end: number, demand: ArrayLike<number>): void {
    this.apply(start, end, demand, 1);
  }

  /** Remove a charge previously added with the same window and demand. */
  remove(start: number, end: number, demand: ArrayLike<number>): void {
    this.apply(start, end, demand, -1);
  }

  /** Replace a charge (resize: new window and/or demand). */
  resize(
    oldStart: number,
    oldEnd: number,
    oldDemand: ArrayLike<number>,
    newStart: number,
    newEnd: number,
    newDemand: ArrayLike<number>,
  ): void {
    validateWindow(newStart, newEnd);
    this.remove(oldStart, oldEnd, oldDemand);
    this.add(newStart, newEnd, newDemand);
  }

  /** Usage at instant t, into `out` (length ≥ dims). */
  usageAt(t: number, out: Float64Array = new Float64Array(this.dims)): Float64Array {
    const i = this.segmentAt(t);
    const D = this.dims;
    if (i < 0) out.fill(0, 0, D);
    else for (let k = 0; k < D; k++) out[k] = this.use[i * D + k] as number;
    return out;
  }

  /**
   * The constant piece of the step function containing t and the usage on it, into
   * `out = [from, to, u_0, …, u_{w−1}]` (w = min(dims, out.length − 2); ±Infinity at the ends).
   */
  pieceAt(t: number, out: Float64Array): void {
    const i = this.segmentAt(t);
    const D = this.dims;
    const W = Math.min(out.length - 2, D);
    if (i < 0) out.fill(0, 2, 2 + W);
    else for (let k = 0; k < W; k++) out[2 + k] = this.use[i * D + k] as number;
    out[0] = i < 0 ? Number.NEGATIVE_INFINITY : (this.times[i] as number);
    out[1] = i + 1 < this.n ? (this.times[i + 1] as number) : Number.POSITIVE_INFINITY;
  }

  /** Peak usage over `[start, end)` per dimension, into `out`. */
  peak(start: number, end: number, out: Float64Array = new Float64Array(this.dims)): Float64Array {
    const D = this.dims;
    out.fill(0, 0, D);
    let x = this.segmentAt(start);
    if (x < 0) x = 0;
    const times = this.times;
    const u = this.use;
    const n = this.n;
    for (; x < n && (times[x] as number) < end; x++) {
      const base = x * D;
      for (let k = 0; k < D; k++) {
        const v = u[base + k] as number;
        if (v > (out[k] as number)) out[k] = v;
      }
    }
    return out;
  }

  /** Minimum usage over `[start, end)` per dimension, into `out`. */
  minOver(
    start: number,
    end: number,
    out: Float64Array = new Float64Array(this.dims),
  ): Float64Array {
    const D = this.dims;
    let x = this.segmentAt(start);
    if (x < 0 || this.n === 0) {
      out.fill(0, 0, D);
      return out;
    }
    out.fill(Number.POSITIVE_INFINITY, 0, D);
    const times = this.times;
    const u = this.use;
    for (; x < this.n && (times[x] as number) < end; x++) {
      const base = x * D;
      for (let k = 0; k < D; k++) {
        const v = u[base + k] as number;
        if (v < (out[k] as number)) out[k] = v;
      }
    }
    return out;
  }

  /**
   * Minimum usage in each of `count` consecutive buckets `[t0 + b·len, t0 + (b+1)·len)`, written
   * to `out[offset + b*stride + k]` for the first `width` dimensions. One sweep over the breakpoints.
   */
  bucketMins(
    t0: number,
    len: number,
    count: number,
    out: Float64Array,
    offset: number,
    stride: number,
    width: number = this.dims,
  ): void {
    const D = this.dims;
    const W = Math.min(width, D);
    const times = this.times;
    const u = this.use;
    const n = this.n;
    let x = this.segmentAt(t0);
    for (let b = 0; b < count; b++) {
      const bs = t0 + b * len;
      const be = bs + len;
      const o = offset + b * stride;
      // advance x to the segment containing bs
      while (x + 1 < n && (times[x + 1] as number) <= bs) x++;
      if (x < 0) {
        // the bucket starts before the first breakpoint, where usage is 0
        for (let k = 0; k < W; k++) out[o + k] = 0;
        continue;
      }
      for (let k = 0; k < W; k++) out[o + k] = u[x * D + k] as number;
      for (let y = x + 1; y < n && (times[y] as number) < be; y++) {
        const base = y * D;
        for (let k = 0; k < W; k++) {
          const v = u[base + k] as number;
          if (v < (out[o + k] as number)) out[o + k] = v;
        }
      }
    }
  }

  /**
   * Like `bucketMins`, and also the maximum usage of each bucket into `outMax` (same layout): the
   * index keeps both, the minimum to prove a host infeasible, the maximum to bound its score.
   */
  bucketMinMax(
    t0: number,
    len: number,
    count: number,
    outMin: Float64Array,
    outMax: Float64Array,
    offset: number,
    stride: number,
    width: number = this.dims,
  ): void {
    const D = this.dims;
    const W = Math.min(width, D);
    const times = this.times;
    const u = this.use;
    const n = this.n;
    let x = this.segmentAt(t0);
    for (let b = 0; b < count; b++) {
      const bs = t0 + b * len;
      const be = bs + len;
      const o = offset + b * stride;
      while (x + 1 < n && (times[x + 1] as number) <= bs) x++;
      let y = x + 1;
      if (x < 0) {
        // usage is 0 before the first breakpoint; later segments of the bucket may raise the max
        for (let k = 0; k < W; k++) {
          outMin[o + k] = 0;
          outMax[o + k] = 0;
        }
        y = 0;
      } else {
        for (let k = 0; k < W; k++) {
          const v = u[x * D + k] as number;
          outMin[o + k] = v;
          outMax[o + k] = v;
        }
      }
      for (; y < n && (times[y] as number) < be; y++) {
        const base = y * D;
        for (let k = 0; k < W; k++) {
          const v = u[base + k] as number;
          if (v < (outMin[o + k] as number)) outMin[o + k] = v;
          if (v > (outMax[o + k] as number)) outMax[o + k] = v;
        }
      }
    }
  }

  /** Peak over the whole timeline (all time). */
  peakAll(out: Float64Array = new Float64Array(this.dims)): Float64Array {
    const D = this.dims;
    out.fill(0, 0, D);
    const u = this.use;
    for (let x = 0; x < this.n; x++) {
      const base = x * D;
      for (let k = 0; k < D; k++) {
        const v = u[base + k] as number;
        if (v > (out[k] as number)) out[k] = v;
      }
    }
    return out;
  }

  /** Whether `demand` fits under `limit` over the whole window. */
  fits(start: number, end: number, demand: ArrayLike<number>, limit: ArrayLike<number>): boolean {
    const D = this.dims;
    for (let k = 0; k < D; k++) if ((demand[k] ?? 0) > (limit[k] ?? 0)) return false;
    let x = this.segmentAt(start);
    if (x < 0) x = 0;
    const times = this.times;
    const u = this.use;
    for (; x < this.n && (times[x] as number) < end; x++) {
      const base = x * D;
      for (let k = 0; k < D; k++) {
        if ((u[base + k] as number) + (demand[k] ?? 0) > (limit[k] ?? 0)) return false;
      }
    }
    return true;
  }

  /**
   * Where `demand` does not fit under `limit` in `[start, end)`: the dimension with the largest
   * shortfall relative to its limit, the worst shortfall, and the span from the first to the last
   * instant that dimension is short. undefined if it fits.
   */
  violation(
    start: number,
    end: number,
    demand: ArrayLike<number>,
    limit: ArrayLike<number>,
  ): TimelineViolation | undefined {
    const D = this.dims;
    const worst = new Float64Array(D);
    const from = new Float64Array(D).fill(Number.NaN);
    const to = new Float64Array(D).fill(Number.NaN);
    const consider = (k: number, usage: number, s: number, e: number) => {
      const short = usage + (demand[k] ?? 0) - (limit[k] ?? 0);
      if (short <= 0) return;
      if (short > (worst[k] as number)) worst[k] = short;
      if (Number.isNaN(from[k] as number)) from[k] = s;
      to[k] = e;
    };
    let x = this.segmentAt(start);
    const times = this.times;
    if (x < 0) {
      const firstEnd = this.n > 0 ? Math.min(end, times[0] as number) : end;
      for (let k = 0; k < D; k++) consider(k, 0, start, firstEnd);
      x = 0;
    }
    for (; x < this.n && (times[x] as number) < end; x++) {
      const s = Math.max(start, times[x] as number);
      const e = x + 1 < this.n ? Math.min(end, times[x + 1] as number) : end;
      for (let k = 0; k < D; k++) consider(k, this.use[x * D + k] as number, s, e);
    }
    let best = -1;
    let bestRel = 0;
    for (let k = 0; k < D; k++) {
      const w = worst[k] as number;
      if (w <= 0) continue;
      const lim = limit[k] ?? 0;
      const rel = lim > 0 ? w / lim : Number.POSITIVE_INFINITY;
      if (best < 0 || rel > bestRel) {
        best = k;
        bestRel = rel;
      }
    }
    if (best < 0) return undefined;
    return {
      dim: best,
      shortBy: worst[best] as number,
      start: from[best] as number,
      end: to[best] as number,
    };
  }

  /**
   * The earliest start t in `[from, latest]` such that `demand` fits under `limit` over
   * `[t, t + duration)`, or NaN. Candidates are `from` and the breakpoints after it: usage only
   * changes there, so if t does not fit, the next start that can is the end of the offending segment.
   */
  earliestFit(
    demand: ArrayLike<number>,
    limit: ArrayLike<number>,
    duration: number,
    from: number,
    latest: number,
  ): number {
    const D = this.dims;
    for (let k = 0; k < D; k++) if ((demand[k] ?? 0) > (limit[k] ?? 0)) return Number.NaN;
    const times = this.times;
    const u = this.use;
    let t = from;
    outer: while (t <= latest) {
      const end = t + duration;
      let x = this.segmentAt(t);
      if (x < 0) x = 0;
      for (; x < this.n && (times[x] as number) < end; x++) {
        const base = x * D;
        for (let k = 0; k < D; k++) {
          if ((u[base + k] as number) + (demand[k] ?? 0) > (limit[k] ?? 0)) {
            // the last segment is 0, so only a corrupt timeline lacks x + 1
            if (x + 1 >= this.n) return Number.NaN;
            t = times[x + 1] as number;
            continue outer;
          }
        }
      }
      return t;
    }
    return Number.NaN;
  }

  /** The breakpoints as plain data (for tests, forecasts and debugging). */
  segments(): TimelineSegment[] {
    const out: TimelineSegment[] = [];
    const D = this.dims;
    for (let x = 0; x < this.n; x++) {
      out.push({
        start: this.times[x] as number,
        end: x + 1 < this.n ? (this.times[x + 1] as number) : Number.POSITIVE_INFINITY,
        usage: Array.from(this.use.subarray(x * D, x * D + D)),
      });
    }
    return out;
  }

  /** Breakpoint times in `(after, before]`, in order (for slot searches). */
  breakpointsBetween(after: number, before: number): number[] {
    const out: number[] = [];
    let x = this.segmentAt(after) + 1;
    for (; x < this.n && (this.times[x] as number) <= before; x++)
      out.push(this.times[x] as number);
    return out;
  }
}
