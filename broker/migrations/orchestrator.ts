/**
 * The migration orchestrator: carries moves out as live migrations.
 *
 *   PLANNED ──▶ PREPARING ──▶ TRANSFERRING ──▶ SWITCHOVER ──▶ COMPLETED
 *      └────────────┴──────────────┴────────────────┴──────▶ ABORTED (rollback)
 *
 * PLANNED: the lease is MIGRATING and the destination is charged for the rest of the window
 * (both hosts are charged while it moves); the migration waits for a slot (outgoing and incoming
 * per host, cluster-wide). PREPARING: PrepareIncoming to the destination, then MigrateOut to the
 * source. TRANSFERRING and SWITCHOVER follow the source's progress reports. COMPLETED moves the
 * lease and its hold to the destination; ABORTED leaves it on the source and releases the
 * destination's hold, whatever the cause: a host refused or did not answer, the source aborted,
 * no progress within the progress timeout, no completion within 150 s per GiB, the source or
 * destination went DOWN, the lease stopped (cancel, end, failure), or AbortMigration.
 *
 * Every state is a versioned write of the migration record (with the lease's write when the lease
 * changes: one transaction). After a broker restart with the same store, PLANNED migrations wait
 * for their slot again; the ones that had reached a host are resolved by aborting on both hosts
 * (see `#recover`). Timers run on the Clock port.
 *
 * Planners plug in through `execute(moves, reason)`.
 */
import {
  type Clock,
  ConflictError,
  errorMessage,
  FailedPreconditionError,
  Listeners,
  type Logger,
  NotFoundError,
  type Timer,
} from "../../core/index.js";
import type { PlannedMove } from "../../migration/index.js";
import { CommandRejectedError } from "../hosts/agent-gateway.js";
import type { HostGateway, MigrationReport, WorkloadReport } from "../hosts/gateway.js";
import type { HostRegistry } from "../hosts/registry.js";
import type { LeaseChange, LeaseManager, MigrationOutcome } from "../leases/lease-manager.js";
import type { Lease } from "../leases/model.js";
import { pageSize } from "../paging.js";
import {
  type BrokerSchema,
  type BrokerStore,
  forEachObject,
  type Versioned,
  type WriteOp,
} from "../store/index.js";
import {
  isFinished,
  type Migration,
  type MigrationReason,
  type MigrationState,
  type TransferProgress,
} from "./model.js";
import { predictLeaseMigration } from "./profile.js";

export interface MigrationLimits {
  /** Migrations leaving one host at a time. Default 2. */
  readonly maxOutgoingPerHost: number;
  /** Migrations arriving at one host at a time. Default 2. */
  readonly maxIncomingPerHost: number;
  /** Migrations in flight in the cluster. Default 8. */
  readonly maxInFlight: number;
  /** Transfer bandwidth cap per migration, bytes per second; 0 = unlimited. Default 0. */
  readonly bandwidthBytesPerS: number;
  /** Switchover downtime limit when the lease sets none. Default 300 ms (QEMU's default). */
  readonly defaultMaxDowntimeMs: number;
  /** Aborted when no progress is reported for this long. Default 150 s (KubeVirt). */
  readonly progressTimeoutMs: number;
  /** Aborted when not completed within this much per GiB of memory. Default 150 s (KubeVirt). */
  readonly completionMsPerGib: number;
  /** The least completion timeout, for small workloads. Default 30 s. */
  readonly minCompletionMs: number;
  /** DrainHost without a deadline: now + this. Default 1 h. */
  readonly drainTimeoutMs: number;
}

export const DEFAULT_MIGRATION_LIMITS: MigrationLimits = {
  maxOutgoingPerHost: 2,
  maxIncomingPerHost: 2,
  maxInFlight: 8,
  bandwidthBytesPerS: 0,
  defaultMaxDowntimeMs: 300,
  progressTimeoutMs: 150_000,
  completionMsPerGib: 150_000,
  minCompletionMs: 30_000,
  drainTimeoutMs: 3_600_000,
};

