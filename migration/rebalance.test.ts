import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clusterImbalance, planRebalance } from "./rebalance.js";
import { fragmented, HOUR, NOW, run, smallCluster, snapshot, vm } from "./test-support.js";

function hotHost() {
  const index = smallCluster(4);
  for (let i = 0; i < 4; i++) run(index, `l${i}`, "h0", vm(1, 2));
  return index;
}

describe("planRebalance", () => {
  it("moves leases off the hot host, within the per-host limit, reducing imbalance", () => {
    const index = hotHost();
    const before = snapshot(index);
    const input = { index, now: NOW };
    const plan = planRebalance(input);
    expect(plan.imbalanceBefore).toBeCloseTo(clusterImbalance(input), 12);
    expect(plan.moves).toHaveLength(2);
    for (const m of plan.moves) {
      expect(m.fromHostId).toBe("h0");
      expect(m.toHostId).not.toBe("h0");
      expect(m.benefit).toBeGreaterThan(4 * m.cost);
    }
    // spread: the two leases go to two different empty hosts
    expect(new Set(plan.moves.map((m) => m.toHostId)).size).toBe(2);
    expect(plan.imbalanceAfter).toBeLessThan(plan.imbalanceBefore);
    expect(plan.moves[1]?.imbalanceAfter).toBeCloseTo(plan.imbalanceAfter, 12);
    expect(plan.perResource.cpuMillis?.after).toBeLessThan(plan.perResource.cpuMillis?.before ?? 0);
    expect(snapshot(index)).toBe(before);
  });

  it("proposes nothing at level 1, and more per round with a higher host limit", () => {
    const index = hotHost();
    expect(planRebalance({ index, now: NOW }, { level: 1 }).moves).toEqual([]);
    const plan = planRebalance({ index, now: NOW }, { maxMovesPerHost: 8 });
    // the cluster is level once every host holds one lease
    expect(plan.moves).toHaveLength(3);
    expect(plan.imbalanceAfter).toBeCloseTo(0, 12);
  });

  it("never moves a lease with too little time left, nor one that cannot live-migrate", () => {
    const index = smallCluster(2);
    run(index, "ending", "h0", vm(2, 2), NOW - HOUR, NOW + 10 * 60_000);
    run(index, "pinned", "h0", vm(2, 2));
    const plan = planRebalance(
      { index, now: NOW, leaseInfo: (id) => (id === "pinned" ? { liveMigratable: false } : {}) },
      { level: 5 },
    );
    expect(plan.moves).toEqual([]);
    expect(plan.stop).toBe("no-worthwhile-move");
  });

  it("keeps the lease's constraints and stops when the cluster is balanced", () => {
    const index = smallCluster(4);
    for (let i = 0; i < 4; i++) run(index, `l${i}`, "h0", vm(1, 2));
    const plan = planRebalance(
      {
        index,
        now: NOW,
        leaseInfo: () => ({ constraints: [{ key: "zone", op: "=", value: "a" }] }),
      },
      { maxMovesPerHost: 8 },
    );
    // zone a is h0 and h2
    expect(plan.moves.length).toBeGreaterThan(0);
    expect(plan.moves.every((m) => m.toHostId === "h2")).toBe(true);
    const even = smallCluster(2);
    run(even, "a", "h0", vm(1, 2));
    run(even, "b", "h1", vm(1, 2));
    expect(planRebalance({ index: even, now: NOW }, { level: 5 }).stop).toBe("balanced");
  });

  it("on random clusters: never raises imbalance, respects the limits, leaves the index as it was", () => {
    let proposed = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 2, max: 5 }),
        (seed, level) => {
          const { index } = fragmented(seed, 8, 5);
          const before = snapshot(index);
          const plan = planRebalance(
            { index, now: NOW },
            { level: level as 2 | 3 | 4 | 5, maxMoves: 5 },
          );
          expect(plan.moves.length).toBeLessThanOrEqual(5);
          proposed += plan.moves.length;
          expect(plan.imbalanceAfter).toBeLessThanOrEqual(plan.imbalanceBefore + 1e-12);
          const out = new Map<string, number>();
          const into = new Map<string, number>();
          for (const m of plan.moves) {
            out.set(m.fromHostId, (out.get(m.fromHostId) ?? 0) + 1);
            into.set(m.toHostId, (into.get(m.toHostId) ?? 0) + 1);
            expect(m.kind).toBe("live");
          }
          for (const n of [...out.values(), ...into.values()]) expect(n).toBeLessThanOrEqual(2);
          expect(snapshot(index)).toBe(before);
        },
      ),
      { seed: 7, numRuns: 40 },
    );
    expect(proposed).toBeGreaterThan(20);
  });
});
