/**
 * `-f file.yaml|file.json`: a LeaseSpec in the proto JSON mapping (or a SubmitLeaseRequest with
 * `spec` and `requestId`). Keys in lowerCamelCase or snake_case; 64-bit integers as numbers or
 * strings; durations as "3600s" or "1h30m" (or {seconds, nanos}); timestamps in RFC 3339, "now" or
 * "+30m" (or {seconds, nanos}); enums by full or short name (`ON_HOST_FAILURE_RESTART`,
 * `restart`). Unknown fields are refused with their path.
 */
import fs from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../../core/index.js";
import {
  AffinityKind,
  msFromDuration,
  msFromTimestamp,
  OnHostFailure,
  PlacementPolicy,
} from "../../proto/index.js";
import { parseDurationText, parseEnumName, parseTime } from "./quantities.js";
import type {
  AffinityDraft,
  DriverDraft,
  MigrationDraft,
  ResourcesDraft,
  SpecDraft,
  WindowDraft,
} from "./spec-draft.js";

export interface SpecFile {
  readonly draft: SpecDraft;
  /** `requestId` of a SubmitLeaseRequest document. */
  readonly requestId?: string;
}

type Obj = Readonly<Record<string, unknown>>;

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return JSON.stringify(value);
}

/** Reads one message's fields: known names only (either spelling), each at most once. */
class Fields {
  readonly #values = new Map<string, [string, unknown]>();
  constructor(
    readonly where: (field: string) => string,
    value: unknown,
    self: string,
    known: readonly string[],
  ) {
    if (!isObject(value))
      throw new ConfigError(`${self}: expected an object; got ${describe(value)}`);
    for (const [key, v] of Object.entries(value)) {
      const name = camel(key);
      if (!known.includes(name)) {
        throw new ConfigError(`${this.where(key)}: unknown field (known: ${known.join(", ")})`);
      }
      if (this.#values.has(name)) {
        throw new ConfigError(`${this.where(key)}: given twice (camelCase and snake_case)`);
      }
      if (v !== null && v !== undefined) this.#values.set(name, [key, v]);
    }
  }
  /** [path as written, value] of a present field. */
  get(name: string): [string, unknown] | undefined {
    const entry = this.#values.get(name);
    return entry === undefined ? undefined : [this.where(entry[0]), entry[1]];
  }
  has(name: string): boolean {
    return this.#values.has(name);
  }
}

function child(parent: string, key: string): (field: string) => string {
  return (field) => (parent === "" ? `${key}.${field}` : `${parent}.${key}.${field}`);
}

function str(where: string, value: unknown): string {
  if (typeof value === "string") return value;
  throw new ConfigError(`${where}: expected a string; got ${describe(value)}`);
}

function bool(where: string, value: unknown): boolean {
  if (typeof value === "boolean") return value;
  throw new ConfigError(`${where}: expected true or false; got ${describe(value)}`);
}

function int(where: string, value: unknown): number {
  const n =
    typeof value === "number"
      ? value
      : typeof value === "string" && /^\s*-?\d+\s*$/.test(value)
        ? Number(value)
        : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ConfigError(`${where}: expected an integer; got ${describe(value)}`);
  }
  return n;
}

function scalarText(where: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw new ConfigError(`${where}: expected a string; got ${describe(value)}`);
}

function stringMap(where: string, value: unknown): Record<string, string> {
  if (!isObject(value)) throw new ConfigError(`${where}: expected a map; got ${describe(value)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scalarText(`${where}.${k}`, v);
  return out;
}

function intMap(where: string, value: unknown): Record<string, number> {
  if (!isObject(value)) throw new ConfigError(`${where}: expected a map; got ${describe(value)}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(value)) out[k] = int(`${where}.${k}`, v);
  return out;
}

function stringList(where: string, value: unknown): string[] {
  if (!Array.isArray(value))
    throw new ConfigError(`${where}: expected a list; got ${describe(value)}`);
  return value.map((v, i) => str(`${where}[${i}]`, v));
}

function durationMs(where: string, value: unknown): number {
  if (typeof value === "string") return parseDurationText(value, where);
  if (isObject(value)) {
    try {
      return msFromDuration({
        seconds: int(`${where}.seconds`, value.seconds ?? 0),
        nanos: int(`${where}.nanos`, value.nanos ?? 0),
      });
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`${where}: ${String(error)}`, { cause: error });
    }
  }
  throw new ConfigError(
    `${where}: expected a duration string like "3600s" or "1h30m"; got ${describe(value)}`,
  );
}

