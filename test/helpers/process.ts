/**
 * Child processes the tests start (etcd, nats-server, later broker and agent processes), managed
 * so that none outlives the test run:
 *  - every live child is in a module-level set and gets SIGKILL in `process.on("exit")`;
 *  - a tiny watchdog process (one per test process) holds the pids too and SIGKILLs them when its
 *    stdin closes, i.e. when this process dies in any way (SIGKILL, a crashed vitest worker) and
 *    exit handlers never run;
 *  - children are spawned with `detached: false`, so a Ctrl-C reaches them too.
 * Every wait is bounded. Output (stdout + stderr) goes to a log file when one is given, and the last
 * part of it is kept in memory for error messages.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { basename } from "node:path";
import { ProcessStartError, WaitTimeoutError } from "./errors.js";
import { waitFor, withTimeout } from "./wait.js";

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * When a process counts as ready: a pattern that its output (stdout + stderr) matches, or a
 * check polled until it returns true (a thrown error counts as "not yet").
 */
export type ReadyWhen = RegExp | ((proc: ManagedProcess) => boolean | Promise<boolean>);

export interface SpawnManagedOptions {
  /** For messages; default the command's base name. */
  name?: string;
  /** Added to the base environment; an `undefined` value removes that variable. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Base environment: process.env (default true) or only PATH and HOME (false). */
  inheritEnv?: boolean;
  cwd?: string;
  /** stdout and stderr are appended to this file (created if needed). */
  logFile?: string;
  readyWhen?: ReadyWhen;
  /** Bound on the ready wait; default 30 s. */
  readyTimeoutMs?: number;
  /** Poll interval of a `readyWhen` function; default 50 ms. */
  pollIntervalMs?: number;
  /** Default grace between SIGTERM and SIGKILL in `stop()`; default 5 s. */
  stopGraceMs?: number;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly command: readonly string[];
  readonly logFile: string | undefined;
  /** False once the process has exited. */
  readonly running: boolean;
  /** Set once the process has exited. */
  readonly exitInfo: ExitInfo | undefined;
  /** Resolves (never rejects) when the process has exited and its output is flushed. */
  readonly exited: Promise<ExitInfo>;
  /** The last part (up to 256 KiB) of stdout + stderr. */
  output(): string;
  /** The last `lines` lines of output (default 30). */
  outputTail(lines?: number): string;
  /** Resolves with the first match of `pattern` in the output (past or future); bounded. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends a signal (SIGSTOP/SIGCONT for "frozen process" tests); false if it has exited. */
  signal(signal: NodeJS.Signals): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. Idempotent. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** SIGKILL; resolves when it has exited. Idempotent. */
  kill(): Promise<ExitInfo>;
}

const OUTPUT_LIMIT = 256 * 1024;
const KILL_WAIT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Cleanup: the module-level set, the exit hook, the watchdog.

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
let watchdog: ChildProcess | undefined;

const WATCHDOG_SCRIPT = `
const pids = new Set();
let buffer = "";
process.on("SIGINT", () => {});
process.on("SIGHUP", () => {});
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let i;
  while ((i = buffer.indexOf("\\n")) >= 0) {
    const [op, pid] = buffer.slice(0, i).split(" ");
    buffer = buffer.slice(i + 1);
    if (op === "+") pids.add(Number(pid));
    else if (op === "-") pids.delete(Number(pid));
  }
});
const reap = () => {
  for (const pid of pids) { try { process.kill(pid, "SIGKILL"); } catch {} }
  process.exit(0);
};
process.stdin.on("end", reap);
process.stdin.on("error", reap);
`;

function tellWatchdog(line: string): void {
  if (watchdog === undefined) {
    const dog = spawn(process.execPath, ["-e", WATCHDOG_SCRIPT], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: false,
      env: {},
    });
    dog.on("error", () => {});
    dog.stdin?.on("error", () => {});
    dog.unref();
    // The pipe must not keep this process alive either.
    const stdin: unknown = dog.stdin;
    if (stdin !== null && typeof stdin === "object" && "unref" in stdin) {
      const unref = stdin.unref;
      if (typeof unref === "function") unref.call(stdin);
    }
    watchdog = dog;
  }
  if (watchdog.stdin?.writable) watchdog.stdin.write(`${line}\n`);
}

