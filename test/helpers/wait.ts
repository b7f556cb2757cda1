import { WaitTimeoutError } from "./errors.js";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `promise`, or a WaitTimeoutError after `timeoutMs`. The timer never keeps the process alive and
 * is cleared as soon as the promise settles.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new WaitTimeoutError(what, timeoutMs)), timeoutMs);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

export interface WaitForOptions {
  /** What is awaited, for the error message ("etcd /health"). */
  what: string;
  /** Default 10 s. */
  timeoutMs?: number;
  /** Default 50 ms. */
  intervalMs?: number;
  /** Called when the time is up; its text is appended to the error (e.g. a log tail). */
  detail?: () => string;
  /** An error for which this returns true ends the wait at once (rethrown as is). */
  isFatal?: (error: unknown) => boolean;
}

/**
 * Polls `condition` until it returns true (a thrown error counts as "not yet", unless `isFatal`
 * says otherwise), bounded by `timeoutMs`. On timeout the last error, if any, is the cause.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: WaitForOptions,
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
    } catch (error) {
      if (options.isFatal?.(error) === true) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = options.detail?.();
      const last = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new WaitTimeoutError(
        options.what,
        timeoutMs,
        `timed out after ${timeoutMs} ms waiting for ${options.what}${last}` +
          (detail ? `\n${detail}` : ""),
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await sleep(intervalMs);
  }
}
