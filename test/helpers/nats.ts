/**
 * A real nats-server for integration tests on a free loopback port, with its own temp dir (log,
 * optional config file, JetStream store). `restart()` comes back on the SAME port, so clients
 * reconnect to it.
 */
import { writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { NATS_SERVER, requireBinary } from "./binaries.js";
import { freePorts, LOOPBACK } from "./ports.js";
import { type RestartableServer, startRestartableServer } from "./server.js";
import { makeTempDir } from "./temp.js";

export interface StartNatsOptions {
  /** Server name; default `nats-<port>`. */
  name?: string;
  /**
   * Configuration file text (accounts, users, permissions, ...), written to `<dir>/nats.conf`.
   * The address and port flags the harness passes take precedence over the file.
   */
  config?: string;
  /** Also open the HTTP monitoring port (`-m`): `/healthz`, `/varz`, `/connz`. */
  monitoring?: boolean;
  /** Enable JetStream, storing under `<dir>/jetstream`. */
  jetstream?: boolean;
  /** More nats-server flags. */
  extraArgs?: readonly string[];
  /** Bound on startup (and on each restart); default 20 s. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop/restart; default 5 s. */
  stopGraceMs?: number;
}

/** A running nats-server; its lifecycle (pid, stop, kill, restart on the same port) is RestartableServer's. */
export interface NatsHandle extends RestartableServer {
  readonly name: string;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` when started with `monitoring: true`. */
  readonly monitorUrl: string | undefined;
  readonly monitorPort: number | undefined;
  /** The temp dir: `nats.log`, `nats.conf`, `jetstream/`. */
  readonly dir: string;
  readonly logFile: string;
}

/**
 * True once the server accepts a TCP connection and sends its INFO line. Works whatever the
 * config's authentication says (INFO comes before any credentials are checked).
 */
function sendsInfo(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: LOOPBACK, port });
    let received = "";
    const done = (result: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(false), 2_000);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (received.includes("\r\n")) done(received.startsWith("INFO "));
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

/** Starts nats-server and resolves once it greets clients. */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsHandle> {
  const binary = requireBinary(NATS_SERVER);
  const monitoring = options.monitoring === true;
  const ports = await freePorts(monitoring ? 2 : 1);
  const port = ports[0];
  if (port === undefined) throw new Error("freePorts(1)");
  const monitorPort = monitoring ? ports[1] : undefined;
  const name = options.name ?? `nats-${port}`;
  const dir = await makeTempDir("nats");
  const logFile = join(dir, "nats.log");

  const args = ["-a", LOOPBACK, "-p", String(port), "-n", name];
  if (options.config !== undefined) {
    const configFile = join(dir, "nats.conf");
    await writeFile(configFile, options.config);
    args.push("-c", configFile);
  }
  if (monitorPort !== undefined) args.push("-m", String(monitorPort));
  if (options.jetstream === true) args.push("-js", "-sd", join(dir, "jetstream"));
  args.push(...(options.extraArgs ?? []));

  const spawnOptions = {
    name,
    logFile,
    readyWhen: () => sendsInfo(port),
    readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
    stopGraceMs: options.stopGraceMs ?? 5_000,
  };

  const server = await startRestartableServer(name, dir, binary, args, spawnOptions);

  return {
    name,
    url: `nats://${LOOPBACK}:${port}`,
    port,
    monitorUrl: monitorPort === undefined ? undefined : `http://${LOOPBACK}:${monitorPort}`,
    monitorPort,
    dir,
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
