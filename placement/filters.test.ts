/**
 * Every filter on tiny hand-built clusters, through `place(..., { explain: "exhaustive" })`: the
 * choice and the explanation's per-filter counts.
 */

import { describe, expect, it } from "vitest";
import { ClusterIndex } from "./cluster-index.js";
import { place, placeGroup } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from "./policy.js";
import type { Resources } from "./resources.js";
import type { Requirement } from "./selector.js";
import type {
  GroupSpec,
  HostState,
  PlacementDecision,
  PlacementRequest,
  TimeWindow,
} from "./types.js";

/** Allocatable = capacity (ratios 1): 8 cpus, 32 GiB, 100 GiB disk, no GPUs. */
const CAP: Resources = { cpuMillis: 8000, memoryMib: 32_768, diskGib: 100, gpus: 0 };
const ONE = { cpuMillis: 1000, memoryMib: 1024, diskGib: 1, gpus: 0 };
const W: TimeWindow = { start: 1000, end: 2000 };
/** No fragmentation or affinity preference unless a test asks: binpack alone decides. */
const FIT_ONLY: PlacementPolicy = {
  ...DEFAULT_PLACEMENT_POLICY,
  weights: { fit: 1, fragmentation: 0, affinity: 0 },
};

interface HostDef {
  readonly id: string;
  readonly labels?: Record<string, string>;
  readonly state?: HostState;
  readonly capacity?: Resources;
}

function cluster(hosts: readonly HostDef[]): ClusterIndex {
  const index = new ClusterIndex({ bucketMs: 100, horizonBuckets: 16 });
  for (const h of hosts) {
    index.addHost({
      id: h.id,
      capacity: h.capacity ?? CAP,
      ratios: { cpuMillis: 1 },
      labels: h.labels ?? {},
      state: h.state ?? "READY",
    });
  }
  return index;
}

function exhaustive(
  index: ClusterIndex,
  request: Partial<PlacementRequest>,
  policy: PlacementPolicy = FIT_ONLY,
): PlacementDecision {
  return place(index, { resources: ONE, window: W, ...request }, policy, {
    explain: "exhaustive",
  });
}

function counts(d: PlacementDecision): Record<string, number> {
  return Object.fromEntries(d.explanation.filters.map((f) => [f.name, f.removed]));
}

function member(
  index: ClusterIndex,
  id: string,
  hostId: string,
  group: string,
  window: TimeWindow = W,
): void {
  index.commit(id, hostId, window, ONE, { priority: 0, preemptible: false, group });
}

describe("host-state filter", () => {
  it("removes every host that is not READY", () => {
    const index = cluster([
      { id: "a-cordoned", state: "CORDONED" },
      { id: "b-draining", state: "DRAINING" },
      { id: "c-suspect", state: "SUSPECT" },
      { id: "d-down", state: "DOWN" },
      { id: "e-ready" },
    ]);
    const d = exhaustive(index, {});
    expect(d.ok && d.hostId).toBe("e-ready");
    expect(counts(d)).toEqual({ "host-state": 4, resources: 0 });
    expect(d.explanation.feasibleHosts).toBe(1);
    expect(d.explanation.hostsConsidered).toBe(5);
    expect(d.explanation.hostsEvaluated).toBe(5);

    index.setHostState("e-ready", "CORDONED");
    const no = exhaustive(index, {});
    expect(no.ok).toBe(false);
    expect(counts(no)).toEqual({ "host-state": 5, resources: 0 });
    expect(no.explanation.summary).toContain("host-state removed 5");
    // no host passes the other filters: nothing to blame a resource for
    expect(no.explanation.binding).toBeUndefined();
  });
});

