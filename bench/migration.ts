/**
 * bench:migration — planning time of the migration planners (pure) on a cluster of 10,000 hosts
 * with ~100,000 leases in steady state: a rebalance round, and make-room for leases that fit no
 * single host on the same cluster fragmented (every host at least half full). One `place` decision on the same cluster is the baseline the ratios are against.
 *
 *   node dist/bench/migration.js [--seed N] [--hosts N] [--leases N] [--reps N] [--make-room N] [--json]
 */

import { performance } from "node:perf_hooks";
import {
  type MakeRoomPlan,
  planMakeRoom,
  planRebalance,
  type RebalanceLevel,
  type RebalancePlan,
} from "../migration/index.js";
import { createRng, type PlacementRequest, place, type Resources } from "../placement/index.js";
import { evacuate } from "./evacuation.js";
import { parseFlags } from "./lib/args.js";
import { steadyStateCluster } from "./lib/cluster.js";
import { fmt, median, table } from "./lib/stats.js";
import { HOUR, vmSize } from "./lib/workload.js";

const flags = parseFlags(
  "migration",
  {
    seed: { kind: "number", default: 1, help: "workload seed" },
    hosts: { kind: "number", default: 10_000, help: "hosts in the cluster" },
    leases: { kind: "number", default: 100_000, help: "live leases in steady state" },
    reps: { kind: "number", default: 5, help: "repetitions of each plan (medians are reported)" },
    "make-room": { kind: "number", default: 20, help: "make-room requests planned" },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);

const T0 = Date.UTC(2030, 0, 1);
const built0 = performance.now();
const { index, now, leases } = steadyStateCluster({
  seed: flags.seed,
  hosts: flags.hosts,
  leases: flags.leases,
  t0: T0,
});
const buildS = (performance.now() - built0) / 1000;
const input = { index, now };
const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

// ---- baseline: single placement decisions on the same cluster ---------------------------------
const rng = createRng(flags.seed ^ 0xbe7c);
const placeTimes: number[] = [];
for (let i = 0; i < 200; i++) {
  const req: PlacementRequest = {
    leaseId: `probe-${i}`,
    resources: vmSize(rng),
    window: { start: now, end: now + 24 * HOUR },
  };
  const t = performance.now();
  place(index, req);
  placeTimes.push(performance.now() - t);
}
const placeMs = median(placeTimes);

// ---- rebalance ---------------------------------------------------------------------------------
function timeRebalance(level: RebalanceLevel): { ms: number; plan: RebalancePlan } {
  const times: number[] = [];
  let plan: RebalancePlan | undefined;
  for (let r = 0; r < flags.reps; r++) {
    const t = performance.now();
    plan = planRebalance(input, { level });
    times.push(performance.now() - t);
  }
  return { ms: median(times), plan: plan as RebalancePlan };
}
const rebalance3 = timeRebalance(3);
const rebalance5 = timeRebalance(5);

// ---- make-room ---------------------------------------------------------------------------------
/**
 * Binpack leaves hosts empty, and on an empty host everything fits: make-room matters on a
 * fragmented cluster. Fill every READY host to at least half its memory over the next 7 days with
 * long-running leases of the workload's sizes, so no host has more than half its memory free.
 */
function fragment(): number {
  const r = createRng(flags.seed ^ 0xf1a9);
  const span = { start: now, end: now + 7 * 24 * HOUR };
  let added = 0;
  for (const h of index.hosts()) {
    if (h.state !== "READY") continue;
    const half = h.allocatable.memoryMib / 2;
    for (let tries = 0; tries < 64 && index.freeOver(h.id, span).memoryMib > half; tries++) {
      const size = { ...vmSize(r), gpus: 0 };
      const free = index.freeOver(h.id, span);
      if (size.memoryMib > free.memoryMib || size.cpuMillis > free.cpuMillis) continue;
      if (size.diskGib > free.diskGib) continue;
      index.commit(`filler-${added}`, h.id, { start: now - HOUR, end: span.end }, size, {
        priority: 0,
        preemptible: false,
      });
      added++;
    }
  }
  return added;
}
const fillers = fragment();
/**
 * Requests that fit no single host: for a window of 1–24 h, a VM whose memory exceeds the most any
 * READY host has free over the window (cpu from the workload's sizes), up to a host's allocatable.
 */
function makeRoomRequests(count: number): PlacementRequest[] {
  const out: PlacementRequest[] = [];
  const r = createRng(flags.seed ^ 0x3007);
  const hosts = index.hosts().filter((h) => h.state === "READY" && h.spec.capacity.gpus === 0);
  for (let i = 0; out.length < count && i < count * 4; i++) {
    const window = { start: now, end: now + r.int(1, 24) * HOUR };
    let maxFree = 0;
    let maxAlloc = 0;
    for (const h of hosts) {
      maxFree = Math.max(maxFree, index.freeOver(h.id, window).memoryMib);
      maxAlloc = Math.max(maxAlloc, h.allocatable.memoryMib);
    }
    const want = maxFree + 1024 * r.int(1, 32);
    if (want > maxAlloc) continue;
    const size: Resources = { ...vmSize(r), memoryMib: want, gpus: 0 };
    out.push({ leaseId: `room-${i}`, resources: size, window });
  }
  return out;
}
const requests = makeRoomRequests(flags["make-room"]);
const makeRoomTimes: number[] = [];
const plans: MakeRoomPlan[] = [];
for (const req of requests) {
  const t = performance.now();
  plans.push(planMakeRoom(input, req));
  makeRoomTimes.push(performance.now() - t);
}
const planned = plans.filter((p) => p.ok);
const movesPerPlan = planned.map((p) => (p.ok ? p.moves.length : 0));
const makeRoomMs = median(makeRoomTimes);
const makeRoomMax = makeRoomTimes.reduce((m, v) => Math.max(m, v), 0);

// ---- evacuation (orchestrator; added by the orchestrator's branch) ----------------------------
// EVACUATION SECTION: evacuate a host holding 50 leases in a 200-host cluster through the broker's
// drain and orchestrator on a virtual clock (bench/evacuation.ts, also `npm run bench:evacuation`):
// total evacuation time against the limits (2 out / 2 in per host, 8 in the cluster), and the
// lower bound no schedule can beat (Σ migration times / the outgoing limit).
const evac = await evacuate({ seed: flags.seed });
const evacuation = {
  evacuation_hosts: evac.hosts,
  evacuation_leases: evac.leases,
  evacuation_s: round(evac.evacuation_s, 1),
  evacuation_lower_bound_s: round(evac.lower_bound_s, 1),
  evacuation_to_lower_bound_ratio: round(evac.evacuation_s / evac.lower_bound_s, 2),
  evacuation_migrations: evac.migrations,
  evacuation_aborted: evac.aborted,
  evacuation_max_concurrent: evac.max_concurrent,
  evacuation_mean_migration_s: round(evac.mean_migration_s, 1),
  evacuation_wall_ms: round(evac.wall_ms, 0),
};
// END EVACUATION SECTION

const figures = {
  seed: flags.seed,
  hosts: flags.hosts,
  leases,
  build_s: round(buildS, 1),
  place_ms: round(placeMs),
  rebalance_plan_ms: round(rebalance3.ms),
  rebalance_level: 3,
  rebalance_moves: rebalance3.plan.moves.length,
  rebalance_imbalance_before: round(rebalance3.plan.imbalanceBefore, 5),
  rebalance_imbalance_after: round(rebalance3.plan.imbalanceAfter, 5),
  rebalance_stop: rebalance3.plan.stop,
  rebalance_level5_plan_ms: round(rebalance5.ms),
  rebalance_level5_moves: rebalance5.plan.moves.length,
  rebalance_level5_imbalance_after: round(rebalance5.plan.imbalanceAfter, 5),
  rebalance_to_place_ratio: round(rebalance3.ms / placeMs, 1),
  rebalance_target_ms: 1000,
  rebalance_target_met: rebalance3.ms <= 1000 && rebalance5.ms <= 1000,
  make_room_filler_leases: fillers,
  make_room_requests: requests.length,
  make_room_planned: planned.length,
  make_room_moves_median: movesPerPlan.length === 0 ? 0 : median(movesPerPlan),
  make_room_plan_ms: round(makeRoomMs),
  make_room_plan_max_ms: round(makeRoomMax),
  make_room_to_place_ratio: round(makeRoomMs / placeMs, 1),
  make_room_target_ms: 100,
  make_room_target_met: makeRoomMs <= 100,
  ...evacuation,
};

if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const rows: string[][] = [
    ["plan", "median ms", "× place", "result"],
    ["place (baseline)", placeMs.toFixed(3), "1.0", ""],
    [
      "rebalance, level 3",
      rebalance3.ms.toFixed(1),
      figures.rebalance_to_place_ratio.toFixed(1),
      `${rebalance3.plan.moves.length} moves, imbalance ${figures.rebalance_imbalance_before} → ${figures.rebalance_imbalance_after} (${rebalance3.plan.stop})`,
    ],
    [
      "rebalance, level 5",
      rebalance5.ms.toFixed(1),
      round(rebalance5.ms / placeMs, 1).toFixed(1),
      `${rebalance5.plan.moves.length} moves, imbalance → ${figures.rebalance_level5_imbalance_after}`,
    ],
    [
      "make-room",
      makeRoomMs.toFixed(1),
      figures.make_room_to_place_ratio.toFixed(1),
      `${planned.length}/${requests.length} planned, median ${figures.make_room_moves_median} moves, max ${makeRoomMax.toFixed(1)} ms`,
    ],
  ];
  const evacRows: string[][] = [
    ["evacuation", "virtual s", "lower bound s", "result"],
    [
      `${evac.leases} leases off 1 of ${evac.hosts} hosts`,
      evac.evacuation_s.toFixed(1),
      evac.lower_bound_s.toFixed(1),
      `${evac.migrations} done, ${evac.aborted} aborted, ≤ ${evac.max_concurrent} at once, mean move ${evac.mean_migration_s.toFixed(1)} s, ${Math.round(evac.wall_ms)} ms wall`,
    ],
  ];
  process.stdout.write(
    `${fmt(flags.hosts)} hosts, ${fmt(leases)} leases (built in ${buildS.toFixed(1)} s)\n${table(rows)}\n` +
      `targets: rebalance ≤ 1000 ms ${figures.rebalance_target_met ? "met" : "NOT met"}, make-room ≤ 100 ms ${figures.make_room_target_met ? "met" : "NOT met"}\n` +
      `${table(evacRows)}\n`,
  );
}
