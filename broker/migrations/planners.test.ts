/**
 * The planners wired into a broker with real agents (Agent + SimDriver) on an in-process hub and a
 * VirtualClock: make-room at admission, preemption by migration, rebalance (dry run and real,
 * within the limits). After each, once settled, the capacity invariants hold (`violations`).
 */
import { afterEach, describe, expect, it } from "vitest";
import { ResourceExhaustedError } from "../../core/index.js";
import { type PlannedMove, planConsolidation } from "../../migration/index.js";
import { migratableSpec, stopClusters, type TestCluster, testCluster } from "./test-cluster.js";

afterEach(stopClusters);

function migrationsOf(c: TestCluster) {
  return c.broker.migrations.list({ pageSize: 1000 }).migrations.map((m) => m.value);
}

/** Memory in use per host (GiB), from the index's holds at now. */
function usedGib(c: TestCluster): Record<string, number> {
  const out: Record<string, number> = {};
  const now = c.clock.now();
  for (const h of c.broker.index.hosts()) {
    out[h.id] =
      c.broker.index
        .holdsOn(h.id)
        .filter((x) => x.start <= now && x.end > now)
        .reduce((sum, x) => sum + x.resources.memoryMib, 0) / 1024;
  }
  return out;
}

/**
 * Three 16 GiB hosts packed (binpack) to 14, 14 and 12 GiB: 8 GiB free in all, at most 4 on one
 * host. A 6 GiB lease fits nowhere until one 4 GiB lease moves to the host with 4 free.
 */
async function fragmented(planners: Parameters<typeof testCluster>[3] = {}): Promise<TestCluster> {
  const c = await testCluster(3, 16, {}, planners);
  for (const gib of [10, 10, 8, 4, 4, 4]) {
    const lease = await c.submit(migratableSpec(gib));
    expect(lease.state).not.toBe("PENDING");
  }
  await c.until(() => c.broker.leases.list({ states: ["ACTIVE"] }).leases.length === 6);
  expect(Object.values(usedGib(c)).sort()).toEqual([12, 14, 14]);
  return c;
}

