/**
 * The autoscaling loop end to end, on a VirtualClock with sim agents on an in-process bus and the
 * reference autoscaler (deploy/examples/autoscaler) receiving real signed webhooks:
 * demand rises → ScaleOut with the hand-computed host count before the deadline → the autoscaler
 * adds agents → the waiting leases are placed at once and start; demand falls → ScaleIn after
 * the cooldown, of drained (cordoned, empty) hosts → the autoscaler releases them; nothing lost.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { AutoscaleSignalRecord } from "../../broker/autoscale/index.js";
import { ReferenceAutoscaler } from "../../deploy/examples/autoscaler/autoscaler.js";
import { waitFor } from "../helpers/index.js";
import {
  type AutoscaleCluster,
  autoscaleCluster,
  HOUR,
  MINUTE,
  SECOND,
  SECRET,
  SMALL_HOST,
  spec,
  T0,
} from "./cluster.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Advances in evaluation-sized steps, letting each webhook delivery finish in real time. */
async function advance(c: AutoscaleCluster, ms: number): Promise<void> {
  const target = c.clock.now() + ms;
  while (c.clock.now() < target) {
    await c.clock.advance(Math.min(30 * SECOND, target - c.clock.now()));
    await waitFor(() => (c.broker.autoscale?.webhooks?.backlog ?? 0) === 0, {
      what: "webhook deliveries",
      timeoutMs: 10_000,
      intervalMs: 5,
    });
  }
}

describe("the autoscaling loop", () => {
  it("scales out for the demand, the leases start on the new hosts, then scales in after the cooldown", async () => {
    let c: AutoscaleCluster | undefined;
    const autoscaler = new ReferenceAutoscaler({
      secret: SECRET,
      launcher: {
        start: (id, shape) => (c as AutoscaleCluster).launcher.start(id, shape),
        stop: (id) => (c as AutoscaleCluster).launcher.stop(id),
      },
      now: () => (c as AutoscaleCluster).clock.now(),
    });
    const url = await autoscaler.listen();
    cleanups.push(() => autoscaler.close());
    c = await autoscaleCluster({
      intervalMs: 30 * SECOND,
      scaleOutCooldownMs: 2 * MINUTE,
      scaleInCooldownMs: 10 * MINUTE,
      minHosts: 2,
      webhooks: { urls: [url], secret: SECRET },
    });
    const cluster = c;
    cleanups.push(() => cluster.stop());
    const signals: Array<{ signal: AutoscaleSignalRecord; cordoned: boolean[] }> = [];
    c.broker.autoscale?.onSignal((signal) => {
      const r = signal.recommendation;
      const ids = r.kind === "scale-in" ? r.candidateHostIds : [];
      signals.push({ signal, cordoned: ids.map((id) => cluster.broker.hosts.view(id).cordoned) });
    });

    // Two hosts of 16 GiB, each running a 10 GiB lease for an hour.
    for (const id of ["sim-01", "sim-02"]) {
      await c.launcher.start(id, SMALL_HOST);
      autoscaler.owned.add(id);
    }
    await c.clock.advance(SECOND);
    const running = [
      await c.submit(spec(10, { kind: "immediate", durationMs: HOUR })),
      await c.submit(spec(10, { kind: "immediate", durationMs: HOUR })),
    ];
    // Four reservations of 10 GiB that fit no current host (all overlap during [50m, 60m)).
    const starts = [30, 30, 40, 50].map((m) => T0 + m * MINUTE);
    const waiting = [];
    for (const start of starts) {
      waiting.push(
        await c.submit(spec(10, { kind: "reserved", start, durationMs: 30 * MINUTE }, true)),
      );
    }
    expect(waiting.map((l) => l.state)).toEqual(["PENDING", "PENDING", "PENDING", "PENDING"]);

    await advance(c, 30 * SECOND);
    const out = signals.find((s) => s.signal.recommendation.kind === "scale-out")?.signal;
    // By hand: 10 + 10 > 16 GiB, so one new host per lease: 4 (dividing totals says ⌈40/16⌉ = 3).
    expect(out?.recommendation).toMatchObject({
      kind: "scale-out",
      hosts: [{ shape: { name: "8c-16g", labels: { pool: "sim" } }, count: 4 }],
      deadline: starts[0],
      leaseIds: waiting.map((l) => l.id).sort(),
    });
    expect(out?.time).toBeLessThan(starts[0] as number);

    await autoscaler.settled();
    expect([...c.launcher.running].sort()).toEqual([
      "auto-1",
      "auto-2",
      "auto-3",
      "auto-4",
      "sim-01",
      "sim-02",
    ]);
    // Placed as soon as the hosts said Hello, not at the next evaluation.
    await c.clock.advance(SECOND);
    for (const l of waiting) {
      expect(c.lease(l.id).state).toBe("RESERVED");
      expect(c.lease(l.id).hostId).toMatch(/^auto-/);
    }
    await advance(c, 51 * MINUTE - (c.clock.now() - T0));
    for (const l of waiting) expect(c.lease(l.id).state).toBe("ACTIVE");

    // Demand falls: every lease ends by 80 min. ScaleIn only after 10 min of being removable.
    await advance(c, 82 * MINUTE - (c.clock.now() - T0));
    for (const l of [...running, ...waiting]) expect(c.lease(l.id).state).toBe("ENDED");
    await advance(c, 15 * MINUTE);
    const scaleIn = signals.find((s) => s.signal.recommendation.kind === "scale-in");
    const r = scaleIn?.signal.recommendation;
    if (r?.kind !== "scale-in") throw new Error("no ScaleIn");
    expect(r.candidateHostIds).toHaveLength(4); // 6 hosts, at least 2 kept
    expect(r.moves).toEqual([]); // they were empty: nothing to migrate
    expect(scaleIn?.cordoned).toEqual([true, true, true, true]);
    // Utilisation fell below the low watermark when the first hour's leases ended (60 min:
    // 20 GiB of 96): the ScaleIn waited the 10 min cooldown after that.
    expect(scaleIn?.signal.time).toBeGreaterThanOrEqual(T0 + 70 * MINUTE);

    await autoscaler.settled();
    expect(c.launcher.running.size).toBe(2);
    for (const id of r.candidateHostIds) expect(c.launcher.running.has(id)).toBe(false);
    // The released hosts go DOWN; the signal settles back to steady; nothing failed.
    await advance(c, 3 * MINUTE);
    expect(signals.at(-1)?.signal.recommendation.kind).toBe("steady");
    expect(c.broker.hosts.views().filter((h) => h.state === "READY")).toHaveLength(2);
    for (const l of [...running, ...waiting]) expect(c.lease(l.id).state).toBe("ENDED");
    expect(autoscaler.counts.refused).toBe(0);
  });
});
