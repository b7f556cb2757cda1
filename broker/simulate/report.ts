/**
 * The simulation report: what a replay means for capacity planning, as one JSON object. It holds
 * only what the inputs determine (no wall-clock figures), so the same inputs and seed give the
 * same report, byte for byte.
 */
import type { Resources } from "../../placement/index.js";
import type { ClusterDescription } from "./cluster.js";
import type { RejectReason, ReplayResult, SimPolicy } from "./replay.js";
import type { HostsNeeded } from "./search.js";
import { type TraceEntry, WINDOW_KINDS, type WindowKind } from "./trace.js";

export interface Distribution {
  readonly count: number;
  readonly mean_s: number;
  readonly p50_s: number;
  readonly p90_s: number;
  readonly p99_s: number;
  readonly max_s: number;
}

export interface KindFigures {
  readonly submitted: number;
  readonly accepted: number;
  readonly rejected: number;
  readonly acceptance_rate: number;
  readonly rejection_rate: number;
  readonly rejected_by_reason: Partial<Record<RejectReason, number>>;
  /** Accepted, then displaced by a higher-priority lease. */
  readonly preempted: number;
  /** Waited in the queue before being placed or rejected. */
  readonly queued: number;
}

export interface ResourceSeries {
  readonly cpu: readonly number[];
  readonly memory: readonly number[];
  readonly disk: readonly number[];
  readonly gpu: readonly number[];
}

export interface SimulationReport {
  readonly inputs: {
    readonly trace: { readonly source: string; readonly leases: number; readonly span_s: number };
    readonly cluster: {
      readonly hosts: number;
      readonly shapes: Readonly<Record<string, number>>;
      readonly zones: number;
    };
    readonly policy: {
      readonly placement: SimPolicy["fit"];
      readonly rebalance: SimPolicy["rebalance"];
      readonly make_room: boolean;
      readonly preemption: boolean;
    };
    readonly seed: number;
  };
  readonly leases: KindFigures & { readonly by_kind: Readonly<Record<WindowKind, KindFigures>> };
  /** Up to 10 requests that were not admitted, with the broker's reason. */
  readonly rejection_examples: readonly {
    readonly id: string;
    readonly line: number;
    readonly reason: RejectReason;
    readonly message: string;
  }[];
  readonly queueing_delay: {
    /** Flexible leases: actual start − max(earliest start, submit time). */
    readonly flexible: Distribution;
    /** Immediate and reserved leases that waited in the queue: start − requested start. */
    readonly queued_fixed: Distribution;
  };
  readonly utilisation: {
    readonly start: string;
    readonly bucket_s: number;
    /** The cluster's allocatable (capacity × ratio), the denominators. */
    readonly allocatable: {
      readonly cpu_cores: number;
      readonly memory_gib: number;
      readonly disk_gib: number;
      readonly gpus: number;
    };
    /** Per bucket: the time-averaged share of allocatable held by running leases (0..1). */
    readonly series: ResourceSeries;
    readonly mean: Readonly<Record<keyof ResourceSeries, number>>;
    /** Highest instantaneous share. */
    readonly peak: Readonly<Record<keyof ResourceSeries, number>>;
  };
  readonly hosts_needed: HostsNeeded | null;
  readonly migrations: {
    readonly performed: number;
    readonly predicted_total_s: number;
    readonly predicted_downtime_s: number;
  };
  readonly simulation: {
    readonly simulated_s: number;
    readonly lease_events: number;
  };
}

export interface ReportInputs {
  readonly source: string;
  readonly trace: readonly TraceEntry[];
  readonly cluster: ClusterDescription;
  readonly shapeCounts: readonly number[];
  readonly allocatable: Resources;
  readonly policy: SimPolicy;
  readonly seed: number;
  readonly result: ReplayResult;
  readonly hostsNeeded: HostsNeeded | null;
  /** Utilisation bucket width; default: the smallest of 1m … 1d giving at most 400 buckets. */
  readonly bucketMs?: number;
}

const BUCKETS = [60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000];

