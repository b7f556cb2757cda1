/**
 * Errors of the protobuf codec. Decoding untrusted bytes only ever throws ProtoDecodeError;
 * encoding an invalid object only ever throws ProtoEncodeError. Both keep the underlying error (if
 * any) as `cause`.
 */

export interface ProtoErrorOptions {
  cause?: unknown;
}

/** Bytes that are not a valid message of the expected type (truncated, garbage, too large). */
export class ProtoDecodeError extends Error {
  constructor(
    /** Full name of the message type, e.g. "leasebroker.v1.Heartbeat". */
    readonly typeName: string,
    message: string,
    options?: ProtoErrorOptions,
  ) {
    super(
      `cannot decode ${typeName}: ${message}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ProtoDecodeError";
  }
}

/** An object that is not a valid message of the type it is encoded as. */
export class ProtoEncodeError extends Error {
  constructor(
    /** Full name of the message type, e.g. "leasebroker.v1.Command". */
    readonly typeName: string,
    /** Path of the offending field in the object (lowerCamelCase, e.g. "start.resources.cpuMillis"); "" for the whole object. */
    readonly field: string,
    message: string,
    options?: ProtoErrorOptions,
  ) {
    super(
      `cannot encode ${typeName}${field === "" ? "" : `.${field}`}: ${message}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ProtoEncodeError";
  }
}
