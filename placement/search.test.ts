import { describe, expect, it } from "vitest";
import { place } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY } from "./policy.js";
import { randomCluster, randomRequest } from "./test-support.js";

describe("indexed search", () => {
  it("returns exactly the exhaustive scan's host and score on seeded random clusters", () => {
    let compared = 0;
    let placed = 0;
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
  });
});
