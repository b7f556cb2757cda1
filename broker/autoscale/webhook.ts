/**
 * Webhook delivery of autoscale signals: POST JSON, signed (HMAC-SHA256 over `<timestamp>.<body>`
 * with a shared secret, so a captured request cannot be replayed with a new timestamp), a timeout,
 * retries with exponential backoff on the Clock, and a dead-letter log. Each URL has its own
 * bounded queue and one request in flight: a receiver that is down delays only its own queue,
 * never the evaluation that enqueues (enqueue returns at once).
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { appendFile } from "node:fs/promises";
import { type Clock, errorMessage, type Logger } from "../../core/index.js";
import { type AutoscaleSignalRecord, signalToJson } from "./signal.js";

export const SIGNATURE_HEADER = "x-leasebroker-signature";
export const TIMESTAMP_HEADER = "x-leasebroker-timestamp";
/** `<epoch>-<sequence>`: the same for every attempt of one signal (receivers deduplicate). */
export const DELIVERY_HEADER = "x-leasebroker-delivery";

/** `sha256=<hex>` of HMAC-SHA256(secret, `${timestampSeconds}.${body}`). */
export function signBody(secret: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex");
  return `sha256=${mac}`;
}

/**
 * Whether `signature` is `signBody(secret, timestamp, body)` and the timestamp is within
 * `toleranceMs` of `nowMs` (constant-time comparison).
 */
