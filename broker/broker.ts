/**
 * The composition root: one broker from its parts — a store, the placement index, the host
 * registry, the lease manager and the gRPC API — and its hosts: agents over a Bus (in-process or
 * NATS: the AgentGateway, with heartbeat liveness), or, without a bus, a simulated fleet called
 * directly (deterministic lifecycle tests).
 */
import type { Bus } from "../bus/index.js";
import type { Clock, Logger } from "../core/index.js";
import {
  ClusterIndex,
  DEFAULT_PLACEMENT_POLICY,
  type PlacementPolicy,
  type Resources,
} from "../placement/index.js";
import { ApiServer, type ApiServerOptions } from "./api/server.js";
import {
  type AutoscaleOptions,
  AutoscaleSignaller,
  orchestratorDrainer,
  plannersConsolidation,
} from "./autoscale/index.js";
import {
  DashboardServer,
  orchestratorMigrationSource,
  signallerAutoscaleSource,
} from "./dashboard/index.js";
import {
  HighAvailability,
  type LeaderDuty,
  type LeaderElection,
  observeCommits,
} from "./ha/index.js";
import { AgentGateway } from "./hosts/agent-gateway.js";
import type { HostGateway } from "./hosts/gateway.js";
import {
  DEFAULT_LIVENESS,
  type HostAnnouncement,
  HostRegistry,
  type LivenessOptions,
} from "./hosts/registry.js";
import { SimFleet, type SimFleetOptions } from "./hosts/sim-fleet.js";
import { createIdGenerator } from "./ids.js";
import type { AdmissionHook } from "./leases/admission.js";
import {
  LeaseManager,
  type LeaseManager as LeaseManagerType,
  type LeaseTimings,
} from "./leases/lease-manager.js";
import { type AdmissionLimits, DEFAULT_ADMISSION_LIMITS } from "./leases/validate.js";
import {
  followDrains,
  type MigrationLimits,
  MigrationOrchestrator,
  MigrationPlanners,
  type PlannerSettings,
} from "./migrations/index.js";
import { type BrokerSchema, type BrokerStore, type EtcdStore, MemoryStore } from "./store/index.js";

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
  /** HTTP (dashboard, /metrics, /healthz) listen address; port 0 picks a free port. None: no HTTP. */
  readonly httpAddress?: string;
  readonly policy?: PlacementPolicy;
  readonly limits?: Partial<AdmissionLimits>;
  readonly timings?: Partial<LeaseTimings>;
  readonly store?: BrokerStore;
  /** Simulated hosts to create in-process (the all-in-one mode). */
  readonly simHosts?: SimHostsOptions;
  /** Source of randomness for ids (seeded in tests and the simulator). */
  readonly random?: () => number;
  /** Agents reach the broker over this bus. Without one, the hosts are `simHosts`, called directly. */
  readonly bus?: Bus;
  /** The broker's fencing token for agent commands. Default: the start time in ms (grows across restarts). */
  readonly epoch?: number;
  /** Heartbeat liveness of agents (bus mode). */
  readonly liveness?: Partial<LivenessOptions>;
  /** Agent heartbeat interval told in HelloReply (bus mode). Default 1 s. */
  readonly heartbeatIntervalMs?: number;
  /** Batch the agent commands of one event-loop turn into one bus write (production). */
  readonly coalesceCommands?: boolean;
  /** Security of the gRPC API: TLS credentials, bearer-token auth (broker/auth). */
  readonly api?: Pick<ApiServerOptions, "credentials" | "auth" | "maxReceiveBytes">;
  /** Admission policy beyond capacity: per-tenant quotas (broker/auth/quota-ledger.ts). */
  readonly admission?: AdmissionHook;
  /** A higher-priority lease may displace preemptible ones when nothing fits. Default true. */
  readonly preemption?: boolean;
  /** Serve the gRPC API on `start`. Default true; the simulator drives the lease manager directly. */
  readonly serveApi?: boolean;
  /** Live migration limits and timeouts. */
  readonly migrationLimits?: Partial<MigrationLimits>;
  /** The autoscaling hook (evaluated every interval; signals published where configured). */
  readonly autoscale?: AutoscaleOptions;
  /** Make-room at admission (default on) and the periodic rebalance (default off). */
  readonly planners?: Partial<PlannerSettings>;
  /** High availability over etcd (issue 6): campaign, follow or lead. `store` is then unused. */
  readonly ha?: BrokerHaOptions;
}

export interface BrokerHaOptions {
  readonly store: EtcdStore<BrokerSchema>;
  readonly election: LeaderElection;
  /** This broker's gRPC address as others reach it. */
  readonly advertiseAddress: string;
  /** Longest a new leader waits for hosts with leases to say Hello. Default 2 heartbeats + 0.5 s. */
  readonly settleMs?: number;
}

