/**
 * The broker's lease model. Times are epoch milliseconds and states short names; the gRPC layer
 * and the etcd codec map it to and from the v1 contract (proto/), at the edges only.
 */
import type { Resources } from "../../placement/index.js";
import type { LeaseState } from "./transitions.js";

export type WindowSpec =
  | { readonly kind: "immediate"; readonly durationMs: number }
  | { readonly kind: "reserved"; readonly start: number; readonly durationMs: number }
  | {
      readonly kind: "flexible";
      readonly earliestStart: number;
      readonly latestStart: number;
      readonly durationMs: number;
    };

export interface AffinitySpec {
  readonly group: string;
  readonly kind: "affinity" | "anti-affinity";
  readonly hard: boolean;
  /** Label key to spread over (`zone`); empty: per host. */
  readonly topologyKey: string;
  /** Max skew of group members across topology domains; 0: no spread constraint. */
  readonly maxSkew: number;
}

export interface MigrationPolicySpec {
  readonly liveMigratable: boolean;
  /** 0: the cluster default. */
  readonly maxDowntimeMs: number;
  readonly allowSuspend: boolean;
  readonly allowAutoConverge: boolean;
  readonly allowPostCopy: boolean;
}

export type OnHostFailure = "restart" | "fail";
export type PolicyName = "binpack" | "spread";

export interface LeaseSpec {
  readonly name: string;
  readonly tenant: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly resources: Resources;
  readonly window: WindowSpec;
  /** 0..1000, higher wins. */
  readonly priority: number;
  readonly preemptible: boolean;
  /** Label-selector expressions the host must match, one requirement each. */
  readonly constraints: readonly string[];
  readonly affinity?: AffinitySpec;
  readonly migration: MigrationPolicySpec;
  readonly onHostFailure: OnHostFailure;
  /** Immediate and reserved leases: wait as PENDING instead of failing when nothing fits. */
  readonly allowQueue: boolean;
  /** Overrides the cluster's placement policy for this lease. */
  readonly policy?: PolicyName;
  readonly driver: { readonly image: string; readonly params: Readonly<Record<string, string>> };
}

/** Why a lease left (or is leaving) its host. */
export type StopReason = "end" | "cancel" | "preempt" | "failure" | "drain";

/** What a write to a lease was; WatchLeases reports it as the event type. */
export type LeaseEventType =
  | "CREATED"
  | "STATE_CHANGED"
  | "EXTENDED"
  | "EXPIRY_WARNING"
  | "PREEMPTION_NOTICE"
  | "MIGRATION_PROGRESS"
  | "DELETED";

export interface PlacementRecord {
  readonly hostId: string;
  readonly at: number;
  readonly reason: string;
  /** The migration that moved it here (reason "migrated"). */
  readonly migrationId?: string;
}

export interface Lease {
  readonly id: string;
  readonly spec: LeaseSpec;
  readonly state: LeaseState;
  /** The host that holds (or runs) it; "" when it has none. */
  readonly hostId: string;
  /** Planned or actual start; 0 while unplaced. */
  readonly start: number;
  /** Planned end; 0 while unplaced. */
  readonly end: number;
  /** The client's idempotency id ("" if none). */
  readonly requestId: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly statusMessage: string;
  readonly history: readonly PlacementRecord[];
  /** Set once the lease is asked to stop before its end (cancel, preemption, failure). */
  readonly stopReason?: StopReason;
  /** For a preemption notice: when the workload will be stopped. */
  readonly stopDeadline?: number;
  /** The expiry warning was sent for the current end. */
  readonly warned: boolean;
  /** What the last write to this lease was (the event WatchLeases reports for it). */
  readonly lastEvent: LeaseEventType;
  /** While MIGRATING: the migration in progress. */
  readonly migrationId?: string;
  /** While MIGRATING: its destination host (charged too, and allowed to report the workload). */
  readonly migrationTo?: string;
}
