export {
  type DrainMove,
  type DrainRequest,
  type DrainResult,
  drainHost,
  followDrains,
} from "./drain.js";
export {
  destinationHoldId,
  isFinished,
  MIGRATION_REASONS,
  MIGRATION_STATES,
  type Migration,
  type MigrationPrediction,
  type MigrationReason,
  type MigrationState,
  type TransferProgress,
} from "./model.js";
export {
  DEFAULT_MIGRATION_LIMITS,
  type ExecuteResult,
  type MigrateRequest,
  type MigrationLimits,
  MigrationOrchestrator,
  type MigrationPage,
  type MigrationQuery,
} from "./orchestrator.js";
export { placeAway } from "./place-away.js";
export {
  DEFAULT_PLANNER_SETTINGS,
  MigrationPlanners,
  type PlannerSettings,
  type RebalanceOutcome,
  type RebalanceRequest,
  type RebalanceSetting,
  rebalanceSetting,
} from "./planners.js";
export { predictLeaseMigration, SIM_LINK_BYTES_PER_S, workloadProfileOf } from "./profile.js";
