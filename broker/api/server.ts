/**
 * The gRPC API: the LeaseBroker service, grpc.health.v1 and server reflection on one server.
 * Handlers translate between the contract and the domain (convert.ts) and throw typed errors;
 * `unary` turns every failure into a status in one place (status.ts).
 */
import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import {
  type Clock,
  DeadlineExceededError,
  errorMessage,
  InvalidArgumentError,
  type Logger,
  ResourceExhaustedError,
} from "../../core/index.js";
import {
  type ClusterIndex,
  matches,
  type PlacementPolicy,
  parseSelector,
  type Requirement,
  type Resources,
} from "../../placement/index.js";
import {
  LEASE_BROKER_SERVICE_NAME,
  type LeaseBrokerGrpcType,
  type LeaseBrokerHandlers,
  loadLeaseBrokerPackage,
  loadLeaseBrokerPackageDefinition,
  msFromDuration,
  msFromTimestamp,
  type SubmitLeaseRequest,
  type SubmitLeasesRequest,
  timestampFromMs,
  type WatchLeasesRequest,
} from "../../proto/index.js";
import { CallGuard, type TokenSource } from "../auth/index.js";
import {
  type AutoscaleSignaller,
  type AutoscaleStatusView,
  statusToProto,
} from "../autoscale/index.js";
import { gateHandlers, type RequestGate } from "../ha/gate.js";
import type { HostRegistry, HostView } from "../hosts/registry.js";
import type {
  LeaseManager,
  PlacementPreview,
  SubmitRequest,
  SubmitResult,
} from "../leases/lease-manager.js";
import type { Lease, LeaseSpec } from "../leases/model.js";
import type { LeaseState } from "../leases/transitions.js";
import {
  drainHost,
  type MigrationOrchestrator,
  type MigrationPlanners,
  predictLeaseMigration,
} from "../migrations/index.js";
import { type BrokerStore, CompactedError } from "../store/index.js";
import {
  enumName,
  eventMigrationId,
  explanationToProto,
  forecastToProto,
  hostToProto,
  leaseToProto,
  migrationStateFromProto,
  migrationToProto,
  predictionToProto,
  requestTime,
  resourcesToProto,
  specFromProto,
  stateFromProto,
} from "./convert.js";
import {
  DecisionExplanation,
  LeaseEventAnswer,
  SubmitAnswer,
  type SubmitItem,
  type SubmitLeasesAnswer,
  serializeLeaseEvent,
  serializeSubmitAnswer,
  serializeSubmitLeasesAnswer,
} from "./lease-wire.js";
import { MAX_SUBMIT_BATCH } from "./limits.js";
import { isPlacementExplanation, toItemError, toServiceError } from "./status.js";

export interface ApiServerOptions {
  /** host:port; port 0 picks a free one (see `port` after `start`). */
  readonly address: string;
  /** Largest request accepted. Default 1 MiB. */
  readonly maxReceiveBytes?: number;
  /** Largest response sent. Default 16 MiB. */
  readonly maxSendBytes?: number;
  /** Events a watcher may fall behind before its stream is ended. Default 10,000. */
  readonly maxWatchBacklog?: number;
  /** TLS or mutual TLS (broker/auth/tls.ts). Default: plaintext. */
  readonly credentials?: ServerCredentials;
  /** Bearer tokens: every LeaseBroker call authenticated and authorized (broker/auth/guard.ts). */
  readonly auth?: { readonly tokens: TokenSource };
}

export interface ApiDeps {
  /** For the revision that list responses were read at. */
  readonly store: Pick<BrokerStore, "revision">;
  readonly leases: LeaseManager;
  readonly migrations: MigrationOrchestrator;
  /** Rebalance (and the other planners); without it Rebalance is UNIMPLEMENTED. */
  readonly planners?: MigrationPlanners;
  readonly hosts: HostRegistry;
  readonly index: ClusterIndex;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The autoscaling hook; without it GetAutoscaleStatus says "not enabled". */
  readonly autoscale?: Pick<AutoscaleSignaller, "status">;
  /** High availability: which calls this broker answers in its role (all, without one). */
  readonly gate?: RequestGate;
}

