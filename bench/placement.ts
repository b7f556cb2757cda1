/**
 * bench:placement — decisions per second and decision latency of the indexed placer on a cluster of
 * 10,000 hosts with ~100,000 live leases in steady state (leases end as the simulated clock moves,
 * new ones arrive), against the naive baseline (linear scan, first fit) on the same cluster states.
 *
 *   node dist/bench/placement.js [--seed N] [--hosts N] [--leases N] [--decisions N] [--reps N] [--json]
 *
 * Then the same with arrivals in hard anti-affinity groups of 10 (`--gang-reps`), and with a label
 * selector on every lease (`--labels-reps`). The measured arrivals come after `--settle-hours` of
 * simulated arrivals placed after the warm-up (see `settleArrivals`).
 */

import { performance } from "node:perf_hooks";
import {
  ClusterIndex,
  createRng,
  findEarliestSlot,
  type PlacementDecision,
  type PlacementRequest,
  place,
  placeFirstFit,
} from "../placement/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, heapAfterGc, median, percentile, table } from "./lib/stats.js";
import {
  type Arrival,
  antiAffinityGroup,
  arrival,
  EndQueue,
  LABEL_SEED_SALT,
  MEAN_TIME_IN_SYSTEM,
  makeHosts,
  PLACEMENT_WORKLOAD_FLAGS,
  settleArrivals,
  survivorsAt,
  withLabelConstraint,
} from "./lib/workload.js";

