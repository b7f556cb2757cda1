/**
 * The seeded synthetic VM workload shared by the placement and packing benchmarks: a cluster of
 * three host shapes with zone/rack/gen labels, and a stream of leases (70% immediate, 20% reserved
 * within 7 days, 10% flexible) of 1–32 vCPU at 1–8 GiB per vCPU.
 */

import type {
  GroupSpec,
  HostSpec,
  PlacementRequest,
  Requirement,
  Resources,
  Rng,
  SlotRequest,
} from "../../placement/index.js";

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
const GIB = 1024;

export const HOST_SHAPES: readonly {
  readonly name: string;
  readonly share: number;
  readonly capacity: Resources;
}[] = [
  {
    name: "m48",
    share: 0.5,
    capacity: { cpuMillis: 48_000, memoryMib: 384 * GIB, diskGib: 4000, gpus: 0 },
  },
  {
    name: "m64",
    share: 0.45,
    capacity: { cpuMillis: 64_000, memoryMib: 512 * GIB, diskGib: 6000, gpus: 0 },
  },
  {
    name: "g48",
    share: 0.05,
    capacity: { cpuMillis: 48_000, memoryMib: 384 * GIB, diskGib: 4000, gpus: 8 },
  },
];

export function makeHosts(rng: Rng, count: number): HostSpec[] {
  const out: HostSpec[] = [];
  for (let i = 0; i < count; i++) {
    const r = rng.next();
    let acc = 0;
    let shape = HOST_SHAPES[0];
    for (const s of HOST_SHAPES) {
      acc += s.share;
      if (r < acc) {
        shape = s;
        break;
      }
    }
    const cap = (shape ?? HOST_SHAPES[0])?.capacity as Resources;
    out.push({
      id: `host-${String(i).padStart(5, "0")}`,
      capacity: cap,
      labels: {
        zone: `z${i % 3}`,
        rack: `r${String(Math.floor(i / 40)).padStart(3, "0")}`,
        gen: String(1 + (i % 4)),
        type: shape?.name ?? "m48",
      },
      state: "READY",
    });
  }
  return out;
}

export function vmSize(rng: Rng): Resources {
  const vcpu = rng.pick([1, 2, 4, 8, 16, 32]);
  const perCpu = rng.pick([1, 2, 4, 8]);
  return {
    cpuMillis: vcpu * 1000,
    memoryMib: vcpu * perCpu * GIB,
    diskGib: rng.pick([20, 40, 80, 160]),
    gpus: rng.next() < 0.03 ? rng.pick([1, 2, 4]) : 0,
  };
}

/** The flags that shape the placement workload, shared by bench:placement and bench:placement-ab. */
export const PLACEMENT_WORKLOAD_FLAGS = {
  seed: { kind: "number", default: 1, help: "workload seed" },
  hosts: { kind: "number", default: 10_000, help: "hosts in the cluster" },
  leases: { kind: "number", default: 100_000, help: "live leases in steady state" },
  "horizon-hours": {
    kind: "number",
    default: 384,
    help: "hourly buckets of the index's time ring",
  },
  "settle-hours": {
    kind: "number",
    default: 15,
    help: "simulated hours of arrivals placed after the warm-up and before the measured ones",
  },
} as const;

/**
 * How many arrivals `--settle-hours` is, at `dt` ms between arrivals. The warm-up places the
 * leases alive at T0 without the ones that ended before, so its packing has none of the holes
 * ended leases leave: decisions right after it are cheaper than in the steady state (immediate
 * ones took 45 µs in the first 5 simulated hours, 60–70 after 10, and stayed there for 100).
 */
export function settleArrivals(hours: number, dt: number): number {
  return Math.round((hours * HOUR) / dt);
}

/** Log-uniform duration between 1 hour and 7 days (mean ≈ 32.6 h). */
export function duration(rng: Rng): number {
  return Math.round(HOUR * Math.exp(rng.next() * Math.log(168)));
}

/** Mean time a lease holds capacity from submission (waiting reservations included). */
export const MEAN_TIME_IN_SYSTEM = (167 / Math.log(168)) * HOUR + 0.2 * 3.5 * DAY + 0.1 * 0.5 * DAY;

export type Arrival =
  | { readonly kind: "immediate" | "reserved"; readonly request: PlacementRequest }
  | { readonly kind: "flexible"; readonly request: SlotRequest };

export function arrival(rng: Rng, now: number, leaseId: string): Arrival {
  const r = rng.next();
  const resources = vmSize(rng);
  const d = duration(rng);
  const priority = rng.int(0, 9);
  const preemptible = rng.next() < 0.5;
  if (r < 0.7) {
    return {
      kind: "immediate",
      request: { leaseId, resources, window: { start: now, end: now + d }, priority, preemptible },
    };
  }
  if (r < 0.9) {
    const start = now + Math.round(rng.next() * 7 * DAY);
    return {
      kind: "reserved",
      request: { leaseId, resources, window: { start, end: start + d }, priority, preemptible },
    };
  }
  const earliest = now + Math.round(rng.next() * DAY);
  return {
    kind: "flexible",
    request: {
      leaseId,
      resources,
      earliest,
      latest: earliest + 2 * DAY,
      duration: d,
      priority,
      preemptible,
    },
  };
}

/** The kinds of group bench:placement-ab places (`--anti-affinity` and its soft variants). */
export const GROUP_KINDS = {
  "anti-affinity": { kind: "anti-affinity", hard: true },
  "soft-anti-affinity": { kind: "anti-affinity", hard: false },
  "soft-affinity": { kind: "affinity", hard: false },
} as const satisfies Record<string, Pick<GroupSpec, "kind" | "hard">>;