const AUTOSCALE_OFF: AutoscaleStatusView = {
  enabled: false,
  lastSignal: undefined,
  evaluation: undefined,
  idleHostIds: [],
  drainingHostIds: [],
  removableHostIds: [],
};

/** The place of a SubmitLeases item until the lease manager's outcome for it replaces it. */
const NOT_YET_ADMITTED: SubmitItem = { error: { code: status.INTERNAL, message: "not admitted" } };

const MAX_BUCKETS = 1000;
const DEFAULT_BUCKETS = 24;
const DEFAULT_BUCKET_MS = 3_600_000;
const MIN_BUCKET_MS = 1000;
const MAX_BUCKET_MS = 30 * 86_400_000;
const REQUEST_ID = /^[A-Za-z0-9_-]{0,64}$/;
const MAX_REASON = 256;

function checkReason(reason: string): void {
  if (reason.length > MAX_REASON)
    throw new InvalidArgumentError("reason", `at most ${MAX_REASON} characters`);
}

/** ExplainPlacement's explanation: the pipeline's, plus the preemption plan if there is one. */
function previewExplanation(preview: PlacementPreview, policy: PlacementPolicy) {
  return {
    ...explanationToProto(preview.explanation, policy),
    ...(preview.victims.length === 0
      ? {}
      : {
          preemption: {
            hostId: preview.hostId ?? "",
            victimLeaseIds: [...preview.victims].sort(),
          },
        }),
  };
}

/**
 * A dry run's lease: what SubmitLease would admit (no id, revision 0), or the RESOURCE_EXHAUSTED
 * it would fail with.
 */
function dryRunLease(
  spec: LeaseSpec,
  preview: PlacementPreview,
  requestId: string,
  now: number,
): Lease {
  let state: LeaseState;
  if (preview.hostId !== undefined) {
    state = (preview.start ?? now) <= now ? "STARTING" : "RESERVED";
  } else if (spec.window.kind === "flexible" || spec.allowQueue) {
    state = "PENDING";
  } else {
    throw new ResourceExhaustedError(
      `no host can take this lease: ${preview.explanation.summary}`,
      preview.explanation,
    );
  }
  return {
    id: "",
    spec,
    state,
    hostId: preview.hostId ?? "",
    start: preview.start ?? 0,
    end: preview.end ?? 0,
    requestId,
    createdAt: now,
    updatedAt: now,
    statusMessage: preview.explanation.summary,
    history: [],
    warned: false,
    lastEvent: "CREATED",
  };
}

/** Per component, the larger of `a` and `b` (extended resources by name). */
function maxResources(a: Resources, b: Resources): Resources {
  const extended: Record<string, number> = { ...a.extended };
  for (const [name, n] of Object.entries(b.extended ?? {}))
    extended[name] = Math.max(extended[name] ?? 0, n);
  return {
    cpuMillis: Math.max(a.cpuMillis, b.cpuMillis),
    memoryMib: Math.max(a.memoryMib, b.memoryMib),
    diskGib: Math.max(a.diskGib, b.diskGib),
    gpus: Math.max(a.gpus, b.gpus),
    ...(Object.keys(extended).length === 0 ? {} : { extended }),
  };
}

function selectorFrom(field: string, expressions: readonly string[]): Requirement[] {
  return expressions.map((expression, i) => {
    try {
      return parseSelector(expression);
    } catch (error) {
      throw new InvalidArgumentError(`${field}[${i}]`, errorMessage(error), { cause: error });
    }
  });
}

function unimplemented(feature: string): never {
  throw Object.assign(new Error(`${feature} is not supported by this broker yet`), {
    grpcCode: status.UNIMPLEMENTED,
  });
}

/** Runs a handler; any failure becomes the status `toServiceError` says (UNIMPLEMENTED passes through). */
function unary<Req, Res>(
  log: Logger,
  method: string,
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(deadlineMs) && deadlineMs < Date.now()) {
      callback(
        toServiceError(
          new DeadlineExceededError(`${method}: the deadline passed before the call was handled`),
        ) as ServiceError,
      );
      return;
    }
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (response) => callback(null, response),
        (error: unknown) => {
          if (
            typeof error === "object" &&
            error !== null &&
            "grpcCode" in error &&
            error.grpcCode === status.UNIMPLEMENTED
          ) {
            callback({ code: status.UNIMPLEMENTED, details: errorMessage(error) } as ServiceError);
            return;
          }
          const serviceError = toServiceError(error);
          if (serviceError.code === status.INTERNAL)
            log.error({ err: error, method }, "request failed");
          callback(serviceError as ServiceError);
        },
      );
  };
}

