/**
 * Binary codec for any message of the contract, built on protobufjs reflection over the same
 * .proto files as the gRPC loader (protobufjs compiles fast encoders and decoders at run time).
 *
 * - `decode` returns exactly the shape of the generated `__Output` types (the same conversion as
 *   @grpc/proto-loader: 64-bit integers as numbers, enums as strings, defaults, oneof names). It
 *   only ever throws ProtoDecodeError: for bytes over `maxBytes` (default 1 MiB), truncated or
 *   garbage bytes, a 64-bit value beyond 2^53, two members of one oneof, or a Timestamp/Duration
 *   out of range. An enum number it does not know (a newer peer) decodes as the enum's
 *   `*_UNSPECIFIED` name.
 * - `encode` checks the object first (it only ever throws ProtoEncodeError): unknown fields,
 *   wrong types, integers out of range (64-bit ones beyond 2^53), unknown enum names, a oneof
 *   name that disagrees with the member set, two members of one oneof, Timestamp/Duration out of
 *   range, and the encoded size against `maxBytes`. protobufjs' own `fromObject` would coerce or
 *   silently drop most of these.
 */
import path from "node:path";
import protobuf from "protobufjs";
import { ProtoDecodeError, ProtoEncodeError } from "./errors.js";
import type { MessageTypeName, MessageTypes } from "./gen/aliases.js";
import { CONVERSION_OPTIONS, PROTO_FILES, PROTO_ROOT } from "./load.js";

/** Default upper bound of an encoded message: 1 MiB (the NATS default max payload). */
export const DEFAULT_MAX_BYTES = 1024 * 1024;

/** Encoder and decoder of one message type. */
export interface MessageCodec<TInput, TOutput> {
  /** Full name of the message type, e.g. "leasebroker.v1.Heartbeat". */
  readonly typeName: string;
  /** Largest encoded size accepted by encode and decode, in bytes. */
  readonly maxBytes: number;
  /** Check and encode; throws ProtoEncodeError (only) if the object is not a valid message. */
  encode(message: TInput): Uint8Array;
  /** Decode; throws ProtoDecodeError (only) if the bytes are not a valid message. */
  decode(bytes: Uint8Array): TOutput;
}

/** The codec of a message, by full name. */
export type CodecFor<N extends MessageTypeName> = MessageCodec<
  MessageTypes[N]["input"],
  MessageTypes[N]["output"]
>;

export interface CodecOptions {
  /** Largest encoded size, in bytes (a positive integer). Default DEFAULT_MAX_BYTES. */
  maxBytes?: number;
}

let root: protobuf.Root | undefined;

/**
 * The protobufjs Root of all the .proto files (field names in lowerCamelCase, as with
 * @grpc/proto-loader's keepCase: false). Loaded on first use, then cached.
 */
