/**
 * The migration planners wired into the broker: `migration/`'s pure planners read the broker's
 * ClusterIndex (with what the lease manager knows of each lease) and their moves go to the
 * orchestrator.
 *
 * - **Make-room** (`RoomMaker`): a lease that fits no single host is written PENDING while the
 *   fewest moves open a host; running leases migrate (reason MAKE_ROOM), reservations in the way
 *   are re-placed. When every move has ended, `LeaseManager.settleMadeRoom` places the lease (or
 *   re-plans once, then rejects or queues it).
 * - **Preemption by migration** (`VictimMover`): victims that can move are migrated (reason
 *   PREEMPTION) before their notice runs out; the others are suspended or stopped at its end.
 * - **Rebalance**: `rebalance()` (the API, dry run or not) and a periodic round on the Clock.
 * - **Consolidation**: `consolidation()` for the autoscaler's scale-in (not wired here).
 */
import type { Clock, Logger, Timer } from "../../core/index.js";
import {
  type ConsolidationOptions,
  type ConsolidationPlan,
  clusterImbalance,
  type LeaseMigrationInfo,
  type MoveDetail,
  type PlannerInput,
  planConsolidation,
  planMakeRoom,
  planRebalance,
  planVictimMigrations,
  type RebalanceLevel,
  type RebalancePlan,
} from "../../migration/index.js";
import type { ClusterIndex, PlacementRequest } from "../../placement/index.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import type { RoomMaker, RoomPlan, VictimMover } from "../leases/migration-hooks.js";
import type { Migration } from "./model.js";
import type { ExecuteResult, MigrationOrchestrator } from "./orchestrator.js";
import { workloadProfileOf } from "./profile.js";

export type RebalanceSetting = "off" | RebalanceLevel;

/** `off` or `1`..`5` (a flag's value, already checked against those choices). */
export function rebalanceSetting(value: string): RebalanceSetting {
  const n = Number(value);
  return n >= 1 && n <= 5 && Number.isInteger(n) ? (n as RebalanceLevel) : "off";
}

export interface PlannerSettings {
  /** Make room at admission. Default true. */
  readonly makeRoom: boolean;
  /** The periodic rebalance's level; "off" runs none (the API still can). Default "off". */
  readonly rebalance: RebalanceSetting;
  /** Between periodic rebalance rounds. Default 5 min. */
  readonly rebalanceIntervalMs: number;
  /** Leases with less than this left are never moved by rebalance. Default 30 min. */
  readonly rebalanceMinRemainingMs: number;
}

export const DEFAULT_PLANNER_SETTINGS: PlannerSettings = {
  makeRoom: true,
  rebalance: "off",
  rebalanceIntervalMs: 300_000,
  rebalanceMinRemainingMs: 1_800_000,
};

/** The level a Rebalance call without one uses when the periodic rebalance is off. */
const MANUAL_REBALANCE_LEVEL: RebalanceLevel = 3;
/** Plans per make-room lease: the first, and one re-plan after a move aborted. */
const MAKE_ROOM_ATTEMPTS = 2;

export interface PlannersDeps {
  readonly clock: Clock;
  readonly index: ClusterIndex;
  readonly leases: LeaseManager;
  readonly orchestrator: MigrationOrchestrator;
  readonly logger: Logger;
  readonly settings?: Partial<PlannerSettings>;
}

export interface RebalanceRequest {
  readonly dryRun: boolean;
  /** Undefined: the cluster's level. */
  readonly level?: RebalanceLevel;
  /** Undefined: the orchestrator's cluster-wide limit. */
  readonly maxMoves?: number;
}

export interface RebalanceOutcome {
  readonly plan: RebalancePlan;
  /** Empty on a dry run. */
  readonly execution: ExecuteResult;
}

interface RoomInProgress {
  readonly attempt: number;
  readonly waiting: Set<string>;
}

export class MigrationPlanners {
  readonly settings: PlannerSettings;
  readonly #clock: Clock;
  readonly #index: ClusterIndex;
  readonly #leases: LeaseManager;
  readonly #orchestrator: MigrationOrchestrator;
  readonly #log: Logger;
  /** Make-room leases whose migrations are still running, by lease id. */
  readonly #rooms = new Map<string, RoomInProgress>();
  #offEnd: (() => void) | undefined;
  #offChange: (() => void) | undefined;
  #timer: Timer | undefined;
  #stopped = false;

