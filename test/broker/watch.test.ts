/**
 * WatchLeases over gRPC: events in revision order, filters, replay from a revision (inclusive, as
 * the contract says), resuming after a disconnect without loss or duplicates, and OUT_OF_RANGE for
 * a compacted revision.
 */
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BrokerSchema, MemoryStore } from "../../broker/store/index.js";
import type { LeaseEvent } from "../../proto/index.js";
import {
  eventTrail,
  HALF,
  HOUR,
  immediate,
  QUARTER,
  startBroker,
  type TestBroker,
} from "./harness.js";

/** What identifies an event in a comparison between two streams. */
function key(e: LeaseEvent): string {
  return `${e.revision}:${e.type}:${e.lease?.id}:${e.lease?.state}`;
}

describe("WatchLeases", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("streams every write as an event, in revision order, with the lease as written", async () => {
    const watch = await tb.watchFromNow();
    const a = await tb.api.submitLease(immediate(QUARTER, HOUR));
    const b = await tb.api.submitLease(immediate(QUARTER, HOUR, { tenant: "globex" }));
    await tb.advance(tb.hosts.bootMs);
    await tb.api.cancel({ id: a.id });
    await tb.advance(tb.hosts.shutdownMs);
    await watch.waitFor((e) => e.lease?.state === "LEASE_STATE_CANCELLED", "CANCELLED");
    watch.close();
    const revisions = watch.events.map((e) => Number(e.revision));
    for (let i = 1; i < revisions.length; i++) {
      expect(revisions[i]).toBeGreaterThan(revisions[i - 1] ?? 0);
    }
    expect(eventTrail(watch.events, a.id)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_CANCELLED"],
    ]);
    expect(eventTrail(watch.events, b.id)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
    ]);
    // Each event's lease carries the revision of that event's write.
    for (const e of watch.events) expect(Number(e.lease?.revision)).toBe(Number(e.revision));
    // The last event of a is what GetLease says now.
    const now = await tb.api.get({ id: a.id });
    const last = watch.events.filter((e) => e.lease?.id === a.id).at(-1);
    expect(Number(last?.revision)).toBe(Number(now.revision));
  });

  it("filters by lease id, tenant and event type", async () => {
    const byTenant = await tb.watchFromNow({ tenant: "globex" });
    const byType = await tb.watchFromNow({ types: ["LEASE_EVENT_TYPE_CREATED"] });
    const a = await tb.api.submitLease(immediate(QUARTER, HOUR));
    const byLease = await tb.watchFromNow({ leaseId: a.id });
    const b = await tb.api.submitLease(immediate(QUARTER, HOUR, { tenant: "globex" }));
    await tb.advance(tb.hosts.bootMs);
    // A last write that every filter lets through tells that the earlier ones were delivered.
    await tb.api.cancel({ id: a.id });
    await tb.api.cancel({ id: b.id });
    await byLease.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDING", "a ENDING");
    await byTenant.waitFor((e) => e.lease?.state === "LEASE_STATE_ENDING", "b ENDING");
    const c = await tb.api.submitLease(immediate(QUARTER, HOUR));
    await byType.waitFor((e) => e.lease?.id === c.id, "c CREATED");

    expect(eventTrail(byLease.events)).toEqual([
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
    ]);
    expect(byLease.events.every((e) => e.lease?.id === a.id)).toBe(true);
    expect(byTenant.events.every((e) => e.lease?.spec?.tenant === "globex")).toBe(true);
    expect(eventTrail(byTenant.events)).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", "LEASE_STATE_STARTING"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ACTIVE"],
      ["LEASE_EVENT_TYPE_STATE_CHANGED", "LEASE_STATE_ENDING"],
    ]);
    expect(byType.events.map((e) => [e.type, e.lease?.id])).toEqual([
      ["LEASE_EVENT_TYPE_CREATED", a.id],
      ["LEASE_EVENT_TYPE_CREATED", b.id],
      ["LEASE_EVENT_TYPE_CREATED", c.id],
    ]);
    for (const w of [byLease, byTenant, byType]) w.close();
  });

  it("replays from from_revision inclusive: ListLeases.revision + 1 sees every later change", async () => {
    await tb.api.submitLease(immediate(QUARTER, HOUR));
    const { revision } = await tb.api.list({});
    // These writes happen before the watch opens: they must be replayed.
    const b = await tb.api.submitLease(immediate(HALF, HOUR));
    await tb.advance(tb.hosts.bootMs);
    const watch = tb.api.watch({ fromRevision: Number(revision) + 1 });
    const first = await watch.waitFor(() => true, "the first event");
    expect(Number(first.revision)).toBe(Number(revision) + 1);
    expect(first.type).toBe("LEASE_EVENT_TYPE_CREATED");
    expect(first.lease?.id).toBe(b.id);
    // And a watch from exactly b's revision starts with b's creation.
    const fromB = tb.api.watch({ fromRevision: b.revision });
    const again = await fromB.waitFor(() => true, "the first event");
    expect(key(again)).toBe(key(first));
    watch.close();
    fromB.close();
  });

  it("resumes after a disconnect from the last seen revision + 1: exactly the missed events, in order, no duplicates", async () => {
    const reference = await tb.watchFromNow();
    const first = await tb.watchFromNow();
    const a = await tb.api.submitLease(immediate(QUARTER, HOUR));
    await tb.advance(tb.hosts.bootMs);
    await first.waitFor((e) => e.lease?.state === "LEASE_STATE_ACTIVE", "a ACTIVE");
    first.close();
    const lastSeen = Number(first.events.at(-1)?.revision);

    // Missed while disconnected.
    const b = await tb.api.submitLease(immediate(HALF, HOUR));
    await tb.api.cancel({ id: a.id });
    await tb.advance(tb.hosts.bootMs);
    await reference.waitFor(
      (e) => e.lease?.id === b.id && e.lease.state === "LEASE_STATE_ACTIVE",
      "b ACTIVE",
    );

    const resumed = tb.api.watch({ fromRevision: lastSeen + 1 });
    // A sentinel write after the reconnect: everything before it was replayed by then.
    const c = await tb.api.submitLease(immediate(QUARTER, HOUR));
    await resumed.waitFor((e) => e.lease?.id === c.id, "the sentinel");
    await reference.waitFor((e) => e.lease?.id === c.id, "the sentinel");

    const expected = reference.events.filter((e) => Number(e.revision) > lastSeen).map(key);
    expect(expected.length).toBeGreaterThanOrEqual(5);
    expect(resumed.events.map(key)).toEqual(expected);
    const revisions = resumed.events.map((e) => Number(e.revision));
    expect(new Set(revisions).size).toBe(revisions.length);
    expect(first.events.map(key)).toEqual(
      reference.events.filter((e) => Number(e.revision) <= lastSeen).map(key),
    );
    reference.close();
    resumed.close();
  });
});

describe("WatchLeases with a short history", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ store: new MemoryStore<BrokerSchema>({ historyLimit: 4 }) });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("fails with OUT_OF_RANGE for a compacted revision; a watch from the list revision works", async () => {
    const leases = [];
    for (let i = 0; i < 4; i++) leases.push(await tb.api.submitLease(immediate(QUARTER, HOUR)));
    await tb.advance(tb.hosts.bootMs); // 4 more writes: 8 in all, the first ones are gone
    const compacted = tb.api.watch({ fromRevision: 1 });
    const error = await compacted.waitForError();
    expect(error.code).toBe(status.OUT_OF_RANGE);
    expect(error.details).toMatch(/compacted/);

    const { revision } = await tb.api.list({});
    const fresh = tb.api.watch({ fromRevision: Number(revision) + 1 });
    await tb.api.cancel({ id: leases[0]?.id ?? "" });
    const event = await fresh.waitFor(() => true, "the cancel");
    expect(event.lease?.state).toBe("LEASE_STATE_ENDING");
    expect(fresh.error).toBeUndefined();
    fresh.close();
  });
});
