/**
 * A broker with real agents (Agent + SimDriver) on an in-process hub and a VirtualClock, for the
 * orchestrator's tests: hosts can die (agent and driver stop), be cut off the bus, and the broker
 * can restart on the same store. `violations` lists what breaks the invariants after any of that.
 * Test support, not part of the broker's API.
 */
import { Agent, SimDriver } from "../../agent/index.js";
import { type InProcessBus, InProcessHub, seededRandom } from "../../bus/index.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import { Broker, simHostAnnouncements } from "../broker.js";
import type { Lease, LeaseSpec } from "../leases/model.js";
import { HOLDING_STATES } from "../leases/transitions.js";
import { type BrokerStore, MemoryStore } from "../store/index.js";
import type { MigrationLimits } from "./orchestrator.js";
import type { PlannerSettings } from "./planners.js";

export const T0 = 1_900_000_000_000;
export const GIB = 1024;
const TTL = 10_000;

export function migratableSpec(
  memoryGib: number,
  options: {
    params?: Record<string, string>;
    maxDowntimeMs?: number;
    liveMigratable?: boolean;
    onHostFailure?: "restart" | "fail";
    durationMs?: number;
    cpuMillis?: number;
  } = {},
): LeaseSpec {
  return {
    name: "vm",
    tenant: "t",
    labels: {},
    resources: {
      cpuMillis: options.cpuMillis ?? 1000,
      memoryMib: memoryGib * GIB,
      diskGib: 10,
      gpus: 0,
    },
    window: { kind: "immediate", durationMs: options.durationMs ?? 3_600_000 },
    priority: 0,
    preemptible: false,
    constraints: [],
    migration: {
      liveMigratable: options.liveMigratable ?? true,
      maxDowntimeMs: options.maxDowntimeMs ?? 0,
      allowSuspend: true,
      allowAutoConverge: false,
      allowPostCopy: false,
    },
    onHostFailure: options.onHostFailure ?? "restart",
    allowQueue: false,
    driver: { image: "", params: options.params ?? {} },
  };
}

interface SimHost {
  readonly agent: Agent;
  readonly driver: SimDriver;
  readonly bus: InProcessBus;
  dead: boolean;
}

export class TestCluster {
  readonly clock = new VirtualClock(T0);
  readonly hub = new InProcessHub({ clock: this.clock });
  readonly store: BrokerStore = new MemoryStore({ copy: false });
  readonly hosts = new Map<string, SimHost>();
  broker!: Broker;
  #epoch = 5;
  #limits: Partial<MigrationLimits>;
  #planners: Partial<PlannerSettings>;

  private constructor(limits: Partial<MigrationLimits>, planners: Partial<PlannerSettings>) {
    this.#limits = limits;
    this.#planners = planners;
  }

  static async start(
    hostCount = 4,
    memoryGib = 16,
    limits: Partial<MigrationLimits> = {},
    planners: Partial<PlannerSettings> = {},
  ): Promise<TestCluster> {
    const c = new TestCluster(limits, planners);
    await c.#startBroker();
    const logger = silentLogger();
    for (const [i, host] of simHostAnnouncements({
      count: hostCount,
      cpus: 16,
      memoryGib,
      zones: 1,
    }).entries()) {
      const bus = c.hub.connect(host.id);
      const driver = new SimDriver({ clock: c.clock, seed: i + 1, bootMs: 100, shutdownMs: 100 });
      const agent = new Agent({
        hostId: host.id,
        bus,
        driver,
        clock: c.clock,
        capacity: host.capacity,
        labels: host.labels,
        seed: i + 1,
        logger,
        heartbeatIntervalMs: 1000,
      });
      c.hosts.set(host.id, { agent, driver, bus, dead: false });
    }
    await Promise.all([...c.hosts.values()].map((h) => h.agent.start()));
    await c.clock.advance(1000);
    return c;
  }

  async #startBroker(): Promise<void> {
    this.broker = new Broker({
      clock: this.clock,
      logger: silentLogger(),
      grpcAddress: "127.0.0.1:0",
      bus: this.hub.connect(`broker-${this.#epoch}`),
      store: this.store,
      epoch: this.#epoch,
      heartbeatIntervalMs: 1000,
      liveness: { suspectAfterMs: 3000, downAfterMs: TTL, checkEveryMs: 500 },
      random: seededRandom(this.#epoch),
      timings: { stopGraceMs: 500 },
      migrationLimits: this.#limits,
      planners: this.#planners,
    });
    await this.broker.start();
  }

  /** The broker process ends (its store survives) and a new one starts with a newer epoch. */
  async restartBroker(): Promise<void> {
    await this.broker.stop(50, { keepStore: true });
    this.#epoch += 1;
    await this.#startBroker();
  }

