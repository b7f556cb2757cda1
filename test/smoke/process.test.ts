import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  freePort,
  freePorts,
  isProcessAlive,
  makeTempDir,
  ProcessStartError,
  removeDir,
  spawnManaged,
  WaitTimeoutError,
  waitFor,
  withTimeout,
} from "../helpers/index.js";

const node = process.execPath;

describe("free ports", () => {
  it("gives distinct loopback ports that can be listened on", async () => {
    const ports = [...(await freePorts(8)), await freePort()];
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: "127.0.0.1", port }, resolve);
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe("spawnManaged", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir("process-test");
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it("waits for a ready line, logs to a file, and stops with SIGTERM", async () => {
    const logFile = join(dir, "ready.log");
    const proc = await spawnManaged(
      node,
      [
        "-e",
        'setTimeout(() => console.log("listening on 1234"), 100); setInterval(() => {}, 1000)',
      ],
      { name: "ready", logFile, readyWhen: /listening on (\d+)/ },
    );
    expect(proc.running).toBe(true);
    expect(isProcessAlive(proc.pid)).toBe(true);
    expect((await proc.waitForOutput(/listening on (\d+)/))[1]).toBe("1234");

    const info = await proc.stop();
    expect(info.signal).toBe("SIGTERM");
    expect(proc.running).toBe(false);
    expect(isProcessAlive(proc.pid)).toBe(false);
    expect(await proc.stop()).toBe(info);
    expect(readFileSync(logFile, "utf8")).toContain("listening on 1234");
  });

  it("polls a readiness function", async () => {
    let polls = 0;
    const proc = await spawnManaged(node, ["-e", "setInterval(() => {}, 1000)"], {
      readyWhen: () => ++polls >= 3,
      pollIntervalMs: 10,
    });
    expect(polls).toBe(3);
    await proc.kill();
    expect(proc.exitInfo?.signal).toBe("SIGKILL");
  });

  it("reports a process that exits before it is ready, with its output", async () => {
    const error = await spawnManaged(
      node,
      ["-e", 'console.error("boom: bad flag"); process.exit(3)'],
      { name: "crasher", readyWhen: /never/ },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessStartError);
    expect(String(error)).toMatch(/crasher exited before it was ready/);
    expect(String(error)).toContain("boom: bad flag");
  });

  it("reports an exit before a polled readiness check succeeds", async () => {
    const error = await spawnManaged(node, ["-e", "process.exit(4)"], {
      name: "quitter",
      readyWhen: () => false,
      readyTimeoutMs: 30_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessStartError);
    expect(String(error)).toContain("quitter exited before it was ready");
  });

  it("kills a process that is not ready in time", async () => {
    let pid = 0;
    const error = await spawnManaged(node, ["-e", "setInterval(() => {}, 1000)"], {
      name: "sleeper",
      readyWhen: (proc) => {
        pid = proc.pid;
        return false;
      },
      readyTimeoutMs: 300,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitTimeoutError);
    expect(String(error)).toContain("sleeper was not ready within 300 ms");
    expect(pid).toBeGreaterThan(0);
    expect(isProcessAlive(pid)).toBe(false);
  });

  it("fails clearly for a command that does not exist", async () => {
    await expect(spawnManaged("/nonexistent/server", [])).rejects.toThrow(
      /could not start server .*ENOENT/,
    );
  });

  it("escalates to SIGKILL when SIGTERM is ignored", async () => {
    const proc = await spawnManaged(
      node,
      ["-e", 'process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000)'],
      { readyWhen: /up/ },
    );
    const info = await proc.stop(200);
    expect(info.signal).toBe("SIGKILL");
  });
});

describe("cleanup when the test runner dies", () => {
  it("a SIGKILLed vitest worker's servers are killed by the watchdog", async () => {
    const dir = await makeTempDir("orphan");
    try {
      const pidFile = join(dir, "pid");
      const vitest = join(process.cwd(), "node_modules", "vitest", "vitest.mjs");
      const config = join(import.meta.dirname, "fixtures", "vitest.orphan.config.ts");
      const runner = spawn(node, [vitest, "run", "--config", config], {
        env: { ...process.env, ORPHAN_PID_FILE: pidFile, CI: "true" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      runner.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      runner.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      const code = await withTimeout(
        new Promise<number | null>((resolve) => runner.once("exit", (c) => resolve(c))),
        45_000,
        "the fixture run to end",
      ).catch((error: unknown) => {
        runner.kill("SIGKILL");
        throw error;
      });

      // The fixture started a server, wrote its pid, then SIGKILLed its own worker.
      expect(existsSync(pidFile), output).toBe(true);
      expect(code, output).not.toBe(0);
      const pid = Number(readFileSync(pidFile, "utf8"));
      expect(pid).toBeGreaterThan(0);
      await waitFor(() => !isProcessAlive(pid), {
        what: `orphaned process ${pid} to be killed`,
        timeoutMs: 10_000,
        detail: () => output,
      });
    } finally {
      await removeDir(dir);
    }
  });
});
