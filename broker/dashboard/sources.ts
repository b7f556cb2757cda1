/**
 * What the dashboard shows of parts built elsewhere: live migrations and the autoscaling signal.
 * Until a source is attached (`DashboardServer.attachMigrations` / `attachAutoscale`), the API
 * says `attached: false` and the page says "no migrations" / "no signal".
 */

import type { MigrationState } from "../migrations/model.js";

// The orchestrator's own states, re-exported under the names the dashboard's API has used.
export { MIGRATION_STATES } from "../migrations/model.js";
export type MigrationStateName = MigrationState;

/** One migration as the dashboard shows it. Times are epoch ms. */
export interface MigrationView {
  readonly id: string;
  readonly leaseId: string;
  readonly sourceHostId: string;
  readonly targetHostId: string;
  readonly state: MigrationStateName;
  /** 0..1 (bytes transferred over the estimate); 1 once COMPLETED. */
  readonly progress: number;
  /** Why it runs: drain, rebalance, make-room, consolidate, user, … */
  readonly reason: string;
  readonly startedAt: number;
  /** Set once COMPLETED or ABORTED: total time and the workload's pause, for the histograms. */
  readonly durationMs?: number;
  readonly downtimeMs?: number;
}

/**
 * The migration orchestrator, as the dashboard reads it. `migrations()` lists those in flight
 * (and may include recently finished ones); `subscribe` reports every change of one migration —
 * a migration reported in COMPLETED or ABORTED with `durationMs`/`downtimeMs` is counted once in
 * the duration and downtime histograms.
 */
export interface MigrationSource {
  migrations(): readonly MigrationView[];
  subscribe(listener: (migration: MigrationView) => void): () => void;
}

export type AutoscaleDirection = "up" | "down" | "none";

/** The autoscaler's current signal (what it last published on `lb.v1.autoscale`). */
export interface AutoscaleSignalView {
  readonly at: number;
  readonly direction: AutoscaleDirection;
  /** Hosts to add (positive) or remove (negative); 0 with direction none. */
  readonly hostsDelta: number;
  /** Why, for people: "cpu committed 92% over the next 2h", … */
  readonly reason: string;
  /** The resource that drives it, if any ("cpu", "memory", …). */
  readonly resource?: string;
}

/** The autoscaling hook, as the dashboard reads it. */
export interface AutoscaleSource {
  current(): AutoscaleSignalView | undefined;
  subscribe(listener: (signal: AutoscaleSignalView) => void): () => void;
}