export function verifySignature(
  secret: string,
  timestampHeader: string | undefined,
  body: string,
  signature: string | undefined,
  nowMs: number,
  toleranceMs = 5 * 60_000,
): boolean {
  if (timestampHeader === undefined || signature === undefined) return false;
  if (!/^\d{1,15}$/.test(timestampHeader)) return false;
  const timestamp = Number(timestampHeader);
  if (Math.abs(nowMs - timestamp * 1000) > toleranceMs) return false;
  const expected = Buffer.from(signBody(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface WebhookOptions {
  readonly urls: readonly string[];
  /** Shared secret; without one, requests go unsigned. */
  readonly secret?: string;
  /** Per attempt. Default 5 s. */
  readonly timeoutMs?: number;
  /** Attempts per signal, the first included. Default 5. */
  readonly maxAttempts?: number;
  /** Wait before the first retry; doubles each time. Default 1 s. */
  readonly backoffMs?: number;
  /** Longest wait between attempts. Default 60 s. */
  readonly maxBackoffMs?: number;
  /** Signals waiting per URL; when full, the oldest goes to the dead letters. Default 100. */
  readonly queueSize?: number;
  /** JSON lines file the dead letters are appended to (they are always logged). */
  readonly deadLetterPath?: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface DeadLetter {
  readonly url: string;
  readonly epoch: number;
  readonly sequence: number;
  readonly attempts: number;
  readonly error: string;
  readonly body: string;
}

export interface WebhookStats {
  delivered: number;
  retries: number;
  deadLetters: number;
}

interface Queued {
  readonly signal: AutoscaleSignalRecord;
  readonly body: string;
}

export class WebhookDelivery {
  readonly stats: WebhookStats = { delivered: 0, retries: 0, deadLetters: 0 };
  readonly #o: Required<Omit<WebhookOptions, "secret" | "deadLetterPath">> &
    Pick<WebhookOptions, "secret" | "deadLetterPath">;
  readonly #queues = new Map<string, Queued[]>();
  readonly #busy = new Set<string>();
  readonly #deadLetterListeners = new Set<(letter: DeadLetter) => void>();
  #closed = false;
  #writes: Promise<unknown> = Promise.resolve();

  constructor(options: WebhookOptions) {
    this.#o = {
      timeoutMs: 5000,
      maxAttempts: 5,
      backoffMs: 1000,
      maxBackoffMs: 60_000,
      queueSize: 100,
      ...options,
    };
    for (const url of options.urls) this.#queues.set(url, []);
  }

  /** Called for each dead letter (tests, metrics). */
  onDeadLetter(listener: (letter: DeadLetter) => void): () => void {
    this.#deadLetterListeners.add(listener);
    return () => this.#deadLetterListeners.delete(listener);
  }

  /** Queues the signal for every URL; returns at once. */
  enqueue(signal: AutoscaleSignalRecord): void {
    if (this.#closed) return;
    const body = JSON.stringify(signalToJson(signal));
    for (const [url, queue] of this.#queues) {
      queue.push({ signal, body });
      if (queue.length > this.#o.queueSize) {
        const dropped = queue.shift() as Queued;
        this.#deadLetter(url, dropped, 0, "queue full");
      }
      if (!this.#busy.has(url)) void this.#drainQueue(url);
    }
  }

  /** Signals not yet delivered or dead-lettered, over every URL. */
  get backlog(): number {
    let n = this.#busy.size;
    for (const q of this.#queues.values()) n += q.length;
    return n;
  }

  /** Stops sending (queued signals are dropped); waits for dead-letter writes. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const q of this.#queues.values()) q.length = 0;
    await this.#writes;
  }

  async #drainQueue(url: string): Promise<void> {
    const queue = this.#queues.get(url) as Queued[];
    this.#busy.add(url);
    try {
      for (let item = queue.shift(); item !== undefined && !this.#closed; item = queue.shift()) {
        await this.#deliver(url, item);
      }
    } finally {
      this.#busy.delete(url);
    }
  }

  async #deliver(url: string, item: Queued): Promise<void> {
    let wait = this.#o.backoffMs;
    let lastError = "";
    for (let attempt = 1; attempt <= this.#o.maxAttempts; attempt++) {
      if (this.#closed) return;
      if (attempt > 1) {
        this.stats.retries++;
        await this.#sleep(wait);
        wait = Math.min(wait * 2, this.#o.maxBackoffMs);
      }
      try {
        await this.#post(url, item);
        this.stats.delivered++;
        return;
      } catch (error) {
        lastError = errorMessage(error);
        this.#o.logger.debug({ url, attempt, err: lastError }, "autoscale webhook attempt failed");
      }
    }
    this.#deadLetter(url, item, this.#o.maxAttempts, lastError);
  }

  async #post(url: string, item: Queued): Promise<void> {
    const timestamp = Math.floor(this.#o.clock.now() / 1000);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      [TIMESTAMP_HEADER]: String(timestamp),
      [DELIVERY_HEADER]: `${item.signal.epoch}-${item.signal.sequence}`,
    };
    if (this.#o.secret !== undefined) {
      headers[SIGNATURE_HEADER] = signBody(this.#o.secret, timestamp, item.body);
    }
    const controller = new AbortController();
    const timer = this.#o.clock.setTimer(this.#o.timeoutMs, () =>
      controller.abort(new Error(`no answer within ${this.#o.timeoutMs} ms`)),
    );
    try {
      const response = await fetch(url, {
        method: "POST",
        headers,
        body: item.body,
        signal: controller.signal,
      });
      // The body is not needed; reading it frees the connection.
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
    } finally {
      timer.cancel();
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#o.clock.setTimer(ms, resolve));
  }

  #deadLetter(url: string, item: Queued, attempts: number, error: string): void {
    this.stats.deadLetters++;
    const letter: DeadLetter = {
      url,
      epoch: item.signal.epoch,
      sequence: item.signal.sequence,
      attempts,
      error,
      body: item.body,
    };
    this.#o.logger.warn(
      { url, sequence: letter.sequence, attempts, err: error },
      "autoscale webhook dead letter",
    );
    const path = this.#o.deadLetterPath;
    if (path !== undefined) {
      const line = `${JSON.stringify({ time: new Date(this.#o.clock.now()).toISOString(), ...letter })}\n`;
      this.#writes = this.#writes
        .then(() => appendFile(path, line))
        .catch((e) => this.#o.logger.error({ err: e, path }, "cannot write a dead letter"));
    }
    for (const listener of [...this.#deadLetterListeners]) listener(letter);
  }
}
