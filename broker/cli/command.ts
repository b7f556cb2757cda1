/**
 * How a command is declared (name, usage, flags, argument count, run) and executed: parse its
 * flags together with the global ones, print --help, connect, run, and turn whatever it throws
 * into a message and an exit code.
 */
import { stringify as toYaml } from "yaml";
import { ConfigError, optionsHelp } from "../../core/index.js";
import {
  type CliOptionSpecs,
  type CommandLine,
  GLOBAL_OPTIONS,
  type GlobalOptions,
  parseCommandLine,
} from "./args.js";
import { BrokerConnection } from "./client.js";
import { renderFailure } from "./errors.js";
import { EXIT } from "./exit-codes.js";
import { type CliIo, Output } from "./io.js";
import { transportSecurity } from "./tls-flags.js";

export interface CommandContext {
  readonly io: CliIo;
  readonly out: Output;
  readonly global: GlobalOptions;
  readonly broker: BrokerConnection;
  readonly now: () => number;
  readonly signal: AbortSignal | undefined;
}

type WithGlobals<S extends CliOptionSpecs> = typeof GLOBAL_OPTIONS & S;

export interface CommandDefinition<S extends CliOptionSpecs> {
  readonly name: string;
  /** One line for `leasectl help`. */
  readonly summary: string;
  /** Arguments after the name, e.g. "<lease-id>". */
  readonly args?: string;
  /** More help text (examples, rules). */
  readonly details?: string;
  readonly options: S;
  /** Positional arguments accepted: [min, max]. */
  readonly arity: readonly [number, number];
  run(ctx: CommandContext, line: CommandLine<WithGlobals<S>>): Promise<number>;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  help(): string;
  execute(io: CliIo, argv: readonly string[]): Promise<number>;
}

/** Prints `value` as JSON or YAML per -o, or the table lines. */
export function emit(ctx: CommandContext, value: unknown, lines: () => readonly string[]): void {
  switch (ctx.global.output) {
    case "json":
      ctx.out.out(JSON.stringify(value, null, 2));
      return;
    case "yaml":
      ctx.io.stdout.write(toYaml(value));
      return;
    default:
      ctx.out.out(...lines());
  }
}

export function defineCommand<S extends CliOptionSpecs>(def: CommandDefinition<S>): Command {
  const specs = { ...GLOBAL_OPTIONS, ...def.options } as WithGlobals<S>;
  const usage = `leasectl ${def.name}${def.args === undefined ? "" : ` ${def.args}`} [flags]`;
  const help = (): string =>
    [
      `Usage: ${usage}`,
      "",
      def.summary,
      ...(def.details === undefined ? [] : ["", def.details]),
      ...(Object.keys(def.options).length === 0 ? [] : ["", "Flags:", optionsHelp(def.options)]),
      "",
      "Global flags:",
      optionsHelp(GLOBAL_OPTIONS),
      "",
    ].join("\n");

  return {
    name: def.name,
    summary: def.summary,
    help,
    async execute(io, argv) {
      const out = new Output(io);
      let verbose = argv.includes("-v") || argv.includes("--verbose");
      let broker: BrokerConnection | undefined;
      try {
        const line = parseCommandLine(specs, argv, io.env);
        if (line.help) {
          io.stdout.write(help());
          return EXIT.ok;
        }
        const [min, max] = def.arity;
        const n = line.positionals.length;
        if (n < min || n > max) {
          const want = min === max ? `${min}` : `${min} to ${max}`;
          throw new ConfigError(
            `${def.name} takes ${want} argument${max === 1 ? "" : "s"}${def.args === undefined ? "" : ` (${def.args})`}; got ${n === 0 ? "none" : line.positionals.map((p) => JSON.stringify(p)).join(" ")}`,
          );
        }
        const global = line.options as GlobalOptions;
        verbose = global.verbose;
        broker = new BrokerConnection({
          address: global.server,
          timeoutMs: global.timeout,
          security: transportSecurity(global),
          ...(global.token === undefined ? {} : { token: global.token }),
          verbose,
          note: (text) => out.err(text),
          ...(io.signal === undefined ? {} : { signal: io.signal }),
        });
        const ctx: CommandContext = {
          io,
          out,
          global,
          broker,
          now: io.now ?? Date.now,
          signal: io.signal,
        };
        return await def.run(ctx, line);
      } catch (error) {
        if (io.signal?.aborted === true) return EXIT.interrupted;
        const failure = renderFailure(error, { command: def.name, verbose });
        out.err(...failure.lines);
        return failure.code;
      } finally {
        broker?.close();
      }
    },
  };
}

/** Each page's items, following next_page_token when `all` (at most `maxPages` pages). */
export async function collectPages<T, P extends { nextPageToken: string }>(
  first: string,
  all: boolean,
  fetch: (pageToken: string) => Promise<P>,
  items: (page: P) => readonly T[],
): Promise<{ items: T[]; pages: P[] }> {
  const pages: P[] = [];
  const out: T[] = [];
  const seen = new Set<string>();
  let token = first;
  for (;;) {
    const page = await fetch(token);
    pages.push(page);
    out.push(...items(page));
    if (!all || page.nextPageToken === "") break;
    if (seen.has(page.nextPageToken)) {
      throw new Error(`the broker returned page token ${JSON.stringify(page.nextPageToken)} twice`);
    }
    seen.add(page.nextPageToken);
    token = page.nextPageToken;
  }
  return { items: out, pages };
}
