/**
 * The broker's configuration: flags, then LEASEBROKER_* environment variables, then defaults.
 */
import { ConfigError, type OptionSpecs, type ParsedOptions, parseDuration } from "../core/index.js";

/** Why an etcd endpoint is not a usable URL, or undefined. */
function etcdUrlProblem(url: string): string | undefined {
  return /^https?:\/\/[^\s/]+(:\d{1,5})?\/?$/.test(url)
    ? undefined
    : `${JSON.stringify(url)} is not an etcd URL like http://127.0.0.1:2379`;
}

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
  store: {
    type: "string",
    description: "where state is kept",
    env: "LEASEBROKER_STORE",
    choices: ["memory", "etcd"],
    default: "memory",
  },
  // ── durable state and high availability (issue 6) ──
  etcdEndpoints: {
    type: "list",
    description:
      "etcd client URLs, comma-separated, with --store etcd (e.g. http://127.0.0.1:2379)",
    env: "LEASEBROKER_ETCD_ENDPOINTS",
    check: (urls) => urls.map(etcdUrlProblem).find((p) => p !== undefined),
  },
  etcdPrefix: {
    type: "string",
    description: "key prefix of this cluster's state in etcd",
    env: "LEASEBROKER_ETCD_PREFIX",
    default: "/leasebroker/",
    check: (prefix) =>
      prefix.startsWith("/") && prefix.length > 1 ? undefined : "must start with / and name a key",
  },
  etcdCaFile: {
    type: "string",
    description: "PEM CA bundle that signs etcd's certificate (https endpoints)",
    env: "LEASEBROKER_ETCD_CA_FILE",
  },
  etcdCertFile: {
    type: "string",
    description: "PEM client certificate for etcd (with --etcd-key-file)",
    env: "LEASEBROKER_ETCD_CERT_FILE",
  },
  etcdKeyFile: {
    type: "string",
    description: "PEM client key for etcd (with --etcd-cert-file)",
    env: "LEASEBROKER_ETCD_KEY_FILE",
  },
  electionTtl: {
    type: "duration",
    description:
      "leader election lease, whole seconds: a dead leader is replaced about this long after it stops",
    env: "LEASEBROKER_ELECTION_TTL",
    default: 2000,
    min: 1000,
    check: (ms) =>
      ms % 1000 !== 0
        ? "must be whole seconds (etcd leases are granted in seconds)"
        : ms > 60_000
          ? "must be at most 60s"
          : undefined,
  },
  advertiseAddress: {
    type: "string",
    description:
      "host:port other brokers and clients are told is this broker's gRPC address (default: --grpc-address)",
    env: "LEASEBROKER_ADVERTISE_ADDRESS",
    check: hostPort,
  },
  shutdownGrace: {
    type: "duration",
    description: "on SIGTERM, how long in-flight calls get to finish",
    env: "LEASEBROKER_SHUTDOWN_GRACE",
    default: 10_000,
    min: 0,
  },
  // ── end of issue 6 options ──
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
  logLevel: {
    type: "string",
    description: "log level",
    env: "LEASEBROKER_LOG_LEVEL",
    choices: ["fatal", "error", "warn", "info", "debug", "trace", "silent"],
    default: "info",
  },
} as const satisfies OptionSpecs;

export type BrokerConfig = ParsedOptions<typeof BROKER_OPTIONS>;

/** Checks the combinations no single flag can; a problem is a ConfigError (exit 2). */
export function checkCombinations(config: BrokerConfig): void {
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
  checkStoreCombinations(config);
  if (config.hostSuspectAfter >= config.hostTtl) {
    throw new ConfigError("--host-suspect-after must be shorter than --host-ttl");
  }
  if (config.heartbeatInterval * 2 > config.hostSuspectAfter) {
    throw new ConfigError(
      "--heartbeat-interval must be at most half of --host-suspect-after, or one late beat makes a host suspect",
    );
  }
}

/** The --store etcd family of flags (issue 6). */
function checkStoreCombinations(config: BrokerConfig): void {
  const tlsFlags = [
    ["--etcd-ca-file", config.etcdCaFile],
    ["--etcd-cert-file", config.etcdCertFile],
    ["--etcd-key-file", config.etcdKeyFile],
  ] as const;
  if (config.store !== "etcd") {
    const stray =
      config.etcdEndpoints.length > 0
        ? "--etcd-endpoints"
        : tlsFlags.find(([, v]) => v !== undefined)?.[0];
    if (stray !== undefined) {
      throw new ConfigError(
        `${stray} is set but --store is ${config.store}: add --store etcd, or drop ${stray}`,
      );
    }
    return;
  }
  if (config.etcdEndpoints.length === 0) {
    throw new ConfigError(
      "--store etcd needs --etcd-endpoints (or LEASEBROKER_ETCD_ENDPOINTS), e.g. http://127.0.0.1:2379",
    );
  }
  if ((config.etcdCertFile === undefined) !== (config.etcdKeyFile === undefined)) {
    throw new ConfigError("--etcd-cert-file and --etcd-key-file go together: give both or neither");
  }
  const https = config.etcdEndpoints.some((url) => url.startsWith("https:"));
  if (https && config.etcdCaFile === undefined) {
    throw new ConfigError(
      "https etcd endpoints need --etcd-ca-file (the CA that signs etcd's certificate)",
    );
  }
  if (!https && tlsFlags.some(([, v]) => v !== undefined)) {
    throw new ConfigError(
      "etcd TLS files are given but the --etcd-endpoints are http: use https URLs",
    );
  }
  if (config.bus === "inproc" && (config.simHosts ?? 5) > 0) {
    throw new ConfigError(
      "--store etcd with --bus inproc runs simulated hosts inside this broker, which die with it: use --bus nats (agents in their own processes), or --sim-hosts 0",
    );
  }
}
