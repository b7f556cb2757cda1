/**
 * The broker's side of the agent protocol (docs/agent-protocol.md), as the HostGateway port:
 * hosts join by Hello, stay alive by heartbeats, report workloads by events, and are commanded by
 * request/reply with idempotency keys and the broker's epoch. Every payload from an agent is
 * untrusted: it is decoded with decodeOrDrop (counted, logged, dropped), and its host id must
 * match the subject it came on. Heartbeats and workload events are read straight from their bytes
 * first (agent-wire.ts); anything that reader does not take goes to decodeOrDrop.
 */

import type { SuspendImage } from "../../agent/index.js";
import {
  allHostsSubject,
  type Bus,
  type BusMessage,
  DropCounters,
  decodeOrDrop,
  hostSubject,
  isTransientBusError,
  parseHostSubject,
  type Subscription,
  withRetries,
} from "../../bus/index.js";
import {
  type Clock,
  errorMessage,
  FailedPreconditionError,
  Listeners,
  type Logger,
  UnavailableError,
} from "../../core/index.js";
import {
  type AgentEvent,
  agentCodecs,
  type CommandInput,
  type CommandReply,
  durationFromMs,
  encodeWith,
  type Hello,
  msFromDuration,
  timestampFromMs,
  writeTimestamp,
} from "../../proto/index.js";
import { resourcesFromProto, resourcesToProto } from "../api/convert.js";
import { writeResources, writeStringMap } from "../api/lease-wire.js";
import {
  type BeatFields,
  readHeartbeat,
  readWorkloadEvent,
  type WorkloadEventFields,
} from "./agent-wire.js";
import type {
  HostGateway,
  IncomingEndpoint,
  IncomingWorkload,
  MigrationPhase,
  MigrationReport,
  OutgoingMigration,
  StopOptions,
  WorkloadReport,
  WorkloadSpec,
} from "./gateway.js";
import type { HostRegistry } from "./registry.js";

const MIGRATION_PHASES: ReadonlySet<string> = new Set<MigrationPhase>([
  "TRANSFERRING",
  "SWITCHOVER",
  "COMPLETED",
  "ABORTED",
]);

/** The contract's host id grammar (stricter than a NATS token). */
const HOST_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface AgentGatewayOptions {
  readonly bus: Bus;
  readonly registry: HostRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The broker's fencing token: commands carry it, agents refuse older ones. */
  readonly epoch: number;
  /** Told to agents in HelloReply. Default 1 s. */
  readonly heartbeatIntervalMs?: number;
  /** Told to agents in HelloReply (the DOWN timeout). Default 10 s. */
  readonly hostTtlMs?: number;
  /** One command attempt's timeout. Default 3 s. */
  readonly commandTimeoutMs?: number;
  /** Attempts per command (timeouts, no responders). Default 5. */
  readonly commandAttempts?: number;
  /** Seeds the retry jitter. */
  readonly random?: () => number;
  /** Send the commands of one event-loop turn in one bus write (production). Default false. */
  readonly coalesceCommands?: boolean;
  /**
   * Asked before every command attempt: false means this broker may not command agents (it is
   * not, or may no longer be, the leader). Default: always true.
   */
  readonly mayCommand?: () => boolean;
}

/** What a host said it runs, from a Hello (the whole truth) or a heartbeat (ids only). */
export interface HostInventory {
  readonly hostId: string;
  readonly leaseIds: readonly string[];
  /** A Hello: the agent (re)registered, possibly after a restart. */
  readonly fromHello: boolean;
  /**
   * From a Hello: the workloads the agent says are RUNNING (their RUNNING event may have gone
   * out while no broker listened, during a leader failover).
   */
  readonly running?: readonly string[];
}

/** An agent refused a command; `code` is its CommandError name. */
export class CommandRejectedError extends FailedPreconditionError {
  constructor(
    readonly hostId: string,
    readonly code: string,
    message: string,
  ) {
    super(`host ${hostId} refused the command: ${code}${message === "" ? "" : `: ${message}`}`);
  }
}

/**
 * Command{start}, written directly: one goes out per lease, and the generic codec (checks, then
 * protobufjs' objects) cost more than the rest of sending it. The bytes decode as
 * `agentCodecs.command.encode` of the same command would (agent-gateway.test.ts checks it).
 */
