/**
 * The broker's host registry: which hosts exist, what they offer, and their admin state (cordon,
 * drain) — persisted in the Store so that it survives a restart and reaches standbys. Liveness
 * (SUSPECT, DOWN) comes from heartbeats with the Host agents issue; this module already owns the
 * state that the placement index sees.
 */
import type { Clock, Logger, Timer } from "../../core/index.js";
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
import { forEachObject } from "../store/store.js";

/** What a host says about itself when it joins. */
export interface HostAnnouncement {
  readonly id: string;
  readonly capacity: Resources;
  readonly ratios?: Partial<AllocationRatios>;
  readonly reserved?: Resources;
  readonly labels: Readonly<Record<string, string>>;
  readonly driver: string;
  readonly agentVersion: string;
  /**
   * The agent process's boot id. Hosts that announce one are watched for heartbeats (SUSPECT,
   * DOWN); hosts without one (the embedded simulated fleet) are always up.
   */
  readonly bootId?: string;
}

/** Liveness rules for hosts that heartbeat. */
export interface LivenessOptions {
  /** SUSPECT after this long without a heartbeat. Default 3 s. */
  readonly suspectAfterMs: number;
  /** DOWN after this long without a heartbeat (the host TTL). Default 10 s. */
  readonly downAfterMs: number;
  /** How often liveness is checked. Default 500 ms. */
  readonly checkEveryMs: number;
}

export const DEFAULT_LIVENESS: LivenessOptions = {
  suspectAfterMs: 3000,
  downAfterMs: 10_000,
  checkEveryMs: 500,
};

