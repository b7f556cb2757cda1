/**
 * A local multi-process cluster for integration tests: the broker process (`node
 * dist/broker/main.js --bus nats`) and `leasebroker-agent` processes against a test nats-server,
 * with short liveness timings; a typed gRPC client; and a NATS observer of the agents' heartbeats
 * (what each agent says it runs).
 */
import { join } from "node:path";
import { hostSubject, NatsBus, type Subscription } from "../../bus/index.js";
import { agentCodecs, type Host, type Lease } from "../../proto/index.js";
import { AGENT_MAIN, REPO_ROOT } from "../agent/agent-process.js";
import { BrokerApi } from "../broker/harness.js";
import {
  freePort,
  type ManagedProcess,
  makeTempDir,
  removeDir,
  spawnManaged,
} from "../helpers/index.js";

export const BROKER_MAIN = join(REPO_ROOT, "dist", "broker", "main.js");

/** Liveness timings of the test cluster (the broker's flags), short so that tests are quick. */
export const TIMINGS = {
  heartbeatInterval: "200ms",
  suspectAfter: "600ms",
  hostTtl: "2s",
} as const;

/** The broker's flags in a test cluster: agents over NATS, the short liveness timings. */
export function clusterBrokerFlags(natsUrl: string, address: string): string[] {
  return [
    "--bus",
    "nats",
    "--nats-url",
    natsUrl,
    "--grpc-address",
    address,
    // A free port: tests must not collide on the default 8080.
    "--http-address",
    "127.0.0.1:0",
    "--sim-hosts",
    "0",
    "--heartbeat-interval",
    TIMINGS.heartbeatInterval,
    "--host-suspect-after",
    TIMINGS.suspectAfter,
    "--host-ttl",
    TIMINGS.hostTtl,
    "--stop-grace",
    "1s",
  ];
}

export interface BrokerProcess {
  readonly proc: ManagedProcess;
  readonly address: string;
  readonly api: BrokerApi;
  dispose(): Promise<void>;
}

/** Starts the broker on a free loopback port; resolves once it serves gRPC. */
export async function startBrokerProcess(natsUrl: string): Promise<BrokerProcess> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const dir = await makeTempDir("broker");
  const proc = await spawnManaged(
    process.execPath,
    [BROKER_MAIN, ...clusterBrokerFlags(natsUrl, address), "--log-level", "debug"],
    {
      name: "broker",
      logFile: join(dir, "broker.log"),
      readyWhen: /"msg":"broker serving"/,
      readyTimeoutMs: 20_000,
      stopGraceMs: 10_000,
    },
  );
  const api = new BrokerApi(address);
  return {
    proc,
    address,
    api,
    async dispose() {
      api.close();
      await proc.stop();
      await removeDir(dir);
    },
  };
}

export interface ClusterAgent {
  readonly hostId: string;
  readonly dir: string;
  proc: ManagedProcess;
  /** Starts the process again (same host id, same data dir) after it died or was stopped. */
  restart(): Promise<void>;
  dispose(): Promise<void>;
}

async function spawnAgent(hostId: string, natsUrl: string, dir: string): Promise<ManagedProcess> {
  return spawnManaged(
    process.execPath,
    [
      AGENT_MAIN,
      "--host-id",
      hostId,
      "--nats-url",
      natsUrl,
      "--cpus",
      "4",
      "--memory-gib",
      "8",
      "--disk-gib",
      "100",
      "--data-dir",
      dir,
      "--heartbeat-interval",
      TIMINGS.heartbeatInterval,
      "--hello-timeout",
      "1s",
      "--seed",
      "1",
      "--log-level",
      "debug",
    ],
    {
      name: hostId,
      logFile: join(dir, "agent.log"),
      readyWhen: /"msg":"agent registered"/,
      readyTimeoutMs: 20_000,
      stopGraceMs: 10_000,
    },
  );
}

/** Starts an agent process; resolves once the broker accepted its hello. */
export async function startClusterAgent(hostId: string, natsUrl: string): Promise<ClusterAgent> {
  const dir = await makeTempDir(`agent-${hostId}`);
  const agent: ClusterAgent = {
    hostId,
    dir,
    proc: await spawnAgent(hostId, natsUrl, dir),
    async restart() {
      await agent.proc.stop();
      agent.proc = await spawnAgent(hostId, natsUrl, dir);
    },
    async dispose() {
      agent.proc.signal("SIGCONT");
      await agent.proc.stop();
      await removeDir(dir);
    },
  };
  return agent;
}

export interface Beat {
  readonly hostId: string;
  readonly leaseIds: readonly string[];
  /** Arrival order across all hosts. */
  readonly seq: number;
}

/** Listens to every agent's heartbeats over NATS: what each host says it runs, and when. */
export class BeatObserver {
  readonly #bus: NatsBus;
  readonly #sub: Subscription;
  readonly latest = new Map<string, Beat>();
  #seq = 0;

  private constructor(bus: NatsBus) {
    this.#bus = bus;
    this.#sub = bus.subscribe("lb.v1.host.*.beat", (m) => {
      try {
        const beat = agentCodecs.heartbeat.decode(m.data);
        if (m.subject !== hostSubject(beat.hostId, "beat")) return;
        this.#seq += 1;
        this.latest.set(beat.hostId, {
          hostId: beat.hostId,
          leaseIds: beat.leaseIds,
          seq: this.#seq,
        });
      } catch {
        // The fuzz test publishes garbage on these subjects: not a beat.
      }
    });
  }

  static async open(natsUrl: string): Promise<BeatObserver> {
    const bus = await NatsBus.connect({
      servers: natsUrl,
      name: "test-beat-observer",
      reconnectTimeWaitMs: 100,
    });
    const observer = new BeatObserver(bus);
    await bus.flush();
    return observer;
  }

  /** The arrival counter now: beats with a larger `seq` came after this call. */
  mark(): number {
    return this.#seq;
  }

  /** The latest beat of each of `hostIds` if every one has beaten since `mark`, else undefined. */
  freshSince(mark: number, hostIds: readonly string[]): Beat[] | undefined {
    const beats: Beat[] = [];
    for (const id of hostIds) {
      const beat = this.latest.get(id);
      if (beat === undefined || beat.seq <= mark) return undefined;
      beats.push(beat);
    }
    return beats;
  }

  /** The publishing connection of the observer (for the fuzz test). */
  get bus(): NatsBus {
    return this.#bus;
  }

  async close(): Promise<void> {
    this.#sub.unsubscribe();
    await this.#bus.close();
  }
}

export async function hostsById(api: BrokerApi): Promise<Map<string, Host>> {
  const { hosts } = await api.listHosts({});
  return new Map(hosts.map((h) => [h.id, h]));
}

export async function leasesById(api: BrokerApi, ids: readonly string[]): Promise<Lease[]> {
  return Promise.all(ids.map((id) => api.get({ id })));
}
