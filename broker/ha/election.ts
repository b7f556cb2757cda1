/**
 * Leader election on etcd, with a fencing token and a local bound on leadership.
 *
 * Every broker campaigns: it puts `<prefix>election/<lease id>` = its advertised address under an
 * etcd lease of `ttlMs`; the key with the smallest create revision leads. That create revision is
 * the term's fencing token: the store compares it on every write (a deposed leader's write fails,
 * whatever it believes) and agents get it as the broker's epoch (it only grows from term to term).
 *
 * etcd3's own Election is not used: it hides the key's create revision and its lease, and etcd3
 * reports a lost lease only after about 2×TTL. Here the leader also keeps a local deadline: the
 * lease cannot expire at etcd before (send time of the last answered keepalive + TTL), so the
 * leader stops acting (`valid()` turns false, `deposed` fires) a margin before that, even when it
 * cannot reach etcd to learn anything. A term is never resumed: after any loss the broker
 * campaigns again with a new key.
 */
import type { Etcd3, IKeyValue, Lease, Watcher } from "etcd3";
import { errorMessage, type Logger } from "../../core/index.js";
import { prefixEnd, type StoreFence } from "../store/index.js";

export interface ElectionOptions {
  readonly client: Etcd3;
  /** The store's prefix; the election's keys are `<prefix>election/…`. */
  readonly prefix: string;
  /** What followers and clients are told (the advertised gRPC address). */
  readonly value: string;
  /** Lease TTL, whole seconds in ms (etcd may grant more: its minimum is about 1.5 s). */
  readonly ttlMs: number;
  readonly logger: Logger;
  /** Stop acting this long before the lease could expire at etcd. Default min(500, ttl/4) ms. */
  readonly marginMs?: number;
}

export interface Term {
  /** The fencing token: the create revision of this term's election key. */
  readonly epoch: number;
  readonly key: string;
}

type Role = { kind: "follower" } | { kind: "leader"; term: Term };

/** Leader election: `elected(term)` and `deposed(term, why)` callbacks, leader address for others. */
export class LeaderElection {
  readonly #o: ElectionOptions;
  readonly #log: Logger;
  readonly #electionPrefix: string;
  readonly #margin: number;
  #role: Role = { kind: "follower" };
  #leaderValue: string | undefined;
  #lease: Lease | undefined;
  #key: string | undefined;
  #createRevision = 0;
  #validUntil = 0;
  #fired: number[] = [];
  #watcher: Watcher | undefined;
  #expiry: NodeJS.Timeout | undefined;
  #recheck: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = true;
  #campaigns = 0;
  readonly #elected = new Set<(term: Term) => void>();
  readonly #deposed = new Set<(term: Term, why: string) => void>();
  readonly #leaderChanged = new Set<(value: string | undefined) => void>();

  constructor(options: ElectionOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#electionPrefix = `${options.prefix}election/`;
    this.#margin = options.marginMs ?? Math.min(500, options.ttlMs / 4);
  }

  onElected(listener: (term: Term) => void): void {
    this.#elected.add(listener);
  }
  onDeposed(listener: (term: Term, why: string) => void): void {
    this.#deposed.add(listener);
  }
  onLeaderChanged(listener: (value: string | undefined) => void): void {
    this.#leaderChanged.add(listener);
  }

  /** The current term if this broker leads and its lease is certainly still alive. */
  term(): Term | undefined {
    return this.#role.kind === "leader" && this.valid() ? this.#role.term : undefined;
  }

  /**
   * The store's fence for this broker's writes: this term's key with its create revision, or,
   * when it does not lead, a condition no key meets (a follower must never write).
   */
  fence(): StoreFence[] {
    const term = this.term();
    return [
      term === undefined
        ? { key: `${this.#electionPrefix}none`, createRevision: -1 }
        : { key: term.key, createRevision: term.epoch },
    ];
  }

  /** Looks at the election again now (a write was fenced: this term may be over). */
  recheck(): void {
    void this.#evaluate();
  }

  /** True while this broker leads and its lease cannot have expired at etcd. */
  valid(): boolean {
    return this.#role.kind === "leader" && monotonicNow() < this.#validUntil;
  }

  /** The leader's advertised address as last seen (this broker's own while it leads). */
  leader(): string | undefined {
    return this.#leaderValue;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#watch();
    void this.#campaign();
  }

