/**
 * Consolidation (scale-in): empty the least-loaded hosts by moving their leases onto the others.
 * Hosts are taken from the least loaded (weighted utilisation at its peak over the leases' remaining
 * windows); a host is emptied only if every one of its leases finds a destination (else its moves
 * are undone and it stays), and a host that received leases is never emptied later (no chains).
 */

import { evacuateHolds } from "./evacuate.js";
import { type MoveDetail, type PlannerInput, WhatIf } from "./planner-input.js";
import { weightedUtilisation } from "./utilisation.js";

export interface ConsolidationOptions {
  /** Empty at most this many hosts. Default: as many as possible. */
  readonly maxHosts?: number;
  /** At most this many moves in all. Default: no limit. */
  readonly maxMoves?: number;
  /** Leases with less than this left (ms) keep their host from being emptied. Default 0. */
  readonly minRemainingMs?: number;
  /** Hosts not to empty (e.g. a minimum pool the autoscaler keeps). */
  readonly keep?: ReadonlySet<string>;
  /** Only try hosts at most this loaded (weighted utilisation, 0–1). Default 1. */
  readonly maxLoad?: number;
}

export interface ConsolidationPlan {
  /** Hosts with no lease once the moves are done (hosts already empty first), in plan order. */
  readonly emptiedHosts: readonly string[];
  readonly moves: readonly MoveDetail[];
}

export function planConsolidation(
  input: PlannerInput,
  options: ConsolidationOptions = {},
): ConsolidationPlan {
  const { index, now } = input;
  const maxHosts = options.maxHosts ?? Number.POSITIVE_INFINITY;
  const maxMoves = options.maxMoves ?? Number.POSITIVE_INFINITY;
  const maxLoad = options.maxLoad ?? 1;
  const ready = index.hosts().filter((h) => h.state === "READY" && !options.keep?.has(h.id));
  const load = new Map<string, number>();
  const live = new Map<string, number>();
  for (const h of ready) {
    const holds = index.holdsOn(h.id).filter((x) => x.end > now);
    live.set(h.id, holds.length);
    const until = holds.reduce((m, x) => Math.max(m, x.end), now + 1);
    load.set(h.id, weightedUtilisation(h, index.peakOver(h.id, { start: now, end: until })));
  }
  const order = [...ready].sort(
    (a, b) =>
      (live.get(a.id) ?? 0) - (live.get(b.id) ?? 0) ||
      (load.get(a.id) ?? 0) - (load.get(b.id) ?? 0) ||
      (a.id < b.id ? -1 : 1),
  );
  const emptied: string[] = [];
  const leaving = new Set<string>();
  const receivers = new Set<string>();
  const moves: MoveDetail[] = [];
  const whatIf = new WhatIf(index);
  try {
    for (const host of order) {
      if (emptied.length >= maxHosts) break;
      if (receivers.has(host.id) || (load.get(host.id) ?? 0) > maxLoad) continue;
      if ((live.get(host.id) ?? 0) === 0) {
        emptied.push(host.id);
        leaving.add(host.id);
        continue;
      }
      const holds = index.holdsOn(host.id).filter((x) => x.end > now);
      if (moves.length + holds.length > maxMoves) continue;
      leaving.add(host.id);
      const before = whatIf.size;
      const plan = evacuateHolds(input, holds, leaving, whatIf, { ...options, allOrNothing: true });
      if (plan.unmovable.length > 0) {
        whatIf.undoLast(whatIf.size - before);
        leaving.delete(host.id);
        continue;
      }
      emptied.push(host.id);
      moves.push(...plan.moves);
      for (const m of plan.moves) receivers.add(m.toHostId);
    }
  } finally {
    whatIf.undo();
  }
  return { emptiedHosts: emptied, moves };
}