  /** A host dies: no more beats, commands or events; its workloads are gone. */
  async kill(hostId: string): Promise<void> {
    const h = this.#host(hostId);
    h.dead = true;
    await h.agent.stop();
    await h.driver.close();
  }

  /** Cuts (or restores) a host's connection to the bus. */
  partition(hostId: string, cut: boolean): void {
    const bus = this.#host(hostId).bus;
    if (cut) bus.simulateDisconnect();
    else bus.simulateReconnect();
  }

  async stop(): Promise<void> {
    await this.broker.stop(50);
    for (const h of this.hosts.values()) {
      if (h.dead) continue;
      await h.agent.stop();
      await h.driver.close();
    }
  }

  /** What `drainHost` needs, from this cluster's broker. */
  drainDeps() {
    const b = this.broker;
    return {
      clock: this.clock,
      index: b.index,
      hosts: b.hosts,
      leases: b.leases,
      orchestrator: b.migrations,
    };
  }

  lease(id: string): Lease {
    return this.broker.leases.get(id).value;
  }

  async submit(spec: LeaseSpec): Promise<Lease> {
    const { lease } = await this.broker.leases.submit(spec);
    await this.clock.advance(1000);
    return this.lease(lease.id);
  }

  /** Advances in steps until `done` holds (at most `limitMs`). */
  async until(done: () => boolean, limitMs = 120_000, stepMs = 250): Promise<void> {
    for (let t = 0; t < limitMs && !done(); t += stepMs) await this.clock.advance(stepMs);
    if (!done()) throw new Error(`not done within ${limitMs} ms`);
  }

  /** Hosts whose driver has the lease's workload running (or being started or resumed). */
  async runningOn(leaseId: string): Promise<string[]> {
    const out: string[] = [];
    for (const [id, h] of this.hosts) {
      if (h.dead) continue;
      const w = (await h.driver.list()).find((x) => x.leaseId === leaseId);
      if (w !== undefined && ["RUNNING", "STARTING", "RESUMING"].includes(w.state)) out.push(id);
    }
    return out.sort();
  }

  #host(id: string): SimHost {
    const h = this.hosts.get(id);
    if (h === undefined) throw new Error(`no host ${id}`);
    return h;
  }

  /**
   * After any failure, once things settled: no migration is left unfinished, every lease that holds
   * capacity has exactly one hold (its id, on its host, to its end) and nothing else is charged,
   * and a running lease's workload runs on exactly one host: the lease's. Returns what breaks them.
   */
  async violations(): Promise<string[]> {
    const b = this.broker;
    const out: string[] = [];
    for (const m of b.migrations.unfinished()) out.push(`migration ${m.id} is ${m.state}`);
    const expected = new Map<string, string>();
    for (const item of b.leases.list({ pageSize: 1000 }).leases) {
      const l = item.value;
      if (HOLDING_STATES.has(l.state) || l.state === "SUSPENDED") expected.set(l.id, l.hostId);
      const on = await this.runningOn(l.id);
      if (l.state === "ACTIVE" && (on.length !== 1 || on[0] !== l.hostId))
        out.push(`lease ${l.id} is ACTIVE on ${l.hostId} but runs on [${on.join(",")}]`);
      if (TERMINAL.has(l.state) && on.length > 0)
        out.push(`lease ${l.id} is ${l.state} but runs on [${on.join(",")}]`);
    }
    const seen = new Set<string>();
    for (const host of b.index.hosts()) {
      for (const h of b.index.holdsOn(host.id)) {
        seen.add(h.id);
        const want = expected.get(h.id);
        if (want === undefined) out.push(`hold ${h.id} on ${h.hostId} belongs to no holding lease`);
        else if (want !== h.hostId)
          out.push(`hold ${h.id} is on ${h.hostId}, its lease on ${want}`);
        else if (h.end !== this.lease(h.leaseId).end) out.push(`hold ${h.id} ends at ${h.end}`);
      }
    }
    for (const id of expected.keys()) if (!seen.has(id)) out.push(`lease ${id} holds nothing`);
    return out;
  }
}

const started: TestCluster[] = [];

/** Starts a cluster that `stopClusters` (in afterEach) stops. */
export async function testCluster(
  ...args: Parameters<typeof TestCluster.start>
): Promise<TestCluster> {
  const c = await TestCluster.start(...args);
  started.push(c);
  return c;
}

export async function stopClusters(): Promise<void> {
  for (const c of started.splice(0)) await c.stop();
}

const TERMINAL = new Set(["ENDED", "FAILED", "CANCELLED", "PREEMPTED", "REJECTED"]);