const flags = parseFlags(
  "placement",
  {
    ...PLACEMENT_WORKLOAD_FLAGS,
    decisions: { kind: "number", default: 5_000, help: "decisions per repetition" },
    reps: { kind: "number", default: 3, help: "repetitions (medians are reported)" },
    "gang-reps": { kind: "number", default: 2, help: "repetitions of the anti-affinity run" },
    "labels-reps": {
      kind: "number",
      default: 1,
      help: "repetitions of the run where every lease has a label selector",
    },
    "baseline-every": {
      kind: "number",
      default: 25,
      help: "time the first-fit baseline on every Nth decision",
    },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);

const T0 = Date.UTC(2030, 0, 1);
const rng = createRng(flags.seed);
// The bounds' time ring must reach as far as leases do: reservations start up to 7 days ahead and
// run up to 7 days, so 16 days of hourly buckets (the default, 256 h, would leave the far ends of
// long reservations to the looser all-time bound).
const index = new ClusterIndex({ horizonBuckets: flags["horizon-hours"] });
for (const spec of makeHosts(rng, flags.hosts)) index.addHost(spec);
const ends = new EndQueue();
const dt = MEAN_TIME_IN_SYSTEM / Math.max(1, flags.leases);
let seq = 0;
let now = T0;

function commitDecision(
  d: PlacementDecision,
  req: {
    leaseId?: string;
    resources: PlacementRequest["resources"];
    priority?: number;
    preemptible?: boolean;
    group?: PlacementRequest["group"];
  },
): boolean {
  if (!d.ok) return false;
  const id = req.leaseId ?? `lease-${seq++}`;
  index.commit(id, d.hostId, { start: d.start, end: d.end }, req.resources, {
    priority: req.priority ?? 0,
    preemptible: req.preemptible ?? false,
    ...(req.group === undefined ? {} : { group: req.group.name }),
  });
  ends.push(d.end, id);
  return true;
}

function decide(a: Arrival): PlacementDecision {
  return a.kind === "flexible" ? findEarliestSlot(index, a.request) : place(index, a.request);
}

function releaseEnded(): void {
  while (ends.peekTime() <= now) {
    const id = ends.pop();
    if (id !== undefined) index.release(id);
  }
}

// ---- warm-up: the population alive at T0 of a stationary arrival process --------------------
// Arrivals over the past 15 days; those still holding capacity at T0 are placed in arrival order.
{
  const past = survivorsAt(createRng(flags.seed ^ 0x5eed), T0, dt, () => `warm-${seq++}`);
  for (const { at, a } of past) {
    now = at;
    index.advanceTo(now);
    const d = decide(a);
    if (d.ok && d.end > T0) commitDecision(d, a.request);
  }
  now = T0;
  index.advanceTo(now);
  releaseEnded();
}

// ---- steady state ---------------------------------------------------------------------------
/** Per window kind: decision latencies and hosts evaluated, split by outcome. */
interface KindFigures {
  latencies: number[];
  noFitLatencies: number[];
  evaluated: number;
}
const byKind = new Map<string, KindFigures>();
function kindFigures(kind: string): KindFigures {
  let k = byKind.get(kind);
  if (k === undefined) {
    k = { latencies: [], noFitLatencies: [], evaluated: 0 };
    byKind.set(kind, k);
  }
  return k;
}

interface RunFigures {
  perSecond: number;
  latencies: number[];
  noFit: number;
  evaluated: number;
  baselineTime: number;
  baselineCount: number;
  /** Time spent moving the clock and releasing ended leases, and committing decisions (ms). */
  advanceTime: number;
  commitTime: number;
  /** Of `advanceTime`: the clock's move alone (`advanceTo`), and the simulated time it covered (ms). */
  clockTime: number;
  simulatedMs: number;
  /** Per-second rate of decisions, commits and releases alone (the clock's move left out). */
  perSecondWithoutClock: number;
}

/**
 * `next` makes a batch of `batchSize` arrivals at the present: the clock moves first, so an
 * immediate lease starts at the index's present, as the broker submits it.
 */
function run(
  decisions: number,
  next: () => Arrival[],
  batchSize: number,
  track: boolean,
  baseline = true,
): RunFigures {
  const latencies: number[] = [];
  let noFit = 0;
  let evaluated = 0;
  let baselineTime = 0;
  let baselineCount = 0;
  let total = 0;
  let count = 0;
  let advanceTime = 0;
  let commitTime = 0;
  let clockTime = 0;
  const startedAt = now;
  while (count < decisions) {
    const t0 = performance.now();
    now += dt * batchSize;
    index.advanceTo(now);
    const tc = performance.now();
    releaseEnded();
    const t1 = performance.now() - t0;
    total += t1;
    advanceTime += t1;
    clockTime += tc - t0;
    const batch = next();
    for (const a of batch) {
      if (baseline && flags["baseline-every"] > 0 && count % flags["baseline-every"] === 0) {
        const req: PlacementRequest =
          a.kind === "flexible"
            ? {
                ...a.request,
                window: { start: a.request.earliest, end: a.request.earliest + a.request.duration },
              }
            : a.request;
        const b0 = performance.now();
        placeFirstFit(index, req);
        baselineTime += performance.now() - b0;
        baselineCount++;
      }
      const s = performance.now();
      const d = decide(a);
      const e = performance.now();
      latencies.push(e - s);
      if (d.ok) evaluated += d.explanation.hostsEvaluated;
      if (track) {
        const kf = kindFigures(a.kind);
        if (d.ok) {
          kf.latencies.push(e - s);
          kf.evaluated += d.explanation.hostsEvaluated;
        } else kf.noFitLatencies.push(e - s);
      }
      if (!commitDecision(d, a.request)) noFit++;
      const done = performance.now();
      commitTime += done - e;
      total += done - s;
      count++;
    }
  }
  return {
    perSecond: (count / total) * 1000,
    latencies,
    noFit,
    evaluated,
    baselineTime,
    baselineCount,
    advanceTime,
    commitTime,
    clockTime,
    simulatedMs: now - startedAt,
    perSecondWithoutClock: (count / (total - clockTime)) * 1000,
  };
}

/**
 * The bench compresses time: each decision moves the simulated clock by `dt` (~1.2 s at 100k
 * leases), so the clock's pass over every host at each bucket boundary falls on every ~3,000
 * decisions. A broker placing at rate R in real time pays that pass once per real hour: R is
 * what is left of a second after the clock's share (ms per hour / 3,600), at the rate of
 * decisions, commits and releases alone.
 */
function realTimeRate(r: RunFigures): number {
  const clockMsPerS = r.clockTime / (r.simulatedMs / 3_600_000) / 3600;
  return r.perSecondWithoutClock * (1 - clockMsPerS / 1000);
}

const single = () => [arrival(rng, now, `lease-${seq++}`)];
let gang = 0;
const gangOf10 = (): Arrival[] => antiAffinityGroup(rng, now, `gang-${gang++}`);
// selectors from a stream of their own (see `withLabelConstraint`)
const labelRng = createRng(flags.seed ^ LABEL_SEED_SALT);
const labelled = (): Arrival[] => withLabelConstraint(labelRng, single());

// ---- settling: arrivals placed, not measured (see `settleArrivals`) ---------------------------
const settled = settleArrivals(flags["settle-hours"], dt);
run(settled, single, 1, false, false);
const warmLive = index.holdCount;
const heap = heapAfterGc();

const reps: RunFigures[] = [];
for (let r = 0; r < flags.reps; r++) reps.push(run(flags.decisions, single, 1, true));
const gangReps: RunFigures[] = [];
for (let r = 0; r < flags["gang-reps"]; r++)
  gangReps.push(run(Math.max(10, Math.floor(flags.decisions / 2)), gangOf10, 10, false));
const labelReps: RunFigures[] = [];
for (let r = 0; r < flags["labels-reps"]; r++)
  labelReps.push(run(Math.max(10, Math.floor(flags.decisions / 2)), labelled, 1, false));

const all = reps.flatMap((r) => r.latencies).sort((a, b) => a - b);
const gangAll = gangReps.flatMap((r) => r.latencies).sort((a, b) => a - b);
const labelAll = labelReps.flatMap((r) => r.latencies).sort((a, b) => a - b);
const decisionsTotal = all.length;
const baselineTime = reps.reduce((s, r) => s + r.baselineTime, 0);
const baselineCount = reps.reduce((s, r) => s + r.baselineCount, 0);
const baselinePerSecond = baselineCount > 0 ? (baselineCount / baselineTime) * 1000 : Number.NaN;
const decisionOnlyPerSecond = (decisionsTotal / all.reduce((s, v) => s + v, 0)) * 1000;
const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;
const mean = (xs: readonly number[]) =>
  xs.length === 0 ? 0 : xs.reduce((acc, v) => acc + v, 0) / xs.length;
const kinds = Object.fromEntries(
  ["immediate", "reserved", "flexible"].map((kind) => {
    const k = kindFigures(kind);
    const fitSorted = [...k.latencies].sort((x, y) => x - y);
    const noFitSorted = [...k.noFitLatencies].sort((x, y) => x - y);
    return [
      kind,
      {
        fits: k.latencies.length,
        no_fits: k.noFitLatencies.length,
        fit_mean_ms: round(mean(k.latencies), 4),
        fit_p99_ms: round(percentile(fitSorted, 99), 4),
        no_fit_mean_ms: round(mean(k.noFitLatencies), 4),
        no_fit_max_ms: round(percentile(noFitSorted, 100), 4),
        hosts_evaluated_mean: round(k.evaluated / Math.max(1, k.latencies.length), 1),
      },
    ];
  }),
);

const figures = {
  seed: flags.seed,
  hosts: flags.hosts,
  live_leases_target: flags.leases,
  settled_arrivals: settled,
  live_leases_at_start: warmLive,
  live_leases_at_end: index.holdCount,
  decisions: decisionsTotal,
  reps: flags.reps,
  placements_per_s: Math.round(median(reps.map((r) => r.perSecond))),
  placements_per_s_reps: reps.map((r) => Math.round(r.perSecond)),
  decisions_only_per_s: Math.round(decisionOnlyPerSecond),
  commit_us_mean: round((reps.reduce((s, r) => s + r.commitTime, 0) / decisionsTotal) * 1000, 2),
  advance_release_us_mean: round(
    (reps.reduce((s, r) => s + r.advanceTime, 0) / decisionsTotal) * 1000,
    2,
  ),
  advance_us_mean: round((reps.reduce((s, r) => s + r.clockTime, 0) / decisionsTotal) * 1000, 2),
  release_us_mean: round(
    (reps.reduce((s, r) => s + r.advanceTime - r.clockTime, 0) / decisionsTotal) * 1000,
    2,
  ),
  simulated_s_per_decision: round(dt / 1000, 3),
  clock_ms_per_simulated_hour: round(
    reps.reduce((s, r) => s + r.clockTime, 0) /
      (reps.reduce((s, r) => s + r.simulatedMs, 0) / 3_600_000),
    1,
  ),
  placements_per_s_real_time_clock: Math.round(median(reps.map(realTimeRate))),
  p50_ms: round(percentile(all, 50), 4),
  p99_ms: round(percentile(all, 99), 4),
  max_ms: round(percentile(all, 100), 4),
  no_fit_rate: round(reps.reduce((s, r) => s + r.noFit, 0) / decisionsTotal, 5),
  hosts_evaluated_mean: round(reps.reduce((s, r) => s + r.evaluated, 0) / decisionsTotal, 1),
  heap_mib: heap.heapMib,
  array_buffers_mib: heap.arrayBuffersMib,
  rss_mib: heap.rssMib,
  baseline_placements_per_s: Math.round(baselinePerSecond),
  baseline_samples: baselineCount,
  speedup_vs_baseline: round(decisionOnlyPerSecond / baselinePerSecond, 1),
  anti_affinity_placements_per_s: Math.round(median(gangReps.map((r) => r.perSecond))),
  anti_affinity_p99_ms: round(percentile(gangAll, 99), 4),
  by_kind: kinds,
  anti_affinity_no_fit_rate: round(
    gangReps.reduce((s, r) => s + r.noFit, 0) / Math.max(1, gangAll.length),
    5,
  ),
  labels_placements_per_s: Math.round(median(labelReps.map((r) => r.perSecond))),
  labels_p99_ms: round(percentile(labelAll, 99), 4),
  labels_no_fit_rate: round(
    labelReps.reduce((s, r) => s + r.noFit, 0) / Math.max(1, labelAll.length),
    5,
  ),
};

if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const rows: string[][] = [
    ["figure", "value"],
    ["hosts", fmt(figures.hosts)],
    [
      "live leases (start / end)",
      `${fmt(figures.live_leases_at_start)} / ${fmt(figures.live_leases_at_end)}`,
    ],
    ["arrivals placed before them (settling, not measured)", fmt(figures.settled_arrivals)],
    ["decisions measured", fmt(figures.decisions)],
    ["placements/s (median of reps, incl. commit + release)", fmt(figures.placements_per_s)],
    ["  per rep", figures.placements_per_s_reps.map((v) => fmt(v)).join(" ")],
    ["decisions/s (decision time only)", fmt(figures.decisions_only_per_s)],
    [
      "per decision: commit / clock advance / releases µs",
      `${fmt(figures.commit_us_mean, 2)} / ${fmt(figures.advance_us_mean, 2)} / ${fmt(figures.release_us_mean, 2)}`,
    ],
    [
      `clock: ms per simulated hour (${fmt(figures.simulated_s_per_decision, 3)} s per decision)`,
      fmt(figures.clock_ms_per_simulated_hour, 1),
    ],
    [
      "placements/s with the clock in real time (its pass once an hour)",
      fmt(figures.placements_per_s_real_time_clock),
    ],
    ["p50 decision ms", figures.p50_ms.toFixed(4)],
    ["p99 decision ms", figures.p99_ms.toFixed(4)],
    ["max decision ms", figures.max_ms.toFixed(4)],
    ["no-fit rate", figures.no_fit_rate.toFixed(4)],
    ["hosts evaluated per decision (mean)", fmt(figures.hosts_evaluated_mean, 1)],
    ["heap MiB (V8 heap after GC)", fmt(figures.heap_mib, 1)],
    ["typed arrays MiB (off-heap)", fmt(figures.array_buffers_mib, 1)],
    ["rss MiB", fmt(figures.rss_mib, 1)],
    ["baseline first-fit decisions/s", fmt(figures.baseline_placements_per_s)],
    ["speedup vs baseline", `${fmt(figures.speedup_vs_baseline, 1)}x`],
    ["anti-affinity (groups of 10) placements/s", fmt(figures.anti_affinity_placements_per_s)],
    ["anti-affinity p99 decision ms", figures.anti_affinity_p99_ms.toFixed(4)],
    ["with label selectors: placements/s", fmt(figures.labels_placements_per_s)],
    ["with label selectors: p99 decision ms", figures.labels_p99_ms.toFixed(4)],
  ];
  for (const [kind, k] of Object.entries(kinds)) {
    rows.push([
      `  ${kind}: fit mean / p99 ms, no-fit mean / max ms, evaluated`,
      `${k.fit_mean_ms.toFixed(3)} / ${k.fit_p99_ms.toFixed(3)}, ${k.no_fit_mean_ms.toFixed(3)} / ${k.no_fit_max_ms.toFixed(3)} (${fmt(k.no_fits)}), ${fmt(k.hosts_evaluated_mean, 1)}`,
    ]);
  }
  process.stdout.write(`${table(rows)}\n`);
}
