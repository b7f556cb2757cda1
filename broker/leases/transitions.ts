/**
 * The lease state machine: the one place that says which state may follow which. Every other
 * module asks `assertTransition` before it writes a new state.
 *
 *   PENDING ──▶ RESERVED ──▶ STARTING ──▶ ACTIVE ──▶ ENDING ──▶ ENDED
 *      │            │            │        ▲  │  ▲        │
 *      │            │            │        │  ▼  │        └──▶ CANCELLED | PREEMPTED | FAILED
 *      │            │            │   MIGRATING  SUSPENDED
 *      └──▶ REJECTED | CANCELLED  and FAILED | PREEMPTED from the live states
 */
import { FailedPreconditionError } from "../../core/index.js";

export type LeaseState =
  /** Not yet written: the state a lease comes from when it is created. */
  | "NEW"
  | "PENDING"
  | "RESERVED"
  | "STARTING"
  | "ACTIVE"
  | "MIGRATING"
  | "SUSPENDED"
  | "ENDING"
  | "ENDED"
  | "CANCELLED"
  | "REJECTED"
  | "FAILED"
  | "PREEMPTED";

const TABLE: Readonly<Record<LeaseState, readonly LeaseState[]>> = {
  NEW: ["PENDING", "RESERVED", "STARTING"],
  // Queued: placed later (into the future, or now), or given up.
  PENDING: ["RESERVED", "STARTING", "REJECTED", "CANCELLED"],
  // Capacity held in a host's future timeline. Back to PENDING when its host is lost and no other
  // host can take the reservation yet.
  RESERVED: ["STARTING", "PENDING", "CANCELLED", "PREEMPTED", "FAILED"],
  // Asked the host to start it. STARTING → STARTING is a restart on another host; → SUSPENDED is a
  // resume on another host that failed (the saved state is still on its source).
  STARTING: ["ACTIVE", "STARTING", "SUSPENDED", "ENDING", "FAILED", "PREEMPTED"],
  ACTIVE: ["MIGRATING", "SUSPENDED", "ENDING", "STARTING", "FAILED", "PREEMPTED"],
  MIGRATING: ["ACTIVE", "ENDING", "STARTING", "FAILED"],
  // Memory saved to the host's disk; resumed through STARTING, on the same or another host.
  SUSPENDED: ["STARTING", "ENDED", "CANCELLED", "PREEMPTED", "FAILED"],
  // Stopping; the final state says why (the end came, a cancel, a preemption, a failure).
  ENDING: ["ENDED", "CANCELLED", "PREEMPTED", "FAILED"],
  ENDED: [],
  CANCELLED: [],
  REJECTED: [],
  FAILED: [],
  PREEMPTED: [],
};

export const TERMINAL_STATES: ReadonlySet<LeaseState> = new Set(
  (Object.keys(TABLE) as LeaseState[]).filter((s) => TABLE[s].length === 0 && s !== "NEW"),
);

/**
 * States in which the lease holds capacity on a host (its timeline is charged). Not ENDING: a
 * lease's capacity is freed the moment it is asked to stop.
 */
export const HOLDING_STATES: ReadonlySet<LeaseState> = new Set<LeaseState>([
  "RESERVED",
  "STARTING",
  "ACTIVE",
  "MIGRATING",
]);

/** States in which a workload runs, or is being started or stopped, on a host. */
export const RUNNING_STATES: ReadonlySet<LeaseState> = new Set<LeaseState>([
  "STARTING",
  "ACTIVE",
  "MIGRATING",
  "ENDING",
]);

export function isTerminal(state: LeaseState): boolean {
  return TERMINAL_STATES.has(state);
}

export function canTransition(from: LeaseState, to: LeaseState): boolean {
  return TABLE[from].includes(to);
}

export class IllegalTransitionError extends FailedPreconditionError {
  constructor(
    readonly leaseId: string,
    readonly from: LeaseState,
    readonly to: LeaseState,
  ) {
    super(`lease ${leaseId} is ${from}: it cannot become ${to}`);
  }
}

export function assertTransition(leaseId: string, from: LeaseState, to: LeaseState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(leaseId, from, to);
}
