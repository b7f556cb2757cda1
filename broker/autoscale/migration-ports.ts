/**
 * The real migration ports of the autoscaler: consolidation from the broker's planners, and a
 * drainer that runs the planned moves through the orchestrator (reason CONSOLIDATE) and waits for
 * them to end. Reservations on the host are placed elsewhere (no workload runs yet).
 */
import type { PlannedMove } from "../../migration/index.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import { HOLDING_STATES } from "../leases/transitions.js";
import type { MigrationOrchestrator, MigrationPlanners } from "../migrations/index.js";
import type { ConsolidationPlanner, DrainOutcome, HostDrainer } from "./ports.js";

export function plannersConsolidation(
  planners: Pick<MigrationPlanners, "consolidation">,
): ConsolidationPlanner {
  return {
    plan(_index, now) {
      const plan = planners.consolidation({}, now);
      return { hostIds: plan.emptiedHosts, moves: plan.moves };
    },
  };
}

export interface OrchestratorDrainerDeps {
  readonly orchestrator: Pick<MigrationOrchestrator, "execute" | "onEnd">;
  readonly leases: Pick<LeaseManager, "get" | "onHost" | "replanReservation">;
}

export function orchestratorDrainer(deps: OrchestratorDrainerDeps): HostDrainer {
  const { orchestrator, leases } = deps;
  return {
    async drain(hostId: string, moves: readonly PlannedMove[]): Promise<DrainOutcome> {
      const why = new Map<string, string>();
      const live: PlannedMove[] = [];
      for (const move of moves) {
        if (move.fromHostId !== hostId) continue;
        if (leases.get(move.leaseId).value.state === "RESERVED") {
          const now = await leases.replanReservation(move.leaseId, `host ${hostId} scales in`);
          if (now === hostId) why.set(move.leaseId, "no other host for the reservation");
        } else {
          live.push(move);
        }
      }
      // Listen before starting: a migration may end before `execute` returns.
      const ended = new Map<string, boolean>();
      let wake: (() => void) | undefined;
      const off = orchestrator.onEnd((m) => {
        ended.set(m.id, m.state === "COMPLETED");
        if (m.state !== "COMPLETED") why.set(m.leaseId, `migration ${m.id}: ${m.abortReason}`);
        wake?.();
      });
      try {
        const result = await orchestrator.execute(live, "CONSOLIDATE");
        for (const r of result.refused) why.set(r.move.leaseId, r.error.message);
        const ids = result.started.map((m) => m.id);
        while (!ids.every((id) => ended.has(id))) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        wake = undefined;
        off();
      }
      const stuck = leases
        .onHost(hostId)
        .map((item) => item.value)
        .filter((lease) => HOLDING_STATES.has(lease.state) || lease.state === "SUSPENDED")
        .map((lease) => ({
          leaseId: lease.id,
          reason: why.get(lease.id) ?? `not planned to move (${lease.state})`,
        }));
      return { hostId, empty: stuck.length === 0, stuck };
    },
  };
}
