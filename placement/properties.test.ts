/**
 * Property tests (fast-check, seeded): no sequence of operations ever oversubscribes a host, and
 * exhaustive explanations agree with filters evaluated by brute force.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bruteFilters,
  type FilterName,
  fitsBrute,
  labelsMatch,
  oversubscriptions,
  shortfalls,
} from "./brute-force.js";
import type { ClusterIndex } from "./cluster-index.js";
import { CapacityExceededError } from "./errors.js";
import { place } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY } from "./policy.js";
import { createRng } from "./random.js";
import { get, type Resources } from "./resources.js";
import { randomCluster, randomRequest } from "./test-support.js";
import type { HostState, PlacementRequest } from "./types.js";

const FC = { seed: 20261123, numRuns: 60 } as const;

function metaOf(req: PlacementRequest) {
  return {
    ...(req.leaseId === undefined ? {} : { leaseId: req.leaseId }),
    priority: req.priority ?? 0,
    preemptible: req.preemptible ?? false,
    ...(req.group === undefined ? {} : { group: req.group.name }),
  };
}

function withFpga(r: Resources, n: number): Resources {
  return n === 0 ? r : { ...r, extended: { "example.com/fpga": n } };
}

type Op =
  | { kind: "place"; seed: number }
  | { kind: "commit"; seed: number; host: number }
  | { kind: "release"; pick: number }
  | { kind: "resize"; pick: number; seed: number }
  | { kind: "advance"; dt: number }
  | { kind: "state"; host: number; state: HostState };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("place" as const), seed: fc.integer() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("commit" as const),
      seed: fc.integer(),
      host: fc.nat(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("resize" as const),
      pick: fc.nat(),
      seed: fc.integer(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      dt: fc.integer({ min: 0, max: 20_000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("state" as const),
      host: fc.nat(),
      state: fc.constantFrom<HostState>("READY", "CORDONED", "DOWN"),
    }),
  },
);

function holdIds(index: ClusterIndex): string[] {
  return index
    .hosts()
    .flatMap((h) => index.holdsOn(h.id).map((x) => x.id))
    .sort();
}

describe("no oversubscription (property)", () => {
  it("after every place/commit/release/resize/advanceTo/state step, every host fits at every instant", () => {
    let placed = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(opArb, { minLength: 1, maxLength: 60, size: "max" }),
        (seed, hostCount, ops) => {
          const c = randomCluster(seed, hostCount);
          const { index } = c;
          const hosts = index.hosts().map((h) => h.id);
          let seq = 0;
          for (const op of ops) {
            switch (op.kind) {
              case "place": {
                const req = randomRequest(createRng(op.seed), c.now, `p${seq++}`);
                const d = place(index, req);
                if (d.ok) {
                  // every commit of a place result succeeds
                  index.commit(req.leaseId ?? "", d.hostId, req.window, req.resources, metaOf(req));
                  placed++;
                }
                break;
              }
              case "commit": {
                const rng = createRng(op.seed);
                const req = randomRequest(rng, c.now, `c${seq++}`);
                const resources = withFpga(req.resources, rng.next() < 0.1 ? 1 : 0);
                const hostId = hosts[op.host % hosts.length] as string;
                const host = index.host(hostId);
                if (host === undefined) throw new Error("host vanished");
                const fits = fitsBrute(
                  host.allocatable,
                  index.holdsOn(hostId),
                  req.window,
                  resources,
                );
                const before = holdIds(index);
                let threw = false;
                try {
                  index.commit(req.leaseId ?? "", hostId, req.window, resources, metaOf(req));
                } catch (err) {
                  expect(err).toBeInstanceOf(CapacityExceededError);
                  threw = true;
                  refused++;
                }
                expect(threw).toBe(!fits);
                if (threw) expect(holdIds(index)).toEqual(before);
                break;
              }
              case "release": {
                const ids = holdIds(index);
                if (ids.length === 0) break;
                expect(index.release(ids[op.pick % ids.length] as string)).toBe(true);
                break;
              }
              case "resize": {
                const ids = holdIds(index);
                if (ids.length === 0) break;
                const id = ids[op.pick % ids.length] as string;
                const old = index.hold(id);
                if (old === undefined) throw new Error("hold vanished");
                const rng = createRng(op.seed);
                const start = old.start + rng.int(-5_000, 5_000);
                const window = {
                  start,
                  end: Math.max(start + 1, old.end + rng.int(-5_000, 20_000)),
                };
                const k = rng.pick([0.5, 1, 1, 2, 4]);
                const resources: Resources = {
                  cpuMillis: old.resources.cpuMillis * k,
                  memoryMib: old.resources.memoryMib * k,
                  diskGib: old.resources.diskGib,
                  gpus: old.resources.gpus,
                };
                const host = index.host(old.hostId);
                if (host === undefined) throw new Error("host vanished");
                const others = index.holdsOn(old.hostId).filter((h) => h.id !== id);
                const fits = fitsBrute(host.allocatable, others, window, resources);
                let threw = false;
                try {
                  index.resize(id, { window, resources });
                } catch (err) {
                  expect(err).toBeInstanceOf(CapacityExceededError);
                  threw = true;
                }
                expect(threw).toBe(!fits);
                expect(index.hold(id)).toEqual(
                  threw ? old : { ...old, start: window.start, end: window.end, resources },
                );
                break;
              }
              case "advance":
                c.now += op.dt;
                index.advanceTo(c.now);
                break;
              case "state":
                index.setHostState(hosts[op.host % hosts.length] as string, op.state);
                break;
            }
            expect(oversubscriptions(index)).toEqual([]);
          }
        },
      ),
      FC,
    );
    // the runs exercised both outcomes
    expect(placed).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(10);
  });
});

/** A cluster loaded by the placer, then requests (some big) to explain. */
function loadedCluster(seed: number, hostCount: number, leases: number) {
  const c = randomCluster(seed, hostCount);
  for (let i = 0; i < leases; i++) {
    const req = randomRequest(c.rng, c.now, `l${i}`);
    const d = place(c.index, req);
    if (d.ok) c.index.commit(`l${i}`, d.hostId, req.window, req.resources, metaOf(req));
  }
  return c;
}

