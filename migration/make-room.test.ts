import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ClusterIndex,
  type HoldView,
  type PlacementRequest,
  place,
} from "../placement/index.js";
import { planMakeRoom } from "./make-room.js";
import { fragmented, HOUR, NOW, run, smallCluster, snapshot, vm } from "./test-support.js";

function request(
  cpus: number,
  memGib: number,
  start = NOW,
  end = NOW + 2 * HOUR,
): PlacementRequest {
  return { leaseId: "new", resources: vm(cpus, memGib), window: { start, end } };
}

/** h0 full on cpu; h1 and h2 half full. */
function threeHosts(): ClusterIndex {
  const index = smallCluster(3);
  run(index, "a", "h0", vm(2, 2));
  run(index, "b", "h0", vm(2, 2));
  run(index, "c", "h1", vm(2, 2));
  run(index, "d", "h2", vm(2, 2));
  return index;
}

describe("planMakeRoom", () => {
  it("needs no move when the lease already fits", () => {
    const index = threeHosts();
    const plan = planMakeRoom({ index, now: NOW }, request(2, 2));
    expect(plan).toMatchObject({ ok: true, moves: [] });
  });

  it("opens a half-full host with one live migration", () => {
    const index = threeHosts();
    const before = snapshot(index);
    const plan = planMakeRoom({ index, now: NOW }, request(4, 4));
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.hostId).toBe("h1");
    expect(plan.moves).toEqual([
      {
        leaseId: "c",
        fromHostId: "h1",
        toHostId: "h2",
        kind: "live",
        window: { start: NOW, end: NOW + 4 * HOUR },
        memoryMib: 2048,
      },
    ]);
    expect(plan.liveMigrations).toBe(1);
    expect(snapshot(index)).toBe(before);
  });

  it("works around leases that cannot live-migrate", () => {
    const index = threeHosts();
    const pinned = new Set(["c", "d"]);
    const plan = planMakeRoom(
      { index, now: NOW, leaseInfo: (id) => (pinned.has(id) ? { liveMigratable: false } : {}) },
      request(4, 4),
    );
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.hostId).toBe("h0");
    expect(plan.moves.map((m) => m.leaseId).sort()).toEqual(["a", "b"]);
    expect(new Set(plan.moves.map((m) => m.toHostId))).toEqual(new Set(["h1", "h2"]));
  });

  it("respects the lease's own constraints on the opened host", () => {
    const index = threeHosts();
    const plan = planMakeRoom(
      { index, now: NOW },
      {
        ...request(4, 4),
        constraints: [{ key: "zone", op: "=", value: "a" }],
      },
    );
    // h1 is in zone b: h2 (zone a) is opened instead
    expect(plan).toMatchObject({ ok: true, hostId: "h2" });
  });

  it("moves only what overlaps the window, preferring a reservation to a live migration", () => {
    const index = smallCluster(2);
    run(index, "now", "h0", vm(2, 2), NOW - HOUR, NOW + HOUR);
    run(index, "later", "h0", vm(2, 2), NOW + 3 * HOUR, NOW + 5 * HOUR);
    run(index, "small", "h1", vm(2, 2), NOW - HOUR, NOW + 6 * HOUR);
    // 3 cpus over [+2 h, +4 h): moving "later" to h1 (a re-placement) or "small" to h0 (a live
    // migration) both open a host; "now" has ended by then and stays
    const plan = planMakeRoom({ index, now: NOW }, request(3, 1, NOW + 2 * HOUR, NOW + 4 * HOUR));
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.hostId).toBe("h0");
    expect(plan.moves).toHaveLength(1);
    expect(plan.moves[0]).toMatchObject({ leaseId: "later", kind: "reservation", toHostId: "h1" });
    expect(plan.liveMigrations).toBe(0);
  });

  it("says so when no plan within the move limit exists, and when its budget ran out", () => {
    const index = threeHosts();
    const plan = planMakeRoom({ index, now: NOW }, request(4, 4), { maxMoves: 0 });
    expect(plan).toMatchObject({ ok: false, reason: "no-plan", proven: true });
    const cut = planMakeRoom({ index, now: NOW }, request(4, 4), { maxHostsExamined: 0 });
    expect(cut).toMatchObject({ ok: false, reason: "no-plan", proven: false, hostsExamined: 0 });
    const found = planMakeRoom({ index, now: NOW }, request(4, 4));
    expect(found).toMatchObject({ ok: true, proven: true });
    const big = planMakeRoom({ index, now: NOW }, request(5, 4));
    expect(big).toMatchObject({ ok: false, reason: "no-eligible-host" });
  });

  it("finds the fewest moves (checked against brute force on small fragmented clusters)", () => {
    const seen = new Map<number | undefined, number>();
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 3, max: 5 }),
        (seed, hosts) => {
          const { index, rng } = fragmented(seed, hosts, 3);
          const start = NOW + rng.int(0, 2) * HOUR;
          const req = request(rng.int(3, 4), rng.int(4, 7), start, start + 2 * HOUR);
          const before = snapshot(index);
          const plan = planMakeRoom({ index, now: NOW }, req, {
            maxMoves: 4,
            destinationsPerLease: hosts,
            setsPerHost: 1_000_000,
          });
          expect(snapshot(index)).toBe(before);
          const brute = bruteForceFewest(index, req, 4);
          seen.set(brute, (seen.get(brute) ?? 0) + 1);
          if (brute === undefined) {
            expect(plan.ok).toBe(false);
            return;
          }
          expect(plan.ok).toBe(true);
          if (!plan.ok) return;
          expect(plan.moves.length).toBe(brute);
          expect(validPlan(index, req, plan.hostId, plan.moves)).toBe(true);
          expect(snapshot(index)).toBe(before);
        },
      ),
      { seed: 20261124, numRuns: 200 },
    );
    // the cases cover plans of one move, of several, and no plan at all
    expect(seen.get(1) ?? 0).toBeGreaterThan(5);
    expect([2, 3, 4].reduce((n, m) => n + (seen.get(m) ?? 0), 0)).toBeGreaterThan(5);
    expect(seen.get(undefined) ?? 0).toBeGreaterThan(0);
  });
});

