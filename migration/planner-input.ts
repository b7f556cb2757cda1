/**
 * What every planner reads: the placement index at a point in time, and what the index does not
 * know about a lease (its constraints, group, whether it can live-migrate, its memory behaviour).
 * Also the pieces they share: which holds may move, the request a move places, and what-if holds
 * that are always undone (planners leave the index as they found it).
 */

import {
  type ClusterIndex,
  DEFAULT_PLACEMENT_POLICY,
  type FitPolicy,
  type GroupSpec,
  type HoldView,
  type PlacementPolicy,
  type PlacementRequest,
  place,
  type Requirement,
} from "../placement/index.js";
import type { PlannedMove } from "./moves.js";
import type { WorkloadProfile } from "./precopy.js";

/** What the broker knows of a lease that the index does not. */
export interface LeaseMigrationInfo {
  readonly constraints?: readonly Requirement[];
  readonly group?: GroupSpec;
  readonly policy?: FitPolicy;
  /** Default true. */
  readonly liveMigratable?: boolean;
  /** The model's inputs for this workload (defaults: `DEFAULT_WORKLOAD_PROFILE`). */
  readonly profile?: Partial<WorkloadProfile>;
}

/** Unknown leases are treated as unconstrained and live-migratable. */
export type LeaseInfoLookup = (leaseId: string) => LeaseMigrationInfo | undefined;

export interface PlannerInput {
  readonly index: ClusterIndex;
  /** Epoch ms. Holds running at `now` move as live migrations, later ones as re-placements. */
  readonly now: number;
  readonly leaseInfo?: LeaseInfoLookup;
  readonly policy?: PlacementPolicy;
}

/**
 * `live`: the lease runs at `now`, so it moves by live migration. `reservation`: it starts later,
 * so only its hold moves (no workload runs yet): free, but still a move the broker must record.
 */
export type MoveKind = "live" | "reservation";

/** A move with what the planner worked out for it. */
export interface MoveDetail extends PlannedMove {
  readonly kind: MoveKind;
  /** The part of the lease's window the destination must hold: `[max(now, start), end)`. */
  readonly window: { readonly start: number; readonly end: number };
  readonly memoryMib: number;
}

export type UnmovableReason =
  | "not-live-migratable"
  | "migrating"
  | "too-little-time-left"
  | "no-destination";

/** A hold the planner may move, with the request that places it elsewhere. */
export interface MoveCandidate {
  readonly hold: HoldView;
  readonly kind: MoveKind;
  readonly request: PlacementRequest;
}

export function policyOf(input: PlannerInput): PlacementPolicy {
  return input.policy ?? DEFAULT_PLACEMENT_POLICY;
}

/**
 * Whether the hold can move now, and how. Holds already over are not candidates (undefined); a
 * lease with several holds is mid-migration.
 */
export function candidateFor(
  input: PlannerInput,
  hold: HoldView,
): MoveCandidate | UnmovableReason | undefined {
  const { index, now } = input;
  if (hold.end <= now) return undefined;
  if (index.holdsOfLease(hold.leaseId).length > 1) return "migrating";
  const info = input.leaseInfo?.(hold.leaseId);
  const kind: MoveKind = hold.start <= now ? "live" : "reservation";
  if (kind === "live" && info?.liveMigratable === false) return "not-live-migratable";
  const request: PlacementRequest = {
    leaseId: hold.leaseId,
    resources: hold.resources,
    window: { start: Math.max(now, hold.start), end: hold.end },
    priority: hold.priority,
    preemptible: hold.preemptible,
    ...(info?.constraints === undefined ? {} : { constraints: info.constraints }),
    ...(info?.group === undefined ? {} : { group: info.group }),
    ...(info?.policy === undefined ? {} : { policy: info.policy }),
  };
  return { hold, kind, request };
}

export function moveDetail(c: MoveCandidate, toHostId: string): MoveDetail {
  return {
    leaseId: c.hold.leaseId,
    fromHostId: c.hold.hostId,
    toHostId,
    kind: c.kind,
    window: c.request.window,
    memoryMib: c.hold.resources.memoryMib,
  };
}

let whatIfSeq = 0;

/**
 * Temporary holds for moves a plan has already decided, so later decisions see them. `undo`
 * releases them all; planners call it in a `finally`.
 */
export class WhatIf {
  private readonly holds: string[] = [];
  private readonly run = whatIfSeq++;
  constructor(private readonly index: ClusterIndex) {}

  /** Charge the destination for the candidate's remaining window. */
  charge(c: MoveCandidate, toHostId: string): string {
    const id = `\u0000migration-plan:${this.run}:${this.holds.length}`;
    const h = c.hold;
    this.index.commit(id, toHostId, c.request.window, h.resources, {
      leaseId: h.leaseId,
      priority: h.priority,
      preemptible: h.preemptible,
      ...(h.group === undefined ? {} : { group: h.group }),
    });
    this.holds.push(id);
    return id;
  }

  /** Undo the latest `n` charges. */
  undoLast(n: number): void {
    for (let i = 0; i < n; i++) {
      const id = this.holds.pop();
      if (id !== undefined) this.index.release(id);
    }
  }

  get size(): number {
    return this.holds.length;
  }

  undo(): void {
    this.undoLast(this.holds.length);
  }
}

/** The best destination for the candidate, not on any of `exclude`, under the policy. */
export function destinationFor(
  input: PlannerInput,
  c: MoveCandidate,
  exclude: ReadonlySet<string>,
): string | undefined {
  const d = place(input.index, c.request, policyOf(input), {
    excludeHosts: exclude,
    explain: "none",
  });
  return d.ok ? d.hostId : undefined;
}

/** Live moves first (they cost), then by memory (larger first), then lease id: a stable order. */
export function byMoveOrder(a: MoveCandidate, b: MoveCandidate): number {
  return (
    b.hold.resources.memoryMib - a.hold.resources.memoryMib ||
    b.hold.resources.cpuMillis - a.hold.resources.cpuMillis ||
    (a.hold.leaseId < b.hold.leaseId ? -1 : a.hold.leaseId > b.hold.leaseId ? 1 : 0)
  );
}
