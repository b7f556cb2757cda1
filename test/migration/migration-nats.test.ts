/**
 * Live migration end to end over a real nats-server: a broker (in this process, real clock, its
 * gRPC API on loopback) and six sim agents, each on its own NATS connection. The agents live in
 * this process because sim migrations rendezvous in-process (SimNetwork); everything between the
 * broker and the agents goes over NATS. DrainHost empties a host holding 20 leases within the
 * limits (never more than 2 leaving it at once); MigrateLease with and without a target, and
 * AbortMigration, go through the gRPC API. Every wait is bounded.
 */
import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, SimDriver } from "../../agent/index.js";
import { Broker } from "../../broker/broker.js";
import { NatsBus } from "../../bus/index.js";
import { RealClock, silentLogger } from "../../core/index.js";
import {
  type Lease,
  type LeaseSpecInput,
  type ListMigrationsRequestInput,
  type ListMigrationsResponse,
  type Migration,
  timestampFromMs,
} from "../../proto/index.js";
import { BrokerApi, immediate, rpcError } from "../broker/harness.js";
import { type NatsHandle, startNats, waitFor } from "../helpers/index.js";

const HOSTS = ["mig-1", "mig-2", "mig-3", "mig-4", "mig-5", "mig-6"];
const MIGRATABLE: Partial<LeaseSpecInput> = {
  migration: { liveMigratable: true },
  onHostFailure: "ON_HOST_FAILURE_RESTART",
};

