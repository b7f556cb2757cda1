/**
 * The lease lifecycle: admission, placement, the queue, timers, extend, cancel, preemption, and
 * what hosts report. Every change to a lease is one versioned write to the Store; WatchLeases is
 * the Store's watch on leases (see `watch`).
 *
 * Mutations run one at a time (`#exclusive`): a placement decision and the write that commits it
 * must not interleave with another decision. Commands to hosts go out after the write, outside the
 * exclusive section, and their outcome comes back as reports.
 */
import {
  AlreadyExistsError,
  type Clock,
  ConflictError,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  LeaseBrokerError,
  Listeners,
  type Logger,
  NotFoundError,
  ResourceExhaustedError,
  type Timer,
  UnavailableError,
} from "../../core/index.js";
import {
  CapacityExceededError,
  type ClusterIndex,
  findEarliestSlot,
  type PlacementExplanation,
  type PlacementPolicy,
  type PlacementRequest,
  parseSelector,
  place,
  planPreemption,
  type Requirement,
  type Resources,
} from "../../placement/index.js";
import type { HostGateway, WorkloadReport } from "../hosts/gateway.js";
import type { HostRegistry } from "../hosts/registry.js";
import { destinationHoldId } from "../migrations/model.js";
import { placeAway } from "../migrations/place-away.js";
import { pageSize } from "../paging.js";
import {
  type BrokerSchema,
  type BrokerStore,
  forEachObject,
  type StoreWatch,
  type Versioned,
  type WriteOp,
} from "../store/index.js";
import type { AdmissionHook } from "./admission.js";
import { type MigrationHooks, makingRoomMessage, type RoomPlan } from "./migration-hooks.js";
import type { Lease, LeaseEventType, LeaseSpec, StopReason } from "./model.js";
import { type QueuedTimer, TimerQueue } from "./timer-queue.js";
import {
  assertTransition,
  HOLDING_STATES,
  isTerminal,
  type LeaseState,
  RUNNING_STATES,
} from "./transitions.js";
import { type AdmissionLimits, DEFAULT_ADMISSION_LIMITS, validateLeaseSpec } from "./validate.js";

export interface LeaseTimings {
  /** Expiry warning this long before a lease's end. Default 5 min. */
  readonly expiryNoticeMs: number;
  /** A workload gets this long to stop by itself before it is killed. Default 30 s. */
  readonly stopGraceMs: number;
  /** A preempted workload keeps running this long after its notice. Default 120 s. */
  readonly preemptionNoticeMs: number;
  /** An immediate lease waits in the queue at most this long. Default 1 h. */
  readonly queueTimeoutMs: number;
  /** Speed at which a suspended workload's saved state is copied to another host. Default 1 Gbit/s. */
  readonly stateCopyBytesPerS: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = {
  expiryNoticeMs: 5 * 60_000,
  stopGraceMs: 30_000,
  preemptionNoticeMs: 120_000,
  queueTimeoutMs: 3_600_000,
  stateCopyBytesPerS: 125_000_000,
};

/** A change to a lease, as `onChange` listeners see it (after the write). */
export interface LeaseChange {
  readonly lease: Lease;
  readonly previous: Lease | undefined;
}

/** How a migration ended, for `endMigration`. */
export type MigrationOutcome =
  | { readonly kind: "completed"; readonly toHostId: string; readonly message: string }
  | { readonly kind: "aborted"; readonly message: string };

export interface LeaseManagerDeps {
  readonly store: BrokerStore;
  readonly clock: Clock;
  readonly index: ClusterIndex;
  readonly hosts: HostRegistry;
  readonly gateway: HostGateway;
  readonly policy: PlacementPolicy;
  readonly logger: Logger;
  readonly newId: () => string;
  readonly limits?: AdmissionLimits;
  readonly timings?: Partial<LeaseTimings>;
  /** A policy beyond capacity (per-tenant quotas); none by default. */
  readonly admission?: AdmissionHook;
  /** A non-preemptible lease with priority > 0 may displace preemptible ones. Default true. */
  readonly preemption?: boolean;
}

/** One submission of `submitMany`. */
export interface SubmitRequest {
  readonly spec: LeaseSpec;
  readonly requestId: string;
}

/** How one submission of `submitMany` went: what `submit` resolves to, or what it rejects with. */
export type SubmitOutcome =
  | { readonly ok: true; readonly result: SubmitResult }
  | { readonly ok: false; readonly error: unknown };

export interface SubmitResult {
  readonly lease: Lease;
  readonly revision: number;
  /** True when the request id matched an earlier submit (nothing new was created). */
  readonly replayed: boolean;
  /** How the lease was placed, or why it waits (absent for a replay). */
  readonly explanation?: PlacementExplanation;
}

/** Where a lease would go, without committing anything (ExplainPlacement). */
export interface PlacementPreview {
  readonly hostId?: string;
  readonly start?: number;
  readonly end?: number;
  readonly explanation: PlacementExplanation;
  /** The leases that would be preempted for it, if any. */
  readonly victims: readonly string[];
}

export interface ListLeasesQuery {
  readonly tenant?: string;
  readonly states?: readonly LeaseState[];
  readonly hostId?: string;
  /** Any further condition (window kinds, label selectors). */
  readonly filter?: (lease: Lease) => boolean;
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface LeasePage {
  readonly leases: Versioned<Lease>[];
  /** "" when this is the last page. */
  readonly nextPageToken: string;
  /** Watch from this revision to see every change after this page was read. */
  readonly revision: number;
}

export interface LeaseWatchEvent {
  readonly revision: number;
  readonly type: LeaseEventType;
  readonly lease: Lease;
  /** The state before this write (absent for a new lease). */
  readonly previousState?: LeaseState;
  /** The lease before this write (state changes to and from MIGRATING name its migration). */
  readonly previous?: Lease;
}

/**
 * What metrics observe of admission (the dashboard sets one with `observe`). Called after the
 * fact, never inside a decision's logic; an observer that throws is logged and ignored.
 */
export interface AdmissionObserver {
  /** One placement decision (a submit, a queue retry, a replan) and how long it took. */
  decision(kind: "place" | "preempt" | "queue" | "none", seconds: number): void;
  /** How one submit ended: admitted (started or reserved), queued, or rejected with a reason. */
  admission(outcome: "admitted" | "queued" | "rejected", reason: string): void;
}

/** The decision for a new or queued lease. */
type Decision =
  | {
      kind: "place";
      state: "STARTING" | "RESERVED";
      hostId: string;
      start: number;
      end: number;
      explanation: PlacementExplanation;
    }
  | {
      kind: "preempt";
      hostId: string;
      victims: readonly string[];
      start: number;
      end: number;
      explanation: PlacementExplanation;
    }
  | {
      kind: "make-room";
      plan: RoomPlan;
      start: number;
      end: number;
      explanation: PlacementExplanation;
    }
  | { kind: "queue"; explanation: PlacementExplanation }
  | { kind: "none"; explanation: PlacementExplanation };

interface DecideOptions {
  readonly allowPreemption: boolean;
  /** Ask the room maker when nothing fits (admission, and a make-room lease's one re-plan). */
  readonly makeRoom?: boolean;
}

/** What a lease's timer does when it fires (`#timerAction`). */
type TimerKind =
  | "queue-deadline"
  | "earliest-start"
  | "start"
  | "preemption"
  | "drain-deadline"
  | "expiry-warning"
  | "end"
  | "force-stop";

/** A timer a lease's state calls for (a state calls for each kind at most once). */
interface PlannedTimer {
  readonly what: TimerKind;
  readonly time: number;
}

const NO_TIMERS: readonly PlannedTimer[] = [];
const NO_REQUIREMENTS: readonly Requirement[] = [];

/** A missing workload is started again at most this often from heartbeats. */
const RESTART_GRACE_MS = 10_000;

/**
 * A queued lease asks the room maker again at most this often, and a queue pass asks for at most
 * this many leases: a plan costs tens of milliseconds at 10,000 hosts, and queue passes run on
 * every change.
 */
export const QUEUED_MAKE_ROOM_RETRY_MS = 60_000;
const QUEUED_MAKE_ROOM_PER_PASS = 4;

export class LeaseManager {
  readonly #store: BrokerStore;
  readonly #clock: Clock;
  readonly #index: ClusterIndex;
  readonly #hosts: HostRegistry;
  /** Leases resuming on another host from their saved state: lease id → the source host. */
  readonly #resumingFrom = new Map<string, string>();
  readonly #gateway: HostGateway;
  readonly #policy: PlacementPolicy;
  readonly #log: Logger;
  readonly #newId: () => string;
  readonly #limits: AdmissionLimits;
  readonly #timings: LeaseTimings;
  readonly #admission: AdmissionHook | undefined;
  readonly #preemption: boolean;

  readonly #leases = new Map<string, Versioned<Lease>>();
  readonly #byRequestId = new Map<string, string>();
  readonly #pending = new Set<string>();
  /** Lease ids sorted, for paged lists; undefined until needed or after an out-of-order id. */
  #sortedIds: string[] | undefined;
  /** Non-terminal leases with a host, by host id. */
  readonly #byHost = new Map<string, Set<string>>();
  /** MIGRATING leases by destination host. */
  readonly #migratingTo = new Map<string, Set<string>>();
  /** Each lease's armed timers, at most one of a kind (see `#arm`). */
  readonly #timers = new Map<string, readonly QueuedTimer<TimerKind>[]>();
  /** Every lease's timers on one clock timer (a clock timer each kept ~1 KB a lease alive). */
  readonly #timerQueue: TimerQueue<TimerKind>;
  readonly #parsed = new WeakMap<LeaseSpec, readonly Requirement[]>();
  #tail: Promise<unknown> = Promise.resolve();
  /** When the mutations last let the event loop turn (the Clock's time), see `#exclusive`. */
  #turnStartedAt = Number.NEGATIVE_INFINITY;
  /** The newest revision of any lease this manager has seen. */
  #revision = 0;
  #queuePass: Timer | undefined;
  /** PENDING leases whose make-room moves are running (the maker settles them). */
  readonly #makingRoom = new Set<string>();
  /** Queued leases: when the room maker was last asked for each. */
  readonly #roomAskedAt = new Map<string, number>();
  /** A queue pass when the earliest queued lease may ask the room maker again. */
  #roomRetry: Timer | undefined;
  #unsubscribe: (() => void)[] = [];
  #observer: AdmissionObserver | undefined;
  #migrationHooks: MigrationHooks = {};
  readonly #changeListeners = new Listeners<LeaseChange>();

  constructor(deps: LeaseManagerDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#timerQueue = new TimerQueue<TimerKind>(deps.clock, (id, what, time) =>
      this.#fire(id, what, time),
    );
    this.#index = deps.index;
    this.#hosts = deps.hosts;
    this.#gateway = deps.gateway;
    this.#policy = deps.policy;
    this.#log = deps.logger;
    this.#newId = deps.newId;
    this.#limits = deps.limits ?? DEFAULT_ADMISSION_LIMITS;
    this.#timings = { ...DEFAULT_LEASE_TIMINGS, ...deps.timings };
    this.#admission = deps.admission;
    this.#preemption = deps.preemption ?? true;
  }

