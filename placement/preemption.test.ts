/**
 * The preemption planner: hand-built cases for each rule of the cost order, and minimality against
 * brute force over every subset of victims on every host (fast-check, small clusters).
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fitsBrute } from "./brute-force.js";
import { ClusterIndex, type HoldView } from "./cluster-index.js";
import { compareCost, type PreemptionCost, planPreemption } from "./preemption.js";
import { createRng } from "./random.js";
import type { Resources } from "./resources.js";
import type { HostState, PlacementRequest, TimeWindow } from "./types.js";

const CAP: Resources = { cpuMillis: 10, memoryMib: 10, diskGib: 0, gpus: 0 };
const r = (cpu: number, mem = 0): Resources => ({
  cpuMillis: cpu,
  memoryMib: mem,
  diskGib: 0,
  gpus: 0,
});
const W: TimeWindow = { start: 100, end: 200 };

function cluster(ids: readonly string[]): ClusterIndex {
  const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 8 });
  for (const id of ids) {
    index.addHost({
      id,
      capacity: CAP,
      ratios: { cpuMillis: 1 },
      labels: { name: id },
      state: "READY",
    });
  }
  return index;
}

function hold(
  index: ClusterIndex,
  id: string,
  hostId: string,
  cpu: number,
  priority: number,
  window: TimeWindow = W,
  preemptible = true,
): void {
  index.commit(id, hostId, window, r(cpu), { priority, preemptible });
}

const want = (
  cpu: number,
  priority: number,
  extra: Partial<PlacementRequest> = {},
): PlacementRequest => ({
  resources: r(cpu),
  window: W,
  priority,
  ...extra,
});

describe("planPreemption (cases)", () => {
  it("returns an empty plan when the lease already fits, and null when nothing can make room", () => {
    const index = cluster(["h1"]);
    hold(index, "a", "h1", 5, 0);
    expect(planPreemption(index, want(5, 9))).toMatchObject({
      hostId: "h1",
      victims: [],
      holds: [],
    });
    expect(planPreemption(index, want(11, 9))).toBeNull();
  });

  it("prefers fewest victims over lower priority", () => {
    const index = cluster(["h1"]);
    hold(index, "big", "h1", 6, 3);
    hold(index, "s1", "h1", 2, 0);
    hold(index, "s2", "h1", 2, 0);
    const p = planPreemption(index, want(6, 5));
    expect(p?.victims).toEqual(["big"]);
    expect(p?.cost).toEqual({ count: 1, maxPriority: 3, prioritySum: 3, remainingMs: 100 });
  });

  it("with as many victims, prefers the lowest priority", () => {
    const index = cluster(["h1"]);
    hold(index, "p2", "h1", 5, 2);
    hold(index, "p1", "h1", 5, 1);
    expect(planPreemption(index, want(5, 5))?.victims).toEqual(["p1"]);
  });

  it("with as many victims of the same priority, prefers the least remaining time", () => {
    const index = cluster(["h1"]);
    hold(index, "long", "h1", 5, 1, { start: 0, end: 300 });
    hold(index, "short", "h1", 5, 1, { start: 0, end: 150 });
    const p = planPreemption(index, want(5, 5));
    expect(p?.victims).toEqual(["short"]);
    // remaining time is counted from the new lease's start
    expect(p?.cost.remainingMs).toBe(50);
  });

  it("never picks non-preemptible leases, leases of equal or higher priority, or leases outside the window", () => {
    const index = cluster(["h1"]);
    hold(index, "pinned", "h1", 4, 0, W, false);
    hold(index, "equal", "h1", 4, 5);
    hold(index, "adjacent", "h1", 10, 0, { start: 200, end: 300 });
    expect(planPreemption(index, want(3, 5))).toBeNull();
    expect(planPreemption(index, want(2, 5))?.victims).toEqual([]);
    expect(planPreemption(index, want(3, 6))?.victims).toEqual(["equal"]);
  });

  it("covers the whole window: victims at different times are all needed", () => {
    const index = cluster(["h1"]);
    hold(index, "early", "h1", 8, 0, { start: 100, end: 150 });
    hold(index, "late", "h1", 8, 0, { start: 150, end: 200 });
    hold(index, "spanning", "h1", 1, 4, { start: 0, end: 400 });
    const p = planPreemption(index, want(5, 5));
    expect(p?.victims).toEqual(["early", "late"]);
    expect(p?.holds).toEqual(["early", "late"]);
  });

  it("picks the cheapest host, ties to the smallest id, and respects the non-resource filters", () => {
    const index = cluster(["h1", "h2", "h3"]);
    hold(index, "a1", "h1", 4, 1);
    hold(index, "a2", "h1", 4, 1);
    hold(index, "b1", "h2", 8, 2);
    hold(index, "c1", "h3", 8, 2);
    // h1 needs two victims (of lower priority), h2 and h3 one each: h2 by id
    expect(planPreemption(index, want(7, 5))?.hostId).toBe("h2");
    index.setHostState("h2", "CORDONED");
    expect(planPreemption(index, want(7, 5))?.hostId).toBe("h3");
    const onlyH1 = want(7, 5, { constraints: [{ key: "name", op: "=", value: "h1" }] });
    expect(planPreemption(index, onlyH1)).toMatchObject({ hostId: "h1", victims: ["a1", "a2"] });
  });

  it("treats a lease with several holds on the host as one victim", () => {
    const index = cluster(["h1"]);
    index.commit("x-1", "h1", { start: 100, end: 150 }, r(5), {
      leaseId: "x",
      priority: 1,
      preemptible: true,
    });
    index.commit("x-2", "h1", { start: 150, end: 200 }, r(5), {
      leaseId: "x",
      priority: 1,
      preemptible: true,
    });
    hold(index, "y", "h1", 5, 0, { start: 100, end: 150 });
    hold(index, "z", "h1", 5, 0, { start: 150, end: 200 });
    const p = planPreemption(index, want(5, 5));
    expect(p).toMatchObject({ victims: ["x"], holds: ["x-1", "x-2"] });
    expect(p?.cost.count).toBe(1);
  });
});

describe("planPreemption at VM scale", () => {
  it("finds an 8-victim plan among 64 candidates (plain enumeration: C(64, 8) ≈ 4·10⁹ sets)", () => {
    const index = new ClusterIndex();
    index.addHost({
      id: "h",
      capacity: { cpuMillis: 64_000, memoryMib: 256 * 1024, diskGib: 0, gpus: 0 },
      labels: {},
      state: "READY",
    });
    const rng = createRng(1);
    for (let i = 0; i < 64; i++) {
      const s = rng.int(0, 10) * 1000;
      index.commit(
        `v${i}`,
        "h",
        { start: s, end: s + rng.int(20, 40) * 1000 },
        { cpuMillis: 4000, memoryMib: 4096, diskGib: 0, gpus: 0 },
        { priority: rng.int(0, 3), preemptible: true },
      );
    }
    const req: PlacementRequest = {
      resources: { cpuMillis: 32_000, memoryMib: 32 * 1024, diskGib: 0, gpus: 0 },
      window: { start: 0, end: 50_000 },
      priority: 5,
    };
    expect(index.holdsOn("h").filter((h) => h.priority === 0).length).toBeGreaterThanOrEqual(8);
    const plan = planPreemption(index, req);
    // 256 vCPU allocatable, 64 × 4 in use at the peak: exactly 8 must go; enough have priority 0
    expect(plan?.cost).toMatchObject({ count: 8, maxPriority: 0, prioritySum: 0 });
    const gone = new Set(plan?.holds);
    const rest = index.holdsOn("h").filter((h) => !gone.has(h.id));
    const host = index.host("h");
    expect(host && fitsBrute(host.allocatable, rest, req.window, req.resources)).toBe(true);
  });
});

// ---- minimality against brute force ---------------------------------------------------------

interface Candidate {
  readonly leaseId: string;
  readonly holds: readonly HoldView[];
}

/** The cost order, written out: fewest victims, lowest priority (highest victim, then sum), least remaining time. */
function bruteCost(victims: readonly Candidate[], windowStart: number): PreemptionCost {
  if (victims.length === 0) return { count: 0, maxPriority: 0, prioritySum: 0, remainingMs: 0 };
  const prios = victims.map((v) => Math.max(...v.holds.map((h) => h.priority)));
  return {
    count: victims.length,
    maxPriority: Math.max(...prios),
    prioritySum: prios.reduce((s, p) => s + p, 0),
    remainingMs: victims
      .flatMap((v) => v.holds)
      .reduce((s, h) => s + h.end - Math.max(windowStart, h.start), 0),
  };
}

