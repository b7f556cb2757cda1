/**
 * The simulated cluster: host shapes with counts, labels and allocation ratios, from a YAML or
 * JSON description (or the built-in standard mix). `clusterHosts(description, n)` scales it to n
 * hosts: shapes get hosts in proportion to their counts by the Sainte-Laguë divisor method, one
 * host at a time, so the cluster of n hosts is the cluster of n-1 plus one host (the hosts-needed
 * search compares nested clusters), and at the described total every shape has its own count.
 */
import { parse as parseYaml } from "yaml";
import { LeaseBrokerError } from "../../core/index.js";
import {
  type AllocationRatios,
  allocatable,
  labelKeyProblem,
  labelValueProblem,
  type Resources,
} from "../../placement/index.js";
import type { HostAnnouncement } from "../hosts/registry.js";

export class ClusterError extends LeaseBrokerError {
  readonly kind = "invalid-argument";
}

export interface HostShape {
  readonly name: string;
  readonly count: number;
  readonly capacity: Resources;
  readonly labels: Readonly<Record<string, string>>;
  readonly ratios: Partial<AllocationRatios>;
}

export interface ClusterDescription {
  readonly shapes: readonly HostShape[];
  /** Hosts of each shape are spread round-robin over this many zones (label `zone`). */
  readonly zones: number;
}

const GIB = 1024;

/** The standard mix (the placement benchmarks' shapes): 50% 48-core, 45% 64-core, 5% GPU hosts. */
export const STANDARD_CLUSTER: ClusterDescription = {
  zones: 3,
  shapes: [
    {
      name: "m48",
      count: 50,
      capacity: { cpuMillis: 48_000, memoryMib: 384 * GIB, diskGib: 4000, gpus: 0 },
      labels: {},
      ratios: {},
    },
    {
      name: "m64",
      count: 45,
      capacity: { cpuMillis: 64_000, memoryMib: 512 * GIB, diskGib: 6000, gpus: 0 },
      labels: {},
      ratios: {},
    },
    {
      name: "g48",
      count: 5,
      capacity: { cpuMillis: 48_000, memoryMib: 384 * GIB, diskGib: 4000, gpus: 8 },
      labels: { gpu: "true" },
      ratios: {},
    },
  ],
};

const NAME = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/;
const RATIO_KEYS: Readonly<Record<string, keyof Omit<AllocationRatios, "extended">>> = {
  cpu: "cpuMillis",
  memory: "memoryMib",
  disk: "diskGib",
  gpu: "gpus",
};