  /**
   * Loads every lease from the Store, charges the holds of placed ones, and re-arms their timers
   * (a start or end that passed while the broker was away fires at once).
   */
  async start(): Promise<void> {
    await this.load();
    this.armAll();
  }

  /**
   * Loads every lease from the Store and charges the holds of placed ones on hosts the index
   * knows; a host that joins later gets its leases' holds charged as it registers. Listens to
   * hosts and reports. Timers wait for `armAll` (a new leader first lets agents re-register).
   */
  async load(): Promise<void> {
    await forEachObject(this.#store, "leases", (item) => this.#remember(item));
    for (const host of this.#index.hosts()) this.#chargeHost(host.id);
    this.#unsubscribe.push(this.#gateway.onReport((report) => void this.#onReport(report)));
    this.#unsubscribe.push(
      this.#hosts.onCapacityAdded((hostId) => {
        // Synchronously, as the host registers: nothing can be placed there before its leases.
        this.#chargeHost(hostId);
        this.#scheduleQueuePass();
      }),
    );
    this.#unsubscribe.push(
      this.#hosts.onStateChanged((hostId, state) => {
        if (state !== "DOWN") return;
        void this.#exclusive(() => this.#hostDown(hostId)).catch((error) =>
          this.#log.error({ err: error, host: hostId }, "handling a lost host failed"),
        );
      }),
    );
  }

  /** Arms every loaded lease's timers and runs the queue. */
  armAll(): void {
    for (const item of this.#leases.values()) this.#arm(item.value);
    this.#scheduleQueuePass();
  }

  // ── high availability (issue 6): a follower's cache, and a leader's reload ────────────────

  /**
   * A follower's cache: a lease as the Store's watch reports it (newer revisions only). Nothing
   * is charged or armed: a follower neither places nor acts.
   */
  applyRemote(item: Versioned<Lease>): void {
    const current = this.#leases.get(item.id);
    if (current !== undefined && current.revision >= item.revision) return;
    this.#remember(item);
  }

  /**
   * A host that has leases never registered with this broker (a new leader: it did not say Hello
   * within the host TTL): its leases follow their policy, as for a host that went DOWN.
   */
  hostLost(hostId: string): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#hosts.has(hostId)) return;
      this.#log.warn({ host: hostId }, "a host with leases never registered: handling it as down");
      await this.#hostDown(hostId);
    });
  }

  /** The hosts that have non-terminal leases placed on them (a new leader waits for them). */
  placedHostIds(): string[] {
    return [...this.#byHost].filter(([, ids]) => ids.size > 0).map(([hostId]) => hostId);
  }

  /**
   * Forgets everything (after the writes in flight): timers, listeners, holds, leases. A broker
   * that steps down, or whose view may differ from the Store's (a write failed), then loads again.
   */
  reset(): Promise<void> {
    return this.#exclusive(async () => this.resetNow());
  }

  /** `reset` without waiting for the writes in flight (they fail: the store is fenced). */
  resetNow(): void {
    this.stop();
    for (const id of this.#leases.keys()) this.#index.release(id);
    this.#leases.clear();
    this.#byRequestId.clear();
    this.#pending.clear();
    this.#sortedIds = undefined;
    this.#byHost.clear();
    this.#restartedAt.clear();
    this.#staleStopAt.clear();
    this.#revision = 0;
  }

  // ── end of high availability ───────────────────────────────────────────────────────────────

  stop(): void {
    this.#timerQueue.clear();
    this.#timers.clear();
    this.#queuePass?.cancel();
    this.#roomRetry?.cancel();
    this.#roomRetry = undefined;
    // Moves in flight belong to this run of the migrations: a next leader asks again.
    this.#makingRoom.clear();
    this.#roomAskedAt.clear();
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
  }

  // ── reads ──────────────────────────────────────────────────────────────────────────────────

  get(id: string): Versioned<Lease> {
    const item = this.#leases.get(id);
    if (item === undefined) throw new NotFoundError("lease", id);
    return item;
  }

  /** Throws `ConflictError` unless lease `id` is at revision `expected` (optimistic concurrency). */
  expectRevision(id: string, expected: number): void {
    const item = this.get(id);
    if (item.revision !== expected) {
      throw new ConflictError(
        `lease ${id} is at revision ${item.revision}, not ${expected}: read it again`,
      );
    }
  }

  list(query: ListLeasesQuery = {}): LeasePage {
    const size = pageSize(query.pageSize);
    const states =
      query.states === undefined || query.states.length === 0 ? undefined : new Set(query.states);
    const ids = this.#sortedIdList();
    let i = 0;
    if (query.pageToken !== undefined && query.pageToken !== "") {
      // The first id after the page token (binary search: ids are sorted).
      const after = query.pageToken;
      let hi = ids.length;
      while (i < hi) {
        const mid = (i + hi) >> 1;
        if ((ids[mid] as string) <= after) i = mid + 1;
        else hi = mid;
      }
    }
    const out: Versioned<Lease>[] = [];
    for (; i < ids.length && out.length < size; i++) {
      const item = this.#leases.get(ids[i] as string) as Versioned<Lease>;
      const l = item.value;
      if (query.tenant !== undefined && query.tenant !== "" && l.spec.tenant !== query.tenant)
        continue;
      if (query.hostId !== undefined && query.hostId !== "" && l.hostId !== query.hostId) continue;
      if (states !== undefined && !states.has(l.state)) continue;
      if (query.filter !== undefined && !query.filter(l)) continue;
      out.push(item);
    }
    // More may follow only if the scan stopped early.
    const nextPageToken =
      i < ids.length && out.length === size ? (out[out.length - 1]?.id ?? "") : "";
    return { leases: out, nextPageToken, revision: this.#revision };
  }

  /** The PENDING leases (the queue), oldest first. */
  pendingLeases(): Lease[] {
    return [...this.#pending]
      .map((id) => this.get(id).value)
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  /** Every lease id in order. Leases are never removed, and new ids sort after old ones. */
  #sortedIdList(): readonly string[] {
    this.#sortedIds ??= [...this.#leases.keys()].sort();
    return this.#sortedIds;
  }

  /** The non-terminal leases placed on `hostId`. */
  #onHost(hostId: string): Versioned<Lease>[] {
    const ids = this.#byHost.get(hostId);
    if (ids === undefined) return [];
    const out: Versioned<Lease>[] = [];
    for (const id of ids) {
      const item = this.#leases.get(id);
      if (item !== undefined) out.push(item);
    }
    return out;
  }

  /**
   * Lease events from `fromRevision` on, inclusive (0: from now), then live ones, as the
   * contract's WatchLeases says. Throws `CompactedError` when that history is gone.
   */
  watch(
    {
      fromRevision,
      onError,
    }: { fromRevision: number; onError?: (error: LeaseBrokerError) => void },
    listener: (event: LeaseWatchEvent) => void,
  ): StoreWatch {
    return this.#store.watch(
      // The Store delivers the events after the revision it is given.
      { collections: ["leases"], ...(fromRevision > 0 ? { fromRevision: fromRevision - 1 } : {}) },
      (event) => {
        if (event.collection !== "leases") return;
        const lease = event.value as Lease;
        const previous = event.previous as Lease | undefined;
        const revision = event.revision;
        const type = event.type === "delete" ? "DELETED" : lease.lastEvent;
        listener(
          previous === undefined
            ? { revision, type, lease }
            : { revision, type, lease, previousState: previous.state, previous },
        );
      },
      onError,
    );
  }

  // ── admission ──────────────────────────────────────────────────────────────────────────────

  /** Sets (or clears) the one admission observer. */
  observe(observer: AdmissionObserver | undefined): void {
    this.#observer = observer;
  }

  #notifyObserver(report: (observer: AdmissionObserver) => void): void {
    const observer = this.#observer;
    if (observer === undefined) return;
    try {
      report(observer);
    } catch (error) {
      this.#log.warn({ err: error }, "admission observer failed");
    }
  }

  submit(spec: LeaseSpec, requestId = ""): Promise<SubmitResult> {
    const result = this.#exclusive(() => this.#admit(spec, requestId));
    if (this.#observer !== undefined) {
      result.then(
        (r) => this.#observeAdmitted(r),
        (error: unknown) => this.#observeRejected(error),
      );
    }
    return result;
  }

  /**
   * Several submissions, in order, each exactly as `submit` admits it (its own placement and
   * write, its own result or error), in one exclusive section: one queue hop for a SubmitLeases
   * call instead of one per item. Nothing else could run between them anyway: `submit` calls
   * issued together queue together.
   */
  submitMany(requests: readonly SubmitRequest[]): Promise<SubmitOutcome[]> {
    return this.#exclusive(async () => {
      const outcomes: SubmitOutcome[] = [];
      for (const { spec, requestId } of requests) {
        try {
          const result = await this.#admit(spec, requestId);
          outcomes.push({ ok: true, result });
          if (this.#observer !== undefined) this.#observeAdmitted(result);
        } catch (error) {
          outcomes.push({ ok: false, error });
          if (this.#observer !== undefined) this.#observeRejected(error);
        }
      }
      return outcomes;
    });
  }

  #observeAdmitted(r: SubmitResult): void {
    if (r.replayed) return;
    const state = r.lease.state;
    this.#notifyObserver((o) =>
      state === "PENDING"
        ? o.admission("queued", "no-fit")
        : o.admission("admitted", state === "RESERVED" ? "reserved" : "started"),
    );
  }

  #observeRejected(error: unknown): void {
    const kind = error instanceof LeaseBrokerError ? error.kind : "internal";
    this.#notifyObserver((o) =>
      o.admission("rejected", kind === "resource-exhausted" ? "no-fit" : kind),
    );
  }

  /** Admits one submission (inside the exclusive section). */
  async #admit(spec: LeaseSpec, requestId: string): Promise<SubmitResult> {
    const now = this.#clock.now();
    if (requestId !== "") {
      const earlier = this.#byRequestId.get(requestKey(spec.tenant, requestId));
      if (earlier !== undefined) {
        const item = this.get(earlier);
        if (!sameSpec(item.value.spec, spec)) {
          throw new AlreadyExistsError(
            `request id ${JSON.stringify(requestId)} was used for lease ${earlier} with a different spec`,
          );
        }
        return { lease: item.value, revision: item.revision, replayed: true };
      }
    }
    validateLeaseSpec(spec, {
      now,
      limits: this.#limits,
      largestHost: this.#hosts.largestAllocatable(),
    });
    const id = this.#newId();
    const decision = this.#decide(id, spec, now, { allowPreemption: true, makeRoom: true });
    if (decision.kind !== "none") {
      this.#admission?.admit(
        spec,
        decision.kind === "queue" || decision.kind === "make-room" ? undefined : decision,
      );
    }
    const base: Lease = {
      id,
      spec,
      state: "NEW",
      hostId: "",
      start: 0,
      end: 0,
      requestId,
      createdAt: now,
      updatedAt: now,
      statusMessage: "",
      history: [],
      warned: false,
      lastEvent: "CREATED",
    };
    if (decision.kind === "none") {
      throw new ResourceExhaustedError(
        `no host can take this lease: ${decision.explanation.summary}`,
        decision.explanation,
      );
    }
    let item: Versioned<Lease>;
    let explanation = decision.explanation;
    switch (decision.kind) {
      case "queue":
        item = await this.#write(
          undefined,
          { ...base, state: "PENDING", statusMessage: decision.explanation.summary },
          "CREATED",
        );
        break;
      case "make-room":
        // PENDING while the moves run (minutes): the answer says so and does not wait.
        item = await this.#write(
          undefined,
          { ...base, state: "PENDING", statusMessage: makingRoomMessage(decision.plan) },
          "CREATED",
        );
        this.#runMakeRoom(id, decision.plan, 1);
        // Why no host fits now, and the plan that makes one fit.
        explanation = { ...decision.explanation, summary: item.value.statusMessage };
        break;
      case "place":
        item = await this.#placeNew(base, decision, "CREATED");
        break;
      case "preempt":
        item = await this.#preemptFor(base, decision, now);
        break;
    }
    return { lease: item.value, revision: item.revision, replayed: false, explanation };
  }

  /** Where `spec` would go now, and why; changes nothing. */
  explain(spec: LeaseSpec): PlacementPreview {
    const now = this.#clock.now();
    validateLeaseSpec(spec, {
      now,
      limits: this.#limits,
      largestHost: this.#hosts.largestAllocatable(),
    });
    // A preview: not a decision the metrics count.
    const d = this.#decideNow("(preview)", spec, now, { allowPreemption: true, makeRoom: true });
    switch (d.kind) {
      case "place":
        return {
          hostId: d.hostId,
          start: d.start,
          end: d.end,
          explanation: d.explanation,
          victims: [],
        };
      case "preempt":
        return {
          hostId: d.hostId,
          start: d.start,
          end: d.end,
          explanation: d.explanation,
          victims: d.victims,
        };
      case "make-room":
        return {
          hostId: d.plan.hostId,
          start: d.start,
          end: d.end,
          explanation: { ...d.explanation, summary: makingRoomMessage(d.plan) },
          victims: [],
        };
      default:
        return { explanation: d.explanation, victims: [] };
    }
  }

  // ── live migration hooks ───────────────────────────────────────────────────────────────────

  /** Make-room at admission and preemption by migration (the broker's planners); none by default. */
  useMigrationHooks(hooks: MigrationHooks): void {
    this.#migrationHooks = hooks;
  }

  /**
   * The moves made for a PENDING lease have all ended. It is placed if it fits now (the queue
   * pass may have placed it already); else, with `mayReplan`, room is planned once more (the
   * new plan is returned for the room maker to run); else it is REJECTED, or waits in the queue
   * if its spec allows queueing.
   */
  settleMadeRoom(leaseId: string, mayReplan: boolean): Promise<RoomPlan | undefined> {
    return this.#exclusive(async () => {
      this.#makingRoom.delete(leaseId);
      const item = this.#leases.get(leaseId);
      if (item === undefined || item.value.state !== "PENDING") return undefined;
      const lease = item.value;
      const now = this.#clock.now();
      const d = this.#decide(lease.id, lease.spec, now, {
        allowPreemption: false,
        makeRoom: mayReplan,
      });
      let why = `making room failed: ${d.explanation.summary}`;
      if (d.kind === "place") {
        try {
          this.#admission?.place(lease, d);
          await this.#placeNew(lease, d, "STATE_CHANGED", item);
          return undefined;
        } catch (error) {
          if (!(error instanceof LeaseBrokerError)) throw error;
          // The room is there; the lease may not take it (its tenant's quota, say).
          why = `room was made on ${d.hostId}, but ${error.message}`;
        }
      } else if (d.kind === "make-room") {
        await this.#write(
          item,
          { ...lease, statusMessage: `re-planned: ${makingRoomMessage(d.plan)}` },
          "STATE_CHANGED",
        );
        this.#makingRoom.add(leaseId);
        return d.plan;
      }
      if (lease.spec.allowQueue || lease.spec.window.kind === "flexible") {
        await this.#write(item, { ...lease, statusMessage: `${why}; queued` }, "STATE_CHANGED");
      } else {
        await this.#finish(item, "REJECTED", why);
      }
      return undefined;
    });
  }

  // ── user operations ────────────────────────────────────────────────────────────────────────

  cancel(id: string, reason = ""): Promise<Lease> {
    return this.#exclusive(async () => {
      const item = this.get(id);
      const lease = item.value;
      const message = reason === "" ? "cancelled" : `cancelled: ${reason}`;
      switch (lease.state) {
        case "PENDING":
        case "RESERVED":
        case "SUSPENDED":
          return (await this.#finish(item, "CANCELLED", message)).value;
        case "STARTING":
        case "ACTIVE":
        case "MIGRATING": {
          const next = await this.#beginStop(item, "cancel", message);
          return next.value;
        }
        case "ENDING":
          return lease;
        case "CANCELLED":
          return lease;
        default:
          throw new FailedPreconditionError(
            `lease ${id} is ${lease.state}: there is nothing to cancel`,
          );
      }
    });
  }

  /** Moves the end of a placed lease to `newEnd` if its host's timeline allows it. */
  extend(id: string, newEnd: number): Promise<Lease> {
    return this.#exclusive(async () => {
      const item = this.get(id);
      const lease = item.value;
      if (lease.state === "MIGRATING") {
        throw new FailedPreconditionError(
          `lease ${id} is being migrated (${lease.migrationId ?? ""}): extend it once the migration ends`,
        );
      }
      if (!["RESERVED", "STARTING", "ACTIVE"].includes(lease.state)) {
        throw new FailedPreconditionError(
          `lease ${id} is ${lease.state}: only a placed, running or reserved lease can be extended`,
        );
      }
      if (lease.stopReason !== undefined) {
        throw new FailedPreconditionError(
          `lease ${id} is being stopped (${lease.stopReason}): it cannot be extended`,
        );
      }
      if (!Number.isFinite(newEnd) || newEnd <= lease.end) {
        throw new InvalidArgumentError(
          "new_end",
          `must be after the current end (${new Date(lease.end).toISOString()})`,
        );
      }
      if (newEnd - lease.start > this.#limits.maxDurationMs) {
        throw new InvalidArgumentError(
          "new_end",
          `a lease may last at most ${this.#limits.maxDurationMs / 86_400_000} days`,
        );
      }
      this.#admission?.extend(lease, newEnd);
      try {
        this.#index.resize(id, { window: { start: lease.start, end: newEnd } });
      } catch (error) {
        if (!(error instanceof CapacityExceededError)) throw error;
        // Name what takes the room: the other holds on the host within the added time.
        const blockers = this.#index
          .holdsOn(lease.hostId)
          .filter((h) => h.leaseId !== id && h.start < newEnd && h.end > lease.end)
          .map((h) => h.leaseId);
        const by =
          blockers.length === 0
            ? ""
            : ` (held there by lease ${[...new Set(blockers)].sort().join(", ")})`;
        throw new FailedPreconditionError(
          `host ${lease.hostId} cannot hold lease ${id} until ${new Date(newEnd).toISOString()}: ${error.message}${by}`,
          { cause: error },
        );
      }
      try {
        const next = await this.#write(
          item,
          {
            ...lease,
            end: newEnd,
            warned: false,
            statusMessage: `extended to ${new Date(newEnd).toISOString()}`,
          },
          "EXTENDED",
        );
        return next.value;
      } catch (error) {
        this.#index.resize(id, { window: { start: lease.start, end: lease.end } });
        throw error;
      }
    });
  }

  // ── migrations, drains and suspension (the orchestrator's side of the lease) ────────────

  /** Called after every lease write, in order (the orchestrator follows leases it moves). */
  onChange(listener: (change: LeaseChange) => void): () => void {
    return this.#changeListeners.add(listener);
  }

  /**
   * Starts moving an ACTIVE, live-migratable lease: charges the destination for the rest of the
   * window (a second hold) and writes the lease MIGRATING together with the migration record
   * `record(lease, toHostId)`, in one transaction. Without `toHostId` the placer picks a host other
   * than the source.
   */
  beginMigration(args: {
    readonly leaseId: string;
    readonly migrationId: string;
    readonly toHostId?: string;
    /** The host a planner saw the lease on; a lease that moved since fails. */
    readonly fromHostId?: string;
    readonly expectedRevision?: number;
    readonly record: (lease: Lease, toHostId: string) => WriteOp<BrokerSchema>;
  }): Promise<{ lease: Versioned<Lease>; toHostId: string }> {
    return this.#exclusive(async () => {
      const item = this.get(args.leaseId);
      const lease = item.value;
      if (args.expectedRevision !== undefined && args.expectedRevision !== 0)
        this.expectRevision(lease.id, args.expectedRevision);
      if (lease.state !== "ACTIVE") {
        throw new FailedPreconditionError(
          `lease ${lease.id} is ${lease.state}: only an ACTIVE lease can be migrated`,
        );
      }
      if (!lease.spec.migration.liveMigratable) {
        throw new FailedPreconditionError(
          `lease ${lease.id} is not live_migratable (spec.migration.live_migratable is false)`,
        );
      }
      if (args.fromHostId !== undefined && args.fromHostId !== lease.hostId) {
        throw new FailedPreconditionError(
          `lease ${lease.id} runs on ${lease.hostId}, not ${args.fromHostId}`,
        );
      }
      const now = this.#clock.now();
      if (lease.end <= now) {
        throw new FailedPreconditionError(`lease ${lease.id} is at its end: nothing to migrate`);
      }
      this.#index.advanceTo(now);
      const window = { start: now, end: lease.end };
      let toHostId = args.toHostId;
      if (toHostId === undefined || toHostId === "") {
        const d = placeAway(
          this.#index,
          this.#request(lease.id, lease.spec, window),
          this.#policy,
          lease.hostId,
        );
        if (!d.ok) {
          throw new ResourceExhaustedError(
            `no other host can take lease ${lease.id} for the rest of its window: ${d.explanation.summary}`,
            d.explanation,
          );
        }
        toHostId = d.hostId;
      } else {
        if (toHostId === lease.hostId) {
          throw new InvalidArgumentError("target_host_id", `lease ${lease.id} already runs there`);
        }
        const host = this.#index.host(toHostId);
        if (host === undefined) throw new NotFoundError("host", toHostId);
        if (host.state !== "READY") {
          throw new FailedPreconditionError(
            `host ${toHostId} is ${host.state}: it takes no leases`,
          );
        }
      }
      try {
        this.#commitDestinationHold(lease, args.migrationId, toHostId, now);
      } catch (error) {
        if (!(error instanceof CapacityExceededError)) throw error;
        throw new ResourceExhaustedError(
          `host ${toHostId} cannot hold lease ${lease.id} until ${new Date(lease.end).toISOString()}: ${error.message}`,
          undefined,
          { cause: error },
        );
      }
      try {
        const next = await this.#write(
          item,
          {
            ...lease,
            state: "MIGRATING",
            migrationId: args.migrationId,
            migrationTo: toHostId,
            statusMessage: `migrating to ${toHostId} (${args.migrationId})`,
          },
          "STATE_CHANGED",
          [args.record(lease, toHostId)],
        );
        return { lease: next, toHostId };
      } catch (error) {
        this.#index.release(destinationHoldId(args.migrationId));
        throw error;
      }
    });
  }

  /**
   * Ends a migration: COMPLETED moves the lease (and its hold) to the destination, ABORTED leaves
   * it on the source; either way the lease is ACTIVE again and the destination's extra hold is
   * gone. The migration `record` is written in the same transaction. A lease that already left
   * MIGRATING (cancelled, ended, its host lost) is not touched: only the record is written.
   * Returns the store revision of the write.
   */
  endMigration(args: {
    readonly leaseId: string;
    readonly migrationId: string;
    readonly outcome: MigrationOutcome;
    readonly record: WriteOp<BrokerSchema>;
  }): Promise<number> {
    return this.#exclusive(async () => {
      const item = this.#leases.get(args.leaseId);
      const lease = item?.value;
      const holdId = destinationHoldId(args.migrationId);
      if (
        item === undefined ||
        lease === undefined ||
        lease.state !== "MIGRATING" ||
        lease.migrationId !== args.migrationId
      ) {
        this.#index.release(holdId);
        return this.#store.commit([args.record]);
      }
      const now = this.#clock.now();
      const o = args.outcome;
      if (o.kind === "aborted") {
        const next = await this.#write(
          item,
          { ...lease, state: "ACTIVE", statusMessage: o.message },
          "STATE_CHANGED",
          [args.record],
        );
        this.#index.release(holdId);
        this.#scheduleQueuePass();
        return next.revision;
      }
      // A notice to leave the source (drain, preemption) is served by the move.
      const served = lease.stopReason === "drain" || lease.stopReason === "preempt";
      const { stopReason: _reason, stopDeadline: _deadline, ...rest } = lease;
      const moved: Lease = {
        ...(served ? rest : lease),
        state: "ACTIVE",
        hostId: o.toHostId,
        statusMessage: o.message,
        history: [
          ...lease.history.slice(-99),
          { hostId: o.toHostId, at: now, reason: "migrated", migrationId: args.migrationId },
        ],
      };
      const next = await this.#write(item, moved, "STATE_CHANGED", [args.record]);
      this.#index.release(lease.id);
      this.#index.release(holdId);
      try {
        this.#commitHold(moved);
      } catch (error) {
        // The destination was charged from now on; its past is not worth refusing the move for.
        this.#log.warn({ err: error, lease: lease.id }, "migrated hold: charging from now on");
        this.#index.commit(
          lease.id,
          o.toHostId,
          { start: now, end: lease.end },
          lease.spec.resources,
          this.#holdMeta(lease),
        );
      }
      this.#scheduleQueuePass();
      return next.revision;
    });
  }

  /** Records migration progress (a MIGRATION_PROGRESS event of the lease) with the record. */
  recordMigrationProgress(args: {
    readonly leaseId: string;
    readonly migrationId: string;
    readonly message: string;
    readonly record: WriteOp<BrokerSchema>;
  }): Promise<number> {
    return this.#exclusive(async () => {
      const item = this.#leases.get(args.leaseId);
      if (
        item === undefined ||
        item.value.state !== "MIGRATING" ||
        item.value.migrationId !== args.migrationId
      ) {
        return this.#store.commit([args.record]);
      }
      const next = await this.#write(
        item,
        { ...item.value, statusMessage: args.message },
        "MIGRATION_PROGRESS",
        [args.record],
      );
      return next.revision;
    });
  }

  /**
   * A drain notice: the lease must leave its host by `deadline`. If it is still there then (not
   * live-migratable, nowhere to go, or its migrations failed), it follows on_host_failure: RESTART
   * starts it afresh on another host when one has room, else it is stopped and FAILS.
   */
  noticeDrain(leaseId: string, deadline: number, message: string): Promise<void> {
    return this.#exclusive(async () => {
      const item = this.get(leaseId);
      const lease = item.value;
      if (!["STARTING", "ACTIVE", "MIGRATING"].includes(lease.state)) return;
      if (lease.stopReason !== undefined && lease.stopReason !== "drain") return;
      await this.#write(
        item,
        { ...lease, stopReason: "drain", stopDeadline: deadline, statusMessage: message },
        "PREEMPTION_NOTICE",
      );
    });
  }

  /**
   * Moves a reservation off a draining host: the same window on another host, or PENDING until
   * one has room. Returns the host it went to ("" when it waits).
   */
  replanReservation(leaseId: string, why: string): Promise<string> {
    return this.#exclusive(async () => {
      const item = this.get(leaseId);
      if (item.value.state !== "RESERVED") return item.value.hostId;
      return this.#replan(item, why);
    });
  }

  /** Where a reservation would go off its host (dry runs); commits nothing. */
  previewReplan(leaseId: string): string {
    const lease = this.get(leaseId).value;
    const d = placeAway(
      this.#index,
      this.#request(lease.id, lease.spec, { start: lease.start, end: lease.end }),
      this.#policy,
      lease.hostId,
    );
    return d.ok ? d.hostId : "";
  }

  /** The placement request of a placed lease over `window` (for planners and dry runs). */
  placementRequest(leaseId: string, window: { start: number; end: number }): PlacementRequest {
    const lease = this.get(leaseId).value;
    return this.#request(lease.id, lease.spec, window);
  }

  get policy(): PlacementPolicy {
    return this.#policy;
  }

  /** Non-terminal leases placed on `hostId`, by id. */
  onHost(hostId: string): Versioned<Lease>[] {
    return this.#onHost(hostId).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async #replan(item: Versioned<Lease>, why: string): Promise<string> {
    const lease = item.value;
    const from = lease.hostId;
    this.#index.release(lease.id);
    const d = placeAway(
      this.#index,
      this.#request(lease.id, lease.spec, { start: lease.start, end: lease.end }),
      this.#policy,
      from,
    );
    if (d.ok && d.hostId !== from) {
      this.corrections.reservationsMoved++;
      await this.#placeNew(
        lease,
        {
          kind: "place",
          state: "RESERVED",
          hostId: d.hostId,
          start: lease.start,
          end: lease.end,
          explanation: d.explanation,
        },
        "STATE_CHANGED",
        item,
        why,
      );
      return d.hostId;
    }
    await this.#write(
      item,
      {
        ...lease,
        state: "PENDING",
        hostId: "",
        statusMessage: `${why}; waiting for capacity: ${d.explanation.summary}`,
      },
      "STATE_CHANGED",
    );
    return "";
  }

  async #drainDeadline(item: Versioned<Lease>): Promise<void> {
    const lease = item.value;
    // A migration in flight is given its own time; if it aborts, this timer fires again.
    if (lease.state === "MIGRATING") return;
    const from = lease.hostId;
    if (lease.spec.onHostFailure === "restart" && lease.end > this.#clock.now()) {
      this.#index.releaseLease(lease.id);
      const { stopReason: _r, stopDeadline: _d, ...rest } = lease;
      const noRoom = await this.#restartAway(item, rest, from, `host ${from} was drained`);
      if (noRoom === undefined) {
        this.#gateway
          .stop(from, lease.id, { graceMs: this.#timings.stopGraceMs, force: false })
          .catch((error) =>
            this.#log.warn({ err: error, lease: lease.id, host: from }, "drain: stop failed"),
          );
        return;
      }
    }
    await this.#beginStop(
      item,
      "drain",
      `host ${from} was drained and the lease could not move (on_host_failure: ${lease.spec.onHostFailure})`,
    );
  }

  /**
   * Starts the lease afresh (as `base`) for the rest of its window on a host other than `avoid`;
   * returns why not when no host has room. The caller released its holds.
   */
  async #restartAway(
    item: Versioned<Lease>,
    base: Lease,
    avoid: string,
    why: string,
  ): Promise<PlacementExplanation | undefined> {
    const now = this.#clock.now();
    const end = item.value.end;
    const d = placeAway(
      this.#index,
      this.#request(base.id, base.spec, { start: now, end }),
      this.#policy,
      avoid,
    );
    if (!d.ok) return d.explanation;
    if (d.hostId === avoid) return emptyExplanation(`only ${avoid} has room`);
    await this.#placeNew(
      base,
      {
        kind: "place",
        state: "STARTING",
        hostId: d.hostId,
        start: now,
        end,
        explanation: d.explanation,
      },
      "STATE_CHANGED",
      item,
      why,
    );
    return undefined;
  }

  /** Suspends an ACTIVE lease to its host's disk: its CPU and memory are released, its disk kept. */
  suspend(id: string, reason = ""): Promise<Lease> {
    return this.#exclusive(async () => {
      const item = this.get(id);
      const lease = item.value;
      if (lease.state !== "ACTIVE") {
        throw new FailedPreconditionError(
          `lease ${id} is ${lease.state}: only an ACTIVE lease can be suspended`,
        );
      }
      if (this.#index.hold(id) !== undefined)
        this.#index.resize(id, { resources: diskOnly(lease.spec.resources) });
      const message = reason === "" ? "suspended" : `suspended: ${reason}`;
      const next = await this.#write(
        item,
        { ...lease, state: "SUSPENDED", statusMessage: message },
        "STATE_CHANGED",
      );
      this.#gateway.suspend(lease.hostId, id).catch((error) => {
        this.#log.warn({ err: error, lease: id, host: lease.hostId }, "suspend command failed");
      });
      this.#scheduleQueuePass();
      return next.value;
    });
  }

  /**
   * Resumes a SUSPENDED lease for the rest of its window: on its host if the room is still there,
   * else on another host with room, after the saved state is copied there (memory / copy speed).
   */
  resume(id: string): Promise<Lease> {
    return this.#exclusive(async () => {
      const item = this.get(id);
      const lease = item.value;
      if (lease.state !== "SUSPENDED") {
        throw new FailedPreconditionError(
          `lease ${id} is ${lease.state}: only a SUSPENDED lease can be resumed`,
        );
      }
      const now = this.#clock.now();
      if (lease.end <= now) {
        throw new FailedPreconditionError(`lease ${id} is at its end: nothing to resume`);
      }
      this.#index.advanceTo(now);
      const from = lease.hostId;
      const host = this.#index.host(from);
      if (host !== undefined && host.state === "READY" && this.#index.hold(id) !== undefined) {
        try {
          this.#index.resize(id, { resources: lease.spec.resources });
          const next = await this.#write(
            item,
            { ...lease, state: "STARTING", statusMessage: `resuming on ${from}` },
            "STATE_CHANGED",
          );
          this.#gateway.resume(from, id).catch((error) => {
            this.#log.warn({ err: error, lease: id, host: from }, "resume command failed");
            void this.#onReport({
              hostId: from,
              leaseId: id,
              state: "FAILED",
              message: `resume failed: ${errorMessage(error)}`,
            });
          });
          return next.value;
        } catch (error) {
          if (!(error instanceof CapacityExceededError)) throw error;
        }
      }
      const d = placeAway(
        this.#index,
        this.#request(id, lease.spec, { start: now, end: lease.end }),
        this.#policy,
        from,
      );
      if (!d.ok || d.hostId === from) {
        throw new ResourceExhaustedError(
          `no host has room to resume lease ${id}: ${d.explanation.summary}`,
          d.explanation,
        );
      }
      const copyMs = Math.ceil(
        ((lease.spec.resources.memoryMib * 1024 * 1024) / this.#timings.stateCopyBytesPerS) * 1000,
      );
      const copies = this.#copiesSavedState(from, d.hostId);
      this.#index.releaseLease(id);
      const moved: Lease = {
        ...lease,
        state: "STARTING",
        hostId: d.hostId,
        statusMessage: copies
          ? `resuming on ${d.hostId}: fetching the saved state from ${from}`
          : `resuming on ${d.hostId}: copying the saved state from ${from} (${Math.round(copyMs / 1000)} s)`,
        history: [...lease.history.slice(-99), { hostId: d.hostId, at: now, reason: "resumed" }],
      };
      this.#commitHold(moved);
      const next = await this.#write(item, moved, "STATE_CHANGED");
      if (copies) {
        this.#resumingFrom.set(id, from);
        void this.#resumeFromCopy(next.value, from);
        return next.value;
      }
      this.#clock.setTimer(copyMs, () => {
        const current = this.#leases.get(id)?.value;
        if (current?.state !== "STARTING" || current.hostId !== d.hostId) return;
        this.#sendStart(current);
        this.#gateway
          .stop(from, id, { graceMs: 0, force: true })
          .catch((error) =>
            this.#log.warn({ err: error, lease: id, host: from }, "discarding saved state failed"),
          );
      });
      return next.value;
    });
  }

  /**
   * Whether a resume from `from` on `to` moves the real saved state: both hosts run the qemu
   * driver (the only one that writes it) and the gateway can command the transfer. Otherwise the
   * copy is modelled (stateCopyBytesPerS) and the workload starts afresh there.
   */
  #copiesSavedState(from: string, to: string): boolean {
    if (this.#gateway.exportSuspended === undefined || this.#gateway.resumeFrom === undefined) {
      return false;
    }
    const driverOf = (hostId: string): string | undefined =>
      this.#hosts.has(hostId) ? this.#hosts.view(hostId).driver : undefined;
    return driverOf(from) === "qemu" && driverOf(to) === "qemu";
  }

  /**
   * The source serves the saved state, the destination fetches, checks and resumes it; RUNNING
   * (reported by the destination) makes the lease ACTIVE and discards the source's copy, a failure
   * puts the lease back to SUSPENDED on its source (see #onReport).
   */
  async #resumeFromCopy(lease: Lease, from: string): Promise<void> {
    try {
      const image = await this.#gateway.exportSuspended?.(from, lease.id);
      if (image === undefined) throw new UnavailableError("the gateway cannot export saved state");
      await this.#gateway.resumeFrom?.(
        lease.hostId,
        {
          leaseId: lease.id,
          resources: lease.spec.resources,
          end: lease.end,
          image: lease.spec.driver.image,
          params: lease.spec.driver.params,
        },
        image,
      );
    } catch (error) {
      this.#log.warn(
        { err: error, lease: lease.id, host: lease.hostId },
        "resume elsewhere failed",
      );
      await this.#onReport({
        hostId: lease.hostId,
        leaseId: lease.id,
        state: "FAILED",
        message: `resume failed: ${errorMessage(error)}`,
      });
    }
  }

  /**
   * A resume elsewhere failed (the fetch, the check or the load): the lease goes back to
   * SUSPENDED on its source, whose saved state was kept, with the reason.
   */
  async #revertResume(item: Versioned<Lease>, from: string, why: string): Promise<void> {
    const lease = item.value;
    this.#resumingFrom.delete(lease.id);
    this.#index.releaseLease(lease.id);
    const back: Lease = {
      ...lease,
      state: "SUSPENDED",
      hostId: from,
      statusMessage: `resume on ${lease.hostId} failed, still suspended on ${from}: ${why}`,
      history: [
        ...lease.history.slice(-99),
        { hostId: from, at: this.#clock.now(), reason: "resume failed" },
      ],
    };
    try {
      this.#commitHold(back);
    } catch (error) {
      // The disk it keeps on its source is not charged: the saved state is there all the same.
      this.#log.error({ err: error, lease: lease.id, host: from }, "cannot charge a lease");
    }
    await this.#write(item, back, "STATE_CHANGED");
    // The destination may have left a half-started VM: discard it.
    this.#gateway.stop(lease.hostId, lease.id, { graceMs: 0, force: true }).catch(() => undefined);
  }

  /** Charges the holds of `hostId`'s leases (and migrations to it) that are not charged yet. */
  #chargeHost(hostId: string): void {
    if (this.#index.host(hostId) === undefined) return;
    for (const item of this.#onHost(hostId)) {
      const lease = item.value;
      if (!HOLDING_STATES.has(lease.state) && lease.state !== "SUSPENDED") continue;
      if (this.#index.hold(lease.id) !== undefined) continue;
      try {
        this.#commitHold(lease);
      } catch (error) {
        this.#log.error({ err: error, lease: lease.id, host: hostId }, "cannot charge a lease");
      }
    }
    for (const id of this.#migratingTo.get(hostId) ?? []) {
      const lease = this.#leases.get(id)?.value;
      const migrationId = lease?.migrationId;
      if (lease === undefined || migrationId === undefined) continue;
      if (this.#index.hold(destinationHoldId(migrationId)) !== undefined) continue;
      try {
        this.#commitDestinationHold(lease, migrationId, hostId);
      } catch (error) {
        this.#log.error({ err: error, lease: id, host: hostId }, "cannot charge a migration");
      }
    }
  }

  #commitDestinationHold(lease: Lease, migrationId: string, toHostId: string, now?: number): void {
    this.#index.commit(
      destinationHoldId(migrationId),
      toHostId,
      { start: Math.min(now ?? this.#clock.now(), lease.end - 1), end: lease.end },
      lease.spec.resources,
      { ...this.#holdMeta(lease), leaseId: lease.id },
    );
  }

  #holdMeta(lease: Lease) {
    return {
      priority: lease.spec.priority,
      preemptible: lease.spec.preemptible,
      ...(lease.spec.affinity === undefined ? {} : { group: lease.spec.affinity.group }),
    };
  }

  // ── decisions ──────────────────────────────────────────────────────────────────────────────

  /** Constraints parsed once per spec (specs are immutable; validation already parsed them once). */
  #requirements(spec: LeaseSpec): readonly Requirement[] {
    // Most specs have none: no weak-map entry (an identity hash and GC work) per lease for them.
    if (spec.constraints.length === 0) return NO_REQUIREMENTS;
    let parsed = this.#parsed.get(spec);
    if (parsed === undefined) {
      parsed = spec.constraints.map((c) => parseSelector(c));
      this.#parsed.set(spec, parsed);
    }
    return parsed;
  }

  #request(id: string, spec: LeaseSpec, window: { start: number; end: number }): PlacementRequest {
    return placementRequest(id, spec, window, this.#requirements(spec));
  }

  #decide(id: string, spec: LeaseSpec, now: number, options: DecideOptions): Decision {
    if (this.#observer === undefined) return this.#decideNow(id, spec, now, options);
    // Wall time on purpose: this measures the decision's CPU cost, not lease time (the Clock's).
    const began = performance.now();
    const decision = this.#decideNow(id, spec, now, options);
    const seconds = (performance.now() - began) / 1000;
    // Making room is a wait, like the queue, for what the metrics count.
    const kind = decision.kind === "make-room" ? "queue" : decision.kind;
    this.#notifyObserver((o) => o.decision(kind, seconds));
    return decision;
  }

  #decideNow(id: string, spec: LeaseSpec, now: number, options: DecideOptions): Decision {
    // Lets the index's time-bucket bounds cover the coming horizon (exact either way; faster).
    this.#index.advanceTo(now);
    const w = spec.window;
    if (w.kind === "flexible") {
      const earliest = Math.max(w.earliestStart, now);
      if (earliest > w.latestStart) {
        return { kind: "none", explanation: emptyExplanation("the latest start has passed") };
      }
      const slot = findEarliestSlot(
        this.#index,
        {
          ...this.#request(id, spec, { start: earliest, end: earliest + w.durationMs }),
          earliest,
          latest: w.latestStart,
          duration: w.durationMs,
        },
        this.#policy,
      );
      if (slot.ok) {
        return {
          kind: "place",
          state: slot.start <= now ? "STARTING" : "RESERVED",
          hostId: slot.hostId,
          start: slot.start,
          end: slot.start + w.durationMs,
          explanation: slot.explanation,
        };
      }
      // Best effort: a flexible lease always waits for capacity until its latest start.
      return { kind: "queue", explanation: slot.explanation };
    }
    const start = w.kind === "immediate" ? now : Math.max(w.start, now);
    const window = { start, end: start + w.durationMs };
    const decision = place(this.#index, this.#request(id, spec, window), this.#policy);
    if (decision.ok) {
      return {
        kind: "place",
        state: start <= now ? "STARTING" : "RESERVED",
        hostId: decision.hostId,
        start,
        end: window.end,
        explanation: decision.explanation,
      };
    }
    // Moving running leases is gentler than stopping them: make-room before preemption.
    const maker = this.#migrationHooks.makeRoom;
    if (options.makeRoom === true && maker !== undefined) {
      const plan = maker.plan(this.#request(id, spec, window), now);
      if (plan !== undefined && plan.moves.length > 0) {
        return {
          kind: "make-room",
          plan,
          start,
          end: window.end,
          explanation: decision.explanation,
        };
      }
    }
    if (options.allowPreemption && this.#preemption && !spec.preemptible && spec.priority > 0) {
      // Victims keep running for their notice period, so the lease starts after it.
      const noticeEnd = now + this.#timings.preemptionNoticeMs;
      const pStart = Math.max(start, noticeEnd);
      const pWindow = { start: pStart, end: pStart + w.durationMs };
      const plan = planPreemption(this.#index, this.#request(id, spec, pWindow));
      if (plan !== null) {
        return {
          kind: "preempt",
          hostId: plan.hostId,
          victims: plan.victims,
          start: pStart,
          end: pWindow.end,
          explanation: decision.explanation,
        };
      }
    }
    return spec.allowQueue
      ? { kind: "queue", explanation: decision.explanation }
      : { kind: "none", explanation: decision.explanation };
  }

  async #placeNew(
    base: Lease,
    d: Extract<Decision, { kind: "place" }>,
    event: LeaseEventType,
    previous?: Versioned<Lease>,
    /** Set when the lease moves because its host was lost: why. */
    hostLost?: string,
  ): Promise<Versioned<Lease>> {
    const now = this.#clock.now();
    const verb = d.state === "RESERVED" ? `reserved on ${d.hostId}` : `starting on ${d.hostId}`;
    const reason =
      hostLost === undefined
        ? d.state === "RESERVED"
          ? "reserved"
          : "placed"
        : d.state === "RESERVED"
          ? "replanned"
          : "restarted";
    const next: Lease = {
      ...base,
      state: d.state,
      hostId: d.hostId,
      start: d.start,
      end: d.end,
      updatedAt: now,
      statusMessage: hostLost === undefined ? verb : `${hostLost}: ${verb}`,
      history: [...base.history, { hostId: d.hostId, at: now, reason }],
    };
    this.#commitHold(next);
    let item: Versioned<Lease>;
    try {
      item = await this.#write(previous, next, event);
    } catch (error) {
      this.#index.release(next.id);
      throw error;
    }
    if (next.state === "STARTING") this.#sendStart(next);
    return item;
  }

  /**
   * Preemption: running victims get a notice and stop at its end (their holds end there);
   * reserved victims are preempted at once. The lease is then placed, now if the room is already
   * there, else reserved on the plan's host from the notice's end.
   */
  async #preemptFor(
    base: Lease,
    d: Extract<Decision, { kind: "preempt" }>,
    now: number,
  ): Promise<Versioned<Lease>> {
    // Planned before the notices shorten the victims' holds: a destination for the whole window.
    const mover = this.#migrationHooks.victims;
    const moves =
      mover?.plan(
        d.hostId,
        d.victims.filter((v) => this.get(v).value.state === "ACTIVE"),
        now,
      ) ?? [];
    for (const victimId of d.victims) {
      const victim = this.get(victimId);
      const v = victim.value;
      if (RUNNING_STATES.has(v.state)) {
        const deadline = Math.min(d.start, v.end);
        // A running victim started before now < deadline; shrinking its hold always fits.
        this.#index.resize(victimId, { window: { start: v.start, end: deadline } });
        await this.#write(
          victim,
          {
            ...v,
            stopReason: "preempt",
            stopDeadline: deadline,
            statusMessage: `preempted by lease ${base.id} (priority ${base.spec.priority}); stops at ${new Date(deadline).toISOString()}`,
          },
          "PREEMPTION_NOTICE",
        );
      } else {
        await this.#finish(
          victim,
          "PREEMPTED",
          `preempted by lease ${base.id} (priority ${base.spec.priority})`,
        );
      }
    }
    // A victim that moves before its notice ends leaves the host early (the move clears the notice).
    if (moves.length > 0) mover?.run(moves);
    const nowDecision = this.#decide(base.id, base.spec, now, { allowPreemption: false });
    if (nowDecision.kind === "place") return this.#placeNew(base, nowDecision, "CREATED");
    return this.#placeNew(
      base,
      {
        kind: "place",
        state: "RESERVED",
        hostId: d.hostId,
        start: d.start,
        end: d.end,
        explanation: d.explanation,
      },
      "CREATED",
    );
  }

  // ── the queue ──────────────────────────────────────────────────────────────────────────────

  #scheduleQueuePass(): void {
    if (this.#queuePass !== undefined || this.#pending.size === 0) return;
    this.#queuePass = this.#clock.setTimer(0, () => {
      this.#queuePass = undefined;
      void this.#exclusive(() => this.#runQueue()).catch((error) =>
        this.#log.error({ err: error }, "queue pass failed"),
      );
    });
  }

  /**
   * Places queued leases, highest priority first, then oldest. Placement over the timelines means
   * a queued lease only fits where it delays no reservation (backfill).
   */
  async #runQueue(): Promise<void> {
    const now = this.#clock.now();
    const queued = [...this.#pending]
      .map((id) => this.get(id))
      .sort(
        (a, b) =>
          b.value.spec.priority - a.value.spec.priority ||
          a.value.createdAt - b.value.createdAt ||
          (a.id < b.id ? -1 : 1),
      );
    let roomAsks = 0;
    for (const item of queued) {
      const lease = item.value;
      if (lease.state !== "PENDING") continue;
      // A lease that has waited a while asks for room again: what running leases could move to
      // changes as leases come and go, and nothing else would move them for it.
      let askRoom = false;
      if (this.#migrationHooks.makeRoom !== undefined && !this.#makingRoom.has(lease.id)) {
        const askedAt = this.#roomAskedAt.get(lease.id);
        // Queued just now, by an admission (or a settled make-room) that asked already.
        if (askedAt === undefined) this.#roomAskedAt.set(lease.id, now);
        else if (askedAt + QUEUED_MAKE_ROOM_RETRY_MS <= now) {
          askRoom = roomAsks < QUEUED_MAKE_ROOM_PER_PASS;
        }
      }
      const d = this.#decide(lease.id, lease.spec, now, {
        allowPreemption: false,
        makeRoom: askRoom,
      });
      if (askRoom) {
        roomAsks++;
        this.#roomAskedAt.set(lease.id, now);
      }
      if (d.kind === "place") {
        try {
          this.#admission?.place(lease, d);
        } catch {
          continue; // over its tenant's quota for now: stays queued until room frees
        }
        await this.#placeNew(lease, d, "STATE_CHANGED", item);
      } else if (d.kind === "make-room") {
        await this.#write(
          item,
          { ...lease, statusMessage: makingRoomMessage(d.plan) },
          "STATE_CHANGED",
        );
        this.#runMakeRoom(lease.id, d.plan, 1);
      } else if (d.kind === "none" && lease.spec.window.kind === "flexible") {
        await this.#finish(
          item,
          "REJECTED",
          `no capacity before the latest start: ${d.explanation.summary}`,
        );
      }
    }
    // The next pass that may ask: the earliest ask due among leases still waiting (soon, for
    // those due now that this pass had no turn for).
    let nextAsk = Number.POSITIVE_INFINITY;
    for (const [id, askedAt] of this.#roomAskedAt) {
      if (!this.#pending.has(id)) this.#roomAskedAt.delete(id);
      else if (!this.#makingRoom.has(id)) {
        nextAsk = Math.min(nextAsk, Math.max(askedAt + QUEUED_MAKE_ROOM_RETRY_MS, now + 1));
      }
    }
    this.#roomRetry?.cancel();
    this.#roomRetry = undefined;
    if (Number.isFinite(nextAsk)) {
      this.#roomRetry = this.#clock.setTimerAt(nextAsk, () => {
        this.#roomRetry = undefined;
        this.#scheduleQueuePass();
      });
    }
  }

  /** Hands a make-room plan for the PENDING lease `id` to the room maker. */
  #runMakeRoom(id: string, plan: RoomPlan, attempt: number): void {
    const maker = this.#migrationHooks.makeRoom;
    if (maker === undefined) return;
    this.#makingRoom.add(id);
    maker.run(id, plan, attempt);
  }

  // ── timers ─────────────────────────────────────────────────────────────────────────────────

  /**
   * Arms the timers `lease`'s state calls for. A timer already armed for the same thing at the
   * same time (a lease's end, as it goes from STARTING to ACTIVE) is kept rather than replaced:
   * when it fires, it acts on the lease as it is then, if that version still plans it.
   */
  #arm(lease: Lease): void {
    const old = this.#timers.get(lease.id);
    const plan = isTerminal(lease.state) ? NO_TIMERS : this.#timerPlan(lease, this.#clock.now());
    // The same timers as before (STARTING → ACTIVE): nothing to change.
    const sameAsArmed = (p: PlannedTimer): QueuedTimer<TimerKind> | undefined =>
      old?.find((t) => t.kind === p.what && t.due === p.time);
    if (old !== undefined && old.length === plan.length && plan.every(sameAsArmed)) return;
    const armed: QueuedTimer<TimerKind>[] = [];
    for (const p of plan) {
      armed.push(sameAsArmed(p) ?? this.#timerQueue.add(p.time, lease.id, p.what));
    }
    if (old !== undefined) {
      for (const t of old) if (!armed.includes(t)) this.#timerQueue.cancel(t);
    }
    if (armed.length === 0) this.#timers.delete(lease.id);
    else this.#timers.set(lease.id, armed);
  }

  /** Timer `what` of lease `id`, due at `time`, fired: it acts if the lease now still plans it. */
  #fire(id: string, what: TimerKind, time: number): void {
    const timers = this.#timers.get(id);
    const left = timers?.filter((t) => t.kind !== what || t.due !== time);
    if (left !== undefined && left.length < (timers?.length ?? 0)) {
      if (left.length === 0) this.#timers.delete(id);
      else this.#timers.set(id, left);
    }
    void this.#exclusive(async () => {
      const current = this.#leases.get(id);
      if (current === undefined || isTerminal(current.value.state)) return;
      // The lease changed since this timer was armed, and its new version has other timers.
      const planned = this.#timerPlan(current.value, undefined);
      if (planned.some((p) => p.what === what && p.time === time))
        await this.#timerAction(what, current);
    }).catch((error) =>
      this.#log.error({ err: error, lease: id, timer: `${what}@${time}` }, "lease timer failed"),
    );
  }

  /**
   * The timers `lease`'s state calls for, when (no timers for a final state); what each does is
   * `#timerAction`'s. `armedAt`: the time of arming (a flexible lease's earliest start is armed
   * only while ahead); undefined when a fired timer is checked against the plan.
   */
  #timerPlan(lease: Lease, armedAt: number | undefined): PlannedTimer[] {
    const timers: PlannedTimer[] = [];
    const at = (time: number, what: TimerKind): void => {
      timers.push({ what, time });
    };
    const t = this.#timings;
    switch (lease.state) {
      case "PENDING": {
        const w = lease.spec.window;
        // A queued lease waits until its latest start (flexible), its start (reserved), or the
        // queue timeout (immediate), then is REJECTED.
        const deadline =
          w.kind === "flexible"
            ? w.latestStart
            : w.kind === "reserved"
              ? w.start
              : lease.createdAt + t.queueTimeoutMs;
        at(deadline, "queue-deadline");
        if (w.kind === "flexible" && (armedAt === undefined || w.earliestStart > armedAt)) {
          at(w.earliestStart, "earliest-start");
        }
        break;
      }
      case "RESERVED":
        at(lease.start, "start");
        break;
      case "STARTING":
      case "ACTIVE":
      case "MIGRATING":
        if (lease.stopDeadline !== undefined && lease.stopReason === "preempt") {
          at(lease.stopDeadline, "preemption");
        } else {
          if (lease.stopDeadline !== undefined && lease.stopReason === "drain") {
            at(lease.stopDeadline, "drain-deadline");
          }
          if (!lease.warned && lease.end - t.expiryNoticeMs > lease.start) {
            at(lease.end - t.expiryNoticeMs, "expiry-warning");
          }
          at(lease.end, "end");
        }
        break;
      case "SUSPENDED":
        // The window keeps running while suspended: at its end the saved state is discarded.
        at(lease.end, "end");
        break;
      case "ENDING":
        // Stop was asked with a grace period; after it, the host is told to kill.
        at(lease.updatedAt + t.stopGraceMs, "force-stop");
        break;
      default:
        break;
    }
    return timers;
  }

  /** What timer `what` does to the lease `item` (its current version), as `#timerPlan` planned. */
  async #timerAction(what: TimerKind, item: Versioned<Lease>): Promise<unknown> {
    const lease = item.value;
    switch (what) {
      case "queue-deadline": {
        const w = lease.spec.window;
        const why =
          w.kind === "flexible"
            ? "no capacity before the latest start"
            : w.kind === "reserved"
              ? "no capacity by the reserved start"
              : `no capacity within the queue timeout (${Math.round(this.#timings.queueTimeoutMs / 60_000)} min)`;
        return this.#finish(item, "REJECTED", why);
      }
      case "earliest-start":
        return this.#scheduleQueuePass();
      case "start":
        return this.#startReserved(item);
      case "preemption":
        return this.#preemptionDeadline(item);
      case "drain-deadline":
        return this.#drainDeadline(item);
      case "expiry-warning":
        return this.#write(
          item,
          { ...lease, warned: true, statusMessage: `ends at ${new Date(lease.end).toISOString()}` },
          "EXPIRY_WARNING",
        );
      case "end":
        if (lease.state === "SUSPENDED") {
          await this.#finish(item, "ENDED", "the lease's window ended while suspended");
          this.#sendStop(lease, true);
          return;
        }
        return this.#beginStop(item, "end", "the lease's window ended");
      case "force-stop":
        return this.#sendStop(lease, true);
    }
  }

  /**
   * A preempted victim's notice ran out. One that allows it is suspended to disk instead of
   * stopped (it keeps its window and can be resumed where there is room); the others stop.
   * (A victim that can move is migrated by the preemption-by-migration planner before this.)
   */
  async #preemptionDeadline(item: Versioned<Lease>): Promise<void> {
    const lease = item.value;
    if (
      lease.state === "ACTIVE" &&
      lease.spec.migration.allowSuspend &&
      lease.end > this.#clock.now()
    ) {
      try {
        this.#index.resize(lease.id, {
          window: { start: lease.start, end: lease.end },
          resources: diskOnly(lease.spec.resources),
        });
        const { stopReason: _r, stopDeadline: _d, ...rest } = lease;
        await this.#write(
          item,
          {
            ...rest,
            state: "SUSPENDED",
            statusMessage: `suspended instead of stopped: ${lease.statusMessage}`,
          },
          "STATE_CHANGED",
        );
        this.#gateway.suspend(lease.hostId, lease.id).catch((error) => {
          this.#log.warn({ err: error, lease: lease.id }, "suspend command failed");
        });
        return;
      } catch (error) {
        if (!(error instanceof CapacityExceededError)) throw error;
      }
    }
    await this.#beginStop(item, "preempt", lease.statusMessage);
  }

  async #startReserved(item: Versioned<Lease>): Promise<void> {
    const lease = item.value;
    if (!this.#hosts.has(lease.hostId)) {
      await this.#finish(item, "FAILED", `host ${lease.hostId} is gone`);
      return;
    }
    const next = await this.#transition(item, "STARTING", `starting on ${lease.hostId}`);
    this.#sendStart(next.value);
  }

  // ── stopping ───────────────────────────────────────────────────────────────────────────────

  async #beginStop(
    item: Versioned<Lease>,
    reason: StopReason,
    message: string,
  ): Promise<Versioned<Lease>> {
    const lease = item.value;
    // The capacity is free from now on: the timeline no longer counts this lease (nor the
    // destination of a migration in flight, which the orchestrator then aborts).
    this.#index.releaseLease(lease.id);
    const next = await this.#write(
      item,
      {
        ...lease,
        state: "ENDING",
        stopReason: reason,
        statusMessage: message,
        updatedAt: this.#clock.now(),
      },
      "STATE_CHANGED",
    );
    this.#sendStop(next.value, false);
    this.#scheduleQueuePass();
    return next;
  }

  #sendStart(lease: Lease): void {
    this.#gateway
      .start(lease.hostId, {
        leaseId: lease.id,
        resources: lease.spec.resources,
        end: lease.end,
        image: lease.spec.driver.image,
        params: lease.spec.driver.params,
      })
      .catch((error) => {
        this.#log.warn({ err: error, lease: lease.id, host: lease.hostId }, "start command failed");
        void this.#onReport({
          hostId: lease.hostId,
          leaseId: lease.id,
          state: "FAILED",
          message: `start failed: ${errorMessage(error)}`,
        });
      });
  }

  #sendStop(lease: Lease, force: boolean): void {
    this.#gateway
      .stop(lease.hostId, lease.id, { graceMs: this.#timings.stopGraceMs, force })
      .catch((error) => {
        this.#log.warn({ err: error, lease: lease.id, host: lease.hostId }, "stop command failed");
      });
  }

  // ── lost hosts and reconciliation ──────────────────────────────────────────────────────────

  /** Corrections made to hosts' actual state, by kind (for metrics and tests). */
  readonly corrections = {
    staleStopped: 0,
    missingRestarted: 0,
    restartedElsewhere: 0,
    failedWithHost: 0,
    reservationsMoved: 0,
  };
  readonly #restartedAt = new Map<string, number>();
  readonly #staleStopAt = new Map<string, number>();

  /**
   * A host is DOWN: each lease on it follows its policy. A reservation moves to another host for
   * the same window (or waits as PENDING); a running lease restarts elsewhere for the rest of its
   * window if its policy says restart and a host has room, else it FAILS; a stopping one ends.
   */
  async #hostDown(hostId: string): Promise<void> {
    const now = this.#clock.now();
    this.#index.advanceTo(now);
    const onHost = this.#onHost(hostId);
    for (const item of onHost) {
      const lease = item.value;
      switch (lease.state) {
        case "RESERVED":
          await this.#replan(item, `host ${hostId} is down`);
          break;
        case "STARTING":
        case "ACTIVE":
        case "MIGRATING": {
          this.#index.releaseLease(lease.id);
          if (lease.spec.onHostFailure === "restart" && lease.end > now) {
            // Not on the destination of its migration: that host holds the prepared incoming
            // workload until the orchestrator's abort reaches it, and would refuse the start.
            const avoid =
              lease.state === "MIGRATING" && lease.migrationTo !== undefined
                ? lease.migrationTo
                : hostId;
            const noRoom = await this.#restartAway(item, lease, avoid, `host ${hostId} is down`);
            if (noRoom === undefined) {
              this.corrections.restartedElsewhere++;
              break;
            }
            this.corrections.failedWithHost++;
            await this.#finish(
              item,
              "FAILED",
              `host ${hostId} is down and no host can take the rest of the window: ${noRoom.summary}`,
            );
            break;
          }
          this.corrections.failedWithHost++;
          await this.#finish(item, "FAILED", `host ${hostId} is down (on_host_failure: fail)`);
          break;
        }
        case "ENDING":
          await this.#finish(
            item,
            stopFinal(lease.stopReason),
            `${lease.statusMessage} (host ${hostId} is down)`,
          );
          break;
        case "SUSPENDED":
          // The saved state was on that host's disk.
          await this.#finish(item, "FAILED", `host ${hostId} is down with the suspended state`);
          break;
        default:
          break;
      }
    }
  }

  /**
   * What a host runs against what the broker placed there: workloads the broker does not place on
   * that host are stopped (the broker's view wins: a workload never runs on two hosts), and running
   * leases missing from the host are started again. A Hello lists everything; a heartbeat's list
   * is checked only for leases already ACTIVE, and a restart is not repeated within a grace.
   */
  reconcile(inventory: {
    hostId: string;
    leaseIds: readonly string[];
    fromHello: boolean;
    running?: readonly string[];
  }): Promise<void> {
    // A heartbeat that agrees with the broker's view (the usual case: every host, every second)
    // changes nothing: it is checked here, not queued behind the mutations as one more. A beat
    // that disagrees is checked again in the exclusive section; a view that changes meanwhile is
    // checked against the next beat.
    if (!inventory.fromHello && this.#agrees(inventory.hostId, inventory.leaseIds)) {
      return Promise.resolve();
    }
    return this.#exclusive(async () => {
      const { hostId } = inventory;
      const present = new Set(inventory.leaseIds);
      for (const leaseId of present) {
        if (this.#belongs(leaseId, hostId)) continue;
        // A Hello and the beats after it list the workload until the stop lands: stop it once.
        const key = `${hostId}/${leaseId}`;
        const sent = this.#staleStopAt.get(key);
        if (sent !== undefined && this.#clock.now() - sent < RESTART_GRACE_MS) continue;
        this.#staleStopAt.set(key, this.#clock.now());
        this.corrections.staleStopped++;
        const lease = this.#leases.get(leaseId)?.value;
        this.#log.warn(
          { host: hostId, lease: leaseId, state: lease?.state, placedOn: lease?.hostId },
          "reconcile: stopping a workload not placed on this host",
        );
        this.#gateway
          .stop(hostId, leaseId, { graceMs: 0, force: true })
          .catch((error) =>
            this.#log.warn({ err: error, host: hostId, lease: leaseId }, "reconcile: stop failed"),
          );
      }
      const now = this.#clock.now();
      if (inventory.fromHello) await this.#catchUp(hostId, present, inventory.running ?? []);
      for (const item of this.#onHost(hostId)) {
        const lease = item.value;
        if (present.has(lease.id)) continue;
        const shouldRun =
          lease.state === "ACTIVE" || (inventory.fromHello && lease.state === "STARTING");
        if (!shouldRun) continue;
        const last = this.#restartedAt.get(lease.id);
        if (!inventory.fromHello && last !== undefined && now - last < RESTART_GRACE_MS) continue;
        this.#restartedAt.set(lease.id, now);
        this.corrections.missingRestarted++;
        this.#log.warn(
          { host: hostId, lease: lease.id, state: lease.state },
          "reconcile: starting a missing workload",
        );
        this.#sendStart(lease);
      }
    });
  }

  /** Whether the broker places `leaseId`'s workload on `hostId` (or lets it stay there). */
  #belongs(leaseId: string, hostId: string): boolean {
    const lease = this.#leases.get(leaseId)?.value;
    return (
      lease !== undefined &&
      ((lease.hostId === hostId &&
        (RUNNING_STATES.has(lease.state) || lease.state === "SUSPENDED")) ||
        (lease.state === "MIGRATING" && lease.migrationTo === hostId) ||
        // Its saved state, being fetched by the host it resumes on: kept until it runs there.
        (lease.state === "STARTING" && this.#resumingFrom.get(leaseId) === hostId))
    );
  }

  /**
   * A heartbeat's list against the broker's view of its host: every workload listed belongs
   * there, and every ACTIVE lease there is listed (what `reconcile` would otherwise correct).
   */
  #agrees(hostId: string, leaseIds: readonly string[]): boolean {
    for (const leaseId of leaseIds) if (!this.#belongs(leaseId, hostId)) return false;
    const onHost = this.#byHost.get(hostId);
    if (onHost === undefined) return true;
    let listed: Set<string> | undefined;
    for (const id of onHost) {
      if (this.#leases.get(id)?.value.state !== "ACTIVE") continue;
      listed ??= new Set(leaseIds);
      if (!listed.has(id)) return false;
    }
    return true;
  }

  /**
   * What a Hello says that reports may have missed (they are published once; during a leader
   * failover nobody listens): a STARTING lease the host runs is ACTIVE, an ENDING lease the host
   * no longer has has stopped.
   */
  async #catchUp(
    hostId: string,
    present: ReadonlySet<string>,
    running: readonly string[],
  ): Promise<void> {
    const isRunning = new Set(running);
    for (const item of this.#onHost(hostId)) {
      const lease = item.value;
      if (lease.state === "STARTING" && isRunning.has(lease.id)) {
        await this.#transition(item, "ACTIVE", `running on ${hostId}`);
      } else if (lease.state === "ENDING" && !present.has(lease.id)) {
        await this.#finish(item, stopFinal(lease.stopReason), lease.statusMessage);
      }
    }
  }

  // ── reports from hosts ─────────────────────────────────────────────────────────────────────

  #onReport(report: WorkloadReport): Promise<void> {
    return this.#exclusive(async () => {
      const item = this.#leases.get(report.leaseId);
      const lease = item?.value;
      // Both ends of a migration report about it; the orchestrator, not this, decides its outcome.
      if (
        lease?.state === "MIGRATING" &&
        (report.hostId === lease.migrationTo ||
          (report.migrationId !== undefined &&
            report.migrationId !== "" &&
            report.migrationId === lease.migrationId))
      ) {
        return;
      }
      if (
        item === undefined ||
        lease === undefined ||
        lease.hostId !== report.hostId ||
        isTerminal(lease.state)
      ) {
        // A workload the broker does not place there: the broker's view wins.
        if (report.state === "RUNNING") {
          this.#log.warn(
            { lease: report.leaseId, host: report.hostId },
            "unexpected workload: stopping it",
          );
          this.#gateway
            .stop(report.hostId, report.leaseId, { graceMs: 0, force: true })
            .catch(() => {});
        }
        return;
      }
      const resumedFrom = lease.state === "STARTING" ? this.#resumingFrom.get(lease.id) : undefined;
      if (resumedFrom !== undefined && (report.state === "FAILED" || report.state === "STOPPED")) {
        await this.#revertResume(item, resumedFrom, report.message || "the workload stopped");
        return;
      }
      switch (report.state) {
        case "RUNNING":
          if (lease.state === "STARTING") {
            await this.#transition(item, "ACTIVE", `running on ${lease.hostId}`);
            if (resumedFrom !== undefined) {
              // Resumed from its copy: the source's saved state has served its purpose.
              this.#resumingFrom.delete(lease.id);
              this.#gateway
                .stop(resumedFrom, lease.id, { graceMs: 0, force: true })
                .catch((error) =>
                  this.#log.warn(
                    { err: error, lease: lease.id, host: resumedFrom },
                    "discarding saved state failed",
                  ),
                );
            }
          }
          break;
        case "STOPPED":
          if (
            report.migrationId !== undefined &&
            report.migrationId !== "" &&
            lease.state === "ACTIVE"
          ) {
            // The source finished a migration the broker had given up: the workload left for a
            // host the broker does not place it on. Reconciliation starts it here again and stops
            // the stray copy, so the lease lives on (on one host).
            this.#log.warn(
              { lease: lease.id, host: report.hostId, migration: report.migrationId },
              "a migration finished after it was aborted",
            );
          } else if (lease.state === "ENDING") {
            await this.#finish(item, stopFinal(lease.stopReason), lease.statusMessage);
          } else if (RUNNING_STATES.has(lease.state)) {
            await this.#finish(
              item,
              "FAILED",
              `the workload stopped unexpectedly${report.message === "" ? "" : `: ${report.message}`}`,
            );
          }
          break;
        case "FAILED": {
          const message = report.message === "" ? "the workload failed" : report.message;
          // A workload that fails while being stopped has stopped: the lease ends as intended.
          if (lease.state === "ENDING")
            await this.#finish(item, stopFinal(lease.stopReason), message);
          else if (RUNNING_STATES.has(lease.state)) await this.#finish(item, "FAILED", message);
          break;
        }
      }
    });
  }

  // ── writes ─────────────────────────────────────────────────────────────────────────────────

  async #transition(
    item: Versioned<Lease>,
    to: LeaseState,
    message: string,
  ): Promise<Versioned<Lease>> {
    assertTransition(item.id, item.value.state, to);
    return this.#write(item, { ...item.value, state: to, statusMessage: message }, "STATE_CHANGED");
  }

  /** Ends a lease in a final state and frees whatever it held. */
  async #finish(
    item: Versioned<Lease>,
    to: LeaseState,
    message: string,
  ): Promise<Versioned<Lease>> {
    assertTransition(item.id, item.value.state, to);
    this.#index.releaseLease(item.id);
    this.#resumingFrom.delete(item.id);
    const lease = item.value;
    const now = this.#clock.now();
    // A lease that ran and stops before its planned end records when it really ended.
    const ranAndStoppedEarly = lease.start > 0 && lease.start <= now && now < lease.end;
    const next = await this.#write(
      item,
      { ...lease, state: to, statusMessage: message, ...(ranAndStoppedEarly ? { end: now } : {}) },
      "STATE_CHANGED",
    );
    this.#scheduleQueuePass();
    return next;
  }

  async #write(
    previous: Versioned<Lease> | undefined,
    written: Lease,
    event: LeaseEventType,
    /** Written in the same transaction (a migration record). */
    extra: readonly WriteOp<BrokerSchema>[] = [],
  ): Promise<Versioned<Lease>> {
    // Only a MIGRATING lease names a migration.
    let next = written;
    if (next.state !== "MIGRATING" && next.migrationId !== undefined) {
      const { migrationId: _id, migrationTo: _to, ...rest } = next;
      next = rest;
    }
    if (previous !== undefined && previous.value.state !== next.state) {
      assertTransition(next.id, previous.value.state, next.state);
    } else if (previous === undefined) {
      assertTransition(next.id, "NEW", next.state);
    }
    // Object.assign, not a spread: the store freezes the value, and V8 gives a frozen spread copy
    // a hidden class of its own (~700 bytes of maps and descriptors kept per lease version),
    // where frozen assign copies share one.
    const value: Lease = Object.assign({}, next, {
      updatedAt: this.#clock.now(),
      lastEvent: event,
    });
    const revision = await this.#store.commit([
      {
        type: "put",
        collection: "leases",
        id: value.id,
        value,
        expectRevision: previous?.revision ?? 0,
      },
      ...extra,
    ]);
    const stored: Versioned<Lease> = {
      id: value.id,
      value,
      revision,
      createRevision: previous?.createRevision ?? revision,
    };
    this.#remember(stored);
    this.#arm(stored.value);
    if (this.#changeListeners.size > 0) {
      const change: LeaseChange = { lease: stored.value, previous: previous?.value };
      this.#changeListeners.emit(change);
    }
    return stored;
  }

  #remember(item: Versioned<Lease>): void {
    const lease = item.value;
    if (item.revision > this.#revision) this.#revision = item.revision;
    const before = this.#leases.get(item.id)?.value;
    this.#leases.set(item.id, item);
    this.#admission?.observe(lease);
    if (before === undefined && this.#sortedIds !== undefined) {
      // Ids are time-ordered, so a new one almost always goes last; otherwise sort again lazily.
      const last = this.#sortedIds[this.#sortedIds.length - 1];
      if (last === undefined || item.id > last) this.#sortedIds.push(item.id);
      else this.#sortedIds = undefined;
    }
    // Live leases by host: heartbeats reconcile one host's leases, not every lease.
    if (before !== undefined && before.hostId !== "")
      this.#byHost.get(before.hostId)?.delete(lease.id);
    if (lease.hostId !== "" && !isTerminal(lease.state)) {
      let onHost = this.#byHost.get(lease.hostId);
      if (onHost === undefined) {
        onHost = new Set();
        this.#byHost.set(lease.hostId, onHost);
      }
      onHost.add(lease.id);
    }
    if (before?.migrationTo !== undefined)
      this.#migratingTo.get(before.migrationTo)?.delete(lease.id);
    if (lease.state === "MIGRATING" && lease.migrationTo !== undefined) {
      let to = this.#migratingTo.get(lease.migrationTo);
      if (to === undefined) {
        to = new Set();
        this.#migratingTo.set(lease.migrationTo, to);
      }
      to.add(lease.id);
    }
    if (lease.requestId !== "")
      this.#byRequestId.set(requestKey(lease.spec.tenant, lease.requestId), lease.id);
    if (lease.state === "PENDING") {
      this.#pending.add(lease.id);
    } else {
      this.#pending.delete(lease.id);
    }
  }

  #commitHold(lease: Lease): void {
    this.#index.commit(
      lease.id,
      lease.hostId,
      { start: lease.start, end: lease.end },
      lease.state === "SUSPENDED" ? diskOnly(lease.spec.resources) : lease.spec.resources,
      this.#holdMeta(lease),
    );
  }

  /**
   * A backlog of mutations otherwise runs in one event-loop turn (the store answers at once):
   * no answer, command or event leaves until all of it is done. After YIELD_AFTER_MS of them the
   * loop turns once, so that the first ones' answers and start commands go out meanwhile.
   */
  #letTheLoopTurn(): Promise<void> | undefined {
    const now = this.#clock.now();
    if (now - this.#turnStartedAt < YIELD_AFTER_MS) return undefined;
    return new Promise((resolve) =>
      setImmediate(() => {
        this.#turnStartedAt = this.#clock.now();
        resolve();
      }),
    );
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(() => this.#letTheLoopTurn()).then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }
}

/** How long mutations run back to back before the event loop is let turn (see `#exclusive`). */
const YIELD_AFTER_MS = 10;

/** The final state of a lease that was stopped for `reason`. */
function stopFinal(reason: StopReason | undefined): LeaseState {
  switch (reason) {
    case "cancel":
      return "CANCELLED";
    case "preempt":
      return "PREEMPTED";
    case "failure":
    case "drain":
      return "FAILED";
    default:
      return "ENDED";
  }
}

/** What a suspended lease keeps on its host: its disk (the saved memory lives there too). */
function diskOnly(r: Resources): Resources {
  return { cpuMillis: 0, memoryMib: 0, diskGib: r.diskGib, gpus: 0 };
}

function emptyExplanation(summary: string): PlacementExplanation {
  return { mode: "exhaustive", hostsConsidered: 0, hostsEvaluated: 0, filters: [], summary };
}

/** Request ids are the client's, scoped by tenant: two tenants may pick the same one. */
function requestKey(tenant: string, requestId: string): string {
  return `${tenant}/${requestId}`;
}

/** Deep equality of plain data (specs), for idempotent submits. */
export function sameSpec(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    sameSpec((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/** What placement sees of a lease over `window` (`constraints` parsed from `spec.constraints`). */
export function placementRequest(
  id: string,
  spec: LeaseSpec,
  window: { start: number; end: number },
  constraints: readonly Requirement[],
): PlacementRequest {
  return {
    leaseId: id,
    resources: spec.resources,
    window,
    constraints,
    priority: spec.priority,
    preemptible: spec.preemptible,
    ...(spec.affinity === undefined
      ? {}
      : {
          group: {
            name: spec.affinity.group,
            kind: spec.affinity.kind,
            hard: spec.affinity.hard,
            ...(spec.affinity.topologyKey === "" ? {} : { topologyKey: spec.affinity.topologyKey }),
            ...(spec.affinity.maxSkew === 0 ? {} : { maxSkew: spec.affinity.maxSkew }),
          },
        }),
    ...(spec.policy === undefined ? {} : { policy: spec.policy }),
  };
}
