/**
 * The flags of `submit` and `explain`: one per LeaseSpec field, or `-f file` with flags laid over
 * it. `leaseSpecFromFlags` turns a parsed command line into the LeaseSpec request message.
 */
import { randomBytes } from "node:crypto";
import { ConfigError, type ParsedOptions } from "../../core/index.js";
import type { LeaseSpecInput } from "../../proto/index.js";
import type { CliOptionSpecs } from "./args.js";
import {
  parseCount,
  parseCpuMillis,
  parseDiskGib,
  parseKeyValue,
  parseMemoryMib,
  parsePositiveDuration,
  parseTime,
} from "./quantities.js";
import {
  type AffinityDraft,
  buildLeaseSpec,
  type MigrationDraft,
  mergeDrafts,
  type ResourcesDraft,
  type SpecDraft,
  type WindowDraft,
} from "./spec-draft.js";
import { readSpecFile } from "./spec-file.js";

export const SPEC_OPTIONS = {
  file: {
    type: "string",
    short: "f",
    description: "a LeaseSpec in YAML or JSON (proto JSON mapping); flags override it (-f)",
  },
  name: { type: "string", description: "lease name: 1..63 of [a-z0-9-]" },
  tenant: { type: "string", description: "owning tenant (required)" },
  label: { type: "list", description: "lease label key=value (repeatable)" },
  cpu: { type: "string", description: "CPU: cores (2, 0.5) or millicores (500m) (required)" },
  memory: { type: "string", description: "memory: 4Gi, 512Mi; a bare number is MiB (required)" },
  disk: { type: "string", description: "disk: 20Gi, 1Ti; a bare number is GiB" },
  gpus: { type: "string", description: "whole GPUs" },
  extended: { type: "list", description: "extended resource name=count (repeatable)" },
  duration: { type: "string", description: "run time: 90m, 2h, 1h30m; alone = start now" },
  start: { type: "string", description: "reserved start: RFC 3339 or +30m (with --duration)" },
  earliest: { type: "string", description: "flexible window: earliest start (default now)" },
  latest: { type: "string", description: "flexible window: latest start, RFC 3339 or +2h" },
  priority: { type: "integer", description: "priority 0..1000; higher wins", min: 0, max: 1000 },
  preemptible: { type: "boolean", description: "a higher-priority lease may preempt this one" },
  constraint: {
    type: "list",
    repeat: "requirements",
    description: "host label requirement, e.g. 'zone in (a,b)', 'ssd', 'cpus>8' (repeatable)",
  },
  affinityGroup: { type: "string", description: "affinity group name (same tenant)" },
  antiAffinity: { type: "boolean", description: "the group repels (default: attracts)" },
  hard: { type: "boolean", description: "the affinity is a rule, not a preference" },
  topologyKey: { type: "string", description: "host label defining the domain (default: host)" },
  maxSkew: {
    type: "integer",
    description: "topology spread: max member difference",
    min: 0,
    max: 1000,
  },
  liveMigratable: { type: "boolean", description: "the workload may be live-migrated" },
  maxDowntime: { type: "string", description: "largest switchover downtime, e.g. 300ms" },
  allowSuspend: {
    type: "boolean",
    description: "may suspend to disk when migration won't converge",
  },
  allowAutoConverge: { type: "boolean", description: "may throttle the guest CPU to converge" },
  allowPostCopy: { type: "boolean", description: "may finish a migration with post-copy" },
  onHostFailure: {
    type: "string",
    description: "when the host fails",
    choices: ["restart", "fail"],
  },
  queue: { type: "boolean", description: "queue as PENDING instead of failing when nothing fits" },
  policy: {
    type: "string",
    description: "placement policy override",
    choices: ["binpack", "spread"],
  },
  image: { type: "string", description: "driver image (qemu: disk image or template)" },
  param: {
    type: "list",
    repeat: "verbatim",
    description: "driver parameter key=value (repeatable)",
  },
} as const satisfies CliOptionSpecs;

export const REQUEST_ID_OPTION = {
  requestId: {
    type: "string",
    description: "idempotency id, 1..64 of [A-Za-z0-9_-] (default: generated and printed)",
    check: (id: string) =>
      /^[A-Za-z0-9_-]{1,64}$/.test(id) ? undefined : "1..64 characters of [A-Za-z0-9_-]",
  },
} as const satisfies CliOptionSpecs;

type SpecOptions = ParsedOptions<typeof SPEC_OPTIONS>;

function pairs(values: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values) {
    const [key, v] = parseKeyValue(value, flag);
    out[key] = v;
  }
  return out;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The draft of what the flags say; `given` tells which booleans were given (and so override). */