export class Broker {
  readonly clock: Clock;
  readonly store: BrokerStore;
  readonly index: ClusterIndex;
  readonly hosts: HostRegistry;
  readonly leases: LeaseManagerType;
  readonly migrations: MigrationOrchestrator;
  /** Make-room, preemption by migration, rebalance, consolidation: planners wired to the orchestrator. */
  readonly planners: MigrationPlanners;
  readonly api: ApiServer;
  /** The HTTP server (dashboard, metrics, health), when `httpAddress` is given. */
  readonly dashboard: DashboardServer | undefined;
  #detachMigrations: (() => void) | undefined;
  #detachAutoscale: (() => void) | undefined;
  #unfollowDrains: (() => void) | undefined;
  /** The simulated fleet (no bus), or undefined. */
  readonly fleet: SimFleet | undefined;
  /** The agents' gateway (bus mode), or undefined. */
  readonly agents: AgentGateway | undefined;
  /** The autoscaling hook, when configured. */
  readonly autoscale: AutoscaleSignaller | undefined;
  readonly #log: Logger;
  readonly #simHosts: SimHostsOptions | undefined;
  readonly #liveness: LivenessOptions;
  readonly #serveApi: boolean;
  /** The role in a cluster of brokers (with `ha`), or undefined (a single broker). */
  readonly ha: HighAvailability | undefined;

