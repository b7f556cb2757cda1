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
