/**
 * The broker's host registry: which hosts exist, what they offer, and their admin state (cordon,
 * drain) — persisted in the Store so that it survives a restart and reaches standbys. Liveness
 * (SUSPECT, DOWN) comes from heartbeats with the Host agents issue; this module already owns the
 * state that the placement index sees.
 */
import type { Clock, Logger } from "../../core/index.js";
import { NotFoundError } from "../../core/index.js";
import {
  type AllocationRatios,
  allocatable,
  type ClusterIndex,
  DEFAULT_ALLOCATION_RATIOS,
  type HostState,
  type Resources,
} from "../../placement/index.js";
import type { BrokerStore } from "../store/index.js";

/** What a host says about itself when it joins. */
export interface HostAnnouncement {
  readonly id: string;
  readonly capacity: Resources;
  readonly ratios?: Partial<AllocationRatios>;
  readonly reserved?: Resources;
  readonly labels: Readonly<Record<string, string>>;
  readonly driver: string;
  readonly agentVersion: string;
}

/** The persisted part of a host: what an operator decided about it. */
export interface HostRecord {
  readonly id: string;
  readonly cordoned: boolean;
  /** Why it was cordoned (the operator's words); absent or "" when not given. */
  readonly reason?: string;
  /** Set while draining: when leases that could not move follow their policy. */
  readonly drainDeadline?: number;
  readonly updatedAt: number;
}

export interface HostView {
  readonly id: string;
  readonly state: HostState;
  readonly capacity: Resources;
  readonly ratios: AllocationRatios;
  readonly reserved: Resources;
  readonly allocatable: Resources;
  readonly labels: Readonly<Record<string, string>>;
  readonly driver: string;
  readonly agentVersion: string;
  readonly joinedAt: number;
  readonly lastHeartbeat: number;
  readonly drainDeadline?: number;
  /** Why the host is in its state (the cordon reason); "" when none was given. */
  readonly stateReason: string;
  /** The operator's cordon, whatever the liveness state (a cordoned host that goes DOWN stays cordoned). */
  readonly cordoned: boolean;
  readonly revision: number;
}

const ZERO: Resources = { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };

interface LiveHost {
  announcement: HostAnnouncement;
  ratios: AllocationRatios;
  reserved: Resources;
  allocatable: Resources;
  joinedAt: number;
  lastHeartbeat: number;
  /** Liveness: false once the host is SUSPECT or DOWN. */
  liveness: "up" | "suspect" | "down";
}

export class HostRegistry {
  readonly #store: BrokerStore;
  readonly #index: ClusterIndex;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #hosts = new Map<string, LiveHost>();
  readonly #records = new Map<string, { record: HostRecord; revision: number }>();
  readonly #listeners = new Set<(hostId: string) => void>();

  constructor(deps: { store: BrokerStore; index: ClusterIndex; clock: Clock; logger: Logger }) {
    this.#store = deps.store;
    this.#index = deps.index;
    this.#clock = deps.clock;
    this.#log = deps.logger;
  }

