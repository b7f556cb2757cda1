/**
 * The broker's HTTP server (node:http): the dashboard page and its assets, the JSON API it reads,
 * Server-Sent Events for live updates, /metrics (Prometheus), /healthz and /readyz.
 *
 *   GET /                      the page (static/index.html; static/app.js, static/app.css)
 *   GET /vendor/uplot.*        uPlot's dist files, from node_modules
 *   GET /api/v1/capacity       cluster capacity now, per resource, and hosts by state
 *   GET /api/v1/hosts          every host: state, labels, allocatable, allocated now, peak over 24 h
 *   GET /api/v1/leases         leases on the timeline ?from=&to= (epoch ms; default now … now+24h)
 *   GET /api/v1/forecast       free vs committed per bucket ?bucket=3h&buckets=56 (default 7 days)
 *   GET /api/v1/migrations     migrations in flight ({attached:false} until a source is attached)
 *   GET /api/v1/autoscale      the current autoscale signal ({attached:false} likewise)
 *   GET /api/v1/snapshot       everything the page shows, in one object (what `snapshot` events carry)
 *   GET /api/v1/events         text/event-stream: `snapshot` (≤ 2/s) and `forecast` (≤ 1 per 5 s)
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Bus, NatsBus } from "../../bus/index.js";
import {
  type Clock,
  errorMessage,
  type Logger,
  parseDuration,
  type Timer,
} from "../../core/index.js";
import type { ClusterIndex } from "../../placement/index.js";
import type { HostRegistry } from "../hosts/registry.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import { type BrokerStore, EtcdStore, MemoryStore, type StoreWatch } from "../store/index.js";
import {
  type CapacityNow,
  ClusterView,
  type ForecastView,
  type HostRow,
  type LeaseList,
} from "./cluster-view.js";
import { EventStreams, Throttle } from "./live.js";
import { DashboardMetrics, type DependencyHealth } from "./metrics.js";
import type {
  AutoscaleSignalView,
  AutoscaleSource,
  MigrationSource,
  MigrationView,
} from "./sources.js";

export interface DashboardDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly hosts: HostRegistry;
  readonly index: ClusterIndex;
  readonly leases: LeaseManager;
  readonly store: BrokerStore;
  /** The agents' bus; undefined when hosts are a simulated fleet called directly. */
  readonly bus?: Bus;
}

export interface DashboardOptions {
  /** host:port; port 0 picks a free port. */
  readonly address: string;
  /** Least time between two `snapshot` events. Default 500 ms (≤ 2 pushes a second). */
  readonly snapshotIntervalMs?: number;
  /** Least time between two `forecast` events. Default 5 s. */
  readonly forecastIntervalMs?: number;
  /** The page is refreshed this often even without changes (time moves). Default 5 s. */
  readonly refreshEveryMs?: number;
}

/** Everything the page shows at one instant (the `snapshot` event). */
export interface Snapshot {
  readonly at: number;
  readonly capacity: CapacityNow;
  readonly hosts: readonly HostRow[];
  readonly leases: LeaseList;
  readonly migrations: MigrationsBody;
  readonly autoscale: AutoscaleBody;
}

export interface MigrationsBody {
  readonly attached: boolean;
  readonly migrations: readonly MigrationView[];
}

