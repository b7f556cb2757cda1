/**
 * bench:quota — the cost of a tenant quota check at admission ("held at once at any instant of the
 * window") with the per-tenant timeline (QuotaLedger) against the naive check (scan the tenant's
 * held leases for those overlapping the window, then sweep their starts), for a tenant holding
 * 1,000, 10,000 and 100,000 leases spread over 30 days; and the cost of keeping the ledger up to
 * date on a lease write (`observe`).
 *
 *   node dist/bench/quota.js [--seed N] [--checks N] [--reps N] [--json]
 */
import { performance } from "node:perf_hooks";
import { QuotaLedger } from "../broker/auth/index.js";
import type { Lease, LeaseSpec } from "../broker/leases/model.js";
import { testLeaseSpec, testPendingLease } from "../broker/leases/test-support.js";
import { createRng } from "../placement/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, median, table } from "./lib/stats.js";
import { HOUR } from "./lib/workload.js";

const flags = parseFlags(
  "quota",
  {
    seed: { kind: "number", default: 1, help: "workload seed" },
    checks: { kind: "number", default: 20_000, help: "ledger checks per repetition" },
    reps: { kind: "number", default: 3, help: "repetitions (medians are reported)" },
    json: { kind: "boolean", default: false, help: "print one JSON object" },
  },
  process.argv.slice(2),
);

function spec(memoryMib: number, durationMs: number): LeaseSpec {
  return testLeaseSpec(0, {
    window: { kind: "immediate", durationMs },
    resources: { memoryMib, diskGib: 0 },
  });
}

function heldLeases(n: number, seed: number): Lease[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const start = rng.int(0, 30 * 24 * 4) * (HOUR / 4);
    const durationMs = rng.int(1, 8) * HOUR;
    const id = `l-${i}`;
    return {
      ...testPendingLease(id, spec(rng.int(1, 16) * 256, durationMs), 0),
      state: "RESERVED",
      hostId: "h",
      start,
      end: start + durationMs,
    };
  });
}

/** The check without an index: the peak over the window of the overlapping leases' memory. */
function naivePeak(leases: readonly Lease[], start: number, end: number): number {
  const over = leases.filter((l) => l.start < end && l.end > start);
  let peak = 0;
  for (const t of [start, ...over.map((l) => l.start).filter((s) => s > start)]) {
    let used = 0;
    for (const l of over) if (l.start <= t && t < l.end) used += l.spec.resources.memoryMib;
    peak = Math.max(peak, used);
  }
  return peak;
}

const windowAt = (i: number) => {
  const start = (i % (30 * 24 * 4)) * (HOUR / 4);
  return { start, end: start + 2 * HOUR };
};

const rows: string[][] = [
  ["held leases", "ledger check µs", "naive check µs", "speedup", "observe µs"],
];
const figures: Record<string, number> = {};
for (const n of [1_000, 10_000, 100_000]) {
  const leases = heldLeases(n, flags.seed);
  const probe = spec(256, 2 * HOUR);
  const ledgerUs: number[] = [];
  const naiveUs: number[] = [];
  const observeUs: number[] = [];
  for (let rep = 0; rep < flags.reps; rep++) {
    const ledger = new QuotaLedger({ policy: () => ({ quota: { memoryMib: 1e15 } }) });
    let t0 = performance.now();
    for (const l of leases) ledger.observe(l);
    observeUs.push(((performance.now() - t0) * 1000) / n);
    t0 = performance.now();
    for (let i = 0; i < flags.checks; i++) ledger.admit(probe, windowAt(i));
    ledgerUs.push(((performance.now() - t0) * 1000) / flags.checks);
    // Fewer naive checks as n grows: each one scans every lease.
    const naiveChecks = Math.max(20, Math.floor(2_000_000 / n));
    t0 = performance.now();
    let sink = 0;
    for (let i = 0; i < naiveChecks; i++) {
      const w = windowAt(i);
      sink += naivePeak(leases, w.start, w.end);
    }
    naiveUs.push(((performance.now() - t0) * 1000) / naiveChecks + (sink < 0 ? 1 : 0));
  }
  const key = `${n / 1000}k`;
  figures[`ledger_check_us_${key}`] = median(ledgerUs);
  figures[`naive_check_us_${key}`] = median(naiveUs);
  figures[`speedup_${key}`] = median(naiveUs) / median(ledgerUs);
  figures[`observe_us_${key}`] = median(observeUs);
  rows.push([
    fmt(n),
    fmt(median(ledgerUs), 2),
    fmt(median(naiveUs), 1),
    `${fmt(median(naiveUs) / median(ledgerUs))}×`,
    fmt(median(observeUs), 2),
  ]);
}

if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  process.stdout.write(`${table(rows)}\n`);
}
