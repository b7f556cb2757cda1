/**
 * Command-line parsing on top of core's `parseOptions`: the global flags every command accepts,
 * finding the command among them, and repeatable flags whose values must not be split at commas
 * (`--constraint 'zone in (a,b)'`, `--param k=a,b`), which `parseOptions`' list type would split.
 */
import {
  ConfigError,
  type OptionSpec,
  type OptionSpecs,
  type ParsedOptions,
  parseOptions,
} from "../../core/index.js";
import { splitRequirements } from "./quantities.js";

/**
 * An option spec, plus for `list` options how repeated values are taken: `verbatim` (each flag
 * one value, commas kept) or `requirements` (split at commas outside parentheses).
 */
export type CliOptionSpec = OptionSpec & { readonly repeat?: "verbatim" | "requirements" };
export type CliOptionSpecs = Readonly<Record<string, CliOptionSpec>>;

const hostPort = (value: string): string | undefined => {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s/]+):(\d{1,5})$/.exec(value);
  if (match === null)
    return `expected host:port, e.g. 127.0.0.1:50051; got ${JSON.stringify(value)}`;
  const port = Number(match[2]);
  return port < 1 || port > 65_535 ? "the port must be in 1..65535" : undefined;
};

/** Flags of every command. */
export const GLOBAL_OPTIONS = {
  server: {
    type: "string",
    description:
      "the broker's gRPC address, host:port; several brokers comma-separated (calls follow the leader)",
    env: "LEASEBROKER_SERVER",
    default: "127.0.0.1:50051",
    check: (value) =>
      value
        .split(",")
        .map((address) => hostPort(address.trim()))
        .find((problem) => problem !== undefined),
  },
  output: {
    type: "string",
    short: "o",
    description: "output format (-o)",
    choices: ["table", "json", "yaml"],
    default: "table",
  },
  timeout: {
    type: "duration",
    description: "deadline of each call to the broker",
    default: 10_000,
    min: 1,
  },
  verbose: {
    type: "boolean",
    short: "v",
    description: "say more, e.g. when following the leader (-v)",
  },
  token: {
    type: "string",
    description: "bearer token sent with every call",
    env: "LEASEBROKER_TOKEN",
  },
  tlsCa: {
    type: "string",
    description: "connect over TLS, trusting this CA (PEM)",
    env: "LEASEBROKER_TLS_CA",
  },
  tlsCert: {
    type: "string",
    description: "mutual TLS: this client certificate (PEM; with --tls-key)",
    env: "LEASEBROKER_TLS_CERT",
  },
  tlsKey: {
    type: "string",
    description: "mutual TLS: the client certificate's private key (PEM)",
    env: "LEASEBROKER_TLS_KEY",
  },
} as const satisfies CliOptionSpecs;

export type GlobalOptions = ParsedOptions<typeof GLOBAL_OPTIONS>;

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function takesValue(spec: CliOptionSpec): boolean {
  return spec.type !== "boolean";
}

interface Lookup {
  readonly byFlag: ReadonlyMap<string, [string, CliOptionSpec]>;
  readonly byShort: ReadonlyMap<string, [string, CliOptionSpec]>;
}

function lookup(specs: CliOptionSpecs): Lookup {
  const byFlag = new Map<string, [string, CliOptionSpec]>();
  const byShort = new Map<string, [string, CliOptionSpec]>();
  for (const [name, spec] of Object.entries(specs)) {
    byFlag.set(kebab(name), [name, spec]);
    if (spec.short !== undefined) byShort.set(spec.short, [name, spec]);
  }
  return { byFlag, byShort };
}

/**
 * Finds the command: the first argument that is neither a global flag nor a global flag's value.
 * Returns it and every other argument, in order.
 */
