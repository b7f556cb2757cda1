/** `ClusterIndex.capacityForecast`: per-bucket allocatable, allocated (peak) and free. */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { usageAt } from "./brute-force.js";
import { ClusterIndex } from "./cluster-index.js";
import { InvalidPlacementArgumentError, InvalidSelectorError } from "./errors.js";
import { createRng } from "./random.js";
import type { Resources } from "./resources.js";
import type { HostState } from "./types.js";

const r = (cpu: number, mem = 0, fpga = 0): Resources =>
  fpga === 0
    ? { cpuMillis: cpu, memoryMib: mem, diskGib: 0, gpus: 0 }
    : {
        cpuMillis: cpu,
        memoryMib: mem,
        diskGib: 0,
        gpus: 0,
        extended: { "example.com/fpga": fpga },
      };
const meta = { priority: 0, preemptible: false };

/** h1 (zone a) and h2 (zone b) READY, h3 (zone a) CORDONED; allocatable 10 cpu, 20 mem each. */
function cluster(): ClusterIndex {
  const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 8 });
  const add = (id: string, zone: string, state: HostState) =>
    index.addHost({ id, capacity: r(10, 20), ratios: { cpuMillis: 1 }, labels: { zone }, state });
  add("h1", "a", "READY");
  add("h2", "b", "READY");
  add("h3", "a", "CORDONED");
  index.commit("x", "h1", { start: 0, end: 10 }, r(2, 4), meta);
  index.commit("y", "h1", { start: 5, end: 15 }, r(3, 1), meta);
  index.commit("z", "h3", { start: 0, end: 20 }, r(1, 1), meta);
  index.commit("w", "h2", { start: 12, end: 13 }, r(10, 20), meta);
  return index;
}

