/**
 * The one place where errors become gRPC statuses. Handlers throw typed errors (core/errors.ts);
 * `toServiceError` turns them into a status code, a message a user can act on, and trailing
 * metadata (as broker.proto specifies): `lb-field` (INVALID_ARGUMENT: the field path),
 * `lb-leader` (UNAVAILABLE from a follower: the leader's address) and
 * `lb-placement-explanation-bin` (RESOURCE_EXHAUSTED: the encoded PlacementExplanation).
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type ErrorKind, errorMessage, isLeaseBrokerError } from "../../core/index.js";
import type { PlacementExplanation } from "../../placement/index.js";
import { createCodec } from "../../proto/index.js";
import { explanationToProto } from "./convert.js";

export const FIELD_METADATA_KEY = "lb-field";
export const LEADER_METADATA_KEY = "lb-leader";
export const EXPLANATION_METADATA_KEY = "lb-placement-explanation-bin";
/** RESOURCE_EXHAUSTED by a tenant quota: the quota's name (`cpu`, `leases`, `max_duration`, …). */
export const QUOTA_METADATA_KEY = "lb-quota";

export const explanationCodec = createCodec("leasebroker.v1.PlacementExplanation");

export function isPlacementExplanation(value: unknown): value is PlacementExplanation {
  return (
    typeof value === "object" &&
    value !== null &&
    "summary" in value &&
    typeof value.summary === "string" &&
    "filters" in value &&
    Array.isArray(value.filters)
  );
}

const CODE_BY_KIND: Readonly<Record<ErrorKind, status>> = {
  "invalid-argument": status.INVALID_ARGUMENT,
  "not-found": status.NOT_FOUND,
  "already-exists": status.ALREADY_EXISTS,
  "failed-precondition": status.FAILED_PRECONDITION,
  "resource-exhausted": status.RESOURCE_EXHAUSTED,
  conflict: status.ABORTED,
  unavailable: status.UNAVAILABLE,
  "not-leader": status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  "permission-denied": status.PERMISSION_DENIED,
  "deadline-exceeded": status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
};

/**
 * Longest status message and field path sent. Messages may quote the request (an id, a field):
 * unbounded, a huge value would make trailers larger than clients accept (grpc-js then drops the
 * answer and the call hangs until its deadline).
 */
export const MAX_DETAILS = 1024;

function bounded(text: string): string {
  return text.length <= MAX_DETAILS
    ? text
    : `${text.slice(0, MAX_DETAILS)}… (${text.length} characters)`;
}

/**
 * A metadata value: printable ASCII only (gRPC refuses anything else, by throwing), so a field path
 * quoting a client's label key is escaped (`\u00e9`), and bounded.
 */
function metadataValue(text: string): string {
  return bounded(text).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}

export function statusOf(kind: ErrorKind): status {
  return CODE_BY_KIND[kind];
}

/** What a failure becomes: the status code and message, and what goes in trailing metadata. */
export interface StatusParts {
  readonly code: status;
  readonly details: string;
  readonly field?: string;
  readonly leader?: string;
  readonly quota?: string;
  readonly explanation?: PlacementExplanation;
}

export function statusParts(error: unknown): StatusParts {
  if (!isLeaseBrokerError(error)) {
    // A bug or an unexpected failure: say so without leaking internals.
    return { code: status.INTERNAL, details: bounded(`internal error: ${errorMessage(error)}`) };
  }
  const e: object = error;
  const exhausted = error.kind === "resource-exhausted";
  return {
    code: statusOf(error.kind),
    details: bounded(error.message),
    ...("field" in e && typeof e.field === "string" ? { field: e.field } : {}),
    ...("leaderAddress" in e && typeof e.leaderAddress === "string"
      ? { leader: e.leaderAddress }
      : {}),
    ...(exhausted && "quota" in e && typeof e.quota === "string" ? { quota: e.quota } : {}),
    ...(exhausted && "detail" in e && isPlacementExplanation(e.detail)
      ? { explanation: e.detail }
      : {}),
  };
}

export function toServiceError(
  error: unknown,
): Partial<ServiceError> & { code: status; details: string } {
  const parts = statusParts(error);
  const metadata = new Metadata();
  if (parts.field !== undefined) metadata.set(FIELD_METADATA_KEY, metadataValue(parts.field));
  if (parts.leader !== undefined) metadata.set(LEADER_METADATA_KEY, metadataValue(parts.leader));
  if (parts.quota !== undefined) metadata.set(QUOTA_METADATA_KEY, parts.quota);
  if (parts.explanation !== undefined) {
    metadata.set(
      EXPLANATION_METADATA_KEY,
      Buffer.from(explanationCodec.encode(explanationToProto(parts.explanation))),
    );
  }
  return { code: parts.code, details: parts.details, metadata };
}

/**
 * One refused item of SubmitLeases: the status SubmitLease would have failed with, its trailing
 * metadata as fields (UNAVAILABLE's leader is not per item: the whole call is refused then).
 */
export function toItemError(error: unknown) {
  const parts = statusParts(error);
  return {
    code: parts.code,
    message: parts.details,
    field: parts.field === undefined ? "" : bounded(parts.field),
    explanation: parts.explanation === undefined ? null : explanationToProto(parts.explanation),
    quota: parts.quota ?? "",
  };
}