describe("make-room at admission", () => {
  it("admits a lease that fits no single host after the fewest migrations", async () => {
    const c = await fragmented();
    const { lease } = await c.broker.leases.submit(migratableSpec(6));
    // The answer does not wait for the moves: PENDING, with the plan in its message.
    expect(lease.state).toBe("PENDING");
    expect(lease.statusMessage).toMatch(/^making room: 1 migration to open sim-0[12] /);
    await c.until(() => c.lease(lease.id).state === "ACTIVE", 300_000);
    const moves = migrationsOf(c).filter((m) => m.reason === "MAKE_ROOM");
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({ state: "COMPLETED", toHostId: "sim-03" });
    expect(moves[0]?.predicted?.totalTimeMs).toBeGreaterThan(0);
    expect(c.lease(lease.id).hostId).toBe(moves[0]?.fromHostId);
    // 46 GiB on 48: the opened host is full, and so is the one the 4 GiB lease went to.
    expect(Object.values(usedGib(c)).sort()).toEqual([14, 16, 16]);
    expect(await c.violations()).toEqual([]);
  });

  it("makes room for a reservation: the lease is RESERVED on the opened host", async () => {
    const c = await fragmented();
    const start = c.clock.now() + 600_000;
    const { lease } = await c.broker.leases.submit({
      ...migratableSpec(6),
      window: { kind: "reserved", start, durationMs: 1_800_000 },
    });
    expect(lease.state).toBe("PENDING");
    await c.until(() => c.lease(lease.id).state === "RESERVED", 300_000);
    const moves = migrationsOf(c).filter((m) => m.reason === "MAKE_ROOM");
    expect(moves).toHaveLength(1);
    expect(c.lease(lease.id)).toMatchObject({ hostId: moves[0]?.fromHostId, start });
    await c.until(() => c.lease(lease.id).state === "ACTIVE", 900_000, 1000);
    expect(await c.violations()).toEqual([]);
  });

  it("with --make-room off, the same lease is refused", async () => {
    const c = await fragmented({ makeRoom: false });
    await expect(c.broker.leases.submit(migratableSpec(6))).rejects.toBeInstanceOf(
      ResourceExhaustedError,
    );
    expect(migrationsOf(c)).toHaveLength(6 - 6);
  });

  it("rejects a lease that does not queue when its move aborts and no other plan exists", async () => {
    const c = await fragmented();
    const { lease } = await c.broker.leases.submit(migratableSpec(6));
    await c.until(() => migrationsOf(c).some((x) => x.reason === "MAKE_ROOM"), 1000, 10);
    const [m] = migrationsOf(c).filter((x) => x.reason === "MAKE_ROOM");
    if (m === undefined) throw new Error("no make-room migration");
    // Another lease takes the room the plan was counting on: re-planning finds none.
    await c.broker.migrations.abort(m.id, "test");
    const other = await c.broker.leases.submit(migratableSpec(4, { durationMs: 7_200_000 }));
    await c.until(() => c.lease(lease.id).state !== "PENDING", 300_000);
    expect(c.lease(lease.id).state).toBe("REJECTED");
    expect(c.lease(lease.id).statusMessage).toMatch(/making room failed/);
    expect(c.lease(other.lease.id).state).not.toBe("REJECTED");
    await c.until(() => c.broker.migrations.unfinished().length === 0, 300_000);
    expect(await c.violations()).toEqual([]);
  });
  it("makes room for a queued lease once running leases can move for it", async () => {
    const c = await fragmented();
    // 2, 2 and 0 GiB free: no plan for 6 GiB at admission, so it waits in the queue.
    const filler = await c.submit(migratableSpec(4));
    expect(Object.values(usedGib(c)).sort()).toEqual([14, 14, 16]);
    const { lease } = await c.broker.leases.submit({ ...migratableSpec(6), allowQueue: true });
    expect(lease.state).toBe("PENDING");
    expect(lease.statusMessage).not.toMatch(/making room/);
    // 2, 2 and 4 free: still no host for 6 GiB, but one 4 GiB move opens one. The queue asks
    // the room maker again (at most once a minute per lease) and the lease runs.
    await c.broker.leases.cancel(filler.id);
    await c.until(() => c.lease(lease.id).state === "ACTIVE", 300_000);
    const moves = migrationsOf(c).filter((m) => m.reason === "MAKE_ROOM");
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({ state: "COMPLETED" });
    expect(c.lease(lease.id).hostId).toBe(moves[0]?.fromHostId);
    expect(await c.violations()).toEqual([]);
  });
});

describe("preemption by migration", () => {
  it("live-migrates a victim that can move instead of stopping it", async () => {
    const c = await testCluster(3, 16, {}, { makeRoom: false });
    // Shape the cluster with fillers (binpack packs the first host it can): sim-01 12 GiB,
    // sim-02 10 GiB, sim-03 a preemptible 6 GiB victim and 6 GiB more. 4, 6 and 4 GiB free.
    const f1 = await c.submit(migratableSpec(16));
    const f2 = await c.submit(migratableSpec(16));
    // A quiet guest: its migration converges well within the 120 s notice.
    const quiet = { dirty_rate_bytes_per_s: "10000000", working_set_mib: "512" };
    const victim = await c.submit({ ...migratableSpec(6, { params: quiet }), preemptible: true });
    await c.submit(migratableSpec(6));
    await c.broker.leases.cancel(f1.id);
    await c.clock.advance(5000); // the agent's workload stops: its memory is free there too
    await c.submit(migratableSpec(12));
    await c.broker.leases.cancel(f2.id);
    await c.clock.advance(5000);
    await c.submit(migratableSpec(10));
    expect(victim.hostId).toBe("sim-03");
    expect(usedGib(c)).toEqual({ "sim-01": 12, "sim-02": 10, "sim-03": 12 });

    const { lease: urgent } = await c.broker.leases.submit({ ...migratableSpec(10), priority: 10 });
    expect(urgent).toMatchObject({ state: "RESERVED", hostId: "sim-03" });
    await c.until(() => c.lease(urgent.id).state === "ACTIVE", 300_000);
    const moves = migrationsOf(c).filter((m) => m.reason === "PREEMPTION");
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({ leaseId: victim.id, toHostId: "sim-02", state: "COMPLETED" });
    // The move served the notice: the victim runs on, on its new host.
    expect(c.lease(victim.id)).toMatchObject({ state: "ACTIVE", hostId: "sim-02" });
    expect(c.lease(victim.id).stopDeadline).toBeUndefined();
    expect(await c.violations()).toEqual([]);
  });
});

