/**
 * End-to-end harness for the broker tests: one embedded broker (memory store, simulated hosts,
 * virtual clock) serving gRPC on a free loopback port, and a typed promise client over the
 * generated types of the v1 contract. Time moves only through `advance`/`advanceTo`; every
 * assertion goes through a real gRPC call.
 */
import {
  type CallOptions,
  type ChannelCredentials,
  type ClientReadableStream,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type requestCallback,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { Broker, type BrokerOptions } from "../../broker/broker.js";
import type { LeaseTimings } from "../../broker/leases/lease-manager.js";
import type { BrokerStore } from "../../broker/store/index.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import type { PlacementPolicy } from "../../placement/index.js";
import {
  type CancelLeaseRequestInput,
  type CapacityForecast,
  type CordonHostRequestInput,
  type DrainHostRequestInput,
  type DrainHostResponse,
  durationFromMs,
  type ExplainPlacementRequestInput,
  type ExplainPlacementResponse,
  type ExtendLeaseRequestInput,
  type GetCapacityRequestInput,
  type Host,
  type Lease,
  type LeaseBrokerClient,
  type LeaseEvent,
  type LeaseEventType,
  type LeaseSpecInput,
  type LeaseState,
  type ListHostsRequestInput,
  type ListHostsResponse,
  type ListLeasesRequestInput,
  type ListLeasesResponse,
  loadLeaseBrokerPackage,
  type MigrateLeaseRequestInput,
  type Migration,
  msFromTimestamp,
  type RebalanceRequestInput,
  type RebalanceResponse,
  type SubmitLeaseRequestInput,
  type SubmitLeaseResponse,
  type SubmitLeasesRequestInput,
  type SubmitLeasesResponse,
  type Timestamp,
  timestampFromMs,
  type WatchLeasesRequestInput,
} from "../../proto/index.js";

/** Virtual start time of every test broker: a fixed instant, far from the real clock. */
export const T0 = Date.UTC(2031, 0, 6, 12, 0, 0);
export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Timings of the test brokers (each test file may override some). */
export const TEST_TIMINGS: LeaseTimings = {
  expiryNoticeMs: 1 * MINUTE,
  stopGraceMs: 30 * SECOND,
  preemptionNoticeMs: 2 * MINUTE,
  queueTimeoutMs: 6 * HOUR,
  stateCopyBytesPerS: 125_000_000,
};

export interface TestHosts {
  readonly count: number;
  readonly cpus: number;
  readonly memoryGib: number;
  readonly bootMs: number;
  readonly shutdownMs: number;
}

/** Two hosts of 4 CPUs and 16 GiB; workloads boot in 1 s and shut down in 0.5 s. */
export const DEFAULT_HOSTS: TestHosts = {
  count: 2,
  cpus: 4,
  memoryGib: 16,
  bootMs: 1000,
  shutdownMs: 500,
};

export interface TestBrokerOptions {
  readonly hosts?: Partial<TestHosts>;
  readonly timings?: Partial<LeaseTimings>;
  readonly store?: BrokerStore;
  /** The cluster's placement policy (the broker's default otherwise). */
  readonly policy?: PlacementPolicy;
}

/** A deterministic source of randomness for lease ids. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 0x1_0000_0000;
  };
}

export class TestBroker {
  readonly clock: VirtualClock;
  readonly broker: Broker;
  readonly hosts: TestHosts;
  readonly timings: LeaseTimings;
  #client: BrokerApi | undefined;
  #port = 0;

  constructor(options: TestBrokerOptions = {}) {
    this.clock = new VirtualClock(T0);
    this.hosts = { ...DEFAULT_HOSTS, ...options.hosts };
    this.timings = { ...TEST_TIMINGS, ...options.timings };
    const brokerOptions: BrokerOptions = {
      clock: this.clock,
      logger: silentLogger(),
      grpcAddress: "127.0.0.1:0",
      simHosts: {
        count: this.hosts.count,
        cpus: this.hosts.cpus,
        memoryGib: this.hosts.memoryGib,
        bootMs: this.hosts.bootMs,
        shutdownMs: this.hosts.shutdownMs,
      },
      timings: this.timings,
      random: seededRandom(42),
      ...(options.store === undefined ? {} : { store: options.store }),
      ...(options.policy === undefined ? {} : { policy: options.policy }),
    };
    this.broker = new Broker(brokerOptions);
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** The typed client of this broker (connected by `start`). */
  get api(): BrokerApi {
    if (this.#client === undefined) throw new Error("TestBroker.start() has not run");
    return this.#client;
  }

  async start(): Promise<this> {
    this.#port = await this.broker.start();
    this.#client = new BrokerApi(this.address);
    return this;
  }

  /** Virtual now. */
  now(): number {
    return this.clock.now();
  }

  /** Moves virtual time by `ms`, letting every reaction (host reports, queue passes) run. */
  advance(ms: number): Promise<void> {
    return this.clock.advance(ms);
  }

  advanceTo(atMs: number): Promise<void> {
    return this.clock.advanceTo(atMs);
  }

  /**
   * Opens a watch that sees every lease event from now on: from the current list revision + 1,
   * opened before the caller's next write.
   */
  async watchFromNow(
    request: Omit<WatchLeasesRequestInput, "fromRevision"> = {},
  ): Promise<EventStream> {
    const { revision } = await this.api.list({ pageSize: 1 });
    return this.api.watch({ ...request, fromRevision: Number(revision) + 1 });
  }

  async stop(): Promise<void> {
    this.#client?.close();
    await this.broker.stop(1000);
  }
}

/** Starts a broker on a free loopback port with a connected client. */
export function startBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  return new TestBroker(options).start();
}

