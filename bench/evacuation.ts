/**
 * bench:evacuation — evacuate one host through the migration orchestrator on a virtual clock.
 *
 * A broker (memory store, simulated fleet, VirtualClock) with `hosts` hosts, background load
 * spread over them, and `leases` live-migratable leases packed onto one host; DrainHost then moves
 * every one of them away within the orchestrator's limits (outgoing and incoming per host,
 * cluster-wide). The simulated fleet runs the sim driver's pre-copy (round 1 sends the memory, the
 * next rounds what the guest dirtied meanwhile, until the rest fits the downtime limit) at
 * `bandwidth` bytes per second per migration. Reports the evacuation time (first move planned to
 * last move completed, virtual), the migrations, the most in flight at once, the mean time of one
 * migration, and the lower bound the per-host outgoing limit sets (Σ migration times / limit).
 *
 * `evacuate(options)` is the benchmark; `bench:migration` calls it too.
 *
 *   node dist/bench/evacuation.js [--hosts N] [--leases N] [--memory-gib N] [--max-outgoing N]
 *                                 [--max-incoming N] [--max-in-flight N] [--seed N] [--json]
 */
import { pathToFileURL } from "node:url";
import { Broker } from "../broker/broker.js";
import type { LeaseSpec } from "../broker/leases/model.js";
import { drainHost } from "../broker/migrations/index.js";
import { silentLogger, VirtualClock } from "../core/index.js";
import { createRng } from "../placement/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, table } from "./lib/stats.js";

export interface EvacuationOptions {
  /** Hosts in the cluster. Default 200. */
  readonly hosts?: number;
  /** Leases on the evacuated host. Default 50. */
  readonly leases?: number;
  /** Memory of each evacuated lease, GiB. Default 4. */
  readonly memoryGib?: number;
  /** Background leases spread over the cluster. Default 2 per host. */
  readonly backgroundPerHost?: number;
  readonly maxOutgoingPerHost?: number;
  readonly maxIncomingPerHost?: number;
  readonly maxInFlight?: number;
  /** Migration link speed, bytes per second. Default 1 Gbit/s. */
  readonly bandwidthBytesPerS?: number;
  readonly seed?: number;
}

export interface EvacuationResult {
  readonly hosts: number;
  readonly leases: number;
  readonly evacuation_s: number;
  readonly migrations: number;
  readonly aborted: number;
  readonly max_concurrent: number;
  readonly mean_migration_s: number;
  /** Σ migration times / the per-host outgoing limit: no schedule can beat it. */
  readonly lower_bound_s: number;
  readonly destinations: number;
  /** Real time the whole run took (broker, placement, simulated hosts). */
  readonly wall_ms: number;
}

const T0 = Date.UTC(2030, 0, 1);
const GIB = 1024;

function spec(memoryGib: number, extra: Partial<LeaseSpec>): LeaseSpec {
  return {
    name: "vm",
    tenant: "bench",
    labels: {},
    resources: { cpuMillis: 2000, memoryMib: memoryGib * GIB, diskGib: 20, gpus: 0 },
    window: { kind: "immediate", durationMs: 7 * 24 * 3_600_000 },
    priority: 0,
    preemptible: false,
    constraints: [],
    migration: {
      liveMigratable: true,
      maxDowntimeMs: 0,
      allowSuspend: false,
      allowAutoConverge: false,
      allowPostCopy: false,
    },
    onHostFailure: "restart",
    allowQueue: false,
    driver: { image: "", params: {} },
    ...extra,
  };
}

