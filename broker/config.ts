/**
 * The broker's configuration: flags, then LEASEBROKER_* environment variables, then defaults.
 */
import {
  ConfigError,
  errorMessage,
  type OptionSpecs,
  type ParsedOptions,
  parseDuration,
} from "../core/index.js";
import { checkSecurity, SECURITY_OPTIONS } from "./auth/index.js";
import { type AutoscaleOptions, parseHostShape } from "./autoscale/index.js";

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
  autoscaleInterval: {
    type: "duration",
    description: "autoscaling: evaluate the cluster this often",
    env: "LEASEBROKER_AUTOSCALE_INTERVAL",
    default: 30_000,
    min: 1000,
  },
  autoscaleHorizon: {
    type: "duration",
    description: "autoscaling: waiting leases starting within this count as demand",
    env: "LEASEBROKER_AUTOSCALE_HORIZON",
    default: 3_600_000,
    min: 1000,
  },
  autoscaleHighWatermark: {
    type: "number",
    description: "autoscaling: utilisation of any resource above this asks for hosts (0..1)",
    env: "LEASEBROKER_AUTOSCALE_HIGH_WATERMARK",
    default: 0.85,
    min: 0.01,
    max: 1,
  },
  autoscaleLowWatermark: {
    type: "number",
    description: "autoscaling: utilisation of every resource below this lets hosts go (0..1)",
    env: "LEASEBROKER_AUTOSCALE_LOW_WATERMARK",
    default: 0.3,
    min: 0,
    max: 1,
  },
  autoscaleScaleOutCooldown: {
    type: "duration",
    description: "autoscaling: no other signal this long after a ScaleOut",
    env: "LEASEBROKER_AUTOSCALE_SCALE_OUT_COOLDOWN",
    default: 120_000,
  },
  autoscaleScaleInCooldown: {
    type: "duration",
    description: "autoscaling: a host must be removable this long (and no ScaleOut this recent)",
    env: "LEASEBROKER_AUTOSCALE_SCALE_IN_COOLDOWN",
    default: 600_000,
  },
  autoscaleMinHosts: {
    type: "integer",
    description: "autoscaling: never suggest fewer READY hosts than this",
    env: "LEASEBROKER_AUTOSCALE_MIN_HOSTS",
    default: 1,
    min: 0,
    max: 1_000_000,
  },
  autoscaleHostShapes: {
    type: "list",
    description:
      "autoscaling: shapes of new hosts, name:cpus:memoryGiB[:diskGiB[:gpus]] (default: the shapes of the current hosts)",
    env: "LEASEBROKER_AUTOSCALE_HOST_SHAPES",
    check: (items) => {
      for (const item of items) {
        try {
          parseHostShape(item);
        } catch (error) {
          return errorMessage(error).replace(/^--autoscale-host-shapes: /, "");
        }
      }
      return undefined;
    },
  },
  autoscaleNats: {
    type: "boolean",
    description: "autoscaling: publish signals on the bus subject lb.v1.autoscale (protobuf)",
    env: "LEASEBROKER_AUTOSCALE_NATS",
  },
  autoscaleWebhookUrl: {
    type: "list",
    description: "autoscaling: POST signals (JSON, signed) to these http(s) URLs",
    env: "LEASEBROKER_AUTOSCALE_WEBHOOK_URL",
    check: (urls) => {
      for (const url of urls) {
        let parsed: URL;
        try {
          parsed = new URL(url);
        } catch {
          return `${JSON.stringify(url)} is not a URL`;
        }
        if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
          return `${JSON.stringify(url)}: only http and https URLs`;
        }
      }
      return undefined;
    },
  },
  autoscaleWebhookSecret: {
    type: "string",
    description: "autoscaling: shared secret of the webhooks' HMAC-SHA256 signature",
    env: "LEASEBROKER_AUTOSCALE_WEBHOOK_SECRET",
    check: (v) => (v.length < 16 ? "must be at least 16 characters" : undefined),
  },
  autoscaleWebhookTimeout: {
    type: "duration",
    description: "autoscaling: a webhook attempt fails after this",
    env: "LEASEBROKER_AUTOSCALE_WEBHOOK_TIMEOUT",
    default: 5000,
    min: 100,
  },
  autoscaleWebhookAttempts: {
    type: "integer",
    description: "autoscaling: attempts per signal and webhook (exponential backoff from 1 s)",
    env: "LEASEBROKER_AUTOSCALE_WEBHOOK_ATTEMPTS",
    default: 5,
    min: 1,
    max: 20,
  },
  autoscaleDeadLetterFile: {
    type: "string",
    description: "autoscaling: append undeliverable webhook signals to this JSON lines file",
    env: "LEASEBROKER_AUTOSCALE_DEAD_LETTER_FILE",
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
  checkStoreCombinations(config);
  if (config.hostSuspectAfter >= config.hostTtl) {
    throw new ConfigError("--host-suspect-after must be shorter than --host-ttl");
  }
  if (config.autoscaleLowWatermark >= config.autoscaleHighWatermark) {
    throw new ConfigError(
      "--autoscale-low-watermark must be below --autoscale-high-watermark, or hosts would be added and removed in turn",
    );
  }
  if (config.autoscaleNats && config.bus !== "nats") {
    throw new ConfigError(
      "--autoscale-nats publishes on the NATS bus: add --bus nats --nats-url …, or drop it",
    );
  }
  if (config.autoscaleWebhookUrl.length > 0 && config.autoscaleWebhookSecret === undefined) {
    throw new ConfigError(
      "--autoscale-webhook-url needs --autoscale-webhook-secret (receivers verify the signature)",
    );
  }
  if (config.heartbeatInterval * 2 > config.hostSuspectAfter) {
    throw new ConfigError(
      "--heartbeat-interval must be at most half of --host-suspect-after, or one late beat makes a host suspect",
    );
  }
  checkSecurity(config);
}

/** The autoscaling hook's options from the configuration (the bus is the broker's). */
export function autoscaleOptions(
  config: BrokerConfig,
  bus: AutoscaleOptions["bus"],
): AutoscaleOptions {
  return {
    intervalMs: config.autoscaleInterval,
    horizonMs: config.autoscaleHorizon,
    highWatermark: config.autoscaleHighWatermark,
    lowWatermark: config.autoscaleLowWatermark,
    scaleOutCooldownMs: config.autoscaleScaleOutCooldown,
    scaleInCooldownMs: config.autoscaleScaleInCooldown,
    minHosts: config.autoscaleMinHosts,
    shapes: config.autoscaleHostShapes.map((item) => parseHostShape(item)),
    ...(config.autoscaleNats && bus !== undefined ? { bus } : {}),
    ...(config.autoscaleWebhookUrl.length === 0
      ? {}
      : {
          webhooks: {
            urls: config.autoscaleWebhookUrl,
            ...(config.autoscaleWebhookSecret === undefined
              ? {}
              : { secret: config.autoscaleWebhookSecret }),
            timeoutMs: config.autoscaleWebhookTimeout,
            maxAttempts: config.autoscaleWebhookAttempts,
            ...(config.autoscaleDeadLetterFile === undefined
              ? {}
              : { deadLetterPath: config.autoscaleDeadLetterFile }),
          },
        }),
  };
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