describe("labels filter", () => {
  const hosts: HostDef[] = [
    { id: "h1", labels: { zone: "a", gen: "2" } },
    { id: "h2", labels: { zone: "b", gen: "10" } },
    { id: "h3", labels: { zone: "c", gen: "x2" } },
    { id: "h4" },
  ];
  const cases: [string, Requirement[], string[]][] = [
    ["=", [{ key: "zone", op: "=", value: "a" }], ["h1"]],
    [
      "!= (matches hosts without the key)",
      [{ key: "zone", op: "!=", value: "a" }],
      ["h2", "h3", "h4"],
    ],
    ["in", [{ key: "zone", op: "in", values: ["a", "b"] }], ["h1", "h2"]],
    [
      "notin (matches hosts without the key)",
      [{ key: "zone", op: "notin", values: ["a", "b"] }],
      ["h3", "h4"],
    ],
    ["exists", [{ key: "zone", op: "exists" }], ["h1", "h2", "h3"]],
    ["!exists", [{ key: "zone", op: "!exists" }], ["h4"]],
    ["< (numeric, non-numeric labels never match)", [{ key: "gen", op: "<", value: 5 }], ["h1"]],
    ["> compares numbers, not strings", [{ key: "gen", op: ">", value: 5 }], ["h2"]],
    ["> with a low bound", [{ key: "gen", op: ">", value: 1 }], ["h1", "h2"]],
    ["< on a missing key", [{ key: "rack", op: "<", value: 100 }], []],
    [
      "several requirements all hold",
      [
        { key: "zone", op: "!=", value: "a" },
        { key: "gen", op: "exists" },
      ],
      ["h2", "h3"],
    ],
  ];
  for (const [name, constraints, expected] of cases) {
    it(`${name}: keeps ${expected.join(", ") || "nothing"}`, () => {
      const index = cluster(hosts);
      const d = exhaustive(index, { constraints });
      expect(counts(d)).toEqual({
        "host-state": 0,
        labels: hosts.length - expected.length,
        resources: 0,
      });
      expect(d.explanation.feasibleHosts).toBe(expected.length);
      if (expected.length === 0) expect(d.ok).toBe(false);
      // all hosts are empty: equal scores, ties go to the smallest id
      else expect(d.ok && d.hostId).toBe(expected[0]);
    });
  }

  it("counts each filter on its own: a host can be removed by labels and resources", () => {
    const index = cluster([{ id: "h1", labels: { zone: "a" } }, { id: "h2" }]);
    const big = { ...ONE, cpuMillis: 9000 };
    const d = exhaustive(index, { resources: big, constraints: [{ key: "zone", op: "exists" }] });
    expect(d.ok).toBe(false);
    expect(counts(d)).toEqual({ "host-state": 0, labels: 1, resources: 2 });
  });
});

describe("affinity filter (hard)", () => {
  const hosts: HostDef[] = [
    { id: "h1", labels: { zone: "a" } },
    { id: "h2", labels: { zone: "b" } },
    { id: "h3", labels: { zone: "b" } },
    { id: "h4" },
  ];
  const group: GroupSpec = { name: "g", kind: "affinity", hard: true };

  it("keeps only the hosts with a member overlapping the window", () => {
    const index = cluster(hosts);
    member(index, "m1", "h3", "g");
    member(index, "other", "h1", "other-group");
    const d = exhaustive(index, { group });
    expect(d.ok && d.hostId).toBe("h3");
    expect(counts(d)).toEqual({ "host-state": 0, affinity: 3, resources: 0 });
  });

  it("lets the first member go anywhere; adjacent members (end == start) do not count", () => {
    const index = cluster(hosts);
    member(index, "before", "h3", "g", { start: 0, end: W.start });
    member(index, "after", "h3", "g", { start: W.end, end: W.end + 500 });
    const d = exhaustive(index, { group });
    expect(counts(d)).toEqual({ "host-state": 0, affinity: 0, resources: 0 });
    expect(d.ok && d.hostId).toBe("h1");
  });

  it("ignores the lease's own holds (re-placement)", () => {
    const index = cluster(hosts);
    index.commit("self", "h3", W, ONE, {
      leaseId: "L",
      priority: 0,
      preemptible: false,
      group: "g",
    });
    const d = exhaustive(index, { group, leaseId: "L" });
    expect(counts(d).affinity).toBe(0);
  });

  it("per topology domain: every host in a domain with a member qualifies", () => {
    const index = cluster(hosts);
    member(index, "m1", "h2", "g");
    const d = exhaustive(index, { group: { ...group, topologyKey: "zone" } });
    // h1 is in zone a, h4 has no zone
    expect(counts(d)).toEqual({ "host-state": 0, affinity: 2, resources: 0 });
    expect(d.ok && d.hostId).toBe("h2");
    expect(d.explanation.feasibleHosts).toBe(2);
  });

  it("fails when the member's host is full, and says so", () => {
    const index = cluster(hosts);
    member(index, "m1", "h3", "g");
    const d = exhaustive(index, { group, resources: { ...ONE, cpuMillis: 7500 } });
    expect(d.ok).toBe(false);
    expect(counts(d)).toEqual({ "host-state": 0, affinity: 3, resources: 1 });
    expect(d.explanation.binding?.hostId).toBe("h3");
    expect(d.explanation.binding?.resource).toBe("cpuMillis");
    expect(d.explanation.binding?.shortBy).toBe(500);
  });
});

