/**
 * Building and starting a real `leasebroker-agent` process for integration tests: `node
 * dist/agent/main.js` against a test nats-server, with its output in a log file in a temp dir.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ManagedProcess, makeTempDir, removeDir, spawnManaged } from "../helpers/index.js";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const AGENT_MAIN = join(REPO_ROOT, "dist", "agent", "main.js");

let built = false;

/**
 * Compiles the project (`tsc -p tsconfig.build.json`) once per test process. Type errors
 * elsewhere in the tree do not stop tsc from emitting, so the build counts as good when the
 * agent's entry point is there; otherwise the error carries tsc's output.
 */
export function buildAgent(): void {
  if (built) return;
  const result = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 180_000,
  });
  if (!existsSync(AGENT_MAIN) || result.error !== undefined) {
    throw new Error(
      `building the agent failed (status ${result.status}): ${result.error?.message ?? ""}\n${result.stdout}\n${result.stderr}`,
    );
  }
  built = true;
}

export interface AgentProcess {
  readonly proc: ManagedProcess;
  readonly dir: string;
  /** Stops the process if it runs (SIGTERM) and removes its temp dir. */
  dispose(): Promise<void>;
}

/**
 * Starts an agent for `hostId` on `natsUrl`; resolves once it has subscribed to its commands.
 * `dataDir`: an existing data directory to reuse (an agent restart), left in place by `dispose`;
 * default a new temp dir that `dispose` removes.
 */
export async function startAgent(
  hostId: string,
  natsUrl: string,
  extraArgs: readonly string[] = [],
  dataDir?: string,
): Promise<AgentProcess> {
  const dir = dataDir ?? (await makeTempDir(`agent-${hostId}`));
  const removeOwnDir = (): Promise<void> =>
    dataDir === undefined ? removeDir(dir) : Promise.resolve();
  const args = [
    AGENT_MAIN,
    "--host-id",
    hostId,
    "--nats-url",
    natsUrl,
    "--data-dir",
    dir,
    "--cpus",
    "4",
    "--memory-gib",
    "8",
    "--label",
    "zone=test",
    "--seed",
    "1",
    "--hello-timeout",
    "1s",
    "--log-level",
    "debug",
    ...extraArgs,
  ];
  let proc: ManagedProcess;
  try {
    proc = await spawnManaged(process.execPath, args, {
      name: `agent-${hostId}`,
      logFile: join(dir, "agent.log"),
      readyWhen: /"msg":"agent started"/,
      readyTimeoutMs: 20_000,
      stopGraceMs: 10_000,
    });
  } catch (error) {
    await removeOwnDir();
    throw error;
  }
  return {
    proc,
    dir,
    async dispose() {
      await proc.stop();
      await removeOwnDir();
    },
  };
}
