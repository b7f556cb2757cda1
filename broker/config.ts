/**
 * The broker's configuration: flags, then LEASEBROKER_* environment variables, then defaults.
 */
import { ConfigError, type OptionSpecs, type ParsedOptions, parseDuration } from "../core/index.js";
import { checkSecurity, SECURITY_OPTIONS } from "./auth/index.js";

const hostPort = (value: string): string | undefined => {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  if (match === null) return "expected host:port, e.g. 127.0.0.1:50051";
  const port = Number(match[2]);
  return port > 65_535 ? "the port must be at most 65535" : undefined;
};

export const BROKER_OPTIONS = {
  grpcAddress: {
    type: "string",
    description: "where the gRPC API listens",
    env: "LEASEBROKER_GRPC_ADDRESS",
    default: "127.0.0.1:50051",
    check: hostPort,
  },
  httpAddress: {
    type: "string",
    description: "where the HTTP server listens: the dashboard, /metrics, /healthz, /readyz",
    env: "LEASEBROKER_HTTP_ADDRESS",
    default: "127.0.0.1:8080",
    check: hostPort,
  },
  store: {
    type: "string",
    description: "where state is kept",
    env: "LEASEBROKER_STORE",
    choices: ["memory"],
    default: "memory",
  },
  bus: {
    type: "string",
    description: "how agents reach the broker: inproc (agents in this process) or nats",
    env: "LEASEBROKER_BUS",
    choices: ["inproc", "nats"],
    default: "inproc",
  },
  natsUrl: {
    type: "list",
    description: "NATS servers, with --bus nats",
    env: "LEASEBROKER_NATS_URL",
  },
  natsUser: { type: "string", description: "NATS user", env: "LEASEBROKER_NATS_USER" },
  natsPassword: { type: "string", description: "NATS password", env: "LEASEBROKER_NATS_PASSWORD" },
  natsToken: { type: "string", description: "NATS token", env: "LEASEBROKER_NATS_TOKEN" },
  simHosts: {
    type: "integer",
    description:
      "simulated hosts (sim-driver agents) to run in this process (default 5 with --bus inproc, 0 with nats)",
    env: "LEASEBROKER_SIM_HOSTS",
    min: 0,
    max: 10_000,
  },
  heartbeatInterval: {
    type: "duration",
    description: "agent heartbeat interval (told to agents)",
    env: "LEASEBROKER_HEARTBEAT_INTERVAL",
    default: 1000,
    min: 100,
  },
  hostSuspectAfter: {
    type: "duration",
    description: "a host without heartbeats is SUSPECT after this",
    env: "LEASEBROKER_HOST_SUSPECT_AFTER",
    default: 3000,
    min: 100,
  },
  hostTtl: {
    type: "duration",
    description: "a host without heartbeats is DOWN after this; its leases follow on_host_failure",
    env: "LEASEBROKER_HOST_TTL",
    default: 10_000,
    min: 200,
  },
  simHostCpus: {
    type: "integer",
    description: "vCPUs of each simulated host",
    env: "LEASEBROKER_SIM_HOST_CPUS",
    min: 1,
    max: 1024,
    default: 16,
  },
  simHostMemory: {
    type: "integer",
    description: "memory of each simulated host, GiB",
    env: "LEASEBROKER_SIM_HOST_MEMORY_GIB",
    min: 1,
    max: 65_536,
    default: 64,
  },
  policy: {
    type: "string",
    description: "cluster placement policy",
    env: "LEASEBROKER_POLICY",
    choices: ["binpack", "spread"],
    default: "binpack",
  },
  expiryNotice: {
    type: "duration",
    description: "warn this long before a lease ends",
    env: "LEASEBROKER_EXPIRY_NOTICE",
    default: 300_000,
  },
  stopGrace: {
    type: "duration",
    description: "time a workload gets to stop before it is killed",
    env: "LEASEBROKER_STOP_GRACE",
    default: 30_000,
  },
  preemptionNotice: {
    type: "duration",
    description: "time a preempted workload keeps running after its notice",
    env: "LEASEBROKER_PREEMPTION_NOTICE",
    default: 120_000,
  },
  queueTimeout: {
    type: "duration",
    description: "longest an immediate lease waits in the queue",
    env: "LEASEBROKER_QUEUE_TIMEOUT",
    default: 3_600_000,
    min: 1000,
  },
  maxDuration: {
    type: "duration",
    description: "longest lease admitted",
    env: "LEASEBROKER_MAX_DURATION",
    default: parseDuration("90d") ?? 0,
    min: 1000,
  },
  migrationsOutPerHost: {
    type: "integer",
    description: "live migrations leaving one host at a time",
    env: "LEASEBROKER_MIGRATIONS_OUT_PER_HOST",
    default: 2,
    min: 1,
    max: 64,
  },
  migrationsInPerHost: {
    type: "integer",
    description: "live migrations arriving at one host at a time",
    env: "LEASEBROKER_MIGRATIONS_IN_PER_HOST",
    default: 2,
    min: 1,
    max: 64,
  },
  migrationsMax: {
    type: "integer",
    description: "live migrations in flight in the cluster",
    env: "LEASEBROKER_MIGRATIONS_MAX",
    default: 8,
    min: 1,
    max: 10_000,
  },
  migrationProgressTimeout: {
    type: "duration",
    description: "a migration without progress for this long is aborted",
    env: "LEASEBROKER_MIGRATION_PROGRESS_TIMEOUT",
    default: 150_000,
    min: 1000,
  },
  drainTimeout: {
    type: "duration",
    description: "DrainHost without a deadline: the host must be empty this long after",
    env: "LEASEBROKER_DRAIN_TIMEOUT",
    default: 3_600_000,
    min: 1000,
  },
  makeRoom: {
    type: "string",
    description:
      "make room at admission: a lease that fits no single host is admitted after live-migrating the fewest leases that open one",
    env: "LEASEBROKER_MAKE_ROOM",
    choices: ["on", "off"],
    default: "on",
  },
  rebalanceLevel: {
    type: "string",
    description: "periodic rebalance: off, or a level from 1 (conservative) to 5 (aggressive)",
    env: "LEASEBROKER_REBALANCE_LEVEL",
    choices: ["off", "1", "2", "3", "4", "5"],
    default: "off",
  },
  rebalanceInterval: {
    type: "duration",
    description: "between periodic rebalance rounds",
    env: "LEASEBROKER_REBALANCE_INTERVAL",
    default: 300_000,
    min: 1000,
  },
  rebalanceMinRemaining: {
    type: "duration",
    description: "rebalance never moves a lease with less than this left",
    env: "LEASEBROKER_REBALANCE_MIN_REMAINING",
    default: 1_800_000,
    min: 0,
  },
  logLevel: {
    type: "string",
    description: "log level",
    env: "LEASEBROKER_LOG_LEVEL",
    choices: ["fatal", "error", "warn", "info", "debug", "trace", "silent"],
    default: "info",
  },
  ...SECURITY_OPTIONS,
} as const satisfies OptionSpecs;

export type BrokerConfig = ParsedOptions<typeof BROKER_OPTIONS>;

/** Checks the combinations no single flag can; a problem is a ConfigError (exit 2). */
export function checkCombinations(config: BrokerConfig): void {
  if (config.httpAddress === config.grpcAddress && !config.httpAddress.endsWith(":0")) {
    throw new ConfigError("--http-address and --grpc-address must differ (one port each)");
  }
  if (config.bus === "nats" && config.natsUrl.length === 0) {
    throw new ConfigError(
      "--bus nats needs --nats-url (or LEASEBROKER_NATS_URL), e.g. nats://127.0.0.1:4222",
    );
  }
  if (config.bus === "inproc" && config.natsUrl.length > 0) {
    throw new ConfigError(
      "--nats-url is set but --bus is inproc: add --bus nats, or drop --nats-url",
    );
  }
  if (config.hostSuspectAfter >= config.hostTtl) {
    throw new ConfigError("--host-suspect-after must be shorter than --host-ttl");
  }
  if (config.heartbeatInterval * 2 > config.hostSuspectAfter) {
    throw new ConfigError(
      "--heartbeat-interval must be at most half of --host-suspect-after, or one late beat makes a host suspect",
    );
  }
  checkSecurity(config);
}
