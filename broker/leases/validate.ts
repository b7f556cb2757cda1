/**
 * Admission checks for a lease spec: every field has bounds, and a failure names the field (as the
 * v1 contract spells it) and the rule. Validation reads nothing but its arguments.
 */
import { errorMessage, InvalidArgumentError } from "../../core/index.js";
import {
  labelKeyProblem,
  labelValueProblem,
  parseSelector,
  type Resources,
} from "../../placement/index.js";
import type { LeaseSpec } from "./model.js";

export interface AdmissionLimits {
  /** Longest lease. Default 90 days. */
  readonly maxDurationMs: number;
  /** How far ahead a reservation may start. Default 365 days. */
  readonly maxAdvanceMs: number;
  /** How far in the past a start may be (client clocks drift). Default 5 s. */
  readonly clockSkewMs: number;
}

export const DEFAULT_ADMISSION_LIMITS: AdmissionLimits = {
  maxDurationMs: 90 * 86_400_000,
  maxAdvanceMs: 365 * 86_400_000,
  clockSkewMs: 5_000,
};

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const TENANT = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_LABELS = 64;
const MAX_CONSTRAINTS = 32;
const MAX_DRIVER_PARAMS = 64;
const MAX_PRIORITY = 1000;
const MAX_DOWNTIME_MS = 60_000;

export function validateLabels(field: string, labels: Readonly<Record<string, string>>): void {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS)
    throw new InvalidArgumentError(field, `at most ${MAX_LABELS} labels`);
  for (const [key, value] of entries) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem !== undefined)
      throw new InvalidArgumentError(`${field}[${JSON.stringify(key)}]`, problem);
  }
}

function wholeNumber(field: string, value: number, min: number, max: number, unit: string): void {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidArgumentError(
      field,
      `must be a whole number >= ${min} (${unit}); got ${value}`,
    );
  }
  if (value > max)
    throw new InvalidArgumentError(field, `must be <= ${max} (${unit}); got ${value}`);
}

/**
 * `largest`: per resource, the most any single host could ever give (its allocatable). A lease
 * that asks for more can never be placed, so it is refused as invalid, not queued.
 */
export function validateResources(
  field: string,
  r: Resources,
  largest: Resources | undefined,
): void {
  const cap = (n: number | undefined): number => n ?? Number.MAX_SAFE_INTEGER;
  wholeNumber(`${field}.cpu_millis`, r.cpuMillis, 1, cap(largest?.cpuMillis), "millicores");
  wholeNumber(`${field}.memory_mib`, r.memoryMib, 1, cap(largest?.memoryMib), "MiB");
  wholeNumber(`${field}.disk_gib`, r.diskGib, 0, cap(largest?.diskGib), "GiB");
  wholeNumber(`${field}.gpus`, r.gpus, 0, cap(largest?.gpus), "GPUs");
  for (const [name, amount] of Object.entries<number>(r.extended ?? {})) {
    const problem = labelKeyProblem(name);
    if (problem !== undefined)
      throw new InvalidArgumentError(`${field}.extended[${JSON.stringify(name)}]`, problem);
    const most: number =
      largest === undefined ? Number.MAX_SAFE_INTEGER : (largest.extended?.[name] ?? 0);
    if (largest !== undefined && most === 0 && amount > 0) {
      throw new InvalidArgumentError(
        `${field}.extended[${JSON.stringify(name)}]`,
        "no host offers this resource",
      );
    }
    wholeNumber(`${field}.extended[${JSON.stringify(name)}]`, amount, 0, most, "units");
  }
}

function duration(field: string, ms: number, limits: AdmissionLimits): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(field, "must be > 0");
  if (ms > limits.maxDurationMs) {
    throw new InvalidArgumentError(
      field,
      `must be at most ${limits.maxDurationMs / 86_400_000} days`,
    );
  }
}

