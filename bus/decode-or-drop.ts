/**
 * Decoding of untrusted payloads: a message that does not decode is counted (per subject kind and
 * reason), logged and dropped, never thrown at the caller. Both the agent and the broker read
 * everything they receive through this, so a bad peer, a fuzzer or a version skew cannot crash
 * them.
 */
import type { Logger } from "../core/index.js";
import type { MessageCodec } from "../proto/index.js";
import { ProtoDecodeError } from "../proto/index.js";

/**
 * Why a message was dropped: `oversized` (above the codec's byte limit), `truncated` (the bytes end
 * inside a field), `malformed` (any other decoding failure), `invalid` (it decodes but breaks the
 * contract, e.g. a request without a reply subject; set by callers through `count`).
 */
export type DropReason = "malformed" | "truncated" | "oversized" | "invalid";

export const DROP_REASONS: readonly DropReason[] = [
  "malformed",
  "truncated",
  "oversized",
  "invalid",
];

export interface DropEvent {
  /** The subject kind (`cmd`, `hello`, `beat`, `event`, or a caller's own name). */
  readonly kind: string;
  readonly reason: DropReason;
  /** How many were dropped for this kind and reason so far, this one included. */
  readonly count: number;
}

/** Counters of dropped messages by (kind, reason); listeners feed metrics. */
export class DropCounters {
  readonly #counts = new Map<string, number>();
  readonly #listeners = new Set<(event: DropEvent) => void>();

  /** Counts one dropped message and returns the new count for (kind, reason). */
  count(kind: string, reason: DropReason): number {
    const key = `${kind}/${reason}`;
    const count = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, count);
    for (const listener of [...this.#listeners]) listener({ kind, reason, count });
    return count;
  }

  /** Dropped messages of `kind`, for one reason or all. */
  get(kind: string, reason?: DropReason): number {
    if (reason !== undefined) return this.#counts.get(`${kind}/${reason}`) ?? 0;
    let sum = 0;
    for (const r of DROP_REASONS) sum += this.#counts.get(`${kind}/${r}`) ?? 0;
    return sum;
  }

  /** All dropped messages. */
  get total(): number {
    let sum = 0;
    for (const count of this.#counts.values()) sum += count;
    return sum;
  }

  /** `{ "cmd/truncated": 3, ... }`, for logs and tests. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#counts].sort(([a], [b]) => a.localeCompare(b)));
  }

  onDrop(listener: (event: DropEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Where a payload came from, for counters and logs. */
export interface DropSource {
  /** Subject kind for the counters (`cmd`, `hello`, ...). */
  readonly kind: string;
  /** The subject, for the log line. */
  readonly subject?: string | undefined;
}

/**
 * Whether a drop of this count is logged: the first ten, then every thousandth. A flood of garbage
 * must not turn into a flood of log lines; the counters keep the full story.
 */
function shouldLog(count: number): boolean {
  return count <= 10 || count % 1000 === 0;
}

/** The reason a decode failure counts under. */
export function dropReasonOf(error: unknown, size: number, maxBytes: number): DropReason {
  if (size > maxBytes) return "oversized";
  // protobufjs' Reader raises "index out of range" when a field runs past the end of the bytes.
  const cause = error instanceof Error ? error.cause : undefined;
  const text = `${error instanceof Error ? error.message : String(error)} ${
    cause instanceof Error ? cause.message : ""
  }`;
  return /index out of range/.test(text) ? "truncated" : "malformed";
}

/** Counts and (rate-limited) logs one dropped message. */
export function recordDrop(
  counters: DropCounters,
  log: Logger,
  source: DropSource,
  reason: DropReason,
  detail: string,
  size: number,
): void {
  const count = counters.count(source.kind, reason);
  if (shouldLog(count)) {
    log.warn(
      { kind: source.kind, subject: source.subject, reason, bytes: size, dropped: count },
      `dropped a ${reason} ${source.kind} message: ${detail}`,
    );
  }
}

/**
 * `codec.decode(bytes)`, or undefined when the bytes are not a valid message: then the drop is
 * counted under (source.kind, reason) and logged. Never throws for bad bytes.
 */
export function decodeOrDrop<T>(
  codec: MessageCodec<unknown, T>,
  bytes: Uint8Array,
  counters: DropCounters,
  log: Logger,
  source: DropSource,
): T | undefined {
  const size = bytes instanceof Uint8Array ? bytes.length : 0;
  try {
    return codec.decode(bytes);
  } catch (error) {
    // The codec promises ProtoDecodeError only; anything else is counted the same way rather than
    // thrown, because the caller is a message handler that must survive any input.
    const reason = dropReasonOf(error, size, codec.maxBytes);
    const detail = error instanceof ProtoDecodeError ? error.message : String(error);
    recordDrop(counters, log, source, reason, detail, size);
    return undefined;
  }
}
