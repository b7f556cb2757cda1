/**
 * Live migration's public API: the pre-copy model and the planners (pure: no I/O, no clock; time is
 * an argument), and the move shape they share with the orchestrator.
 */

export {
  type ConsolidationOptions,
  type ConsolidationPlan,
  planConsolidation,
} from "./consolidate.js";
export {
  type DrainOptions,
  type DrainPlan,
  type EvacuationOptions,
  type EvacuationPlan,
  planDrain,
  planVictimMigrations,
  type Unmovable,
} from "./evacuate.js";
export { type MakeRoomOptions, type MakeRoomPlan, planMakeRoom } from "./make-room.js";
export type { PlannedMove } from "./moves.js";
export type {
  LeaseInfoLookup,
  LeaseMigrationInfo,
  MoveDetail,
  MoveKind,
  PlannerInput,
  UnmovableReason,
} from "./planner-input.js";
export {
  type AutoConvergeOptions,
  completionTimeoutMs,
  DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S,
  DEFAULT_WORKLOAD_PROFILE,
  GIB,
  MIB,
  type PreCopyInput,
  type PreCopyResult,
  type PreCopyRound,
  type PreCopyStop,
  predictForMemory,
  predictPreCopy,
  type WorkloadProfile,
} from "./precopy.js";
export {
  clusterImbalance,
  planRebalance,
  REBALANCE_LEVELS,
  type RebalanceLevel,
  type RebalanceMove,
  type RebalanceOptions,
  type RebalancePlan,
} from "./rebalance.js";
export { weightedUtilisation } from "./utilisation.js";