/** Parses a cluster description (YAML, of which JSON is a subset). */
export function parseCluster(text: string): ClusterDescription {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ClusterError(`cluster: not valid YAML or JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const fail = (where: string, rule: string): never => {
    throw new ClusterError(`cluster: ${where}: ${rule}`);
  };
  if (!isRecord(doc)) return fail("(top level)", "expected a mapping with `shapes`");
  for (const key of Object.keys(doc))
    if (!["shapes", "zones", "ratios"].includes(key))
      fail(key, "unknown key (keys: shapes, zones, ratios)");
  const zones = doc.zones === undefined ? 3 : doc.zones;
  if (typeof zones !== "number" || !Number.isInteger(zones) || zones < 1 || zones > 26)
    fail("zones", "must be a whole number from 1 to 26");
  const clusterRatios = ratiosOf("ratios", doc.ratios, fail);
  if (!Array.isArray(doc.shapes) || doc.shapes.length === 0)
    fail("shapes", "expected a non-empty list of host shapes");
  const names = new Set<string>();
  const shapes = (doc.shapes as unknown[]).map((raw, i): HostShape => {
    const at = `shapes[${i}]`;
    if (!isRecord(raw)) return fail(at, "expected a mapping");
    const allowed = ["name", "count", "cpu", "memory_gib", "disk_gib", "gpus", "labels", "ratios"];
    for (const key of Object.keys(raw))
      if (!allowed.includes(key)) fail(`${at}.${key}`, `unknown key (keys: ${allowed.join(", ")})`);
    const name = raw.name;
    if (typeof name !== "string" || !NAME.test(name))
      fail(`${at}.name`, "1-32 characters of [a-z0-9-], starting and ending alphanumeric");
    if (names.has(name as string)) fail(`${at}.name`, `${JSON.stringify(name)} is used twice`);
    names.add(name as string);
    const number = (key: string, min: number, fallback?: number, integer = true): number => {
      const v = raw[key] ?? fallback;
      if (
        typeof v !== "number" ||
        !Number.isFinite(v) ||
        v < min ||
        (integer && !Number.isInteger(v))
      )
        fail(`${at}.${key}`, `must be a ${integer ? "whole " : ""}number >= ${min}`);
      return v as number;
    };
    const labels: Record<string, string> = {};
    if (raw.labels !== undefined) {
      if (!isRecord(raw.labels)) fail(`${at}.labels`, "expected a mapping of strings");
      for (const [k, v] of Object.entries(raw.labels as Record<string, unknown>)) {
        const value = typeof v === "number" || typeof v === "boolean" ? String(v) : v;
        if (typeof value !== "string") return fail(`${at}.labels.${k}`, "expected a string");
        const problem = labelKeyProblem(k) ?? labelValueProblem(value);
        if (problem !== undefined) fail(`${at}.labels.${k}`, problem);
        if (k === "zone" || k === "shape")
          fail(`${at}.labels.${k}`, "is set by the simulator (zones, the shape's name)");
        labels[k] = value;
      }
    }
    return {
      name: name as string,
      count: number("count", 0),
      capacity: {
        cpuMillis: Math.round(number("cpu", 0.001, undefined, false) * 1000),
        memoryMib: Math.round(number("memory_gib", 0.001, undefined, false) * GIB),
        diskGib: number("disk_gib", 0, 1000),
        gpus: number("gpus", 0, 0),
      },
      labels,
      ratios: { ...clusterRatios, ...ratiosOf(`${at}.ratios`, raw.ratios, fail) },
    };
  });
  if (shapes.every((s) => s.count === 0)) fail("shapes", "at least one shape needs count > 0");
  return { shapes, zones: zones as number };
}

function ratiosOf(
  where: string,
  value: unknown,
  fail: (where: string, rule: string) => never,
): Partial<AllocationRatios> {
  if (value === undefined) return {};
  if (!isRecord(value)) return fail(where, "expected a mapping like {cpu: 4, memory: 1}");
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = RATIO_KEYS[k];
    if (key === undefined) fail(`${where}.${k}`, "unknown resource (cpu, memory, disk, gpu)");
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > 100)
      fail(`${where}.${k}`, "must be a number > 0 and <= 100");
    out[key as string] = v as number;
  }
  return out as Partial<AllocationRatios>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The `zone` label of the n-th zone (0-based): zone-a, zone-b, … */
export function zoneLabel(n: number): string {
  return `zone-${String.fromCharCode(97 + n)}`;
}

/** Hosts in the description as written. */
export function describedHostCount(cluster: ClusterDescription): number {
  return cluster.shapes.reduce((n, s) => n + s.count, 0);
}

/**
 * How many hosts of each shape a cluster of `total` hosts has: hosts are handed out one at a
 * time to the shape with the largest count / (2·given + 1) (Sainte-Laguë; ties to the shape
 * listed first). Nested in `total`, and exact at the described total.
 */
export function shapeCounts(cluster: ClusterDescription, total: number): number[] {
  const counts = cluster.shapes.map(() => 0);
  for (let h = 0; h < total; h++) {
    let best = -1;
    let bestQuotient = -1;
    cluster.shapes.forEach((s, i) => {
      const q = s.count / (2 * (counts[i] as number) + 1);
      if (q > bestQuotient) {
        bestQuotient = q;
        best = i;
      }
    });
    counts[best] = (counts[best] as number) + 1;
  }
  return counts;
}

/** The hosts of a cluster scaled to `total` hosts (the described cluster when `total` is its count). */
export function clusterHosts(cluster: ClusterDescription, total: number): HostAnnouncement[] {
  const counts = shapeCounts(cluster, total);
  const out: HostAnnouncement[] = [];
  cluster.shapes.forEach((shape, i) => {
    const n = counts[i] as number;
    for (let k = 0; k < n; k++) {
      out.push({
        id: `${shape.name}-${String(k + 1).padStart(4, "0")}`,
        capacity: shape.capacity,
        ratios: shape.ratios,
        labels: {
          ...shape.labels,
          shape: shape.name,
          zone: zoneLabel(k % cluster.zones),
        },
        driver: "sim",
        agentVersion: "simulator",
      });
    }
  });
  return out;
}

/** Total allocatable of a set of hosts, per core resource (the utilisation denominators). */
export function totalAllocatable(hosts: readonly HostAnnouncement[]): Resources {
  const out = { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };
  for (const h of hosts) {
    const a = allocatable(h.capacity, h.ratios);
    out.cpuMillis += a.cpuMillis;
    out.memoryMib += a.memoryMib;
    out.diskGib += a.diskGib;
    out.gpus += a.gpus;
  }
  return out;
}
