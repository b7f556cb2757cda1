/**
 * What a broker Command means on this host: checking its fields against the contract and mapping
 * it to a Driver call, with the driver's typed errors turned into the contract's CommandError.
 * Epoch fencing and idempotency are the agent's (agent.ts): this module acts, once.
 */
import { errorMessage, isLeaseBrokerError, type Logger } from "../core/index.js";
import type {
  Command,
  CommandError,
  DriverParams,
  Resources,
  StartWorkload,
} from "../proto/index.js";
import { msFromDuration, msFromTimestamp } from "../proto/index.js";
import {
  type Driver,
  DriverBusyError,
  type IncomingEndpoint,
  InvalidWorkloadError,
  type ResourceVector,
  type SuspendImage,
  UnsupportedOperationError,
  WorkloadNotFoundError,
  type WorkloadSpec,
  WorkloadStateError,
} from "./driver.js";

/** The result of one command, before it becomes a CommandReply. */
export type CommandOutcome =
  | {
      readonly ok: true;
      readonly incoming?: IncomingEndpoint | undefined;
      readonly suspendImage?: SuspendImage | undefined;
    }
  | { readonly ok: false; readonly error: CommandError; readonly message: string };

export const MAX_IDEMPOTENCY_KEY = 128;
const MAX_ID = 256;
const MAX_GRACE_MS = 10 * 60_000;

export function failure(error: CommandError, message: string): CommandOutcome {
  return { ok: false, error, message };
}

const invalid = (message: string): CommandOutcome => failure("COMMAND_ERROR_INVALID", message);

/** The contract's resource vector as the driver's (extended resources are not run by drivers). */
export function resourceVector(resources: Resources | null): ResourceVector {
  return {
    cpuMillis: resources?.cpuMillis ?? 0,
    memoryMib: resources?.memoryMib ?? 0,
    diskGib: resources?.diskGib ?? 0,
    gpus: resources?.gpus ?? 0,
  };
}

function checkId(value: string, field: string): CommandOutcome | undefined {
  if (value === "") return invalid(`${field} is required`);
  if (value.length > MAX_ID) return invalid(`${field} is longer than ${MAX_ID} characters`);
  return undefined;
}

function checkResources(resources: Resources | null, field: string): CommandOutcome | undefined {
  if (resources === null) return invalid(`${field} is required`);
  const r = resourceVector(resources);
  if (!(r.cpuMillis > 0) || !(r.memoryMib > 0)) {
    return invalid(`${field}: cpu_millis and memory_mib must be > 0`);
  }
  if (r.diskGib < 0 || r.gpus < 0) return invalid(`${field}: components must be >= 0`);
  return undefined;
}

/**
 * Checks the envelope and the member of `command`; an outcome describes the first problem,
 * undefined means valid. `hostId` is this agent's.
 */
