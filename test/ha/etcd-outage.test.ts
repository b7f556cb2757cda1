/**
 * etcd failures with two brokers running: etcd stopped altogether (writes fail UNAVAILABLE,
 * nothing is half-written, work resumes when it returns), and the leader alone cut off from
 * etcd by a partition (it sends agents no command once its election lease has expired).
 */
import { type ServiceError, status } from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_CODECS, type BrokerSchema, EtcdStore } from "../../broker/store/index.js";
import { NatsBus, type Subscription } from "../../bus/index.js";
import { agentCodecs, type Lease } from "../../proto/index.js";
import { BrokerApi } from "../broker/harness.js";
import { waitFor } from "../helpers/index.js";
import {
  type HaBroker,
  HaClient,
  type HaCluster,
  HOST_MEMORY_MIB,
  isUnavailable,
  peakMemoryByHost,
  smallLease,
  startHaCluster,
  stopHaCluster,
  useHaCluster,
} from "./ha-cluster.js";
import { TcpProxy } from "./tcp-proxy.js";

describe("etcd stopped with the brokers running", () => {
  const cluster = useHaCluster(["out-1", "out-2"]);

  it("fails writes with UNAVAILABLE while it is down, half-writes nothing, and resumes", async () => {
    const c = cluster();
    const [leader, follower] = c.brokers as [HaBroker, HaBroker];
    const client = new HaClient([leader.address, follower.address]);
    const before: Lease[] = [];
    for (let i = 0; i < 4; i++)
      before.push(await client.submit(smallLease("outage"), `before-${i}`));

    // The follower serves lease reads from its cache and sends the rest to the leader.
    const standby = new BrokerApi(follower.address);
    await waitFor(
      async () => (await standby.get({ id: (before[3] as Lease).id })).requestId === "before-3",
      { what: "the follower's cache to have the last lease" },
    );
    const refusal = await standby.listHosts({}).then(
      () => undefined,
      (error: ServiceError) => error,
    );
    expect(refusal?.code).toBe(status.UNAVAILABLE);
    expect(refusal?.metadata.get("lb-leader")).toEqual([leader.address]);
    standby.close();

    await c.etcd.kill();
    // A client that does not retry sees what the brokers answer while etcd is away.
    const direct = new HaClient([leader.address], 0);
    const answers: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      try {
        await direct.submit(smallLease("outage"), `during-${i}`);
        answers.push(false);
      } catch (error) {
        answers.push(isUnavailable(error));
      }
    }
    expect(answers).toEqual([true, true, true]);

    await c.etcd.restart();
    // The same requests again, now through the failover-following client: they land once each.
    const after = [];
    for (let i = 0; i < 3; i++)
      after.push(await client.submit(smallLease("outage"), `during-${i}`));
    after.push(await client.submit(smallLease("outage"), "after-0"));

    // Nothing half-written: every stored value decodes, one lease per request id, every
    // acknowledged one there, no host over its memory.
    const store = new EtcdStore<BrokerSchema>({
      endpoints: c.etcd.clientUrl,
      codecs: BROKER_CODECS,
    });
    try {
      const page = await store.list("leases");
      const requestIds = page.items.map((item) => item.value.requestId).sort();
      expect(requestIds).toEqual([
        "after-0",
        "before-0",
        "before-1",
        "before-2",
        "before-3",
        "during-0",
        "during-1",
        "during-2",
      ]);
      for (const lease of [...before, ...after]) {
        expect(page.items.find((item) => item.id === lease.id)?.value.hostId).toBe(lease.hostId);
      }
    } finally {
      await store.close();
    }
    for (const peak of peakMemoryByHost(await client.listAll()).values()) {
      expect(peak).toBeLessThanOrEqual(HOST_MEMORY_MIB);
    }
    await waitFor(
      async () => (await client.listAll()).every((l) => l.state === "LEASE_STATE_ACTIVE"),
      { what: "every lease ACTIVE after etcd returned", timeoutMs: 20_000 },
    );
    client.close();
    direct.close();
  }, 120_000);

  it("answers a watch from compacted history OUT_OF_RANGE, on the leader and on a follower", async () => {
    const c = cluster();
    const etcd = new Etcd3({ hosts: c.etcd.clientUrl });
    try {
      const { header } = await etcd.kv.range({ key: Buffer.from("/"), count_only: true });
      await etcd.kv.compact({ revision: header.revision, physical: true });
    } finally {
      etcd.close();
    }
    for (const broker of c.brokers) {
      const api = new BrokerApi(broker.address);
      const stream = api.watch({ fromRevision: 1 });
      const error = await stream.waitForError();
      expect(error.code, broker.name).toBe(status.OUT_OF_RANGE);
      api.close();
    }
  }, 60_000);

  it("on SIGTERM the leader resigns: the other broker leads at once, the process exits 0", async () => {
    const c = cluster();
    const leader = c.brokers.find((b) => b.leadsNow()) as HaBroker;
    const other = c.brokers.find((b) => b !== leader) as HaBroker;
    const client = new HaClient([leader.address, other.address]);
    const exit = await leader.proc.stop();
    expect(exit.code).toBe(0);
    expect(leader.proc.output()).toMatch(/"why":"resigned"/);
    await waitFor(() => other.leadsNow(), { what: "the other broker to lead" });
    const lease = await client.submit(smallLease("outage"), "after-sigterm");
    expect(lease.state).toBe("LEASE_STATE_STARTING");
    client.close();
  }, 60_000);
});

