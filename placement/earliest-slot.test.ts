/**
 * Earliest-slot search for flexible leases: hand-built cases, and the true earliest start against
 * brute force over every candidate start (fast-check, small clusters).
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bruteFilters } from "./brute-force.js";
import { ClusterIndex } from "./cluster-index.js";
import { findEarliestSlot, place } from "./place.js";
import { createRng, type Rng } from "./random.js";
import type { Resources } from "./resources.js";
import type { Requirement } from "./selector.js";
import type { GroupSpec, HostState, PlacementRequest, SlotRequest } from "./types.js";

const r = (cpu: number, mem = 0): Resources => ({
  cpuMillis: cpu,
  memoryMib: mem,
  diskGib: 0,
  gpus: 0,
});

function cluster(ids: readonly string[]): ClusterIndex {
  const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 8 });
  for (const id of ids) {
    index.addHost({
      id,
      capacity: r(10, 10),
      ratios: { cpuMillis: 1 },
      labels: {},
      state: "READY",
    });
  }
  return index;
}

const meta = { priority: 0, preemptible: false };

describe("findEarliestSlot (cases)", () => {
  it("returns the earliest start when it fits there", () => {
    const index = cluster(["h1"]);
    const d = findEarliestSlot(index, { resources: r(5), earliest: 10, latest: 100, duration: 20 });
    expect(d).toMatchObject({ ok: true, hostId: "h1", start: 10, end: 30 });
  });

  it("waits for the first gap long enough, across hosts", () => {
    const index = cluster(["h1", "h2"]);
    index.commit("a", "h1", { start: 0, end: 50 }, r(8), meta);
    index.commit("b", "h1", { start: 60, end: 100 }, r(8), meta);
    index.commit("c", "h2", { start: 0, end: 70 }, r(8), meta);
    // h1's gap [50, 60) is too short for 20; h2 frees at 70
    const d = findEarliestSlot(index, { resources: r(5), earliest: 0, latest: 200, duration: 20 });
    expect(d).toMatchObject({ ok: true, hostId: "h2", start: 70, end: 90 });
    // a 10-long lease fits h1's gap
    const short = findEarliestSlot(index, {
      resources: r(5),
      earliest: 0,
      latest: 200,
      duration: 10,
    });
    expect(short).toMatchObject({ ok: true, hostId: "h1", start: 50 });
  });

  it("fails when no start in [earliest, latest] fits, and says so", () => {
    const index = cluster(["h1"]);
    index.commit("a", "h1", { start: 0, end: 100 }, r(8), meta);
    const d = findEarliestSlot(index, { resources: r(5), earliest: 0, latest: 99, duration: 10 });
    expect(d.ok).toBe(false);
    expect(d.explanation.summary).toMatch(/^no start in \[0, 99\] fits for 10 ms/);
    // latest is inclusive
    expect(
      findEarliestSlot(index, { resources: r(5), earliest: 0, latest: 100, duration: 10 }),
    ).toMatchObject({
      ok: true,
      start: 100,
    });
  });

  it("rejects bad arguments", () => {
    const index = cluster(["h1"]);
    expect(() =>
      findEarliestSlot(index, { resources: r(1), earliest: 10, latest: 5, duration: 1 }),
    ).toThrow();
    expect(() =>
      findEarliestSlot(index, { resources: r(1), earliest: 0, latest: 5, duration: 0 }),
    ).toThrow();
  });

  // Group filters are applied per start while scanning: over the whole span [earliest, latest +
  // duration) the member would block h1 for good and the answer would be 50 (when h2 frees).
  it("anti-affinity: a host becomes eligible when the member leaves", () => {
    const index = cluster(["h1", "h2"]);
    index.commit("m", "h1", { start: 0, end: 10 }, r(1), { ...meta, group: "g" });
    index.commit("full", "h2", { start: 0, end: 50 }, r(10), meta);
    const group: GroupSpec = { name: "g", kind: "anti-affinity", hard: true };
    const d = findEarliestSlot(index, {
      resources: r(5),
      earliest: 0,
      latest: 100,
      duration: 10,
      group,
    });
    expect(d).toMatchObject({ ok: true, hostId: "h1", start: 10 });
  });

  it("affinity: a start where no member overlaps allows every host", () => {
    const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 8 });
    for (const [id, zone] of [
      ["a1", "a"],
      ["b1", "b"],
    ] as const) {
      index.addHost({
        id,
        capacity: r(10, 10),
        ratios: { cpuMillis: 1 },
        labels: { zone },
        state: "READY",
      });
    }
    index.commit("m", "a1", { start: 0, end: 75 }, r(1), { ...meta, group: "g" });
    index.setHostState("a1", "DOWN");
    const group: GroupSpec = { name: "g", kind: "affinity", hard: true, topologyKey: "zone" };
    // until 75 the member confines the lease to zone a, whose only host is down
    const d = findEarliestSlot(index, {
      resources: r(5),
      earliest: 0,
      latest: 100,
      duration: 10,
      group,
    });
    expect(d).toMatchObject({ ok: true, hostId: "b1", start: 75 });
    // per host (no topology key) likewise
    const h = findEarliestSlot(index, {
      resources: r(5),
      earliest: 0,
      latest: 100,
      duration: 10,
      group: { name: "g", kind: "affinity", hard: true },
    });
    expect(h).toMatchObject({ ok: true, hostId: "b1", start: 75 });
  });

  it("affinity: the first start whose window reaches a later member on the host", () => {
    const index = cluster(["h1", "h2"]);
    index.commit("m2", "h2", { start: 0, end: 200 }, r(1), { ...meta, group: "g" });
    index.commit("fill", "h2", { start: 0, end: 1000 }, r(9), meta);
    index.commit("m1", "h1", { start: 100, end: 200 }, r(1), { ...meta, group: "g" });
    index.commit("x", "h1", { start: 0, end: 80 }, r(1), meta);
    const group: GroupSpec = { name: "g", kind: "affinity", hard: true };
    // m2 overlaps every start before 200, so only hosts with a member overlapping qualify: h2 is
    // full; h1 qualifies once the window reaches m1 (starts after 70). Candidate starts are the
    // instants holds start or end: 80 (x ends), not 100 (m1 starts) nor 200 (m2 ends).
    const d = findEarliestSlot(index, {
      resources: r(5),
      earliest: 0,
      latest: 500,
      duration: 30,
      group,
    });
    expect(d).toMatchObject({ ok: true, hostId: "h1", start: 80 });
    // the brute-force oracle below agrees
    expect(
      bruteEarliest(index, { resources: r(5), earliest: 0, latest: 500, duration: 30, group }),
    ).toBe(80);
  });
});

// ---- against brute force --------------------------------------------------------------------

/** The first candidate start (earliest, then every hold start or end after it, up to latest) that fits on some host. */
function bruteEarliest(index: ClusterIndex, req: SlotRequest): number | undefined {
  const ts = new Set<number>([req.earliest]);
  for (const h of index.hosts()) {
    for (const x of index.holdsOn(h.id)) {
      for (const t of [x.start, x.end]) if (t > req.earliest && t <= req.latest) ts.add(t);
    }
  }
  const { earliest: _e, latest: _l, duration, ...shape } = req;
  for (const t of [...ts].sort((a, b) => a - b)) {
    const at: PlacementRequest = { ...shape, window: { start: t, end: t + duration } };
    const b = bruteFilters(index, at);
    if ([...b.rejects.values()].some((s) => s.size === 0)) return t;
  }
  return undefined;
}