// ── the typed client ─────────────────────────────────────────────────────────────────────────

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: CallOptions,
  callback: requestCallback<Res>,
) => ClientUnaryCall;

function unary<Req, Res>(method: UnaryMethod<Req, Res>) {
  return (request: Req, options: CallOptions = {}): Promise<Res> =>
    new Promise<Res>((resolve, reject) => {
      method(request, new Metadata(), options, (error, response) => {
        if (error !== null) reject(error);
        else if (response === undefined) reject(new Error("empty response"));
        else resolve(response);
      });
    });
}

/** The LeaseBroker service as promises, over the generated client. */
export class BrokerApi {
  readonly raw: LeaseBrokerClient;

  readonly submit: (
    request: SubmitLeaseRequestInput,
    options?: CallOptions,
  ) => Promise<SubmitLeaseResponse>;
  readonly submitMany: (
    request: SubmitLeasesRequestInput,
    options?: CallOptions,
  ) => Promise<SubmitLeasesResponse>;
  readonly get: (request: { id: string }, options?: CallOptions) => Promise<Lease>;
  readonly list: (
    request: ListLeasesRequestInput,
    options?: CallOptions,
  ) => Promise<ListLeasesResponse>;
  readonly cancel: (request: CancelLeaseRequestInput, options?: CallOptions) => Promise<Lease>;
  readonly extend: (request: ExtendLeaseRequestInput, options?: CallOptions) => Promise<Lease>;
  readonly explain: (
    request: ExplainPlacementRequestInput,
    options?: CallOptions,
  ) => Promise<ExplainPlacementResponse>;
  readonly listHosts: (
    request: ListHostsRequestInput,
    options?: CallOptions,
  ) => Promise<ListHostsResponse>;
  readonly getHost: (request: { id: string }, options?: CallOptions) => Promise<Host>;
  readonly cordon: (request: CordonHostRequestInput, options?: CallOptions) => Promise<Host>;
  readonly uncordon: (request: { id: string }, options?: CallOptions) => Promise<Host>;
  readonly drain: (
    request: DrainHostRequestInput,
    options?: CallOptions,
  ) => Promise<DrainHostResponse>;
  readonly migrate: (
    request: MigrateLeaseRequestInput,
    options?: CallOptions,
  ) => Promise<Migration>;
  readonly rebalance: (
    request: RebalanceRequestInput,
    options?: CallOptions,
  ) => Promise<RebalanceResponse>;
  readonly capacity: (
    request: GetCapacityRequestInput,
    options?: CallOptions,
  ) => Promise<CapacityForecast>;