function killAllNow(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

function track(child: ChildProcess, pid: number): void {
  if (!exitHookInstalled) {
    process.on("exit", killAllNow);
    exitHookInstalled = true;
  }
  live.add(child);
  tellWatchdog(`+ ${pid}`);
}

function untrack(child: ChildProcess, pid: number): void {
  live.delete(child);
  tellWatchdog(`- ${pid}`);
}

/** Pids of the managed processes of this test process that are still running. */
export function livePids(): number[] {
  return [...live].flatMap((child) => (child.pid === undefined ? [] : [child.pid]));
}

/**
 * Whether a process is running: it exists and is not a zombie (in a container an orphan's zombie
 * may never be reaped, and `kill(pid, 0)` succeeds on it).
 */
export function isProcessAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": the state is the field after the last ")".
    const state = stat.charAt(stat.lastIndexOf(")") + 2);
    return state !== "Z" && state !== "X";
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs every managed process still running (a last resort for afterAll hooks). */
export async function killAllManaged(): Promise<void> {
  const children = [...live];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            resolve();
            return;
          }
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------

function buildEnv(options: SpawnManagedOptions): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv =
    options.inheritEnv === false
      ? { PATH: process.env.PATH, HOME: process.env.HOME }
      : { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete base[key];
    else base[key] = value;
  }
  return base;
}

function tailLines(text: string, lines: number): string {
  const all = text.split("\n");
  if (all.at(-1) === "") all.pop();
  return all.slice(-lines).join("\n");
}

function describeExit(info: ExitInfo): string {
  return info.signal !== null ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
}

/**
 * Spawns `cmd args` as a managed process and, with `readyWhen`, waits until it is ready. If it
 * exits first or the wait runs out, it is killed and a ProcessStartError / WaitTimeoutError says
 * so, with the tail of its output.
 */
