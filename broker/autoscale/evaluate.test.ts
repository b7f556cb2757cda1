/**
 * One evaluation: waiting leases that fit now are not demand (and two of them do not count into
 * the same room), reservations beyond the horizon wait, the deadline is the first start, the
 * watermarks ask for headroom or allow a ScaleIn, and the index is left as it was.
 */
import { describe, expect, it } from "vitest";
import { ClusterIndex, DEFAULT_PLACEMENT_POLICY } from "../../placement/index.js";
import type { Lease, WindowSpec } from "../leases/model.js";
import { testLeaseSpec, testPendingLease } from "../leases/test-support.js";
import { type EvaluationInput, evaluate } from "./evaluate.js";
import { parseHostShape } from "./shapes.js";

const T = 1_900_000_000_000;
const HOUR = 3_600_000;
const GIB = 1024;
const SHAPE = parseHostShape("s-4x16:4:16");

function waiting(id: string, memoryGib: number, window?: WindowSpec): Lease {
  const spec = testLeaseSpec(memoryGib, {
    allowQueue: true,
    ...(window === undefined ? {} : { window }),
  });
  return testPendingLease(id, spec, T);
}

/** Two 16 GiB hosts, each with `usedGib` held for the next day. */
function input(
  usedGib: number,
  leases: Lease[],
  more: Partial<EvaluationInput> = {},
): EvaluationInput {
  const index = new ClusterIndex();
  for (const id of ["a", "b"]) {
    index.addHost({ id, capacity: SHAPE.capacity, labels: {}, state: "READY" });
    if (usedGib > 0) {
      index.commit(
        `held-${id}`,
        id,
        { start: T - HOUR, end: T + 24 * HOUR },
        {
          cpuMillis: 1000,
          memoryMib: usedGib * GIB,
          diskGib: 1,
          gpus: 0,
        },
        { priority: 0, preemptible: false },
      );
    }
  }
  return {
    index,
    now: T,
    waiting: leases,
    shapes: [SHAPE],
    horizonMs: HOUR,
    utilisationWindowMs: 30_000,
    highWatermark: 0.85,
    lowWatermark: 0.3,
    minHosts: 1,
    policy: DEFAULT_PLACEMENT_POLICY,
    removableOrder: (ids) => ids,
    ...more,
  };
}

describe("evaluate", () => {
  it("counts two leases that each fit the same room once: one fits, the other is demand", () => {
    // Hosts a and b have 6 GiB free each; three 6 GiB leases: two fit (one per host), one does not.
    const i = input(10, [waiting("w1", 6), waiting("w2", 6), waiting("w3", 6)]);
    const e = evaluate(i);
    expect(e.unmetLeaseIds).toEqual(["w3"]);
    expect(e.recommendation).toMatchObject({ kind: "scale-out", hosts: [{ count: 1 }] });
    expect(e.deadline).toBeUndefined(); // needed now
    // The probes are gone: the index is as it was.
    expect(i.index.holdCount).toBe(2);
  });

  it("leaves reservations beyond the horizon out, and takes the deadline from the first start", () => {
    const e = evaluate(
      input(12, [
        waiting("soon", 8, { kind: "reserved", start: T + 30 * 60_000, durationMs: HOUR }),
        waiting("later", 8, { kind: "reserved", start: T + 3 * HOUR, durationMs: HOUR }),
      ]),
    );
    expect(e.unmetLeaseIds).toEqual(["soon"]);
    expect(e.laterLeaseIds).toEqual(["later"]);
    expect(e.deadline).toBe(T + 30 * 60_000);
  });

  it("asks for headroom above the high watermark, and nothing between the watermarks", () => {
    const high = evaluate(input(15, []));
    expect(high.utilisation.memoryMib).toBeCloseTo(15 / 16);
    // 30 GiB held: one more 16 GiB host brings memory to 30/48 = 0.63 ≤ 0.85.
    expect(high.recommendation).toMatchObject({
      kind: "scale-out",
      hosts: [{ count: 1 }],
      leaseIds: [],
    });
    expect(evaluate(input(8, [])).recommendation.kind).toBe("steady");
  });

  it("offers empty hosts below the low watermark, keeping the minimum", () => {
    const i = input(0, [], { minHosts: 1 });
    i.index.addHost({ id: "c", capacity: SHAPE.capacity, labels: {}, state: "READY" });
    i.index.commit(
      "one",
      "c",
      { start: T, end: T + HOUR },
      {
        cpuMillis: 1000,
        memoryMib: GIB,
        diskGib: 1,
        gpus: 0,
      },
      { priority: 0, preemptible: false },
    );
    const e = evaluate(i);
    expect(e.emptyHostIds).toEqual(["a", "b"]);
    expect(e.recommendation).toMatchObject({ kind: "scale-in", candidateHostIds: ["a", "b"] });
    expect(evaluate({ ...i, minHosts: 2 }).recommendation).toMatchObject({
      candidateHostIds: ["a"],
    });
  });
});
