/**
 * The composition root: one broker from its parts. The embedded form (what `npm start` runs)
 * holds a memory store, the placement index, the host registry, the lease manager, the gRPC API
 * and, as its hosts, a simulated in-process fleet.
 */
import type { Clock, Logger } from "../core/index.js";
import {
  ClusterIndex,
  DEFAULT_PLACEMENT_POLICY,
  type PlacementPolicy,
  type Resources,
} from "../placement/index.js";
import { ApiServer } from "./api/server.js";
import type { HostGateway } from "./hosts/gateway.js";
import { type HostAnnouncement, HostRegistry } from "./hosts/registry.js";
import { SimFleet, type SimFleetOptions } from "./hosts/sim-fleet.js";
import { createIdGenerator } from "./ids.js";
import {
  LeaseManager,
  type LeaseManager as LeaseManagerType,
  type LeaseTimings,
} from "./leases/lease-manager.js";
import { type AdmissionLimits, DEFAULT_ADMISSION_LIMITS } from "./leases/validate.js";
import { type BrokerStore, MemoryStore } from "./store/index.js";

export interface SimHostsOptions extends SimFleetOptions {
  readonly count: number;
  readonly cpus: number;
  readonly memoryGib: number;
  readonly diskGib?: number;
  /** Zones the hosts are spread over (label `zone`). Default 3. */
  readonly zones?: number;
}

export interface BrokerOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** gRPC listen address; port 0 picks a free port. */
  readonly grpcAddress: string;
  readonly policy?: PlacementPolicy;
  readonly limits?: Partial<AdmissionLimits>;
  readonly timings?: Partial<LeaseTimings>;
  readonly store?: BrokerStore;
  /** Simulated hosts to create in-process (the all-in-one mode). */
  readonly simHosts?: SimHostsOptions;
  /** Source of randomness for ids (seeded in tests and the simulator). */
  readonly random?: () => number;
}

export class Broker {
  readonly clock: Clock;
  readonly store: BrokerStore;
  readonly index: ClusterIndex;
  readonly hosts: HostRegistry;
  readonly leases: LeaseManagerType;
  readonly api: ApiServer;
  readonly fleet: SimFleet;
  readonly #log: Logger;
  readonly #simHosts: SimHostsOptions | undefined;

  constructor(options: BrokerOptions) {
    this.clock = options.clock;
    this.#log = options.logger;
    this.store = options.store ?? new MemoryStore();
    const policy = options.policy ?? DEFAULT_PLACEMENT_POLICY;
    this.index = new ClusterIndex({ resourceWeights: policy.resourceWeights });
    this.hosts = new HostRegistry({
      store: this.store,
      index: this.index,
      clock: this.clock,
      logger: this.#log,
    });
    this.#simHosts = options.simHosts;
    this.fleet = new SimFleet(this.clock, options.simHosts ?? {});
    const gateway: HostGateway = this.fleet;
    this.leases = new LeaseManager({
      store: this.store,
      clock: this.clock,
      index: this.index,
      hosts: this.hosts,
      gateway,
      policy,
      logger: this.#log,
      newId: createIdGenerator(
        "l-",
        this.clock,
        options.random === undefined ? {} : { random: options.random },
      ),
      limits: { ...DEFAULT_ADMISSION_LIMITS, ...options.limits },
      ...(options.timings === undefined ? {} : { timings: options.timings }),
    });
    this.api = new ApiServer(
      {
        store: this.store,
        leases: this.leases,
        hosts: this.hosts,
        index: this.index,
        clock: this.clock,
        logger: this.#log,
      },
      { address: options.grpcAddress },
    );
  }

  /** Loads state, brings up the simulated hosts, and serves the API. Returns the gRPC port. */
  async start(): Promise<number> {
    this.index.advanceTo(this.clock.now());
    await this.hosts.load();
    for (const host of simHostAnnouncements(this.#simHosts)) {
      this.fleet.addHost(host.id);
      this.hosts.register(host);
    }
    await this.leases.start();
    const port = await this.api.start();
    this.#log.info({ port, hosts: this.hosts.ids().length }, "broker serving");
    return port;
  }

  async stop(graceMs = 5000): Promise<void> {
    await this.api.stop(graceMs);
    this.leases.stop();
    await this.store.close();
  }
}

/** `sim-01` … with capacity, a zone label and a rack label each. */
export function simHostAnnouncements(options: SimHostsOptions | undefined): HostAnnouncement[] {
  if (options === undefined) return [];
  const zones = options.zones ?? 3;
  const width = Math.max(2, String(options.count).length);
  const capacity: Resources = {
    cpuMillis: options.cpus * 1000,
    memoryMib: options.memoryGib * 1024,
    diskGib: options.diskGib ?? 500,
    gpus: 0,
  };
  return Array.from({ length: options.count }, (_, i) => ({
    id: `sim-${String(i + 1).padStart(width, "0")}`,
    capacity,
    labels: {
      zone: `zone-${String.fromCharCode(97 + (i % zones))}`,
      rack: `rack-${Math.floor(i / 4) + 1}`,
      driver: "sim",
    },
    driver: "sim",
    agentVersion: "embedded",
  }));
}
