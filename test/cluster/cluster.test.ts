/**
 * One broker process and five agent processes over a real nats-server, with short liveness
 * timings (heartbeats 200 ms, SUSPECT after 600 ms, DOWN after 2 s): leases are placed, started
 * and ended; a killed agent's leases restart elsewhere and the agent re-registers cleanly; a
 * frozen (partitioned) agent's stale workloads are stopped when it comes back; a nats-server
 * restart loses and duplicates nothing. Every check goes through the broker's gRPC API or the
 * agents' own heartbeats on NATS; every wait is bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease, LeaseSpecInput } from "../../proto/index.js";
import { buildAgent } from "../agent/agent-process.js";
import { immediate } from "../broker/harness.js";
import { type NatsHandle, sleep, startNats, waitFor } from "../helpers/index.js";
import {
  BeatObserver,
  type BrokerProcess,
  type ClusterAgent,
  hostsById,
  leasesById,
  startBrokerProcess,
  startClusterAgent,
  TIMINGS,
} from "./cluster-processes.js";

const HOSTS = ["node-1", "node-2", "node-3", "node-4", "node-5"];
const RESTART: Partial<LeaseSpecInput> = { onHostFailure: "ON_HOST_FAILURE_RESTART" };
const FAIL: Partial<LeaseSpecInput> = { onHostFailure: "ON_HOST_FAILURE_FAIL" };

describe("a broker and five agent processes over NATS", () => {
  let nats: NatsHandle;
  let broker: BrokerProcess;
  let beats: BeatObserver;
  const agents = new Map<string, ClusterAgent>();
  /** Leases that must stay ACTIVE to the end (restart policy, long windows). */
  const longLived: string[] = [];

  const agent = (id: string): ClusterAgent => {
    const a = agents.get(id);
    if (a === undefined) throw new Error(`no agent ${id}`);
    return a;
  };

  const detail = (): string =>
    [broker.proc.outputTail(15), ...[...agents.values()].map((a) => a.proc.outputTail(5))].join(
      "\n---\n",
    );

  async function submit(spec: LeaseSpecInput): Promise<Lease> {
    return broker.api.submitLease(spec);
  }

  async function untilState(ids: readonly string[], state: string, what: string): Promise<Lease[]> {
    let leases: Lease[] = [];
    await waitFor(
      async () => {
        leases = await leasesById(broker.api, ids);
        return leases.every((l) => l.state === state);
      },
      {
        what,
        timeoutMs: 15_000,
        detail: () =>
          `${JSON.stringify(leases.map((l) => [l.id, l.state, l.hostId]))}\n${detail()}`,
      },
    );
    return leases;
  }

  async function untilHostState(hostId: string, state: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(async () => (await broker.api.getHost({ id: hostId })).state === state, {
      what: `${hostId} ${state}`,
      timeoutMs,
      intervalMs: 25,
      detail,
    });
  }

  /**
   * The invariant: after a fresh heartbeat from every live host, each ACTIVE lease is reported by
   * exactly one host — the one the broker placed it on — and no host runs a lease the broker does
   * not have ACTIVE there.
   */
  async function everyLeaseRunsOnce(
    ids: readonly string[],
    live: readonly string[],
  ): Promise<void> {
    let problem = "";
    await waitFor(
      async () => {
        const mark = beats.mark();
        await waitFor(() => beats.freshSince(mark, live) !== undefined, {
          what: "a fresh beat from every live host",
          timeoutMs: 5000,
        });
        const fresh = beats.freshSince(mark, live) ?? [];
        const leases = await leasesById(broker.api, ids);
        const runners = new Map<string, string[]>();
        for (const beat of fresh)
          for (const id of beat.leaseIds)
            runners.set(id, [...(runners.get(id) ?? []), beat.hostId]);
        for (const lease of leases) {
          const on = runners.get(lease.id) ?? [];
          if (lease.state !== "LEASE_STATE_ACTIVE" || on.length !== 1 || on[0] !== lease.hostId) {
            problem = `${lease.id}: ${lease.state} on ${lease.hostId}, reported by [${on.join(",")}]`;
            return false;
          }
        }
        const known = new Set(ids);
        for (const [id, on] of runners) {
          if (known.has(id) && on.length > 1) {
            problem = `${id} runs on ${on.join(",")}`;
            return false;
          }
        }
        return true;
      },
      {
        what: "every lease ACTIVE on exactly one host",
        timeoutMs: 15_000,
        detail: () => `${problem}\n${detail()}`,
      },
    );
  }

  beforeAll(async () => {
    buildAgent();
    nats = await startNats();
    beats = await BeatObserver.open(nats.url);
    broker = await startBrokerProcess(nats.url);
    const started = await Promise.all(HOSTS.map((id) => startClusterAgent(id, nats.url)));
    for (const a of started) agents.set(a.hostId, a);
  });

  afterAll(async () => {
    await Promise.all([...agents.values()].map((a) => a.dispose()));
    await broker?.dispose();
    await beats?.close();
    await nats?.stop();
  });

  it("lists the five agents READY with the capacity they announced", async () => {
    await waitFor(async () => (await hostsById(broker.api)).size === 5, {
      what: "five hosts",
      detail,
    });
    const hosts = await hostsById(broker.api);
    expect([...hosts.keys()].sort()).toEqual(HOSTS);
    for (const host of hosts.values()) {
      expect(host.state).toBe("HOST_STATE_READY");
      expect(host.capacity).toMatchObject({ cpuMillis: 4000, memoryMib: 8192, diskGib: 100 });
      expect(host.driver).toBe("sim");
    }
  });

  it("places leases, starts them on their hosts and ends them at the end of their window", async () => {
    const leases = await Promise.all(
      [1, 2, 3].map(() => submit(immediate({ memoryGib: 2 }, 3000, FAIL))),
    );
    const ids = leases.map((l) => l.id);
    const active = await untilState(ids, "LEASE_STATE_ACTIVE", "three leases ACTIVE");
    for (const lease of active) expect(HOSTS).toContain(lease.hostId);
    // The agent runs what the broker placed on it.
    await everyLeaseRunsOnce(ids, HOSTS);
    await untilState(ids, "LEASE_STATE_ENDED", "three leases ENDED");
    // ... and no longer does once they ended.
    let mark = beats.mark();
    await waitFor(
      () => {
        const fresh = beats.freshSince(mark, HOSTS);
        if (fresh === undefined) return false;
        if (fresh.every((b) => ids.every((id) => !b.leaseIds.includes(id)))) return true;
        mark = beats.mark();
        return false;
      },
      { what: "no host reports the ended leases", detail },
    );
  });

  it("kill -9 an agent: SUSPECT, then DOWN; its leases restart elsewhere or fail; it re-registers clean", async () => {
    const first = await submit(immediate({ memoryGib: 2 }, 600_000, RESTART));
    const [placed] = await untilState([first.id], "LEASE_STATE_ACTIVE", "the first lease ACTIVE");
    const victim = placed?.hostId ?? "";
    // Binpack: the next leases land on the same host while it has room.
    const more = await Promise.all([
      submit(immediate({ memoryGib: 2 }, 600_000, RESTART)),
      submit(immediate({ memoryGib: 2 }, 600_000, FAIL)),
    ]);
    const all = [first, ...more].map((l) => l.id);
    const before = await untilState(all, "LEASE_STATE_ACTIVE", "the victim's leases ACTIVE");
    const onVictim = before.filter((l) => l.hostId === victim);
    expect(onVictim.length).toBeGreaterThanOrEqual(2);

    await agent(victim).proc.kill();
    await untilHostState(victim, "HOST_STATE_SUSPECT");
    await untilHostState(victim, "HOST_STATE_DOWN");

    const restartIds = onVictim
      .filter((l) => l.spec?.onHostFailure === "ON_HOST_FAILURE_RESTART")
      .map((l) => l.id);
    const failIds = onVictim
      .filter((l) => l.spec?.onHostFailure === "ON_HOST_FAILURE_FAIL")
      .map((l) => l.id);
    expect(restartIds.length).toBeGreaterThanOrEqual(1);
    const moved = await untilState(
      restartIds,
      "LEASE_STATE_ACTIVE",
      "restart leases ACTIVE elsewhere",
    );
    await waitFor(
      async () => (await leasesById(broker.api, restartIds)).every((l) => l.hostId !== victim),
      {
        what: "restart leases off the victim",
        detail,
      },
    );
    for (const lease of await leasesById(broker.api, restartIds)) {
      expect(lease.hostId).not.toBe(victim);
      expect(lease.placementHistory.map((p) => p.hostId)).toEqual(
        expect.arrayContaining([victim, lease.hostId]),
      );
    }
    expect(moved.length).toBe(restartIds.length);
    if (failIds.length > 0) await untilState(failIds, "LEASE_STATE_FAILED", "fail leases FAILED");

    // Restart it: it registers again (a new boot), READY, and nothing on it was lost.
    await agent(victim).restart();
    await untilHostState(victim, "HOST_STATE_READY");
    const live = HOSTS;
    await everyLeaseRunsOnce(restartIds, live);
    longLived.push(...restartIds);
  });

  it("a frozen agent past the TTL: its leases restart elsewhere, and its stale copies are stopped when it thaws", async () => {
    // A fresh lease, and the host it runs on.
    const lease = await submit(immediate({ memoryGib: 2 }, 600_000, RESTART));
    const [placed] = await untilState([lease.id], "LEASE_STATE_ACTIVE", "the lease ACTIVE");
    const frozen = placed?.hostId ?? "";
    const running = (await leasesById(broker.api, longLived))
      .filter((l) => l.hostId === frozen)
      .map((l) => l.id);
    const stale = [lease.id, ...running];
    await waitFor(
      () => stale.every((id) => beats.latest.get(frozen)?.leaseIds.includes(id) === true),
      {
        what: `${frozen} reports its leases`,
        detail,
      },
    );

    expect(agent(frozen).proc.signal("SIGSTOP")).toBe(true);
    try {
      await untilHostState(frozen, "HOST_STATE_DOWN");
      await untilState(stale, "LEASE_STATE_ACTIVE", "the frozen host's leases ACTIVE");
      await waitFor(
        async () => (await leasesById(broker.api, stale)).every((l) => l.hostId !== frozen),
        {
          what: "the frozen host's leases moved",
          detail,
        },
      );
    } finally {
      agent(frozen).proc.signal("SIGCONT");
    }
    // While frozen it kept its workloads; thawed, it beats them, is told to say hello, and the
    // broker stops them: the broker's view wins.
    await untilHostState(frozen, "HOST_STATE_READY");
    await waitFor(
      () => {
        const beat = beats.latest.get(frozen);
        return beat !== undefined && stale.every((id) => !beat.leaseIds.includes(id));
      },
      { what: `${frozen} no longer runs the moved leases`, detail },
    );
    // ... because the broker's reconciliation stopped them (counted and logged).
    for (const id of stale) {
      expect(broker.proc.output()).toMatch(
        new RegExp(
          `"host":"${frozen}","lease":"${id}".*reconcile: stopping a workload not placed on this host`,
        ),
      );
    }
    longLived.push(lease.id);
    await everyLeaseRunsOnce(longLived, HOSTS);
  });

  it("a nats-server restart: every host READY again, every lease ACTIVE once, submits work", async () => {
    expect(longLived.length).toBeGreaterThanOrEqual(2);
    await everyLeaseRunsOnce(longLived, HOSTS);
    await nats.restart();
    await waitFor(
      async () =>
        [...(await hostsById(broker.api)).values()].every((h) => h.state === "HOST_STATE_READY"),
      { what: "every host READY after the restart", timeoutMs: 20_000, detail },
    );
    await everyLeaseRunsOnce(longLived, HOSTS);
    const after = await submit(immediate({ memoryGib: 1 }, 600_000, RESTART));
    await untilState(
      [after.id],
      "LEASE_STATE_ACTIVE",
      "a lease submitted after the restart ACTIVE",
    );
    await everyLeaseRunsOnce([...longLived, after.id], HOSTS);
  });

  it("a NATS outage longer than the host TTL: the broker, deaf, declares no host DOWN; nothing moves", async () => {
    await everyLeaseRunsOnce(longLived, HOSTS);
    const before = new Map((await leasesById(broker.api, longLived)).map((l) => [l.id, l.hostId]));
    const downs = (): number => broker.proc.output().split('"state":"DOWN"').length - 1;
    const downsBefore = downs();
    await nats.kill();
    // The outage outlasts the TTL (this creates the condition; nothing is asserted on timing).
    await sleep(Number.parseInt(TIMINGS.hostTtl, 10) * 1000 + 1000);
    await nats.restart();
    await waitFor(
      async () =>
        [...(await hostsById(broker.api)).values()].every((h) => h.state === "HOST_STATE_READY"),
      { what: "every host READY after the outage", timeoutMs: 20_000, detail },
    );
    await everyLeaseRunsOnce(longLived, HOSTS);
    const after = await leasesById(broker.api, longLived);
    expect(after.map((l) => [l.id, l.hostId])).toEqual([...before]);
    expect(downs()).toBe(downsBefore);
    expect(broker.proc.output()).toContain("liveness on hold");
  });
});
