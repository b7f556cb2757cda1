#!/usr/bin/env node
/**
 * `leasebroker-agent`: the host agent process. Connects to NATS, registers the host with the
 * broker, heartbeats and runs the broker's commands through its driver. JSON logs on stdout.
 * Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad flag or value, 1 for anything else.
 */
import { NatsBus } from "../bus/index.js";
import {
  ConfigError,
  createLogger,
  EXIT_CONFIG,
  errorMessage,
  type Logger,
  optionsHelp,
  parseOptions,
  RealClock,
} from "../core/index.js";
import { Agent } from "./agent.js";
import { type AgentConfig, agentOptionSpecs, resolveAgentConfig } from "./config.js";
import type { Driver } from "./driver.js";
import { QemuDriver } from "./drivers/qemu/qemu-driver.js";
import { SimDriver } from "./drivers/sim-driver.js";
import { AGENT_VERSION } from "./version.js";

/** Bound on a clean shutdown; past it the process exits with 1 rather than hang under systemd. */
const SHUTDOWN_LIMIT_MS = 15_000;

const SPECS = agentOptionSpecs();

const USAGE = `leasebroker-agent ${AGENT_VERSION} — the leasebroker host agent

Usage: leasebroker-agent [options]

Registers this host with the broker over NATS (subjects lb.v1.host.<host-id>.*), heartbeats, and
runs the broker's commands through a driver. Flags override LEASEBROKER_AGENT_* environment
variables, which override the defaults; capacity defaults to what the machine has.

Drivers:
  sim    simulated VMs, for tests and demos. They live in the agent's memory and END WITH THE
         AGENT PROCESS (a real driver's workloads keep running across an agent restart).
  qemu   each workload is a qemu-system-x86_64 process driven over QMP (KVM when /dev/kvm is
         usable, TCG otherwise); files under <data-dir>/qemu/. QEMU keeps running when the agent
         stops, and a restarted agent re-adopts it. Live migration is QEMU's, over TCP on --address.

Options:
${optionsHelp(SPECS)}
  -h, --help                         this help

SIGTERM or SIGINT: stop heartbeats, finish commands in flight, drain the NATS connection, exit 0.`;

function exitAfterFlush(logger: Logger | undefined, code: number): never {
  logger?.flush();
  process.exit(code);
}

async function run(config: AgentConfig): Promise<void> {
  const logger = createLogger({
    level: config.logLevel,
    name: "agent",
    base: { hostId: config.hostId },
  });
  const clock = new RealClock();
  let agent: Agent | undefined;
  let bus: NatsBus | undefined;
  let driver: Driver | undefined;
  let stopping = false;

  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    // RealClock timers do not keep the process alive: this one only fires if something else does.
    clock.setTimer(SHUTDOWN_LIMIT_MS, () => {
      logger.error({ limitMs: SHUTDOWN_LIMIT_MS }, "shutdown took too long");
      exitAfterFlush(logger, 1);
    });
    void (async () => {
      try {
        await agent?.stop();
        await driver?.close();
        await bus?.drain();
        logger.info("stopped");
        exitAfterFlush(logger, 0);
      } catch (error) {
        logger.error({ err: error }, `shutdown failed: ${errorMessage(error)}`);
        exitAfterFlush(logger, 1);
      }
    })();
  };
  // Installed before connecting: an agent waiting for NATS must still stop on SIGTERM.
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  logger.info(
    {
      version: AGENT_VERSION,
      // A URL may carry credentials (nats://user:pass@host): never log them.
      nats: config.natsServers.map((u) => u.replace(/\/\/[^@/]*@/, "//***@")),
      driver: config.driver,
      capacity: config.capacity,
      ratios: config.ratios,
      reserved: config.reserved,
      labels: config.labels,
      seed: config.seed,
    },
    "agent starting",
  );
  bus = await NatsBus.connect({
    servers: config.natsServers,
    user: config.natsUser,
    pass: config.natsPassword,
    token: config.natsToken,
    name: `leasebroker-agent:${config.hostId}`,
    // Its own inbox, which deploy/nats/nats.conf lets it (and only it) subscribe to.
    inboxPrefix: `_INBOX.${config.hostId}`,
    // An agent may come up before NATS does (boot order): keep trying instead of failing.
    waitOnFirstConnect: true,
    reconnectTimeWaitMs: 1000,
    logger,
  });
  if (stopping) return;
  logger.info({ server: bus.server }, "connected to NATS");
  if (config.driver === "qemu") {
    const qemu = new QemuDriver({
      clock,
      dataDir: config.dataDir,
      binary: config.qemu.binary,
      accel: config.qemu.accel,
      address: config.address === "" ? undefined : config.address,
      imageDir: config.qemu.imageDir,
      logger,
    });
    // Before the first Hello, so that it lists the VMs that kept running while the agent was away.
    const adopted = await qemu.recover();
    logger.info({ accel: qemu.accel, adopted }, "qemu driver ready");
    driver = qemu;
  } else {
    driver = new SimDriver({ clock, seed: config.seed, logger });
  }
  agent = new Agent({
    hostId: config.hostId,
    bus,
    driver,
    clock,
    capacity: config.capacity,
    ratios: config.ratios,
    reserved: config.reserved,
    labels: config.labels,
    address: config.address,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    helloTimeoutMs: config.helloTimeoutMs,
    defaultGraceMs: config.stopGraceMs,
    seed: config.seed,
    logger,
  });
  await agent.start();
}

async function main(argv: readonly string[]): Promise<void> {
  let config: AgentConfig;
  try {
    const parsed = parseOptions(SPECS, argv, process.env);
    if (parsed.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    config = await resolveAgentConfig(parsed.options);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(
        `leasebroker-agent: ${error.message}\nRun leasebroker-agent --help for the options.\n`,
      );
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  try {
    await run(config);
  } catch (error) {
    process.stderr.write(`leasebroker-agent: cannot start: ${errorMessage(error)}\n`);
    process.exit(1);
  }
}

await main(process.argv.slice(2));
