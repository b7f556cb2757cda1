/**
 * A lease spec as gathered from a file and from flags before it is complete: every field
 * optional, times in epoch milliseconds. `mergeDrafts` lays flags over a file; `buildLeaseSpec`
 * checks what leasectl can check itself and produces the LeaseSpec request message.
 */
import { ConfigError } from "../../core/index.js";
import {
  type AffinityKind,
  durationFromMs,
  type LeaseSpecInput,
  type OnHostFailure,
  type PlacementPolicy,
  timestampFromMs,
} from "../../proto/index.js";

export type WindowKindName = "immediate" | "reserved" | "flexible";

export interface WindowDraft {
  readonly kind?: WindowKindName;
  readonly startMs?: number;
  readonly earliestMs?: number;
  readonly latestMs?: number;
  readonly durationMs?: number;
}

export interface ResourcesDraft {
  readonly cpuMillis?: number;
  readonly memoryMib?: number;
  readonly diskGib?: number;
  readonly gpus?: number;
  readonly extended?: Readonly<Record<string, number>>;
}

export interface AffinityDraft {
  readonly group?: string;
  readonly kind?: AffinityKind;
  readonly hard?: boolean;
  readonly topologyKey?: string;
  readonly maxSkew?: number;
}

export interface MigrationDraft {
  readonly liveMigratable?: boolean;
  readonly maxDowntimeMs?: number;
  readonly allowSuspend?: boolean;
  readonly allowAutoConverge?: boolean;
  readonly allowPostCopy?: boolean;
}

export interface DriverDraft {
  readonly image?: string;
  readonly params?: Readonly<Record<string, string>>;
}

