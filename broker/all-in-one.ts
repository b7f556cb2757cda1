/**
 * Simulated hosts as real agents: `Agent` + `SimDriver`, each on its own connection to a Bus
 * (the in-process hub in the all-in-one mode, NATS for load tests). The broker cannot tell them
 * from agents in other processes: they speak the same protocol.
 */
import { Agent, SimDriver } from "../agent/index.js";
import type { Bus } from "../bus/index.js";
import type { Clock, Logger } from "../core/index.js";
import { type SimHostsOptions, simHostAnnouncements } from "./broker.js";

export interface SimAgentsOptions extends SimHostsOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** A bus connection for each agent (its own, so that each can be cut or restarted alone). */
  readonly connect: (hostId: string) => Bus | Promise<Bus>;
  readonly seed?: number;
  readonly heartbeatIntervalMs?: number;
}

export interface SimAgents {
  readonly agents: readonly Agent[];
  /** Stops every agent (their simulated workloads end with them). */
  stop(): Promise<void>;
}

export async function startSimAgents(options: SimAgentsOptions): Promise<SimAgents> {
  const agents: Agent[] = [];
  const drivers: SimDriver[] = [];
  const seed = options.seed ?? 1;
  for (const [i, host] of simHostAnnouncements(options).entries()) {
    const bus = await options.connect(host.id);
    const driver = new SimDriver({
      clock: options.clock,
      seed: seed + i,
      ...(options.bootMs === undefined ? {} : { bootMs: options.bootMs }),
      ...(options.shutdownMs === undefined ? {} : { shutdownMs: options.shutdownMs }),
    });
    const agent = new Agent({
      hostId: host.id,
      bus,
      driver,
      clock: options.clock,
      capacity: host.capacity,
      labels: host.labels,
      seed: seed + i,
      logger: options.logger.child({ host: host.id }),
      ...(options.heartbeatIntervalMs === undefined
        ? {}
        : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
    });
    drivers.push(driver);
    agents.push(agent);
  }
  await Promise.all(agents.map((a) => a.start()));
  return {
    agents,
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(drivers.map((d) => d.close()));
    },
  };
}
