/**
 * /metrics: prom-client on its own Registry (never the global one, so that two brokers in one
 * process — tests — do not collide), with the default process metrics. Gauges that describe the
 * cluster are refreshed from one ClusterView read at each scrape, so one scrape is consistent;
 * counters and histograms are fed as things happen (the lease manager's AdmissionObserver, the
 * migration source).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { HOST_STATES } from "../../placement/index.js";
import type { AdmissionObserver } from "../leases/lease-manager.js";
import type { CapacityNow, LeaseCounts } from "./cluster-view.js";
import {
  type AutoscaleDirection,
  type AutoscaleSignalView,
  MIGRATION_STATES,
  type MigrationView,
} from "./sources.js";

/** Health of one dependency at scrape time. */
export interface DependencyHealth {
  readonly up: boolean;
  /** Transport or kind: "inproc", "nats", "memory", "etcd", "direct" (no bus: a simulated fleet). */
  readonly kind: string;
}

/** What one scrape reads (taken once, so that every series of a scrape agrees). */
export interface ScrapeInput {
  readonly capacity: CapacityNow;
  readonly leases: LeaseCounts;
  readonly migrations: readonly MigrationView[] | undefined;
  readonly autoscale: AutoscaleSignalView | undefined;
  readonly bus: DependencyHealth;
  readonly store: DependencyHealth & { readonly revision: number };
}

const DIRECTIONS: readonly AutoscaleDirection[] = ["up", "down", "none"];

