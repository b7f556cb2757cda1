/**
 * The Bus in one process: the embedded mode's transport and the tests' stand-in for NATS. An
 * `InProcessHub` plays nats-server; each party (the broker, every agent) gets its own connection,
 * an `InProcessBus`, so that one party draining, closing or losing its connection does not affect
 * the others. Same semantics as NATS where they matter to callers: subject grammar and wildcards,
 * queue groups, request/reply with "no responders" and timeouts, at-most-once delivery in publish
 * order, a payload limit, and status events around a (simulated) lost connection, during which the
 * connection misses messages and holds back its own publishes.
 *
 * Deterministic: nothing is delivered inside `publish`; messages and status events go through one
 * FIFO queue per hub that a microtask drains, and request timeouts run on the Clock port, so
 * under a VirtualClock a test decides exactly when a request times out.
 */
import { type Clock, errorMessage, type Logger, RealClock, silentLogger } from "../core/index.js";
import {
  type Bus,
  type BusMessage,
  type BusStatus,
  type BusStatusEvent,
  DEFAULT_MAX_PAYLOAD,
  type MessageHandler,
  type PublishOptions,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
} from "./bus.js";
import {
  BusClosedError,
  BusTimeoutError,
  NoRespondersError,
  PayloadTooLargeError,
} from "./errors.js";
import { checkPublishSubject, checkSubscribeSubject, subjectMatches } from "./subject-match.js";

export interface InProcessHubOptions {
  /** Runs request timeouts; default a RealClock. */
  readonly clock?: Clock | undefined;
  /** Largest payload; default 1 MiB, like nats-server. */
  readonly maxPayload?: number | undefined;
  /** Handler failures are logged here; default silent. */
  readonly logger?: Logger | undefined;
}

interface Sub {
  readonly owner: InProcessBus;
  readonly pattern: string;
  readonly handler: MessageHandler;
  readonly queue: string | undefined;
  /** False once unsubscribed: queued messages for it are not delivered. */
  active: boolean;
  /** False while its connection drains: no new messages are routed to it. */
  receiving: boolean;
}

type QueueItem =
  | { readonly type: "message"; readonly sub: Sub; readonly message: BusMessage }
  | { readonly type: "status"; readonly owner: InProcessBus; readonly event: BusStatusEvent };

interface Outgoing {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly reply: string | undefined;
}

/** The in-process "server": routes messages between its connections. */
export class InProcessHub {
  readonly clock: Clock;
  readonly maxPayload: number;
  readonly log: Logger;
  readonly #subs: Sub[] = [];
  readonly #queue: QueueItem[] = [];
  readonly #idleWaiters: Array<() => void> = [];
  readonly #queueTurn = new Map<string, number>();
  #scheduled = false;
  #inboxes = 0;
  #connections = 0;