function timeMs(where: string, value: unknown, now: number): number {
  if (typeof value === "string") return parseTime(value, where, now);
  if (value instanceof Date) return value.getTime();
  if (isObject(value)) {
    return msFromTimestamp({
      seconds: int(`${where}.seconds`, value.seconds ?? 0),
      nanos: int(`${where}.nanos`, value.nanos ?? 0),
    });
  }
  throw new ConfigError(`${where}: expected an RFC 3339 time; got ${describe(value)}`);
}

function enumValue<T extends string>(
  where: string,
  value: unknown,
  values: Readonly<Record<string, T>>,
  prefix: string,
): T {
  const names = Object.values(values);
  if (typeof value === "number") {
    const found = names[value];
    if (found === undefined || !Number.isInteger(value)) {
      throw new ConfigError(`${where}: no such value: ${value}`);
    }
    return found;
  }
  return parseEnumName(str(where, value), where, names, prefix);
}

const SPEC_FIELDS = [
  "name",
  "tenant",
  "labels",
  "resources",
  "immediate",
  "reserved",
  "flexible",
  "priority",
  "preemptible",
  "constraints",
  "affinity",
  "migration",
  "onHostFailure",
  "allowQueue",
  "policy",
  "driver",
] as const;

function resources(where: string, value: unknown): ResourcesDraft {
  const f = new Fields(child("", where), value, where, [
    "cpuMillis",
    "memoryMib",
    "diskGib",
    "gpus",
    "extended",
  ]);
  const out: { -readonly [K in keyof ResourcesDraft]: ResourcesDraft[K] } = {};
  for (const name of ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const) {
    const field = f.get(name);
    if (field !== undefined) out[name] = int(...field);
  }
  const extended = f.get("extended");
  if (extended !== undefined) out.extended = intMap(...extended);
  return out;
}

function window(
  where: string,
  kind: "immediate" | "reserved" | "flexible",
  value: unknown,
  now: number,
): WindowDraft {
  const known =
    kind === "immediate"
      ? ["duration"]
      : kind === "reserved"
        ? ["start", "duration"]
        : ["earliestStart", "latestStart", "duration"];
  const f = new Fields(child("", where), value, where, known);
  const out: { -readonly [K in keyof WindowDraft]: WindowDraft[K] } = { kind };
  const duration = f.get("duration");
  if (duration !== undefined) out.durationMs = durationMs(...duration);
  const start = f.get("start");
  if (start !== undefined) out.startMs = timeMs(...start, now);
  const earliest = f.get("earliestStart");
  if (earliest !== undefined) out.earliestMs = timeMs(...earliest, now);
  const latest = f.get("latestStart");
  if (latest !== undefined) out.latestMs = timeMs(...latest, now);
  return out;
}

function affinity(where: string, value: unknown): AffinityDraft {
  const f = new Fields(child("", where), value, where, [
    "group",
    "kind",
    "hard",
    "topologyKey",
    "maxSkew",
  ]);
  const out: { -readonly [K in keyof AffinityDraft]: AffinityDraft[K] } = {};
  const group = f.get("group");
  if (group !== undefined) out.group = str(...group);
  const kind = f.get("kind");
  if (kind !== undefined) out.kind = enumValue(...kind, AffinityKind, "AFFINITY_KIND_");
  const hard = f.get("hard");
  if (hard !== undefined) out.hard = bool(...hard);
  const key = f.get("topologyKey");
  if (key !== undefined) out.topologyKey = str(...key);
  const skew = f.get("maxSkew");
  if (skew !== undefined) out.maxSkew = int(...skew);
  return out;
}

function migration(where: string, value: unknown): MigrationDraft {
  const f = new Fields(child("", where), value, where, [
    "liveMigratable",
    "maxDowntime",
    "allowSuspend",
    "allowAutoConverge",
    "allowPostCopy",
  ]);
  const out: { -readonly [K in keyof MigrationDraft]: MigrationDraft[K] } = {};
  for (const name of [
    "liveMigratable",
    "allowSuspend",
    "allowAutoConverge",
    "allowPostCopy",
  ] as const) {
    const field = f.get(name);
    if (field !== undefined) out[name] = bool(...field);
  }
  const downtime = f.get("maxDowntime");
  if (downtime !== undefined) out.maxDowntimeMs = durationMs(...downtime);
  return out;
}