  constructor(deps: PlannersDeps) {
    this.#clock = deps.clock;
    this.#index = deps.index;
    this.#leases = deps.leases;
    this.#orchestrator = deps.orchestrator;
    this.#log = deps.logger;
    this.settings = { ...DEFAULT_PLANNER_SETTINGS, ...deps.settings };
  }

  /** Hooks the lease manager and arms the periodic rebalance. */
  start(): void {
    this.#stopped = false;
    this.#leases.useMigrationHooks({
      ...(this.settings.makeRoom ? { makeRoom: this.roomMaker } : {}),
      victims: this.victimMover,
    });
    this.#offEnd = this.#orchestrator.onEnd((m) => this.#onMigrationEnd(m));
    // The periodic round is armed while leases run (an idle broker, or a finished simulation,
    // has no timer left): a lease becoming ACTIVE arms it.
    this.#offChange = this.#leases.onChange((c) => {
      if (c.lease.state === "ACTIVE") this.#armRebalance();
    });
    this.#armRebalance();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#offEnd?.();
    this.#offEnd = undefined;
    this.#offChange?.();
    this.#offChange = undefined;
    this.#leases.useMigrationHooks({});
  }

  /** What the planners read at `now`: the index, and what the lease manager knows of leases. */
  input(now: number): PlannerInput {
    return {
      index: this.#index,
      now,
      policy: this.#leases.policy,
      leaseInfo: (id) => this.#leaseInfo(id),
    };
  }

  #leaseInfo(leaseId: string): LeaseMigrationInfo | undefined {
    let lease: ReturnType<LeaseManager["get"]>["value"];
    try {
      lease = this.#leases.get(leaseId).value;
    } catch {
      return undefined;
    }
    const request = this.#leases.placementRequest(leaseId, { start: lease.start, end: lease.end });
    return {
      liveMigratable: lease.spec.migration.liveMigratable,
      profile: workloadProfileOf(lease, this.#orchestrator.limits),
      ...(request.constraints === undefined ? {} : { constraints: request.constraints }),
      ...(request.group === undefined ? {} : { group: request.group }),
      ...(request.policy === undefined ? {} : { policy: request.policy }),
    };
  }

  // ── make-room ──────────────────────────────────────────────────────────────────────────────

  readonly roomMaker: RoomMaker = {
    plan: (request: PlacementRequest, now: number): RoomPlan | undefined => {
      const plan = planMakeRoom(this.input(now), request);
      return plan.ok ? { hostId: plan.hostId, moves: plan.moves } : undefined;
    },
    run: (leaseId: string, plan: RoomPlan, attempt: number): void => {
      // Behind the lease manager's section that called it: the moves queue after its write.
      void this.#runRoom(leaseId, plan, attempt).catch((error) =>
        this.#log.error({ err: error, lease: leaseId }, "making room failed"),
      );
    },
  };

  async #runRoom(leaseId: string, plan: RoomPlan, attempt: number): Promise<void> {
    const why = `making room for lease ${leaseId}`;
    for (const m of plan.moves) {
      if (m.kind === "reservation") await this.#leases.replanReservation(m.leaseId, why);
    }
    const live = plan.moves.filter((m) => m.kind === "live");
    const result = await this.#orchestrator.execute(live, "MAKE_ROOM");
    for (const r of result.refused) {
      this.#log.warn({ lease: r.move.leaseId, err: r.error }, "make-room move refused");
    }
    const waiting = new Set(result.started.filter((m) => !this.#isOver(m.id)).map((m) => m.id));
    this.#log.info(
      { lease: leaseId, host: plan.hostId, migrations: [...waiting], attempt },
      "making room",
    );
    if (waiting.size === 0) await this.#settleRoom(leaseId, attempt);
    else this.#rooms.set(leaseId, { attempt, waiting });
  }

  #isOver(migrationId: string): boolean {
    const state = this.#orchestrator.get(migrationId).value.state;
    return state === "COMPLETED" || state === "ABORTED";
  }

  #onMigrationEnd(m: Migration): void {
    if (m.reason !== "MAKE_ROOM") return;
    for (const [leaseId, room] of this.#rooms) {
      if (!room.waiting.delete(m.id) || room.waiting.size > 0) continue;
      this.#rooms.delete(leaseId);
      void this.#settleRoom(leaseId, room.attempt).catch((error) =>
        this.#log.error({ err: error, lease: leaseId }, "admitting after make-room failed"),
      );
    }
  }

  async #settleRoom(leaseId: string, attempt: number): Promise<void> {
    const replan = await this.#leases.settleMadeRoom(leaseId, attempt < MAKE_ROOM_ATTEMPTS);
    if (replan !== undefined) await this.#runRoom(leaseId, replan, attempt + 1);
  }

  /** Make-room leases whose moves are still running. */
  makingRoom(): readonly string[] {
    return [...this.#rooms.keys()].sort();
  }

  // ── preemption by migration ────────────────────────────────────────────────────────────────

  readonly victimMover: VictimMover = {
    plan: (hostId, victimIds, now) =>
      victimIds.length === 0
        ? []
        : planVictimMigrations(this.input(now), hostId, victimIds).moves.filter(
            (m) => m.kind === "live",
          ),
    run: (moves: readonly MoveDetail[]) => {
      void this.#orchestrator
        .execute(moves, "PREEMPTION")
        .then((r) => {
          for (const x of r.refused) {
            this.#log.warn({ lease: x.move.leaseId, err: x.error }, "victim migration refused");
          }
        })
        .catch((error) => this.#log.error({ err: error }, "victim migrations failed"));
    },
  };

  // ── rebalance ──────────────────────────────────────────────────────────────────────────────

  /** The level a request without one gets. */
  get defaultRebalanceLevel(): RebalanceLevel {
    return this.settings.rebalance === "off" ? MANUAL_REBALANCE_LEVEL : this.settings.rebalance;
  }

  /**
   * One rebalance round: the plan and, unless a dry run, its moves started (reason REBALANCE).
   * A round plans within the orchestrator's limits (per host and cluster-wide), counting the
   * migrations already in flight.
   */
  async rebalance(request: RebalanceRequest): Promise<RebalanceOutcome> {
    const now = this.#clock.now();
    const limits = this.#orchestrator.limits;
    const free = Math.max(0, limits.maxInFlight - this.#orchestrator.unfinished().length);
    const plan = planRebalance(this.input(now), {
      level: request.level ?? this.defaultRebalanceLevel,
      maxMoves: Math.min(request.maxMoves ?? limits.maxInFlight, request.dryRun ? Infinity : free),
      maxMovesPerHost: Math.min(limits.maxOutgoingPerHost, limits.maxIncomingPerHost),
      minRemainingMs: this.settings.rebalanceMinRemainingMs,
    });
    if (request.dryRun || plan.moves.length === 0) {
      return { plan, execution: { started: [], refused: [] } };
    }
    const execution = await this.#orchestrator.execute(plan.moves, "REBALANCE");
    this.#log.info(
      {
        moves: execution.started.length,
        refused: execution.refused.length,
        before: plan.imbalanceBefore,
        after: plan.imbalanceAfter,
      },
      "rebalance round",
    );
    return { plan, execution };
  }

  /** The cluster's imbalance now (what rebalance reduces: `clusterImbalance`). */
  imbalance(): number {
    return clusterImbalance(this.input(this.#clock.now()));
  }

  #armRebalance(): void {
    if (this.settings.rebalance === "off" || this.#stopped || this.#timer !== undefined) return;
    if (this.#leases.list({ states: ["ACTIVE"], pageSize: 1 }).leases.length === 0) return;
    this.#timer = this.#clock.setTimer(this.settings.rebalanceIntervalMs, () => {
      this.#timer = undefined;
      // A round waits for the previous one's migrations: moves are planned on a settled cluster.
      const round =
        this.#orchestrator.unfinished().length > 0
          ? Promise.resolve()
          : this.rebalance({ dryRun: false }).then(() => undefined);
      void round
        .catch((error) => this.#log.error({ err: error }, "periodic rebalance failed"))
        .finally(() => this.#armRebalance());
    });
  }

  // ── consolidation (the autoscaler's scale-in) ─────────────────────────────────────────────

  /** The moves that empty the least loaded hosts, at `now` (default: the clock's). Commits nothing. */
  consolidation(options: ConsolidationOptions = {}, now = this.#clock.now()): ConsolidationPlan {
    return planConsolidation(this.input(now), options);
  }
}
