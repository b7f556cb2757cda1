import { describe, expect, it } from "vitest";
import type { Lease } from "../leases/model.js";
import { testLeaseSpec, testPendingLease } from "../leases/test-support.js";
import type { LeaseState } from "../leases/transitions.js";
import { QuotaExceededError, QuotaLedger } from "./quota-ledger.js";

const H = 3_600_000;

function lease(
  id: string,
  state: LeaseState,
  start: number,
  end: number,
  memoryMib: number,
): Lease {
  const spec = testLeaseSpec(0, {
    name: id,
    window: { kind: "immediate", durationMs: end - start },
    resources: { memoryMib, diskGib: 0 },
  });
  return {
    ...testPendingLease(id, spec, 0),
    state,
    hostId: state === "PENDING" ? "" : "h1",
    start,
    end,
  };
}

describe("QuotaLedger", () => {
  const ledger = () =>
    new QuotaLedger({ policy: () => ({ quota: { memoryMib: 100, leases: 2 } }) });

  it("tracks what a tenant holds at once as leases are written, moved, preempted and ended", () => {
    const q = ledger();
    q.observe(lease("a", "RESERVED", 0, 2 * H, 60));
    q.observe(lease("b", "ACTIVE", H, 3 * H, 30));
    expect(q.peak("t", 0, 4 * H).memoryMib).toBe(90);
    expect(q.peak("t", 2 * H, 4 * H).memoryMib).toBe(30);
    // A preemption notice ends b's hold at its stop deadline.
    q.observe({ ...lease("b", "ACTIVE", H, 3 * H, 30), stopDeadline: 1.5 * H });
    expect(q.peak("t", 1.5 * H, 4 * H).memoryMib).toBe(60);
    // ENDING holds nothing; ENDED is no longer a live lease.
    q.observe(lease("a", "ENDING", 0, 2 * H, 60));
    expect(q.peak("t", 0, 4 * H).memoryMib).toBe(30);
    expect(q.liveLeases("t")).toBe(2);
    q.observe(lease("a", "ENDED", 0, 2 * H, 60));
    expect(q.liveLeases("t")).toBe(1);
  });

  it("refuses a hold that would exceed the quota at any instant, and extends by the added time only", () => {
    const q = ledger();
    const a = lease("a", "ACTIVE", 0, H, 60);
    q.observe(a);
    expect(() => q.place(lease("p", "PENDING", 0, 0, 50), { start: 0.5 * H, end: 2 * H })).toThrow(
      QuotaExceededError,
    );
    q.place(lease("p", "PENDING", 0, 0, 40), { start: 0.5 * H, end: 2 * H });
    q.place(lease("p", "PENDING", 0, 0, 100), { start: H, end: 2 * H }); // half-open: a is gone
    q.observe(lease("b", "RESERVED", 2 * H, 3 * H, 50));
    q.extend(a, 2 * H);
    expect(() => q.extend(a, 2.5 * H)).toThrow(/quota "memory" of tenant t exceeded/);
    expect(() => q.admit(lease("c", "NEW", 0, H, 1).spec, undefined)).toThrow(/quota "leases"/);
  });
});
