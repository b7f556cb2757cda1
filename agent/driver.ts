/**
 * The Driver port: how an agent runs VMs. `sim` keeps them in memory; `qemu` runs QEMU processes
 * over QMP (drivers/qemu/). Everything is asynchronous and every method returns once the driver
 * has *accepted* the operation: how it ends (RUNNING, STOPPED, a migration COMPLETED) is reported
 * later through `onEvent`, because real operations take seconds to minutes and the agent must keep
 * answering the broker meanwhile.
 *
 * Errors are typed so that the agent maps them to the contract's CommandError without reading
 * messages: WorkloadNotFoundError → NOT_FOUND, WorkloadStateError → WRONG_STATE,
 * InvalidWorkloadError → INVALID, UnsupportedOperationError → DRIVER (with "unsupported"),
 * DriverBusyError → BUSY, any other → DRIVER.
 */
import type { LeaseBrokerErrorOptions } from "../core/index.js";
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from "../core/index.js";

/** A resource vector in the contract's units. */
export interface ResourceVector {
  readonly cpuMillis: number;
  readonly memoryMib: number;
  readonly diskGib: number;
  readonly gpus: number;
}

export const ZERO_RESOURCES: ResourceVector = Object.freeze({
  cpuMillis: 0,
  memoryMib: 0,
  diskGib: 0,
  gpus: 0,
});

/** The driver-side states (the contract's WorkloadState without the prefix). */
export type WorkloadState =
  | "STARTING"
  | "RUNNING"
  | "STOPPING"
  | "STOPPED"
  | "FAILED"
  | "SUSPENDING"
  | "SUSPENDED"
  | "RESUMING"
  | "INCOMING";

/** States a workload never leaves; the driver forgets it once there. */
export const TERMINAL_STATES: ReadonlySet<WorkloadState> = new Set(["STOPPED", "FAILED"]);

/** What to run for a lease. */
export interface WorkloadSpec {
  readonly leaseId: string;
  /** For driver-side naming (the QEMU VM name); may be empty. */
  readonly name: string;
  readonly resources: ResourceVector;
  /** Driver-specific image reference (sim: ignored). */
  readonly image: string;
  /** Driver-specific parameters (sim: `boot_ms`, `dirty_rate_bytes_per_s`, `working_set_mib`). */
  readonly params: Readonly<Record<string, string>>;
  /** The lease's end (epoch ms), if known. */
  readonly endTime: number | undefined;
}

export interface StopOptions {
  /** Time for a graceful shutdown before the workload is killed. */
  readonly graceMs: number;
  /** Kill at once. */
  readonly force: boolean;
  /** Why (logged). */
  readonly reason: string;
}

/** A workload as the driver knows it (for Hello and heartbeats). */
export interface WorkloadInfo {
  readonly leaseId: string;
  readonly state: WorkloadState;
  readonly resources: ResourceVector;
  /** Guest memory in use (what a migration must copy), MiB. */
  readonly memoryUsedMib: number;
  /** When it started on this host (epoch ms). */
  readonly startedAt: number | undefined;
  readonly endTime: number | undefined;
  /** The migration it takes part in, either side; "" if none. */
  readonly migrationId: string;
  /** Host-local details (pid, image, ...), informational. */
  readonly details: Readonly<Record<string, string>>;
}

/** Destination side of a migration. */
export interface IncomingSpec extends WorkloadSpec {
  readonly migrationId: string;
  readonly postCopy: boolean;
}

/** Where the source must send the workload's state. */
export interface IncomingEndpoint {
  readonly address: string;
  readonly port: number;
}

