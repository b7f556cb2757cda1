/**
 * Each window kind through its whole life, over gRPC with the virtual clock: immediate, reserved
 * and flexible leases; expiry with its warning, graceful stop and forced stop after the grace.
 */
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  eventTrail,
  FULL,
  flexible,
  HALF,
  HOUR,
  immediate,
  MINUTE,
  ms,
  msOrUndefined,
  QUARTER,
  reserved,
  rpcError,
  SECOND,
  startBroker,
  T0,
  type TestBroker,
} from "./harness.js";

describe("immediate window", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("is STARTING at once (never PENDING), ACTIVE after the boot time, ENDING at its end, ENDED after shutdown", async () => {
    const watch = await tb.watchFromNow();
    const lease = await tb.api.submitLease(immediate(HALF, 10 * MINUTE));
    expect(lease.state).toBe("LEASE_STATE_STARTING");
    expect(lease.id).not.toBe("");
    expect(lease.revision).toBeGreaterThan(0);
    expect(["sim-01", "sim-02"]).toContain(lease.hostId);
    expect(ms(lease.start)).toBe(T0);
    expect(ms(lease.end)).toBe(T0 + 10 * MINUTE);
    expect(ms(lease.createTime)).toBe(T0);
    expect(lease.placementHistory.map((p) => [p.hostId, p.reason])).toEqual([
      [lease.hostId, "PLACEMENT_REASON_INITIAL"],
    ]);

    const state = async (): Promise<string> => (await tb.api.get({ id: lease.id })).state;
    await tb.advance(tb.hosts.bootMs - 1);
    expect(await state()).toBe("LEASE_STATE_STARTING");
    await tb.advance(1);
    expect(await state()).toBe("LEASE_STATE_ACTIVE");

    await tb.advanceTo(T0 + 10 * MINUTE - 1);
    expect(await state()).toBe("LEASE_STATE_ACTIVE");
    await tb.advance(1);
    expect(await state()).toBe("LEASE_STATE_ENDING");
    await tb.advance(tb.hosts.shutdownMs - 1);
    expect(await state()).toBe("LEASE_STATE_ENDING");
    await tb.advance(1);
    const ended = await tb.api.get({ id: lease.id });
    expect(ended.state).toBe("LEASE_STATE_ENDED");
    expect(ended.hostId).toBe(lease.hostId);

    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDED", "ENDED");
    watch.close();
    expect(eventTrail(watch.events, lease.id)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_EXPIRY_WARNING", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDED"],
    ]);
    const times = watch.events.map((e) => ms(e.time));
    expect(times).toEqual([
      T0,
      T0 + tb.hosts.bootMs,
      T0 + 10 * MINUTE - tb.timings.expiryNoticeMs,
      T0 + 10 * MINUTE,
      T0 + 10 * MINUTE + tb.hosts.shutdownMs,
    ]);
    const revisions = watch.events.map((e) => Number(e.revision));
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
  });

  it("says how the lease was placed (SubmitLeaseResponse.explanation)", async () => {
    const response = await tb.api.submit({ spec: immediate(HALF, HOUR) });
    expect(response.explanation).not.toBeNull();
    expect(response.explanation?.chosenHostId).toBe(response.lease?.hostId);
    expect(response.explanation?.hostsConsidered).toBe(2);
    expect(response.explanation?.summary).not.toBe("");
  });

  it("reports the state before each STATE_CHANGED event (previous_state)", async () => {
    const watch = await tb.watchFromNow();
    const lease = await tb.api.submitLease(immediate(QUARTER, 5 * MINUTE));
    await tb.advanceTo(T0 + 5 * MINUTE + tb.hosts.shutdownMs);
    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDED", "ENDED");
    watch.close();
    const changes = watch.events
      .filter((e) => e.lease?.id === lease.id && e.type === "LEASE_EVENT_TYPE_STATE_CHANGED")
      .map((e) => [e.previousState, e.lease?.state]);
    expect(changes).toEqual([
      ["LEASE_STATE_STARTING", "LEASE_STATE_ACTIVE"],
      ["LEASE_STATE_ACTIVE", "LEASE_STATE_ENDING"],
      ["LEASE_STATE_ENDING", "LEASE_STATE_ENDED"],
    ]);
    const others = watch.events.filter((e) => e.type !== "LEASE_EVENT_TYPE_STATE_CHANGED");
    expect(others.map((e) => e.previousState)).toEqual(others.map(() => "LEASE_STATE_UNSPECIFIED"));
  });

  it("fails with RESOURCE_EXHAUSTED when nothing fits and queueing is not allowed", async () => {
    await tb.api.submitLease(immediate(FULL, HOUR));
    await tb.api.submitLease(immediate(FULL, HOUR));
    const error = await rpcError(tb.api.submit({ spec: immediate(QUARTER, HOUR) }));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.metadata.get("lb-placement-explanation-bin")).toHaveLength(1);
    const all = await tb.api.listAll({});
    expect(all.map((l) => l.state)).toEqual(["LEASE_STATE_STARTING", "LEASE_STATE_STARTING"]);
  });
});

