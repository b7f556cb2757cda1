/** Seeded random clusters and requests for the tests (not part of the public API). */

import { ClusterIndex, type ClusterIndexOptions } from "./cluster-index.js";
import { createRng, type Rng } from "./random.js";
import type { Resources } from "./resources.js";
import type { Requirement } from "./selector.js";
import type { GroupSpec, HostSpec, HostState, PlacementRequest } from "./types.js";

export const GIB = 1024;

export function randomHostSpec(rng: Rng, i: number): HostSpec {
  const shapes: Resources[] = [
    { cpuMillis: 16_000, memoryMib: 64 * GIB, diskGib: 1000, gpus: 0 },
    { cpuMillis: 32_000, memoryMib: 128 * GIB, diskGib: 2000, gpus: 0 },
    { cpuMillis: 32_000, memoryMib: 128 * GIB, diskGib: 2000, gpus: 4 },
  ];
  const states: HostState[] = [
    "READY",
    "READY",
    "READY",
    "READY",
    "READY",
    "READY",
    "CORDONED",
    "DOWN",
  ];
  return {
    id: `h${String(i).padStart(3, "0")}`,
    capacity: rng.pick(shapes),
    labels: {
      zone: rng.pick(["a", "b", "c"]),
      rack: `r${rng.int(0, 5)}`,
      gen: String(rng.int(1, 4)),
    },
    state: rng.pick(states),
  };
}

export function randomResources(rng: Rng): Resources {
  const vcpu = rng.pick([1, 2, 4, 8, 16]);
  return {
    cpuMillis: vcpu * 1000,
    memoryMib: vcpu * rng.pick([1, 2, 4, 8]) * GIB,
    diskGib: rng.pick([10, 20, 50, 100]),
    gpus: rng.next() < 0.1 ? rng.int(1, 2) : 0,
  };
}

export function randomConstraints(rng: Rng): Requirement[] {
  const all: Requirement[][] = [
    [],
    [],
    [],
    [{ key: "zone", op: "=", value: rng.pick(["a", "b", "c"]) }],
    [{ key: "rack", op: "in", values: ["r1", "r2"] }],
    [{ key: "gen", op: ">", value: 2 }],
    [{ key: "zone", op: "!=", value: "a" }],
    [
      { key: "rack", op: "notin", values: ["r0"] },
      { key: "zone", op: "exists" },
    ],
  ];
  return rng.pick(all);
}

export function randomGroup(rng: Rng): GroupSpec | undefined {
  const r = rng.next();
  const name = `g${rng.int(0, 3)}`;
  if (r < 0.5) return undefined;
  if (r < 0.65) return { name, kind: "anti-affinity", hard: true };
  if (r < 0.72) return { name, kind: "anti-affinity", hard: true, topologyKey: "rack" };
  if (r < 0.8) return { name, kind: "affinity", hard: rng.next() < 0.5 };
  if (r < 0.86) return { name, kind: "affinity", hard: true, topologyKey: "zone" };
  if (r < 0.93) return { name, kind: "anti-affinity", hard: false };
  return { name, kind: "anti-affinity", hard: true, topologyKey: "zone", maxSkew: 1 };
}

export interface RandomCluster {
  readonly index: ClusterIndex;
  readonly rng: Rng;
  now: number;
}

export function randomRequest(rng: Rng, now: number, leaseId?: string): PlacementRequest {
  const start = rng.next() < 0.6 ? now : now + rng.int(0, 40_000);
  const group = randomGroup(rng);
  const base = {
    resources: randomResources(rng),
    window: { start, end: start + rng.int(1_000, 30_000) },
    constraints: randomConstraints(rng),
    priority: rng.int(0, 9),
    preemptible: rng.next() < 0.7,
    ...(rng.next() < 0.2 ? { policy: "spread" as const } : {}),
  };
  const withGroup = group === undefined ? base : { ...base, group };
  return leaseId === undefined ? withGroup : { ...withGroup, leaseId };
}

/** An index with `hosts` hosts, ring buckets of 1 s × 16 (so windows cross the horizon). */
export function randomCluster(
  seed: number,
  hosts: number,
  options: ClusterIndexOptions = {},
): RandomCluster {
  const rng = createRng(seed);
  const index = new ClusterIndex({ bucketMs: 1000, horizonBuckets: 16, ...options });
  for (let i = 0; i < hosts; i++) index.addHost(randomHostSpec(rng, i));
  return { index, rng, now: 1_000_000 };
}
