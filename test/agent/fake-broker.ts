/**
 * A stand-in for the broker's side of the agent protocol, for tests: answers Hello, records
 * heartbeats and events, sends commands. Works over any Bus (in-process in unit tests, NATS in
 * integration tests). It is deliberately dumb: the real registry and command client are the
 * broker's.
 */
import {
  allHostsSubject,
  type Bus,
  type BusMessage,
  hostSubject,
  type Subscription,
} from "../../bus/index.js";
import {
  type AgentEvent,
  agentCodecs,
  type CommandInput,
  type CommandReply,
  durationFromMs,
  type Heartbeat,
  type Hello,
} from "../../proto/index.js";

export interface FakeBrokerOptions {
  readonly bus: Bus;
  /** The broker epoch sent in HelloReply and commands; default 1. */
  readonly epoch?: number;
  readonly heartbeatIntervalMs?: number;
  readonly hostTtlMs?: number;
}

type Waiter = { check: () => boolean; resolve: () => void };

export class FakeBroker {
  readonly bus: Bus;
  readonly hellos: Hello[] = [];
  readonly beats: Heartbeat[] = [];
  readonly events: AgentEvent[] = [];
  /** Epoch of HelloReply and of commands sent without one. */
  epoch: number;
  /** Whether Hello is accepted. */
  accept = true;
  heartbeatIntervalMs: number;
  hostTtlMs: number;
  /** Hosts whose next heartbeat is answered "hello again" (the broker lost them). */
  readonly forgotten = new Set<string>();
  #subs: Subscription[] = [];
  #waiters: Waiter[] = [];
  #keys = 0;

  constructor(options: FakeBrokerOptions) {
    this.bus = options.bus;
    this.epoch = options.epoch ?? 1;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
    this.hostTtlMs = options.hostTtlMs ?? 3 * this.heartbeatIntervalMs;
  }

  start(): this {
    this.#subs.push(
      this.bus.subscribe(allHostsSubject("hello"), (m) => this.#onHello(m)),
      this.bus.subscribe(allHostsSubject("beat"), (m) => this.#onBeat(m)),
      this.bus.subscribe(allHostsSubject("event"), (m) => {
        this.events.push(agentCodecs.agentEvent.decode(m.data));
        this.#wake();
      }),
    );
    return this;
  }

  stop(): void {
    for (const sub of this.#subs.splice(0)) sub.unsubscribe();
  }

  /** Sends a command (key, epoch and host id filled in unless given) and decodes the reply. */
  async command(
    hostId: string,
    command: Omit<CommandInput, "hostId" | "idempotencyKey" | "epoch"> &
      Partial<Pick<CommandInput, "hostId" | "idempotencyKey" | "epoch">>,
    timeoutMs = 5000,
  ): Promise<CommandReply> {
    this.#keys += 1;
    const bytes = agentCodecs.command.encode({
      idempotencyKey: `key-${this.#keys}`,
      epoch: this.epoch,
      hostId,
      ...command,
    });
    const reply = await this.bus.request(hostSubject(hostId, "cmd"), bytes, { timeoutMs });
    return agentCodecs.commandReply.decode(reply);
  }

  /** Workload events of `leaseId`, as state names without the prefix. */
  workloadStates(leaseId: string): string[] {
    return this.events.flatMap((e) =>
      e.workload?.leaseId === leaseId ? [e.workload.state.replace("WORKLOAD_STATE_", "")] : [],
    );
  }

  /**
   * Resolves once `check` holds (checked on every message received); rejects after `timeoutMs` of
   * real time, naming `what`.
   */
  until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  #wake(): void {
    const ready = this.#waiters.filter((w) => w.check());
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  #onHello(message: BusMessage): void {
    const hello = agentCodecs.hello.decode(message.data);
    this.hellos.push(hello);
    this.forgotten.delete(hello.hostId);
    if (message.reply !== undefined) {
      this.bus.publish(
        message.reply,
        agentCodecs.helloReply.encode({
          accepted: this.accept,
          brokerEpoch: this.epoch,
          heartbeatInterval: durationFromMs(this.heartbeatIntervalMs),
          hostTtl: durationFromMs(this.hostTtlMs),
          message: this.accept ? "" : "not now",
        }),
      );
    }
    this.#wake();
  }

  #onBeat(message: BusMessage): void {
    const beat = agentCodecs.heartbeat.decode(message.data);
    this.beats.push(beat);
    if (this.forgotten.has(beat.hostId) && message.reply !== undefined) {
      this.bus.publish(
        message.reply,
        agentCodecs.helloReply.encode({
          accepted: false,
          brokerEpoch: this.epoch,
          message: "unknown host: hello again",
        }),
      );
    }
    this.#wake();
  }
}