function randomSlotCluster(rng: Rng, grouped: boolean): ClusterIndex {
  const index = new ClusterIndex({ bucketMs: 10, horizonBuckets: 8 });
  const states: HostState[] = ["READY", "READY", "READY", "DOWN"];
  const hosts = rng.int(1, 4);
  for (let i = 0; i < hosts; i++) {
    index.addHost({
      id: `h${i}`,
      capacity: r(10, 10),
      ratios: { cpuMillis: 1 },
      labels: { zone: rng.pick(["a", "b"]) },
      state: rng.pick(states),
    });
    for (let j = 0; j < rng.int(0, 6); j++) {
      const start = rng.int(0, 20) * 5;
      const window = { start, end: start + rng.int(1, 10) * 5 };
      const m = grouped && rng.next() < 0.4 ? { ...meta, group: "g" } : meta;
      try {
        index.commit(`h${i}-${j}`, `h${i}`, window, r(rng.int(1, 8), rng.int(0, 8)), m);
      } catch {
        // full: skip
      }
    }
  }
  return index;
}

function randomSlotRequest(rng: Rng, group?: GroupSpec): SlotRequest {
  const earliest = rng.int(0, 100);
  const constraints: Requirement[] =
    rng.next() < 0.2 ? [{ key: "zone", op: "=", value: rng.pick(["a", "b"]) }] : [];
  return {
    resources: r(rng.int(1, 10), rng.int(0, 10)),
    earliest,
    latest: earliest + rng.int(0, 100),
    duration: rng.int(1, 60),
    constraints,
    ...(group === undefined ? {} : { group }),
  };
}