export function splitCommand(argv: readonly string[]): {
  command: string | undefined;
  rest: string[];
} {
  const { byFlag, byShort } = lookup(GLOBAL_OPTIONS);
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? "";
    if (token === "--") break;
    if (token.startsWith("--")) {
      const entry = byFlag.get(token.slice(2));
      if (entry !== undefined && takesValue(entry[1])) i++;
      continue;
    }
    if (token.startsWith("-") && token.length > 1) {
      const entry = byShort.get(token.slice(1));
      if (entry !== undefined && takesValue(entry[1])) i++;
      continue;
    }
    return { command: token, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { command: undefined, rest: [...argv] };
}

export interface CommandLine<S extends CliOptionSpecs> {
  readonly options: ParsedOptions<S>;
  readonly positionals: readonly string[];
  readonly help: boolean;
  /** Names (camelCase) of the options given on the command line (`--x`, `--no-x`, `-x`). */
  readonly given: ReadonlySet<string>;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(
        above + 1,
        (row[j - 1] ?? 0) + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

/** node:util parseArgs' messages, said plainly (with a suggestion for a mistyped flag). */
function plainer(error: ConfigError, specs: CliOptionSpecs): ConfigError {
  const text = error.message;
  const unknown = /^Unknown option '(-{1,2})([^'=]+)'/.exec(text);
  if (unknown !== null) {
    const typed = unknown[2] ?? "";
    const close = Object.keys(specs)
      .map(kebab)
      .filter((flag) => editDistance(flag, typed) <= (typed.length >= 5 ? 2 : 1));
    const hint =
      close.length > 0 ? ` (did you mean ${close.map((f) => `--${f}`).join(" or ")}?)` : "";
    return new ConfigError(`unknown flag ${unknown[1]}${typed}${hint}`, { cause: error });
  }
  const missing = /^Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(text);
  if (missing !== null) return new ConfigError(`${missing[1]} needs a value`, { cause: error });
  const ambiguous = /^Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument is ambiguous/.exec(text);
  if (ambiguous !== null) {
    const flag = ambiguous[1] ?? "";
    return new ConfigError(
      `${flag} needs a value; to give one that starts with "-", write ${flag}=-1h`,
      { cause: error },
    );
  }
  const noValue = /^Option '(?:-\w, )?(--[\w-]+)' does not take an argument/.exec(text);
  if (noValue !== null) {
    return new ConfigError(
      `${noValue[1]} takes no value (use ${noValue[1]} or --no-${(noValue[1] ?? "").slice(2)})`,
      {
        cause: error,
      },
    );
  }
  return error;
}

/** Parses a command's arguments against its specs (which include GLOBAL_OPTIONS). */
export function parseCommandLine<S extends CliOptionSpecs>(
  specs: S,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): CommandLine<S> {
  const { byFlag, byShort } = lookup(specs);
  const rest: string[] = [];
  const given = new Set<string>();
  const repeated = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? "";
    if (token === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    let entry: [string, CliOptionSpec] | undefined;
    let inline: string | undefined;
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      const flag = eq === -1 ? token.slice(2) : token.slice(2, eq);
      inline = eq === -1 ? undefined : token.slice(eq + 1);
      entry = byFlag.get(flag);
      const negated = flag.startsWith("no-") ? byFlag.get(flag.slice(3)) : undefined;
      if (entry === undefined && negated !== undefined && negated[1].type === "boolean") {
        given.add(negated[0]);
      }
    } else if (token.startsWith("-") && token.length === 2) {
      entry = byShort.get(token.slice(1));
    }
    if (entry === undefined) {
      rest.push(token);
      continue;
    }
    const [name, spec] = entry;
    given.add(name);
    if (spec.repeat !== undefined) {
      const value = inline ?? argv[i + 1];
      if (value === undefined) {
        throw new ConfigError(`option '--${kebab(name)} <value>' argument missing`);
      }
      if (inline === undefined) i++;
      const values = repeated.get(name) ?? [];
      values.push(...(spec.repeat === "requirements" ? splitRequirements(value) : [value]));
      repeated.set(name, values);
      continue;
    }
    rest.push(token);
    if (inline === undefined && takesValue(spec) && i + 1 < argv.length) {
      rest.push(argv[i + 1] ?? "");
      i++;
    }
  }
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(specs as OptionSpecs, rest, env, { allowPositionals: true });
  } catch (error) {
    throw error instanceof ConfigError ? plainer(error, specs) : error;
  }
  const options: Record<string, unknown> = { ...parsed.options };
  for (const [name, values] of repeated) options[name] = values;
  return {
    options: options as ParsedOptions<S>,
    positionals: parsed.positionals,
    help: parsed.help,
    given,
  };
}
