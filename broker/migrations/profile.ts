/**
 * What the pre-copy model should assume of a lease's workload: the figures its driver parameters
 * give (the sim driver's `dirty_rate_bytes_per_s` and `working_set_mib`, which the qemu driver
 * may learn to report too), the lease's downtime limit and the migration bandwidth cap; the rest
 * is `DEFAULT_WORKLOAD_PROFILE`. Used for the prediction in a migration's record and by the
 * planners (their cost of a move).
 */
import {
  type PreCopyResult,
  predictForMemory,
  type WorkloadProfile,
} from "../../migration/index.js";
import type { Lease } from "../leases/model.js";
import type { MigrationPrediction } from "./model.js";

/** The sim driver's link speed (its default `bandwidthBytesPerS`): 1 Gbit/s. */
export const SIM_LINK_BYTES_PER_S = 125_000_000;

export interface ProfileContext {
  /** The migration bandwidth cap (0 = the link: `linkBytesPerS`). */
  readonly bandwidthBytesPerS: number;
  /** The link's speed when nothing caps it. Default: the sim driver's (1 Gbit/s). */
  readonly linkBytesPerS?: number;
  /** The downtime limit when the lease sets none. */
  readonly defaultMaxDowntimeMs: number;
}

function param(params: Readonly<Record<string, string>>, key: string): number | undefined {
  const raw = params[key];
  if (raw === undefined || raw === "") return undefined;
  const v = Number(raw);
  return Number.isFinite(v) && v >= 0 ? v : undefined;
}

export function workloadProfileOf(lease: Lease, ctx: ProfileContext): Partial<WorkloadProfile> {
  const memoryMib = lease.spec.resources.memoryMib;
  const params = lease.spec.driver.params;
  const link = ctx.linkBytesPerS ?? SIM_LINK_BYTES_PER_S;
  const cap = ctx.bandwidthBytesPerS;
  const policy = lease.spec.migration;
  const dirty = param(params, "dirty_rate_bytes_per_s");
  const wwsMib = param(params, "working_set_mib");
  return {
    bandwidthBytesPerS: cap > 0 ? Math.min(cap, link) : link,
    downtimeLimitMs: policy.maxDowntimeMs > 0 ? policy.maxDowntimeMs : ctx.defaultMaxDowntimeMs,
    autoConverge: policy.allowAutoConverge,
    postCopy: policy.allowPostCopy,
    ...(dirty === undefined ? {} : { dirtyRateBytesPerS: dirty }),
    ...(wwsMib === undefined || memoryMib === 0
      ? {}
      : { wwsShare: Math.min(1, wwsMib / memoryMib) }),
  };
}

/** The model's prediction for moving `lease` now, as a migration record keeps it. */
export function predictLeaseMigration(lease: Lease, ctx: ProfileContext): MigrationPrediction {
  return predictionOf(
    predictForMemory(lease.spec.resources.memoryMib, workloadProfileOf(lease, ctx)),
  );
}

export function predictionOf(p: PreCopyResult): MigrationPrediction {
  return {
    totalTimeMs: Math.round(p.totalTimeMs),
    downtimeMs: Math.round(p.downtimeMs),
    converges: p.converges,
    rounds: p.rounds,
    bytesTotal: Math.round(p.bytesSent),
  };
}
