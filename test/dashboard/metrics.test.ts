/**
 * /metrics read as Prometheus reads it: the text parses as the exposition format, the expected
 * families are there with their types, histograms are well formed, and the values agree with the
 * JSON API read at the same virtual instant.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CapacityNow, LeaseList } from "../../broker/dashboard/index.js";
import {
  type DashboardBroker,
  leaseSpec,
  startDashboardBroker,
} from "../../broker/dashboard/test-support.js";
import { VirtualClock } from "../../core/index.js";
import { type Family, parseExposition, sampleValue } from "./exposition.js";

const T0 = Date.UTC(2031, 0, 6, 12, 0, 0);
const HOUR = 3_600_000;

let clock: VirtualClock;
let dash: DashboardBroker;

beforeEach(async () => {
  clock = new VirtualClock(T0);
  dash = await startDashboardBroker({ clock, hosts: 6, cpus: 8, memoryGib: 16 });
});
afterEach(async () => {
  await dash.stop();
});

async function scrape(): Promise<Map<string, Family>> {
  const res = await fetch(`${dash.base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

describe("/metrics", () => {
  it("parses, has the expected families, and agrees with the JSON API", async () => {
    const leases = dash.broker.leases;
    await leases.submit(leaseSpec({ cpus: 2, memoryGib: 4 }));
    await leases.submit(leaseSpec({ cpus: 1, memoryGib: 2 }));
    await leases.submit(
      leaseSpec({ cpus: 3, window: { kind: "reserved", start: T0 + 2 * HOUR, durationMs: HOUR } }),
    );
    // Too big for any host: rejected with a reason.
    await expect(leases.submit(leaseSpec({ memoryGib: 64 }))).rejects.toThrow(/memory/);
    leases.explain(leaseSpec({ cpus: 1 })); // a preview: not a decision the metrics count
    await clock.advance(2000); // the sim hosts report RUNNING: two leases ACTIVE
    await dash.broker.hosts.cordon("sim-02");

    const families = await scrape();
    const capacity = (await (await fetch(`${dash.base}/api/v1/capacity`)).json()) as CapacityNow;
    const list = (await (await fetch(`${dash.base}/api/v1/leases`)).json()) as LeaseList;

    const expected: Record<string, string> = {
      leasebroker_hosts: "gauge",
      leasebroker_capacity: "gauge",
      leasebroker_allocatable: "gauge",
      leasebroker_allocated: "gauge",
      leasebroker_free: "gauge",
      leasebroker_reserved_future: "gauge",
      leasebroker_leases: "gauge",
      leasebroker_placement_decision_seconds: "histogram",
      leasebroker_admissions_total: "counter",
      leasebroker_migrations: "gauge",
      leasebroker_migration_duration_seconds: "histogram",
      leasebroker_migration_downtime_seconds: "histogram",
      leasebroker_migrations_source_attached: "gauge",
      leasebroker_autoscale_signal: "gauge",
      leasebroker_autoscale_hosts_delta: "gauge",
      leasebroker_autoscale_signals_total: "counter",
      leasebroker_autoscale_source_attached: "gauge",
      leasebroker_bus_up: "gauge",
      leasebroker_store_up: "gauge",
      leasebroker_store_revision: "gauge",
      // The default process metrics.
      process_cpu_seconds_total: "counter",
      process_resident_memory_bytes: "gauge",
      nodejs_eventloop_lag_seconds: "gauge",
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(families.get(name)?.type, name).toBe(type);
      expect(families.get(name)?.help, name).not.toBe("");
    }

    // Hosts by state, and capacity per resource: the same numbers as /api/v1/capacity.
    for (const [state, n] of Object.entries(capacity.hosts.byState))
      expect(sampleValue(families, "leasebroker_hosts", { state }), state).toBe(n);
    expect(sampleValue(families, "leasebroker_hosts", { state: "CORDONED" })).toBe(1);
    for (const r of capacity.resources) {
      const labels = { resource: r.resource, unit: r.unit };
      expect(sampleValue(families, "leasebroker_capacity", labels)).toBe(r.capacity);
      expect(sampleValue(families, "leasebroker_allocatable", labels)).toBe(r.allocatable);
      expect(sampleValue(families, "leasebroker_allocated", labels)).toBe(r.allocated);
      expect(sampleValue(families, "leasebroker_free", labels)).toBe(r.free);
      expect(sampleValue(families, "leasebroker_reserved_future", labels)).toBe(r.reservedFuture);
    }
    expect(sampleValue(families, "leasebroker_allocated", { resource: "cpu" })).toBe(3);
    expect(sampleValue(families, "leasebroker_reserved_future", { resource: "cpu" })).toBe(3);

    // Leases by state and window kind: the API's counts by state.
    for (const [state, n] of Object.entries(list.byState)) {
      const total = (families.get("leasebroker_leases")?.samples ?? [])
        .filter((s) => s.labels.state === state)
        .reduce((sum, s) => sum + s.value, 0);
      expect(total, state).toBe(n);
    }
    expect(
      sampleValue(families, "leasebroker_leases", { state: "ACTIVE", window: "immediate" }),
    ).toBe(2);
    expect(
      sampleValue(families, "leasebroker_leases", { state: "RESERVED", window: "reserved" }),
    ).toBe(1);

    // Admissions by outcome and reason; every decision timed.
    expect(
      sampleValue(families, "leasebroker_admissions_total", {
        outcome: "admitted",
        reason: "started",
      }),
    ).toBe(2);
    expect(
      sampleValue(families, "leasebroker_admissions_total", {
        outcome: "admitted",
        reason: "reserved",
      }),
    ).toBe(1);
    const rejected = (families.get("leasebroker_admissions_total")?.samples ?? []).filter(
      (s) => s.labels.outcome === "rejected",
    );
    expect(rejected.map((s) => [s.labels.reason, s.value])).toEqual([["invalid-argument", 1]]);
    const decisions = families.get("leasebroker_placement_decision_seconds");
    expect(
      sampleValue(families, "leasebroker_placement_decision_seconds_count", { decision: "place" }),
    ).toBe(3);
    // A histogram's buckets grow with `le` and end at +Inf = _count.
    const buckets = (decisions?.samples ?? []).filter(
      (s) => s.name.endsWith("_bucket") && s.labels.decision === "place",
    );
    expect(buckets.at(-1)?.labels.le).toBe("+Inf");
    expect(buckets.at(-1)?.value).toBe(3);
    for (let i = 1; i < buckets.length; i++)
      expect(buckets[i]?.value).toBeGreaterThanOrEqual(buckets[i - 1]?.value ?? 0);

    // The orchestrator is attached with nothing in flight (all 0); no autoscale signal.
    for (const s of families.get("leasebroker_migrations")?.samples ?? []) expect(s.value).toBe(0);
    expect(families.get("leasebroker_migrations")?.samples).toHaveLength(6);
    expect(sampleValue(families, "leasebroker_migrations_source_attached")).toBe(1);
    expect(sampleValue(families, "leasebroker_autoscale_signal", { direction: "none" })).toBe(1);
    expect(sampleValue(families, "leasebroker_autoscale_source_attached")).toBe(0);

    // Health: no bus (a simulated fleet called directly), the memory store answering.
    expect(sampleValue(families, "leasebroker_bus_up", { bus: "direct" })).toBe(1);
    expect(sampleValue(families, "leasebroker_store_up", { store: "memory" })).toBe(1);
    expect(sampleValue(families, "leasebroker_store_revision")).toBeGreaterThan(0);
  });

  it("counts a queued lease that gives up waiting as a rejection", async () => {
    // Fill every host's memory for two hours, then queue one more lease with a 1 h window.
    for (let i = 0; i < 6; i++)
      await dash.broker.leases.submit(
        leaseSpec({ memoryGib: 16, window: { kind: "immediate", durationMs: 2 * HOUR } }),
      );
    const queued = await dash.broker.leases.submit({
      ...leaseSpec({
        memoryGib: 8,
        window: { kind: "reserved", start: T0 + HOUR, durationMs: HOUR },
      }),
      allowQueue: true,
    });
    expect(queued.lease.state).toBe("PENDING");
    await clock.advance(HOUR + 1000);
    expect(dash.broker.leases.get(queued.lease.id).value.state).toBe("REJECTED");
    const families = await scrape();
    expect(
      sampleValue(families, "leasebroker_admissions_total", {
        outcome: "queued",
        reason: "no-fit",
      }),
    ).toBe(1);
    expect(
      sampleValue(families, "leasebroker_admissions_total", {
        outcome: "rejected",
        reason: "queue-expired",
      }),
    ).toBe(1);
  });

  it("rejects malformed exposition text (the parser is strict)", () => {
    expect(() => parseExposition('a{b="c} 1\n')).toThrow(/line 1/);
    expect(() => parseExposition("a{b=c} 1\n")).toThrow(/line 1/);
    expect(() => parseExposition("a one\n")).toThrow(/bad value/);
    expect(() => parseExposition("# TYPE a gauges\n")).toThrow(/unknown type/);
    const f = parseExposition('# HELP a x\n# TYPE a gauge\na{b="q\\"\\n"} 2 123\n');
    expect(f.get("a")?.samples).toEqual([{ name: "a", labels: { b: 'q"\n' }, value: 2 }]);
  });
});
