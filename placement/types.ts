/** Plain data shared by the index, the placer and the broker. */

import type { AllocationRatios, Resources } from "./resources.js";
import type { Requirement } from "./selector.js";

export type HostState = "READY" | "CORDONED" | "DRAINING" | "SUSPECT" | "DOWN";
export const HOST_STATES: readonly HostState[] = [
  "READY",
  "CORDONED",
  "DRAINING",
  "SUSPECT",
  "DOWN",
];

export interface HostSpec {
  readonly id: string;
  readonly capacity: Resources;
  /** Partial overrides of `DEFAULT_ALLOCATION_RATIOS`. */
  readonly ratios?: Partial<AllocationRatios>;
  readonly reserved?: Resources;
  readonly labels: Readonly<Record<string, string>>;
  readonly state: HostState;
}

/** Half-open `[start, end)`, epoch milliseconds. */
export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

export interface GroupSpec {
  readonly name: string;
  readonly kind: "affinity" | "anti-affinity";
  /** Hard: a filter. Soft: a scorer preference. */
  readonly hard: boolean;
  /** Apply (anti-)affinity per topology domain (e.g. `zone`) instead of per host. */
  readonly topologyKey?: string;
  /** With `topologyKey`: members per domain may differ by at most this (a filter, hard or soft). */
  readonly maxSkew?: number;
}

export type FitPolicy = "binpack" | "spread";

/** What the lease wants, besides where. */
export interface LeaseShape {
  /** Holds of this lease are ignored for its own group checks (re-placement, migration). */
  readonly leaseId?: string;
  readonly resources: Resources;
  readonly constraints?: readonly Requirement[];
  /** Default 0. */
  readonly priority?: number;
  /** Default false. */
  readonly preemptible?: boolean;
  readonly group?: GroupSpec;
  /** Overrides the cluster policy's fit scorer. */
  readonly policy?: FitPolicy;
}

export interface PlacementRequest extends LeaseShape {
  readonly window: TimeWindow;
}

/** A flexible lease: it may start at whatever time in `[earliest, latest]`, running for `duration`. */
export interface SlotRequest extends LeaseShape {
  readonly earliest: number;
  readonly latest: number;
  readonly duration: number;
}

/** What a hold carries besides host, window and resources. */
export interface HoldMeta {
  /** Defaults to the hold id. A lease may have several holds (e.g. both ends of a migration). */
  readonly leaseId?: string;
  readonly priority: number;
  readonly preemptible: boolean;
  /** Group name, for affinity, anti-affinity and spread. */
  readonly group?: string;
}

export interface FilterCount {
  readonly name: string;
  /** Hosts this filter rejects (each filter is counted on its own, so a host may count twice). */
  readonly removed: number;
}

export interface ScoreBreakdown {
  readonly [scorer: string]: number;
}

export interface ScoredHost {
  readonly hostId: string;
  readonly score: number;
  readonly breakdown: ScoreBreakdown;
}

/** Why nothing fits: the resource that binds and where in the window. */
export interface BindingResource {
  readonly resource: string;
  /** The part of the window where it binds on the closest host. */
  readonly start: number;
  readonly end: number;
  readonly shortBy?: number;
  /** The closest host (smallest relative shortfall). */
  readonly hostId?: string;
  /** Per resource: on how many otherwise eligible hosts it is short. */
  readonly shortOnHosts?: Readonly<Record<string, number>>;
}

export interface PlacementExplanation {
  /**
   * `exhaustive`: every filter evaluated on every host. `search`: the indexed search, which proves
   * most hosts worse or infeasible from bounds without visiting them; its filter counts cover the
   * hosts it evaluated (`hostsEvaluated`).
   */
  readonly mode: "exhaustive" | "search";
  readonly hostsConsidered: number;
  readonly hostsEvaluated: number;
  readonly filters: readonly FilterCount[];
  readonly feasibleHosts?: number;
  readonly chosenHostId?: string;
  readonly bestScore?: number;
  readonly top?: readonly ScoredHost[];
  readonly binding?: BindingResource;
  readonly window?: TimeWindow;
  readonly summary: string;
}

export type PlacementDecision =
  | {
      readonly ok: true;
      readonly hostId: string;
      readonly start: number;
      readonly end: number;
      readonly score: number;
      readonly explanation: PlacementExplanation;
    }
  | { readonly ok: false; readonly explanation: PlacementExplanation };