export function protobufRoot(): protobuf.Root {
  if (root === undefined) {
    const loaded = new protobuf.Root();
    // Imports are relative to PROTO_ROOT; google/protobuf/*.proto are bundled with protobufjs and
    // resolved by it before this is called.
    loaded.resolvePath = (_origin: string, target: string): string =>
      path.isAbsolute(target) ? target : path.join(PROTO_ROOT, target);
    loaded.loadSync([...PROTO_FILES], { keepCase: false });
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

/** The number of `field` (its lowerCamelCase name) in message `type` of leasebroker.v1: what
 * hand-written encoders and readers use, so that a renumbered field cannot go unnoticed. */
export function fieldNumber(type: string, field: string): number {
  const f = protobufRoot().lookupType(`leasebroker.v1.${type}`).fields[field];
  if (f === undefined) throw new Error(`leasebroker.v1.${type} has no field ${field}`);
  return f.id;
}

/** A codec for the message `typeName`. The type is looked up on first use. */
export function createCodec<N extends MessageTypeName>(
  typeName: N,
  options: CodecOptions = {},
): CodecFor<N> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  let resolved: protobuf.Type | undefined;
  const type = (): protobuf.Type => {
    resolved ??= protobufRoot().lookupType(typeName);
    return resolved;
  };

  return {
    typeName,
    maxBytes,
    encode(message: MessageTypes[N]["input"]): Uint8Array {
      try {
        const t = type();
        explained(() => checkMessage(planOf(t), message, "", typeName));
        const bytes = t.encode(t.fromObject(message as Record<string, unknown>)).finish();
        if (bytes.length > maxBytes) {
          throw new ProtoEncodeError(
            typeName,
            "",
            `message too large (${bytes.length} bytes > ${maxBytes})`,
          );
        }
        return bytes;
      } catch (error) {
        if (error instanceof ProtoEncodeError) throw error;
        throw new ProtoEncodeError(typeName, "", errorText(error), { cause: error });
      }
    },
    decode(bytes: Uint8Array): MessageTypes[N]["output"] {
      if (!(bytes instanceof Uint8Array)) {
        throw new ProtoDecodeError(typeName, `expected a Uint8Array, got ${describe(bytes)}`);
      }
      if (bytes.length > maxBytes) {
        throw new ProtoDecodeError(
          typeName,
          `message too large (${bytes.length} bytes > ${maxBytes})`,
        );
      }
      try {
        const t = type();
        const message = t.decode(new CheckedReader(bytes));
        const object: Record<string, unknown> = t.toObject(message, CONVERSION_OPTIONS);
        explained(() => normalizeMessage(planOf(t), object, "", typeName));
        return object as MessageTypes[N]["output"];
      } catch (error) {
        if (error instanceof ProtoDecodeError) throw error;
        throw new ProtoDecodeError(typeName, errorText(error), { cause: error });
      }
    },
  };
}

/**
 * A Reader whose strings are decoded by Node (not protobufjs' JavaScript UTF-8 decoder over a
 * sliced copy, which was most of a decode) and checked against the end: protobufjs' own
 * BufferReader#string silently clamps a string that runs past the end, so a truncated message
 * would decode.
 */
class CheckedReader extends protobuf.Reader {
  readonly #text: Buffer;

  constructor(bytes: Uint8Array) {
    super(bytes);
    this.#text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  override string(): string {
    const length = this.uint32();
    const end = this.pos + length;
    if (end > this.len)
      throw new RangeError(`index out of range: ${this.pos} + ${length} > ${this.len}`);
    const text = this.#text.toString("utf8", this.pos, end);
    this.pos = end;
    return text;
  }
}

/** Codecs of the agent messages (NATS subjects lb.v1.host.<hostId>.{hello,beat,cmd,event}). */
export const agentCodecs = Object.freeze({
  hello: createCodec("leasebroker.v1.Hello"),
  helloReply: createCodec("leasebroker.v1.HelloReply"),
  heartbeat: createCodec("leasebroker.v1.Heartbeat"),
  command: createCodec("leasebroker.v1.Command"),
  commandReply: createCodec("leasebroker.v1.CommandReply"),
  agentEvent: createCodec("leasebroker.v1.AgentEvent"),
});

// ---------------------------------------------------------------------------------------------
// Reflection plans

type Int64Kind = "int64" | "sint64" | "sfixed64" | "uint64" | "fixed64";

type ValuePlan =
  | { kind: "scalar"; type: string; problem: (value: unknown) => string | undefined }
  | { kind: "enum"; type: protobuf.Enum; fallback: string }
  /** `plan` is the type's plan, filled in on first use (types may refer to themselves). */
  | { kind: "message"; type: protobuf.Type; plan: TypePlan | undefined };

interface FieldPlan {
  /** lowerCamelCase name, as in JavaScript objects. */
  name: string;
  value: ValuePlan;
  repeated: boolean;
  /** Map key type ("string", "int32", ...), or undefined if not a map. */
  mapKey: string | undefined;
}

interface OneofPlan {
  name: string;
  members: readonly string[];
}

interface TypePlan {
  fullName: string;
  fields: readonly FieldPlan[];
  known: ReadonlySet<string>;
  oneofs: readonly OneofPlan[];
  wellKnown: "timestamp" | "duration" | undefined;
}

const plans = new WeakMap<protobuf.Type, TypePlan>();

function planOf(type: protobuf.Type): TypePlan {
  const cached = plans.get(type);
  if (cached !== undefined) return cached;
  type.resolveAll();
  const fields = type.fieldsArray.map((field): FieldPlan => {
    const resolved = field.resolvedType;
    let value: ValuePlan;
    if (resolved instanceof protobuf.Type) {
      value = { kind: "message", type: resolved, plan: undefined };
    } else if (resolved instanceof protobuf.Enum) {
      const fallback = resolved.valuesById[0];
      if (fallback === undefined) throw new Error(`${resolved.fullName} has no value 0`);
      value = { kind: "enum", type: resolved, fallback };
    } else {
      value = { kind: "scalar", type: field.type, problem: scalarCheck(field.type) };
    }
    const mapKey = field instanceof protobuf.MapField ? field.keyType : undefined;
    return { name: field.name, value, repeated: field.repeated, mapKey };
  });
  const oneofs = type.oneofsArray.map(
    (oneof): OneofPlan => ({ name: oneof.name, members: oneof.fieldsArray.map((f) => f.name) }),
  );
  const fullName = type.fullName.replace(/^\./, "");
  const plan: TypePlan = {
    fullName,
    fields,
    known: new Set([...fields.map((f) => f.name), ...oneofs.map((o) => o.name)]),
    oneofs,
    wellKnown:
      fullName === "google.protobuf.Timestamp"
        ? "timestamp"
        : fullName === "google.protobuf.Duration"
          ? "duration"
          : undefined,
  };
  plans.set(type, plan);
  return plan;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;
/** Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of Timestamp. */
const TIMESTAMP_MIN_SECONDS = -62_135_596_800;
const TIMESTAMP_MAX_SECONDS = 253_402_300_799;
/** 10,000 years, the range of Duration. */
const DURATION_MAX_SECONDS = 315_576_000_000;
const NANOS_MAX = 999_999_999;

function isInt64(type: string): type is Int64Kind {
  return (
    type === "int64" ||
    type === "sint64" ||
    type === "sfixed64" ||
    type === "uint64" ||
    type === "fixed64"
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "bytes";
  return typeof value;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

/**
 * Field paths are spelled out only when a check has failed: every message a process sends or
 * receives is checked, and building "spec.driver.params[\"k\"]" for each field that is fine cost
 * more than the checks. `explained` runs a check without paths, and on a failure runs it again
 * with them to say where (the checks are deterministic, and normalizing twice changes nothing).
 */
let spellPaths = false;
const fieldAt = (path: string, name: string): string => (spellPaths ? join(path, name) : "");
const entryAt = (path: string, key: string): string =>
  spellPaths ? `${path}[${JSON.stringify(key)}]` : "";
const elementAt = (path: string, index: number): string => (spellPaths ? `${path}[${index}]` : "");

function explained(check: () => void): void {
  try {
    check();
  } catch (error) {
    spellPaths = true;
    try {
      check();
    } finally {
      spellPaths = false;
    }
    throw error;
  }
}

/** A 64-bit integer input (number, decimal string or Long) as a number, or undefined if it is none. */
function int64Number(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "string") return /^[-+]?\d+$/.test(value.trim()) ? Number(value) : undefined;
  if (isLongLike(value)) return value.toNumber();
  return undefined;
}

/** A Long (from the "long" package, as protobufjs uses): low and high 32-bit halves. */
function isLongLike(value: unknown): value is { low: number; high: number; toNumber(): number } {
  return (
    isRecord(value) &&
    typeof value.low === "number" &&
    typeof value.high === "number" &&
    typeof value.toNumber === "function"
  );
}

const FLOAT_STRING = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*(NaN|[-+]?Infinity)\s*$/;

/**
 * The check of a `type` scalar: why a value is not valid, or undefined if it is. Chosen once per
 * field when its plan is made (every message sent or received runs these).
 */
function scalarCheck(type: string): (value: unknown) => string | undefined {
  switch (type) {
    case "double":
    case "float":
      return (value) =>
        typeof value === "number" || (typeof value === "string" && FLOAT_STRING.test(value))
          ? undefined
          : `number expected, got ${describe(value)}`;
    case "int32":
    case "sint32":
    case "sfixed32":
      return (value) =>
        Number.isInteger(value) && (value as number) >= INT32_MIN && (value as number) <= INT32_MAX
          ? undefined
          : `32-bit integer expected, got ${typeof value === "number" ? value : describe(value)}`;
    case "uint32":
    case "fixed32":
      return (value) =>
        Number.isInteger(value) && (value as number) >= 0 && (value as number) <= UINT32_MAX
          ? undefined
          : `unsigned 32-bit integer expected, got ${typeof value === "number" ? value : describe(value)}`;
    case "bool":
      return (value) =>
        typeof value === "boolean" ? undefined : `boolean expected, got ${describe(value)}`;
    case "string":
      return (value) =>
        typeof value === "string" ? undefined : `string expected, got ${describe(value)}`;
    case "bytes":
      return (value) =>
        value instanceof Uint8Array || typeof value === "string"
          ? undefined
          : `bytes expected, got ${describe(value)}`;
    default: {
      if (!isInt64(type)) return () => `unsupported field type ${type}`;
      const unsigned = type === "uint64" || type === "fixed64";
      return (value) => {
        const n = typeof value === "number" ? value : int64Number(value);
        if (n === undefined) return `integer expected, got ${describe(value)}`;
        if (!Number.isSafeInteger(n))
          return `integer within +/-(2^53 - 1) expected, got ${String(value)}`;
        if (unsigned && n < 0) return `unsigned integer expected, got ${n}`;
        return undefined;
      };
    }
  }
}

/** The plan of a message-typed value's type. */
function messagePlan(plan: Extract<ValuePlan, { kind: "message" }>): TypePlan {
  plan.plan ??= planOf(plan.type);
  return plan.plan;
}

/** How many members of `oneof` are set in `value` (counted without allocating: every message). */
function membersSet(oneof: OneofPlan, value: Record<string, unknown>): number {
  let count = 0;
  for (const member of oneof.members) if (value[member] != null) count++;
  return count;
}

function encodeError(typeName: string, field: string, message: string): ProtoEncodeError {
  return new ProtoEncodeError(typeName, field, message);
}

/** Why a Timestamp/Duration with these parts is out of range, or undefined. */
function wellKnownProblem(
  kind: "timestamp" | "duration",
  seconds: number,
  nanos: number,
): string | undefined {
  if (kind === "timestamp") {
    if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) {
      return `timestamp seconds ${seconds} outside 0001-01-01..9999-12-31`;
    }
    if (nanos < 0 || nanos > NANOS_MAX) return `timestamp nanos ${nanos} outside 0..999999999`;
    return undefined;
  }
  if (Math.abs(seconds) > DURATION_MAX_SECONDS)
    return `duration seconds ${seconds} beyond 10000 years`;
  if (Math.abs(nanos) > NANOS_MAX) return `duration nanos ${nanos} outside -999999999..999999999`;
  if ((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return "duration seconds and nanos have different signs";
  }
  return undefined;
}

/** Why the object key `key` is not a valid map key of type `keyType`, or undefined. */
function mapKeyProblem(keyType: string, key: string): string | undefined {
  if (keyType === "string") return undefined;
  if (keyType === "bool")
    return key === "true" || key === "false" ? undefined : "true or false expected";
  if (!/^[-+]?\d+$/.test(key)) return `integer expected, got ${JSON.stringify(key)}`;
  return scalarCheck(keyType)(isInt64(keyType) ? key : Number(key));
}

// ---------------------------------------------------------------------------------------------
// Encode-side checks

function checkMessage(plan: TypePlan, value: unknown, path: string, typeName: string): void {
  if (!isRecord(value) || value instanceof Uint8Array) {
    throw encodeError(typeName, path, `${plan.fullName} object expected, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!plan.known.has(key) && value[key] !== undefined)
      throw encodeError(typeName, join(path, key), "unknown field");
  }
  for (const oneof of plan.oneofs) {
    if (membersSet(oneof, value) > 1) {
      const set = oneof.members.filter((member) => value[member] != null);
      throw encodeError(
        typeName,
        join(path, oneof.name),
        `more than one member set (${set.join(", ")})`,
      );
    }
    const named = value[oneof.name];
    if (named != null) {
      if (typeof named !== "string" || !oneof.members.includes(named)) {
        throw encodeError(
          typeName,
          join(path, oneof.name),
          `one of ${oneof.members.join(", ")} expected`,
        );
      }
      if (value[named] == null) {
        // At most one member is set (checked above): the one that is, if any.
        const set = oneof.members.find((member) => value[member] != null);
        throw encodeError(
          typeName,
          join(path, oneof.name),
          `names ${named}, but ${set ?? "no member"} is set`,
        );
      }
    }
  }
  for (const field of plan.fields) {
    const fieldValue = value[field.name];
    if (fieldValue == null) continue;
    const fieldPath = fieldAt(path, field.name);
    if (field.mapKey !== undefined) {
      if (!isRecord(fieldValue)) {
        throw encodeError(
          typeName,
          fieldPath,
          `map (object) expected, got ${describe(fieldValue)}`,
        );
      }
      for (const key in fieldValue) {
        if (!Object.hasOwn(fieldValue, key)) continue;
        const entry = fieldValue[key];
        const entryPath = entryAt(fieldPath, key);
        const keyProblem = mapKeyProblem(field.mapKey, key);
        if (keyProblem !== undefined)
          throw encodeError(typeName, entryPath, `bad map key: ${keyProblem}`);
        if (entry == null) throw encodeError(typeName, entryPath, "map value must not be null");
        checkValue(field.value, entry, entryPath, typeName);
      }
    } else if (field.repeated) {
      if (!Array.isArray(fieldValue)) {
        throw encodeError(typeName, fieldPath, `array expected, got ${describe(fieldValue)}`);
      }
      for (let index = 0; index < fieldValue.length; index++) {
        const element: unknown = fieldValue[index];
        if (element == null)
          throw encodeError(
            typeName,
            elementAt(fieldPath, index),
            "repeated element must not be null",
          );
        checkValue(field.value, element, elementAt(fieldPath, index), typeName);
      }
    } else {
      checkValue(field.value, fieldValue, fieldPath, typeName);
    }
  }
  if (plan.wellKnown !== undefined) {
    const seconds = int64Number(value.seconds ?? 0) ?? 0;
    const nanos = typeof value.nanos === "number" ? value.nanos : 0;
    const problem = wellKnownProblem(plan.wellKnown, seconds, nanos);
    if (problem !== undefined) throw encodeError(typeName, path, problem);
  }
}

function checkValue(plan: ValuePlan, value: unknown, path: string, typeName: string): void {
  switch (plan.kind) {
    case "message":
      checkMessage(messagePlan(plan), value, path, typeName);
      return;
    case "enum":
      if (
        typeof value === "string"
          ? !Object.hasOwn(plan.type.values, value)
          : !(typeof value === "number" && Object.hasOwn(plan.type.valuesById, value))
      ) {
        throw encodeError(
          typeName,
          path,
          `${plan.type.name} value expected, got ${JSON.stringify(value) ?? describe(value)}`,
        );
      }
      return;
    case "scalar": {
      const problem = plan.problem(value);
      if (problem !== undefined) throw encodeError(typeName, path, problem);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decode-side normalization (on the output of Type.toObject, in place)

function normalizeMessage(
  plan: TypePlan,
  object: Record<string, unknown>,
  path: string,
  typeName: string,
): void {
  for (const oneof of plan.oneofs) {
    if (membersSet(oneof, object) > 1) {
      const set = oneof.members.filter((member) => object[member] != null);
      throw new ProtoDecodeError(
        typeName,
        `${join(path, oneof.name)}: more than one member set (${set.join(", ")})`,
      );
    }
  }
  for (const field of plan.fields) {
    const value = object[field.name];
    if (value == null) continue;
    const fieldPath = fieldAt(path, field.name);
    if (field.mapKey !== undefined) {
      const map = value as Record<string, unknown>;
      for (const key of Object.keys(map)) {
        map[key] = normalizeValue(field.value, map[key], entryAt(fieldPath, key), typeName);
      }
    } else if (field.repeated) {
      const array = value as unknown[];
      for (let i = 0; i < array.length; i++) {
        array[i] = normalizeValue(field.value, array[i], elementAt(fieldPath, i), typeName);
      }
    } else {
      object[field.name] = normalizeValue(field.value, value, fieldPath, typeName);
    }
  }
  if (plan.wellKnown !== undefined) {
    const problem = wellKnownProblem(
      plan.wellKnown,
      typeof object.seconds === "number" ? object.seconds : 0,
      typeof object.nanos === "number" ? object.nanos : 0,
    );
    if (problem !== undefined)
      throw new ProtoDecodeError(typeName, `${path || "(message)"}: ${problem}`);
  }
}

function normalizeValue(plan: ValuePlan, value: unknown, path: string, typeName: string): unknown {
  switch (plan.kind) {
    case "message":
      if (isRecord(value)) normalizeMessage(messagePlan(plan), value, path, typeName);
      return value;
    case "enum":
      // toObject leaves numbers it has no name for: a value from a newer peer.
      return typeof value === "number" ? plan.fallback : value;
    case "scalar":
      if (isInt64(plan.type) && !Number.isSafeInteger(value)) {
        throw new ProtoDecodeError(typeName, `${path}: 64-bit value beyond 2^53`);
      }
      return value;
  }
}
