/**
 * How many new hosts the unmet demand needs: first-fit decreasing bin packing of the waiting
 * leases onto virtual hosts of the configured shapes, through placement itself (a scratch
 * ClusterIndex holding only the virtual hosts), so that windows, constraints and affinity count
 * exactly as they will when the real hosts join. Pure and deterministic.
 */
import {
  ClusterIndex,
  DEFAULT_PLACEMENT_POLICY,
  type PlacementPolicy,
  type PlacementRequest,
  placeFirstFit,
} from "../../placement/index.js";
import { type HostShape, shapeAllocatable } from "./shapes.js";

export interface PackingResult {
  /** New hosts per shape name (shapes needing none are absent), in shape order. */
  readonly counts: ReadonlyMap<string, number>;
  /** Lease id → the virtual host it was packed on (`<shape>#<n>`). */
  readonly assignment: ReadonlyMap<string, string>;
  /** Leases that fit no shape even on an empty host, sorted. */
  readonly unservable: readonly string[];
}

/**
 * Packs `requests` (each with its `leaseId` and window) onto as few new hosts as first-fit
 * decreasing finds: the largest lease first (by its largest share of the first shape's
 * allocatable), each onto the first virtual host where placement accepts it, else onto a new host
 * of the first shape that can take it.
 */
export function packOntoNewHosts(
  requests: readonly PlacementRequest[],
  shapes: readonly HostShape[],
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
): PackingResult {
  const scratch = new ClusterIndex({ resourceWeights: policy.resourceWeights });
  const counts = new Map<string, number>();
  const assignment = new Map<string, string>();
  const unservable: string[] = [];
  const reference = shapes[0] === undefined ? undefined : shapeAllocatable(shapes[0]);
  const size = (r: PlacementRequest): number =>
    reference === undefined
      ? 0
      : Math.max(
          share(r.resources.cpuMillis, reference.cpuMillis),
          share(r.resources.memoryMib, reference.memoryMib),
          share(r.resources.diskGib, reference.diskGib),
          share(r.resources.gpus, reference.gpus),
        );
  const ordered = [...requests].sort(
    (a, b) => size(b) - size(a) || leaseIdOf(a).localeCompare(leaseIdOf(b)),
  );
  for (const request of ordered) {
    const leaseId = leaseIdOf(request);
    let hostId = placeFirstFit(scratch, request, policy);
    if (hostId === undefined) {
      for (const shape of shapes) {
        const n = (counts.get(shape.name) ?? 0) + 1;
        const candidate = `${shape.name}#${n}`;
        scratch.addHost({
          id: candidate,
          capacity: shape.capacity,
          ratios: shape.ratios,
          reserved: shape.reserved,
          labels: shape.labels,
          state: "READY",
        });
        if (placeFirstFit(scratch, request, policy) === candidate) {
          counts.set(shape.name, n);
          hostId = candidate;
          break;
        }
        scratch.removeHost(candidate);
      }
    }
    if (hostId === undefined) {
      unservable.push(leaseId);
      continue;
    }
    scratch.commit(`pack-${leaseId}`, hostId, request.window, request.resources, {
      leaseId,
      priority: request.priority ?? 0,
      preemptible: request.preemptible ?? false,
      ...(request.group === undefined ? {} : { group: request.group.name }),
    });
    assignment.set(leaseId, hostId);
  }
  const ordering = new Map(shapes.map((s, i) => [s.name, i]));
  const sorted = new Map(
    [...counts].sort((a, b) => (ordering.get(a[0]) ?? 0) - (ordering.get(b[0]) ?? 0)),
  );
  return { counts: sorted, assignment, unservable: unservable.sort() };
}

const share = (want: number, have: number): number =>
  want <= 0 ? 0 : have <= 0 ? Number.POSITIVE_INFINITY : want / have;

function leaseIdOf(request: PlacementRequest): string {
  if (request.leaseId === undefined) throw new RangeError("packing needs each request's leaseId");
  return request.leaseId;
}