describe("reserved window", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("is RESERVED on a host with its planned window until the start", async () => {
    const start = T0 + HOUR;
    const lease = await tb.api.submitLease(reserved(FULL, start, HOUR));
    expect(lease.state).toBe("LEASE_STATE_RESERVED");
    expect(["sim-01", "sim-02"]).toContain(lease.hostId);
    expect(ms(lease.start)).toBe(start);
    expect(ms(lease.end)).toBe(start + HOUR);
    await tb.advanceTo(start - 1);
    const before = await tb.api.get({ id: lease.id });
    expect(before.state).toBe("LEASE_STATE_RESERVED");
    expect(before.revision).toBe(lease.revision);
  });

  it("holds its capacity: an overlapping lease goes elsewhere or is refused, a lease that ends before it backfills its host", async () => {
    const start = T0 + HOUR;
    const r = await tb.api.submitLease(reserved(FULL, start, HOUR));
    const other = r.hostId === "sim-01" ? "sim-02" : "sim-01";

    // Overlaps the reservation: only the other host can take it.
    const overlapping = await tb.api.submitLease(immediate(FULL, 2 * HOUR));
    expect(overlapping.hostId).toBe(other);
    // The cluster is now full over the reservation's window.
    const refused = await rpcError(tb.api.submit({ spec: immediate(FULL, 2 * HOUR) }));
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    const explained = await tb.api.explain({ spec: immediate(FULL, 2 * HOUR) });
    expect(explained.fits).toBe(false);
    expect(explained.hostId).toBe("");
    // Ends before the reservation starts: it fits on the reservation's host.
    const before = await tb.api.submitLease(immediate(FULL, 30 * MINUTE));
    expect(before.hostId).toBe(r.hostId);
    expect(ms(before.end)).toBeLessThanOrEqual(start);
  });

  it("becomes STARTING exactly at its start on its host, then ACTIVE, then ENDED after its end", async () => {
    const start = T0 + HOUR;
    const watch = await tb.watchFromNow();
    const r = await tb.api.submitLease(reserved(HALF, start, 30 * MINUTE));
    await tb.advanceTo(start);
    const starting = await tb.api.get({ id: r.id });
    expect(starting.state).toBe("LEASE_STATE_STARTING");
    expect(starting.hostId).toBe(r.hostId);
    expect(ms(starting.start)).toBe(start);
    await tb.advance(tb.hosts.bootMs);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_ACTIVE");
    await tb.advanceTo(start + 30 * MINUTE);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advance(tb.hosts.shutdownMs);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_ENDED");

    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDED", "ENDED");
    watch.close();
    expect(eventTrail(watch.events, r.id)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_RESERVED"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_EXPIRY_WARNING", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDED"],
    ]);
    expect(ms(watch.events[1]?.time ?? null)).toBe(start);
  });
});

