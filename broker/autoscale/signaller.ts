/**
 * The autoscaling hook: evaluates the cluster every interval (Clock port), turns evaluations into
 * signals with hysteresis, drains scale-in candidates before reporting them removable, and
 * publishes each new signal on NATS (`lb.v1.autoscale`, protobuf AutoscaleSignal) and to
 * webhooks. Delivery never runs on the evaluation path: the bus publish is fire-and-forget and
 * webhooks have their own bounded queues.
 *
 * Hysteresis:
 * - a ScaleOut goes out at once; a changed ScaleOut at most once per `scaleOutCooldownMs` (the
 *   hosts it asked for are joining); a ScaleOut stands until no evaluation has asked for hosts
 *   for a whole `scaleOutCooldownMs`, so demand that comes and goes does not flap the signal;
 * - a host becomes a scale-in candidate only after it was one in every evaluation for
 *   `scaleInCooldownMs`, and only if no ScaleOut was published within `scaleInCooldownMs`;
 * - candidates are cordoned and drained (the HostDrainer port; empty hosts need no drain) and
 *   only then reported in a ScaleIn; demand that returns meanwhile uncordons them.
 */
import type { Bus } from "../../bus/index.js";
import { AUTOSCALE_SUBJECT } from "../../bus/index.js";
import { type Clock, errorMessage, type Logger, type Timer } from "../../core/index.js";
import type { PlannedMove } from "../../migration/index.js";
import {
  add,
  type ClusterIndex,
  DEFAULT_PLACEMENT_POLICY,
  type PlacementPolicy,
  ZERO_RESOURCES,
} from "../../placement/index.js";
import type { HostRegistry } from "../hosts/registry.js";
import type { LeaseManager } from "../leases/lease-manager.js";
import { type Evaluation, evaluate, type Recommendation } from "./evaluate.js";
import type { ConsolidationPlanner, DrainOutcome, HostDrainer } from "./ports.js";
import { deriveShapes, type HostShape } from "./shapes.js";
import { type AutoscaleSignalRecord, autoscaleSignalCodec, signalToProto } from "./signal.js";
import { WebhookDelivery, type WebhookOptions } from "./webhook.js";

export interface AutoscaleSettings {
  /** Evaluate this often. Default 30 s. */
  readonly intervalMs: number;
  /** Waiting leases that start within this count as demand. Default 1 h. */
  readonly horizonMs: number;
  /** Utilisation (any resource) above this asks for hosts. Default 0.85. */
  readonly highWatermark: number;
  /** Utilisation (every resource) below this lets hosts go. Default 0.3. */
  readonly lowWatermark: number;
  /** Quiet time after a ScaleOut. Default 2 min. */
  readonly scaleOutCooldownMs: number;
  /** A host must stay removable this long, and no ScaleOut may be this recent. Default 10 min. */
  readonly scaleInCooldownMs: number;
  /** Never fewer READY hosts than this. Default 1. */
  readonly minHosts: number;
  /** Shapes of new hosts; empty: derived from the current hosts. */
  readonly shapes: readonly HostShape[];
}

export const DEFAULT_AUTOSCALE_SETTINGS: AutoscaleSettings = {
  intervalMs: 30_000,
  horizonMs: 3_600_000,
  highWatermark: 0.85,
  lowWatermark: 0.3,
  scaleOutCooldownMs: 120_000,
  scaleInCooldownMs: 600_000,
  minHosts: 1,
  shapes: [],
};

export interface AutoscaleOptions extends Partial<AutoscaleSettings> {
  /** Publish signals on `lb.v1.autoscale` over this bus. */
  readonly bus?: Bus;
  /** Post signals to webhooks. */
  readonly webhooks?: Omit<WebhookOptions, "clock" | "logger">;
  /** Consolidation (the Live migration planners); without it only empty hosts are candidates. */
  readonly planner?: ConsolidationPlanner;
  /** Drain by migration (the orchestrator); without it hosts with leases are never drained. */
  readonly drainer?: HostDrainer;
}

