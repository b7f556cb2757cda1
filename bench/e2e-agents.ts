/**
 * The agent host of the end-to-end benchmark: `--agents` real `Agent`s with the sim driver in one
 * process, over `--connections` NATS connections (agents share them round-robin). Prints
 * `E2E-AGENTS-READY <n>` once every agent's Hello was accepted. Stops (agents, then the
 * connections drained) on SIGTERM/SIGINT, and when its stdin closes (the benchmark is gone).
 *
 *   node dist/bench/e2e-agents.js --nats-url nats://127.0.0.1:4222 --agents 1000 --boot-ms 50
 */
import { startSimAgents } from "../broker/all-in-one.js";
import { type Bus, NatsBus } from "../bus/index.js";
import { createLogger, errorMessage, RealClock } from "../core/index.js";

interface Options {
  natsUrl: string;
  agents: number;
  connections: number;
  bootMs: number;
  cpus: number;
  memoryGib: number;
  seed: number;
  readyTimeoutMs: number;
}

function parse(argv: readonly string[]): Options {
  const o: Options = {
    natsUrl: "",
    agents: 1000,
    connections: 4,
    bootMs: 10,
    cpus: 16,
    memoryGib: 64,
    seed: 1,
    readyTimeoutMs: 60_000,
  };
  const fail = (why: string): never => {
    process.stderr.write(`e2e-agents: ${why}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i] ?? "";
    const value = argv[i + 1];
    if (value === undefined) fail(`${flag} needs a value`);
    const n = Number(value);
    const int = (): number =>
      Number.isInteger(n) && n >= 0 ? n : fail(`${flag}: expected a non-negative integer`);
    switch (flag) {
      case "--nats-url":
        o.natsUrl = value as string;
        break;
      case "--agents":
        o.agents = int();
        break;
      case "--connections":
        o.connections = Math.max(1, int());
        break;
      case "--boot-ms":
        o.bootMs = int();
        break;
      case "--cpus":
        o.cpus = int();
        break;
      case "--memory-gib":
        o.memoryGib = int();
        break;
      case "--seed":
        o.seed = int();
        break;
      case "--ready-timeout-ms":
        o.readyTimeoutMs = int();
        break;
      default:
        fail(`unknown flag ${flag}`);
    }
  }
  if (o.natsUrl === "") fail("--nats-url is required");
  return o;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const logger = createLogger({ level: "warn", name: "e2e-agents" });
  const clock = new RealClock();
  const buses: NatsBus[] = [];
  for (let i = 0; i < o.connections; i++) {
    buses.push(
      await NatsBus.connect({
        servers: o.natsUrl,
        name: `e2e-agents-${i}`,
        logger: logger,
        // 250 agents a connection: one socket write per turn, not one per beat, reply, event.
        coalescePublishes: true,
      }),
    );
  }
  let next = 0;
  const agents = await startSimAgents({
    count: o.agents,
    cpus: o.cpus,
    memoryGib: o.memoryGib,
    bootMs: o.bootMs,
    // Stops are not measured; keep them short so the hosts free up quickly.
    shutdownMs: 10,
    clock,
    logger,
    seed: o.seed,
    connect: (): Bus => buses[next++ % buses.length] as NatsBus,
  });
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    (async () => {
      await agents.stop();
      await Promise.all(buses.map((b) => b.drain().catch(() => b.close())));
    })().then(
      () => process.exit(code),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  process.stdin.on("end", () => stop(0));
  process.stdin.on("error", () => stop(0));
  process.stdin.resume();
  const timeout = setTimeout(() => {
    process.stderr.write(`e2e-agents: not all agents registered in ${o.readyTimeoutMs} ms\n`);
    stop(1);
  }, o.readyTimeoutMs);
  await Promise.all(agents.agents.map((a) => a.registered()));
  clearTimeout(timeout);
  process.stdout.write(`E2E-AGENTS-READY ${agents.agents.length}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`e2e-agents: ${errorMessage(error)}\n`);
  process.exit(1);
});
