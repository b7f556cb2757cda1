/** Small crafted clusters for the planners' tests (not part of the public API). */

import {
  ClusterIndex,
  createRng,
  type HostState,
  type Resources,
  type Rng,
} from "../placement/index.js";

export const NOW = 1_000_000;
export const HOUR = 3_600_000;

/** Hosts of 4 cores (ratio 1) and 8 GiB, ids `h0…`. */
export function smallCluster(hosts: number, states: readonly HostState[] = []): ClusterIndex {
  const index = new ClusterIndex({ bucketMs: HOUR, horizonBuckets: 16 });
  for (let i = 0; i < hosts; i++) {
    index.addHost({
      id: `h${i}`,
      capacity: { cpuMillis: 4000, memoryMib: 8192, diskGib: 100, gpus: 0 },
      ratios: { cpuMillis: 1 },
      labels: { zone: i % 2 === 0 ? "a" : "b" },
      state: states[i] ?? "READY",
    });
  }
  index.advanceTo(NOW);
  return index;
}

export function vm(cpus: number, memGib: number): Resources {
  return { cpuMillis: cpus * 1000, memoryMib: memGib * 1024, diskGib: 0, gpus: 0 };
}

/** Commit a lease hold (id = lease id) running `[start, end)`. */
export function run(
  index: ClusterIndex,
  leaseId: string,
  hostId: string,
  r: Resources,
  start = NOW - HOUR,
  end = NOW + 4 * HOUR,
): void {
  index.commit(leaseId, hostId, { start, end }, r, { priority: 0, preemptible: false });
}

/** A random fragmented cluster: every host filled with random small leases in random windows. */
export function fragmented(
  seed: number,
  hosts: number,
  perHost: number,
): {
  index: ClusterIndex;
  rng: Rng;
} {
  const rng = createRng(seed);
  const index = smallCluster(hosts);
  let n = 0;
  for (let h = 0; h < hosts; h++) {
    for (let i = 0; i < perHost; i++) {
      const r = vm(rng.int(1, 2), rng.int(1, 3));
      const start = rng.next() < 0.8 ? NOW - HOUR : NOW + rng.int(0, 3) * HOUR;
      const end = NOW + rng.int(1, 6) * HOUR;
      if (end <= start) continue;
      const free = index.freeOver(`h${h}`, { start, end });
      if (free.cpuMillis < r.cpuMillis || free.memoryMib < r.memoryMib) continue;
      run(index, `l${n++}`, `h${h}`, r, start, end);
    }
  }
  return { index, rng };
}

/** A structural snapshot to check that planners leave the index as they found it. */
export function snapshot(index: ClusterIndex): string {
  return JSON.stringify(
    index
      .hosts()
      .map((h) => [h.id, h.state, index.holdsOn(h.id).sort((a, b) => (a.id < b.id ? -1 : 1))]),
  );
}
