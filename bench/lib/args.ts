/** Tiny flag parser for the benchmarks: `--name value` / `--name=value` / `--flag`; bad flag → exit 2. */

export interface FlagSpec {
  readonly [name: string]: {
    readonly kind: "number" | "boolean" | "string";
    readonly default: number | boolean | string;
    readonly help: string;
  };
}

export type Flags<S extends FlagSpec> = {
  [K in keyof S]: S[K]["kind"] extends "number"
    ? number
    : S[K]["kind"] extends "string"
      ? string
      : boolean;
};

export function usage(command: string, spec: FlagSpec): string {
  const lines = [`usage: ${command} [flags]`];
  for (const [name, f] of Object.entries(spec)) {
    lines.push(
      `  --${name}${f.kind === "number" ? " N" : f.kind === "string" ? " VALUE" : ""}  ${f.help} (default ${f.default === "" ? "none" : String(f.default)})`,
    );
  }
  return lines.join("\n");
}

export function parseFlags<S extends FlagSpec>(
  command: string,
  spec: S,
  argv: readonly string[],
): Flags<S> {
  const out: Record<string, number | boolean | string> = {};
  for (const [name, f] of Object.entries(spec)) out[name] = f.default;
  const fail = (msg: string): never => {
    process.stderr.write(`${command}: ${msg}\n${usage(command, spec)}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${usage(command, spec)}\n`);
      process.exit(0);
    }
    if (!arg.startsWith("--")) fail(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const f = spec[name];
    if (f === undefined) fail(`unknown flag --${name}`);
    const def = f as S[string];
    if (def.kind === "boolean") {
      if (eq >= 0) fail(`--${name} takes no value`);
      out[name] = true;
      continue;
    }
    const text = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (text === undefined || (def.kind === "string" && text === ""))
      fail(`--${name} needs a value`);
    if (def.kind === "string") {
      out[name] = text as string;
      continue;
    }
    const v = Number(text);
    if (!Number.isFinite(v) || v < 0 || !Number.isInteger(v))
      fail(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
    out[name] = v;
  }
  return out as Flags<S>;
}
