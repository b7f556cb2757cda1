/**
 * Workload traces: one lease request per line, as CSV (a header row names the columns) or JSON
 * lines (one object per line, the same names as keys). Times are seconds from the start of the
 * trace. A bad line is a `TraceError` naming the line and the field; nothing is simulated then.
 */
import { LeaseBrokerError } from "../../core/index.js";
import type { Resources } from "../../placement/index.js";
import { labelKeyProblem, labelValueProblem, parseSelector } from "../../placement/index.js";

export class TraceError extends LeaseBrokerError {
  readonly kind = "invalid-argument";
  constructor(
    readonly line: number,
    readonly field: string,
    readonly rule: string,
  ) {
    super(`trace line ${line}: ${field === "" ? "" : `${field}: `}${rule}`);
  }
}

export type TraceWindow =
  | { readonly kind: "immediate"; readonly durationMs: number }
  | { readonly kind: "reserved"; readonly startMs: number; readonly durationMs: number }
  | {
      readonly kind: "flexible";
      readonly earliestMs: number;
      readonly latestMs: number;
      readonly durationMs: number;
    };

export type WindowKind = TraceWindow["kind"];
export const WINDOW_KINDS: readonly WindowKind[] = ["immediate", "reserved", "flexible"];

export interface TraceGroup {
  readonly name: string;
  readonly kind: "affinity" | "anti-affinity";
  readonly hard: boolean;
  /** Label key the group is spread over or packed into; "" = per host. */
  readonly topologyKey: string;
}

/** One lease request. Times (`submitMs`, window times) are ms from the trace's start. */
export interface TraceEntry {
  /** 1-based line in the source (generated traces: the entry's position + 1). */
  readonly line: number;
  readonly id: string;
  readonly submitMs: number;
  readonly window: TraceWindow;
  readonly resources: Resources;
  readonly priority: number;
  readonly preemptible: boolean;
  readonly allowQueue: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly constraints: readonly string[];
  readonly group?: TraceGroup;
}

/** The columns (CSV) and keys (JSON lines) a trace may use, in the order `formatTrace` writes. */
export const TRACE_FIELDS = [
  "id",
  "submit",
  "kind",
  "start",
  "earliest",
  "latest",
  "duration",
  "cpu",
  "memory_gib",
  "disk_gib",
  "gpus",
  "priority",
  "preemptible",
  "allow_queue",
  "labels",
  "constraints",
  "group",
  "group_kind",
  "group_hard",
  "group_topology",
] as const;
type Field = (typeof TRACE_FIELDS)[number];
const KNOWN = new Set<string>(TRACE_FIELDS);

export type TraceFormat = "csv" | "jsonl";

/** The format from a file name, else from the first line that is not blank or a comment. */
export function detectFormat(text: string, fileName = ""): TraceFormat {
  if (/\.csv$/i.test(fileName)) return "csv";
  if (/\.(jsonl|ndjson|json)$/i.test(fileName)) return "jsonl";
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    return t.startsWith("{") ? "jsonl" : "csv";
  }
  return "jsonl";
}

/** Parses a whole trace; entries come back sorted by submit time (ties keep the file's order). */
export function parseTrace(text: string, format: TraceFormat = detectFormat(text)): TraceEntry[] {
  const entries = format === "csv" ? parseCsv(text) : parseJsonLines(text);
  const ids = new Map<string, number>();
  for (const e of entries) {
    const seen = ids.get(e.id);
    if (seen !== undefined)
      throw new TraceError(e.line, "id", `${JSON.stringify(e.id)} is also on line ${seen}`);
    ids.set(e.id, e.line);
  }
  return entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.submitMs - b.e.submitMs || a.i - b.i)
    .map(({ e }) => e);
}

