/**
 * Scale-in of hosts that still run leases: the autoscaler's consolidation (the broker's migration
 * planners) picks a host whose leases fit elsewhere, the drainer live-migrates them through the
 * orchestrator, and only then is the host reported removable. Nothing is lost.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { AutoscaleSignalRecord } from "../../broker/autoscale/index.js";
import { autoscaleCluster, HOUR, MINUTE, SECOND, SMALL_HOST, spec } from "./cluster.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("scale-in by live migration", () => {
  it("drains a host by migrating its lease to the other host before reporting it removable", async () => {
    const c = await autoscaleCluster({
      intervalMs: 30 * SECOND,
      scaleOutCooldownMs: 2 * MINUTE,
      scaleInCooldownMs: 5 * MINUTE,
      minHosts: 1,
    });
    cleanups.push(() => c.stop());
    const signals: AutoscaleSignalRecord[] = [];
    c.broker.autoscale?.onSignal((s) => signals.push(s));
    for (const id of ["sim-01", "sim-02"]) await c.launcher.start(id, SMALL_HOST);
    await c.clock.advance(SECOND);

    // 10 GiB for an hour on each host, and a 4 GiB lease for 4 h beside each of them.
    const short = [
      await c.submit(spec(10, { kind: "immediate", durationMs: HOUR })),
      await c.submit(spec(10, { kind: "immediate", durationMs: HOUR })),
    ];
    const long = [
      await c.submit(spec(4, { kind: "immediate", durationMs: 4 * HOUR })),
      await c.submit(spec(4, { kind: "immediate", durationMs: 4 * HOUR })),
    ];
    await c.clock.advance(10 * SECOND);
    const hostsOfLong = long.map((l) => c.lease(l.id).hostId).sort();
    expect(hostsOfLong).toEqual(["sim-01", "sim-02"]);

    // After the hour, each host holds 4 GiB of 16: together they fit on one.
    for (let t = 0; t < 90; t++) await c.clock.advance(MINUTE);
    for (const l of short) expect(c.lease(l.id).state).toBe("ENDED");

    const scaleIn = signals.find((s) => s.recommendation.kind === "scale-in");
    const r = scaleIn?.recommendation;
    if (r?.kind !== "scale-in") throw new Error("no ScaleIn");
    expect(r.candidateHostIds).toHaveLength(1);
    const removed = r.candidateHostIds[0] as string;
    const kept = removed === "sim-01" ? "sim-02" : "sim-01";
    expect(r.moves).toEqual([expect.objectContaining({ fromHostId: removed, toHostId: kept })]);

    // The lease moved by live migration before the host was reported; it kept running.
    const moved = r.moves[0]?.leaseId as string;
    const migrations = c.broker.migrations.list({ leaseId: moved }).migrations.map((m) => m.value);
    expect(migrations.map((m) => [m.reason, m.state])).toEqual([["CONSOLIDATE", "COMPLETED"]]);
    expect(scaleIn?.time).toBeGreaterThanOrEqual(
      migrations[0]?.endedAt ?? Number.POSITIVE_INFINITY,
    );
    for (const l of long) {
      expect(c.lease(l.id).state).toBe("ACTIVE");
      expect(c.lease(l.id).hostId).toBe(kept);
    }
    expect(c.broker.leases.onHost(removed)).toEqual([]);
    expect(c.broker.hosts.view(removed).cordoned).toBe(true);
  });
});