export function checkCommand(command: Command, hostId: string): CommandOutcome | undefined {
  const key = command.idempotencyKey;
  if (key === "" || key.length > MAX_IDEMPOTENCY_KEY) {
    return invalid(`idempotency_key must be 1..${MAX_IDEMPOTENCY_KEY} characters`);
  }
  if (command.hostId !== hostId) {
    return failure(
      "COMMAND_ERROR_WRONG_HOST",
      `command for host ${JSON.stringify(command.hostId)} reached ${hostId}`,
    );
  }
  switch (command.kind) {
    case "start": {
      const start = command.start;
      if (start == null) return invalid("start is empty");
      return (
        checkId(start.leaseId, "start.lease_id") ??
        checkResources(start.resources, "start.resources") ??
        (start.endTime === null ? invalid("start.end_time is required") : undefined)
      );
    }
    case "stop": {
      const stop = command.stop;
      if (stop == null) return invalid("stop is empty");
      const graceMs = msFromDuration(stop.grace);
      if (graceMs !== undefined && (graceMs < 0 || graceMs > MAX_GRACE_MS)) {
        return invalid("stop.grace must be within 0..10 minutes");
      }
      return checkId(stop.leaseId, "stop.lease_id");
    }
    case "prepareIncoming": {
      const p = command.prepareIncoming;
      if (p == null) return invalid("prepare_incoming is empty");
      return (
        checkId(p.migrationId, "prepare_incoming.migration_id") ??
        checkId(p.leaseId, "prepare_incoming.lease_id") ??
        checkResources(p.resources, "prepare_incoming.resources")
      );
    }
    case "migrateOut": {
      const m = command.migrateOut;
      if (m == null) return invalid("migrate_out is empty");
      const downtime = msFromDuration(m.downtimeLimit);
      return (
        checkId(m.migrationId, "migrate_out.migration_id") ??
        checkId(m.leaseId, "migrate_out.lease_id") ??
        checkId(m.destinationHostId, "migrate_out.destination_host_id") ??
        checkId(m.destinationAddress, "migrate_out.destination_address") ??
        (m.destinationPort < 1 || m.destinationPort > 65535
          ? invalid("migrate_out.destination_port must be 1..65535")
          : undefined) ??
        (m.bandwidthLimitBytesPerS < 0
          ? invalid("migrate_out.bandwidth_limit_bytes_per_s must be >= 0")
          : undefined) ??
        (downtime === undefined || downtime <= 0
          ? invalid("migrate_out.downtime_limit must be > 0")
          : undefined)
      );
    }
    case "abortMigration": {
      const a = command.abortMigration;
      if (a == null) return invalid("abort_migration is empty");
      return (
        checkId(a.migrationId, "abort_migration.migration_id") ??
        checkId(a.leaseId, "abort_migration.lease_id")
      );
    }
    case "suspend":
      return command.suspend == null
        ? invalid("suspend is empty")
        : checkId(command.suspend.leaseId, "suspend.lease_id");
    case "resume": {
      const r = command.resume;
      if (r == null) return invalid("resume is empty");
      const bad = checkId(r.leaseId, "resume.lease_id");
      if (bad !== undefined || r.from === null) return bad;
      const w = r.workload;
      if (w === null) return invalid("resume.workload is required with resume.from");
      if (w.leaseId !== r.leaseId)
        return invalid("resume.workload.lease_id must be resume.lease_id");
      return (
        checkResources(w.resources, "resume.workload.resources") ??
        checkId(r.from.address, "resume.from.address") ??
        (r.from.port < 1 || r.from.port > 65535
          ? invalid("resume.from.port must be 1..65535")
          : undefined) ??
        (/^[0-9a-f]{64}$/.test(r.from.token)
          ? undefined
          : invalid("resume.from.token must be 64 hex digits")) ??
        (/^[0-9a-f]{64}$/.test(r.from.sha256)
          ? undefined
          : invalid("resume.from.sha256 must be 64 hex digits")) ??
        (Number(r.from.sizeBytes) > 0 ? undefined : invalid("resume.from.size_bytes must be > 0"))
      );
    }
    case "exportSuspended":
      return command.exportSuspended == null
        ? invalid("export_suspended is empty")
        : checkId(command.exportSuspended.leaseId, "export_suspended.lease_id");
    default:
      return invalid("the command has no kind (exactly one is required)");
  }
}

/** The contract's CommandError for a driver failure. */
export function outcomeOfError(error: unknown): CommandOutcome {
  const message = errorMessage(error);
  if (error instanceof WorkloadNotFoundError) return failure("COMMAND_ERROR_NOT_FOUND", message);
  if (error instanceof WorkloadStateError) return failure("COMMAND_ERROR_WRONG_STATE", message);
  if (error instanceof InvalidWorkloadError) return failure("COMMAND_ERROR_INVALID", message);
  if (error instanceof UnsupportedOperationError) return failure("COMMAND_ERROR_DRIVER", message);
  if (error instanceof DriverBusyError) return failure("COMMAND_ERROR_BUSY", message);
  if (isLeaseBrokerError(error)) return failure("COMMAND_ERROR_DRIVER", message);
  return failure("COMMAND_ERROR_INTERNAL", message);
}

function workloadSpec(
  leaseId: string,
  name: string,
  resources: Resources | null,
  driver: DriverParams | null,
  endTime: number | undefined,
): WorkloadSpec {
  return {
    leaseId,
    name,
    resources: resourceVector(resources),
    image: driver?.image ?? "",
    params: { ...(driver?.params ?? {}) },
    endTime,
  };
}

/** The workload a StartWorkload describes (a start, and a resume from another host). */
function startedSpec(s: StartWorkload): WorkloadSpec {
  return workloadSpec(s.leaseId, s.name, s.resources, s.driver, msFromTimestamp(s.endTime));
}