function parseJsonLines(text: string): TraceEntry[] {
  const out: TraceEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === "" || line.startsWith("#")) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new TraceError(i + 1, "", `not valid JSON (${(error as Error).message})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new TraceError(i + 1, "", "expected a JSON object");
    out.push(toEntry(i + 1, value as Record<string, unknown>));
  }
  return out;
}

function parseCsv(text: string): TraceEntry[] {
  const lines = text.split("\n");
  let header: string[] | undefined;
  const out: TraceEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, "");
    if (raw.trim() === "" || raw.trimStart().startsWith("#")) continue;
    const cells = splitCsvLine(raw, i + 1);
    if (header === undefined) {
      header = cells.map((c) => c.trim());
      for (const name of header) {
        if (!KNOWN.has(name))
          throw new TraceError(i + 1, name, `unknown column (columns: ${TRACE_FIELDS.join(", ")})`);
      }
      continue;
    }
    if (cells.length !== header.length)
      throw new TraceError(i + 1, "", `${cells.length} columns, the header has ${header.length}`);
    const record: Record<string, unknown> = {};
    header.forEach((name, c) => {
      const cell = (cells[c] as string).trim();
      if (cell !== "") record[name] = cell;
    });
    out.push(toEntry(i + 1, record, true));
  }
  return out;
}

/** One CSV line: commas separate cells; a cell in double quotes may hold commas and `""`. */
function splitCsvLine(line: string, lineNo: number): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let cell = "";
      i++;
      for (;;) {
        if (i >= line.length) throw new TraceError(lineNo, "", "a quoted cell is not closed");
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        cell += line[i];
        i++;
      }
      cells.push(cell);
      if (i < line.length && line[i] !== ",")
        throw new TraceError(lineNo, "", "text after a quoted cell");
    } else {
      const comma = line.indexOf(",", i);
      cells.push(comma < 0 ? line.slice(i) : line.slice(i, comma));
      i = comma < 0 ? line.length : comma;
    }
    if (i >= line.length) return cells;
    i++; // the comma
  }
}

function toEntry(line: number, r: Record<string, unknown>, fromCsv = false): TraceEntry {
  for (const key of Object.keys(r)) {
    if (!KNOWN.has(key))
      throw new TraceError(line, key, `unknown field (fields: ${TRACE_FIELDS.join(", ")})`);
  }
  const fail = (field: Field, rule: string): never => {
    throw new TraceError(line, field, rule);
  };
  const num = (field: Field, fallback?: number): number => {
    const v = r[field];
    if (v === undefined) {
      if (fallback === undefined) fail(field, "is required");
      return fallback as number;
    }
    const n = typeof v === "number" ? v : typeof v === "string" ? Number(v) : Number.NaN;
    if (!Number.isFinite(n) || (typeof v === "string" && v.trim() === ""))
      fail(field, `expected a number, got ${JSON.stringify(v)}`);
    return n;
  };
  const seconds = (field: Field): number => {
    const s = num(field);
    if (s < 0) fail(field, `must be >= 0 seconds, got ${s}`);
    return Math.round(s * 1000);
  };
  const int = (field: Field, fallback: number, max: number): number => {
    const n = num(field, fallback);
    if (!Number.isInteger(n) || n < 0 || n > max)
      fail(field, `must be a whole number from 0 to ${max}, got ${n}`);
    return n;
  };
  const bool = (field: Field): boolean => {
    const v = r[field];
    if (v === undefined) return false;
    if (typeof v === "boolean") return v;
    if (typeof v === "string" && /^(true|yes|1)$/i.test(v)) return true;
    if (typeof v === "string" && /^(false|no|0)$/i.test(v)) return false;
    return fail(field, `expected true or false, got ${JSON.stringify(v)}`);
  };
  const str = (field: Field): string => {
    const v = r[field];
    if (v === undefined) return "";
    if (typeof v !== "string") fail(field, `expected a string, got ${JSON.stringify(v)}`);
    return v as string;
  };

  const submitMs = seconds("submit");
  const durationMs = seconds("duration");
  if (durationMs <= 0) fail("duration", "must be > 0 seconds");
  const kind = str("kind") === "" ? "immediate" : str("kind");
  let window: TraceWindow;
  switch (kind) {
    case "immediate":
      window = { kind, durationMs };
      break;
    case "reserved": {
      const startMs = seconds("start");
      if (startMs < submitMs) fail("start", "a reservation must start at or after its submit time");
      window = { kind, startMs, durationMs };
      break;
    }
    case "flexible": {
      const earliestMs = seconds("earliest");
      const latestMs = seconds("latest");
      if (latestMs < earliestMs) fail("latest", "must be at or after earliest");
      if (latestMs < submitMs) fail("latest", "must be at or after the submit time");
      window = { kind, earliestMs, latestMs, durationMs };
      break;
    }
    default:
      return fail("kind", `must be immediate, reserved or flexible; got ${JSON.stringify(kind)}`);
  }

  const cpu = num("cpu");
  if (cpu <= 0) fail("cpu", `must be > 0 vCPUs, got ${cpu}`);
  const memoryGib = num("memory_gib");
  if (memoryGib <= 0) fail("memory_gib", `must be > 0, got ${memoryGib}`);
  const resources: Resources = {
    cpuMillis: Math.max(1, Math.round(cpu * 1000)),
    memoryMib: Math.max(1, Math.round(memoryGib * 1024)),
    diskGib: int("disk_gib", 0, 1_000_000),
    gpus: int("gpus", 0, 1024),
  };

  const labels = fromCsv ? csvLabels(line, str("labels")) : jsonLabels(line, r.labels);
  for (const [k, v] of Object.entries(labels)) {
    const problem = labelKeyProblem(k) ?? labelValueProblem(v);
    if (problem !== undefined) fail("labels", `${JSON.stringify(k)}: ${problem}`);
  }
  const constraints = fromCsv
    ? str("constraints")
        .split(";")
        .map((c) => c.trim())
        .filter((c) => c !== "")
    : jsonStrings(line, r.constraints);
  for (const c of constraints) {
    try {
      parseSelector(c);
    } catch (error) {
      fail("constraints", (error as Error).message);
    }
  }

  const groupName = str("group");
  let group: TraceGroup | undefined;
  if (groupName !== "") {
    const gk = str("group_kind") === "" ? "anti-affinity" : str("group_kind");
    if (gk !== "affinity" && gk !== "anti-affinity")
      fail("group_kind", `must be affinity or anti-affinity, got ${JSON.stringify(gk)}`);
    const topologyKey = str("group_topology");
    if (topologyKey !== "" && labelKeyProblem(topologyKey) !== undefined)
      fail("group_topology", labelKeyProblem(topologyKey) as string);
    group = {
      name: groupName,
      kind: gk as TraceGroup["kind"],
      hard: bool("group_hard"),
      topologyKey,
    };
  } else {
    for (const f of ["group_kind", "group_hard", "group_topology"] as const)
      if (r[f] !== undefined) fail(f, "needs a group");
  }
  const id = str("id") === "" ? `line-${line}` : str("id");
  return {
    line,
    id,
    submitMs,
    window,
    resources,
    priority: int("priority", 0, 1000),
    preemptible: bool("preemptible"),
    allowQueue: bool("allow_queue"),
    labels,
    constraints,
    ...(group === undefined ? {} : { group }),
  };
}

/** CSV labels: `k=v;k2=v2`. */
function csvLabels(line: number, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(";")) {
    const p = part.trim();
    if (p === "") continue;
    const eq = p.indexOf("=");
    if (eq <= 0)
      throw new TraceError(line, "labels", `expected key=value, got ${JSON.stringify(p)}`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

function jsonLabels(line: number, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new TraceError(line, "labels", "expected an object of strings");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string")
      throw new TraceError(line, "labels", `${JSON.stringify(k)}: expected a string value`);
    out[k] = v;
  }
  return out;
}

function jsonStrings(line: number, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
    throw new TraceError(line, "constraints", "expected an array of selector strings");
  return value as string[];
}

/** A trace as JSON lines (what `--save-trace` writes; `parseTrace` reads it back unchanged). */
export function formatTrace(entries: readonly TraceEntry[]): string {
  const lines = entries.map((e) => {
    const w = e.window;
    const o: Record<string, unknown> = { id: e.id, submit: e.submitMs / 1000, kind: w.kind };
    if (w.kind === "reserved") o.start = w.startMs / 1000;
    if (w.kind === "flexible") {
      o.earliest = w.earliestMs / 1000;
      o.latest = w.latestMs / 1000;
    }
    o.duration = w.durationMs / 1000;
    o.cpu = e.resources.cpuMillis / 1000;
    o.memory_gib = e.resources.memoryMib / 1024;
    if (e.resources.diskGib > 0) o.disk_gib = e.resources.diskGib;
    if (e.resources.gpus > 0) o.gpus = e.resources.gpus;
    if (e.priority > 0) o.priority = e.priority;
    if (e.preemptible) o.preemptible = true;
    if (e.allowQueue) o.allow_queue = true;
    if (Object.keys(e.labels).length > 0) o.labels = e.labels;
    if (e.constraints.length > 0) o.constraints = e.constraints;
    if (e.group !== undefined) {
      o.group = e.group.name;
      o.group_kind = e.group.kind;
      if (e.group.hard) o.group_hard = true;
      if (e.group.topologyKey !== "") o.group_topology = e.group.topologyKey;
    }
    return JSON.stringify(o);
  });
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
