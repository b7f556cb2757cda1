/**
 * The HostGateway port: how the broker tells hosts to run and stop workloads, and hears back.
 * The embedded broker uses an in-process simulated fleet; the Host agents issue puts agents over
 * the Bus (NATS) behind the same port.
 */
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
}

export interface HostGateway {
  /** Asks `hostId` to start a workload; resolves when the host accepted (RUNNING is reported later). */
  start(hostId: string, workload: WorkloadSpec): Promise<void>;
  /** Asks `hostId` to stop a workload; resolves when accepted (STOPPED is reported later). */
  stop(hostId: string, leaseId: string, options: StopOptions): Promise<void>;
  /** Subscribes to workload reports from every host. */
  onReport(listener: (report: WorkloadReport) => void): () => void;
}
