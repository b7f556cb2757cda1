#!/usr/bin/env node
/**
 * `leasebroker`: the broker process. With no configuration it runs all-in-one: memory store,
 * in-process simulated hosts, gRPC on 127.0.0.1:50051. Logs are JSON lines on stdout; the banner
 * for people is on stderr.
 */
import { type Bus, InProcessHub, NatsBus } from "../bus/index.js";
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
import { DEFAULT_PLACEMENT_POLICY } from "../placement/index.js";
import { type SimAgents, startSimAgents } from "./all-in-one.js";
import { type LoadedSecurity, loadSecurity, QuotaLedger } from "./auth/index.js";
import { Broker, type BrokerHaOptions } from "./broker.js";
import {
  autoscaleOptions,
  BROKER_OPTIONS,
  type BrokerConfig,
  checkCombinations,
} from "./config.js";
import { etcdCluster } from "./ha/index.js";
import { rebalanceSetting } from "./migrations/index.js";

const USAGE = `leasebroker — a brokering cluster scheduler for virtual workloads

Usage: leasebroker [serve] [options]
       leasebroker simulate [options]   replay a trace faster than real time (simulate --help)

Options:
${optionsHelp(BROKER_OPTIONS)}
  -h, --help                         this help`;

interface BusConnections {
  readonly broker: Bus;
  readonly agent: (hostId: string) => Bus | Promise<Bus>;
  close(): Promise<void>;
}

async function connectBus(
  config: BrokerConfig,
  clock: RealClock,
  logger: Logger,
): Promise<BusConnections> {
  if (config.bus === "inproc") {
    const hub = new InProcessHub({ clock, logger });
    return {
      broker: hub.connect("broker"),
      agent: (hostId) => hub.connect(hostId),
      close: async () => {},
    };
  }
  const options = {
    servers: [...config.natsUrl],
    waitOnFirstConnect: true,
    ...(config.natsUser === undefined ? {} : { user: config.natsUser }),
    ...(config.natsPassword === undefined ? {} : { pass: config.natsPassword }),
    ...(config.natsToken === undefined ? {} : { token: config.natsToken }),
  };
  const broker = await NatsBus.connect({ ...options, name: "leasebroker" });
  // Simulated agents in this process share one connection: here they are a load generator.
  let shared: Promise<Bus> | undefined;
  return {
    broker,
    agent: () => {
      shared ??= NatsBus.connect({ ...options, name: "leasebroker-sim-agents" });
      return shared;
    },
    close: async () => {
      await broker.drain();
      if (shared !== undefined) await (await shared).drain();
    },
  };
}

