/**
 * bench:placement-ab — two builds of `placement/` in one process, fed the same workload as
 * bench:placement (warm-up to ~100,000 live leases on 10,000 hosts, then arrivals as the clock
 * moves), every step timed on both, the order alternating per decision. This VM's speed moves by
 * ~30% between runs minutes apart; within one process both builds see the same speed, so the
 * ratio between them is what a change is worth (an A/A run stays within ~2%).
 *
 *   node dist/bench/placement-ab.js --a OLD_DIST --b NEW_DIST [--decisions N]
 *     [--anti-affinity | --soft-anti-affinity | --soft-affinity] [--labels] [--spread] [--runs N]
 *     [--json]
 *
 * Within one process the two builds are not quite equal: an A/A run (a build against a copy of
 * itself) has given anything from 0.94 to 1.02, the same side ahead for a whole run. `--runs N`
 * runs N such processes one after the other, every second one with the builds' places swapped,
 * and reports the geometric mean of their B / A ratios (and each of them).
 *
 * A build is a `dist` folder (`npm run build` in a checkout of that commit, e.g. a git worktree).
 * Both must decide the same: the run counts decisions where they differ (host or start).
 */

import { spawnSync } from "node:child_process";
import { isAbsolute, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import type { PlacementDecision } from "../placement/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, median, percentile, table } from "./lib/stats.js";
import {
  type Arrival,
  antiAffinityGroup,
  arrival,
  EndQueue,
  GROUP_KINDS,
  LABEL_SEED_SALT,
  MEAN_TIME_IN_SYSTEM,
  makeHosts,
  PLACEMENT_WORKLOAD_FLAGS,
  settleArrivals,
  survivorsAt,
  withLabelConstraint,
  withSpreadPolicy,
} from "./lib/workload.js";

type PlacementModule = typeof import("../placement/index.js");

const flags = parseFlags(
  "placement-ab",
  {
    a: { kind: "string", default: "", help: "dist folder of build A (the baseline)" },
    b: { kind: "string", default: "", help: "dist folder of build B" },
    ...PLACEMENT_WORKLOAD_FLAGS,
    decisions: { kind: "number", default: 10_000, help: "decisions measured" },
    "anti-affinity": {
      kind: "boolean",
      default: false,
      help: "arrivals in hard anti-affinity groups of 10 (bench:placement's anti-affinity run)",
    },
    "soft-anti-affinity": {
      kind: "boolean",
      default: false,
      help: "arrivals in soft anti-affinity groups of 10",
    },
    "soft-affinity": {
      kind: "boolean",
      default: false,
      help: "arrivals in soft affinity groups of 10",
    },
    labels: {
      kind: "boolean",
      default: false,
      help: "every arrival with a label constraint (zone, generation, rack, shape)",
    },
    spread: {
      kind: "boolean",
      default: false,
      help: "every arrival with the spread policy (the warm-up's stay binpack)",
    },
    runs: {
      kind: "number",
      default: 1,
      help: "processes run one after the other, every second one with A and B swapped",
    },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);
if (flags.a === "" || flags.b === "") {
  process.stderr.write("placement-ab: --a and --b (dist folders of the two builds) are required\n");
  process.exit(2);
}
const groupFlags = (Object.keys(GROUP_KINDS) as (keyof typeof GROUP_KINDS)[]).filter(
  (k) => flags[k],
);
if (groupFlags.length > 1) {
  process.stderr.write(
    `placement-ab: --${groupFlags.join(" and --")}: one kind of group at a time\n`,
  );
  process.exit(2);
}
/** The kind of group the arrivals come in, if any. */
const groupKind = groupFlags[0];
if (flags.runs < 1) {
  process.stderr.write("placement-ab: --runs must be at least 1\n");
  process.exit(2);
}

async function load(flag: string, dir: string): Promise<PlacementModule> {
  const abs = isAbsolute(dir) ? dir : resolve(process.cwd(), dir);
  try {
    return (await import(pathToFileURL(`${abs}/placement/index.js`).href)) as PlacementModule;
  } catch (err) {
    process.stderr.write(
      `placement-ab: --${flag} ${dir}: no build of placement/ there (${String(err)})\n`,
    );
    process.exit(2);
  }
}

interface Side {
  readonly p: PlacementModule;
  readonly index: InstanceType<PlacementModule["ClusterIndex"]>;
  /** Milliseconds spent in the upkeep steps (decisions: `latencies`). */
  readonly ms: { commit: number; advance: number; release: number };
  /** Each decision's time (ms). */
  readonly latencies: number[];
  readonly byKind: Map<string, number[]>;
}

/** One run's figures for one build (what `--json` prints as `build_a`, `build_b`). */
interface Figures {
  placements_per_s: number;
  decide_us_mean: number;
  commit_us_mean: number;
  advance_us_mean: number;
  release_us_mean: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  decide_us_mean_by_kind: Record<string, number>;
}

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;
const sum = (xs: readonly number[]) => xs.reduce((x, y) => x + y, 0);

/** One process: both builds, fed the same workload, timed step by step. */
async function runOnce(): Promise<void> {
  const T0 = Date.UTC(2030, 0, 1);
  const mods = [await load("a", flags.a), await load("b", flags.b)];
  const sides: Side[] = mods.map((p) => ({
    p,
    index: new p.ClusterIndex({ horizonBuckets: flags["horizon-hours"] }),
    ms: { commit: 0, advance: 0, release: 0 },
    latencies: [],
    byKind: new Map(),
  }));
  const [sideA, sideB] = sides as [Side, Side];
  const rng = sideA.p.createRng(flags.seed);
  const labelRng = sideA.p.createRng(flags.seed ^ LABEL_SEED_SALT);
  for (const spec of makeHosts(rng, flags.hosts)) for (const s of sides) s.index.addHost(spec);
  const ends = new EndQueue();
  const dt = MEAN_TIME_IN_SYSTEM / Math.max(1, flags.leases);
  let seq = 0;

  function decide(s: Side, a: Arrival): PlacementDecision {
    return a.kind === "flexible"
      ? s.p.findEarliestSlot(s.index, a.request)
      : s.p.place(s.index, a.request);
  }

  function same(x: PlacementDecision, y: PlacementDecision): boolean {
    if (!x.ok || !y.ok) return x.ok === y.ok;
    return x.hostId === y.hostId && x.start === y.start;
  }

  function commit(s: Side, d: PlacementDecision, a: Arrival, id: string): void {
    if (!d.ok) return;
    const group = a.request.group?.name;
    s.index.commit(id, d.hostId, { start: d.start, end: d.end }, a.request.resources, {
      priority: a.request.priority ?? 0,
      preemptible: a.request.preemptible ?? false,
      ...(group === undefined ? {} : { group }),
    });
  }

  // ---- warm-up: the population a stationary arrival process has alive at T0 (as bench:placement)
  let disagree = 0;
  {
    const past = survivorsAt(sideA.p.createRng(flags.seed ^ 0x5eed), T0, dt, () => `warm-${seq++}`);
    for (const { at: t, a } of past) {
      const [da, db] = sides.map((s) => {
        s.index.advanceTo(t);
        return decide(s, a);
      }) as [PlacementDecision, PlacementDecision];
      if (!same(da, db)) disagree++;
      if (da.ok && da.end > T0) {
        const id = a.request.leaseId ?? `warm-${seq++}`;
        for (const s of sides) commit(s, da, a, id);
        ends.push(da.end, id);
      }
    }
  }

  let now = T0;
  for (const s of sides) s.index.advanceTo(now);
  while (ends.peekTime() <= now) {
    const id = ends.pop();
    if (id !== undefined) for (const s of sides) s.index.release(id);
  }

  // ---- steady state: each step on both builds, the first alternating ---------------------------
  // A step is one arrival, or with a group flag a group of 10 decided one after the other (each
  // member sees the ones before it), the clock moving as many arrivals' worth. The first `settle`
  // arrivals are placed but not timed (see `settleArrivals`).
  const settle = settleArrivals(flags["settle-hours"], dt);
  let groups = 0;
  let timing = settle === 0;
  for (let i = 0, step = 0; i < settle + flags.decisions; step++) {
    if (!timing && i >= settle) {
      // settled: what was timed so far is dropped
      timing = true;
      for (const s of sides) {
        s.ms.commit = 0;
        s.ms.advance = 0;
        s.ms.release = 0;
        s.latencies.length = 0;
        s.byKind.clear();
      }
    }
    const order = step % 2 === 0 ? [sideA, sideB] : [sideB, sideA];
    const arrived =
      groupKind !== undefined
        ? antiAffinityGroup(rng, now + 10 * dt, `gang-${groups++}`, 10, GROUP_KINDS[groupKind])
        : [arrival(rng, now + dt, `lease-${seq++}`)];
    const labelled = flags.labels ? withLabelConstraint(labelRng, arrived) : arrived;
    const batch = flags.spread ? withSpreadPolicy(labelled) : labelled;
    now += dt * batch.length;
    for (const s of order) {
      const t0 = performance.now();
      s.index.advanceTo(now);
      s.ms.advance += performance.now() - t0;
    }
    const ended: string[] = [];
    while (ends.peekTime() <= now) {
      const id = ends.pop();
      if (id !== undefined) ended.push(id);
    }
    for (const s of order) {
      const t0 = performance.now();
      for (const id of ended) s.index.release(id);
      s.ms.release += performance.now() - t0;
    }
    for (const a of batch) {
      i++;
      const decided = new Map<Side, PlacementDecision>();
      for (const s of order) {
        const t0 = performance.now();
        const d = decide(s, a);
        const took = performance.now() - t0;
        s.latencies.push(took);
        let k = s.byKind.get(a.kind);
        if (k === undefined) {
          k = [];
          s.byKind.set(a.kind, k);
        }
        k.push(took);
        decided.set(s, d);
      }
      const da = decided.get(sideA) as PlacementDecision;
      if (!same(da, decided.get(sideB) as PlacementDecision)) disagree++;
      if (da.ok) {
        const id = a.request.leaseId ?? `lease-${seq++}`;
        for (const s of order) {
          const t0 = performance.now();
          commit(s, da, a, id);
          s.ms.commit += performance.now() - t0;
        }
        ends.push(da.end, id);
      }
    }
  }

  function figures(s: Side): Figures {
    const decide = sum(s.latencies);
    const total = decide + s.ms.commit + s.ms.advance + s.ms.release;
    // (a group's members are all decided: a run may end up to 9 past --decisions)
    const n = s.latencies.length;
    const us = (ms: number) => round((ms / n) * 1000, 1);
    const sorted = [...s.latencies].sort((x, y) => x - y);
    const kinds = Object.fromEntries(
      [...s.byKind].map(([k, v]) => [k, round((sum(v) / v.length) * 1000, 1)]),
    );
    return {
      placements_per_s: Math.round((n / total) * 1000),
      decide_us_mean: us(decide),
      commit_us_mean: us(s.ms.commit),
      advance_us_mean: us(s.ms.advance),
      release_us_mean: us(s.ms.release),
      p50_ms: round(percentile(sorted, 50), 4),
      p99_ms: round(percentile(sorted, 99), 4),
      max_ms: round(percentile(sorted, 100), 4),
      decide_us_mean_by_kind: kinds,
    };
  }
  const fa = figures(sideA);
  const fb = figures(sideB);
  const out = {
    a: flags.a,
    b: flags.b,
    decisions: sideA.latencies.length,
    settled_arrivals: settle,
    anti_affinity: flags["anti-affinity"],
    group: groupKind ?? "none",
    labels: flags.labels,
    spread: flags.spread,
    decisions_differing: disagree,
    placements_per_s_a: fa.placements_per_s,
    placements_per_s_b: fb.placements_per_s,
    ratio_b_over_a: round(fb.placements_per_s / fa.placements_per_s, 3),
    build_a: fa,
    build_b: fb,
  };
  if (flags.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else {
    const rows = figureRows(fa, fb);
    rows.push(["B / A placements/s", "", fmt(out.ratio_b_over_a, 3)]);
    rows.push(["decisions where the builds differ", "", fmt(disagree)]);
    process.stdout.write(`${table(rows)}\n`);
  }
}

/** The figures one `--json` process prints. */
interface RunOutput {
  decisions: number;
  settled_arrivals: number;
  decisions_differing: number;
  build_a: Figures;
  build_b: Figures;
}

/** Per figure, its median over the runs. */
function medianFigures(runs: readonly Figures[]): Figures {
  const kinds = Object.keys((runs[0] as Figures).decide_us_mean_by_kind);
  const of = (f: (x: Figures) => number, digits: number) => round(median(runs.map(f)), digits);
  return {
    placements_per_s: of((x) => x.placements_per_s, 0),
    decide_us_mean: of((x) => x.decide_us_mean, 1),
    commit_us_mean: of((x) => x.commit_us_mean, 1),
    advance_us_mean: of((x) => x.advance_us_mean, 1),
    release_us_mean: of((x) => x.release_us_mean, 1),
    p50_ms: of((x) => x.p50_ms, 4),
    p99_ms: of((x) => x.p99_ms, 4),
    max_ms: of((x) => x.max_ms, 4),
    decide_us_mean_by_kind: Object.fromEntries(
      kinds.map((k) => [k, of((x) => x.decide_us_mean_by_kind[k] ?? 0, 1)]),
    ),
  };
}

/**
 * `--runs N`: N processes of one run each, one after the other (the machine has two cores), A
 * and B swapped in every second one. The ratio is the geometric mean of the runs' B / A.
 */
function repeatRuns(): void {
  const runs: RunOutput[] = [];
  for (let r = 0; r < flags.runs; r++) {
    const swapped = r % 2 === 1;
    const args = [process.argv[1] as string, "--a", swapped ? flags.b : flags.a];
    args.push("--b", swapped ? flags.a : flags.b, "--decisions", String(flags.decisions));
    for (const name of Object.keys(
      PLACEMENT_WORKLOAD_FLAGS,
    ) as (keyof typeof PLACEMENT_WORKLOAD_FLAGS)[]) {
      args.push(`--${name}`, String(flags[name]));
    }
    if (groupKind !== undefined) args.push(`--${groupKind}`);
    if (flags.labels) args.push("--labels");
    if (flags.spread) args.push("--spread");
    args.push("--json");
    const res = spawnSync(process.execPath, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    if (res.status !== 0) {
      process.stderr.write(
        `placement-ab: run ${r + 1} of ${flags.runs} failed (exit ${res.status})\n`,
      );
      process.exit(1);
    }
    const o = JSON.parse(res.stdout) as RunOutput;
    runs.push(swapped ? { ...o, build_a: o.build_b, build_b: o.build_a } : o);
  }
  const ratios = runs.map((o) => o.build_b.placements_per_s / o.build_a.placements_per_s);
  const ratio = Math.exp(sum(ratios.map(Math.log)) / ratios.length);
  const fa = medianFigures(runs.map((o) => o.build_a));
  const fb = medianFigures(runs.map((o) => o.build_b));
  const differing = sum(runs.map((o) => o.decisions_differing));
  const out = {
    a: flags.a,
    b: flags.b,
    runs: flags.runs,
    decisions: (runs[0] as RunOutput).decisions,
    settled_arrivals: (runs[0] as RunOutput).settled_arrivals,
    anti_affinity: flags["anti-affinity"],
    group: groupKind ?? "none",
    labels: flags.labels,
    spread: flags.spread,
    decisions_differing: differing,
    placements_per_s_a: fa.placements_per_s,
    placements_per_s_b: fb.placements_per_s,
    ratio_b_over_a: round(ratio, 3),
    ratio_b_over_a_runs: ratios.map((x) => round(x, 3)),
    build_a: fa,
    build_b: fb,
  };
  if (flags.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else {
    const rows = figureRows(fa, fb);
    rows.push(["B / A placements/s, each run", "", ratios.map((x) => fmt(x, 3)).join(" ")]);
    rows.push(["B / A placements/s (geometric mean)", "", fmt(out.ratio_b_over_a, 3)]);
    rows.push(["decisions where the builds differ", "", fmt(differing)]);
    process.stdout.write(`${table(rows)}\n`);
  }
}

/** The table's rows of figures, A beside B (medians over the runs, with --runs). */
function figureRows(fa: Figures, fb: Figures): string[][] {
  const rows: string[][] = [["figure", "A", "B"]];
  for (const key of Object.keys(fa) as (keyof Figures)[]) {
    if (key === "decide_us_mean_by_kind") continue;
    const digits = key.endsWith("_ms") ? 4 : key === "placements_per_s" ? 0 : 1;
    rows.push([key, fmt(fa[key], digits), fmt(fb[key], digits)]);
  }
  for (const kind of Object.keys(fa.decide_us_mean_by_kind)) {
    rows.push([
      `decide µs, ${kind}`,
      fmt(fa.decide_us_mean_by_kind[kind] ?? 0, 1),
      fmt(fb.decide_us_mean_by_kind[kind] ?? 0, 1),
    ]);
  }
  return rows;
}

if (flags.runs === 1) await runOnce();
else repeatRuns();
