/** Cluster-level placement policy: which scorers, how they weigh, what "common VM sizes" are. */

import { InvalidPlacementArgumentError } from "./errors.js";
import type { Resources } from "./resources.js";
import type { FitPolicy } from "./types.js";

export interface ResourceWeights {
  readonly cpuMillis: number;
  readonly memoryMib: number;
  readonly diskGib: number;
  readonly gpus: number;
}

export interface ScorerWeights {
  /** The fit scorer: binpack or spread. */
  readonly fit: number;
  /** Penalty for leaving a remainder no common VM size can use. */
  readonly fragmentation: number;
  /** Soft affinity / anti-affinity to the lease's group. */
  readonly affinity: number;
}

export interface PlacementPolicy {
  readonly fit: FitPolicy;
  readonly weights: ScorerWeights;
  /** How much each resource counts in the binpack/spread utilisation. */
  readonly resourceWeights: ResourceWeights;
  /** VM sizes a remainder should still be able to hold (fragmentation scorer). */
  readonly commonSizes: readonly Resources[];
}

const GIB = 1024;

export const DEFAULT_RESOURCE_WEIGHTS: ResourceWeights = Object.freeze({
  cpuMillis: 1,
  memoryMib: 1,
  diskGib: 0.25,
  gpus: 1,
});

export const DEFAULT_COMMON_SIZES: readonly Resources[] = Object.freeze([
  { cpuMillis: 1000, memoryMib: 1 * GIB, diskGib: 10, gpus: 0 },
  { cpuMillis: 1000, memoryMib: 2 * GIB, diskGib: 20, gpus: 0 },
  { cpuMillis: 2000, memoryMib: 4 * GIB, diskGib: 20, gpus: 0 },
  { cpuMillis: 2000, memoryMib: 8 * GIB, diskGib: 40, gpus: 0 },
  { cpuMillis: 4000, memoryMib: 16 * GIB, diskGib: 40, gpus: 0 },
]);

export const DEFAULT_PLACEMENT_POLICY: PlacementPolicy = Object.freeze({
  fit: "binpack",
  weights: Object.freeze({ fit: 1, fragmentation: 0.25, affinity: 0.5 }),
  resourceWeights: DEFAULT_RESOURCE_WEIGHTS,
  commonSizes: DEFAULT_COMMON_SIZES,
});

/** Throws unless weights are finite and ≥ 0 and the fit weight is > 0. */
export function validatePolicy(p: PlacementPolicy): void {
  const check = (field: string, v: number) => {
    if (!Number.isFinite(v) || v < 0) {
      throw new InvalidPlacementArgumentError(
        `policy.${field}`,
        `must be finite and ≥ 0, got ${v}`,
      );
    }
  };
  check("weights.fit", p.weights.fit);
  check("weights.fragmentation", p.weights.fragmentation);
  check("weights.affinity", p.weights.affinity);
  for (const [k, v] of Object.entries(p.resourceWeights)) check(`resourceWeights.${k}`, v);
  if (p.fit !== "binpack" && p.fit !== "spread") {
    throw new InvalidPlacementArgumentError(
      "policy.fit",
      `must be binpack or spread, got ${p.fit}`,
    );
  }
}

export function sameResourceWeights(a: ResourceWeights, b: ResourceWeights): boolean {
  return (
    a.cpuMillis === b.cpuMillis &&
    a.memoryMib === b.memoryMib &&
    a.diskGib === b.diskGib &&
    a.gpus === b.gpus
  );
}