export interface OrchestratorDeps {
  readonly store: BrokerStore;
  readonly clock: Clock;
  readonly leases: LeaseManager;
  readonly hosts: HostRegistry;
  readonly gateway: HostGateway;
  readonly logger: Logger;
  readonly newId: () => string;
  readonly limits?: Partial<MigrationLimits>;
}

export interface MigrateRequest {
  readonly leaseId: string;
  /** Empty or absent: the placer picks a host other than the source. */
  readonly toHostId?: string;
  /** The host the planner saw the lease on (checked). */
  readonly fromHostId?: string;
  readonly reason: MigrationReason;
  readonly expectedRevision?: number;
}

export interface ExecuteResult {
  /** The migrations started, in the order of the moves. */
  readonly started: readonly Migration[];
  /** Moves that could not start, and why. */
  readonly refused: readonly { readonly move: PlannedMove; readonly error: Error }[];
}

export interface MigrationQuery {
  readonly leaseId?: string;
  /** From or to this host. */
  readonly hostId?: string;
  readonly states?: readonly MigrationState[];
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface MigrationPage {
  /** Newest first. */
  readonly migrations: readonly Versioned<Migration>[];
  readonly nextPageToken: string;
}

/** What the orchestrator keeps of a migration that has not finished. */
interface InFlight {
  /** Set once the migration is being ended: later reports and timers change nothing. */
  ending: boolean;
  progressTimer: Timer | undefined;
  completionTimer: Timer | undefined;
  /** Armed once the destination runs it: the wait for the source's COMPLETED and its figures. */
  sourceFiguresTimer?: Timer | undefined;
}

const MIB = 1024 * 1024;
/**
 * How long a migration the destination finished waits for the source's COMPLETED (the downtime
 * and total time QEMU measured): ending it at once moves the lease, and the broker then stops the
 * source's QEMU before its report goes out.
 */
const SOURCE_FIGURES_GRACE_MS = 5000;

/** The lease's driver parameter that caps its migrations' bandwidth, bytes per second. */
export const MIGRATION_BANDWIDTH_PARAM = "migration_bandwidth_bytes_per_s";

/**
 * The bandwidth cap of a lease's migration: the cluster's (0 = unlimited), lowered by the lease's
 * `migration_bandwidth_bytes_per_s` parameter when that is a positive integer (the API's
 * MigrateLease has no such field; a slow transfer is what an operator asks for this way).
 */
export function leaseBandwidthLimit(lease: Lease, clusterLimit: number): number {
  const raw = lease.spec.driver.params[MIGRATION_BANDWIDTH_PARAM];
  const asked = raw === undefined || !/^[1-9]\d*$/.test(raw) ? 0 : Number(raw);
  if (asked === 0) return clusterLimit;
  return clusterLimit > 0 ? Math.min(clusterLimit, asked) : asked;
}

export class MigrationOrchestrator {
  readonly limits: MigrationLimits;
  readonly #store: BrokerStore;
  readonly #clock: Clock;
  readonly #leases: LeaseManager;
  readonly #hosts: HostRegistry;
  readonly #gateway: HostGateway;
  readonly #log: Logger;
  readonly #newId: () => string;
  readonly #migrations = new Map<string, Versioned<Migration>>();
  readonly #inFlight = new Map<string, InFlight>();
  /** PLANNED migrations in the order they were created. */
  #planned: string[] = [];
  #tail: Promise<unknown> = Promise.resolve();
  #unsubscribe: (() => void)[] = [];
  readonly #endListeners = new Listeners<Migration>();
  /** Most migrations in flight at once (PREPARING to SWITCHOVER), for benchmarks. */
  peakInFlight = 0;

  constructor(deps: OrchestratorDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#leases = deps.leases;
    this.#hosts = deps.hosts;
    this.#gateway = deps.gateway;
    this.#log = deps.logger;
    this.#newId = deps.newId;
    this.limits = { ...DEFAULT_MIGRATION_LIMITS, ...deps.limits };
  }

