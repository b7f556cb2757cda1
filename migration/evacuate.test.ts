import { describe, expect, it } from "vitest";
import { planPreemption } from "../placement/index.js";
import { planDrain, planVictimMigrations } from "./evacuate.js";
import { HOUR, NOW, run, smallCluster, snapshot, vm } from "./test-support.js";

describe("planDrain", () => {
  it("finds a destination for every lease, each move seeing the ones before it", () => {
    const index = smallCluster(3);
    run(index, "big", "h0", vm(2, 4));
    run(index, "mid", "h0", vm(1, 2));
    run(index, "small", "h0", vm(1, 1));
    run(index, "x", "h1", vm(2, 2));
    run(index, "y", "h2", vm(2, 2));
    const before = snapshot(index);
    const plan = planDrain({ index, now: NOW }, "h0");
    expect(plan.unmovable).toEqual([]);
    // largest first; 4 cpus to place in 2 + 2 free: only a joint plan works
    expect(plan.moves.map((m) => m.leaseId)).toEqual(["big", "mid", "small"]);
    expect(plan.moves.every((m) => m.toHostId !== "h0" && m.kind === "live")).toBe(true);
    // jointly feasible: per destination, cpu moved in ≤ cpu free
    const cpuIn = new Map<string, number>();
    for (const m of plan.moves) {
      const cpu = index.holdsOfLease(m.leaseId)[0]?.resources.cpuMillis ?? 0;
      cpuIn.set(m.toHostId, (cpuIn.get(m.toHostId) ?? 0) + cpu);
    }
    for (const [host, cpu] of cpuIn) {
      expect(cpu).toBeLessThanOrEqual(
        index.freeOver(host, { start: NOW, end: NOW + 4 * HOUR }).cpuMillis,
      );
    }
    expect(snapshot(index)).toBe(before);
  });

  it("reports what cannot move and why, and leaves leases that end by the deadline", () => {
    const index = smallCluster(3, ["READY", "READY", "CORDONED"]);
    run(index, "pinned", "h0", vm(1, 1));
    run(index, "huge", "h0", vm(2, 1));
    run(index, "soon", "h0", vm(1, 1), NOW - HOUR, NOW + HOUR / 2);
    run(index, "later", "h1", vm(1, 1));
    run(index, "resv", "h0", vm(1, 1), NOW + HOUR, NOW + 2 * HOUR);
    run(index, "busy", "h1", vm(2, 1));
    const plan = planDrain(
      { index, now: NOW, leaseInfo: (id) => (id === "pinned" ? { liveMigratable: false } : {}) },
      "h0",
      { deadline: NOW + HOUR },
    );
    expect(plan.endsByDeadline).toEqual(["soon"]);
    // h2 is cordoned: "huge" (2 cpus) finds no room on h1 (1 free)
    expect(plan.unmovable).toEqual([
      { leaseId: "pinned", hostId: "h0", reason: "not-live-migratable" },
      { leaseId: "huge", hostId: "h0", reason: "no-destination" },
    ]);
    expect(plan.moves).toEqual([
      expect.objectContaining({ leaseId: "resv", toHostId: "h1", kind: "reservation" }),
    ]);
  });
});

describe("planVictimMigrations", () => {
  it("migrates the victims that have somewhere to go; the others must stop", () => {
    const index = smallCluster(2);
    index.commit("v1", "h0", { start: NOW - HOUR, end: NOW + HOUR }, vm(2, 2), {
      priority: 1,
      preemptible: true,
    });
    index.commit("v2", "h0", { start: NOW - HOUR, end: NOW + HOUR }, vm(2, 2), {
      priority: 1,
      preemptible: true,
    });
    run(index, "other", "h1", vm(2, 2));
    const req = {
      leaseId: "vip",
      resources: vm(4, 4),
      window: { start: NOW, end: NOW + HOUR },
      priority: 5,
    };
    const victims = planPreemption(index, req);
    expect(victims?.hostId).toBe("h0");
    const plan = planVictimMigrations({ index, now: NOW }, "h0", victims?.victims ?? []);
    expect(plan.moves).toEqual([expect.objectContaining({ leaseId: "v1", toHostId: "h1" })]);
    expect(plan.unmovable).toEqual([{ leaseId: "v2", hostId: "h0", reason: "no-destination" }]);
  });
});