/**
 * The handlers. The three answers that carry leases at the broker's rate are in lease-wire's
 * shapes (the domain lease, encoded once per version) and serialized by lease-wire.
 */
type Handlers = {
  [K in keyof LeaseBrokerHandlers as string extends K
    ? never
    : K extends "SubmitLease" | "SubmitLeases" | "WatchLeases"
      ? never
      : K]: LeaseBrokerHandlers[K];
} & {
  SubmitLease: handleUnaryCall<SubmitLeaseRequest, SubmitAnswer>;
  SubmitLeases: handleUnaryCall<SubmitLeasesRequest, SubmitLeasesAnswer>;
  WatchLeases: handleServerStreamingCall<WatchLeasesRequest, LeaseEventAnswer>;
};

/** `service` with lease-wire's serializers for the answers `Handlers` gives in its shapes. */
function withLeaseWire(service: ServiceDefinition): ServiceDefinition {
  const method = (name: string) => {
    const m = service[name];
    if (m === undefined) throw new Error(`${name} is not a method of the service`);
    return m;
  };
  return {
    ...service,
    SubmitLease: { ...method("SubmitLease"), responseSerialize: serializeSubmitAnswer },
    SubmitLeases: { ...method("SubmitLeases"), responseSerialize: serializeSubmitLeasesAnswer },
    WatchLeases: { ...method("WatchLeases"), responseSerialize: serializeLeaseEvent },
  };
}

export class ApiServer {
  readonly health = new HealthImplementation({
    "": "NOT_SERVING",
    [LEASE_BROKER_SERVICE_NAME]: "NOT_SERVING",
  });
  readonly #deps: ApiDeps;
  readonly #options: ApiServerOptions;
  readonly #server: Server;
  readonly #watches = new Set<() => void>();
  #port = 0;

