/**
 * Resource vectors: cpu (millicores), memory (MiB), disk (GiB), gpus, and named extended resources
 * (`example.com/fpga`). Plain immutable data; every helper returns a new vector.
 */

import { InvalidPlacementArgumentError } from "./errors.js";

export interface Resources {
  readonly cpuMillis: number;
  readonly memoryMib: number;
  readonly diskGib: number;
  readonly gpus: number;
  readonly extended?: Readonly<Record<string, number>>;
}

/** The four core dimensions, in the order every internal vector uses. */
export const CORE_RESOURCES = ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const;
export type CoreResourceName = (typeof CORE_RESOURCES)[number];
/** A core name or an extended resource name. */
export type ResourceName = CoreResourceName | (string & {});

export const CORE_DIMS = 4;

/** Per-resource allocation (overcommit) ratios of a host. */
export interface AllocationRatios {
  readonly cpuMillis: number;
  readonly memoryMib: number;
  readonly diskGib: number;
  readonly gpus: number;
  /** Missing extended names default to 1. */
  readonly extended?: Readonly<Record<string, number>>;
}

export const DEFAULT_ALLOCATION_RATIOS: AllocationRatios = Object.freeze({
  cpuMillis: 4.0,
  memoryMib: 1.0,
  diskGib: 1.0,
  gpus: 1.0,
});

export const ZERO_RESOURCES: Resources = Object.freeze({
  cpuMillis: 0,
  memoryMib: 0,
  diskGib: 0,
  gpus: 0,
});

export function zero(): Resources {
  return ZERO_RESOURCES;
}

export function resources(
  cpuMillis: number,
  memoryMib: number,
  diskGib = 0,
  gpus = 0,
  extended?: Readonly<Record<string, number>>,
): Resources {
  return extended === undefined
    ? { cpuMillis, memoryMib, diskGib, gpus }
    : { cpuMillis, memoryMib, diskGib, gpus, extended };
}

/** The value of one resource (extended names not present are 0). */
export function get(r: Resources, name: ResourceName): number {
  switch (name) {
    case "cpuMillis":
      return r.cpuMillis;
    case "memoryMib":
      return r.memoryMib;
    case "diskGib":
      return r.diskGib;
    case "gpus":
      return r.gpus;
    default: {
      const ext = r.extended;
      if (ext === undefined || !Object.hasOwn(ext, name)) return 0;
      return ext[name] ?? 0;
    }
  }
}

/** Extended resource names with a non-zero value, sorted. */
export function extendedNames(r: Resources): string[] {
  const ext = r.extended;
  if (ext === undefined) return [];
  return Object.keys(ext)
    .filter((k) => (ext[k] ?? 0) !== 0)
    .sort();
}

/** All resource names present in any of the vectors (core first, then extended, sorted). */
export function resourceNames(...rs: readonly Resources[]): ResourceName[] {
  const ext = new Set<string>();
  for (const r of rs) for (const n of extendedNames(r)) ext.add(n);
  return [...CORE_RESOURCES, ...[...ext].sort()];
}

function combine(a: Resources, b: Resources, f: (x: number, y: number) => number): Resources {
  const out = {
    cpuMillis: f(a.cpuMillis, b.cpuMillis),
    memoryMib: f(a.memoryMib, b.memoryMib),
    diskGib: f(a.diskGib, b.diskGib),
    gpus: f(a.gpus, b.gpus),
  };
  if (a.extended === undefined && b.extended === undefined) return out;
  const extended: Record<string, number> = {};
  for (const name of new Set([...extendedNames(a), ...extendedNames(b)])) {
    const v = f(get(a, name), get(b, name));
    if (v !== 0) extended[name] = v;
  }
  return Object.keys(extended).length === 0 ? out : { ...out, extended };
}

export function add(a: Resources, b: Resources): Resources {
  return combine(a, b, (x, y) => x + y);
}

export function sub(a: Resources, b: Resources): Resources {
  return combine(a, b, (x, y) => x - y);
}

export function max(a: Resources, b: Resources): Resources {
  return combine(a, b, Math.max);
}

export function min(a: Resources, b: Resources): Resources {
  return combine(a, b, Math.min);
}