  /** `channel`: e.g. TLS credentials combined with a bearer token (default plaintext). */
  constructor(address: string, channel: ChannelCredentials = credentials.createInsecure()) {
    const pkg = loadLeaseBrokerPackage();
    const c: LeaseBrokerClient = new pkg.leasebroker.v1.LeaseBroker(address, channel);
    this.raw = c;
    this.submit = unary((r, m, o, cb) => c.SubmitLease(r, m, o, cb));
    this.submitMany = unary((r, m, o, cb) => c.SubmitLeases(r, m, o, cb));
    this.get = unary((r, m, o, cb) => c.GetLease(r, m, o, cb));
    this.list = unary((r, m, o, cb) => c.ListLeases(r, m, o, cb));
    this.cancel = unary((r, m, o, cb) => c.CancelLease(r, m, o, cb));
    this.extend = unary((r, m, o, cb) => c.ExtendLease(r, m, o, cb));
    this.explain = unary((r, m, o, cb) => c.ExplainPlacement(r, m, o, cb));
    this.listHosts = unary((r, m, o, cb) => c.ListHosts(r, m, o, cb));
    this.getHost = unary((r, m, o, cb) => c.GetHost(r, m, o, cb));
    this.cordon = unary((r, m, o, cb) => c.CordonHost(r, m, o, cb));
    this.uncordon = unary((r, m, o, cb) => c.UncordonHost(r, m, o, cb));
    this.drain = unary((r, m, o, cb) => c.DrainHost(r, m, o, cb));
    this.migrate = unary((r, m, o, cb) => c.MigrateLease(r, m, o, cb));
    this.rebalance = unary((r, m, o, cb) => c.Rebalance(r, m, o, cb));
    this.capacity = unary((r, m, o, cb) => c.GetCapacity(r, m, o, cb));
  }

  /** Opens a WatchLeases stream; events collect in the returned stream. */
  watch(request: WatchLeasesRequestInput): EventStream {
    return new EventStream(this.raw.WatchLeases(request));
  }

  /** Submits `spec` and returns the lease (the response must carry one). */
  async submitLease(spec: LeaseSpecInput, requestId = ""): Promise<Lease> {
    const response = await this.submit({ spec, requestId });
    if (response.lease === null) throw new Error("SubmitLease returned no lease");
    return response.lease;
  }

  /** Every lease matching `request`, following page tokens. */
  async listAll(request: ListLeasesRequestInput = {}): Promise<Lease[]> {
    const out: Lease[] = [];
    let pageToken = "";
    for (let page = 0; page < 1000; page++) {
      const response = await this.list({ ...request, pageToken });
      out.push(...response.leases);
      pageToken = response.nextPageToken;
      if (pageToken === "") return out;
    }
    throw new Error("ListLeases: more than 1000 pages");
  }

  close(): void {
    this.raw.close();
  }
}

// ── errors ───────────────────────────────────────────────────────────────────────────────────

export interface RpcError {
  readonly code: status;
  readonly details: string;
  readonly metadata: Metadata;
}

export function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error &&
    "code" in error &&
    typeof error.code === "number" &&
    "details" in error &&
    typeof error.details === "string" &&
    "metadata" in error &&
    error.metadata instanceof Metadata
  );
}

/** Awaits a call that must fail, and returns its status. */
export async function rpcError(call: Promise<unknown>): Promise<RpcError> {
  let result: unknown;
  try {
    result = await call;
  } catch (error) {
    if (!isServiceError(error)) throw error;
    return { code: error.code, details: error.details, metadata: error.metadata };
  }
  throw new Error(`expected the call to fail, it returned ${JSON.stringify(result)}`);
}

/** The name of a status code, for readable failures ("INVALID_ARGUMENT"). */
export function codeName(code: status): string {
  return status[code] ?? String(code);
}

/** A string-valued trailing metadata entry, or undefined. */
export function metadataString(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === "string" ? value : undefined;
}

// ── watch streams ────────────────────────────────────────────────────────────────────────────

interface Waiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * The events of one WatchLeases stream, as they arrive. `waitFor` resolves when a matching event
 * has arrived (the test's timeout bounds the wait; nothing sleeps).
 */
export class EventStream {
  readonly events: LeaseEvent[] = [];
  error: ServiceError | undefined;
  ended = false;
  readonly #call: ClientReadableStream<LeaseEvent>;
  readonly #waiters = new Set<Waiter>();

  constructor(call: ClientReadableStream<LeaseEvent>) {
    this.#call = call;
    call.on("data", (event: LeaseEvent) => {
      this.events.push(event);
      this.#poke();
    });
    call.on("error", (error: ServiceError) => {
      this.error = error;
      this.ended = true;
      this.#poke();
    });
    call.on("end", () => {
      this.ended = true;
      this.#poke();
    });
  }

  /** Resolves with the first event matching `predicate` (already arrived, or the next one). */
  async waitFor(predicate: (event: LeaseEvent) => boolean, what: string): Promise<LeaseEvent> {
    await this.#until(() => this.events.some(predicate), what);
    return this.events.find(predicate) as LeaseEvent;
  }

  /** Resolves once at least `n` events have arrived; returns the first `n`. */
  async waitForCount(n: number): Promise<LeaseEvent[]> {
    await this.#until(() => this.events.length >= n, `${n} events`);
    return this.events.slice(0, n);
  }

  /** Resolves with the status the stream failed with. */
  async waitForError(): Promise<ServiceError> {
    await this.#until(() => this.error !== undefined, "a stream error");
    return this.error as ServiceError;
  }

  /** Disconnects (the client cancels the call). */
  close(): void {
    this.#call.cancel();
  }

  #until(check: () => boolean, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.add({ check, resolve, reject });
      this.#poke();
    }).catch((error: unknown) => {
      throw new Error(
        `waiting for ${what}: ${error instanceof Error ? error.message : String(error)}; got ${describeEvents(this.events)}`,
      );
    });
  }

  #poke(): void {
    for (const waiter of [...this.#waiters]) {
      if (waiter.check()) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      } else if (this.ended) {
        this.#waiters.delete(waiter);
        waiter.reject(
          new Error(
            this.error === undefined
              ? "the stream ended"
              : `the stream failed: ${codeName(this.error.code)} ${this.error.details}`,
          ),
        );
      }
    }
  }
}

