/**
 * `leasebroker simulate`: replays a trace (a file, or a built-in generator) through the broker on
 * a virtual clock over a described cluster and policy, and reports. Returns the exit code: 0 done,
 * 2 bad flag or input (which and why: a trace error names its line), 1 an unexpected failure.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import {
  ConfigError,
  EXIT_CONFIG,
  errorMessage,
  formatDuration,
  optionsHelp,
  parseOptions,
} from "../../core/index.js";
import {
  type ClusterDescription,
  ClusterError,
  clusterHosts,
  describedHostCount,
  parseCluster,
  STANDARD_CLUSTER,
  shapeCounts,
  totalAllocatable,
} from "./cluster.js";
import { generateTrace, TRACE_MIXES, type TraceMix } from "./generate.js";
import { renderHtml } from "./html.js";
import { REBALANCE_SETTINGS, type RebalanceSetting, replay, type SimPolicy } from "./replay.js";
import { buildReport, type SimulationReport } from "./report.js";
import { type HostsNeeded, searchHostsNeeded } from "./search.js";
import { detectFormat, formatTrace, parseTrace, type TraceEntry, TraceError } from "./trace.js";

export const SIMULATE_OPTIONS = {
  trace: {
    type: "string",
    description: "the trace to replay: CSV or JSON lines (by extension, else by its first line)",
  },
  generate: {
    type: "string",
    description: "replay a generated trace instead",
    choices: TRACE_MIXES,
  },
  leases: {
    type: "integer",
    description: "--generate: requests in the trace",
    default: 10_000,
    min: 1,
    max: 10_000_000,
  },
  days: {
    type: "number",
    description: "--generate: days the requests arrive over",
    default: 7,
    min: 0.01,
    max: 365,
  },
  seed: {
    type: "integer",
    description: "seeds the generator and the broker's lease ids",
    default: 1,
    min: 0,
    max: 2 ** 32 - 1,
  },
  saveTrace: { type: "string", description: "also write the trace replayed, as JSON lines" },
  cluster: {
    type: "string",
    description: "cluster description, YAML or JSON (default: the standard mix of 3 shapes)",
  },
  hosts: {
    type: "integer",
    description:
      "scale the cluster to this many hosts (default: as described; 100 for the standard mix)",
    min: 1,
    max: 100_000,
  },
  policy: {
    type: "string",
    description: "placement policy",
    choices: ["binpack", "spread"],
    default: "binpack",
  },
  rebalance: {
    type: "string",
    description:
      "the broker's periodic rebalancing by live migration: off, or level 1 (cautious) to 5 (eager)",
    choices: REBALANCE_SETTINGS.map(String),
    default: "off",
  },
  makeRoom: {
    type: "boolean",
    description:
      "make room at admission: live-migrate the fewest leases that open a host for a lease that fits no single host",
  },
  preemption: {
    type: "boolean",
    description: "higher-priority leases may preempt preemptible ones (--no-preemption: off)",
    default: true,
  },
  search: {
    type: "boolean",
    description:
      "search for the hosts needed (--no-search: skip; it replays the trace ~log2(hosts) times)",
    default: true,
  },
  maxHosts: {
    type: "integer",
    description: "the hosts-needed search gives up above this many hosts",
    default: 20_000,
    min: 1,
    max: 1_000_000,
  },
  queueTimeout: {
    type: "duration",
    description: "an immediate lease that may queue waits at most this long",
    default: 3_600_000,
    min: 1000,
  },
  preemptionNotice: {
    type: "duration",
    description: "a preempted lease keeps running this long",
    default: 120_000,
    min: 0,
  },
  report: { type: "string", description: "write the JSON report to this file" },
  html: { type: "string", description: "write the report as one self-contained HTML page" },
  json: { type: "boolean", description: "print the JSON report on stdout instead of a summary" },
} as const;

export const SIMULATE_USAGE = `leasebroker simulate — replay a workload trace through the broker, faster than real time

Usage: leasebroker simulate (--trace FILE | --generate MIX) [options]

Options:
${optionsHelp(SIMULATE_OPTIONS)}
  -h, --help                         this help`;

export interface SimulateIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: SimulateIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

function readInput(what: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`--${what}: cannot read ${path}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/** Runs `leasebroker simulate <argv>`; returns the exit code. */
export async function runSimulate(
  argv: readonly string[],
  io: SimulateIo = processIo,
): Promise<number> {
  let options: ReturnType<typeof parseOptions<typeof SIMULATE_OPTIONS>>["options"];
  let trace: TraceEntry[];
  let cluster: ClusterDescription;
  let source: string;
  try {
    const parsed = parseOptions(SIMULATE_OPTIONS, argv, {});
    if (parsed.help) {
      io.stdout(`${SIMULATE_USAGE}\n`);
      return 0;
    }
    options = parsed.options;
    if ((options.trace === undefined) === (options.generate === undefined))
      throw new ConfigError("give exactly one of --trace FILE and --generate MIX");
    if (options.trace !== undefined) {
      const text = readInput("trace", options.trace);
      trace = parseTrace(text, detectFormat(text, options.trace));
      source = options.trace;
    } else {
      const mix = options.generate as TraceMix;
      trace = generateTrace({
        mix,
        seed: options.seed,
        leases: options.leases,
        days: options.days,
      });
      source = `generated: ${mix}, ${options.leases} leases over ${options.days} days, seed ${options.seed}`;
    }
    cluster =
      options.cluster === undefined
        ? STANDARD_CLUSTER
        : parseCluster(readInput("cluster", options.cluster));
  } catch (error) {
    if (
      error instanceof ConfigError ||
      error instanceof TraceError ||
      error instanceof ClusterError
    ) {
      io.stderr(
        `leasebroker simulate: ${error.message}\nRun leasebroker simulate --help for the options.\n`,
      );
      return EXIT_CONFIG;
    }
    throw error;
  }
  try {
    if (options.saveTrace !== undefined) writeFileSync(options.saveTrace, formatTrace(trace));
    const report = await simulate({ trace, cluster, source, options, io });
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (options.report !== undefined) writeFileSync(options.report, text);
    if (options.html !== undefined) writeFileSync(options.html, renderHtml(report));
    if (options.json) io.stdout(text);
    else io.stdout(`${summary(report)}\n`);
    return 0;
  } catch (error) {
    io.stderr(`leasebroker simulate: ${errorMessage(error)}\n`);
    return 1;
  }
}