function startTime(field: string, at: number, now: number, limits: AdmissionLimits): void {
  if (!Number.isFinite(at)) throw new InvalidArgumentError(field, "must be a valid time");
  if (at < now - limits.clockSkewMs) {
    throw new InvalidArgumentError(
      field,
      `must not be in the past (now is ${new Date(now).toISOString()})`,
    );
  }
  if (at > now + limits.maxAdvanceMs) {
    throw new InvalidArgumentError(
      field,
      `must be within ${limits.maxAdvanceMs / 86_400_000} days from now`,
    );
  }
}

export interface ValidationContext {
  readonly now: number;
  readonly limits: AdmissionLimits;
  /** Per resource, the largest allocatable of any host; undefined when no host is known yet. */
  readonly largestHost: Resources | undefined;
}

/** Throws `InvalidArgumentError` for the first rule the spec breaks. Field paths start at `spec.`. */
export function validateLeaseSpec(spec: LeaseSpec, ctx: ValidationContext): void {
  if (spec.name !== "" && !NAME.test(spec.name)) {
    throw new InvalidArgumentError(
      "spec.name",
      "1-63 characters of [a-z0-9-], starting and ending alphanumeric",
    );
  }
  if (!TENANT.test(spec.tenant)) {
    throw new InvalidArgumentError(
      "spec.tenant",
      "1-63 characters of [a-z0-9-], starting and ending alphanumeric",
    );
  }
  validateLabels("spec.labels", spec.labels);
  validateResources("spec.resources", spec.resources, ctx.largestHost);

  const w = spec.window;
  switch (w.kind) {
    case "immediate":
      duration("spec.immediate.duration", w.durationMs, ctx.limits);
      break;
    case "reserved":
      startTime("spec.reserved.start", w.start, ctx.now, ctx.limits);
      duration("spec.reserved.duration", w.durationMs, ctx.limits);
      break;
    case "flexible":
      if (!Number.isFinite(w.earliestStart)) {
        throw new InvalidArgumentError("spec.flexible.earliest_start", "must be a valid time");
      }
      startTime("spec.flexible.latest_start", w.latestStart, ctx.now, ctx.limits);
      if (w.earliestStart > w.latestStart) {
        throw new InvalidArgumentError(
          "spec.flexible.earliest_start",
          "must not be after latest_start",
        );
      }
      duration("spec.flexible.duration", w.durationMs, ctx.limits);
      break;
  }

  wholeNumber("spec.priority", spec.priority, 0, MAX_PRIORITY, "priority");
  if (spec.constraints.length > MAX_CONSTRAINTS) {
    throw new InvalidArgumentError("spec.constraints", `at most ${MAX_CONSTRAINTS} constraints`);
  }
  spec.constraints.forEach((expression, i) => {
    try {
      parseSelector(expression);
    } catch (error) {
      throw new InvalidArgumentError(`spec.constraints[${i}]`, errorMessage(error), {
        cause: error,
      });
    }
  });

  const a = spec.affinity;
  if (a !== undefined) {
    const groupProblem = a.group === "" ? "must not be empty" : labelValueProblem(a.group);
    if (groupProblem !== undefined)
      throw new InvalidArgumentError("spec.affinity.group", groupProblem);
    if (a.topologyKey !== "") {
      const problem = labelKeyProblem(a.topologyKey);
      if (problem !== undefined)
        throw new InvalidArgumentError("spec.affinity.topology_key", problem);
    }
    wholeNumber("spec.affinity.max_skew", a.maxSkew, 0, 1000, "members");
  }

  wholeNumber(
    "spec.migration.max_downtime",
    spec.migration.maxDowntimeMs,
    0,
    MAX_DOWNTIME_MS,
    "ms",
  );
  if (spec.driver.image.length > 1024) {
    throw new InvalidArgumentError("spec.driver.image", "at most 1024 characters");
  }
  const params = Object.entries(spec.driver.params);
  if (params.length > MAX_DRIVER_PARAMS) {
    throw new InvalidArgumentError("spec.driver.params", `at most ${MAX_DRIVER_PARAMS} parameters`);
  }
  for (const [key, value] of params) {
    if (key.length === 0 || key.length > 128 || value.length > 4096) {
      throw new InvalidArgumentError(
        `spec.driver.params[${JSON.stringify(key)}]`,
        "keys 1-128 characters, values at most 4096",
      );
    }
  }
}
