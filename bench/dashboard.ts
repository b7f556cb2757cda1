/**
 * bench:dashboard — what the dashboard costs the broker at size: building a `snapshot` (what each
 * live push carries), serialising it, the 7-day forecast, and a /metrics scrape, over a broker
 * with `--hosts` simulated hosts and `--leases` leases (half immediate, half reserved up to 2 days
 * ahead). Baseline, in the same process: one full pass over the leases through LeaseManager.list
 * (what every read of the lease counts does).
 *
 *   node dist/bench/dashboard.js [--hosts N] [--leases N] [--rounds N] [--json]
 */
import { leaseSpec, startDashboardBroker } from "../broker/dashboard/test-support.js";
import { VirtualClock } from "../core/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, median, table } from "./lib/stats.js";

const flags = parseFlags(
  "dashboard",
  {
    hosts: { kind: "number", default: 1000, help: "simulated hosts" },
    leases: { kind: "number", default: 5000, help: "leases submitted before measuring" },
    rounds: { kind: "number", default: 20, help: "measured rounds of each operation" },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);

const HOUR = 3_600_000;
const clock = new VirtualClock(Date.UTC(2031, 0, 6));
const dash = await startDashboardBroker({ clock, hosts: flags.hosts, cpus: 32, memoryGib: 128 });
const dashboard = dash.broker.dashboard;
if (dashboard === undefined) throw new Error("the broker has no dashboard");
let admitted = 0;
for (let i = 0; i < flags.leases; i++) {
  const window =
    i % 2 === 0
      ? { kind: "immediate" as const, durationMs: (1 + (i % 20)) * HOUR }
      : {
          kind: "reserved" as const,
          start: clock.now() + (1 + (i % 48)) * HOUR,
          durationMs: (1 + (i % 10)) * HOUR,
        };
  try {
    await dash.broker.leases.submit(
      leaseSpec({ cpus: 1 + (i % 8), memoryGib: 2 + (i % 16), window }),
    );
    admitted++;
  } catch {
    // A full cluster rejects some: the figures are for what was admitted.
  }
}

async function timeMs(run: () => unknown): Promise<number> {
  const times: number[] = [];
  await run(); // warm-up
  for (let i = 0; i < flags.rounds; i++) {
    const began = performance.now();
    await run();
    times.push(performance.now() - began);
  }
  return median(times);
}

const baselineMs = await timeMs(() => dashboard.view.leaseCounts());
const snapshotMs = await timeMs(() => dashboard.snapshot());
const snapshotJsonMs = await timeMs(() => JSON.stringify(dashboard.snapshot()));
const forecastMs = await timeMs(() => dashboard.forecast());
const metricsMs = await timeMs(() => dashboard.metricsText());
const snapshotBytes = JSON.stringify(dashboard.snapshot()).length;
await dash.stop();

const result = {
  hosts: flags.hosts,
  leases: admitted,
  rounds: flags.rounds,
  baseline_lease_pass_ms: round(baselineMs),
  snapshot_build_ms: round(snapshotMs),
  snapshot_build_and_json_ms: round(snapshotJsonMs),
  snapshot_bytes: snapshotBytes,
  forecast_7d_ms: round(forecastMs),
  metrics_scrape_ms: round(metricsMs),
  snapshot_to_baseline: round(snapshotMs / baselineMs),
  metrics_to_baseline: round(metricsMs / baselineMs),
};

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

if (flags.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  process.stdout.write(
    `${table([
      ["dashboard", "median ms", "× baseline"],
      ["baseline: one pass over the leases", fmt(baselineMs, 2), "1.00"],
      ["snapshot (a live push)", fmt(snapshotMs, 2), fmt(snapshotMs / baselineMs, 2)],
      ["snapshot + JSON", fmt(snapshotJsonMs, 2), fmt(snapshotJsonMs / baselineMs, 2)],
      ["forecast, 56 × 3 h", fmt(forecastMs, 2), fmt(forecastMs / baselineMs, 2)],
      ["/metrics scrape", fmt(metricsMs, 2), fmt(metricsMs / baselineMs, 2)],
    ])}\n${flags.hosts} hosts, ${admitted} leases; a snapshot is ${fmt(snapshotBytes / 1024)} KiB of JSON\n`,
  );
}
