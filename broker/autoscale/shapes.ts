/**
 * Host shapes: what one new host would offer. Configured (`--autoscale-host-shapes`), or, when
 * none are, derived from the hosts that exist (one shape per distinct capacity).
 */
import { ConfigError } from "../../core/index.js";
import {
  type AllocationRatios,
  allocatable,
  DEFAULT_ALLOCATION_RATIOS,
  type Resources,
  ZERO_RESOURCES,
} from "../../placement/index.js";

export interface HostShape {
  /** Label-value grammar: what the autoscaler knows the shape by. */
  readonly name: string;
  /** What a host of this shape announces (its agent's capacity). */
  readonly capacity: Resources;
  readonly ratios: AllocationRatios;
  readonly reserved: Resources;
  /** Labels a host of this shape carries. */
  readonly labels: Readonly<Record<string, string>>;
}

/** What placement may use on one host of the shape. */
export function shapeAllocatable(shape: HostShape): Resources {
  return allocatable(shape.capacity, shape.ratios, shape.reserved);
}

const SHAPE_NAME = /^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$/;

/** `<cpus>c-<memory GiB>g`, e.g. `16c-64g`: the name of a derived shape, from its capacity. */
export function derivedShapeName(capacity: Resources): string {
  return `${round(capacity.cpuMillis / 1000)}c-${round(capacity.memoryMib / 1024)}g`;
}

const round = (n: number): string => String(Math.round(n * 100) / 100).replace(".", "_");

/**
 * Parses `name:cpus:memoryGiB[:diskGiB[:gpus]]` (e.g. `m-16x64:16:64:500`); capacities are
 * physical, with the cluster's default allocation ratios. Throws ConfigError naming the item.
 */
export function parseHostShape(text: string, flag = "--autoscale-host-shapes"): HostShape {
  const parts = text.split(":");
  const bad = (why: string): ConfigError =>
    new ConfigError(
      `${flag}: ${JSON.stringify(text)}: ${why} (expected name:cpus:memoryGiB[:diskGiB[:gpus]])`,
    );
  if (parts.length < 3 || parts.length > 5) throw bad("wrong number of fields");
  const [name = "", ...numbers] = parts;
  if (!SHAPE_NAME.test(name)) throw bad("the name must be 1-63 characters of [a-z0-9-_.]");
  const values = numbers.map((n) => Number(n));
  if (values.some((v) => !Number.isFinite(v) || v < 0) || numbers.some((n) => n.trim() === "")) {
    throw bad("capacities must be numbers ≥ 0");
  }
  const [cpus = 0, memoryGib = 0, diskGib = 100, gpus = 0] = values;
  if (cpus <= 0 || memoryGib <= 0) throw bad("cpus and memory must be > 0");
  if (!Number.isInteger(gpus)) throw bad("gpus must be an integer");
  return {
    name,
    capacity: {
      cpuMillis: Math.round(cpus * 1000),
      memoryMib: Math.round(memoryGib * 1024),
      diskGib,
      gpus,
    },
    ratios: DEFAULT_ALLOCATION_RATIOS,
    reserved: ZERO_RESOURCES,
    labels: {},
  };
}

/** A host as shapes are derived from it. */
export interface ShapeSource {
  readonly capacity: Resources;
  readonly ratios: AllocationRatios;
  readonly reserved: Resources;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * One shape per distinct (capacity, ratios, reserved) among `hosts`, most common first; its labels
 * are those every such host shares (per-host labels such as zone or rack drop out).
 */
export function deriveShapes(hosts: readonly ShapeSource[]): HostShape[] {
  const groups = new Map<string, { hosts: ShapeSource[]; first: number }>();
  hosts.forEach((h, i) => {
    const key = JSON.stringify([h.capacity, h.ratios, h.reserved]);
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { hosts: [h], first: i });
    else g.hosts.push(h);
  });
  const used = new Set<string>();
  return [...groups.values()]
    .sort((a, b) => b.hosts.length - a.hosts.length || a.first - b.first)
    .map(({ hosts: members }) => {
      const first = members[0] as ShapeSource;
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(first.labels)) {
        if (members.every((m) => m.labels[k] === v)) labels[k] = v;
      }
      let name = derivedShapeName(first.capacity);
      for (let n = 2; used.has(name); n++) name = `${derivedShapeName(first.capacity)}-${n}`;
      used.add(name);
      return {
        name,
        capacity: first.capacity,
        ratios: first.ratios,
        reserved: first.reserved,
        labels,
      };
    });
}
