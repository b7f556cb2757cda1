/**
 * DrainHost and SuspendLease/ResumeLease with real agents on an in-process hub and a VirtualClock.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Lease, LeaseSpec } from "../leases/model.js";
import { drainHost } from "./drain.js";
import { migratableSpec, stopClusters, testCluster } from "./test-cluster.js";

afterEach(stopClusters);
const cluster = testCluster;

function reservation(start: number): LeaseSpec {
  return { ...migratableSpec(1), window: { kind: "reserved", start, durationMs: 600_000 } };
}

describe("DrainHost", () => {
  it("moves what can move, replans reservations, and applies the policy of the rest at the deadline", async () => {
    const c = await cluster(4, 32);
    const moving: Lease[] = [];
    for (let i = 0; i < 3; i++) moving.push(await c.submit(migratableSpec(2)));
    const source = moving[0]?.hostId as string;
    const pinnedFail = await c.submit(
      migratableSpec(2, { liveMigratable: false, onHostFailure: "fail" }),
    );
    const pinnedRestart = await c.submit(
      migratableSpec(2, { liveMigratable: false, onHostFailure: "restart" }),
    );
    const reserved = await c.submit(reservation(c.clock.now() + 3_600_000));
    for (const l of [pinnedFail, pinnedRestart, reserved]) expect(l.hostId).toBe(source);
    const deadline = c.clock.now() + 600_000;

    // A dry run plans the same and changes nothing.
    const revision = await c.store.revision();
    const dry = await drainHost(c.drainDeps(), { hostId: source, deadline, dryRun: true });
    expect(dry.moves.map((m) => m.leaseId).sort()).toEqual(moving.map((l) => l.id).sort());
    expect(dry.moves.every((m) => m.toHostId !== source && m.migrationId === "")).toBe(true);
    expect(dry.stopLeaseIds).toEqual([pinnedFail.id, pinnedRestart.id].sort());
    expect(dry.replannedLeaseIds).toEqual([reserved.id]);
    expect(dry.host.state).toBe("READY");
    expect(await c.store.revision()).toBe(revision);

    const result = await drainHost(c.drainDeps(), { hostId: source, deadline, reason: "kernel" });
    expect(result.host.state).toBe("DRAINING");
    expect(result.moves).toHaveLength(3);
    expect(result.moves.every((m) => m.migrationId !== "")).toBe(true);
    expect(result.stopLeaseIds).toEqual(dry.stopLeaseIds);
    expect(result.replannedLeaseIds).toEqual([reserved.id]);
    expect(c.lease(reserved.id)).toMatchObject({ state: "RESERVED" });
    expect(c.lease(reserved.id).hostId).not.toBe(source);
    // Every running lease was told when it must be gone.
    expect(c.lease(pinnedFail.id)).toMatchObject({ stopDeadline: deadline, stopReason: "drain" });

    await c.until(() => c.broker.migrations.unfinished().length === 0, 300_000);
    for (const l of moving) {
      const after = c.lease(l.id);
      expect(after.state).toBe("ACTIVE");
      expect(after.hostId).not.toBe(source);
      // The move served the notice.
      expect(after.stopDeadline).toBeUndefined();
    }
    // The pinned ones run on the source until the deadline, then follow their policy.
    expect(c.lease(pinnedFail.id)).toMatchObject({ state: "ACTIVE", hostId: source });
    await c.clock.advanceTo(deadline + 5000);
    expect(c.lease(pinnedFail.id).state).toBe("FAILED");
    const restarted = c.lease(pinnedRestart.id);
    expect(restarted.state).toBe("ACTIVE");
    expect(restarted.hostId).not.toBe(source);
    expect(await c.runningOn(pinnedFail.id)).toEqual([]);
    expect(c.broker.index.holdsOn(source)).toEqual([]);
    expect(await c.violations()).toEqual([]);
  });

  it("tries an aborted drain migration again elsewhere, but not one aborted on request", async () => {
    const c = await cluster(4, 32);
    const slow = {
      params: { dirty_rate_bytes_per_s: "400000000", working_set_mib: "2048" },
      maxDowntimeMs: 60_000,
    };
    const a = await c.submit(migratableSpec(4, slow));
    const b = await c.submit(migratableSpec(4, slow));
    const source = a.hostId;
    expect(b.hostId).toBe(source);
    const result = await drainHost(c.drainDeps(), {
      hostId: source,
      deadline: c.clock.now() + 3_600_000,
    });
    const first = result.moves.find((m) => m.leaseId === a.id)?.migrationId as string;
    const other = result.moves.find((m) => m.leaseId === b.id)?.migrationId as string;
    await c.until(() => c.broker.migrations.get(first).value.state === "TRANSFERRING");
    const deadHost = c.broker.migrations.get(first).value.toHostId;
    await c.broker.migrations.abort(other, "keep it here");
    await c.kill(deadHost);
    await c.until(
      () => c.broker.migrations.unfinished().length === 0 && c.lease(a.id).hostId !== source,
      300_000,
    );
    const tries = c.broker.migrations.list({ leaseId: a.id }).migrations.map((m) => m.value);
    expect(tries.map((m) => [m.state, m.reason])).toEqual([
      ["COMPLETED", "DRAIN"],
      ["ABORTED", "DRAIN"],
    ]);
    expect(tries[0]?.toHostId).not.toBe(deadHost);
    expect(c.lease(a.id)).toMatchObject({ state: "ACTIVE", hostId: tries[0]?.toHostId });
    // Aborted on request: it stays until the deadline.
    expect(c.broker.migrations.list({ leaseId: b.id }).migrations).toHaveLength(1);
    expect(c.lease(b.id)).toMatchObject({ state: "ACTIVE", hostId: source });
    expect(await c.violations()).toEqual([]);
  });

  it("rolls back migrations on their way to the draining host", async () => {
    const c = await cluster(3, 32);
    const lease = await c.submit(
      migratableSpec(4, { params: { working_set_mib: "2048" }, maxDowntimeMs: 60_000 }),
    );
    const to = [...c.hosts.keys()].find((h) => h !== lease.hostId) as string;
    const m = await c.broker.migrations.migrate({
      leaseId: lease.id,
      toHostId: to,
      reason: "MANUAL",
    });
    await c.clock.advance(1000);
    await drainHost(c.drainDeps(), { hostId: to });
    expect(c.broker.migrations.get(m.id).value).toMatchObject({
      state: "ABORTED",
      abortReason: `destination ${to} drains`,
    });
    await c.clock.advance(3000);
    expect(c.lease(lease.id)).toMatchObject({ state: "ACTIVE", hostId: lease.hostId });
    expect(await c.violations()).toEqual([]);
  });

  it("refuses a deadline in the past and an unknown host, changing nothing", async () => {
    const c = await cluster(2, 16);
    await expect(
      drainHost(c.drainDeps(), { hostId: "sim-01", deadline: c.clock.now() - 1 }),
    ).rejects.toThrow(/deadline: must be in the future/);
    await expect(drainHost(c.drainDeps(), { hostId: "nope" })).rejects.toThrow(/nope/);
    expect(c.broker.hosts.view("sim-01").state).toBe("READY");
  });
});

describe("SuspendLease and ResumeLease", () => {
  it("releases CPU and memory but keeps the disk, and resumes on the same host", async () => {
    const c = await cluster(2, 16);
    const lease = await c.submit(migratableSpec(8));
    const suspended = await c.broker.leases.suspend(lease.id, "night");
    expect(suspended).toMatchObject({ state: "SUSPENDED", hostId: lease.hostId });
    const hold = c.broker.index.hold(lease.id);
    expect(hold?.resources).toEqual({ cpuMillis: 0, memoryMib: 0, diskGib: 10, gpus: 0 });
    await c.clock.advance(2000);
    expect(await c.runningOn(lease.id)).toEqual([]);
    expect(await c.violations()).toEqual([]);
    await expect(c.broker.leases.suspend(lease.id)).rejects.toThrow(/only an ACTIVE lease/);

    const resumed = await c.broker.leases.resume(lease.id);
    expect(resumed).toMatchObject({ state: "STARTING", hostId: lease.hostId });
    await c.until(() => c.lease(lease.id).state === "ACTIVE");
    expect(c.broker.index.hold(lease.id)?.resources.memoryMib).toBe(8192);
    expect(await c.runningOn(lease.id)).toEqual([lease.hostId]);
    expect(await c.violations()).toEqual([]);
  });

  it("resumes on another host when its own has no room, after copying the saved state", async () => {
    const c = await cluster(2, 16);
    const lease = await c.submit(migratableSpec(12));
    await c.broker.leases.suspend(lease.id);
    await c.clock.advance(2000);
    await c.broker.hosts.cordon(lease.hostId, "maintenance");
    const resumed = await c.broker.leases.resume(lease.id);
    expect(resumed.state).toBe("STARTING");
    expect(resumed.hostId).not.toBe(lease.hostId);
    expect(resumed.history.at(-1)).toMatchObject({ hostId: resumed.hostId, reason: "resumed" });
    // 12 GiB at 1 Gbit/s: about 103 s of copying before the workload starts there.
    await c.clock.advance(90_000);
    expect(c.lease(lease.id).state).toBe("STARTING");
    await c.until(() => c.lease(lease.id).state === "ACTIVE", 60_000);
    expect(await c.runningOn(lease.id)).toEqual([resumed.hostId]);
    await c.clock.advance(2000);
    expect(await c.violations()).toEqual([]);
  });

  it("says when no host has room to resume, and the lease stays SUSPENDED", async () => {
    const c = await cluster(1, 16);
    const lease = await c.submit(migratableSpec(12));
    await c.broker.leases.suspend(lease.id);
    await c.clock.advance(2000);
    // Its memory went to another lease (the agent too counts only the suspended one's disk).
    const other = await c.submit(migratableSpec(12));
    expect(other).toMatchObject({ state: "ACTIVE", hostId: lease.hostId });
    await expect(c.broker.leases.resume(lease.id)).rejects.toThrow(/no host has room/);
    expect(c.lease(lease.id).state).toBe("SUSPENDED");
    expect(await c.violations()).toEqual([]);
  });

  it("ends a lease whose window ends while it is suspended", async () => {
    const c = await cluster(1, 16);
    const lease = await c.submit(migratableSpec(4, { durationMs: 60_000 }));
    await c.broker.leases.suspend(lease.id);
    await c.clock.advanceTo(lease.end + 2000);
    expect(c.lease(lease.id).state).toBe("ENDED");
    expect(c.broker.index.holdsOfLease(lease.id)).toEqual([]);
    expect(await c.violations()).toEqual([]);
  });

  it("suspends a preempted victim that allows it, instead of stopping it", async () => {
    const c = await cluster(1, 16);
    const victim = await c.submit({ ...migratableSpec(12), preemptible: true });
    const boss = await c.broker.leases.submit({ ...migratableSpec(12), priority: 100 });
    expect(boss.lease.state).toBe("RESERVED");
    expect(c.lease(victim.id).stopReason).toBe("preempt");
    await c.clock.advanceTo(c.lease(victim.id).stopDeadline ?? 0);
    await c.clock.advance(5000);
    expect(c.lease(boss.lease.id).state).toBe("ACTIVE");
    const after = c.lease(victim.id);
    expect(after.state).toBe("SUSPENDED");
    expect(after.stopDeadline).toBeUndefined();
    expect(c.broker.index.hold(victim.id)?.resources.memoryMib).toBe(0);
    expect(await c.violations()).toEqual([]);
  });
});