describe("findEarliestSlot finds the true earliest slot (property, brute force)", () => {
  it("without groups: same start as brute force, on the best host at that start", () => {
    let found = 0;
    let delayed = 0;
    let none = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2_000_000 }), (seed) => {
        const rng = createRng(seed);
        const index = randomSlotCluster(rng, false);
        const req = randomSlotRequest(rng);
        const truth = bruteEarliest(index, req);
        const d = findEarliestSlot(index, req);
        if (truth === undefined) {
          expect(d.ok).toBe(false);
          none++;
          return;
        }
        expect(d.ok && d.start).toBe(truth);
        if (!d.ok) return;
        found++;
        if (truth > req.earliest) delayed++;
        expect(d.end).toBe(truth + req.duration);
        const { earliest: _e, latest: _l, duration, ...shape } = req;
        const best = place(index, { ...shape, window: { start: truth, end: truth + duration } });
        expect(best.ok && best.hostId).toBe(d.hostId);
      }),
      { seed: 11, numRuns: 500 },
    );
    expect(found).toBeGreaterThan(150);
    expect(delayed).toBeGreaterThan(50);
    expect(none).toBeGreaterThan(20);
  });

  // Hard (anti-)affinity is applied per start while scanning. Over the whole span, affinity kept
  // only hosts in the domains of members overlapping any start, missing starts where no member
  // overlaps and every host is allowed (shrunk counterexample: one READY host in zone b, members
  // in zone a until 75; truth 75, the search found no slot).
  for (const [kind, seed] of [
    ["affinity", 12],
    ["anti-affinity", 13],
  ] as const) {
    it(`with hard ${kind} groups: same start as brute force`, () => {
      let delayed = 0;
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 2_000_000 }), (s) => {
          const rng = createRng(s);
          const index = randomSlotCluster(rng, true);
          const group: GroupSpec = rng.pick<GroupSpec>([
            { name: "g", kind, hard: true },
            { name: "g", kind, hard: true, topologyKey: "zone" },
          ]);
          const req = randomSlotRequest(rng, group);
          const truth = bruteEarliest(index, req);
          const d = findEarliestSlot(index, req);
          expect(d.ok ? d.start : undefined).toBe(truth);
          if (d.ok && truth !== undefined && truth > req.earliest) delayed++;
        }),
        { seed, numRuns: 300 },
      );
      expect(delayed).toBeGreaterThan(20);
    });
  }
});