  constructor(options: BrokerOptions) {
    this.clock = options.clock;
    this.#log = options.logger;
    const ha = options.ha;
    // The lease manager and registry write fresh objects and never mutate them: no copy needed.
    this.store =
      ha === undefined
        ? (options.store ?? new MemoryStore({ copy: false }))
        : observeCommits(ha.store, (error) => this.ha?.commitFailed(error));
    const policy = options.policy ?? DEFAULT_PLACEMENT_POLICY;
    this.index = new ClusterIndex({ resourceWeights: policy.resourceWeights });
    this.hosts = new HostRegistry({
      store: this.store,
      index: this.index,
      clock: this.clock,
      logger: this.#log,
    });
    this.#simHosts = options.simHosts;
    this.#liveness = { ...DEFAULT_LIVENESS, ...options.liveness };
    this.#serveApi = options.serveApi ?? true;
    // One fencing token for agent commands and autoscale signals.
    const epoch = options.epoch ?? this.clock.now();
    let gateway: HostGateway;
    if (options.bus === undefined) {
      this.fleet = new SimFleet(this.clock, options.simHosts ?? {});
      this.agents = undefined;
      gateway = this.fleet;
    } else {
      this.fleet = undefined;
      this.agents = new AgentGateway({
        bus: options.bus,
        registry: this.hosts,
        clock: this.clock,
        logger: this.#log,
        epoch,
        heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
        hostTtlMs: this.#liveness.downAfterMs,
        coalesceCommands: options.coalesceCommands ?? false,
        ...(ha === undefined ? {} : { mayCommand: () => ha.election.valid() }),
        ...(options.random === undefined ? {} : { random: options.random }),
      });
      gateway = this.agents;
    }
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
      ...(options.preemption === undefined ? {} : { preemption: options.preemption }),
      ...(options.timings === undefined ? {} : { timings: options.timings }),
      ...(options.admission === undefined ? {} : { admission: options.admission }),
    });
    this.migrations = new MigrationOrchestrator({
      store: this.store,
      clock: this.clock,
      leases: this.leases,
      hosts: this.hosts,
      gateway,
      logger: this.#log,
      newId: createIdGenerator(
        "m-",
        this.clock,
        options.random === undefined ? {} : { random: options.random },
      ),
      ...(options.migrationLimits === undefined ? {} : { limits: options.migrationLimits }),
    });
    this.planners = new MigrationPlanners({
      clock: this.clock,
      index: this.index,
      leases: this.leases,
      orchestrator: this.migrations,
      logger: this.#log,
      ...(options.planners === undefined ? {} : { settings: options.planners }),
    });
    this.autoscale =
      options.autoscale === undefined
        ? undefined
        : new AutoscaleSignaller(
            {
              clock: this.clock,
              logger: this.#log,
              index: this.index,
              hosts: this.hosts,
              leases: this.leases,
              policy,
              epoch,
            },
            {
              planner: plannersConsolidation(this.planners),
              drainer: orchestratorDrainer({ orchestrator: this.migrations, leases: this.leases }),
              ...options.autoscale,
            },
          );
    const duty: LeaderDuty = {
      start: () => this.#startLeaderDuties(),
      stop: () => this.#stopLeaderDuties(),
    };
    this.ha =
      ha === undefined
        ? undefined
        : new HighAvailability({
            store: ha.store,
            election: ha.election,
            leases: this.leases,
            hosts: this.hosts,
            agents: this.agents,
            liveness: this.#liveness,
            logger: this.#log,
            advertiseAddress: ha.advertiseAddress,
            duties: [duty],
            settleMs: ha.settleMs ?? 2 * (options.heartbeatIntervalMs ?? 1000) + 500,
          });
    this.api = new ApiServer(
      {
        ...(this.ha === undefined ? {} : { gate: this.ha }),
        store: this.store,
        leases: this.leases,
        migrations: this.migrations,
        planners: this.planners,
        hosts: this.hosts,
        index: this.index,
        clock: this.clock,
        logger: this.#log,
        ...(this.autoscale === undefined ? {} : { autoscale: this.autoscale }),
      },
      { address: options.grpcAddress, ...options.api },
    );
    this.dashboard =
      options.httpAddress === undefined
        ? undefined
        : new DashboardServer(
            {
              clock: this.clock,
              logger: this.#log,
              hosts: this.hosts,
              index: this.index,
              leases: this.leases,
              store: this.store,
              ...(options.bus === undefined ? {} : { bus: options.bus }),
            },
            { address: options.httpAddress },
          );
  }

  /**
   * Loads state, brings up the simulated hosts, and serves the API. Returns the gRPC port (0 when
   * `serveApi` is false). With high availability it follows, and leads when elected.
   */
  async start(): Promise<number> {
    this.index.advanceTo(this.clock.now());
    this.#detachMigrations = this.dashboard?.attachMigrations(
      orchestratorMigrationSource(this.migrations, this.store),
    );
    if (this.autoscale !== undefined) {
      this.#detachAutoscale = this.dashboard?.attachAutoscale(
        signallerAutoscaleSource(this.autoscale),
      );
    }
    const agents = this.agents;
    agents?.onInventory((inventory) => {
      this.leases
        .reconcile(inventory)
        .catch((error) => this.#log.error({ err: error }, "reconcile failed"));
    });
    if (this.ha === undefined) {
      await this.hosts.load();
      const fleet = this.fleet;
      if (fleet !== undefined) {
        for (const host of simHostAnnouncements(this.#simHosts)) {
          fleet.addHost(host.id);
          this.hosts.register(host);
        }
      }
      await this.leases.start();
      await this.#startLeaderDuties();
      if (agents !== undefined) {
        agents.open();
        this.hosts.startLiveness(this.#liveness);
      }
    } else {
      // The role decides what runs: HighAvailability loads the state and starts the leader's
      // duties on each takeover, and stops them when it steps down.
      this.ha.start();
    }
    const port = this.#serveApi ? await this.api.start() : 0;
    const httpPort = await this.dashboard?.start();
    this.dashboard?.setReady(true);
    this.#log.info(
      { port, httpPort, hosts: this.hosts.ids().length, ha: this.ha !== undefined },
      this.ha === undefined ? "broker serving" : "broker serving (following until elected)",
    );
    return port;
  }

  /** What only the leader runs besides the lease manager: migrations and the autoscaling hook. */
  async #startLeaderDuties(): Promise<void> {
    await this.migrations.start();
    this.planners.start();
    this.#unfollowDrains = followDrains({
      clock: this.clock,
      index: this.index,
      hosts: this.hosts,
      leases: this.leases,
      orchestrator: this.migrations,
    });
    this.autoscale?.start();
  }

  #stopLeaderDuties(): void {
    this.#unfollowDrains?.();
    this.#unfollowDrains = undefined;
    this.planners.stop();
    this.migrations.stop();
    this.autoscale?.pause();
  }

  /**
   * Stops: health NOT_SERVING, resign leadership (a follower takes over at once), then lets the
   * calls in flight finish for `graceMs`, runs `beforeStoreClose` (main drains NATS there), and
   * closes the store — unless `keepStore` (a restart on the same store, in tests).
   */
  async stop(
    graceMs = 5000,
    options: { keepStore?: boolean; beforeStoreClose?: () => Promise<void> } = {},
  ): Promise<void> {
    if (this.#serveApi) this.api.setServing(false);
    await this.ha?.stop();
    this.#detachMigrations?.();
    this.#detachAutoscale?.();
    await this.dashboard?.stop();
    if (this.#serveApi) await this.api.stop(graceMs);
    this.agents?.close();
    this.hosts.stopLiveness();
    this.#stopLeaderDuties();
    await this.autoscale?.stop();
    this.leases.stop();
    await options.beforeStoreClose?.();
    if (options.keepStore !== true) await this.store.close();
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
