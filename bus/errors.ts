/**
 * Typed errors of the Bus port. Both implementations (in-process and NATS) raise the same ones, so
 * callers (the agent's hello loop, the broker's command client) decide on the class alone: a
 * timeout or no responders is worth a retry, a closed bus is not. Each keeps the underlying error
 * (a NatsError, an abort reason) as `cause`.
 */
import {
  DeadlineExceededError,
  InvalidArgumentError,
  type LeaseBrokerErrorOptions,
  UnavailableError,
} from "../core/index.js";

/** A request got no reply within its timeout. Safe to retry when the payload is idempotent. */
export class BusTimeoutError extends DeadlineExceededError {
  constructor(
    readonly subject: string,
    readonly timeoutMs: number,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`no reply on ${subject} within ${timeoutMs} ms`, options);
  }
}

/**
 * A request found nobody subscribed to its subject (NATS answers this at once, instead of letting
 * the request time out): the peer is not there yet, or has gone.
 */
export class NoRespondersError extends UnavailableError {
  constructor(
    readonly subject: string,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`no responders on ${subject}`, options);
  }
}

/** The bus was closed (or is draining): nothing more can be sent on it. */
export class BusClosedError extends UnavailableError {
  constructor(message = "the bus is closed", options?: LeaseBrokerErrorOptions) {
    super(message, options);
  }
}

/** Any other failure of the transport (a refused connection, an authorization violation, ...). */
export class BusTransportError extends UnavailableError {}

/** A subject that is not valid where it is used (empty tokens, wildcards in a publish, ...). */
export class InvalidSubjectError extends InvalidArgumentError {
  constructor(
    readonly subject: string,
    rule: string,
    options?: LeaseBrokerErrorOptions,
  ) {
    super("subject", `${JSON.stringify(subject)}: ${rule}`, options);
  }
}

/** A payload larger than the bus carries (NATS: the server's max_payload, 1 MiB by default). */
export class PayloadTooLargeError extends InvalidArgumentError {
  constructor(
    readonly size: number,
    readonly maxPayload: number,
    options?: LeaseBrokerErrorOptions,
  ) {
    super("payload", `${size} bytes is more than the bus carries (${maxPayload})`, options);
  }
}