  constructor(options: InProcessHubOptions = {}) {
    this.clock = options.clock ?? new RealClock();
    this.log = options.logger ?? silentLogger();
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** A new connection (a party: the broker, one agent). */
  connect(name?: string): InProcessBus {
    this.#connections += 1;
    return new InProcessBus(this, name ?? `conn-${this.#connections}`);
  }

  /** @internal */
  addSub(sub: Sub): void {
    this.#subs.push(sub);
  }

  /** @internal */
  removeSub(sub: Sub): void {
    sub.active = false;
    const i = this.#subs.indexOf(sub);
    if (i >= 0) this.#subs.splice(i, 1);
  }

  /** @internal Whether any connected party listens on `subject` (for "no responders"). */
  hasListener(subject: string): boolean {
    return this.#subs.some((s) => this.#reachable(s) && subjectMatches(s.pattern, subject));
  }

  /** @internal */
  nextInbox(): string {
    this.#inboxes += 1;
    return `_INBOX.inproc.${this.#inboxes}`;
  }

  /** @internal */
  route(outgoing: Outgoing): void {
    const message: BusMessage = {
      subject: outgoing.subject,
      data: outgoing.data,
      reply: outgoing.reply,
    };
    const groups = new Map<string, Sub[]>();
    for (const sub of this.#subs) {
      if (!this.#reachable(sub) || !subjectMatches(sub.pattern, outgoing.subject)) continue;
      if (sub.queue === undefined) {
        this.enqueue({ type: "message", sub, message: copy(message) });
      } else {
        const members = groups.get(sub.queue) ?? [];
        members.push(sub);
        groups.set(sub.queue, members);
      }
    }
    // One member per queue group, in turn, so that the choice is deterministic.
    for (const [queue, members] of groups) {
      const turn = this.#queueTurn.get(queue) ?? 0;
      this.#queueTurn.set(queue, turn + 1);
      const sub = members[turn % members.length] as Sub;
      this.enqueue({ type: "message", sub, message: copy(message) });
    }
  }

  /** @internal */
  enqueue(item: QueueItem): void {
    this.#queue.push(item);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#deliver());
    }
  }

  /** Resolves once every queued message and status event has been handed to its handler. */
  async settled(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  // A disconnected party is not known to the server: messages for it are lost, as with NATS.
  #reachable(sub: Sub): boolean {
    return sub.active && sub.receiving && sub.owner.status !== "disconnected";
  }

  #deliver(): void {
    // Items enqueued by handlers during this loop are delivered in the same loop, in order.
    for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) {
      if (item.type === "status") item.owner.emitStatus(item.event);
      else if (item.sub.active) item.sub.owner.invoke(item.sub, item.message);
    }
    this.#scheduled = false;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}

function copy(message: BusMessage): BusMessage {
  // Each subscriber gets its own bytes, as over the wire: one handler cannot alter another's.
  return { ...message, data: message.data.slice() };
}

/** One party's connection to an `InProcessHub`. `new InProcessBus()` makes a private hub. */
export class InProcessBus implements Bus {
  readonly hub: InProcessHub;
  readonly name: string;
  readonly #subs = new Set<Sub>();
  readonly #statusListeners = new Set<(event: BusStatusEvent) => void>();
  readonly #pendingRequests = new Set<(error: Error) => void>();
  readonly #inflight = new Set<Promise<void>>();
  /** Publishes held while the connection is (simulated) down, sent on reconnect like NATS does. */
  readonly #held: Outgoing[] = [];
  #status: BusStatus = "connected";
  #draining = false;
  #handlerErrors = 0;

  constructor(hub?: InProcessHub | InProcessHubOptions, name = "conn-0") {
    this.hub = hub instanceof InProcessHub ? hub : new InProcessHub(hub);
    this.name = name;
  }

  get status(): BusStatus {
    return this.#status;
  }

  get maxPayload(): number {
    return this.hub.maxPayload;
  }

  /** Handlers of this connection that threw or rejected so far. */
  get handlerErrors(): number {
    return this.#handlerErrors;
  }

