/**
 * The dashboard's read model: what the JSON API serves, the live feed pushes and the metrics
 * export, computed from the broker's own state (HostRegistry, ClusterIndex, LeaseManager) at the
 * moment it is asked. Resource amounts are in base units, the same in JSON and in /metrics:
 * cpu in cores, memory and disk in bytes, gpus and extended resources in counts.
 */
import type { Clock } from "../../core/index.js";
import {
  type ClusterIndex,
  type ForecastBucket,
  HOST_STATES,
  type HostState,
  type Resources,
} from "../../placement/index.js";
import type { HostRegistry } from "../hosts/registry.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import type { Lease } from "../leases/model.js";
import { isTerminal, type LeaseState } from "../leases/transitions.js";

/** Resource name → amount in its base unit (`RESOURCE_UNITS`). */
export type Amounts = Record<string, number>;

/** The unit of each core resource; extended resources are counts. */
export const RESOURCE_UNITS: Readonly<Record<string, string>> = {
  cpu: "core",
  memory: "byte",
  disk: "byte",
  gpu: "count",
};

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const HOUR = 3_600_000;

export function amounts(r: Resources): Amounts {
  const out: Amounts = {
    cpu: r.cpuMillis / 1000,
    memory: r.memoryMib * MIB,
    disk: r.diskGib * GIB,
    gpu: r.gpus,
  };
  for (const [name, n] of Object.entries(r.extended ?? {})) out[name] = n;
  return out;
}

/** A lease's demand: cpu and memory always, other resources only when asked for (a timeline of
 * thousands of leases is pushed twice a second; zeros would be most of it). */
export function demandAmounts(r: Resources): Amounts {
  const out: Amounts = {};
  for (const [name, n] of Object.entries(amounts(r)))
    if (n !== 0 || name === "cpu" || name === "memory") out[name] = n;
  return out;
}

function addInto(sum: Amounts, more: Amounts, scale = 1): void {
  for (const [name, n] of Object.entries(more)) sum[name] = (sum[name] ?? 0) + n * scale;
}

export interface HostRow {
  readonly id: string;
  readonly state: HostState;
  readonly cordoned: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly allocatable: Amounts;
  /** Committed now. */
  readonly allocated: Amounts;
  /** The most committed at any time in the next 24 h (reservations included). */
  readonly peak24h: Amounts;
  /** Leases holding capacity on the host (running or reserved). */
  readonly leases: number;
}

export interface ResourceCapacity {
  readonly resource: string;
  readonly unit: string;
  /** Raw capacity of every host. */
  readonly capacity: number;
  /** capacity × ratio − reserved, every host. */
  readonly allocatable: number;
  /** Committed now, every host. */
  readonly allocated: number;
  /** Allocatable minus allocated on READY hosts: what a lease can get now. */
  readonly free: number;
  /** Demand of leases RESERVED for a future start (not yet running). */
  readonly reservedFuture: number;
}

export interface CapacityNow {
  readonly at: number;
  readonly hosts: { readonly total: number; readonly byState: Readonly<Record<HostState, number>> };
  readonly resources: readonly ResourceCapacity[];
}

export interface LeaseBar {
  readonly id: string;
  readonly hostId: string;
  readonly state: LeaseState;
  readonly start: number;
  readonly end: number;
  readonly tenant: string;
  readonly name: string;
  readonly window: Lease["spec"]["window"]["kind"];
  /** cpu and memory always; other resources only when non-zero. */
  readonly resources: Amounts;
}

export interface LeaseList {
  readonly at: number;
  readonly from: number;
  readonly to: number;
  /** Leases not ended yet whose window meets [from, to), and every PENDING one (no host). */
  readonly leases: readonly LeaseBar[];
  /** Leases by state (all leases the broker knows, ended ones included). */
  readonly byState: Readonly<Record<string, number>>;
}

export interface ForecastView {
  readonly at: number;
  readonly bucketMs: number;
  readonly buckets: readonly {
    readonly start: number;
    readonly end: number;
    readonly hosts: number;
    readonly allocatable: Amounts;
    readonly allocated: Amounts;
    readonly free: Amounts;
  }[];
}

/** Leases counted by state and window kind (the metrics' `leasebroker_leases`). */
export type LeaseCounts = Map<string, { state: LeaseState; window: string; count: number }>;

export class ClusterView {
  readonly #hosts: HostRegistry;
  readonly #index: ClusterIndex;
  readonly #leases: LeaseManager;
  readonly #clock: Clock;

  constructor(deps: {
    hosts: HostRegistry;
    index: ClusterIndex;
    leases: LeaseManager;
    clock: Clock;
  }) {
    this.#hosts = deps.hosts;
    this.#index = deps.index;
    this.#leases = deps.leases;
    this.#clock = deps.clock;
  }

