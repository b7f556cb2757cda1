/**
 * Command-line configuration in stages: option specs → raw values (flag, else environment variable,
 * else default) → parsed and validated values, typed from the specs. A bad flag or value is a
 * `ConfigError`; the bins print it and exit with code 2.
 */
import { parseArgs } from "node:util";
import { LeaseBrokerError } from "./errors.js";

export class ConfigError extends LeaseBrokerError {
  readonly kind = "invalid-argument";
}

/** Exit code for a bad flag or configuration. */
export const EXIT_CONFIG = 2;

interface OptionBase<T> {
  /** One line for --help. */
  readonly description: string;
  /** Environment variable consulted when the flag is absent. */
  readonly env?: string;
  readonly default?: T;
  /** Checks a parsed value; returns the reason it is wrong, or undefined. */
  readonly check?: (value: T) => string | undefined;
  readonly short?: string;
}

export interface StringOption extends OptionBase<string> {
  readonly type: "string";
  /** Allowed values. */
  readonly choices?: readonly string[];
}
export interface IntegerOption extends OptionBase<number> {
  readonly type: "integer";
  readonly min?: number;
  readonly max?: number;
}
export interface NumberOption extends OptionBase<number> {
  readonly type: "number";
  readonly min?: number;
  readonly max?: number;
}
/** A duration: `250ms`, `30s`, `5m`, `2h`, `7d`, or a bare number of milliseconds. Parsed to ms. */
export interface DurationOption extends OptionBase<number> {
  readonly type: "duration";
  readonly min?: number;
}
export interface BooleanOption extends OptionBase<boolean> {
  readonly type: "boolean";
}
export interface ListOption extends OptionBase<readonly string[]> {
  readonly type: "list";
}

export type OptionSpec =
  | StringOption
  | IntegerOption
  | NumberOption
  | DurationOption
  | BooleanOption
  | ListOption;

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

type ValueOf<O extends OptionSpec> = O extends BooleanOption
  ? boolean
  : O extends ListOption
    ? readonly string[]
    : O extends StringOption
      ? string
      : number;

/** The parsed configuration: options with a default (and booleans, lists) are always present. */
export type ParsedOptions<S extends OptionSpecs> = {
  readonly [K in keyof S as S[K] extends { default: unknown } | BooleanOption | ListOption
    ? K
    : never]: ValueOf<S[K]>;
} & {
  readonly [K in keyof S as S[K] extends { default: unknown } | BooleanOption | ListOption
    ? never
    : K]?: ValueOf<S[K]>;
};

export interface ParseResult<S extends OptionSpecs> {
  readonly options: ParsedOptions<S>;
  readonly positionals: readonly string[];
  readonly help: boolean;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses `250ms`, `30s`, `5m`, `2h`, `7d` or a bare millisecond count; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const amount = Number(match[1]);
  const unit = UNIT_MS[match[2] ?? "ms"] ?? 1;
  return Math.round(amount * unit);
}

