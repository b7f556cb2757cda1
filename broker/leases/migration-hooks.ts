/**
 * The lease manager's hooks into live migration (set with `LeaseManager.useMigrationHooks`; the
 * broker's `MigrationPlanners` implement them). The lease manager only asks and hands over: the
 * planning is `migration/`'s, the moving the orchestrator's. Both hooks are called inside the lease
 * manager's exclusive section, so `plan` must be synchronous and `run` must not wait for the lease
 * manager (it starts work that queues behind the section).
 */
import type { MoveDetail } from "../../migration/index.js";
import type { PlacementRequest } from "../../placement/index.js";

/** Moves after which the lease fits on `hostId`. */
export interface RoomPlan {
  readonly hostId: string;
  readonly moves: readonly MoveDetail[];
}

export interface RoomMaker {
  /** The fewest moves that open a host for `request`, or undefined (commits nothing). */
  plan(request: PlacementRequest, now: number): RoomPlan | undefined;
  /**
   * Carries the plan out for `leaseId`, written PENDING; once the moves end, the maker calls
   * `LeaseManager.settleMadeRoom`. `attempt` counts plans for this lease (1 at admission).
   */
  run(leaseId: string, plan: RoomPlan, attempt: number): void;
}

export interface VictimMover {
  /** Live migrations that move preemption victims (running on `hostId`) elsewhere. */
  plan(hostId: string, victimIds: readonly string[], now: number): readonly MoveDetail[];
  /** Starts them (reason PREEMPTION); victims that do not move follow their notice. */
  run(moves: readonly MoveDetail[]): void;
}

export interface MigrationHooks {
  readonly makeRoom?: RoomMaker;
  readonly victims?: VictimMover;
}

/** The status message of a lease waiting for room to be made. */
export function makingRoomMessage(plan: RoomPlan): string {
  const n = plan.moves.length;
  const list = plan.moves.map((m) => `${m.leaseId} ${m.fromHostId}→${m.toHostId}`).join(", ");
  return `making room: ${n} migration${n === 1 ? "" : "s"} to open ${plan.hostId} (${list})`;
}
