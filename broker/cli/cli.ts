/**
 * `runCli(argv, io)`: find the command, run it, return the exit code. Everything the CLI prints
 * goes through `io`, so tests run it in-process.
 */
import { optionsHelp } from "../../core/index.js";
import { GLOBAL_OPTIONS, splitCommand } from "./args.js";
import type { Command } from "./command.js";
import { EXIT, EXIT_CODES_HELP } from "./exit-codes.js";
import {
  capacityCommand,
  cordonCommand,
  hostCommand,
  hostsCommand,
  uncordonCommand,
} from "./host-commands.js";
import type { CliIo } from "./io.js";
import {
  cancelCommand,
  explainCommand,
  extendCommand,
  getCommand,
  listCommand,
  resumeCommand,
  submitCommand,
  suspendCommand,
} from "./lease-commands.js";
import {
  abortMigrationCommand,
  autoscaleCommand,
  drainCommand,
  migrateCommand,
  migrationCommand,
  migrationsCommand,
  rebalanceCommand,
} from "./operation-commands.js";
import { watchCommand } from "./watch.js";

const GROUPS: readonly (readonly [string, readonly Command[]])[] = [
  [
    "Leases",
    [
      submitCommand,
      explainCommand,
      getCommand,
      listCommand,
      cancelCommand,
      extendCommand,
      suspendCommand,
      resumeCommand,
      watchCommand,
    ],
  ],
  ["Hosts", [hostsCommand, hostCommand, cordonCommand, uncordonCommand, capacityCommand]],
  [
    "Migrations and operations",
    [
      drainCommand,
      migrateCommand,
      migrationsCommand,
      migrationCommand,
      abortMigrationCommand,
      rebalanceCommand,
      autoscaleCommand,
    ],
  ],
];

/** Every command, by name. */
export const COMMANDS: ReadonlyMap<string, Command> = new Map(
  GROUPS.flatMap(([, commands]) => commands.map((c) => [c.name, c] as const)),
);

/** The text of `leasectl help`. */
export function generalHelp(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((n) => n.length));
  const groups = GROUPS.flatMap(([title, commands]) => [
    `${title}:`,
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
  ]);
  return [
    "leasectl: the lease broker's command-line client.",
    "",
    "Usage: leasectl <command> [arguments] [flags]",
    "",
    ...groups,
    "Global flags (any command):",
    optionsHelp(GLOBAL_OPTIONS),
    "",
    "Values: times are RFC 3339 with a zone (2030-01-02T15:04:05Z), now, or relative (+30m, -1h);",
    "durations 300ms, 90s, 30m, 2h, 7d, 1h30m; CPU in cores (2, 0.5) or millicores (500m); memory",
    "512Mi, 4Gi, 1Ti. Tables show CPU in cores, memory in Mi/Gi/Ti, list times relative to now and",
    "single objects' and events' times in local RFC 3339.",
    "",
    EXIT_CODES_HELP,
    "",
    "Run 'leasectl <command> --help' for a command's flags.",
    "",
  ].join("\n");
}

/** Runs leasectl with `argv` (without node and the script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const { command, rest } = splitCommand(argv);
  if (command === undefined) {
    if (rest.includes("-h") || rest.includes("--help")) {
      io.stdout.write(generalHelp());
      return EXIT.ok;
    }
    io.stderr.write(generalHelp());
    io.stderr.write("error: no command given\n");
    return EXIT.usage;
  }
  if (command === "help") {
    const topic = rest.find((a) => !a.startsWith("-"));
    const target = topic === undefined ? undefined : COMMANDS.get(topic);
    if (topic !== undefined && target === undefined) {
      io.stderr.write(`error: unknown command ${JSON.stringify(topic)} (see leasectl help)\n`);
      return EXIT.usage;
    }
    io.stdout.write(target === undefined ? generalHelp() : target.help());
    return EXIT.ok;
  }
  const found = COMMANDS.get(command);
  if (found === undefined) {
    const close = [...COMMANDS.keys()].filter(
      (name) => name.startsWith(command.slice(0, 3)) || command.startsWith(name),
    );
    io.stderr.write(
      `error: unknown command ${JSON.stringify(command)}${close.length > 0 ? ` (did you mean ${close.join(" or ")}?)` : ""}\n  (see leasectl help)\n`,
    );
    return EXIT.usage;
  }
  return found.execute(io, rest);
}
