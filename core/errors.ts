/**
 * The typed errors of leasebroker. Each says what went wrong in terms a user can act on and keeps
 * the underlying error as `cause`. The gRPC layer maps them to status codes in one place
 * (broker/api), by `kind`: the code never inspects messages.
 */

export type ErrorKind =
  | "invalid-argument"
  | "not-found"
  | "already-exists"
  | "failed-precondition"
  | "resource-exhausted"
  | "conflict"
  | "unavailable"
  | "not-leader"
  | "unauthenticated"
  | "permission-denied"
  | "deadline-exceeded"
  | "internal";

export interface LeaseBrokerErrorOptions {
  cause?: unknown;
}

export abstract class LeaseBrokerError extends Error {
  abstract readonly kind: ErrorKind;

  constructor(message: string, options?: LeaseBrokerErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** A request field broke a rule. `field` is the path as the user wrote it (`spec.resources.cpu_millis`). */
export class InvalidArgumentError extends LeaseBrokerError {
  readonly kind = "invalid-argument";
  constructor(
    readonly field: string,
    readonly rule: string,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`${field}: ${rule}`, options);
  }
}

export class NotFoundError extends LeaseBrokerError {
  readonly kind = "not-found";
  constructor(
    readonly resource: string,
    readonly id: string,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`${resource} ${JSON.stringify(id)} not found`, options);
  }
}

export class AlreadyExistsError extends LeaseBrokerError {
  readonly kind = "already-exists";
}

/** The request is valid but the system is not in a state that allows it (what blocks it is said). */
export class FailedPreconditionError extends LeaseBrokerError {
  readonly kind = "failed-precondition";
}

/**
 * Not enough of something: capacity (with the placement explanation as `detail`), a quota, a
 * rate limit.
 */
export class ResourceExhaustedError extends LeaseBrokerError {
  readonly kind = "resource-exhausted";
  constructor(
    message: string,
    readonly detail?: unknown,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(message, options);
  }
}

/** A versioned write lost a race (the object changed since it was read): retry from a fresh read. */
export class ConflictError extends LeaseBrokerError {
  readonly kind = "conflict";
}

export class UnavailableError extends LeaseBrokerError {
  readonly kind = "unavailable";
}

/** This broker is not the leader; `leaderAddress` is where the leader serves, when known. */
export class NotLeaderError extends LeaseBrokerError {
  readonly kind = "not-leader";
  constructor(
    readonly leaderAddress: string | undefined,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(
      leaderAddress === undefined
        ? "not the leader, and no leader is known"
        : `not the leader; the leader is at ${leaderAddress}`,
      options,
    );
  }
}

export class UnauthenticatedError extends LeaseBrokerError {
  readonly kind = "unauthenticated";
}

export class PermissionDeniedError extends LeaseBrokerError {
  readonly kind = "permission-denied";
}

export class DeadlineExceededError extends LeaseBrokerError {
  readonly kind = "deadline-exceeded";
}

export class InternalError extends LeaseBrokerError {
  readonly kind = "internal";
}

export function isLeaseBrokerError(error: unknown): error is LeaseBrokerError {
  return error instanceof LeaseBrokerError;
}

/** A short message for any thrown value, for logs. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
