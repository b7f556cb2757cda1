/**
 * The orchestrator with real agents (Agent + SimDriver) on an in-process hub and a VirtualClock:
 * the happy path, the limits, the timeouts, abort and cancel, and failure injection at every state
 * (source dies, destination dies, source or destination cut off the bus so that commands time out
 * and events are held, the broker restarts on the same store). After each, once settled, the
 * invariants hold: no migration is left unfinished, the workload of a running lease runs on
 * exactly one host (its lease's), and the index's holds are exactly the leases' (`violations`).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Lease } from "../leases/model.js";
import type { Migration, MigrationState } from "./model.js";
import { leaseBandwidthLimit } from "./orchestrator.js";
import { migratableSpec, stopClusters, type TestCluster, testCluster } from "./test-cluster.js";

afterEach(stopClusters);
const cluster = testCluster;

/**
 * 4 GiB with a 2 GiB working set dirtied faster than the link: round 1 takes ~17-31 s, then the
 * 2 GiB rest fits the 60 s downtime limit, so SWITCHOVER lasts ~17 s. Every state lasts long
 * enough to be caught.
 */
const SLOW = {
  params: { dirty_rate_bytes_per_s: "400000000", working_set_mib: "2048" },
  maxDowntimeMs: 60_000,
};

function migration(c: TestCluster, id: string): Migration {
  return c.broker.migrations.get(id).value;
}

async function reach(c: TestCluster, id: string, state: MigrationState): Promise<void> {
  await c.until(() => migration(c, id).state === state, 120_000, 100);
}

