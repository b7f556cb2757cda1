/**
 * Per-tenant quotas (the lease manager's AdmissionHook). For each tenant the ledger keeps the step
 * function of the resources its leases hold over time — the same CapacityTimeline a host has — so
 * "held at once, at any instant of the window" is one peak query over the window (O(log n + k)
 * for k breakpoints inside it), not a scan of the tenant's leases. Extended resources are not
 * counted (no quota field names them).
 */
import { ResourceExhaustedError } from "../../core/index.js";
import { CapacityTimeline } from "../../placement/index.js";
import type { AdmissionHook, AdmissionWindow } from "../leases/admission.js";
import type { Lease, LeaseSpec } from "../leases/model.js";
import { HOLDING_STATES, isTerminal } from "../leases/transitions.js";
import type { TenantQuota, TokenSource } from "./identity.js";

const DIMS = ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const;
type Dim = (typeof DIMS)[number];
const QUOTA_NAME: Readonly<Record<Dim, string>> = {
  cpuMillis: "cpu",
  memoryMib: "memory",
  diskGib: "disk",
  gpus: "gpus",
};
const UNIT: Readonly<Record<Dim, string>> = {
  cpuMillis: " millicores",
  memoryMib: " MiB",
  diskGib: " GiB",
  gpus: "",
};

/** A quota refusal: RESOURCE_EXHAUSTED; `quota` names the quota (also in `lb-quota` metadata). */
export class QuotaExceededError extends ResourceExhaustedError {
  constructor(
    readonly tenant: string,
    readonly quota: string,
    why: string,
  ) {
    super(`quota "${quota}" of tenant ${tenant} exceeded: ${why}`);
  }
}

interface Held {
  readonly tenant: string;
  readonly start: number;
  readonly end: number;
  readonly demand: Float64Array;
}

function demandOf(spec: LeaseSpec): Float64Array {
  return Float64Array.from(DIMS.map((d) => spec.resources[d]));
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

export class QuotaLedger implements AdmissionHook {
  readonly #tokens: Pick<TokenSource, "policy">;
  readonly #timelines = new Map<string, CapacityTimeline>();
  readonly #held = new Map<string, Held>();
  readonly #live = new Map<string, Set<string>>();

  constructor(tokens: Pick<TokenSource, "policy">) {
    this.#tokens = tokens;
  }

  #quota(tenant: string): TenantQuota {
    return this.#tokens.policy(tenant).quota;
  }

  #timeline(tenant: string): CapacityTimeline {
    let t = this.#timelines.get(tenant);
    if (t === undefined) {
      t = new CapacityTimeline(DIMS.length);
      this.#timelines.set(tenant, t);
    }
    return t;
  }

  /** What `tenant` holds at its busiest instant of `[start, end)`, per dimension. */
  peak(tenant: string, start: number, end: number): Record<Dim, number> {
    const p = this.#timelines.get(tenant)?.peak(start, end) ?? new Float64Array(DIMS.length);
    return Object.fromEntries(DIMS.map((d, i) => [d, p[i] ?? 0])) as Record<Dim, number>;
  }

  liveLeases(tenant: string): number {
    return this.#live.get(tenant)?.size ?? 0;
  }

  #checkDuration(tenant: string, quota: TenantQuota, durationMs: number): void {
    if (quota.maxDurationMs !== undefined && durationMs > quota.maxDurationMs) {
      throw new QuotaExceededError(
        tenant,
        "max_duration",
        `a lease may last at most ${quota.maxDurationMs / 1000} s; this one would last ${durationMs / 1000} s`,
      );
    }
  }

  #checkHold(tenant: string, quota: TenantQuota, spec: LeaseSpec, window: AdmissionWindow): void {
    if (!(window.end > window.start)) return;
    const peak = this.peak(tenant, window.start, window.end);
    for (const d of DIMS) {
      const limit = quota[d];
      if (limit === undefined) continue;
      const total = peak[d] + spec.resources[d];
      if (total > limit) {
        throw new QuotaExceededError(
          tenant,
          QUOTA_NAME[d],
          `${total}${UNIT[d]} would be held at once within [${iso(window.start)}, ${iso(window.end)}) (${peak[d]} already), over the quota of ${limit}${UNIT[d]}`,
        );
      }
    }
  }

  admit(spec: LeaseSpec, window: AdmissionWindow | undefined): void {
    const quota = this.#quota(spec.tenant);
    this.#checkDuration(spec.tenant, quota, spec.window.durationMs);
    if (quota.leases !== undefined && this.liveLeases(spec.tenant) + 1 > quota.leases) {
      throw new QuotaExceededError(spec.tenant, "leases", `at most ${quota.leases} live leases`);
    }
    if (window !== undefined) this.#checkHold(spec.tenant, quota, spec, window);
  }

  place(lease: Lease, window: AdmissionWindow): void {
    this.#checkHold(lease.spec.tenant, this.#quota(lease.spec.tenant), lease.spec, window);
  }

  extend(lease: Lease, newEnd: number): void {
    const tenant = lease.spec.tenant;
    const quota = this.#quota(tenant);
    this.#checkDuration(tenant, quota, newEnd - lease.start);
    // The lease already holds [start, end): only the added time can raise the peak.
    this.#checkHold(tenant, quota, lease.spec, { start: lease.end, end: newEnd });
  }

  observe(lease: Lease): void {
    const before = this.#held.get(lease.id);
    if (before !== undefined) {
      this.#timeline(before.tenant).remove(before.start, before.end, before.demand);
      this.#held.delete(lease.id);
    }
    // A preempted lease's hold ends at its stop deadline (as in the placement index).
    const end =
      lease.stopDeadline === undefined ? lease.end : Math.min(lease.end, lease.stopDeadline);
    if (HOLDING_STATES.has(lease.state) && lease.hostId !== "" && end > lease.start) {
      const held: Held = {
        tenant: lease.spec.tenant,
        start: lease.start,
        end,
        demand: demandOf(lease.spec),
      };
      this.#timeline(held.tenant).add(held.start, held.end, held.demand);
      this.#held.set(lease.id, held);
    }
    let live = this.#live.get(lease.spec.tenant);
    if (isTerminal(lease.state)) {
      live?.delete(lease.id);
    } else {
      if (live === undefined) {
        live = new Set();
        this.#live.set(lease.spec.tenant, live);
      }
      live.add(lease.id);
    }
  }
}
