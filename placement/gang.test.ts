/**
 * Gang placement: all members or none. On failure the index is unchanged; on success the
 * placements committed together never oversubscribe a host (fast-check, small clusters).
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { oversubscriptions } from "./brute-force.js";
import type { ClusterIndex } from "./cluster-index.js";
import { place, placeGroup } from "./place.js";
import { createRng } from "./random.js";
import { randomCluster, randomRequest } from "./test-support.js";
import type { GroupSpec, PlacementRequest } from "./types.js";

function snapshot(index: ClusterIndex): string {
  const holds = index
    .hosts()
    .flatMap((h) => index.holdsOn(h.id))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  return JSON.stringify({ holds, version: index.holdCount });
}

function metaOf(req: PlacementRequest) {
  return {
    ...(req.leaseId === undefined ? {} : { leaseId: req.leaseId }),
    priority: req.priority ?? 0,
    preemptible: req.preemptible ?? false,
    ...(req.group === undefined ? {} : { group: req.group.name }),
  };
}

describe("placeGroup (property)", () => {
  it("places all members or none; never leaves a hold behind; placements fit together", () => {
    let ok = 0;
    let failed = 0;
    let sharedHost = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2_000_000 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 25 }),
        fc.integer({ min: 1, max: 6 }),
        (seed, hostCount, load, members) => {
          const c = randomCluster(seed, hostCount);
          const { index, rng } = c;
          for (let i = 0; i < load; i++) {
            const req = randomRequest(rng, c.now, `l${i}`);
            const d = place(index, req);
            if (d.ok) index.commit(`l${i}`, d.hostId, req.window, req.resources, metaOf(req));
          }
          const groupRng = createRng(seed ^ 0x9e3779b9);
          const group: GroupSpec | undefined = groupRng.pick<GroupSpec | undefined>([
            undefined,
            { name: "gang", kind: "anti-affinity", hard: true },
            { name: "gang", kind: "affinity", hard: true },
            { name: "gang", kind: "anti-affinity", hard: true, topologyKey: "zone", maxSkew: 1 },
          ]);
          // members share the window (a gang), sizes vary
          const first = randomRequest(groupRng, c.now);
          const requests: PlacementRequest[] = [];
          for (let m = 0; m < members; m++) {
            const base = randomRequest(groupRng, c.now, `gang-${m}`);
            const { group: _g, ...rest } = base;
            requests.push({
              ...rest,
              window: first.window,
              ...(group === undefined ? {} : { group }),
            });
          }
          const before = snapshot(index);
          const g = placeGroup(index, requests);
          // all-or-none: the index is unchanged either way (placeGroup does not commit)
          expect(snapshot(index)).toBe(before);
          if (!g.ok) {
            failed++;
            expect(g.failedIndex).toBeGreaterThanOrEqual(0);
            expect(g.failedIndex).toBeLessThan(members);
            return;
          }
          ok++;
          expect(g.placements.length).toBe(members);
          // committing every placement succeeds and oversubscribes nothing
          g.placements.forEach((p, i) => {
            const req = requests[i] as PlacementRequest;
            expect({ start: p.start, end: p.end }).toEqual(req.window);
            index.commit(`gang-${i}`, p.hostId, req.window, req.resources, metaOf(req));
          });
          expect(oversubscriptions(index)).toEqual([]);
          const hosts = g.placements.map((p) => p.hostId);
          if (new Set(hosts).size < hosts.length) sharedHost++;
          if (group?.kind === "anti-affinity" && group.topologyKey === undefined) {
            expect(new Set(hosts).size).toBe(hosts.length);
          }
          if (group?.kind === "affinity" && group.topologyKey === undefined) {
            // the members after the first go where the first went (or beside earlier members)
            const allowed = new Set(
              index
                .hosts()
                .flatMap((h) => index.holdsOn(h.id))
                .filter((x) => x.group === "gang" && !x.id.startsWith("gang-"))
                .filter((x) => x.start < first.window.end && first.window.start < x.end)
                .map((x) => x.hostId),
            );
            if (allowed.size === 0) allowed.add(hosts[0] as string);
            for (const h of hosts) expect(allowed.has(h)).toBe(true);
          }
        },
      ),
      { seed: 5, numRuns: 250 },
    );
    expect(ok).toBeGreaterThan(50);
    expect(failed).toBeGreaterThan(20);
    expect(sharedHost).toBeGreaterThan(10);
  });

  it("sees earlier members' capacity: two halves of a host fit once, not three times", () => {
    const c = randomCluster(1, 0);
    c.index.addHost({
      id: "only",
      capacity: { cpuMillis: 4000, memoryMib: 4096, diskGib: 100, gpus: 0 },
      ratios: { cpuMillis: 1 },
      labels: {},
      state: "READY",
    });
    const half: PlacementRequest = {
      resources: { cpuMillis: 2000, memoryMib: 2048, diskGib: 10, gpus: 0 },
      window: { start: 0, end: 100 },
    };
    const two = placeGroup(c.index, [half, half]);
    expect(two.ok).toBe(true);
    const three = placeGroup(c.index, [half, half, half]);
    expect(three).toMatchObject({ ok: false, failedIndex: 2 });
    expect(c.index.holdCount).toBe(0);
  });

  it("releases its temporary holds even when a member is invalid", () => {
    const c = randomCluster(2, 3);
    const good = randomRequest(c.rng, c.now);
    const bad: PlacementRequest = { ...good, window: { start: 10, end: 5 } };
    expect(() => placeGroup(c.index, [good, bad])).toThrow();
    expect(c.index.holdCount).toBe(0);
  });
});
