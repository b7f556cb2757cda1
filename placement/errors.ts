/**
 * Typed errors of the placement engine. `placement/` imports nothing outside itself, so these do
 * not extend core's `LeaseBrokerError`; each carries a `kind` with the same vocabulary so the
 * broker can map them to status codes without inspecting messages.
 */

export type PlacementErrorKind =
  | "invalid-argument"
  | "not-found"
  | "already-exists"
  | "failed-precondition"
  | "resource-exhausted";

export interface PlacementErrorOptions {
  cause?: unknown;
}

export abstract class PlacementError extends Error {
  abstract readonly kind: PlacementErrorKind;

  constructor(message: string, options?: PlacementErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** A label selector did not parse. `position` is the 0-based offset of the offending character. */
export class InvalidSelectorError extends PlacementError {
  readonly kind = "invalid-argument";
  constructor(
    readonly expression: string,
    readonly position: number,
    readonly reason: string,
    options?: PlacementErrorOptions,
  ) {
    super(`invalid selector ${JSON.stringify(expression)} at ${position}: ${reason}`, options);
  }
}

/** A resource vector, window, host spec or request field is malformed (negative, NaN, end ≤ start…). */
export class InvalidPlacementArgumentError extends PlacementError {
  readonly kind = "invalid-argument";
  constructor(
    readonly field: string,
    readonly rule: string,
    options?: PlacementErrorOptions,
  ) {
    super(`${field}: ${rule}`, options);
  }
}

export class UnknownHostError extends PlacementError {
  readonly kind = "not-found";
  constructor(
    readonly hostId: string,
    options?: PlacementErrorOptions,
  ) {
    super(`host ${JSON.stringify(hostId)} not found`, options);
  }
}

export class DuplicateHostError extends PlacementError {
  readonly kind = "already-exists";
  constructor(
    readonly hostId: string,
    options?: PlacementErrorOptions,
  ) {
    super(`host ${JSON.stringify(hostId)} already exists`, options);
  }
}

export class UnknownHoldError extends PlacementError {
  readonly kind = "not-found";
  constructor(
    readonly holdId: string,
    options?: PlacementErrorOptions,
  ) {
    super(`hold ${JSON.stringify(holdId)} not found`, options);
  }
}

export class DuplicateHoldError extends PlacementError {
  readonly kind = "already-exists";
  constructor(
    readonly holdId: string,
    options?: PlacementErrorOptions,
  ) {
    super(`hold ${JSON.stringify(holdId)} already exists`, options);
  }
}

/**
 * A hold would oversubscribe a host: `resource` is short by `shortBy` somewhere in
 * `[start, end)` (the part of the requested window where it binds).
 */
export class CapacityExceededError extends PlacementError {
  readonly kind = "resource-exhausted";
  constructor(
    readonly hostId: string,
    readonly resource: string,
    readonly shortBy: number,
    readonly start: number,
    readonly end: number,
    options?: PlacementErrorOptions,
  ) {
    super(
      `host ${JSON.stringify(hostId)}: ${resource} short by ${shortBy} in [${start}, ${end})`,
      options,
    );
  }
}