function lexLess(a: PreemptionCost, b: PreemptionCost): boolean {
  const ka = [a.count, a.maxPriority, a.prioritySum, a.remainingMs];
  const kb = [b.count, b.maxPriority, b.prioritySum, b.remainingMs];
  for (let i = 0; i < ka.length; i++) {
    if ((ka[i] as number) !== (kb[i] as number)) return (ka[i] as number) < (kb[i] as number);
  }
  return false;
}

function brutePlan(
  index: ClusterIndex,
  req: PlacementRequest,
): { hostId: string; cost: PreemptionCost } | null {
  const p = req.priority ?? 0;
  let best: { hostId: string; cost: PreemptionCost } | null = null;
  for (const host of index.hosts().sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (host.state !== "READY") continue;
    const holds = index.holdsOn(host.id);
    const qualifies = (h: HoldView) =>
      h.preemptible &&
      h.priority < p &&
      h.leaseId !== req.leaseId &&
      h.start < req.window.end &&
      req.window.start < h.end;
    const byLease = new Map<string, HoldView[]>();
    for (const h of holds.filter(qualifies))
      byLease.set(h.leaseId, [...(byLease.get(h.leaseId) ?? []), h]);
    const cands: Candidate[] = [...byLease].map(([leaseId, hs]) => ({ leaseId, holds: hs }));
    for (let mask = 0; mask < 1 << cands.length; mask++) {
      const victims = cands.filter((_, i) => (mask & (1 << i)) !== 0);
      const gone = new Set(victims.flatMap((v) => v.holds.map((h) => h.id)));
      const rest = holds.filter((h) => !gone.has(h.id));
      if (!fitsBrute(host.allocatable, rest, req.window, req.resources)) continue;
      const cost = bruteCost(victims, req.window.start);
      if (best === null || lexLess(cost, best.cost)) best = { hostId: host.id, cost };
    }
  }
  return best;
}

