/**
 * Typed errors of the integration-test harness. They name what to do about the failure (install a
 * package, read a log file) and keep the underlying error as `cause`.
 */

export interface HarnessErrorOptions {
  cause?: unknown;
}

export abstract class HarnessError extends Error {
  constructor(message: string, options?: HarnessErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** A binary the tests need is not there (and could not or may not be installed). */
export class MissingBinaryError extends HarnessError {
  constructor(
    readonly binaries: readonly string[],
    message: string,
    options?: HarnessErrorOptions,
  ) {
    super(message, options);
  }
}

/** `apt-get update` or `apt-get install` failed. */
export class BinaryInstallError extends HarnessError {
  constructor(
    readonly packages: readonly string[],
    message: string,
    options?: HarnessErrorOptions,
  ) {
    super(message, options);
  }
}

/** A managed process could not be spawned, or exited before it was ready. */
export class ProcessStartError extends HarnessError {
  constructor(
    readonly processName: string,
    message: string,
    options?: HarnessErrorOptions,
  ) {
    super(message, options);
  }
}

/** A bounded wait ran out (a process never became ready, a condition never held). */
export class WaitTimeoutError extends HarnessError {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    message?: string,
    options?: HarnessErrorOptions,
  ) {
    super(message ?? `timed out after ${timeoutMs} ms waiting for ${what}`, options);
  }
}

/** A handle was used after `stop()`. */
export class HandleStoppedError extends HarnessError {}
