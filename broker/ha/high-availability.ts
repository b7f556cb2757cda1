/**
 * A broker's role in a cluster of brokers over etcd: follower or leader, and the moves between.
 *
 * - **Follower**: keeps a warm cache of the leases from the store's watch (a list, then a watch
 *   from the list's revision; a compacted or failed watch starts over with a full reload), serves
 *   lease reads from it, and refuses everything else with the leader's address (the `RequestGate`).
 *   It does not listen to agents and arms no timers.
 * - **Takeover** (elected): forgets the cache, loads hosts' admin state and every lease from the
 *   store, tells agents the new epoch (the term's fencing token) as they say Hello again — the
 *   first heartbeat a new leader hears is answered "say hello", which brings each host's
 *   workloads — waits for the hosts that have leases to re-register (at most `settleMs`), then
 *   arms every timer: a lease whose end passed meanwhile ends at once, a reservation whose start
 *   passed starts at once. Writes are refused (UNAVAILABLE, retry) until then.
 * - **Leader**: acts. A failed store write means this broker's view may differ from etcd's (the
 *   write may or may not have happened, and in-memory bookkeeping ran ahead of it): it reloads,
 *   as in a takeover, refusing writes meanwhile — so nothing half-done is ever acted on.
 * - **Deposed** (lease lost, or expired by the local deadline, or another key leads): stops
 *   commanding agents at once (the gateway asks the election before every command), stops timers
 *   and listening to agents, and goes back to following.
 */
import {
  isLeaseBrokerError,
  type Logger,
  NotLeaderError,
  UnavailableError,
} from "../../core/index.js";
import type { AgentGateway } from "../hosts/agent-gateway.js";
import type { HostRegistry, LivenessOptions } from "../hosts/registry.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import type { Lease } from "../leases/model.js";
import { type BrokerSchema, type EtcdStore, FencedError, type StoreWatch } from "../store/index.js";
import type { LeaderElection, Term } from "./election.js";
import { FOLLOWER_METHODS, type RequestGate } from "./gate.js";

export interface HighAvailabilityOptions {
  readonly store: EtcdStore<BrokerSchema>;
  readonly election: LeaderElection;
  readonly leases: LeaseManager;
  readonly hosts: HostRegistry;
  readonly agents: AgentGateway | undefined;
  readonly liveness: LivenessOptions;
  readonly logger: Logger;
  /** This broker's advertised address (not a leader to redirect to while it steps down). */
  readonly advertiseAddress: string;
  /** Longest a new leader waits for the hosts that have leases to say Hello again. */
  readonly settleMs: number;
  /** What else only the leader runs (migrations, autoscaling): started after each takeover. */
  readonly duties?: readonly LeaderDuty[];
}

/** Work only the leader does; `stop` is synchronous so that nothing acts after a step-down. */
export interface LeaderDuty {
  start(): Promise<void>;
  stop(): void;
}

type Mode = "follower" | "taking-over" | "leader" | "stopped";

const RETRY_MS = 250;
const MAX_RETRY_MS = 2000;

export class HighAvailability implements RequestGate {
  readonly #o: HighAvailabilityOptions;
  readonly #log: Logger;
  #mode: Mode = "follower";
  /** Bumped on every change of role: work of an older one stops where it is. */
  #generation = 0;
  #cacheWatch: StoreWatch | undefined;
  /** The follower's cache is loaded (until then a read would answer from nothing). */
  #cacheReady = false;
  /** When the current takeover began (for the log and the benchmark). */
  #takeoverStarted = 0;
  readonly #ready = new Set<(term: Term, tookMs: number) => void>();

