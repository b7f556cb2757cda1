/**
 * A fleet of simulated hosts in the broker's own process: the embedded stand-in for real agents.
 * Workloads "boot" and "shut down" on the Clock, so a virtual clock drives them in tests.
 */
import type { Clock, Timer } from "../../core/index.js";
import type { HostGateway, StopOptions, WorkloadReport, WorkloadSpec } from "./gateway.js";

export interface SimFleetOptions {
  /** Time from start to RUNNING. Default 1 s. */
  readonly bootMs?: number;
  /** Time a graceful stop takes (capped by the grace period). Default 500 ms. */
  readonly shutdownMs?: number;
  /** Hosts that refuse to start workloads (for failure tests). */
  readonly failingHosts?: ReadonlySet<string>;
}

export class UnknownSimHostError extends Error {
  constructor(readonly hostId: string) {
    super(`no simulated host ${hostId}`);
    this.name = "UnknownSimHostError";
  }
}

export class SimFleet implements HostGateway {
  readonly #clock: Clock;
  readonly #bootMs: number;
  readonly #shutdownMs: number;
  readonly #failing: ReadonlySet<string>;
  readonly #hosts = new Map<string, Map<string, "booting" | "running" | "stopping">>();
  /** The pending end of each stopping workload, by `host/lease`. */
  readonly #stopping = new Map<string, Timer>();
  readonly #listeners = new Set<(report: WorkloadReport) => void>();

  constructor(clock: Clock, options: SimFleetOptions = {}) {
    this.#clock = clock;
    this.#bootMs = options.bootMs ?? 1000;
    this.#shutdownMs = options.shutdownMs ?? 500;
    this.#failing = options.failingHosts ?? new Set();
  }

  addHost(hostId: string): void {
    if (!this.#hosts.has(hostId)) this.#hosts.set(hostId, new Map());
  }

  /** Lease ids with a workload on `hostId` (booting, running or stopping). */
  workloads(hostId: string): string[] {
    return [...(this.#hosts.get(hostId)?.keys() ?? [])].sort();
  }

  async start(hostId: string, workload: WorkloadSpec): Promise<void> {
    const host = this.#host(hostId);
    const { leaseId } = workload;
    if (host.has(leaseId)) return; // idempotent: already starting or running
    if (this.#failing.has(hostId)) {
      this.#clock.setTimer(0, () =>
        this.#emit({ hostId, leaseId, state: "FAILED", message: "simulated start failure" }),
      );
      return;
    }
    host.set(leaseId, "booting");
    this.#clock.setTimer(this.#bootMs, () => {
      if (host.get(leaseId) !== "booting") return;
      host.set(leaseId, "running");
      this.#emit({ hostId, leaseId, state: "RUNNING", message: "" });
    });
  }

  async stop(hostId: string, leaseId: string, options: StopOptions): Promise<void> {
    const host = this.#host(hostId);
    const current = host.get(leaseId);
    if (current === undefined) {
      // Stopping what does not run is done at once, and said so: the broker waits for the report.
      this.#clock.setTimer(0, () =>
        this.#emit({ hostId, leaseId, state: "STOPPED", message: "not running" }),
      );
      return;
    }
    // A second graceful stop changes nothing; a forced one kills a workload that is still
    // shutting down at once.
    if (current === "stopping" && !options.force) return;
    const key = `${hostId}/${leaseId}`;
    this.#stopping.get(key)?.cancel();
    host.set(leaseId, "stopping");
    const after = options.force ? 0 : Math.min(this.#shutdownMs, options.graceMs);
    const timer = this.#clock.setTimer(after, () => {
      this.#stopping.delete(key);
      host.delete(leaseId);
      this.#emit({
        hostId,
        leaseId,
        state: "STOPPED",
        message: options.force ? "killed" : "shut down",
      });
    });
    this.#stopping.set(key, timer);
  }

  onReport(listener: (report: WorkloadReport) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #host(hostId: string): Map<string, "booting" | "running" | "stopping"> {
    const host = this.#hosts.get(hostId);
    if (host === undefined) throw new UnknownSimHostError(hostId);
    return host;
  }

  #emit(report: WorkloadReport): void {
    for (const listener of [...this.#listeners]) listener(report);
  }
}