  now(): number {
    return this.#clock.now();
  }

  hostRows(now = this.#clock.now()): HostRow[] {
    return this.#hosts.views().map((view) => ({
      id: view.id,
      state: view.state,
      cordoned: view.cordoned,
      labels: view.labels,
      allocatable: amounts(view.allocatable),
      allocated: amounts(this.#index.peakOver(view.id, { start: now, end: now + 1 })),
      peak24h: amounts(this.#index.peakOver(view.id, { start: now, end: now + 24 * HOUR })),
      leases: this.#index.host(view.id)?.holdCount ?? 0,
    }));
  }

  /** Cluster capacity now, per resource (from `rows` when the caller has them already). */
  capacity(now = this.#clock.now(), rows = this.hostRows(now)): CapacityNow {
    const byState = Object.fromEntries(HOST_STATES.map((s) => [s, 0])) as Record<HostState, number>;
    const capacity: Amounts = { cpu: 0, memory: 0, disk: 0, gpu: 0 };
    const allocatable: Amounts = { ...capacity };
    const allocated: Amounts = { ...capacity };
    const free: Amounts = { ...capacity };
    for (const row of rows) {
      byState[row.state]++;
      addInto(capacity, amounts(this.#hosts.view(row.id).capacity));
      addInto(allocatable, row.allocatable);
      addInto(allocated, row.allocated);
      if (row.state === "READY") {
        for (const [name, n] of Object.entries(row.allocatable))
          free[name] = (free[name] ?? 0) + Math.max(0, n - (row.allocated[name] ?? 0));
      }
    }
    const reservedFuture: Amounts = { cpu: 0, memory: 0, disk: 0, gpu: 0 };
    this.#eachLease((lease) => {
      if (lease.state === "RESERVED" && lease.start > now)
        addInto(reservedFuture, amounts(lease.spec.resources));
    });
    const names = [...new Set([...Object.keys(capacity), ...Object.keys(allocatable)])];
    return {
      at: now,
      hosts: { total: rows.length, byState },
      resources: names.map((resource) => ({
        resource,
        unit: RESOURCE_UNITS[resource] ?? "count",
        capacity: capacity[resource] ?? 0,
        allocatable: allocatable[resource] ?? 0,
        allocated: allocated[resource] ?? 0,
        free: free[resource] ?? 0,
        reservedFuture: reservedFuture[resource] ?? 0,
      })),
    };
  }

  /** The leases to draw on a timeline of [from, to) (at most `limit`, earliest start first). */
  leaseList(from: number, to: number, limit = 50_000): LeaseList {
    const bars: LeaseBar[] = [];
    const byState: Record<string, number> = {};
    this.#eachLease((lease) => {
      byState[lease.state] = (byState[lease.state] ?? 0) + 1;
      if (isTerminal(lease.state)) return;
      const pending = lease.state === "PENDING";
      if (!pending && (lease.end <= from || lease.start >= to)) return;
      bars.push({
        id: lease.id,
        hostId: lease.hostId,
        state: lease.state,
        start: lease.start,
        end: lease.end,
        tenant: lease.spec.tenant,
        name: lease.spec.name,
        window: lease.spec.window.kind,
        resources: demandAmounts(lease.spec.resources),
      });
    });
    bars.sort((a, b) => a.start - b.start || (a.id < b.id ? -1 : 1));
    return { at: this.#clock.now(), from, to, leases: bars.slice(0, limit), byState };
  }

  /** Free vs committed per bucket `[from + i·bucketMs, …)` (READY hosts' allocatable and free). */
  forecast(from: number, bucketMs: number, count: number): ForecastView {
    const buckets = this.#index.capacityForecast(from, bucketMs, count);
    return {
      at: this.#clock.now(),
      bucketMs,
      buckets: buckets.map((b: ForecastBucket) => ({
        start: b.start,
        end: b.end,
        hosts: b.hosts,
        allocatable: amounts(b.allocatable),
        allocated: amounts(b.allocated),
        free: amounts(b.free),
      })),
    };
  }

  leaseCounts(): LeaseCounts {
    const counts: LeaseCounts = new Map();
    this.#eachLease((lease) => {
      const key = `${lease.state}/${lease.spec.window.kind}`;
      const entry = counts.get(key);
      if (entry === undefined)
        counts.set(key, { state: lease.state, window: lease.spec.window.kind, count: 1 });
      else entry.count++;
    });
    return counts;
  }

  #eachLease(visit: (lease: Lease) => void): void {
    let pageToken = "";
    do {
      const page = this.#leases.list({ pageSize: 1000, pageToken });
      for (const item of page.leases) visit(item.value);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }
}