export interface AutoscaleDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly index: ClusterIndex;
  readonly hosts: HostRegistry;
  readonly leases: Pick<LeaseManager, "pendingLeases">;
  readonly policy?: PlacementPolicy;
  /** The broker's epoch (fencing token), stamped on every signal. */
  readonly epoch: number;
}

/** What GetAutoscaleStatus shows. */
export interface AutoscaleStatusView {
  /** Signals are published somewhere (NATS or a webhook). */
  readonly enabled: boolean;
  readonly lastSignal: AutoscaleSignalRecord | undefined;
  readonly evaluation: Evaluation | undefined;
  /** READY hosts without leases for at least the scale-in cooldown, sorted. */
  readonly idleHostIds: readonly string[];
  /** Cordoned by the autoscaler and being drained, sorted. */
  readonly drainingHostIds: readonly string[];
  /** Drained: reported removable, sorted. */
  readonly removableHostIds: readonly string[];
}

/** How long after a host joins the autoscaler looks again: hosts of a fleet join together. */
export const CAPACITY_SETTLE_MS = 2_000;

/** The cordon reason of hosts the autoscaler is taking out (visible in `leasectl hosts`). */
export const CORDON_REASON = "autoscale: scale-in candidate";

export class AutoscaleSignaller {
  readonly settings: AutoscaleSettings;
  readonly webhooks: WebhookDelivery | undefined;
  readonly #deps: AutoscaleDeps;
  readonly #options: AutoscaleOptions;
  readonly #log: Logger;
  readonly #policy: PlacementPolicy;
  #timer: Timer | undefined;
  /** A re-evaluation soon after capacity joined (one for a burst of hosts). */
  #settleTimer: Timer | undefined;
  #unsubscribeCapacity: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #sequence = 0;
  #last: AutoscaleSignalRecord | undefined;
  #evaluation: Evaluation | undefined;
  #lastScaleOutAt: number | undefined;
  /** Since when evaluations have not asked for hosts (undefined while they do). */
  #calmSince: number | undefined;
  /** Host → since when it has been a scale-in candidate in every evaluation. */
  readonly #candidateSince = new Map<string, number>();
  /** Host → since when it has been READY and empty. */
  readonly #idleSince = new Map<string, number>();
  /** Hosts cordoned for scale-in, draining: the moves planned for each. */
  readonly #draining = new Map<string, readonly PlannedMove[]>();
  /** Hosts drained and reported removable: the moves that emptied each. */
  readonly #removable = new Map<string, readonly PlannedMove[]>();
  readonly #listeners = new Set<(signal: AutoscaleSignalRecord) => void>();

