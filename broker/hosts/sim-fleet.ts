/**
 * A fleet of simulated hosts in the broker's own process: the embedded stand-in for real agents.
 * Workloads "boot" and "shut down" on the Clock, so a virtual clock drives them in tests.
 */
import { type Clock, Listeners, type Timer } from "../../core/index.js";
import { CommandRejectedError } from "./agent-gateway.js";
import type {
  HostGateway,
  IncomingEndpoint,
  IncomingWorkload,
  MigrationPhase,
  MigrationReport,
  OutgoingMigration,
  StopOptions,
  WorkloadReport,
  WorkloadSpec,
} from "./gateway.js";

const MIB = 1024 * 1024;

type SimState =
  | "booting"
  | "running"
  | "stopping"
  | "incoming"
  | "suspending"
  | "suspended"
  | "resuming";

interface SimMigration {
  readonly spec: OutgoingMigration;
  readonly sourceHostId: string;
  readonly bandwidth: number;
  readonly dirtyRate: number;
  readonly workingSet: number;
  bytesTransferred: number;
  bytesRemaining: number;
  rounds: number;
  timer: Timer | undefined;
}

export interface SimFleetOptions {
  /** Time from start to RUNNING. Default 1 s. */
  readonly bootMs?: number;
  /** Time a graceful stop takes (capped by the grace period). Default 500 ms. */
  readonly shutdownMs?: number;
  /** Hosts that refuse to start workloads (for failure tests). */
  readonly failingHosts?: ReadonlySet<string>;
  /** Migration link speed when a migration sets no limit. Default 1 Gbit/s. */
  readonly bandwidthBytesPerS?: number;
  /** Suspend-to-disk and resume times. Default 1 s and 500 ms. */
  readonly suspendMs?: number;
  readonly resumeMs?: number;
  /** Pre-copy rounds before a migration that does not converge is aborted. Default 30. */
  readonly maxRounds?: number;
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
  readonly #bandwidth: number;
  readonly #suspendMs: number;
  readonly #resumeMs: number;
  readonly #maxRounds: number;
  readonly #hosts = new Map<string, Map<string, SimState>>();
  /** The pending end of each stopping workload, by `host/lease`. */
  readonly #stopping = new Map<string, Timer>();
  readonly #listeners = new Listeners<WorkloadReport>();
  readonly #migrationListeners = new Listeners<MigrationReport>();
  /** Outgoing migrations by migration id. */
  readonly #outgoing = new Map<string, SimMigration>();
  /** Prepared destinations by migration id: host and lease. */
  readonly #incoming = new Map<string, { hostId: string; leaseId: string; port: number }>();
  /** Workload parameters by lease id (dirty rate and working set for migrations). */
  readonly #params = new Map<string, Readonly<Record<string, string>>>();
  readonly #memory = new Map<string, number>();
  #nextPort = 49152;

  constructor(clock: Clock, options: SimFleetOptions = {}) {
    this.#clock = clock;
    this.#bootMs = options.bootMs ?? 1000;
    this.#shutdownMs = options.shutdownMs ?? 500;
    this.#failing = options.failingHosts ?? new Set();
    this.#bandwidth = options.bandwidthBytesPerS ?? 125_000_000;
    this.#suspendMs = options.suspendMs ?? 1000;
    this.#resumeMs = options.resumeMs ?? 500;
    this.#maxRounds = options.maxRounds ?? 30;
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
    this.#params.set(leaseId, workload.params);
    this.#memory.set(leaseId, workload.resources.memoryMib);
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
    for (const m of this.#outgoing.values()) {
      if (m.sourceHostId === hostId && m.spec.leaseId === leaseId)
        this.#abortOutgoing(m, "the workload is being stopped");
    }
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
    return this.#listeners.add(listener);
  }

  onMigrationReport(listener: (report: MigrationReport) => void): () => void {
    return this.#migrationListeners.add(listener);
  }

