import { describe, expect, it } from "vitest";
import { BLOCK_BUCKETS, type ClusterIndex, type HostRecord } from "./cluster-index.js";
import { CapacityExceededError } from "./errors.js";
import { place } from "./place.js";
import { createRng, type Rng } from "./random.js";
import { CORE_DIMS } from "./resources.js";
import { randomCluster, randomHostSpec, randomResources } from "./test-support.js";
import type { HostState } from "./types.js";
import { SUMMARY_STEPS } from "./usage-summary.js";

/** The summary byte of usage x of allocatable a, recomputed. */
function byteOf(x: number, a: number): number {
  if (!(a > 0)) return x > 0 ? SUMMARY_STEPS : 0;
  return Math.max(0, Math.min(SUMMARY_STEPS, Math.floor(x * (SUMMARY_STEPS / a))));
}

function lanes(v: number): number[] {
  return [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
}

/**
 * Every host's bucket words equal its bucket maxima in bytes; a block's word equals the maximum of
 * its buckets' for blocks strictly inside the ring, and is at least that for the ring's first and
 * last blocks (which may keep buckets that left the ring).
 */
function checkSummary(index: ClusterIndex): number {
  if (Number.isNaN(index.ringBase)) return 0;
  let high = 0;
  const s = index.usageSummary;
  const R = index.ringSize;
  const first = Math.floor(index.ringBase / BLOCK_BUCKETS);
  const last = Math.floor((index.ringBase + R - 1) / BLOCK_BUCKETS);
  for (const h of index.hostMap.values() as Iterable<HostRecord>) {
    for (let ab = index.ringBase; ab < index.ringBase + R; ab++) {
      const slot = index.slotOf(ab);
      const got = lanes(s.words[s.regionOf(h.num) + slot] as number);
      for (let k = 0; k < CORE_DIMS; k++) {
        const want = byteOf(h.ringMax[slot * CORE_DIMS + k] as number, h.limit[k] as number);
        if (got[k] !== want) {
          expect.fail(`${h.id} bucket ${ab} dim ${k}: ${got[k]}, want ${want}`);
        }
      }
    }
    for (let b = first; b <= last; b++) {
      const want = [0, 0, 0, 0];
      const lo = Math.max(b * BLOCK_BUCKETS, index.ringBase);
      const hi = Math.min((b + 1) * BLOCK_BUCKETS, index.ringBase + R);
      for (let ab = lo; ab < hi; ab++) {
        const q = lanes(s.words[s.regionOf(h.num) + index.slotOf(ab)] as number);
        for (let k = 0; k < CORE_DIMS; k++) want[k] = Math.max(want[k] as number, q[k] as number);
      }
      const got = lanes(s.words[s.regionOf(h.num) + R + index.blockSlotOf(b)] as number);
      for (let k = 0; k < CORE_DIMS; k++) {
        if ((want[k] as number) >= 128) high++;
        const inside = b > first && b < last;
        if (inside ? got[k] !== want[k] : (got[k] as number) < (want[k] as number)) {
          expect.fail(
            `${h.id} block ${b} dim ${k}: ${got[k]}, want ${inside ? "" : "≥ "}${want[k]}`,
          );
        }
      }
    }
  }
  return high;
}

/** One random operation on the index (commit, release, resize, move, state, clock, hosts). */
function randomOp(
  rng: Rng,
  index: ClusterIndex,
  ids: string[],
  holds: string[],
  seq: number,
): void {
  const now = Number.isNaN(index.now) ? 1_000_000 : index.now;
  const span = index.bucketMs * index.ringSize;
  const hostId = () => rng.pick(ids);
  const r = rng.next();
  try {
    if (r < 0.45) {
      const start = now + rng.int(-span / 10, span);
      const id = `c${seq}`;
      index.commit(
        id,
        hostId(),
        { start, end: start + rng.int(1, span / 2) },
        randomResources(rng),
        {
          priority: 0,
          preemptible: false,
        },
      );
      holds.push(id);
    } else if (r < 0.6 && holds.length > 0) {
      index.release(holds.splice(rng.int(0, holds.length - 1), 1)[0] as string);
    } else if (r < 0.65 && holds.length > 0) {
      const id = rng.pick(holds);
      const h = index.hold(id);
      if (h !== undefined) {
        index.resize(id, { window: { start: h.start, end: h.start + rng.int(1, span / 2) } });
      }
    } else if (r < 0.7 && holds.length > 0) {
      index.move(rng.pick(holds), hostId());
    } else if (r < 0.75) {
      index.setHostState(hostId(), rng.pick<HostState>(["READY", "READY", "CORDONED", "DOWN"]));
    } else if (r < 0.9) {
      // mostly a few buckets, sometimes past the whole ring
      const by = rng.next() < 0.9 ? rng.int(0, 8 * index.bucketMs) : rng.int(span, 2 * span);
      index.advanceTo(now + by);
    } else if (r < 0.95) {
      const spec = randomHostSpec(rng, 1000 + seq);
      index.addHost(spec);
      ids.push(spec.id);
    } else if (ids.length > 2) {
      const id = ids.splice(rng.int(0, ids.length - 1), 1)[0] as string;
      const released = new Set(index.removeHost(id));
      for (let i = holds.length - 1; i >= 0; i--) {
        if (released.has(holds[i] as string)) holds.splice(i, 1);
      }
    }
  } catch (err) {
    if (!(err instanceof CapacityExceededError)) throw err;
  }
}

describe("usage summary", () => {
  for (const options of [
    { bucketMs: 1000, horizonBuckets: 16 },
    { bucketMs: 1000, horizonBuckets: 24 },
    { bucketMs: 100, horizonBuckets: 400 },
  ]) {
    it(`equals a recomputation from the bucket maxima after every operation (${JSON.stringify(options)})`, () => {
      for (let seed = 1; seed <= 4; seed++) {
        const { index } = randomCluster(seed, 12, options);
        const ids = index.hosts().map((h) => h.id);
        const holds: string[] = [];
        const rng = createRng(seed * 101);
        if (seed % 2 === 0) index.advanceTo(1_000_000);
        let high = 0;
        for (let i = 0; i < 150; i++) {
          randomOp(rng, index, ids, holds, i);
          high += checkSummary(index);
        }
        // the upper half of the bytes was exercised too
        expect(high).toBeGreaterThan(0);
      }
    });
  }

  it("lets the search and no-fit explanations equal the exhaustive scan's for windows in the ring", () => {
    const { index, rng } = randomCluster(5, 60, { bucketMs: 100, horizonBuckets: 400 });
    const ids = index.hosts().map((h) => h.id);
    const holds: string[] = [];
    index.advanceTo(1_000_000);
    let compared = 0;
    let noFits = 0;
    for (let i = 0; i < 1500; i++) {
      randomOp(rng, index, ids, holds, i);
      const start = rng.next() < 0.3 ? index.now : index.now + rng.int(200, 30_000);
      const window = { start, end: start + rng.int(50, 8_000) };
      // half the time exactly what one host has free over the window (bar a little, sometimes):
      // the screen's bytes must never rule out a host that fits to the last unit
      let resources = randomResources(rng);
      const tight = rng.pick(ids);
      if (rng.next() < 0.5 && index.host(tight)?.state === "READY") {
        const free = index.freeOver(tight, window);
        const less = rng.next() < 0.5 ? 0 : rng.int(-2, 2);
        resources = {
          cpuMillis: Math.max(0, free.cpuMillis - less),
          memoryMib: Math.max(0, free.memoryMib - less),
          diskGib: Math.max(0, free.diskGib - less),
          gpus: 0,
        };
      }
      const request = { resources, window };
      const fast = place(index, request);
      const slow = place(index, request, undefined, { explain: "exhaustive" });
      expect(fast.ok).toBe(slow.ok);
      if (fast.ok && slow.ok) {
        expect(fast.hostId).toBe(slow.hostId);
        expect(fast.score).toBe(slow.score);
        compared++;
      } else if (!fast.ok && !slow.ok) {
        expect(fast.explanation.filters).toEqual(slow.explanation.filters);
        expect(fast.explanation.binding).toEqual(slow.explanation.binding);
        noFits++;
      }
    }
    expect(compared).toBeGreaterThan(500);
    expect(noFits).toBeGreaterThan(20);
  });
});
