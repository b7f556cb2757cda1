/**
 * bench:autoscale — what one autoscale evaluation costs, and how its bin packing compares with
 * dividing totals. A seeded cluster of identical hosts (16 CPUs, 64 GiB) is filled to about 90 %
 * memory with running leases; `--waiting` PENDING leases (8–48 GiB, now, for an hour) then need new
 * hosts. Reports the median wall time of `evaluate` (placement check of every waiting lease,
 * utilisation, packing) and of the packing alone, and the hosts the packing asks for against the
 * lower bound ⌈memory of the leases that fit nowhere / host memory⌉.
 *
 *   node dist/bench/autoscale.js [--hosts N] [--waiting N] [--runs N] [--seed N] [--json]
 */
import { evaluate } from "../broker/autoscale/evaluate.js";
import { packOntoNewHosts } from "../broker/autoscale/packing.js";
import { parseHostShape, shapeAllocatable } from "../broker/autoscale/shapes.js";
import { placementRequest } from "../broker/leases/lease-manager.js";
import type { Lease } from "../broker/leases/model.js";
import { testLeaseSpec, testPendingLease } from "../broker/leases/test-support.js";
import { ClusterIndex, createRng, DEFAULT_PLACEMENT_POLICY } from "../placement/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, median, table } from "./lib/stats.js";

const GIB = 1024;
const HOUR = 3_600_000;
const NOW = Date.UTC(2031, 0, 6, 12);

const flags = parseFlags(
  "autoscale",
  {
    hosts: { kind: "number", default: 1000, help: "hosts in the cluster" },
    waiting: { kind: "number", default: 500, help: "PENDING leases that need new hosts" },
    runs: { kind: "number", default: 5, help: "evaluations timed" },
    seed: { kind: "number", default: 1, help: "workload seed" },
    json: { kind: "boolean", default: false, help: "print one JSON object" },
  },
  process.argv.slice(2),
);

const rng = createRng(flags.seed);
const shape = parseHostShape("m-16x64:16:64:500");
const index = new ClusterIndex({ resourceWeights: DEFAULT_PLACEMENT_POLICY.resourceWeights });
let holds = 0;
for (let h = 0; h < flags.hosts; h++) {
  const id = `h-${String(h).padStart(5, "0")}`;
  index.addHost({ id, capacity: shape.capacity, labels: {}, state: "READY" });
  let used = 0;
  for (;;) {
    const gib = 4 + Math.floor(rng.next() * 13);
    if (used + gib > 58) break;
    used += gib;
    index.commit(
      `run-${holds}`,
      id,
      { start: NOW - HOUR, end: NOW + 2 * HOUR + Math.floor(rng.next() * 4 * HOUR) },
      { cpuMillis: 1000, memoryMib: gib * GIB, diskGib: 10, gpus: 0 },
      { leaseId: `run-${holds++}`, priority: 0, preemptible: false },
    );
  }
}
const waiting: Lease[] = Array.from({ length: flags.waiting }, (_, i) =>
  testPendingLease(
    `w-${String(i).padStart(5, "0")}`,
    testLeaseSpec(8 + Math.floor(rng.next() * 41), { allowQueue: true }),
    NOW,
  ),
);

const input = {
  index,
  now: NOW,
  waiting,
  shapes: [shape],
  horizonMs: HOUR,
  utilisationWindowMs: 30_000,
  highWatermark: 0.85,
  lowWatermark: 0.3,
  minHosts: 1,
  policy: DEFAULT_PLACEMENT_POLICY,
  removableOrder: (ids: readonly string[]) => ids,
};
const evaluationMs: number[] = [];
let last = evaluate(input);
for (let r = 0; r < flags.runs; r++) {
  const t = performance.now();
  last = evaluate(input);
  evaluationMs.push(performance.now() - t);
}
const needed = last.packing.counts.get(shape.name) ?? 0;
// Some waiting leases fit where a host has room left: only the others need new hosts.
const unmet = new Set(last.unmetLeaseIds);
const requests = waiting
  .filter((l) => unmet.has(l.id))
  .map((l) => placementRequest(l.id, l.spec, { start: NOW, end: NOW + HOUR }, []));
const packingMs: number[] = [];
for (let r = 0; r < flags.runs; r++) {
  const t = performance.now();
  packOntoNewHosts(requests, [shape]);
  packingMs.push(performance.now() - t);
}
const memory = last.unmetDemand.memoryMib;
const lowerBound = Math.ceil(memory / shapeAllocatable(shape).memoryMib);
const figures = {
  hosts: flags.hosts,
  running_leases: holds,
  waiting_leases: flags.waiting,
  unmet_leases: unmet.size,
  evaluation_median_ms: median(evaluationMs),
  packing_median_ms: median(packingMs),
  hosts_needed: needed,
  hosts_lower_bound: lowerBound,
  hosts_needed_over_bound: needed / lowerBound,
};
if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  process.stdout.write(
    `${table([
      ["figure", "value"],
      ["hosts / running leases", `${figures.hosts} / ${figures.running_leases}`],
      ["waiting leases / fitting nowhere", `${figures.waiting_leases} / ${figures.unmet_leases}`],
      ["evaluation, median ms", fmt(figures.evaluation_median_ms, 1)],
      ["packing alone, median ms", fmt(figures.packing_median_ms, 1)],
      ["hosts needed (packing)", String(figures.hosts_needed)],
      ["lower bound ⌈unmet memory / host⌉", String(figures.hosts_lower_bound)],
      ["needed / bound", fmt(figures.hosts_needed_over_bound, 3)],
    ])}\n`,
  );
}
