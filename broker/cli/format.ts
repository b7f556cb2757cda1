/**
 * Human formatting: aligned tables, units (cores, Mi/Gi/Ti as the flags take them), enum names
 * without their prefix, and times. Times: lists of leases and hosts show them relative to now
 * ("in 5m", "3m ago"); single objects, event streams and capacity buckets show local RFC 3339
 * (with the relative time beside it in single objects).
 */
import { formatDuration } from "../../core/index.js";
import {
  msFromDuration,
  msFromTimestamp,
  type Resources,
  type Timestamp,
} from "../../proto/index.js";

/** Aligned columns separated by two spaces; no trailing spaces. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** `key: value` lines with the values aligned. */
export function fields(entries: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(0, ...entries.map(([k]) => k.length + 1));
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`.trimEnd());
}

/** Millicores as cores: 2000 → "2", 500 → "0.5", 1250 → "1.25". */
export function cores(millis: number): string {
  return String(Math.round(millis) / 1000);
}

function binary(amount: number, units: readonly string[]): string {
  if (amount === 0) return "0";
  let value = amount;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1 && Number.isFinite(value)) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${text}${units[unit] ?? ""}`;
}

/** MiB as 512Mi, 4Gi, 1.5Gi, 2Ti (the units `--memory` takes). */
export function mebibytes(mib: number): string {
  return binary(mib, ["Mi", "Gi", "Ti", "Pi"]);
}

/** GiB as 20Gi, 1Ti. */
export function gibibytes(gib: number): string {
  return binary(gib, ["Gi", "Ti", "Pi"]);
}

/** Bytes as 12.5Gi etc. */
export function bytes(n: number): string {
  return binary(n, ["B", "Ki", "Mi", "Gi", "Ti", "Pi"]);
}

/**
 * "2 cores, 4Gi memory, 20Gi disk, 1 GPU, example.com/fpga=1": disk, GPUs and extended resources
 * only when not zero (CPU and memory too with `omitZero`, e.g. for a shortfall).
 */
export function resourcesText(r: Resources | null | undefined, omitZero = false): string {
  if (r === null || r === undefined) return "-";
  const parts: string[] = [];
  if (!omitZero || r.cpuMillis !== 0) {
    parts.push(`${cores(r.cpuMillis)} ${r.cpuMillis === 1000 ? "core" : "cores"}`);
  }
  if (!omitZero || r.memoryMib !== 0) parts.push(`${mebibytes(r.memoryMib)} memory`);
  if (r.diskGib !== 0) parts.push(`${gibibytes(r.diskGib)} disk`);
  if (r.gpus !== 0) parts.push(`${r.gpus} ${r.gpus === 1 ? "GPU" : "GPUs"}`);
  for (const [name, amount] of Object.entries(r.extended ?? {}).sort()) {
    if (amount !== 0) parts.push(`${name}=${amount}`);
  }
  return parts.length === 0 ? "nothing" : parts.join(", ");
}

/** `LEASE_STATE_ACTIVE` → `ACTIVE` (for any enum with the given prefix). */
export function shortEnum(value: string, prefix: string): string {
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}

/** Durations: 1h30m, 300ms, 2d. */
export function duration(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return ms < 0 ? `-${formatDuration(-ms)}` : formatDuration(ms);
}

export function durationOf(d: Parameters<typeof msFromDuration>[0] | null): string {
  return duration(msFromDuration(d));
}

function pad(n: number, width = 2): string {
  return String(Math.trunc(Math.abs(n))).padStart(width, "0");
}

/** Local RFC 3339 with the zone offset, to the second: 2030-01-02T15:04:05+01:00 (Z in UTC). */
export function localTime(ms: number | undefined): string {
  if (ms === undefined) return "-";
  const d = new Date(ms);
  const offset = -d.getTimezoneOffset();
  const zone =
    offset === 0
      ? "Z"
      : `${offset > 0 ? "+" : "-"}${pad(Math.abs(offset) / 60)}:${pad(Math.abs(offset) % 60)}`;
  return (
    `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`
  );
}

/** The two most significant units: 1d2h, 5m30s, 45s. */
function roughDuration(ms: number): string {
  const text = formatDuration(Math.round(ms / 1000) * 1000);
  const units = text.match(/\d+[a-z]+/g) ?? [text];
  return units.slice(0, 2).join("");
}

/** A score with at most 3 decimals: 87.5, 0.372. */
export function score(value: number): string {
  return String(Number(value.toFixed(3)));
}

/** "in 5m", "3m ago", "now" (within a second). */
export function relativeTime(ms: number | undefined, now: number): string {
  if (ms === undefined) return "-";
  const diff = ms - now;
  if (Math.abs(diff) < 1000) return "now";
  return diff > 0 ? `in ${roughDuration(diff)}` : `${roughDuration(-diff)} ago`;
}

/** Local time with the relative time beside it: "2030-01-02T15:04:05Z (in 5m)". */
export function timeWithRelative(ms: number | undefined, now: number): string {
  if (ms === undefined) return "-";
  return `${localTime(ms)} (${relativeTime(ms, now)})`;
}

export function tsMs(ts: Timestamp | null | undefined): number | undefined {
  return msFromTimestamp(ts);
}

/** `a=1,b=2` sorted by key, or "-". */
export function labelsText(labels: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0
    ? "-"
    : entries.map(([k, v]) => (v === "" ? k : `${k}=${v}`)).join(",");
}

/** A value or "-" for empty. */
export function orDash(value: string | undefined | null): string {
  return value === undefined || value === null || value === "" ? "-" : value;
}