  constructor(options: HighAvailabilityOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  get mode(): Mode {
    return this.#mode;
  }

  /** Called when this broker is leader and ready to write (after each takeover or reload). */
  onLeading(listener: (term: Term, tookMs: number) => void): void {
    this.#ready.add(listener);
  }

  start(): void {
    const { election } = this.#o;
    election.onElected((term) => void this.#takeover(term));
    election.onDeposed((term, why) => this.#stepDown(term, why));
    void this.#follow();
    election.start();
  }

  /** The gate of the gRPC API (see gate.ts). */
  check(method: string): void {
    switch (this.#mode) {
      case "leader":
        // The election's deadline may pass before its timer runs (a busy event loop): ask it.
        if (!this.#o.election.valid()) throw new NotLeaderError(this.#leaderElsewhere());
        return;
      case "follower":
        if (!FOLLOWER_METHODS.has(method)) throw new NotLeaderError(this.#leaderElsewhere());
        if (method !== "WatchLeases" && !this.#cacheReady) {
          throw new UnavailableError("this broker is loading its copy of the state: retry shortly");
        }
        return;
      case "taking-over":
        throw new UnavailableError(
          "this broker is taking over as leader (loading state, agents re-registering): retry shortly",
        );
      case "stopped":
        throw new NotLeaderError(this.#leaderElsewhere());
    }
  }

  /** A store write failed: while leading, the in-memory view is reloaded before acting again. */
  commitFailed(error: unknown): void {
    if (this.#mode !== "leader" && this.#mode !== "taking-over") return;
    if (error instanceof FencedError) this.#o.election.recheck();
    const term = this.#o.election.term();
    if (term === undefined) return; // the election deposes this broker
    this.#log.warn(
      { err: error, kind: isLeaseBrokerError(error) ? error.kind : "unknown" },
      "a store write failed: reloading the state before acting again",
    );
    void this.#takeover(term);
  }

  /** SIGTERM: refuse calls, resign (a follower takes over at once), stop acting. */
  async stop(): Promise<void> {
    if (this.#mode === "stopped") return;
    this.#generation++;
    this.#mode = "stopped";
    this.#standDown();
    this.#cacheWatch?.close();
    await this.#o.election.resign();
  }

  #leaderElsewhere(): string | undefined {
    const leader = this.#o.election.leader();
    return leader === this.#o.advertiseAddress ? undefined : leader;
  }

  /** Stops everything a leader does (synchronously: no command leaves after this). */
  #standDown(): void {
    this.#o.agents?.close();
    this.#o.hosts.stopLiveness();
    this.#o.leases.stop();
    for (const duty of this.#o.duties ?? []) duty.stop();
  }

  #stepDown(term: Term, why: string): void {
    if (this.#mode === "stopped") return;
    this.#log.warn({ epoch: term.epoch, why }, "stepping down to follower");
    this.#mode = "follower";
    this.#standDown();
    void this.#follow();
  }

  // ── follower ───────────────────────────────────────────────────────────────────────────────

  async #follow(): Promise<void> {
    const generation = ++this.#generation;
    this.#cacheReady = false;
    this.#cacheWatch?.close();
    this.#cacheWatch = undefined;
    const { store, leases, hosts } = this.#o;
    await leases.reset();
    if (generation !== this.#generation) return;
    hosts.reset();
    let delay = RETRY_MS;
    while (generation === this.#generation) {
      try {
        let after: string | undefined;
        let from: number | undefined;
        do {
          const page = await store.list(
            "leases",
            after === undefined ? { limit: 1000 } : { after, limit: 1000 },
          );
          if (generation !== this.#generation) return;
          from ??= page.revision;
          for (const item of page.items) leases.applyRemote(item);
          after = page.next;
        } while (after !== undefined);
        this.#cacheWatch = store.watch(
          { collections: ["leases"], ...(from === undefined ? {} : { fromRevision: from }) },
          (event) => {
            if (generation !== this.#generation || event.type !== "put") return;
            let known: number | undefined;
            try {
              known = leases.get(event.id).createRevision;
            } catch {
              known = undefined;
            }
            leases.applyRemote({
              id: event.id,
              value: event.value as Lease,
              revision: event.revision,
              createRevision: known ?? event.revision,
            });
          },
          (error) => {
            if (generation !== this.#generation) return;
            // Compacted history or a broken watch: start over from a full reload.
            this.#log.warn({ err: error }, "follower cache: watch failed; reloading");
            void this.#follow();
          },
        );
        this.#cacheReady = true;
        return;
      } catch (error) {
        this.#log.warn({ err: error }, "follower cache: cannot load the leases; retrying");
        await sleep(delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
    }
  }

  // ── leader ─────────────────────────────────────────────────────────────────────────────────

  async #takeover(term: Term): Promise<void> {
    if (this.#mode === "stopped") return;
    const generation = ++this.#generation;
    if (this.#mode !== "taking-over") this.#takeoverStarted = Date.now();
    this.#mode = "taking-over";
    this.#cacheReady = false;
    this.#cacheWatch?.close();
    this.#cacheWatch = undefined;
    this.#standDown();
    const { leases, hosts, agents } = this.#o;
    let delay = RETRY_MS;
    while (generation === this.#generation) {
      try {
        await leases.reset();
        hosts.reset();
        await hosts.load();
        await leases.load();
        break;
      } catch (error) {
        if (generation !== this.#generation) return;
        this.#log.warn({ err: error }, "takeover: cannot load the state; retrying");
        await sleep(delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
    }
    if (generation !== this.#generation) return;
    if (agents !== undefined) {
      agents.setEpoch(term.epoch);
      agents.open();
      hosts.startLiveness(this.#o.liveness);
      await this.#settle(generation);
      if (generation !== this.#generation) return;
    }
    leases.armAll();
    for (const duty of this.#o.duties ?? []) {
      try {
        await duty.start();
      } catch (error) {
        // Like a failed write: reload and take over again.
        if (generation === this.#generation) this.commitFailed(error);
        return;
      }
      if (generation !== this.#generation) return;
    }
    this.#mode = "leader";
    const tookMs = Date.now() - this.#takeoverStarted;
    this.#log.info({ epoch: term.epoch, tookMs }, "leading");
    for (const listener of [...this.#ready]) listener(term, tookMs);
  }

  /** Waits until every host with leases has registered again, or `settleMs`. */
  async #settle(generation: number): Promise<void> {
    const deadline = Date.now() + this.#o.settleMs;
    const expected = this.#o.leases.placedHostIds();
    while (generation === this.#generation && Date.now() < deadline) {
      if (expected.every((id) => this.#o.hosts.has(id))) return;
      await sleep(25);
    }
    const missing = expected.filter((id) => !this.#o.hosts.has(id));
    if (missing.length === 0) return;
    this.#log.warn({ missing }, "takeover: hosts with leases did not say hello in time");
    // One host TTL after the takeover, a host still unheard is down: its leases follow their
    // policy (the old leader would have declared it DOWN by then).
    const timer = setTimeout(() => {
      if (generation !== this.#generation) return;
      for (const id of missing) {
        this.#o.leases
          .hostLost(id)
          .catch((error) =>
            this.#log.error({ err: error, host: id }, "handling a lost host failed"),
          );
      }
    }, this.#o.liveness.downAfterMs);
    timer.unref();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
