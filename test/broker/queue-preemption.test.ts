/**
 * Queueing, backfill that never delays a reservation, and preemption, over gRPC with the virtual
 * clock.
 */
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  codeName,
  eventTrail,
  FULL,
  HOUR,
  immediate,
  MINUTE,
  ms,
  reserved,
  rpcError,
  startBroker,
  T0,
  type TestBroker,
} from "./harness.js";

describe("queueing and backfill", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 2 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("starts a queued lease only where it fits without overlapping a reservation; reservations start on time on their hosts", async () => {
    // Both hosts busy for the first hour, both reserved from 2h to 3h.
    await tb.api.submitLease(immediate(FULL, HOUR));
    await tb.api.submitLease(immediate(FULL, HOUR));
    const r1 = await tb.api.submitLease(reserved(FULL, T0 + 2 * HOUR, HOUR));
    const r2 = await tb.api.submitLease(reserved(FULL, T0 + 2 * HOUR, HOUR));
    expect([r1.hostId, r2.hostId].sort()).toEqual(["sim-01", "sim-02"]);

    // 90 minutes from 1h would overlap a reservation; 30 minutes would not.
    const long = await tb.api.submitLease(immediate(FULL, 90 * MINUTE, { allowQueue: true }));
    const short = await tb.api.submitLease(immediate(FULL, 30 * MINUTE, { allowQueue: true }));
    expect(long.state).toBe("LEASE_STATE_PENDING");
    expect(short.state).toBe("LEASE_STATE_PENDING");
    expect(long.hostId).toBe("");

    await tb.advanceTo(T0 + HOUR);
    const shortNow = await tb.api.get({ id: short.id });
    expect(shortNow.state).toBe("LEASE_STATE_STARTING");
    expect(ms(shortNow.start)).toBe(T0 + HOUR);
    expect(ms(shortNow.end)).toBe(T0 + 90 * MINUTE);
    expect((await tb.api.get({ id: long.id })).state).toBe("LEASE_STATE_PENDING");

    await tb.advanceTo(T0 + 2 * HOUR - 1);
    expect((await tb.api.get({ id: long.id })).state).toBe("LEASE_STATE_PENDING");
    await tb.advanceTo(T0 + 2 * HOUR);
    for (const r of [r1, r2]) {
      const now = await tb.api.get({ id: r.id });
      expect(now.state).toBe("LEASE_STATE_STARTING");
      expect(now.hostId).toBe(r.hostId);
      expect(ms(now.start)).toBe(T0 + 2 * HOUR);
    }
    expect((await tb.api.get({ id: long.id })).state).toBe("LEASE_STATE_PENDING");

    // Once the reservations end, the long one finally fits.
    await tb.advanceTo(T0 + 3 * HOUR);
    const longNow = await tb.api.get({ id: long.id });
    expect(longNow.state).toBe("LEASE_STATE_STARTING");
    expect(ms(longNow.start)).toBe(T0 + 3 * HOUR);
  });

  it("places queued leases highest priority first", async () => {
    const blockers = [
      await tb.api.submitLease(immediate(FULL, 4 * HOUR)),
      await tb.api.submitLease(immediate(FULL, 4 * HOUR)),
    ];
    const low = await tb.api.submitLease(immediate(FULL, HOUR, { allowQueue: true, priority: 1 }));
    const high = await tb.api.submitLease(
      immediate(FULL, HOUR, { allowQueue: true, priority: 500 }),
    );
    expect([low.state, high.state]).toEqual(["LEASE_STATE_PENDING", "LEASE_STATE_PENDING"]);
    await tb.api.cancel({ id: blockers[0]?.id ?? "" });
    await tb.advance(0);
    expect((await tb.api.get({ id: high.id })).state).toBe("LEASE_STATE_STARTING");
    expect((await tb.api.get({ id: low.id })).state).toBe("LEASE_STATE_PENDING");
  });

  it("rejects a queued immediate lease after the queue timeout", async () => {
    await tb.api.submitLease(immediate(FULL, 24 * HOUR));
    await tb.api.submitLease(immediate(FULL, 24 * HOUR));
    const queued = await tb.api.submitLease(immediate(FULL, HOUR, { allowQueue: true }));
    await tb.advanceTo(T0 + tb.timings.queueTimeoutMs - 1);
    expect((await tb.api.get({ id: queued.id })).state).toBe("LEASE_STATE_PENDING");
    await tb.advance(1);
    expect((await tb.api.get({ id: queued.id })).state).toBe("LEASE_STATE_REJECTED");
  });

  it("places a queued reservation at its own start once capacity frees before it", async () => {
    const blockers = [
      await tb.api.submitLease(immediate(FULL, 4 * HOUR)),
      await tb.api.submitLease(immediate(FULL, 4 * HOUR)),
    ];
    const start = T0 + HOUR;
    const r = await tb.api.submitLease(reserved(FULL, start, HOUR, { allowQueue: true }));
    expect(r.state).toBe("LEASE_STATE_PENDING");
    await tb.advance(10 * MINUTE);
    await tb.api.cancel({ id: blockers[1]?.id ?? "" });
    await tb.advance(0);
    const placed = await tb.api.get({ id: r.id });
    expect(placed.state).toBe("LEASE_STATE_RESERVED");
    expect(placed.hostId).toBe(blockers[1]?.hostId);
    expect(ms(placed.start)).toBe(start);
    await tb.advanceTo(start);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_STARTING");
  });

  it("rejects a queued reservation once its start passes without capacity (it never starts late)", async () => {
    await tb.api.submitLease(immediate(FULL, 90 * MINUTE));
    await tb.api.submitLease(immediate(FULL, 90 * MINUTE));
    const start = T0 + HOUR;
    const r = await tb.api.submitLease(reserved(FULL, start, HOUR, { allowQueue: true }));
    expect(r.state).toBe("LEASE_STATE_PENDING");
    await tb.advanceTo(start - 1);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_PENDING");
    await tb.advanceTo(start);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_REJECTED");
    await tb.advanceTo(T0 + 90 * MINUTE);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_REJECTED");
  });
});

