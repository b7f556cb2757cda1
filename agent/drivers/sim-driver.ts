/**
 * The sim driver: VMs as in-memory objects, for tests, demos and the simulator. Each VM has a boot
 * time, a memory size, a resident size, a writable working set and a page-dirty rate, so that a
 * migration has something realistic to move. Every delay runs on the Clock port and every random
 * figure is drawn from a stream seeded by (driver seed, lease id): under a VirtualClock and a seed
 * a run is exactly reproducible, whatever order the leases arrive in.
 *
 * States: STARTING → RUNNING → STOPPING → STOPPED (FAILED if `fail_start` is set); SUSPENDING →
 * SUSPENDED → RESUMING → RUNNING; INCOMING on a migration's destination.
 *
 * Migration is a simple pre-copy: round 1 sends the resident memory, each next round sends what
 * the guest dirtied meanwhile (at most its working set), until the rest fits the downtime limit
 * (switchover) or the rounds run out (ABORTED). The destination must be a sim driver of the same
 * process (the same SimNetwork); the proper model comes with the Live migration issue.
 *
 * Workloads live in memory: they end with the process.
 */

import { deriveSeed, seededRandom } from "../../bus/index.js";
import { type Clock, type Logger, silentLogger, type Timer } from "../../core/index.js";
import {
  type Driver,
  type DriverEventListener,
  type ExitInfo,
  type IncomingEndpoint,
  type IncomingSpec,
  InvalidWorkloadError,
  type MigrateOutSpec,
  type MigrationPhase,
  type ResourceVector,
  type StopOptions,
  type TransferStats,
  type WorkloadInfo,
  WorkloadNotFoundError,
  type WorkloadSpec,
  type WorkloadState,
  WorkloadStateError,
} from "../driver.js";
import { DriverEvents } from "./driver-events.js";

const MIB = 1024 * 1024;

export interface SimDriverOptions {
  readonly clock: Clock;
  /** Seeds every random figure; default 1. */
  readonly seed?: number | undefined;
  /** Mean boot time when a workload has no `boot_ms` (each VM gets ±20%); default 1 s. */
  readonly bootMs?: number | undefined;
  /** Graceful shutdown time (capped by the stop's grace); default 500 ms. */
  readonly shutdownMs?: number | undefined;
  /** Suspend-to-disk and resume times; default 1 s and 500 ms. */
  readonly suspendMs?: number | undefined;
  readonly resumeMs?: number | undefined;
  /** Migration link speed when the command sets no limit; default 1 Gbit/s. */
  readonly bandwidthBytesPerS?: number | undefined;
  /** Pre-copy rounds before a migration that does not converge is aborted; default 30. */
  readonly maxRounds?: number | undefined;
  /** The address PrepareIncoming answers with; default 127.0.0.1. */
  readonly address?: string | undefined;
  /** Where destinations wait for incoming migrations; default one shared by the process. */
  readonly network?: SimNetwork | undefined;
  readonly logger?: Logger | undefined;
}

/** A destination waiting for an incoming migration. */
interface IncomingHandle {
  complete(migrationId: string): void;
}

/**
 * Rendezvous of sim migrations inside one process: a destination registers an endpoint, the
 * source looks it up at switchover.
 */
export class SimNetwork {
  readonly #endpoints = new Map<string, IncomingHandle>();
  #nextPort = 49152;

  /** @internal */
  open(address: string, handle: IncomingHandle): IncomingEndpoint {
    const port = this.#nextPort;
    this.#nextPort = this.#nextPort >= 65535 ? 49152 : this.#nextPort + 1;
    this.#endpoints.set(`${address}:${port}`, handle);
    return { address, port };
  }

  /** @internal */
  close(endpoint: IncomingEndpoint): void {
    this.#endpoints.delete(`${endpoint.address}:${endpoint.port}`);
  }

  /** @internal */
  lookup(address: string, port: number): IncomingHandle | undefined {
    return this.#endpoints.get(`${address}:${port}`);
  }
}

