/**
 * Parsing of the values users type: CPU (`2`, `0.5`, `500m`), memory (`4Gi`, `512Mi`), disk
 * (`20`, `20Gi`, `1Ti`), counts, `key=value` pairs, durations (`90s`, `2h`, `1h30m`) and times
 * (RFC 3339 with a zone, `now`, `+30m`, `-1h`). Every failure is a `ConfigError` naming the flag
 * (or file field) and saying what was expected.
 */
import { ConfigError, parseDuration } from "../../core/index.js";

const DECIMAL = /^(\d+(?:\.\d+)?|\.\d+)$/;

function exactInteger(value: number): number | undefined {
  const rounded = Math.round(value);
  return Math.abs(value - rounded) < 1e-9 && Number.isSafeInteger(rounded) ? rounded : undefined;
}

/** CPU in millicores: `2` (cores), `0.5` (cores), `500m` (millicores). */
export function parseCpuMillis(text: string, what: string): number {
  const value = text.trim();
  const expected = `expected cores (2, 0.5) or millicores (500m); got ${JSON.stringify(text)}`;
  const milli = /^(\d+)m$/.exec(value);
  let millis: number | undefined;
  if (milli !== null) {
    millis = Number(milli[1]);
  } else if (DECIMAL.test(value)) {
    millis = exactInteger(Number(value) * 1000);
    if (millis === undefined) {
      throw new ConfigError(`${what}: at most 3 decimals of a core (1 millicore); got ${text}`);
    }
  } else {
    throw new ConfigError(`${what}: ${expected}`);
  }
  if (!Number.isSafeInteger(millis)) throw new ConfigError(`${what}: ${expected}`);
  return millis;
}

const MIB_PER: Readonly<Record<string, number>> = { mi: 1, gi: 1024, ti: 1024 * 1024 };

function binaryQuantity(
  text: string,
  what: string,
  unitName: string,
  unitsPerMib: number,
  defaultUnit: "mi" | "gi",
  example: string,
): number {
  const value = text.trim();
  const match = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:(Mi|Gi|Ti)(?:B)?)?$/i.exec(value);
  if (match === null) {
    const decimal = /^\d+(?:\.\d+)?\s*(k|M|G|T)B?$/i.test(value);
    throw new ConfigError(
      decimal
        ? `${what}: use binary units (Mi, Gi, Ti), e.g. ${example}; got ${JSON.stringify(text)}`
        : `${what}: expected a size like ${example}; got ${JSON.stringify(text)}`,
    );
  }
  const unit = (match[2] ?? defaultUnit).toLowerCase();
  const mib = Number(match[1]) * (MIB_PER[unit] ?? 1);
  const amount = exactInteger(mib / unitsPerMib);
  if (amount === undefined) {
    throw new ConfigError(`${what}: must be a whole number of ${unitName}; got ${text}`);
  }
  return amount;
}

/** Memory in MiB: `4Gi`, `512Mi`, `1.5Gi`, `1Ti`; a bare number is MiB. */
export function parseMemoryMib(text: string, what: string): number {
  return binaryQuantity(text, what, "MiB", 1, "mi", "4Gi or 512Mi");
}

/** Disk in GiB: `20`, `20Gi`, `1Ti`; a bare number is GiB. */
export function parseDiskGib(text: string, what: string): number {
  return binaryQuantity(text, what, "GiB", 1024, "gi", "20Gi or 1Ti");
}

/** A whole number >= 0 (GPUs, extended resources). */
export function parseCount(text: string, what: string): number {
  const value = text.trim();
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new ConfigError(`${what}: expected a whole number >= 0; got ${JSON.stringify(text)}`);
  }
  return Number(value);
}

