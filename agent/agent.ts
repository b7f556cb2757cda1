/**
 * The host agent: registers its host with the broker, heartbeats, serves the broker's commands
 * through a Driver and reports what happens to workloads. Protocol: docs/agent-protocol.md.
 *
 * - Hello is a request, retried with backoff until a broker accepts it; it is sent again after
 *   every bus reconnect and whenever the broker answers a heartbeat with `accepted: false` (it
 *   lost track of the host), always with the full list of workloads.
 * - Heartbeats go out every interval once registered (the broker's HelloReply sets the interval),
 *   with a sequence that starts at 1 and only restarts with a new boot id.
 * - Commands: checked, fenced by epoch (older than the highest seen → STALE_EPOCH), de-duplicated
 *   by idempotency key (a repeat gets the first reply with `duplicate: true`, the driver is called
 *   once), then run by the driver. The reply says whether the command was accepted; its effect
 *   comes later as events.
 * - Nothing received can crash it: bad payloads are counted, logged and dropped.
 */
import { randomUUID } from "node:crypto";
import {
  type Bus,
  BusClosedError,
  type BusMessage,
  type BusStatusEvent,
  DropCounters,
  decodeOrDrop,
  deriveSeed,
  hostSubject,
  recordDrop,
  type Subscription,
  seededRandom,
  withRetries,
} from "../bus/index.js";
import {
  type Clock,
  errorMessage,
  type Logger,
  silentLogger,
  type Timer,
  UnavailableError,
} from "../core/index.js";
import {
  type AgentEventInput,
  agentCodecs,
  type Command,
  durationFromMs,
  type HelloInput,
  type HelloReply,
  msFromDuration,
  msFromTimestamp,
  timestampFromMs,
  type WorkloadStatusInput,
} from "../proto/index.js";
import {
  type CommandReplyFields,
  type EventHeader,
  encodeCommandReply,
  encodeHeartbeat,
  encodeWorkloadEvent,
  type WorkloadEventFields,
} from "./agent-wire.js";
import { type CommandOutcome, checkCommand, executeCommand, failure } from "./commands.js";
import {
  type Driver,
  type DriverEvent,
  type ResourceVector,
  TERMINAL_STATES,
  ZERO_RESOURCES,
} from "./driver.js";
import { IdempotencyCache } from "./idempotency-cache.js";
import type { TimerSource } from "./timer-wheel.js";
import { AGENT_VERSION } from "./version.js";

/** Per-resource allocation ratios; 0 or absent means 1.0. */
export interface AllocationRatios {
  readonly cpu?: number | undefined;
  readonly memory?: number | undefined;
  readonly disk?: number | undefined;
  readonly gpu?: number | undefined;
}

export interface AgentOptions {
  /** This host's id (contract grammar: [a-z0-9-], 1..63, alphanumeric at both ends). */
  readonly hostId: string;
  readonly bus: Bus;
  readonly driver: Driver;
  readonly clock: Clock;
  /** Physical capacity. */
  readonly capacity: ResourceVector;
  readonly ratios?: AllocationRatios | undefined;
  /** Held back for the host itself. */
  readonly reserved?: ResourceVector | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** The host's address, for information; default "". */
  readonly address?: string | undefined;
  /** Heartbeat interval until a HelloReply sets one; default 1 s. */
  readonly heartbeatIntervalMs?: number | undefined;
  /**
   * What times heartbeats; default `clock`. Many agents in one process may share a TimerWheel
   * over it: each keeps its own schedule, and their beats go out in fewer turns (and writes).
   */
  readonly heartbeatTimers?: TimerSource | undefined;
  /** Timeout of one Hello request; default 5 s. */
  readonly helloTimeoutMs?: number | undefined;
  /** Backoff between Hello attempts; default 500 ms doubling up to 30 s. */
  readonly helloRetryBaseMs?: number | undefined;
  readonly helloRetryMaxMs?: number | undefined;
  /** Grace of a stop that sets none; default 30 s. */
  readonly defaultGraceMs?: number | undefined;
  /**
   * The agent's own stop of a workload whose lease has ended comes this long after the lease's
   * end (the broker's stop, due at the end, has the first word); default 5 s.
   */
  readonly endStopDelayMs?: number | undefined;
  /** How long idempotency keys are remembered; default 10 minutes. */
  readonly idempotencyTtlMs?: number | undefined;
  readonly idempotencyMaxEntries?: number | undefined;
  /** Default a random UUID: a new one per process start. */
  readonly bootId?: string | undefined;
  /** Seeds the backoff jitter; default 1. */
  readonly seed?: number | undefined;
  readonly agentVersion?: string | undefined;
  readonly logger?: Logger | undefined;
  /** Where dropped messages are counted; default a new one (see `drops`). */
  readonly drops?: DropCounters | undefined;
}