describe("preemption", () => {
  let tb: TestBroker;
  const victimSpec = immediate(FULL, 4 * HOUR, { preemptible: true, priority: 10 });
  const urgent = immediate(FULL, HOUR, { priority: 900 });

  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 2 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  async function fillWithVictims(): Promise<string[]> {
    const a = await tb.api.submitLease(victimSpec);
    const b = await tb.api.submitLease(victimSpec);
    await tb.advance(tb.hosts.bootMs);
    return [a.id, b.id];
  }

  it("explains that a high-priority lease fits by preempting one victim", async () => {
    const victims = await fillWithVictims();
    const explained = await tb.api.explain({ spec: urgent });
    expect(explained.fits).toBe(true);
    const plan = explained.explanation?.preemption;
    expect(plan?.victimLeaseIds).toHaveLength(1);
    expect(victims).toContain(plan?.victimLeaseIds[0]);
    expect(plan?.hostId).toBe(explained.hostId);
    // Explaining changed nothing.
    for (const id of victims) {
      const lease = await tb.api.get({ id });
      expect(lease.state).toBe("LEASE_STATE_ACTIVE");
      expect(lease.stopDeadline).toBeNull();
    }
  });

  it("gives the victim a notice, stops it at the deadline (PREEMPTED) and starts the new lease then", async () => {
    const victims = await fillWithVictims();
    const watch = await tb.watchFromNow();
    const noticeAt = tb.now();
    const deadline = noticeAt + tb.timings.preemptionNoticeMs;
    const lease = await tb.api.submitLease(urgent);
    expect(lease.state).toBe("LEASE_STATE_RESERVED");
    expect(ms(lease.start)).toBe(deadline);
    expect(ms(lease.end)).toBe(deadline + HOUR);

    const notice = await watch.waitFor(
      (e) => e.type === "LEASE_EVENT_TYPE_PREEMPTION_NOTICE",
      "PREEMPTION_NOTICE",
    );
    const victimId = notice.lease?.id ?? "";
    expect(victims).toContain(victimId);
    const bystander = victims.find((id) => id !== victimId) ?? "";
    const victim = await tb.api.get({ id: victimId });
    expect(victim.state).toBe("LEASE_STATE_ACTIVE");
    expect(victim.hostId).toBe(lease.hostId);
    expect(ms(victim.stopDeadline)).toBe(deadline);
    expect(victim.stopReason).toContain(lease.id);
    expect(ms(notice.lease?.stopDeadline ?? null)).toBe(deadline);
    const other = await tb.api.get({ id: bystander });
    expect(other.stopDeadline).toBeNull();
    expect(other.stopReason).toBe("");

    await tb.advanceTo(deadline - 1);
    expect((await tb.api.get({ id: victimId })).state).toBe("LEASE_STATE_ACTIVE");
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_RESERVED");
    await tb.advance(1);
    expect((await tb.api.get({ id: victimId })).state).toBe("LEASE_STATE_ENDING");
    const starting = await tb.api.get({ id: lease.id });
    expect(starting.state).toBe("LEASE_STATE_STARTING");
    expect(starting.hostId).toBe(victim.hostId);
    await tb.advance(tb.hosts.shutdownMs);
    expect((await tb.api.get({ id: victimId })).state).toBe("LEASE_STATE_PREEMPTED");
    await tb.advanceTo(deadline + tb.hosts.bootMs);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ACTIVE");
    expect((await tb.api.get({ id: bystander })).state).toBe("LEASE_STATE_ACTIVE");

    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_PREEMPTED", "PREEMPTED");
    watch.close();
    expect(eventTrail(watch.events, victimId)).toEqual([
      ["LEASE_EVENT_TYPE_PREEMPTION_NOTICE", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_PREEMPTED"],
    ]);
  });

  it("does not preempt for a preemptible, an equal- or a lower-priority request: RESOURCE_EXHAUSTED", async () => {
    const victims = await fillWithVictims();
    const requests = [
      immediate(FULL, HOUR, { priority: 900, preemptible: true }),
      immediate(FULL, HOUR, { priority: 10 }),
      immediate(FULL, HOUR, { priority: 5 }),
    ];
    for (const spec of requests) {
      const error = await rpcError(tb.api.submit({ spec }));
      expect(codeName(error.code), JSON.stringify(spec)).toBe("RESOURCE_EXHAUSTED");
    }
    for (const id of victims) {
      const lease = await tb.api.get({ id });
      expect(lease.state).toBe("LEASE_STATE_ACTIVE");
      expect(lease.stopDeadline).toBeNull();
    }
  });

  it("never preempts leases that are not preemptible", async () => {
    await tb.api.submitLease(immediate(FULL, 4 * HOUR, { priority: 1 }));
    await tb.api.submitLease(immediate(FULL, 4 * HOUR, { priority: 1 }));
    const error = await rpcError(tb.api.submit({ spec: urgent }));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await tb.api.explain({ spec: urgent })).fits).toBe(false);
  });
});