export interface ExecuteContext {
  readonly driver: Driver;
  /** Grace of a StopWorkload that sets none. */
  readonly defaultGraceMs: number;
  /** Whether `demand` fits next to what runs; a reason if not (INSUFFICIENT_RESOURCES). */
  readonly checkFit: (leaseId: string, demand: ResourceVector) => Promise<string | undefined>;
  /** A stop for a lease that is not here: the agent reports it STOPPED (see agent.ts). */
  readonly onStopUnknown: (leaseId: string) => void;
  readonly log: Logger;
}

/** Runs a checked command against the driver. Never throws. */
export async function executeCommand(
  command: Command,
  context: ExecuteContext,
): Promise<CommandOutcome> {
  const { driver } = context;
  try {
    switch (command.kind) {
      case "start": {
        const s = command.start;
        if (s == null) break;
        const spec = startedSpec(s);
        const misfit = await context.checkFit(spec.leaseId, spec.resources);
        if (misfit !== undefined) return failure("COMMAND_ERROR_INSUFFICIENT_RESOURCES", misfit);
        await driver.start(spec);
        return { ok: true };
      }
      case "stop": {
        const s = command.stop;
        if (s == null) break;
        try {
          await driver.stop(s.leaseId, {
            graceMs: msFromDuration(s.grace) ?? context.defaultGraceMs,
            force: s.force,
            reason: s.reason,
          });
        } catch (error) {
          // Stopping what is not here has the effect asked for: say so, and report it STOPPED so
          // that a broker waiting for the event (after an agent restart, say) moves on.
          if (!(error instanceof WorkloadNotFoundError)) throw error;
          context.onStopUnknown(s.leaseId);
        }
        return { ok: true };
      }
      case "prepareIncoming": {
        const p = command.prepareIncoming;
        if (p == null) break;
        const spec = workloadSpec(p.leaseId, "", p.resources, p.driver, msFromTimestamp(p.endTime));
        const misfit = await context.checkFit(spec.leaseId, spec.resources);
        if (misfit !== undefined) return failure("COMMAND_ERROR_INSUFFICIENT_RESOURCES", misfit);
        const incoming = await driver.prepareIncoming({
          ...spec,
          migrationId: p.migrationId,
          postCopy: p.postCopy,
        });
        return { ok: true, incoming };
      }
      case "migrateOut": {
        const m = command.migrateOut;
        if (m == null) break;
        await driver.migrateOut({
          migrationId: m.migrationId,
          leaseId: m.leaseId,
          destinationHostId: m.destinationHostId,
          destinationAddress: m.destinationAddress,
          destinationPort: m.destinationPort,
          bandwidthLimitBytesPerS: m.bandwidthLimitBytesPerS,
          downtimeLimitMs: msFromDuration(m.downtimeLimit) ?? 0,
          autoConverge: m.autoConverge,
          postCopy: m.postCopy,
        });
        return { ok: true };
      }
      case "abortMigration": {
        const a = command.abortMigration;
        if (a == null) break;
        await driver.abortMigration(a.migrationId, a.leaseId, a.reason);
        return { ok: true };
      }
      case "suspend": {
        if (command.suspend == null) break;
        await driver.suspend(command.suspend.leaseId);
        return { ok: true };
      }
      case "resume": {
        const r = command.resume;
        if (r == null) break;
        if (r.from === null || r.workload === null) {
          await driver.resume(r.leaseId);
          return { ok: true };
        }
        if (driver.resumeFrom === undefined) {
          throw new UnsupportedOperationError(driver.name, "resuming from another host");
        }
        const spec = startedSpec(r.workload);
        const misfit = await context.checkFit(spec.leaseId, spec.resources);
        if (misfit !== undefined) return failure("COMMAND_ERROR_INSUFFICIENT_RESOURCES", misfit);
        await driver.resumeFrom(spec, {
          address: r.from.address,
          port: r.from.port,
          token: r.from.token,
          sizeBytes: Number(r.from.sizeBytes),
          sha256: r.from.sha256,
        });
        return { ok: true };
      }
      case "exportSuspended": {
        const e = command.exportSuspended;
        if (e == null) break;
        if (driver.exportSuspended === undefined) {
          throw new UnsupportedOperationError(driver.name, "exporting a suspended workload");
        }
        return { ok: true, suspendImage: await driver.exportSuspended(e.leaseId) };
      }
      default:
        break;
    }
    return invalid("the command has no kind (exactly one is required)");
  } catch (error) {
    const outcome = outcomeOfError(error);
    context.log.warn(
      { kind: command.kind, key: command.idempotencyKey, err: error },
      `command failed: ${errorMessage(error)}`,
    );
    return outcome;
  }
}
