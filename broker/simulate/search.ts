/**
 * Hosts needed: the smallest cluster, scaled from the described one (`clusterHosts`), that admits
 * the whole trace — every request placed, none rejected or preempted. Found by search over the
 * total host count: from the described size, double until a size admits the trace, then bisect
 * between the largest size seen failing and the smallest seen admitting. Sizes that fail stop at
 * their first rejection, so they cost less than a full replay.
 *
 * Bisection assumes that more hosts never admit less. The clusters are nested (n + 1 hosts are n
 * hosts plus one), but online placement is greedy, so that is very likely rather than certain;
 * every size tried is in the report.
 */
import { allocatable, fits, matches, parseSelector } from "../../placement/index.js";
import type { LeaseTimings } from "../leases/lease-manager.js";
import {
  type ClusterDescription,
  clusterHosts,
  describedHostCount,
  shapeCounts,
  zoneLabel,
} from "./cluster.js";
import { type ReplayResult, replay, type SimPolicy } from "./replay.js";
import type { TraceEntry } from "./trace.js";

export interface SearchRun {
  readonly hosts: number;
  readonly admitted: boolean;
  /** The first request refused, rejected or preempted at this size. */
  readonly first_problem?: string;
}

export interface HostsNeeded {
  /** The smallest total admitting the trace, or null if none up to `max_hosts` does. */
  readonly hosts: number | null;
  readonly shapes: Readonly<Record<string, number>> | null;
  readonly max_hosts: number;
  readonly method: string;
  readonly runs: readonly SearchRun[];
  readonly note?: string;
}

export interface SearchOptions {
  readonly trace: readonly TraceEntry[];
  readonly cluster: ClusterDescription;
  readonly policy: SimPolicy;
  readonly seed: number;
  readonly timings?: Partial<LeaseTimings>;
  readonly maxHosts: number;
  /** The size to start from (the size simulated). Default: the described size. */
  readonly startHosts?: number;
  /** The outcome at a size a replay already tried (the size simulated). */
  readonly described?: {
    readonly hosts: number;
    readonly firstProblem: ReplayResult["firstProblem"] | undefined;
  };
  /** Called after each size is tried (progress). */
  readonly onRun?: (run: SearchRun) => void;
}

const METHOD =
  "total host count: double from the simulated size until the trace is admitted, then bisect; " +
  "shapes keep their proportions (Sainte-Laguë rounding, nested sizes)";

export async function searchHostsNeeded(options: SearchOptions): Promise<HostsNeeded> {
  const { trace, cluster, maxHosts } = options;
  const runs: SearchRun[] = [];
  const result = (hosts: number | null, note?: string): HostsNeeded => ({
    hosts,
    shapes:
      hosts === null
        ? null
        : Object.fromEntries(
            cluster.shapes.map((s, i) => [s.name, shapeCounts(cluster, hosts)[i] ?? 0]),
          ),
    max_hosts: maxHosts,
    method: METHOD,
    runs: [...runs].sort((a, b) => a.hosts - b.hosts),
    ...(note === undefined ? {} : { note }),
  });
  if (trace.length === 0) return result(0);
  const homeless = trace.find((e) => !fitsSomeShape(e, cluster));
  if (homeless !== undefined) {
    return result(
      null,
      `request ${homeless.id} (line ${homeless.line}) fits no host shape (resources or constraints): no cluster size admits the trace`,
    );
  }

  const tried = new Map<number, boolean>();
  /** Sizes whose first problem was a request the broker refuses as invalid (no size helps). */
  const invalidAt = new Map<number, string>();
  const admits = async (hosts: number): Promise<boolean> => {
    const known = tried.get(hosts);
    if (known !== undefined) return known;
    const problem =
      options.described !== undefined && options.described.hosts === hosts
        ? options.described.firstProblem
        : (
            await replay({
              trace,
              hosts: clusterHosts(cluster, hosts),
              policy: options.policy,
              seed: options.seed,
              ...(options.timings === undefined ? {} : { timings: options.timings }),
              stopAtFirstProblem: true,
            })
          ).firstProblem;
    if (problem?.reason === "invalid")
      invalidAt.set(hosts, `request ${problem.traceId} (line ${problem.line})`);
    const run: SearchRun =
      problem === undefined
        ? { hosts, admitted: true }
        : {
            hosts,
            admitted: false,
            first_problem: `${problem.traceId} (line ${problem.line}) ${problem.what}`,
          };
    runs.push(run);
    tried.set(hosts, run.admitted);
    options.onRun?.(run);
    return run.admitted;
  };

  let lo = 0; // the largest size known to fail (an empty cluster admits nothing)
  let hi = Math.min(Math.max(1, options.startHosts ?? describedHostCount(cluster)), maxHosts);
  while (!(await admits(hi))) {
    const invalid = invalidAt.get(hi);
    if (invalid !== undefined)
      return result(null, `${invalid}: the broker refuses it as invalid whatever the cluster`);
    lo = hi;
    if (hi >= maxHosts)
      return result(null, `not admitted even with ${maxHosts} hosts (raise --max-hosts)`);
    hi = Math.min(hi * 2, maxHosts);
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await admits(mid)) hi = mid;
    else lo = mid;
  }
  return result(hi);
}

/** Some shape (in some zone) has the room and the labels for `entry` on an empty host. */
function fitsSomeShape(entry: TraceEntry, cluster: ClusterDescription): boolean {
  const constraints = entry.constraints.map((c) => parseSelector(c));
  return cluster.shapes.some((shape) => {
    if (shape.count === 0 || !fits(entry.resources, allocatable(shape.capacity, shape.ratios)))
      return false;
    for (let z = 0; z < cluster.zones; z++) {
      const labels = {
        ...shape.labels,
        shape: shape.name,
        zone: zoneLabel(z),
      };
      if (matches(constraints, labels)) return true;
    }
    return false;
  });
}