  constructor(deps: AutoscaleDeps, options: AutoscaleOptions = {}) {
    this.#deps = deps;
    this.#options = options;
    this.#log = deps.logger.child({ component: "autoscale" });
    this.#policy = deps.policy ?? DEFAULT_PLACEMENT_POLICY;
    const { bus: _b, webhooks: _w, planner: _p, drainer: _d, ...settings } = options;
    this.settings = { ...DEFAULT_AUTOSCALE_SETTINGS, ...settings };
    this.webhooks =
      options.webhooks === undefined || options.webhooks.urls.length === 0
        ? undefined
        : new WebhookDelivery({ ...options.webhooks, clock: deps.clock, logger: this.#log });
  }

  get enabled(): boolean {
    return this.#options.bus !== undefined || this.webhooks !== undefined;
  }

  /**
   * Evaluates now, then every interval, and again shortly after hosts join: a fleet coming up (or a
   * host uncordoned) shows in the status and the signal within seconds, not an interval later.
   */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#unsubscribeCapacity = this.#deps.hosts.onCapacityAdded(() => this.#evaluateSoon());
    const loop = (): void => {
      this.#timer = this.#deps.clock.setTimer(this.settings.intervalMs, () => {
        loop();
        void this.evaluateNow();
      });
    };
    loop();
    void this.evaluateNow();
  }

  /** Stops evaluating (a broker that stops leading); `start` resumes. Deliveries go on. */
  pause(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#settleTimer?.cancel();
    this.#settleTimer = undefined;
    this.#unsubscribeCapacity?.();
    this.#unsubscribeCapacity = undefined;
  }

  #evaluateSoon(): void {
    if (this.#settleTimer !== undefined) return;
    this.#settleTimer = this.#deps.clock.setTimer(CAPACITY_SETTLE_MS, () => {
      this.#settleTimer = undefined;
      void this.evaluateNow();
    });
  }

  async stop(): Promise<void> {
    this.pause();
    await this.#running;
    await this.webhooks?.close();
  }

  /** Listens to published signals (in-process consumers, tests). */
  onSignal(listener: (signal: AutoscaleSignalRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): AutoscaleStatusView {
    const now = this.#deps.clock.now();
    const idle = [...this.#idleSince]
      .filter(([, since]) => now - since >= this.settings.scaleInCooldownMs)
      .map(([id]) => id)
      .sort();
    return {
      enabled: this.enabled,
      lastSignal: this.#last,
      evaluation: this.#evaluation,
      idleHostIds: idle,
      drainingHostIds: [...this.#draining.keys()].sort(),
      removableHostIds: [...this.#removable.keys()].sort(),
    };
  }

  /**
   * One evaluation (and a signal if it changed). Evaluations never overlap: a call while one runs
   * makes it run once more after. Never rejects (failures are logged).
   */
  evaluateNow(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#evaluateOnce();
        } catch (error) {
          this.#log.error({ err: error }, "autoscale evaluation failed");
        }
      } while (this.#again);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #evaluate(now: number): Evaluation {
    const { index, hosts } = this.#deps;
    index.advanceTo(now);
    const shapes =
      this.settings.shapes.length > 0
        ? this.settings.shapes
        : deriveShapes(hosts.views().filter((h) => h.state !== "DOWN"));
    const consolidation = this.#options.planner?.plan(index, now);
    const idleSince = this.#idleSince;
    const evaluation = evaluate({
      index,
      now,
      waiting: this.#deps.leases.pendingLeases(),
      shapes,
      horizonMs: this.settings.horizonMs,
      utilisationWindowMs: this.settings.intervalMs,
      highWatermark: this.settings.highWatermark,
      lowWatermark: this.settings.lowWatermark,
      minHosts: this.settings.minHosts,
      policy: this.#policy,
      // Longest idle first, then what consolidation offers, in its order.
      removableOrder: (ids) =>
        [...ids].sort(
          (a, b) =>
            (idleSince.get(a) ?? Number.POSITIVE_INFINITY) -
              (idleSince.get(b) ?? Number.POSITIVE_INFINITY) || 0,
        ),
      ...(consolidation === undefined ? {} : { consolidation }),
    });
    const empty = new Set(evaluation.emptyHostIds);
    for (const id of [...idleSince.keys()]) if (!empty.has(id)) idleSince.delete(id);
    for (const id of empty) if (!idleSince.has(id)) idleSince.set(id, now);
    return evaluation;
  }

  async #evaluateOnce(): Promise<void> {
    const now = this.#deps.clock.now();
    this.#forgetGoneHosts();
    const stale = this.#staleCordons();
    if (stale.length > 0) await this.#uncordon(stale);
    let evaluation = this.#evaluate(now);
    let raw = evaluation.recommendation;
    if (raw.kind === "scale-out" && this.#draining.size + this.#removable.size > 0) {
      // The cheapest capacity is the hosts about to go: keep them, and look again.
      await this.#cancelScaleIn("demand returned");
      evaluation = this.#evaluate(now);
      raw = evaluation.recommendation;
    }
    this.#evaluation = evaluation;
    this.#trackCandidates(raw, now);
    if (raw.kind === "scale-out") this.#calmSince = undefined;
    else this.#calmSince ??= now;
    const standing = this.#last?.recommendation.kind === "scale-out";
    if (raw.kind === "scale-out") {
      const quiet =
        this.#lastScaleOutAt !== undefined &&
        now - this.#lastScaleOutAt < this.settings.scaleOutCooldownMs;
      if (standing && quiet) return;
      if (this.#publish(raw, now)) this.#lastScaleOutAt = now;
      return;
    }
    // A ScaleOut stands until the demand has been gone for a whole cooldown.
    if (standing && now - (this.#calmSince ?? now) < this.settings.scaleOutCooldownMs) return;
    if (raw.kind === "scale-in") this.#startDrains(raw, now);
    // One ScaleIn for the hosts drained together: none while others are still draining.
    if (this.#removable.size > 0 && this.#draining.size === 0) {
      this.#publish(this.#scaleInSignal(), now);
      return;
    }
    const waiting = this.#draining.size;
    this.#publish(
      {
        kind: "steady",
        reason:
          waiting > 0
            ? `draining ${waiting} host${waiting === 1 ? "" : "s"} before they can be removed`
            : raw.kind === "scale-in"
              ? `${raw.candidateHostIds.length} host(s) could be removed once idle for ${Math.round(this.settings.scaleInCooldownMs / 1000)} s`
              : raw.reason,
      },
      now,
    );
  }

  /** Candidates must stay candidates in every evaluation; any other signal resets them. */
  #trackCandidates(raw: Recommendation, now: number): void {
    const current = new Set(raw.kind === "scale-in" ? raw.candidateHostIds : []);
    for (const id of [...this.#candidateSince.keys()]) {
      if (!current.has(id)) this.#candidateSince.delete(id);
    }
    for (const id of current) if (!this.#candidateSince.has(id)) this.#candidateSince.set(id, now);
  }

  #startDrains(raw: Extract<Recommendation, { kind: "scale-in" }>, now: number): void {
    const s = this.settings;
    if (this.#lastScaleOutAt !== undefined && now - this.#lastScaleOutAt < s.scaleInCooldownMs) {
      return;
    }
    for (const hostId of raw.candidateHostIds) {
      const since = this.#candidateSince.get(hostId) ?? now;
      if (now - since < s.scaleInCooldownMs) continue;
      if (this.#draining.has(hostId) || this.#removable.has(hostId)) continue;
      const moves = raw.moves.filter((m) => m.fromHostId === hostId);
      const holdsLeases = this.#deps.index.holdsOn(hostId).some((h) => h.end > now);
      if (holdsLeases && this.#options.drainer === undefined) continue;
      this.#draining.set(hostId, moves);
      void this.#drain(hostId, moves, holdsLeases);
    }
  }

  async #drain(hostId: string, moves: readonly PlannedMove[], holdsLeases: boolean): Promise<void> {
    const hosts = this.#deps.hosts;
    let outcome: DrainOutcome;
    try {
      await hosts.cordon(hostId, CORDON_REASON);
      outcome =
        holdsLeases && this.#options.drainer !== undefined
          ? await this.#options.drainer.drain(hostId, moves)
          : { hostId, empty: true, stuck: [] };
    } catch (error) {
      outcome = { hostId, empty: false, stuck: [{ leaseId: "", reason: errorMessage(error) }] };
    }
    if (!this.#draining.has(hostId)) return; // cancelled meanwhile (already uncordoned)
    this.#draining.delete(hostId);
    const now = this.#deps.clock.now();
    const stillHolds = this.#deps.index.holdsOn(hostId).some((h) => h.end > now);
    if (outcome.empty && !stillHolds) {
      this.#removable.set(hostId, moves);
      this.#log.info({ host: hostId, moves: moves.length }, "host drained for scale-in");
    } else {
      this.#log.warn({ host: hostId, stuck: outcome.stuck }, "scale-in drain left leases behind");
      await hosts.uncordon(hostId).catch(() => undefined);
    }
    void this.evaluateNow();
  }

  async #cancelScaleIn(why: string): Promise<void> {
    const ids = [...this.#draining.keys(), ...this.#removable.keys()];
    this.#draining.clear();
    this.#removable.clear();
    this.#candidateSince.clear();
    const hosts = this.#deps.hosts;
    await this.#uncordon(ids.filter((id) => hosts.has(id) && hosts.view(id).state !== "DOWN"));
    this.#log.info({ hosts: ids, why }, "scale-in cancelled");
  }

  /**
   * Hosts cordoned for scale-in that this signaller is not taking out (an earlier broker process
   * cordoned them; the state of their drain was in its memory) are uncordoned: this run decides
   * again.
   */
  #staleCordons(): string[] {
    return this.#deps.hosts
      .views()
      .filter(
        (v) =>
          v.cordoned &&
          v.stateReason === CORDON_REASON &&
          v.state !== "DOWN" &&
          !this.#draining.has(v.id) &&
          !this.#removable.has(v.id),
      )
      .map((v) => v.id);
  }

  async #uncordon(hostIds: readonly string[]): Promise<void> {
    for (const hostId of hostIds) {
      await this.#deps.hosts
        .uncordon(hostId)
        .catch((error) => this.#log.warn({ host: hostId, err: error }, "cannot uncordon"));
    }
  }

  /** Removable hosts that went away (the autoscaler released them) are forgotten. */
  #forgetGoneHosts(): void {
    for (const hostId of [...this.#removable.keys()]) {
      if (!this.#deps.hosts.has(hostId) || this.#deps.hosts.view(hostId).state === "DOWN") {
        this.#removable.delete(hostId);
      }
    }
  }

  #scaleInSignal(): Recommendation {
    const ids = [...this.#removable.keys()].sort();
    let surplus = ZERO_RESOURCES;
    for (const id of ids) surplus = add(surplus, this.#deps.hosts.view(id).allocatable);
    const moves = ids.flatMap((id) => this.#removable.get(id) ?? []);
    return {
      kind: "scale-in",
      candidateHostIds: ids,
      moves,
      reason: `${ids.length} host${ids.length === 1 ? " was" : "s were"} idle for ${Math.round(this.settings.scaleInCooldownMs / 1000)} s and ${ids.length === 1 ? "is" : "are"} drained${moves.length > 0 ? ` (${moves.length} migration${moves.length === 1 ? "" : "s"})` : ""}; remove ${ids.length === 1 ? "it" : "them"}`,
      surplus,
    };
  }

  /**
   * Publishes when the signal differs from the last one (kind, or a ScaleOut/ScaleIn's content);
   * returns whether it did.
   */
  #publish(recommendation: Recommendation, now: number): boolean {
    const previous = this.#last?.recommendation;
    if (previous !== undefined && sameSignal(previous, recommendation)) return false;
    const signal: AutoscaleSignalRecord = {
      recommendation,
      time: now,
      sequence: ++this.#sequence,
      epoch: this.#deps.epoch,
    };
    this.#last = signal;
    this.#log.info(
      { sequence: signal.sequence, kind: recommendation.kind, reason: recommendation.reason },
      "autoscale signal",
    );
    const bus = this.#options.bus;
    if (bus !== undefined) {
      try {
        bus.publish(AUTOSCALE_SUBJECT, autoscaleSignalCodec.encode(signalToProto(signal)));
      } catch (error) {
        this.#log.warn({ err: error }, "cannot publish the autoscale signal");
      }
    }
    this.webhooks?.enqueue(signal);
    for (const listener of [...this.#listeners]) listener(signal);
    return true;
  }
}

/** Steady signals differ only by kind (their reason text moves with every evaluation). */
function sameSignal(a: Recommendation, b: Recommendation): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "steady") return true;
  const content = (r: Recommendation): string =>
    r.kind === "scale-out"
      ? JSON.stringify([r.hosts.map((h) => [h.shape.name, h.count]), r.leaseIds, r.deadline])
      : r.kind === "scale-in"
        ? JSON.stringify([r.candidateHostIds, r.moves])
        : "";
  return content(a) === content(b);
}
