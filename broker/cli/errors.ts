/**
 * Failures as a user wants to read them, and their exit codes. A call that the broker (or the
 * network) failed is a `BrokerCallError` carrying the status, the broker's message and the
 * metadata leasectl uses (`lb-field`, `lb-leader`, `lb-placement-explanation-bin`).
 */
import { type Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ConfigError, formatDuration } from "../../core/index.js";
import {
  createCodec,
  type PlacementExplanation,
  type PlacementExplanationInput,
} from "../../proto/index.js";
import { EXIT, type ExitCode, exitCodeForStatus } from "./exit-codes.js";
import { explanationLines } from "./render.js";

export const FIELD_METADATA_KEY = "lb-field";
export const LEADER_METADATA_KEY = "lb-leader";
/** broker.proto's key: the PlacementExplanation, protobuf-encoded. */
export const EXPLANATION_METADATA_KEY = "lb-placement-explanation-bin";
/** An earlier key: the PlacementExplanation's output shape as UTF-8 JSON. Read too. */
export const EXPLANATION_JSON_METADATA_KEY = "lb-explanation-bin";

function firstText(metadata: Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.toString("utf8");
}

function firstBytes(metadata: Metadata | undefined, key: string): Buffer | undefined {
  const value = metadata?.get(key)[0];
  if (value === undefined) return undefined;
  return typeof value === "string" ? Buffer.from(value, "utf8") : value;
}

const explanationCodec = createCodec("leasebroker.v1.PlacementExplanation");

/**
 * Bytes of a PlacementExplanation: protobuf (no valid encoding of it starts with "{": that would
 * be field 15, which it does not have), else UTF-8 JSON of its output shape. Normalised through
 * the codec so that absent fields get their defaults; undefined if unreadable.
 */
export function decodeExplanation(bytes: Uint8Array): PlacementExplanation | undefined {
  const looksLikeJson = bytes.length > 0 && bytes[0] === 0x7b;
  try {
    if (!looksLikeJson) return explanationCodec.decode(bytes);
    const json: unknown = JSON.parse(Buffer.from(bytes).toString("utf8"));
    if (typeof json !== "object" || json === null) return undefined;
    // The codec checks the object against the message type before encoding it.
    return explanationCodec.decode(explanationCodec.encode(json as PlacementExplanationInput));
  } catch {
    return undefined;
  }
}

/** The placement explanation a RESOURCE_EXHAUSTED carries in its trailing metadata, if any. */
export function explanationFromMetadata(
  metadata: Metadata | undefined,
): PlacementExplanation | undefined {
  for (const key of [EXPLANATION_METADATA_KEY, EXPLANATION_JSON_METADATA_KEY]) {
    const bytes = firstBytes(metadata, key);
    const explanation = bytes === undefined ? undefined : decodeExplanation(bytes);
    if (explanation !== undefined) return explanation;
  }
  return undefined;
}

export interface BrokerCallErrorInit {
  readonly code: status;
  readonly details: string;
  /** The broker address the call went to. */
  readonly address: string;
  /** The RPC, e.g. "SubmitLease". */
  readonly method: string;
  readonly timeoutMs: number;
  readonly field?: string;
  readonly leader?: string;
  readonly explanation?: PlacementExplanation;
}

/** A call to the broker that ended with a non-OK status. */
export class BrokerCallError extends Error {
  readonly code: status;
  readonly details: string;
  readonly address: string;
  readonly method: string;
  readonly timeoutMs: number;
  readonly field: string | undefined;
  readonly leader: string | undefined;
  readonly explanation: PlacementExplanation | undefined;

  constructor(init: BrokerCallErrorInit, options?: { cause?: unknown }) {
    super(
      `${init.method} at ${init.address}: ${status[init.code] ?? init.code}: ${init.details}`,
      options,
    );
    this.name = "BrokerCallError";
    this.code = init.code;
    this.details = init.details;
    this.address = init.address;
    this.method = init.method;
    this.timeoutMs = init.timeoutMs;
    this.field = init.field;
    this.leader = init.leader;
    this.explanation = init.explanation;
  }

  static fromServiceError(
    error: ServiceError,
    address: string,
    method: string,
    timeoutMs: number,
  ): BrokerCallError {
    const metadata = error.metadata;
    const field = firstText(metadata, FIELD_METADATA_KEY);
    const leader = firstText(metadata, LEADER_METADATA_KEY);
    const explanation =
      error.code === status.RESOURCE_EXHAUSTED ? explanationFromMetadata(metadata) : undefined;
    return new BrokerCallError(
      {
        code: error.code,
        details: error.details ?? error.message,
        address,
        method,
        timeoutMs,
        ...(field === undefined ? {} : { field }),
        ...(leader === undefined || leader === "" ? {} : { leader }),
        ...(explanation === undefined ? {} : { explanation }),
      },
      { cause: error },
    );
  }
}

/** What the broker does not support yet, by RPC, for "the broker does not support X yet". */
const FEATURE: Readonly<Record<string, string>> = {
  DrainHost: "drain",
  MigrateLease: "live migration",
  GetMigration: "migrations",
  ListMigrations: "migrations",
  AbortMigration: "migrations",
  Rebalance: "rebalance",
  GetAutoscaleStatus: "autoscale",
  SuspendLease: "suspend",
  ResumeLease: "resume",
};