  /**
   * Loads the migrations, resolves the ones a previous broker left in flight, and follows hosts
   * and leases. Call after the lease manager has started (it charges the destinations).
   */
  async start(): Promise<void> {
    // A broker that leads again (high availability) starts over from the store.
    this.#migrations.clear();
    this.#inFlight.clear();
    this.#planned = [];
    await forEachObject(this.#store, "migrations", (item) => this.#migrations.set(item.id, item));
    const unfinished = [...this.#migrations.values()]
      .filter((m) => !isFinished(m.value.state))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    this.#unsubscribe.push(
      this.#gateway.onMigrationReport((r) => this.#onMigrationReport(r)),
      this.#gateway.onReport((r) => this.#onWorkloadReport(r)),
      this.#leases.onChange((c) => this.#onLeaseChange(c)),
      this.#hosts.onStateChanged((hostId, state) => {
        if (state === "DOWN") this.#onHostDown(hostId);
      }),
    );
    for (const m of unfinished) {
      this.#inFlight.set(m.id, {
        ending: false,
        progressTimer: undefined,
        completionTimer: undefined,
      });
      if (m.value.state === "PLANNED") this.#planned.push(m.id);
      else void this.#recover(m.id);
    }
    this.#schedule();
  }

  stop(): void {
    for (const f of this.#inFlight.values()) this.#clearTimers(f);
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
  }

  // ── reads ──────────────────────────────────────────────────────────────────────────────────

  get(id: string): Versioned<Migration> {
    const item = this.#migrations.get(id);
    if (item === undefined) throw new NotFoundError("migration", id);
    return item;
  }

  /** Migrations not yet COMPLETED or ABORTED. */
  unfinished(): Migration[] {
    return [...this.#inFlight.keys()].map((id) => this.get(id).value);
  }

  /** Newest first (ids sort by creation time); the page token is the last id of a page. */
  list(query: MigrationQuery = {}): MigrationPage {
    const size = pageSize(query.pageSize);
    const states =
      query.states === undefined || query.states.length === 0 ? undefined : new Set(query.states);
    const token = query.pageToken ?? "";
    const ids = [...this.#migrations.keys()].sort().reverse();
    const out: Versioned<Migration>[] = [];
    let more = false;
    for (const id of ids) {
      if (token !== "" && id >= token) continue;
      const item = this.#migrations.get(id) as Versioned<Migration>;
      const m = item.value;
      if (query.leaseId !== undefined && query.leaseId !== "" && m.leaseId !== query.leaseId)
        continue;
      if (
        query.hostId !== undefined &&
        query.hostId !== "" &&
        m.fromHostId !== query.hostId &&
        m.toHostId !== query.hostId
      )
        continue;
      if (states !== undefined && !states.has(m.state)) continue;
      if (out.length === size) {
        more = true;
        break;
      }
      out.push(item);
    }
    return { migrations: out, nextPageToken: more ? (out[out.length - 1]?.id ?? "") : "" };
  }

  /** Called with every migration that reaches COMPLETED or ABORTED. */
  onEnd(listener: (migration: Migration) => void): () => void {
    return this.#endListeners.add(listener);
  }

  // ── starting migrations ────────────────────────────────────────────────────────────────────

  /**
   * Starts one migration per move, in order (reason for all of them): the planners' way in. A move
   * that cannot start (the lease moved or stopped, the destination has no room) is refused and the
   * others go on.
   */
  async execute(moves: readonly PlannedMove[], reason: MigrationReason): Promise<ExecuteResult> {
    const started: Migration[] = [];
    const refused: { move: PlannedMove; error: Error }[] = [];
    for (const move of moves) {
      try {
        started.push(
          await this.migrate({
            leaseId: move.leaseId,
            fromHostId: move.fromHostId,
            toHostId: move.toHostId,
            reason,
          }),
        );
      } catch (error) {
        refused.push({ move, error: error instanceof Error ? error : new Error(String(error)) });
      }
    }
    return { started, refused };
  }

  /** Plans one migration (PLANNED: the destination is charged); it starts when a slot frees. */
  migrate(request: MigrateRequest): Promise<Migration> {
    return this.#exclusive(async () => {
      const id = this.#newId();
      const now = this.#clock.now();
      let record: Migration | undefined;
      const { lease } = await this.#leases.beginMigration({
        leaseId: request.leaseId,
        migrationId: id,
        ...(request.toHostId === undefined ? {} : { toHostId: request.toHostId }),
        ...(request.fromHostId === undefined ? {} : { fromHostId: request.fromHostId }),
        ...(request.expectedRevision === undefined
          ? {}
          : { expectedRevision: request.expectedRevision }),
        record: (l, toHostId) => {
          record = this.#newRecord(id, l, toHostId, request.reason, now);
          return this.#put(record, undefined);
        },
      });
      if (record === undefined) throw new Error("beginMigration did not build the record");
      // The lease and the record were written in one transaction: same revision.
      this.#remember(record, lease.revision, undefined);
      this.#inFlight.set(id, {
        ending: false,
        progressTimer: undefined,
        completionTimer: undefined,
      });
      this.#planned.push(id);
      this.#log.info(
        { migration: id, lease: record.leaseId, from: record.fromHostId, to: record.toHostId },
        "migration planned",
      );
      this.#schedule();
      return record;
    });
  }

  /**
   * Aborts a migration that has not finished; the workload stays on the source. `byRequest`
   * (AbortMigration, the default) marks it as wanted: a drain does not retry it.
   */
  async abort(id: string, reason = "", options: { byRequest?: boolean } = {}): Promise<Migration> {
    const m = this.get(id).value;
    if (isFinished(m.state)) {
      throw new FailedPreconditionError(`migration ${id} is ${m.state}: there is nothing to abort`);
    }
    await this.#end(id, {
      kind: "aborted",
      why: reason === "" ? "aborted by request" : reason,
      byRequest: options.byRequest ?? true,
    });
    return this.get(id).value;
  }

  #newRecord(
    id: string,
    lease: Lease,
    toHostId: string,
    reason: MigrationReason,
    now: number,
  ): Migration {
    const policy = lease.spec.migration;
    return {
      id,
      leaseId: lease.id,
      fromHostId: lease.hostId,
      toHostId,
      state: "PLANNED",
      reason,
      createdAt: now,
      startedAt: 0,
      endedAt: 0,
      abortReason: "",
      bandwidthLimitBytesPerS: this.limits.bandwidthBytesPerS,
      maxDowntimeMs:
        policy.maxDowntimeMs > 0 ? policy.maxDowntimeMs : this.limits.defaultMaxDowntimeMs,
      autoConverge: policy.allowAutoConverge,
      postCopy: policy.allowPostCopy,
      resources: lease.spec.resources,
      predicted: predictLeaseMigration(lease, this.limits),
    };
  }

  // ── the slot scheduler ─────────────────────────────────────────────────────────────────────

  #schedulePending = false;

  /** Starts PLANNED migrations, oldest first, as far as the limits allow. */
  #schedule(): void {
    if (this.#schedulePending) return;
    this.#schedulePending = true;
    void this.#exclusive(async () => {
      this.#schedulePending = false;
      const out = new Map<string, number>();
      const into = new Map<string, number>();
      let total = 0;
      for (const id of this.#inFlight.keys()) {
        const m = this.get(id).value;
        if (m.state === "PLANNED") continue;
        out.set(m.fromHostId, (out.get(m.fromHostId) ?? 0) + 1);
        into.set(m.toHostId, (into.get(m.toHostId) ?? 0) + 1);
        total++;
      }
      const l = this.limits;
      const waiting: string[] = [];
      const starting: string[] = [];
      for (const id of this.#planned) {
        const m = this.#migrations.get(id)?.value;
        // One being ended (its lease stopped, a host lost) does not start.
        if (m === undefined || m.state !== "PLANNED" || !this.#isLive(id)) continue;
        if (
          total < l.maxInFlight &&
          (out.get(m.fromHostId) ?? 0) < l.maxOutgoingPerHost &&
          (into.get(m.toHostId) ?? 0) < l.maxIncomingPerHost
        ) {
          out.set(m.fromHostId, (out.get(m.fromHostId) ?? 0) + 1);
          into.set(m.toHostId, (into.get(m.toHostId) ?? 0) + 1);
          total++;
          starting.push(id);
        } else {
          waiting.push(id);
        }
      }
      this.#planned = waiting;
      this.peakInFlight = Math.max(this.peakInFlight, total);
      for (const id of starting) {
        const m = this.get(id);
        const lease = this.#leases.get(m.value.leaseId).value;
        await this.#write(m, {
          ...m.value,
          state: "PREPARING",
          startedAt: this.#clock.now(),
          bandwidthLimitBytesPerS: leaseBandwidthLimit(lease, m.value.bandwidthLimitBytesPerS),
        });
        this.#armTimers(id);
        void this.#run(id);
      }
    }).catch((error) => this.#log.error({ err: error }, "migration scheduling failed"));
  }

  // ── one migration's commands ───────────────────────────────────────────────────────────────

  /** PrepareIncoming on the destination, then MigrateOut on the source; reports do the rest. */
  async #run(id: string): Promise<void> {
    const m = this.get(id).value;
    const lease = this.#leases.get(m.leaseId).value;
    let endpoint: { address: string; port: number };
    try {
      endpoint = await this.#gateway.prepareIncoming(m.toHostId, {
        migrationId: id,
        leaseId: m.leaseId,
        resources: m.resources,
        end: lease.end,
        image: lease.spec.driver.image,
        params: lease.spec.driver.params,
        postCopy: m.postCopy,
      });
    } catch (error) {
      await this.#end(id, {
        kind: "aborted",
        why: `destination ${m.toHostId} did not prepare: ${errorMessage(error)}`,
      });
      return;
    }
    if (!this.#isLive(id)) return;
    try {
      await this.#gateway.migrateOut(m.fromHostId, {
        migrationId: id,
        leaseId: m.leaseId,
        destinationHostId: m.toHostId,
        destination: endpoint,
        bandwidthLimitBytesPerS: m.bandwidthLimitBytesPerS,
        downtimeLimitMs: m.maxDowntimeMs,
        autoConverge: m.autoConverge,
        postCopy: m.postCopy,
      });
    } catch (error) {
      await this.#end(id, {
        kind: "aborted",
        why: `source ${m.fromHostId} did not start sending: ${errorMessage(error)}`,
      });
      return;
    }
    await this.#exclusive(async () => {
      const current = this.#migrations.get(id);
      if (current === undefined || !this.#isLive(id) || current.value.state !== "PREPARING") return;
      await this.#write(current, { ...current.value, state: "TRANSFERRING" });
    });
  }

  #isLive(id: string): boolean {
    const f = this.#inFlight.get(id);
    return f !== undefined && !f.ending;
  }

  #armTimers(id: string): void {
    const f = this.#inFlight.get(id);
    if (f === undefined) return;
    const m = this.get(id).value;
    const completionMs = Math.max(
      this.limits.minCompletionMs,
      Math.round((this.limits.completionMsPerGib * m.resources.memoryMib) / 1024),
    );
    f.completionTimer = this.#clock.setTimer(completionMs, () => {
      void this.#end(id, {
        kind: "aborted",
        why: `not completed within ${Math.round(completionMs / 1000)} s (${this.limits.completionMsPerGib / 1000} s per GiB)`,
      });
    });
    this.#armProgressTimer(id, f);
  }

  #armProgressTimer(id: string, f: InFlight): void {
    f.progressTimer?.cancel();
    const ms = this.limits.progressTimeoutMs;
    f.progressTimer = this.#clock.setTimer(ms, () => {
      void this.#end(id, { kind: "aborted", why: `no progress for ${Math.round(ms / 1000)} s` });
    });
  }

  #clearTimers(f: InFlight): void {
    f.progressTimer?.cancel();
    f.completionTimer?.cancel();
    f.sourceFiguresTimer?.cancel();
    f.progressTimer = undefined;
    f.completionTimer = undefined;
    f.sourceFiguresTimer = undefined;
  }

  // ── what hosts report ──────────────────────────────────────────────────────────────────────

  #onMigrationReport(r: MigrationReport): void {
    const item = this.#migrations.get(r.migrationId);
    if (item === undefined) return;
    if (!this.#isLive(r.migrationId)) {
      if (r.phase === "COMPLETED") this.#recordLateFigures(item, r);
      return;
    }
    const m = item.value;
    if (m.leaseId !== r.leaseId || (r.hostId !== m.fromHostId && r.hostId !== m.toHostId)) {
      this.#log.warn({ migration: m.id, host: r.hostId }, "migration report from a stranger");
      return;
    }
    if (r.phase === "ABORTED") {
      void this.#end(m.id, {
        kind: "aborted",
        why: `${r.hostId === m.fromHostId ? "source" : "destination"} ${r.hostId} aborted: ${r.error === "" ? "no reason given" : r.error}`,
      });
      return;
    }
    if (r.phase === "COMPLETED") {
      // Only the source measures the switchover (QEMU's `downtime`, `total-time`).
      if (r.hostId === m.fromHostId)
        void this.#end(m.id, { kind: "completed", ...this.#measuredBy(r) });
      else this.#awaitSourceFigures(m.id);
      return;
    }
    if (r.hostId !== m.fromHostId) return;
    const f = this.#inFlight.get(m.id);
    if (f !== undefined) this.#armProgressTimer(m.id, f);
    void this.#exclusive(async () => {
      const current = this.#migrations.get(m.id);
      if (current === undefined || !this.#isLive(m.id)) return;
      const state: MigrationState =
        r.phase === "SWITCHOVER" || current.value.state === "SWITCHOVER"
          ? "SWITCHOVER"
          : "TRANSFERRING";
      const next: Migration = { ...current.value, state, progress: this.#progressOf(r) };
      const revision = await this.#leases.recordMigrationProgress({
        leaseId: m.leaseId,
        migrationId: m.id,
        message: `migrating to ${m.toHostId}: ${state.toLowerCase()}, round ${r.rounds}, ${Math.round(r.bytesRemaining / MIB)} MiB to go`,
        record: this.#put(next, current),
      });
      this.#remember(next, revision, current);
    }).catch((error) => this.#log.error({ err: error, migration: m.id }, "progress not recorded"));
  }

  // ── the source's measured figures (issue #8) ──────────────────────────────────────────────

  #measuredBy(r: MigrationReport): {
    downtimeMs?: number;
    totalTimeMs?: number;
    progress: TransferProgress;
  } {
    return {
      ...(r.downtimeMs === undefined ? {} : { downtimeMs: r.downtimeMs }),
      ...(r.totalTimeMs === undefined ? {} : { totalTimeMs: r.totalTimeMs }),
      progress: this.#progressOf(r),
    };
  }

  /** The destination runs the workload: completed, once the source reported or the grace is over. */
  #awaitSourceFigures(id: string): void {
    const f = this.#inFlight.get(id);
    if (f === undefined || f.ending || f.sourceFiguresTimer !== undefined) return;
    f.sourceFiguresTimer = this.#clock.setTimer(SOURCE_FIGURES_GRACE_MS, () => {
      void this.#end(id, { kind: "completed" });
    });
  }

  /**
   * A source's COMPLETED that comes after the grace (the migration ended without figures): its
   * figures are then written into the finished record.
   */
  #recordLateFigures(item: Versioned<Migration>, r: MigrationReport): void {
    const m = item.value;
    if (r.hostId !== m.fromHostId || m.leaseId !== r.leaseId) return;
    // Queued behind the write that ends it (the migration may still be ending).
    void this.#exclusive(async () => {
      const current = this.#migrations.get(m.id);
      const v = current?.value;
      if (current === undefined || v?.state !== "COMPLETED") return;
      if (v.downtimeMs !== undefined || v.totalTimeMs !== undefined) return;
      await this.#write(current, { ...v, ...this.#measuredBy(r) });
    }).catch((error) => this.#log.error({ err: error, migration: m.id }, "figures not recorded"));
  }

  #progressOf(r: MigrationReport): TransferProgress {
    return {
      bytesTransferred: r.bytesTransferred,
      bytesRemaining: r.bytesRemaining,
      rounds: r.rounds,
      dirtyRateBytesPerS: r.dirtyRateBytesPerS,
      bandwidthBytesPerS: r.bandwidthBytesPerS,
      expectedDowntimeMs: r.expectedDowntimeMs,
      time: this.#clock.now(),
    };
  }

  /** The destination running the workload of a migration means it completed (if its report was lost). */
  #onWorkloadReport(r: WorkloadReport): void {
    if (r.migrationId === undefined || r.migrationId === "") return;
    const item = this.#migrations.get(r.migrationId);
    if (item === undefined || !this.#isLive(r.migrationId)) return;
    const m = item.value;
    if (r.hostId === m.toHostId && r.state === "RUNNING") {
      this.#awaitSourceFigures(m.id);
    } else if (r.hostId === m.fromHostId && r.state === "FAILED") {
      void this.#end(m.id, {
        kind: "aborted",
        why: `the workload failed on the source: ${r.message}`,
      });
    }
  }

  #onLeaseChange(change: LeaseChange): void {
    const before = change.previous;
    if (before?.state !== "MIGRATING" || before.migrationId === undefined) return;
    const id = before.migrationId;
    if (change.lease.state === "MIGRATING" && change.lease.migrationId === id) return;
    if (!this.#isLive(id)) return;
    void this.#end(id, {
      kind: "aborted",
      why: `the lease is ${change.lease.state}: ${change.lease.statusMessage}`,
    });
  }

  #onHostDown(hostId: string): void {
    for (const id of [...this.#inFlight.keys()]) {
      const m = this.#migrations.get(id)?.value;
      if (m === undefined || !this.#isLive(id)) continue;
      if (m.fromHostId === hostId || m.toHostId === hostId) {
        const side = m.fromHostId === hostId ? "source" : "destination";
        void this.#end(id, { kind: "aborted", why: `the ${side} host ${hostId} is down` });
      }
    }
  }

  // ── the end ────────────────────────────────────────────────────────────────────────────────

  /**
   * Ends a migration once, whatever reports it first: the lease and the record in one write, then
   * (on abort) the hosts are told, best effort: an agent that missed it still has the workload
   * reconciled away by the broker's view (a workload never runs on two hosts).
   */
  #end(
    id: string,
    how:
      | {
          kind: "completed";
          downtimeMs?: number;
          totalTimeMs?: number;
          progress?: TransferProgress;
        }
      | { kind: "aborted"; why: string; tellHosts?: boolean; byRequest?: boolean },
  ): Promise<void> {
    const f = this.#inFlight.get(id);
    if (f === undefined || f.ending) return Promise.resolve();
    f.ending = true;
    this.#clearTimers(f);
    return this.#exclusive(async () => {
      const current = this.get(id);
      const m = current.value;
      const now = this.#clock.now();
      const next: Migration =
        how.kind === "completed"
          ? {
              ...m,
              state: "COMPLETED",
              endedAt: now,
              ...(how.downtimeMs === undefined ? {} : { downtimeMs: how.downtimeMs }),
              ...(how.totalTimeMs === undefined ? {} : { totalTimeMs: how.totalTimeMs }),
              ...(how.progress === undefined ? {} : { progress: how.progress }),
            }
          : {
              ...m,
              state: "ABORTED",
              endedAt: now,
              abortReason: how.why,
              ...(how.byRequest === true ? { abortedByRequest: true } : {}),
            };
      const outcome: MigrationOutcome =
        how.kind === "completed"
          ? {
              kind: "completed",
              toHostId: m.toHostId,
              message: `running on ${m.toHostId}: migrated from ${m.fromHostId} (${id})`,
            }
          : { kind: "aborted", message: `migration ${id} to ${m.toHostId} aborted: ${how.why}` };
      let revision: number;
      try {
        revision = await this.#leases.endMigration({
          leaseId: m.leaseId,
          migrationId: id,
          outcome,
          record: this.#put(next, current),
        });
      } catch (error) {
        f.ending = false;
        throw error;
      }
      this.#remember(next, revision, current);
      this.#inFlight.delete(id);
      this.#planned = this.#planned.filter((p) => p !== id);
      this.#log.info(
        { migration: id, lease: m.leaseId, state: next.state, why: next.abortReason },
        "migration ended",
      );
      if (how.kind === "aborted" && m.state !== "PLANNED" && how.tellHosts !== false) {
        for (const hostId of [m.fromHostId, m.toHostId]) {
          this.#gateway
            .abortMigration(hostId, id, m.leaseId, how.why)
            .catch((error) =>
              this.#log.debug({ err: error, migration: id, host: hostId }, "abort not delivered"),
            );
        }
      }
      this.#endListeners.emit(next);
      this.#schedule();
    }).catch((error) => {
      this.#log.error({ err: error, migration: id }, "ending a migration failed");
    });
  }

  /**
   * A migration a previous broker left between PREPARING and SWITCHOVER: its progress stream is
   * lost, so it is aborted on both hosts, and their answers say what happened. The source keeps a
   * workload it was still sending (abort accepted) → ABORTED, rolled back. If neither host knows
   * the migration any more after the transfer had begun, the source finished it and the workload
   * runs on the destination → COMPLETED. Anything else → ABORTED (reconciliation then keeps the
   * workload on exactly one host, the lease's).
   */
  async #recover(id: string): Promise<void> {
    const m = this.get(id).value;
    const why = "the broker restarted during the migration";
    const answer = async (hostId: string): Promise<"ok" | "unknown" | "error"> => {
      try {
        await this.#gateway.abortMigration(hostId, id, m.leaseId, why);
        return "ok";
      } catch (error) {
        if (error instanceof CommandRejectedError && error.code === "NOT_FOUND") return "unknown";
        return "error";
      }
    };
    const source = await answer(m.fromHostId);
    const destination = await answer(m.toHostId);
    const moved = m.state !== "PREPARING" && source === "unknown" && destination === "unknown";
    this.#log.warn({ migration: id, state: m.state, source, destination, moved }, "recovered");
    await this.#end(id, moved ? { kind: "completed" } : { kind: "aborted", why, tellHosts: false });
  }

  // ── writes ─────────────────────────────────────────────────────────────────────────────────

  #put(next: Migration, previous: Versioned<Migration> | undefined): WriteOp<BrokerSchema> {
    return {
      type: "put",
      collection: "migrations",
      id: next.id,
      value: next,
      expectRevision: previous?.revision ?? 0,
    };
  }

  async #write(previous: Versioned<Migration>, next: Migration): Promise<void> {
    const revision = await this.#store.commit([this.#put(next, previous)]);
    this.#remember(next, revision, previous);
  }

  #remember(next: Migration, revision: number, previous: Versioned<Migration> | undefined): void {
    if (previous !== undefined && this.#migrations.get(next.id) !== previous) {
      throw new ConflictError(`migration ${next.id} changed while it was written`);
    }
    this.#migrations.set(next.id, {
      id: next.id,
      value: next,
      revision,
      createRevision: previous?.createRevision ?? revision,
    });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }
}
