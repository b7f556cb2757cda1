/**
 * Child processes for the end-to-end benchmark: a real nats-server, the broker, the agent host.
 * Self-contained (bench/ is built without test/): finds the binary, picks free loopback ports,
 * waits for a line of output, keeps the output's tail, and stops with SIGTERM then SIGKILL. Every
 * child started here is also killed when this process exits, however it exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { constants as osConstants } from "node:os";
import { delimiter, isAbsolute, join } from "node:path";

export const LOOPBACK = "127.0.0.1";

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly running: boolean;
  /** Resolves with the first output line (stdout or stderr) that `test` accepts. */
  waitForLine(test: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Lines seen so far that `test` accepts (bounded by the tail). */
  outputTail(lines?: number): string;
  /** Writes a line to its stdin (started with `stdinPipe`). */
  send(line: string): void;
  /** SIGTERM, SIGKILL after `graceMs`; resolves when the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const TAIL = 200;

export function spawnChild(
  name: string,
  command: string,
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly stdinPipe?: boolean } = {},
): Child {
  const child = spawn(command, [...args], {
    stdio: [options.stdinPipe === true ? "pipe" : "ignore", "pipe", "pipe"],
    env: options.env ?? process.env,
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  live.add(child);
  const tail: string[] = [];
  const waiters = new Set<{ test: (line: string) => boolean; resolve: (line: string) => void }>();
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = true;
      live.delete(child);
      tail.push(`[${name} exited: ${signal ?? code}]`);
      resolve();
    });
  });
  const onData = (): ((chunk: Buffer) => void) => {
    let partial = "";
    return (chunk) => {
      partial += chunk.toString("utf8");
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        tail.push(line);
        if (tail.length > TAIL) tail.shift();
        for (const w of [...waiters]) {
          if (w.test(line)) {
            waiters.delete(w);
            w.resolve(line);
          }
        }
      }
    };
  };
  child.stdout?.on("data", onData());
  child.stderr?.on("data", onData());
  let stopping: Promise<void> | undefined;
  return {
    name,
    pid: child.pid,
    get running() {
      return !exited;
    },
    waitForLine(test, timeoutMs) {
      const seen = tail.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = {
          test,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const fail = (why: string): void => {
          waiters.delete(w);
          clearTimeout(timer);
          reject(new Error(`${name}: ${why}\n${tail.slice(-20).join("\n")}`));
        };
        const timer = setTimeout(() => fail(`not ready within ${timeoutMs} ms`), timeoutMs);
        waiters.add(w);
        void exit.then(() => {
          if (waiters.has(w)) fail("exited before it was ready");
        });
      });
    },
    send(line) {
      child.stdin?.write(`${line}\n`);
    },
    outputTail(lines = 20) {
      return tail.slice(-lines).join("\n");
    },
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (exited) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exit;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** `count` distinct free TCP ports on 127.0.0.1 (held open together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === "string") throw new Error("unexpected server address");
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** nats-server: `NATS_SERVER_BIN`, else PATH, /usr/local/bin, /usr/bin, /usr/sbin. */
export function findNatsServer(): string {
  return findBinary("nats-server", "NATS_SERVER_BIN", "apt-get install -y nats-server");
}

/** etcd: `ETCD_BIN`, else PATH, /usr/local/bin, /usr/bin, /usr/sbin. */
export function findEtcd(): string {
  return findBinary("etcd", "ETCD_BIN", "apt-get install -y etcd-server");
}

function findBinary(name: string, envVar: string, install: string): string {
  const override = process.env[envVar];
  if (override !== undefined && override !== "") {
    if (!isAbsolute(override) || !isExecutable(override))
      throw new Error(`${envVar}=${override}: no executable file there`);
    return override;
  }
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter).filter((d) => isAbsolute(d)),
    "/usr/local/bin",
    "/usr/bin",
    "/usr/sbin",
  ];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(
    `${name} not found (PATH, /usr/local/bin, /usr/bin, /usr/sbin): ${install}, or set ${envVar}`,
  );
}

/** A process's CPU time (user + system) in ms, from /proc (Linux). */
export function cpuTimeMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces: fields after it start past the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the state field.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / CLOCK_TICKS;
}

/**
 * How long the main thread of `pid` has waited on a run queue, runnable but not running (a CPU
 * was busy with another process), in ms: the second field of its schedstat. undefined where the
 * kernel does not keep it.
 */
export function runQueueWaitMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").trim().split(" ");
    const waitNs = Number(fields[1]);
    return Number.isFinite(waitNs) ? waitNs / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs this script again in a child Node with `nodeFlags` added (V8 heap flags cannot be changed
 * once the process runs), its stdio inherited and SIGINT/SIGTERM passed on; resolves with the
 * child's exit code (128 + the signal's number if a signal ended it).
 */
export function runAgainWithNodeFlags(nodeFlags: readonly string[]): Promise<number> {
  const child = spawn(
    process.execPath,
    [...process.execArgv, ...nodeFlags, ...process.argv.slice(1)],
    { stdio: "inherit" },
  );
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      resolve(code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0)));
    });
  });
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) is not reachable from Node). */
const CLOCK_TICKS = 100;
