/**
 * bench:failover — how long writes stop when the leading broker dies. A real etcd and
 * nats-server, two brokers (`--store etcd --bus nats`, production defaults: 2 s election TTL,
 * 1 s heartbeats) and two agent processes. Each run kills the leader with SIGKILL and probes the
 * other broker with a SubmitLease every `--probe-ms` until one succeeds: failover = SIGKILL →
 * first acknowledged write through the new leader. The killed broker is then started again (it
 * follows) and the roles swap for the next run. The baseline, in the same process and cluster,
 * is a graceful handover (SIGTERM: the leader resigns, so the follower need not wait for the
 * election lease to expire).
 *
 *   node dist/bench/failover.js [--runs N] [--graceful-runs N] [--election-ttl-s N] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import {
  type LeaseBrokerClient,
  loadLeaseBrokerPackage,
  type SubmitLeaseResponse,
} from "../proto/index.js";
import {
  type Child,
  findEtcd,
  findNatsServer,
  freePorts,
  LOOPBACK,
  spawnChild,
} from "./e2e-procs.js";
import { parseFlags } from "./lib/args.js";
import { fmt, median, table } from "./lib/stats.js";

const flags = parseFlags(
  "failover",
  {
    runs: { kind: "number", default: 7, help: "leader kills (SIGKILL)" },
    "graceful-runs": {
      kind: "number",
      default: 3,
      help: "graceful handovers (SIGTERM), the baseline",
    },
    "election-ttl-s": { kind: "number", default: 2, help: "the brokers' --election-ttl, seconds" },
    "probe-ms": { kind: "number", default: 20, help: "interval of the write probe" },
    json: { kind: "boolean", default: false, help: "print one JSON object" },
  },
  process.argv.slice(2),
);

const log = (line: string): void => {
  process.stderr.write(`[failover] ${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

const children: Child[] = [];
const tempDirs: string[] = [];

async function cleanup(): Promise<void> {
  await Promise.all(children.map((c) => c.stop(3000)));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

interface BrokerSlot {
  readonly name: string;
  readonly address: string;
  child: Child;
  readonly client: LeaseBrokerClient;
}

function submit(client: LeaseBrokerClient, requestId: string): Promise<SubmitLeaseResponse> {
  return new Promise((resolve, reject) => {
    client.SubmitLease(
      {
        requestId,
        spec: {
          tenant: "bench",
          resources: { cpuMillis: 100, memoryMib: 64 },
          immediate: { duration: { seconds: 60, nanos: 0 } },
        },
      },
      new Metadata(),
      { deadline: Date.now() + 2000 },
      (error, response) =>
        error === null && response !== undefined ? resolve(response) : reject(error),
    );
  });
}

async function run(): Promise<void> {
  const [clientPort, peerPort, natsPort, grpcA, grpcB] = await freePorts(5);
  const etcdDir = mkdtempSync(join(tmpdir(), "failover-etcd-"));
  tempDirs.push(etcdDir);
  const etcdUrl = `http://${LOOPBACK}:${clientPort}`;
  const etcd = spawnChild("etcd", findEtcd(), [
    "--name",
    "bench",
    "--data-dir",
    join(etcdDir, "data"),
    "--listen-client-urls",
    etcdUrl,
    "--advertise-client-urls",
    etcdUrl,
    "--listen-peer-urls",
    `http://${LOOPBACK}:${peerPort}`,
    "--initial-advertise-peer-urls",
    `http://${LOOPBACK}:${peerPort}`,
    "--initial-cluster",
    `bench=http://${LOOPBACK}:${peerPort}`,
  ]);
  children.push(etcd);
  await etcd.waitForLine((l) => l.includes("ready to serve client requests"), 30_000);
  const natsUrl = `nats://${LOOPBACK}:${natsPort}`;
  const nats = spawnChild("nats-server", findNatsServer(), [
    "-a",
    LOOPBACK,
    "-p",
    String(natsPort),
  ]);
  children.push(nats);
  await nats.waitForLine((l) => l.includes("Server is ready"), 20_000);

  const pkg = loadLeaseBrokerPackage();
  const startBroker = (name: string, address: string): Child => {
    const child = spawnChild(`broker-${name}`, process.execPath, [
      here("../broker/main.js"),
      "--store",
      "etcd",
      "--etcd-endpoints",
      etcdUrl,
      "--election-ttl",
      `${flags["election-ttl-s"]}s`,
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
    ]);
    children.push(child);
    return child;
  };
  const slots: BrokerSlot[] = [
    ["a", grpcA],
    ["b", grpcB],
  ].map(([name, port]) => {
    const address = `${LOOPBACK}:${port}`;
    return {
      name: String(name),
      address,
      child: startBroker(String(name), address),
      client: new pkg.leasebroker.v1.LeaseBroker(address, credentials.createInsecure()),
    };
  });
  for (const slot of slots) {
    await slot.child.waitForLine((l) => l.includes('"msg":"broker serving'), 30_000);
  }
  for (let i = 1; i <= 2; i++) {
    const dir = mkdtempSync(join(tmpdir(), "failover-agent-"));
    tempDirs.push(dir);
    const agent = spawnChild(`agent-${i}`, process.execPath, [
      here("../agent/main.js"),
      "--host-id",
      `bench-${i}`,
      "--nats-url",
      natsUrl,
      "--cpus",
      "64",
      "--memory-gib",
      "256",
      "--data-dir",
      dir,
    ]);
    children.push(agent);
    await agent.waitForLine((l) => l.includes('"msg":"agent registered"'), 30_000);
  }

  let probes = 0;
  const leaderOf = async (): Promise<BrokerSlot> => {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
      for (const slot of slots) {
        try {
          await submit(slot.client, `probe-${probes++}`);
          return slot;
        } catch {
          // a follower refuses, a broker taking over asks to retry
        }
      }
    }
    throw new Error("no broker accepts writes");
  };

  /** Stops the leader (SIGKILL or SIGTERM); ms until the other broker acknowledges a write. */
  const handover = async (signal: "SIGKILL" | "SIGTERM"): Promise<number> => {
    const leader = await leaderOf();
    const other = slots.find((s) => s !== leader) as BrokerSlot;
    // Both brokers settled: the follower's cache is warm, agents registered with the leader.
    await sleep(1500);
    const stoppedAt = performance.now();
    process.kill(leader.child.pid, signal);
    let failoverMs = 0;
    for (;;) {
      try {
        await submit(other.client, `probe-${probes++}`);
        failoverMs = performance.now() - stoppedAt;
        break;
      } catch {
        if (performance.now() - stoppedAt > 30_000) throw new Error("no failover within 30 s");
        await sleep(flags["probe-ms"]);
      }
    }
    await leader.child.stop(5000);
    leader.child = startBroker(leader.name, leader.address);
    await leader.child.waitForLine((l) => l.includes('"msg":"broker serving'), 30_000);
    return failoverMs;
  };

  const killed: number[] = [];
  for (let i = 0; i < flags.runs; i++) {
    killed.push(await handover("SIGKILL"));
    log(`kill -9 run ${i + 1}: ${fmt(killed[i] as number)} ms`);
  }
  const graceful: number[] = [];
  for (let i = 0; i < flags["graceful-runs"]; i++) {
    graceful.push(await handover("SIGTERM"));
    log(`SIGTERM run ${i + 1}: ${fmt(graceful[i] as number)} ms`);
  }
  for (const slot of slots) slot.client.close();

  const result = {
    failover_median_ms: Math.round(median(killed)),
    failover_max_ms: Math.round(Math.max(...killed)),
    failover_runs_ms: killed.map(Math.round),
    graceful_median_ms: graceful.length === 0 ? 0 : Math.round(median(graceful)),
    graceful_runs_ms: graceful.map(Math.round),
    election_ttl_ms: flags["election-ttl-s"] * 1000,
    failover_over_ttl: Number((median(killed) / (flags["election-ttl-s"] * 1000)).toFixed(2)),
    target_ms: 3000,
  };
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write(
    `${table([
      ["handover", "runs", "median ms", "max ms", "each (ms)"],
      [
        "kill -9 leader",
        String(killed.length),
        fmt(result.failover_median_ms),
        fmt(result.failover_max_ms),
        result.failover_runs_ms.join(" "),
      ],
      [
        "SIGTERM (resign)",
        String(graceful.length),
        fmt(result.graceful_median_ms),
        graceful.length === 0 ? "-" : fmt(Math.max(...graceful)),
        result.graceful_runs_ms.join(" "),
      ],
    ])}\nelection TTL ${result.election_ttl_ms} ms; kill -9 failover median = ${result.failover_over_ttl} × TTL; target ≤ 3000 ms\n`,
  );
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  await run();
} catch (error) {
  process.stderr.write(`failover: ${error instanceof Error ? error.message : String(error)}\n`);
  for (const child of children)
    process.stderr.write(`--- ${child.name}\n${child.outputTail(10)}\n`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
