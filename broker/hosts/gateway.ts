/**
 * The HostGateway port: how the broker tells hosts to run and stop workloads, and hears back.
 * The embedded broker uses an in-process simulated fleet; the Host agents issue puts agents over
 * the Bus (NATS) behind the same port.
 */
import type { MigrationPhase, SuspendImage, TransferStats } from "../../agent/index.js";
import type { Resources } from "../../placement/index.js";

export interface WorkloadSpec {
  readonly leaseId: string;
  readonly resources: Resources;
  /** Planned end of the lease (epoch ms), for the host's information. */
  readonly end: number;
  readonly image: string;
  readonly params: Readonly<Record<string, string>>;
}

export interface StopOptions {
  /** Time the workload gets to shut down by itself before it is killed. */
  readonly graceMs: number;
  readonly force: boolean;
}

/** What a host reports about one workload. */
export type WorkloadState = "RUNNING" | "STOPPED" | "FAILED";

export interface WorkloadReport {
  readonly hostId: string;
  readonly leaseId: string;
  readonly state: WorkloadState;
  readonly message: string;
  /** The migration that caused the change (the source's STOPPED after a switchover); "" if none. */
  readonly migrationId?: string;
}

/** The destination side of a live migration (PrepareIncoming). */
export interface IncomingWorkload extends WorkloadSpec {
  readonly migrationId: string;
  readonly postCopy: boolean;
}

/** Where the source sends the workload's state. */
export interface IncomingEndpoint {
  readonly address: string;
  readonly port: number;
}

/** The source side of a live migration (MigrateOut). */
export interface OutgoingMigration {
  readonly migrationId: string;
  readonly leaseId: string;
  readonly destinationHostId: string;
  readonly destination: IncomingEndpoint;
  /** Bytes per second; 0 = unlimited. */
  readonly bandwidthLimitBytesPerS: number;
  readonly downtimeLimitMs: number;
  readonly autoConverge: boolean;
  readonly postCopy: boolean;
}

/** Migration phases hosts report, as the agent's drivers do (the contract's MigrationState subset). */
export type { MigrationPhase };

/**
 * Progress of a migration, from the source (every phase) or the destination (its end): the
 * driver's transfer figures, as the agent forwards them.
 */
export interface MigrationReport extends TransferStats {
  readonly hostId: string;
  readonly migrationId: string;
  readonly leaseId: string;
  readonly phase: MigrationPhase;
  /** COMPLETED: the switchover downtime. */
  readonly downtimeMs?: number;
  /** COMPLETED or ABORTED: how long the migration took, as the host measured it. */
  readonly totalTimeMs?: number;
  /** ABORTED: why. */
  readonly error: string;
}

export interface HostGateway {
  /** Asks `hostId` to start a workload; resolves when the host accepted (RUNNING is reported later). */
  start(hostId: string, workload: WorkloadSpec): Promise<void>;
  /** Asks `hostId` to stop a workload; resolves when accepted (STOPPED is reported later). */
  stop(hostId: string, leaseId: string, options: StopOptions): Promise<void>;
  /** Subscribes to workload reports from every host. */
  onReport(listener: (report: WorkloadReport) => void): () => void;
  /** Destination: reserve and wait for an incoming migration; resolves with where to send. */
  prepareIncoming(hostId: string, workload: IncomingWorkload): Promise<IncomingEndpoint>;
  /** Source: start sending the workload; progress comes as migration reports. */
  migrateOut(hostId: string, migration: OutgoingMigration): Promise<void>;
  /** Either side: cancel (the source keeps running, the destination discards). */
  abortMigration(
    hostId: string,
    migrationId: string,
    leaseId: string,
    reason: string,
  ): Promise<void>;
  /** Suspends a running workload to the host's disk. */
  suspend(hostId: string, leaseId: string): Promise<void>;
  /** Resumes a workload suspended on the host (RUNNING is reported later). */
  resume(hostId: string, leaseId: string): Promise<void>;
  /**
   * Source of a resume elsewhere: the host serves the workload's saved state (it stays suspended
   * there, its file kept until a stop discards it); resolves with where to fetch it. Gateways
   * whose hosts keep no saved state files (the simulated fleet) do not have it.
   */
  exportSuspended?(hostId: string, leaseId: string): Promise<SuspendImage>;
  /** Destination of a resume elsewhere: fetch the saved state from `image`, check it, resume. */
  resumeFrom?(hostId: string, workload: WorkloadSpec, image: SuspendImage): Promise<void>;
  /** Subscribes to migration progress from every host. */
  onMigrationReport(listener: (report: MigrationReport) => void): () => void;
}