/** `key=value` (the value may be empty and may contain `=`). */
export function parseKeyValue(text: string, what: string): [string, string] {
  const eq = text.indexOf("=");
  const key = eq === -1 ? "" : text.slice(0, eq).trim();
  if (eq === -1 || key === "") {
    throw new ConfigError(`${what}: expected key=value; got ${JSON.stringify(text)}`);
  }
  return [key, text.slice(eq + 1).trim()];
}

const DURATION_TERM = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/**
 * A duration with a unit: `300ms`, `90s`, `30m`, `2h`, `7d`, or compound `1h30m`. A bare number
 * is refused (seconds or milliseconds? the user should say).
 */
export function parseDurationText(text: string, what: string): number {
  const value = text.trim();
  const expected = `expected a duration like 90s, 30m, 2h or 1h30m; got ${JSON.stringify(text)}`;
  if (/^\d+(?:\.\d+)?$/.test(value)) {
    throw new ConfigError(`${what}: add a unit (ms, s, m, h, d); got ${JSON.stringify(text)}`);
  }
  if (value === "") throw new ConfigError(`${what}: ${expected}`);
  let total = 0;
  DURATION_TERM.lastIndex = 0;
  let end = 0;
  for (let m = DURATION_TERM.exec(value); m !== null; m = DURATION_TERM.exec(value)) {
    const ms = parseDuration(m[0]);
    if (ms === undefined) throw new ConfigError(`${what}: ${expected}`);
    total += ms;
    end = DURATION_TERM.lastIndex;
  }
  if (end !== value.length) throw new ConfigError(`${what}: ${expected}`);
  return total;
}

/** A positive duration (> 0). */
export function parsePositiveDuration(text: string, what: string): number {
  const ms = parseDurationText(text, what);
  if (ms <= 0) throw new ConfigError(`${what}: must be > 0; got ${text}`);
  return ms;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * A point in time, as epoch milliseconds: RFC 3339 with a zone (`2030-01-02T15:04:05Z`,
 * `2030-01-02T16:04:05+01:00`), `now`, or relative to now (`+30m`, `-1h`, `+1h30m`).
 */
export function parseTime(text: string, what: string, now: number): number {
  const value = text.trim();
  if (value === "now") return now;
  const relative = /^([+-])(.+)$/.exec(value);
  if (relative !== null) {
    const ms = parseDurationText(relative[2] ?? "", what);
    return relative[1] === "-" ? now - ms : now + ms;
  }
  const match = RFC3339.exec(value);
  const ms = match === null ? Number.NaN : Date.parse(value.replace(" ", "T"));
  if (match === null || !Number.isFinite(ms)) {
    throw new ConfigError(
      `${what}: expected an RFC 3339 time with a zone (2030-01-02T15:04:05Z or ` +
        `2030-01-02T16:04:05+01:00), "now", or a time relative to now (+30m); got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

/**
 * Splits `a=1, zone in (x,y), !gpu` at the commas that are not inside parentheses: one label
 * requirement per entry (the constraint grammar of LeaseSpec.constraints).
 */
export function splitRequirements(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth = Math.max(0, depth - 1);
    if (ch === "," && depth === 0) {
      out.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * An enum value by its short or full name, case-insensitive: `active`, `ACTIVE` or
 * `LEASE_STATE_ACTIVE` → `LEASE_STATE_ACTIVE`. UNSPECIFIED is refused.
 */
export function parseEnumName<T extends string>(
  text: string,
  what: string,
  values: readonly T[],
  prefix: string,
): T {
  const upper = text.trim().toUpperCase().replace(/-/g, "_");
  const full = upper.startsWith(prefix) ? upper : `${prefix}${upper}`;
  const found = values.find((v) => v === full && !v.endsWith("_UNSPECIFIED"));
  if (found === undefined) {
    const names = values
      .filter((v) => !v.endsWith("_UNSPECIFIED"))
      .map((v) => v.slice(prefix.length).toLowerCase());
    throw new ConfigError(
      `${what}: must be one of ${names.join(", ")}; got ${JSON.stringify(text)}`,
    );
  }
  return found;
}
