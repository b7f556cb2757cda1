/**
 * The signaller on a VirtualClock over a real index and host registry, with in-test (deterministic)
 * consolidation planner and drainer ports: flapping demand does not flap the signal; a ScaleIn
 * comes only after the cooldown, once its hosts are drained (by the drainer port) and cordoned,
 * with nothing lost; demand that returns cancels the scale-in.
 */
import { describe, expect, it } from "vitest";
import { silentLogger, VirtualClock } from "../../core/index.js";
import type { PlannedMove } from "../../migration/index.js";
import { ClusterIndex, DEFAULT_PLACEMENT_POLICY } from "../../placement/index.js";
import { HostRegistry } from "../hosts/registry.js";
import type { Lease } from "../leases/model.js";
import { testLeaseSpec, testPendingLease } from "../leases/test-support.js";
import { MemoryStore } from "../store/index.js";
import type { ConsolidationPlanner, HostDrainer } from "./ports.js";
import type { AutoscaleSignalRecord } from "./signal.js";
import {
  type AutoscaleOptions,
  AutoscaleSignaller,
  CAPACITY_SETTLE_MS,
  CORDON_REASON,
} from "./signaller.js";

const T0 = 1_900_000_000_000;
const GIB = 1024;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function waiting(id: string, memoryGib: number): Lease {
  const spec = testLeaseSpec(memoryGib, { allowQueue: true, liveMigratable: true });
  return testPendingLease(id, spec, T0);
}

async function setup(options: AutoscaleOptions, hostIds = ["host-a", "host-b", "host-c"]) {
  const clock = new VirtualClock(T0);
  const logger = silentLogger();
  const index = new ClusterIndex({ resourceWeights: DEFAULT_PLACEMENT_POLICY.resourceWeights });
  const hosts = new HostRegistry({ store: new MemoryStore(), index, clock, logger });
  const join = (id: string): void => {
    hosts.register({
      id,
      capacity: { cpuMillis: 8000, memoryMib: 16 * GIB, diskGib: 100, gpus: 0 },
      labels: {},
      driver: "sim",
      agentVersion: "test",
    });
  };
  for (const id of hostIds) join(id);
  let pending: Lease[] = [];
  const signaller = new AutoscaleSignaller(
    {
      clock,
      logger,
      index,
      hosts,
      leases: { pendingLeases: () => pending },
      epoch: 7,
    },
    {
      intervalMs: 30_000,
      scaleOutCooldownMs: 2 * MINUTE,
      scaleInCooldownMs: 10 * MINUTE,
      ...options,
    },
  );
  const signals: AutoscaleSignalRecord[] = [];
  signaller.onSignal((s) => signals.push(s));
  const hold = (leaseId: string, hostId: string, memoryGib: number): void =>
    index.commit(
      leaseId,
      hostId,
      { start: T0, end: T0 + 24 * HOUR },
      {
        cpuMillis: 1000,
        memoryMib: memoryGib * GIB,
        diskGib: 1,
        gpus: 0,
      },
      { leaseId, priority: 0, preemptible: false },
    );
  return {
    clock,
    index,
    hosts,
    signaller,
    signals,
    hold,
    join,
    setPending: (leases: Lease[]) => {
      pending = leases;
    },
  };
}

