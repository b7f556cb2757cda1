/**
 * The Bus port: subject-addressed messages between the broker and host agents. Two
 * implementations mean the same thing: `InProcessBus` (embedded mode and tests, deterministic) and
 * `NatsBus` (a real nats-server). Subjects follow NATS: dot-separated tokens; subscriptions may use
 * `*` (exactly one token) and `>` (one or more trailing tokens).
 *
 * Delivery is at most once and asynchronous (never inside `publish`); messages from one publisher
 * to one subscription arrive in publish order. A handler that throws or rejects is logged and
 * counted by the bus: it never breaks delivery to other handlers or crashes the process.
 */

/** The nats-server default max_payload (1 MiB), and the in-process bus's default limit. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** A received message. To answer a request, publish the answer to `reply`. */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Where the sender waits for an answer (a request), if anywhere. */
  readonly reply?: string | undefined;
}

/** Called for each message; a returned promise is not awaited (a rejection is logged). */
export type MessageHandler = (message: BusMessage) => void | Promise<void>;

export interface Subscription {
  /** The subject (pattern) subscribed to. */
  readonly subject: string;
  /** Stops delivery; calling it again is harmless. */
  unsubscribe(): void;
}

export interface PublishOptions {
  /** Reply subject for the receiver to answer on (see `createInbox`). */
  readonly reply?: string | undefined;
}

export interface SubscribeOptions {
  /**
   * Queue group: each message goes to one member of the group instead of to every subscriber
   * (for several broker replicas sharing a subject).
   */
  readonly queue?: string | undefined;
}

export interface RequestOptions {
  /** How long to wait for the first reply. */
  readonly timeoutMs: number;
}

/**
 * Connection status changes. `disconnected` and `reconnected` come in pairs around a lost
 * connection: after `reconnected` subscriptions are back, but the peer may have lost state (an
 * agent registers again). `closed` is final.
 */
export type BusStatus = "connected" | "disconnected" | "reconnected" | "closed";

export interface BusStatusEvent {
  readonly status: BusStatus;
  /** Transport detail (e.g. the server address); may be empty. */
  readonly detail: string;
}

export interface Bus {
  /** `connected` or `disconnected` while usable; `closed` once closed or drained. */
  readonly status: BusStatus;
  /** Largest payload, in bytes, that `publish` and `request` accept. */
  readonly maxPayload: number;
  /**
   * Sends `data` to every subscription matching `subject` (a concrete subject, no wildcards).
   * Throws InvalidSubjectError, PayloadTooLargeError, or BusClosedError once closed.
   */
  publish(subject: string, data: Uint8Array, options?: PublishOptions): void;
  /** Delivers messages on subjects matching `subject` (wildcards allowed) to `handler`. */
  subscribe(subject: string, handler: MessageHandler, options?: SubscribeOptions): Subscription;
  /**
   * Publishes `data` with a private reply subject and resolves with the first answer. Rejects with
   * BusTimeoutError after `timeoutMs`, NoRespondersError when nobody subscribes to `subject`, or
   * BusClosedError when the bus closes first.
   */
  request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Uint8Array>;
  /** A fresh subject to receive replies on (subscribe to it, publish with it as `reply`). */
  createInbox(): string;
  /** Listens to status changes; returns a function that stops listening. */
  onStatus(listener: (event: BusStatusEvent) => void): () => void;
  /** Resolves once what was published so far has left this process (NATS: a server round trip). */
  flush(): Promise<void>;
  /**
   * Graceful close: stops taking new messages, lets messages already received reach their
   * handlers, sends what was published, then closes.
   */
  drain(): Promise<void>;
  /** Closes at once: pending requests reject with BusClosedError. Idempotent. */
  close(): Promise<void>;
}
