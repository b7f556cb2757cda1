/**
 * The shape planners and the orchestrator share: a planner (drain, rebalance, make-room,
 * consolidation, preemption by migration) proposes moves; the orchestrator carries them out.
 */

/** One live migration a planner proposes: move a lease's running workload to another host. */
export interface PlannedMove {
  readonly leaseId: string;
  readonly fromHostId: string;
  readonly toHostId: string;
}
