/**
 * Placement of a lease that already runs somewhere, on a host other than its current one. The index has
 * no per-request host exclusion, so the source is taken out of the candidates for the duration of
 * one synchronous `place` (a DRAINING or CORDONED source is no candidate anyway).
 */
import {
  type ClusterIndex,
  type PlacementDecision,
  type PlacementPolicy,
  type PlacementRequest,
  place,
} from "../../placement/index.js";

export function placeAway(
  index: ClusterIndex,
  request: PlacementRequest,
  policy: PlacementPolicy,
  fromHostId: string,
): PlacementDecision {
  const source = index.host(fromHostId);
  if (source === undefined || source.state !== "READY") return place(index, request, policy);
  index.setHostState(fromHostId, "CORDONED");
  try {
    return place(index, request, policy);
  } finally {
    index.setHostState(fromHostId, "READY");
  }
}