describe("a live migration", () => {
  it("moves the workload and the lease's hold to the destination", async () => {
    const c = await cluster();
    const lease = await c.submit(migratableSpec(2));
    const from = lease.hostId;
    const to = [...c.hosts.keys()].find((h) => h !== from) as string;
    const m = await c.broker.migrations.migrate({
      leaseId: lease.id,
      toHostId: to,
      reason: "MANUAL",
    });
    expect(m.state).toBe("PLANNED");
    expect(c.lease(lease.id)).toMatchObject({ state: "MIGRATING", migrationId: m.id });
    // Both hosts are charged while it moves.
    expect(
      c.broker.index
        .holdsOfLease(lease.id)
        .map((h) => h.hostId)
        .sort(),
    ).toEqual([from, to].sort());
    await reach(c, m.id, "COMPLETED");
    const after = c.lease(lease.id);
    expect(after).toMatchObject({
      state: "ACTIVE",
      hostId: to,
      start: lease.start,
      end: lease.end,
    });
    expect(after.history.at(-1)).toMatchObject({
      hostId: to,
      reason: "migrated",
      migrationId: m.id,
    });
    const done = migration(c, m.id);
    expect(done.progress?.bytesTransferred).toBeGreaterThan(0);
    expect(done.downtimeMs).toBeGreaterThanOrEqual(0);
    // The source's own measure of the whole migration.
    expect(done.totalTimeMs).toBeGreaterThan(0);
    expect(done.startedAt).toBeGreaterThan(0);
    expect(done.endedAt).toBeGreaterThanOrEqual(done.startedAt);
    await c.clock.advance(3000);
    expect(await c.violations()).toEqual([]);
  });

  it("lets a lease lower its migrations' bandwidth cap", () => {
    const withParam = (value: string) =>
      ({
        spec: { driver: { params: { migration_bandwidth_bytes_per_s: value } } },
      }) as unknown as Lease;
    expect(leaseBandwidthLimit(withParam("20000"), 0)).toBe(20_000);
    expect(leaseBandwidthLimit(withParam("20000"), 10_000)).toBe(10_000);
    expect(leaseBandwidthLimit(withParam("-5"), 10_000)).toBe(10_000);
    expect(leaseBandwidthLimit(withParam("fast"), 0)).toBe(0);
  });

  it("picks a destination itself, never the source, and refuses what cannot move", async () => {
    const c = await cluster();
    const lease = await c.submit(migratableSpec(2));
    const m = await c.broker.migrations.migrate({ leaseId: lease.id, reason: "MANUAL" });
    expect(m.toHostId).not.toBe(lease.hostId);
    await expect(
      c.broker.migrations.migrate({ leaseId: lease.id, reason: "MANUAL" }),
    ).rejects.toThrow(/MIGRATING: only an ACTIVE lease/);
    const pinned = await c.submit(migratableSpec(1, { liveMigratable: false }));
    await expect(
      c.broker.migrations.migrate({ leaseId: pinned.id, reason: "MANUAL" }),
    ).rejects.toThrow(/not live_migratable/);
    await expect(
      c.broker.migrations.migrate({
        leaseId: pinned.id,
        toHostId: pinned.hostId,
        reason: "MANUAL",
      }),
    ).rejects.toThrow();
    await reach(c, m.id, "COMPLETED");
    expect(await c.violations()).toEqual([]);
  });

  it("keeps at most 2 outgoing per host and waits as PLANNED for a slot", async () => {
    const c = await cluster(4, 32);
    const leases: Lease[] = [];
    for (let i = 0; i < 6; i++) leases.push(await c.submit(migratableSpec(2)));
    const source = leases[0]?.hostId as string;
    expect(leases.every((l) => l.hostId === source)).toBe(true);
    const ids: string[] = [];
    for (const l of leases)
      ids.push((await c.broker.migrations.migrate({ leaseId: l.id, reason: "DRAIN" })).id);
    let most = 0;
    await c.until(
      () => {
        const moving = ids.filter((id) => {
          const s = migration(c, id).state;
          return s !== "PLANNED" && s !== "COMPLETED" && s !== "ABORTED";
        }).length;
        most = Math.max(most, moving);
        return ids.every((id) => migration(c, id).state === "COMPLETED");
      },
      300_000,
      100,
    );
    expect(most).toBe(2);
    expect(c.broker.migrations.peakInFlight).toBe(2);
    expect(await c.violations()).toEqual([]);
  });

  it("is aborted when no progress comes within the progress timeout", async () => {
    const c = await cluster(4, 16, { progressTimeoutMs: 5000 });
    const lease = await c.submit(migratableSpec(4, SLOW));
    const m = await c.broker.migrations.migrate({ leaseId: lease.id, reason: "MANUAL" });
    await reach(c, m.id, "ABORTED");
    expect(migration(c, m.id).abortReason).toMatch(/no progress for 5 s/);
    expect(c.lease(lease.id)).toMatchObject({ state: "ACTIVE", hostId: lease.hostId });
    await c.clock.advance(3000);
    expect(await c.violations()).toEqual([]);
  });

  it("is aborted when not completed within its time per GiB", async () => {
    const c = await cluster(4, 16, { completionMsPerGib: 2000, minCompletionMs: 1000 });
    const lease = await c.submit(migratableSpec(4, SLOW));
    const m = await c.broker.migrations.migrate({ leaseId: lease.id, reason: "MANUAL" });
    await reach(c, m.id, "ABORTED");
    expect(migration(c, m.id).abortReason).toMatch(/not completed within 8 s/);
    await c.clock.advance(3000);
    expect(await c.violations()).toEqual([]);
  });

  it("AbortMigration rolls back: the source keeps running", async () => {
    const c = await cluster();
    const lease = await c.submit(migratableSpec(4, SLOW));
    const m = await c.broker.migrations.migrate({ leaseId: lease.id, reason: "MANUAL" });
    await reach(c, m.id, "TRANSFERRING");
    const aborted = await c.broker.migrations.abort(m.id, "operator changed their mind");
    expect(aborted).toMatchObject({ state: "ABORTED", abortReason: "operator changed their mind" });
    await expect(c.broker.migrations.abort(m.id)).rejects.toThrow(/ABORTED: there is nothing/);
    await c.clock.advance(3000);
    expect(c.lease(lease.id)).toMatchObject({ state: "ACTIVE", hostId: lease.hostId });
    expect(await c.violations()).toEqual([]);
  });

  it("is aborted when the lease is cancelled while it moves", async () => {
    const c = await cluster();
    const lease = await c.submit(migratableSpec(4, SLOW));
    const m = await c.broker.migrations.migrate({ leaseId: lease.id, reason: "MANUAL" });
    await reach(c, m.id, "TRANSFERRING");
    await c.broker.leases.cancel(lease.id, "done with it");
    await reach(c, m.id, "ABORTED");
    expect(migration(c, m.id).abortReason).toMatch(/the lease is ENDING/);
    await c.until(() => c.lease(lease.id).state === "CANCELLED");
    await c.clock.advance(3000);
    expect(await c.violations()).toEqual([]);
  });
});