/** What a heartbeat meant to the registry. */
export type HeartbeatResult = "ok" | "stale" | "unknown";

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
  /** The last heartbeat sequence seen for this boot (duplicates and reordered beats are ignored). */
  lastSequence: number;
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
  readonly #stateListeners = new Set<
    (hostId: string, state: HostState, previous: HostState) => void
  >();
  #livenessTimer: Timer | undefined;
  /** `largestAllocatable`, cached until a host registers. */
  #largest: { value: Resources | undefined } | undefined;
  /** True while the broker itself cannot hear agents (its bus is disconnected): no verdicts. */
  #livenessHeld = false;

  constructor(deps: { store: BrokerStore; index: ClusterIndex; clock: Clock; logger: Logger }) {
    this.#store = deps.store;
    this.#index = deps.index;
    this.#clock = deps.clock;
    this.#log = deps.logger;
  }

  /** Loads the persisted admin state (call once before hosts join). */
  async load(): Promise<void> {
    await forEachObject(this.#store, "hosts", (item) =>
      this.#records.set(item.id, { record: item.value, revision: item.revision }),
    );
  }

  /**
   * Forgets every host and admin record (high availability: a broker that steps down or reloads
   * its state hears its agents again from scratch). Holds on the hosts are released with them.
   */
  reset(): void {
    this.stopLiveness();
    for (const id of this.#hosts.keys()) this.#index.removeHost(id);
    this.#hosts.clear();
    this.#records.clear();
    this.#largest = undefined;
    this.#livenessHeld = false;
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
      lastSequence:
        existing !== undefined && existing.announcement.bootId === announcement.bootId
          ? existing.lastSequence
          : 0,
      liveness: "up",
    };
    const previousState =
      existing === undefined ? undefined : this.#stateOf(announcement.id, existing);
    this.#hosts.set(announcement.id, live);
    this.#largest = undefined;
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
    if (previousState !== undefined && previousState !== spec.state) {
      this.#notifyState(announcement.id, spec.state, previousState);
    }
    this.#notify(announcement.id);
    return this.view(announcement.id);
  }

  /** The boot id the host registered with ("" for hosts without one). */
  bootIdOf(hostId: string): string | undefined {
    const live = this.#hosts.get(hostId);
    return live === undefined ? undefined : (live.announcement.bootId ?? "");
  }

  /**
   * A heartbeat: `unknown` when the host is not registered with this boot id or is DOWN (it must
   * say hello again, with its workloads), `stale` for a duplicate or reordered beat, else `ok`.
   */
  heartbeat(hostId: string, bootId: string, sequence: number): HeartbeatResult {
    const live = this.#hosts.get(hostId);
    if (live === undefined || live.liveness === "down" || live.announcement.bootId !== bootId)
      return "unknown";
    if (sequence <= live.lastSequence) return "stale";
    live.lastSequence = sequence;
    live.lastHeartbeat = this.#clock.now();
    if (live.liveness === "suspect") this.#setLiveness(hostId, live, "up");
    return "ok";
  }

  /** Called when a host's state changes through liveness (SUSPECT, DOWN, back to READY). */
  onStateChanged(
    listener: (hostId: string, state: HostState, previous: HostState) => void,
  ): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Starts checking heartbeats on the Clock. */
  startLiveness(options: Partial<LivenessOptions> = {}): void {
    const o = { ...DEFAULT_LIVENESS, ...options };
    this.stopLiveness();
    let due = this.#clock.now() + o.checkEveryMs;
    const check = (): void => {
      const now = this.#clock.now();
      // A check that runs late means this process was busy (a burst of API calls, a long GC):
      // beats that came meanwhile may still wait unread on the socket. That silence is the
      // broker's, not the hosts': it is not counted against them.
      const stalledMs = now - due;
      due = now + o.checkEveryMs;
      if (stalledMs > o.checkEveryMs) this.#creditStall(stalledMs, now);
      for (const [hostId, live] of this.#hosts) {
        if (this.#livenessHeld) break;
        if (live.announcement.bootId === undefined || live.liveness === "down") continue;
        const silent = now - live.lastHeartbeat;
        if (silent >= o.downAfterMs) this.#setLiveness(hostId, live, "down");
        else if (silent >= o.suspectAfterMs && live.liveness === "up")
          this.#setLiveness(hostId, live, "suspect");
      }
      this.#livenessTimer = this.#clock.setTimer(o.checkEveryMs, check);
    };
    this.#livenessTimer = this.#clock.setTimer(o.checkEveryMs, check);
  }

  #creditStall(stalledMs: number, now: number): void {
    for (const live of this.#hosts.values()) {
      if (live.announcement.bootId !== undefined && live.liveness !== "down")
        live.lastHeartbeat = Math.min(now, live.lastHeartbeat + stalledMs);
    }
    this.#log.warn(
      { stalledMs },
      "liveness check ran late: the broker was too busy to hear heartbeats; that time is not held against the hosts",
    );
  }

  /**
   * The broker lost its own connection to the agents (the bus is down): silence says nothing
   * about the hosts, so no host goes SUSPECT or DOWN until `resumeLiveness`.
   */
  holdLiveness(): void {
    if (this.#livenessHeld) return;
    this.#livenessHeld = true;
    this.#log.warn("liveness on hold: the broker cannot hear the agents");
  }

  /** The broker hears agents again: each live host gets a fresh TTL from now. */
  resumeLiveness(): void {
    if (!this.#livenessHeld) return;
    this.#livenessHeld = false;
    const now = this.#clock.now();
    for (const live of this.#hosts.values()) {
      if (live.announcement.bootId !== undefined && live.liveness !== "down")
        live.lastHeartbeat = now;
    }
    this.#log.info("liveness resumed: every live host has a fresh TTL");
  }

  stopLiveness(): void {
    this.#livenessTimer?.cancel();
    this.#livenessTimer = undefined;
  }

  #setLiveness(hostId: string, live: LiveHost, liveness: LiveHost["liveness"]): void {
    const previous = this.#stateOf(hostId, live);
    live.liveness = liveness;
    const state = this.#stateOf(hostId, live);
    if (state === previous) return;
    this.#index.setHostState(hostId, state);
    this.#log.warn(
      { host: hostId, state, previous, silentMs: this.#clock.now() - live.lastHeartbeat },
      "host liveness changed",
    );
    this.#notifyState(hostId, state, previous);
    if (state === "READY") this.#notify(hostId);
  }

  #notifyState(hostId: string, state: HostState, previous: HostState): void {
    for (const listener of [...this.#stateListeners]) listener(hostId, state, previous);
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
    // Asked on every submit; it only changes when a host (re-)registers.
    this.#largest ??= { value: this.#computeLargest() };
    return this.#largest.value;
  }

  #computeLargest(): Resources | undefined {
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

  /** Cordons the host and marks it DRAINING until `deadline` (uncordon ends the drain). */
  async drain(hostId: string, deadline: number, reason = ""): Promise<HostView> {
    return this.#setAdmin(hostId, { cordoned: true, reason, drainDeadline: deadline });
  }

  async uncordon(hostId: string): Promise<HostView> {
    const view = await this.#setAdmin(hostId, { cordoned: false });
    this.#notify(hostId);
    return view;
  }

  async #setAdmin(
    hostId: string,
    change: { cordoned: boolean; reason?: string; drainDeadline?: number },
  ): Promise<HostView> {
    const live = this.#hosts.get(hostId);
    if (live === undefined) throw new NotFoundError("host", hostId);
    const current = this.#records.get(hostId);
    const drainDeadline = change.drainDeadline ?? current?.record.drainDeadline;
    const record: HostRecord = {
      id: hostId,
      cordoned: change.cordoned,
      ...(change.cordoned && change.reason !== undefined && change.reason !== ""
        ? { reason: change.reason }
        : {}),
      ...(change.cordoned && drainDeadline !== undefined ? { drainDeadline } : {}),
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
