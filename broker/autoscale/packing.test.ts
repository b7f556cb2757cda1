/**
 * Bin packing of unmet demand onto new hosts, against packings computed by hand: first-fit
 * decreasing, windows that do not overlap share a host, constraints pick the shape, and leases
 * no shape can take are named.
 */
import { describe, expect, it } from "vitest";
import { type PlacementRequest, parseSelector } from "../../placement/index.js";
import { packOntoNewHosts } from "./packing.js";
import { type HostShape, parseHostShape } from "./shapes.js";

const HOUR = 3_600_000;
const T = 1_900_000_000_000;
// 16 CPUs (64 cores allocatable at the default cpu ratio 4), 64 GiB: memory binds below.
const M16 = parseHostShape("m-16x64:16:64");

function lease(
  id: string,
  memoryGib: number,
  window = { start: T, end: T + HOUR },
  constraints: string[] = [],
): PlacementRequest {
  return {
    leaseId: id,
    resources: { cpuMillis: 1000, memoryMib: memoryGib * 1024, diskGib: 1, gpus: 0 },
    window,
    constraints: constraints.map((c) => parseSelector(c)),
  };
}

describe("packOntoNewHosts", () => {
  it("packs first-fit decreasing: three leases of 33 GiB need 3 hosts of 64 GiB, not ceil(99/64) = 2", () => {
    const r = packOntoNewHosts([lease("a", 33), lease("b", 33), lease("c", 33)], [M16]);
    expect([...r.counts]).toEqual([["m-16x64", 3]]);
    expect(r.unservable).toEqual([]);
  });

  it("matches a hand packing of 40, 40, 30, 20, 20, 10 GiB onto 64 GiB hosts", () => {
    // By hand, largest first: 40→H1, 40→H2, 30→H3 (70 > 64 on H1 and H2), 20→H1 (60),
    // 20→H2 (60), 10→H3 (40): 3 hosts.
    const sizes = [10, 40, 20, 30, 20, 40];
    const r = packOntoNewHosts(
      sizes.map((g, i) => lease(`l${i}`, g)),
      [M16],
    );
    expect(r.counts.get("m-16x64")).toBe(3);
    expect(r.assignment.get("l1")).toBe("m-16x64#1"); // the first 40
    expect(r.assignment.get("l5")).toBe("m-16x64#2"); // the second 40
    expect(r.assignment.get("l3")).toBe("m-16x64#3"); // the 30
    expect(r.assignment.get("l0")).toBe("m-16x64#3"); // the 10 joins the 30
  });

  it("lets leases whose windows do not overlap share a host", () => {
    const r = packOntoNewHosts(
      [
        lease("early", 60, { start: T, end: T + HOUR }),
        lease("late", 60, { start: T + HOUR, end: T + 2 * HOUR }),
      ],
      [M16],
    );
    expect(r.counts.get("m-16x64")).toBe(1);
  });

  it("puts a lease on the first shape whose labels satisfy its constraints", () => {
    const gpu: HostShape = { ...parseHostShape("g-8x32:8:32:100:2"), labels: { accel: "gpu" } };
    const r = packOntoNewHosts(
      [lease("plain", 20), lease("needs-gpu", 10, undefined, ["accel=gpu"])],
      [M16, gpu],
    );
    expect([...r.counts]).toEqual([
      ["m-16x64", 1],
      ["g-8x32", 1],
    ]);
    expect(r.assignment.get("needs-gpu")).toBe("g-8x32#1");
  });

  it("names the leases no shape can take, and asks no host for them", () => {
    const r = packOntoNewHosts([lease("huge", 100), lease("ok", 10)], [M16]);
    expect(r.unservable).toEqual(["huge"]);
    expect(r.counts.get("m-16x64")).toBe(1);
  });
});

describe("parseHostShape", () => {
  it("reads name:cpus:memoryGiB[:diskGiB[:gpus]]", () => {
    expect(parseHostShape("m-16x64:16:64:500:1").capacity).toEqual({
      cpuMillis: 16_000,
      memoryMib: 65_536,
      diskGib: 500,
      gpus: 1,
    });
  });

  it.each(["m16", "M:1:1", "m:0:4", "m:4:x", "m:4:4:1:1.5", "m:4:4:1:1:1"])(
    "refuses %j with the flag named",
    (text) => {
      expect(() => parseHostShape(text)).toThrow(/--autoscale-host-shapes/);
    },
  );
});
