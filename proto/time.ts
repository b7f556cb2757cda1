/**
 * Conversions between epoch milliseconds (the unit of the Clock port) and
 * google.protobuf.Timestamp / google.protobuf.Duration.
 *
 * - From milliseconds: fractional milliseconds are kept to the nanosecond (rounded); a
 *   non-finite or out-of-range value throws RangeError; null/undefined give undefined ("absent";
 *   assignable to any optional message field).
 * - To milliseconds: nanos are rounded to the nearest millisecond (halves away from zero); null/
 *   undefined (an absent message field) give undefined; seconds may be a number, a decimal string
 *   or a Long (the permissive input shape).
 * - Timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. Duration range:
 *   +/-10,000 years; seconds and nanos carry the same sign.
 */
import type { Duration, DurationInput, Timestamp, TimestampInput } from "./gen/aliases.js";

const MS_PER_SECOND = 1000;
const NANOS_PER_MS = 1_000_000;
const NANOS_PER_SECOND = 1_000_000_000;
const TIMESTAMP_MIN_SECONDS = -62_135_596_800;
const TIMESTAMP_MAX_SECONDS = 253_402_300_799;
const DURATION_MAX_SECONDS = 315_576_000_000;

/** Round half away from zero, without producing -0. */
function roundHalfAway(value: number): number {
  const rounded = Math.sign(value) * Math.round(Math.abs(value));
  return rounded === 0 ? 0 : rounded;
}

function noNegativeZero(value: number): number {
  return value === 0 ? 0 : value;
}

function secondsOf(seconds: TimestampInput["seconds"], what: string): number {
  let n: number;
  if (seconds === undefined || seconds === null) n = 0;
  else if (typeof seconds === "number") n = seconds;
  else if (typeof seconds === "string")
    n = /^\s*[-+]?\d+\s*$/.test(seconds) ? Number(seconds) : Number.NaN;
  else n = seconds.toNumber();
  if (!Number.isSafeInteger(n))
    throw new RangeError(`${what}.seconds is not an integer: ${String(seconds)}`);
  return n;
}

function nanosOf(nanos: number | null | undefined, what: string): number {
  const n = nanos ?? 0;
  if (!Number.isInteger(n) || Math.abs(n) >= NANOS_PER_SECOND) {
    throw new RangeError(`${what}.nanos is not an integer in (-1e9, 1e9): ${n}`);
  }
  return n;
}

/** Epoch milliseconds -> Timestamp (nanos in [0, 1e9)). */
export function timestampFromMs(ms: number): Timestamp;
export function timestampFromMs(ms: number | null | undefined): Timestamp | undefined;
export function timestampFromMs(ms: number | null | undefined): Timestamp | undefined {
  if (ms === undefined || ms === null) return undefined;
  if (!Number.isFinite(ms)) throw new RangeError(`timestamp milliseconds must be finite: ${ms}`);
  let seconds = Math.floor(ms / MS_PER_SECOND);
  let nanos = Math.round((ms - seconds * MS_PER_SECOND) * NANOS_PER_MS);
  if (nanos >= NANOS_PER_SECOND) {
    seconds += 1;
    nanos -= NANOS_PER_SECOND;
  }
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) {
    throw new RangeError(`timestamp outside 0001-01-01..9999-12-31: ${ms} ms`);
  }
  return { seconds: noNegativeZero(seconds), nanos };
}

/** Timestamp -> epoch milliseconds (integer; nanos rounded). */
export function msFromTimestamp(ts: TimestampInput): number;
export function msFromTimestamp(ts: TimestampInput | null | undefined): number | undefined;
export function msFromTimestamp(ts: TimestampInput | null | undefined): number | undefined {
  if (ts === undefined || ts === null) return undefined;
  const seconds = secondsOf(ts.seconds, "timestamp");
  const nanos = nanosOf(ts.nanos, "timestamp");
  return noNegativeZero(seconds * MS_PER_SECOND + roundHalfAway(nanos / NANOS_PER_MS));
}

/** Milliseconds -> Duration (seconds and nanos with the sign of ms). */
export function durationFromMs(ms: number): Duration;
export function durationFromMs(ms: number | null | undefined): Duration | undefined;
export function durationFromMs(ms: number | null | undefined): Duration | undefined {
  if (ms === undefined || ms === null) return undefined;
  if (!Number.isFinite(ms)) throw new RangeError(`duration milliseconds must be finite: ${ms}`);
  let seconds = Math.trunc(ms / MS_PER_SECOND);
  let nanos = roundHalfAway((ms - seconds * MS_PER_SECOND) * NANOS_PER_MS);
  if (Math.abs(nanos) >= NANOS_PER_SECOND) {
    seconds += Math.sign(nanos);
    nanos -= Math.sign(nanos) * NANOS_PER_SECOND;
  }
  if (Math.abs(seconds) > DURATION_MAX_SECONDS) {
    throw new RangeError(`duration beyond 10000 years: ${ms} ms`);
  }
  return { seconds: noNegativeZero(seconds), nanos: noNegativeZero(nanos) };
}

/** Duration -> milliseconds (integer; nanos rounded). */
export function msFromDuration(d: DurationInput): number;
export function msFromDuration(d: DurationInput | null | undefined): number | undefined;
export function msFromDuration(d: DurationInput | null | undefined): number | undefined {
  if (d === undefined || d === null) return undefined;
  const seconds = secondsOf(d.seconds, "duration");
  const nanos = nanosOf(d.nanos, "duration");
  return noNegativeZero(seconds * MS_PER_SECOND + roundHalfAway(nanos / NANOS_PER_MS));
}
