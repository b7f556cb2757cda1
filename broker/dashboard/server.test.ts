/**
 * The JSON API's shapes and values, the live feed (SSE), the attach points for migrations and
 * autoscale, health: a broker over a simulated fleet on a VirtualClock, its HTTP server on a
 * loopback port, read through real HTTP requests.
 */
import { get, type IncomingMessage } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import type { CapacityNow, ForecastView, HostRow, LeaseList } from "./cluster-view.js";
import type { AutoscaleBody, MigrationsBody, Snapshot } from "./server.js";
import type { AutoscaleSignalView, MigrationView } from "./sources.js";
import { type DashboardBroker, leaseSpec, startDashboardBroker } from "./test-support.js";

const T0 = Date.UTC(2031, 0, 6, 12, 0, 0);
const HOUR = 3_600_000;
const GIB = 1024 ** 3;

let clock: VirtualClock;
let dash: DashboardBroker;

beforeEach(async () => {
  clock = new VirtualClock(T0);
  dash = await startDashboardBroker({ clock, hosts: 4, cpus: 8, memoryGib: 32 });
});
afterEach(async () => {
  await dash.stop();
});

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(`${dash.base}${path}`);
  expect(res.status, path).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return (await res.json()) as T;
}

function resource(capacity: CapacityNow, name: string) {
  const r = capacity.resources.find((x) => x.resource === name);
  if (r === undefined) throw new Error(`no ${name} in ${JSON.stringify(capacity)}`);
  return r;
}

