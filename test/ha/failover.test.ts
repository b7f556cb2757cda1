/**
 * Two brokers over one etcd and one nats-server, three agent processes: the leader is killed
 * with SIGKILL while clients keep writing through the CLI's client (which follows the leader and
 * retries). Afterwards: a follower leads (the failover time is printed), no acknowledged lease
 * or change is lost, no request placed twice, no workload on two hosts, no host oversubscribed
 * at any revision of the store's history.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerCallError } from "../../broker/cli/errors.js";
import type { Lease as DomainLease } from "../../broker/leases/model.js";
import { HOLDING_STATES } from "../../broker/leases/transitions.js";
import { BROKER_CODECS, type BrokerSchema, EtcdStore } from "../../broker/store/index.js";
import type { Lease } from "../../proto/index.js";
import { BeatObserver } from "../cluster/cluster-processes.js";
import { waitFor } from "../helpers/index.js";
import {
  brokerLogsOnFailure,
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

const HOSTS = ["ha-1", "ha-2", "ha-3"];

/** Every write the store ever applied to a lease, in revision order (etcd keeps all history). */
async function leaseHistory(etcdUrl: string): Promise<{ revision: number; lease: DomainLease }[]> {
  const store = new EtcdStore<BrokerSchema>({ endpoints: etcdUrl, codecs: BROKER_CODECS });
  try {
    const now = await store.revision();
    const events: { revision: number; lease: DomainLease }[] = [];
    let last = 0;
    const watch = store.watch({ fromRevision: 0, collections: ["leases"] }, (event) => {
      if (event.collection === "leases" && event.type === "put") {
        events.push({ revision: event.revision, lease: event.value as DomainLease });
      }
      last = event.revision;
    });
    await waitFor(async () => last >= (await store.revision()) || last >= now, {
      what: "the whole lease history",
      timeoutMs: 20_000,
    });
    watch.close();
    return events;
  } finally {
    await store.close();
  }
}

/** At every revision, the peak memory held on each host over time, from the live leases then. */
function worstOversubscription(history: { revision: number; lease: DomainLease }[]): number {
  const current = new Map<string, DomainLease>();
  let worst = 0;
  for (const { lease } of history) {
    current.set(lease.id, lease);
    const edges: { at: number; delta: number }[] = [];
    for (const other of current.values()) {
      if (other.hostId !== lease.hostId || lease.hostId === "") continue;
      if (!HOLDING_STATES.has(other.state)) continue;
      edges.push(
        { at: other.start, delta: other.spec.resources.memoryMib },
        { at: other.end, delta: -other.spec.resources.memoryMib },
      );
    }
    edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let used = 0;
    for (const edge of edges) {
      used += edge.delta;
      worst = Math.max(worst, used - HOST_MEMORY_MIB);
    }
  }
  return worst;
}