  publish(subject: string, data: Uint8Array, options?: PublishOptions): void {
    this.#checkOpen(false);
    checkPublishSubject(subject);
    if (options?.reply !== undefined) checkPublishSubject(options.reply);
    if (data.length > this.maxPayload) throw new PayloadTooLargeError(data.length, this.maxPayload);
    const outgoing = { subject, data: data.slice(), reply: options?.reply };
    if (this.#status === "disconnected") this.#held.push(outgoing);
    else this.hub.route(outgoing);
  }

  subscribe(subject: string, handler: MessageHandler, options?: SubscribeOptions): Subscription {
    this.#checkOpen(true);
    checkSubscribeSubject(subject);
    const sub: Sub = {
      owner: this,
      pattern: subject,
      handler,
      queue: options?.queue,
      active: true,
      receiving: true,
    };
    this.#subs.add(sub);
    this.hub.addSub(sub);
    return {
      subject,
      unsubscribe: () => {
        this.#subs.delete(sub);
        this.hub.removeSub(sub);
      },
    };
  }

  request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    try {
      this.#checkOpen(true);
      checkPublishSubject(subject);
      if (data.length > this.maxPayload) {
        throw new PayloadTooLargeError(data.length, this.maxPayload);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    // nats-server answers "no responders" when nobody is subscribed; while disconnected the client
    // cannot know, and the request waits for its timeout as with NATS.
    if (this.#status !== "disconnected" && !this.hub.hasListener(subject)) {
      return Promise.reject(new NoRespondersError(subject));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const inbox = this.createInbox();
      let settled = false;
      const finish = (): void => {
        settled = true;
        timer.cancel();
        sub.unsubscribe();
        this.#pendingRequests.delete(fail);
      };
      const fail = (error: Error): void => {
        if (settled) return;
        finish();
        reject(error);
      };
      const sub = this.subscribe(inbox, (message) => {
        if (settled) return;
        finish();
        resolve(message.data);
      });
      const timer = this.hub.clock.setTimer(options.timeoutMs, () =>
        fail(new BusTimeoutError(subject, options.timeoutMs)),
      );
      this.#pendingRequests.add(fail);
      this.publish(subject, data, { reply: inbox });
    });
  }

  createInbox(): string {
    return this.hub.nextInbox();
  }

  onStatus(listener: (event: BusStatusEvent) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  flush(): Promise<void> {
    return this.hub.settled();
  }

  async drain(): Promise<void> {
    if (this.#status === "closed" || this.#draining) return;
    this.#draining = true;
    // Like NATS: take no new messages, deliver those already routed here, let running handlers
    // finish (their replies still go out), then close.
    for (const sub of this.#subs) sub.receiving = false;
    await this.hub.settled();
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    await this.hub.settled();
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#status === "closed") return;
    this.#status = "closed";
    this.#draining = false;
    for (const sub of [...this.#subs]) this.hub.removeSub(sub);
    this.#subs.clear();
    this.#held.length = 0;
    for (const fail of [...this.#pendingRequests]) fail(new BusClosedError());
    this.emitStatus({ status: "closed", detail: "" });
  }

  /**
   * Simulates losing the connection: `disconnected` is reported, messages for this connection are
   * lost and its publishes are held (as the NATS client buffers them) until `simulateReconnect`.
   */
  simulateDisconnect(): void {
    if (this.#status !== "connected") return;
    this.#status = "disconnected";
    this.hub.enqueue({
      type: "status",
      owner: this,
      event: { status: "disconnected", detail: "simulated" },
    });
  }

  /** Ends a simulated outage (disconnecting first if needed): `reconnected`, then held publishes. */
  simulateReconnect(): void {
    if (this.#status === "closed") return;
    if (this.#status === "connected") this.simulateDisconnect();
    this.#status = "connected";
    this.hub.enqueue({
      type: "status",
      owner: this,
      event: { status: "reconnected", detail: "simulated" },
    });
    for (const outgoing of this.#held.splice(0)) this.hub.route(outgoing);
  }

  /** @internal Runs a handler of this connection; failures are logged, never thrown. */
  invoke(sub: Sub, message: BusMessage): void {
    if (this.#status === "closed") return;
    let result: void | Promise<void>;
    try {
      result = sub.handler(message);
    } catch (error) {
      this.#handlerFailed(sub, message, error);
      return;
    }
    if (result instanceof Promise) {
      const tracked: Promise<void> = result.then(
        () => {
          this.#inflight.delete(tracked);
        },
        (error: unknown) => {
          this.#inflight.delete(tracked);
          this.#handlerFailed(sub, message, error);
        },
      );
      this.#inflight.add(tracked);
    }
  }

  /** @internal */
  emitStatus(event: BusStatusEvent): void {
    for (const listener of [...this.#statusListeners]) {
      try {
        listener(event);
      } catch (error) {
        this.hub.log.error({ err: error }, `bus status listener failed: ${errorMessage(error)}`);
      }
    }
  }

  /**
   * Like the NATS client: while draining, handlers still running may publish (their replies), but
   * nothing new may subscribe or request.
   */
  #checkOpen(subscribing: boolean): void {
    if (this.#status === "closed") throw new BusClosedError();
    if (subscribing && this.#draining) throw new BusClosedError("the bus is draining");
  }

  #handlerFailed(sub: Sub, message: BusMessage, error: unknown): void {
    this.#handlerErrors += 1;
    this.hub.log.error(
      { subject: message.subject, subscription: sub.pattern, bus: this.name, err: error },
      `bus handler failed: ${errorMessage(error)}`,
    );
  }
}
