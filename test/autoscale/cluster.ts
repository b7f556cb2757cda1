/**
 * A broker with the autoscaling hook and sim agents on an in-process bus, on a VirtualClock, for
 * the autoscale tests: agents are started and stopped through a `HostLauncher` (the reference
 * autoscaler's port), so the tests and the example autoscaler add and remove the same hosts.
 */
import { Agent, SimDriver } from "../../agent/index.js";
import type { AutoscaleOptions } from "../../broker/autoscale/index.js";
import { Broker } from "../../broker/broker.js";
import type { Lease, LeaseSpec, WindowSpec } from "../../broker/leases/model.js";
import { testLeaseSpec } from "../../broker/leases/test-support.js";
import { InProcessHub, seededRandom } from "../../bus/index.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import type { HostLauncher, ShapeRequest } from "../../deploy/examples/autoscaler/autoscaler.js";

export const T0 = Date.UTC(2031, 0, 6, 12, 0, 0);
export const GIB = 1024;
export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const HOST_TTL = 30 * SECOND;
/** The webhook secret of the tests. */
export const SECRET = "test-secret-0123456789";

/** The hosts the tests start by hand: 8 CPUs, 16 GiB (allocatable: 32 cores at cpu ratio 4). */
export const SMALL_HOST: ShapeRequest = {
  shape: "8c-16g",
  capacity: { cpuMillis: 8000, memoryMib: 16 * GIB, diskGib: 100, gpus: 0 },
  labels: { pool: "sim" },
  count: 1,
};

export function spec(memoryGib: number, window: WindowSpec, allowQueue = false): LeaseSpec {
  return testLeaseSpec(memoryGib, { window, allowQueue, liveMigratable: true });
}

export interface AutoscaleCluster {
  readonly clock: VirtualClock;
  readonly broker: Broker;
  /** Starts and stops in-process sim agents on the hub. */
  readonly launcher: HostLauncher & { readonly running: ReadonlySet<string> };
  submit(s: LeaseSpec): Promise<Lease>;
  lease(id: string): Lease;
  stop(): Promise<void>;
}

export async function autoscaleCluster(autoscale: AutoscaleOptions): Promise<AutoscaleCluster> {
  const clock = new VirtualClock(T0);
  const logger = silentLogger();
  const hub = new InProcessHub({ clock });
  const broker = new Broker({
    clock,
    logger,
    grpcAddress: "127.0.0.1:0",
    bus: hub.connect("broker"),
    epoch: 3,
    heartbeatIntervalMs: 5 * SECOND,
    liveness: { suspectAfterMs: 12 * SECOND, downAfterMs: HOST_TTL, checkEveryMs: 5 * SECOND },
    random: seededRandom(9),
    timings: { stopGraceMs: 5 * SECOND },
    autoscale,
  });
  await broker.start();
  const agents = new Map<string, { agent: Agent; driver: SimDriver }>();
  let seed = 1;
  const launcher = {
    running: new Set<string>(),
    async start(hostId: string, shape: ShapeRequest): Promise<void> {
      const driver = new SimDriver({ clock, seed, bootMs: SECOND, shutdownMs: SECOND / 2 });
      const agent = new Agent({
        hostId,
        bus: hub.connect(hostId),
        driver,
        clock,
        capacity: shape.capacity,
        labels: shape.labels,
        seed: seed++,
        logger,
        heartbeatIntervalMs: 5 * SECOND,
      });
      agents.set(hostId, { agent, driver });
      await agent.start();
      launcher.running.add(hostId);
    },
    async stop(hostId: string): Promise<void> {
      const a = agents.get(hostId);
      if (a === undefined) return;
      agents.delete(hostId);
      launcher.running.delete(hostId);
      await a.agent.stop();
      await a.driver.close();
    },
  };
  return {
    clock,
    broker,
    launcher,
    submit: async (s) => (await broker.leases.submit(s)).lease,
    lease: (id) => broker.leases.get(id).value,
    async stop() {
      await broker.stop(100);
      for (const id of [...agents.keys()]) await launcher.stop(id);
    },
  };
}
