/**
 * The two ports the autoscaler needs from live migration. The Live migration work provides the
 * real ones (the consolidation planner in migration/, DrainHost in the orchestrator); the
 * autoscaler only depends on these shapes, so it is built and tested without them. Hosts that hold
 * no leases need neither: they are released without a move.
 */
import type { PlannedMove } from "../../migration/index.js";
import type { ClusterIndex } from "../../placement/index.js";

/** What consolidation can empty: hosts, and the moves (in execution order) that empty them. */
export interface ConsolidationPlan {
  readonly hostIds: readonly string[];
  readonly moves: readonly PlannedMove[];
}

/**
 * Plans consolidation over the index at `now`: which hosts can be emptied by moving their leases
 * to other hosts. Pure (it must not change the index); the autoscaler filters the answer further
 * (watermarks, minimum hosts).
 */
export interface ConsolidationPlanner {
  plan(index: ClusterIndex, now: number): ConsolidationPlan;
}

/** How a drain ended: the host is empty, or these leases could not be moved. */
export interface DrainOutcome {
  readonly hostId: string;
  readonly empty: boolean;
  /** Leases still on the host, with why they did not move. */
  readonly stuck: readonly { readonly leaseId: string; readonly reason: string }[];
}

/**
 * Empties a host by live migration (`moves` are the planner's for this host; the drainer may
 * re-plan). Resolves when the host is empty or nothing more can move; never rejects for a lease
 * that could not move (that is `stuck`).
 */
export interface HostDrainer {
  drain(hostId: string, moves: readonly PlannedMove[]): Promise<DrainOutcome>;
}