  async prepareIncoming(hostId: string, workload: IncomingWorkload): Promise<IncomingEndpoint> {
    const host = this.#host(hostId);
    const prepared = this.#incoming.get(workload.migrationId);
    if (prepared !== undefined && prepared.hostId === hostId) {
      return { address: hostId, port: prepared.port };
    }
    if (host.has(workload.leaseId)) {
      throw new CommandRejectedError(hostId, "WRONG_STATE", `lease ${workload.leaseId} is here`);
    }
    host.set(workload.leaseId, "incoming");
    const port = this.#nextPort++;
    this.#incoming.set(workload.migrationId, { hostId, leaseId: workload.leaseId, port });
    return { address: hostId, port };
  }

  /**
   * Pre-copy as the sim driver models it: round 1 sends the memory, each next round what the
   * guest dirtied meanwhile (at most its working set), until the rest fits the downtime limit.
   */
  async migrateOut(hostId: string, spec: OutgoingMigration): Promise<void> {
    const host = this.#host(hostId);
    if (this.#outgoing.has(spec.migrationId)) return;
    if (host.get(spec.leaseId) !== "running") {
      throw new CommandRejectedError(
        hostId,
        "WRONG_STATE",
        `lease ${spec.leaseId} is ${host.get(spec.leaseId) ?? "absent"}`,
      );
    }
    const memory = (this.#memory.get(spec.leaseId) ?? 1024) * MIB;
    const params = this.#params.get(spec.leaseId) ?? {};
    const bandwidth =
      spec.bandwidthLimitBytesPerS > 0
        ? Math.min(spec.bandwidthLimitBytesPerS, this.#bandwidth)
        : this.#bandwidth;
    const m: SimMigration = {
      spec,
      sourceHostId: hostId,
      bandwidth,
      dirtyRate: Number(params.dirty_rate_bytes_per_s ?? memory * 0.01),
      workingSet: Number(params.working_set_mib ?? (memory / MIB) * 0.25) * MIB,
      bytesTransferred: 0,
      bytesRemaining: memory,
      rounds: 0,
      timer: undefined,
    };
    this.#outgoing.set(spec.migrationId, m);
    m.timer = this.#clock.setTimer(0, () => {
      m.timer = undefined;
      const incoming = this.#incoming.get(spec.migrationId);
      if (incoming === undefined || incoming.hostId !== spec.destinationHostId) {
        this.#abortOutgoing(m, `destination ${spec.destinationHostId} is not prepared`);
        return;
      }
      this.#progress(m, "TRANSFERRING");
      this.#round(m);
    });
  }

  async abortMigration(
    hostId: string,
    migrationId: string,
    leaseId: string,
    reason: string,
  ): Promise<void> {
    const m = this.#outgoing.get(migrationId);
    if (m !== undefined && m.sourceHostId === hostId) {
      this.#abortOutgoing(m, reason === "" ? "aborted" : reason);
      return;
    }
    const incoming = this.#incoming.get(migrationId);
    if (incoming !== undefined && incoming.hostId === hostId) {
      this.#incoming.delete(migrationId);
      this.#hosts.get(hostId)?.delete(leaseId);
      return;
    }
    throw new CommandRejectedError(hostId, "NOT_FOUND", `no migration ${migrationId} here`);
  }

  async suspend(hostId: string, leaseId: string): Promise<void> {
    const host = this.#host(hostId);
    const state = host.get(leaseId);
    if (state === "suspending" || state === "suspended") return;
    if (state !== "running")
      throw new CommandRejectedError(
        hostId,
        "WRONG_STATE",
        `lease ${leaseId} is ${state ?? "absent"}`,
      );
    host.set(leaseId, "suspending");
    this.#clock.setTimer(this.#suspendMs, () => {
      if (host.get(leaseId) === "suspending") host.set(leaseId, "suspended");
    });
  }

  async resume(hostId: string, leaseId: string): Promise<void> {
    const host = this.#host(hostId);
    const state = host.get(leaseId);
    if (state === "resuming" || state === "running") return;
    if (state !== "suspended" && state !== "suspending")
      throw new CommandRejectedError(
        hostId,
        "WRONG_STATE",
        `lease ${leaseId} is ${state ?? "absent"}`,
      );
    host.set(leaseId, "resuming");
    this.#clock.setTimer(this.#resumeMs, () => {
      if (host.get(leaseId) !== "resuming") return;
      host.set(leaseId, "running");
      this.#emit({ hostId, leaseId, state: "RUNNING", message: "resumed" });
    });
  }

  #round(m: SimMigration): void {
    const roundMs = (m.bytesRemaining / m.bandwidth) * 1000;
    m.timer = this.#clock.setTimer(roundMs, () => {
      m.timer = undefined;
      m.rounds += 1;
      m.bytesTransferred += m.bytesRemaining;
      m.bytesRemaining = Math.min(Math.round((m.dirtyRate * roundMs) / 1000), m.workingSet);
      const downtimeMs = (m.bytesRemaining / m.bandwidth) * 1000;
      this.#progress(m, "TRANSFERRING");
      if (downtimeMs <= m.spec.downtimeLimitMs) {
        this.#progress(m, "SWITCHOVER");
        m.timer = this.#clock.setTimer(downtimeMs, () => this.#complete(m, downtimeMs));
      } else if (m.rounds >= this.#maxRounds) {
        this.#abortOutgoing(m, `did not converge after ${m.rounds} rounds`);
      } else {
        this.#round(m);
      }
    });
  }

  #complete(m: SimMigration, downtimeMs: number): void {
    m.timer = undefined;
    const { migrationId, leaseId, destinationHostId } = m.spec;
    const incoming = this.#incoming.get(migrationId);
    if (incoming === undefined) {
      this.#abortOutgoing(m, "the destination went away during switchover");
      return;
    }
    this.#outgoing.delete(migrationId);
    this.#incoming.delete(migrationId);
    m.bytesTransferred += m.bytesRemaining;
    m.bytesRemaining = 0;
    this.#progress(m, "COMPLETED", { downtimeMs: Math.round(downtimeMs) });
    this.#hosts.get(m.sourceHostId)?.delete(leaseId);
    this.#emit({
      hostId: m.sourceHostId,
      leaseId,
      state: "STOPPED",
      message: `migrated to ${destinationHostId}`,
      migrationId,
    });
    this.#hosts.get(destinationHostId)?.set(leaseId, "running");
    this.#emit({
      hostId: destinationHostId,
      leaseId,
      state: "RUNNING",
      message: "migrated in",
      migrationId,
    });
  }

  #abortOutgoing(m: SimMigration, error: string): void {
    m.timer?.cancel();
    this.#outgoing.delete(m.spec.migrationId);
    this.#progress(m, "ABORTED", { error });
  }

  #progress(
    m: SimMigration,
    phase: MigrationPhase,
    extra: { downtimeMs?: number; error?: string } = {},
  ): void {
    const report: MigrationReport = {
      hostId: m.sourceHostId,
      migrationId: m.spec.migrationId,
      leaseId: m.spec.leaseId,
      phase,
      bytesTransferred: m.bytesTransferred,
      bytesRemaining: m.bytesRemaining,
      rounds: m.rounds,
      dirtyRateBytesPerS: m.dirtyRate,
      bandwidthBytesPerS: m.bandwidth,
      expectedDowntimeMs: Math.round((m.bytesRemaining / m.bandwidth) * 1000),
      ...(extra.downtimeMs === undefined ? {} : { downtimeMs: extra.downtimeMs }),
      error: extra.error ?? "",
    };
    this.#migrationListeners.emit(report);
  }

  #host(hostId: string): Map<string, SimState> {
    const host = this.#hosts.get(hostId);
    if (host === undefined) throw new UnknownSimHostError(hostId);
    return host;
  }

  #emit(report: WorkloadReport): void {
    this.#listeners.emit(report);
  }
}
