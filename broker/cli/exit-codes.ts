/**
 * leasectl's exit codes: one per kind of outcome a script may want to branch on. gRPC status codes
 * map onto them in `exitCodeForStatus`; `leasectl help` and docs/api.md list them.
 */
import { status } from "@grpc/grpc-js";
import { EXIT_CONFIG } from "../../core/index.js";

export const EXIT = Object.freeze({
  /** Success. */
  ok: 0,
  /** Anything unexpected (INTERNAL, UNKNOWN, DATA_LOSS, a bug). */
  unexpected: 1,
  /** Usage: a bad flag, value, file or argument count. */
  usage: EXIT_CONFIG,
  /** NOT_FOUND. */
  notFound: 3,
  /** RESOURCE_EXHAUSTED: no host can take the lease (the explanation is printed). */
  noFit: 4,
  /** INVALID_ARGUMENT: the broker refused a field (the field and the rule are printed). */
  invalid: 5,
  /** FAILED_PRECONDITION, ABORTED, ALREADY_EXISTS, OUT_OF_RANGE: wrong state, lost race, reused id. */
  conflict: 6,
  /** UNAVAILABLE, DEADLINE_EXCEEDED: the broker cannot be reached (or did not answer in time). */
  unreachable: 7,
  /** UNIMPLEMENTED: the broker does not support this yet. */
  unsupported: 8,
  /** UNAUTHENTICATED, PERMISSION_DENIED. */
  denied: 9,
  /** Interrupted (Ctrl-C) during a one-shot command. */
  interrupted: 130,
});

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit code for a gRPC status code. */
export function exitCodeForStatus(code: status): ExitCode {
  switch (code) {
    case status.OK:
      return EXIT.ok;
    case status.NOT_FOUND:
      return EXIT.notFound;
    case status.RESOURCE_EXHAUSTED:
      return EXIT.noFit;
    case status.INVALID_ARGUMENT:
      return EXIT.invalid;
    case status.FAILED_PRECONDITION:
    case status.ABORTED:
    case status.ALREADY_EXISTS:
    case status.OUT_OF_RANGE:
      return EXIT.conflict;
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return EXIT.unreachable;
    case status.UNIMPLEMENTED:
      return EXIT.unsupported;
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return EXIT.denied;
    case status.CANCELLED:
      return EXIT.interrupted;
    default:
      return EXIT.unexpected;
  }
}

/** The table printed by `leasectl help` and copied into docs/api.md. */
export const EXIT_CODES_HELP = `Exit codes:
    0  ok
    1  unexpected error (INTERNAL, UNKNOWN, a bug)
    2  usage: a bad flag, value, file or argument
    3  not found (NOT_FOUND)
    4  no host can take the lease (RESOURCE_EXHAUSTED; the explanation is printed)
    5  the broker refused a field (INVALID_ARGUMENT; the field and the rule are printed)
    6  wrong state, changed concurrently or already exists
       (FAILED_PRECONDITION, ABORTED, ALREADY_EXISTS, OUT_OF_RANGE)
    7  cannot reach the broker, or no answer in time (UNAVAILABLE, DEADLINE_EXCEEDED)
    8  the broker does not support this yet (UNIMPLEMENTED)
    9  not allowed (UNAUTHENTICATED, PERMISSION_DENIED)
  130  interrupted (Ctrl-C) before the broker answered`;
