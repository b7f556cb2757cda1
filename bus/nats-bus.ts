/**
 * The Bus over a real nats-server (the `nats` 2.x client). The client reconnects forever and
 * resubscribes by itself; this adapter maps its errors to the Bus port's typed errors, its status
 * stream to `connected/disconnected/reconnected/closed`, and shields the connection from handler
 * failures (an exception in a NATS callback would otherwise reach the client's protocol parser).
 */
import {
  connect,
  createInbox,
  ErrorCode,
  Events,
  type Msg,
  type NatsConnection,
  NatsError,
} from "nats";
import { errorMessage, type Logger, silentLogger } from "../core/index.js";
import type {
  Bus,
  BusMessage,
  BusStatus,
  BusStatusEvent,
  MessageHandler,
  PublishOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
} from "./bus.js";
import { DEFAULT_MAX_PAYLOAD } from "./bus.js";
import {
  BusClosedError,
  BusTimeoutError,
  BusTransportError,
  NoRespondersError,
  PayloadTooLargeError,
} from "./errors.js";
import { checkPublishSubject, checkSubscribeSubject } from "./subject-match.js";

export interface NatsBusOptions {
  /** One URL, several, or a comma-separated list (`nats://127.0.0.1:4222`). */
  readonly servers: string | readonly string[];
  readonly user?: string | undefined;
  readonly pass?: string | undefined;
  readonly token?: string | undefined;
  /** Client name shown by the server's monitoring (`leasebroker-agent:<hostId>`). */
  readonly name?: string | undefined;
  /** Wait between reconnect attempts; default 1 s. Attempts never stop. */
  readonly reconnectTimeWaitMs?: number | undefined;
  /**
   * Keep trying when the server is not there at start (an agent may start before NATS); default
   * false: `connect` rejects with BusTransportError.
   */
  readonly waitOnFirstConnect?: boolean | undefined;
  readonly logger?: Logger | undefined;
  /**
   * Reply subjects of this client's requests start with this (default `_INBOX`): an agent uses
   * `_INBOX.<hostId>` so that NATS permissions can confine it to its own replies.
   */
  readonly inboxPrefix?: string | undefined;
  /**
   * Publishes of one event-loop turn go to the server in one socket write (at the end of the
   * turn) instead of one write each. For a process that holds many agents (bench:e2e's agent
   * host): each agent's beats, replies and events come from timers of their own, and a write per
   * message cost that process more than the agents' work. Default false.
   */
  readonly coalescePublishes?: boolean | undefined;
}