/** Source side of a migration. */
export interface MigrateOutSpec {
  readonly migrationId: string;
  readonly leaseId: string;
  readonly destinationHostId: string;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** Bytes per second; 0 = unlimited (the driver's own link speed). */
  readonly bandwidthLimitBytesPerS: number;
  /** Largest acceptable switchover downtime. */
  readonly downtimeLimitMs: number;
  readonly autoConverge: boolean;
  readonly postCopy: boolean;
}

/** How a workload ended. */
export interface ExitInfo {
  /** Exit code of the workload process; -1 if killed by a signal. */
  readonly exitCode: number;
  /** Signal name (`SIGKILL`) or "". */
  readonly signal: string;
  /** Killed after the grace period, or by a forced stop. */
  readonly forced: boolean;
  /** The guest shut itself down. */
  readonly guestInitiated: boolean;
}

/** Migration phases a driver reports (the contract's MigrationState subset). */
export type MigrationPhase = "TRANSFERRING" | "SWITCHOVER" | "COMPLETED" | "ABORTED";

export interface TransferStats {
  readonly bytesTransferred: number;
  readonly bytesRemaining: number;
  readonly rounds: number;
  readonly dirtyRateBytesPerS: number;
  readonly bandwidthBytesPerS: number;
  /** Downtime a switchover would cause now. */
  readonly expectedDowntimeMs: number;
}

export type DriverEvent =
  | {
      readonly type: "workload";
      readonly leaseId: string;
      readonly state: WorkloadState;
      readonly message: string;
      /** Set for STOPPED and FAILED. */
      readonly exit: ExitInfo | undefined;
      /** The migration that caused the change; "" if none. */
      readonly migrationId: string;
    }
  | {
      readonly type: "migration";
      readonly migrationId: string;
      readonly leaseId: string;
      readonly phase: MigrationPhase;
      readonly stats: TransferStats;
      /** COMPLETED: the switchover downtime. */
      readonly downtimeMs: number | undefined;
      /** COMPLETED/ABORTED: time since the migration was accepted. */
      readonly totalTimeMs: number | undefined;
      /** ABORTED: why; "" otherwise. */
      readonly error: string;
      readonly postCopyUsed: boolean;
    };

export type DriverEventListener = (event: DriverEvent) => void;

/** Where and how another host's agent fetches a workload's saved state (see `exportSuspended`). */
export interface SuspendImage {
  /** TCP address and port the source's agent serves the file on. */
  readonly address: string;
  readonly port: number;
  /** One-time secret the fetcher sends first (hex); anything else gets nothing. */
  readonly token: string;
  readonly sizeBytes: number;
  /** SHA-256 of the file (hex), taken when it was saved. */
  readonly sha256: string;
}

export interface Driver {
  /** `sim`, `qemu`: what Hello reports. */
  readonly name: string;
  /** Listens to workload state changes and migration progress. */
  onEvent(listener: DriverEventListener): () => void;
  /**
   * Starts a workload (STARTING now, RUNNING or FAILED later). Starting a lease that is already
   * present and not stopped changes nothing but its end time: a repeated start is how a lease's
   * extension reaches the host.
   */
  start(workload: WorkloadSpec): Promise<void>;
  /**
   * Stops a workload (STOPPING now, STOPPED later). Throws WorkloadNotFoundError if the lease is
   * not here. Stopping one that is already stopping only escalates a graceful stop to a forced one.
   */
  stop(leaseId: string, options: StopOptions): Promise<void>;
  /** Workloads present (not yet STOPPED or FAILED), by lease id. */
  list(): Promise<WorkloadInfo[]>;
  /** Measured usage of the host by its workloads. */
  usage(): Promise<ResourceVector>;
  /** Reserves and prepares a workload that waits for an incoming migration (INCOMING). */
  prepareIncoming(spec: IncomingSpec): Promise<IncomingEndpoint>;
  /** Starts sending a running workload to a prepared destination; progress comes as events. */
  migrateOut(spec: MigrateOutSpec): Promise<void>;
  /** Aborts a migration on this side (the source keeps running; the destination discards). */
  abortMigration(migrationId: string, leaseId: string, reason: string): Promise<void>;
  /** Suspends a running workload to disk (SUSPENDING, then SUSPENDED). */
  suspend(leaseId: string): Promise<void>;
  /** Resumes a suspended workload (RESUMING, then RUNNING). */
  resume(leaseId: string): Promise<void>;
  /**
   * Serves a workload's saved state to another host (the workload stays SUSPENDED here, its file
   * kept until it is stopped). Drivers without files to move do not have it.
   */
  exportSuspended?(leaseId: string): Promise<SuspendImage>;
  /**
   * Resumes here a workload suspended on another host: fetches its saved state from `image`,
   * checks it, then resumes (RESUMING, then RUNNING; FAILED with the reason if the fetch or the
   * load fails).
   */
  resumeFrom?(workload: WorkloadSpec, image: SuspendImage): Promise<void>;
  /**
   * Releases the driver's own resources (timers, sockets). Real drivers leave workloads running,
   * so that a restarted agent re-attaches to them; the sim driver's workloads end with it.
   */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** The lease (or migration) is not on this host. */
export class WorkloadNotFoundError extends NotFoundError {}

/** The workload's state does not allow the operation. */
export class WorkloadStateError extends FailedPreconditionError {
  constructor(
    readonly leaseId: string,
    readonly state: WorkloadState | undefined,
    what: string,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`${what}: lease ${leaseId} is ${state ?? "absent"}`, options);
  }
}

/** A workload spec or driver parameter breaks its rule. */
export class InvalidWorkloadError extends InvalidArgumentError {}

/** The driver cannot do this at all (e.g. migration before the QEMU driver supports it). */
export class UnsupportedOperationError extends FailedPreconditionError {
  constructor(
    readonly driver: string,
    readonly operation: string,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`the ${driver} driver does not support ${operation}`, options);
  }
}

/** A limit is reached (concurrent migrations); retry later. */
export class DriverBusyError extends ResourceExhaustedError {}

/** The driver failed (the hypervisor's error as cause). */
export class DriverFailedError extends InternalError {}
