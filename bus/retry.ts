/**
 * Retries with exponential backoff and jitter, waiting through the Clock port (so a VirtualClock
 * drives it in tests) and drawing jitter from a seeded source (so a run is reproducible). Used for
 * the agent's hello and meant for the broker's command client: a command carries an idempotency key,
 * so sending it again after a timeout is safe.
 */
import { type Clock, type RandomSource, seededRandom, UnavailableError } from "../core/index.js";
import { BusTimeoutError, NoRespondersError } from "./errors.js";

export interface RetryOptions {
  /** Attempts in all (the first one included), >= 1; `Infinity` retries until aborted. */
  readonly attempts: number;
  /** Delay before the second attempt (before jitter). */
  readonly baseDelayMs: number;
  /** Cap of the delay. */
  readonly maxDelayMs: number;
  readonly clock: Clock;
  /** Jitter source; default `seededRandom(seed ?? 1)`. */
  readonly random?: RandomSource | undefined;
  readonly seed?: number | undefined;
  /** Whether an error is worth another attempt; default `isTransientBusError`. */
  readonly retryIf?: ((error: unknown) => boolean) | undefined;
  /** Called before each wait (for logs and metrics). */
  readonly onRetry?: ((info: RetryInfo) => void) | undefined;
  /** Stops retrying: a pending wait rejects with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
}

export interface RetryInfo {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly error: unknown;
  /** How long until the next attempt. */
  readonly delayMs: number;
}

/** Every attempt failed; `cause` is the last attempt's error. */
export class RetriesExhaustedError extends UnavailableError {
  constructor(
    readonly attempts: number,
    options: { cause: unknown },
  ) {
    super(`gave up after ${attempts} attempts`, options);
  }
}

/** Timeouts and missing responders: the peer may answer next time. */
export function isTransientBusError(error: unknown): boolean {
  return error instanceof BusTimeoutError || error instanceof NoRespondersError;
}

/**
 * The wait after failed attempt `attempt` (from 1): `base * 2^(attempt-1)` capped at `max`, then
 * "equal jitter" (half fixed, half random) so that many agents restarting together spread out
 * while each still backs off.
 */
export function backoffDelay(
  attempt: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: RandomSource,
): number {
  const exponential = baseDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 52);
  const capped = Math.min(maxDelayMs, exponential);
  return Math.round(capped / 2 + random() * (capped / 2));
}

function checkOptions(options: RetryOptions): void {
  if (!(options.attempts >= 1))
    throw new RangeError(`attempts must be >= 1, got ${options.attempts}`);
  if (!(options.baseDelayMs >= 0) || !(options.maxDelayMs >= options.baseDelayMs)) {
    throw new RangeError(
      `need 0 <= baseDelayMs <= maxDelayMs, got ${options.baseDelayMs} and ${options.maxDelayMs}`,
    );
  }
}

/**
 * Runs `fn` until it resolves, an error is not retryable (rethrown as is), the attempts run out
 * (RetriesExhaustedError with the last error as cause), or `signal` aborts (its reason).
 */
export function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  let first: Promise<T>;
  try {
    checkOptions(options);
    if (options.signal?.aborted) throw options.signal.reason;
    first = fn(1);
  } catch (error) {
    return Promise.reject(error);
  }
  // Most calls succeed at once (thousands of agent commands a second): the retry loop, an async
  // function with its own state, is entered only after a failure.
  return first.catch((error: unknown) => retryAfter(fn, options, error));
}

/** The attempts after the first, which failed with `firstError`. */
async function retryAfter<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
  firstError: unknown,
): Promise<T> {
  // Made at the first retry: most calls never need one.
  let random = options.random;
  const retryIf = options.retryIf ?? isTransientBusError;
  let error = firstError;
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (!retryIf(error)) throw error;
    if (attempt >= options.attempts) throw new RetriesExhaustedError(attempt, { cause: error });
    random ??= seededRandom(options.seed ?? 1);
    const delayMs = backoffDelay(attempt, options.baseDelayMs, options.maxDelayMs, random);
    options.onRetry?.({ attempt, error, delayMs });
    await options.clock.sleep(delayMs, options.signal);
    if (options.signal?.aborted) throw options.signal.reason;
    try {
      return await fn(attempt + 1);
    } catch (failed) {
      error = failed;
    }
  }
}