describe("the JSON API", () => {
  it("serves capacity now per resource, in base units, and hosts by state", async () => {
    const views = dash.broker.hosts.views();
    const allocatableCpu = views.reduce((n, v) => n + v.allocatable.cpuMillis / 1000, 0);
    await dash.broker.leases.submit(leaseSpec({ cpus: 2, memoryGib: 4 }));
    await dash.broker.leases.submit(
      leaseSpec({
        cpus: 3,
        memoryGib: 6,
        window: { kind: "reserved", start: T0 + 2 * HOUR, durationMs: HOUR },
      }),
    );
    await dash.broker.hosts.cordon("sim-04", "maintenance");
    const capacity = await getJson<CapacityNow>("/api/v1/capacity");
    expect(capacity.at).toBe(T0);
    expect(capacity.hosts).toEqual({
      total: 4,
      byState: { READY: 3, CORDONED: 1, DRAINING: 0, SUSPECT: 0, DOWN: 0 },
    });
    const cpu = resource(capacity, "cpu");
    expect(cpu).toMatchObject({
      unit: "core",
      capacity: 32,
      allocatable: allocatableCpu,
      allocated: 2,
      reservedFuture: 3,
    });
    // Free counts READY hosts only: the cordoned one's allocatable is not on offer.
    expect(cpu.free).toBe((allocatableCpu * 3) / 4 - 2);
    expect(resource(capacity, "memory")).toMatchObject({
      unit: "byte",
      capacity: 128 * GIB,
      allocated: 4 * GIB,
      reservedFuture: 6 * GIB,
    });
    expect(resource(capacity, "gpu")).toMatchObject({ unit: "count", capacity: 0 });
  });

  it("serves hosts with state, labels, allocation now and the 24 h peak", async () => {
    const { lease } = await dash.broker.leases.submit(leaseSpec({ cpus: 2, memoryGib: 4 }));
    const body = await getJson<{ at: number; hosts: HostRow[] }>("/api/v1/hosts");
    expect(body.hosts.map((h) => h.id)).toEqual(["sim-01", "sim-02", "sim-03", "sim-04"]);
    const host = body.hosts.find((h) => h.id === lease.hostId);
    expect(host).toMatchObject({
      state: "READY",
      cordoned: false,
      leases: 1,
      allocated: { cpu: 2, memory: 4 * GIB, disk: 10 * GIB, gpu: 0 },
      peak24h: { cpu: 2 },
    });
    expect(host?.labels).toMatchObject({ zone: expect.stringMatching(/^zone-/), driver: "sim" });
    const other = body.hosts.find((h) => h.id !== lease.hostId);
    expect(other).toMatchObject({ leases: 0, allocated: { cpu: 0 } });
  });

  it("serves the leases of a timeline window, and counts by state", async () => {
    const now = await dash.broker.leases.submit(leaseSpec({ cpus: 1 }));
    const later = await dash.broker.leases.submit(
      leaseSpec({ window: { kind: "reserved", start: T0 + 30 * HOUR, durationMs: HOUR } }),
    );
    const day = await getJson<LeaseList>("/api/v1/leases");
    expect(day.from).toBe(T0);
    expect(day.to).toBe(T0 + 24 * HOUR);
    expect(day.leases.map((l) => l.id)).toEqual([now.lease.id]);
    expect(day.leases[0]).toMatchObject({
      state: "STARTING",
      start: T0,
      end: T0 + HOUR,
      window: "immediate",
      tenant: "demo",
      resources: { cpu: 1 },
    });
    expect(day.byState).toEqual({ STARTING: 1, RESERVED: 1 });
    const two = await getJson<LeaseList>(`/api/v1/leases?from=${T0}&to=${T0 + 48 * HOUR}`);
    expect(two.leases.map((l) => l.id)).toEqual([now.lease.id, later.lease.id]);
    expect(two.leases[1]?.state).toBe("RESERVED");
  });

  it("serves the forecast in aligned buckets", async () => {
    await dash.broker.leases.submit(
      leaseSpec({
        cpus: 4,
        window: { kind: "reserved", start: T0 + 3 * HOUR, durationMs: 2 * HOUR },
      }),
    );
    const f = await getJson<ForecastView>("/api/v1/forecast?bucket=1h&buckets=24");
    expect(f.bucketMs).toBe(HOUR);
    expect(f.buckets).toHaveLength(24);
    expect(f.buckets[0]?.start).toBe(T0);
    const committed = f.buckets.map((b) => b.allocated.cpu);
    expect(committed.slice(0, 6)).toEqual([0, 0, 0, 4, 4, 0]);
    expect(f.buckets[3]?.free.cpu).toBe((f.buckets[3]?.allocatable.cpu ?? 0) - 4);
    expect(f.buckets[3]?.hosts).toBe(4);
    // The default: 7 days.
    const week = await getJson<ForecastView>("/api/v1/forecast");
    expect(week.bucketMs * week.buckets.length).toBe(7 * 24 * HOUR);
  });

  it("answers a bad query with 400 naming the parameter, other methods with 405, unknown paths with 404", async () => {
    for (const [path, param] of [
      ["/api/v1/forecast?bucket=2s", "bucket"],
      ["/api/v1/forecast?buckets=0", "buckets"],
      ["/api/v1/forecast?buckets=x", "buckets"],
      ["/api/v1/leases?from=yesterday", "from"],
      [`/api/v1/leases?from=${T0}&to=${T0}`, "to"],
    ] as const) {
      const res = await fetch(`${dash.base}${path}`);
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { param: string }).param).toBe(param);
    }
    const post = await fetch(`${dash.base}/api/v1/capacity`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect((await fetch(`${dash.base}/api/v2/nothing`)).status).toBe(404);
  });

  it("serves the page, its script and uPlot", async () => {
    const page = await fetch(`${dash.base}/`);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('src="static/app.js"');
    for (const path of [
      "/static/app.js",
      "/static/app.css",
      "/vendor/uplot.esm.js",
      "/vendor/uplot.min.css",
    ]) {
      const res = await fetch(`${dash.base}${path}`);
      expect(res.status, path).toBe(200);
      expect((await res.text()).length, path).toBeGreaterThan(100);
    }
  });

  it("answers /healthz and /readyz", async () => {
    expect((await fetch(`${dash.base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${dash.base}/readyz`);
    expect(ready.status).toBe(200);
    dash.broker.dashboard?.setReady(false);
    const notReady = await fetch(`${dash.base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toMatch(/not serving/);
  });
});

describe("migrations and autoscale", () => {
  it("show the broker's orchestrator (nothing in flight), autoscale 'not attached' until a source is attached, then the attached sources, in the API and /metrics", async () => {
    expect(await getJson<MigrationsBody>("/api/v1/migrations")).toEqual({
      attached: true,
      migrations: [],
    });
    expect(await getJson<AutoscaleBody>("/api/v1/autoscale")).toEqual({
      attached: false,
      signal: null,
    });
    const dashboard = dash.broker.dashboard;
    if (dashboard === undefined) throw new Error("no dashboard");
    const flying: MigrationView = {
      id: "m-1",
      leaseId: "l-1",
      sourceHostId: "sim-01",
      targetHostId: "sim-02",
      state: "TRANSFERRING",
      progress: 0.4,
      reason: "drain",
      startedAt: T0,
    };
    const migrationListeners: ((m: MigrationView) => void)[] = [];
    let list: MigrationView[] = [flying];
    dashboard.attachMigrations({
      migrations: () => list,
      subscribe: (l) => {
        migrationListeners.push(l);
        return () => {};
      },
    });
    const signal: AutoscaleSignalView = {
      at: T0,
      direction: "up",
      hostsDelta: 2,
      reason: "cpu committed 92% over the next 2h",
      resource: "cpu",
    };
    const signalListeners: ((s: AutoscaleSignalView) => void)[] = [];
    dashboard.attachAutoscale({
      current: () => signal,
      subscribe: (l) => {
        signalListeners.push(l);
        return () => {};
      },
    });
    expect(await getJson<MigrationsBody>("/api/v1/migrations")).toEqual({
      attached: true,
      migrations: [flying],
    });
    expect(await getJson<AutoscaleBody>("/api/v1/autoscale")).toEqual({ attached: true, signal });

    const done: MigrationView = {
      ...flying,
      state: "COMPLETED",
      progress: 1,
      durationMs: 4000,
      downtimeMs: 30,
    };
    list = [done];
    for (const l of migrationListeners) {
      l(done);
      l(done); // reported twice: counted once
    }
    for (const l of signalListeners) l(signal);
    const metrics = await (await fetch(`${dash.base}/metrics`)).text();
    expect(metrics).toContain('leasebroker_migrations{state="COMPLETED"} 1');
    expect(metrics).toContain('leasebroker_migrations{state="TRANSFERRING"} 0');
    expect(metrics).toContain(
      'leasebroker_migration_duration_seconds_count{outcome="completed"} 1',
    );
    expect(metrics).toContain('leasebroker_migration_duration_seconds_sum{outcome="completed"} 4');
    expect(metrics).toContain("leasebroker_migration_downtime_seconds_count 1");
    expect(metrics).toContain('leasebroker_autoscale_signal{direction="up"} 1');
    expect(metrics).toContain('leasebroker_autoscale_signal{direction="none"} 0');
    expect(metrics).toContain("leasebroker_autoscale_hosts_delta 2");
    expect(metrics).toContain('leasebroker_autoscale_signals_total{direction="up"} 1');
    expect(metrics).toContain("leasebroker_migrations_source_attached 1");
  });
});

/** Reads a text/event-stream response into events as they come. */
class EventReader {
  readonly events: { event: string; data: unknown }[] = [];
  readonly #res: IncomingMessage;
  #buffer = "";
  #waiters: (() => void)[] = [];

  constructor(res: IncomingMessage) {
    this.#res = res;
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      this.#buffer += chunk;
      let end = this.#buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
          const colon = line.indexOf(":");
          if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
        }
        const event = fields.get("event");
        const data = fields.get("data");
        if (event !== undefined && data !== undefined)
          this.events.push({ event, data: JSON.parse(data) });
        end = this.#buffer.indexOf("\n\n");
      }
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static open(url: string): Promise<EventReader> {
    return new Promise((resolve, reject) => {
      get(url, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
        resolve(new EventReader(res));
      }).on("error", reject);
    });
  }

  /** Waits (bounded) until `count` events named `event` have arrived; returns them. */
  async until(event: string, count: number): Promise<unknown[]> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const got = this.events.filter((e) => e.event === event).map((e) => e.data);
      if (got.length >= count) return got;
      if (Date.now() > deadline)
        throw new Error(`only ${got.length} ${event} events, not ${count}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100).unref();
      });
    }
  }

  close(): void {
    this.#res.destroy();
  }
}