describe("live migration over NATS", () => {
  let nats: NatsHandle;
  let broker: Broker;
  let api: BrokerApi;
  const buses: NatsBus[] = [];
  const agents = new Map<string, { agent: Agent; driver: SimDriver }>();

  /** A unary call of the raw client as a promise (the calls BrokerApi does not wrap). */
  function promise<T>(
    fn: (cb: (error: ServiceError | null, value?: T) => void) => void,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      fn((error, value) =>
        error === null && value !== undefined ? resolve(value) : reject(error),
      );
    });
  }
  const getMigration = (id: string) => promise<Migration>((cb) => api.raw.GetMigration({ id }, cb));
  const listMigrations = (request: ListMigrationsRequestInput) =>
    promise<ListMigrationsResponse>((cb) => api.raw.ListMigrations(request, cb));
  const abortMigration = (id: string, reason: string) =>
    promise<Migration>((cb) => api.raw.AbortMigration({ id, reason }, cb));

  async function runningOn(leaseId: string): Promise<string[]> {
    const out: string[] = [];
    for (const [id, { driver }] of agents) {
      const w = (await driver.list()).find((x) => x.leaseId === leaseId);
      if (w !== undefined && w.state === "RUNNING") out.push(id);
    }
    return out;
  }

  beforeAll(async () => {
    nats = await startNats();
    const clock = new RealClock();
    const logger = silentLogger();
    const brokerBus = await NatsBus.connect({ servers: nats.url, name: "broker" });
    buses.push(brokerBus);
    broker = new Broker({
      clock,
      logger,
      grpcAddress: "127.0.0.1:0",
      bus: brokerBus,
      heartbeatIntervalMs: 200,
      liveness: { suspectAfterMs: 1000, downAfterMs: 5000, checkEveryMs: 100 },
    });
    const port = await broker.start();
    api = new BrokerApi(`127.0.0.1:${port}`);
    for (const [i, hostId] of HOSTS.entries()) {
      const bus = await NatsBus.connect({ servers: nats.url, name: hostId });
      buses.push(bus);
      // A fast link keeps each move well under a second.
      const driver = new SimDriver({
        clock,
        seed: i + 1,
        bootMs: 50,
        shutdownMs: 50,
        bandwidthBytesPerS: 2_000_000_000,
      });
      const agent = new Agent({
        hostId,
        bus,
        driver,
        clock,
        capacity: { cpuMillis: 16_000, memoryMib: 32 * 1024, diskGib: 500, gpus: 0 },
        ratios: { cpu: 4 },
        labels: { zone: "z" },
        seed: i + 1,
        logger,
        heartbeatIntervalMs: 200,
      });
      await agent.start();
      agents.set(hostId, { agent, driver });
    }
    await waitFor(async () => (await api.listHosts({})).hosts.length === HOSTS.length, {
      what: "every agent registered",
    });
  });

  afterAll(async () => {
    api?.close();
    await broker?.stop(500);
    for (const { agent, driver } of agents.values()) {
      await agent.stop();
      await driver.close();
    }
    for (const bus of buses) await bus.close();
    await nats?.stop();
  });

  it("drains a host holding 20 leases: every one moves, at most 2 at a time", async () => {
    const watch = api.watch({ fromRevision: 0 });
    try {
      const leases: Lease[] = [];
      for (let i = 0; i < 20; i++) {
        leases.push(await api.submitLease(immediate({ memoryGib: 0.5 }, 3_600_000, MIGRATABLE)));
      }
      await waitFor(
        async () =>
          (await api.listAll({})).filter((l) => l.state === "LEASE_STATE_ACTIVE").length === 20,
        { what: "20 leases ACTIVE", timeoutMs: 15_000 },
      );
      const source = leases[0]?.hostId as string;
      // Binpack puts them all on one host.
      expect(leases.every((l) => l.hostId === source)).toBe(true);

      const response = await api.drain({
        id: source,
        reason: "kernel update",
        deadline: timestampFromMs(Date.now() + 300_000),
      });
      expect(response.host?.state).toBe("HOST_STATE_DRAINING");
      expect(response.moves).toHaveLength(20);
      expect(response.moves.every((m) => m.fromHostId === source && m.toHostId !== source)).toBe(
        true,
      );
      expect(response.stopLeaseIds).toEqual([]);

      let most = 0;
      await waitFor(
        async () => {
          const page = await listMigrations({ hostId: source, pageSize: 100 });
          const moving = page.migrations.filter((m) =>
            [
              "MIGRATION_STATE_PREPARING",
              "MIGRATION_STATE_TRANSFERRING",
              "MIGRATION_STATE_SWITCHOVER",
            ].includes(m.state),
          ).length;
          most = Math.max(most, moving);
          return (
            page.migrations.length === 20 &&
            page.migrations.every((m) => m.state === "MIGRATION_STATE_COMPLETED")
          );
        },
        { what: "20 migrations COMPLETED", timeoutMs: 60_000, intervalMs: 10 },
      );
      expect(most).toBeLessThanOrEqual(2);
      expect(broker.migrations.peakInFlight).toBe(2);

      const after = await api.listAll({});
      for (const lease of after) {
        expect(lease.state).toBe("LEASE_STATE_ACTIVE");
        expect(lease.hostId).not.toBe(source);
        expect(lease.placementHistory.at(-1)?.reason).toBe("PLACEMENT_REASON_MIGRATION");
        expect(await runningOn(lease.id)).toEqual([lease.hostId]);
      }
      expect(broker.index.holdsOn(source)).toEqual([]);
      expect((await api.getHost({ id: source })).state).toBe("HOST_STATE_DRAINING");

      // Pages, newest first, 7 at a time.
      const seen: string[] = [];
      let pageToken = "";
      for (let page = 0; page < 5; page++) {
        const r = await listMigrations({ hostId: source, pageSize: 7, pageToken });
        seen.push(...r.migrations.map((m) => m.id));
        pageToken = r.nextPageToken;
        if (pageToken === "") break;
      }
      expect(seen).toHaveLength(20);
      expect([...seen].sort().reverse()).toEqual(seen);

      // WatchLeases showed the moves: into MIGRATING with the migration, progress, and back.
      const migrating = await watch.waitFor(
        (e) => e.lease?.state === "LEASE_STATE_MIGRATING" && e.migration !== null,
        "a lease MIGRATING",
      );
      expect(migrating.migration?.leaseId).toBe(migrating.lease?.id);
      await watch.waitFor((e) => e.type === "LEASE_EVENT_TYPE_MIGRATION_PROGRESS", "progress");
      await api.uncordon({ id: source });
    } finally {
      watch.close();
    }
  });

  it("MigrateLease to a target and AbortMigration: the workload stays on the source", async () => {
    // Dirtier than the link can keep up with under the 300 ms downtime limit: it never converges.
    const lease = await api.submitLease(
      immediate({ memoryGib: 4 }, 3_600_000, {
        ...MIGRATABLE,
        driver: { params: { dirty_rate_bytes_per_s: "4000000000", working_set_mib: "2048" } },
      }),
    );
    await waitFor(async () => (await api.get({ id: lease.id })).state === "LEASE_STATE_ACTIVE", {
      what: "the lease ACTIVE",
    });
    const source = (await api.get({ id: lease.id })).hostId;
    const target = HOSTS.find((h) => h !== source) as string;
    const m = await api.migrate({ leaseId: lease.id, targetHostId: target });
    expect(m).toMatchObject({ leaseId: lease.id, fromHostId: source, toHostId: target });
    expect(m.reason).toBe("MIGRATION_REASON_MANUAL");
    await waitFor(async () => (await getMigration(m.id)).state === "MIGRATION_STATE_TRANSFERRING", {
      what: "TRANSFERRING",
    });
    expect((await api.get({ id: lease.id })).migrationId).toBe(m.id);
    const aborted = await abortMigration(m.id, "changed plans");
    expect(aborted).toMatchObject({
      state: "MIGRATION_STATE_ABORTED",
      abortReason: "changed plans",
    });
    const again = await rpcError(abortMigration(m.id, ""));
    expect(again.code).toBe(9); // FAILED_PRECONDITION
    await waitFor(async () => (await runningOn(lease.id)).join() === source, {
      what: "the workload on the source only",
    });
    const back = await api.get({ id: lease.id });
    expect(back).toMatchObject({ state: "LEASE_STATE_ACTIVE", hostId: source, migrationId: "" });
    const listed = await listMigrations({
      leaseId: lease.id,
      states: ["MIGRATION_STATE_ABORTED"],
    });
    expect(listed.migrations.map((x) => x.id)).toEqual([m.id]);

    // Without a target, the placer picks one (never the source), and it completes.
    const small = await api.submitLease(immediate({ memoryGib: 0.5 }, 3_600_000, MIGRATABLE));
    await waitFor(async () => (await api.get({ id: small.id })).state === "LEASE_STATE_ACTIVE", {
      what: "the small lease ACTIVE",
    });
    const moved = await api.migrate({ leaseId: small.id });
    expect(moved.toHostId).not.toBe(moved.fromHostId);
    await waitFor(
      async () => (await getMigration(moved.id)).state === "MIGRATION_STATE_COMPLETED",
      {
        what: "COMPLETED",
      },
    );
    expect((await api.get({ id: small.id })).hostId).toBe(moved.toHostId);
    expect(await runningOn(small.id)).toEqual([moved.toHostId]);
    const done = await getMigration(moved.id);
    expect(Number(done.progress?.bytesTransferred)).toBeGreaterThan(0);
    expect(done.totalTime).not.toBeNull();
  });
});