  constructor(deps: ApiDeps, options: ApiServerOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#server = new Server({
      "grpc.max_receive_message_length": options.maxReceiveBytes ?? 1024 * 1024,
      "grpc.max_send_message_length": options.maxSendBytes ?? 16 * 1024 * 1024,
      // Channelz (per-call counters and time stamps for a debugging service this server does not
      // register) costs every call a few closures and clock reads.
      "grpc.enable_channelz": 0,
    });
    const pkg: LeaseBrokerGrpcType = loadLeaseBrokerPackage();
    const service = withLeaseWire(pkg.leasebroker.v1.LeaseBroker.service);
    const handlers = this.#handlers();
    const gated = deps.gate === undefined ? handlers : gateHandlers(handlers, deps.gate);
    // Authentication wraps every handler in one place (outside the HA gate: an unauthenticated
    // caller learns nothing, not even the leader); health and reflection stay open.
    const guard =
      options.auth === undefined
        ? undefined
        : new CallGuard({
            tokens: options.auth.tokens,
            leases: deps.leases,
            clock: deps.clock,
            logger: deps.logger,
          });
    this.#server.addService(service, guard === undefined ? gated : guard.wrap(service, gated));
    this.health.addToServer(this.#server);
    new ReflectionService(loadLeaseBrokerPackageDefinition()).addToServer(this.#server);
  }

  /** The bound port (after `start`). */
  get port(): number {
    return this.#port;
  }

  async start(): Promise<number> {
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(
        this.#options.address,
        this.#options.credentials ?? ServerCredentials.createInsecure(),
        (error, port) => (error === null ? resolve(port) : reject(error)),
      );
    });
    this.setServing(true);
    return this.#port;
  }

  setServing(serving: boolean): void {
    const s = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", s);
    this.health.setStatus(LEASE_BROKER_SERVICE_NAME, s);
  }

  /** Stops accepting calls, lets in-flight ones finish for `graceMs`, then cuts the rest. */
  async stop(graceMs = 5000): Promise<void> {
    this.setServing(false);
    for (const close of [...this.#watches]) close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #hostProto(view: HostView) {
    const { index, clock } = this.#deps;
    const now = clock.now();
    const allocated = index.peakOver(view.id, { start: now, end: now + 1 });
    return hostToProto(view, allocated, index.host(view.id)?.holdCount ?? 0);
  }

  #handlers(): Handlers {
    const { store, leases, migrations, hosts, index, clock, logger: log } = this.#deps;
    const migrationProto = (id: string) => {
      const item = migrations.get(id);
      return migrationToProto(item.value, item.revision);
    };
    const leaseProto = (id: string) => {
      const item = leases.get(id);
      return leaseToProto(item.value, item.revision);
    };
    const checkRevision = (id: string, expected: number): void => {
      if (expected !== 0) leases.expectRevision(id, expected);
    };
    /**
     * A submission's own checks, and a dry run's answer: what SubmitLease and each item of
     * SubmitLeases do before the lease manager admits it (throws what the caller is answered).
     */
    const checkSubmission = (req: SubmitLeaseRequest): SubmitRequest | SubmitAnswer => {
      if (!REQUEST_ID.test(req.requestId)) {
        throw new InvalidArgumentError("request_id", "at most 64 characters of [A-Za-z0-9_-]");
      }
      const spec = specFromProto(req.spec, clock.now());
      if (!req.dryRun) return { spec, requestId: req.requestId };
      const preview = leases.explain(spec);
      return new SubmitAnswer(
        dryRunLease(spec, preview, req.requestId, clock.now()),
        0,
        previewExplanation(preview, leases.policy),
        false,
      );
    };
    const admitted = (result: SubmitResult): SubmitAnswer => {
      // How the lease was placed or why it is queued, when the lease manager says so.
      const explanation = isPlacementExplanation(result.explanation)
        ? new DecisionExplanation(result.explanation, leases.policy)
        : null;
      return new SubmitAnswer(result.lease, result.revision, explanation, result.replayed);
    };
    const itemError = (reason: unknown): SubmitItem => {
      const error = toItemError(reason);
      if (error.code === status.INTERNAL)
        log.error({ err: reason, method: "SubmitLeases" }, "request failed");
      return { error };
    };
    return {
      SubmitLease: unary(log, "SubmitLease", async (req) => {
        const checked = checkSubmission(req);
        if (checked instanceof SubmitAnswer) return checked;
        return admitted(await leases.submit(checked.spec, checked.requestId));
      }),
      SubmitLeases: unary(log, "SubmitLeases", async (req): Promise<SubmitLeasesAnswer> => {
        if (req.requests.length > MAX_SUBMIT_BATCH) {
          throw new InvalidArgumentError(
            "requests",
            `at most ${MAX_SUBMIT_BATCH} submissions per call, not ${req.requests.length}`,
          );
        }
        // Each item is checked as SubmitLease checks it; the ones to admit go to the lease manager
        // together, admitted in this order, each with its own result.
        const results: SubmitItem[] = [];
        const toAdmit: SubmitRequest[] = [];
        const slots: number[] = [];
        for (const item of req.requests) {
          try {
            const checked = checkSubmission(item);
            if (checked instanceof SubmitAnswer) {
              results.push({ response: checked });
              continue;
            }
            slots.push(results.length);
            toAdmit.push(checked);
            results.push(NOT_YET_ADMITTED); // replaced by its outcome below
          } catch (error) {
            results.push(itemError(error));
          }
        }
        if (toAdmit.length > 0) {
          const outcomes = await leases.submitMany(toAdmit);
          outcomes.forEach((outcome, k) => {
            results[slots[k] as number] = outcome.ok
              ? { response: admitted(outcome.result) }
              : itemError(outcome.error);
          });
        }
        return { results };
      }),
      GetLease: unary(log, "GetLease", (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        return leaseProto(req.id);
      }),
      ListLeases: unary(log, "ListLeases", async (req) => {
        const selector = selectorFrom("selector", req.selector);
        const kinds = new Set(
          req.windowKinds.map((k, i) =>
            enumName(k, "WINDOW_KIND_", `window_kinds[${i}]`).toLowerCase(),
          ),
        );
        const filter =
          selector.length === 0 && kinds.size === 0
            ? undefined
            : (lease: Lease) =>
                (kinds.size === 0 || kinds.has(lease.spec.window.kind)) &&
                matches(selector, lease.spec.labels);
        const page = leases.list({
          tenant: req.tenant,
          hostId: req.hostId,
          states: req.states.map((s, i) => stateFromProto(s, `states[${i}]`)),
          pageSize: req.pageSize,
          pageToken: req.pageToken,
          ...(filter === undefined ? {} : { filter }),
        });
        return {
          leases: page.leases.map((item) => leaseToProto(item.value, item.revision)),
          nextPageToken: page.nextPageToken,
          revision: page.revision,
        };
      }),
      CancelLease: unary(log, "CancelLease", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkReason(req.reason);
        checkRevision(req.id, req.expectedRevision);
        await leases.cancel(req.id, req.reason);
        return leaseProto(req.id);
      }),
      ExtendLease: unary(log, "ExtendLease", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkRevision(req.id, req.expectedRevision);
        const current = leases.get(req.id).value;
        let newEnd: number;
        if (req.extension === "newEnd") {
          newEnd = requestTime("new_end", () =>
            msFromTimestamp(req.newEnd ?? { seconds: 0, nanos: 0 }),
          );
        } else if (req.extension === "extra") {
          const extra = requestTime("extra", () =>
            msFromDuration(req.extra ?? { seconds: 0, nanos: 0 }),
          );
          if (!(extra > 0)) throw new InvalidArgumentError("extra", "must be > 0");
          newEnd = current.end + extra;
        } else {
          throw new InvalidArgumentError("extension", "one of new_end or extra is required");
        }
        await leases.extend(req.id, newEnd);
        return leaseProto(req.id);
      }),
      SuspendLease: unary(log, "SuspendLease", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkReason(req.reason);
        checkRevision(req.id, req.expectedRevision);
        await leases.suspend(req.id, req.reason);
        return leaseProto(req.id);
      }),
      ResumeLease: unary(log, "ResumeLease", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkRevision(req.id, req.expectedRevision);
        await leases.resume(req.id);
        return leaseProto(req.id);
      }),
      WatchLeases: (call) => this.#watch(call),
      ExplainPlacement: unary(log, "ExplainPlacement", (req) => {
        const preview = leases.explain(specFromProto(req.spec, clock.now()));
        return {
          fits: preview.hostId !== undefined,
          hostId: preview.hostId ?? "",
          start: preview.start === undefined ? null : timestampFromMs(preview.start),
          end: preview.end === undefined ? null : timestampFromMs(preview.end),
          explanation: previewExplanation(preview, leases.policy),
        };
      }),
      ListHosts: unary(log, "ListHosts", async (req) => {
        const selector = selectorFrom("selector", req.selector);
        const states = new Set(
          req.states.map((s, i) => enumName(s, "HOST_STATE_", `states[${i}]`)),
        );
        const size = req.pageSize === 0 ? 100 : req.pageSize;
        if (size < 0 || size > 1000)
          throw new InvalidArgumentError("page_size", "must be between 0 and 1000");
        const all = hosts
          .views()
          .filter((v) => (states.size === 0 || states.has(v.state)) && matches(selector, v.labels))
          .filter((v) => req.pageToken === "" || v.id > req.pageToken);
        const page = all.slice(0, size);
        const revision = await store.revision();
        return {
          hosts: page.map((v) => this.#hostProto(v)),
          nextPageToken: all.length > size ? (page[page.length - 1]?.id ?? "") : "",
          revision,
        };
      }),
      GetHost: unary(log, "GetHost", (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        return this.#hostProto(hosts.view(req.id));
      }),
      CordonHost: unary(log, "CordonHost", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkReason(req.reason);
        return this.#hostProto(await hosts.cordon(req.id, req.reason));
      }),
      UncordonHost: unary(log, "UncordonHost", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        return this.#hostProto(await hosts.uncordon(req.id));
      }),
      DrainHost: unary(log, "DrainHost", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkReason(req.reason);
        const deadline = req.deadline;
        const result = await drainHost(
          { clock, index, hosts, leases, orchestrator: migrations },
          {
            hostId: req.id,
            ...(deadline === null
              ? {}
              : { deadline: requestTime("deadline", () => msFromTimestamp(deadline)) }),
            reason: req.reason,
            dryRun: req.dryRun,
          },
        );
        return {
          host: this.#hostProto(result.host),
          moves: result.moves.map((m) => ({
            leaseId: m.leaseId,
            fromHostId: m.fromHostId,
            toHostId: m.toHostId,
            reason: "MIGRATION_REASON_DRAIN" as const,
            resources: resourcesToProto(m.resources),
          })),
          stopLeaseIds: [...result.stopLeaseIds],
          replannedLeaseIds: [...result.replannedLeaseIds],
        };
      }),
      MigrateLease: unary(log, "MigrateLease", async (req) => {
        if (req.leaseId === "") throw new InvalidArgumentError("lease_id", "is required");
        const migration = await migrations.migrate({
          leaseId: req.leaseId,
          toHostId: req.targetHostId,
          reason: "MANUAL",
          expectedRevision: req.expectedRevision,
        });
        return migrationProto(migration.id);
      }),
      GetMigration: unary(log, "GetMigration", (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        return migrationProto(req.id);
      }),
      ListMigrations: unary(log, "ListMigrations", (req) => {
        const page = migrations.list({
          leaseId: req.leaseId,
          hostId: req.hostId,
          states: req.states.map((s, i) => migrationStateFromProto(s, `states[${i}]`)),
          pageSize: req.pageSize,
          pageToken: req.pageToken,
        });
        return {
          migrations: page.migrations.map((m) => migrationToProto(m.value, m.revision)),
          nextPageToken: page.nextPageToken,
        };
      }),
      AbortMigration: unary(log, "AbortMigration", async (req) => {
        if (req.id === "") throw new InvalidArgumentError("id", "is required");
        checkReason(req.reason);
        await migrations.abort(req.id, req.reason);
        return migrationProto(req.id);
      }),
      GetCapacity: unary(log, "GetCapacity", (req) => {
        const now = clock.now();
        const bucketWidth = req.bucketWidth;
        const width =
          bucketWidth === null
            ? DEFAULT_BUCKET_MS
            : requestTime("bucket_width", () => msFromDuration(bucketWidth));
        if (!(width >= MIN_BUCKET_MS && width <= MAX_BUCKET_MS)) {
          throw new InvalidArgumentError("bucket_width", "must be between 1s and 30 days");
        }
        // Unset: now, rounded down to the bucket width.
        const start0 = req.start;
        const start =
          start0 === null
            ? Math.floor(now / width) * width
            : requestTime("start", () => msFromTimestamp(start0));
        const count = req.bucketCount === 0 ? DEFAULT_BUCKETS : req.bucketCount;
        if (count < 0 || count > MAX_BUCKETS) {
          throw new InvalidArgumentError("bucket_count", `must be between 0 and ${MAX_BUCKETS}`);
        }
        const selector = selectorFrom("selector", req.selector);
        const buckets = index.capacityForecast(start, width, count, selector);
        const ready = index
          .hosts()
          .filter((h) => h.state === "READY" && matches(selector, h.labels));
        const zero: Resources = { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };
        const maxHostFree = buckets.map((b) =>
          ready.reduce(
            (most, h) => maxResources(most, index.freeOver(h.id, { start: b.start, end: b.end })),
            zero,
          ),
        );
        return forecastToProto(buckets, req.selector, now, maxHostFree);
      }),
      GetAutoscaleStatus: unary(log, "GetAutoscaleStatus", () =>
        statusToProto(this.#deps.autoscale?.status() ?? AUTOSCALE_OFF),
      ),
      Rebalance: unary(log, "Rebalance", async (req) => {
        const planners = this.#deps.planners;
        if (planners === undefined) return unimplemented("rebalancing");
        if (!Number.isInteger(req.level) || req.level < 0 || req.level > 5) {
          throw new InvalidArgumentError("level", "must be 0 (the cluster default) or 1..5");
        }
        if (!Number.isInteger(req.maxMoves) || req.maxMoves < 0 || req.maxMoves > 1000) {
          throw new InvalidArgumentError("max_moves", "must be between 0 and 1000");
        }
        const { plan, execution } = await planners.rebalance({
          dryRun: req.dryRun,
          ...(req.level === 0 ? {} : { level: req.level as 1 | 2 | 3 | 4 | 5 }),
          ...(req.maxMoves === 0 ? {} : { maxMoves: req.maxMoves }),
        });
        const started = new Map(execution.started.map((m) => [m.leaseId, m.id]));
        // Dry run: every planned move; otherwise the ones that started, with their migration ids.
        const moves = req.dryRun ? plan.moves : plan.moves.filter((m) => started.has(m.leaseId));
        return {
          moves: moves.map((m) => {
            const lease = leases.get(m.leaseId).value;
            return {
              leaseId: m.leaseId,
              fromHostId: m.fromHostId,
              toHostId: m.toHostId,
              reason: "MIGRATION_REASON_REBALANCE" as const,
              predicted: predictionToProto(predictLeaseMigration(lease, migrations.limits)),
              resources: resourcesToProto(lease.spec.resources),
            };
          }),
          migrationIds: req.dryRun ? [] : moves.map((m) => started.get(m.leaseId) ?? ""),
          imbalanceBefore: plan.imbalanceBefore,
          imbalanceAfter: plan.imbalanceAfter,
        };
      }),
    };
  }

  #migration(id: string): ReturnType<MigrationOrchestrator["get"]> | undefined {
    try {
      return this.#deps.migrations.get(id);
    } catch {
      return undefined;
    }
  }

  #watch(call: Parameters<Handlers["WatchLeases"]>[0]): void {
    const { leases, logger } = this.#deps;
    const req = call.request;
    const types = new Set(req.types);
    const maxBacklog = this.#options.maxWatchBacklog ?? 10_000;
    let lastRevision = req.fromRevision;
    let closed = false;
    const end = (error?: Partial<ServiceError>): void => {
      if (closed) return;
      closed = true;
      watch?.close();
      this.#watches.delete(close);
      if (error === undefined) call.end();
      else call.emit("error", error);
    };
    const close = (): void =>
      end({
        code: status.UNAVAILABLE,
        details: "the broker is shutting down; resume from the last revision",
      });
    // grpc-js sends one message per completed HTTP/2 write: on a busy event loop a watcher then
    // gets a couple of events per turn and falls seconds behind. With `_writev`, the messages
    // buffered while a write is in flight go to the HTTP/2 stream together (in order).
    call._writev = (chunks, callback) => {
      let left = chunks.length;
      let failure: Error | null = null;
      for (const { chunk, encoding } of chunks) {
        call._write(chunk, encoding, (error?: Error | null) => {
          failure ??= error ?? null;
          if (--left === 0) callback(failure);
        });
      }
    };
    let watch: { close(): void } | undefined;
    // Compacted history, at once (memory store) or later (etcd answers asynchronously).
    const failed = (error: unknown): void => {
      if (error instanceof CompactedError) {
        end({
          code: status.OUT_OF_RANGE,
          details: `${error.message}: list the leases, then watch from the list's revision`,
        });
        return;
      }
      logger.error({ err: error }, "watch failed");
      end(toServiceError(error));
    };
    try {
      watch = leases.watch({ fromRevision: req.fromRevision, onError: failed }, (event) => {
        if (closed) return;
        if (req.leaseId !== "" && event.lease.id !== req.leaseId) return;
        if (req.tenant !== "" && event.lease.spec.tenant !== req.tenant) return;
        // The state before a state change, when the lease manager reports it.
        const previous =
          event.type === "STATE_CHANGED" &&
          "previousState" in event &&
          typeof event.previousState === "string"
            ? (event.previousState as LeaseState)
            : undefined;
        // Filter by type before building the message (the event's type is this name).
        if (types.size > 0 && !types.has(`LEASE_EVENT_TYPE_${event.type}` as never)) return;
        const migrationId = eventMigrationId(event);
        const migration = migrationId === undefined ? undefined : this.#migration(migrationId);
        const answer = new LeaseEventAnswer(
          event.revision,
          event.type,
          event.lease,
          previous,
          migration === undefined ? null : migrationToProto(migration.value, migration.revision),
        );
        if (call.writableLength > maxBacklog) {
          end({
            code: status.RESOURCE_EXHAUSTED,
            details: `the watcher fell more than ${maxBacklog} events behind; resume from revision ${lastRevision}`,
          });
          return;
        }
        lastRevision = event.revision;
        call.write(answer);
      });
    } catch (error) {
      failed(error);
      return;
    }
    this.#watches.add(close);
    call.on("cancelled", () => end());
    call.on("error", () => end());
  }
}
