/**
 * Operations on leases over gRPC: extend, cancel, optimistic concurrency (expected_revision),
 * idempotent submit and dry runs.
 */
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { durationFromMs, timestampFromMs } from "../../proto/index.js";
import {
  codeName,
  eventTrail,
  FULL,
  flexible,
  HALF,
  HOUR,
  immediate,
  MINUTE,
  metadataString,
  ms,
  QUARTER,
  reserved,
  rpcError,
  SECOND,
  startBroker,
  T0,
  type TestBroker,
} from "./harness.js";

describe("extend", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 1 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("moves the end by `extra`: an EXTENDED event, no stop at the old end, warning and stop at the new end", async () => {
    const watch = await tb.watchFromNow();
    const lease = await tb.api.submitLease(immediate(HALF, 10 * MINUTE));
    await tb.advance(tb.hosts.bootMs);
    const active = await tb.api.get({ id: lease.id });
    const extended = await tb.api.extend({
      id: lease.id,
      extra: durationFromMs(5 * MINUTE),
      expectedRevision: active.revision,
    });
    const newEnd = T0 + 15 * MINUTE;
    expect(ms(extended.end)).toBe(newEnd);
    expect(ms(extended.start)).toBe(T0);
    expect(extended.state).toBe("LEASE_STATE_ACTIVE");
    expect(Number(extended.revision)).toBeGreaterThan(Number(active.revision));

    await tb.advanceTo(T0 + 10 * MINUTE);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ACTIVE");
    await tb.advanceTo(newEnd - 1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ACTIVE");
    await tb.advance(1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advance(tb.hosts.shutdownMs);
    const ended = await tb.api.get({ id: lease.id });
    expect(ended.state).toBe("LEASE_STATE_ENDED");
    expect(ms(ended.end)).toBeGreaterThanOrEqual(newEnd);

    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDED", "ENDED");
    watch.close();
    expect(eventTrail(watch.events, lease.id)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_EXTENDED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_EXPIRY_WARNING", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDED"],
    ]);
    const extendedEvent = watch.events[2];
    expect(ms(extendedEvent?.lease?.end ?? null)).toBe(newEnd);
    const warning = watch.events[3];
    expect(ms(warning?.time ?? null)).toBe(newEnd - tb.timings.expiryNoticeMs);
  });

  it("moves the end to `new_end`, also for a reservation", async () => {
    const start = T0 + HOUR;
    const r = await tb.api.submitLease(reserved(HALF, start, HOUR));
    const moved = await tb.api.extend({ id: r.id, newEnd: timestampFromMs(start + 3 * HOUR) });
    expect(moved.state).toBe("LEASE_STATE_RESERVED");
    expect(ms(moved.end)).toBe(start + 3 * HOUR);
    // The held window grew: a lease overlapping the extension no longer fits beside it.
    const blocked = await rpcError(
      tb.api.submit({ spec: reserved(FULL, start + 2 * HOUR, 30 * MINUTE) }),
    );
    expect(blocked.code).toBe(status.RESOURCE_EXHAUSTED);
    await tb.advanceTo(start + 3 * HOUR - 1);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_ACTIVE");
    await tb.advance(1);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_ENDING");
  });

  it("is refused with FAILED_PRECONDITION naming the reservation that follows on the same host", async () => {
    const lease = await tb.api.submitLease(immediate(FULL, HOUR));
    const next = await tb.api.submitLease(reserved(FULL, T0 + HOUR, HOUR));
    expect(next.hostId).toBe(lease.hostId);
    const error = await rpcError(
      tb.api.extend({ id: lease.id, extra: durationFromMs(30 * MINUTE) }),
    );
    expect(codeName(error.code)).toBe("FAILED_PRECONDITION");
    expect(error.details).toContain(lease.hostId);
    expect(error.details).toContain(next.id);
    const after = await tb.api.get({ id: lease.id });
    expect(ms(after.end)).toBe(T0 + HOUR);
    expect(after.revision).toBe(lease.revision);
    // The end timer did not move either.
    await tb.advanceTo(T0 + HOUR);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDING");
    expect((await tb.api.get({ id: next.id })).state).toBe("LEASE_STATE_STARTING");
  });

  it("rejects an end that does not move later, a terminal lease, and a stale expected_revision", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    const earlier = await rpcError(
      tb.api.extend({ id: lease.id, newEnd: timestampFromMs(T0 + 30 * MINUTE) }),
    );
    expect(codeName(earlier.code)).toBe("INVALID_ARGUMENT");
    expect(metadataString(earlier.metadata, "lb-field")).toBe("new_end");

    const stale = await rpcError(
      tb.api.extend({
        id: lease.id,
        extra: durationFromMs(MINUTE),
        expectedRevision: Number(lease.revision) + 100,
      }),
    );
    expect(codeName(stale.code)).toBe("ABORTED");

    await tb.api.cancel({ id: lease.id });
    await tb.advance(tb.hosts.shutdownMs);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_CANCELLED");
    const terminal = await rpcError(tb.api.extend({ id: lease.id, extra: durationFromMs(MINUTE) }));
    expect(codeName(terminal.code)).toBe("FAILED_PRECONDITION");
  });
});