describe("kill -9 of the leader under a steady stream of submits", () => {
  let cluster: HaCluster | undefined;
  let beats: BeatObserver | undefined;

  beforeAll(async () => {
    cluster = await startHaCluster(HOSTS);
    beats = await BeatObserver.open(cluster.nats.url);
  }, 90_000);

  afterAll(async () => {
    await beats?.close();
    await stopHaCluster(cluster);
  }, 60_000);
  brokerLogsOnFailure(() => cluster);

  it("a follower leads, and no acknowledged lease is lost, duplicated or doubly run", async () => {
    const c = cluster as HaCluster;
    const [leader, follower] = c.brokers as [HaBroker, HaBroker];
    // The client knows the follower first: it is redirected to the leader, then must fail over.
    // It retries for up to a minute: this test is about what survives the failover, not how fast
    // it is (bench:failover measures that), and on a loaded CI machine one took over 19 s.
    const client = new HaClient([follower.address, leader.address], 60_000);
    const acked = new Map<string, Lease>();
    let submitted = 0;
    let killedAt = 0;
    let firstAfterKill = 0;
    const submitOne = async (): Promise<void> => {
      const requestId = `r-${submitted++}`;
      const lease = await client.submit(smallLease("steady"), requestId);
      acked.set(requestId, lease);
      if (killedAt > 0 && firstAfterKill === 0) firstAfterKill = Date.now();
    };
    // A steady stream: two writers, one submit after another, until 12 are acknowledged after
    // the kill (the kill comes after 8).
    const writer = async (): Promise<void> => {
      while (killedAt === 0 || acked.size < 20) await submitOne();
    };
    const writers = [writer(), writer()];
    await waitFor(() => acked.size >= 8, { what: "8 acknowledged submits", timeoutMs: 20_000 });
    await leader.proc.kill();
    killedAt = Date.now();
    await Promise.all(writers);
    await follower.leading();
    const failoverMs = firstAfterKill - killedAt;
    console.log(`failover: leader killed -> first acknowledged submit after ${failoverMs} ms`);
    expect(firstAfterKill).toBeGreaterThan(killedAt);

    // No acknowledged lease lost; one lease per request id; one host per lease.
    const all = await client.listAll();
    const byId = new Map(all.map((l) => [l.id, l]));
    for (const [requestId, lease] of acked) {
      const stored = byId.get(lease.id);
      expect(stored, `acknowledged ${requestId} -> ${lease.id}`).toBeDefined();
      expect(stored?.requestId).toBe(requestId);
      expect(stored?.hostId).toBe(lease.hostId);
    }
    const perRequest = new Map<string, number>();
    for (const lease of all)
      perRequest.set(lease.requestId, (perRequest.get(lease.requestId) ?? 0) + 1);
    expect([...perRequest.values()].every((n) => n === 1)).toBe(true);
    expect(all.length).toBe(perRequest.size);

    // Every lease runs, on the one host it is placed on, and nowhere else.
    let seen: Lease[] = [];
    await waitFor(
      async () => {
        const leases = await client.listAll();
        seen = leases;
        const mark = (beats as BeatObserver).mark();
        await new Promise((r) => setTimeout(r, 600));
        const fresh = (beats as BeatObserver).freshSince(mark, HOSTS);
        if (fresh === undefined) return false;
        const runsOn = new Map<string, string[]>();
        for (const beat of fresh) {
          for (const id of beat.leaseIds) runsOn.set(id, [...(runsOn.get(id) ?? []), beat.hostId]);
        }
        return leases.every(
          (l) =>
            l.state === "LEASE_STATE_ACTIVE" &&
            runsOn.get(l.id)?.length === 1 &&
            runsOn.get(l.id)?.[0] === l.hostId,
        );
      },
      {
        what: "every lease ACTIVE on exactly its host",
        timeoutMs: 20_000,
        detail: () =>
          seen
            .filter((l) => l.state !== "LEASE_STATE_ACTIVE")
            .map((l) => `${l.id} ${l.state} on ${l.hostId}: ${l.statusMessage}`)
            .join("\n"),
      },
    );
    for (const peak of peakMemoryByHost(await client.listAll()).values()) {
      expect(peak).toBeLessThanOrEqual(HOST_MEMORY_MIB);
    }
    client.close();
  }, 150_000);
});