describe("flexible window", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 1 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("starts now when it fits now", async () => {
    const lease = await tb.api.submitLease(
      flexible(HALF, { latestMs: T0 + HOUR, durationMs: 30 * MINUTE }),
    );
    expect(lease.state).toBe("LEASE_STATE_STARTING");
    expect(lease.hostId).toBe("sim-01");
    expect(ms(lease.start)).toBe(T0);
    expect(ms(lease.end)).toBe(T0 + 30 * MINUTE);
    await tb.advance(tb.hosts.bootMs);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ACTIVE");
  });

  it("is placed at its earliest start when that is in the future", async () => {
    const earliest = T0 + 2 * HOUR;
    const lease = await tb.api.submitLease(
      flexible(HALF, { earliestMs: earliest, latestMs: earliest + HOUR, durationMs: 30 * MINUTE }),
    );
    expect(lease.state).toBe("LEASE_STATE_RESERVED");
    expect(ms(lease.start)).toBe(earliest);
    await tb.advanceTo(earliest);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_STARTING");
  });

  it("is reserved at the earliest feasible start when capacity frees within its range", async () => {
    const blocker = await tb.api.submitLease(immediate(FULL, 20 * MINUTE));
    const lease = await tb.api.submitLease(
      flexible(HALF, { latestMs: T0 + HOUR, durationMs: 30 * MINUTE }),
    );
    expect(lease.state).toBe("LEASE_STATE_RESERVED");
    expect(ms(lease.start)).toBe(ms(blocker.end));
    await tb.advanceTo(ms(blocker.end));
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_STARTING");
  });

  it("is PENDING on a full cluster and starts as soon as a blocker is cancelled", async () => {
    const blocker = await tb.api.submitLease(immediate(FULL, 4 * HOUR));
    const lease = await tb.api.submitLease(
      flexible(HALF, { latestMs: T0 + HOUR, durationMs: 30 * MINUTE }),
    );
    expect(lease.state).toBe("LEASE_STATE_PENDING");
    expect(lease.hostId).toBe("");
    expect(msOrUndefined(lease.start)).toBeUndefined();
    expect(lease.statusMessage).not.toBe("");

    await tb.advance(10 * MINUTE);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_PENDING");
    await tb.api.cancel({ id: blocker.id });
    await tb.advance(0);
    const started = await tb.api.get({ id: lease.id });
    expect(started.state).toBe("LEASE_STATE_STARTING");
    expect(started.hostId).toBe("sim-01");
    expect(ms(started.start)).toBe(T0 + 10 * MINUTE);
    expect(ms(started.end)).toBe(T0 + 40 * MINUTE);
  });

  it("is REJECTED when its latest start passes without capacity", async () => {
    await tb.api.submitLease(immediate(FULL, 4 * HOUR));
    const latest = T0 + 30 * MINUTE;
    const lease = await tb.api.submitLease(
      flexible(HALF, { latestMs: latest, durationMs: 30 * MINUTE }),
    );
    expect(lease.state).toBe("LEASE_STATE_PENDING");
    await tb.advanceTo(latest - 1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_PENDING");
    await tb.advance(1);
    const rejected = await tb.api.get({ id: lease.id });
    expect(rejected.state).toBe("LEASE_STATE_REJECTED");
    expect(rejected.hostId).toBe("");
    expect(rejected.statusMessage).toMatch(/latest start/);
  });
});

describe("expiry with a slow host", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    // Workloads take 2 minutes to shut down, far beyond the 30 s grace.
    tb = await startBroker({ hosts: { count: 1, shutdownMs: 2 * MINUTE } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("warns before the end, asks for a graceful stop at the end and forces it at end + grace", async () => {
    expect(tb.hosts.shutdownMs).toBeGreaterThan(tb.timings.stopGraceMs);
    const watch = await tb.watchFromNow();
    const lease = await tb.api.submitLease(immediate(QUARTER, 10 * MINUTE));
    const end = T0 + 10 * MINUTE;
    await tb.advanceTo(end - tb.timings.expiryNoticeMs);
    const warning = await watch.waitFor(
      (e) => e.type === "LEASE_EVENT_TYPE_EXPIRY_WARNING",
      "EXPIRY_WARNING",
    );
    expect(ms(warning.time)).toBe(end - tb.timings.expiryNoticeMs);
    expect(warning.lease?.state).toBe("LEASE_STATE_ACTIVE");
    expect(ms(warning.lease?.end ?? null)).toBe(end);

    await tb.advanceTo(end);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advanceTo(end + tb.timings.stopGraceMs - 1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advance(1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDED");
    const ended = await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDED", "ENDED");
    expect(ms(ended.time)).toBe(end + tb.timings.stopGraceMs);
    watch.close();
  });

  it("stops a cancelled lease by force after the grace too", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    await tb.advance(5 * SECOND);
    const cancelled = await tb.api.cancel({ id: lease.id, reason: "done early" });
    expect(cancelled.state).toBe("LEASE_STATE_ENDING");
    await tb.advance(tb.timings.stopGraceMs - 1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advance(1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_CANCELLED");
  });
});