export class DashboardMetrics implements AdmissionObserver {
  readonly registry = new Registry();
  readonly #hosts: Gauge<"state">;
  readonly #capacity: Gauge<"resource" | "unit">;
  readonly #allocatable: Gauge<"resource" | "unit">;
  readonly #allocated: Gauge<"resource" | "unit">;
  readonly #free: Gauge<"resource" | "unit">;
  readonly #reservedFuture: Gauge<"resource" | "unit">;
  readonly #leases: Gauge<"state" | "window">;
  readonly #decisionSeconds: Histogram<"decision">;
  readonly #admissions: Counter<"outcome" | "reason">;
  readonly #migrations: Gauge<"state">;
  readonly #migrationSeconds: Histogram<"outcome">;
  readonly #downtimeSeconds: Histogram<never>;
  readonly #migrationsAttached: Gauge<never>;
  readonly #autoscaleSignal: Gauge<"direction">;
  readonly #autoscaleDelta: Gauge<never>;
  readonly #autoscaleSignals: Counter<"direction">;
  readonly #autoscaleAttached: Gauge<never>;
  readonly #busUp: Gauge<"bus">;
  readonly #storeUp: Gauge<"store">;
  readonly #storeRevision: Gauge<never>;
  /** Migrations already counted in the histograms (each once). */
  readonly #finished = new Set<string>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const resourceGauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ["resource", "unit"] as const, registers });
    this.#hosts = new Gauge({
      name: "leasebroker_hosts",
      help: "Hosts by state",
      labelNames: ["state"] as const,
      registers,
    });
    this.#capacity = resourceGauge("leasebroker_capacity", "Raw capacity of all hosts");
    this.#allocatable = resourceGauge(
      "leasebroker_allocatable",
      "Allocatable (capacity x ratio - reserved) of all hosts",
    );
    this.#allocated = resourceGauge("leasebroker_allocated", "Committed now, all hosts");
    this.#free = resourceGauge("leasebroker_free", "Allocatable minus allocated on READY hosts");
    this.#reservedFuture = resourceGauge(
      "leasebroker_reserved_future",
      "Demand of leases reserved for a future start",
    );
    this.#leases = new Gauge({
      name: "leasebroker_leases",
      help: "Leases by state and window kind",
      labelNames: ["state", "window"] as const,
      registers,
    });
    this.#decisionSeconds = new Histogram({
      name: "leasebroker_placement_decision_seconds",
      help: "Time to decide where (or whether) a lease goes, by decision",
      labelNames: ["decision"] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.#admissions = new Counter({
      name: "leasebroker_admissions_total",
      help: "Submitted leases by outcome (admitted, queued, rejected) and reason",
      labelNames: ["outcome", "reason"] as const,
      registers,
    });
    this.#migrations = new Gauge({
      name: "leasebroker_migrations",
      help: "Migrations by state (all 0 until a migration source is attached)",
      labelNames: ["state"] as const,
      registers,
    });
    this.#migrationSeconds = new Histogram({
      name: "leasebroker_migration_duration_seconds",
      help: "Duration of finished migrations, by outcome",
      labelNames: ["outcome"] as const,
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.#downtimeSeconds = new Histogram({
      name: "leasebroker_migration_downtime_seconds",
      help: "Workload pause at switchover of completed migrations",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    });
    this.#migrationsAttached = new Gauge({
      name: "leasebroker_migrations_source_attached",
      help: "1 when the broker has a migration orchestrator, else 0",
      registers,
    });
    this.#autoscaleSignal = new Gauge({
      name: "leasebroker_autoscale_signal",
      help: "1 for the direction of the current autoscale signal (none without one)",
      labelNames: ["direction"] as const,
      registers,
    });
    this.#autoscaleDelta = new Gauge({
      name: "leasebroker_autoscale_hosts_delta",
      help: "Hosts the current autoscale signal asks to add (negative: remove)",
      registers,
    });
    this.#autoscaleSignals = new Counter({
      name: "leasebroker_autoscale_signals_total",
      help: "Autoscale signals published, by direction",
      labelNames: ["direction"] as const,
      registers,
    });
    this.#autoscaleAttached = new Gauge({
      name: "leasebroker_autoscale_source_attached",
      help: "1 when the broker has an autoscaling hook, else 0",
      registers,
    });
    this.#busUp = new Gauge({
      name: "leasebroker_bus_up",
      help: "1 when the broker's agent bus is connected",
      labelNames: ["bus"] as const,
      registers,
    });
    this.#storeUp = new Gauge({
      name: "leasebroker_store_up",
      help: "1 when the store answered at the last scrape",
      labelNames: ["store"] as const,
      registers,
    });
    this.#storeRevision = new Gauge({
      name: "leasebroker_store_revision",
      help: "The store's current revision",
      registers,
    });
    for (const d of DIRECTIONS) this.#autoscaleSignals.inc({ direction: d }, 0);
  }

  // ── AdmissionObserver ──────────────────────────────────────────────────────────────────────

  decision(kind: "place" | "preempt" | "queue" | "none", seconds: number): void {
    this.#decisionSeconds.observe({ decision: kind }, seconds);
  }

  admission(outcome: "admitted" | "queued" | "rejected", reason: string): void {
    this.#admissions.inc({ outcome, reason });
  }

  // ── migrations and autoscale, as they happen ───────────────────────────────────────────────

  migrationChanged(m: MigrationView): void {
    if ((m.state !== "COMPLETED" && m.state !== "ABORTED") || this.#finished.has(m.id)) return;
    this.#finished.add(m.id);
    if (m.durationMs !== undefined)
      this.#migrationSeconds.observe({ outcome: m.state.toLowerCase() }, m.durationMs / 1000);
    if (m.state === "COMPLETED" && m.downtimeMs !== undefined)
      this.#downtimeSeconds.observe(m.downtimeMs / 1000);
  }

  autoscaleSignalled(signal: AutoscaleSignalView): void {
    this.#autoscaleSignals.inc({ direction: signal.direction });
  }

  // ── a scrape ───────────────────────────────────────────────────────────────────────────────

  /** The exposition text for one consistent reading of the cluster. */
  async render(input: ScrapeInput): Promise<string> {
    this.#hosts.reset();
    for (const state of HOST_STATES)
      this.#hosts.set({ state }, input.capacity.hosts.byState[state] ?? 0);
    for (const g of [
      this.#capacity,
      this.#allocatable,
      this.#allocated,
      this.#free,
      this.#reservedFuture,
    ])
      g.reset();
    for (const r of input.capacity.resources) {
      const labels = { resource: r.resource, unit: r.unit };
      this.#capacity.set(labels, r.capacity);
      this.#allocatable.set(labels, r.allocatable);
      this.#allocated.set(labels, r.allocated);
      this.#free.set(labels, r.free);
      this.#reservedFuture.set(labels, r.reservedFuture);
    }
    this.#leases.reset();
    for (const { state, window, count } of input.leases.values())
      this.#leases.set({ state, window }, count);
    this.#migrations.reset();
    for (const state of MIGRATION_STATES) this.#migrations.set({ state }, 0);
    for (const m of input.migrations ?? []) this.#migrations.inc({ state: m.state });
    this.#migrationsAttached.set(input.migrations === undefined ? 0 : 1);
    const direction = input.autoscale?.direction ?? "none";
    for (const d of DIRECTIONS)
      this.#autoscaleSignal.set({ direction: d }, d === direction ? 1 : 0);
    this.#autoscaleDelta.set(input.autoscale?.hostsDelta ?? 0);
    this.#busUp.reset();
    this.#busUp.set({ bus: input.bus.kind }, input.bus.up ? 1 : 0);
    this.#storeUp.reset();
    this.#storeUp.set({ store: input.store.kind }, input.store.up ? 1 : 0);
    this.#storeRevision.set(input.store.revision);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Sets whether an autoscale source is attached (the signal itself is read at each scrape). */
  autoscaleAttached(attached: boolean): void {
    this.#autoscaleAttached.set(attached ? 1 : 0);
  }
}