describe("history check: concurrent submits, cancels and extends while the leader is killed", () => {
  const cluster = useHaCluster(HOSTS);

  it("no host is oversubscribed at any revision, and every acknowledged write is there", async () => {
    const c = cluster();
    const [leader, follower] = c.brokers as [HaBroker, HaBroker];
    // Half of the clients start at the leader, half at the follower.
    const clients = [
      new HaClient([leader.address, follower.address]),
      new HaClient([follower.address, leader.address]),
      new HaClient([leader.address, follower.address]),
      new HaClient([follower.address, leader.address]),
    ];
    const submitted = new Map<string, string>(); // lease id -> request id
    const cancelled = new Set<string>();
    const extendedTo = new Map<string, number>(); // lease id -> acknowledged end (ms)
    let ops = 0;
    let stop = false;
    const endOf = (l: Lease): number => Number(l.end?.seconds ?? 0) * 1000;
    const refused: string[] = [];
    let unknown = 0;
    const worker = async (client: HaClient, w: number): Promise<void> => {
      const mine: string[] = [];
      for (let i = 0; !stop; i++) {
        ops++;
        try {
          await step(client, w, i, mine);
        } catch (error) {
          // A definite "no" (a lease that ended meanwhile, no room) is an answer, not an ack; a
          // failover must never surface as an error to the client.
          if (!(error instanceof BrokerCallError) || error.code === status.UNAVAILABLE) throw error;
          refused.push(error.message);
        }
      }
    };
    const step = async (client: HaClient, w: number, i: number, mine: string[]): Promise<void> => {
      {
        const kind = i % 4;
        if (kind === 3 && mine.length > 0) {
          const id = mine.shift() as string;
          await client.cancel(id);
          cancelled.add(id);
        } else if (kind === 2 && mine.length > 0) {
          const id = mine[mine.length - 1] as string;
          try {
            const lease = await client.extend(id, 60);
            extendedTo.set(id, endOf(lease));
          } catch (error) {
            // An extend by an amount is not retried when its broker died mid-call (it may have
            // happened): its outcome is unknown, which the client reports as UNAVAILABLE.
            if (!isUnavailable(error)) throw error;
            unknown++;
          }
        } else {
          // Several sizes, so that placements pack hosts unevenly.
          const spec = smallLease(`t${w}`, 300 + 60 * (i % 3));
          const memoryMib = [512, 1024, 1536][i % 3] as number;
          const requestId = `w${w}-${i}`;
          const lease = await client.submit(
            { ...spec, resources: { cpuMillis: 250, memoryMib }, allowQueue: true },
            requestId,
          );
          submitted.set(lease.id, requestId);
          mine.push(lease.id);
        }
      }
    };
    const running = clients.map((client, w) => worker(client, w));
    await waitFor(() => ops >= 30, { what: "30 operations", timeoutMs: 30_000 });
    await leader.proc.kill();
    await follower.leading();
    const after = ops;
    await waitFor(() => ops >= after + 30, { what: "30 more operations", timeoutMs: 30_000 });
    stop = true;
    await Promise.all(running);

    const check = clients[1] as HaClient;
    const all = new Map((await check.listAll()).map((l) => [l.id, l]));
    const failed = [...all.values()].filter((l) => l.state === "LEASE_STATE_FAILED");
    console.log(
      `history: ${ops} operations, ${submitted.size} submits, ${cancelled.size} cancels, ${extendedTo.size} extends acknowledged; ${refused.length} refused; ${unknown} unknown; ${failed.length} leases FAILED`,
      failed.slice(0, 3).map((l) => l.statusMessage),
    );
    for (const [id, requestId] of submitted) {
      expect(all.get(id)?.requestId, `submitted ${id}`).toBe(requestId);
    }
    for (const id of cancelled) {
      expect(["LEASE_STATE_ENDING", "LEASE_STATE_CANCELLED"], `cancelled ${id}`).toContain(
        all.get(id)?.state,
      );
    }
    for (const [id, end] of extendedTo) {
      const lease = all.get(id) as Lease;
      // A lease that stopped early (cancelled, failed) ends when it stopped; a live one keeps it.
      const live = !["CANCELLED", "FAILED", "ENDED", "PREEMPTED", "ENDING"].some(
        (s) => lease.state === `LEASE_STATE_${s}`,
      );
      if (live) expect(endOf(lease), `extended ${id}`).toBeGreaterThanOrEqual(end);
    }
    const history = await leaseHistory(c.etcd.clientUrl);
    expect(history.length).toBeGreaterThan(submitted.size);
    expect(worstOversubscription(history)).toBe(0);
    for (const client of clients) client.close();
  }, 120_000);
});

describe("a host that dies with the leader", () => {
  const cluster = useHaCluster(["lost-1", "lost-2"]);

  it("is handled as down by the new leader: its leases restart elsewhere", async () => {
    const c = cluster();
    const [leader, follower] = c.brokers as [HaBroker, HaBroker];
    const client = new HaClient([follower.address, leader.address]);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const lease = await client.submit(
        {
          ...smallLease("lost"),
          policy: "PLACEMENT_POLICY_SPREAD",
          onHostFailure: "ON_HOST_FAILURE_RESTART",
        },
        `lost-${i}`,
      );
      ids.push(lease.id);
    }
    const onLost2 = (await client.listAll()).filter((l) => l.hostId === "lost-2");
    expect(onLost2.length).toBeGreaterThan(0);
    const dead = c.agents.find((a) => a.hostId === "lost-2") as (typeof c.agents)[number];
    await Promise.all([dead.proc.kill(), leader.proc.kill()]);
    await follower.leading();
    // The new leader never hears lost-2: one host TTL (2 s) after taking over, it is down.
    await waitFor(
      async () => {
        const leases = await client.listAll();
        return leases.every((l) => l.state === "LEASE_STATE_ACTIVE" && l.hostId === "lost-1");
      },
      { what: "every lease ACTIVE on lost-1", timeoutMs: 30_000 },
    );
    expect(follower.proc.output()).toMatch(/never registered: handling it as down/);
    client.close();
  }, 90_000);
});
