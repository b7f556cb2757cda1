/**
 * bench:packing — packing quality. A seeded synthetic VM workload over simulated time (Poisson
 * arrivals, log-uniform durations, reservations up to 7 days ahead, some early departures) is placed
 * online on a pool of identical hosts that opens a new, empty host only when nothing fits. For each
 * policy (binpack, spread, first fit) it reports the hosts needed — the peak over time of the number
 * of non-empty hosts — against the lower bound, the max over time of ⌈total demand / host
 * allocatable⌉ per resource. A fourth run is binpack with migrations: make-room before opening a
 * host, and periodic consolidation of the least-loaded hosts, beside the migrations it cost.
 *
 *   node dist/bench/packing.js [--seed N] [--leases N] [--days N] [--host-cores N] [--host-memory-gib N]
 *                              [--host-disk-gib N] [--early-departures PCT]
 *                              [--consolidate-every-min N] [--json]
 */

import { type MoveDetail, planConsolidation, planMakeRoom } from "../migration/index.js";
import {
  allocatable,
  ClusterIndex,
  createRng,
  type HostSpec,
  type PlacementRequest,
  place,
  placeFirstFit,
  type Resources,
} from "../placement/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, table } from "./lib/stats.js";
import { arrival, DAY, EndQueue, MEAN_TIME_IN_SYSTEM } from "./lib/workload.js";
import { type Interval, lowerBound, type PackingPolicy, peakNonEmptyHosts } from "./packing-lib.js";

const GIB = 1024;

