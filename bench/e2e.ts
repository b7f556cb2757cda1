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
 *   node dist/bench/e2e.js [--agents N] [--leases N] [--concurrency N] [--rate N] [--unary]
 *                          [--batch N] [--seed N] [--json]
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
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
  spawnChild,
} from "./e2e-procs.js";
import { parseFlags } from "./lib/args.js";
import { LeanClient, type LeanEvent, leaseStates } from "./lib/lean-client.js";
import { fmt, percentile, table } from "./lib/stats.js";

const flags = parseFlags(
  "e2e",
  {
    agents: { kind: "number", default: 1000, help: "simulated hosts (agents), in one process" },
    leases: { kind: "number", default: 10_000, help: "leases submitted" },
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
    "profile-broker": {
      kind: "boolean",
      default: false,
      help: "run the broker under node --cpu-prof (the .cpuprofile path is printed)",
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
if (flags.concurrency < 1 || flags.concurrency > 4096) fail("--concurrency must be 1..4096");
if (flags.batch < 1 || flags.batch > 1000) fail("--batch must be 1..1000");
if (flags.rate > 100_000) fail("--rate must be 0..100000");
if (flags["tick-ms"] < 1 || flags["tick-ms"] > 1000) fail("--tick-ms must be 1..1000");
if (flags.channels < 1 || flags.channels > 64) fail("--channels must be 1..64");
if (flags.connections < 1 || flags.connections > 64) fail("--connections must be 1..64");
if (flags["heartbeat-seconds"] < 1 || flags["heartbeat-seconds"] > 60)
  fail("--heartbeat-seconds must be 1..60");

/** Host shape: 16 vCPU (×4 overcommit: 64 allocatable) and 64 GiB; leases of 1–2 vCPU, 1–2 GiB. */
const HOST_CPUS = 16;
const HOST_MEMORY_GIB = 64;
/** Far beyond the run: no lease ends or is warned about while it is measured. */
const LEASE_DURATION_MS = 60 * 60_000;
if (flags.leases * 2 > flags.agents * HOST_MEMORY_GIB)
  fail(`--leases ${flags.leases} may not fit on ${flags.agents} hosts of ${HOST_MEMORY_GIB} GiB`);

const log = (line: string): void => {
  process.stderr.write(`[e2e] ${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
  seed: number;
  leases_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  submit_rpc_p50_ms: number;
  submit_rpc_p99_ms: number;
  watch_lag_p50_ms: number;
  watch_lag_p99_ms: number;
  heartbeat_cpu_percent_of_core: number;
  heartbeat_cpu_percent_of_core_with_leases: number;
  agents_cpu_percent_of_core_heartbeats: number;
  broker_cpu_percent_of_core_load: number;
  broker_cpu_ms_per_lease: number;
  agents_cpu_percent_of_core_load: number;
  nats_cpu_percent_of_core_load: number;
  loadgen_cpu_percent_of_core_load: number;
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
  const [natsPort, grpcPort] = await freePorts(2);
  const natsUrl = `nats://${LOOPBACK}:${natsPort}`;
  const address = `${LOOPBACK}:${grpcPort}`;

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
    "127.0.0.1:0",
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
  const n = flags.leases;
  const sentAt = new Float64Array(n);
  const rpcMs = new Float64Array(n);
  const activeMs: number[] = [];
  /** Receipt of an ACTIVE event minus its time stamp (the broker's clock): the watch's lag. */
  const watchLagMs: number[] = [];
  const indexOf = new Map<string, number>();
  /** ACTIVE (or failure) events that came before their submit's reply. */
  const early = new Map<string, { at: number; ok: boolean }>();
  let active = 0;
  let failed = 0;
  let submitErrors = 0;
  let done: () => void = () => {};
  let broken: (error: Error) => void = () => {};
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    broken = reject;
  });
  const settle = (i: number, at: number, ok: boolean): void => {
    if (ok) {
      active++;
      activeMs.push(at - (sentAt[i] as number));
    } else failed++;
    if (active + failed + submitErrors === n) done();
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
    if (ok && event.timeMs > 0) watchLagMs.push(performance.timeOrigin + at - event.timeMs);
    const i = indexOf.get(event.leaseId);
    if (i === undefined) early.set(event.leaseId, { at, ok });
    else settle(i, at, ok);
  });
  watch.on("error", (error: ServiceError) => {
    if (!stopping) broken(new Error(`WatchLeases ended: ${error.details || error.message}`));
  });

  const random = rng(flags.seed);
  const specs: LeaseSpecInput[] = Array.from({ length: n }, (_, i) => ({
    name: `vm-${i}`,
    tenant: "bench",
    resources: {
      cpuMillis: random() < 0.5 ? 1000 : 2000,
      memoryMib: random() < 0.5 ? 1024 : 2048,
      diskGib: 0,
      gpus: 0,
    },
    immediate: { duration: durationFromMs(LEASE_DURATION_MS) },
    driver: { image: "bench", params: { boot_ms: String(flags["boot-ms"]) } },
  }));
  // Let the watch reach the broker before the first submit (it replays from `revision` anyway).
  await sleep(200);
  let nextIndex = 0;
  let firstError = "";
  const loadStart = performance.now();
  const b1 = cpuTimeMs(broker.pid);
  const a1 = cpuTimeMs(agents.pid);
  const n1 = cpuTimeMs(nats.pid);
  const self1 = process.cpuUsage();
  const answered = (i: number, id: string, at: number): void => {
    rpcMs[i] = at - (sentAt[i] as number);
    indexOf.set(id, i);
    const seen = early.get(id);
    if (seen !== undefined) {
      early.delete(id);
      settle(i, seen.at, seen.ok);
    }
  };
  const refused = (i: number, at: number, why: string): void => {
    rpcMs[i] = at - (sentAt[i] as number);
    submitErrors++;
    if (firstError === "") firstError = why;
    if (active + failed + submitErrors === n) done();
  };
  /** Submits leases [from, to) (their sentAt already set), in one call or one call each. */
  const send = async (client: LeanClient, from: number, to: number): Promise<void> => {
    if (flags.unary) {
      await Promise.all(
        specs.slice(from, to).map(async (spec, k) => {
          try {
            const { leaseId } = await client.submitLease(spec, new Metadata(), callDeadline());
            answered(from + k, leaseId, performance.now());
          } catch (error) {
            refused(from + k, performance.now(), (error as ServiceError).details ?? String(error));
          }
        }),
      );
      return;
    }
    try {
      const outcomes = await client.submitLeases(
        specs.slice(from, to),
        new Metadata(),
        callDeadline(),
      );
      const at = performance.now();
      for (let k = 0; k < to - from; k++) {
        const outcome = outcomes[k];
        if (outcome !== undefined && outcome.leaseId !== "")
          answered(from + k, outcome.leaseId, at);
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
  if (flags.rate === 0) {
    // Closed loop: each worker keeps one call of `perCall` leases in flight.
    const worker = async (client: LeanClient): Promise<void> => {
      for (;;) {
        const from = nextIndex;
        if (from >= n) return;
        const to = Math.min(n, from + perCall);
        nextIndex = to;
        const t = performance.now();
        sentAt.fill(t, from, to);
        calls++;
        await send(client, from, to);
      }
    };
    const workers = Array.from({ length: Math.ceil(flags.concurrency / perCall) }, (_, w) =>
      worker(clients[w % clients.length] as LeanClient),
    );
    await Promise.all(workers);
  } else {
    // Open loop: lease i is due at loadStart + i / rate; what is due goes out every tick, in
    // calls of at most `perCall`, round-robin over the channels. Its latency counts from when it
    // was due.
    const inFlight: Promise<void>[] = [];
    const intervalMs = 1000 / flags.rate;
    while (nextIndex < n) {
      const now = performance.now();
      const due = Math.min(n, Math.floor((now - loadStart) / intervalMs) + 1);
      while (nextIndex < due) {
        const from = nextIndex;
        const to = Math.min(due, from + perCall);
        nextIndex = to;
        for (let i = from; i < to; i++) sentAt[i] = loadStart + i * intervalMs;
        inFlight.push(send(clients[calls++ % clients.length] as LeanClient, from, to));
      }
      // A fixed tick: what falls due within it goes out together.
      if (nextIndex < n) await sleep(flags["tick-ms"]);
    }
    await Promise.all(inFlight);
  }
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
  const loadWall = loadEnd - loadStart;
  const brokerLoadCpuMs = cpuTimeMs(broker.pid) - b1;
  const brokerLoadCpu = (brokerLoadCpuMs / loadWall) * 100;
  const agentsLoadCpu = ((cpuTimeMs(agents.pid) - a1) / loadWall) * 100;
  const natsLoadCpu = ((cpuTimeMs(nats.pid) - n1) / loadWall) * 100;
  const selfUsage = process.cpuUsage(self1);
  const benchLoadCpu = ((selfUsage.user + selfUsage.system) / 1000 / loadWall) * 100;
  stopping = true;
  watch.cancel();
  for (const c of clients) c.close();
  main.close();
  watcher.close();
  if (submitErrors > 0) log(`${submitErrors} submits failed; the first: ${firstError}`);
  log(
    `submitted ${n} in ${((submitted - loadStart) / 1000).toFixed(2)} s; all settled after ${((loadEnd - loadStart) / 1000).toFixed(2)} s`,
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

  if (profileDir !== undefined) {
    await broker.stop(30_000);
    log(`broker CPU profile in ${profileDir}`);
  }

  const latencies = Float64Array.from(activeMs).sort();
  const rpc = Float64Array.from(rpcMs).sort();
  const lag = Float64Array.from(watchLagMs).sort();
  const round = (v: number, d = 1): number => Math.round(v * 10 ** d) / 10 ** d;
  return {
    agents: flags.agents,
    leases: n,
    leases_active: active,
    leases_failed: failed + submitErrors,
    concurrency: flags.concurrency,
    api: flags.unary ? "unary" : "batch",
    batch_size: perCallOf(),
    offered_rate_per_s: flags.rate,
    boot_ms: flags["boot-ms"],
    seed: flags.seed,
    leases_per_s: Math.round(active / ((loadEnd - loadStart) / 1000)),
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    max_ms: round(latencies[latencies.length - 1] ?? Number.NaN),
    submit_rpc_p50_ms: round(percentile(rpc, 50)),
    submit_rpc_p99_ms: round(percentile(rpc, 99)),
    watch_lag_p50_ms: round(percentile(lag, 50)),
    watch_lag_p99_ms: round(percentile(lag, 99)),
    heartbeat_cpu_percent_of_core: round(heartbeatCpu),
    heartbeat_cpu_percent_of_core_with_leases: round(heartbeatLoadedCpu),
    agents_cpu_percent_of_core_heartbeats: round(agentsCpu),
    broker_cpu_percent_of_core_load: round(brokerLoadCpu),
    broker_cpu_ms_per_lease: round(brokerLoadCpuMs / Math.max(1, active), 2),
    agents_cpu_percent_of_core_load: round(agentsLoadCpu),
    nats_cpu_percent_of_core_load: round(natsLoadCpu),
    loadgen_cpu_percent_of_core_load: round(benchLoadCpu),
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
      ["broker CPU per lease (submit→ACTIVE)", `${fmt(r.broker_cpu_ms_per_lease, 2)} ms`, ""],
      ["wall time", `${fmt(r.elapsed_s, 1)} s`, ""],
    ])}\n`,
  );
}
