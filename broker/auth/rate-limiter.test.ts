import { describe, expect, it } from "vitest";
import { ResourceExhaustedError, VirtualClock } from "../../core/index.js";
import { RateLimiter } from "./rate-limiter.js";

describe("RateLimiter", () => {
  it("allows a burst, then one write per 1/rate seconds, per tenant, on the Clock", async () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new RateLimiter(clock);
    const limit = { perSecond: 2, burst: 3 };
    for (let i = 0; i < 3; i++) limiter.take("a", limit);
    expect(() => limiter.take("a", limit)).toThrow(ResourceExhaustedError);
    expect(() => limiter.take("a", limit)).toThrow(/rate limit of tenant a.*retry in 500 ms/);
    limiter.take("b", limit); // another tenant has its own bucket
    await clock.advance(499);
    expect(() => limiter.take("a", limit)).toThrow(ResourceExhaustedError);
    await clock.advance(1);
    limiter.take("a", limit);
    expect(() => limiter.take("a", limit)).toThrow(ResourceExhaustedError);
    await clock.advance(60_000); // refills up to the burst, not beyond
    for (let i = 0; i < 3; i++) limiter.take("a", limit);
    expect(() => limiter.take("a", limit)).toThrow(ResourceExhaustedError);
  });
});
