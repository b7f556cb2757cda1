/**
 * Every scorer on tiny hand-built clusters, through `place(..., { explain: "exhaustive" })`: the
 * choice, the score and the explanation's per-scorer breakdown.
 */

import { describe, expect, it } from "vitest";
import { ClusterIndex } from "./cluster-index.js";
import { place } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from "./policy.js";
import type { Resources } from "./resources.js";
import type { GroupSpec, PlacementDecision, PlacementRequest, TimeWindow } from "./types.js";

/** Two dimensions only (no disk, no GPUs): utilisation weights are ½ cpu, ½ memory. */
const CAP: Resources = { cpuMillis: 4000, memoryMib: 4096, diskGib: 0, gpus: 0 };
const W: TimeWindow = { start: 0, end: 100 };
const REQ: Resources = { cpuMillis: 1000, memoryMib: 1024, diskGib: 0, gpus: 0 };
const FIT_ONLY: PlacementPolicy = {
  ...DEFAULT_PLACEMENT_POLICY,
  weights: { fit: 1, fragmentation: 0, affinity: 0 },
};

function cluster(used: Record<string, Resources | undefined>): ClusterIndex {
  const index = new ClusterIndex();
  for (const [id, u] of Object.entries(used)) {
    index.addHost({ id, capacity: CAP, ratios: { cpuMillis: 1 }, labels: {}, state: "READY" });
    if (u !== undefined) index.commit(`load-${id}`, id, W, u, { priority: 0, preemptible: false });
  }
  return index;
}

function decide(
  index: ClusterIndex,
  request: Partial<PlacementRequest>,
  policy: PlacementPolicy,
): PlacementDecision {
  return place(index, { resources: REQ, window: W, ...request }, policy, { explain: "exhaustive" });
}

function breakdown(d: PlacementDecision, hostId: string): Record<string, number> | undefined {
  return d.explanation.top?.find((t) => t.hostId === hostId)?.breakdown;
}

const use = (cpu: number, mem: number): Resources => ({
  cpuMillis: cpu,
  memoryMib: mem,
  diskGib: 0,
  gpus: 0,
});

describe("binpack scorer", () => {
  it("prefers the fuller host; the score is the weighted utilisation after placement", () => {
    const index = cluster({ empty: undefined, half: use(2000, 2048) });
    const d = decide(index, {}, FIT_ONLY);
    expect(d.ok && d.hostId).toBe("half");
    // ½·(3000/4000) + ½·(3072/4096)
    expect(d.ok && d.score).toBeCloseTo(0.75, 12);
    expect(breakdown(d, "half")).toEqual({ binpack: expect.closeTo(0.75, 12) });
    expect(breakdown(d, "empty")).toEqual({ binpack: expect.closeTo(0.25, 12) });
    expect(d.explanation.top?.map((t) => t.hostId)).toEqual(["half", "empty"]);
  });

  it("uses the peak over the window: load outside the window does not count", () => {
    const index = cluster({ a: undefined, b: undefined });
    index.commit("later", "a", { start: 100, end: 200 }, use(3000, 3072), {
      priority: 0,
      preemptible: false,
    });
    index.commit("now", "b", { start: 50, end: 60 }, use(1000, 1024), {
      priority: 0,
      preemptible: false,
    });
    const d = decide(index, {}, FIT_ONLY);
    expect(d.ok && d.hostId).toBe("b");
  });

  it("breaks ties by the smallest host id", () => {
    const index = cluster({ z: undefined, m: undefined, q: undefined });
    const d = decide(index, {}, FIT_ONLY);
    expect(d.ok && d.hostId).toBe("m");
  });
});

describe("spread scorer", () => {
  it("prefers the emptier host (policy or per-request override)", () => {
    const index = cluster({ empty: undefined, half: use(2000, 2048) });
    const spread: PlacementPolicy = { ...FIT_ONLY, fit: "spread" };
    const d = decide(index, {}, spread);
    expect(d.ok && d.hostId).toBe("empty");
    expect(d.ok && d.score).toBeCloseTo(0.75, 12);
    expect(breakdown(d, "empty")).toEqual({ spread: expect.closeTo(0.75, 12) });
    expect(breakdown(d, "half")).toEqual({ spread: expect.closeTo(0.25, 12) });
    const o = decide(index, { policy: "spread" }, FIT_ONLY);
    expect(o.ok && o.hostId).toBe("empty");
  });
});

