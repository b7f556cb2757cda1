import { describe, expect, it } from "vitest";
import {
  ClusterError,
  clusterHosts,
  parseCluster,
  STANDARD_CLUSTER,
  shapeCounts,
  totalAllocatable,
} from "./cluster.js";

describe("cluster descriptions", () => {
  it("reads shapes, labels and ratios from YAML or JSON", () => {
    const yaml = parseCluster(`
ratios: {cpu: 2}
zones: 2
shapes:
  - name: big
    count: 3
    cpu: 64
    memory_gib: 512
    labels: {gen: 4}
    ratios: {memory: 1.5}
  - {name: gpu, count: 1, cpu: 48, memory_gib: 384, gpus: 8, disk_gib: 4000}
`);
    const json = parseCluster(
      '{"ratios":{"cpu":2},"zones":2,"shapes":[{"name":"big","count":3,"cpu":64,"memory_gib":512,"labels":{"gen":"4"},"ratios":{"memory":1.5}},{"name":"gpu","count":1,"cpu":48,"memory_gib":384,"gpus":8,"disk_gib":4000}]}',
    );
    expect(json).toEqual(yaml);
    const hosts = clusterHosts(yaml, 4);
    expect(hosts.map((h) => h.id)).toEqual(["big-0001", "big-0002", "big-0003", "gpu-0001"]);
    expect(hosts[1]?.labels).toEqual({ gen: "4", shape: "big", zone: "zone-b" });
    expect(hosts[0]?.ratios).toEqual({ cpuMillis: 2, memoryMib: 1.5 });
    expect(totalAllocatable(hosts)).toEqual({
      cpuMillis: 3 * 128_000 + 96_000,
      memoryMib: 3 * 768 * 1024 + 384 * 1024,
      diskGib: 3 * 1000 + 4000,
      gpus: 8,
    });
  });

  it("rejects a bad description, saying where", () => {
    const cases: [string, RegExp][] = [
      ["shapes: []", /shapes: expected a non-empty list/],
      ["shapes: [{name: a, count: 1, cpu: 4}]", /shapes\[0\]\.memory_gib: must be a number/],
      ["shapes: [{name: A, count: 1, cpu: 4, memory_gib: 8}]", /shapes\[0\]\.name/],
      ["shapes: [{name: a, count: -1, cpu: 4, memory_gib: 8}]", /shapes\[0\]\.count/],
      [
        "shapes: [{name: a, count: 1, cpu: 4, memory_gib: 8, ram: 3}]",
        /shapes\[0\]\.ram: unknown key/,
      ],
      [
        "shapes: [{name: a, count: 1, cpu: 4, memory_gib: 8, labels: {zone: x}}]",
        /labels\.zone: is set by the simulator/,
      ],
      [
        "ratios: {cpu: 0}\nshapes: [{name: a, count: 1, cpu: 4, memory_gib: 8}]",
        /ratios\.cpu: must be a number > 0/,
      ],
      [
        "shapes: [{name: a, count: 0, cpu: 4, memory_gib: 8}]",
        /at least one shape needs count > 0/,
      ],
      ["shapes: [", /not valid YAML/],
    ];
    for (const [text, rule] of cases) {
      expect(() => parseCluster(text), text).toThrow(ClusterError);
      expect(() => parseCluster(text), text).toThrow(rule);
    }
  });

  it("scales by shape in proportion, nested, exact at the described size", () => {
    expect(shapeCounts(STANDARD_CLUSTER, 100)).toEqual([50, 45, 5]);
    expect(shapeCounts(STANDARD_CLUSTER, 1000)).toEqual([500, 450, 50]);
    expect(shapeCounts(STANDARD_CLUSTER, 20)).toEqual([10, 9, 1]);
    let previous = [0, 0, 0];
    for (let n = 1; n <= 120; n++) {
      const counts = shapeCounts(STANDARD_CLUSTER, n);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
      // One more host is one more host of one shape: the smaller cluster is inside the larger.
      expect(counts.every((c, i) => c >= (previous[i] as number))).toBe(true);
      previous = counts;
    }
    const ids = (n: number) => clusterHosts(STANDARD_CLUSTER, n).map((h) => h.id);
    expect(ids(41).every((id) => ids(42).includes(id))).toBe(true);
  });
});