export function encodeStartCommand(
  idempotencyKey: string,
  epoch: number,
  hostId: string,
  workload: WorkloadSpec,
): Uint8Array {
  return encodeWith((w) => {
    w.string(1, idempotencyKey)
      .int(2, epoch)
      .string(3, hostId)
      .begin(5)
      .string(1, workload.leaseId);
    writeResources(w, 2, workload.resources);
    w.begin(3).string(1, workload.image);
    writeStringMap(w, 2, workload.params);
    w.end();
    writeTimestamp(w, 4, workload.end);
    w.end();
  });
}

export class AgentGateway implements HostGateway {
  /** Payloads dropped, by subject kind and reason (for /metrics and tests). */
  readonly drops = new DropCounters();
  readonly #o: Required<Omit<AgentGatewayOptions, "random">> & {
    random: (() => number) | undefined;
    epoch: number;
  };
  readonly #log: Logger;
  readonly #reports = new Listeners<WorkloadReport>();
  readonly #migrationReports = new Listeners<MigrationReport>();
  readonly #inventories = new Listeners<HostInventory>();
  readonly #subscriptions: Subscription[] = [];
  #offStatus: (() => void) | undefined;
  #commands = 0;
  #deposed = false;

  constructor(options: AgentGatewayOptions) {
    this.#o = {
      heartbeatIntervalMs: 1000,
      hostTtlMs: 10_000,
      commandTimeoutMs: 3000,
      commandAttempts: 5,
      coalesceCommands: false,
      mayCommand: () => true,
      ...options,
      random: options.random,
    };
    this.#log = options.logger;
  }

  get epoch(): number {
    return this.#o.epoch;
  }

  /** A new leadership term: commands carry `epoch` from now on (and the gateway is not deposed). */
  setEpoch(epoch: number): void {
    this.#o.epoch = epoch;
    this.#deposed = false;
  }

  /** True once an agent answered STALE_EPOCH: a newer broker leads; this one must not command. */
  get deposed(): boolean {
    return this.#deposed;
  }

  /** Subscribes to the agents' subjects. */
  open(): void {
    const bus = this.#o.bus;
    this.#subscriptions.push(
      bus.subscribe(allHostsSubject("hello"), (m) => this.#onHello(m)),
      bus.subscribe(allHostsSubject("beat"), (m) => this.#onBeat(m)),
      bus.subscribe(allHostsSubject("event"), (m) => this.#onEvent(m)),
    );
    // While the broker's own connection is down it hears no one: that says nothing about the
    // hosts, so liveness waits (else a NATS outage longer than the TTL fails every lease).
    this.#offStatus = bus.onStatus((event) => {
      if (event.status === "disconnected") this.#o.registry.holdLiveness();
      else if (event.status === "reconnected" || event.status === "connected")
        this.#o.registry.resumeLiveness();
    });
  }

  close(): void {
    this.#offStatus?.();
    this.#offStatus = undefined;
    for (const s of this.#subscriptions.splice(0)) s.unsubscribe();
  }

  onReport(listener: (report: WorkloadReport) => void): () => void {
    return this.#reports.add(listener);
  }

  /** Called with what a host runs, on every Hello and accepted heartbeat (for reconciliation). */
  onInventory(listener: (inventory: HostInventory) => void): () => void {
    return this.#inventories.add(listener);
  }

  async start(hostId: string, workload: WorkloadSpec): Promise<void> {
    await this.#send(hostId, `start:${workload.leaseId}`, (idempotencyKey, epoch) =>
      encodeStartCommand(idempotencyKey, epoch, hostId, workload),
    );
  }

  async stop(hostId: string, leaseId: string, options: StopOptions): Promise<void> {
    await this.#command(hostId, `stop:${leaseId}`, {
      stop: { leaseId, grace: durationFromMs(options.graceMs), force: options.force },
    });
  }

  async prepareIncoming(hostId: string, workload: IncomingWorkload): Promise<IncomingEndpoint> {
    const reply = await this.#command(hostId, `prepare:${workload.migrationId}`, {
      prepareIncoming: {
        migrationId: workload.migrationId,
        leaseId: workload.leaseId,
        resources: resourcesToProto(workload.resources),
        driver: { image: workload.image, params: { ...workload.params } },
        endTime: timestampFromMs(workload.end),
        postCopy: workload.postCopy,
      },
    });
    return { address: reply.incomingAddress, port: reply.incomingPort };
  }

  async migrateOut(hostId: string, m: OutgoingMigration): Promise<void> {
    await this.#command(hostId, `migrate:${m.migrationId}`, {
      migrateOut: {
        migrationId: m.migrationId,
        leaseId: m.leaseId,
        destinationHostId: m.destinationHostId,
        destinationAddress: m.destination.address,
        destinationPort: m.destination.port,
        bandwidthLimitBytesPerS: m.bandwidthLimitBytesPerS,
        downtimeLimit: durationFromMs(m.downtimeLimitMs),
        autoConverge: m.autoConverge,
        postCopy: m.postCopy,
      },
    });
  }

  async abortMigration(
    hostId: string,
    migrationId: string,
    leaseId: string,
    reason: string,
  ): Promise<void> {
    await this.#command(hostId, `abort:${migrationId}`, {
      abortMigration: { migrationId, leaseId, reason },
    });
  }

  async suspend(hostId: string, leaseId: string): Promise<void> {
    await this.#command(hostId, `suspend:${leaseId}`, { suspend: { leaseId } });
  }

  async resume(hostId: string, leaseId: string): Promise<void> {
    await this.#command(hostId, `resume:${leaseId}`, { resume: { leaseId } });
  }

  async exportSuspended(hostId: string, leaseId: string): Promise<SuspendImage> {
    const reply = await this.#command(hostId, `export:${leaseId}`, {
      exportSuspended: { leaseId },
    });
    const image = reply.suspendImage;
    if (image === null) {
      throw new CommandRejectedError(hostId, "INTERNAL", "the reply names no suspend image");
    }
    return { ...image, sizeBytes: Number(image.sizeBytes) };
  }

  async resumeFrom(hostId: string, workload: WorkloadSpec, image: SuspendImage): Promise<void> {
    await this.#command(hostId, `resume:${workload.leaseId}`, {
      resume: {
        leaseId: workload.leaseId,
        from: image,
        workload: {
          leaseId: workload.leaseId,
          resources: resourcesToProto(workload.resources),
          driver: { image: workload.image, params: { ...workload.params } },
          endTime: timestampFromMs(workload.end),
        },
      },
    });
  }

  onMigrationReport(listener: (report: MigrationReport) => void): () => void {
    return this.#migrationReports.add(listener);
  }

  // ── incoming ───────────────────────────────────────────────────────────────────────────────

  #source(m: BusMessage): { hostId: string; kind: "hello" | "beat" | "event" } | undefined {
    const parsed = parseHostSubject(m.subject);
    if (
      parsed === undefined ||
      (parsed.kind !== "hello" && parsed.kind !== "beat" && parsed.kind !== "event")
    ) {
      return undefined;
    }
    return { hostId: parsed.hostId, kind: parsed.kind };
  }

  #invalid(kind: "hello" | "beat" | "event", subject: string, why: string): void {
    this.drops.count(kind, "invalid");
    this.#log.warn({ subject, why }, "agent message dropped");
  }

  #reply(m: BusMessage, accepted: boolean, message = ""): void {
    if (m.reply === undefined) return;
    const bytes = agentCodecs.helloReply.encode({
      accepted,
      brokerEpoch: this.#o.epoch,
      heartbeatInterval: durationFromMs(this.#o.heartbeatIntervalMs),
      hostTtl: durationFromMs(this.#o.hostTtlMs),
      message,
      brokerTime: timestampFromMs(this.#o.clock.now()),
    });
    this.#o.bus.publish(m.reply, bytes);
  }

  #onHello(m: BusMessage): void {
    const source = this.#source(m);
    if (source === undefined) return;
    const hello = decodeOrDrop(agentCodecs.hello, m.data, this.drops, this.#log, {
      kind: "hello",
      subject: m.subject,
    });
    if (hello === undefined) return;
    const problem = this.#helloProblem(source.hostId, hello);
    if (problem !== undefined) {
      this.#invalid("hello", m.subject, problem);
      this.#reply(m, false, problem);
      return;
    }
    // The contract: a ratio of 0 (unset) means 1.0, no overcommit.
    const r = hello.ratios;
    const ratio = (v: number | undefined): number => (v !== undefined && v > 0 ? v : 1);
    this.#o.registry.register({
      id: hello.hostId,
      capacity: resourcesFromProto(hello.capacity),
      ratios: {
        cpuMillis: ratio(r?.cpu),
        memoryMib: ratio(r?.memory),
        diskGib: ratio(r?.disk),
        gpus: ratio(r?.gpu),
      },
      reserved: resourcesFromProto(hello.reserved),
      labels: { ...hello.labels },
      driver: hello.driver,
      agentVersion: hello.agentVersion,
      bootId: hello.bootId,
    });
    this.#reply(m, true);
    const inventory: HostInventory = {
      hostId: hello.hostId,
      leaseIds: hello.workloads.map((w) => w.leaseId),
      fromHello: true,
      running: hello.workloads
        .filter((w) => w.state === "WORKLOAD_STATE_RUNNING")
        .map((w) => w.leaseId),
    };
    this.#inventories.emit(inventory);
  }

  #helloProblem(subjectHost: string, hello: Hello): string | undefined {
    if (hello.hostId !== subjectHost)
      return `host_id ${JSON.stringify(hello.hostId)} is not the subject's ${subjectHost}`;
    if (!HOST_ID.test(hello.hostId))
      return "host_id: 1-63 characters of [a-z0-9-], alphanumeric at both ends";
    if (hello.bootId === "") return "boot_id is required";
    const c = hello.capacity;
    if (c === null || !(Number(c.cpuMillis) > 0) || !(Number(c.memoryMib) > 0)) {
      return "capacity: cpu_millis and memory_mib must be > 0";
    }
    if (hello.driver === "") return "driver is required";
    return undefined;
  }

  #onBeat(m: BusMessage): void {
    const source = this.#source(m);
    if (source === undefined) return;
    const beat: BeatFields | undefined =
      readHeartbeat(m.data, agentCodecs.heartbeat.maxBytes) ??
      decodeOrDrop(agentCodecs.heartbeat, m.data, this.drops, this.#log, {
        kind: "beat",
        subject: m.subject,
      });
    if (beat === undefined) return;
    if (beat.hostId !== source.hostId) {
      this.#invalid("beat", m.subject, "host_id is not the subject's");
      return;
    }
    const result = this.#o.registry.heartbeat(beat.hostId, beat.bootId, beat.sequence);
    if (result === "unknown") {
      // Not registered with this boot id (a broker restart, an agent restart, or a host declared
      // DOWN): ask for a Hello, which brings the whole list of workloads.
      this.#reply(m, false, "unknown host or boot id: say hello");
      return;
    }
    if (result === "stale") return;
    const inventory: HostInventory = {
      hostId: beat.hostId,
      leaseIds: beat.leaseIds,
      fromHello: false,
    };
    this.#inventories.emit(inventory);
  }

  #onEvent(m: BusMessage): void {
    const source = this.#source(m);
    if (source === undefined) return;
    const event: WorkloadEventFields | AgentEvent | undefined =
      readWorkloadEvent(m.data, agentCodecs.agentEvent.maxBytes) ??
      decodeOrDrop(agentCodecs.agentEvent, m.data, this.drops, this.#log, {
        kind: "event",
        subject: m.subject,
      });
    if (event === undefined) return;
    if (event.hostId !== source.hostId) {
      this.#invalid("event", m.subject, "host_id is not the subject's");
      return;
    }
    if (event.kind === "migrationProgress") {
      this.#onMigrationProgress(event.hostId, event.migrationProgress);
      return;
    }
    const w = event.workload;
    if (event.kind !== "workload" || w === null || w === undefined) return;
    const state =
      w.state === "WORKLOAD_STATE_RUNNING"
        ? "RUNNING"
        : w.state === "WORKLOAD_STATE_STOPPED"
          ? "STOPPED"
          : w.state === "WORKLOAD_STATE_FAILED"
            ? "FAILED"
            : undefined;
    if (state === undefined) return;
    const report: WorkloadReport = {
      hostId: event.hostId,
      leaseId: w.leaseId,
      state,
      message: w.message,
      ...(w.migrationId === "" ? {} : { migrationId: w.migrationId }),
    };
    this.#reports.emit(report);
  }

  #onMigrationProgress(hostId: string, p: AgentEvent["migrationProgress"]): void {
    if (p === null || p === undefined) return;
    const phase = p.phase.replace(/^MIGRATION_STATE_/, "");
    if (!MIGRATION_PHASES.has(phase) || p.migrationId === "" || p.leaseId === "") {
      this.#invalid("event", hostSubject(hostId, "event"), `migration progress: bad phase or ids`);
      return;
    }
    const s = p.progress;
    const report: MigrationReport = {
      hostId,
      migrationId: p.migrationId,
      leaseId: p.leaseId,
      phase: phase as MigrationPhase,
      bytesTransferred: Number(s?.bytesTransferred ?? 0),
      bytesRemaining: Number(s?.bytesRemaining ?? 0),
      rounds: s?.rounds ?? 0,
      dirtyRateBytesPerS: Number(s?.dirtyRateBytesPerS ?? 0),
      bandwidthBytesPerS: Number(s?.bandwidthBytesPerS ?? 0),
      expectedDowntimeMs:
        s?.expectedDowntime === null || s?.expectedDowntime === undefined
          ? 0
          : msFromDuration(s.expectedDowntime),
      ...(p.downtime === null ? {} : { downtimeMs: msFromDuration(p.downtime) }),
      ...(p.totalTime === null ? {} : { totalTimeMs: msFromDuration(p.totalTime) }),
      error: p.error,
    };
    this.#migrationReports.emit(report);
  }

  // ── outgoing ───────────────────────────────────────────────────────────────────────────────

  #command(
    hostId: string,
    key: string,
    kind: Omit<CommandInput, "idempotencyKey" | "epoch" | "hostId">,
  ): Promise<CommandReply> {
    return this.#send(hostId, key, (idempotencyKey, epoch) =>
      agentCodecs.command.encode({ idempotencyKey, epoch, hostId, ...kind }),
    );
  }

  /** Sends the command `encode` makes with its idempotency key and epoch; resolves to the reply. */
  async #send(
    hostId: string,
    key: string,
    encode: (idempotencyKey: string, epoch: number) => Uint8Array,
  ): Promise<CommandReply> {
    const refusal = this.#refusal();
    if (refusal !== undefined) throw refusal;
    // One key per logical command (retries below resend the same bytes, so the same key): a
    // deliberate second command for the same lease (a restart, a second stop) is not a duplicate.
    this.#commands++;
    const bytes = encode(`${key}:${this.#o.epoch}:${this.#commands}`, this.#o.epoch);
    // Commands issued by one callback and the promise work it started (a SubmitLeases call's
    // admissions) leave together: the NATS client writes its buffer once per flush, not once per
    // command. Off in tests and the simulator, where commands go out at once so that runs stay
    // deterministic.
    if (this.#o.coalesceCommands) await this.#batchEnd();
    const reply = await withRetries(
      async () => {
        // Asked again before each attempt: leadership may end while a command is retried.
        const refused = this.#refusal();
        if (refused !== undefined) throw refused;
        const answer = await this.#o.bus.request(hostSubject(hostId, "cmd"), bytes, {
          timeoutMs: this.#o.commandTimeoutMs,
        });
        return agentCodecs.commandReply.decode(answer);
      },
      {
        attempts: this.#o.commandAttempts,
        baseDelayMs: 200,
        maxDelayMs: 5000,
        clock: this.#o.clock,
        retryIf: isTransientBusError,
        ...(this.#o.random === undefined ? {} : { random: this.#o.random }),
      },
    ).catch((error: unknown) => {
      throw new UnavailableError(
        `host ${hostId} did not answer the command: ${errorMessage(error)}`,
        { cause: error },
      );
    });
    this.#check(hostId, reply);
    return reply;
  }

  /** Why this broker may not command agents now, or undefined. */
  #refusal(): UnavailableError | undefined {
    if (this.#deposed)
      return new UnavailableError("this broker was deposed: a newer epoch commands the agents");
    if (!this.#o.mayCommand())
      return new UnavailableError("this broker is not the leader: it does not command agents");
    return undefined;
  }

  #batch: Promise<void> | undefined;

  /**
   * Resolves once the promise jobs queued now have run (a next tick runs after the microtask
   * queue drains); one shared promise per batch. Not the end of the event-loop turn
   * (`setImmediate`): the rest of the turn's I/O, or from the check phase a whole further turn,
   * would run before the commands leave (p99 13–15 ms from commit to send at 2,000 leases/s).
   */
  #batchEnd(): Promise<void> {
    this.#batch ??= new Promise<void>((resolve) =>
      process.nextTick(() => {
        this.#batch = undefined;
        resolve();
      }),
    );
    return this.#batch;
  }

  #check(hostId: string, reply: CommandReply): void {
    if (reply.ok) return;
    const code = reply.error.replace(/^COMMAND_ERROR_/, "");
    if (code === "STALE_EPOCH") {
      this.#deposed = true;
      this.#log.error(
        { host: hostId, epoch: this.#o.epoch, seen: reply.seenEpoch },
        "deposed: an agent has seen a newer epoch",
      );
    }
    throw new CommandRejectedError(hostId, code, reply.errorMessage);
  }

  /** Commands sent (each logical command once, whatever its retries). */
  get commandsSent(): number {
    return this.#commands;
  }
}