export function draftFromFlags(o: SpecOptions, given: ReadonlySet<string>, now: number): SpecDraft {
  const draft: Mutable<SpecDraft> = {};
  if (o.name !== undefined) draft.name = o.name;
  if (o.tenant !== undefined) draft.tenant = o.tenant;
  if (o.label.length > 0) draft.labels = pairs(o.label, "--label");

  const resources: Mutable<ResourcesDraft> = {};
  if (o.cpu !== undefined) resources.cpuMillis = parseCpuMillis(o.cpu, "--cpu");
  if (o.memory !== undefined) resources.memoryMib = parseMemoryMib(o.memory, "--memory");
  if (o.disk !== undefined) resources.diskGib = parseDiskGib(o.disk, "--disk");
  if (o.gpus !== undefined) resources.gpus = parseCount(o.gpus, "--gpus");
  if (o.extended.length > 0) {
    const extended: Record<string, number> = {};
    for (const [key, value] of Object.entries(pairs(o.extended, "--extended"))) {
      extended[key] = parseCount(value, `--extended ${key}`);
    }
    resources.extended = extended;
  }
  if (Object.keys(resources).length > 0) draft.resources = resources;

  const window: Mutable<WindowDraft> = {};
  if (o.duration !== undefined) window.durationMs = parsePositiveDuration(o.duration, "--duration");
  if (o.start !== undefined) {
    if (o.earliest !== undefined || o.latest !== undefined) {
      throw new ConfigError(
        "--start (reserved window) and --earliest/--latest (flexible window) exclude each other",
      );
    }
    window.kind = "reserved";
    window.startMs = parseTime(o.start, "--start", now);
  } else if (o.earliest !== undefined || o.latest !== undefined) {
    window.kind = "flexible";
    if (o.earliest !== undefined) window.earliestMs = parseTime(o.earliest, "--earliest", now);
    if (o.latest !== undefined) window.latestMs = parseTime(o.latest, "--latest", now);
  }
  if (Object.keys(window).length > 0) draft.window = window;

  if (o.priority !== undefined) draft.priority = o.priority;
  if (given.has("preemptible")) draft.preemptible = o.preemptible;
  if (o.constraint.length > 0) draft.constraints = [...o.constraint];

  const affinity: Mutable<AffinityDraft> = {};
  if (o.affinityGroup !== undefined) affinity.group = o.affinityGroup;
  if (given.has("antiAffinity")) {
    affinity.kind = o.antiAffinity ? "AFFINITY_KIND_ANTI_AFFINITY" : "AFFINITY_KIND_AFFINITY";
  }
  if (given.has("hard")) affinity.hard = o.hard;
  if (o.topologyKey !== undefined) affinity.topologyKey = o.topologyKey;
  if (o.maxSkew !== undefined) affinity.maxSkew = o.maxSkew;
  if (Object.keys(affinity).length > 0) draft.affinity = affinity;

  const migration: Mutable<MigrationDraft> = {};
  for (const name of [
    "liveMigratable",
    "allowSuspend",
    "allowAutoConverge",
    "allowPostCopy",
  ] as const) {
    if (given.has(name)) migration[name] = o[name];
  }
  if (o.maxDowntime !== undefined) {
    migration.maxDowntimeMs = parsePositiveDuration(o.maxDowntime, "--max-downtime");
  }
  if (Object.keys(migration).length > 0) draft.migration = migration;

  if (o.onHostFailure !== undefined) {
    draft.onHostFailure =
      o.onHostFailure === "restart" ? "ON_HOST_FAILURE_RESTART" : "ON_HOST_FAILURE_FAIL";
  }
  if (given.has("queue")) draft.allowQueue = o.queue;
  if (o.policy !== undefined) {
    draft.policy = o.policy === "binpack" ? "PLACEMENT_POLICY_BINPACK" : "PLACEMENT_POLICY_SPREAD";
  }
  if (o.image !== undefined || o.param.length > 0) {
    draft.driver = {
      ...(o.image === undefined ? {} : { image: o.image }),
      ...(o.param.length === 0 ? {} : { params: pairs(o.param, "--param") }),
    };
  }
  return draft;
}

export interface SpecRequest {
  readonly spec: LeaseSpecInput;
  /** The file's requestId, when the file is a SubmitLeaseRequest. */
  readonly fileRequestId?: string;
}

/** `-f file` (if given) with the flags laid over it, checked and built. */
export function leaseSpecFromFlags(
  o: SpecOptions,
  given: ReadonlySet<string>,
  now: number,
): SpecRequest {
  const flags = draftFromFlags(o, given, now);
  if (o.file === undefined) return { spec: buildLeaseSpec(flags) };
  const file = readSpecFile(o.file, now);
  return {
    spec: buildLeaseSpec(mergeDrafts(file.draft, flags)),
    ...(file.requestId === undefined ? {} : { fileRequestId: file.requestId }),
  };
}

/**
 * The time flags given relative to now (`+30m`, `now`), as the absolute flags that reproduce this
 * run's spec (`--start 2030-01-02T03:30:00.000Z`): a retry under the same request id must send
 * the same spec, and a relative time resolves anew on every run.
 */
export function absoluteTimeFlags(o: SpecOptions, now: number): string[] {
  const out: string[] = [];
  for (const [name, value] of [
    ["start", o.start],
    ["earliest", o.earliest],
    ["latest", o.latest],
  ] as const) {
    if (value === undefined) continue;
    const text = value.trim();
    if (text === "now" || text.startsWith("+") || text.startsWith("-")) {
      out.push(`--${name} ${new Date(parseTime(text, `--${name}`, now)).toISOString()}`);
    }
  }
  return out;
}

/** A fresh idempotency id: `lc-` and 16 random URL-safe characters. */
export function newRequestId(): string {
  return `lc-${randomBytes(12).toString("base64url")}`;
}