/** `TYPE(lease→STATE)@rev, …` for failure messages. */
export function describeEvents(events: readonly LeaseEvent[]): string {
  return `[${events
    .map(
      (e) =>
        `${e.type.replace("LEASE_EVENT_TYPE_", "")}(${e.lease?.id ?? "?"}→${(e.lease?.state ?? "?").replace("LEASE_STATE_", "")})@${e.revision}`,
    )
    .join(", ")}]`;
}

/** (type, state) pairs of a lease's events, for compact sequence assertions. */
export function eventTrail(
  events: readonly LeaseEvent[],
  leaseId?: string,
): [LeaseEventType, LeaseState][] {
  return events
    .filter((e) => leaseId === undefined || e.lease?.id === leaseId)
    .map((e) => [e.type, e.lease?.state ?? "LEASE_STATE_UNSPECIFIED"]);
}

// ── specs ────────────────────────────────────────────────────────────────────────────────────

/**
 * What a lease asks for. Memory is the binding resource of the test hosts (their CPUs are
 * overcommitted 4:1 by default, memory is not): `{ memoryGib: 16 }` fills a default host.
 */
export interface Shape {
  readonly memoryGib: number;
  readonly cpus?: number;
}

/** A whole default test host, half of one, a quarter of one. */
export const FULL: Shape = { memoryGib: 16 };
export const HALF: Shape = { memoryGib: 8 };
export const QUARTER: Shape = { memoryGib: 4 };

function resources(shape: Shape): LeaseSpecInput["resources"] {
  return {
    cpuMillis: Math.round((shape.cpus ?? 1) * 1000),
    memoryMib: Math.round(shape.memoryGib * 1024),
    diskGib: 0,
    gpus: 0,
  };
}

function base(shape: Shape, extra: Partial<LeaseSpecInput>): LeaseSpecInput {
  return {
    name: "vm",
    tenant: "acme",
    resources: resources(shape),
    ...extra,
  };
}

/** An immediate lease of `durationMs`. */
export function immediate(
  shape: Shape,
  durationMs: number,
  extra: Partial<LeaseSpecInput> = {},
): LeaseSpecInput {
  return base(shape, { immediate: { duration: durationFromMs(durationMs) }, ...extra });
}

/** A reservation from `startMs` for `durationMs`. */
export function reserved(
  shape: Shape,
  startMs: number,
  durationMs: number,
  extra: Partial<LeaseSpecInput> = {},
): LeaseSpecInput {
  return base(shape, {
    reserved: { start: timestampFromMs(startMs), duration: durationFromMs(durationMs) },
    ...extra,
  });
}

/** A flexible lease: a start anywhere in [earliest (default now), latest]. */
export function flexible(
  shape: Shape,
  window: { earliestMs?: number; latestMs: number; durationMs: number },
  extra: Partial<LeaseSpecInput> = {},
): LeaseSpecInput {
  return base(shape, {
    flexible: {
      ...(window.earliestMs === undefined
        ? {}
        : { earliestStart: timestampFromMs(window.earliestMs) }),
      latestStart: timestampFromMs(window.latestMs),
      duration: durationFromMs(window.durationMs),
    },
    ...extra,
  });
}

/** Epoch ms of a timestamp that must be set. */
export function ms(timestamp: Timestamp | null): number {
  const value = msFromTimestamp(timestamp);
  if (value === undefined) throw new Error("expected a timestamp, got null");
  return value;
}

/** Epoch ms of a timestamp, or undefined when it is unset. */
export function msOrUndefined(timestamp: Timestamp | null): number | undefined {
  return msFromTimestamp(timestamp);
}
