/**
 * bench:e2e — the broker end to end: a real nats-server, the broker as a child process
 * (`--bus nats`, 1 s heartbeats), and `--agents` simulated hosts (real `Agent`s, sim driver) in a
 * separate agent-host process. Measures (1) the broker's CPU while the hosts only heartbeat, and
 * (2) submit→ACTIVE: a load generator here submits `--leases` leases over gRPC with at most
 * `--concurrency` in flight and timestamps each lease's ACTIVE event on a WatchLeases stream.
 *
 * Submits go in SubmitLeases calls of up to `--batch` leases (`--unary`: one SubmitLease call
 * each). Closed loop by default (at most `--concurrency` leases submitted and not yet answered);
 * `--rate N` offers N leases/s on a fixed schedule instead (open loop: latency counts from each
 * lease's scheduled time, so a load generator or broker that falls behind shows in the figures).
 *
 * `--warmup` small leases go first on the same schedule, the measured ones once they have all
 * settled. The warm-up is left out of every figure but its own p99: a cold broker (code not yet
 * optimized by the JIT) falls a second or two behind at the start, and in a run of a few seconds
 * that start-up alone made the p99.
 *
 * The agent host and this process (the load generator) run with a large initial old space
 * (`--harness-old-space-mib`): their major GCs, which would stall every lease in flight at once,
 * stay out of the measured seconds. `--lease-times FILE` writes each measured lease's path.
 *
 *   node dist/bench/e2e.js [--agents N] [--leases N] [--warmup N] [--concurrency N] [--rate N]
 *                          [--unary] [--batch N] [--seed N] [--lease-times FILE] [--json]
 *                          (`--help` lists every flag)
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type ChannelOptions, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  durationFromMs,
  type LeaseBrokerClient,
  type LeaseSpecInput,
  type ListHostsResponse,
  type ListLeasesResponse,
  loadLeaseBrokerPackage,
} from "../proto/index.js";
import {
  type Child,
  cpuTimeMs,
  findNatsServer,
  freePorts,
  LOOPBACK,
  runAgainWithNodeFlags,
  runQueueWaitMs,
  spawnChild,
} from "./e2e-procs.js";
import { parseFlags } from "./lib/args.js";
import {
  encodeSubmitLeaseRequest,
  LeanClient,
  type LeanEvent,
  leaseStates,
} from "./lib/lean-client.js";
import { fmt, percentile, table } from "./lib/stats.js";

const flags = parseFlags(
  "e2e",
  {
    agents: { kind: "number", default: 1000, help: "simulated hosts (agents), in one process" },
    leases: { kind: "number", default: 10_000, help: "leases submitted and measured" },
    warmup: {
      kind: "number",
      default: 2000,
      help: "small leases submitted first, on the same schedule, not measured (a cold broker's JIT)",
    },
    concurrency: {
      kind: "number",
      default: 128,
      help: "leases submitted and not yet answered, at most (the closed loop)",
    },
    seed: { kind: "number", default: 1, help: "seed of the lease sizes and the agents" },
    "boot-ms": {
      kind: "number",
      default: 10,
      help: "simulated VM boot time (part of the latency)",
    },
    "heartbeat-seconds": {
      kind: "number",
      default: 10,
      help: "how long the broker's heartbeat-only CPU is measured",
    },
    unary: {
      kind: "boolean",
      default: false,
      help: "submit with one SubmitLease call per lease instead of SubmitLeases batches",
    },
    batch: {
      kind: "number",
      default: 32,
      help: "leases per SubmitLeases call at most (not with --unary)",
    },
    "tick-ms": {
      kind: "number",
      default: 5,
      help: "the open loop's period: leases due within one go out together",
    },
    rate: {
      kind: "number",
      default: 0,
      help: "offer this many leases/s on a fixed schedule (open loop); 0: --concurrency in flight",
    },
    channels: { kind: "number", default: 4, help: "gRPC channels of the load generator" },
    connections: { kind: "number", default: 4, help: "NATS connections of the agent host" },
    "heartbeat-slot-ms": {
      kind: "number",
      default: 10,
      help: "the agent host's heartbeats share a timer wheel of slots this wide (0: a timer each)",
    },
    "profile-broker": {
      kind: "boolean",
      default: false,
      help: "run the broker under node --cpu-prof (the .cpuprofile path is printed)",
    },
    "profile-agents": {
      kind: "boolean",
      default: false,
      help: "run the agent host under node --cpu-prof (the .cpuprofile path is printed)",
    },
    spy: {
      kind: "boolean",
      default: false,
      help: "a NATS spy process times each start command and RUNNING event on NATS (diagnostic)",
    },
    "lease-times": {
      kind: "string",
      default: "",
      help: "write each measured lease's times (due, answered, created, start at the agent, RUNNING, ACTIVE, seen ACTIVE; epoch ms) to this JSON file",
    },
    "harness-old-space-mib": {
      kind: "number",
      default: 1024,
      help: "initial old space (MiB) of the agent host and the load generator: their major GCs stay out of the measured seconds (0: V8's default)",
    },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);

const fail = (why: string): never => {
  process.stderr.write(`e2e: ${why}\n`);
  process.exit(2);
};
if (flags.agents < 1 || flags.agents > 10_000) fail("--agents must be 1..10000");
if (flags.leases < 1 || flags.leases > 100_000) fail("--leases must be 1..100000");
if (flags.warmup < 0 || flags.warmup > 100_000) fail("--warmup must be 0..100000");
if (flags.concurrency < 1 || flags.concurrency > 4096) fail("--concurrency must be 1..4096");
if (flags.batch < 1 || flags.batch > 1000) fail("--batch must be 1..1000");
if (flags.rate > 100_000) fail("--rate must be 0..100000");
if (flags["tick-ms"] < 1 || flags["tick-ms"] > 1000) fail("--tick-ms must be 1..1000");
if (flags.channels < 1 || flags.channels > 64) fail("--channels must be 1..64");
if (flags.connections < 1 || flags.connections > 64) fail("--connections must be 1..64");
const slotMs = flags["heartbeat-slot-ms"];
if (!Number.isInteger(slotMs) || slotMs < 0 || slotMs > 1000)
  fail("--heartbeat-slot-ms must be an integer 0..1000");
if (flags["heartbeat-seconds"] < 1 || flags["heartbeat-seconds"] > 60)
  fail("--heartbeat-seconds must be 1..60");
const harnessOldSpaceMib = flags["harness-old-space-mib"];
if (!Number.isInteger(harnessOldSpaceMib) || harnessOldSpaceMib < 0 || harnessOldSpaceMib > 16_384)
  fail("--harness-old-space-mib must be an integer 0..16384");
// The agent host stands for 1,000 machines and the load generator for the users: a major GC in
// either stalls every lease in flight at once, which in a fleet would pause one host or one
// client. A large initial old space keeps their major GCs out of the few measured seconds; the
// broker keeps V8's defaults. This process (the load generator) gets it by running itself again.
const harnessHeapFlags =
  harnessOldSpaceMib > 0 ? [`--initial-old-space-size=${harnessOldSpaceMib}`] : [];
if (harnessHeapFlags.some((f) => !process.execArgv.includes(f)))
  process.exit(await runAgainWithNodeFlags(harnessHeapFlags));

/** The columns of `--lease-times`' rows. */
const LEASE_TIME_COLUMNS = [
  "due",
  "answered",
  "created",
  "agent_start",
  "running",
  "active",
  "seen_active",
] as const;