async function simulate(args: {
  trace: TraceEntry[];
  cluster: ClusterDescription;
  source: string;
  options: ReturnType<typeof parseOptions<typeof SIMULATE_OPTIONS>>["options"];
  io: SimulateIo;
}): Promise<SimulationReport> {
  const { trace, options, io } = args;
  const total =
    options.hosts ?? (args.options.cluster === undefined ? 100 : describedHostCount(args.cluster));
  // The cluster as simulated: the description scaled to the host count asked for.
  const counts = shapeCounts(args.cluster, total);
  const cluster: ClusterDescription = {
    ...args.cluster,
    shapes: args.cluster.shapes.map((s, i) => ({ ...s, count: counts[i] ?? 0 })),
  };
  const hosts = clusterHosts(cluster, total);
  const policy: SimPolicy = {
    fit: options.policy as SimPolicy["fit"],
    rebalance: (options.rebalance === "off"
      ? "off"
      : Number(options.rebalance)) as RebalanceSetting,
    makeRoom: options.makeRoom,
    preemption: options.preemption,
  };
  const timings = {
    queueTimeoutMs: options.queueTimeout,
    preemptionNoticeMs: options.preemptionNotice,
  };
  io.stderr(`replaying ${trace.length} requests on ${hosts.length} hosts …\n`);
  const t0 = performance.now();
  const result = await replay({ trace, hosts, policy, seed: options.seed, timings });
  const wallS = (performance.now() - t0) / 1000;
  const simulatedS = (result.endMs - result.startMs) / 1000;
  io.stderr(
    `  ${formatDuration(simulatedS * 1000)} simulated in ${wallS.toFixed(2)} s (${Math.round(simulatedS / Math.max(wallS, 1e-3))}× real time)\n`,
  );
  let hostsNeeded: HostsNeeded | null = null;
  if (options.search) {
    io.stderr("searching for the hosts needed …\n");
    hostsNeeded = await searchHostsNeeded({
      trace,
      // Scaled from the description as written, so that a shape the simulated size rounded to
      // no hosts still gets hosts at larger sizes.
      cluster: args.cluster,
      startHosts: hosts.length,
      policy,
      seed: options.seed,
      timings,
      maxHosts: options.maxHosts,
      described: { hosts: hosts.length, firstProblem: result.firstProblem },
      onRun: (run) =>
        io.stderr(`  ${run.hosts} hosts: ${run.admitted ? "admitted" : "not admitted"}\n`),
    });
  }
  return buildReport({
    source: args.source,
    trace,
    cluster,
    shapeCounts: counts,
    allocatable: totalAllocatable(hosts),
    policy,
    seed: options.seed,
    result,
    hostsNeeded,
  });
}

function summary(r: SimulationReport): string {
  const l = r.leases;
  const lines = [
    `requests   ${l.submitted}: ${l.accepted} accepted (${(l.acceptance_rate * 100).toFixed(1)}%), ${l.rejected} rejected, ${l.preempted} preempted`,
  ];
  for (const [kind, f] of Object.entries(l.by_kind)) {
    if (f.submitted === 0) continue;
    const reasons = Object.entries(f.rejected_by_reason)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    lines.push(
      `  ${kind.padEnd(9)} ${f.accepted}/${f.submitted} accepted (${(f.acceptance_rate * 100).toFixed(1)}%)${reasons === "" ? "" : `; rejected: ${reasons}`}`,
    );
  }
  const d = r.queueing_delay.flexible;
  lines.push(
    `flexible queueing delay  mean ${formatDuration(d.mean_s * 1000)}, p50 ${formatDuration(d.p50_s * 1000)}, p99 ${formatDuration(d.p99_s * 1000)}, max ${formatDuration(d.max_s * 1000)} (${d.count} leases)`,
  );
  const u = r.utilisation;
  lines.push(
    `utilisation  cpu mean ${(u.mean.cpu * 100).toFixed(1)}% peak ${(u.peak.cpu * 100).toFixed(1)}%, memory mean ${(u.mean.memory * 100).toFixed(1)}% peak ${(u.peak.memory * 100).toFixed(1)}%`,
  );
  const s = r.hosts_needed;
  if (s !== null)
    lines.push(
      s.hosts === null
        ? `hosts needed  none found (${s.note ?? ""})`
        : `hosts needed  ${s.hosts} (${Object.entries(s.shapes ?? {})
            .map(([k, v]) => `${v} ${k}`)
            .join(", ")}; the cluster simulated has ${r.inputs.cluster.hosts})`,
    );
  lines.push(`migrations  ${r.migrations.performed}`);
  return lines.join("\n");
}