export async function evacuate(options: EvacuationOptions = {}): Promise<EvacuationResult> {
  const hostCount = options.hosts ?? 200;
  const leaseCount = options.leases ?? 50;
  const memoryGib = options.memoryGib ?? 4;
  const maxOutgoingPerHost = options.maxOutgoingPerHost ?? 2;
  const started = performance.now();
  const clock = new VirtualClock(T0);
  const rng = createRng(options.seed ?? 1);
  const broker = new Broker({
    clock,
    logger: silentLogger(),
    grpcAddress: "127.0.0.1:0",
    simHosts: {
      count: hostCount,
      cpus: 64,
      memoryGib: 512,
      diskGib: 4000,
      zones: 4,
      bootMs: 1000,
      ...(options.bandwidthBytesPerS === undefined
        ? {}
        : { bandwidthBytesPerS: options.bandwidthBytesPerS }),
    },
    random: () => rng.next(),
    migrationLimits: {
      maxOutgoingPerHost,
      maxIncomingPerHost: options.maxIncomingPerHost ?? 2,
      maxInFlight: options.maxInFlight ?? 8,
    },
  });
  await broker.start();
  try {
    // The evacuated host first: on an empty cluster binpack piles the leases onto one host.
    const evacuated: string[] = [];
    for (let i = 0; i < leaseCount; i++) {
      const { lease } = await broker.leases.submit(spec(memoryGib, { policy: "binpack" }));
      evacuated.push(lease.id);
    }
    const source = broker.leases.get(evacuated[0] as string).value.hostId;
    // Background load spread over the other racks (sources keep no constraint: they may go
    // anywhere, the other hosts of their rack included).
    const background = hostCount * (options.backgroundPerHost ?? 2);
    for (let i = 0; i < background; i++) {
      const gib = 2 ** Math.floor(rng.next() * 6); // 1..32 GiB
      await broker.leases.submit(spec(gib, { policy: "spread", constraints: ["rack!=rack-1"] }));
    }
    await clock.advance(5000);
    const onSource = evacuated.filter((id) => broker.leases.get(id).value.hostId === source).length;
    const t0 = clock.now();
    const result = await drainHost(
      {
        clock,
        index: broker.index,
        hosts: broker.hosts,
        leases: broker.leases,
        orchestrator: broker.migrations,
      },
      { hostId: source, deadline: t0 + 24 * 3_600_000, reason: "bench" },
    );
    const ids = new Set(result.moves.map((m) => m.migrationId));
    while (broker.migrations.unfinished().length > 0) {
      const next = clock.nextDue();
      if (next === undefined) break;
      await clock.advanceTo(next);
    }
    const done = [...ids].map((id) => broker.migrations.get(id).value);
    const completed = done.filter((m) => m.state === "COMPLETED");
    const durations = completed.map((m) => (m.endedAt - m.startedAt) / 1000);
    const last = Math.max(t0, ...done.map((m) => m.endedAt));
    const sum = durations.reduce((a, b) => a + b, 0);
    return {
      hosts: hostCount,
      leases: onSource,
      evacuation_s: (last - t0) / 1000,
      migrations: completed.length,
      aborted: done.length - completed.length,
      max_concurrent: broker.migrations.peakInFlight,
      mean_migration_s: durations.length === 0 ? 0 : sum / durations.length,
      lower_bound_s: sum / maxOutgoingPerHost,
      destinations: new Set(completed.map((m) => m.toHostId)).size,
      wall_ms: performance.now() - started,
    };
  } finally {
    await broker.stop(0);
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(
    "evacuation",
    {
      hosts: { kind: "number", default: 200, help: "hosts in the cluster" },
      leases: { kind: "number", default: 50, help: "leases on the evacuated host" },
      "memory-gib": { kind: "number", default: 4, help: "memory of each evacuated lease" },
      "max-outgoing": { kind: "number", default: 2, help: "migrations leaving a host at once" },
      "max-incoming": { kind: "number", default: 2, help: "migrations arriving at a host at once" },
      "max-in-flight": { kind: "number", default: 8, help: "migrations in the cluster at once" },
      seed: { kind: "number", default: 1, help: "seed of the background load" },
      json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
    },
    process.argv.slice(2),
  );
  const base = {
    hosts: flags.hosts,
    leases: flags.leases,
    memoryGib: flags["memory-gib"],
    maxInFlight: flags["max-in-flight"],
    seed: flags.seed,
  };
  const r = await evacuate({
    ...base,
    maxOutgoingPerHost: flags["max-outgoing"],
    maxIncomingPerHost: flags["max-incoming"],
  });
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  // The same evacuation with per-host limits twice as loose, for the ratio (binpack sends most
  // moves to the same few destinations, so the incoming limit binds as much as the outgoing one).
  const loose = await evacuate({
    ...base,
    maxOutgoingPerHost: flags["max-outgoing"] * 2,
    maxIncomingPerHost: flags["max-incoming"] * 2,
  });
  const row = (label: string, x: EvacuationResult) => [
    label,
    String(x.leases),
    fmt(x.evacuation_s, 1),
    `${x.migrations}/${x.aborted}`,
    String(x.max_concurrent),
    fmt(x.mean_migration_s, 1),
    fmt(x.lower_bound_s, 1),
    String(x.destinations),
    fmt(x.wall_ms),
  ];
  process.stdout.write(
    `${table([
      [
        "max out/in per host",
        "leases",
        "evacuation s",
        "done/aborted",
        "max concurrent",
        "mean move s",
        "lower bound s",
        "destinations",
        "wall ms",
      ],
      row(`${flags["max-outgoing"]}/${flags["max-incoming"]}`, r),
      row(`${flags["max-outgoing"] * 2}/${flags["max-incoming"] * 2}`, loose),
    ])}\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