function splitServers(servers: string | readonly string[]): string[] {
  const list = typeof servers === "string" ? [servers] : [...servers];
  return list
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** A request waiting for its answer on the reply subscription. */
interface PendingRequest {
  readonly resolve: (data: Uint8Array) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly subject: string;
}

/** The reply subscription: its subject prefix and the requests waiting on it, by token. */
interface Replies {
  readonly prefix: string;
  readonly pending: Map<string, PendingRequest>;
}

/** A NatsError's code, or undefined for anything else. */
function natsCode(error: unknown): string | undefined {
  return error instanceof NatsError ? error.code : undefined;
}

export class NatsBus implements Bus {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #inboxPrefix: string | undefined;
  readonly #listeners = new Set<(event: BusStatusEvent) => void>();
  readonly #coalesce: boolean;
  /** Publishes waiting for the end of the turn (with `coalescePublishes`). */
  #queued: { subject: string; data: Uint8Array; reply: string | undefined }[] = [];
  /**
   * This client's requests share one reply subscription (`<inbox>.*`), answers matched by the
   * last token of their subject. The client's own `request` does the same, but builds a NatsError
   * (with its stack trace) for every request it completes: a measurable cost at thousands of
   * agent commands per second.
   */
  #replies: Replies | undefined;
  #nextToken = 0;
  #status: BusStatus = "connected";
  #handlerErrors = 0;

  private constructor(
    nc: NatsConnection,
    log: Logger,
    inboxPrefix: string | undefined,
    coalesce: boolean,
  ) {
    this.#nc = nc;
    this.#log = log;
    this.#inboxPrefix = inboxPrefix;
    this.#coalesce = coalesce;
    void this.#watchStatus();
    void nc.closed().then((error) => {
      this.#status = "closed";
      for (const pending of this.#replies?.pending.values() ?? []) {
        clearTimeout(pending.timer);
        pending.reject(new BusClosedError("the bus is closed"));
      }
      this.#replies?.pending.clear();
      this.#emit({ status: "closed", detail: error instanceof Error ? error.message : "" });
    });
  }

  /** Connects; rejects with BusTransportError when the server cannot be reached or refuses us. */
  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    const log = options.logger ?? silentLogger();
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: splitServers(options.servers),
        ...(options.user === undefined ? {} : { user: options.user }),
        ...(options.pass === undefined ? {} : { pass: options.pass }),
        ...(options.token === undefined ? {} : { token: options.token }),
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
        maxReconnectAttempts: -1,
        // The client otherwise builds an Error per request to keep its async stack trace: a
        // measurable cost at thousands of commands per second, for traces no one reads.
        noAsyncTraces: true,
        reconnectTimeWait: options.reconnectTimeWaitMs ?? 1000,
        waitOnFirstConnect: options.waitOnFirstConnect ?? false,
      });
    } catch (error) {
      throw new BusTransportError(`cannot connect to NATS: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    return new NatsBus(nc, log, options.inboxPrefix, options.coalescePublishes ?? false);
  }

  get status(): BusStatus {
    return this.#status;
  }

  get maxPayload(): number {
    return this.#nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** Handlers that threw or rejected so far. */
  get handlerErrors(): number {
    return this.#handlerErrors;
  }

  /** The server the client is connected to (`127.0.0.1:4222`), for logs. */
  get server(): string {
    return this.#nc.getServer();
  }

  publish(subject: string, data: Uint8Array, options?: PublishOptions): void {
    checkPublishSubject(subject);
    if (options?.reply !== undefined) checkPublishSubject(options.reply);
    if (data.length > this.maxPayload) throw new PayloadTooLargeError(data.length, this.maxPayload);
    if (this.#coalesce) {
      if (this.#nc.isClosed()) throw new BusClosedError("the bus is closed");
      if (this.#queued.length === 0) setImmediate(() => this.#publishQueued());
      this.#queued.push({ subject, data, reply: options?.reply });
      return;
    }
    try {
      this.#nc.publish(
        subject,
        data,
        options?.reply === undefined ? undefined : { reply: options.reply },
      );
    } catch (error) {
      throw this.#mapError(error, subject, 0, data.length);
    }
  }

  /** Hands the queued publishes to the client together: it writes them in one flush. */
  #publishQueued(): void {
    const queued = this.#queued;
    if (queued.length === 0) return;
    this.#queued = [];
    for (const { subject, data, reply } of queued) {
      try {
        this.#nc.publish(subject, data, reply === undefined ? undefined : { reply });
      } catch (error) {
        // At most once, as a publish the server never got: the caller has moved on.
        this.#log.warn(
          { subject, err: error },
          `publish dropped: ${errorMessage(this.#mapError(error, subject, 0, data.length))}`,
        );
      }
    }
  }

  subscribe(subject: string, handler: MessageHandler, options?: SubscribeOptions): Subscription {
    checkSubscribeSubject(subject);
    const callback = (error: NatsError | null, msg: Msg): void => {
      if (error !== null) {
        this.#log.warn({ subject, err: error }, `subscription error: ${error.message}`);
        return;
      }
      // The client may reuse its read buffer; a handler that keeps the bytes gets its own copy.
      const message: BusMessage = {
        subject: msg.subject,
        data: msg.data.slice(),
        reply: msg.reply === undefined || msg.reply === "" ? undefined : msg.reply,
      };
      this.#invoke(subject, handler, message);
    };
    try {
      const sub = this.#nc.subscribe(subject, {
        callback,
        ...(options?.queue === undefined ? {} : { queue: options.queue }),
      });
      return {
        subject,
        unsubscribe: () => {
          if (!sub.isClosed()) sub.unsubscribe();
        },
      };
    } catch (error) {
      throw this.#mapError(error, subject, 0);
    }
  }

  async request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    checkPublishSubject(subject);
    if (data.length > this.maxPayload) throw new PayloadTooLargeError(data.length, this.maxPayload);
    // What was published before goes out before the request.
    this.#publishQueued();
    const replies = this.#replySubscription();
    const token = (this.#nextToken++).toString(36);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        replies.pending.delete(token);
        reject(new BusTimeoutError(subject, options.timeoutMs));
      }, options.timeoutMs);
      replies.pending.set(token, { resolve, reject, timer, subject });
      try {
        this.#nc.publish(subject, data, { reply: `${replies.prefix}${token}` });
      } catch (error) {
        clearTimeout(timer);
        replies.pending.delete(token);
        reject(this.#mapError(error, subject, options.timeoutMs, data.length));
      }
    });
  }

  #replySubscription(): Replies {
    if (this.#replies !== undefined) return this.#replies;
    const prefix = `${createInbox(this.#inboxPrefix)}.`;
    const pending = new Map<string, PendingRequest>();
    try {
      this.#nc.subscribe(`${prefix}*`, {
        callback: (error, msg) => {
          if (error !== null) {
            this.#log.warn({ err: error }, `reply subscription error: ${error.message}`);
            return;
          }
          const token = msg.subject.slice(prefix.length);
          const request = pending.get(token);
          if (request === undefined) return; // answered after its timeout
          pending.delete(token);
          clearTimeout(request.timer);
          // The server's "no responders" status: an empty message with header code 503.
          if (msg.data.length === 0 && msg.headers?.code === 503) {
            request.reject(
              new NoRespondersError(request.subject, {
                cause: NatsError.errorForCode(ErrorCode.NoResponders),
              }),
            );
          } else {
            request.resolve(msg.data.slice());
          }
        },
      });
    } catch (error) {
      throw this.#mapError(error, prefix, 0);
    }
    this.#replies = { prefix, pending };
    return this.#replies;
  }

  createInbox(): string {
    // Under the client's inbox prefix, where NATS permissions let this client subscribe.
    return createInbox(this.#inboxPrefix);
  }

  onStatus(listener: (event: BusStatusEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async flush(): Promise<void> {
    this.#publishQueued();
    try {
      await this.#nc.flush();
    } catch (error) {
      throw this.#mapError(error, "", 0);
    }
  }

  async drain(): Promise<void> {
    if (this.#nc.isClosed()) return;
    this.#publishQueued();
    if (this.#nc.isDraining()) {
      await this.#nc.closed();
      return;
    }
    try {
      await this.#nc.drain();
    } catch (error) {
      // Closed meanwhile (e.g. by close()): nothing left to drain.
      if (natsCode(error) !== ErrorCode.ConnectionClosed) throw this.#mapError(error, "", 0);
    }
  }

  async close(): Promise<void> {
    if (this.#nc.isClosed()) return;
    this.#publishQueued();
    await this.#nc.close();
  }

  #invoke(pattern: string, handler: MessageHandler, message: BusMessage): void {
    try {
      const result = handler(message);
      if (result instanceof Promise) {
        result.catch((error: unknown) => this.#handlerFailed(pattern, message, error));
      }
    } catch (error) {
      this.#handlerFailed(pattern, message, error);
    }
  }

  #handlerFailed(pattern: string, message: BusMessage, error: unknown): void {
    this.#handlerErrors += 1;
    this.#log.error(
      { subject: message.subject, subscription: pattern, err: error },
      `bus handler failed: ${errorMessage(error)}`,
    );
  }

  async #watchStatus(): Promise<void> {
    try {
      for await (const status of this.#nc.status()) {
        const detail = typeof status.data === "string" ? status.data : "";
        if (status.type === Events.Disconnect) {
          this.#status = "disconnected";
          this.#emit({ status: "disconnected", detail });
        } else if (status.type === Events.Reconnect) {
          this.#status = "connected";
          this.#emit({ status: "reconnected", detail });
        } else if (status.type === Events.Error) {
          this.#log.warn({ detail }, "NATS reported an error");
        }
      }
    } catch (error) {
      this.#log.warn({ err: error }, "NATS status stream ended with an error");
    }
  }

  #emit(event: BusStatusEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.#log.error({ err: error }, `bus status listener failed: ${errorMessage(error)}`);
      }
    }
  }

  #mapError(error: unknown, subject: string, timeoutMs: number, size = 0): Error {
    switch (natsCode(error)) {
      case ErrorCode.Timeout:
        return new BusTimeoutError(subject, timeoutMs, { cause: error });
      case ErrorCode.NoResponders:
        return new NoRespondersError(subject, { cause: error });
      case ErrorCode.ConnectionClosed:
        return new BusClosedError("the bus is closed", { cause: error });
      case ErrorCode.ConnectionDraining:
        return new BusClosedError("the bus is draining", { cause: error });
      case ErrorCode.MaxPayloadExceeded:
        return new PayloadTooLargeError(size, this.maxPayload, { cause: error });
      default:
        return new BusTransportError(`NATS: ${errorMessage(error)}`, { cause: error });
    }
  }
}