const sharedNetwork = new SimNetwork();

interface OutgoingMigration {
  readonly spec: MigrateOutSpec;
  readonly acceptedAt: number;
  readonly bandwidth: number;
  dirtyRate: number;
  bytesTransferred: number;
  bytesRemaining: number;
  rounds: number;
  timer: Timer | undefined;
}

interface SimVm {
  readonly spec: WorkloadSpec;
  state: WorkloadState;
  endTime: number | undefined;
  readonly bootMs: number;
  readonly shutdownMs: number;
  readonly failStart: boolean;
  readonly memoryUsedMib: number;
  readonly workingSetMib: number;
  readonly dirtyRateBytesPerS: number;
  readonly cpuUtilization: number;
  /** What `list` reports as details: fixed at creation, made once (heartbeats list every second). */
  readonly details: Readonly<Record<string, string>>;
  startedAt: number | undefined;
  /** The pending lifecycle step (boot, shutdown, suspend, resume). */
  timer: Timer | undefined;
  stopForced: boolean;
  migrationId: string;
  outgoing: OutgoingMigration | undefined;
  incoming: { readonly endpoint: IncomingEndpoint; readonly acceptedAt: number } | undefined;
}

function numberParam(
  params: Readonly<Record<string, string>>,
  key: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = params[key];
  if (raw === undefined || raw.trim() === "") return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > max) {
    throw new InvalidWorkloadError(
      `driver.params.${key}`,
      `must be a number in [0, ${max}], got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

export class SimDriver implements Driver {
  readonly name = "sim";
  readonly #clock: Clock;
  readonly #seed: number;
  readonly #bootMs: number;
  readonly #shutdownMs: number;
  readonly #suspendMs: number;
  readonly #resumeMs: number;
  readonly #bandwidth: number;
  readonly #maxRounds: number;
  readonly #address: string;
  readonly #network: SimNetwork;
  readonly #log: Logger;
  readonly #vms = new Map<string, SimVm>();
  readonly #events: DriverEvents;
  #closed = false;

  constructor(options: SimDriverOptions) {
    this.#clock = options.clock;
    this.#seed = options.seed ?? 1;
    this.#bootMs = options.bootMs ?? 1000;
    this.#shutdownMs = options.shutdownMs ?? 500;
    this.#suspendMs = options.suspendMs ?? 1000;
    this.#resumeMs = options.resumeMs ?? 500;
    this.#bandwidth = options.bandwidthBytesPerS ?? 125_000_000;
    this.#maxRounds = options.maxRounds ?? 30;
    this.#address = options.address ?? "127.0.0.1";
    this.#network = options.network ?? sharedNetwork;
    this.#log = options.logger ?? silentLogger();
    this.#events = new DriverEvents(this.#log);
  }

  onEvent(listener: DriverEventListener): () => void {
    return this.#events.on(listener);
  }

  async start(workload: WorkloadSpec): Promise<void> {
    const existing = this.#vms.get(workload.leaseId);
    if (existing !== undefined) {
      if (existing.state === "STOPPING" || existing.state === "INCOMING") {
        throw new WorkloadStateError(workload.leaseId, existing.state, "start");
      }
      // A repeated start (a retry, or a lease extension) only moves the end.
      existing.endTime = workload.endTime;
      return;
    }
    const vm = this.#createVm(workload);
    this.#vms.set(vm.spec.leaseId, vm);
    this.#emitWorkload(vm, "STARTING", "booting");
    vm.timer = this.#clock.setTimer(vm.bootMs, () => {
      vm.timer = undefined;
      if (vm.failStart) {
        this.#finish(vm, "FAILED", "simulated boot failure (fail_start)", {
          exitCode: 1,
          signal: "",
          forced: false,
          guestInitiated: false,
        });
        return;
      }
      vm.startedAt = this.#clock.now();
      this.#setState(vm, "RUNNING", "booted");
    });
  }

  async stop(leaseId: string, options: StopOptions): Promise<void> {
    const vm = this.#vms.get(leaseId);
    if (vm === undefined) throw new WorkloadNotFoundError("workload", leaseId);
    if (vm.state === "STOPPING") {
      if (options.force && !vm.stopForced) this.#scheduleStop(vm, 0, true);
      return;
    }
    if (vm.outgoing !== undefined) this.#abortOutgoing(vm, "the workload is being stopped");
    if (vm.incoming !== undefined) {
      this.#network.close(vm.incoming.endpoint);
      this.#emitMigration(vm, vm.migrationId, "ABORTED", undefined, {
        error: "the prepared workload was stopped",
        totalTimeMs: this.#clock.now() - vm.incoming.acceptedAt,
      });
      vm.incoming = undefined;
    }
    vm.timer?.cancel();
    vm.timer = undefined;
    this.#setState(vm, "STOPPING", options.reason === "" ? "stopping" : options.reason);
    const graceful = Math.min(vm.shutdownMs, Math.max(0, options.graceMs));
    const forced = options.force || vm.shutdownMs > options.graceMs;
    this.#scheduleStop(vm, options.force ? 0 : graceful, forced);
  }

  async list(): Promise<WorkloadInfo[]> {
    return [...this.#vms.values()]
      .sort((a, b) => (a.spec.leaseId < b.spec.leaseId ? -1 : 1))
      .map((vm) => ({
        leaseId: vm.spec.leaseId,
        state: vm.state,
        resources: vm.spec.resources,
        memoryUsedMib: vm.memoryUsedMib,
        startedAt: vm.startedAt,
        endTime: vm.endTime,
        migrationId: vm.migrationId,
        details: vm.details,
      }));
  }

  async usage(): Promise<ResourceVector> {
    let cpuMillis = 0;
    let memoryMib = 0;
    let diskGib = 0;
    let gpus = 0;
    for (const vm of this.#vms.values()) {
      if (vm.state !== "SUSPENDED" && vm.state !== "INCOMING") {
        cpuMillis += Math.round(vm.spec.resources.cpuMillis * vm.cpuUtilization);
        memoryMib += vm.memoryUsedMib;
      }
      diskGib += vm.spec.resources.diskGib;
      gpus += vm.spec.resources.gpus;
    }
    return { cpuMillis, memoryMib, diskGib, gpus };
  }

  async prepareIncoming(spec: IncomingSpec): Promise<IncomingEndpoint> {
    const existing = this.#vms.get(spec.leaseId);
    if (existing !== undefined) {
      // A retried PrepareIncoming of the same migration answers with the same endpoint.
      if (existing.incoming !== undefined && existing.migrationId === spec.migrationId) {
        return existing.incoming.endpoint;
      }
      throw new WorkloadStateError(spec.leaseId, existing.state, "prepare-incoming");
    }
    const vm = this.#createVm(spec);
    vm.state = "INCOMING";
    vm.migrationId = spec.migrationId;
    const endpoint = this.#network.open(this.#address, {
      complete: (migrationId) => this.#completeIncoming(vm, migrationId),
    });
    vm.incoming = { endpoint, acceptedAt: this.#clock.now() };
    this.#vms.set(spec.leaseId, vm);
    this.#emitWorkload(vm, "INCOMING", "waiting for the incoming migration");
    return endpoint;
  }

  async migrateOut(spec: MigrateOutSpec): Promise<void> {
    const vm = this.#vms.get(spec.leaseId);
    if (vm === undefined) throw new WorkloadNotFoundError("workload", spec.leaseId);
    if (vm.outgoing !== undefined && vm.outgoing.spec.migrationId === spec.migrationId) return;
    if (vm.state !== "RUNNING" || vm.outgoing !== undefined) {
      throw new WorkloadStateError(spec.leaseId, vm.state, "migrate-out");
    }
    if (!(spec.downtimeLimitMs > 0)) {
      throw new InvalidWorkloadError("migrate_out.downtime_limit", "must be > 0");
    }
    const link = this.#bandwidth;
    const bandwidth =
      spec.bandwidthLimitBytesPerS > 0 ? Math.min(spec.bandwidthLimitBytesPerS, link) : link;
    vm.migrationId = spec.migrationId;
    vm.outgoing = {
      spec,
      acceptedAt: this.#clock.now(),
      bandwidth,
      dirtyRate: vm.dirtyRateBytesPerS,
      bytesTransferred: 0,
      bytesRemaining: vm.memoryUsedMib * MIB,
      rounds: 0,
      timer: undefined,
    };
    // A real source learns that the destination is unreachable when it connects, not when it
    // accepts the command: the failure is reported as ABORTED, asynchronously.
    if (this.#network.lookup(spec.destinationAddress, spec.destinationPort) === undefined) {
      const outgoing = vm.outgoing;
      outgoing.timer = this.#clock.setTimer(0, () => {
        outgoing.timer = undefined;
        this.#abortOutgoing(
          vm,
          `destination ${spec.destinationAddress}:${spec.destinationPort} is not reachable (sim migrations need both hosts in one process)`,
        );
      });
      return;
    }
    this.#emitMigration(vm, spec.migrationId, "TRANSFERRING", vm.outgoing, {});
    this.#nextRound(vm, vm.outgoing);
  }

  async abortMigration(migrationId: string, leaseId: string, reason: string): Promise<void> {
    const vm = this.#vms.get(leaseId);
    if (vm === undefined || vm.migrationId !== migrationId) {
      throw new WorkloadNotFoundError("migration", migrationId);
    }
    const why = reason === "" ? "aborted" : reason;
    if (vm.outgoing !== undefined) {
      this.#abortOutgoing(vm, why);
      return;
    }
    if (vm.incoming !== undefined) {
      this.#network.close(vm.incoming.endpoint);
      const totalTimeMs = this.#clock.now() - vm.incoming.acceptedAt;
      vm.incoming = undefined;
      this.#emitMigration(vm, migrationId, "ABORTED", undefined, { error: why, totalTimeMs });
      this.#finish(vm, "STOPPED", `discarded: ${why}`, {
        exitCode: 0,
        signal: "",
        forced: false,
        guestInitiated: false,
      });
      return;
    }
    throw new WorkloadNotFoundError("migration", migrationId);
  }

  async suspend(leaseId: string): Promise<void> {
    const vm = this.#require(leaseId);
    if (vm.state === "SUSPENDING" || vm.state === "SUSPENDED") return;
    if (vm.state !== "RUNNING" || vm.outgoing !== undefined) {
      throw new WorkloadStateError(leaseId, vm.state, "suspend");
    }
    this.#setState(vm, "SUSPENDING", "suspending to disk");
    vm.timer = this.#clock.setTimer(this.#suspendMs, () => {
      vm.timer = undefined;
      this.#setState(vm, "SUSPENDED", "suspended to disk");
    });
  }

  async resume(leaseId: string): Promise<void> {
    const vm = this.#require(leaseId);
    if (vm.state === "RESUMING" || vm.state === "RUNNING") return;
    if (vm.state !== "SUSPENDED") throw new WorkloadStateError(leaseId, vm.state, "resume");
    this.#setState(vm, "RESUMING", "resuming from disk");
    vm.timer = this.#clock.setTimer(this.#resumeMs, () => {
      vm.timer = undefined;
      this.#setState(vm, "RUNNING", "resumed");
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const vm of this.#vms.values()) {
      vm.timer?.cancel();
      vm.outgoing?.timer?.cancel();
      if (vm.incoming !== undefined) this.#network.close(vm.incoming.endpoint);
    }
    this.#vms.clear();
    this.#events.close();
  }

  // -------------------------------------------------------------------------------------------

  #createVm(workload: WorkloadSpec): SimVm {
    const { params, resources } = workload;
    const random = seededRandom(deriveSeed(this.#seed, workload.leaseId));
    // Draw every figure in a fixed order whether or not a parameter overrides it, so that one
    // parameter does not shift the others.
    const bootJitter = 0.8 + 0.4 * random();
    const workingSetShare = 0.1 + 0.3 * random();
    const dirtyShare = 0.005 + 0.02 * random();
    const residentShare = 0.5 + 0.4 * random();
    const cpuUtilization = 0.2 + 0.7 * random();

    const memoryMib = resources.memoryMib;
    const workingSetMib =
      numberParam(params, "working_set_mib", memoryMib) ?? Math.round(memoryMib * workingSetShare);
    const memoryUsedMib = Math.min(
      memoryMib,
      Math.max(workingSetMib, Math.round(memoryMib * residentShare)),
    );
    const bootMs = Math.round(numberParam(params, "boot_ms") ?? this.#bootMs * bootJitter);
    const dirtyRateBytesPerS = Math.round(
      numberParam(params, "dirty_rate_bytes_per_s") ?? memoryMib * MIB * dirtyShare,
    );
    return {
      spec: workload,
      state: "STARTING",
      endTime: workload.endTime,
      bootMs,
      shutdownMs: Math.round(numberParam(params, "shutdown_ms") ?? this.#shutdownMs),
      failStart: params.fail_start === "true",
      memoryUsedMib,
      workingSetMib,
      dirtyRateBytesPerS,
      cpuUtilization,
      details: Object.freeze({
        driver: "sim",
        boot_ms: String(bootMs),
        working_set_mib: String(workingSetMib),
        dirty_rate_bytes_per_s: String(dirtyRateBytesPerS),
      }),
      startedAt: undefined,
      timer: undefined,
      stopForced: false,
      migrationId: "",
      outgoing: undefined,
      incoming: undefined,
    };
  }

  #require(leaseId: string): SimVm {
    const vm = this.#vms.get(leaseId);
    if (vm === undefined) throw new WorkloadNotFoundError("workload", leaseId);
    return vm;
  }

  #scheduleStop(vm: SimVm, afterMs: number, forced: boolean): void {
    vm.timer?.cancel();
    vm.stopForced = forced;
    vm.timer = this.#clock.setTimer(afterMs, () => {
      vm.timer = undefined;
      this.#finish(vm, "STOPPED", forced ? "killed" : "shut down", {
        exitCode: forced ? -1 : 0,
        signal: forced ? "SIGKILL" : "",
        forced,
        guestInitiated: false,
      });
    });
  }

  #nextRound(vm: SimVm, m: OutgoingMigration): void {
    const roundMs = (m.bytesRemaining / m.bandwidth) * 1000;
    m.timer = this.#clock.setTimer(roundMs, () => {
      m.timer = undefined;
      m.rounds += 1;
      m.bytesTransferred += m.bytesRemaining;
      // What the guest wrote during the round must be sent again; it rewrites its working set
      // over and over, so that is the most a round can leave behind.
      m.bytesRemaining = Math.min(
        Math.round((m.dirtyRate * roundMs) / 1000),
        vm.workingSetMib * MIB,
      );
      // Auto-converge throttles the guest's CPU, and with it the dirty rate, round after round.
      if (m.spec.autoConverge && m.rounds >= 3) m.dirtyRate = Math.round(m.dirtyRate * 0.7);
      const downtimeMs = (m.bytesRemaining / m.bandwidth) * 1000;
      this.#emitMigration(vm, m.spec.migrationId, "TRANSFERRING", m, {});
      if (downtimeMs <= m.spec.downtimeLimitMs) {
        this.#switchover(vm, m, downtimeMs);
      } else if (m.rounds >= this.#maxRounds) {
        this.#abortOutgoing(
          vm,
          `did not converge: ${Math.round(m.bytesRemaining / MIB)} MiB still dirty after ${m.rounds} rounds`,
        );
      } else {
        this.#nextRound(vm, m);
      }
    });
  }

  #switchover(vm: SimVm, m: OutgoingMigration, downtimeMs: number): void {
    this.#emitMigration(vm, m.spec.migrationId, "SWITCHOVER", m, {});
    m.timer = this.#clock.setTimer(downtimeMs, () => {
      m.timer = undefined;
      const destination = this.#network.lookup(m.spec.destinationAddress, m.spec.destinationPort);
      if (destination === undefined) {
        this.#abortOutgoing(vm, "the destination went away during switchover");
        return;
      }
      m.bytesTransferred += m.bytesRemaining;
      m.bytesRemaining = 0;
      vm.outgoing = undefined;
      this.#emitMigration(vm, m.spec.migrationId, "COMPLETED", m, {
        downtimeMs: Math.round(downtimeMs),
        totalTimeMs: this.#clock.now() - m.acceptedAt,
      });
      this.#finish(vm, "STOPPED", `migrated to ${m.spec.destinationHostId}`, {
        exitCode: 0,
        signal: "",
        forced: false,
        guestInitiated: false,
      });
      destination.complete(m.spec.migrationId);
    });
  }

  #abortOutgoing(vm: SimVm, error: string): void {
    const m = vm.outgoing;
    if (m === undefined) return;
    m.timer?.cancel();
    vm.outgoing = undefined;
    vm.migrationId = "";
    this.#emitMigration(vm, m.spec.migrationId, "ABORTED", m, {
      error,
      totalTimeMs: this.#clock.now() - m.acceptedAt,
    });
  }

  #completeIncoming(vm: SimVm, migrationId: string): void {
    const incoming = vm.incoming;
    if (incoming === undefined || vm.migrationId !== migrationId) return;
    this.#network.close(incoming.endpoint);
    vm.incoming = undefined;
    vm.startedAt = this.#clock.now();
    this.#setState(vm, "RUNNING", "migrated in");
    this.#emitMigration(vm, migrationId, "COMPLETED", undefined, {
      totalTimeMs: this.#clock.now() - incoming.acceptedAt,
    });
    vm.migrationId = "";
  }

  #setState(vm: SimVm, state: WorkloadState, message: string): void {
    vm.state = state;
    this.#emitWorkload(vm, state, message);
  }

  /** Moves to a terminal state and forgets the VM. */
  #finish(vm: SimVm, state: "STOPPED" | "FAILED", message: string, exit: ExitInfo): void {
    vm.state = state;
    this.#vms.delete(vm.spec.leaseId);
    this.#emitWorkload(vm, state, message, exit);
  }

  #emitWorkload(vm: SimVm, state: WorkloadState, message: string, exit?: ExitInfo): void {
    this.#events.workload(vm.spec.leaseId, vm.migrationId, state, message, exit);
  }

  #emitMigration(
    vm: SimVm,
    migrationId: string,
    phase: MigrationPhase,
    m: OutgoingMigration | undefined,
    extra: { error?: string; downtimeMs?: number; totalTimeMs?: number },
  ): void {
    const stats: TransferStats =
      m === undefined
        ? {
            bytesTransferred: 0,
            bytesRemaining: 0,
            rounds: 0,
            dirtyRateBytesPerS: 0,
            bandwidthBytesPerS: 0,
            expectedDowntimeMs: 0,
          }
        : {
            bytesTransferred: m.bytesTransferred,
            bytesRemaining: m.bytesRemaining,
            rounds: m.rounds,
            dirtyRateBytesPerS: m.dirtyRate,
            bandwidthBytesPerS: m.bandwidth,
            expectedDowntimeMs: Math.round((m.bytesRemaining / m.bandwidth) * 1000),
          };
    this.#events.migration(vm.spec.leaseId, migrationId, phase, stats, extra);
  }
}
