/**
 * DrainHost: cordon a host and live-migrate every lease away by a deadline.
 *
 * The plan picks a destination for each running, live-migratable lease in turn, each choice
 * seeing the ones before it (temporary holds, released before anything is written), so that the
 * moves do not all pile onto the same best host. The moves go to the orchestrator, which runs them
 * within its limits. Every running lease gets a drain notice (`stop_deadline`, a
 * PREEMPTION_NOTICE event): one still on the host at the deadline — not live-migratable, nowhere
 * to go, or its migration aborted — follows its on_host_failure policy then (RESTART: started
 * afresh on another host with room; otherwise stopped, FAILED). Reservations on the host are
 * moved to other hosts at once (or wait as PENDING).
 */
import { type Clock, InvalidArgumentError } from "../../core/index.js";
import type { PlannedMove } from "../../migration/index.js";
import type { ClusterIndex, Resources } from "../../placement/index.js";
import type { HostRegistry, HostView } from "../hosts/registry.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import type { MigrationOrchestrator } from "./orchestrator.js";
import { placeAway } from "./place-away.js";

export interface DrainRequest {
  readonly hostId: string;
  /** Unset: now + the orchestrator's drain timeout. */
  readonly deadline?: number;
  readonly reason?: string;
  readonly dryRun?: boolean;
}

export interface DrainMove extends PlannedMove {
  readonly resources: Resources;
  /** The migration started for it ("" on a dry run, or when it could not start). */
  readonly migrationId: string;
}

export interface DrainResult {
  readonly host: HostView;
  readonly deadline: number;
  /** In execution order. */
  readonly moves: readonly DrainMove[];
  /** Running leases that will follow their policy at the deadline, sorted. */
  readonly stopLeaseIds: readonly string[];
  /** Reservations moved (or that would move) off the host, sorted. */
  readonly replannedLeaseIds: readonly string[];
}

export interface DrainDeps {
  readonly clock: Clock;
  readonly index: ClusterIndex;
  readonly hosts: HostRegistry;
  readonly leases: LeaseManager;
  readonly orchestrator: MigrationOrchestrator;
}

const PLAN_HOLD = "drain-plan/";

export async function drainHost(deps: DrainDeps, request: DrainRequest): Promise<DrainResult> {
  const { clock, index, hosts, leases, orchestrator } = deps;
  const now = clock.now();
  const hostId = request.hostId;
  if (hostId === "") throw new InvalidArgumentError("id", "is required");
  hosts.view(hostId); // NotFoundError for an unknown host
  const deadline = request.deadline ?? now + orchestrator.limits.drainTimeoutMs;
  if (!(deadline > now)) throw new InvalidArgumentError("deadline", "must be in the future");

  const onHost = leases.onHost(hostId).map((item) => item.value);
  const running = onHost.filter((l) => l.state === "ACTIVE" || l.state === "STARTING");
  const reserved = onHost.filter((l) => l.state === "RESERVED").map((l) => l.id);

  // Destinations, each seeing the ones before it; nothing stays charged.
  index.advanceTo(now);
  const planned: DrainMove[] = [];
  const stop: string[] = [];
  const temporary: string[] = [];
  try {
    for (const lease of running) {
      if (lease.state !== "ACTIVE" || !lease.spec.migration.liveMigratable || lease.end <= now) {
        stop.push(lease.id);
        continue;
      }
      const request = leases.placementRequest(lease.id, { start: now, end: lease.end });
      const d = placeAway(index, request, leases.policy, hostId);
      if (!d.ok || d.hostId === hostId) {
        stop.push(lease.id);
        continue;
      }
      index.commit(PLAN_HOLD + lease.id, d.hostId, request.window, lease.spec.resources, {
        leaseId: lease.id,
        priority: lease.spec.priority,
        preemptible: lease.spec.preemptible,
      });
      temporary.push(PLAN_HOLD + lease.id);
      planned.push({
        leaseId: lease.id,
        fromHostId: hostId,
        toHostId: d.hostId,
        resources: lease.spec.resources,
        migrationId: "",
      });
    }
  } finally {
    for (const id of temporary) index.release(id);
  }

  if (request.dryRun === true) {
    const replanned = reserved.filter((id) => leases.previewReplan(id) !== "");
    return {
      host: hosts.view(hostId),
      deadline,
      moves: planned,
      stopLeaseIds: stop.sort(),
      replannedLeaseIds: replanned.sort(),
    };
  }

  const reason = request.reason ?? "";
  await hosts.drain(hostId, deadline, reason);
  // Nothing moves onto a draining host: migrations still on their way there are rolled back.
  for (const m of orchestrator.unfinished()) {
    if (m.toHostId === hostId)
      await orchestrator.abort(m.id, `destination ${hostId} drains`, { byRequest: false });
  }
  const why = `host ${hostId} drains${reason === "" ? "" : ` (${reason})`}: leaves by ${new Date(deadline).toISOString()}`;
  for (const lease of running) await leases.noticeDrain(lease.id, deadline, why);
  const result = await orchestrator.execute(planned, "DRAIN");
  const started = new Map(result.started.map((m) => [m.leaseId, m.id]));
  for (const { move } of result.refused) stop.push(move.leaseId);
  const replanned: string[] = [];
  for (const id of reserved) {
    await leases.replanReservation(id, `host ${hostId} drains`);
    replanned.push(id);
  }
  return {
    host: hosts.view(hostId),
    deadline,
    moves: planned
      .filter((m) => started.has(m.leaseId))
      .map((m) => ({ ...m, migrationId: started.get(m.leaseId) ?? "" })),
    stopLeaseIds: stop.sort(),
    replannedLeaseIds: replanned.sort(),
  };
}

/** How often a lease's drain migration is tried again after it aborted. */
const DRAIN_RETRIES = 2;

/**
 * Follows drains: a DRAIN migration that aborted (not on request) while its source still drains
 * and the deadline is ahead is tried again, to a destination the placer picks (at most
 * `DRAIN_RETRIES` times per lease). A lease left behind follows its policy at the deadline.
 */
export function followDrains(deps: DrainDeps): () => void {
  const { clock, hosts, leases, orchestrator } = deps;
  const retries = new Map<string, number>();
  return orchestrator.onEnd((m) => {
    if (m.reason !== "DRAIN") return;
    if (m.state === "COMPLETED" || m.abortedByRequest === true) {
      retries.delete(m.leaseId);
      return;
    }
    const tried = retries.get(m.leaseId) ?? 0;
    if (tried >= DRAIN_RETRIES || !hosts.has(m.fromHostId)) return;
    const host = hosts.view(m.fromHostId);
    if (host.state !== "DRAINING" || (host.drainDeadline ?? 0) <= clock.now()) return;
    const lease = leases.get(m.leaseId).value;
    if (lease.state !== "ACTIVE" || lease.hostId !== m.fromHostId) return;
    retries.set(m.leaseId, tried + 1);
    void orchestrator
      .migrate({ leaseId: m.leaseId, fromHostId: m.fromHostId, reason: "DRAIN" })
      .catch(() => retries.delete(m.leaseId));
  });
}