const round = (x: number, digits = 4): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export function distribution(valuesMs: readonly number[]): Distribution {
  if (valuesMs.length === 0) return { count: 0, mean_s: 0, p50_s: 0, p90_s: 0, p99_s: 0, max_s: 0 };
  const s = [...valuesMs].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const at = (p: number): number =>
    (s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number) / 1000;
  return {
    count: s.length,
    mean_s: round(s.reduce((a, b) => a + b, 0) / s.length / 1000, 3),
    p50_s: at(50),
    p90_s: at(90),
    p99_s: at(99),
    max_s: (s[s.length - 1] as number) / 1000,
  };
}

function kindFigures(indices: readonly number[], result: ReplayResult): KindFigures {
  const byReason: Partial<Record<RejectReason, number>> = {};
  let accepted = 0;
  let rejected = 0;
  let preempted = 0;
  let queued = 0;
  for (const i of indices) {
    const o = result.outcomes[i];
    if (o === undefined) continue;
    if (o.queued) queued++;
    if (o.placed) {
      accepted++;
      if (o.state === "PREEMPTED") preempted++;
    } else if (o.reason !== undefined) {
      rejected++;
      byReason[o.reason] = (byReason[o.reason] ?? 0) + 1;
    }
  }
  const sortedReasons = Object.fromEntries(
    Object.entries(byReason).sort(([a], [b]) => (a < b ? -1 : 1)),
  ) as Partial<Record<RejectReason, number>>;
  return {
    submitted: indices.length,
    accepted,
    rejected,
    acceptance_rate: indices.length === 0 ? 0 : round(accepted / indices.length),
    rejection_rate: indices.length === 0 ? 0 : round(rejected / indices.length),
    rejected_by_reason: sortedReasons,
    preempted,
    queued,
  };
}

/**
 * Time-averaged usage per bucket from the usage changes: the exact integral of the step
 * function over each bucket, divided by the bucket's width and the allocatable.
 */
export function utilisationSeries(
  result: ReplayResult,
  allocatable: Resources,
  bucketMs: number,
): {
  series: ResourceSeries;
  mean: Record<keyof ResourceSeries, number>;
  peak: Record<keyof ResourceSeries, number>;
} {
  const { usage, startMs, endMs } = result;
  const n = Math.max(1, Math.ceil((endMs - startMs) / bucketMs));
  const keys = ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const;
  const sums = keys.map(() => new Float64Array(n));
  const current = [0, 0, 0, 0];
  const peak = [0, 0, 0, 0];
  let last = startMs;
  const accumulate = (until: number): void => {
    // Spread current usage over [last, until) across the buckets it covers.
    let t = last;
    while (t < until) {
      const b = Math.min(n - 1, Math.floor((t - startMs) / bucketMs));
      const bucketEnd = startMs + (b + 1) * bucketMs;
      const upto = Math.min(until, bucketEnd);
      for (let k = 0; k < 4; k++) {
        const column = sums[k] as Float64Array;
        column[b] = (column[b] as number) + (current[k] as number) * (upto - t);
      }
      t = upto;
    }
    last = until;
  };
  const columns = [usage.cpuMillis, usage.memoryMib, usage.diskGib, usage.gpus];
  for (let i = 0; i < usage.times.length; i++) {
    const at = usage.times[i] as number;
    if (at > last) accumulate(at);
    for (let k = 0; k < 4; k++)
      current[k] = (current[k] as number) + ((columns[k] as number[])[i] as number);
    // Changes at one instant apply together: the peak is taken once the instant is over.
    if (i + 1 === usage.times.length || usage.times[i + 1] !== at)
      for (let k = 0; k < 4; k++) peak[k] = Math.max(peak[k] as number, current[k] as number);
  }
  if (endMs > last) accumulate(endMs);
  const share = (k: number, value: number): number => {
    const total = allocatable[keys[k] as (typeof keys)[number]];
    return total > 0 ? round(value / total) : 0;
  };
  const perBucket = (k: number): number[] =>
    Array.from(sums[k] as Float64Array, (sum, b) => {
      const width = Math.min(bucketMs, endMs - (startMs + b * bucketMs));
      return width > 0 ? share(k, sum / width) : 0;
    });
  const span = endMs - startMs;
  const overall = (k: number): number =>
    span <= 0 ? 0 : share(k, (sums[k] as Float64Array).reduce((a, b) => a + b, 0) / span);
  return {
    series: { cpu: perBucket(0), memory: perBucket(1), disk: perBucket(2), gpu: perBucket(3) },
    mean: { cpu: overall(0), memory: overall(1), disk: overall(2), gpu: overall(3) },
    peak: {
      cpu: share(0, peak[0] as number),
      memory: share(1, peak[1] as number),
      disk: share(2, peak[2] as number),
      gpu: share(3, peak[3] as number),
    },
  };
}