describe("cancel", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 1 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("drops a reservation at once (CANCELLED) and frees its window", async () => {
    const start = T0 + HOUR;
    const r = await tb.api.submitLease(reserved(FULL, start, HOUR));
    const cancelled = await tb.api.cancel({ id: r.id, reason: "plans changed" });
    expect(cancelled.state).toBe("LEASE_STATE_CANCELLED");
    expect(cancelled.statusMessage).toContain("plans changed");
    const again = await tb.api.submitLease(reserved(FULL, start, HOUR));
    expect(again.state).toBe("LEASE_STATE_RESERVED");
    expect(again.hostId).toBe(r.hostId);
    // Nothing of the cancelled reservation starts.
    await tb.advanceTo(start);
    expect((await tb.api.get({ id: r.id })).state).toBe("LEASE_STATE_CANCELLED");
    expect((await tb.api.get({ id: again.id })).state).toBe("LEASE_STATE_STARTING");
  });

  it("stops a running lease: ENDING, then CANCELLED once the host reports it stopped", async () => {
    const watch = await tb.watchFromNow();
    const lease = await tb.api.submitLease(immediate(HALF, HOUR));
    await tb.advance(tb.hosts.bootMs);
    await tb.advance(5 * MINUTE);
    const cancelAt = tb.now();
    const ending = await tb.api.cancel({ id: lease.id, reason: "user request" });
    expect(ending.state).toBe("LEASE_STATE_ENDING");
    await tb.advance(tb.hosts.shutdownMs - 1);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advance(1);
    const cancelled = await tb.api.get({ id: lease.id });
    expect(cancelled.state).toBe("LEASE_STATE_CANCELLED");
    expect(cancelled.statusMessage).toContain("user request");
    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_CANCELLED", "CANCELLED");
    watch.close();
    expect(eventTrail(watch.events, lease.id)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_CANCELLED"],
    ]);
    expect(ms(watch.events[2]?.time ?? null)).toBe(cancelAt);
  });

  it("reports the actual end of a lease cancelled while running (Lease.end once terminal)", async () => {
    const lease = await tb.api.submitLease(immediate(HALF, HOUR));
    await tb.advance(10 * MINUTE);
    const cancelAt = tb.now();
    await tb.api.cancel({ id: lease.id });
    await tb.advance(tb.hosts.shutdownMs);
    const cancelled = await tb.api.get({ id: lease.id });
    expect(cancelled.state).toBe("LEASE_STATE_CANCELLED");
    expect(ms(cancelled.end)).toBeGreaterThanOrEqual(cancelAt);
    expect(ms(cancelled.end)).toBeLessThanOrEqual(cancelAt + tb.hosts.shutdownMs);
  });

  it("frees the capacity at once: a lease that needs it is placed immediately", async () => {
    const first = await tb.api.submitLease(immediate(FULL, HOUR));
    await tb.advance(tb.hosts.bootMs);
    const full = await rpcError(tb.api.submit({ spec: immediate(FULL, HOUR) }));
    expect(full.code).toBe(status.RESOURCE_EXHAUSTED);
    await tb.api.cancel({ id: first.id });
    const second = await tb.api.submitLease(immediate(FULL, HOUR));
    expect(second.state).toBe("LEASE_STATE_STARTING");
    expect(second.hostId).toBe(first.hostId);
    // The cancelled workload is still shutting down while the new one boots.
    expect((await tb.api.get({ id: first.id })).state).toBe("LEASE_STATE_ENDING");
    await tb.advance(tb.hosts.bootMs);
    expect((await tb.api.get({ id: first.id })).state).toBe("LEASE_STATE_CANCELLED");
    expect((await tb.api.get({ id: second.id })).state).toBe("LEASE_STATE_ACTIVE");
  });

  it("drops a queued lease at once", async () => {
    await tb.api.submitLease(immediate(FULL, HOUR));
    const queued = await tb.api.submitLease(immediate(FULL, HOUR, { allowQueue: true }));
    expect(queued.state).toBe("LEASE_STATE_PENDING");
    const cancelled = await tb.api.cancel({ id: queued.id });
    expect(cancelled.state).toBe("LEASE_STATE_CANCELLED");
  });

  it("refuses an ENDED lease with FAILED_PRECONDITION", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, MINUTE));
    await tb.advanceTo(T0 + MINUTE + tb.hosts.shutdownMs);
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ENDED");
    const error = await rpcError(tb.api.cancel({ id: lease.id }));
    expect(codeName(error.code)).toBe("FAILED_PRECONDITION");
    expect(error.details).toContain("ENDED");
  });

  it("fails with ABORTED when expected_revision does not match, and succeeds when it does", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    await tb.advance(tb.hosts.bootMs); // STARTING → ACTIVE: a new revision
    const stale = await rpcError(tb.api.cancel({ id: lease.id, expectedRevision: lease.revision }));
    expect(codeName(stale.code)).toBe("ABORTED");
    expect((await tb.api.get({ id: lease.id })).state).toBe("LEASE_STATE_ACTIVE");
    const current = await tb.api.get({ id: lease.id });
    const ok = await tb.api.cancel({ id: lease.id, expectedRevision: current.revision });
    expect(ok.state).toBe("LEASE_STATE_ENDING");
  });

  it("names the missing lease: NOT_FOUND for an unknown id, INVALID_ARGUMENT for an empty one", async () => {
    const unknown = await rpcError(tb.api.cancel({ id: "l-nope" }));
    expect(codeName(unknown.code)).toBe("NOT_FOUND");
    expect(unknown.details).toContain("l-nope");
    const empty = await rpcError(tb.api.cancel({ id: "" }));
    expect(codeName(empty.code)).toBe("INVALID_ARGUMENT");
    expect(metadataString(empty.metadata, "lb-field")).toBe("id");
  });
});