  /** Gives up leadership (deletes the key: a follower takes over at once) and stops campaigning. */
  async resign(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearInterval(this.#recheck);
    if (this.#role.kind === "leader") this.#stepDown("resigned");
    await this.#dropLease(true);
    try {
      await this.#watcher?.cancel();
    } catch {
      // etcd may be gone: nothing to cancel.
    }
    this.#watcher = undefined;
  }

  // ── campaigning ────────────────────────────────────────────────────────────────────────────

  async #campaign(): Promise<void> {
    if (this.#stopped) return;
    const campaign = ++this.#campaigns;
    const ttlSeconds = Math.max(1, Math.round(this.#o.ttlMs / 1000));
    const lease = this.#o.client.lease(ttlSeconds, { autoKeepAlive: true });
    this.#lease = lease;
    this.#fired = [];
    const sentAt = monotonicNow();
    lease.on("keepaliveFired", () => this.#fired.push(monotonicNow()));
    lease.on("keepaliveFailed", () => {
      this.#fired = [];
    });
    lease.on("keepaliveSucceeded", (res) => {
      const at = this.#fired.shift();
      // An answer with no send time known proves nothing about how long the lease lives.
      if (at === undefined || campaign !== this.#campaigns) return;
      this.#extend(at + Number(res.TTL) * 1000);
    });
    lease.on("lost", (error) => {
      if (campaign !== this.#campaigns) return;
      this.#log.warn({ err: error }, "election lease lost");
      this.#lost("the election lease was lost");
    });
    try {
      const id = await lease.grant();
      if (campaign !== this.#campaigns) return;
      this.#extend(sentAt + ttlSeconds * 1000);
      const key = `${this.#electionPrefix}${BigInt(id).toString(16)}`;
      const put = await this.#o.client.kv.put({
        key: Buffer.from(key),
        value: Buffer.from(this.#o.value),
        lease: id,
      });
      if (campaign !== this.#campaigns) return;
      this.#key = key;
      this.#createRevision = Number(put.header.revision);
      this.#log.info({ key, revision: this.#createRevision }, "campaigning");
      await this.#evaluate();
      // A watch event can be missed across a reconnect: look again now and then.
      clearInterval(this.#recheck);
      this.#recheck = setInterval(() => void this.#evaluate(), Math.max(500, this.#o.ttlMs / 2));
      this.#recheck.unref();
    } catch (error) {
      if (campaign !== this.#campaigns) return;
      this.#log.warn({ err: error }, "campaign failed; retrying");
      this.#lost(`campaign failed: ${errorMessage(error)}`);
    }
  }

  #extend(until: number): void {
    const validUntil = until - this.#margin;
    if (validUntil <= this.#validUntil) return;
    this.#validUntil = validUntil;
    if (this.#role.kind === "leader") this.#armExpiry();
  }

  #armExpiry(): void {
    clearTimeout(this.#expiry);
    this.#expiry = setTimeout(
      () => this.#checkExpiry(),
      Math.max(0, this.#validUntil - monotonicNow()),
    );
    this.#expiry.unref();
  }

  #checkExpiry(): void {
    if (this.#role.kind !== "leader" || monotonicNow() < this.#validUntil) return;
    this.#log.warn("the election lease may have expired (no keepalive answered): stepping down");
    this.#lost("the election lease was not renewed in time");
  }

  /** This term is over: step down if leading, drop the lease, campaign again shortly. */
  #lost(why: string): void {
    if (this.#role.kind === "leader") this.#stepDown(why);
    void this.#dropLease(false);
    if (this.#stopped) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#campaign(), Math.min(1000, this.#o.ttlMs / 2));
    this.#retry.unref();
  }

  async #dropLease(revoke: boolean): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    this.#key = undefined;
    this.#createRevision = 0;
    this.#validUntil = 0;
    this.#campaigns++;
    if (lease === undefined) return;
    if (!revoke) {
      // Stop keepalives; the key goes when the lease expires (or now, if etcd is reachable).
      lease.revoke({ deadline: Date.now() + 1000 }).catch(() => lease.release());
      return;
    }
    try {
      await lease.revoke({ deadline: Date.now() + 2000 });
    } catch {
      lease.release();
    }
  }

  #stepDown(why: string): void {
    if (this.#role.kind !== "leader") return;
    const term = this.#role.term;
    this.#role = { kind: "follower" };
    clearTimeout(this.#expiry);
    this.#log.warn({ epoch: term.epoch, why }, "no longer the leader");
    for (const listener of [...this.#deposed]) listener(term, why);
  }

  // ── who leads ──────────────────────────────────────────────────────────────────────────────

  #watch(): void {
    this.#o.client
      .watch()
      .prefix(this.#electionPrefix)
      .create()
      .then(
        (watcher) => {
          if (this.#stopped) {
            void watcher.cancel();
            return;
          }
          this.#watcher = watcher;
          const again = (): void => void this.#evaluate();
          watcher.on("put", again);
          watcher.on("delete", again);
          watcher.on("connected", again);
        },
        (error: unknown) => {
          this.#log.warn({ err: error }, "cannot watch the election; retrying");
          if (!this.#stopped) setTimeout(() => this.#watch(), 1000).unref();
        },
      );
  }

  /** Reads the lowest election key: the leader. Elected when it is this broker's key. */
  async #evaluate(): Promise<void> {
    if (this.#stopped) return;
    let first: IKeyValue | undefined;
    try {
      const response = await this.#o.client.kv.range({
        key: Buffer.from(this.#electionPrefix),
        range_end: prefixEnd(Buffer.from(this.#electionPrefix)),
        sort_order: "Ascend",
        sort_target: "Create",
        limit: 1,
      });
      first = response.kvs[0];
    } catch {
      return; // etcd unreachable: the local deadline decides for a leader
    }
    const value = first === undefined ? undefined : first.value.toString();
    if (value !== this.#leaderValue || first === undefined) this.#setLeader(value);
    const mine =
      first !== undefined &&
      this.#key !== undefined &&
      first.key.toString() === this.#key &&
      Number(first.create_revision) === this.#createRevision;
    if (mine && this.#role.kind === "follower" && monotonicNow() < this.#validUntil) {
      const term: Term = { epoch: this.#createRevision, key: this.#key as string };
      this.#role = { kind: "leader", term };
      this.#armExpiry();
      this.#log.info({ epoch: term.epoch }, "elected leader");
      for (const listener of [...this.#elected]) listener(term);
    } else if (!mine && this.#role.kind === "leader") {
      // Our key is gone or no longer first (the lease expired at etcd): another term began.
      this.#lost("another broker's key leads the election");
    }
  }

  #setLeader(value: string | undefined): void {
    if (value === this.#leaderValue) return;
    this.#leaderValue = value;
    for (const listener of [...this.#leaderChanged]) listener(value);
  }
}

/**
 * The leadership deadline is local time, and must not jump with the wall clock (NTP): a
 * monotonic clock. (Not the Clock port: etcd's leases run in real time, never virtual.)
 */
function monotonicNow(): number {
  return performance.now();
}