type Failure =
  | "source dies"
  | "destination dies"
  | "source cut off"
  | "destination cut off"
  | "broker restarts";

const FAILURES: Failure[] = [
  "source dies",
  "destination dies",
  "source cut off",
  "destination cut off",
  "broker restarts",
];
const STATES: MigrationState[] = ["PLANNED", "PREPARING", "TRANSFERRING", "SWITCHOVER"];

describe("failure injection at every state", () => {
  const cases = STATES.flatMap((state) => FAILURES.map((failure) => ({ state, failure })));
  it.each(cases)("$failure during $state", async ({ state, failure }) => {
    // One migration at a time: a first one holds the slot so that the second waits as PLANNED.
    const c = await cluster(4, 32, { maxInFlight: 1 });
    const hosts = [...c.hosts.keys()];
    const lease = await c.submit(migratableSpec(4, SLOW));
    const from = lease.hostId;
    const to = hosts.find((h) => h !== from) as string;
    const third = hosts.find((h) => h !== from && h !== to) as string;
    let blocker: string | undefined;
    if (state === "PLANNED") {
      const other = await c.submit(migratableSpec(4, SLOW));
      blocker = (
        await c.broker.migrations.migrate({ leaseId: other.id, toHostId: third, reason: "MANUAL" })
      ).id;
      await reach(c, blocker, "TRANSFERRING");
    }
    // PREPARING lasts only as long as the destination takes to answer: it is slowed down by
    // cutting it off the bus first (its commands are retried), then the failure comes.
    if (state === "PREPARING") c.partition(to, true);
    const m = await c.broker.migrations.migrate({
      leaseId: lease.id,
      toHostId: to,
      reason: "MANUAL",
    });
    await reach(c, m.id, state);

    switch (failure) {
      case "source dies":
        await c.kill(from);
        break;
      case "destination dies":
        await c.kill(to);
        break;
      case "source cut off":
        c.partition(from, true);
        break;
      case "destination cut off":
        c.partition(to, true);
        break;
      case "broker restarts":
        await c.restartBroker();
        break;
    }
    // Long enough for the TTL (10 s), command retries and timeouts; then every cut heals.
    await c.clock.advance(20_000);
    for (const h of [from, to]) if (!c.hosts.get(h)?.dead) c.partition(h, false);
    await c.until(() => c.broker.migrations.unfinished().length === 0, 300_000, 500);
    // Reconciliation runs on the next hellos and heartbeats; restarts boot.
    await c.clock.advance(15_000);

    const end = migration(c, m.id);
    expect(["COMPLETED", "ABORTED"]).toContain(end.state);
    if (failure === "destination dies" || (failure === "source dies" && state !== "PLANNED")) {
      expect(end.state).toBe("ABORTED");
    }
    const after = c.lease(lease.id);
    // on_host_failure is RESTART: whatever happened, the lease runs, on one host.
    expect(after.state).toBe("ACTIVE");
    expect(await c.violations()).toEqual([]);
    if (blocker !== undefined)
      expect(["COMPLETED", "ABORTED"]).toContain(migration(c, blocker).state);
  });

  it("resumes a PLANNED migration after a broker restart and completes it", async () => {
    const c = await cluster(4, 32, { maxInFlight: 1 });
    const a = await c.submit(migratableSpec(2));
    const b = await c.submit(migratableSpec(2));
    const first = await c.broker.migrations.migrate({ leaseId: a.id, reason: "MANUAL" });
    const second = await c.broker.migrations.migrate({ leaseId: b.id, reason: "MANUAL" });
    expect(second.state).toBe("PLANNED");
    await c.restartBroker();
    await c.until(() => c.broker.migrations.unfinished().length === 0, 120_000);
    expect(migration(c, second.id).state).toBe("COMPLETED");
    expect(c.lease(b.id)).toMatchObject({ state: "ACTIVE", hostId: second.toHostId });
    expect(["COMPLETED", "ABORTED"]).toContain(migration(c, first.id).state);
    await c.clock.advance(15_000);
    expect(await c.violations()).toEqual([]);
  });
});
