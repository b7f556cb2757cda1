/**
 * A compact copy of every host's hourly maxima, for the search's per-host screen of windows inside
 * the ring and for no-fit explanations (bounds of a host's peak without its timeline): per host,
 * per ring bucket and per block, one 32-bit word whose byte k is the bucket's (block's) maximum
 * usage of core dim k as a fraction of allocatable, rounded down to 1/255. All hosts share one
 * array, a host's words are contiguous and aligned to a cache line, so a window of a day is one or
 * two cache lines of one array, where the exact bounds (`HostRecord.ring`, `ringMax`, `blockMax`,
 * `blockSuf`, `peakAll`) are a cache miss or two each. A byte q bounds the usage u: q/255 ≤ u/a <
 * (q + 1)/255 (q = 255: u/a ≥ 1 − 1/255, no upper bound), so it can prove a host too full in the
 * hours a window covers whole, or unable to beat the best score, and leaves the rest to the exact
 * bounds.
 *
 * Kept by `ClusterIndex.fillRing` (the one place the bucket maxima are written): the buckets it
 * recomputed, and the blocks they belong to, from the buckets of the block inside the ring. The
 * ring's first and last blocks may keep buckets that left the ring (their word is then too high, a
 * valid upper bound only); the search reads block words only for blocks a window covers whole,
 * which lie strictly inside the ring.
 */

import type { ClusterIndex, HostRecord } from "./cluster-index.js";
import { CORE_DIMS } from "./resources.js";

/** Steps of a summary byte. */
export const SUMMARY_STEPS = 255;
/** Words per cache line. */
const LINE_WORDS = 16;

export class UsageSummary {
  /** Per host (at `regionOf(num)`): `ringSize` bucket words, then `blockSlots` block words. */
  words: Uint32Array;
  readonly stride: number;

  constructor(
    readonly ringSize: number,
    readonly blockSlots: number,
    /** Buckets per block (`BLOCK_BUCKETS`, passed in: the index module imports this one). */
    readonly blockBuckets: number,
  ) {
    this.stride = Math.ceil((ringSize + blockSlots) / LINE_WORDS) * LINE_WORDS;
    this.words = new Uint32Array(this.stride * 64);
  }

  /**
   * First word of host number `num`'s region (`HostRecord.num`): num × stride, so the search
   * reads a host's words from its number alone, without its record.
   */
  regionOf(num: number): number {
    return num * this.stride;
  }

  /** Zero host number `num`'s region for a new host (its usage is 0 everywhere). */
  take(num: number): void {
    const at = this.regionOf(num);
    if (at + this.stride > this.words.length) {
      const next = new Uint32Array(Math.max(this.words.length * 2, at + this.stride));
      next.set(this.words);
      this.words = next;
    } else this.words.fill(0, at, at + this.stride);
  }

  /**
   * After `host.ringMax` was recomputed for absolute buckets [from, to) (inside the ring): their
   * words, and the words of the blocks they belong to.
   */
  refresh(index: ClusterIndex, host: HostRecord, from: number, to: number): void {
    const w = this.words;
    const at = this.regionOf(host.num);
    const x = host.ringMax;
    const a = host.limit;
    const s0 = scale(a[0] as number);
    const s1 = scale(a[1] as number);
    const s2 = scale(a[2] as number);
    const s3 = scale(a[3] as number);
    const R = this.ringSize;
    const bb = this.blockBuckets;
    // one pass over the blocks' buckets inside the ring: the recomputed ones written, the others
    // of their blocks read, each block's maximum written at its last bucket
    const lo = Math.max(Math.floor(from / bb) * bb, index.ringBase);
    const hi = Math.min((Math.floor((to - 1) / bb) + 1) * bb, index.ringBase + R);
    let slot = index.slotOf(lo);
    let block = Math.floor(lo / bb);
    let m0 = 0;
    let m1 = 0;
    let m2 = 0;
    let m3 = 0;
    for (let ab = lo; ab < hi; ab++) {
      let v: number;
      if (ab >= from && ab < to) {
        const o = slot * CORE_DIMS;
        v =
          (step(x[o] as number, s0) |
            (step(x[o + 1] as number, s1) << 8) |
            (step(x[o + 2] as number, s2) << 16) |
            (step(x[o + 3] as number, s3) << 24)) >>>
          0;
        w[at + slot] = v;
      } else v = w[at + slot] as number;
      const q0 = v & 255;
      const q1 = (v >>> 8) & 255;
      const q2 = (v >>> 16) & 255;
      const q3 = v >>> 24;
      if (q0 > m0) m0 = q0;
      if (q1 > m1) m1 = q1;
      if (q2 > m2) m2 = q2;
      if (q3 > m3) m3 = q3;
      if (ab + 1 === (block + 1) * bb || ab === hi - 1) {
        w[at + R + index.blockSlotOf(block)] = (m0 | (m1 << 8) | (m2 << 16) | (m3 << 24)) >>> 0;
        block++;
        m0 = 0;
        m1 = 0;
        m2 = 0;
        m3 = 0;
      }
      if (++slot === R) slot = 0;
    }
  }
}

/** Steps per unit of usage for allocatable `a` (0: a dim the host does not have). */
function scale(a: number): number {
  return a > 0 ? SUMMARY_STEPS / a : 0;
}

/** The byte of usage `x`: ⌊x/a·255⌋, clamped to [0, 255] (usage of a dim the host lacks: 255). */
function step(x: number, s: number): number {
  if (s === 0) return x > 0 ? SUMMARY_STEPS : 0;
  const q = Math.floor(x * s);
  return Math.min(Math.max(q, 0), SUMMARY_STEPS);
}