function driver(where: string, value: unknown): DriverDraft {
  const f = new Fields(child("", where), value, where, ["image", "params"]);
  const out: { -readonly [K in keyof DriverDraft]: DriverDraft[K] } = {};
  const image = f.get("image");
  if (image !== undefined) out.image = str(...image);
  const params = f.get("params");
  if (params !== undefined) out.params = stringMap(...params);
  return out;
}

/**
 * A LeaseSpec document (already parsed from YAML or JSON) as a draft. Messages start with
 * `file: ` and `prefix` (`spec.` inside a SubmitLeaseRequest document).
 */
export function specDraftFromDocument(
  doc: unknown,
  file: string,
  now: number,
  prefix = "",
): SpecDraft {
  const where = prefix === "" ? file : `${file}: ${prefix.slice(0, -1)}`;
  const f = new Fields((field) => `${file}: ${prefix}${field}`, doc, where, SPEC_FIELDS);
  const out: { -readonly [K in keyof SpecDraft]: SpecDraft[K] } = {};
  const name = f.get("name");
  if (name !== undefined) out.name = str(...name);
  const tenant = f.get("tenant");
  if (tenant !== undefined) out.tenant = str(...tenant);
  const labels = f.get("labels");
  if (labels !== undefined) out.labels = stringMap(...labels);
  const res = f.get("resources");
  if (res !== undefined) out.resources = resources(...res);
  const kinds = (["immediate", "reserved", "flexible"] as const).filter((k) => f.has(k));
  if (kinds.length > 1) {
    throw new ConfigError(
      `${where}: give one window (immediate, reserved or flexible), not ${kinds.join(" and ")}`,
    );
  }
  const kind = kinds[0];
  const win = kind === undefined ? undefined : f.get(kind);
  if (kind !== undefined && win !== undefined) out.window = window(win[0], kind, win[1], now);
  const priority = f.get("priority");
  if (priority !== undefined) out.priority = int(...priority);
  const preemptible = f.get("preemptible");
  if (preemptible !== undefined) out.preemptible = bool(...preemptible);
  const constraints = f.get("constraints");
  if (constraints !== undefined) out.constraints = stringList(...constraints);
  const aff = f.get("affinity");
  if (aff !== undefined) out.affinity = affinity(...aff);
  const mig = f.get("migration");
  if (mig !== undefined) out.migration = migration(...mig);
  const failure = f.get("onHostFailure");
  if (failure !== undefined)
    out.onHostFailure = enumValue(...failure, OnHostFailure, "ON_HOST_FAILURE_");
  const queue = f.get("allowQueue");
  if (queue !== undefined) out.allowQueue = bool(...queue);
  const policy = f.get("policy");
  if (policy !== undefined) out.policy = enumValue(...policy, PlacementPolicy, "PLACEMENT_POLICY_");
  const drv = f.get("driver");
  if (drv !== undefined) out.driver = driver(...drv);
  return out;
}

/** Parses file text: JSON for `.json`, YAML (a superset of JSON) otherwise. */
export function parseDocument(text: string, file: string): unknown {
  try {
    return path.extname(file).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `${file}: not valid ${path.extname(file).toLowerCase() === ".json" ? "JSON" : "YAML"}: ${message}`,
      {
        cause: error,
      },
    );
  }
}

/** A document that is a LeaseSpec, or a SubmitLeaseRequest (`spec`, `requestId`). */
export function specFileFromDocument(doc: unknown, file: string, now: number): SpecFile {
  if (isObject(doc) && "spec" in doc && !("tenant" in doc)) {
    const f = new Fields((field) => `${file}: ${field}`, doc, file, ["spec", "requestId"]);
    const spec = f.get("spec");
    const requestId = f.get("requestId");
    return {
      draft: spec === undefined ? {} : specDraftFromDocument(spec[1], file, now, "spec."),
      ...(requestId === undefined ? {} : { requestId: str(...requestId) }),
    };
  }
  return { draft: specDraftFromDocument(doc, file, now) };
}

/** Reads and parses `-f file`. */
export function readSpecFile(file: string, now: number): SpecFile {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`-f ${file}: cannot read the file: ${reason}`, { cause: error });
  }
  return specFileFromDocument(parseDocument(text, file), file, now);
}
