/**
 * Shared by the dashboard's tests (unit and browser): a lease spec builder, and a broker with
 * simulated hosts serving HTTP on a free loopback port.
 */
import type { Clock } from "../../core/index.js";
import { silentLogger } from "../../core/index.js";
import { Broker } from "../broker.js";
import type { LeaseSpec, WindowSpec } from "../leases/model.js";
import { testLeaseSpec } from "../leases/test-support.js";

export function leaseSpec(
  options: { cpus?: number; memoryGib?: number; window?: WindowSpec; tenant?: string } = {},
): LeaseSpec {
  return testLeaseSpec(options.memoryGib ?? 4, {
    tenant: options.tenant ?? "demo",
    resources: { cpuMillis: (options.cpus ?? 2) * 1000, diskGib: 10 },
    ...(options.window === undefined ? {} : { window: options.window }),
  });
}

export interface DashboardBroker {
  readonly broker: Broker;
  /** http://127.0.0.1:<port> (no trailing slash). */
  readonly base: string;
  stop(): Promise<void>;
}

/** A broker over a simulated fleet (no bus), its HTTP server on a free loopback port. */
export async function startDashboardBroker(options: {
  clock: Clock;
  hosts?: number;
  cpus?: number;
  memoryGib?: number;
}): Promise<DashboardBroker> {
  const broker = new Broker({
    clock: options.clock,
    logger: silentLogger(),
    grpcAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
    simHosts: {
      count: options.hosts ?? 4,
      cpus: options.cpus ?? 8,
      memoryGib: options.memoryGib ?? 32,
      bootMs: 1000,
      shutdownMs: 500,
    },
  });
  await broker.start();
  const port = broker.dashboard?.port ?? 0;
  return {
    broker,
    base: `http://127.0.0.1:${port}`,
    stop: () => broker.stop(1000),
  };
}