describe("a leader cut off from etcd", () => {
  let cluster: HaCluster | undefined;
  let proxy: TcpProxy | undefined;

  beforeAll(async () => {
    cluster = await startHaCluster(["cut-1"], {
      // Broker "a" (the first leader) reaches etcd through a proxy the test can cut.
      etcdUrlOf: async (broker, etcd) => {
        if (broker !== "a") return etcd.clientUrl;
        proxy = await TcpProxy.start(etcd.clientPort);
        return proxy.url;
      },
    });
  }, 90_000);

  afterAll(async () => {
    proxy?.resume();
    await stopHaCluster(cluster);
    await proxy?.close();
  }, 60_000);

  it("sends no command to agents after its election lease expired", async () => {
    const c = cluster as HaCluster;
    const [leader, follower] = c.brokers as [HaBroker, HaBroker];
    const etcd = new Etcd3({ hosts: c.etcd.clientUrl });
    const bus = await NatsBus.connect({ servers: c.nats.url, name: "test-command-observer" });
    const commands: { epoch: number; at: number }[] = [];
    const sub: Subscription = bus.subscribe("lb.v1.host.*.cmd", (m) => {
      const command = agentCodecs.command.decode(m.data);
      commands.push({ epoch: Number(command.epoch), at: Date.now() });
    });
    await bus.flush();
    try {
      // The leader's term: the lowest election key.
      const keys = await etcd
        .getAll()
        .prefix("/leasebroker/election/")
        .sort("Create", "Ascend")
        .exec();
      const first = keys.kvs[0];
      expect(first?.value.toString()).toBe(leader.address);
      const epochA = Number(first?.create_revision);
      const keyA = first?.key.toString() as string;
      let goneAt = 0;
      const watcher = await etcd.watch().key(keyA).create();
      watcher.on("delete", () => {
        goneAt = Date.now();
      });

      const client = new HaClient([leader.address, follower.address]);
      // Leases that end while the leader is cut off: its timers want to stop them.
      for (let i = 0; i < 3; i++) await client.submit(smallLease("cut", 3), `cut-${i}`);
      await waitFor(() => commands.some((cmd) => cmd.epoch === epochA), {
        what: "a command from the first leader",
      });

      // A host that keeps saying Hello with a workload no broker placed: whoever leads answers
      // it and tells it to stop that workload — a command without any write before it, which
      // only the leadership check can hold back.
      let ghosts = 0;
      let helloing = true;
      const hellos = (async () => {
        while (helloing) {
          const hello = agentCodecs.hello.encode({
            hostId: "ghost-1",
            bootId: "ghost-boot",
            capacity: { cpuMillis: 100, memoryMib: 64 },
            driver: "sim",
            workloads: [{ leaseId: `ghost-${++ghosts}`, state: "WORKLOAD_STATE_RUNNING" }],
          });
          await bus.request("lb.v1.host.ghost-1.hello", hello, { timeoutMs: 300 }).catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      await waitFor(() => commands.filter((cmd) => cmd.epoch === epochA).length > 4, {
        what: "stop commands for the ghost workloads from the first leader",
      });

      (proxy as TcpProxy).pause();
      await follower.leading(20_000);
      await waitFor(() => goneAt > 0, { what: "the first leader's key to expire" });
      // The new leader commands (the observer sees commands), the old one does not.
      const toNewLeader = new HaClient([follower.address]);
      const lease = await toNewLeader.submit(smallLease("cut"), "after-cut");
      toNewLeader.close();
      await waitFor(() => commands.some((cmd) => cmd.epoch > epochA), {
        what: "a command from the new leader",
      });
      // Let the cut-off leader's timers (the leases' ends) and heartbeats run a while.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      helloing = false;
      await hellos;
      const late = commands.filter((cmd) => cmd.epoch === epochA && cmd.at >= goneAt);
      expect(late).toEqual([]);
      // The ghost host kept asking, and the new leader kept answering.
      expect(
        commands.filter((cmd) => cmd.epoch > epochA && cmd.at >= goneAt).length,
      ).toBeGreaterThan(3);
      expect(lease.hostId).toBe("cut-1");
      // The cut-off broker knew it no longer led before etcd expired its key.
      expect(leader.proc.output()).toMatch(/"msg":"no longer the leader"/);

      (proxy as TcpProxy).resume();
      await watcher.cancel();
      client.close();
    } finally {
      sub.unsubscribe();
      await bus.close();
      etcd.close();
    }
  }, 120_000);
});