export function buildReport(inputs: ReportInputs): SimulationReport {
  const { trace, result, allocatable } = inputs;
  const span = result.endMs - result.startMs;
  const bucketMs =
    inputs.bucketMs ??
    BUCKETS.find((b) => span / b <= 400) ??
    (BUCKETS[BUCKETS.length - 1] as number);
  const byKind = new Map<WindowKind, number[]>(WINDOW_KINDS.map((k) => [k, []]));
  trace.forEach((e, i) => {
    byKind.get(e.window.kind)?.push(i);
  });
  const flexibleDelays: number[] = [];
  const fixedDelays: number[] = [];
  const examples: SimulationReport["rejection_examples"][number][] = [];
  trace.forEach((e, i) => {
    const o = result.outcomes[i];
    if (o === undefined) return;
    if (!o.placed && o.reason !== undefined && examples.length < 10)
      examples.push({ id: e.id, line: e.line, reason: o.reason, message: o.message });
    if (!o.placed) return;
    const w = e.window;
    const submit = result.startMs + e.submitMs;
    if (w.kind === "flexible") {
      flexibleDelays.push(o.placedStart - Math.max(result.startMs + w.earliestMs, submit));
    } else if (o.queued) {
      const wanted = w.kind === "reserved" ? result.startMs + w.startMs : submit;
      fixedDelays.push(o.placedStart - wanted);
    }
  });
  const { series, mean, peak } = utilisationSeries(result, allocatable, bucketMs);
  const all = trace.map((_, i) => i);
  const lastSubmit = trace.length === 0 ? 0 : (trace[trace.length - 1] as TraceEntry).submitMs;
  return {
    inputs: {
      trace: { source: inputs.source, leases: trace.length, span_s: lastSubmit / 1000 },
      cluster: {
        hosts: inputs.shapeCounts.reduce((a, b) => a + b, 0),
        shapes: Object.fromEntries(
          inputs.cluster.shapes.map((s, i) => [s.name, inputs.shapeCounts[i] ?? 0]),
        ),
        zones: inputs.cluster.zones,
      },
      policy: {
        placement: inputs.policy.fit,
        rebalance: inputs.policy.rebalance,
        make_room: inputs.policy.makeRoom,
        preemption: inputs.policy.preemption,
      },
      seed: inputs.seed,
    },
    leases: {
      ...kindFigures(all, result),
      by_kind: Object.fromEntries(
        WINDOW_KINDS.map((k) => [k, kindFigures(byKind.get(k) ?? [], result)]),
      ) as Record<WindowKind, KindFigures>,
    },
    rejection_examples: examples,
    queueing_delay: {
      flexible: distribution(flexibleDelays),
      queued_fixed: distribution(fixedDelays),
    },
    utilisation: {
      start: new Date(result.startMs).toISOString(),
      bucket_s: bucketMs / 1000,
      allocatable: {
        cpu_cores: allocatable.cpuMillis / 1000,
        memory_gib: round(allocatable.memoryMib / 1024, 3),
        disk_gib: allocatable.diskGib,
        gpus: allocatable.gpus,
      },
      series,
      mean,
      peak,
    },
    hosts_needed: inputs.hostsNeeded,
    migrations: {
      performed: result.migrations,
      predicted_total_s: result.migrationPredictedMs / 1000,
      predicted_downtime_s: result.migrationPredictedDowntimeMs / 1000,
    },
    simulation: { simulated_s: span / 1000, lease_events: result.events },
  };
}
