/**
 * A real, single-member etcd for integration tests: free loopback ports, its own temp dir, logs in
 * a file there (not in the test output).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ETCD, requireBinary } from "./binaries.js";
import { freePorts, LOOPBACK } from "./ports.js";
import { type RestartableServer, startRestartableServer } from "./server.js";
import { makeTempDir } from "./temp.js";

export interface StartEtcdOptions {
  /** Member name; default `etcd-<random>`. */
  name?: string;
  /** Bound on startup (and on each restart); default 30 s. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop/restart; default 5 s. */
  stopGraceMs?: number;
  /** More etcd flags (`--auto-compaction-retention=1`, ...). */
  extraArgs?: readonly string[];
  /** More environment for etcd (inherited ETCD_* / ETCDCTL_* variables are removed). */
  env?: Readonly<Record<string, string>>;
}

/** A running etcd; its lifecycle (pid, stop, kill, restart on the same ports and data) is RestartableServer's. */
export interface EtcdHandle extends RestartableServer {
  readonly name: string;
  /** `127.0.0.1:<port>`: a client endpoint (etcd3's `hosts` takes it, as it takes `clientUrl`). */
  readonly endpoint: string;
  /** `http://127.0.0.1:<port>`. */
  readonly clientUrl: string;
  readonly clientPort: number;
  readonly peerUrl: string;
  readonly peerPort: number;
  /** The temp dir: etcd's data in `<dataDir>/etcd`, its log in `<dataDir>/etcd.log`. */
  readonly dataDir: string;
  readonly logFile: string;
}

/** Go's name for this machine's architecture (what etcd's ETCD_UNSUPPORTED_ARCH must equal). */
function goArch(): string {
  switch (process.arch) {
    case "x64":
      return "amd64";
    case "ia32":
      return "386";
    case "ppc64":
      return "ppc64le";
    default:
      return process.arch;
  }
}

/** The environment an etcd or etcdctl process gets: none of ours ETCD_* / ETCDCTL_*, plus `extra`. */
export function etcdEnv(
  extra: Readonly<Record<string, string>> | undefined,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  // etcd reads ETCD_* variables as flags: an outer ETCD_DATA_DIR would fight ours, and ETCD_BIN
  // makes it warn. Start from none of them.
  for (const key of Object.keys(process.env)) {
    if (key.startsWith("ETCD_") || key.startsWith("ETCDCTL_")) env[key] = undefined;
  }
  // etcd 3.4 refuses to start on architectures other than amd64 and ppc64le unless told.
  const arch = goArch();
  if (arch !== "amd64" && arch !== "ppc64le") env.ETCD_UNSUPPORTED_ARCH = arch;
  return { ...env, ...extra };
}

/** Whether the etcd member at `clientUrl` has a leader and serves reads. */
export async function isHealthy(clientUrl: string): Promise<boolean> {
  const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) return false;
  const body: unknown = await response.json();
  return typeof body === "object" && body !== null && "health" in body && body.health === "true";
}

/** Starts etcd and resolves once `/health` says it is healthy (it has a leader and serves reads). */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdHandle> {
  const binary = requireBinary(ETCD);
  const name = options.name ?? `etcd-${randomBytes(4).toString("hex")}`;
  const [clientPort, peerPort] = await freePorts(2);
  if (clientPort === undefined || peerPort === undefined) throw new Error("freePorts(2)");
  const clientUrl = `http://${LOOPBACK}:${clientPort}`;
  const peerUrl = `http://${LOOPBACK}:${peerPort}`;
  const dataDir = await makeTempDir("etcd");
  const logFile = join(dataDir, "etcd.log");
  const args = [
    `--name=${name}`,
    `--data-dir=${join(dataDir, "etcd")}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
    "--initial-cluster-state=new",
    `--initial-cluster-token=${name}`,
    "--logger=zap",
    "--log-outputs=stderr",
    ...(options.extraArgs ?? []),
  ];
  const spawnOptions = {
    name,
    env: etcdEnv(options.env),
    logFile,
    readyWhen: () => isHealthy(clientUrl),
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
    stopGraceMs: options.stopGraceMs ?? 5_000,
  };

  const server = await startRestartableServer(name, dataDir, binary, args, spawnOptions);

  return {
    name,
    endpoint: `${LOOPBACK}:${clientPort}`,
    clientUrl,
    clientPort,
    peerUrl,
    peerPort,
    dataDir,
    logFile,
    get pid() {
      return server.pid;
    },
    get running() {
      return server.running;
    },
    outputTail: server.outputTail,
    stop: server.stop,
    kill: server.kill,
    restart: server.restart,
  };
}
