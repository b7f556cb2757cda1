import { describe, expect, it } from "vitest";
import { seededRandom, VirtualClock } from "../core/index.js";
import { BusTimeoutError, NoRespondersError } from "./errors.js";
import { backoffDelay, RetriesExhaustedError, type RetryInfo, withRetries } from "./retry.js";

const timeout = (): BusTimeoutError => new BusTimeoutError("s", 10);

describe("backoffDelay", () => {
  it("doubles from the base up to the cap, with half of it jittered", () => {
    const fixed = (): number => 0.5;
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 100, 1000, fixed))).toEqual([
      75, 150, 300, 600, 750, 750,
    ]);
    const random = seededRandom(42);
    for (let attempt = 1; attempt < 60; attempt++) {
      const capped = Math.min(1000, 100 * 2 ** (attempt - 1));
      const d = backoffDelay(attempt, 100, 1000, random);
      expect(d).toBeGreaterThanOrEqual(capped / 2);
      expect(d).toBeLessThanOrEqual(capped);
    }
  });

  it("is reproducible under a seed", () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const c = seededRandom(8);
    const seq = (r: () => number): number[] =>
      [1, 2, 3, 4].map((n) => backoffDelay(n, 100, 10_000, r));
    const first = seq(a);
    expect(seq(b)).toEqual(first);
    expect(seq(c)).not.toEqual(first);
  });
});

describe("withRetries", () => {
  it("retries transient bus errors with backoff on the Clock until success", async () => {
    const clock = new VirtualClock(0);
    const attempts: number[] = [];
    const waits: RetryInfo[] = [];
    const result = withRetries(
      async (attempt) => {
        attempts.push(clock.now());
        if (attempt < 3) throw attempt === 1 ? timeout() : new NoRespondersError("s");
        return "ok";
      },
      {
        attempts: 5,
        baseDelayMs: 100,
        maxDelayMs: 1000,
        clock,
        random: () => 1,
        onRetry: (i) => waits.push(i),
      },
    );
    await clock.advance(10_000);
    await expect(result).resolves.toBe("ok");
    expect(attempts).toEqual([0, 100, 300]);
    expect(waits.map((w) => w.delayMs)).toEqual([100, 200]);
  });

  it("gives up after the attempts with the last error as cause", async () => {
    const clock = new VirtualClock(0);
    let calls = 0;
    const result = withRetries(
      async () => {
        calls++;
        throw timeout();
      },
      { attempts: 3, baseDelayMs: 10, maxDelayMs: 10, clock, seed: 1 },
    ).catch((e: unknown) => e);
    await clock.advance(1000);
    const error = await result;
    expect(calls).toBe(3);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).cause).toBeInstanceOf(BusTimeoutError);
  });

  it("rethrows errors that are not retryable at once", async () => {
    const clock = new VirtualClock(0);
    let calls = 0;
    const boom = new Error("permanent");
    await expect(
      withRetries(
        async () => {
          calls++;
          throw boom;
        },
        { attempts: 5, baseDelayMs: 10, maxDelayMs: 10, clock },
      ),
    ).rejects.toBe(boom);
    expect(calls).toBe(1);
  });

  it("stops waiting when aborted", async () => {
    const clock = new VirtualClock(0);
    const controller = new AbortController();
    const result = withRetries(
      async () => {
        throw timeout();
      },
      {
        attempts: Number.POSITIVE_INFINITY,
        baseDelayMs: 1000,
        maxDelayMs: 1000,
        clock,
        signal: controller.signal,
      },
    ).catch((e: unknown) => e);
    await clock.advance(10);
    controller.abort(new Error("stopping"));
    expect(((await result) as Error).message).toBe("stopping");
    expect(clock.pendingTimers).toBe(0);
  });

  it("checks its options", async () => {
    const clock = new VirtualClock(0);
    const fn = async (): Promise<number> => 1;
    await expect(
      withRetries(fn, { attempts: 0, baseDelayMs: 1, maxDelayMs: 1, clock }),
    ).rejects.toThrow(RangeError);
    await expect(
      withRetries(fn, { attempts: 1, baseDelayMs: 10, maxDelayMs: 1, clock }),
    ).rejects.toThrow(RangeError);
  });
});
