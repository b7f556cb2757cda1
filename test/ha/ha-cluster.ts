/**
 * A cluster of brokers for the high-availability tests: real etcd, real nats-server, broker
 * processes with `--store etcd`, `leasebroker-agent` processes, and clients that follow the
 * leader (the CLI's BrokerConnection, the same code leasectl uses).
 */
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { BrokerConnection } from "../../broker/cli/client.js";
import { BrokerCallError } from "../../broker/cli/errors.js";
import { HOLDING_STATES } from "../../broker/leases/transitions.js";
import type {
  Lease,
  LeaseSpecInput,
  ListLeasesResponse,
  SubmitLeaseResponse,
} from "../../proto/index.js";
import { buildAgent } from "../agent/agent-process.js";
import {
  BROKER_MAIN,
  type ClusterAgent,
  clusterBrokerFlags,
  startClusterAgent,
} from "../cluster/cluster-processes.js";
import {
  type EtcdHandle,
  freePort,
  type ManagedProcess,
  makeTempDir,
  type NatsHandle,
  removeDir,
  spawnManaged,
  startEtcd,
  startNats,
} from "../helpers/index.js";

export const ELECTION_TTL = "2s";
/** An agent's memory (8 GiB, ratio 1): what no host may exceed at any instant. */
export const HOST_MEMORY_MIB = 8 * 1024;

export interface HaCluster {
  readonly etcd: EtcdHandle;
  readonly nats: NatsHandle;
  /** The first one leads when the others start. */
  readonly brokers: HaBroker[];
  readonly agents: ClusterAgent[];
}

/**
 * etcd, NATS, two brokers (the first leads: it starts alone) and one agent per host id.
 * `etcdUrlOf` gives a broker another way to etcd (a proxy the test can cut).
 */
export async function startHaCluster(
  hosts: readonly string[],
  options: { etcdUrlOf?: (broker: string, etcd: EtcdHandle) => Promise<string> } = {},
): Promise<HaCluster> {
  buildAgent();
  const etcd = await startEtcd();
  const nats = await startNats();
  const url = async (name: string): Promise<string> =>
    options.etcdUrlOf === undefined ? etcd.clientUrl : options.etcdUrlOf(name, etcd);
  const first = await startHaBroker({ name: "a", etcdUrl: await url("a"), natsUrl: nats.url });
  await first.leading();
  const second = await startHaBroker({ name: "b", etcdUrl: await url("b"), natsUrl: nats.url });
  const agents = await Promise.all(hosts.map((id) => startClusterAgent(id, nats.url)));
  return { etcd, nats, brokers: [first, second], agents };
}

/**
 * Inside a `describe`: starts a cluster with these hosts before its tests and stops it after.
 * Returns the getter of the running cluster.
 */
export function useHaCluster(hosts: readonly string[]): () => HaCluster {
  let cluster: HaCluster | undefined;
  beforeAll(async () => {
    cluster = await startHaCluster(hosts);
  }, 90_000);
  afterAll(async () => {
    await stopHaCluster(cluster);
  }, 60_000);
  brokerLogsOnFailure(() => cluster);
  return () => {
    if (cluster === undefined) throw new Error("the HA cluster did not start");
    return cluster;
  };
}

/**
 * A failed test of the describe block prints each broker's last log lines: the logs go with the
 * cluster's temp dirs, and a slow takeover cannot be explained without them.
 */
export function brokerLogsOnFailure(cluster: () => HaCluster | undefined): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const b of cluster()?.brokers ?? []) {
        console.log(`--- ${b.name}, last lines:\n${b.proc.outputTail(40)}`);
      }
    });
  });
}

export async function stopHaCluster(c: HaCluster | undefined): Promise<void> {
  if (c === undefined) return;
  await Promise.all(c.agents.map((a) => a.dispose()));
  await Promise.all(c.brokers.map((b) => b.dispose()));
  await c.nats.stop();
  await c.etcd.stop();
}

export interface HaBroker {
  readonly name: string;
  readonly address: string;
  proc: ManagedProcess;
  /** Resolves once this broker logs that it leads (past or future), bounded. */
  leading(timeoutMs?: number): Promise<void>;
  /** Whether its log's last word on its role is that it leads. */
  leadsNow(): boolean;
  dispose(): Promise<void>;
}

export interface HaBrokerOptions {
  readonly name: string;
  readonly etcdUrl: string;
  readonly natsUrl: string;
  readonly extraArgs?: readonly string[];
}

