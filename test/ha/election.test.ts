/**
 * LeaderElection against a real etcd, in this process: one leader at a time, the others know its
 * address, terms (epochs) only grow, a deposed leader's writes are fenced, and a leader that can
 * no longer renew its lease steps down by its own (local, monotonic) deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaderElection, type Term } from "../../broker/ha/index.js";
import {
  BROKER_CODECS,
  type BrokerSchema,
  EtcdStore,
  FencedError,
} from "../../broker/store/index.js";
import { createLogger } from "../../core/index.js";
import { type EtcdHandle, startEtcd, waitFor } from "../helpers/index.js";

const logger = createLogger({ level: "silent", name: "election-test" });

interface Candidate {
  readonly election: LeaderElection;
  readonly store: EtcdStore<BrokerSchema>;
  readonly terms: Term[];
  readonly deposed: string[];
}

function candidate(etcd: EtcdHandle, value: string): Candidate {
  let election: LeaderElection | undefined;
  const store = new EtcdStore<BrokerSchema>({
    endpoints: etcd.clientUrl,
    codecs: BROKER_CODECS,
    requestTimeoutMs: 2000,
    fence: () => election?.fence() ?? [],
  });
  election = new LeaderElection({
    client: store.client,
    prefix: store.prefix,
    value,
    ttlMs: 2000,
    logger,
  });
  const c: Candidate = { election, store, terms: [], deposed: [] };
  election.onElected((term) => c.terms.push(term));
  election.onDeposed((_term, why) => c.deposed.push(why));
  return c;
}

const hostRecord = (id: string) => ({ id, cordoned: true, updatedAt: 1 });

describe("leader election on etcd", () => {
  let etcd: EtcdHandle;
  const candidates: Candidate[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterAll(async () => {
    for (const c of candidates) {
      await c.election.resign().catch(() => {});
      await c.store.close();
    }
    await etcd.stop();
  }, 60_000);

  it("elects one leader; a resignation hands over at once with a larger epoch; old writes are fenced", async () => {
    const a = candidate(etcd, "10.0.0.1:50051");
    const b = candidate(etcd, "10.0.0.2:50051");
    candidates.push(a, b);
    a.election.start();
    await waitFor(() => a.terms.length === 1, { what: "a leads" });
    b.election.start();
    await waitFor(() => b.election.leader() === "10.0.0.1:50051", { what: "b sees a lead" });
    expect(b.terms).toEqual([]);
    expect(b.election.valid()).toBe(false);

    // The leader writes; a follower's write is refused by the fence.
    await a.store.commit([{ type: "put", collection: "hosts", id: "h1", value: hostRecord("h1") }]);
    await expect(
      b.store.commit([{ type: "put", collection: "hosts", id: "h2", value: hostRecord("h2") }]),
    ).rejects.toBeInstanceOf(FencedError);

    await a.election.resign();
    await waitFor(() => b.terms.length === 1, { what: "b leads", timeoutMs: 5000 });
    expect(a.deposed).toEqual(["resigned"]);
    expect((b.terms[0] as Term).epoch).toBeGreaterThan((a.terms[0] as Term).epoch);
    expect(b.election.leader()).toBe("10.0.0.2:50051");
    await a.store
      .commit([{ type: "put", collection: "hosts", id: "h3", value: hostRecord("h3") }])
      .then(
        () => expect.unreachable("a deposed leader wrote"),
        (error: unknown) => expect(error).toBeInstanceOf(FencedError),
      );
    await b.store.commit([{ type: "put", collection: "hosts", id: "h4", value: hostRecord("h4") }]);
    expect((await b.store.list("hosts")).items.map((i) => i.id)).toEqual(["h1", "h4"]);
  }, 60_000);

  it("a leader whose keepalives go unanswered steps down by its own deadline", async () => {
    const c = candidate(etcd, "10.0.0.3:50051");
    candidates.push(c);
    for (const other of candidates.slice(0, -1)) await other.election.resign();
    c.election.start();
    await waitFor(() => c.terms.length === 1, { what: "c leads", timeoutMs: 5000 });
    // Freeze etcd: keepalives go unanswered, nothing can expire the lease either.
    process.kill(etcd.pid, "SIGSTOP");
    try {
      await waitFor(() => c.deposed.length === 1, { what: "c steps down", timeoutMs: 5000 });
      expect(c.election.valid()).toBe(false);
      expect(c.election.fence()[0]?.createRevision).toBe(-1);
    } finally {
      process.kill(etcd.pid, "SIGCONT");
    }
  }, 60_000);
});