describe("anti-affinity filter (hard)", () => {
  const hosts: HostDef[] = [
    { id: "h1", labels: { zone: "a" } },
    { id: "h2", labels: { zone: "a" } },
    { id: "h3", labels: { zone: "b" } },
    { id: "h4" },
  ];
  const group: GroupSpec = { name: "g", kind: "anti-affinity", hard: true };

  it("removes the hosts with a member overlapping the window", () => {
    const index = cluster(hosts);
    member(index, "m1", "h1", "g");
    member(index, "m2", "h2", "g");
    member(index, "m3", "h3", "g", { start: W.end, end: W.end + 100 }); // adjacent: no overlap
    const d = exhaustive(index, { group });
    expect(counts(d)).toEqual({ "host-state": 0, "anti-affinity": 2, resources: 0 });
    // h1 and h2 hold members: binpack would prefer them; the filter keeps them out
    expect(d.ok && d.hostId).toBe("h3");
  });

  it("per topology domain: removes the whole domain; hosts without the key stay", () => {
    const index = cluster(hosts);
    member(index, "m1", "h1", "g");
    const d = exhaustive(index, { group: { ...group, topologyKey: "zone" } });
    expect(counts(d)).toEqual({ "host-state": 0, "anti-affinity": 2, resources: 0 });
    expect(d.explanation.feasibleHosts).toBe(2);
  });
});

