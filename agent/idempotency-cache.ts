/**
 * Recent idempotency keys and their replies. The broker retries a command whose reply it did not
 * get, with the same key; the agent must answer with the first reply and not act twice, even when
 * the retry arrives while the first attempt is still running (the cache holds the promise).
 * Entries expire after a TTL on the Clock (the contract asks for at least 10 minutes) and the
 * oldest go first beyond a size bound, so a broker flooding keys cannot grow the agent's memory.
 */
import type { Clock } from "../core/index.js";

export interface IdempotencyCacheOptions {
  readonly clock: Clock;
  /** How long a key is remembered; default 10 minutes. */
  readonly ttlMs?: number | undefined;
  /** Most keys remembered; default 10,000. */
  readonly maxEntries?: number | undefined;
}

interface Entry<T> {
  readonly value: Promise<T>;
  readonly expiresAt: number;
}

export class IdempotencyCache<T> {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  // A Map iterates in insertion order: the first entry is the oldest.
  readonly #entries = new Map<string, Entry<T>>();

  constructor(options: IdempotencyCacheOptions) {
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? 10 * 60_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  get size(): number {
    this.#expire();
    return this.#entries.size;
  }

  /** The remembered result for `key`, if any. */
  get(key: string): Promise<T> | undefined {
    this.#expire();
    return this.#entries.get(key)?.value;
  }

  /** Remembers `value` for `key` (replacing an older entry). */
  set(key: string, value: Promise<T>): void {
    this.#expire();
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: this.#clock.now() + this.#ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  /** Forgets `key` (a transient failure must not be replayed to the retry that should fix it). */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  #expire(): void {
    const now = this.#clock.now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) break;
      this.#entries.delete(key);
    }
  }
}