describe("capacityForecast", () => {
  it("sums allocatable over READY hosts, the peak usage in each bucket, and free = allocatable − peak", () => {
    const f = cluster().capacityForecast(0, 10, 3);
    expect(f.map((b) => [b.start, b.end, b.hosts])).toEqual([
      [0, 10, 2],
      [10, 20, 2],
      [20, 30, 2],
    ]);
    for (const b of f) expect(b.allocatable).toEqual(r(20, 40));
    // bucket 0: h1 peaks at 5 cpu / 5 mem ([5, 10)), h3 (cordoned) at 1/1
    expect(f[0]?.allocated).toEqual(r(6, 6));
    expect(f[0]?.free).toEqual(r(15, 35));
    // bucket 1: h1 3/1 until 15, h2 full for 1 ms at 12, h3 1/1
    expect(f[1]?.allocated).toEqual(r(14, 22));
    expect(f[1]?.free).toEqual(r(7, 19));
    // bucket 2: nothing
    expect(f[2]?.allocated).toEqual(r(0, 0));
    expect(f[2]?.free).toEqual(r(20, 40));
  });

  it("uses the peak within the bucket, not the sum or the average", () => {
    const index = new ClusterIndex();
    index.addHost({
      id: "h",
      capacity: r(10),
      ratios: { cpuMillis: 1 },
      labels: {},
      state: "READY",
    });
    index.commit("a", "h", { start: 0, end: 5 }, r(6), meta);
    index.commit("b", "h", { start: 5, end: 10 }, r(7), meta);
    const [b] = index.capacityForecast(0, 10, 1);
    expect(b?.allocated.cpuMillis).toBe(7);
    expect(b?.free.cpuMillis).toBe(3);
  });

  it("filters hosts by selector (text or requirements)", () => {
    const index = cluster();
    const text = index.capacityForecast(0, 10, 2, "zone=a");
    const reqs = index.capacityForecast(0, 10, 2, [{ key: "zone", op: "=", value: "a" }]);
    expect(text).toEqual(reqs);
    // h1 and h3 (cordoned: usage only)
    expect(text[0]?.hosts).toBe(1);
    expect(text[0]?.allocatable).toEqual(r(10, 20));
    expect(text[0]?.allocated).toEqual(r(6, 6));
    expect(text[0]?.free).toEqual(r(5, 15));
    expect(index.capacityForecast(0, 10, 1, "zone=c")[0]).toMatchObject({
      hosts: 0,
      allocatable: r(0, 0),
      allocated: r(0, 0),
      free: r(0, 0),
    });
  });

  it("reports extended resources, and validates its arguments", () => {
    const index = new ClusterIndex();
    index.addHost({
      id: "f",
      capacity: r(10, 10, 2),
      ratios: { cpuMillis: 1 },
      labels: {},
      state: "READY",
    });
    index.commit("a", "f", { start: 0, end: 10 }, r(1, 1, 1), meta);
    const [b] = index.capacityForecast(0, 10, 1);
    expect(b?.allocatable).toEqual(r(10, 10, 2));
    expect(b?.allocated).toEqual(r(1, 1, 1));
    expect(b?.free).toEqual(r(9, 9, 1));
    expect(index.capacityForecast(0, 10, 0)).toEqual([]);
    expect(() => index.capacityForecast(0, 0, 1)).toThrow(InvalidPlacementArgumentError);
    expect(() => index.capacityForecast(0, 10, 1.5)).toThrow(InvalidPlacementArgumentError);
    expect(() => index.capacityForecast(Number.NaN, 10, 1)).toThrow(InvalidPlacementArgumentError);
    expect(() => index.capacityForecast(0, 10, 1, "zone in (a")).toThrow(InvalidSelectorError);
  });

  it("agrees with brute force on random clusters (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const rng = createRng(seed);
        const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 4 });
        const hosts = rng.int(1, 5);
        for (let i = 0; i < hosts; i++) {
          index.addHost({
            id: `h${i}`,
            capacity: r(10, 10),
            ratios: { cpuMillis: 1 },
            labels: { zone: rng.pick(["a", "b"]) },
            state: rng.pick<HostState>(["READY", "READY", "DOWN"]),
          });
          for (let j = 0; j < rng.int(0, 8); j++) {
            const start = rng.int(0, 60);
            try {
              index.commit(
                `${i}-${j}`,
                `h${i}`,
                { start, end: start + rng.int(1, 30) },
                r(rng.int(1, 6), rng.int(1, 6)),
                meta,
              );
            } catch {
              // full
            }
          }
        }
        const from = rng.int(0, 20);
        const len = rng.int(1, 25);
        const count = rng.int(1, 5);
        const selector = rng.pick(["", "zone=a", "zone!=a"]);
        const f = index.capacityForecast(from, len, count, selector);
        const chosen = index
          .hosts()
          .filter((h) => selector === "" || (selector === "zone=a") === (h.labels.zone === "a"));
        f.forEach((b, i) => {
          const s = from + i * len;
          let alloc = 0;
          let used = 0;
          let free = 0;
          for (const h of chosen) {
            const holds = index.holdsOn(h.id);
            const ts = [s, ...holds.map((x) => x.start).filter((t) => t > s && t < s + len)];
            const peak = Math.max(...ts.map((t) => usageAt(holds, t, "cpuMillis")));
            used += peak;
            if (h.state === "READY") {
              alloc += h.allocatable.cpuMillis;
              free += Math.max(0, h.allocatable.cpuMillis - peak);
            }
          }
          expect([b.start, b.end]).toEqual([s, s + len]);
          expect(b.hosts).toBe(chosen.filter((h) => h.state === "READY").length);
          expect(b.allocatable.cpuMillis).toBe(alloc);
          expect(b.allocated.cpuMillis).toBe(used);
          expect(b.free.cpuMillis).toBe(free);
          expect(b.free.cpuMillis).toBeGreaterThanOrEqual(0);
        });
      }),
      { seed: 3, numRuns: 200 },
    );
  });
});