export async function startHaBroker(options: HaBrokerOptions): Promise<HaBroker> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const dir = await makeTempDir(`broker-${options.name}`);
  const proc = await spawnManaged(
    process.execPath,
    [
      BROKER_MAIN,
      "--store",
      "etcd",
      "--etcd-endpoints",
      options.etcdUrl,
      "--election-ttl",
      ELECTION_TTL,
      ...clusterBrokerFlags(options.natsUrl, address),
      "--shutdown-grace",
      "2s",
      ...(options.extraArgs ?? []),
    ],
    {
      name: `broker-${options.name}`,
      logFile: join(dir, "broker.log"),
      readyWhen: /"msg":"broker serving/,
      readyTimeoutMs: 20_000,
      stopGraceMs: 10_000,
    },
  );
  const broker: HaBroker = {
    name: options.name,
    address,
    proc,
    async leading(timeoutMs = 15_000) {
      await broker.proc.waitForOutput(/"msg":"leading"/, timeoutMs);
    },
    leadsNow: () => {
      const log = broker.proc.output();
      return log.lastIndexOf('"msg":"leading"') > log.lastIndexOf('"msg":"no longer the leader"');
    },
    async dispose() {
      await broker.proc.stop();
      await removeDir(dir);
    },
  };
  return broker;
}

/** A client of several brokers that follows the leader and retries through a failover. */
export class HaClient {
  readonly #conn: BrokerConnection;

  constructor(addresses: readonly string[], failoverMs = 20_000) {
    this.#conn = new BrokerConnection({
      address: addresses.join(","),
      timeoutMs: 3000,
      failoverMs,
      security: { kind: "insecure" },
      verbose: false,
      note: () => {},
    });
  }

  async submit(spec: LeaseSpecInput, requestId: string): Promise<Lease> {
    const response = await this.#conn.unary<SubmitLeaseResponse>("SubmitLease", (c, m, o, cb) =>
      c.SubmitLease({ spec, requestId }, m, o, cb),
    );
    if (response.lease === null) throw new Error("SubmitLease returned no lease");
    return response.lease;
  }

  cancel(id: string): Promise<Lease> {
    return this.#conn.unary<Lease>("CancelLease", (c, m, o, cb) => c.CancelLease({ id }, m, o, cb));
  }

  extend(id: string, extraSeconds: number): Promise<Lease> {
    return this.#conn.unary<Lease>("ExtendLease", (c, m, o, cb) =>
      c.ExtendLease({ id, extra: { seconds: extraSeconds, nanos: 0 } }, m, o, cb),
    );
  }

  get(id: string): Promise<Lease> {
    return this.#conn.unary<Lease>("GetLease", (c, m, o, cb) => c.GetLease({ id }, m, o, cb));
  }

  async listAll(): Promise<Lease[]> {
    const out: Lease[] = [];
    let pageToken = "";
    do {
      const page = await this.#conn.unary<ListLeasesResponse>("ListLeases", (c, m, o, cb) =>
        c.ListLeases({ pageToken, pageSize: 1000 }, m, o, cb),
      );
      out.push(...page.leases);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return out;
  }

  close(): void {
    this.#conn.close();
  }
}

export function isUnavailable(error: unknown): boolean {
  return error instanceof BrokerCallError && error.code === status.UNAVAILABLE;
}

/** A small immediate lease: memory binds (16 fit an 8 GiB agent). */
export function smallLease(tenant: string, seconds = 600): LeaseSpecInput {
  return {
    tenant,
    resources: { cpuMillis: 250, memoryMib: 512 },
    immediate: { duration: { seconds, nanos: 0 } },
  };
}

const ms = (t: { seconds: number | string; nanos: number } | null): number =>
  t === null ? 0 : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);

/** The largest total memory held on one host at any instant by `leases` (their windows). */
export function peakMemoryByHost(leases: readonly Lease[]): Map<string, number> {
  const edges = new Map<string, { at: number; delta: number }[]>();
  for (const lease of leases) {
    const state = lease.state.replace(/^LEASE_STATE_/, "");
    if (!HOLDING_STATES.has(state as never) || lease.hostId === "") continue;
    const memory = Number(lease.spec?.resources?.memoryMib ?? 0);
    const list = edges.get(lease.hostId) ?? [];
    list.push({ at: ms(lease.start), delta: memory }, { at: ms(lease.end), delta: -memory });
    edges.set(lease.hostId, list);
  }
  const peaks = new Map<string, number>();
  for (const [host, list] of edges) {
    // Half-open windows: at the same instant an end comes before a start.
    list.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let used = 0;
    let peak = 0;
    for (const edge of list) {
      used += edge.delta;
      peak = Math.max(peak, used);
    }
    peaks.set(host, peak);
  }
  return peaks;
}
