/**
 * bench:simulate — how much faster than real time the simulator replays a trace: a generated
 * trace (default: a week, 100,000 leases, diurnal mix) through the real broker on a virtual clock
 * over a 1,000-host standard cluster. Prints the speed-up (simulated seconds / wall seconds),
 * leases per second and the wall time.
 *
 *   node dist/bench/simulate.js [--leases N] [--hosts N] [--days N] [--seed N] [--json]
 */
import { performance } from "node:perf_hooks";
import {
  clusterHosts,
  generateTrace,
  replay,
  STANDARD_CLUSTER,
  TRACE_MIXES,
} from "../broker/simulate/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, table } from "./lib/stats.js";

const flags = parseFlags(
  "simulate",
  {
    leases: { kind: "number", default: 100_000, help: "leases in the generated trace" },
    hosts: { kind: "number", default: 1000, help: "hosts (the standard mix of shapes)" },
    days: { kind: "number", default: 7, help: "days the trace spans" },
    seed: { kind: "number", default: 1, help: "seed of the trace" },
    mix: {
      kind: "number",
      default: 1,
      help: `trace mix: ${TRACE_MIXES.map((m, i) => `${i}=${m}`).join(", ")}`,
    },
    json: { kind: "boolean", default: false, help: "print one JSON object" },
  },
  process.argv.slice(2),
);

const mix = TRACE_MIXES[flags.mix];
if (mix === undefined) {
  process.stderr.write(`simulate: --mix must be 0..${TRACE_MIXES.length - 1}\n`);
  process.exit(2);
}
const trace = generateTrace({ mix, seed: flags.seed, leases: flags.leases, days: flags.days });
const hosts = clusterHosts(STANDARD_CLUSTER, flags.hosts);
const cpuBefore = process.cpuUsage();
const t0 = performance.now();
const result = await replay({ trace, hosts, seed: flags.seed });
const wallS = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpuBefore);
const simulatedS = (result.endMs - result.startMs) / 1000;
const placed = result.outcomes.filter((o) => o.placed).length;
const figures = {
  mix,
  leases: trace.length,
  hosts: hosts.length,
  simulated_s: Math.round(simulatedS),
  wall_s: Math.round(wallS * 100) / 100,
  cpu_s: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
  speedup: Math.round(simulatedS / wallS),
  leases_per_s: Math.round(trace.length / wallS),
  events: result.events,
  cpu_ms_per_lease: Math.round((((cpu.user + cpu.system) / 1000) * 1000) / trace.length) / 1000,
  acceptance_rate: Math.round((placed / trace.length) * 10_000) / 10_000,
  heap_mib: Math.round(process.memoryUsage().heapUsed / 1024 / 1024),
};
if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  process.stdout.write(
    `${table([
      ["figure", "value"],
      ["trace", `${mix}, ${fmt(figures.leases)} leases over ${flags.days} days`],
      ["hosts", fmt(figures.hosts)],
      ["simulated time", `${fmt(simulatedS / 86_400, 2)} days`],
      ["wall time", `${fmt(wallS, 2)} s`],
      ["speed-up over real time", `${fmt(figures.speedup)}×`],
      ["leases/s", fmt(figures.leases_per_s)],
      ["lease events", fmt(figures.events)],
      ["CPU per lease", `${fmt(figures.cpu_ms_per_lease, 3)} ms`],
      ["accepted", `${fmt(figures.acceptance_rate * 100, 1)}%`],
      ["heap", `${fmt(figures.heap_mib)} MiB`],
    ])}\n`,
  );
}