/** Host shape: 16 vCPU (allocatable as they are) and 64 GiB; leases of 1–2 vCPU, 1–2 GiB. */
const HOST_CPUS = 16;
const HOST_MEMORY_GIB = 64;
/** Far beyond the run: no lease ends or is warned about while it is measured. */
const LEASE_DURATION_MS = 60 * 60_000;
/** A warm-up lease: 1/16 vCPU, 64 MiB. */
const WARMUP_RESOURCES = { cpuMillis: 62, memoryMib: 64, diskGib: 0, gpus: 0 };
// 1.5 vCPU and 1.5 GiB a lease on average: the CPU binds (the sim agents do not overcommit).
if (flags.leases * 1.5 + flags.warmup / 16 > flags.agents * HOST_CPUS * 0.98)
  fail(
    `--leases ${flags.leases} and --warmup ${flags.warmup} may not fit on ${flags.agents} hosts of ${HOST_CPUS} vCPU`,
  );

const log = (line: string): void => {
  process.stderr.write(`[e2e] ${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The broker's event-loop delay (p99 and max since the previous scrape: prom-client resets its
 * histogram on each) and its GC time so far, from its /metrics.
 */
async function brokerLoop(
  httpAddress: string,
): Promise<{ delayP99Ms: number; delayMaxMs: number; gcMs: number }> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const value = (name: string): number => {
    let sum = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return sum;
  };
  return {
    delayP99Ms: value("nodejs_eventloop_lag_p99_seconds ") * 1000,
    delayMaxMs: value("nodejs_eventloop_lag_max_seconds ") * 1000,
    gcMs: value("nodejs_gc_duration_seconds_sum") * 1000,
  };
}

/** Every core's busy and total time so far, ms (the whole machine, every process on it). */
function machineCpuMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.irq + times.idle;
    busy += all - times.idle;
    total += all;
  }
  return { busy, total };
}

/** Mulberry32: the lease sizes. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// ── the gRPC client ──────────────────────────────────────────────────────────────────────────

// A local subchannel pool per client: each is its own HTTP/2 connection.
const channelOptions = (channel: number) => ({
  "grpc.use_local_subchannel_pool": 1,
  "grpc.enable_channelz": 0,
  "e2e.channel": channel,
});

function newClient(address: string, channel: number): LeaseBrokerClient {
  const pkg = loadLeaseBrokerPackage();
  const options: ChannelOptions = channelOptions(channel);
  return new pkg.leasebroker.v1.LeaseBroker(address, credentials.createInsecure(), options);
}

/** The load generator's channels: submits and the watch, read with the lean decoder. */
function newLeanClient(address: string, channel: number): LeanClient {
  return new LeanClient(address, credentials.createInsecure(), channelOptions(channel));
}

const DEADLINE_MS = 30_000;
const deadline = (): { deadline: Date } => ({ deadline: callDeadline() });
const callDeadline = (): Date => new Date(Date.now() + DEADLINE_MS);

/** A unary call's callback that settles a promise: the response, or the error. */
function settle<T>(
  resolve: (value: T) => void,
  reject: (error: Error) => void,
): (error: ServiceError | null, response?: T) => void {
  return (error, response) => {
    if (error !== null) reject(error);
    else if (response === undefined) reject(new Error("empty response"));
    else resolve(response);
  };
}

function listHosts(c: LeaseBrokerClient, pageToken: string): Promise<ListHostsResponse> {
  return new Promise((resolve, reject) => {
    c.ListHosts(
      { pageSize: 1000, pageToken, states: ["HOST_STATE_READY"] },
      new Metadata(),
      deadline(),
      settle(resolve, reject),
    );
  });
}

function listLeases(c: LeaseBrokerClient): Promise<ListLeasesResponse> {
  return new Promise((resolve, reject) => {
    c.ListLeases({ pageSize: 1 }, new Metadata(), deadline(), settle(resolve, reject));
  });
}

async function readyHosts(c: LeaseBrokerClient): Promise<number> {
  let n = 0;
  let token = "";
  for (let page = 0; page < 100; page++) {
    const r = await listHosts(c, token);
    n += r.hosts.length;
    token = r.nextPageToken;
    if (token === "") break;
  }
  return n;
}

// ── the run ──────────────────────────────────────────────────────────────────────────────────

interface Result {
  agents: number;
  leases: number;
  leases_active: number;
  leases_failed: number;
  concurrency: number;
  /** "batch" (SubmitLeases) or "unary" (SubmitLease). */
  api: string;
  batch_size: number;
  /** Leases/s offered on a fixed schedule; 0 = closed loop (`concurrency` in flight). */
  offered_rate_per_s: number;
  boot_ms: number;
  harness_old_space_mib: number;
  seed: number;
  /** Leases submitted before the measured ones (same schedule), left out of every figure. */
  warmup_leases: number;
  /** Submit→ACTIVE p99 of the warm-up leases: what a cold broker's first seconds cost. */
  warmup_p99_ms: number;
  leases_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  submit_rpc_p50_ms: number;
  submit_rpc_p99_ms: number;
  watch_lag_p50_ms: number;
  watch_lag_p99_ms: number;
  /** Due (open loop) or sent (closed loop) → the broker created the lease (its create time). */
  due_to_created_p50_ms: number;
  due_to_created_p99_ms: number;
  /** Created → the ACTIVE event's time stamp, both the broker's clock: start command, boot, report. */
  created_to_active_p50_ms: number;
  created_to_active_p99_ms: number;
  heartbeat_cpu_percent_of_core: number;
  heartbeat_cpu_percent_of_core_with_leases: number;
  agents_cpu_percent_of_core_heartbeats: number;
  broker_cpu_percent_of_core_load: number;
  broker_cpu_ms_per_lease: number;
  agents_cpu_percent_of_core_load: number;
  nats_cpu_percent_of_core_load: number;
  loadgen_cpu_percent_of_core_load: number;
  /** The machine's cores busy during the load, every process counted (the machine is shared). */
  machine_cpu_busy_percent_load: number;
  /**
   * How long the broker's main thread waited for a CPU (runnable, not running: the cores were
   * busy with other processes), as a share of the load's wall time; null where the kernel keeps
   * no schedstat. Part of every stage's latency that no change to the broker's code removes.
   */
  broker_cpu_wait_percent_of_load: number | null;
  /** The broker's event-loop delay during the load (prom-client's, 10 ms resolution). */
  broker_event_loop_delay_p99_ms: number;
  broker_event_loop_delay_max_ms: number;
  /** The broker's GC pauses during the load, as a share of the wall time. */
  broker_gc_percent_of_load: number;
  /** The agent host's event-loop delay during the load (1 ms resolution), its GC share, CPU. */
  agents_event_loop_delay_p99_ms: number;
  agents_event_loop_delay_max_ms: number;
  agents_gc_percent_of_load: number;
  /** Of which mark-compact collections; and its longest GC pause. */
  agents_major_gc_percent_of_load: number;
  agents_gc_max_pause_ms: number;
  agents_cpu_ms_per_lease: number;
  /** The agent host's socket writes (one per NATS flush) and reads during the load, per lease. */
  agents_write_syscalls_per_lease: number;
  agents_read_syscalls_per_lease: number;
  /** The load generator's (this process's) event-loop delay during the load, and its CPU. */
  loadgen_event_loop_delay_p99_ms: number;
  loadgen_event_loop_delay_max_ms: number;
  loadgen_cpu_ms_per_lease: number;
  /** Created (broker) → the start command reached the agent's driver (agent host). */
  created_to_agent_start_p50_ms: number;
  created_to_agent_start_p99_ms: number;
  /** The start at the driver → the RUNNING event (the simulated boot, and the timer's lateness). */
  agent_start_to_running_p50_ms: number;
  agent_start_to_running_p99_ms: number;
  /** The agent's RUNNING event → the ACTIVE event's stamp on the broker. */
  running_to_active_p50_ms: number;
  running_to_active_p99_ms: number;
  /**
   * With `--spy`: the two NATS hops, split where the spy saw the message (see bench/e2e-spy.ts):
   * created → the start command on NATS → the agent's driver; RUNNING at the agent → on NATS →
   * the broker's ACTIVE stamp.
   */
  created_to_command_on_nats_p50_ms?: number;
  created_to_command_on_nats_p99_ms?: number;
  command_on_nats_to_agent_start_p50_ms?: number;
  command_on_nats_to_agent_start_p99_ms?: number;
  running_to_nats_p50_ms?: number;
  running_to_nats_p99_ms?: number;
  running_on_nats_to_active_p50_ms?: number;
  running_on_nats_to_active_p99_ms?: number;
  elapsed_s: number;
}

/** Leases per submit call. */
const perCallOf = (): number => (flags.unary ? 1 : flags.batch);

const children: Child[] = [];
const tempDirs: string[] = [];

async function cleanup(): Promise<void> {
  // Agents first (their workloads end with them), then the broker, then NATS.
  for (const child of [...children].reverse()) await child.stop(5000).catch(() => {});
  children.length = 0;
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping the children`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function run(): Promise<Result> {
  const started = performance.now();
  const nodeBin = process.execPath;
  const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
  const [natsPort, grpcPort, httpPort] = await freePorts(3);
  const natsUrl = `nats://${LOOPBACK}:${natsPort}`;
  const address = `${LOOPBACK}:${grpcPort}`;
  const httpAddress = `${LOOPBACK}:${httpPort}`;

  const nats = spawnChild("nats-server", findNatsServer(), [
    "-a",
    LOOPBACK,
    "-p",
    String(natsPort),
    "-n",
    "e2e",
  ]);
  children.push(nats);
  await nats.waitForLine((l) => l.includes("Server is ready"), 20_000);

  const profileDir = flags["profile-broker"]
    ? mkdtempSync(join(tmpdir(), "e2e-broker-prof-"))
    : undefined;
  let spy: Child | undefined;
  if (flags.spy) {
    spy = spawnChild("spy", nodeBin, [here("./e2e-spy.js"), natsUrl], { stdinPipe: true });
    children.push(spy);
    await spy.waitForLine((l) => l === "E2E-SPY-READY", 20_000);
  }
  const agentsProfileDir = flags["profile-agents"]
    ? mkdtempSync(join(tmpdir(), "e2e-agents-prof-"))
    : undefined;
  const broker = spawnChild("broker", nodeBin, [
    ...(profileDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", profileDir]),
    here("../broker/main.js"),
    "--bus",
    "nats",
    "--nats-url",
    natsUrl,
    "--grpc-address",
    address,
    "--http-address",
    `${LOOPBACK}:${httpPort}`,
    "--sim-hosts",
    "0",
    "--heartbeat-interval",
    "1s",
    "--log-level",
    "warn",
  ]);
  children.push(broker);
  await broker.waitForLine((l) => l.includes("leasebroker is serving"), 30_000);

  const agentsStart = performance.now();
  const agents = spawnChild(
    "agents",
    nodeBin,
    [
      ...(agentsProfileDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", agentsProfileDir]),
      ...harnessHeapFlags,
      here("./e2e-agents.js"),
      "--nats-url",
      natsUrl,
      "--agents",
      String(flags.agents),
      "--connections",
      String(flags.connections),
      "--boot-ms",
      String(flags["boot-ms"]),
      "--cpus",
      String(HOST_CPUS),
      "--memory-gib",
      String(HOST_MEMORY_GIB),
      "--seed",
      String(flags.seed),
      "--heartbeat-slot-ms",
      String(flags["heartbeat-slot-ms"]),
    ],
    { stdinPipe: true },
  );
  children.push(agents);
  await agents.waitForLine((l) => l.startsWith("E2E-AGENTS-READY"), 90_000);

  const main = newClient(address, 0);
  const clients = Array.from({ length: flags.channels }, (_, i) => newLeanClient(address, i + 1));
  const readyBy = performance.now() + 30_000;
  let ready = await readyHosts(main);
  for (; ready < flags.agents; ready = await readyHosts(main)) {
    if (performance.now() > readyBy)
      throw new Error(`only ${ready} of ${flags.agents} hosts are READY after 30 s`);
    await sleep(200);
  }
  log(
    `${ready} hosts READY in ${((performance.now() - agentsStart) / 1000).toFixed(1)} s; measuring heartbeats`,
  );

  // 1. Heartbeats only: let the registration burst settle, then measure over whole seconds.
  await sleep(2000);
  const hbMs = flags["heartbeat-seconds"] * 1000;
  const b0 = cpuTimeMs(broker.pid);
  const a0 = cpuTimeMs(agents.pid);
  const t0 = performance.now();
  await sleep(hbMs);
  const wall = performance.now() - t0;
  const heartbeatCpu = ((cpuTimeMs(broker.pid) - b0) / wall) * 100;
  const agentsCpu = ((cpuTimeMs(agents.pid) - a0) / wall) * 100;
  log(
    `heartbeats: broker ${heartbeatCpu.toFixed(1)}% of a core, agent host ${agentsCpu.toFixed(1)}%`,
  );

  // 2. Submit → ACTIVE.
  const { revision } = await listLeases(main);
  // Leases [0, warm) warm the broker up; [warm, total) are measured (the first `n` are not).
  const n = flags.leases;
  const warm = flags.warmup;
  const total = warm + n;
  const sentAt = new Float64Array(total);
  const rpcMs = new Float64Array(total);
  /** Per lease (NaN until known): submit→ACTIVE, and the ACTIVE event's lag on the watch. */
  const activeMs = new Float64Array(total).fill(Number.NaN);
  const watchLagMs = new Float64Array(total).fill(Number.NaN);
  /** Per lease, epoch ms on the broker's clock: its create time and its ACTIVE event's stamp. */
  const createdAt = new Float64Array(total).fill(Number.NaN);
  const activeAt = new Float64Array(total).fill(Number.NaN);
  const indexOf = new Map<string, number>();
  /** ACTIVE (or failure) events that came before their submit's reply, with their stamps. */
  const early = new Map<string, { at: number; ok: boolean; timeMs: number }>();
  let active = 0;
  let failed = 0;
  let submitErrors = 0;
  /** The same, of the measured leases only. */
  let measuredActive = 0;
  let measuredFailed = 0;
  let done: () => void = () => {};
  let broken: (error: Error) => void = () => {};
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    broken = reject;
  });
  const settle = (i: number, at: number, ok: boolean, timeMs: number): void => {
    if (ok) {
      active++;
      if (i >= warm) measuredActive++;
      activeMs[i] = at - (sentAt[i] as number);
      if (timeMs > 0) {
        activeAt[i] = timeMs;
        // Receipt of the ACTIVE event minus its time stamp (the broker's clock): the watch's lag.
        watchLagMs[i] = performance.timeOrigin + at - timeMs;
      }
    } else {
      failed++;
      if (i >= warm) measuredFailed++;
    }
    if (active + failed + submitErrors === total) done();
  };
  let stopping = false;
  // The watch has a channel of its own: its events do not queue behind the submits' frames.
  const watcher = newLeanClient(address, flags.channels + 1);
  const watch = watcher.watchLeases(
    { fromRevision: Number(revision) + 1, types: ["LEASE_EVENT_TYPE_STATE_CHANGED"] },
    new Metadata(),
  );
  const ACTIVE = leaseStates.LEASE_STATE_ACTIVE;
  const FAILED = leaseStates.LEASE_STATE_FAILED;
  const REJECTED = leaseStates.LEASE_STATE_REJECTED;
  watch.on("data", (event: LeanEvent) => {
    const at = performance.now();
    if (event.leaseId === "") return;
    let ok: boolean;
    if (event.state === ACTIVE) ok = true;
    else if (event.state === FAILED || event.state === REJECTED) ok = false;
    else return;
    const i = indexOf.get(event.leaseId);
    if (i === undefined) early.set(event.leaseId, { at, ok, timeMs: event.timeMs });
    else settle(i, at, ok, event.timeMs);
  });
  watch.on("error", (error: ServiceError) => {
    if (!stopping) broken(new Error(`WatchLeases ended: ${error.details || error.message}`));
  });

  const random = rng(flags.seed);
  // Warm-up leases are small: they take the same paths without taking the measured ones' room.
  const specs: LeaseSpecInput[] = Array.from({ length: total }, (_, i) => ({
    name: `vm-${i}`,
    tenant: "bench",
    resources:
      i < warm
        ? WARMUP_RESOURCES
        : {
            cpuMillis: random() < 0.5 ? 1000 : 2000,
            memoryMib: random() < 0.5 ? 1024 : 2048,
            diskGib: 0,
            gpus: 0,
          },
    immediate: { duration: durationFromMs(LEASE_DURATION_MS) },
    driver: { image: "bench", params: { boot_ms: String(flags["boot-ms"]) } },
  }));
  // Encoded before the load: the load generator's CPU goes to sending, not to protobufjs.
  const requests = specs.map(encodeSubmitLeaseRequest);
  // Let the watch reach the broker before the first submit (it replays from `revision` anyway).
  await sleep(200);
  let nextIndex = 0;
  let firstError = "";
  const loadgenDelay = monitorEventLoopDelay({ resolution: 10 });
  const loadStart = performance.now();
  /** When the first measured lease went out, and every process's CPU time then. */
  let measured = {
    gcMs: 0,
    at: loadStart,
    broker: 0,
    brokerWait: runQueueWaitMs(broker.pid),
    agents: 0,
    nats: 0,
    self: process.cpuUsage(),
    machine: machineCpuMs(),
  };
  const startMeasuring = async (): Promise<void> => {
    // Resets the broker's event-loop delay histogram.
    const { gcMs } = await brokerLoop(httpAddress);
    agents.send("reset");
    loadgenDelay.enable();
    measured = {
      gcMs,
      at: performance.now(),
      broker: cpuTimeMs(broker.pid),
      brokerWait: runQueueWaitMs(broker.pid),
      agents: cpuTimeMs(agents.pid),
      nats: cpuTimeMs(nats.pid),
      self: process.cpuUsage(),
      machine: machineCpuMs(),
    };
  };
  const answered = (i: number, id: string, at: number, createdMs: number): void => {
    rpcMs[i] = at - (sentAt[i] as number);
    indexOf.set(id, i);
    if (createdMs > 0) createdAt[i] = createdMs;
    const seen = early.get(id);
    if (seen !== undefined) {
      early.delete(id);
      settle(i, seen.at, seen.ok, seen.timeMs);
    }
  };
  const refused = (i: number, at: number, why: string): void => {
    rpcMs[i] = at - (sentAt[i] as number);
    submitErrors++;
    if (i >= warm) measuredFailed++;
    if (firstError === "") firstError = why;
    if (active + failed + submitErrors === total) done();
  };
  /** Submits leases [from, to) (their sentAt already set), in one call or one call each. */
  const send = async (client: LeanClient, from: number, to: number): Promise<void> => {
    if (flags.unary) {
      await Promise.all(
        requests.slice(from, to).map(async (request, k) => {
          try {
            const { leaseId, createdMs } = await client.submitLease(
              request,
              new Metadata(),
              callDeadline(),
            );
            answered(from + k, leaseId, performance.now(), createdMs);
          } catch (error) {
            refused(from + k, performance.now(), (error as ServiceError).details ?? String(error));
          }
        }),
      );
      return;
    }
    try {
      const outcomes = await client.submitLeases(
        requests.slice(from, to),
        new Metadata(),
        callDeadline(),
      );
      const at = performance.now();
      for (let k = 0; k < to - from; k++) {
        const outcome = outcomes[k];
        if (outcome !== undefined && outcome.leaseId !== "")
          answered(from + k, outcome.leaseId, at, outcome.createdMs);
        else refused(from + k, at, outcome?.error ?? "no result");
      }
    } catch (error) {
      const at = performance.now();
      const why = (error as ServiceError).details ?? String(error);
      for (let i = from; i < to; i++) refused(i, at, why);
    }
  };
  const perCall = perCallOf();
  let calls = 0;
  /** Submits leases [first, last) closed or open loop; resolves when every call was answered. */
  const submitRange = async (first: number, last: number): Promise<void> => {
    nextIndex = first;
    if (flags.rate === 0) {
      // Closed loop: each worker keeps one call of `perCall` leases in flight.
      const worker = async (client: LeanClient): Promise<void> => {
        for (;;) {
          const from = nextIndex;
          if (from >= last) return;
          const to = Math.min(last, from + perCall);
          nextIndex = to;
          sentAt.fill(performance.now(), from, to);
          calls++;
          await send(client, from, to);
        }
      };
      const workers = Array.from({ length: Math.ceil(flags.concurrency / perCall) }, (_, w) =>
        worker(clients[w % clients.length] as LeanClient),
      );
      await Promise.all(workers);
      return;
    }
    // Open loop: lease i is due at start + (i - first) / rate; what is due goes out every tick,
    // in calls of at most `perCall`, round-robin over the channels. Its latency counts from when
    // it was due.
    const start = performance.now();
    const inFlight: Promise<void>[] = [];
    const intervalMs = 1000 / flags.rate;
    while (nextIndex < last) {
      const now = performance.now();
      const due = Math.min(last, first + Math.floor((now - start) / intervalMs) + 1);
      while (nextIndex < due) {
        const from = nextIndex;
        const to = Math.min(due, from + perCall);
        nextIndex = to;
        for (let i = from; i < to; i++) sentAt[i] = start + (i - first) * intervalMs;
        inFlight.push(send(clients[calls++ % clients.length] as LeanClient, from, to));
      }
      // A fixed tick: what falls due within it goes out together.
      if (nextIndex < last) await sleep(flags["tick-ms"]);
    }
    await Promise.all(inFlight);
  };
  if (warm > 0) {
    // The warm-up, then a pause once it has settled: the measured leases find no backlog.
    await submitRange(0, warm);
    const by = performance.now() + 60_000;
    while (active + failed + submitErrors < warm) {
      if (performance.now() > by) throw new Error("the warm-up leases did not settle within 60 s");
      await Promise.race([finished, sleep(20)]);
    }
    await sleep(500);
  }
  await startMeasuring();
  await submitRange(warm, total);
  const submitted = performance.now();
  const timeout = setTimeout(
    () => broken(new Error(`not every lease settled within 60 s of the last submit`)),
    60_000,
  );
  try {
    await finished;
  } finally {
    clearTimeout(timeout);
  }
  const loadEnd = performance.now();
  // The measured window: from the first measured lease's send to the last settle.
  const loadWall = loadEnd - measured.at;
  const brokerLoadCpuMs = cpuTimeMs(broker.pid) - measured.broker;
  const brokerLoadCpu = (brokerLoadCpuMs / loadWall) * 100;
  const brokerWaitNow = runQueueWaitMs(broker.pid);
  const brokerWait =
    brokerWaitNow === undefined || measured.brokerWait === undefined
      ? null
      : ((brokerWaitNow - measured.brokerWait) / loadWall) * 100;
  const agentsLoadCpuMs = cpuTimeMs(agents.pid) - measured.agents;
  const agentsLoadCpu = (agentsLoadCpuMs / loadWall) * 100;
  const natsLoadCpu = ((cpuTimeMs(nats.pid) - measured.nats) / loadWall) * 100;
  const selfUsage = process.cpuUsage(measured.self);
  const machineNow = machineCpuMs();
  const loop = await brokerLoop(httpAddress);
  const machineBusy =
    ((machineNow.busy - measured.machine.busy) / (machineNow.total - measured.machine.total)) * 100;
  const benchLoadCpu = ((selfUsage.user + selfUsage.system) / 1000 / loadWall) * 100;
  loadgenDelay.disable();
  const stageFile = join(mkdtempSync(join(tmpdir(), "e2e-stages-")), "stages.json");
  tempDirs.push(dirname(stageFile));
  agents.send(`stats ${stageFile}`);
  const agentsLoad = JSON.parse(
    (await agents.waitForLine((l) => l.startsWith("E2E-AGENTS-STATS "), 30_000)).slice(
      "E2E-AGENTS-STATS ".length,
    ),
  ) as Record<string, number>;
  const agentStages = JSON.parse(readFileSync(stageFile, "utf8")) as {
    started: Record<string, number>;
    running: Record<string, number>;
  };
  let spied: { command: Record<string, number>; running: Record<string, number> } | undefined;
  if (spy !== undefined) {
    const spyFile = join(dirname(stageFile), "spy.json");
    spy.send(`stats ${spyFile}`);
    await spy.waitForLine((l) => l === "E2E-SPY-STATS", 30_000);
    spied = JSON.parse(readFileSync(spyFile, "utf8")) as typeof spied;
  }
  stopping = true;
  watch.cancel();
  for (const c of clients) c.close();
  main.close();
  watcher.close();
  if (submitErrors > 0) log(`${submitErrors} submits failed; the first: ${firstError}`);
  log(
    `submitted ${warm} + ${n} in ${((submitted - loadStart) / 1000).toFixed(2)} s; all settled after ${((loadEnd - loadStart) / 1000).toFixed(2)} s (measured from ${((measured.at - loadStart) / 1000).toFixed(2)} s)`,
  );

  // 3. Heartbeats again, now that the hosts run the leases (each beat lists its host's leases).
  await sleep(1000);
  const b2 = cpuTimeMs(broker.pid);
  const t2 = performance.now();
  await sleep(hbMs);
  const heartbeatLoadedCpu = ((cpuTimeMs(broker.pid) - b2) / (performance.now() - t2)) * 100;
  log(
    `heartbeats with ${active} leases running: broker ${heartbeatLoadedCpu.toFixed(1)}% of a core`,
  );

  if (agentsProfileDir !== undefined) {
    await agents.stop(30_000);
    log(`agent host CPU profile in ${agentsProfileDir}`);
  }
  if (profileDir !== undefined) {
    await broker.stop(30_000);
    log(`broker CPU profile in ${profileDir}`);
  }

  /** The known values of a per-lease figure, of the measured leases (or the warm-up ones), sorted. */
  const known = (perLease: Float64Array, warmup = false): Float64Array =>
    (warmup ? perLease.subarray(0, warm) : perLease.subarray(warm))
      .filter((v) => !Number.isNaN(v))
      .sort();
  const latencies = known(activeMs);
  const rpc = known(rpcMs);
  const lag = known(watchLagMs);
  // Both clocks are this machine's: the broker's epoch ms against timeOrigin + performance.now().
  const dueToCreated = known(
    Float64Array.from(createdAt, (c, i) => c - performance.timeOrigin - (sentAt[i] as number)),
  );
  const createdToActive = known(
    Float64Array.from(activeAt, (a, i) => a - (createdAt[i] as number)),
  );
  /** Per lease, epoch ms: the start at its agent's driver, and its RUNNING event there. */
  const agentStartAt = new Float64Array(total).fill(Number.NaN);
  const runningAt = new Float64Array(total).fill(Number.NaN);
  for (const [id, i] of indexOf) {
    agentStartAt[i] = agentStages.started[id] ?? Number.NaN;
    runningAt[i] = agentStages.running[id] ?? Number.NaN;
  }
  /** Per lease, `to` − `from` (the measured leases whose both are known), sorted. */
  const between = (from: Float64Array, to: Float64Array): Float64Array =>
    known(Float64Array.from(to, (t, i) => t - (from[i] as number)));
  const createdToAgentStart = between(createdAt, agentStartAt);
  const agentStartToRunning = between(agentStartAt, runningAt);
  const runningToActive = between(runningAt, activeAt);
  /** Per lease, epoch ms: when the spy saw its start command, and its RUNNING event, on NATS. */
  const commandOnNats = new Float64Array(total).fill(Number.NaN);
  const runningOnNats = new Float64Array(total).fill(Number.NaN);
  if (spied !== undefined) {
    for (const [id, i] of indexOf) {
      commandOnNats[i] = spied.command[id] ?? Number.NaN;
      runningOnNats[i] = spied.running[id] ?? Number.NaN;
    }
  }
  const round = (v: number, d = 1): number => Math.round(v * 10 ** d) / 10 ** d;
  if (flags["lease-times"] !== "") {
    // Every measured lease's path on one clock (epoch ms): where a slow lease lost its time.
    const epoch = (perf: number): number | null =>
      Number.isNaN(perf) ? null : round(performance.timeOrigin + perf, 2);
    const stamp = (ms: number): number | null => (Number.isNaN(ms) ? null : ms);
    const rows: (number | null)[][] = [];
    for (let i = warm; i < total; i++) {
      const due = sentAt[i] as number;
      rows.push([
        epoch(due),
        epoch(due + (rpcMs[i] as number)),
        stamp(createdAt[i] as number),
        stamp(agentStartAt[i] as number),
        stamp(runningAt[i] as number),
        stamp(activeAt[i] as number),
        epoch(due + (activeMs[i] as number)),
      ]);
    }
    writeFileSync(
      flags["lease-times"],
      `${JSON.stringify({ columns: LEASE_TIME_COLUMNS, rows })}\n`,
    );
  }
  const p50 = (sorted: Float64Array): number => round(percentile(sorted, 50));
  const p99 = (sorted: Float64Array): number => round(percentile(sorted, 99));
  const perLease = (amount: number, digits: number): number =>
    round(amount / Math.max(1, measuredActive), digits);
  return {
    agents: flags.agents,
    leases: n,
    leases_active: measuredActive,
    leases_failed: measuredFailed,
    concurrency: flags.concurrency,
    api: flags.unary ? "unary" : "batch",
    batch_size: perCallOf(),
    offered_rate_per_s: flags.rate,
    boot_ms: flags["boot-ms"],
    harness_old_space_mib: harnessOldSpaceMib,
    seed: flags.seed,
    warmup_leases: warm,
    warmup_p99_ms: round(percentile(known(activeMs, true), 99)),
    leases_per_s: Math.round(measuredActive / (loadWall / 1000)),
    p50_ms: p50(latencies),
    p99_ms: p99(latencies),
    max_ms: round(latencies[latencies.length - 1] ?? Number.NaN),
    submit_rpc_p50_ms: p50(rpc),
    submit_rpc_p99_ms: p99(rpc),
    watch_lag_p50_ms: p50(lag),
    watch_lag_p99_ms: p99(lag),
    due_to_created_p50_ms: p50(dueToCreated),
    due_to_created_p99_ms: p99(dueToCreated),
    created_to_active_p50_ms: p50(createdToActive),
    created_to_active_p99_ms: p99(createdToActive),
    heartbeat_cpu_percent_of_core: round(heartbeatCpu),
    heartbeat_cpu_percent_of_core_with_leases: round(heartbeatLoadedCpu),
    agents_cpu_percent_of_core_heartbeats: round(agentsCpu),
    broker_cpu_percent_of_core_load: round(brokerLoadCpu),
    broker_cpu_ms_per_lease: perLease(brokerLoadCpuMs, 2),
    agents_cpu_percent_of_core_load: round(agentsLoadCpu),
    nats_cpu_percent_of_core_load: round(natsLoadCpu),
    loadgen_cpu_percent_of_core_load: round(benchLoadCpu),
    machine_cpu_busy_percent_load: round(machineBusy),
    broker_cpu_wait_percent_of_load: brokerWait === null ? null : round(brokerWait),
    broker_event_loop_delay_p99_ms: round(loop.delayP99Ms),
    broker_event_loop_delay_max_ms: round(loop.delayMaxMs),
    broker_gc_percent_of_load: round(((loop.gcMs - measured.gcMs) / loadWall) * 100),
    agents_event_loop_delay_p99_ms: round(agentsLoad.event_loop_delay_p99_ms ?? Number.NaN),
    agents_event_loop_delay_max_ms: round(agentsLoad.event_loop_delay_max_ms ?? Number.NaN),
    agents_gc_percent_of_load: round(agentsLoad.gc_percent ?? Number.NaN),
    agents_major_gc_percent_of_load: round(agentsLoad.gc_major_percent ?? Number.NaN),
    agents_gc_max_pause_ms: round(agentsLoad.gc_max_pause_ms ?? Number.NaN),
    agents_cpu_ms_per_lease: perLease(agentsLoadCpuMs, 3),
    agents_write_syscalls_per_lease: perLease(agentsLoad.write_syscalls ?? Number.NaN, 2),
    agents_read_syscalls_per_lease: perLease(agentsLoad.read_syscalls ?? Number.NaN, 2),
    loadgen_event_loop_delay_p99_ms: round(loadgenDelay.percentile(99) / 1e6),
    loadgen_event_loop_delay_max_ms: round(loadgenDelay.max / 1e6),
    loadgen_cpu_ms_per_lease: perLease((selfUsage.user + selfUsage.system) / 1000, 3),
    created_to_agent_start_p50_ms: p50(createdToAgentStart),
    created_to_agent_start_p99_ms: p99(createdToAgentStart),
    agent_start_to_running_p50_ms: p50(agentStartToRunning),
    agent_start_to_running_p99_ms: p99(agentStartToRunning),
    running_to_active_p50_ms: p50(runningToActive),
    running_to_active_p99_ms: p99(runningToActive),
    ...(spied === undefined
      ? {}
      : {
          created_to_command_on_nats_p50_ms: p50(between(createdAt, commandOnNats)),
          created_to_command_on_nats_p99_ms: p99(between(createdAt, commandOnNats)),
          command_on_nats_to_agent_start_p50_ms: p50(between(commandOnNats, agentStartAt)),
          command_on_nats_to_agent_start_p99_ms: p99(between(commandOnNats, agentStartAt)),
          running_to_nats_p50_ms: p50(between(runningAt, runningOnNats)),
          running_to_nats_p99_ms: p99(between(runningAt, runningOnNats)),
          running_on_nats_to_active_p50_ms: p50(between(runningOnNats, activeAt)),
          running_on_nats_to_active_p99_ms: p99(between(runningOnNats, activeAt)),
        }),
    elapsed_s: round((performance.now() - started) / 1000),
  };
}

let result: Result;
try {
  result = await run();
} catch (error) {
  process.stderr.write(`e2e: ${error instanceof Error ? error.message : String(error)}\n`);
  for (const child of children) {
    process.stderr.write(`--- ${child.name} (last lines) ---\n${child.outputTail(15)}\n`);
  }
  await cleanup();
  process.exit(1);
}
await cleanup();

if (flags.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const r = result;
  process.stdout.write(
    `${table([
      ["figure", "value", "target"],
      ["agents (sim driver, 1 s heartbeats)", fmt(r.agents), ""],
      [
        "leases submitted / ACTIVE / failed",
        `${fmt(r.leases)} / ${fmt(r.leases_active)} / ${fmt(r.leases_failed)}`,
        "",
      ],
      [
        "submit API",
        r.api === "unary"
          ? "SubmitLease, one call per lease"
          : `SubmitLeases, ≤ ${r.batch_size} per call`,
        "",
      ],
      [
        "load",
        r.offered_rate_per_s === 0
          ? `closed loop, ${fmt(r.concurrency)} leases in flight`
          : `open loop, ${fmt(r.offered_rate_per_s)} leases/s offered`,
        "",
      ],
      ["simulated boot", `${r.boot_ms} ms`, ""],
      [
        "warm-up leases first (not measured): their p99",
        `${fmt(r.warmup_leases)}: ${fmt(r.warmup_p99_ms, 1)} ms`,
        "",
      ],
      ["submit→ACTIVE throughput", `${fmt(r.leases_per_s)} leases/s`, "≥ 2,000"],
      [
        "submit→ACTIVE p50 / p99 / max",
        `${fmt(r.p50_ms, 1)} / ${fmt(r.p99_ms, 1)} / ${fmt(r.max_ms, 1)} ms`,
        "p99 ≤ 50 ms",
      ],
      [
        "submit call p50 / p99 (each lease, send → answer)",
        `${fmt(r.submit_rpc_p50_ms, 1)} / ${fmt(r.submit_rpc_p99_ms, 1)} ms`,
        "",
      ],
      [
        "due → created on the broker p50 / p99",
        `${fmt(r.due_to_created_p50_ms, 1)} / ${fmt(r.due_to_created_p99_ms, 1)} ms`,
        "",
      ],
      [
        "created → ACTIVE (the broker's time stamps) p50 / p99",
        `${fmt(r.created_to_active_p50_ms, 1)} / ${fmt(r.created_to_active_p99_ms, 1)} ms`,
        "",
      ],
      [
        "ACTIVE event's lag on the watch p50 / p99",
        `${fmt(r.watch_lag_p50_ms, 1)} / ${fmt(r.watch_lag_p99_ms, 1)} ms`,
        "",
      ],
      [
        "broker CPU, heartbeats only",
        `${fmt(r.heartbeat_cpu_percent_of_core, 1)}% of a core`,
        "< 10%",
      ],
      [
        "broker CPU, heartbeats, the leases running",
        `${fmt(r.heartbeat_cpu_percent_of_core_with_leases, 1)}% of a core`,
        "",
      ],
      [
        "agent host CPU, heartbeats only",
        `${fmt(r.agents_cpu_percent_of_core_heartbeats, 1)}% of a core`,
        "",
      ],
      [
        "CPU during the load: broker / agents / nats / load gen",
        `${fmt(r.broker_cpu_percent_of_core_load)} / ${fmt(r.agents_cpu_percent_of_core_load)} / ${fmt(r.nats_cpu_percent_of_core_load)} / ${fmt(r.loadgen_cpu_percent_of_core_load)}% of a core`,
        "",
      ],
      [
        "the machine's cores busy during the load (every process)",
        `${fmt(r.machine_cpu_busy_percent_load, 1)}% of ${cpus().length}`,
        "",
      ],
      [
        "broker's main thread waiting for a CPU during the load",
        r.broker_cpu_wait_percent_of_load === null
          ? "(no schedstat)"
          : `${fmt(r.broker_cpu_wait_percent_of_load, 1)}% of the time`,
        "",
      ],
      [
        "broker event-loop delay p99 / max; its GC pauses",
        `${fmt(r.broker_event_loop_delay_p99_ms, 1)} / ${fmt(r.broker_event_loop_delay_max_ms, 1)} ms; ${fmt(r.broker_gc_percent_of_load, 1)}% of the time`,
        "",
      ],
      ["broker CPU per lease (submit→ACTIVE)", `${fmt(r.broker_cpu_ms_per_lease, 2)} ms`, ""],
      [
        "created → start at the agent / boot → RUNNING / RUNNING → ACTIVE p99",
        `${fmt(r.created_to_agent_start_p99_ms, 1)} / ${fmt(r.agent_start_to_running_p99_ms, 1)} / ${fmt(r.running_to_active_p99_ms, 1)} ms`,
        "",
      ],
      [
        "agent host: event-loop delay p99 / max; GC; CPU and socket writes per lease",
        `${fmt(r.agents_event_loop_delay_p99_ms, 1)} / ${fmt(r.agents_event_loop_delay_max_ms, 1)} ms; ${fmt(r.agents_gc_percent_of_load, 1)}%; ${fmt(r.agents_cpu_ms_per_lease, 3)} ms, ${fmt(r.agents_write_syscalls_per_lease, 2)}`,
        "",
      ],
      [
        "load generator: event-loop delay p99 / max; CPU per lease",
        `${fmt(r.loadgen_event_loop_delay_p99_ms, 1)} / ${fmt(r.loadgen_event_loop_delay_max_ms, 1)} ms; ${fmt(r.loadgen_cpu_ms_per_lease, 3)} ms`,
        "",
      ],
      ["wall time", `${fmt(r.elapsed_s, 1)} s`, ""],
    ])}\n`,
  );
}
