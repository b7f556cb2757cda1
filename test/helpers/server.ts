/**
 * The lifecycle every test server shares (etcd, nats-server): a managed process in its own temp
 * directory that can be killed, restarted on the same ports and data, and stopped once for good.
 */
import { HandleStoppedError } from "./errors.js";
import { type ManagedProcess, type SpawnManagedOptions, spawnManaged } from "./process.js";
import { removeDir } from "./temp.js";

export interface RestartableServer {
  readonly pid: number;
  readonly running: boolean;
  outputTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after a grace; removes the directory. Idempotent; final. */
  stop(): Promise<void>;
  /** SIGKILL; keeps the data (for failure tests). */
  kill(): Promise<void>;
  /** The same command, ports and data again (also after `kill`). */
  restart(): Promise<void>;
}

/** Spawns `binary args` and returns its lifecycle; removes `dir` if the first start fails. */
export async function startRestartableServer(
  name: string,
  dir: string,
  binary: string,
  args: readonly string[],
  spawnOptions: SpawnManagedOptions,
): Promise<RestartableServer> {
  let proc: ManagedProcess;
  try {
    proc = await spawnManaged(binary, [...args], spawnOptions);
  } catch (error) {
    await removeDir(dir);
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    get pid() {
      return proc.pid;
    },
    get running() {
      return proc.running;
    },
    outputTail: (lines) => proc.outputTail(lines),
    stop() {
      stopped ??= (async () => {
        await proc.stop();
        await removeDir(dir);
      })();
      return stopped;
    },
    async kill() {
      await proc.kill();
    },
    async restart() {
      if (stopped !== undefined) throw new HandleStoppedError(`${name}: restart() after stop()`);
      await proc.stop();
      proc = await spawnManaged(binary, [...args], spawnOptions);
    },
  };
}