describe("AutoscaleSignaller", () => {
  it("evaluates again shortly after hosts join, not an interval later", async () => {
    const s = await setup({ minHosts: 1 }, []);
    s.signaller.start();
    await s.clock.advance(0);
    expect(s.signaller.status().evaluation?.readyHosts).toBe(0);
    for (const id of ["late-a", "late-b"]) {
      s.join(id);
    }
    // Well before the 30 s interval: both hosts are seen (one evaluation for the burst).
    await s.clock.advance(CAPACITY_SETTLE_MS);
    expect(s.signaller.status().evaluation?.readyHosts).toBe(2);
    expect(s.signaller.status().evaluation?.now).toBe(T0 + CAPACITY_SETTLE_MS);
    // Paused (not leading): a joining host triggers nothing.
    s.signaller.pause();
    s.join("late-c");
    await s.clock.advance(CAPACITY_SETTLE_MS);
    expect(s.signaller.status().evaluation?.readyHosts).toBe(2);
    await s.signaller.stop();
  });

  it("does not flap with demand that comes and goes every evaluation", async () => {
    const s = await setup({ minHosts: 3 });
    // Fill the hosts so that a 10 GiB lease fits nowhere.
    for (const id of ["host-a", "host-b", "host-c"]) s.hold(`busy-${id}`, id, 12);
    const flapping = [waiting("l-1", 10)];
    s.setPending(flapping);
    s.signaller.start();
    for (let i = 1; i <= 20; i++) {
      s.setPending(i % 2 === 0 ? flapping : []);
      await s.clock.advance(30_000);
    }
    // Without hysteresis: 20 signals alternating. With it: the ScaleOut stands.
    expect(s.signals.map((x) => x.recommendation.kind)).toEqual(["scale-out"]);
    expect(s.signals[0]?.sequence).toBe(1);
    expect(s.signals[0]?.epoch).toBe(7);
    // Demand gone for a whole cooldown: steady.
    s.setPending([]);
    await s.clock.advance(3 * MINUTE);
    expect(s.signals.map((x) => x.recommendation.kind)).toEqual(["scale-out", "steady"]);
    await s.signaller.stop();
  });

  it("drains candidates through the ports after the cooldown, then reports them; nothing is lost", async () => {
    const moves: PlannedMove[] = [{ leaseId: "l-b", fromHostId: "host-b", toHostId: "host-a" }];
    const planner: ConsolidationPlanner = {
      plan: (index) =>
        index.holdsOn("host-b").length > 0
          ? { hostIds: ["host-b"], moves }
          : { hostIds: [], moves: [] },
    };
    const drained: string[] = [];
    let s: Awaited<ReturnType<typeof setup>> | undefined;
    const drainer: HostDrainer = {
      async drain(hostId, planned) {
        drained.push(hostId);
        // Each move live-migrates: the lease's hold moves to the target host.
        for (const m of planned) s?.index.move(m.leaseId, m.toHostId);
        return { hostId, empty: true, stuck: [] };
      },
    };
    s = await setup({ planner, drainer, minHosts: 1 });
    s.hold("l-a", "host-a", 2);
    s.hold("l-b", "host-b", 2);
    s.signaller.start();
    await s.clock.advance(9 * MINUTE);
    expect(drained).toEqual([]);
    expect(s.signals.map((x) => x.recommendation.kind)).toEqual(["steady"]);
    await s.clock.advance(2 * MINUTE);
    const last = s.signals.at(-1);
    expect(last?.recommendation).toMatchObject({
      kind: "scale-in",
      candidateHostIds: ["host-b", "host-c"],
      moves,
    });
    expect(drained).toEqual(["host-b"]); // host-c was empty: no drain needed
    expect(s.hosts.view("host-b").cordoned).toBe(true);
    expect(s.hosts.view("host-c").cordoned).toBe(true);
    // Nothing lost: both leases still hold their capacity, on the host that stays.
    expect(
      s.index
        .holdsOn("host-a")
        .map((h) => h.leaseId)
        .sort(),
    ).toEqual(["l-a", "l-b"]);
    expect(s.signaller.status().removableHostIds).toEqual(["host-b", "host-c"]);
    await s.signaller.stop();
  });

  it("without ports, removes only empty hosts; returning demand uncordons them", async () => {
    const s = await setup({ minHosts: 1 });
    s.hold("l-a", "host-a", 2);
    s.signaller.start();
    await s.clock.advance(11 * MINUTE);
    expect(s.signals.at(-1)?.recommendation).toMatchObject({
      kind: "scale-in",
      candidateHostIds: ["host-b", "host-c"],
      moves: [],
    });
    // 15 GiB fits on no host once b and c are cordoned: the scale-in is cancelled instead.
    s.setPending([waiting("l-big", 15)]);
    await s.clock.advance(30_000);
    expect(s.hosts.view("host-b").cordoned).toBe(false);
    expect(s.hosts.view("host-c").cordoned).toBe(false);
    expect(s.signaller.status().removableHostIds).toEqual([]);
    expect(s.signals.at(-1)?.recommendation.kind).not.toBe("scale-in");
    await s.signaller.stop();
  });

  it("uncordons hosts that an earlier broker cordoned for scale-in", async () => {
    const s = await setup({});
    await s.hosts.cordon("host-a", CORDON_REASON);
    await s.hosts.cordon("host-b", "kernel upgrade");
    s.signaller.start();
    await s.clock.advance(0);
    expect(s.hosts.view("host-a").cordoned).toBe(false);
    expect(s.hosts.view("host-b").cordoned).toBe(true); // the operator's cordon stays
    await s.signaller.stop();
  });
});
