#!/usr/bin/env node
/**
 * The reference autoscaler as a process: receives leasebroker's webhooks and starts one
 * `leasebroker-agent` (sim driver, on NATS) per host a ScaleOut asks for; stops it after a ScaleIn.
 *
 *   AUTOSCALER_SECRET=<the broker's --autoscale-webhook-secret> \
 *   node dist/deploy/examples/autoscaler/main.js --port 9090 --nats-url nats://127.0.0.1:4222
 *
 * and run the broker with `--autoscale-webhook-url http://127.0.0.1:9090/autoscale`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type HostLauncher, ReferenceAutoscaler, type ShapeRequest } from "./autoscaler.js";

/** `dist/agent/main.js` next to this file's `dist/deploy/examples/autoscaler/`. */
const AGENT_MAIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../agent/main.js",
);

export interface AgentProcessOptions {
  readonly natsUrl: string;
  readonly log: (line: string) => void;
  /** The agent's entry point. Default: dist/agent/main.js of this build. */
  readonly agentMain?: string;
  /** Where the agents' stderr goes. Default: this process's. */
  readonly stderr?: "inherit" | "ignore";
}

/** Starts one `leasebroker-agent` process (sim driver, on NATS) per host; stops it with SIGTERM. */
export function agentProcessLauncher(
  options: AgentProcessOptions,
): HostLauncher & { running(): string[]; stopAll(): Promise<void> } {
  const children = new Map<string, ChildProcess>();
  const launcher = {
    async start(hostId: string, shape: ShapeRequest): Promise<void> {
      const dataDir = await mkdtemp(path.join(tmpdir(), `autoscaler-${hostId}-`));
      const args = [
        options.agentMain ?? AGENT_MAIN,
        "--host-id",
        hostId,
        "--nats-url",
        options.natsUrl,
        "--driver",
        "sim",
        "--data-dir",
        dataDir,
        "--cpus",
        String(shape.capacity.cpuMillis / 1000),
        "--memory-gib",
        String(shape.capacity.memoryMib / 1024),
        "--disk-gib",
        String(shape.capacity.diskGib),
        ...Object.entries(shape.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
      ];
      const child = spawn(process.execPath, args, {
        stdio: ["ignore", "ignore", options.stderr ?? "inherit"],
      });
      child.on("exit", (code) => {
        if (children.get(hostId) === child) children.delete(hostId);
        options.log(`${hostId} exited (${code ?? "signal"})`);
      });
      children.set(hostId, child);
    },
    async stop(hostId: string): Promise<void> {
      const child = children.get(hostId);
      if (child === undefined || child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      await exited;
    },
    running: (): string[] => [...children.keys()].sort(),
    async stopAll(): Promise<void> {
      await Promise.all([...children.keys()].map((id) => launcher.stop(id)));
    },
  };
  return launcher;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: process.env.AUTOSCALER_PORT ?? "9090" },
      "nats-url": {
        type: "string",
        default: process.env.AUTOSCALER_NATS_URL ?? "nats://127.0.0.1:4222",
      },
      prefix: { type: "string", default: "auto" },
    },
  });
  const secret = process.env.AUTOSCALER_SECRET;
  const port = Number(values.port);
  if (secret === undefined || secret.length < 16 || !Number.isInteger(port)) {
    process.stderr.write(
      "autoscaler: set AUTOSCALER_SECRET (16+ characters) and a numeric --port\n",
    );
    process.exit(2);
  }
  const log = (line: string): void => {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), msg: line })}\n`);
  };
  const autoscaler = new ReferenceAutoscaler({
    secret,
    hostPrefix: values.prefix,
    launcher: agentProcessLauncher({ natsUrl: values["nats-url"], log }),
    log,
  });
  const url = await autoscaler.listen(port);
  log(`listening on ${url}`);
  const stop = (): void => {
    void autoscaler.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (
  process.argv[1] !== undefined &&
  fileURLToPath(import.meta.url) === path.resolve(process.argv[1])
) {
  await main();
}