/**
 * A group of `size` immediate leases named `name` (members `name-0` …), each the shape of one
 * arrival at `now` (a flexible one from its earliest start), hard anti-affinity to hosts unless
 * `spec` says otherwise: the anti-affinity run of bench:placement and bench:placement-ab.
 */
export function antiAffinityGroup(
  rng: Rng,
  now: number,
  name: string,
  size = 10,
  spec: Pick<GroupSpec, "kind" | "hard"> = GROUP_KINDS["anti-affinity"],
): Arrival[] {
  const a = arrival(rng, now, name);
  const req =
    a.kind === "flexible"
      ? {
          ...a.request,
          window: { start: a.request.earliest, end: a.request.earliest + a.request.duration },
        }
      : a.request;
  const out: Arrival[] = [];
  for (let i = 0; i < size; i++) {
    const r: PlacementRequest = {
      leaseId: `${name}-${i}`,
      resources: req.resources,
      window: req.window,
      ...(req.priority === undefined ? {} : { priority: req.priority }),
      group: { name, kind: spec.kind, hard: spec.hard },
    };
    out.push({ kind: "immediate", request: r });
  }
  return out;
}

/**
 * Label selectors as a platform team writes them, one per lease, on the labels `makeHosts` gives:
 * a zone, all zones but one, newer generations, a rack range left out. GPU leases are not pinned
 * to the CPU-only shapes (they would never fit).
 */
const LABEL_CONSTRAINTS: readonly (readonly Requirement[])[] = [
  [{ key: "zone", op: "=", value: "z1" }],
  [{ key: "zone", op: "!=", value: "z0" }],
  [{ key: "gen", op: ">", value: 2 }],
  [{ key: "zone", op: "in", values: ["z0", "z2"] }],
  [{ key: "rack", op: "notin", values: ["r000", "r001", "r002"] }],
  [
    { key: "gen", op: ">", value: 1 },
    { key: "zone", op: "!=", value: "z2" },
  ],
];
const CPU_ONLY: readonly Requirement[] = [{ key: "type", op: "in", values: ["m48", "m64"] }];

/**
 * The arrivals (one lease, or a group's members) with one of LABEL_CONSTRAINTS drawn from `rng`
 * (a stream of its own, so the arrivals themselves are those of a run without constraints);
 * CPU-only leases sometimes also ask for the CPU-only shapes.
 */
export function withLabelConstraint(rng: Rng, batch: readonly Arrival[]): Arrival[] {
  let constraints = LABEL_CONSTRAINTS[rng.int(0, LABEL_CONSTRAINTS.length - 1)] as Requirement[];
  const cpuOnly = batch.every((a) => (a.request.resources.gpus ?? 0) === 0);
  if (rng.next() < 0.25 && cpuOnly) constraints = [...constraints, ...CPU_ONLY];
  return withRequestFields(batch, { constraints });
}

/**
 * Mixed into the workload seed for the stream `withLabelConstraint` draws from, in every bench
 * that uses it (so they draw the same selectors).
 */
export const LABEL_SEED_SALT = 0x1abe1;

/** The arrivals with the spread policy (least loaded host first) instead of the cluster's. */
export function withSpreadPolicy(batch: readonly Arrival[]): Arrival[] {
  return withRequestFields(batch, { policy: "spread" });
}

/** The arrivals with `fields` set on their requests. */
function withRequestFields(
  batch: readonly Arrival[],
  fields: Pick<PlacementRequest, "constraints" | "policy">,
): Arrival[] {
  // (per kind: the request types differ)
  return batch.map((a) =>
    a.kind === "flexible"
      ? { kind: a.kind, request: { ...a.request, ...fields } }
      : { kind: a.kind, request: { ...a.request, ...fields } },
  );
}

/**
 * The population a stationary arrival process has alive at `t0`: its arrivals over the 15 days
 * before `t0` (one every `dt`, ids from `nextId`) that still hold capacity at `t0`, in arrival
 * order.
 */
export function survivorsAt(
  rng: Rng,
  t0: number,
  dt: number,
  nextId: () => string,
): { readonly at: number; readonly a: Arrival }[] {
  const out: { at: number; a: Arrival }[] = [];
  for (let t = t0 - 15 * DAY; t < t0; t += dt) {
    const a = arrival(rng, t, nextId());
    const endAt =
      a.kind === "flexible" ? a.request.latest + a.request.duration : a.request.window.end;
    if (endAt > t0) out.push({ at: t, a });
  }
  return out;
}

/** A min-heap of (time, id): leases to release as the clock passes their end. */
export class EndQueue {
  private readonly times: number[] = [];
  private readonly ids: string[] = [];
  get size(): number {
    return this.times.length;
  }
  push(time: number, id: string): void {
    const t = this.times;
    const ids = this.ids;
    let i = t.length;
    t.push(time);
    ids.push(id);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((t[p] as number) <= time) break;
      t[i] = t[p] as number;
      ids[i] = ids[p] as string;
      i = p;
    }
    t[i] = time;
    ids[i] = id;
  }
  peekTime(): number {
    return this.times.length > 0 ? (this.times[0] as number) : Number.POSITIVE_INFINITY;
  }
  pop(): string | undefined {
    const t = this.times;
    const ids = this.ids;
    if (t.length === 0) return undefined;
    const top = ids[0];
    const lastT = t.pop() as number;
    const lastId = ids.pop() as string;
    if (t.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= t.length) break;
        const r = l + 1;
        const c = r < t.length && (t[r] as number) < (t[l] as number) ? r : l;
        if ((t[c] as number) >= lastT) break;
        t[i] = t[c] as number;
        ids[i] = ids[c] as string;
        i = c;
      }
      t[i] = lastT;
      ids[i] = lastId;
    }
    return top;
  }
}