export function scale(a: Resources, factor: number): Resources {
  return combine(a, ZERO_RESOURCES, (x) => x * factor);
}

/** Clamp every component at 0 from below. */
export function clampNonNegative(a: Resources): Resources {
  return combine(a, ZERO_RESOURCES, (x) => Math.max(x, 0));
}

/** `demand` fits in `free` in every dimension (extended names missing from `free` are 0). */
export function fits(demand: Resources, free: Resources): boolean {
  if (demand.cpuMillis > free.cpuMillis) return false;
  if (demand.memoryMib > free.memoryMib) return false;
  if (demand.diskGib > free.diskGib) return false;
  if (demand.gpus > free.gpus) return false;
  for (const name of extendedNames(demand)) if (get(demand, name) > get(free, name)) return false;
  return true;
}

export function isZero(a: Resources): boolean {
  return (
    a.cpuMillis === 0 &&
    a.memoryMib === 0 &&
    a.diskGib === 0 &&
    a.gpus === 0 &&
    extendedNames(a).length === 0
  );
}

export function equals(a: Resources, b: Resources): boolean {
  for (const name of resourceNames(a, b)) if (get(a, name) !== get(b, name)) return false;
  return true;
}

/** Throws `InvalidPlacementArgumentError` unless every component is finite and ≥ 0. */
export function validateResources(r: Resources, field = "resources"): void {
  for (const name of resourceNames(r)) {
    const v = get(r, name);
    if (!Number.isFinite(v) || v < 0) {
      throw new InvalidPlacementArgumentError(
        `${field}.${name}`,
        `must be a finite number ≥ 0, got ${v}`,
      );
    }
  }
}

/**
 * A host's allocatable = capacity × allocation ratio − reserved, per resource, never below 0.
 * `ratios` may be partial: missing entries take the defaults (extended names default to 1).
 */
export function allocatable(
  capacity: Resources,
  ratios: Partial<AllocationRatios> = DEFAULT_ALLOCATION_RATIOS,
  reserved: Resources = ZERO_RESOURCES,
): Resources {
  const r = { ...DEFAULT_ALLOCATION_RATIOS, ...ratios };
  const one = (cap: number, ratio: number, res: number) => Math.max(0, cap * ratio - res);
  const out = {
    cpuMillis: one(capacity.cpuMillis, r.cpuMillis, reserved.cpuMillis),
    memoryMib: one(capacity.memoryMib, r.memoryMib, reserved.memoryMib),
    diskGib: one(capacity.diskGib, r.diskGib, reserved.diskGib),
    gpus: one(capacity.gpus, r.gpus, reserved.gpus),
  };
  const names = extendedNames(capacity);
  if (names.length === 0) return out;
  const extended: Record<string, number> = {};
  const ratioExt = r.extended ?? {};
  for (const name of names) {
    const ratio = Object.hasOwn(ratioExt, name) ? (ratioExt[name] ?? 1) : 1;
    const v = one(get(capacity, name), ratio, get(reserved, name));
    if (v > 0) extended[name] = v;
  }
  return Object.keys(extended).length === 0 ? out : { ...out, extended };
}

/** Short human form: `cpu 4000m, mem 8192Mi, disk 40Gi, gpu 0, example.com/fpga 1`. */
export function formatResources(r: Resources): string {
  const parts = [
    `cpu ${r.cpuMillis}m`,
    `mem ${r.memoryMib}Mi`,
    `disk ${r.diskGib}Gi`,
    `gpu ${r.gpus}`,
  ];
  for (const name of extendedNames(r)) parts.push(`${name} ${get(r, name)}`);
  return parts.join(", ");
}

/** Human unit for a resource amount, for explanations. */
export function formatAmount(name: ResourceName, v: number): string {
  const n = Number.isInteger(v) ? String(v) : v.toFixed(2);
  switch (name) {
    case "cpuMillis":
      return `${n}m cpu`;
    case "memoryMib":
      return `${n} MiB memory`;
    case "diskGib":
      return `${n} GiB disk`;
    case "gpus":
      return `${n} gpu`;
    default:
      return `${n} ${name}`;
  }
}
