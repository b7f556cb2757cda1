/**
 * A cluster in steady state for the planners' benchmarks: `makeHosts` hosts and the leases of a
 * stationary arrival process (bench/lib/workload.ts) that still hold capacity at `t0`, placed in
 * arrival order with the policy's `place` (flexible leases at their earliest start).
 */

import { ClusterIndex, createRng, type PlacementRequest, place } from "../../placement/index.js";
import { arrival, DAY, EndQueue, MEAN_TIME_IN_SYSTEM, makeHosts } from "./workload.js";

export interface SteadyCluster {
  readonly index: ClusterIndex;
  readonly now: number;
  /** Holds alive at `now` (running and reserved). */
  readonly leases: number;
}

export function steadyStateCluster(options: {
  readonly seed: number;
  readonly hosts: number;
  readonly leases: number;
  readonly t0: number;
  readonly horizonHours?: number;
}): SteadyCluster {
  const { seed, t0 } = options;
  const index = new ClusterIndex({ horizonBuckets: options.horizonHours ?? 384 });
  for (const spec of makeHosts(createRng(seed), options.hosts)) index.addHost(spec);
  const rng = createRng(seed ^ 0x5eed);
  const dt = MEAN_TIME_IN_SYSTEM / Math.max(1, options.leases);
  const ends = new EndQueue();
  let seq = 0;
  for (let t = t0 - 15 * DAY; t < t0; t += dt) {
    const a = arrival(rng, t, `lease-${seq++}`);
    const req: PlacementRequest =
      a.kind === "flexible"
        ? {
            ...a.request,
            window: { start: a.request.earliest, end: a.request.earliest + a.request.duration },
          }
        : a.request;
    if (req.window.end <= t0) continue;
    index.advanceTo(t);
    while (ends.peekTime() <= t) {
      const id = ends.pop();
      if (id !== undefined) index.release(id);
    }
    const d = place(index, req);
    if (!d.ok) continue;
    const id = req.leaseId ?? `lease-${seq}`;
    index.commit(id, d.hostId, req.window, req.resources, {
      priority: req.priority ?? 0,
      preemptible: req.preemptible ?? false,
    });
    ends.push(req.window.end, id);
  }
  index.advanceTo(t0);
  while (ends.peekTime() <= t0) {
    const id = ends.pop();
    if (id !== undefined) index.release(id);
  }
  return { index, now: t0, leases: index.holdCount };
}