export interface AutoscaleBody {
  readonly attached: boolean;
  readonly signal: AutoscaleSignalView | null;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FORECAST_BUCKET_MS = 3 * HOUR;
const FORECAST_BUCKETS = 56;
const MAX_BUCKETS = 1000;
/** A store that does not answer within this is reported down. */
const STORE_PROBE_MS = 1000;

/** A bad query: 400 with the parameter and the rule. */
class BadQuery extends Error {
  constructor(
    readonly param: string,
    rule: string,
  ) {
    super(`${param}: ${rule}`);
  }
}

const STATIC_DIR = fileURLToPath(new URL("./static/", import.meta.url));
const STATIC_FILES: Readonly<Record<string, { file: string; type: string }>> = {
  "/": { file: join(STATIC_DIR, "index.html"), type: "text/html; charset=utf-8" },
  "/static/app.js": { file: join(STATIC_DIR, "app.js"), type: "text/javascript; charset=utf-8" },
  "/static/app.css": { file: join(STATIC_DIR, "app.css"), type: "text/css; charset=utf-8" },
};

/** uPlot's dist folder, resolved as Node resolves the package (works from the sources and dist/). */
function uplotDir(): string {
  return dirname(createRequire(import.meta.url).resolve("uplot"));
}

export class DashboardServer {
  readonly view: ClusterView;
  readonly metrics = new DashboardMetrics();
  readonly #deps: DashboardDeps;
  readonly #options: Required<DashboardOptions>;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #streams = new EventStreams();
  readonly #snapshots: Throttle;
  readonly #forecasts: Throttle;
  readonly #files = new Map<string, { body: Buffer; type: string }>();
  #migrations: MigrationSource | undefined;
  #autoscale: AutoscaleSource | undefined;
  #unsubscribe: (() => void)[] = [];
  #watch: StoreWatch | undefined;
  #refresh: Timer | undefined;
  #port = 0;
  #ready = false;