export type AgentState = "idle" | "registering" | "registered" | "stopped";

/** A HelloReply that does not register the host; the agent tries again. */
export class HelloRejectedError extends UnavailableError {}

/** The agent is stopping: pending waits end with this. */
export class AgentStoppedError extends UnavailableError {
  constructor() {
    super("the agent is stopping");
  }
}

export interface AgentStats {
  readonly beatsSent: number;
  readonly eventsSent: number;
  readonly commandsHandled: number;
  readonly duplicateCommands: number;
  readonly staleCommands: number;
  readonly hellosAccepted: number;
}

const TRANSIENT_ERRORS = new Set(["COMMAND_ERROR_BUSY", "COMMAND_ERROR_INTERNAL"]);
const MIN_HEARTBEAT_INTERVAL_MS = 50;

function allocatable(capacity: number, ratio: number | undefined, reserved: number): number {
  return Math.floor(capacity * (ratio !== undefined && ratio > 0 ? ratio : 1)) - reserved;
}

export class Agent {
  readonly hostId: string;
  readonly bootId: string;
  /** Dropped messages by subject kind and reason. */
  readonly drops: DropCounters;
  readonly #bus: Bus;
  readonly #driver: Driver;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #options: AgentOptions;
  readonly #cache: IdempotencyCache<CommandOutcome>;
  readonly #subjects: Readonly<Record<"hello" | "beat" | "cmd" | "event", string>>;
  readonly #abort = new AbortController();
  readonly #endTimers = new Map<string, Timer>();
  readonly #cleanup: Array<() => void> = [];
  readonly #registeredWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** Commands being handled: `stop` lets them finish so that their replies still go out. */
  readonly #inflight = new Set<Promise<void>>();
  #state: AgentState = "idle";
  #seenEpoch = 0;
  #heartbeatIntervalMs: number;
  #hostTtlMs: number | undefined;
  #beatSequence = 0;
  #eventSequence = 0;
  #beatTimer: Timer | undefined;
  #beatInbox = "";
  #registering = false;
  #registerAgain = false;
  #beating = false;
  #stats = {
    beatsSent: 0,
    eventsSent: 0,
    commandsHandled: 0,
    duplicateCommands: 0,
    staleCommands: 0,
    hellosAccepted: 0,
  };

  constructor(options: AgentOptions) {
    this.hostId = options.hostId;
    // Throws for a host id that cannot be a subject token, before anything is sent.
    this.#subjects = {
      hello: hostSubject(options.hostId, "hello"),
      beat: hostSubject(options.hostId, "beat"),
      cmd: hostSubject(options.hostId, "cmd"),
      event: hostSubject(options.hostId, "event"),
    };
    this.bootId = options.bootId ?? randomUUID();
    this.drops = options.drops ?? new DropCounters();
    this.#bus = options.bus;
    this.#driver = options.driver;
    this.#clock = options.clock;
    this.#options = options;
    this.#log = (options.logger ?? silentLogger()).child({ hostId: options.hostId });
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
    this.#cache = new IdempotencyCache({
      clock: options.clock,
      ttlMs: options.idempotencyTtlMs,
      maxEntries: options.idempotencyMaxEntries,
    });
  }

  get state(): AgentState {
    return this.#state;
  }

  /** Highest broker epoch seen (HelloReply or Command). */
  get seenEpoch(): number {
    return this.#seenEpoch;
  }

  get heartbeatIntervalMs(): number {
    return this.#heartbeatIntervalMs;
  }

  /** The host TTL the broker announced, if any. */
  get hostTtlMs(): number | undefined {
    return this.#hostTtlMs;
  }

  get stats(): AgentStats {
    return { ...this.#stats };
  }

  /** Subscribes to commands and starts registering; resolves once subscribed. */
  async start(): Promise<void> {
    if (this.#state !== "idle") throw new Error(`agent already ${this.#state}`);
    // A Hello that cannot be encoded (a bad label from an API caller) would fail every attempt:
    // say so to the caller now (ProtoEncodeError) instead of retrying forever.
    agentCodecs.hello.encode(await this.#buildHello());
    this.#state = "registering";
    const subs: Subscription[] = [
      this.#bus.subscribe(this.#subjects.cmd, (message) => this.#onCommand(message)),
    ];
    this.#beatInbox = this.#bus.createInbox();
    subs.push(this.#bus.subscribe(this.#beatInbox, (message) => this.#onBeatReply(message)));
    this.#cleanup.push(() => {
      for (const sub of subs) sub.unsubscribe();
    });
    this.#cleanup.push(this.#driver.onEvent((event) => this.#onDriverEvent(event)));
    this.#cleanup.push(this.#bus.onStatus((event) => this.#onBusStatus(event)));
    // The broker may command this host as soon as Hello is accepted: be subscribed before.
    await this.#bus.flush();
    this.#log.info(
      { bootId: this.bootId, driver: this.#driver.name, subject: this.#subjects.cmd },
      "agent started",
    );
    this.#register();
  }

  /** Resolves once a broker has accepted Hello (at once if it has); rejects if the agent stops. */
  registered(): Promise<void> {
    if (this.#state === "registered") return Promise.resolve();
    if (this.#state === "stopped") return Promise.reject(new AgentStoppedError());
    return new Promise((resolve, reject) => this.#registeredWaiters.push({ resolve, reject }));
  }

  /**
   * Stops heartbeats, registration and command handling, after letting commands in flight finish.
   * Leaves the bus open (its owner drains it, so that their replies still go out) and the
   * driver's workloads running.
   */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    await Promise.allSettled([...this.#inflight]);
    this.#abort.abort(new AgentStoppedError());
    this.#beatTimer?.cancel();
    this.#beatTimer = undefined;
    for (const timer of this.#endTimers.values()) timer.cancel();
    this.#endTimers.clear();
    for (const undo of this.#cleanup.splice(0)) undo();
    for (const waiter of this.#registeredWaiters.splice(0)) waiter.reject(new AgentStoppedError());
    this.#log.info({ stats: this.#stats, drops: this.drops.snapshot() }, "agent stopped");
  }

  // -------------------------------------------------------------------------------------------
  // Registration

  #register(): void {
    if (this.#state === "stopped") return;
    if (this.#registering) {
      // A reconnect while a Hello is in flight: that Hello may predate what the broker lost.
      this.#registerAgain = true;
      return;
    }
    this.#registering = true;
    this.#state = "registering";
    this.#beatTimer?.cancel();
    this.#beatTimer = undefined;
    void this.#helloLoop().finally(() => {
      this.#registering = false;
      if (this.#registerAgain && this.#state !== "stopped") {
        this.#registerAgain = false;
        this.#register();
      }
    });
  }

  async #helloLoop(): Promise<void> {
    const random = seededRandom(deriveSeed(this.#options.seed ?? 1, `hello:${this.hostId}`));
    try {
      const reply = await withRetries(() => this.#helloOnce(), {
        attempts: Number.POSITIVE_INFINITY,
        baseDelayMs: this.#options.helloRetryBaseMs ?? 500,
        maxDelayMs: this.#options.helloRetryMaxMs ?? 30_000,
        clock: this.#clock,
        random,
        signal: this.#abort.signal,
        retryIf: (error) => !(error instanceof BusClosedError) && !this.#abort.signal.aborted,
        onRetry: ({ attempt, error, delayMs }) => {
          // The first failures say what is wrong; after that, one line in ten is enough.
          if (attempt <= 3 || attempt % 10 === 0) {
            this.#log.warn({ attempt, delayMs }, `hello not accepted: ${errorMessage(error)}`);
          }
        },
      });
      this.#accepted(reply);
    } catch (error) {
      if (this.#abort.signal.aborted) return;
      this.#log.error({ err: error }, `registration stopped: ${errorMessage(error)}`);
    }
  }

  async #helloOnce(): Promise<HelloReply> {
    const hello = await this.#buildHello();
    const bytes = await this.#bus.request(this.#subjects.hello, agentCodecs.hello.encode(hello), {
      timeoutMs: this.#options.helloTimeoutMs ?? 5000,
    });
    const reply = decodeOrDrop(agentCodecs.helloReply, bytes, this.drops, this.#log, {
      kind: "hello-reply",
      subject: this.#subjects.hello,
    });
    if (reply === undefined) throw new HelloRejectedError("the broker's HelloReply did not decode");
    if (!reply.accepted) {
      throw new HelloRejectedError(`the broker refused: ${reply.message || "no reason given"}`);
    }
    if (reply.brokerEpoch < this.#seenEpoch) {
      // A deposed broker still answering: registering with it would be worthless.
      throw new HelloRejectedError(
        `answer from epoch ${reply.brokerEpoch}, older than ${this.#seenEpoch}`,
      );
    }
    return reply;
  }

  #accepted(reply: HelloReply): void {
    if (this.#state === "stopped") return;
    this.#observeEpoch(reply.brokerEpoch);
    const interval = msFromDuration(reply.heartbeatInterval);
    // A floor, so that a broker's mistake cannot turn heartbeats into a flood.
    if (interval !== undefined && interval > 0) {
      this.#heartbeatIntervalMs = Math.max(interval, MIN_HEARTBEAT_INTERVAL_MS);
    }
    const ttl = msFromDuration(reply.hostTtl);
    if (ttl !== undefined && ttl > 0) this.#hostTtlMs = ttl;
    this.#state = "registered";
    this.#stats.hellosAccepted += 1;
    this.#log.info(
      {
        epoch: this.#seenEpoch,
        heartbeatIntervalMs: this.#heartbeatIntervalMs,
        hostTtlMs: this.#hostTtlMs,
      },
      "agent registered",
    );
    for (const waiter of this.#registeredWaiters.splice(0)) waiter.resolve();
    // First beat at once: the broker learns usage without waiting an interval.
    this.#scheduleBeat(this.#clock.now());
  }

  async #buildHello(): Promise<HelloInput> {
    const o = this.#options;
    const workloads = await this.#driver.list();
    return {
      hostId: this.hostId,
      capacity: o.capacity,
      ratios: {
        cpu: o.ratios?.cpu ?? 0,
        memory: o.ratios?.memory ?? 0,
        disk: o.ratios?.disk ?? 0,
        gpu: o.ratios?.gpu ?? 0,
      },
      reserved: o.reserved ?? ZERO_RESOURCES,
      labels: { ...(o.labels ?? {}) },
      driver: this.#driver.name,
      agentVersion: o.agentVersion ?? AGENT_VERSION,
      bootId: this.bootId,
      workloads: workloads.map(
        (w): WorkloadStatusInput => ({
          leaseId: w.leaseId,
          state: `WORKLOAD_STATE_${w.state}`,
          resources: w.resources,
          memoryUsedMib: w.memoryUsedMib,
          startTime: timestampFromMs(w.startedAt),
          endTime: timestampFromMs(w.endTime),
          migrationId: w.migrationId,
          details: { ...w.details },
        }),
      ),
      address: o.address ?? "",
      time: timestampFromMs(this.#clock.now()),
      seenEpoch: this.#seenEpoch,
    };
  }

  #onBusStatus(event: BusStatusEvent): void {
    if (event.status === "reconnected") {
      // The broker may have lost this host meanwhile (a restart, a TTL expiry): register again,
      // with the workloads as they are now.
      this.#log.info({ detail: event.detail }, "bus reconnected: saying hello again");
      this.#register();
    } else if (event.status === "disconnected") {
      this.#log.warn({ detail: event.detail }, "bus disconnected");
    } else if (event.status === "closed" && this.#state !== "stopped") {
      this.#log.error("the bus closed under a running agent");
    }
  }

  /** A broker answers a heartbeat only to say it does not know this host (boot): hello again. */
  #onBeatReply(message: BusMessage): void {
    const reply = decodeOrDrop(agentCodecs.helloReply, message.data, this.drops, this.#log, {
      kind: "beat-reply",
      subject: message.subject,
    });
    if (reply === undefined || reply.accepted) return;
    if (reply.brokerEpoch < this.#seenEpoch) return;
    if (this.#state !== "registered") return;
    this.#log.info({ message: reply.message }, "the broker asked for a new hello");
    this.#register();
  }

  // -------------------------------------------------------------------------------------------
  // Heartbeats

  #scheduleBeat(atMs: number): void {
    this.#beatTimer?.cancel();
    this.#beatTimer = (this.#options.heartbeatTimers ?? this.#clock).setTimerAt(atMs, () => {
      this.#beatTimer = undefined;
      void this.#beat(atMs);
    });
  }

  async #beat(dueMs: number): Promise<void> {
    if (this.#state !== "registered" || this.#beating) return;
    this.#beating = true;
    try {
      const [workloads, usage] = await Promise.all([this.#driver.list(), this.#driver.usage()]);
      if (this.#state !== "registered") return;
      this.#beatSequence += 1;
      const beat = encodeHeartbeat({
        hostId: this.hostId,
        sequence: this.#beatSequence,
        timeMs: this.#clock.now(),
        usage,
        leaseIds: workloads.map((w) => w.leaseId).sort(),
        bootId: this.bootId,
        seenEpoch: this.#seenEpoch,
      });
      this.#bus.publish(this.#subjects.beat, beat, { reply: this.#beatInbox });
      this.#stats.beatsSent += 1;
    } catch (error) {
      this.#log.warn({ err: error }, `heartbeat not sent: ${errorMessage(error)}`);
    } finally {
      this.#beating = false;
    }
    if (this.#state === "registered" && this.#beatTimer === undefined) {
      // Keep the cadence of the schedule, not of when the last beat happened to run.
      this.#scheduleBeat(Math.max(this.#clock.now(), dueMs + this.#heartbeatIntervalMs));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Commands

  async #onCommand(message: BusMessage): Promise<void> {
    if (this.#state === "stopped") return;
    const source = { kind: "cmd", subject: message.subject };
    if (message.reply === undefined) {
      recordDrop(this.drops, this.#log, source, "invalid", "a command without a reply subject", 0);
      return;
    }
    const command = decodeOrDrop(agentCodecs.command, message.data, this.drops, this.#log, source);
    if (command === undefined) return;
    const replyTo = message.reply;
    const handling = (async () => {
      const reply = await this.#handle(command);
      try {
        this.#bus.publish(replyTo, encodeCommandReply(reply));
      } catch (error) {
        this.#log.warn(
          { key: command.idempotencyKey, err: error },
          `command reply not sent: ${errorMessage(error)}`,
        );
      }
    })();
    this.#inflight.add(handling);
    try {
      await handling;
    } finally {
      this.#inflight.delete(handling);
    }
  }

  async #handle(command: Command): Promise<CommandReplyFields> {
    this.#stats.commandsHandled += 1;
    const key = command.idempotencyKey;
    const problem = checkCommand(command, this.hostId);
    if (problem !== undefined) return this.#reply(key.slice(0, 128), problem, false);
    // Fencing comes before the idempotency cache: even a repeat of a command it sent earlier
    // tells a deposed broker that it is deposed.
    if (command.epoch < this.#seenEpoch) {
      this.#stats.staleCommands += 1;
      this.#log.warn(
        { key, epoch: command.epoch, seenEpoch: this.#seenEpoch },
        "refused a command from an older broker epoch",
      );
      return this.#reply(
        key,
        failure(
          "COMMAND_ERROR_STALE_EPOCH",
          `epoch ${command.epoch} is older than ${this.#seenEpoch}, the highest this agent has seen`,
        ),
        false,
      );
    }
    this.#observeEpoch(command.epoch);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#stats.duplicateCommands += 1;
      return this.#reply(key, await cached, true);
    }
    const running = this.#execute(command);
    this.#cache.set(key, running);
    const outcome = await running;
    // A transient failure is not the final word: the broker's retry must really retry.
    if (!outcome.ok && TRANSIENT_ERRORS.has(outcome.error)) this.#cache.delete(key);
    return this.#reply(key, outcome, false);
  }

  async #execute(command: Command): Promise<CommandOutcome> {
    const deadline = msFromTimestamp(command.deadline);
    if (deadline !== undefined && this.#clock.now() > deadline) {
      return failure("COMMAND_ERROR_INVALID", "the command's deadline has passed");
    }
    const outcome = await executeCommand(command, {
      driver: this.#driver,
      defaultGraceMs: this.#options.defaultGraceMs ?? 30_000,
      checkFit: (leaseId, demand) => this.#checkFit(leaseId, demand),
      onStopUnknown: (leaseId) =>
        this.#publishWorkloadEvent({
          leaseId,
          state: "WORKLOAD_STATE_STOPPED",
          message: "not running on this host",
          exit: null,
          migrationId: "",
        }),
      log: this.#log,
    });
    if (outcome.ok && command.kind === "start" && command.start != null) {
      this.#armEndStop(command.start.leaseId, msFromTimestamp(command.start.endTime));
    } else if (
      outcome.ok &&
      command.kind === "prepareIncoming" &&
      command.prepareIncoming != null
    ) {
      const p = command.prepareIncoming;
      this.#armEndStop(p.leaseId, msFromTimestamp(p.endTime));
    } else if (outcome.ok && command.kind === "resume" && command.resume?.workload != null) {
      const w = command.resume.workload;
      this.#armEndStop(w.leaseId, msFromTimestamp(w.endTime));
    }
    return outcome;
  }

  #reply(key: string, outcome: CommandOutcome, duplicate: boolean): CommandReplyFields {
    return {
      idempotencyKey: key,
      ok: outcome.ok,
      error: outcome.ok ? "COMMAND_ERROR_UNSPECIFIED" : outcome.error,
      errorMessage: outcome.ok ? "" : outcome.message,
      duplicate,
      incomingAddress: outcome.ok ? (outcome.incoming?.address ?? "") : "",
      incomingPort: outcome.ok ? (outcome.incoming?.port ?? 0) : 0,
      suspendImage: outcome.ok ? (outcome.suspendImage ?? null) : null,
      seenEpoch: this.#seenEpoch,
    };
  }

  #observeEpoch(epoch: number): void {
    if (epoch > this.#seenEpoch) {
      if (this.#seenEpoch > 0) {
        this.#log.info({ from: this.#seenEpoch, to: epoch }, "a newer broker epoch");
      }
      this.#seenEpoch = epoch;
    }
  }

  /** Why `demand` does not fit next to the other workloads, or undefined if it does. */
  async #checkFit(leaseId: string, demand: ResourceVector): Promise<string | undefined> {
    const o = this.#options;
    const reserved = o.reserved ?? ZERO_RESOURCES;
    const limits: ResourceVector = {
      cpuMillis: allocatable(o.capacity.cpuMillis, o.ratios?.cpu, reserved.cpuMillis),
      memoryMib: allocatable(o.capacity.memoryMib, o.ratios?.memory, reserved.memoryMib),
      diskGib: allocatable(o.capacity.diskGib, o.ratios?.disk, reserved.diskGib),
      gpus: allocatable(o.capacity.gpus, o.ratios?.gpu, reserved.gpus),
    };
    const used = { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };
    for (const w of await this.#driver.list()) {
      // A repeated start of a lease already here is not a second workload.
      if (w.leaseId === leaseId || TERMINAL_STATES.has(w.state)) continue;
      used.diskGib += w.resources.diskGib;
      // A workload suspended (or being suspended) to disk has given back its CPU, memory and
      // devices: the broker places other leases into them at once, and the save ends within
      // seconds, before a new guest has booted into that memory. Only its disk stays taken.
      if (w.state === "SUSPENDED" || w.state === "SUSPENDING") continue;
      used.cpuMillis += w.resources.cpuMillis;
      used.memoryMib += w.resources.memoryMib;
      used.gpus += w.resources.gpus;
    }
    const short = (Object.keys(limits) as Array<keyof ResourceVector>).filter(
      (k) => used[k] + demand[k] > limits[k],
    );
    if (short.length === 0) return undefined;
    return `not enough ${short
      .map((k) => `${k} (asks ${demand[k]}, ${limits[k] - used[k]} of ${limits[k]} free)`)
      .join(", ")} on ${this.hostId}`;
  }

  /** The fail-safe stop of a workload whose lease has ended, in case no broker says so. */
  #armEndStop(leaseId: string, endMs: number | undefined): void {
    this.#endTimers.get(leaseId)?.cancel();
    this.#endTimers.delete(leaseId);
    if (endMs === undefined || this.#state === "stopped") return;
    const at = endMs + (this.#options.endStopDelayMs ?? 5000);
    this.#endTimers.set(
      leaseId,
      this.#clock.setTimerAt(at, () => {
        this.#endTimers.delete(leaseId);
        void this.#endStop(leaseId);
      }),
    );
  }

  async #endStop(leaseId: string): Promise<void> {
    try {
      const present = (await this.#driver.list()).find((w) => w.leaseId === leaseId);
      if (present === undefined || present.state === "STOPPING") return;
      this.#log.warn({ leaseId }, "the lease has ended and no stop came: stopping the workload");
      await this.#driver.stop(leaseId, {
        graceMs: this.#options.defaultGraceMs ?? 30_000,
        force: false,
        reason: "the lease ended (agent fail-safe)",
      });
    } catch (error) {
      this.#log.warn({ leaseId, err: error }, `fail-safe stop failed: ${errorMessage(error)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Events

  #onDriverEvent(event: DriverEvent): void {
    if (event.type === "workload") {
      if (TERMINAL_STATES.has(event.state)) {
        this.#endTimers.get(event.leaseId)?.cancel();
        this.#endTimers.delete(event.leaseId);
      }
      this.#publishWorkloadEvent({
        leaseId: event.leaseId,
        state: `WORKLOAD_STATE_${event.state}`,
        message: event.message,
        exit: event.exit ?? null,
        migrationId: event.migrationId,
      });
      return;
    }
    const s = event.stats;
    this.#publishMigrationEvent({
      migrationId: event.migrationId,
      leaseId: event.leaseId,
      phase: `MIGRATION_STATE_${event.phase}`,
      progress: {
        bytesTransferred: s.bytesTransferred,
        bytesRemaining: s.bytesRemaining,
        rounds: s.rounds,
        dirtyRateBytesPerS: s.dirtyRateBytesPerS,
        bandwidthBytesPerS: s.bandwidthBytesPerS,
        expectedDowntime: durationFromMs(s.expectedDowntimeMs),
        time: timestampFromMs(this.#clock.now()),
      },
      downtime: durationFromMs(event.downtimeMs) ?? null,
      totalTime: durationFromMs(event.totalTimeMs) ?? null,
      error: event.error,
      postCopyUsed: event.postCopyUsed,
    });
  }

  #publishWorkloadEvent(event: WorkloadEventFields): void {
    this.#publishEvent((header) => encodeWorkloadEvent(header, event));
  }

  #publishMigrationEvent(progress: NonNullable<AgentEventInput["migrationProgress"]>): void {
    this.#publishEvent((header) =>
      agentCodecs.agentEvent.encode({
        hostId: header.hostId,
        sequence: header.sequence,
        time: timestampFromMs(header.timeMs),
        bootId: header.bootId,
        migrationProgress: progress,
      }),
    );
  }

  /** Publishes the event `encode` makes with the next sequence number and the time now. */
  #publishEvent(encode: (header: EventHeader) => Uint8Array): void {
    if (this.#state === "stopped") return;
    this.#eventSequence += 1;
    try {
      const bytes = encode({
        hostId: this.hostId,
        sequence: this.#eventSequence,
        timeMs: this.#clock.now(),
        bootId: this.bootId,
      });
      this.#bus.publish(this.#subjects.event, bytes);
      this.#stats.eventsSent += 1;
    } catch (error) {
      // Events are at most once: the broker reconciles a gap with the next Hello or heartbeat.
      this.#log.warn({ err: error }, `event not sent: ${errorMessage(error)}`);
    }
  }
}