/** Which flag sets a request field, by field path prefix (the longest match wins). */
const FLAG_OF_FIELD: readonly (readonly [string, string])[] = [
  ["spec.name", "--name"],
  ["spec.tenant", "--tenant"],
  ["spec.labels", "--label"],
  ["spec.resources.cpu_millis", "--cpu"],
  ["spec.resources.memory_mib", "--memory"],
  ["spec.resources.disk_gib", "--disk"],
  ["spec.resources.gpus", "--gpus"],
  ["spec.resources.extended", "--extended"],
  ["spec.immediate", "--duration"],
  ["spec.reserved.duration", "--duration"],
  ["spec.reserved.start", "--start"],
  ["spec.reserved", "--start"],
  ["spec.flexible.duration", "--duration"],
  ["spec.flexible.earliest_start", "--earliest"],
  ["spec.flexible.latest_start", "--latest"],
  ["spec.flexible", "--earliest/--latest"],
  ["spec.window", "--duration"],
  ["spec.priority", "--priority"],
  ["spec.constraints", "--constraint"],
  ["spec.affinity.group", "--affinity-group"],
  ["spec.affinity.kind", "--anti-affinity"],
  ["spec.affinity.topology_key", "--topology-key"],
  ["spec.affinity.max_skew", "--max-skew"],
  ["spec.migration.max_downtime", "--max-downtime"],
  ["spec.migration", "--live-migratable"],
  ["spec.on_host_failure", "--on-host-failure"],
  ["spec.policy", "--policy"],
  ["spec.driver.image", "--image"],
  ["spec.driver.params", "--param"],
  ["request_id", "--request-id"],
  ["new_end", "--to"],
  ["extra", "--by"],
  ["reason", "--reason"],
  ["expected_revision", "--expected-revision"],
  ["page_size", "--limit"],
  ["states", "--state"],
  ["selector", "--selector"],
  ["deadline", "--deadline"],
  ["target_host_id", "--to"],
  ["level", "--level"],
  ["max_moves", "--max-moves"],
  ["bucket_width", "--bucket"],
  ["bucket_count", "--buckets"],
  ["start", "--start"],
  ["from_revision", "--from-revision"],
];

export function flagForField(field: string): string | undefined {
  let best: readonly [string, string] | undefined;
  for (const entry of FLAG_OF_FIELD) {
    const [prefix] = entry;
    const matches =
      field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`);
    if (matches && (best === undefined || prefix.length > best[0].length)) best = entry;
  }
  return best?.[1];
}

const TRANSPORT_DETAILS =
  /no connection established|connect|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|name resolution|failed to|socket|channel/i;

export interface RenderedFailure {
  readonly lines: readonly string[];
  readonly code: ExitCode;
}

export interface RenderContext {
  readonly command: string;
  readonly verbose: boolean;
}

function renderCallError(e: BrokerCallError, ctx: RenderContext): string[] {
  switch (e.code) {
    case status.RESOURCE_EXHAUSTED: {
      // A tenant's quota or write rate (broker/auth) is not a placement failure: say it as is.
      if (/^(quota "|rate limit of tenant )/.test(e.details)) return [`error: ${e.details}`];
      if (e.explanation === undefined) return [`error: no host can take this lease: ${e.details}`];
      return [
        "error: no host can take this lease",
        ...explanationLines(e.explanation).map((line) => `  ${line}`),
      ];
    }
    case status.INVALID_ARGUMENT: {
      const text =
        e.field === undefined || e.details.startsWith(e.field)
          ? e.details
          : `${e.field}: ${e.details}`;
      const flag = e.field === undefined ? undefined : flagForField(e.field);
      return [`error: ${text}`, ...(flag === undefined ? [] : [`  (set with ${flag})`])];
    }
    case status.UNAVAILABLE: {
      const lines = [
        `error: cannot reach the broker at ${e.address} (is it running? start it with npm start)`,
      ];
      if (ctx.verbose || !TRANSPORT_DETAILS.test(e.details)) lines.push(`  ${e.details}`);
      return lines;
    }
    case status.DEADLINE_EXCEEDED:
      return [
        `error: cannot reach the broker at ${e.address}: no answer within ${formatDuration(e.timeoutMs)} ` +
          "(is it running? a longer --timeout may help)",
        ...(ctx.verbose ? [`  ${e.details}`] : []),
      ];
    case status.UNIMPLEMENTED:
      return [
        `error: the broker does not support ${FEATURE[e.method] ?? ctx.command} yet`,
        ...(ctx.verbose ? [`  ${e.details}`] : []),
      ];
    case status.UNAUTHENTICATED:
      return [`error: the broker did not accept our credentials: ${e.details}`];
    case status.PERMISSION_DENIED:
      return [`error: not allowed: ${e.details}`];
    case status.ABORTED:
      return [
        `error: ${e.details}`,
        "  (it changed since it was read: get it again, then retry with its new revision)",
      ];
    case status.CANCELLED:
      return ["error: cancelled"];
    case status.NOT_FOUND:
    case status.ALREADY_EXISTS:
    case status.FAILED_PRECONDITION:
    case status.OUT_OF_RANGE:
      return [`error: ${e.details}`];
    default:
      return [`error: the broker failed (${status[e.code] ?? e.code}): ${e.details}`];
  }
}

/** The message lines (for stderr) and the exit code of anything a command threw. */
export function renderFailure(error: unknown, ctx: RenderContext): RenderedFailure {
  if (error instanceof BrokerCallError) {
    return { lines: renderCallError(error, ctx), code: exitCodeForStatus(error.code) };
  }
  if (error instanceof ConfigError) {
    const hint = ctx.command === "" ? "leasectl help" : `leasectl ${ctx.command} --help`;
    return { lines: [`error: ${error.message}`, `  (see ${hint})`], code: EXIT.usage };
  }
  const message = error instanceof Error ? error.message : String(error);
  const stack =
    ctx.verbose && error instanceof Error && error.stack !== undefined ? [error.stack] : [];
  return { lines: [`error: unexpected: ${message}`, ...stack], code: EXIT.unexpected };
}