describe("idempotent submit", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("returns the first lease for a retry with the same request_id and spec (duplicate = true)", async () => {
    const spec = immediate(HALF, HOUR);
    const first = await tb.api.submit({ spec, requestId: "req-1" });
    expect(first.duplicate).toBe(false);
    expect(first.lease?.requestId).toBe("req-1");
    await tb.advance(tb.hosts.bootMs);
    const retry = await tb.api.submit({ spec, requestId: "req-1" });
    expect(retry.duplicate).toBe(true);
    expect(retry.lease?.id).toBe(first.lease?.id);
    expect(retry.lease?.state).toBe("LEASE_STATE_ACTIVE");
    expect(await tb.api.listAll({})).toHaveLength(1);
  });

  it("refuses the same request_id with a different spec: ALREADY_EXISTS", async () => {
    await tb.api.submit({ spec: immediate(HALF, HOUR), requestId: "req-2" });
    const error = await rpcError(
      tb.api.submit({ spec: immediate(HALF, 2 * HOUR), requestId: "req-2" }),
    );
    expect(codeName(error.code)).toBe("ALREADY_EXISTS");
    expect(await tb.api.listAll({})).toHaveLength(1);
  });

  it("keys request ids by tenant: another tenant's request_id does not collide", async () => {
    const a = await tb.api.submit({ spec: immediate(QUARTER, HOUR), requestId: "req-3" });
    const b = await tb.api.submit({
      spec: immediate(QUARTER, HOUR, { tenant: "globex" }),
      requestId: "req-3",
    });
    expect(b.duplicate).toBe(false);
    expect(b.lease?.id).not.toBe(a.lease?.id);
    expect(b.lease?.spec?.tenant).toBe("globex");
  });

  it("validates request_id: at most 64 characters of [A-Za-z0-9_-]", async () => {
    for (const requestId of ["has space", "x".repeat(65), "semi;colon"]) {
      const error = await rpcError(tb.api.submit({ spec: immediate(QUARTER, HOUR), requestId }));
      expect(codeName(error.code), requestId).toBe("INVALID_ARGUMENT");
      expect(metadataString(error.metadata, "lb-field"), requestId).toBe("request_id");
    }
    const ok = await tb.api.submit({
      spec: immediate(QUARTER, HOUR),
      requestId: "A-z_0".repeat(12),
    });
    expect(ok.lease?.state).toBe("LEASE_STATE_STARTING");
  });

  it("dry_run places without persisting: the lease has no id and revision 0", async () => {
    const dry = await tb.api.submit({ spec: immediate(HALF, HOUR), dryRun: true });
    expect(dry.lease).not.toBeNull();
    expect(dry.lease?.id).toBe("");
    expect(Number(dry.lease?.revision)).toBe(0);
    expect(dry.lease?.state).toBe("LEASE_STATE_STARTING");
    expect(["sim-01", "sim-02"]).toContain(dry.lease?.hostId);
    expect(ms(dry.lease?.start ?? null)).toBe(T0);
    expect(dry.explanation?.chosenHostId).toBe(dry.lease?.hostId);
    expect(await tb.api.listAll({})).toHaveLength(0);

    const queued = await tb.api.submit({
      spec: flexible(HALF, { earliestMs: T0 + HOUR, latestMs: T0 + 2 * HOUR, durationMs: HOUR }),
      dryRun: true,
    });
    expect(queued.lease?.state).toBe("LEASE_STATE_RESERVED");
    expect(ms(queued.lease?.start ?? null)).toBe(T0 + HOUR);
    expect(await tb.api.listAll({})).toHaveLength(0);
    await tb.advance(SECOND);
    expect(await tb.api.listAll({})).toHaveLength(0);
  });
});