const flags = parseFlags(
  "packing",
  {
    seed: { kind: "number", default: 1, help: "workload seed" },
    leases: { kind: "number", default: 2000, help: "live leases in steady state (arrival rate)" },
    days: { kind: "number", default: 28, help: "simulated days of arrivals" },
    "host-cores": { kind: "number", default: 64, help: "host shape: physical cores" },
    "host-memory-gib": { kind: "number", default: 512, help: "host shape: memory GiB" },
    "host-disk-gib": { kind: "number", default: 6000, help: "host shape: disk GiB" },
    "early-departures": {
      kind: "number",
      default: 10,
      help: "percent of leases that end (or are cancelled) before their window ends",
    },
    "consolidate-every-min": {
      kind: "number",
      default: 60,
      help: "with migrations: simulated minutes between consolidation runs (0 = never)",
    },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);

const T0 = Date.UTC(2030, 0, 1);
const capacity: Resources = {
  cpuMillis: flags["host-cores"] * 1000,
  memoryMib: flags["host-memory-gib"] * GIB,
  diskGib: flags["host-disk-gib"],
  gpus: 0,
};
const hostAlloc = allocatable(capacity);

interface Lease {
  readonly request: PlacementRequest;
  /** Arrival (decision) time. */
  readonly at: number;
  /** When the lease actually goes away (≤ window end; before the start = cancelled). */
  readonly departAt: number;
}

/**
 * The workload, generated once and replayed for every policy. bench/lib's arrival mix (70%
 * immediate, 20% reserved within 7 days, 10% flexible) and VM sizes; flexible leases are placed at
 * their earliest start (no slot search) so all policies see identical windows; GPUs are dropped (the
 * host shape has none).
 */
function workload(): Lease[] {
  const rng = createRng(flags.seed);
  const dt = MEAN_TIME_IN_SYSTEM / Math.max(1, flags.leases);
  const out: Lease[] = [];
  let t = T0;
  const endAt = T0 + flags.days * DAY;
  let seq = 0;
  for (;;) {
    t += -Math.log(1 - rng.next()) * dt;
    if (t >= endAt) break;
    const a = arrival(rng, Math.round(t), `lease-${seq++}`);
    const base = a.request;
    const window =
      a.kind === "flexible"
        ? { start: a.request.earliest, end: a.request.earliest + a.request.duration }
        : a.request.window;
    const request: PlacementRequest = {
      leaseId: base.leaseId ?? `lease-${seq}`,
      resources: { ...base.resources, gpus: 0 },
      window,
      priority: base.priority ?? 0,
      preemptible: base.preemptible ?? false,
    };
    let departAt = window.end;
    if (rng.next() * 100 < flags["early-departures"]) {
      // anywhere between the decision and the window's end: before the start is a cancellation
      departAt = Math.round(t + rng.next() * (window.end - t));
    }
    out.push({ request, at: Math.round(t), departAt });
  }
  return out;
}

interface RunResult {
  readonly policy: PackingPolicy;
  readonly hostsNeeded: number;
  readonly hostsOpened: number;
  readonly intervals: readonly Interval[];
  /** With migrations: live migrations, and moves of reservations (no workload runs yet). */
  readonly migrations: number;
  readonly reservationMoves: number;
  readonly makeRoomPlans: number;
  readonly consolidationRuns: number;
}

/**
 * With `migrate`: before opening a host, make-room (planMakeRoom) may open one by moving leases;
 * and every `consolidate-every-min` simulated minutes, consolidation (planConsolidation) empties
 * the least-loaded hosts. Moves are applied at once (a migration's duration is not simulated: a
 * lease counts on its destination from the move on).
 */
function simulate(leases: readonly Lease[], policy: PackingPolicy, migrate = false): RunResult {
  const index = new ClusterIndex();
  let opened = 0;
  const departures = new EndQueue();
  const live = new Map<string, { lease: Lease; hostId: string; since: number }>();
  const intervals: Interval[] = [];
  let migrations = 0;
  let reservationMoves = 0;
  let makeRoomPlans = 0;
  let consolidationRuns = 0;
  const openHost = (): string => {
    const spec: HostSpec = {
      id: `host-${String(opened++).padStart(5, "0")}`,
      capacity,
      labels: {},
      state: "READY",
    };
    index.addHost(spec);
    return spec.id;
  };
  const choose = (req: PlacementRequest): string | undefined => {
    if (policy === "firstfit") return placeFirstFit(index, req);
    const d = place(index, req);
    return d.ok ? d.hostId : undefined;
  };
  const record = (hostId: string, start: number, end: number, r: Resources) => {
    if (end > start) intervals.push({ hostId, start, end, resources: r });
  };
  const depart = (now: number) => {
    while (departures.peekTime() <= now) {
      const id = departures.pop();
      if (id === undefined) break;
      const l = live.get(id);
      if (l === undefined) continue;
      live.delete(id);
      index.release(id);
      const end = Math.min(l.lease.departAt, l.lease.request.window.end);
      record(l.hostId, l.since, end, l.lease.request.resources);
    }
  };
  /** Apply planned moves: the lease's hold is re-committed on its destination from `now` on. */
  const applyMoves = (moves: readonly MoveDetail[], now: number) => {
    for (const m of moves) {
      const l = live.get(m.leaseId);
      if (l === undefined) continue;
      const req = l.lease.request;
      index.release(m.leaseId);
      index.commit(m.leaseId, m.toHostId, m.window, req.resources, {
        priority: req.priority ?? 0,
        preemptible: req.preemptible ?? false,
      });
      if (m.kind === "live") {
        migrations++;
        record(l.hostId, l.since, now, req.resources);
        live.set(m.leaseId, { lease: l.lease, hostId: m.toHostId, since: now });
      } else {
        reservationMoves++;
        live.set(m.leaseId, { ...l, hostId: m.toHostId });
      }
    }
  };
  const policyFor = (req: PlacementRequest): PlacementRequest =>
    policy === "spread" ? { ...req, policy: "spread" } : req;
  const every = flags["consolidate-every-min"] * 60_000;
  let nextConsolidation = (leases[0]?.at ?? 0) + every;
  for (const lease of leases) {
    if (migrate && every > 0) {
      while (nextConsolidation <= lease.at) {
        depart(nextConsolidation);
        index.advanceTo(nextConsolidation);
        const plan = planConsolidation(
          { index, now: nextConsolidation },
          { maxLoad: 0.5, minRemainingMs: 0 },
        );
        applyMoves(plan.moves, nextConsolidation);
        consolidationRuns++;
        nextConsolidation += every;
      }
    }
    depart(lease.at);
    index.advanceTo(lease.at);
    const req = policyFor(lease.request);
    let hostId = choose(req);
    if (hostId === undefined && migrate) {
      const plan = planMakeRoom({ index, now: lease.at }, req, { maxMoves: 4 });
      if (plan.ok) {
        applyMoves(plan.moves, lease.at);
        makeRoomPlans++;
        hostId = plan.hostId;
      }
    }
    if (hostId === undefined) {
      hostId = openHost();
      // an empty host takes any VM of the workload; if not, the lease is dropped from every policy
      // alike (it would not fit the lower bound's host either)
      if (choose(req) !== hostId) throw new Error(`lease ${req.leaseId} does not fit a host`);
    }
    const id = req.leaseId as string;
    index.commit(id, hostId, req.window, req.resources, {
      priority: req.priority ?? 0,
      preemptible: req.preemptible ?? false,
    });
    live.set(id, { lease, hostId, since: req.window.start });
    departures.push(Math.min(lease.departAt, req.window.end), id);
  }
  depart(Number.POSITIVE_INFINITY);
  return {
    policy,
    hostsNeeded: peakNonEmptyHosts(intervals),
    hostsOpened: opened,
    intervals,
    migrations,
    reservationMoves,
    makeRoomPlans,
    consolidationRuns,
  };
}

const leases = workload();
const results = (["binpack", "spread", "firstfit"] as const).map((p) => simulate(leases, p));
const migrated = simulate(leases, "binpack", true);
const binpack = results[0] as RunResult;
// The lower bound depends only on the workload: every policy records the same intervals.
const lb = lowerBound(binpack.intervals, hostAlloc);
const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;
const ratio = (r: RunResult) => round(r.hostsNeeded / lb.hosts);
const byPolicy = (p: PackingPolicy) => results.find((r) => r.policy === p) as RunResult;

const figures = {
  seed: flags.seed,
  leases: leases.length,
  live_leases_target: flags.leases,
  days: flags.days,
  host_shape: {
    cores: flags["host-cores"],
    memory_gib: flags["host-memory-gib"],
    disk_gib: flags["host-disk-gib"],
  },
  host_allocatable: hostAlloc,
  lower_bound_hosts: lb.hosts,
  lower_bound_binding: lb.binding,
  lower_bound_per_resource: lb.perResource,
  lower_bound_at: new Date(lb.at).toISOString(),
  binpack_hosts: binpack.hostsNeeded,
  binpack_hosts_opened: binpack.hostsOpened,
  binpack_ratio: ratio(binpack),
  spread_hosts: byPolicy("spread").hostsNeeded,
  spread_hosts_opened: byPolicy("spread").hostsOpened,
  spread_ratio: ratio(byPolicy("spread")),
  firstfit_hosts: byPolicy("firstfit").hostsNeeded,
  firstfit_hosts_opened: byPolicy("firstfit").hostsOpened,
  firstfit_ratio: ratio(byPolicy("firstfit")),
  binpack_target_ratio: 1.1,
  binpack_target_met: ratio(binpack) <= 1.1,
  binpack_migrate_hosts: migrated.hostsNeeded,
  binpack_migrate_hosts_opened: migrated.hostsOpened,
  binpack_migrate_ratio: ratio(migrated),
  migrations: migrated.migrations,
  reservation_moves: migrated.reservationMoves,
  make_room_plans: migrated.makeRoomPlans,
  consolidation_runs: migrated.consolidationRuns,
  consolidate_every_min: flags["consolidate-every-min"],
  binpack_migrate_target_ratio: 1.05,
  binpack_migrate_target_met: ratio(migrated) <= 1.05,
};

if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const rows: string[][] = [
    [
      "policy",
      "hosts needed (peak non-empty)",
      "hosts opened",
      "ratio to lower bound",
      "migrations",
    ],
    ["lower bound", fmt(lb.hosts), "", "1.000", ""],
    ...results.map((r) => [
      r.policy,
      fmt(r.hostsNeeded),
      fmt(r.hostsOpened),
      ratio(r).toFixed(3),
      "",
    ]),
    [
      "binpack + migrations",
      fmt(migrated.hostsNeeded),
      fmt(migrated.hostsOpened),
      ratio(migrated).toFixed(3),
      `${fmt(migrated.migrations)} (+${fmt(migrated.reservationMoves)} reservation moves)`,
    ],
  ];
  process.stdout.write(
    `${fmt(leases.length)} leases over ${flags.days} days (seed ${flags.seed}), host ${flags["host-cores"]} cores / ${flags["host-memory-gib"]} GiB / ${flags["host-disk-gib"]} GiB disk\n` +
      `lower bound binds on ${lb.binding} (per resource: ${Object.entries(lb.perResource)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")})\n${table(rows)}\n` +
      `binpack target ≤ 1.10 × lower bound: ${figures.binpack_target_met ? "met" : "NOT met"}\n` +
      `binpack with migrations (make-room; consolidation every ${flags["consolidate-every-min"]} min) target ≤ 1.05 × lower bound: ${figures.binpack_migrate_target_met ? "met" : "NOT met"}\n`,
  );
}