describe("fragmentation scorer", () => {
  // Remainders after placing 1 cpu / 1 GiB: "roomy" keeps 1.5 cpu / 1 GiB (a common size fits),
  // "tight" keeps 0.4 cpu / 1 GiB (nothing fits: stranded ½·0.4/4 + ½·1/4 = 0.175).
  const index = () => cluster({ roomy: use(1500, 2048), tight: use(2600, 2048) });
  const sizes = [use(1000, 1024)];
  const withFrag = (fragmentation: number): PlacementPolicy => ({
    ...DEFAULT_PLACEMENT_POLICY,
    commonSizes: sizes,
    weights: { fit: 1, fragmentation, affinity: 0 },
  });

  it("scores 1 when a common size still fits the remainder, 1 − stranded share otherwise", () => {
    const d = decide(index(), {}, withFrag(0.25));
    expect(breakdown(d, "roomy")).toEqual({
      binpack: expect.closeTo(0.6875, 12),
      fragmentation: 1,
    });
    expect(breakdown(d, "tight")).toEqual({
      binpack: expect.closeTo(0.825, 12),
      fragmentation: expect.closeTo(0.825, 12),
    });
  });

  it("penalises stranded remainders enough to change the choice when weighted up", () => {
    // binpack alone and a light penalty pick the fuller host...
    expect(decide(index(), {}, FIT_ONLY).ok && decide(index(), {}, FIT_ONLY)).toMatchObject({
      hostId: "tight",
    });
    const light = decide(index(), {}, withFrag(0.25));
    expect(light.ok && light.hostId).toBe("tight");
    // (0.825 + 0.25·0.825) / 1.25 = 0.825
    expect(light.ok && light.score).toBeCloseTo(0.825, 12);
    // ...a heavy one picks the host that keeps a usable remainder: (0.6875 + 2) / 3 > 0.825
    const heavy = decide(index(), {}, withFrag(2));
    expect(heavy.ok && heavy.hostId).toBe("roomy");
    expect(heavy.ok && heavy.score).toBeCloseTo((0.6875 + 2) / 3, 12);
  });

  it("does not penalise a host filled exactly", () => {
    const d = decide(cluster({ full: use(3000, 3072) }), {}, withFrag(1));
    expect(breakdown(d, "full")).toEqual({ binpack: 1, fragmentation: 1 });
  });
});

describe("soft affinity and anti-affinity scorers", () => {
  const tiny = use(10, 10);
  const soft = (kind: GroupSpec["kind"]): GroupSpec => ({ name: "g", kind, hard: false });

  it("soft affinity prefers the host with members", () => {
    const index = cluster({ h1: undefined, h2: undefined });
    index.commit("m", "h2", W, tiny, { priority: 0, preemptible: false, group: "g" });
    const d = decide(index, { group: soft("affinity") }, DEFAULT_PLACEMENT_POLICY);
    expect(d.ok && d.hostId).toBe("h2");
    expect(breakdown(d, "h2")?.affinity).toBe(1);
    expect(breakdown(d, "h1")?.affinity).toBe(0);
    // a soft group filters nothing
    expect(d.explanation.filters.map((f) => f.name)).toEqual(["host-state", "resources"]);
  });

  it("soft anti-affinity prefers the host without members, over binpack", () => {
    const index = cluster({ h1: undefined, h2: undefined });
    index.commit("m", "h1", W, tiny, { priority: 0, preemptible: false, group: "g" });
    // without the group, binpack picks h1 (it holds the member's load)
    expect(decide(index, {}, DEFAULT_PLACEMENT_POLICY)).toMatchObject({ hostId: "h1" });
    const d = decide(index, { group: soft("anti-affinity") }, DEFAULT_PLACEMENT_POLICY);
    expect(d.ok && d.hostId).toBe("h2");
    expect(breakdown(d, "h2")?.affinity).toBe(1);
    expect(breakdown(d, "h1")?.affinity).toBe(0);
  });

  it("is only a preference: the member's host is still used when it is the only one with room", () => {
    const index = cluster({ h1: undefined, h2: use(4000, 4096) });
    index.commit("m", "h1", W, tiny, { priority: 0, preemptible: false, group: "g" });
    const d = decide(index, { group: soft("anti-affinity") }, DEFAULT_PLACEMENT_POLICY);
    expect(d.ok && d.hostId).toBe("h1");
  });

  it("weights are normalised: fit 1, fragmentation 0.25, affinity 0.5 sum to 1", () => {
    const index = cluster({ h1: undefined });
    index.commit("m", "h1", W, tiny, { priority: 0, preemptible: false, group: "g" });
    const d = decide(index, { group: soft("affinity") }, DEFAULT_PLACEMENT_POLICY);
    const b = breakdown(d, "h1");
    expect(b).toBeDefined();
    if (b !== undefined && d.ok) {
      const expected =
        (1 * (b.binpack ?? 0) + 0.25 * (b.fragmentation ?? 0) + 0.5 * (b.affinity ?? 0)) / 1.75;
      expect(d.score).toBeCloseTo(expected, 12);
    }
  });
});
