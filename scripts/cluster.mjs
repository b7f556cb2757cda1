#!/usr/bin/env node
// `npm run cluster`: a local multi-process cluster on this machine — a nats-server on 127.0.0.1,
// the broker (`--bus nats`) and N `leasebroker-agent` processes (sim driver), from dist/ (built
// by `npm run build`). Full logs go to files in a temp dir; warnings and errors are also printed
// here, prefixed by process. Ctrl-C (or SIGTERM) stops everything. See README.md, "Local cluster".
import { spawn } from "node:child_process";
import { accessSync, constants, createWriteStream, existsSync, mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BROKER_MAIN = join(ROOT, "dist", "broker", "main.js");
const AGENT_MAIN = join(ROOT, "dist", "agent", "main.js");

const USAGE = `npm run cluster -- [options]

Starts a nats-server on 127.0.0.1, the broker with --bus nats, and N agent processes
(agent-1 ... agent-N, sim driver) on this machine. Ctrl-C stops them all.

Options:
  --agents <n>                 agent processes (default 3)
  --nats-port <port>           nats-server port on 127.0.0.1 (default 4222)
  --grpc-address <host:port>   the broker's gRPC API (default 127.0.0.1:50051)
  --http-address <host:port>   the broker's dashboard and /metrics (default 127.0.0.1:8080)
  --cpus <n>                   vCPUs each agent offers (default 8)
  --memory-gib <n>             memory each agent offers, GiB (default 16)
  --disk-gib <n>               disk each agent offers, GiB (default 100)
  --host-suspect-after <dur>   broker: SUSPECT after this silence (default 3s)
  --host-ttl <dur>             broker: DOWN after this silence (default 10s)
  --log-dir <dir>              where the log files go (default a new temp dir)
  --verbose                    print every log line here, not only warnings and errors
  -h, --help                   this help

The nats-server binary is found on PATH, in /usr/sbin or /usr/bin, or at $NATS_SERVER_BIN.`;

function fail(message, code = 2) {
  process.stderr.write(`cluster: ${message}\n`);
  process.exit(code);
}

let args;
try {
  args = parseArgs({
    options: {
      agents: { type: "string", default: "3" },
      "nats-port": { type: "string", default: "4222" },
      "grpc-address": { type: "string", default: "127.0.0.1:50051" },
      "http-address": { type: "string", default: "127.0.0.1:8080" },
      cpus: { type: "string", default: "8" },
      "memory-gib": { type: "string", default: "16" },
      "disk-gib": { type: "string", default: "100" },
      "host-suspect-after": { type: "string" },
      "host-ttl": { type: "string" },
      "log-dir": { type: "string" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (error) {
  fail(`${error.message}\n\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

function integer(name, min, max) {
  const text = args[name];
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max)
    fail(`--${name}: expected an integer in [${min}, ${max}], got ${JSON.stringify(text)}`);
  return n;
}
function positive(name) {
  const n = Number(args[name]);
  if (!(n > 0) || !Number.isFinite(n))
    fail(`--${name}: expected a number > 0, got ${JSON.stringify(args[name])}`);
  return n;
}

const agentCount = integer("agents", 1, 100);
const natsPort = integer("nats-port", 1, 65_535);
const grpcAddress = args["grpc-address"];
if (!/^[^:\s]+:\d{1,5}$/.test(grpcAddress))
  fail(`--grpc-address: expected host:port, got ${JSON.stringify(grpcAddress)}`);
const cpus = positive("cpus");
const memoryGib = positive("memory-gib");
const diskGib = positive("disk-gib");
for (const file of [BROKER_MAIN, AGENT_MAIN]) {
  if (!existsSync(file))
    fail(`${file} is missing: run \`npm run build\` first (npm run cluster does)`, 1);
}

function findNatsServer() {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!isExecutable(fromEnv)) fail(`NATS_SERVER_BIN=${fromEnv} is not an executable file`, 1);
    return fromEnv;
  }
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
  ];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  fail(
    "nats-server is not installed (looked on PATH, in /usr/sbin, /usr/bin and /usr/local/bin).\n" +
      "  Install it:  sudo apt-get install nats-server   (Debian/Ubuntu)\n" +
      "  or point NATS_SERVER_BIN at a nats-server binary.",
    1,
  );
}
function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function portFree(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

/** True once something on 127.0.0.1:port sends a NATS INFO line. */
function natsGreets(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = "";
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      received += chunk;
      if (received.includes("\r\n")) done(received.startsWith("INFO "));
    });
    socket.on("error", () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const LEVELS = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const NOISE = new Set(["level", "time", "pid", "hostname", "name", "msg", "hostId", "v"]);

/** One line for people from a pino JSON line (or the line as is). */
function pretty(line) {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return { level: 30, text: line };
  }
  if (entry === null || typeof entry !== "object" || typeof entry.level !== "number")
    return { level: 30, text: line };
  const fields = Object.entries(entry)
    .filter(([k]) => !NOISE.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return {
    level: entry.level,
    text: `${LEVELS[entry.level] ?? entry.level} ${entry.msg ?? ""}${fields === "" ? "" : ` ${fields}`}`,
  };
}

const children = new Map(); // name -> { child, exited: Promise, logFile }
let stopping = false;

function start(name, command, argv, logDir) {
  const logFile = join(logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"], cwd: ROOT });
  const width = 9;
  const prefix = `[${name}]`.padEnd(width + 2);
  const seen = [];
  const onData = (buffer) => {
    log.write(buffer);
    for (const line of buffer.toString("utf8").split("\n")) {
      if (line.trim() === "") continue;
      seen.push(line);
      if (seen.length > 200) seen.shift();
      const { level, text } = pretty(line);
      if (args.verbose || level >= 40) process.stdout.write(`${prefix} ${text}\n`);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const entry = { name, child, exited, logFile, seen, argv: [command, ...argv] };
  children.set(name, entry);
  exited.then((info) => {
    log.end();
    if (stopping) return;
    const how = info.signal === null ? `exit code ${info.code}` : `signal ${info.signal}`;
    if (name === "nats" || name === "broker") {
      const tail = seen
        .slice(-5)
        .map((l) => `${prefix} ${pretty(l).text}\n`)
        .join("");
      process.stderr.write(
        `\n${tail}${prefix} exited (${how}); stopping the cluster. Log: ${logFile}\n`,
      );
      void shutdown(1);
    } else {
      process.stdout.write(
        `\n${prefix} exited (${how}). The broker marks ${name} SUSPECT, then DOWN, and its leases follow on_host_failure.\n` +
          `${" ".repeat(width + 3)}To bring it back, type here:  restart ${name}\n\n`,
      );
    }
  });
  return entry;
}

/** `restart agent-N` on stdin: starts an agent that exited again, with the same host id. */
function acceptCommands(logDir) {
  if (process.stdin.isTTY !== true && process.stdin.readable !== true) return;
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const words = line.trim().split(/\s+/);
    if (words[0] === "") return;
    const entry = words[0] === "restart" ? children.get(words[1] ?? "") : undefined;
    if (entry === undefined || !entry.name.startsWith("agent-")) {
      process.stdout.write("cluster: commands: restart agent-N (Ctrl-C stops everything)\n");
      return;
    }
    if (entry.child.exitCode === null && entry.child.signalCode === null) {
      process.stdout.write(`cluster: ${entry.name} is running (pid ${entry.child.pid})\n`);
      return;
    }
    const again = start(entry.name, entry.argv[0], entry.argv.slice(1), logDir);
    process.stdout.write(`cluster: ${entry.name} started again (pid ${again.child.pid})\n`);
  });
  // No stdin (e.g. started with </dev/null): nothing to read, keep running.
  lines.on("close", () => {});
}

async function until(what, entry, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  entry.exited.then(() => {
    done = true;
  });
  while (Date.now() < deadline) {
    if (await check()) return;
    if (done)
      throw new Error(`${entry.name} exited before ${what}:\n${entry.seen.slice(-15).join("\n")}`);
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (log: ${entry.logFile})`);
}

async function stopOne(entry, graceMs = 10_000) {
  const { child, exited } = entry;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGCONT"); // a frozen (SIGSTOPped) process cannot handle SIGTERM
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\ncluster: stopping the agents, the broker, then nats-server...\n");
  const agents = [...children.values()].filter((e) => e.name.startsWith("agent-"));
  await Promise.all(agents.map((e) => stopOne(e)));
  const broker = children.get("broker");
  if (broker !== undefined) await stopOne(broker);
  const nats = children.get("nats");
  if (nats !== undefined) await stopOne(nats, 5000);
  process.stdout.write(`cluster: stopped. Logs are in ${logDir}\n`);
  process.exit(code);
}

const natsBin = findNatsServer();
if (!(await portFree(natsPort)))
  fail(`127.0.0.1:${natsPort} is in use: pick another --nats-port`, 1);
const grpcPort = Number(grpcAddress.slice(grpcAddress.lastIndexOf(":") + 1));
const grpcHost = grpcAddress.slice(0, grpcAddress.lastIndexOf(":"));
if (
  grpcPort !== 0 &&
  (grpcHost === "127.0.0.1" || grpcHost === "localhost") &&
  !(await portFree(grpcPort))
) {
  fail(`${grpcAddress} is in use (another broker? \`npm start\`?): pick another --grpc-address`, 1);
}
const logDir = args["log-dir"] ?? mkdtempSync(join(tmpdir(), "leasebroker-cluster-"));
const natsUrl = `nats://127.0.0.1:${natsPort}`;

process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

try {
  const nats = start(
    "nats",
    natsBin,
    ["-a", "127.0.0.1", "-p", String(natsPort), "-n", "leasebroker-local"],
    logDir,
  );
  await until("nats-server to accept clients", nats, () => natsGreets(natsPort));

  const brokerArgs = [
    BROKER_MAIN,
    "--bus",
    "nats",
    "--nats-url",
    natsUrl,
    "--grpc-address",
    grpcAddress,
    "--http-address",
    args["http-address"],
    "--sim-hosts",
    "0",
  ];
  if (args["host-suspect-after"] !== undefined)
    brokerArgs.push("--host-suspect-after", args["host-suspect-after"]);
  if (args["host-ttl"] !== undefined) brokerArgs.push("--host-ttl", args["host-ttl"]);
  const broker = start("broker", process.execPath, brokerArgs, logDir);
  await until("the broker to serve", broker, () =>
    broker.seen.some((l) => l.includes('"msg":"broker serving"')),
  );

  const agents = [];
  for (let i = 1; i <= agentCount; i++) {
    const hostId = `agent-${i}`;
    const dataDir = join(logDir, hostId);
    const agent = start(
      hostId,
      process.execPath,
      [
        AGENT_MAIN,
        "--host-id",
        hostId,
        "--nats-url",
        natsUrl,
        "--cpus",
        String(cpus),
        "--memory-gib",
        String(memoryGib),
        "--disk-gib",
        String(diskGib),
        "--data-dir",
        dataDir,
        "--label",
        `zone=zone-${String.fromCharCode(97 + ((i - 1) % 3))}`,
        "--seed",
        String(i),
      ],
      logDir,
    );
    agents.push(agent);
  }
  await Promise.all(
    agents.map((a) =>
      until(`${a.name} to register with the broker`, a, () =>
        a.seen.some((l) => l.includes('"msg":"agent registered"')),
      ),
    ),
  );

  const ctl = `npx leasectl --server ${grpcAddress}`;
  const first = agents[0];
  process.stdout.write(
    [
      "",
      `leasebroker local cluster: nats-server, the broker and ${agentCount} agent process${agentCount === 1 ? "" : "es"} (sim driver)`,
      `  NATS           ${natsUrl}   (pid ${children.get("nats").child.pid})`,
      `  broker gRPC    ${grpcAddress}   (pid ${broker.child.pid})`,
      `  dashboard      http://${args["http-address"]}/   (also /metrics)`,
      ...agents.map(
        (a) =>
          `  ${a.name.padEnd(14)} ${cpus} vCPU, ${memoryGib} GiB, ${diskGib} GiB disk   (pid ${a.child.pid})`,
      ),
      `  logs           ${logDir}/{nats,broker,agent-N}.log   (warnings and errors also show here)`,
      "",
      "Try, in another shell:",
      `  ${ctl} hosts`,
      `  ${ctl} submit --tenant demo --cpu 2 --memory 4Gi --duration 10m --on-host-failure restart`,
      `  ${ctl} list`,
      `  ${ctl} watch`,
      "",
      `Kill an agent to see its host go SUSPECT (after ${args["host-suspect-after"] ?? "3s"}), then DOWN (after ${args["host-ttl"] ?? "10s"}) and its leases move:`,
      `  kill -9 ${first?.child.pid}          # ${first?.name}; then: ${ctl} hosts ; ${ctl} list`,
      `Freeze one instead (a partition: its workloads keep running, and are stopped when it comes back):`,
      `  kill -STOP <pid> ... kill -CONT <pid>`,
      "Restart a killed agent (same host id) by typing here:  restart agent-1",
      "",
      "Stop everything with Ctrl-C.",
      "",
    ].join("\n"),
  );
  acceptCommands(logDir);
} catch (error) {
  process.stderr.write(`cluster: cannot start: ${error.message}\n`);
  await shutdown(1);
}
