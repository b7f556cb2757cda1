import { describe, expect, it } from "vitest";
import { planConsolidation } from "./consolidate.js";
import { NOW, run, smallCluster, snapshot, vm } from "./test-support.js";

describe("planConsolidation", () => {
  it("empties the least-loaded hosts onto the others, never through a host it empties", () => {
    const index = smallCluster(5);
    run(index, "a", "h0", vm(1, 1));
    run(index, "b", "h1", vm(1, 2));
    run(index, "c", "h1", vm(1, 1));
    run(index, "d", "h2", vm(2, 4));
    run(index, "e", "h3", vm(3, 4));
    // h4 is already empty
    const before = snapshot(index);
    const plan = planConsolidation({ index, now: NOW });
    expect(plan.emptiedHosts[0]).toBe("h4");
    // h0's lease fills h3, h2's goes to h1: both become receivers and stay
    expect(plan.emptiedHosts).toEqual(["h4", "h0", "h2"]);
    const emptied = new Set(plan.emptiedHosts);
    for (const m of plan.moves) {
      expect(emptied.has(m.fromHostId)).toBe(true);
      expect(emptied.has(m.toHostId)).toBe(false);
    }
    for (const h of emptied) {
      const leases = index.holdsOn(h).map((x) => x.leaseId);
      for (const l of leases) expect(plan.moves.some((m) => m.leaseId === l)).toBe(true);
    }
    expect(snapshot(index)).toBe(before);
  });

  it("keeps a host whose lease cannot move, and honours maxHosts and keep", () => {
    const index = smallCluster(3);
    run(index, "pinned", "h0", vm(1, 1));
    run(index, "b", "h1", vm(1, 1));
    run(index, "c", "h2", vm(2, 2));
    const input = {
      index,
      now: NOW,
      leaseInfo: (id: string) => (id === "pinned" ? { liveMigratable: false } : {}),
    };
    const plan = planConsolidation(input);
    expect(plan.emptiedHosts).toEqual(["h1"]);
    expect(plan.moves).toEqual([expect.objectContaining({ leaseId: "b", toHostId: "h2" })]);
    // with h1 kept, h2 empties onto h0 (its own evacuation failed, so it takes leases again)
    expect(planConsolidation(input, { keep: new Set(["h1"]) }).emptiedHosts).toEqual(["h2"]);
    expect(planConsolidation(input, { maxHosts: 0 }).moves).toEqual([]);
  });
});