describe("planPreemption is minimal (property, brute force over all subsets)", () => {
  it("finds a plan of the least cost, on the right host, that really makes room", () => {
    let plans = 0;
    let withVictims = 0;
    let nulls = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2_000_000 }), (seed) => {
        const rng = createRng(seed);
        const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 8 });
        const hostCount = rng.int(1, 4);
        const memory = rng.next() < 0.5; // one dimension only: usage stays level more often
        const states: HostState[] = ["READY", "READY", "READY", "CORDONED"];
        for (let i = 0; i < hostCount; i++) {
          index.addHost({
            id: `h${i}`,
            capacity: { cpuMillis: 10, memoryMib: 10, diskGib: 0, gpus: 0 },
            ratios: { cpuMillis: 1 },
            labels: {},
            state: rng.pick(states),
          });
          let leases = 0;
          for (let j = 0; j < rng.int(0, 6); j++) {
            // on a coarse grid: holds often meet end to start, and usage often stays level there
            const start = rng.int(0, 9) * 10;
            const window = { start, end: start + rng.int(1, 6) * 10 };
            const last = `h${i}-l${leases - 1}`;
            const shared =
              leases > 0 && rng.next() < 0.15 ? index.holdsOfLease(last)[0] : undefined;
            const meta = shared
              ? {
                  leaseId: shared.leaseId,
                  priority: shared.priority,
                  preemptible: shared.preemptible,
                }
              : {
                  leaseId: `h${i}-l${leases++}`,
                  priority: rng.int(0, 4),
                  preemptible: rng.next() < 0.75,
                };
            try {
              index.commit(
                `h${i}-x${j}`,
                `h${i}`,
                window,
                r(rng.int(1, 6), memory ? rng.int(0, 6) : 0),
                meta,
              );
            } catch {
              // full: skip this hold
            }
          }
        }
        const start = rng.int(0, 9) * 10 + (rng.next() < 0.3 ? rng.int(1, 9) : 0);
        const req: PlacementRequest = {
          resources: r(rng.int(1, 10), memory ? rng.int(0, 10) : 0),
          window: { start, end: start + rng.int(1, 60) },
          priority: rng.int(1, 5),
          ...(rng.next() < 0.2 ? { leaseId: `h0-l${rng.int(0, 2)}` } : {}),
        };
        const plan = planPreemption(index, req);
        const truth = brutePlan(index, req);
        if (truth === null) {
          expect(plan).toBeNull();
          nulls++;
          return;
        }
        expect(plan).not.toBeNull();
        if (plan === null) return;
        plans++;
        if (plan.victims.length > 0) withVictims++;
        expect({ hostId: plan.hostId, cost: plan.cost }).toEqual(truth);
        expect(compareCost(plan.cost, truth.cost)).toBe(0);
        // the plan works: without its holds the lease fits on its host
        const host = index.host(plan.hostId);
        if (host === undefined) throw new Error("no such host");
        const gone = new Set(plan.holds);
        const rest = index.holdsOn(plan.hostId).filter((h) => !gone.has(h.id));
        expect(fitsBrute(host.allocatable, rest, req.window, req.resources)).toBe(true);
        // victims are exactly the leases of the released holds, each once
        const leases = [...new Set(plan.holds.map((id) => index.hold(id)?.leaseId))].sort();
        expect([...plan.victims].sort()).toEqual(leases);
      }),
      { seed: 7, numRuns: 1500 },
    );
    expect(plans).toBeGreaterThan(100);
    expect(withVictims).toBeGreaterThan(50);
    expect(nulls).toBeGreaterThan(10);
  });
});
