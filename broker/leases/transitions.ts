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
  | "LEASE_STATE_UNSPECIFIED"
  | "LEASE_STATE_PENDING"
  | "LEASE_STATE_RESERVED"
  | "LEASE_STATE_STARTING"
  | "LEASE_STATE_ACTIVE"
  | "LEASE_STATE_MIGRATING"
  | "LEASE_STATE_SUSPENDED"
  | "LEASE_STATE_ENDING"
  | "LEASE_STATE_ENDED"
  | "LEASE_STATE_CANCELLED"
  | "LEASE_STATE_REJECTED"
  | "LEASE_STATE_FAILED"
  | "LEASE_STATE_PREEMPTED";

const TABLE: Readonly<Record<LeaseState, readonly LeaseState[]>> = {
  LEASE_STATE_UNSPECIFIED: ["LEASE_STATE_PENDING", "LEASE_STATE_RESERVED", "LEASE_STATE_STARTING"],
  // Queued: placed later (into the future, or now), or given up.
  LEASE_STATE_PENDING: [
    "LEASE_STATE_RESERVED",
    "LEASE_STATE_STARTING",
    "LEASE_STATE_REJECTED",
    "LEASE_STATE_CANCELLED",
  ],
  // Capacity held in a host's future timeline. Back to PENDING when its host is lost and no other
  // host can take the reservation yet.
  LEASE_STATE_RESERVED: [
    "LEASE_STATE_STARTING",
    "LEASE_STATE_PENDING",
    "LEASE_STATE_CANCELLED",
    "LEASE_STATE_PREEMPTED",
    "LEASE_STATE_FAILED",
  ],
  // Asked the host to start it. STARTING → STARTING is a restart on another host.
  LEASE_STATE_STARTING: [
    "LEASE_STATE_ACTIVE",
    "LEASE_STATE_STARTING",
    "LEASE_STATE_ENDING",
    "LEASE_STATE_FAILED",
    "LEASE_STATE_PREEMPTED",
  ],
  LEASE_STATE_ACTIVE: [
    "LEASE_STATE_MIGRATING",
    "LEASE_STATE_SUSPENDED",
    "LEASE_STATE_ENDING",
    "LEASE_STATE_STARTING",
    "LEASE_STATE_FAILED",
    "LEASE_STATE_PREEMPTED",
  ],
  LEASE_STATE_MIGRATING: [
    "LEASE_STATE_ACTIVE",
    "LEASE_STATE_ENDING",
    "LEASE_STATE_STARTING",
    "LEASE_STATE_FAILED",
  ],
  // Memory saved to the host's disk; resumed through STARTING, on the same or another host.
  LEASE_STATE_SUSPENDED: [
    "LEASE_STATE_STARTING",
    "LEASE_STATE_ENDED",
    "LEASE_STATE_CANCELLED",
    "LEASE_STATE_PREEMPTED",
    "LEASE_STATE_FAILED",
  ],
  // Stopping; the final state says why (the end came, a cancel, a preemption, a failure).
  LEASE_STATE_ENDING: [
    "LEASE_STATE_ENDED",
    "LEASE_STATE_CANCELLED",
    "LEASE_STATE_PREEMPTED",
    "LEASE_STATE_FAILED",
  ],
  LEASE_STATE_ENDED: [],
  LEASE_STATE_CANCELLED: [],
  LEASE_STATE_REJECTED: [],
  LEASE_STATE_FAILED: [],
  LEASE_STATE_PREEMPTED: [],
};

export const TERMINAL_STATES: ReadonlySet<LeaseState> = new Set(
  (Object.keys(TABLE) as LeaseState[]).filter(
    (s) => TABLE[s].length === 0 && s !== "LEASE_STATE_UNSPECIFIED",
  ),
);

/** States in which the lease holds capacity on a host (its timeline is charged). */
export const HOLDING_STATES: ReadonlySet<LeaseState> = new Set<LeaseState>([
  "LEASE_STATE_RESERVED",
  "LEASE_STATE_STARTING",
  "LEASE_STATE_ACTIVE",
  "LEASE_STATE_MIGRATING",
  "LEASE_STATE_ENDING",
]);

/** States in which a workload runs, or is being started or stopped, on a host. */
export const RUNNING_STATES: ReadonlySet<LeaseState> = new Set<LeaseState>([
  "LEASE_STATE_STARTING",
  "LEASE_STATE_ACTIVE",
  "LEASE_STATE_MIGRATING",
  "LEASE_STATE_ENDING",
]);

export function isTerminal(state: LeaseState): boolean {
  return TERMINAL_STATES.has(state);
}

export function canTransition(from: LeaseState, to: LeaseState): boolean {
  return TABLE[from].includes(to);
}

export function nextStates(from: LeaseState): readonly LeaseState[] {
  return TABLE[from];
}

/** Short, user-facing name: `LEASE_STATE_ACTIVE` → `ACTIVE`. */
export function stateName(state: LeaseState): string {
  return state.replace(/^LEASE_STATE_/, "");
}

export class IllegalTransitionError extends FailedPreconditionError {
  constructor(
    readonly leaseId: string,
    readonly from: LeaseState,
    readonly to: LeaseState,
  ) {
    super(`lease ${leaseId} is ${stateName(from)}: it cannot become ${stateName(to)}`);
  }
}

export function assertTransition(leaseId: string, from: LeaseState, to: LeaseState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(leaseId, from, to);
}
