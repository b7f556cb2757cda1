/**
 * The lease manager's admission hook: a policy beyond capacity (per-tenant quotas) that sees every
 * lease write and may refuse a new hold. The lease manager calls it inside its exclusive section,
 * so `observe` has seen every committed write before a check runs.
 */
import type { Lease, LeaseSpec } from "./model.js";

export interface AdmissionWindow {
  readonly start: number;
  readonly end: number;
}

export interface AdmissionHook {
  /**
   * A new lease: throws (ResourceExhaustedError naming the quota) if `spec` may not be admitted
   * holding `window`; `window` is undefined when it will wait in the queue, holding nothing yet.
   */
  admit(spec: LeaseSpec, window: AdmissionWindow | undefined): void;
  /** A queued lease about to be placed over `window`: throws if its tenant may not hold it now. */
  place(lease: Lease, window: AdmissionWindow): void;
  /** Throws if `lease` may not be extended to `newEnd`. */
  extend(lease: Lease, newEnd: number): void;
  /** Every lease as written (and as loaded at start), in order. */
  observe(lease: Lease): void;
}
