/**
 * The planners wired into a broker with real agents (Agent + SimDriver) on an in-process hub and a
 * VirtualClock: make-room at admission, preemption by migration, rebalance (dry run and real,
 * within the limits). After each, once settled, the capacity invariants hold (`violations`).
 */
import { afterEach, describe, expect, it } from "vitest";
import { ResourceExhaustedError } from "../../core/index.js";
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
});
