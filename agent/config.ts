/**
 * The agent's configuration: flags, then LEASEBROKER_AGENT_* environment variables, then defaults
 * (capacity: measured on the machine). `resolveAgentConfig` turns the parsed options into what
 * the Agent, the bus and the driver take.
 */

import { hostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import { HOST_ID_GRAMMAR } from "../bus/index.js";
import {
  ConfigError,
  LOG_LEVELS,
  type LogLevel,
  type OptionSpecs,
  type ParsedOptions,
} from "../core/index.js";
import { DEFAULT_ALLOCATION_RATIOS } from "../placement/index.js";
import type { AllocationRatios } from "./agent.js";
import { detectCpus, detectDiskGib, detectMemoryGib } from "./capacity.js";
import type { ResourceVector } from "./driver.js";

/**
 * The machine's host name as a host id: lower case, runs of other characters as one `-`, at most
 * 63 characters, alphanumeric at both ends ("Web_01.example.com" → "web-01-example-com").
 */
export function sanitizeHostId(name: string): string {
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .slice(0, 63)
    .replace(/^-+|-+$/g, "");
  return id === "" ? "host" : id;
}

// Label grammar (resources.proto): an optional DNS-subdomain prefix and "/", then a name of 1..63
// characters of [A-Za-z0-9._-] that starts and ends alphanumeric; values 0..63 of the same.
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

function labelProblem(entry: string): string | undefined {
  const eq = entry.indexOf("=");
  if (eq < 0) return `label ${JSON.stringify(entry)} must be key=value`;
  const key = entry.slice(0, eq);
  const value = entry.slice(eq + 1);
  const slash = key.lastIndexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key ${JSON.stringify(key)}: the prefix must be a DNS subdomain`;
  }
  if (!LABEL_NAME.test(name)) {
    return `label key ${JSON.stringify(key)}: 1-63 characters of [A-Za-z0-9._-], alphanumeric at both ends`;
  }
  if (!LABEL_VALUE.test(value)) {
    return `label value ${JSON.stringify(value)}: 0-63 characters of [A-Za-z0-9._-], alphanumeric at both ends`;
  }
  return undefined;
}

const ratioCheck = (value: number): string | undefined =>
  value > 0 && value <= 100 ? undefined : "must be in (0, 100]";

export function agentOptionSpecs(defaultHostId = sanitizeHostId(hostname())) {
  return {
    hostId: {
      type: "string",
      description: "this host's id, 1-63 of [a-z0-9-] (default: the host name, sanitized)",
      env: "LEASEBROKER_AGENT_HOST_ID",
      default: defaultHostId,
      check: (id: string) =>
        HOST_ID_GRAMMAR.test(id)
          ? undefined
          : `${JSON.stringify(id)} is not a host id (1-63 of [a-z0-9-], alphanumeric at both ends)`,
    },
    natsUrl: {
      type: "string",
      description: "NATS server URL(s), comma-separated",
      env: "LEASEBROKER_AGENT_NATS_URL",
      default: "nats://127.0.0.1:4222",
      check: (url: string) =>
        url.split(",").every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim()))
          ? undefined
          : "expected nats://host:port (or several, comma-separated)",
    },
    natsUser: {
      type: "string",
      description: "NATS user name",
      env: "LEASEBROKER_AGENT_NATS_USER",
    },
    natsPassword: {
      type: "string",
      description: "NATS password (prefer the environment variable: flags show in ps)",
      env: "LEASEBROKER_AGENT_NATS_PASSWORD",
    },
    natsToken: {
      type: "string",
      description: "NATS token (prefer the environment variable)",
      env: "LEASEBROKER_AGENT_NATS_TOKEN",
    },
    label: {
      type: "list",
      description: "host label key=value; repeatable",
      env: "LEASEBROKER_AGENT_LABELS",
      check: (entries: readonly string[]) => {
        for (const entry of entries) {
          const problem = labelProblem(entry);
          if (problem !== undefined) return problem;
        }
        return entries.length > 64 ? "at most 64 labels" : undefined;
      },
    },
    dataDir: {
      type: "string",
      description: "the agent's data directory (its file system's size is the default disk)",
      env: "LEASEBROKER_AGENT_DATA_DIR",
      default: "/var/lib/leasebroker-agent",
    },
    cpus: {
      type: "number",
      description: "CPUs to offer (default: those of the machine)",
      env: "LEASEBROKER_AGENT_CPUS",
      min: 0.001,
      max: 100_000,
    },
    memoryGib: {
      type: "number",
      description: "memory to offer, GiB (default: the machine's)",
      env: "LEASEBROKER_AGENT_MEMORY_GIB",
      min: 0.001,
      max: 1_000_000,
    },
    diskGib: {
      type: "number",
      description: "disk to offer, GiB (default: the data directory's file system)",
      env: "LEASEBROKER_AGENT_DISK_GIB",
      min: 0,
      max: 1_000_000_000,
    },
    gpus: {
      type: "integer",
      description: "GPUs to offer",
      env: "LEASEBROKER_AGENT_GPUS",
      min: 0,
      max: 1024,
      default: 0,
    },
    cpuRatio: {
      type: "number",
      description: "CPU allocation (overcommit) ratio, (0, 100]",
      env: "LEASEBROKER_AGENT_CPU_RATIO",
      // The cluster default (placement's DEFAULT_ALLOCATION_RATIOS): 4 vCPUs per core.
      default: DEFAULT_ALLOCATION_RATIOS.cpuMillis,
      check: ratioCheck,
    },
    memoryRatio: {
      type: "number",
      description: "memory allocation ratio, (0, 100]",
      env: "LEASEBROKER_AGENT_MEMORY_RATIO",
      default: DEFAULT_ALLOCATION_RATIOS.memoryMib,
      check: ratioCheck,
    },
    diskRatio: {
      type: "number",
      description: "disk allocation ratio, (0, 100]",
      env: "LEASEBROKER_AGENT_DISK_RATIO",
      default: DEFAULT_ALLOCATION_RATIOS.diskGib,
      check: ratioCheck,
    },
    reservedCpus: {
      type: "number",
      description: "CPUs held back for the host itself",
      env: "LEASEBROKER_AGENT_RESERVED_CPUS",
      min: 0,
      default: 0,
    },
    reservedMemoryGib: {
      type: "number",
      description: "memory held back for the host itself, GiB",
      env: "LEASEBROKER_AGENT_RESERVED_MEMORY_GIB",
      min: 0,
      default: 0,
    },
    reservedDiskGib: {
      type: "number",
      description: "disk held back for the host itself, GiB",
      env: "LEASEBROKER_AGENT_RESERVED_DISK_GIB",
      min: 0,
      default: 0,
    },
    driver: {
      type: "string",
      description:
        "how VMs run (sim: in memory, they end with the agent process; qemu: QEMU processes over QMP)",
      env: "LEASEBROKER_AGENT_DRIVER",
      choices: ["sim", "qemu"],
      default: "sim",
    },
    qemuBinary: {
      type: "string",
      description: "qemu driver: the QEMU binary (a name looked up on PATH, or a path)",
      env: "LEASEBROKER_AGENT_QEMU_BINARY",
      default: "qemu-system-x86_64",
    },
    qemuAccel: {
      type: "string",
      description: "qemu driver: accelerator (auto: KVM when /dev/kvm opens read-write, else TCG)",
      env: "LEASEBROKER_AGENT_QEMU_ACCEL",
      choices: ["auto", "kvm", "tcg"],
      default: "auto",
    },
    qemuImageDir: {
      type: "string",
      description:
        "qemu driver: where a lease's disk image is looked up; it cannot name a file outside (default <data-dir>/images)",
      env: "LEASEBROKER_AGENT_QEMU_IMAGE_DIR",
    },
    heartbeatInterval: {
      type: "duration",
      description: "heartbeat interval until the broker sets one",
      env: "LEASEBROKER_AGENT_HEARTBEAT_INTERVAL",
      default: 1000,
      min: 50,
    },
    helloTimeout: {
      type: "duration",
      description: "how long one hello waits for the broker",
      env: "LEASEBROKER_AGENT_HELLO_TIMEOUT",
      default: 5000,
      min: 100,
    },
    stopGrace: {
      type: "duration",
      description: "graceful-stop time of a stop command that sets none",
      env: "LEASEBROKER_AGENT_STOP_GRACE",
      default: 30_000,
    },
    address: {
      type: "string",
      description:
        "this host's address, reported for information; the qemu driver listens for incoming migrations on it (default 127.0.0.1)",
      env: "LEASEBROKER_AGENT_ADDRESS",
    },
    seed: {
      type: "integer",
      description: "seed of the sim driver and of retry jitter (default: random)",
      env: "LEASEBROKER_AGENT_SEED",
      min: 0,
      max: 2 ** 32 - 1,
    },
    logLevel: {
      type: "string",
      description: "log level",
      env: "LEASEBROKER_AGENT_LOG_LEVEL",
      choices: LOG_LEVELS,
      default: "info",
    },
  } as const satisfies OptionSpecs;
}

export type AgentOptionSpecs = ReturnType<typeof agentOptionSpecs>;
export type ParsedAgentOptions = ParsedOptions<AgentOptionSpecs>;

/** Everything the agent process needs, resolved (capacity measured where no flag gives it). */
export interface AgentConfig {
  readonly hostId: string;
  readonly natsServers: readonly string[];
  readonly natsUser: string | undefined;
  readonly natsPassword: string | undefined;
  readonly natsToken: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly dataDir: string;
  readonly capacity: ResourceVector;
  readonly ratios: AllocationRatios;
  readonly reserved: ResourceVector;
  readonly driver: "sim" | "qemu";
  /** The qemu driver's settings (ignored by sim). */
  readonly qemu: {
    readonly binary: string;
    readonly accel: "auto" | "kvm" | "tcg";
    readonly imageDir: string | undefined;
  };
  readonly heartbeatIntervalMs: number;
  readonly helloTimeoutMs: number;
  readonly stopGraceMs: number;
  readonly address: string;
  readonly seed: number;
  readonly logLevel: LogLevel;
}

/** What the machine offers; injectable for tests. */
export interface MachineProbe {
  cpus(): number;
  memoryGib(): number;
  diskGib(dataDir: string): Promise<number>;
}

export const MACHINE: MachineProbe = {
  cpus: detectCpus,
  memoryGib: detectMemoryGib,
  diskGib: detectDiskGib,
};

/** Turns parsed options into the agent's configuration; throws ConfigError. */
export async function resolveAgentConfig(
  options: ParsedAgentOptions,
  machine: MachineProbe = MACHINE,
  randomSeed: () => number = () => Math.floor(Math.random() * 2 ** 32),
): Promise<AgentConfig> {
  if (options.natsToken !== undefined && options.natsUser !== undefined) {
    throw new ConfigError("--nats-token and --nats-user are exclusive: use one way to log in");
  }
  if ((options.natsPassword !== undefined) !== (options.natsUser !== undefined)) {
    throw new ConfigError("--nats-user and --nats-password go together");
  }
  let diskGib = options.diskGib;
  if (diskGib === undefined) {
    try {
      diskGib = await machine.diskGib(options.dataDir);
    } catch (error) {
      throw new ConfigError(
        `--data-dir: cannot measure ${JSON.stringify(options.dataDir)}; pass --disk-gib (${String(error)})`,
        { cause: error },
      );
    }
  }
  // A QMP socket lives at <data-dir>/qemu/<16 hex>/operator.sock: it must fit a unix address.
  if (options.driver === "qemu" && resolvePath(options.dataDir).length > 70) {
    throw new ConfigError(
      `--data-dir: ${JSON.stringify(options.dataDir)} is too long for the qemu driver's QMP sockets (at most 70 characters)`,
    );
  }
  const cpus = options.cpus ?? machine.cpus();
  const memoryGib = options.memoryGib ?? machine.memoryGib();
  const labels: Record<string, string> = {};
  for (const entry of options.label) {
    const eq = entry.indexOf("=");
    labels[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const capacity: ResourceVector = {
    cpuMillis: Math.floor(cpus * 1000),
    memoryMib: Math.floor(memoryGib * 1024),
    diskGib: Math.floor(diskGib),
    gpus: options.gpus,
  };
  const reserved: ResourceVector = {
    cpuMillis: Math.floor(options.reservedCpus * 1000),
    memoryMib: Math.floor(options.reservedMemoryGib * 1024),
    diskGib: Math.floor(options.reservedDiskGib),
    gpus: 0,
  };
  if (capacity.cpuMillis <= 0 || capacity.memoryMib <= 0) {
    throw new ConfigError("the host needs more than 0 CPUs and 0 memory (--cpus, --memory-gib)");
  }
  if (
    reserved.cpuMillis >= capacity.cpuMillis * options.cpuRatio ||
    reserved.memoryMib >= capacity.memoryMib * options.memoryRatio
  ) {
    throw new ConfigError("--reserved-cpus/--reserved-memory-gib leave nothing to offer");
  }
  return {
    hostId: options.hostId,
    natsServers: options.natsUrl.split(",").map((u) => u.trim()),
    natsUser: options.natsUser,
    natsPassword: options.natsPassword,
    natsToken: options.natsToken,
    labels,
    dataDir: options.dataDir,
    capacity,
    ratios: { cpu: options.cpuRatio, memory: options.memoryRatio, disk: options.diskRatio, gpu: 1 },
    reserved,
    driver: options.driver === "qemu" ? "qemu" : "sim",
    qemu: {
      binary: options.qemuBinary,
      accel:
        options.qemuAccel === "kvm" || options.qemuAccel === "tcg" ? options.qemuAccel : "auto",
      imageDir: options.qemuImageDir,
    },
    heartbeatIntervalMs: options.heartbeatInterval,
    helloTimeoutMs: options.helloTimeout,
    stopGraceMs: options.stopGrace,
    address: options.address ?? "",
    seed: options.seed ?? randomSeed(),
    logLevel: options.logLevel as LogLevel,
  };
}
