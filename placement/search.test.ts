import { describe, expect, it } from "vitest";
import { ClusterIndex } from "./cluster-index.js";
import { findEarliestSlot, place } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY } from "./policy.js";
import { createRng } from "./random.js";
import type { Resources } from "./resources.js";
import { randomCluster, randomRequest } from "./test-support.js";
import type { PlacementDecision } from "./types.js";

describe("indexed search", () => {
  it("returns exactly the exhaustive scan's host and score on seeded random clusters", () => {
    let compared = 0;
    let placed = 0;
    let noFits = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const c = randomCluster(seed, 40 + seed * 10);
      const { index, rng } = c;
      let lease = 0;
      for (let step = 0; step < 400; step++) {
        c.now += rng.int(0, 400);
        if (step % 5 === 0) index.advanceTo(c.now);
        // leases end
        for (const h of index.hosts()) {
          for (const hold of index.holdsOn(h.id)) if (hold.end <= c.now) index.release(hold.id);
        }
        if (rng.next() < 0.05) {
          const hosts = index.hosts();
          const h = rng.pick(hosts);
          index.setHostState(h.id, rng.pick(["READY", "READY", "DRAINING", "DOWN"] as const));
        }
        const req = randomRequest(rng, c.now, `l${lease}`);
        const fast = place(index, req, DEFAULT_PLACEMENT_POLICY);
        const slow = place(index, req, DEFAULT_PLACEMENT_POLICY, { explain: "exhaustive" });
        compared++;
        expect(fast.ok).toBe(slow.ok);
        if (!fast.ok) {
          expect(fast.explanation.filters).toEqual(slow.explanation.filters);
          expect(fast.explanation.binding).toEqual(slow.explanation.binding);
          noFits++;
        }
        if (fast.ok && slow.ok) {
          expect(fast.hostId).toBe(slow.hostId);
          expect(fast.score).toBe(slow.score);
          placed++;
          index.commit(`l${lease}`, fast.hostId, req.window, req.resources, {
            priority: req.priority ?? 0,
            preemptible: req.preemptible ?? false,
            ...(req.group === undefined ? {} : { group: req.group.name }),
          });
          lease++;
        }
      }
    }
    expect(compared).toBe(12 * 400);
    expect(placed).toBeGreaterThan(1000);
    expect(noFits).toBeGreaterThan(50);
  });
});

/** A fuller, bench-like cluster: hour buckets, windows inside and beyond the ring, near-full hosts. */
describe("indexed search on near-full clusters with time-aware bounds", () => {
  const HOUR = 3_600_000;
  const DAY = 24 * HOUR;
  const GIB = 1024;
  const sizes = [1, 2, 4, 8, 16, 32];

  function shape(rng: ReturnType<typeof createRng>): Resources {
    const vcpu = rng.pick(sizes);
    return {
      cpuMillis: vcpu * 1000,
      memoryMib: vcpu * rng.pick([1, 2, 4, 8]) * GIB,
      diskGib: rng.pick([20, 40, 80, 160]),
      gpus: rng.next() < 0.05 ? rng.pick([1, 2]) : 0,
    };
  }

  it("returns the exhaustive scan's host, score and no-fit explanation", () => {
    let compared = 0;
    let noFits = 0;
    let flexible = 0;
    for (let seed = 1; seed <= 3; seed++) {
      const rng = createRng(1000 + seed);
      const index = new ClusterIndex({ horizonBuckets: 96 });
      for (let i = 0; i < 60; i++) {
        index.addHost({
          id: `n${String(i).padStart(3, "0")}`,
          capacity:
            i % 7 === 0
              ? { cpuMillis: 24_000, memoryMib: 192 * GIB, diskGib: 2000, gpus: 4 }
              : {
                  cpuMillis: 24_000,
                  memoryMib: (i % 2 === 0 ? 192 : 256) * GIB,
                  diskGib: 2000,
                  gpus: 0,
                },
          labels: { zone: `z${i % 3}`, rack: `r${i % 10}` },
          state: i % 29 === 5 ? "CORDONED" : "READY",
        });
      }
      let now = Date.UTC(2030, 0, 1) + 1234;
      index.advanceTo(now);
      const ends: { end: number; id: string }[] = [];
      let lease = 0;
      for (let step = 0; step < 700; step++) {
        now += rng.int(0, 4 * 60_000);
        index.advanceTo(now);
        for (let i = ends.length - 1; i >= 0; i--) {
          const e = ends[i] as { end: number; id: string };
          if (e.end <= now) {
            index.release(e.id);
            ends.splice(i, 1);
          }
        }
        const id = `m${lease}`;
        const r = rng.next();
        const duration = Math.round(HOUR * Math.exp(rng.next() * Math.log(168)));
        const group =
          rng.next() < 0.15
            ? { name: `g${rng.int(0, 4)}`, kind: "anti-affinity" as const, hard: true }
            : undefined;
        const base = {
          leaseId: id,
          resources: shape(rng),
          ...(rng.next() < 0.1
            ? { constraints: [{ key: "zone", op: "=" as const, value: "z1" }] }
            : {}),
          ...(group === undefined ? {} : { group }),
        };
        let fast: PlacementDecision;
        let slow: PlacementDecision;
        if (r < 0.1) {
          const earliest = now + rng.int(0, DAY);
          const req = { ...base, earliest, latest: earliest + 2 * DAY, duration };
          fast = findEarliestSlot(index, req);
          slow = findEarliestSlot(index, req, DEFAULT_PLACEMENT_POLICY, { explain: "exhaustive" });
          flexible++;
        } else {
          const start = r < 0.7 ? now - rng.int(0, 5000) : now + rng.int(0, 7 * DAY);
          const req = { ...base, window: { start, end: start + duration } };
          fast = place(index, req);
          slow = place(index, req, DEFAULT_PLACEMENT_POLICY, { explain: "exhaustive" });
        }
        compared++;
        expect(fast.ok).toBe(slow.ok);
        if (!fast.ok || !slow.ok) {
          expect(fast.explanation.filters).toEqual(slow.explanation.filters);
          expect(fast.explanation.binding).toEqual(slow.explanation.binding);
          noFits++;
          continue;
        }
        expect([fast.hostId, fast.start, fast.score]).toEqual([
          slow.hostId,
          slow.start,
          slow.score,
        ]);
        index.commit(id, fast.hostId, { start: fast.start, end: fast.end }, base.resources, {
          priority: 0,
          preemptible: false,
          ...(group === undefined ? {} : { group: group.name }),
        });
        ends.push({ end: fast.end, id });
        lease++;
      }
    }
    expect(compared).toBe(3 * 700);
    expect(noFits).toBeGreaterThan(10);
    expect(flexible).toBeGreaterThan(100);
  });
});