/** Eight 4 GiB leases packed onto two of four 16 GiB hosts. */
async function lopsided(planners: Parameters<typeof testCluster>[3] = {}): Promise<TestCluster> {
  const c = await testCluster(4, 16, {}, planners);
  for (let i = 0; i < 8; i++) await c.submit(migratableSpec(4));
  await c.until(() => c.broker.leases.list({ states: ["ACTIVE"] }).leases.length === 8);
  expect(usedGib(c)).toEqual({ "sim-01": 16, "sim-02": 16, "sim-03": 0, "sim-04": 0 });
  return c;
}

describe("rebalance", () => {
  it("a dry run proposes moves with their predicted cost and changes nothing", async () => {
    const c = await lopsided();
    const revision = await c.store.revision();
    const { plan, execution } = await c.broker.planners.rebalance({ dryRun: true, level: 5 });
    expect(plan.moves.length).toBeGreaterThan(0);
    expect(plan.imbalanceAfter).toBeLessThan(plan.imbalanceBefore);
    expect(execution.started).toEqual([]);
    expect(migrationsOf(c)).toEqual([]);
    expect(await c.store.revision()).toBe(revision);
    expect(usedGib(c)).toEqual({ "sim-01": 16, "sim-02": 16, "sim-03": 0, "sim-04": 0 });
  });

  it("reduces the imbalance within the limits: 2 out of and into a host, 8 in the cluster", async () => {
    const c = await lopsided();
    const before = c.broker.planners.imbalance();
    const { plan, execution } = await c.broker.planners.rebalance({ dryRun: false, level: 5 });
    expect(execution.started.length).toBe(plan.moves.length);
    expect(plan.moves.length).toBeGreaterThan(0);
    expect(plan.moves.length).toBeLessThanOrEqual(8);
    const count = (key: "fromHostId" | "toHostId") => {
      const n = new Map<string, number>();
      for (const m of plan.moves) n.set(m[key], (n.get(m[key]) ?? 0) + 1);
      return Math.max(...n.values());
    };
    expect(count("fromHostId")).toBeLessThanOrEqual(2);
    expect(count("toHostId")).toBeLessThanOrEqual(2);
    await c.until(() => c.broker.migrations.unfinished().length === 0, 600_000);
    expect(c.broker.migrations.peakInFlight).toBeLessThanOrEqual(8);
    expect(migrationsOf(c).every((m) => m.state === "COMPLETED" && m.reason === "REBALANCE")).toBe(
      true,
    );
    expect(c.broker.planners.imbalance()).toBeLessThan(before);
    expect(await c.violations()).toEqual([]);
  });

  it("runs periodically at its level", async () => {
    const c = await lopsided({ rebalance: 5, rebalanceIntervalMs: 60_000 });
    await c.until(() => migrationsOf(c).length > 0, 120_000);
    expect(migrationsOf(c).every((m) => m.reason === "REBALANCE")).toBe(true);
  });
});

describe("consolidation (for the autoscaler's scale-in)", () => {
  it("plans from the broker's index and now, as PlannedMoves, committing nothing", async () => {
    const c = await lopsided();
    const plan = planConsolidation({ index: c.broker.index, now: c.clock.now() });
    expect(plan.emptiedHosts.slice(0, 2)).toEqual(["sim-03", "sim-04"]);
    const moves: readonly PlannedMove[] = plan.moves;
    expect(moves.every((m) => m.fromHostId !== m.toHostId)).toBe(true);
    expect(c.broker.planners.consolidation().emptiedHosts).toEqual(plan.emptiedHosts);
    expect(usedGib(c)).toEqual({ "sim-01": 16, "sim-02": 16, "sim-03": 0, "sim-04": 0 });
    expect(await c.violations()).toEqual([]);
  });
});