/** `90061000` → `1d1h1m1s`; for messages and tables. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  let rest = Math.round(ms / 1000);
  let out = "";
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function convert(flag: string, spec: OptionSpec, raw: string | boolean | string[]): unknown {
  const source = `--${flag}`;
  switch (spec.type) {
    case "boolean":
      if (typeof raw === "boolean") return raw;
      if (/^(1|true|yes|on)$/i.test(String(raw))) return true;
      if (/^(0|false|no|off)$/i.test(String(raw))) return false;
      throw new ConfigError(`${source}: expected true or false, got ${JSON.stringify(raw)}`);
    case "list": {
      const parts = (Array.isArray(raw) ? raw : [String(raw)]).flatMap((p) => p.split(","));
      return parts.map((p) => p.trim()).filter((p) => p.length > 0);
    }
    case "string": {
      const value = String(raw);
      if (spec.choices !== undefined && !spec.choices.includes(value)) {
        throw new ConfigError(
          `${source}: must be one of ${spec.choices.join(", ")}; got ${JSON.stringify(value)}`,
        );
      }
      return value;
    }
    case "integer":
    case "number": {
      const text = String(raw).trim();
      const value = Number(text);
      if (
        text === "" ||
        !Number.isFinite(value) ||
        (spec.type === "integer" && !Number.isInteger(value))
      ) {
        throw new ConfigError(
          `${source}: expected ${spec.type === "integer" ? "an integer" : "a number"}, got ${JSON.stringify(raw)}`,
        );
      }
      if (spec.min !== undefined && value < spec.min)
        throw new ConfigError(`${source}: must be >= ${spec.min}, got ${value}`);
      if (spec.max !== undefined && value > spec.max)
        throw new ConfigError(`${source}: must be <= ${spec.max}, got ${value}`);
      return value;
    }
    case "duration": {
      const value = parseDuration(String(raw));
      if (value === undefined) {
        throw new ConfigError(
          `${source}: expected a duration like 500ms, 30s, 5m, 2h or 7d; got ${JSON.stringify(raw)}`,
        );
      }
      if (spec.min !== undefined && value < spec.min) {
        throw new ConfigError(
          `${source}: must be at least ${formatDuration(spec.min)}, got ${String(raw)}`,
        );
      }
      return value;
    }
  }
}

/**
 * Parses `argv` (without node and the script) against `specs`. Option names are camelCase in code
 * and kebab-case on the command line (`grpcAddress` ↔ `--grpc-address`).
 */
export function parseOptions<S extends OptionSpecs>(
  specs: S,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  settings: { allowPositionals?: boolean } = {},
): ParseResult<S> {
  const parseArgsOptions: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, spec] of Object.entries(specs)) {
    parseArgsOptions[kebab(name)] = {
      type: spec.type === "boolean" ? "boolean" : "string",
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.type === "list" ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: parseArgsOptions,
      strict: true,
      allowPositionals: settings.allowPositionals ?? false,
      allowNegative: true,
    });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const flag = kebab(name);
    let raw: string | boolean | string[] | undefined = values[flag];
    let source = `--${flag}`;
    if (raw === undefined && spec.env !== undefined) {
      const fromEnv = env[spec.env];
      if (fromEnv !== undefined && fromEnv !== "") {
        raw = fromEnv;
        source = spec.env;
      }
    }
    let value: unknown;
    if (raw !== undefined) {
      try {
        value = convert(flag, spec, raw);
      } catch (error) {
        if (source !== `--${flag}` && error instanceof ConfigError) {
          throw new ConfigError(error.message.replace(`--${flag}`, `${source} (environment)`));
        }
        throw error;
      }
    } else if (spec.default !== undefined) {
      value = spec.default;
    } else if (spec.type === "boolean") {
      value = false;
    } else if (spec.type === "list") {
      value = [];
    }
    if (value !== undefined && spec.check !== undefined) {
      const problem = (spec.check as (v: unknown) => string | undefined)(value);
      if (problem !== undefined) throw new ConfigError(`${source}: ${problem}`);
    }
    if (value !== undefined) out[name] = value;
  }
  return {
    options: out as ParsedOptions<S>,
    positionals: parsed.positionals,
    help: values.help === true,
  };
}

/** The --help text for `specs`. */
export function optionsHelp(specs: OptionSpecs): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const flag = `--${kebab(name)}${spec.type === "boolean" ? "" : ` <${spec.type === "list" ? "a,b" : spec.type}>`}`;
    const extras = [
      spec.default !== undefined && spec.type !== "boolean"
        ? `default ${spec.type === "duration" ? formatDuration(spec.default as number) : String(spec.default)}`
        : undefined,
      spec.env === undefined ? undefined : `env ${spec.env}`,
      spec.type === "string" && spec.choices !== undefined
        ? `one of ${spec.choices.join("|")}`
        : undefined,
    ].filter((e) => e !== undefined);
    return `  ${flag.padEnd(34)} ${spec.description}${extras.length > 0 ? ` (${extras.join("; ")})` : ""}`;
  });
  return rows.join("\n");
}