/** Apply a plan on the index (then undo it): every move fits its destination, then the lease fits. */
function validPlan(
  index: ClusterIndex,
  req: PlacementRequest,
  hostId: string,
  moves: readonly { leaseId: string; fromHostId: string; toHostId: string }[],
): boolean {
  const released: HoldView[] = [];
  const temps: string[] = [];
  try {
    for (const m of moves) {
      const h = index.holdsOfLease(m.leaseId)[0] as HoldView;
      if (m.fromHostId !== hostId || h.hostId !== hostId || m.toHostId === hostId) return false;
      const id = `tmp-${m.leaseId}`;
      index.commit(id, m.toHostId, { start: Math.max(NOW, h.start), end: h.end }, h.resources, {
        priority: 0,
        preemptible: false,
      });
      temps.push(id);
    }
    for (const m of moves) {
      const h = index.holdsOfLease(m.leaseId).find((x) => x.hostId === hostId) as HoldView;
      index.release(h.id);
      released.push(h);
    }
    const d = place(index, req, undefined, {
      excludeHosts: new Set(
        index
          .hosts()
          .map((h) => h.id)
          .filter((id) => id !== hostId),
      ),
    });
    return d.ok && d.hostId === hostId;
  } catch {
    return false;
  } finally {
    for (const id of temps) index.release(id);
    for (const h of released) run(index, h.id, h.hostId, h.resources, h.start, h.end);
  }
}

/**
 * The fewest moves off one host (each moved lease to any other READY host for its remaining
 * window, all together) after which `req` fits there; undefined if none within `maxMoves`.
 */
function bruteForceFewest(
  index: ClusterIndex,
  req: PlacementRequest,
  maxMoves: number,
): number | undefined {
  const { start, end } = req.window;
  const hosts = index.hosts().filter((h) => h.state === "READY");
  for (let m = 0; m <= maxMoves; m++) {
    for (const host of hosts) {
      const movable = index
        .holdsOn(host.id)
        .filter((h) => h.start < end && start < h.end && h.end > NOW);
      for (const subset of subsets(movable, m)) {
        if (
          opens(
            index,
            req,
            host.id,
            subset,
            hosts.map((h) => h.id),
          )
        )
          return m;
      }
    }
  }
  return undefined;
}

function* subsets<T>(items: readonly T[], size: number, from = 0): Generator<T[]> {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = from; i <= items.length - size; i++) {
    for (const rest of subsets(items, size - 1, i + 1)) yield [items[i] as T, ...rest];
  }
}

function opens(
  index: ClusterIndex,
  req: PlacementRequest,
  hostId: string,
  moved: readonly HoldView[],
  hostIds: readonly string[],
): boolean {
  for (const h of moved) index.release(h.id);
  try {
    const free = index.freeOver(hostId, req.window);
    if (free.cpuMillis < req.resources.cpuMillis || free.memoryMib < req.resources.memoryMib) {
      return false;
    }
    const others = hostIds.filter((id) => id !== hostId);
    const assign = (i: number): boolean => {
      if (i === moved.length) return true;
      const h = moved[i] as HoldView;
      for (const to of others) {
        const id = `bf-${h.id}`;
        try {
          index.commit(id, to, { start: Math.max(NOW, h.start), end: h.end }, h.resources, {
            priority: 0,
            preemptible: false,
          });
        } catch {
          continue;
        }
        const ok = assign(i + 1);
        index.release(id);
        if (ok) return true;
      }
      return false;
    };
    return assign(0);
  } finally {
    for (const h of moved) run(index, h.id, h.hostId, h.resources, h.start, h.end);
  }
}