  /** Loads the persisted admin state (call once before hosts join). */
  async load(): Promise<void> {
    let after: string | undefined;
    do {
      const page = await this.#store.list(
        "hosts",
        after === undefined ? { limit: 1000 } : { after, limit: 1000 },
      );
      for (const item of page.items)
        this.#records.set(item.id, { record: item.value, revision: item.revision });
      after = page.next;
    } while (after !== undefined);
  }

  /** Called when capacity may have appeared (a host joined or was uncordoned). */
  onCapacityAdded(listener: (hostId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A host joins, or re-joins with possibly new capacity or labels. */
  register(announcement: HostAnnouncement): HostView {
    const now = this.#clock.now();
    const ratios: AllocationRatios = { ...DEFAULT_ALLOCATION_RATIOS, ...announcement.ratios };
    const reserved = announcement.reserved ?? ZERO;
    const existing = this.#hosts.get(announcement.id);
    const live: LiveHost = {
      announcement,
      ratios,
      reserved,
      allocatable: allocatable(announcement.capacity, ratios, reserved),
      joinedAt: existing?.joinedAt ?? now,
      lastHeartbeat: now,
      liveness: "up",
    };
    this.#hosts.set(announcement.id, live);
    const spec = {
      id: announcement.id,
      capacity: announcement.capacity,
      ratios,
      reserved,
      labels: announcement.labels,
      state: this.#stateOf(announcement.id, live),
    };
    if (existing === undefined) {
      this.#index.addHost(spec);
    } else {
      this.#index.setHostLabels(announcement.id, announcement.labels);
      this.#index.setHostState(announcement.id, spec.state);
    }
    this.#log.info({ host: announcement.id, rejoined: existing !== undefined }, "host registered");
    this.#notify(announcement.id);
    return this.view(announcement.id);
  }

  has(hostId: string): boolean {
    return this.#hosts.has(hostId);
  }

  ids(): string[] {
    return [...this.#hosts.keys()].sort();
  }

  view(hostId: string): HostView {
    const live = this.#hosts.get(hostId);
    if (live === undefined) throw new NotFoundError("host", hostId);
    const persisted = this.#records.get(hostId);
    const a = live.announcement;
    return {
      id: a.id,
      state: this.#stateOf(hostId, live),
      capacity: a.capacity,
      ratios: live.ratios,
      reserved: live.reserved,
      allocatable: live.allocatable,
      labels: a.labels,
      driver: a.driver,
      agentVersion: a.agentVersion,
      joinedAt: live.joinedAt,
      lastHeartbeat: live.lastHeartbeat,
      ...(persisted?.record.drainDeadline === undefined
        ? {}
        : { drainDeadline: persisted.record.drainDeadline }),
      stateReason: persisted?.record.cordoned === true ? (persisted.record.reason ?? "") : "",
      cordoned: persisted?.record.cordoned === true,
      revision: persisted?.revision ?? 0,
    };
  }

  views(): HostView[] {
    return this.ids().map((id) => this.view(id));
  }

  /** Per resource, the most allocatable any one host has; undefined with no hosts. */
  largestAllocatable(): Resources | undefined {
    if (this.#hosts.size === 0) return undefined;
    const out = { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };
    const extended: Record<string, number> = {};
    for (const live of this.#hosts.values()) {
      const a = live.allocatable;
      out.cpuMillis = Math.max(out.cpuMillis, a.cpuMillis);
      out.memoryMib = Math.max(out.memoryMib, a.memoryMib);
      out.diskGib = Math.max(out.diskGib, a.diskGib);
      out.gpus = Math.max(out.gpus, a.gpus);
      for (const [name, n] of Object.entries(a.extended ?? {}))
        extended[name] = Math.max(extended[name] ?? 0, n);
    }
    return { ...out, extended };
  }

  async cordon(hostId: string, reason = ""): Promise<HostView> {
    return this.#setAdmin(hostId, { cordoned: true, reason });
  }

  async uncordon(hostId: string): Promise<HostView> {
    const view = await this.#setAdmin(hostId, { cordoned: false });
    this.#notify(hostId);
    return view;
  }

  async #setAdmin(
    hostId: string,
    change: { cordoned: boolean; reason?: string },
  ): Promise<HostView> {
    const live = this.#hosts.get(hostId);
    if (live === undefined) throw new NotFoundError("host", hostId);
    const current = this.#records.get(hostId);
    const record: HostRecord = {
      id: hostId,
      cordoned: change.cordoned,
      ...(change.cordoned && change.reason !== undefined && change.reason !== ""
        ? { reason: change.reason }
        : {}),
      ...(change.cordoned && current?.record.drainDeadline !== undefined
        ? { drainDeadline: current.record.drainDeadline }
        : {}),
      updatedAt: this.#clock.now(),
    };
    const revision = await this.#store.commit([
      {
        type: "put",
        collection: "hosts",
        id: hostId,
        value: record,
        expectRevision: current?.revision ?? 0,
      },
    ]);
    this.#records.set(hostId, { record, revision });
    this.#index.setHostState(hostId, this.#stateOf(hostId, live));
    this.#log.info({ host: hostId, cordoned: change.cordoned }, "host admin state changed");
    return this.view(hostId);
  }

  #stateOf(hostId: string, live: LiveHost): HostState {
    if (live.liveness === "down") return "DOWN";
    if (live.liveness === "suspect") return "SUSPECT";
    const record = this.#records.get(hostId)?.record;
    if (record?.drainDeadline !== undefined) return "DRAINING";
    if (record?.cordoned === true) return "CORDONED";
    return "READY";
  }

  #notify(hostId: string): void {
    for (const listener of [...this.#listeners]) listener(hostId);
  }
}
