/**
 * The broker's migration record: what the Store keeps under `migrations/<id>` and the API maps to
 * the contract's `Migration`. Times are epoch milliseconds, states short names.
 */
import type { Resources } from "../../placement/index.js";

/** PLANNED → PREPARING → TRANSFERRING → SWITCHOVER → COMPLETED, or ABORTED from any of them. */
export type MigrationState =
  | "PLANNED"
  | "PREPARING"
  | "TRANSFERRING"
  | "SWITCHOVER"
  | "COMPLETED"
  | "ABORTED";

export type MigrationReason =
  | "MANUAL"
  | "DRAIN"
  | "REBALANCE"
  | "MAKE_ROOM"
  | "CONSOLIDATE"
  | "PREEMPTION";

export const MIGRATION_STATES: readonly MigrationState[] = [
  "PLANNED",
  "PREPARING",
  "TRANSFERRING",
  "SWITCHOVER",
  "COMPLETED",
  "ABORTED",
];

export const MIGRATION_REASONS: readonly MigrationReason[] = [
  "MANUAL",
  "DRAIN",
  "REBALANCE",
  "MAKE_ROOM",
  "CONSOLIDATE",
  "PREEMPTION",
];

export interface TransferProgress {
  readonly bytesTransferred: number;
  readonly bytesRemaining: number;
  readonly rounds: number;
  readonly dirtyRateBytesPerS: number;
  readonly bandwidthBytesPerS: number;
  readonly expectedDowntimeMs: number;
  /** When the broker received these figures. */
  readonly time: number;
}

/** What the pre-copy model predicted when the migration was planned (`migration/precopy.ts`). */
export interface MigrationPrediction {
  readonly totalTimeMs: number;
  readonly downtimeMs: number;
  readonly converges: boolean;
  readonly rounds: number;
  readonly bytesTotal: number;
}

export interface Migration {
  readonly id: string;
  readonly leaseId: string;
  readonly fromHostId: string;
  readonly toHostId: string;
  readonly state: MigrationState;
  readonly reason: MigrationReason;
  readonly createdAt: number;
  /** When it left PLANNED; 0 before. */
  readonly startedAt: number;
  /** When it reached COMPLETED or ABORTED; 0 before. */
  readonly endedAt: number;
  readonly progress?: TransferProgress;
  /** The model's prediction at planning time (absent in records written before it existed). */
  readonly predicted?: MigrationPrediction;
  /** Set once COMPLETED: the switchover downtime the source measured. */
  readonly downtimeMs?: number;
  /** Set once COMPLETED: the migration's total time the source measured (QEMU's `total-time`). */
  readonly totalTimeMs?: number;
  /** "" unless ABORTED. */
  readonly abortReason: string;
  /** ABORTED on someone's request (AbortMigration), not by a failure: not retried. */
  readonly abortedByRequest?: boolean;
  /** 0 = unlimited. */
  readonly bandwidthLimitBytesPerS: number;
  readonly maxDowntimeMs: number;
  readonly autoConverge: boolean;
  readonly postCopy: boolean;
  /** The lease's resources, charged on both hosts while it moves. */
  readonly resources: Resources;
}

export function isFinished(state: MigrationState): boolean {
  return state === "COMPLETED" || state === "ABORTED";
}

/** The index hold that charges a migration's destination (the lease's own hold is its id). */
export function destinationHoldId(migrationId: string): string {
  return `migration/${migrationId}`;
}