export async function spawnManaged(
  cmd: string,
  args: readonly string[],
  options: SpawnManagedOptions = {},
): Promise<ManagedProcess> {
  const name = options.name ?? basename(cmd);
  const command = [cmd, ...args];
  const stopGraceMs = options.stopGraceMs ?? 5_000;

  let log: WriteStream | undefined;
  if (options.logFile !== undefined) {
    log = createWriteStream(options.logFile, { flags: "a" });
    log.on("error", () => {});
    log.write(`=== ${new Date().toISOString()} start: ${command.join(" ")}\n`);
  }

  const child = spawn(cmd, [...args], {
    cwd: options.cwd,
    env: buildEnv(options),
    stdio: ["ignore", "pipe", "pipe"],
    detached: false,
  });

  const { pid } = child;
  if (pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once("error", resolve));
    log?.end();
    throw new ProcessStartError(name, `could not start ${name} (${cmd}): ${error.message}`, {
      cause: error,
    });
  }
  child.on("error", () => {});
  track(child, pid);

  let output = "";
  const outputListeners = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    log?.write(chunk);
    output += chunk.toString("utf8");
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
    for (const listener of outputListeners) listener();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);

  let exitInfo: ExitInfo | undefined;
  /** Set once the process has exited and its output has been read to the end. */
  let drained = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    const finish = (): void => {
      if (drained || exitInfo === undefined) return;
      drained = true;
      const info = exitInfo;
      for (const listener of outputListeners) listener();
      if (log === undefined) {
        resolve(info);
        return;
      }
      log.end(`=== ${new Date().toISOString()} ${name} ${describeExit(info)}\n`, () =>
        resolve(info),
      );
    };
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      untrack(child, pid);
      // "close" follows once stdout/stderr are drained; don't wait forever for it (a grandchild
      // could hold the pipes open).
      setTimeout(finish, 1_000).unref();
    });
    child.once("close", finish);
  });

  const waitForOutput = (pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> => {
    let listener: (() => void) | undefined;
    const found = new Promise<RegExpMatchArray>((resolve, reject) => {
      listener = () => {
        const match = output.match(pattern);
        if (match !== null) {
          resolve(match);
          return;
        }
        if (drained && exitInfo !== undefined) {
          reject(
            new ProcessStartError(
              name,
              `${name} ${describeExit(exitInfo)} before its output matched ${pattern}\n${tailLines(output, 30)}`,
            ),
          );
        }
      };
      outputListeners.add(listener);
      listener();
    });
    return withTimeout(found, timeoutMs, `${name} output to match ${pattern}`).finally(() => {
      if (listener !== undefined) outputListeners.delete(listener);
    });
  };

  const sendSignal = (signal: NodeJS.Signals): boolean => {
    if (exitInfo !== undefined) return false;
    try {
      return child.kill(signal);
    } catch {
      return false;
    }
  };

  const waitExit = async (ms: number): Promise<ExitInfo | undefined> => {
    try {
      return await withTimeout(exited, ms, `${name} (pid ${pid}) to exit`);
    } catch (error) {
      if (error instanceof WaitTimeoutError) return undefined;
      throw error;
    }
  };

  let killing: Promise<ExitInfo> | undefined;
  const kill = (): Promise<ExitInfo> => {
    killing ??= (async () => {
      sendSignal("SIGKILL");
      const info = await waitExit(KILL_WAIT_MS);
      if (info === undefined) {
        throw new WaitTimeoutError(`${name} (pid ${pid}) to exit after SIGKILL`, KILL_WAIT_MS);
      }
      return info;
    })();
    return killing;
  };

  let stopping: Promise<ExitInfo> | undefined;
  const stop = (graceMs = stopGraceMs): Promise<ExitInfo> => {
    stopping ??= (async () => {
      if (exitInfo !== undefined) return exited;
      sendSignal("SIGTERM");
      // A stopped (SIGSTOP) process would not act on SIGTERM until continued.
      sendSignal("SIGCONT");
      return (await waitExit(graceMs)) ?? kill();
    })();
    return stopping;
  };

  const proc: ManagedProcess = {
    name,
    pid,
    command,
    logFile: options.logFile,
    get running() {
      return exitInfo === undefined;
    },
    get exitInfo() {
      return exitInfo;
    },
    exited,
    output: () => output,
    outputTail: (lines = 30) => tailLines(output, lines),
    waitForOutput,
    signal: sendSignal,
    stop,
    kill,
  };

  const readyWhen = options.readyWhen;
  if (readyWhen === undefined) return proc;

  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  try {
    if (readyWhen instanceof RegExp) {
      await waitForOutput(readyWhen, readyTimeoutMs);
    } else {
      await waitFor(
        async () => {
          if (exitInfo !== undefined) {
            throw new ProcessStartError(name, `${name} ${describeExit(exitInfo)}`);
          }
          return readyWhen(proc);
        },
        {
          what: `${name} to be ready`,
          timeoutMs: readyTimeoutMs,
          intervalMs: options.pollIntervalMs ?? 50,
          isFatal: (error) => error instanceof ProcessStartError,
        },
      );
    }
  } catch (error) {
    await kill().catch(() => {});
    const where = options.logFile === undefined ? "" : ` (full log: ${options.logFile})`;
    const exitedEarly = error instanceof ProcessStartError;
    const reason = exitedEarly
      ? `${name} exited before it was ready`
      : `${name} was not ready within ${readyTimeoutMs} ms`;
    const message = `${reason}: ${command.join(" ")}${where}\n--- last output ---\n${tailLines(output, 30)}`;
    throw exitedEarly
      ? new ProcessStartError(name, message, { cause: error })
      : new WaitTimeoutError(`${name} to be ready`, readyTimeoutMs, message, { cause: error });
  }
  return proc;
}