describe("the live feed (Server-Sent Events)", () => {
  it("sends a snapshot and a forecast at once, then one coalesced snapshot after changes", async () => {
    const reader = await EventReader.open(`${dash.base}/api/v1/events`);
    try {
      const [first] = (await reader.until("snapshot", 1)) as Snapshot[];
      await reader.until("forecast", 1);
      expect(first?.hosts).toHaveLength(4);
      expect(first?.leases.leases).toEqual([]);
      expect(first?.migrations).toEqual({ attached: true, migrations: [] });
      expect(first?.autoscale).toEqual({ attached: false, signal: null });

      // Three leases in one burst: one push, after the interval, carrying all three.
      await clock.advance(1000);
      const before = reader.events.filter((e) => e.event === "snapshot").length;
      for (let i = 0; i < 3; i++) await dash.broker.leases.submit(leaseSpec({ cpus: 1 }));
      await clock.advance(0);
      const snapshots = (await reader.until("snapshot", before + 1)) as Snapshot[];
      const latest = snapshots[snapshots.length - 1];
      expect(latest?.leases.leases).toHaveLength(3);
      expect(latest?.capacity.resources.find((r) => r.resource === "cpu")?.allocated).toBe(3);
      expect(snapshots).toHaveLength(before + 1);
    } finally {
      reader.close();
    }
  });
});