describe("topology spread (max skew)", () => {
  const hosts: HostDef[] = [
    { id: "a1", labels: { zone: "a" } },
    { id: "a2", labels: { zone: "a" } },
    { id: "b1", labels: { zone: "b" } },
    { id: "c1", labels: { zone: "c" } },
    { id: "n1" },
  ];
  const spread = (maxSkew: number): GroupSpec => ({
    name: "g",
    kind: "anti-affinity",
    hard: false,
    topologyKey: "zone",
    maxSkew,
  });

  it("allows only domains that keep (count + 1 − min) ≤ maxSkew", () => {
    const index = cluster(hosts);
    member(index, "m1", "a1", "g");
    member(index, "m2", "a2", "g");
    member(index, "m3", "b1", "g");
    // counts a 2, b 1, c 0: skew 1 allows c only; hosts without the key are out
    const d1 = exhaustive(index, { group: spread(1) });
    expect(counts(d1)).toEqual({ "host-state": 0, "topology-spread": 4, resources: 0 });
    expect(d1.ok && d1.hostId).toBe("c1");
    // skew 2 allows b and c
    const d2 = exhaustive(index, { group: spread(2) });
    expect(counts(d2)).toEqual({ "host-state": 0, "topology-spread": 3, resources: 0 });
    expect(d2.explanation.feasibleHosts).toBe(2);
    // skew 3 allows every zone
    const d3 = exhaustive(index, { group: spread(3) });
    expect(counts(d3)["topology-spread"]).toBe(1);
  });

  it("applies with hard groups too, next to the anti-affinity filter", () => {
    const index = cluster(hosts);
    member(index, "m1", "a1", "g");
    const d = exhaustive(index, { group: { ...spread(1), hard: true } });
    // counts a 1, b 0, c 0 → a not allowed by skew; anti-affinity removes zone a as well
    expect(counts(d)).toEqual({
      "host-state": 0,
      "anti-affinity": 2,
      "topology-spread": 3,
      resources: 0,
    });
    expect(d.ok && d.hostId).toBe("b1");
  });

  // As Kubernetes (nodeAffinityPolicy: Honor): only domains with a host the request may use count
  // toward the minimum. Zone c can never receive this member; counted, its 0 would cap zones a and
  // b at maxSkew members each. Min over {a, b} is 1 and both zones allow a second member.
  it("counts only the domains the request's constraints allow", () => {
    const index = cluster(hosts);
    member(index, "m1", "a1", "g");
    member(index, "m2", "b1", "g");
    const d = exhaustive(index, {
      group: spread(1),
      constraints: [{ key: "zone", op: "in", values: ["a", "b"] }],
    });
    expect(d.ok).toBe(true);
    expect(counts(d)["topology-spread"]).toBe(2); // c1 (zone c) and n1 (no zone)
  });

  it("counts only domains with a host the constraints allow, also for constraints on other keys", () => {
    const index = cluster([
      { id: "a1", labels: { zone: "a", gen: "3" } },
      { id: "b1", labels: { zone: "b", gen: "3" } },
      { id: "c1", labels: { zone: "c", gen: "1" } },
      { id: "c2", labels: { zone: "c", gen: "2" } },
    ]);
    member(index, "m1", "a1", "g");
    member(index, "m2", "b1", "g");
    // gen > 2 excludes zone c (no host of it qualifies): min over {a, b} is 1, both allow a second
    const d = exhaustive(index, {
      group: spread(1),
      constraints: [{ key: "gen", op: ">", value: 2 }],
    });
    expect(d.ok).toBe(true);
    expect(counts(d)).toEqual({
      "host-state": 0,
      labels: 2,
      "topology-spread": 2, // zone c may not take the member either: it is not counted
      resources: 0,
    });
    // one qualifying host is enough for the zone to count: c2 makes min 0 again
    const d2 = exhaustive(index, {
      group: spread(1),
      constraints: [{ key: "gen", op: ">", value: 1 }],
    });
    expect(d2.ok && d2.hostId).toBe("c2");
    expect(counts(d2)["topology-spread"]).toBe(2);
  });

  it("counts a domain whose hosts are all not READY (host state is not looked at)", () => {
    const index = cluster([
      ...hosts.filter((h) => h.id !== "c1"),
      { id: "c1", labels: { zone: "c" }, state: "DOWN" },
    ]);
    member(index, "m1", "a1", "g");
    member(index, "m2", "b1", "g");
    // zone c is down but still counts (as Kubernetes' nodeTaintsPolicy: Ignore): min is 0, so
    // zones a and b are full at skew 1 and the member waits rather than piling into them
    const d = exhaustive(index, { group: spread(1) });
    expect(d.ok).toBe(false);
    expect(counts(d)).toEqual({ "host-state": 1, "topology-spread": 4, resources: 0 });
  });

  it("rejects maxSkew without a topology key", () => {
    const index = cluster(hosts);
    expect(() =>
      exhaustive(index, { group: { name: "g", kind: "anti-affinity", hard: true, maxSkew: 1 } }),
    ).toThrow(/topologyKey/);
  });
});

