/**
 * Moving leases off hosts: the drain plan (every lease of a host), preemption by migration (the
 * victims of a preemption), and the step consolidation repeats per host. Leases are taken largest
 * first (they are the hardest to place) and each goes to the best host under the placement policy
 * that is not one of the hosts being left, seeing the moves decided before it.
 */

import type { HoldView } from "../placement/index.js";
import {
  byMoveOrder,
  candidateFor,
  destinationFor,
  type MoveCandidate,
  type MoveDetail,
  moveDetail,
  type PlannerInput,
  type UnmovableReason,
  WhatIf,
} from "./planner-input.js";

export interface Unmovable {
  readonly leaseId: string;
  readonly hostId: string;
  readonly reason: UnmovableReason;
}

export interface EvacuationPlan {
  readonly moves: readonly MoveDetail[];
  /** Leases that cannot move, and why: they follow their policy (stop, suspend) at the deadline. */
  readonly unmovable: readonly Unmovable[];
}

export interface EvacuationOptions {
  /** Leases with less than this left (ms) are not moved: `too-little-time-left`. Default 0. */
  readonly minRemainingMs?: number;
}

interface EvacuateControl extends EvacuationOptions {
  /** Stop at the first lease that cannot move (consolidation: the host stays anyway). */
  readonly allOrNothing?: boolean;
}

/**
 * Destinations for `holds` away from every host in `leaving`, with the moves charged on `whatIf`
 * (the caller undoes them).
 */
export function evacuateHolds(
  input: PlannerInput,
  holds: readonly HoldView[],
  leaving: ReadonlySet<string>,
  whatIf: WhatIf,
  options: EvacuateControl = {},
): EvacuationPlan {
  const moves: MoveDetail[] = [];
  const unmovable: Unmovable[] = [];
  const cands: MoveCandidate[] = [];
  const minLeft = options.minRemainingMs ?? 0;
  for (const h of holds) {
    const c = candidateFor(input, h);
    if (c === undefined) continue;
    if (typeof c === "string") unmovable.push({ leaseId: h.leaseId, hostId: h.hostId, reason: c });
    else if (c.kind === "live" && h.end - input.now < minLeft) {
      unmovable.push({ leaseId: h.leaseId, hostId: h.hostId, reason: "too-little-time-left" });
    } else cands.push(c);
  }
  cands.sort(byMoveOrder);
  for (const c of cands) {
    const to = destinationFor(input, c, leaving);
    if (to === undefined) {
      unmovable.push({ leaseId: c.hold.leaseId, hostId: c.hold.hostId, reason: "no-destination" });
      if (options.allOrNothing === true) break;
      continue;
    }
    whatIf.charge(c, to);
    moves.push(moveDetail(c, to));
  }
  return { moves, unmovable };
}

export interface DrainOptions extends EvacuationOptions {
  /**
   * When the host must be empty (epoch ms). Leases that end by then are left to end
   * (`endsByDeadline`) instead of being moved.
   */
  readonly deadline?: number;
}

export interface DrainPlan extends EvacuationPlan {
  readonly hostId: string;
  /** Leases that end by the deadline on their own. */
  readonly endsByDeadline: readonly string[];
}

/** Destinations for every lease on `hostId` (running ones migrate, reservations re-place). */
export function planDrain(
  input: PlannerInput,
  hostId: string,
  options: DrainOptions = {},
): DrainPlan {
  const whatIf = new WhatIf(input.index);
  try {
    const all = input.index.holdsOn(hostId).filter((h) => h.end > input.now);
    const deadline = options.deadline;
    const ends = deadline === undefined ? [] : all.filter((h) => h.end <= deadline);
    const rest = deadline === undefined ? all : all.filter((h) => h.end > deadline);
    const plan = evacuateHolds(input, rest, new Set([hostId]), whatIf, options);
    return { hostId, ...plan, endsByDeadline: ends.map((h) => h.leaseId).sort() };
  } finally {
    whatIf.undo();
  }
}

/**
 * Preemption by migration: for each victim (lease ids, as `planPreemption` returns them) on the
 * host the preempting lease goes to, a destination elsewhere; those in `unmovable` must be stopped
 * (or suspended) instead.
 */
export function planVictimMigrations(
  input: PlannerInput,
  hostId: string,
  victims: readonly string[],
  options: EvacuationOptions = {},
): EvacuationPlan {
  const whatIf = new WhatIf(input.index);
  try {
    const wanted = new Set(victims);
    const holds = input.index
      .holdsOn(hostId)
      .filter((h) => wanted.has(h.leaseId) && h.end > input.now);
    return evacuateHolds(input, holds, new Set([hostId]), whatIf, options);
  } finally {
    whatIf.undo();
  }
}