export interface SpecDraft {
  readonly name?: string;
  readonly tenant?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly resources?: ResourcesDraft;
  readonly window?: WindowDraft;
  readonly priority?: number;
  readonly preemptible?: boolean;
  readonly constraints?: readonly string[];
  readonly affinity?: AffinityDraft;
  readonly migration?: MigrationDraft;
  readonly onHostFailure?: OnHostFailure;
  readonly allowQueue?: boolean;
  readonly policy?: PlacementPolicy;
  readonly driver?: DriverDraft;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** `{...a, ...b}` without the keys whose value in b is undefined. */
function overlay<T extends object>(base: T | undefined, top: T | undefined): T | undefined {
  if (base === undefined) return top;
  if (top === undefined) return base;
  const out: Record<string, unknown> = Object.fromEntries(Object.entries(base));
  for (const [key, value] of Object.entries(top)) if (value !== undefined) out[key] = value;
  return out as T;
}

function mergeMaps<V>(
  base: Readonly<Record<string, V>> | undefined,
  top: Readonly<Record<string, V>> | undefined,
): Readonly<Record<string, V>> | undefined {
  if (base === undefined) return top;
  if (top === undefined) return base;
  return { ...base, ...top };
}

function mergeWindow(
  file: WindowDraft | undefined,
  flags: WindowDraft | undefined,
): WindowDraft | undefined {
  if (flags?.kind === undefined) {
    // Flags give at most a new duration: the file's kind and times stay.
    return overlay(file, flags);
  }
  // Flags choose the kind: its times come from the flags, the duration from flags or the file.
  const durationMs = flags.durationMs ?? file?.durationMs;
  return { ...flags, ...(durationMs === undefined ? {} : { durationMs }) };
}

/**
 * Flags over a file: scalars and lists given as flags replace the file's, maps (labels, extended
 * resources, driver params) are merged key by key, and window flags that name a kind (`--start`,
 * `--earliest`/`--latest`) replace the file's window except its duration.
 */
export function mergeDrafts(file: SpecDraft, flags: SpecDraft): SpecDraft {
  const out: Mutable<SpecDraft> = { ...overlay(file, flags) };
  const labels = mergeMaps(file.labels, flags.labels);
  if (labels !== undefined) out.labels = labels;
  const resources = overlay(file.resources, flags.resources);
  const extended = mergeMaps(file.resources?.extended, flags.resources?.extended);
  if (resources !== undefined) {
    out.resources = extended === undefined ? resources : { ...resources, extended };
  }
  const window = mergeWindow(file.window, flags.window);
  if (window !== undefined) out.window = window;
  const affinity = overlay(file.affinity, flags.affinity);
  if (affinity !== undefined) out.affinity = affinity;
  const migration = overlay(file.migration, flags.migration);
  if (migration !== undefined) out.migration = migration;
  const driver = overlay(file.driver, flags.driver);
  const params = mergeMaps(file.driver?.params, flags.driver?.params);
  if (driver !== undefined) out.driver = params === undefined ? driver : { ...driver, params };
  return out;
}

function windowOf(window: WindowDraft | undefined): Partial<LeaseSpecInput> {
  const durationMs = window?.durationMs;
  if (durationMs === undefined) {
    throw new ConfigError(
      "a window is required: --duration alone (start now), with --start (reserved), or with " +
        "--earliest/--latest (flexible)",
    );
  }
  const duration = durationFromMs(durationMs);
  switch (window?.kind ?? "immediate") {
    case "immediate":
      return { immediate: { duration } };
    case "reserved":
      if (window?.startMs === undefined) {
        throw new ConfigError("a reserved window needs --start (RFC 3339 or +30m)");
      }
      return { reserved: { start: timestampFromMs(window.startMs), duration } };
    case "flexible":
      if (window?.latestMs === undefined) {
        throw new ConfigError("a flexible window needs --latest (the latest acceptable start)");
      }
      return {
        flexible: {
          ...(window.earliestMs === undefined
            ? {}
            : { earliestStart: timestampFromMs(window.earliestMs) }),
          latestStart: timestampFromMs(window.latestMs),
          duration,
        },
      };
  }
}

/**
 * The LeaseSpec request message. Checks what the user must give (tenant, CPU and memory > 0, a
 * window) so that those mistakes are usage errors; every other rule is the broker's.
 */
export function buildLeaseSpec(draft: SpecDraft): LeaseSpecInput {
  if (draft.tenant === undefined || draft.tenant === "") {
    throw new ConfigError("--tenant is required (or tenant in the -f file)");
  }
  const r = draft.resources;
  if (r?.cpuMillis === undefined || r.cpuMillis <= 0) {
    throw new ConfigError("--cpu is required and must be > 0 (e.g. --cpu 2 or --cpu 500m)");
  }
  if (r.memoryMib === undefined || r.memoryMib <= 0) {
    throw new ConfigError("--memory is required and must be > 0 (e.g. --memory 4Gi)");
  }
  const a = draft.affinity;
  if (a !== undefined && (a.group === undefined || a.group === "")) {
    throw new ConfigError(
      "--anti-affinity, --hard, --topology-key and --max-skew need --affinity-group",
    );
  }
  const spec: LeaseSpecInput = {
    tenant: draft.tenant,
    resources: {
      cpuMillis: r.cpuMillis,
      memoryMib: r.memoryMib,
      ...(r.diskGib === undefined ? {} : { diskGib: r.diskGib }),
      ...(r.gpus === undefined ? {} : { gpus: r.gpus }),
      ...(r.extended === undefined ? {} : { extended: { ...r.extended } }),
    },
    ...windowOf(draft.window),
  };
  if (draft.name !== undefined) spec.name = draft.name;
  if (draft.labels !== undefined) spec.labels = { ...draft.labels };
  if (draft.priority !== undefined) spec.priority = draft.priority;
  if (draft.preemptible !== undefined) spec.preemptible = draft.preemptible;
  if (draft.constraints !== undefined) spec.constraints = [...draft.constraints];
  if (a !== undefined) {
    spec.affinity = {
      group: a.group ?? "",
      kind: a.kind ?? "AFFINITY_KIND_AFFINITY",
      ...(a.hard === undefined ? {} : { hard: a.hard }),
      ...(a.topologyKey === undefined ? {} : { topologyKey: a.topologyKey }),
      ...(a.maxSkew === undefined ? {} : { maxSkew: a.maxSkew }),
    };
  }
  const m = draft.migration;
  if (m !== undefined) {
    spec.migration = {
      ...(m.liveMigratable === undefined ? {} : { liveMigratable: m.liveMigratable }),
      ...(m.maxDowntimeMs === undefined ? {} : { maxDowntime: durationFromMs(m.maxDowntimeMs) }),
      ...(m.allowSuspend === undefined ? {} : { allowSuspend: m.allowSuspend }),
      ...(m.allowAutoConverge === undefined ? {} : { allowAutoConverge: m.allowAutoConverge }),
      ...(m.allowPostCopy === undefined ? {} : { allowPostCopy: m.allowPostCopy }),
    };
  }
  if (draft.onHostFailure !== undefined) spec.onHostFailure = draft.onHostFailure;
  if (draft.allowQueue !== undefined) spec.allowQueue = draft.allowQueue;
  if (draft.policy !== undefined) spec.policy = draft.policy;
  if (draft.driver !== undefined) {
    spec.driver = {
      ...(draft.driver.image === undefined ? {} : { image: draft.driver.image }),
      ...(draft.driver.params === undefined ? {} : { params: { ...draft.driver.params } }),
    };
  }
  return spec;
}