describe("distinct hosts for a group (gang with hard anti-affinity)", () => {
  const group: GroupSpec = { name: "gang", kind: "anti-affinity", hard: true };
  const member = (i: number): PlacementRequest => ({
    leaseId: `m${i}`,
    resources: ONE,
    window: W,
    group,
  });

  it("puts every member on its own host", () => {
    const index = cluster([{ id: "h1" }, { id: "h2" }, { id: "h3" }]);
    const g = placeGroup(index, [0, 1, 2].map(member), FIT_ONLY);
    expect(g.ok).toBe(true);
    if (g.ok) expect(new Set(g.placements.map((p) => p.hostId)).size).toBe(3);
    expect(index.holdCount).toBe(0);
  });

  it("fails at the member with no host left, explained by the anti-affinity filter", () => {
    const index = cluster([{ id: "h1" }, { id: "h2" }, { id: "h3" }]);
    const g = placeGroup(index, [0, 1, 2, 3].map(member), FIT_ONLY, { explain: "exhaustive" });
    expect(g.ok).toBe(false);
    if (!g.ok) {
      expect(g.failedIndex).toBe(3);
      expect(counts({ ok: false, explanation: g.explanation })).toEqual({
        "host-state": 0,
        "anti-affinity": 3,
        resources: 0,
      });
    }
    expect(index.holdCount).toBe(0);
  });
});

describe("resources filter over a window", () => {
  function loaded(): ClusterIndex {
    const index = cluster([{ id: "h1" }]);
    // 6 of 8 cpus over [1000, 2000), 5 over [3000, 4000)
    index.commit(
      "x",
      "h1",
      { start: 1000, end: 2000 },
      { ...ONE, cpuMillis: 6000 },
      {
        priority: 0,
        preemptible: false,
      },
    );
    index.commit(
      "y",
      "h1",
      { start: 3000, end: 4000 },
      { ...ONE, cpuMillis: 5000 },
      {
        priority: 0,
        preemptible: false,
      },
    );
    return index;
  }
  const cpu = (c: number) => ({ ...ONE, cpuMillis: c });

  it("adjacent windows (end == start) do not overlap", () => {
    const index = loaded();
    for (const window of [
      { start: 2000, end: 3000 },
      { start: 0, end: 1000 },
      { start: 4000, end: 5000 },
    ]) {
      const d = exhaustive(index, { resources: cpu(8000), window });
      expect(d.ok && d.hostId).toBe("h1");
      expect(counts(d).resources).toBe(0);
    }
  });

  it("uses the peak over the window, not the sum of holds", () => {
    const index = loaded();
    const d = exhaustive(index, { resources: cpu(2000), window: { start: 0, end: 5000 } });
    expect(d.ok).toBe(true);
    const no = exhaustive(index, { resources: cpu(2001), window: { start: 0, end: 5000 } });
    expect(no.ok).toBe(false);
    expect(counts(no)).toEqual({ "host-state": 0, resources: 1 });
  });

  it("binds where the window overlaps the load, by the shortfall", () => {
    const index = loaded();
    const no = exhaustive(index, { resources: cpu(4000), window: { start: 1999, end: 3001 } });
    expect(no.ok).toBe(false);
    expect(no.explanation.binding).toEqual({
      resource: "cpuMillis",
      start: 1999,
      end: 3001,
      shortBy: 2000,
      hostId: "h1",
      shortOnHosts: { cpuMillis: 1 },
    });
    // one instant of overlap is enough to refuse
    const edge = exhaustive(index, { resources: cpu(2001), window: { start: 1999, end: 2000 } });
    expect(edge.ok).toBe(false);
  });

  it("checks every dimension, extended resources included", () => {
    const index = cluster([
      { id: "fpga", capacity: { ...CAP, extended: { "example.com/fpga": 1 } } },
      { id: "plain" },
    ]);
    const fpga = { ...ONE, extended: { "example.com/fpga": 1 } };
    const d = exhaustive(index, { resources: fpga });
    expect(d.ok && d.hostId).toBe("fpga");
    expect(counts(d).resources).toBe(1);
    const mem = exhaustive(index, { resources: { ...ONE, memoryMib: 40_000 } });
    expect(mem.ok).toBe(false);
    expect(mem.explanation.binding?.resource).toBe("memoryMib");
    expect(mem.explanation.binding?.shortBy).toBe(40_000 - 32_768);
  });
});