  constructor(deps: DashboardDeps, options: DashboardOptions) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: "dashboard" });
    this.#options = {
      snapshotIntervalMs: 500,
      forecastIntervalMs: 5000,
      refreshEveryMs: 5000,
      ...options,
    };
    this.view = new ClusterView(deps);
    this.#snapshots = new Throttle(deps.clock, this.#options.snapshotIntervalMs, () =>
      this.#push("snapshot", () => this.snapshot()),
    );
    this.#forecasts = new Throttle(deps.clock, this.#options.forecastIntervalMs, () =>
      this.#push("forecast", () => this.forecast()),
    );
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#log.error({ err: error, url: req.url }, "dashboard request failed");
        if (!res.headersSent) sendJson(res, 500, { error: errorMessage(error) });
        else res.destroy();
      });
    });
  }

  /** The port it listens on (after `start`). */
  get port(): number {
    return this.#port;
  }

  /** The page's address, for people (after `start`). */
  get url(): string {
    const host = this.#options.address.replace(/:\d+$/, "");
    const shown = host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host;
    return `http://${shown}:${this.#port}/`;
  }

  /**
   * Where the migration orchestrator plugs in: its migrations appear on the page, in the API and
   * in /metrics (by state; duration and downtime histograms). Returns a function that detaches it.
   */
  attachMigrations(source: MigrationSource): () => void {
    this.#migrations = source;
    const off = source.subscribe((m) => {
      this.metrics.migrationChanged(m);
      this.#changed();
    });
    this.#changed();
    return () => {
      off();
      if (this.#migrations === source) this.#migrations = undefined;
      this.#changed();
    };
  }

  /** Where the autoscaling hook plugs in: its current signal appears on the page, API and metrics. */
  attachAutoscale(source: AutoscaleSource): () => void {
    this.#autoscale = source;
    this.metrics.autoscaleAttached(true);
    const off = source.subscribe((signal) => {
      this.metrics.autoscaleSignalled(signal);
      this.#changed();
    });
    this.#changed();
    return () => {
      off();
      if (this.#autoscale === source) {
        this.#autoscale = undefined;
        this.metrics.autoscaleAttached(false);
      }
      this.#changed();
    };
  }

  /** Marks the broker ready (or not) for /readyz: set once it has loaded its state and serves. */
  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  /** Listens, and follows the broker's changes. Returns the port. */
  async start(): Promise<number> {
    await this.#loadFiles();
    const { leases, hosts } = this.#deps;
    leases.observe(this.metrics);
    this.#watch = leases.watch({ fromRevision: 0 }, (event) => {
      // A queued lease that gives up waiting is a rejection too (at its latest start, its
      // reservation's start, or the queue timeout); the submit counted it as queued.
      if (event.lease.state === "REJECTED" && event.previousState === "PENDING")
        this.metrics.admission("rejected", "queue-expired");
      this.#changed();
    });
    this.#unsubscribe.push(hosts.onStateChanged(() => this.#changed()));
    this.#unsubscribe.push(hosts.onCapacityAdded(() => this.#changed()));
    const tick = (): void => {
      // Time moves even when nothing changes: the timeline's "now" and the forecast's buckets.
      if (this.#streams.size > 0) this.#changed();
      this.#streams.ping();
      this.#refresh = this.#deps.clock.setTimer(this.#options.refreshEveryMs, tick);
    };
    this.#refresh = this.#deps.clock.setTimer(this.#options.refreshEveryMs, tick);
    const { host, port } = splitAddress(this.#options.address);
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `the HTTP server cannot listen on ${this.#options.address}: ${error.code === "EADDRINUSE" ? "the address is in use" : error.message}`,
            { cause: error },
          ),
        ),
      );
      this.#server.listen(port, host, () => {
        this.#server.removeAllListeners("error");
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    return this.#port;
  }

  async stop(): Promise<void> {
    this.#ready = false;
    this.#deps.leases.observe(undefined);
    this.#watch?.close();
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    this.#refresh?.cancel();
    this.#snapshots.stop();
    this.#forecasts.stop();
    this.#streams.closeAll();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  // ── what the API serves ────────────────────────────────────────────────────────────────────

  snapshot(): Snapshot {
    const now = this.view.now();
    const hosts = this.view.hostRows(now);
    return {
      at: now,
      capacity: this.view.capacity(now, hosts),
      hosts,
      leases: this.view.leaseList(now, now + DAY),
      migrations: this.migrations(),
      autoscale: this.autoscale(),
    };
  }

  forecast(bucketMs = FORECAST_BUCKET_MS, buckets = FORECAST_BUCKETS): ForecastView {
    const now = this.view.now();
    // Buckets aligned to the bucket width, so that consecutive pushes line up.
    const from = Math.floor(now / bucketMs) * bucketMs;
    return this.view.forecast(from, bucketMs, buckets);
  }

  migrations(): MigrationsBody {
    const source = this.#migrations;
    return { attached: source !== undefined, migrations: source?.migrations() ?? [] };
  }

  autoscale(): AutoscaleBody {
    const source = this.#autoscale;
    return { attached: source !== undefined, signal: source?.current() ?? null };
  }

  /** /metrics text: one consistent reading. */
  async metricsText(): Promise<string> {
    const now = this.view.now();
    const [store, bus] = await Promise.all([
      this.#storeHealth(),
      Promise.resolve(this.#busHealth()),
    ]);
    return this.metrics.render({
      capacity: this.view.capacity(now),
      leases: this.view.leaseCounts(),
      migrations: this.#migrations?.migrations(),
      autoscale: this.#autoscale?.current(),
      bus,
      store,
    });
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────

  #changed(): void {
    this.#snapshots.poke();
    this.#forecasts.poke();
  }

  #push(event: string, build: () => unknown): void {
    if (this.#streams.size === 0) return;
    try {
      this.#streams.broadcast(event, build());
    } catch (error) {
      this.#log.error({ err: error, event }, "building a live update failed");
    }
  }

  #busHealth(): DependencyHealth {
    const bus = this.#deps.bus;
    if (bus === undefined) return { kind: "direct", up: true };
    return {
      kind: bus instanceof NatsBus ? "nats" : "inproc",
      up: bus.status === "connected" || bus.status === "reconnected",
    };
  }

  async #storeHealth(): Promise<DependencyHealth & { revision: number }> {
    const store = this.#deps.store;
    const kind =
      store instanceof EtcdStore ? "etcd" : store instanceof MemoryStore ? "memory" : "other";
    let timer: NodeJS.Timeout | undefined;
    try {
      const revision = await Promise.race([
        store.revision(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("store probe timed out")), STORE_PROBE_MS);
        }),
      ]);
      return { kind, up: true, revision };
    } catch {
      return { kind, up: false, revision: 0 };
    } finally {
      clearTimeout(timer);
    }
  }

  async #loadFiles(): Promise<void> {
    if (this.#files.size > 0) return;
    for (const [path, { file, type }] of Object.entries(STATIC_FILES))
      this.#files.set(path, { body: await readFile(file), type });
    const vendor = uplotDir();
    this.#files.set("/vendor/uplot.esm.js", {
      body: await readFile(join(vendor, "uPlot.esm.js")),
      type: "text/javascript; charset=utf-8",
    });
    this.#files.set("/vendor/uplot.min.css", {
      body: await readFile(join(vendor, "uPlot.min.css")),
      type: "text/css; charset=utf-8",
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://dashboard");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendJson(res, 405, { error: `${req.method} is not allowed: the dashboard is read-only` });
      return;
    }
    const file = this.#files.get(url.pathname);
    if (file !== undefined) {
      res.writeHead(200, {
        "content-type": file.type,
        "content-length": file.body.length,
        "cache-control": "no-cache",
      });
      res.end(req.method === "HEAD" ? undefined : file.body);
      return;
    }
    try {
      switch (url.pathname) {
        case "/favicon.ico":
          res.writeHead(204).end();
          return;
        case "/healthz":
          sendText(res, 200, "ok\n");
          return;
        case "/readyz": {
          const store = await this.#storeHealth();
          const bus = this.#busHealth();
          const problems = [
            ...(this.#ready ? [] : ["the broker is not serving yet"]),
            ...(store.up ? [] : ["the store does not answer"]),
            ...(bus.up ? [] : ["the agent bus is disconnected"]),
          ];
          sendText(res, problems.length === 0 ? 200 : 503, `${problems.join("; ") || "ready"}\n`);
          return;
        }
        case "/metrics": {
          const text = await this.metricsText();
          res.writeHead(200, { "content-type": this.metrics.contentType });
          res.end(text);
          return;
        }
        case "/api/v1/capacity":
          sendJson(res, 200, this.view.capacity());
          return;
        case "/api/v1/hosts": {
          const now = this.view.now();
          sendJson(res, 200, { at: now, hosts: this.view.hostRows(now) });
          return;
        }
        case "/api/v1/leases": {
          const now = this.view.now();
          const from = timeParam(url, "from", now);
          const to = timeParam(url, "to", from + DAY);
          if (to <= from) throw new BadQuery("to", "must be after from");
          sendJson(res, 200, this.view.leaseList(from, to));
          return;
        }
        case "/api/v1/forecast": {
          const bucketMs = durationParam(url, "bucket", FORECAST_BUCKET_MS);
          const buckets = countParam(url, "buckets", FORECAST_BUCKETS);
          sendJson(res, 200, this.forecast(bucketMs, buckets));
          return;
        }
        case "/api/v1/migrations":
          sendJson(res, 200, this.migrations());
          return;
        case "/api/v1/autoscale":
          sendJson(res, 200, this.autoscale());
          return;
        case "/api/v1/snapshot":
          sendJson(res, 200, this.snapshot());
          return;
        case "/api/v1/events":
          this.#streams.open(res, [
            { event: "snapshot", data: this.snapshot() },
            { event: "forecast", data: this.forecast() },
          ]);
          return;
        default:
          sendJson(res, 404, { error: `no such page: ${url.pathname}` });
      }
    } catch (error) {
      if (!(error instanceof BadQuery)) throw error;
      sendJson(res, 400, { error: error.message, param: error.param });
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
  });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
  });
  res.end(text);
}

function timeParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(value)) throw new BadQuery(name, "epoch milliseconds or an ISO 8601 time");
  return value;
}

function durationParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  const value = parseDuration(raw);
  if (value === undefined || value < 60_000 || value > 30 * DAY)
    throw new BadQuery(name, "a duration between 1m and 30d, e.g. 1h");
  return value;
}

function countParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > MAX_BUCKETS)
    throw new BadQuery(name, `an integer between 1 and ${MAX_BUCKETS}`);
  return value;
}

/** "127.0.0.1:8080" or "[::1]:8080" → host and port. */
export function splitAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (match === null) throw new Error(`not host:port: ${address}`);
  return { host: match[1] ?? match[2] ?? "", port: Number(match[3]) };
}