/** `--store etcd`: the etcd store and the leader election (issue 6); a bad TLS file exits 2. */
function highAvailability(config: BrokerConfig, logger: Logger): BrokerHaOptions | undefined {
  if (config.store !== "etcd") return undefined;
  try {
    return etcdCluster({
      endpoints: config.etcdEndpoints,
      prefix: config.etcdPrefix,
      caFile: config.etcdCaFile,
      certFile: config.etcdCertFile,
      keyFile: config.etcdKeyFile,
      electionTtlMs: config.electionTtl,
      advertiseAddress: config.advertiseAddress ?? config.grpcAddress,
      logger,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`leasebroker: ${error.message}\n`);
    process.exit(EXIT_CONFIG);
  }
}

async function serve(config: BrokerConfig, security: LoadedSecurity): Promise<void> {
  const logger = createLogger({ level: config.logLevel as "info", name: "broker" });
  const clock = new RealClock();
  const simHosts = config.simHosts ?? (config.bus === "inproc" ? 5 : 0);
  const ha = highAvailability(config, logger);
  const bus = await connectBus(config, clock, logger);
  const broker = new Broker({
    ...(ha === undefined ? {} : { ha }),
    clock,
    logger,
    bus: bus.broker,
    heartbeatIntervalMs: config.heartbeatInterval,
    coalesceCommands: true,
    liveness: { suspectAfterMs: config.hostSuspectAfter, downAfterMs: config.hostTtl },
    grpcAddress: config.grpcAddress,
    httpAddress: config.httpAddress,
    policy: { ...DEFAULT_PLACEMENT_POLICY, fit: config.policy === "spread" ? "spread" : "binpack" },
    limits: { maxDurationMs: config.maxDuration },
    api: {
      maxReceiveBytes: config.grpcMaxReceiveBytes,
      ...(security.credentials === undefined ? {} : { credentials: security.credentials }),
      ...(security.tokens === undefined ? {} : { auth: { tokens: security.tokens } }),
    },
    ...(security.tokens === undefined ? {} : { admission: new QuotaLedger(security.tokens) }),
    timings: {
      expiryNoticeMs: config.expiryNotice,
      stopGraceMs: config.stopGrace,
      preemptionNoticeMs: config.preemptionNotice,
      queueTimeoutMs: config.queueTimeout,
    },
    migrationLimits: {
      maxOutgoingPerHost: config.migrationsOutPerHost,
      maxIncomingPerHost: config.migrationsInPerHost,
      maxInFlight: config.migrationsMax,
      progressTimeoutMs: config.migrationProgressTimeout,
      drainTimeoutMs: config.drainTimeout,
    },
    autoscale: autoscaleOptions(config, bus.broker),
    planners: {
      makeRoom: config.makeRoom === "on",
      rebalance: rebalanceSetting(config.rebalanceLevel),
      rebalanceIntervalMs: config.rebalanceInterval,
      rebalanceMinRemainingMs: config.rebalanceMinRemaining,
    },
  });
  let port: number;
  let agents: SimAgents | undefined;
  try {
    port = await broker.start();
    agents = await startSimAgents({
      count: simHosts,
      cpus: config.simHostCpus,
      memoryGib: config.simHostMemory,
      clock,
      logger,
      connect: bus.agent,
      heartbeatIntervalMs: config.heartbeatInterval,
    });
  } catch (error) {
    process.stderr.write(`leasebroker: cannot start: ${errorMessage(error)}\n`);
    process.exit(1);
  }
  const host = config.grpcAddress.replace(/:\d+$/, "");
  const address = `${host}:${port}`;
  process.stderr.write(
    [
      "",
      `leasebroker is serving (${config.store} store; ${config.bus === "inproc" ? "agents in this process" : `agents over NATS at ${config.natsUrl.join(",")}`}; ${simHosts} simulated hosts here; ${config.policy} placement)`,
      `  Dashboard      ${broker.dashboard?.url ?? "(off)"}   (also /metrics, /healthz, /readyz)`,
      `  gRPC API       ${address}   (grpc.health.v1 and server reflection included)`,
      `  security       ${security.summary}`,
      "",
      "Try, in another shell:",
      `  npx leasectl --server ${address} hosts`,
      `  npx leasectl --server ${address} submit --tenant demo --cpu 2 --memory 4Gi --duration 10m`,
      `  npx leasectl --server ${address} list`,
      `  npx leasectl --server ${address} watch`,
      "",
      "Stop with Ctrl-C.",
      "",
    ].join("\n"),
  );
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    (async () => {
      await agents?.stop();
      // SIGTERM: NOT_SERVING, resign, in-flight calls, drain NATS, close etcd (in that order).
      await broker.stop(config.shutdownGrace, { beforeStoreClose: () => bus.close() });
    })().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === "simulate") {
    // Loaded only when asked for: serving needs none of it.
    const { runSimulate } = await import("./simulate/index.js");
    process.exitCode = await runSimulate(argv.slice(1));
    return;
  }
  let parsed: ReturnType<typeof parseOptions<typeof BROKER_OPTIONS>>;
  let security: LoadedSecurity;
  try {
    parsed = parseOptions(BROKER_OPTIONS, argv, process.env, { allowPositionals: true });
    const [command = "serve", ...rest] = parsed.positionals;
    if (parsed.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (command !== "serve")
      throw new ConfigError(
        `unknown command ${JSON.stringify(command)} (commands: serve, simulate)`,
      );
    if (rest.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(rest[0])}`);
    checkCombinations(parsed.options);
    security = loadSecurity(parsed.options);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(
        `leasebroker: ${error.message}\nRun leasebroker --help for the options.\n`,
      );
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  await serve(parsed.options, security);
}

await main(process.argv.slice(2));
