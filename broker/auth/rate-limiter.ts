/**
 * Per-tenant write rates: one token bucket per tenant, refilled lazily from the Clock port (no
 * timers), so virtual-clock tests step through it exactly.
 */
import { type Clock, ResourceExhaustedError } from "../../core/index.js";
import type { RateLimit } from "./identity.js";

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Takes one write from `tenant`'s bucket, or throws RESOURCE_EXHAUSTED saying when to retry. */
  take(tenant: string, limit: RateLimit): void {
    const now = this.#clock.now();
    const bucket = this.#buckets.get(tenant) ?? { tokens: limit.burst, at: now };
    const refilled = Math.min(
      limit.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * limit.perSecond,
    );
    if (refilled < 1) {
      const waitMs = Math.ceil(((1 - refilled) / limit.perSecond) * 1000);
      this.#buckets.set(tenant, { tokens: refilled, at: now });
      throw new ResourceExhaustedError(
        `rate limit of tenant ${tenant} exceeded (${limit.perSecond} writes/s, bursts of ${limit.burst}): retry in ${waitMs} ms`,
      );
    }
    this.#buckets.set(tenant, { tokens: refilled - 1, at: now });
  }
}