describe("explanations agree with the filters (property)", () => {
  it("per-filter removed counts, feasible hosts and the binding resource match brute force", () => {
    let noFits = 0;
    let bindings = 0;
    let constrainedSpreads = 0;
    let fits = 0;
    const seen = new Set<FilterName>();
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 40 }),
        (seed, hostCount, leases) => {
          const c = loadedCluster(seed, hostCount, leases);
          const { index, rng } = c;
          for (let q = 0; q < 8; q++) {
            // sometimes re-place an existing lease (its own holds are ignored by group filters)
            const leaseId = rng.next() < 0.2 ? `l${rng.int(0, Math.max(0, leases - 1))}` : `q${q}`;
            const base = randomRequest(rng, c.now, leaseId);
            const k = rng.pick([1, 1, 2, 4]);
            const req: PlacementRequest = {
              ...base,
              resources: withFpga(
                { ...base.resources, memoryMib: base.resources.memoryMib * k },
                rng.next() < 0.05 ? 1 : 0,
              ),
            };
            const d = place(index, req, DEFAULT_PLACEMENT_POLICY, { explain: "exhaustive" });
            const brute = bruteFilters(index, req);
            const skewKey = req.group?.maxSkew === undefined ? undefined : req.group.topologyKey;
            if (skewKey !== undefined) {
              // a spread whose constraints leave out a whole domain (which then does not count)
              const zones = (hs: readonly { labels: Readonly<Record<string, string>> }[]) =>
                new Set(hs.flatMap((h) => h.labels[skewKey] ?? []));
              const usable = brute.hosts.filter((h) =>
                labelsMatch(req.constraints ?? [], h.labels),
              );
              if (zones(usable).size < zones(brute.hosts).size) constrainedSpreads++;
            }
            const e = d.explanation;
            expect(e.mode).toBe("exhaustive");
            expect(e.filters.map((f) => f.name)).toEqual(brute.applies);
            for (const f of e.filters) {
              const expected = [...brute.rejects.values()].filter((r) =>
                r.has(f.name as FilterName),
              ).length;
              expect({ filter: f.name, removed: f.removed }).toEqual({
                filter: f.name,
                removed: expected,
              });
              if (f.removed > 0) seen.add(f.name as FilterName);
            }
            const feasible = brute.hosts.filter((h) => brute.rejects.get(h.id)?.size === 0);
            expect(e.feasibleHosts).toBe(feasible.length);
            expect(d.ok).toBe(feasible.length > 0);
            if (d.ok) {
              fits++;
              expect(feasible.map((h) => h.id)).toContain(d.hostId);
              continue;
            }
            noFits++;
            // hosts that pass every filter but resources: the binding resource is about them
            const eligible = brute.hosts.filter((h) => {
              const r = brute.rejects.get(h.id);
              return r !== undefined && r.size === 1 && r.has("resources");
            });
            const b = e.binding;
            if (eligible.length === 0) {
              expect(b).toBeUndefined();
              continue;
            }
            bindings++;
            expect(b).toBeDefined();
            if (b === undefined) continue;
            // the closest host: smallest worst relative shortfall, ties to the smallest id
            const rel = eligible.map((h) => {
              const s = shortfalls(h.allocatable, index.holdsOn(h.id), req.window, req.resources);
              let worst = 0;
              for (const [name, v] of s) {
                if (v.worst <= 0) continue;
                const a = get(h.allocatable, name);
                worst = Math.max(worst, a > 0 ? v.worst / a : Number.POSITIVE_INFINITY);
              }
              return { id: h.id, worst, s };
            });
            rel.sort((x, y) => x.worst - y.worst || (x.id < y.id ? -1 : 1));
            const closest = rel[0];
            expect(b.hostId).toBe(closest?.id);
            // the binding resource really is short there, by that much, over that span
            const short = closest?.s.get(b.resource);
            expect(short).toBeDefined();
            expect(short?.worst).toBeGreaterThan(0);
            expect(b.shortBy).toBe(short?.worst);
            expect(b.start).toBe(short?.from);
            expect(b.end).toBe(short?.to);
            // and it is the most binding resource on that host (relative to allocatable)
            const hostAlloc = brute.hosts.find((h) => h.id === b.hostId)?.allocatable;
            if (hostAlloc !== undefined && closest !== undefined) {
              const relOf = (name: string) => {
                const a = get(hostAlloc, name);
                const w = closest.s.get(name)?.worst ?? 0;
                return a > 0 ? w / a : Number.POSITIVE_INFINITY;
              };
              expect(relOf(b.resource)).toBe(closest.worst);
            }
            const total = Object.values(b.shortOnHosts ?? {}).reduce((s, n) => s + n, 0);
            expect(total).toBe(eligible.length);
          }
        },
      ),
      { ...FC, numRuns: 80 },
    );
    expect(fits).toBeGreaterThan(100);
    expect(noFits).toBeGreaterThan(20);
    expect(bindings).toBeGreaterThan(10);
    expect(constrainedSpreads).toBeGreaterThan(10);
    expect([...seen].sort()).toEqual(
      ["affinity", "anti-affinity", "host-state", "labels", "resources", "topology-spread"].sort(),
    );
  });
});
